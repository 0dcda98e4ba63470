//! Anomalies in closed windows, the anomaly detector, and trigger rate limits.

mod common;

use std::collections::BTreeMap;

use common::*;
use incident_recorder::{
    AnomalyConfig, Error, IncidentSummary, Metrics, RecorderConfig, Trigger, TriggerType,
    WindowStatus,
};

fn config() -> RecorderConfig {
    RecorderConfig {
        pre_incident_window: secs(300),
        post_incident_window: secs(3600),
        ..small_config()
    }
}

/// Pushes `before` values 5 s apart from t0, triggers at the next slot, pushes
/// `after` values, closes the window and returns its summary and the rig.
fn window_with(before: &[f64], after: &[f64], config: RecorderConfig) -> (IncidentSummary, Rig) {
    let rig = Rig::file(config);
    let push = |v: f64, at: i64| {
        let m = Metrics::new().with("cpu", v).with("memory", 50.0);
        rig.recorder.push_sample("vm", t(at), m, None).unwrap();
    };
    let mut at = 0;
    for v in before {
        push(*v, at);
        at += 5;
    }
    rig.clock.set(t(at));
    let id = rig.start("vm", Trigger::alert("cpu"));
    for v in after {
        push(*v, at);
        at += 5;
    }
    rig.clock.set(t(at));
    rig.recorder.stop_recording(&id).unwrap();
    let summary = rig.recorder.window(&id).unwrap().unwrap().summary.unwrap();
    (summary, rig)
}

/// 30, 32, 30, 32...: median 31, MAD 1, robust sigma 1.4826.
fn alternating(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 2 == 0 { 30.0 } else { 32.0 })
        .collect()
}

#[test]
fn a_known_spike_gives_exactly_the_expected_anomalies() {
    let after = [31.0, 31.0, 33.0, 31.0, 97.2, 20.0, 31.0, 32.0];
    let (s, rig) = window_with(&alternating(20), &after, config());
    // Baseline: 20 points before the trigger at t100. Scores: 66.2 / 1.4826 = 44.65
    // and -11 / 1.4826 = -7.42; 33 scores 1.35, under 3.5. Memory is flat: none.
    assert_eq!(
        s.anomalies,
        vec![
            "cpu 97.2 at 10:02:00, 44.7 MADs above baseline 31.0".to_string(),
            "cpu 20.0 at 10:02:05, 7.4 MADs below baseline 31.0".to_string(),
        ]
    );
    let conn = rig.sql();
    let rows: Vec<(String, i64, f64, f64)> = conn
        .prepare(
            "SELECT m.name, a.ts_ms, a.value, a.score FROM window_anomalies a
             JOIN metrics m ON m.id = a.metric_id ORDER BY a.ts_ms",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2),
        ("cpu", T0 + 120_000, 97.2)
    );
    assert!((rows[0].3 - 66.2 / 1.4826).abs() < 1e-9);
    assert!((rows[1].3 + 11.0 / 1.4826).abs() < 1e-9);
    // They reach the digest too.
    let id = rig.recorder.recent_windows(1).unwrap()[0].id.clone();
    let text = rig
        .recorder
        .format_for_context(None, Some(&id))
        .unwrap()
        .unwrap();
    assert!(
        text.contains("Anomalies (2 samples far from the pre-incident baseline, robust score):\n- cpu: 2 samples; strongest: cpu 97.2 at 10:02:00, 44.7 MADs above baseline 31.0\n"),
        "{text}"
    );
    let cpu = &s.anomalies_by_metric["cpu"];
    assert_eq!(
        (cpu.samples, cpu.strongest.as_str()),
        (2, "cpu 97.2 at 10:02:00, 44.7 MADs above baseline 31.0")
    );
    assert_eq!(rig.recorder.store().stats().unwrap().anomalies, 2);
}

#[test]
fn a_flat_series_has_no_anomalies_and_no_division_by_zero() {
    let (s, _rig) = window_with(&[42.0; 20], &[42.0; 10], config());
    assert!(s.anomalies.is_empty());
    // All-zero: no spread at all, nothing can be scored (no division by zero).
    let (s, _rig) = window_with(&[0.0; 20], &[0.0, 90.0, 0.0], config());
    assert!(s.anomalies.is_empty());
    // A flat non-zero baseline scores against 1% of its level: a jump from
    // 42 to 90 stands out (48 / 0.42 = 114.3), a wobble to 43 does not (2.4).
    let (s, _rig) = window_with(&[42.0; 20], &[42.0, 43.0, 90.0, 42.0], config());
    assert_eq!(
        s.anomalies,
        vec!["cpu 90.0 at 10:01:50, 114.3 MADs above baseline 42.0".to_string()]
    );
}

