//! Hostile files (DESIGN.md, "Files, limits and hostile input"): in a
//! sticky, world-writable directory where another user plants links and
//! files, the recorder never writes through them, never leaves history
//! readable by others, and never blocks on a FIFO or device.
//!
//! The attacks need root and a second user (`ir-other`: `.ci/run` creates
//! it, and so do these tests as root), to plant files as that user; without
//! root these tests say visibly that they did not run (`common/skip.rs`),
//! and fail under `CI=true`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bin::*;

/// The other user's uid and gid, if the test can act as them: as root,
/// `ir-other` is created if missing; otherwise the test is skipped, visibly
/// (see `common/skip.rs`).
fn other_user() -> Option<(u32, u32)> {
    let found = if common::skip::is_root() {
        common::skip::test_user("ir-other")
    } else {
        Err("needs root, to plant files as a second user".to_owned())
    };
    found
        .map_err(|why| common::skip::skip(&format!("hostile-file test cannot run: {why}")))
        .ok()
}

/// A sticky, world-writable directory, like /tmp.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// A file of the other user's, with `mode`.
fn plant_file(path: &Path, (uid, gid): (u32, u32), mode: u32, content: &[u8]) {
    std::fs::write(path, content).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A symbolic link of the other user's.
fn plant_link(target: &Path, link: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::symlink(target, link).unwrap();
    std::os::unix::fs::lchown(link, Some(uid), Some(gid)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs the binary, failing the test if it takes more than `limit`.
fn run_bounded(db: &Path, args: &[&str], limit: Duration) -> Output {
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
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("{args:?} on {} hung for {limit:?}", db.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A database with one closed window, made by the binary.
fn history(db: &Path) {
    let lines = (0..20)
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
        .collect::<Vec<_>>()
        .join("\n");
    let o = run_with_stdin(db, &["ingest", "-", "--finish"], Some(&lines));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn export_never_writes_through_planted_links_or_into_planted_files() {
    let Some(other) = other_user() else { return };
    let dir = shared_dir();
    let db = dir.path().join("incidents.db");
    history(&db);
    let victim = dir.path().join("passwd-copy");
    plant_file(&victim, other, 0o644, b"root:x:0:0\n");
    let out = dir.path().join("out.json");
    // The names an export used to write first: a link and a loose file.
    plant_link(&victim, &dir.path().join("out.json.partial"), other);
    let o = run(&db, &["export", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"root:x:0:0\n");
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!((meta.uid(), mode(&out)), (0, 0o600));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("\"windows\"")
    );

    // The output name itself planted as the other user's link, or file.
    let out2 = dir.path().join("out2.json");
    plant_link(&victim, &out2, other);
    fails(
        &run(&db, &["export", "-o", out2.to_str().unwrap()]),
        1,
        "it is a symbolic link owned by another user",
    );
    let out3 = dir.path().join("out3.json");
    plant_file(&out3, other, 0o666, b"");
    fails(
        &run(&db, &["export", "-o", out3.to_str().unwrap()]),
        1,
        "it belongs to another user",
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"root:x:0:0\n");
    assert_eq!(std::fs::read(&out3).unwrap(), b"");
}

#[test]
fn a_planted_lock_link_or_database_file_is_refused_and_nothing_is_created_through_it() {
    let Some(other) = other_user() else { return };
    let dir = shared_dir();
    let db = dir.path().join("incidents.db");
    let target = dir.path().join("created-through-the-link");
    plant_link(&target, &dir.path().join("incidents.db.lock"), other);
    fails(
        &run_bounded(&db, &["watch", "--for", "1s"], Duration::from_secs(20)),
        1,
        "incidents.db.lock: it is a symbolic link owned by another user",
    );
    assert!(!target.exists(), "nothing created through the link");

    // A database pre-created by someone else, readable by all.
    let theirs = dir.path().join("theirs.db");
    plant_file(&theirs, other, 0o666, b"");
    fails(
        &run_bounded(&theirs, &["watch", "--for", "1s"], Duration::from_secs(20)),
        1,
        "it belongs to another user",
    );
    // A link to a missing file, planted where the database goes.
    let dangling = dir.path().join("dangling.db");
    plant_link(&dir.path().join("nowhere.db"), &dangling, other);
    fails(
        &run(&dangling, &["ingest", "-"]),
        1,
        "it is a symbolic link owned by another user",
    );
    assert!(!dir.path().join("nowhere.db").exists());
}

/// Runs `watch` on `db` for a few seconds and returns, while it runs, the
/// modes of the database, its `-wal` and `-shm`, and its lock.
fn modes_while_watching(db: &Path) -> [u32; 4] {
    let mut watch = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args([
            "watch",
            "--for",
            "3s",
            "--interval",
            "200ms",
            "--trigger-now",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let beside = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    let (wal, shm) = (beside("-wal"), beside("-shm"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shm.exists() {
        assert!(Instant::now() < deadline, "no -shm appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let modes = [mode(db), mode(&wal), mode(&shm), mode(&beside(".lock"))];
    assert!(watch.wait().unwrap().success());
    modes
}

/// The rule (src/files.rs): nothing is writable by others; whether others
/// may read is the owner's choice, made on the database, and its `-wal` and
/// `-shm` follow it, looser or tighter; the lock stays private. (This test
/// was "loose files are tightened to 0600": since issue 18 a database the
/// owner made readable stays readable, so others can run `list`.)
#[test]
fn the_users_own_loose_files_lose_write_bits_and_companions_follow_the_database() {
    if other_user().is_none() {
        return;
    }
    let dir = shared_dir();
    let db = dir.path().join("incidents.db");
    // `touch incidents.db` under a umask of 0, and a -wal of its own mode.
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o622)).unwrap();
    assert_eq!(modes_while_watching(&db), [0o644, 0o644, 0o644, 0o600]);
    // Made private again, the database takes its companions with it: a
    // -wal left readable by an earlier run is tightened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(modes_while_watching(&db), [0o600; 4]);
}

#[test]
fn a_log_planted_beside_a_database_is_refused_by_readers_and_the_recorder() {
    let Some(other) = other_user() else { return };
    let dir = shared_dir();
    let db = dir.path().join("incidents.db");
    history(&db);
    for companion in ["-wal", "-shm"] {
        let planted = PathBuf::from(format!("{}{companion}", db.display()));
        plant_file(&planted, other, 0o666, b"");
        for args in [&["list"][..], &["stats"], &["ingest", "-"]] {
            fails(
                &run_bounded(&db, args, Duration::from_secs(20)),
                1,
                &format!("incidents.db{companion}: it belongs to another user"),
            );
        }
        assert_eq!(
            std::fs::read(&planted).unwrap(),
            b"",
            "nothing written into it"
        );
        std::fs::remove_file(&planted).unwrap();
    }
    assert!(run(&db, &["list"]).status.success());
}

#[test]
fn a_fifo_device_or_directory_as_database_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.db");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in [&["list"][..], &["stats"], &["ingest", "-"], &["export"]] {
        let o = run_bounded(&fifo, args, Duration::from_secs(10));
        fails(&o, 1, "fifo.db: it is a FIFO, not a regular file");
    }
    let o = run_bounded(
        Path::new("/dev/null"),
        &["ingest", "-"],
        Duration::from_secs(10),
    );
    fails(&o, 1, "refusing to use /dev/null");
    assert!(!Path::new("/dev/null-journal").exists());
    assert!(!Path::new("/dev/null-wal").exists());
}

#[test]
fn a_symlinked_wal_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    history(&db);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").unwrap();
    let wal = dir.path().join("incidents.db-wal");
    let _ = std::fs::remove_file(&wal);
    std::os::unix::fs::symlink(&elsewhere, &wal).unwrap();
    for args in [&["list"][..], &["ingest", "-"]] {
        fails(
            &run(&db, args),
            1,
            "incidents.db-wal: it is a symbolic link; the database's companion files must be plain files",
        );
    }
}
