//! Running `watch` as a systemd service (contrib/): the unit passes
//! `systemd-analyze verify` and keeps its hardening score; `contrib/install`
//! puts every file where the unit looks for it; a member of the service's
//! group reads the history while the service records.
//!
//! Programs: systemd-analyze (Debian's systemd), runuser (util-linux); the
//! group test needs root and the user `ir-other` (created by `.ci/run`).
//! Missing, the tests say why and return, except under `CI=true`.

// Only the binary's helpers: `common` would load `skip.rs` a second time
// beside `real` and `pg` (clippy::duplicate_mod).
#[path = "common/bin.rs"]
#[allow(dead_code)] // a subset is used here
mod bin;
mod real;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bin::*;

/// The shipped files.
fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(name)
}

/// The unit's `Key=value` settings of its [Service] section, in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The unit, with ExecStart running this build's binary, in a fresh dir.
fn unit_for_this_build() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(contrib("incident-recorder.service")).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/incident-recorder "));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("incident-recorder.service");
    std::fs::write(
        &unit,
        text.replace(
            "ExecStart=/usr/local/bin/incident-recorder ",
            &format!("ExecStart={BIN} "),
        ),
    )
    .unwrap();
    (dir, unit)
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let text = std::fs::read_to_string(contrib("incident-recorder.service")).unwrap();
    let settings = unit_settings(&text);
    let get = |key: &str| {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        get("ExecStart"),
        "/usr/local/bin/incident-recorder --config /etc/incident-recorder/config.toml watch"
    );
    for (key, value) in [
        ("User", "incident-recorder"),
        ("Group", "incident-recorder"),
        ("StateDirectory", "incident-recorder"),
        ("StateDirectoryMode", "0750"),
        ("UMask", "0027"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("CapabilityBoundingSet", ""),
        (
            "RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        ),
    ] {
        assert_eq!(get(key), value, "{key}");
    }
    assert!(get("SystemCallFilter").starts_with("@system-service"));
    assert_eq!(get("DynamicUser"), "", "a stable group for readers");

    let Some(analyze) = real::program(&["systemd-analyze"], "systemd") else {
        return;
    };
    let (_dir, unit) = unit_for_this_build();
    let o = Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // The exposure score the README states (systemd 252 and later).
    let o = Command::new(&analyze)
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let out = stdout(&o);
    let Some(score) = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for incident-recorder.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
    else {
        eprintln!(
            "skipping the score: this systemd-analyze has no --offline: {}",
            stderr(&o)
        );
        return;
    };
    assert!(
        score <= 1.1,
        "exposure {score}, the README says 1.1:\n{out}"
    );
}

#[test]
fn the_install_script_puts_everything_where_the_unit_looks() {
    if real::program(&["systemd-sysusers"], "systemd").is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let install = |bin: &str| {
        Command::new(contrib("install"))
            .arg(bin)
            .env("DESTDIR", root.path())
            .output()
            .unwrap()
    };
    let o = install(BIN);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let at = |p: &str| root.path().join(p.trim_start_matches('/'));
    let mode = |p: &str| std::fs::metadata(at(p)).unwrap().permissions().mode() & 0o7777;
    // The binary and config the unit's ExecStart names, the unit, the user.
    assert_eq!(mode("/usr/local/bin/incident-recorder"), 0o755);
    assert_eq!(mode("/etc/incident-recorder/config.toml"), 0o644);
    assert_eq!(mode("/etc/systemd/system/incident-recorder.service"), 0o644);
    // The unit's Documentation=.
    assert_eq!(
        mode("/usr/local/share/doc/incident-recorder/README.md"),
        0o644
    );
    let passwd = std::fs::read_to_string(at("/etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("incident-recorder:")
            && l.ends_with(":/var/lib/incident-recorder:/usr/sbin/nologin")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(at("/etc/group")).unwrap();
    assert!(group.starts_with("incident-recorder:") || group.contains("\nincident-recorder:"));

    // The shipped config is valid, and records into the StateDirectory.
    let config = at("/etc/incident-recorder/config.toml");
    let o = Command::new(BIN)
        .args([
            "--config",
            config.to_str().unwrap(),
            "watch",
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("\ndb = \"/var/lib/incident-recorder/incidents.db\"\n")
            && printed.contains("\ngroup_readable = true\n"),
        "{printed}"
    );

    // Installing again keeps the administrator's config.
    std::fs::write(&config, "db = \"/srv/mine.db\"\n").unwrap();
    let o = install(BIN);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "db = \"/srv/mine.db\"\n"
    );
    // A missing binary: a clear refusal.
    let o = install("/nonexistent/incident-recorder");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no executable /nonexistent/incident-recorder"));
}

/// The gid of `ir-other`, if this test can run the binary as them.
fn other_user() -> Option<u32> {
    real::skip::other_user("the service group test", Some(BIN)).map(|(_, gid)| gid)
}

/// The binary as `ir-other`, on the service's config file.
fn as_member(config: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "ir-other", "--", BIN, "--config"])
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `serve` as ir-other on the service's database (0640, the group's):
/// its pages list and show the recording window.
fn serve_as_member(dir: &Path, config: &Path, id: &str) {
    let addr = format!("127.0.0.1:{}", real::free_port());
    let mut serve = real::Running::start(
        Path::new("runuser"),
        &[
            "-u".into(),
            "ir-other".into(),
            "--".into(),
            BIN.into(),
            "--config".into(),
            config.display().to_string(),
            "serve".into(),
            "--listen".into(),
            addr.clone(),
            "--listen-no-auth".into(),
        ],
        dir.join("serve.log"),
    );
    let page = real::wait_for(Duration::from_secs(20), "serve's page", || {
        serve.assert_running();
        real::get(&format!("http://{addr}/w/{id}")).filter(|(s, _)| *s == 200)
    });
    assert!(page.1.contains("data-recording=\"1\""), "{}", page.1);
    let (status, list) = real::get(&format!("http://{addr}/")).unwrap();
    assert!(status == 200 && list.contains(id), "{list}");
    // runuser passes SIGTERM on to serve and then dies of it itself (a
    // SIGKILL would orphan serve).
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGTERM) };
    let _ = serve.child.wait();
}

