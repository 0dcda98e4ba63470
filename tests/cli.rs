//! The `incident-recorder` binary, run as a user runs it, on temporary
//! databases: recording this host, ingesting and transferring fixtures, and
//! every error case printing one clear line.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::*;
use serde_json::Value;

/// The database's random tag, which its window ids carry.
fn db_tag(db: &Path) -> String {
    let tag: String = common::sql(db)
        .query_row("SELECT tag FROM store_info", [], |r| r.get(0))
        .unwrap();
    assert!(
        tag.len() == 8 && tag.chars().all(|c| c.is_ascii_hexdigit()),
        "{tag}"
    );
    tag
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

const WINDOW_OPTS: [&str; 4] = ["--pre", "30s", "--post", "60s"];

fn ingest_fixture(db: &Path) -> String {
    let file = fixture("ingest.jsonl");
    let mut args = vec!["ingest"];
    args.extend(WINDOW_OPTS);
    args.push(file.to_str().unwrap());
    ok(db, &args)
}

#[test]
fn watch_records_this_host_into_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.db");
    let started = Instant::now();
    let out = ok(
        &db,
        &["watch", "--for", "3s", "--interval", "1s", "--trigger-now"],
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(out.contains("opened on"), "{out}");
    assert!(out.contains("still recording"), "{out}");

    let list = json(&db, &["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let w = &list[0];
    assert_eq!(
        w["status"], "recording",
        "stays resumable after a clean stop"
    );
    assert_eq!(w["trigger_type"], "manual");
    let id = w["id"].as_str().unwrap();
    let shown = json(&db, &["show", id, "--json"]);
    let points = shown["data_points"].as_array().unwrap();
    assert!(
        points.len() >= 3,
        "a sample at start and one per second: {}",
        points.len()
    );
    assert!(
        points.iter().all(|p| p["metrics"]["memory"].is_number()),
        "{shown}"
    );
    let rates = points
        .iter()
        .filter(|p| p["metrics"]["net_rx_bytes_per_s"].is_number());
    assert!(
        rates.count() >= 2,
        "rates from the second sample on: {shown}"
    );
    let text = ok(&db, &["show", id]);
    assert!(text.contains("summary (so far)"), "{text}");
    assert!(text.contains("memory"), "{text}");
}

#[test]
fn trigger_reaches_a_running_watch_and_refuses_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    fails(&run(&db, &["trigger", "vm-1"]), 1, "no database at");

    let watch = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        // A rule that never fires, instead of the defaults: a busy or
        // nearly full test machine must not open an alert window first.
        .args([
            "watch",
            "--for",
            "6s",
            "--interval",
            "1s",
            "--rule",
            "memory>100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let running = || {
        let o = run(&db, &["stats", "--json"]);
        o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).unwrap()["recorder_running"] == true
    };
    while !running() {
        assert!(Instant::now() < deadline, "watch did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A resource the recorder does not monitor is refused, naming the ones it does.
    let host = incident_recorder::provider::host::HostProvider::new().unwrap();
    let host = host.resource_id().to_owned();
    let typo = run(&db, &["trigger", "vm-typo"]);
    fails(
        &typo,
        1,
        "resource \"vm-typo\" is not monitored by this recorder",
    );
    assert!(
        stderr(&typo).contains(&format!("{host:?}")),
        "{}",
        stderr(&typo)
    );
    // --json has the same shape whatever happens.
    let refused = run(&db, &["trigger", "vm-typo", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let refused: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(refused["status"], "refused");
    assert_eq!(refused["window_id"], Value::Null);
    assert!(refused["error"].as_str().unwrap().contains("not monitored"));
    let reply = json(
        &db,
        &[
            "trigger", &host, "--type", "focus", "--id", "user-7", "--json",
        ],
    );
    assert_eq!(reply["status"], "handled");
    assert_eq!(reply["error"], Value::Null);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&reply), keys(&refused));
    let id = reply["window_id"].as_str().unwrap().to_owned();
    let out = watch.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = json(&db, &["show", &id, "--json"]);
    assert_eq!(
        (w["resource_id"].as_str(), w["trigger_type"].as_str()),
        (Some(host.as_str()), Some("focus"))
    );
    assert_eq!(w["trigger_id"], "user-7");

    // The recorder has stopped: a request would never be picked up.
    fails(&run(&db, &["trigger", "vm-1"]), 1, "no recorder is running");
}

#[test]
fn ingesting_the_fixture_gives_exact_windows_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("in.db");
    let out = ingest_fixture(&db);
    assert!(out.contains("ingested 51 lines"), "{out}");
    assert!(
        out.contains("47 samples, 2 triggers (2 opened a window, 0 extended one, 0 already recorded), 1 resolves, 1 stops"),
        "{out}"
    );
    assert!(
        out.contains("windows: 2 opened; 2 closed; 0 recording"),
        "{out}"
    );

    let list = json(&db, &["list", "--json"]);
    // iw-<trigger time>-<the database's random tag>-<row id>
    let found = ids(&list);
    let tag = db_tag(&db);
    assert_eq!(
        found,
        [
            format!("iw-20261124100110-{tag}-2"),
            format!("iw-20261124100030-{tag}-1")
        ]
    );
    let (vm102, vm101) = (found[0].as_str(), found[1].as_str());

    // vm-101: alert at +30 s, resolved at +60 s: the window is held while
    // the alert fires and records --post (60 s) after it clears, so its
    // deadline is +120 s. 30 s of buffer (+5..+30) and samples until the
    // deadline; the sample at +125 s closes it at the deadline.
    let w = json(&db, &["show", vm101, "--json"]);
    assert_eq!(w["resource_name"], "web");
    assert_eq!(w["resource_type"], "vm");
    assert_eq!(w["status"], "complete");
    assert_eq!(w["trigger_time"], "2026-11-24T10:00:30.000Z");
    assert_eq!(w["start_time"], "2026-11-24T10:00:05.000Z");
    assert_eq!(w["end_time"], "2026-11-24T10:02:00.000Z");
    assert_eq!(w["triggers"][0]["resolved_at"], "2026-11-24T10:01:00.000Z");
    assert_eq!(w["data_points"].as_array().unwrap().len(), 24);
    assert_eq!(w["data_points"][6]["metadata"]["note"], "spike");
    let s = &w["summary"];
    assert_eq!(s["duration_ms"], 115_000);
    assert_eq!(s["data_points"], 24);
    assert_eq!(s["peaks"]["cpu"], 97.0);
    assert_eq!(s["lows"]["cpu"], 20.0);
    assert_eq!(s["changes"]["cpu"], 1.0);
    assert_eq!(s["p50"]["cpu"], 25.5);
    assert!((s["averages"]["cpu"].as_f64().unwrap() - 1031.0 / 24.0).abs() < 1e-9);
    assert!((s["p95"]["cpu"].as_f64().unwrap() - 95.85).abs() < 1e-9);
    assert_eq!(s["averages"]["memory"], 46.25);
    assert_eq!(s["changes"]["memory"], 11.5);

    // vm-102: manual trigger at +70 s (the line has no ts: the latest time),
    // buffer +50, +60, +70, then +80, +90, +100 and the stop at +100 s.
    let w = json(&db, &["show", vm102, "--json"]);
    assert_eq!(w["start_time"], "2026-11-24T10:00:50.000Z");
    assert_eq!(w["end_time"], "2026-11-24T10:01:40.000Z");
    let s = &w["summary"];
    assert_eq!(
        (s["data_points"].as_u64(), s["duration_ms"].as_u64()),
        (Some(6), Some(50_000))
    );
    assert_eq!(
        (s["lows"]["cpu"].as_f64(), s["peaks"]["cpu"].as_f64()),
        (Some(20.0), Some(30.0))
    );
    assert_eq!(
        (s["averages"]["cpu"].as_f64(), s["changes"]["cpu"].as_f64()),
        (Some(25.0), Some(10.0))
    );
    assert_eq!(s["lows"]["load1"], -0.5);
    let ctx = ok(&db, &["context", "--resource", "vm-102"]);
    // Only 2 of its points come before the trigger: no scores, each metric
    // with its numbers and why.
    assert!(
        ctx.contains("- load1: not scored: 2 values before the trigger (fewer than 5) (rank 2); low -0.50, avg 0.75, p50 1.00, p95 1.00, peak 1.00, change +0.00\n"),
        "{ctx}"
    );
    assert!(
        ctx.contains(&format!("Window: {vm102} (complete)")),
        "{ctx}"
    );

    // A replay into a fresh database is identical, field for field (but for
    // each database's random tag in the window ids).
    let again = dir.path().join("again.db");
    ingest_fixture(&again);
    let untagged = |db: &Path| ok(db, &["export"]).replace(&db_tag(db), "TAG");
    assert_eq!(untagged(&db), untagged(&again));

    // And into the same one adds nothing (the README's example).
    let once = ok(&db, &["export"]);
    let file = fixture("ingest.jsonl");
    let out = ok(&db, &["ingest", file.to_str().unwrap()]);
    assert!(out.contains(": 0 samples (47 skipped: "), "{out}");
    assert!(
        out.contains("2 triggers (0 opened a window, 0 extended one, 2 already recorded)"),
        "{out}"
    );
    assert_eq!(ok(&db, &["export"]), once);
}

#[test]
fn bad_ingest_lines_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let input = [
        r#"{"type":"sample","resource":"a","ts":1795514400000,"metrics":{"cpu":1}}"#,
        r#"{"type":"sample","resource":"a","ts":1795514405000,"metrics":{"cpu":"high"}}"#,
        "",
        "garbage",
        r#"{"type":"sample","resource":"a","ts":1795514399000,"metrics":{"cpu":2}}"#,
        r#"{"type":"trigger","resource":"a","trigger":"alert","trigger_id":"x"}"#,
        r#"{"type":"sample","resource":"a","ts":1795514410000,"metrics":{"cpu":3}}"#,
        r#"{"type":"stop","resource":"a"}"#,
    ]
    .join("\n");
    let o = run_with_stdin(&db, &["ingest", "-"], Some(&input));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    // A value of the wrong type names its field and metric.
    assert_eq!(
        lines[0],
        r#"line 2: field "metrics", metric "cpu": invalid type: string "high", expected f64"#,
        "{err}"
    );
    assert!(lines[1].starts_with("line 4: expected value"), "{err}");
    // Line 5 is older than the resource's newest sample and in no window:
    // only a buffer could have held it, so it is skipped and counted.
    let out = stdout(&o);
    assert!(
        out.contains("1 older than their resource's newest sample"),
        "{out}"
    );
    assert!(out.contains("rejected: 2 lines, 0 values"), "{out}");
    let list = json(&db, &["list", "--json"]);
    assert_eq!(list[0]["summary"]["data_points"], 2, "{list}");
}

#[test]
fn export_then_import_preserves_every_window_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    ingest_fixture(&a);
    let demo = ok(&a, &["demo", "--resources", "12"]);
    assert!(demo.contains("fired on db-02"), "{demo}");
    let file = dir.path().join("export.json");
    let o = run(&a, &["export", "-o", file.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("exported 3 windows"), "{}", stderr(&o));

    let out = ok(&b, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 3 windows"), "{out}");
    assert!(out.contains("native format"), "{out}");
    assert_eq!(
        ok(&a, &["export"]),
        ok(&b, &["export"]),
        "every field survives"
    );

    let twice = json(&b, &["import", file.to_str().unwrap(), "--json"]);
    assert_eq!(
        (
            twice["imported"].as_u64(),
            twice["already_present"].as_u64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(
        json(&b, &["stats", "--json"])["windows_by_status"]["complete"],
        3
    );
}

#[test]
fn a_pulse_file_imports_and_exports_in_the_seeds_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pulse.db");
    let file = fixture("pulse_incident_windows.json");
    let out = ok(&db, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 2 windows (7 points)"), "{out}");
    assert!(out.contains("pulse format"), "{out}");

    let w = json(&db, &["show", "iw-vm-101-20261124100000-1", "--json"]);
    assert_eq!(w["status"], "complete");
    assert_eq!(
        w["start_time"], "2026-11-24T09:59:50.000Z",
        "starts at its first point"
    );
    assert_eq!(w["end_time"], "2026-11-24T10:10:00.500Z");
    assert_eq!(w["triggers"][0]["fired_at"], "2026-11-24T10:00:00.000Z");
    assert_eq!(w["data_points"][1]["metadata"]["alerts"][0], "cpu-high");
    let s = &w["summary"];
    assert_eq!(s["duration_ms"], 15_000, "milliseconds, recomputed");
    assert_eq!(
        (s["averages"]["cpu"].as_f64(), s["changes"]["cpu"].as_f64()),
        (Some(79.0625), Some(51.0))
    );
    assert_eq!(
        (s["samples"]["disk"].as_u64(), s["lows"]["disk"].as_f64()),
        (Some(1), Some(1e-5))
    );

    let w = json(&db, &["show", "iw-ct-200-20261124110000-2", "--json"]);
    assert_eq!(w["status"], "truncated");
    assert_eq!(w.get("resource_name"), None);
    assert_eq!(w["resource_type"], "container");
    assert_eq!(
        w["start_time"], "2026-11-24T10:59:58.999Z",
        "offsets honoured"
    );
    let s = &w["summary"];
    assert_eq!(s["duration_ms"], 9_501);
    assert_eq!(
        (s["lows"]["cpu"].as_f64(), s["changes"]["netin"].as_f64()),
        (Some(-0.5), Some(-125e6))
    );
    assert_eq!(s["anomalies"][0], "netin dropped to 0");

    let again = json(
        &db,
        &[
            "import",
            file.to_str().unwrap(),
            "--format",
            "pulse",
            "--json",
        ],
    );
    assert_eq!(
        (
            again["imported"].as_u64(),
            again["already_present"].as_u64()
        ),
        (Some(0), Some(2))
    );

    // Out again in the seed's shape: same windows, same fields.
    let exported: Value = serde_json::from_str(&ok(&db, &["export", "--format", "pulse"])).unwrap();
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let windows = |v: &Value| v["completed_windows"].as_array().unwrap().clone();
    assert_eq!(windows(&exported).len(), 2);
    for (e, o) in windows(&exported).iter().zip(windows(&original).iter()) {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(e), keys(o), "window fields");
        assert_eq!(keys(&e["summary"]), keys(&o["summary"]), "summary fields");
        assert_eq!(
            e["data_points"].as_array().unwrap().len(),
            o["data_points"].as_array().unwrap().len()
        );
        assert_eq!(
            e["data_points"][0]["metrics"],
            o["data_points"][0]["metrics"]
        );
    }
    let first = &windows(&exported)[0];
    assert_eq!(
        first["summary"]["duration_ms"], 15_000_000_000_i64,
        "nanoseconds, as Go wrote them"
    );
    assert_eq!(
        first["start_time"], "2026-11-24T09:55:00Z",
        "the trigger minus five minutes, as Pulse writes it"
    );
    assert_eq!(first["end_time"], "2026-11-24T10:10:00.5Z");
}

#[test]
fn a_recording_window_in_an_import_is_stored_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rec.db");
    let file = dir.path().join("rec.json");
    std::fs::write(
        &file,
        r#"{"completed_windows":[{"id":"w1","resource_id":"vm","trigger_type":"manual",
            "start_time":"2026-11-24T10:00:00Z","end_time":"2026-11-24T10:10:00Z","status":"recording",
            "data_points":[{"timestamp":"2026-11-24T10:00:05Z","metrics":{"cpu":1}},
                           {"timestamp":"2026-11-24T10:00:10Z","metrics":{"cpu":3}}]},
          {"id":"w2","resource_id":"vm","trigger_type":"page","start_time":"2026-11-24T10:00:00Z",
            "status":"complete","data_points":null}]}"#,
    )
    .unwrap();
    let o = run(&db, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "one window rejected");
    assert_eq!(
        stderr(&o).trim(),
        r#"window 2: unknown trigger type "page"; expected one of ["alert", "anomaly", "focus", "manual"]"#
    );
    let w = json(&db, &["show", "w1", "--json"]);
    assert_eq!(w["status"], "interrupted");
    assert_eq!(
        w["end_time"], "2026-11-24T10:00:10.000Z",
        "ends at its last point"
    );
    assert_eq!(w["summary"]["averages"]["cpu"], 2.0);
}

