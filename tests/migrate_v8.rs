//! A store v8 database (schema version 10: sealed runs by rowid range, the
//! journal, a UNION ALL view) opens with today's code, migrates in place to
//! v9 (migrations/V11) and keeps every window, point, value, trigger,
//! summary, anomaly, note and push mark (issue 19, "Migrates").
//!
//! `tests/fixtures/v8/incidents.db` was written by the CLI of commit
//! d704fb6 (the last before V11); `tests/fixtures/v8/make.sh` says how and
//! what it holds. "Before" is read from a copy with SQL through the old
//! view and tables; "after" from a migrated copy through the new view, plus
//! the journal (a recording window's newest points stay there until the
//! next seal). Each test works on copies (opening the fixture itself would
//! migrate it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, RecorderConfig, Store, Timestamp, WindowId, WindowStatus,
};
use rusqlite::Connection;

fn copy_fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidents.db");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v8/incidents.db");
    std::fs::copy(from, &path).unwrap();
    (dir, path)
}

/// Rows of `sql`, each as text (values compared exactly: REALs by their
/// shortest round-trip text, NULL as "NULL").
fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut out: Vec<String> = stmt
        .query_map([], |r| {
            let mut cols = Vec::with_capacity(n);
            for i in 0..n {
                cols.push(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => format!("{v:?}"),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                });
            }
            Ok(cols.join("|"))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    out.sort();
    out
}

/// What both versions must agree on, by query: the same SQL for both
/// (tables unchanged by V11), except values and metadata.
const SAME: [&str; 8] = [
    "SELECT w.public_id, r.external_id, r.name, r.type, w.trigger_type, w.trigger_id,
            w.start_ms, w.end_ms, w.deadline_ms, w.status, w.opened_ms, w.summary_points,
            w.duration_ms
     FROM windows w JOIN resources r ON r.id = w.resource_id",
    "SELECT w.public_id, t.resource_id, t.trigger_type, t.trigger_id, t.fired_ms, t.resolved_ms,
            t.opened_window, t.suppressed
     FROM window_triggers t LEFT JOIN windows w ON w.id = t.window_id",
    "SELECT w.public_id, m.name, s.samples, s.peak, s.low, s.average, s.change, s.p50, s.p95, s.p99
     FROM window_metric_stats s JOIN windows w ON w.id = s.window_id
     JOIN metrics m ON m.id = s.metric_id",
    "SELECT w.public_id, m.name, a.ts_ms, a.value, a.score, a.description
     FROM window_anomalies a JOIN windows w ON w.id = a.window_id
     LEFT JOIN metrics m ON m.id = a.metric_id",
    "SELECT w.public_id, n.at_ms, n.author, n.text
     FROM window_notes n JOIN windows w ON w.id = n.window_id",
    "SELECT window_id, target_id, pushed_ms, refused, attempts, retry_ms FROM window_pushes",
    "SELECT w.public_id, w.opened_ms + p.offset_ms, p.metadata
     FROM point_metadata p JOIN windows w ON w.id = p.window_id",
    "SELECT window_id, status, end_ms FROM window_closes",
];

/// Every value, v8: the old view holds sealed runs and the journal.
const VALUES_V8: &str = "SELECT window_id, metric, ts_ms, value, status FROM incident_samples";

/// Every value, v9: the view (sealed) and the journal.
const VALUES_V9: &str = "SELECT window_id, metric, ts_ms, value, status FROM incident_samples
     UNION ALL
     SELECT w.public_id, m.name, p.ts_ms, v.value, w.status
     FROM recent_points p JOIN windows w ON w.id = p.window_id
     JOIN recent_values v ON v.point_id = p.id JOIN metrics m ON m.id = v.metric_id";

/// Metadata of journal points (v8 and v9 alike: the journal stays).
const JOURNAL_METADATA: &str = "SELECT w.public_id, p.ts_ms, p.metadata
     FROM windows w JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
     WHERE p.metadata IS NOT NULL";

