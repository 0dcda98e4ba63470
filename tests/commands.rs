//! The commands people reach for (issue 22, item 4), through the
//! `incident-recorder` binary as a user runs them: `delete` (nothing of a
//! deleted window is left, other windows untouched, a window a running
//! recorder records refused), `note` (shown, exported and imported back),
//! `export --format csv` (parsed by Python's csv module: every value),
//! `show --metric REGEX`, `completions SHELL` and `man`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::*;
use serde_json::Value;

/// Ingests the fixture: two closed windows, vm-101 (alert, cpu and memory)
/// and vm-102 (manual, cpu and load1). Returns their ids (vm-101's first).
fn two_windows(db: &Path) -> (String, String) {
    let file = fixture("ingest.jsonl");
    ok(
        db,
        &[
            "ingest",
            "--pre",
            "30s",
            "--post",
            "60s",
            file.to_str().unwrap(),
        ],
    );
    let list = json(db, &["list", "--json"]);
    let id = |resource: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|w| w["resource_id"] == resource)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (id("vm-101"), id("vm-102"))
}

/// Rows of every table that names a window by `window_id` (the journal
/// included), for the window with public id `id`; and its rows in the view.
fn rows_of(db: &Path, id: &str) -> BTreeMap<String, i64> {
    let conn = common::sql(db);
    let row: Option<i64> = conn
        .query_row("SELECT id FROM windows WHERE public_id = ?1", [id], |r| {
            r.get(0)
        })
        .ok();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c
             WHERE m.type = 'table' AND c.name = 'window_id'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = BTreeMap::new();
    for t in tables {
        // Only the journal's window_id is not an integer row id.
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM \"{t}\" WHERE window_id = ?1"),
                [row.unwrap_or(-1)],
                |r| r.get(0),
            )
            .unwrap();
        rows.insert(t, n);
    }
    rows.insert(
        "windows".into(),
        common::count(
            &conn,
            &format!("SELECT count(*) FROM windows WHERE public_id = '{id}'"),
        ),
    );
    rows.insert(
        "incident_samples".into(),
        common::count(
            &conn,
            &format!("SELECT count(*) FROM incident_samples WHERE window_id = '{id}'"),
        ),
    );
    rows
}

/// Nothing dangles: foreign keys hold (every `samples` row in a series of
/// a window, every journal row of a window), and every note mark to a note.
fn nothing_dangles(db: &Path) {
    let conn = common::sql(db);
    let broken: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(broken.is_empty(), "foreign_key_check: {broken:?}");
    let orphans = |sql: &str| common::count(&conn, sql);
    assert_eq!(
        orphans(
            "SELECT count(*) FROM samples v WHERE NOT EXISTS
             (SELECT 1 FROM series s WHERE s.id = v.series_id)"
        ),
        0,
        "samples of no series"
    );
    assert_eq!(
        orphans(
            "SELECT count(*) FROM recent_points p
             WHERE NOT EXISTS (SELECT 1 FROM windows w WHERE w.id = p.window_id)"
        ),
        0,
        "journal rows of no window"
    );
}

fn all_zero(rows: &BTreeMap<String, i64>) -> bool {
    rows.values().all(|&n| n == 0)
}

#[test]
fn delete_removes_a_window_and_everything_of_it_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (gone, kept) = two_windows(&db);
    ok(
        &db,
        &["note", &gone, "--author", "ops", "rebooted", "vm-101"],
    );
    ok(&db, &["note", &kept, "--author", "ops", "kept"]);
    let before_gone = rows_of(&db, &gone);
    assert!(before_gone["series"] > 0);
    assert!(before_gone["window_notes"] == 1 && before_gone["incident_samples"] == 48);
    let before_kept = rows_of(&db, &kept);
    let shown_kept = json(&db, &["show", &kept, "--json"]);
    let values_before = common::count(&common::sql(&db), "SELECT count(*) FROM samples");

    // An unknown id among the ids deletes nothing.
    let o = run(&db, &["delete", &gone, "iw-no-such-window"]);
    fails(&o, 1, "no incident window with id \"iw-no-such-window\"");
    assert_eq!(rows_of(&db, &gone), before_gone);

    let out = ok(&db, &["delete", &gone]);
    assert!(out.starts_with("deleted 1 windows (24 points)"), "{out}");
    let after = rows_of(&db, &gone);
    assert!(
        all_zero(&after),
        "rows left of the deleted window: {after:?}"
    );
    nothing_dangles(&db);
    // Exactly its 48 values went, and nothing of the other window.
    let values_after = common::count(&common::sql(&db), "SELECT count(*) FROM samples");
    assert_eq!(values_before - values_after, 48);
    assert_eq!(rows_of(&db, &kept), before_kept);
    assert_eq!(json(&db, &["show", &kept, "--json"]), shown_kept);

    // Once gone, it is unknown.
    fails(&run(&db, &["delete", &gone]), 1, "no incident window");
}

