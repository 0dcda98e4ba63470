//! Every SQL query the documentation prints runs, and reaches the value
//! tables only through an index (a rowid range, a primary key), for closed
//! and recording windows alike: `EXPLAIN QUERY PLAN` never shows a scan of
//! one. A scan there costs time in proportion to the whole history, which at
//! the CLI's limits (40 million values) is seconds per query.

mod common;

use common::*;
use incident_recorder::{Metrics, RecorderConfig, Trigger};

/// The README's SQLite queries (`sqlite3 incidents.db "..."`, before its
/// PostgreSQL section) and docs/schema.md's SQL blocks.
fn documented_queries() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let readme = &readme[..readme
        .find("## A fleet in PostgreSQL")
        .expect("the README's fleet section")];
    let mut out = Vec::new();
    for (n, part) in readme.split("sqlite3 incidents.db \"").skip(1).enumerate() {
        let sql = &part[..part.find('"').expect("a closing quote")];
        out.push((format!("README query {}", n + 1), sql.to_owned()));
    }
    let schema = std::fs::read_to_string(format!("{root}/docs/schema.md")).unwrap();
    for (n, part) in schema.split("```sql\n").skip(1).enumerate() {
        let sql = &part[..part.find("```").expect("a closing fence")];
        out.push((format!("docs/schema.md query {}", n + 1), sql.to_owned()));
    }
    assert!(out.len() >= 6, "found the documented queries: {out:?}");
    out
}

/// What users filter the long format by, the issue's first measurement.
const USUAL: [&str; 3] = [
    "SELECT ts_ms, value FROM incident_samples WHERE resource_id = 'web-1' AND metric = 'cpu'",
    "SELECT ts, metric, value FROM incident_samples WHERE window_id = 'w'",
    "SELECT count(*) FROM incident_samples WHERE resource_id = 'web-1' AND status = 'recording'",
];

/// Names (tables, and the aliases the view and the docs give them) of the
/// tables that hold values or points: never scanned whole.
const VALUE_TABLES: [&str; 9] = [
    "series_values",
    "window_series",
    "recent_values",
    "recent_points",
    "point_metadata",
    "v",
    "s",
    "p",
    "x",
];

#[test]
fn documented_queries_reach_values_only_through_indexes() {
    let config = RecorderConfig {
        max_data_points_per_window: 1000,
        post_incident_window: secs(100_000),
        ..small_config()
    };
    let rig = Rig::file(config);
    // Two closed windows and one recording, long enough to have been
    // sealed part way: every branch of the view has rows.
    let mut t0 = 0;
    for (resource, points, close) in [
        ("web-1", 20, true),
        ("web-2", 20, true),
        ("web-1", 300, false),
    ] {
        rig.clock.set(t(t0));
        let id = rig.start(resource, Trigger::manual());
        for i in 0..points {
            let at = t(t0 + 5 * i);
            rig.clock.set(at);
            let m = Metrics::new()
                .with("cpu", 95.0 + i as f64)
                .with("memory", 40.0);
            let meta =
                (i % 7 == 0).then(|| serde_json::json!({"i": i}).as_object().cloned().unwrap());
            rig.recorder
                .push_sample(resource, at, m, meta.as_ref())
                .unwrap();
        }
        if close {
            rig.recorder.stop_recording(&id).unwrap();
        }
        t0 += 5 * points + 1000;
    }
    let conn = rig.sql();
    let sealed_while_recording: i64 = count(
        &conn,
        "SELECT count(*) FROM window_series s JOIN windows w ON w.id = s.window_id
         WHERE w.status = 'recording'",
    );
    assert!(sealed_while_recording > 0, "the recording window has runs");
    let journal: i64 = count(&conn, "SELECT count(*) FROM recent_points");
    assert!(journal > 0, "and journal points");

    let queries = documented_queries()
        .into_iter()
        .chain(USUAL.iter().map(|q| ("usual".to_owned(), q.to_string())));
    for (what, sql) in queries {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{what}: {e}\n{sql}"));
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for step in &plan {
            let mut words = step.split_whitespace();
            if words.next() == Some("SCAN") {
                let name = words.next().unwrap_or("");
                assert!(
                    !VALUE_TABLES.contains(&name),
                    "{what} scans {name}: {step}\n{sql}\nplan: {plan:#?}"
                );
            }
        }
        // And it runs.
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
    }
}
