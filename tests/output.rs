//! What a user reads, through the real binary: warnings bounded and
//! summarised, timed like `watch`'s lines; one number and duration format;
//! an empty history that says how windows open.

mod common;

use std::path::Path;

use common::T0;
use common::bin::*;

/// A sample line of `resource` at `T0 + ms`.
fn sample(resource: &str, ms: i64, metrics: &str) -> String {
    format!(
        r#"{{"type":"sample","resource":"{resource}","ts":{},"metrics":{metrics}}}"#,
        T0 + ms
    )
}

#[test]
fn a_flood_of_one_warning_shows_ten_then_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    // 5,000 lines with the same problem, then one good line.
    let mut lines = vec![r#"{"type":"sample","resource":"a","ts":"x","metrics":{}}"#; 5000]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    lines.push(sample("a", 0, r#"{"cpu":1}"#));
    let o = run_with_stdin(&db, &["ingest", "-"], Some(&lines.join("\n")));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    let shown: Vec<&str> = err.lines().collect();
    // The budget (10 a minute from one place), then one summary line.
    assert_eq!(shown.len(), 11, "{err}");
    for (i, line) in shown[..10].iter().enumerate() {
        assert!(
            line.starts_with(&format!("line {}: invalid timestamp x", i + 1)),
            "{err}"
        );
    }
    assert!(
        shown[10].starts_with(r#"warning: ... and 4,990 more like "line 11: invalid timestamp x"#)
            && shown[10].contains("(not shown: at most 10 a minute from one place)"),
        "{err}"
    );
    // Every line is still counted, and the good one recorded.
    let report = stdout(&o);
    assert!(report.contains("rejected: 5000 lines"), "{report}");
    assert!(report.contains("1 samples"), "{report}");
}

#[test]
fn watch_warnings_carry_the_time_as_its_lines_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    // A target nothing listens on: the scraper warns that it is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}/metrics");
    let o = run(
        &db,
        &[
            "watch",
            "--for",
            "2s",
            "--interval",
            "500ms",
            "--scrape",
            &target,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let timed = |line: &str| {
        let b = line.as_bytes();
        line.len() > 9
            && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
            && b[2] == b':'
            && b[5] == b':'
            && b[8] == b' '
    };
    let out = stdout(&o);
    assert!(out.lines().all(timed), "{out}");
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning: ")).collect();
    assert!(
        warnings.iter().any(|l| l.contains("scrape failed")),
        "{err}"
    );
    for w in &warnings {
        assert!(timed(w) && w[9..].starts_with("warning: "), "{err}");
    }
}

#[test]
fn an_empty_history_says_how_windows_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quiet.db");
    // A quiet watch: no rule can hold.
    let o = run(
        &db,
        &[
            "watch",
            "--for",
            "1s",
            "--interval",
            "500ms",
            "--rule",
            "cpu>1000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let list = ok(&db, &["list"]);
    assert!(list.starts_with("no windows yet\n"), "{list}");
    for how in ["rule", "watch --trigger-now", "trigger RESOURCE", "demo"] {
        assert!(list.contains(how), "{how:?} not in {list}");
    }
    // With windows in the database, a filter that matches none says so.
    ok(&db, &["demo"]);
    let list = ok(&db, &["list", "--resource", "nothing-here"]);
    assert_eq!(
        list,
        "no windows match (`list` without filters shows them all)\n"
    );
}

/// Ingests `lines` with a minute before the trigger and `--finish`.
fn ingest(db: &Path, lines: &[String]) {
    let o = run_with_stdin(
        db,
        &["ingest", "--pre", "1m", "--post", "150s", "--finish", "-"],
        Some(&lines.join("\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn values_and_durations_read_one_way() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("numbers.db");
    // Samples every 10 s, the last 2 ms late: the window lasts 2m50.002s.
    let mut lines: Vec<String> = (0..=17)
        .map(|i| {
            let ms = i * 10_000 + if i == 17 { 2 } else { 0 };
            let metrics = format!(
                r#"{{"rx":{},"conn":{}}}"#,
                1_400_000.0 + i as f64,
                76_187.12 + i as f64
            );
            sample("web", ms, &metrics)
        })
        .collect();
    lines.insert(
        4,
        format!(
            r#"{{"type":"trigger","resource":"web","ts":{}}}"#,
            T0 + 30_000
        ),
    );
    ingest(&db, &lines);
    let list = json(&db, &["list", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let shown = ok(&db, &["show", &id]);
    assert!(shown.contains("\nduration  2m50s\n"), "{shown}");
    let conn = shown.lines().find(|l| l.starts_with("conn ")).unwrap();
    let rx = shown.lines().find(|l| l.starts_with("rx ")).unwrap();
    assert!(
        conn.contains("76.19k") && !conn.contains("76187"),
        "{shown}"
    );
    assert!(rx.contains("1.40M"), "{shown}");
    let listed = ok(&db, &["list"]);
    assert!(listed.contains(" 2m50s "), "{listed}");
    assert!(!listed.contains("2m50.002s"), "{listed}");
}

#[test]
fn a_flood_of_warnings_in_watch_is_bounded_timed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    // A quiet run creates the database; then 600 trigger requests for a
    // resource it does not monitor wait for the next run, each refused
    // with the same warning.
    let quiet = [
        "watch",
        "--for",
        "1s",
        "--interval",
        "200ms",
        "--rule",
        "cpu>1000",
    ];
    assert!(run(&db, &quiet).status.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    for _ in 0..600 {
        conn.execute(
            "INSERT INTO trigger_requests (resource, trigger_type, requested_ms)
             VALUES ('nowhere', 'manual', ?1)",
            [T0],
        )
        .unwrap();
    }
    drop(conn);
    let o = run(&db, &quiet);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let refused: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("warning: trigger request refused"))
        .collect();
    assert_eq!(refused.len(), 10, "{err}");
    assert!(refused.iter().all(|l| l.as_bytes()[2] == b':'), "{err}");
    let summary: Vec<&str> = err.lines().filter(|l| l.contains("more like")).collect();
    assert_eq!(summary.len(), 1, "{err}");
    assert!(
        summary[0].contains(r#"warning: ... and 590 more like "trigger request refused""#),
        "{err}"
    );
    assert!(err.lines().count() <= 12, "{err}");
}

/// A window shaped like one `watch --scrape` records from node_exporter:
/// the first 500 series of the recorded scrape (tests/fixtures), 60
/// samples 5 s apart before the trigger and 60 after; counters (`_total`)
/// grow, gauges hold with jitter, and `node_load1` goes from 0.3 to 3 at
/// the trigger. Returns the window's id.
fn node_exporter_window(db: &Path) -> String {
    let scrape = std::fs::read_to_string(fixture("node_exporter-1.5.0.prom")).unwrap();
    let mut names: Vec<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name))
        .filter(|n| *n != "node_load1")
        .take(499)
        .collect();
    names.push("node_load1");
    let mut seed = 7u64;
    let mut jitter = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut lines = Vec::new();
    for i in 0..120i64 {
        let mut metrics = serde_json::Map::new();
        for (k, name) in names.iter().enumerate() {
            let level = 1000.0 * (k + 1) as f64;
            let v = if *name == "node_load1" {
                (if i < 60 { 0.3 } else { 3.0 }) + 0.1 * jitter()
            } else if name.contains("_total") {
                level + 10.0 * (i as f64 + 0.4 * jitter())
            } else {
                level * (1.0 + 0.002 * jitter())
            };
            metrics.insert((*name).to_owned(), v.into());
        }
        if i == 60 {
            lines.push(format!(
                r#"{{"type":"trigger","resource":"node","ts":{}}}"#,
                T0 + 300_000
            ));
        }
        lines.push(sample(
            "node",
            5_000 * i,
            &serde_json::Value::Object(metrics).to_string(),
        ));
    }
    let o = run_with_stdin(
        db,
        &["ingest", "--pre", "5m", "--post", "5m", "--finish", "-"],
        Some(&lines.join("\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    json(db, &["list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn show_and_context_of_500_series_lead_with_the_one_that_moved() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.db");
    let id = node_exporter_window(&db);

    // show: the header, then the ten that moved most, the burn first.
    let shown = ok(&db, &["show", &id]);
    let table: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("METRIC "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 10, "{shown}");
    assert!(table[0].starts_with("node_load1 "), "{shown}");
    assert!(
        shown.ends_with("\n490 more metrics (moved less): --all shows every one, --metric REGEX picks by name, --top N the N that moved most\n"),
        "{shown}"
    );
    assert!(shown.lines().count() < 60, "{shown}");
    let three = ok(&db, &["show", &id, "--top", "3"]);
    assert!(three.contains("\n497 more metrics"), "{three}");
    let all = ok(&db, &["show", &id, "--all"]);
    assert!(!all.contains("more metrics"), "{all}");
    assert!(
        all.lines().count() > 1000,
        "table and sparklines of all 500"
    );

    // The JSON carries every score and rank.
    let w = json(&db, &["show", &id, "--json"]);
    let scores = w["summary"]["change_scores"].as_object().unwrap();
    assert_eq!(scores.len(), 500);
    assert_eq!(scores["node_load1"]["rank"], 1);
    let listed = json(&db, &["list", "--json"]);
    assert_eq!(
        listed[0]["summary"]["change_scores"]["node_load1"]["rank"],
        1
    );

    // context: within 8 KB, whole lines, the burn named first, and a last
    // line saying what it left out.
    let text = ok(&db, &["context", &id]);
    assert!(text.len() <= 8192, "{} bytes", text.len());
    assert!(text.ends_with('\n'));
    let top = text
        .lines()
        .skip_while(|l| !l.starts_with("### What changed most"))
        .nth(2)
        .unwrap();
    assert!(top.starts_with("- node_load1: score +"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("(left out to fit 8192 bytes: 490 metrics that moved less"),
        "{last}"
    );
    // A bigger budget shows more; every line of the small digest is a
    // whole line of it (nothing cut inside a line).
    let big = ok(&db, &["context", &id, "--max-bytes", "1000000"]);
    assert!(big.len() > text.len());
    for line in text.lines().filter(|l| !l.starts_with("(left out")) {
        assert!(big.lines().any(|b| b == line), "{line:?} cut");
    }
    let small = ok(&db, &["context", &id, "--max-bytes", "1024"]);
    assert!(small.len() <= 1024, "{small}");
    fails(
        &run(&db, &["context", &id, "--max-bytes", "100"]),
        2,
        "1024",
    );
}
