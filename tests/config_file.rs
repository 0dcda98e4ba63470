//! `--config FILE` through the binary: the file sets `watch`'s options,
//! flags override it (lists replaced whole), defaults fill the rest; an
//! unknown key or a bad value is refused with its line before anything is
//! opened; `--print-config` shows the effective settings and reads back to
//! the same; secrets come from files and are never printed.

// Only the binary's helpers: `common` would load `skip.rs` a second time
// beside `real` and `pg` (clippy::duplicate_mod).
#[path = "common/bin.rs"]
#[allow(dead_code)] // a subset is used here
mod bin;
// `pg` and `real` each include common/skip.rs.
#[allow(clippy::duplicate_mod)]
mod pg;
mod real;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bin::*;

/// A fixed epoch for ingested lines (2026-11-24T10:00:00Z).
const T0: i64 = 1_795_514_400_000;

/// Runs the binary with `args` exactly (no `--db` added), in `dir`.
fn bin(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("INCIDENT_RECORDER_LISTEN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Writes `text` into `dir/name`, returns its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `watch --print-config` with the config file `c` and `flags`: stdout.
fn print_config(dir: &Path, c: &Path, flags: &[&str]) -> String {
    let mut args = vec!["--config", c.to_str().unwrap(), "watch", "--print-config"];
    args.extend(flags);
    let o = bin(dir, &args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The uncommented `key = value` line of a printed config, if any.
fn setting(printed: &str, key: &str) -> Option<String> {
    printed.lines().find_map(|l| {
        let (k, v) = l.split_once(" = ")?;
        (k == key).then(|| v.to_owned())
    })
}

#[test]
fn the_file_beats_defaults_and_flags_beat_the_file_lists_included() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(
        dir.path(),
        "c.toml",
        "db = \"from-file.db\"\npre = \"2m\"\nmax_points = 300\n\
         rules = [\"cpu>50 for 10s\", \"memory>80\"]\nanomaly = true\nanomaly_threshold = 4.5\n",
    );
    let p = print_config(dir.path(), &c, &[]);
    assert_eq!(
        setting(&p, "db").as_deref(),
        Some("\"from-file.db\""),
        "{p}"
    );
    assert_eq!(setting(&p, "pre").as_deref(), Some("\"2m\""), "{p}");
    assert_eq!(setting(&p, "max_points").as_deref(), Some("300"), "{p}");
    assert_eq!(setting(&p, "anomaly").as_deref(), Some("true"), "{p}");
    assert_eq!(
        setting(&p, "anomaly_threshold").as_deref(),
        Some("4.5"),
        "{p}"
    );
    assert_eq!(
        setting(&p, "rules").as_deref(),
        Some("[\"cpu>50 for 10s\", \"memory>80\"]"),
        "{p}"
    );
    // Not in the file: the default, shown commented out.
    assert!(p.contains("\n# post = \"10m\"\n"), "{p}");
    assert_eq!(setting(&p, "post"), None);

    // Flags win; a list flag replaces the file's whole list.
    let p = print_config(
        dir.path(),
        &c,
        &["--pre", "3m", "--rule", "disk>1", "--db", "flag.db"],
    );
    assert_eq!(setting(&p, "pre").as_deref(), Some("\"3m\""), "{p}");
    assert_eq!(setting(&p, "rules").as_deref(), Some("[\"disk>1\"]"), "{p}");
    assert_eq!(setting(&p, "db").as_deref(), Some("\"flag.db\""), "{p}");
    assert_eq!(setting(&p, "max_points").as_deref(), Some("300"), "{p}");

    // Without a file, the defaults (the rules too).
    let o = bin(dir.path(), &["watch", "--print-config"]);
    let p = stdout(&o);
    assert!(
        p.contains("# rules: none given, so the defaults: \"cpu>90 for 1m\""),
        "{p}"
    );
    assert!(p.contains("\n# max_points = 500\n"), "{p}");
}

#[test]
fn watch_records_with_the_files_settings() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        "db = \"service.db\"\ninterval = \"200ms\"\nrules = [\"cpu>101 for 1m\"]\n",
    );
    let o = bin(
        dir.path(),
        &[
            "--config",
            "c.toml",
            "watch",
            "--for",
            "1s",
            "--trigger-now",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("every 200ms into service.db (rules: cpu>101 for 1m)"),
        "{out}"
    );
    // Other commands take the database from the file too.
    let o = bin(dir.path(), &["--config", "c.toml", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let windows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert!(!dir.path().join("incidents.db").exists());
}

#[test]
fn unknown_keys_and_bad_values_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        // (file, what the one error line says)
        (
            "db = \"x.db\"\n\nmax_point = 5\n",
            "c.toml:3:1: max_point: unknown key; the keys are db, interval, pre",
        ),
        (
            "db = \"x.db\"\nmax-points = 5\n",
            "c.toml:2:1: max-points: unknown key",
        ),
        ("for = \"1m\"\n", "c.toml:1:1: for: unknown key"),
        (
            "db = \"x.db\"\npre = \"5x\"\n",
            "c.toml:2:7: pre: invalid value \"5x\": invalid duration \"5x\": unknown unit \"x\"",
        ),
        (
            "max_points = 0\n",
            "c.toml:1:14: max_points: invalid value \"0\"",
        ),
        (
            "max_points = [5]\n",
            "c.toml:1:14: max_points: takes one value, not a list",
        ),
        (
            "anomaly = \"yes\"\n",
            "c.toml:1:11: anomaly: expected true or false",
        ),
        (
            "rules = [\"cpu>>9\"]\n",
            "c.toml:1:9: rules: invalid value \"cpu>>9\"",
        ),
        (
            "scrape = [\"ftp://x\"]\n",
            "c.toml:1:10: scrape: invalid value \"ftp://x\"",
        ),
        ("pre = 2m\n", "c.toml:1:7: "),
        (
            "[watch]\npre = \"2m\"\n",
            "c.toml:1:2: watch: unknown key: the file has no sections",
        ),
        ("pre = \"1m\"\npre = \"2m\"\n", "c.toml:2:1: "),
        ("scrape_match = \"x\"\n", "--scrape"),
    ];
    for (text, needle) in cases {
        write(dir.path(), "c.toml", text);
        let o = bin(dir.path(), &["--config", "c.toml", "watch", "--for", "1s"]);
        fails(&o, 2, needle);
        assert!(stdout(&o).is_empty(), "{text}: {}", stdout(&o));
        // Refused before anything was opened.
        assert!(!dir.path().join("x.db").exists(), "{text}");
        assert!(!dir.path().join("incidents.db").exists(), "{text}");
    }
    // A missing file, and one too large to be a config.
    let o = bin(dir.path(), &["--config", "nope.toml", "list"]);
    fails(&o, 2, "nope.toml: cannot read the config file");
    write(dir.path(), "big.toml", &"#".repeat(2 << 20));
    let o = bin(dir.path(), &["--config", "big.toml", "list"]);
    fails(&o, 2, "larger than 1048576 bytes");
    // A FIFO is refused at once, never waited on.
    let fifo = std::ffi::CString::new(dir.path().join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let o = bin(dir.path(), &["--config", "fifo", "list"]);
    fails(&o, 2, "fifo: the config file is not a regular file");
    // A watch key is checked for every command, though only `watch` uses it.
    write(dir.path(), "c.toml", "pre = \"5x\"\n");
    let o = bin(dir.path(), &["--config", "c.toml", "list"]);
    fails(&o, 2, "c.toml:1:7: pre: invalid value");
}

#[test]
fn printed_settings_read_back_to_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(
        dir.path(),
        "c.toml",
        "db = \"a b.db\"\npost = \"90s\"\nrules = [\"cpu>50 for 10s\"]\n\
         scrape = [\"node=http://127.0.0.1:9100/metrics\"]\nscrape_match = \"^node_load\"\n\
         no_host = true\nlisten = \"9465\"\nlisten_no_auth = true\nmax_per_day = 0\n",
    );
    let first = print_config(dir.path(), &c, &[]);
    let printed = write(dir.path(), "printed.toml", &first);
    let second = print_config(dir.path(), &printed, &[]);
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&first), body(&second));
    assert_eq!(setting(&second, "listen").as_deref(), Some("9465"));
    assert_eq!(setting(&second, "no_host").as_deref(), Some("true"));
}

