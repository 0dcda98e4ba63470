//! The database: persistence across restarts, recovery of interrupted
//! windows, trimming, refusal of files that are not ours, file permissions.

mod common;

use std::sync::Arc;

use common::*;
use incident_recorder::{
    Error, IncidentRecorder, ManualClock, Metrics, RecorderConfig, Store, Trigger, WindowFilter,
    WindowStatus,
};

/// Points: the distinct times of each window's values.
const POINTS: &str =
    "SELECT count(*) FROM (SELECT DISTINCT window_id, ts_ms FROM incident_samples)";
/// Value rows stored, sealed or in the journal (garbage included).
const STORED_VALUES: &str =
    "SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM recent_values)";

/// Every table's row count, to compare against expectations in one assert.
fn table_counts(conn: &rusqlite::Connection) -> [i64; 6] {
    [
        count(conn, "SELECT count(*) FROM windows"),
        count(conn, "SELECT count(*) FROM window_triggers"),
        count(conn, POINTS),
        count(conn, STORED_VALUES),
        count(conn, "SELECT count(*) FROM window_metric_stats"),
        count(conn, "SELECT count(*) FROM window_anomalies"),
    ]
}

/// No row anywhere refers to a deleted parent.
fn assert_no_orphans(conn: &rusqlite::Connection) {
    let fk_violations: i64 = count(conn, "SELECT count(*) FROM pragma_foreign_key_check");
    assert_eq!(fk_violations, 0);
    for sql in [
        // Every sealed value is in a series of a window.
        "SELECT count(*) FROM samples WHERE series_id NOT IN (SELECT id FROM series)",
        "SELECT count(*) FROM series WHERE window_id NOT IN (SELECT id FROM windows)",
        // The journal holds points of recording windows only.
        "SELECT count(*) FROM recent_points p
         WHERE NOT EXISTS (SELECT 1 FROM windows w
                           WHERE w.id = p.window_id AND w.status = 'recording')",
        "SELECT count(*) FROM recent_values WHERE point_id NOT IN (SELECT id FROM recent_points)",
        "SELECT count(*) FROM window_metric_stats WHERE window_id NOT IN (SELECT id FROM windows)",
        "SELECT count(*) FROM window_triggers WHERE window_id NOT IN (SELECT id FROM windows)",
    ] {
        assert_eq!(count(conn, sql), 0, "{sql}");
    }
}

/// Opens a window on `resource` at `start` s, records `n` samples 5 s apart
/// (cpu = 1, 2, ...) and closes it at the last one.
fn recorded_window(rig: &Rig, resource: &str, start: i64, n: i64) -> incident_recorder::WindowId {
    rig.clock.set(t(start));
    let id = rig.start(resource, Trigger::manual());
    for i in 0..n {
        let at = t(start + 5 * i);
        rig.clock.set(at);
        rig.recorder
            .push_sample(
                resource,
                at,
                Metrics::new().with("cpu", (i + 1) as f64).with("mem", 5.0),
                None,
            )
            .unwrap();
    }
    rig.recorder.stop_recording(&id).unwrap();
    id
}

#[test]
fn history_survives_a_restart_unchanged() {
    let rig = Rig::file(small_config());
    let id = recorded_window(&rig, "vm-101", 0, 4);
    let before = serde_json::to_value(rig.recorder.window(&id).unwrap().unwrap()).unwrap();
    let rig = rig.reopen();
    let after = serde_json::to_value(rig.recorder.window(&id).unwrap().unwrap()).unwrap();
    assert_eq!(before, after);
    assert_eq!(after["summary"]["peaks"]["cpu"], 4.0);
    assert_eq!(rig.recorder.recent_windows(0).unwrap().len(), 1);
}

