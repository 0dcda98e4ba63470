//! Another program holding the database's write lock (a `sqlite3` shell in
//! a transaction, a long import) does not stop `watch` sampling: ticks keep
//! their schedule, the samples wait in memory and land once it lets go.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::*;

#[test]
fn a_write_lock_held_for_fifteen_seconds_loses_no_sample() {
    if Command::new("sqlite3").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs sqlite3"
        );
        eprintln!("skipped: no sqlite3 command");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let watch = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args([
            "watch",
            "--interval",
            "200ms",
            "--for",
            "22s",
            "--trigger-now",
            "--max-points",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while json_or_null(&db)["summary"]["data_points"]
        .as_u64()
        .unwrap_or(0)
        < 5
    {
        assert!(Instant::now() < deadline, "watch did not start recording");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A shell takes the write lock and holds it for 15 s.
    let mut shell = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = shell.stdin.take().unwrap();
    input.write_all(b"BEGIN IMMEDIATE;\n").unwrap();
    input.flush().unwrap();
    let held_from = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    input.write_all(b"COMMIT;\n.quit\n").unwrap();
    drop(input);
    shell.wait().unwrap();
    let held = held_from.elapsed();
    let out = watch.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let w = json_or_null(&db);
    let times: Vec<i64> = w["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            incident_recorder::Timestamp::parse_rfc3339(p["timestamp"].as_str().unwrap())
                .unwrap()
                .as_unix_ms()
        })
        .collect();
    let span = times.last().unwrap() - times.first().unwrap();
    let expected = span / 200 + 1;
    let got = times.len() as i64;
    assert!(
        got * 100 >= expected * 99,
        "{got} of {expected} samples over {span} ms with the lock held {held:?}"
    );
    // And the lock was really held across those samples: the recorder
    // said its commits waited.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("commit failed; the points wait in memory"),
        "{err}"
    );
}

/// The window `watch --trigger-now` opened, with its points (or null).
fn json_or_null(db: &std::path::Path) -> serde_json::Value {
    let o = run(db, &["list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let Some(id) = list[0]["id"].as_str() else {
        return serde_json::Value::Null;
    };
    let o = run(db, &["show", id, "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}