#[test]
fn delete_by_resource_and_time_takes_only_closed_windows_that_ended_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let (vm101, vm102) = two_windows(&db);
    // Both ended after 10:00: nothing goes.
    let r = json(
        &db,
        &["delete", "--before", "2026-11-24T10:00:00Z", "--json"],
    );
    assert_eq!(r["deleted_windows"], Value::Array(vec![]));
    let r = json(
        &db,
        &[
            "delete",
            "--resource",
            "vm-102",
            "--before",
            "2026-11-25T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(r["deleted_windows"], serde_json::json!([vm102]));
    assert_eq!(r["deleted_points"], 6);
    assert!(all_zero(&rows_of(&db, &vm102)));
    assert!(rows_of(&db, &vm101)["incident_samples"] > 0);
    nothing_dangles(&db);
    // Ids and a selection do not mix; a bad time is a clear error.
    let o = run(&db, &["delete", &vm101, "--resource", "vm-101"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    fails(
        &run(&db, &["delete", "--before", "yesterday"]),
        1,
        "invalid --before",
    );
    let o = run(&db, &["delete"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_recording_window_is_deleted_with_its_journal_when_no_recorder_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    // A window left recording by an ingest (no stop, no --finish).
    let mut lines = String::new();
    for k in 0..20 {
        let ts = common::T0 + k * 1000;
        lines += &format!(
            "{{\"type\":\"sample\",\"resource\":\"db-02\",\"ts\":{ts},\"metrics\":{{\"cpu\":{k}}}}}\n"
        );
        if k == 10 {
            lines += &format!("{{\"type\":\"trigger\",\"resource\":\"db-02\",\"ts\":{ts}}}\n");
        }
    }
    let o = run_with_stdin(&db, &["ingest", "--post", "1h", "-"], Some(&lines));
    assert!(o.status.success(), "{}", stderr(&o));
    let list = json(&db, &["list", "--json"]);
    assert_eq!(list[0]["status"], "recording");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let before = rows_of(&db, &id);
    // Its points: sealed when the ingest stopped (a stop seals the
    // journal), or still in the journal after a crash.
    assert!(before["series"] + before["recent_points"] > 0, "{before:?}");
    let out = ok(&db, &["delete", &id]);
    assert!(out.starts_with("deleted 1 windows (20 points)"), "{out}");
    assert!(all_zero(&rows_of(&db, &id)));
    nothing_dangles(&db);
    assert_eq!(
        common::count(&common::sql(&db), "SELECT count(*) FROM recent_values"),
        0
    );
}

#[test]
fn a_window_a_running_recorder_records_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let mut watch = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["watch", "--for", "60s", "--interval", "1s", "--trigger-now"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let id = loop {
        assert!(started.elapsed() < Duration::from_secs(30), "no window");
        std::thread::sleep(Duration::from_millis(200));
        let o = run(&db, &["list", "--json"]);
        if !o.status.success() {
            continue;
        }
        let list: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        if let Some(id) = list[0]["id"].as_str() {
            break id.to_owned();
        }
    };
    let o = run(&db, &["delete", &id]);
    let _ = Command::new("kill").arg(watch.id().to_string()).status();
    watch.wait().unwrap();
    fails(&o, 1, "still recording and a recorder is running");
    // Still there, still whole; deletable now that no recorder runs.
    let shown = json(&db, &["show", &id, "--json"]);
    assert_eq!(shown["id"], id.as_str());
    ok(&db, &["delete", &id]);
    assert!(all_zero(&rows_of(&db, &id)));
    nothing_dangles(&db);
}

#[test]
fn notes_are_shown_and_round_trip_through_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let (id, _) = two_windows(&db);
    ok(
        &db,
        &[
            "note",
            &id,
            "--author",
            "alice",
            "--at",
            "2026-11-24T10:01:40Z",
            "rebooted db-02 at 10:40",
        ],
    );
    let out = ok(&db, &["note", &id, "cache", "flushed"]);
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    assert!(out.contains(&format!("by {}", me.trim())), "{out}");
    // The same note again adds nothing.
    let again = ok(
        &db,
        &[
            "note",
            &id,
            "--author",
            "alice",
            "--at",
            "2026-11-24T10:01:40Z",
            "rebooted db-02 at 10:40",
        ],
    );
    assert!(again.contains("already has this note"), "{again}");

    let shown = json(&db, &["show", &id, "--json"]);
    let notes = shown["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["author"], "alice");
    assert_eq!(notes[0]["text"], "rebooted db-02 at 10:40");
    assert_eq!(notes[0]["at"], "2026-11-24T10:01:40.000Z");
    assert_eq!(notes[1]["text"], "cache flushed");
    let text = ok(&db, &["show", &id]);
    assert!(
        text.contains("notes\n  2026-11-24 10:01:40Z alice: rebooted db-02 at 10:40"),
        "{text}"
    );
    let context = ok(&db, &["context", &id]);
    assert!(
        context.contains("### Notes\n- 2026-11-24T10:01:40.000Z alice: rebooted db-02 at 10:40"),
        "{context}"
    );
    let list = json(&db, &["list", "--json"]);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id.as_str())
        .unwrap();
    assert_eq!(listed["notes"], shown["notes"]);

    // Export, import into an empty database: the same notes.
    let file = dir.path().join("export.json");
    ok(&db, &["export", "-o", file.to_str().unwrap()]);
    let copy = dir.path().join("copy.db");
    ok(&copy, &["import", file.to_str().unwrap()]);
    assert_eq!(
        json(&copy, &["show", &id, "--json"])["notes"],
        shown["notes"]
    );
    // A note written on the copy, imported back: the original gets it, once.
    ok(&copy, &["note", &id, "--author", "bob", "from the copy"]);
    let back = dir.path().join("back.json");
    ok(&copy, &["export", "-o", back.to_str().unwrap()]);
    ok(&db, &["import", back.to_str().unwrap()]);
    ok(&db, &["import", back.to_str().unwrap()]);
    let merged = json(&db, &["show", &id, "--json"]);
    assert_eq!(merged["notes"].as_array().unwrap().len(), 3);

    // Refused: control characters, oversize, an unknown window; nothing added.
    fails(
        &run(&db, &["note", &id, "a\u{1b}[2Jb"]),
        1,
        "control character",
    );
    fails(
        &run(&db, &["note", &id, &"x".repeat(4097)]),
        1,
        "4096-byte limit",
    );
    fails(
        &run(&db, &["note", "iw-nope", "text"]),
        1,
        "no incident window",
    );
    fails(&run(&db, &["note", &id, "--author", "", "x"]), 1, "author");
    assert_eq!(
        json(&db, &["show", &id, "--json"])["notes"],
        merged["notes"]
    );
    // Deleting the window deletes its notes.
    ok(&db, &["delete", &id]);
    assert_eq!(
        common::count(
            &common::sql(&db),
            "SELECT count(*) FROM window_notes w WHERE NOT EXISTS (SELECT 1 FROM windows x WHERE x.id = w.window_id)"
        ),
        0
    );
    nothing_dangles(&db);
}

#[test]
fn csv_export_parses_with_pythons_csv_module_and_has_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    two_windows(&db);
    // Names that need quoting: a comma and quotes.
    let mut lines = String::new();
    for k in 0..6 {
        let ts = common::T0 + 600_000 + k * 1000;
        lines += &format!(
            "{{\"type\":\"sample\",\"resource\":\"db,02 \\\"main\\\"\",\"ts\":{ts},\"metrics\":{{\"node_filesystem_avail_bytes{{mountpoint=\\\"/\\\",fstype=\\\"ext4\\\"}}\":{},\"cpu\":-0.000123}}}}\n",
            1.5e12 + k as f64
        );
        if k == 2 {
            lines += &format!(
                "{{\"type\":\"trigger\",\"resource\":\"db,02 \\\"main\\\"\",\"ts\":{ts}}}\n"
            );
        }
    }
    lines += "{\"type\":\"stop\",\"resource\":\"db,02 \\\"main\\\"\"}\n";
    let o = run_with_stdin(&db, &["ingest", "--pre", "1m", "-"], Some(&lines));
    assert!(o.status.success(), "{}", stderr(&o));

    let file = dir.path().join("values.csv");
    ok(
        &db,
        &["export", "--format", "csv", "-o", file.to_str().unwrap()],
    );
    let Some(python) = which("python3") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is needed"
        );
        eprintln!("skipping: no python3");
        return;
    };
    let script = "import csv, json, sys\n\
rows = list(csv.reader(open(sys.argv[1], newline='')))\n\
assert rows[0] == ['window', 'resource', 'ts', 'ts_ms', 'metric', 'value'], rows[0]\n\
print(json.dumps([[r[0], r[1], r[2], int(r[3]), r[4], float(r[5])] for r in rows[1:]]))\n";
    let out = Command::new(python)
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, String, String, i64, String, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    let conn = common::sql(&db);
    let mut expected: Vec<(String, String, String, i64, String, f64)> = conn
        .prepare("SELECT window_id, resource_id, ts, ts_ms, metric, value FROM incident_samples")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(expected.len(), 48 + 12 + 12);
    let mut got = parsed.clone();
    let key = |a: &(String, String, String, i64, String, f64)| (a.0.clone(), a.3, a.4.clone());
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got, expected);
    assert!(got.iter().any(|r| r.1 == "db,02 \"main\""
        && r.4 == "node_filesystem_avail_bytes{mountpoint=\"/\",fstype=\"ext4\"}"));
    // CSV is for export only.
    fails(
        &run(&db, &["import", "--format", "csv", file.to_str().unwrap()]),
        1,
        "export only",
    );
}

