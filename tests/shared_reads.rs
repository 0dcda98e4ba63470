//! Reading a database one may not write (issue 18, defect 13): `watch` runs
//! as root (or a service user) in a directory only it may write; its owner
//! shares reading through the database's mode (`chmod 644`, or `640` and a
//! group). Another user then runs `list`, `show`, `context`, `export` and
//! `stats` while the recorder writes and after it stopped, and no file is
//! left beside the database readable by more people than the database is.
//!
//! Needs root and the user `ir-other` (created by `.ci/run`): elsewhere the
//! tests say why and return, except under `CI=true`, where they fail.

// `common` and `real` each include common/skip.rs (its skip list is per module).
#[allow(clippy::duplicate_mod)]
mod common;
mod real;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::bin::*;
use common::{Rig, small_config, t};
use incident_recorder::{Error, IncidentRecorder, Metrics, Store, Trigger, WindowFilter};
use serde_json::Value;

/// The other user's gid, if the test can run the binary as them.
fn other_user() -> Option<u32> {
    common::skip::other_user("the shared-read test", Some(BIN)).map(|(_, gid)| gid)
}

/// Runs the binary as `ir-other`.
fn as_other(db: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "ir-other", "--", BIN, "--db"])
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// `<db><suffix>`.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

/// A database of root's with one closed window, in a directory only root
/// may write, shared as `mode` with group `gid`.
fn shared_database(mode_bits: u32, gid: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("incidents.db");
    let lines: Vec<String> = (0..20)
        .map(|s| {
            format!(
                r#"{{"type":"sample","resource":"h","ts":{},"metrics":{{"cpu":{s}}}}}"#,
                common::T0 + s * 5000
            )
        })
        .chain([format!(
            r#"{{"type":"trigger","resource":"h","ts":{}}}"#,
            common::T0 + 50_000
        )])
        .collect();
    let o = run_with_stdin(&db, &["ingest", "-", "--finish"], Some(&lines.join("\n")));
    assert!(o.status.success(), "{}", stderr(&o));
    // Closed cleanly: a connection closing last deletes the -wal and -shm.
    // (The binary's own last connection can close on r2d2's thread after
    // the process has exited, on a loaded machine; then they stay, made
    // while the database was still 0600, and this setup is not the
    // "stopped, never watched" case it means to be.)
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::os::unix::fs::chown(&db, None, Some(gid)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(mode_bits)).unwrap();
    (dir, db)
}

/// Every read command, as `ir-other`; returns the windows listed.
fn read_everything(db: &Path) -> Vec<Value> {
    let o = as_other(db, &["list", "--json"]);
    assert!(o.status.success(), "list: {}", stderr(&o));
    let windows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!windows.is_empty());
    for w in &windows {
        let id = w["id"].as_str().unwrap();
        for args in [
            vec!["show", id],
            vec!["show", id, "--json"],
            vec!["context", id],
        ] {
            let o = as_other(db, &args);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
            assert!(stdout(&o).contains(id), "{args:?}: {}", stdout(&o));
        }
    }
    let o = as_other(db, &["list"]);
    assert!(o.status.success(), "list: {}", stderr(&o));
    let o = as_other(db, &["export"]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    let export: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(export["windows"].as_array().unwrap().len(), windows.len());
    let o = as_other(db, &["stats", "--json"]);
    assert!(o.status.success(), "stats: {}", stderr(&o));
    let stats: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The lock stays private to the recorder's user: ir-other cannot tell.
    assert_eq!(stats["recorder_running"], Value::Null, "{stats}");
    let o = as_other(db, &["stats"]);
    assert!(stdout(&o).contains("recorder   unknown"), "{}", stdout(&o));
    windows
}

/// The files beside the database: none more open than the database, the
/// lock private.
fn assert_companions_follow(db: &Path) {
    let db_mode = mode(db);
    let dir = db.parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let m = mode(&path);
        if name.ends_with(".lock") {
            assert_eq!(m, 0o600, "{name}");
        } else if name != "incidents.db" {
            assert_eq!(m & !db_mode, 0, "{name} is {m:o}, the database {db_mode:o}");
            assert_eq!(m & 0o022, 0, "{name} is {m:o}");
        }
    }
}