#[test]
fn a_window_left_recording_resumes_if_its_deadline_is_ahead() {
    let config = RecorderConfig {
        hold_while_alert_active: true,
        ..small_config()
    };
    let rig = Rig::file(config);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::alert("cpu"));
    rig.ticks(5, secs(5)); // t0..t20, clock at t25
    // Dropped without stop(): the window stays `recording` in the file.
    let rig = rig.reopen();
    assert_eq!(rig.recorder.stats().active_windows, 1);
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Recording);
    assert_eq!(w.data_points.len(), 5);
    // Same window: a new trigger extends it, new samples land in it.
    assert_eq!(rig.start("a", Trigger::manual()), id);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    rig.ticks(2, secs(5));
    assert_eq!(
        rig.recorder.window(&id).unwrap().unwrap().data_points.len(),
        7
    );
    // The unresolved alert was restored: it still holds the window.
    rig.clock.set(t(500));
    rig.recorder.record_sample().unwrap();
    assert_eq!(
        rig.recorder.window(&id).unwrap().unwrap().status,
        WindowStatus::Recording
    );
    rig.recorder.resolve_trigger("a", "cpu").unwrap();
    rig.clock.set(t(561));
    rig.recorder.record_sample().unwrap();
    assert_eq!(
        rig.recorder.window(&id).unwrap().unwrap().status,
        WindowStatus::Complete
    );
}

#[test]
fn a_window_left_recording_past_its_deadline_closes_as_interrupted_with_a_summary() {
    let rig = Rig::file(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(5, secs(5)); // t0..t20; deadline t60
    rig.clock.set(t(100));
    let rig = rig.crash_and_reopen();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Interrupted);
    assert_eq!(w.end_time, Some(t(20)));
    let s = w.summary.unwrap();
    assert_eq!(s.data_points, 5);
    assert_eq!(s.peaks["cpu"], 40.0);
    assert_eq!(rig.recorder.stats().active_windows, 0);
    assert_eq!(
        rig.recorder.recovery().closed,
        vec![(id, WindowStatus::Interrupted)]
    );
}

#[test]
fn after_a_clean_stop_a_window_past_its_deadline_completes_as_a_running_recorder_would() {
    let rig = Rig::file(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(5, secs(5)); // t0..t20; deadline t60
    rig.clock.set(t(100));
    let rig = rig.reopen();
    assert!(rig.recorder.recovery().clean_stop);
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(60)), "ends at its deadline");
    assert_eq!(w.summary.unwrap().data_points, 5);
    assert_eq!(
        rig.recorder.recovery().closed,
        vec![(id, WindowStatus::Complete)]
    );
}

#[test]
fn retention_deletes_old_windows_and_everything_under_them() {
    let config = RecorderConfig {
        retention: secs(100),
        ..small_config()
    };
    let rig = Rig::file(config);
    let old = recorded_window(&rig, "a", 0, 3); // ends t10
    let kept = recorded_window(&rig, "b", 50, 2); // ends t55
    let conn = rig.sql();
    assert_eq!(table_counts(&conn), [2, 2, 5, 10, 4, 0]);
    // Completing a window at t150 trims: cutoff t50 removes `old` only.
    let newest = recorded_window(&rig, "c", 150, 1);
    // Synced: the journal behind the closed windows is purged too.
    let conn = rig.sql();
    assert_eq!(table_counts(&conn), [2, 2, 3, 6, 4, 0]);
    assert_no_orphans(&conn);
    assert!(rig.recorder.window(&old).unwrap().is_none());
    assert!(rig.recorder.window(&kept).unwrap().is_some());
    assert!(rig.recorder.window(&newest).unwrap().is_some());
}

#[test]
fn the_window_limit_keeps_the_newest_closed_windows_and_never_a_recording_one() {
    let config = RecorderConfig {
        max_windows: 3,
        ..small_config()
    };
    let rig = Rig::file(config);
    rig.clock.set(t(0));
    let recording = rig.start("live", Trigger::manual());
    let ids: Vec<_> = (0..5)
        .map(|i| recorded_window(&rig, &format!("r{i}"), 10 * i, 2))
        .collect();
    let conn = rig.sql();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM windows WHERE status <> 'recording'"
        ),
        3
    );
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            rig.recorder.window(id).unwrap().is_some(),
            i >= 2,
            "window {i}"
        );
    }
    assert!(rig.recorder.window(&recording).unwrap().is_some());
    assert_eq!(count(&conn, POINTS), 6);
    // (The trimmed windows' journal rows may wait for the recording window
    // to move the journal's horizon: only the view's values count here.)
    assert_eq!(count(&conn, "SELECT count(*) FROM incident_samples"), 12);
    assert_no_orphans(&conn);
}