#[test]
fn show_metric_keeps_only_the_matching_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (id, _) = two_windows(&db);
    let shown = json(&db, &["show", &id, "--metric", "^cpu$", "--json"]);
    let summary = &shown["summary"];
    for map in [
        "peaks", "lows", "averages", "changes", "samples", "p50", "p95", "p99",
    ] {
        let keys: Vec<&String> = summary[map].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cpu"], "{map}");
    }
    let points = shown["data_points"].as_array().unwrap();
    assert_eq!(points.len(), 24);
    assert!(
        points
            .iter()
            .all(|p| p["metrics"].as_object().unwrap().keys().eq(["cpu"]))
    );
    let text = ok(&db, &["show", &id, "--metric", "cpu"]);
    assert!(text.contains("\ncpu "), "{text}");
    assert!(!text.contains("memory"), "{text}");
    // The whole window still shows both.
    assert!(ok(&db, &["show", &id]).contains("memory"));

    let o = run(&db, &["show", &id, "--metric", "(cpu"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("invalid regular expression"), "{err}");
    fails(
        &run(&db, &["show", &id, "--metric", "^disk"]),
        1,
        "no metric of window",
    );
}

/// The subcommands this work added and the ones a user starts with.
const SUBCOMMANDS: [&str; 16] = [
    "watch",
    "ingest",
    "trigger",
    "list",
    "show",
    "context",
    "export",
    "import",
    "prune",
    "stats",
    "demo",
    "push",
    "delete",
    "note",
    "completions",
    "man",
];