#[test]
fn prune_and_stats_report_what_they_see() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    ingest_fixture(&db);
    let stats = ok(&db, &["stats"]);
    assert!(stats.contains("windows    2 (complete 2)"), "{stats}");
    assert!(stats.contains("points     30 (60 values)"), "{stats}");
    assert!(stats.contains("recorder   not running"), "{stats}");
    let out = ok(&db, &["prune", "--max-windows", "1"]);
    // The limit keeps the window that ended last (vm-101's, held by its alert).
    assert!(out.starts_with("deleted 1 windows (6 points)"), "{out}");
    let vm101 = format!("iw-20261124100030-{}-1", db_tag(&db));
    assert_eq!(
        ids(&json(&db, &["list", "--json"])),
        std::slice::from_ref(&vm101)
    );
    let list = ok(
        &db,
        &[
            "list",
            "--status",
            "complete",
            "--since",
            "2026-11-24T10:00:00Z",
        ],
    );
    assert!(
        list.contains(&format!("{vm101}  vm-101    alert cpu-high")),
        "{list}"
    );
}

#[test]
fn read_commands_never_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    ingest_fixture(&db);
    let id = &format!("iw-20261124100030-{}-1", db_tag(&db));
    let before = std::fs::read(&db).unwrap();
    for args in [
        vec!["list"],
        vec!["show", id],
        vec!["context", id],
        vec!["stats"],
        vec!["export", "--format", "pulse"],
    ] {
        ok(&db, &args);
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn demo_finishes_quickly_and_shows_its_incident() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let started = Instant::now();
    let out = ok(&db, &["demo"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for needle in [
        "fired on db-02",
        "cleared on db-02",
        "== incident-recorder show",
        "summary",
        "## Incident Recording Data",
        "### What changed most",
    ] {
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
    let list = json(&db, &["list", "--json"]);
    assert_eq!(list[0]["status"], "complete");
    assert_eq!(list[0]["resource_id"], "db-02");
    assert!(list[0]["summary"]["peaks"]["cpu"].as_f64().unwrap() > 90.0);
}

#[test]
fn every_error_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    for args in [
        vec!["list"],
        vec!["show", "x"],
        vec!["stats"],
        vec!["export"],
        vec!["context", "x"],
        vec!["prune"],
    ] {
        fails(&run(&missing, &args), 1, "no database at");
    }
    assert!(!missing.exists(), "read commands never create a database");

    // A directory where the database should be.
    fails(&run(dir.path(), &["list"]), 1, "it is a directory");
    fails(&run(dir.path(), &["ingest", "-"]), 1, "it is a directory");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    fails(&run(&garbage, &["list"]), 1, "is not an SQLite database");
    fails(
        &run(&garbage, &["watch", "--for", "1s"]),
        1,
        "is not an SQLite database",
    );

    let db = dir.path().join("ok.db");
    ingest_fixture(&db);
    fails(
        &run(&db, &["show", "nope"]),
        1,
        "no incident window with id \"nope\"",
    );
    fails(
        &run(&db, &["context", "--resource", "nobody"]),
        1,
        "no incident window for resource \"nobody\"",
    );
    fails(
        &run(&db, &["watch", "--rule", "cpu>>90"]),
        2,
        "invalid rule",
    );
    fails(
        &run(&db, &["watch", "--rule", "cpu>90 for ever"]),
        2,
        "invalid duration",
    );
    fails(
        &run(&db, &["watch", "--rule", "gpu>90", "--for", "1s"]),
        1,
        "does not report",
    );
    fails(&run(&db, &["watch", "--interval", "5"]), 2, "needs a unit");
    fails(
        &run(&db, &["list", "--since", "last week"]),
        1,
        "invalid --since",
    );
    fails(&run(&db, &["lst"]), 2, "similar subcommand exists: 'list'");

    let nowhere = dir.path().join("no-such.jsonl");
    fails(
        &run(&db, &["ingest", nowhere.to_str().unwrap()]),
        1,
        "cannot read",
    );
    fails(
        &run(&db, &["ingest", dir.path().to_str().unwrap()]),
        1,
        "is a directory",
    );
    fails(
        &run(&db, &["import", nowhere.to_str().unwrap()]),
        1,
        "cannot read",
    );
    let in_missing_dir = dir.path().join("no/such/dir/out.json");
    fails(
        &run(&db, &["export", "-o", in_missing_dir.to_str().unwrap()]),
        1,
        "cannot write",
    );
    fails(
        &run(&db, &["export", "-o", dir.path().to_str().unwrap()]),
        1,
        "cannot write",
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().flatten();
    assert!(
        !leftovers
            .into_iter()
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
    );
    let not_export = dir.path().join("x.json");
    std::fs::write(&not_export, "{\"hello\": 1}").unwrap();
    fails(
        &run(&db, &["import", not_export.to_str().unwrap()]),
        1,
        "not an incident-recorder or Pulse export",
    );
}

#[test]
fn help_and_version_succeed() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for cmd in [
        "watch", "ingest", "trigger", "list", "show", "context", "export", "import", "prune",
        "stats", "demo",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
    assert!(help.contains("Exit codes"), "{help}");
    let o = Command::new(BIN).arg("--version").output().unwrap();
    assert!(o.status.success());
}

#[test]
fn an_ingest_trigger_after_a_deadline_opens_a_new_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("late.db");
    let input = [
        r#"{"type":"sample","resource":"a","ts":1795514400000,"metrics":{"cpu":1}}"#,
        r#"{"type":"trigger","resource":"a"}"#,
        r#"{"type":"trigger","resource":"a","ts":1795515400000}"#,
    ]
    .join("\n");
    let o = run_with_stdin(&db, &["ingest", "--post", "1m", "--json"], Some(&input));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["windows_opened"], 2, "{report}");
    assert_eq!(report["windows_recording"], 1, "{report}");
    let list = json(&db, &["list", "--json"]);
    assert_eq!(list[1]["status"], "complete");
    assert_eq!(
        list[1]["end_time"], "2026-11-24T10:01:00.000Z",
        "closed at its deadline"
    );
    assert_eq!(list[0]["status"], "recording");
}

#[test]
fn watch_resolves_alerts_of_rules_it_no_longer_has() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orphan.db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let input = format!(
        "{{\"type\":\"sample\",\"resource\":\"box\",\"ts\":{now},\"metrics\":{{\"cpu\":60}}}}\n\
         {{\"type\":\"trigger\",\"resource\":\"box\",\"trigger\":\"alert\",\"trigger_id\":\"cpu>50\"}}\n"
    );
    let o = run_with_stdin(&db, &["ingest"], Some(&input));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = json(&db, &["list", "--json"]);
    assert_eq!(before[0]["triggers"][0].get("resolved_at"), None);

    ok(&db, &["watch", "--for", "1s", "--interval", "1s"]);
    let after = json(&db, &["list", "--json", "--resource", "box"]);
    assert_eq!(after[0]["status"], "recording", "resumed, not interrupted");
    assert!(
        after[0]["triggers"][0]["resolved_at"].is_string(),
        "{after}"
    );
}
