//! A database edited or damaged by hand: a tampered migration history, a
//! dropped view or index, an added column, a corrupt row, random flipped
//! bytes. Never a panic, never a hang: a clear error naming the file and
//! what is wrong, a repair from the migrations, or the rest of the history.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::T0;
use common::bin::*;

/// Two closed windows and one recording, on three resources.
fn history(db: &Path) {
    let mut lines = Vec::new();
    for (r, offset) in [("web", 0), ("db", 400), ("cache", 800)] {
        for s in (0..120).step_by(5) {
            lines.push(format!(
                r#"{{"type":"sample","resource":"{r}","ts":{},"metrics":{{"cpu":{s},"mem":50}},"metadata":{{"k":"{r}"}}}}"#,
                T0 + (offset + s) * 1000
            ));
        }
        lines.push(format!(
            r#"{{"type":"trigger","resource":"{r}","trigger":"alert","trigger_id":"hot-{r}","ts":{}}}"#,
            T0 + (offset + 60) * 1000
        ));
    }
    let o = run_with_stdin(
        db,
        // Closed (the alerts are never resolved: held until `--finish`),
        // so an export taken now imports back as already present.
        &["ingest", "-", "--pre", "30s", "--post", "30s", "--finish"],
        Some(&lines.join("\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

fn sql(db: &Path, statement: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(statement)
        .unwrap();
}

/// Never a panic: no "internal error", no backtrace, no exit 101.
fn no_panic(o: &Output, what: &str) {
    let err = stderr(o);
    assert_ne!(o.status.code(), Some(101), "{what}: {err}");
    for bad in ["internal error", "panicked", "RUST_BACKTRACE"] {
        assert!(!err.contains(bad), "{what}: {err}");
    }
}

#[test]
fn a_tampered_migration_history_is_repaired_or_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    history(&db);
    let before = ok(&db, &["export"]);
    sql(
        &db,
        "UPDATE refinery_schema_history SET applied_on = 'garbage'",
    );
    for args in [
        &["ingest", "-"][..],
        &["prune"],
        &["watch", "--for", "1s", "--interval", "500ms"],
    ] {
        let o = run_with_stdin(&db, args, Some(""));
        no_panic(&o, &format!("{args:?}"));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let o = run(&db, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(ok(&db, &["export"]).len() >= before.len() / 2);
    let file = dir.path().join("e.json");
    std::fs::write(&file, &before).unwrap();
    sql(
        &db,
        "UPDATE refinery_schema_history SET applied_on = 'garbage'",
    );
    let o = run(&db, &["import", file.to_str().unwrap()]);
    no_panic(&o, "import");
    assert!(o.status.success(), "{}", stderr(&o));

    // A checksum that is not a number cannot be repaired: a clear error.
    sql(
        &db,
        "UPDATE refinery_schema_history SET checksum = 'x' WHERE version = 1",
    );
    let o = run(&db, &["ingest", "-"]);
    no_panic(&o, "ingest");
    fails(
        &o,
        1,
        "h.db: the schema is damaged: migration 1 has checksum",
    );
}

#[test]
fn a_dropped_view_or_index_is_recreated_and_an_altered_table_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    history(&db);
    let query =
        "SELECT count(*) FROM incident_samples WHERE resource_id = 'web' AND metric = 'cpu'";
    let count = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(query, [], |r| r.get::<_, i64>(0))
    };
    let n = count().unwrap();
    assert!(n > 0);
    sql(
        &db,
        "DROP VIEW incident_samples; DROP INDEX windows_by_resource;",
    );
    assert!(count().is_err(), "the view is gone");
    // A read command cannot repair (it never writes) but says so.
    let o = run(&db, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with(
            "warning: schema object missing; open the database once with write access to repair it"
        ) && l.contains("name=incident_samples")),
        "{err}"
    );
    // A recorder repairs both.
    let o = run_with_stdin(&db, &["ingest", "-"], Some(""));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l
            .starts_with("warning: re-created a missing schema object from the migrations")
            && l.contains("name=incident_samples")),
        "{err}"
    );
    assert_eq!(count().unwrap(), n);
    let indexes: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'windows_by_resource'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1);

    sql(&db, "ALTER TABLE windows ADD COLUMN note TEXT");
    fails(
        &run(&db, &["ingest", "-"]),
        1,
        "v.db: the schema is damaged: table windows has columns (",
    );
}

#[test]
fn a_damaged_row_is_named_and_the_rest_of_the_history_still_reads_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    history(&db);
    let ids: Vec<String> = json(&db, &["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    // Bytes that are not UTF-8 in one window's trigger id.
    sql(
        &db,
        &format!(
            "UPDATE windows SET trigger_id = CAST(x'ff00fe' AS TEXT) WHERE public_id = '{}'",
            ids[1]
        ),
    );
    let o = run(&db, &["list"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("r.db: window {} is damaged: ", ids[1])),
        "{err}"
    );
    assert!(err.contains("--skip-damaged"), "{err}");
    let out = stdout(&o);
    assert!(out.contains(&ids[0]) && out.contains(&ids[2]), "{out}");

    let o = run(&db, &["export"]);
    fails(&o, 1, &format!("window {} is damaged", ids[1]));
    assert!(stderr(&o).contains("`export --skip-damaged` exports the other windows"));
    let file = dir.path().join("saved.json");
    let o = run(
        &db,
        &["export", "--skip-damaged", "-o", file.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 1 damaged windows"),
        "{}",
        stderr(&o)
    );
    let copy = dir.path().join("copy.db");
    let out = ok(&copy, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 2 windows"), "{out}");
}

/// A small deterministic generator (reproducible corruptions).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn run_bounded(db: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("{args:?} on {} hung", db.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn random_flipped_bytes_never_panic_or_hang_any_read_command() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.db");
    history(&clean);
    // One file, checkpointed: the flips land in the database itself.
    sql(&clean, "PRAGMA wal_checkpoint(TRUNCATE)");
    let bytes = std::fs::read(&clean).unwrap();
    let ids: Vec<String> = json(&clean, &["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    let mut rng = Lcg(0xbad5eed);
    let (mut fine, mut refused) = (0, 0);
    for round in 0..100 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + rng.next(8) {
            let at = rng.next(damaged.len() as u64) as usize;
            damaged[at] ^= 1 << rng.next(8);
        }
        let db = dir.path().join(format!("flip-{round}.db"));
        std::fs::write(&db, &damaged).unwrap();
        let id = &ids[round % ids.len()];
        for args in [
            &["list"][..],
            &["list", "--json"],
            &["show", id],
            &["context", id],
            &["stats"],
            &["export", "--skip-damaged"],
        ] {
            let o = run_bounded(&db, args);
            let what = format!("round {round} {args:?}");
            no_panic(&o, &what);
            match o.status.code() {
                Some(0) | Some(3) => fine += 1,
                Some(1) => {
                    refused += 1;
                    // One clear line, naming the file (warnings may come
                    // first, one line each).
                    let err = stderr(&o);
                    let last = err.lines().last().unwrap_or("");
                    assert!(last.starts_with("error: "), "{what}: {err}");
                    assert!(
                        err.lines()
                            .all(|l| l.starts_with("error: ") || l.starts_with("warning: ")),
                        "{what}: {err}"
                    );
                    assert!(last.contains(&format!("flip-{round}.db")), "{what}: {err}");
                }
                other => panic!("{what}: exit {other:?}: {}", stderr(&o)),
            }
        }
        std::fs::remove_file(&db).unwrap();
    }
    // The flips hit both data that still reads and structure that does not.
    assert!(fine > 0 && refused > 0, "{fine} read, {refused} refused");
}
