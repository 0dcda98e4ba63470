//! Every SQL query the documentation prints, and every natural shape of a
//! query of the long format (issue 19: a window by literal id, by scalar
//! subquery, by `IN (SELECT ...)`, by a join with `windows` or `resources`
//! filtered on their columns; a resource and a time range; per-minute
//! aggregates of one window; one metric across the windows of a time
//! range), runs and reaches the value tables only through an index:
//! `EXPLAIN QUERY PLAN` never shows a scan of one, nor the view run as a
//! co-routine or materialized (it is a plain join, flattened into the
//! query), and a query for given windows never scans `windows` (other than
//! walking an index in order, as `ORDER BY start_ms DESC LIMIT 1` does). A scan there
//! costs time in proportion to the whole history, which at the CLI's limits
//! (40 million values) is seconds per query.

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

/// The natural shapes, `$CLOSED` / `$RECORDING` standing for a closed and a
/// recording window's ids, and whether the query names its windows (so it
/// must not scan `windows` either).
const SHAPES: [(&str, &str, bool); 14] = [
    (
        "literal id",
        "SELECT ts, value FROM incident_samples WHERE window_id = '$CLOSED' AND metric = 'cpu'",
        true,
    ),
    (
        "scalar subquery, newest window",
        "SELECT ts, value FROM incident_samples
         WHERE window_id = (SELECT public_id FROM windows ORDER BY start_ms DESC LIMIT 1)
           AND metric = 'cpu'",
        true,
    ),
    (
        "scalar subquery, newest closed window",
        "SELECT ts, value FROM incident_samples
         WHERE window_id = (SELECT public_id FROM windows WHERE status <> 'recording'
                            ORDER BY start_ms DESC LIMIT 1)
           AND metric = 'cpu'",
        true,
    ),
    (
        "IN (SELECT ...)",
        "SELECT window_id, ts, value FROM incident_samples
         WHERE window_id IN (SELECT public_id FROM windows WHERE trigger_type = 'manual'
                             ORDER BY start_ms DESC LIMIT 2)
           AND metric = 'cpu'",
        true,
    ),
    (
        "join with windows filtered on its columns",
        "SELECT w.public_id, i.ts_ms, i.value
         FROM windows w JOIN incident_samples i ON i.window_id = w.public_id
         WHERE w.start_ms >= 0 AND w.start_ms < 200000 AND i.metric = 'cpu'",
        false,
    ),
    (
        "join with resources filtered on its columns",
        "SELECT i.window_id, i.ts_ms, i.value
         FROM resources r JOIN incident_samples i ON i.resource_id = r.external_id
         WHERE r.external_id = 'web-2' AND i.metric = 'memory'",
        false,
    ),
    (
        "resource and time range",
        "SELECT ts_ms, value FROM incident_samples
         WHERE resource_id = 'web-1' AND metric = 'cpu' AND ts_ms BETWEEN 0 AND 50000",
        false,
    ),
    (
        "per-minute aggregates of one window",
        "SELECT ts_ms / 60000 * 60000 AS minute, metric, avg(value), max(value)
         FROM incident_samples WHERE window_id = '$CLOSED'
         GROUP BY minute, metric ORDER BY minute",
        true,
    ),
    (
        "one metric across the windows of a time range",
        "SELECT i.window_id, max(i.value)
         FROM windows w JOIN incident_samples i ON i.window_id = w.public_id
         WHERE w.start_ms BETWEEN 0 AND 200000 AND i.metric = 'cpu'
         GROUP BY i.window_id",
        false,
    ),
    (
        "the status of the recording window's values",
        "SELECT count(*) FROM incident_samples WHERE window_id = '$RECORDING'",
        true,
    ),
    (
        "the tables without the view: one metric of a window",
        "SELECT s.from_ms + v.offset_ms AS ts_ms, v.value
         FROM windows w JOIN series s ON s.window_id = w.id
         JOIN metrics m ON m.id = s.metric_id
         JOIN samples v ON v.series_id = s.id
         WHERE w.public_id = '$CLOSED' AND m.name = 'cpu'",
        true,
    ),
    (
        "the tables without the view: a window's metadata",
        "SELECT w.opened_ms + p.offset_ms, p.metadata
         FROM windows w JOIN point_metadata p ON p.window_id = w.id
         WHERE w.public_id = '$CLOSED'",
        true,
    ),
    (
        "the journal of a recording window",
        "SELECT p.ts_ms, m.name, v.value
         FROM windows w
         JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
         JOIN recent_values v ON v.point_id = p.id
         JOIN metrics m ON m.id = v.metric_id
         WHERE w.public_id = '$RECORDING'",
        true,
    ),
    (
        "usual: a resource's metric",
        "SELECT ts_ms, value FROM incident_samples WHERE resource_id = 'web-1' AND metric = 'cpu'",
        false,
    ),
];