#[test]
fn retention_also_runs_when_the_database_is_opened() {
    let config = RecorderConfig {
        retention: secs(100),
        ..small_config()
    };
    let rig = Rig::file(config);
    let id = recorded_window(&rig, "a", 0, 3);
    rig.clock.set(t(1000));
    let rig = rig.reopen();
    assert!(rig.recorder.window(&id).unwrap().is_none());
    assert_eq!(table_counts(&rig.sql()), [0, 0, 0, 0, 0, 0]);
}

#[test]
fn prune_reports_what_it_deleted() {
    let rig = Rig::file(small_config());
    recorded_window(&rig, "a", 0, 3);
    recorded_window(&rig, "b", 100, 4);
    let report = rig.recorder.store().prune(t(100), secs(50), 100).unwrap();
    assert_eq!((report.windows, report.points), (1, 3));
    let report = rig.recorder.store().prune(t(100), secs(50), 0).unwrap();
    assert_eq!((report.windows, report.points), (1, 4));
}

#[test]
fn the_long_format_view_lists_every_value() {
    let rig = Rig::file(small_config());
    let id = recorded_window(&rig, "vm-101", 0, 2);
    let conn = rig.sql();
    let rows: Vec<(String, String, String, i64, String, String, f64)> = conn
        .prepare(
            "SELECT window_id, resource_id, status, ts_ms, ts, metric, value
             FROM incident_samples ORDER BY ts_ms, metric",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        (
            id.to_string(),
            "vm-101".into(),
            "complete".into(),
            T0,
            "2026-11-24T10:00:00.000Z".into(),
            "cpu".into(),
            1.0
        )
    );
    assert_eq!(rows[3].5, "mem");
    assert_eq!(rows[3].3, T0 + 5000);
}

#[test]
fn a_file_from_a_newer_schema_is_refused_and_left_untouched() {
    let rig = Rig::file(small_config());
    recorded_window(&rig, "a", 0, 2);
    let path = rig.db_path();
    let dir = rig.dir;
    drop(rig.recorder);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO refinery_schema_history VALUES (99, 'future', '2030-01-01T00:00:00Z', '0')",
            [],
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap_err();
    assert!(matches!(err, Error::NewerSchema { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, Error::NewerSchema { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(dir);
}

#[test]
fn garbage_and_foreign_files_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let err = IncidentRecorder::open(RecorderConfig::with_db_path(&garbage)).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
    let err = Store::open_read_only(&garbage).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    assert_eq!(std::fs::read(&garbage).unwrap(), bytes);

    let foreign = dir.path().join("app.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');")
        .unwrap();
    let before = std::fs::read(&foreign).unwrap();
    let err = IncidentRecorder::open(RecorderConfig::with_db_path(&foreign)).unwrap_err();
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    // Nothing was created beside them (no -wal, -shm or lock file).
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["app.db", "garbage.db"]);
}

#[cfg(unix)]
#[test]
fn files_are_private_and_missing_directories_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/incidents.db");
    let recorder = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap();
    recorder.start_recording("a", Trigger::manual()).unwrap(); // forces WAL and SHM files
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("nested")), 0o700);
    assert_eq!(mode(&dir.path().join("nested/deeper")), 0o700);
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        assert_eq!(
            mode(std::path::Path::new(&p)),
            0o600,
            "incidents.db{suffix}"
        );
    }
}

#[test]
fn only_one_recorder_writes_a_database_at_a_time() {
    let rig = Rig::file(small_config());
    let path = rig.db_path();
    let err = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let store = Store::open_read_only(&path).unwrap();
    assert!(store.recorder_running().unwrap());
    drop(rig.recorder);
    assert!(!store.recorder_running().unwrap());
    IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap();
}

#[test]
fn a_read_only_store_sees_committed_history_while_the_recorder_writes() {
    let rig = Rig::file(small_config());
    recorded_window(&rig, "a", 0, 3);
    let store = Store::open_read_only(rig.db_path()).unwrap();
    let open = rig.start("b", Trigger::manual());
    let all = store.windows(&WindowFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, open);
    assert!(
        all.iter().all(|w| w.data_points.is_empty()),
        "listings skip points"
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.points, 3);
    assert_eq!(stats.windows_by_status["complete"], 1);
    assert_eq!(stats.windows_by_status["recording"], 1);
    // A read-only store cannot be used to record.
    let filtered = store
        .windows(&WindowFilter {
            status: Some(WindowStatus::Complete),
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].data_points.len(), 3);
}