/// The files in the database's directory.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The whole story for a database shared as `mode_bits` with group `gid`.
fn another_user_reads(mode_bits: u32, gid: u32) {
    let (dir, db) = shared_database(mode_bits, gid);
    // Stopped, never watched: only the database and its lock are there.
    assert_eq!(read_everything(&db).len(), 1);

    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("watch.log");
    let mut watch = real::Running::start(
        Path::new(BIN),
        &[
            "--db".into(),
            db.display().to_string(),
            "watch".into(),
            "--interval".into(),
            "200ms".into(),
            "--trigger-now".into(),
            "--rule".into(),
            "memory>100".into(),
        ],
        log.clone(),
    );
    real::wait_for(
        Duration::from_secs(30),
        "the window of --trigger-now",
        || {
            watch.assert_running();
            let o = as_other(&db, &["list", "--json", "--status", "recording"]);
            let listed: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
            (o.status.success() && listed.len() == 1).then_some(())
        },
    );
    // While it writes: the log and its index are there, as readable as
    // the database (and in its group), never more.
    for companion in ["-wal", "-shm"] {
        let path = beside(&db, companion);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(mode(&path), mode_bits, "incidents.db{companion}");
        assert_eq!(meta.gid(), gid, "incidents.db{companion}");
    }
    assert_companions_follow(&db);
    let windows = read_everything(&db);
    assert_eq!(windows.len(), 2);
    let recording = windows
        .iter()
        .find(|w| w["status"] == "recording")
        .expect("the recording window is seen");
    // It sees what the recorder commits: the window grows.
    let id = recording["id"].as_str().unwrap().to_owned();
    let points = |db: &Path| {
        let o = as_other(db, &["show", &id, "--json"]);
        let w: Value = serde_json::from_slice(&o.stdout).unwrap();
        w["data_points"].as_array().unwrap().len()
    };
    let before = points(&db);
    real::wait_for(Duration::from_secs(30), "more points", || {
        (points(&db) > before).then_some(())
    });
    assert_companions_follow(&db);

    // SAFETY: the child's pid; SIGINT stops `watch` cleanly.
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGINT) };
    let status = watch.child.wait().unwrap();
    assert!(status.success(), "{}", watch.output());
    // Stopped: the recorder removed its log and index; reading needs
    // neither and creates nothing, as ir-other or as the owner.
    assert_eq!(names(dir.path()), ["incidents.db", "incidents.db.lock"]);
    assert_eq!(read_everything(&db).len(), 2);
    let id = windows[0]["id"].as_str().unwrap();
    for args in [
        vec!["list"],
        vec!["show", id],
        vec!["stats"],
        vec!["export"],
    ] {
        ok(&db, &args);
    }
    assert_eq!(names(dir.path()), ["incidents.db", "incidents.db.lock"]);
    assert_eq!(mode(&db), mode_bits, "the owner's choice is kept");
}

#[test]
fn another_user_reads_a_world_readable_database_while_it_is_recorded_and_after() {
    if other_user().is_none() {
        return;
    }
    another_user_reads(0o644, 0);
}

#[test]
fn a_group_reads_a_group_readable_database_while_it_is_recorded_and_after() {
    let Some(gid) = other_user() else { return };
    another_user_reads(0o640, gid);
}

#[test]
fn a_private_database_stays_private_to_another_user() {
    if other_user().is_none() {
        return;
    }
    let (dir, db) = shared_database(0o600, 0);
    let o = as_other(&db, &["list"]);
    fails(&o, 1, "Permission denied");
    assert_eq!(names(dir.path()), ["incidents.db", "incidents.db.lock"]);
}

/// Without root: what the binary relies on, through the library. A store
/// opened while nothing writes reads the file alone and creates nothing;
/// when a recorder starts, its queries say so rather than read a file that
/// may change under them; opened again, it follows the recorder.
#[test]
fn a_store_read_while_nothing_writes_creates_nothing_and_says_when_a_writer_starts() {
    let rig = Rig::file(small_config());
    let id = rig.start("a", Trigger::manual());
    rig.recorder
        .push_sample("a", t(0), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    rig.recorder.stop_recording(&id).unwrap();
    let Rig {
        recorder,
        dir,
        config,
        ..
    } = rig;
    drop(recorder);
    let (dir, path) = (dir.unwrap(), config.db_path.clone().unwrap());
    let files = ["incidents.db", "incidents.db.lock"];
    assert_eq!(names(dir.path()), files);
    let store = Store::open_read_only(&path).unwrap();
    let all = WindowFilter::default();
    assert_eq!(store.windows(&all).unwrap().len(), 1);
    assert_eq!(store.recorder_presence().unwrap(), Some(false));
    assert_eq!(names(dir.path()), files, "reading created nothing");

    let recorder = IncidentRecorder::open(config).unwrap();
    let b = recorder.start_recording("b", Trigger::manual()).unwrap();
    let err = store.windows(&all).unwrap_err();
    assert!(matches!(err, Error::WriterStarted { .. }), "{err}");
    assert!(err.to_string().contains("open it again"), "{err}");
    let store = Store::open_read_only(&path).unwrap();
    assert!(store.window(b.as_str()).unwrap().is_some());
    assert_eq!(store.recorder_presence().unwrap(), Some(true));
}