/// As the unit runs it: root records (umask 0027) into a state directory
/// (0750) whose group is the readers' (the service's own group; here a
/// set-group-id directory gives new files ir-other's group, as the
/// service user's primary group would), database group-readable by the
/// config file. Meanwhile ir-other reads everything.
/// `stats` is the one that found a nested transaction: the push state's
/// snapshot inside the pinned read of a reader without write access.
#[test]
fn a_member_of_the_services_group_reads_while_it_records() {
    let Some(gid) = other_user() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o2750)).unwrap();
    // The tempdir itself (0700) must let ir-other through to `state`.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let db = state.join("incidents.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "db = {:?}\ngroup_readable = true\ninterval = \"200ms\"\npost = \"1m\"\n",
            db.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let log = dir.path().join("watch.log");
    let mut service = real::Running::start(
        Path::new("/bin/sh"),
        &[
            "-c".to_owned(),
            format!(
                "umask 0027; exec {BIN} --config {} watch --trigger-now --for 60s",
                config.display()
            ),
        ],
        log,
    );
    // Recording: a window with some points.
    real::wait_for(Duration::from_secs(30), "a recording window", || {
        service.assert_running();
        let o = run(&db, &["list", "--json"]);
        let w: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).ok()?;
        (w.first()?["summary"]["data_points"].as_u64()? >= 5).then_some(())
    });

    let o = as_member(&config, &["list", "--json"]);
    assert!(o.status.success(), "list as ir-other: {}", stderr(&o));
    let windows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0]["status"], "recording");
    let id = windows[0]["id"].as_str().unwrap().to_owned();
    for args in [
        vec!["list"],
        vec!["show", &id],
        vec!["show", &id, "--json"],
        vec!["context", &id],
        vec!["stats"],
        vec!["export"],
    ] {
        let o = as_member(&config, &args);
        assert!(o.status.success(), "{args:?} as ir-other: {}", stderr(&o));
        let out = stdout(&o);
        if args[0] != "stats" {
            assert!(out.contains(&id), "{args:?}: {out}");
        }
    }
    serve_as_member(dir.path(), &config, &id);
    service.assert_running();

    // The files: the group may read, never write; the lock is the service's.
    for (suffix, want) in [
        ("", 0o640),
        ("-wal", 0o640),
        ("-shm", 0o640),
        (".lock", 0o600),
    ] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        let Ok(meta) = std::fs::metadata(&path) else {
            assert!(!suffix.is_empty() && suffix != ".lock", "{suffix} missing");
            continue;
        };
        assert_eq!(meta.mode() & 0o7777, want, "{}", path.display());
        assert_eq!(meta.gid(), gid, "{}", path.display());
    }
    // Stopping as systemd does: SIGTERM, a clean stop.
    unsafe { libc::kill(service.child.id() as i32, libc::SIGTERM) };
    let status = service.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", service.output());
    // Still readable after the service stopped.
    let o = as_member(&config, &["show", &id]);
    assert!(o.status.success(), "show after stop: {}", stderr(&o));
}