/// Names (tables, and the aliases the view and the docs give them) of the
/// tables that hold values or points: never scanned whole.
const VALUE_TABLES: [&str; 8] = [
    "samples",
    "series",
    "recent_values",
    "recent_points",
    "point_metadata",
    "v",
    "s",
    "p",
];

/// Checks `sql`'s plan (see the module docs) and runs it.
fn check(conn: &rusqlite::Connection, what: &str, sql: &str, names_windows: bool) {
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
        let first = words.next().unwrap_or("");
        let name = words.next().unwrap_or("");
        assert!(
            !(first == "SCAN" && VALUE_TABLES.contains(&name)),
            "{what} scans {name}: {step}\n{sql}\nplan: {plan:#?}"
        );
        assert!(
            !step.contains("CO-ROUTINE") && !step.contains("MATERIALIZE"),
            "{what} runs a view apart: {step}\n{sql}\nplan: {plan:#?}"
        );
        // An ordered walk of an index (ORDER BY start_ms ... LIMIT n) stops
        // at the windows asked for; a plain scan reads them all.
        assert!(
            !(names_windows
                && first == "SCAN"
                && ["w", "windows"].contains(&name)
                && !step.contains("INDEX")),
            "{what} reads every window: {step}\n{sql}\nplan: {plan:#?}"
        );
    }
    let mut stmt = conn.prepare(sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    while rows.next().unwrap().is_some() {}
}

#[test]
fn documented_queries_and_natural_shapes_reach_values_only_through_indexes() {
    let config = RecorderConfig {
        max_data_points_per_window: 1000,
        post_incident_window: secs(100_000),
        ..small_config()
    };
    let rig = Rig::file(config);
    // Two closed windows and one recording, sealed part way (`sql` seals
    // the journal) with newer points in the journal: every table has rows.
    let mut t0 = 0;
    let mut ids = Vec::new();
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
            if i == 200 {
                drop(rig.sql()); // a seal while it records
            }
        }
        if close {
            rig.recorder.stop_recording(&id).unwrap();
        }
        ids.push(id);
        t0 += 5 * points + 1000;
    }
    rig.recorder.sync().unwrap();
    // Newer points, in the journal until the next seal.
    for i in 0..3 {
        let at = t(t0 + 5 * i);
        rig.clock.set(at);
        let m = Metrics::new().with("cpu", 1.0);
        rig.recorder.push_sample("web-1", at, m, None).unwrap();
    }
    let conn = sql(&rig.db_path());
    let sealed_while_recording: i64 = count(
        &conn,
        "SELECT count(*) FROM series s JOIN windows w ON w.id = s.window_id
         WHERE w.status = 'recording'",
    );
    assert!(
        sealed_while_recording > 0,
        "the recording window has series"
    );
    let journal: i64 = count(&conn, "SELECT count(*) FROM recent_points");
    assert!(journal > 0, "and journal points");

    for (what, sql) in documented_queries() {
        check(&conn, &what, &sql, false);
    }
    for (what, sql, names_windows) in SHAPES {
        let sql = sql
            .replace("$CLOSED", ids[0].as_str())
            .replace("$RECORDING", ids[2].as_str());
        check(&conn, what, &sql, names_windows);
    }
}