/// A private file (0600) holding `text`.
fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = write(dir, name, text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn secrets_come_from_files_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let token = "file-token-0123456789abcdef";
    let password = "pg-pass-never-shown";
    secret_file(dir.path(), "token", &format!("{token}\n"));
    secret_file(dir.path(), "pgpass", &format!("{password}\n"));
    let port = real::free_port();
    let c = write(
        dir.path(),
        "c.toml",
        &format!(
            "db = \"s.db\"\ninterval = \"200ms\"\nlisten = \"{port}\"\nlisten_token_file = \"token\"\n\
             push_to = \"postgresql://rec@127.0.0.1:1/central\"\npush_password_file = \"pgpass\"\n"
        ),
    );
    let p = print_config(dir.path(), &c, &[]);
    assert_eq!(
        setting(&p, "listen_token_file").as_deref(),
        Some("\"token\""),
        "{p}"
    );
    assert_eq!(
        setting(&p, "push_password_file").as_deref(),
        Some("\"pgpass\""),
        "{p}"
    );
    assert!(!p.contains(token) && !p.contains(password), "{p}");
    // A token given as a flag beats the file's token file, and shows as ***.
    let p = print_config(dir.path(), &c, &["--listen-token", "flag-token-0123456789"]);
    assert_eq!(
        setting(&p, "listen_token").as_deref(),
        Some("\"***\""),
        "{p}"
    );
    assert_eq!(setting(&p, "listen_token_file"), None, "{p}");
    assert!(!p.contains("flag-token"), "{p}");
    // So does the token's environment variable.
    let o = Command::new(BIN)
        .args(["--config", "c.toml", "watch", "--print-config"])
        .current_dir(dir.path())
        .env("INCIDENT_RECORDER_LISTEN_TOKEN", "env-token-0123456789")
        .output()
        .unwrap();
    let p = stdout(&o);
    assert_eq!(
        setting(&p, "listen_token").as_deref(),
        Some("\"***\""),
        "{p}"
    );
    assert_eq!(setting(&p, "listen_token_file"), None, "{p}");
    assert!(!p.contains("env-token"), "{p}");
    // A password in the URL is cut out too.
    let p = print_config(
        dir.path(),
        &c,
        &["--push-to", "postgresql://rec:url-secret@h/db"],
    );
    assert!(
        p.contains("postgresql://rec:***@h/db") && !p.contains("url-secret"),
        "{p}"
    );

    // The recorder uses the file's token (and the password, with nothing
    // printed: the central database on port 1 is down).
    let log = dir.path().join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(["--config", "c.toml", "watch", "--for", "4s"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/windows");
    let status = |auth: Option<&str>| {
        let mut req = real::agent().get(&url);
        if let Some(t) = auth {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        req.call().ok().map(|r| r.status().as_u16())
    };
    let ok = real::wait_for(Duration::from_secs(15), "the listener", || {
        status(Some(token)).filter(|s| *s == 200)
    });
    assert_eq!(ok, 200);
    assert_eq!(status(None), Some(401));
    assert_eq!(status(Some("another-token-0123456789")), Some(401));
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("bearer token in token"), "{text}");
    assert!(!text.contains(token) && !text.contains(password), "{text}");

    // A secret file other users may read is refused; so is a password in
    // both the URL and a file.
    std::fs::set_permissions(
        dir.path().join("token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = bin(
        dir.path(),
        &[
            "--config", "c.toml", "--db", "fresh.db", "watch", "--for", "1s",
        ],
    );
    fails(
        &o,
        1,
        "token: refusing the listener token file: its mode 0644 lets other users read",
    );
    // Before the database was opened: nothing created.
    assert!(!dir.path().join("fresh.db").exists());
    assert!(!stderr(&o).contains(token));
    let o = bin(
        dir.path(),
        &[
            "--config",
            "c.toml",
            "watch",
            "--for",
            "1s",
            "--listen-no-auth",
            "--push-to",
            "postgresql://rec:x@127.0.0.1:1/c",
        ],
    );
    fails(
        &o,
        1,
        "--push-to has a password and --push-password-file gives one too",
    );
}

#[test]
fn a_password_file_logs_the_pusher_in() {
    let Some(cluster) = pg::Cluster::start(pg::Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), "pgpass", &format!("{}\n", pg::PASSWORD));
    let lines: Vec<String> = (0..20)
        .map(|s| {
            format!(
                r#"{{"type":"sample","resource":"h","ts":{},"metrics":{{"cpu":{s}}}}}"#,
                T0 + s * 5000
            )
        })
        .chain([format!(
            r#"{{"type":"trigger","resource":"h","ts":{}}}"#,
            T0 + 50_000
        )])
        .collect();
    let url = cluster.url_without_password();
    let o = run_with_stdin(
        &dir.path().join("n.db"),
        &[
            "ingest",
            "-",
            "--finish",
            "--push-to",
            &url,
            "--push-node",
            "n",
            "--push-password-file",
            file.to_str().unwrap(),
        ],
        Some(&lines.join("\n")),
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{all}");
    assert!(!all.contains(pg::PASSWORD), "{all}");
    let count: i64 = cluster
        .client("central")
        .query_one("SELECT count(*) FROM windows WHERE node = 'n'", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "{all}");
}