fn version(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT max(version) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_v8_database_migrates_in_place_and_keeps_everything() {
    let (_dir, path) = copy_fixture();
    let before = {
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), 10, "the fixture is store v8's");
        let mut all: Vec<Vec<String>> = SAME.iter().map(|q| rows(&conn, q)).collect();
        all.push(rows(&conn, VALUES_V8));
        all.push(rows(&conn, JOURNAL_METADATA));
        all
    };
    // The fixture holds what the comparison needs to mean something.
    let count = |i: usize| before[i].len();
    assert_eq!(count(0), 8, "windows");
    assert!(
        count(1) >= 10 && count(2) > 10 && count(3) > 10,
        "{before:?}"
    );
    assert_eq!(count(4), 3, "notes");
    assert!(count(6) > 10, "sealed metadata");
    assert!(before[8].len() > 300, "values");
    assert!(
        before[8].iter().any(|r| r.ends_with("|recording")),
        "recording windows' values"
    );

    Store::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(version(&conn), Store::schema_version());
    let mut after: Vec<Vec<String>> = SAME.iter().map(|q| rows(&conn, q)).collect();
    after.push(rows(&conn, VALUES_V9));
    after.push(rows(&conn, JOURNAL_METADATA));
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b, a, "query {i}");
    }
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0, "every key holds after the migration");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// After the migration, plain SQL deletes windows with everything of
/// theirs, and nothing else: every table hanging from `windows` cascades.
#[test]
fn deleting_windows_in_plain_sql_removes_all_their_rows() {
    let (_dir, path) = copy_fixture();
    Store::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    let kept_before = rows(
        &conn,
        "SELECT window_id, metric, ts_ms, value FROM incident_samples WHERE status = 'recording'",
    );
    let journal_before: i64 = conn
        .query_row("SELECT count(*) FROM recent_values", [], |r| r.get(0))
        .unwrap();
    assert!(journal_before > 0);
    conn.execute("DELETE FROM windows WHERE status <> 'recording'", [])
        .unwrap();
    let orphans: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM series WHERE window_id NOT IN (SELECT id FROM windows))
                  + (SELECT count(*) FROM samples WHERE series_id NOT IN (SELECT id FROM series))
                  + (SELECT count(*) FROM point_metadata
                     WHERE window_id NOT IN (SELECT id FROM windows))
                  + (SELECT count(*) FROM window_metric_stats
                     WHERE window_id NOT IN (SELECT id FROM windows))
                  + (SELECT count(*) FROM window_anomalies
                     WHERE window_id NOT IN (SELECT id FROM windows))
                  + (SELECT count(*) FROM window_notes
                     WHERE window_id NOT IN (SELECT id FROM windows))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    let closed_left: i64 = conn
        .query_row(
            "SELECT count(*) FROM incident_samples WHERE status <> 'recording'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(closed_left, 0);
    assert_eq!(
        rows(
            &conn,
            "SELECT window_id, metric, ts_ms, value FROM incident_samples"
        ),
        kept_before,
        "the recording windows keep theirs"
    );
    let journal_after: i64 = conn
        .query_row("SELECT count(*) FROM recent_values", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal_after, journal_before);
    // And the recording ones, journal included.
    conn.execute("DELETE FROM windows", []).unwrap();
    for table in [
        "series",
        "samples",
        "recent_points",
        "recent_values",
        "point_metadata",
    ] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
}

/// A window v8 left recording goes on after the migration and closes with
/// every point: those sealed by v8, its journal points and new ones.
#[test]
fn a_window_v8_left_recording_goes_on_and_closes_whole() {
    let (_dir, path) = copy_fixture();
    let (id, resource, points, last) = {
        let conn = Connection::open(&path).unwrap();
        conn.query_row(
            "SELECT w.public_id, r.external_id,
                    (SELECT count(DISTINCT ts_ms) FROM incident_samples s
                     WHERE s.window_id = w.public_id),
                    (SELECT max(ts_ms) FROM incident_samples s WHERE s.window_id = w.public_id)
             FROM windows w JOIN resources r ON r.id = w.resource_id
             WHERE w.status = 'recording' ORDER BY w.deadline_ms DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .unwrap()
    };
    let last = Timestamp::from_unix_ms(last);
    let clock = ManualClock::new(last.saturating_add(Duration::from_secs(1)));
    let config = RecorderConfig {
        sample_interval: Duration::from_secs(10),
        pre_incident_window: Duration::from_secs(120),
        post_incident_window: Duration::from_secs(60),
        max_data_points_per_window: 24,
        retention: Duration::from_secs(30 * 24 * 3600),
        ..RecorderConfig::with_db_path(&path)
    };
    let recorder =
        IncidentRecorder::open_with_clock(config, std::sync::Arc::new(clock.clone())).unwrap();
    let id = WindowId::new(id);
    assert_eq!(recorder.recording_window(&resource), Some(id.clone()));
    let next = last.saturating_add(Duration::from_secs(10));
    clock.set(next);
    let metrics: incident_recorder::Metrics = [("cpu".to_owned(), 97.5)].into_iter().collect();
    recorder
        .push_sample(&resource, next, metrics, None)
        .unwrap();
    recorder.stop_recording(&id).unwrap();
    recorder.sync().unwrap();
    let closed = recorder.window(&id).unwrap().unwrap();
    assert_eq!(closed.status, WindowStatus::Complete);
    assert_eq!(closed.data_points.len() as i64, points + 1);
    assert_eq!(closed.summary.unwrap().data_points as i64, points + 1);
    drop(recorder);
    let conn = Connection::open(&path).unwrap();
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
}