#[test]
fn noise_within_the_threshold_is_not_anomalous() {
    let noise = |i: usize| 31.0 + 2.0 * ((i as f64) * 1.3).sin();
    let before: Vec<f64> = (0..30).map(noise).collect();
    let after: Vec<f64> = (30..60).map(noise).collect();
    let (s, _rig) = window_with(&before, &after, config());
    assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
}

#[test]
fn fewer_than_ten_baseline_points_flag_nothing() {
    let (s, _rig) = window_with(&alternating(9), &[31.0, 500.0], config());
    assert!(s.anomalies.is_empty());
    let (s, _rig) = window_with(&alternating(10), &[31.0, 500.0], config());
    assert_eq!(s.anomalies.len(), 1);
}

#[test]
fn thresholds_are_configurable_per_metric() {
    let mut metric_thresholds = BTreeMap::new();
    metric_thresholds.insert("cpu".to_string(), 50.0);
    let config = RecorderConfig {
        anomaly: AnomalyConfig {
            metric_thresholds,
            ..AnomalyConfig::default()
        },
        ..config()
    };
    let (s, _rig) = window_with(&alternating(20), &[97.2, 20.0, 120.0], config);
    // 44.7 and 7.4 are under 50 for cpu; 120 scores 60.
    assert_eq!(
        s.anomalies,
        vec!["cpu 120.0 at 10:01:50, 60.0 MADs above baseline 31.0".to_string()]
    );
}

fn detecting() -> RecorderConfig {
    RecorderConfig {
        anomaly: AnomalyConfig {
            detect: true,
            ..AnomalyConfig::default()
        },
        ..config()
    }
}

#[test]
fn the_detector_opens_one_window_for_a_sustained_anomaly() {
    let rig = Rig::memory(RecorderConfig {
        post_incident_window: secs(60),
        ..detecting()
    });
    // cpu: 30/32 for 40 ticks, one lone spike at tick 20, then 95 from tick 40.
    rig.recorder
        .set_metrics_provider(Scripted::new(&["vm", "calm"], |id, n| {
            let cpu = match (id, n) {
                ("vm", 20) => 99.0,
                ("vm", n) if n >= 40 => 95.0,
                (_, n) => 30.0 + 2.0 * (n % 2) as f64,
            };
            Ok(Metrics::new().with("cpu", cpu).with("memory", 40.0))
        }));
    rig.ticks(42, secs(5)); // ticks 0..41: two anomalous samples, not yet three
    assert!(
        rig.recorder.recent_windows(0).unwrap().is_empty(),
        "a lone spike or two is not enough"
    );
    rig.ticks(1, secs(5)); // tick 42: the third anomalous sample in a row
    let windows = rig.recorder.recent_windows(0).unwrap();
    assert_eq!(windows.len(), 1);
    let w = &windows[0];
    assert_eq!(w.resource_id, "vm");
    assert_eq!(w.trigger_type, TriggerType::Anomaly);
    assert_eq!(w.trigger_id.as_deref(), Some("cpu"));
    assert_eq!(w.status, WindowStatus::Recording);
    assert_eq!(w.triggers.len(), 1);
    let last = w.data_points.last().unwrap();
    assert_eq!((last.timestamp, last.metrics["cpu"]), (t(210), 95.0));
    // The anomaly goes on past the window's end: still one window, not one
    // per anomalous sample nor one per deadline.
    rig.ticks(20, secs(5));
    let windows = rig.recorder.recent_windows(0).unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].status, WindowStatus::Complete);
}

#[test]
fn the_detector_is_off_by_default() {
    let rig = Rig::memory(config());
    rig.recorder
        .set_metrics_provider(Scripted::new(&["vm"], |_, n| {
            let cpu = if n >= 40 {
                95.0
            } else {
                30.0 + 2.0 * (n % 2) as f64
            };
            Ok(Metrics::new().with("cpu", cpu))
        }));
    rig.ticks(60, secs(5));
    assert!(rig.recorder.recent_windows(0).unwrap().is_empty());
}