#[test]
fn trigger_requests_from_other_processes_open_windows_at_the_next_tick() {
    let rig = Rig::file(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    rig.ticks(2, secs(5));
    // Another process (here: another handle) asks for a window.
    let other = Store::open(rig.db_path()).unwrap();
    other
        .request_trigger("a", &Trigger::manual(), t(10))
        .unwrap();
    other
        .request_trigger("", &Trigger::manual(), t(10))
        .unwrap_err();
    rig.recorder.record_sample().unwrap();
    let windows = rig.recorder.windows_for_resource("a", 0).unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].data_points.len(), 3, "buffered samples included");
    let conn = rig.sql();
    let (handled, window): (Option<i64>, Option<String>) = conn
        .query_row(
            "SELECT handled_ms, window_id FROM trigger_requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(handled, Some(T0 + 10_000));
    assert_eq!(window.as_deref(), Some(windows[0].id.as_str()));
    // Handled once only.
    rig.recorder.record_sample().unwrap();
    assert_eq!(
        rig.recorder.windows_for_resource("a", 0).unwrap()[0]
            .triggers
            .len(),
        1
    );
}

#[test]
fn an_in_memory_recorder_needs_no_file_and_shares_its_database_between_readers() {
    let clock = ManualClock::new(t(0));
    let recorder =
        IncidentRecorder::open_with_clock(RecorderConfig::default(), Arc::new(clock.clone()))
            .unwrap();
    let id = recorder.start_recording("a", Trigger::manual()).unwrap();
    recorder
        .push_sample("a", t(1), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    assert_eq!(recorder.window(&id).unwrap().unwrap().data_points.len(), 1);
    assert!(recorder.store().path().is_none());
    // Two in-memory recorders do not see each other.
    let other = IncidentRecorder::open(RecorderConfig::default()).unwrap();
    assert!(other.recent_windows(0).unwrap().is_empty());
}

#[test]
fn a_generated_id_never_collides_with_an_imported_one() {
    let rig = Rig::file(small_config());
    // The id the recorder would give its next window (row 2, opened at t0,
    // with this database's tag): a copy of this database's export, say.
    let tag: String = rig
        .sql()
        .query_row("SELECT tag FROM store_info", [], |r| r.get(0))
        .unwrap();
    let taken = incident_recorder::WindowId::new(format!("iw-20261124100000-{tag}-2"));
    let imported = incident_recorder::IncidentWindow {
        id: taken.clone(),
        resource_id: "elsewhere".into(),
        resource_name: None,
        resource_type: None,
        trigger_type: incident_recorder::TriggerType::Manual,
        trigger_id: None,
        trigger_time: None,
        start_time: t(-100),
        end_time: Some(t(-50)),
        deadline: None,
        status: WindowStatus::Complete,
        notes: Vec::new(),
        triggers: Vec::new(),
        data_points: Vec::new(),
        summary: None,
    };
    assert!(rig.recorder.store().import_window(&imported).unwrap());
    let own = rig.start("a", Trigger::manual());
    assert_ne!(own, taken);
    assert_eq!(own.as_str(), format!("{taken}-2"));
    assert!(rig.recorder.window(&taken).unwrap().is_some());
    assert!(rig.recorder.window(&own).unwrap().is_some());
}

#[test]
fn windows_of_two_databases_never_share_an_id_and_a_colliding_import_is_refused() {
    // Both first windows open in the same second: row 1 in each database.
    let (a, b) = (Rig::file(small_config()), Rig::file(small_config()));
    let wa = a.start("host", Trigger::manual());
    let wb = b.start("host", Trigger::manual());
    assert_ne!(wa, wb, "each database's ids carry its own random tag");
    a.recorder.stop_recording(&wa).unwrap();
    b.recorder.stop_recording(&wb).unwrap();
    let mut from_a = Vec::new();
    a.recorder
        .store()
        .for_each_window(
            &WindowFilter {
                with_points: true,
                ..Default::default()
            },
            |w| {
                from_a.push(w);
                Ok::<_, Error>(())
            },
        )
        .unwrap();
    // Merging: the other database's window goes in beside its own.
    assert!(b.recorder.store().import_window(&from_a[0]).unwrap());
    assert!(
        !b.recorder.store().import_window(&from_a[0]).unwrap(),
        "the same again: skipped"
    );
    assert_eq!(b.recorder.recent_windows(0).unwrap().len(), 2);
    // Another window under an id already taken is refused, not skipped.
    let mut other = from_a[0].clone();
    other.resource_id = "someone-else".into();
    let err = b.recorder.store().import_window(&other).unwrap_err();
    assert!(matches!(err, Error::IdCollision { .. }), "{err}");
    assert!(
        err.to_string().contains("another window under that id"),
        "{err}"
    );
}

/// Windows recording at the same time share one range of point ids (each tick
/// writes a point of each). Each must still get exactly its own points,
/// summary, point list and view rows: when it closes in the recorder that
/// wrote it, when it closes after a restart, and when it is trimmed.
#[test]
fn windows_recorded_together_keep_their_own_points() {
    let resources = ["a", "b", "c", "d", "e", "f"];
    // cpu = 1000 × resource index + call number: a value names its resource
    // and its tick.
    let provider = Scripted::new(&resources, |id, n| {
        let base = f64::from(id.as_bytes()[0] - b'a') * 1000.0;
        Ok(Metrics::new().with("cpu", base + n as f64))
    });
    let rig = Rig::file(RecorderConfig {
        max_windows: 100,
        ..small_config()
    });
    rig.recorder.set_metrics_provider(provider.clone());
    rig.ticks(2, secs(5));
    let first: Vec<_> = resources[..3]
        .iter()
        .map(|r| rig.start(*r, Trigger::manual()))
        .collect();
    rig.ticks(6, secs(5));
    let second: Vec<_> = resources[3..]
        .iter()
        .map(|r| rig.start(*r, Trigger::manual()))
        .collect();
    rig.ticks(8, secs(5));
    for id in &first {
        let w = rig.recorder.window(id).unwrap().unwrap();
        assert_eq!(
            w.status,
            WindowStatus::Complete,
            "{id} closes before the restart"
        );
    }
    let rig = rig.reopen();
    rig.recorder.set_metrics_provider(provider.clone());
    assert_eq!(rig.recorder.stats().active_windows, 3);
    rig.ticks(8, secs(5));
    let recording = rig.start("a", Trigger::manual());
    rig.ticks(1, secs(5));

    let conn = rig.sql();
    let mut kept = 0;
    for (n, id) in first.iter().chain(&second).enumerate() {
        let w = rig.recorder.window(id).unwrap().unwrap();
        assert_eq!(
            w.status,
            WindowStatus::Complete,
            "{id} closes after the restart"
        );
        let cpu: Vec<f64> = w.data_points.iter().map(|p| p.metrics["cpu"]).collect();
        let base = f64::from(w.resource_id.as_bytes()[0] - b'a') * 1000.0;
        assert!(cpu.len() > 12, "{id}: {cpu:?}");
        assert!(
            cpu.iter().all(|v| (base..base + 1000.0).contains(v)),
            "{id} holds another resource's points: {cpu:?}"
        );
        assert!(
            cpu.windows(2).all(|p| p[1] == p[0] + 1.0),
            "{id} misses or repeats a tick: {cpu:?}"
        );
        let s = w.summary.as_ref().unwrap();
        assert_eq!(s.data_points as usize, cpu.len());
        assert_eq!(s.samples["cpu"] as usize, cpu.len());
        assert_eq!(
            (s.lows["cpu"], s.peaks["cpu"]),
            (cpu[0], cpu[cpu.len() - 1])
        );
        let row = |sql: &str| -> i64 { conn.query_row(sql, [id.as_str()], |r| r.get(0)).unwrap() };
        let sealed = row(
            "SELECT count(*) FROM series s JOIN samples v ON v.series_id = s.id
             JOIN windows w ON w.id = s.window_id
             WHERE w.public_id = ?1 AND w.recent_from IS NULL",
        );
        assert_eq!(sealed as usize, cpu.len(), "{id} is sealed, whole");
        let viewed = row("SELECT count(*) FROM incident_samples WHERE window_id = ?1");
        assert_eq!(viewed as usize, cpu.len(), "{id} in the view");
        if n >= 3 {
            kept += cpu.len();
        }
    }
    let open = rig.recorder.window(&recording).unwrap().unwrap();
    let viewed: i64 = conn
        .query_row(
            "SELECT count(*) FROM incident_samples WHERE window_id = ?1 AND status = 'recording'",
            [recording.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(viewed as usize, open.data_points.len());
    assert!(open.data_points.len() > 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM windows WHERE status = 'recording' AND recent_from IS NULL"
        ),
        0,
        "a recording window may still have points in the journal"
    );

    // Trimming to three closed windows deletes the first group and nothing
    // of the others.
    let report = rig
        .recorder
        .store()
        .prune(t(0), secs(10_000_000), 3)
        .unwrap();
    assert_eq!(report.windows, 3);
    assert_no_orphans(&conn);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM incident_samples WHERE status <> 'recording'"
        ) as usize,
        kept
    );
    assert_eq!(count(&conn, POINTS) as usize, kept + open.data_points.len());
    for id in &second {
        let w = rig.recorder.window(id).unwrap().unwrap();
        assert_eq!(w.data_points.len() as u64, w.summary.unwrap().data_points);
    }
}