#[test]
fn completions_and_man_pages_come_from_the_grammar() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused.db");
    let bash = ok(&db, &["completions", "bash"]);
    for sub in SUBCOMMANDS {
        assert!(
            bash.contains(sub),
            "{sub} missing from the bash completions"
        );
    }
    assert!(bash.contains("--metric") && bash.contains("--before"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = ok(&db, &["completions", shell]);
        assert!(script.contains("delete"), "{shell}");
    }
    let o = run(&db, &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!db.exists(), "no database is created for these");

    let page = ok(&db, &["man"]);
    assert!(
        page.contains(".TH incident-recorder 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "{sub} missing from the man page");
    }
    let pages = dir.path().join("man1");
    ok(&db, &["man", "--dir", pages.to_str().unwrap()]);
    for sub in ["delete", "note", "export", "completions"] {
        let file = pages.join(format!("incident-recorder-{sub}.1"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!(".TH incident-recorder-{sub} 1")),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // `man -l` renders it, where man is installed.
    if let Some(man) = which("man") {
        let main = pages.join("incident-recorder.1");
        let out = Command::new(man)
            .args(["-l", main.to_str().unwrap()])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("incident-recorder"), "{text}");
        assert!(text.contains("delete"), "{text}");
    } else {
        eprintln!("man not installed: checked the roff headers only");
    }
}

/// A program on the PATH.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