#[test]
fn the_daily_limit_suppresses_and_records_triggers() {
    let config = RecorderConfig {
        max_windows_per_resource_per_day: 2,
        ..config()
    };
    let rig = Rig::file(config);
    let first = rig.start("vm", Trigger::manual());
    rig.recorder.stop_recording(&first).unwrap();
    rig.clock.set(t(3600));
    let second = rig.start("vm", Trigger::alert("cpu"));
    // Extending the open window is not a new window: allowed.
    rig.clock.set(t(3700));
    assert_eq!(rig.start("vm", Trigger::alert("mem")), second);
    rig.recorder.stop_recording(&second).unwrap();

    rig.clock.set(t(7200));
    let err = rig
        .recorder
        .start_recording("vm", Trigger::alert("disk"))
        .unwrap_err();
    assert!(matches!(err, Error::Suppressed { limit: 2, .. }), "{err}");
    assert!(err.to_string().contains("24 hours"), "{err}");
    // Other resources have their own budget.
    rig.start("other", Trigger::manual());

    let conn = rig.sql();
    let (window, resource, kind, id, fired): (Option<i64>, String, String, String, i64) = conn
        .query_row(
            "SELECT t.window_id, r.external_id, t.trigger_type, t.trigger_id, t.fired_ms
             FROM window_triggers t JOIN resources r ON r.id = t.resource_id
             WHERE t.suppressed = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (window, resource.as_str(), kind.as_str(), id.as_str()),
        (None, "vm", "alert", "disk")
    );
    assert_eq!(fired, T0 + 7_200_000);
    assert_eq!(rig.recorder.store().stats().unwrap().suppressed_triggers, 1);
    assert_eq!(rig.recorder.windows_for_resource("vm", 0).unwrap().len(), 2);

    // 24 hours after the first window opened, one slot is free again.
    rig.clock.set(t(24 * 3600 + 1));
    rig.start("vm", Trigger::manual());
    assert!(
        rig.recorder
            .start_recording("vm", Trigger::manual())
            .is_ok(),
        "extends"
    );
    assert_eq!(rig.recorder.windows_for_resource("vm", 0).unwrap().len(), 3);
}

#[test]
fn a_version_1_database_is_upgraded_with_its_triggers() {
    mod v1 {
        refinery::embed_migrations!("migrations");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut c = rusqlite::Connection::open(&path).unwrap();
        v1::migrations::runner()
            .set_grouped(true)
            .set_target(refinery::Target::Version(1))
            .run(&mut c)
            .unwrap();
        c.execute_batch(
            "INSERT INTO resources (id, external_id) VALUES (1, 'vm-7');
             INSERT INTO metrics (id, name) VALUES (1, 'cpu');
             INSERT INTO windows (id, public_id, resource_id, trigger_type, start_ms, end_ms,
                                  deadline_ms, status, opened_ms)
                  VALUES (1, 'iw-old-1', 1, 'alert', 1000, 2000, 5000, 'complete', 1000),
                         (2, 'iw-old-2', 1, 'manual', 1500, NULL, 9000, 'recording', 1500),
                         (3, 'iw-old-3', 1, 'manual', 1600, 1600, 9000, 'complete', 1600);
             INSERT INTO window_triggers (window_id, trigger_type, trigger_id, fired_ms, opened_window)
                  VALUES (1, 'alert', 'cpu', 1000, 1);
             -- interleaved, as ticks write them
             INSERT INTO data_points (id, window_id, ts_ms) VALUES (1, 1, 1000), (2, 2, 1500), (3, 1, 2000);
             INSERT INTO point_values VALUES (1, 1, 10.0), (2, 1, 20.0), (3, 1, 30.0);",
        )
        .unwrap();
    }
    let recorder = incident_recorder::IncidentRecorder::open(RecorderConfig {
        retention: secs(u32::MAX as u64 * 1000),
        ..RecorderConfig::with_db_path(&path)
    })
    .unwrap();
    let w = recorder.window(&"iw-old-1".into()).unwrap().unwrap();
    assert_eq!(w.triggers.len(), 1);
    assert_eq!(w.triggers[0].trigger_id.as_deref(), Some("cpu"));
    // V3 gave every window its point-id range and V4 listed the closed
    // windows' points: the points are all found.
    let cpu = |id: &str| -> Vec<f64> {
        let w = recorder.window(&id.into()).unwrap().unwrap();
        w.data_points.iter().map(|p| p.metrics["cpu"]).collect()
    };
    assert_eq!(cpu("iw-old-1"), vec![10.0, 30.0]);
    assert_eq!(cpu("iw-old-3"), Vec::<f64>::new());
    // The recording window (deadline long past) was closed as interrupted
    // with its one point.
    let old2 = recorder.window(&"iw-old-2".into()).unwrap().unwrap();
    assert_eq!(old2.status, WindowStatus::Interrupted);
    assert_eq!(cpu("iw-old-2"), vec![20.0]);
    let version: i64 = sql(&path)
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, incident_recorder::Store::schema_version());
}