/// A recording window whose points were all sealed and purged from the
/// journal keeps the points it takes next: the journal's ids are never
/// reused, even once it is empty, so they come after its place in it.
#[test]
fn points_after_a_purge_that_emptied_the_journal_are_kept() {
    let rig = Rig::file(RecorderConfig {
        max_data_points_per_window: 1000,
        post_incident_window: secs(100_000),
        ..small_config()
    });
    let push = |from: i64, to: i64| {
        let samples: Vec<incident_recorder::Sample> = (from..to)
            .map(|k| incident_recorder::Sample {
                resource: incident_recorder::Resource::from("a"),
                timestamp: t(5 * k),
                metrics: Metrics::new().with("cpu", k as f64),
                metadata: None,
            })
            .collect();
        rig.clock.set(t(5 * (to - 1)));
        rig.recorder.push_samples(samples).unwrap();
    };
    rig.clock.set(t(0));
    let a = rig.start("a", Trigger::manual());
    push(0, 200); // one commit of 200 points: sealed whole, the journal purged
    assert_eq!(count(&rig.sql(), "SELECT count(*) FROM recent_points"), 0);
    push(200, 210);
    let w = rig.recorder.window(&a).unwrap().unwrap();
    let cpu: Vec<f64> = w.data_points.iter().map(|p| p.metrics["cpu"]).collect();
    assert_eq!(cpu, (0..210).map(|k| k as f64).collect::<Vec<_>>());
}

/// Windows recorded one after another, each closed, sealed and purged from
/// the journal before the next opens, keep every point: the journal's ids are
/// never reused, even once it is empty.
#[test]
fn windows_recorded_one_after_another_keep_every_point() {
    let rig = Rig::file(RecorderConfig {
        max_data_points_per_window: 150,
        post_incident_window: secs(3600),
        ..small_config()
    });
    let mut ids = Vec::new();
    for w in 0..4i64 {
        let r = format!("r{w}");
        let base = 10_000 * w;
        rig.clock.set(t(base));
        let id = rig.start(&r, Trigger::manual());
        let samples: Vec<incident_recorder::Sample> = (0..150)
            .map(|k| incident_recorder::Sample {
                resource: incident_recorder::Resource::from(r.as_str()),
                timestamp: t(base + 5 * k),
                metrics: Metrics::new().with("cpu", (1000 * w + k) as f64),
                metadata: None,
            })
            .collect();
        rig.clock.set(t(base + 5 * 149));
        rig.recorder.push_samples(samples).unwrap();
        ids.push(id);
        // Everything sealed and purged before the next window opens.
        assert_eq!(count(&rig.sql(), "SELECT count(*) FROM recent_points"), 0);
    }
    for (w, id) in ids.iter().enumerate() {
        let got = rig.recorder.window(id).unwrap().unwrap();
        assert_eq!(got.status, WindowStatus::Truncated, "{id}");
        let cpu: Vec<f64> = got.data_points.iter().map(|p| p.metrics["cpu"]).collect();
        let want: Vec<f64> = (0..150).map(|k| (1000 * w + k) as f64).collect();
        assert_eq!(cpu, want, "{id}");
        assert_eq!(got.summary.unwrap().data_points, 150);
    }
}
