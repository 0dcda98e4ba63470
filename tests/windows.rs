//! Window life cycle: buffering, opening, extending, closing, truncating,
//! holding for alerts. Each seed defect fixed here has a test naming it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use incident_recorder::{
    Error, IncidentWindow, Metrics, ProviderError, RecorderConfig, Trigger, TriggerType,
    WindowStatus,
};

fn window(rig: &Rig, id: &incident_recorder::WindowId) -> IncidentWindow {
    rig.recorder.window(id).unwrap().expect("window exists")
}

fn cpu_series(w: &IncidentWindow) -> Vec<f64> {
    w.data_points.iter().map(|p| p.metrics["cpu"]).collect()
}

fn times(w: &IncidentWindow) -> Vec<i64> {
    w.data_points
        .iter()
        .map(|p| (p.timestamp.as_unix_ms() - T0) / 1000)
        .collect()
}

#[test]
fn defaults_are_the_seeds_and_zero_values_fall_back_to_them() {
    let d = RecorderConfig::default();
    assert_eq!(d.sample_interval, secs(5));
    assert_eq!(d.pre_incident_window, secs(300));
    assert_eq!(d.post_incident_window, secs(600));
    assert_eq!(d.max_data_points_per_window, 500);
    assert_eq!(d.max_windows, 100);
    assert_eq!(d.retention, secs(24 * 3600));
    assert_eq!(d.db_path, None);
    assert!(!d.hold_while_alert_active);

    let zeros = RecorderConfig {
        sample_interval: Duration::ZERO,
        pre_incident_window: Duration::ZERO,
        post_incident_window: Duration::ZERO,
        max_data_points_per_window: 0,
        max_windows: 0,
        retention: Duration::ZERO,
        ..RecorderConfig::default()
    };
    let rig = Rig::memory(zeros);
    assert_eq!(
        rig.recorder.config(),
        &RecorderConfig::default().normalized()
    );
    // Derived defaults: the provider timeout follows the interval (at least 1 s).
    assert_eq!(rig.recorder.config().provider_timeout, secs(5));
    let fast = RecorderConfig {
        sample_interval: Duration::from_millis(100),
        ..RecorderConfig::default()
    };
    assert_eq!(fast.normalized().provider_timeout, secs(1));

    let partial = RecorderConfig {
        max_windows: 7,
        sample_interval: Duration::ZERO,
        ..RecorderConfig::default()
    }
    .normalized();
    assert_eq!(partial.max_windows, 7);
    assert_eq!(partial.sample_interval, secs(5));
}

#[test]
fn buffer_keeps_the_pre_incident_window_and_the_window_starts_at_its_first_sample() {
    let rig = Rig::memory(small_config()); // pre 30 s, 5 s ticks
    let p = Scripted::counting(&["a"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(19, secs(5)); // t0 .. t90
    rig.recorder.record_sample().unwrap(); // t95
    // The buffer keeps the pre-incident window and the allowed lag (one
    // interval), for a trigger that comes late: (t60, t95] holds 65 .. 95.
    assert_eq!(rig.recorder.stats().buffered_points, 7);

    let id = rig.start("a", Trigger::manual());
    assert_eq!(
        rig.recorder.stats().points_written,
        6,
        "buffered points count as written"
    );
    let w = window(&rig, &id);
    assert_eq!(times(&w), vec![70, 75, 80, 85, 90, 95]);
    assert_eq!(
        cpu_series(&w),
        vec![140.0, 150.0, 160.0, 170.0, 180.0, 190.0]
    );
    // The seed set start = now - pre_incident_window (t65), a time with no sample.
    assert_eq!(w.start_time, t(70));
    assert_eq!(w.status, WindowStatus::Recording);
    assert_eq!(w.deadline, Some(t(95 + 60)));
}

#[test]
fn a_window_without_buffered_data_starts_at_the_trigger_and_still_records() {
    let rig = Rig::memory(small_config());
    let p = Scripted::counting(&["a"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.clock.advance(secs(3));
    // "b" is not monitored: no buffer, but the open window makes the recorder
    // ask the provider for it every tick.
    let id = rig.start("b", Trigger::focus());
    let w = window(&rig, &id);
    assert!(w.data_points.is_empty());
    assert_eq!(w.start_time, t(3));
    assert_eq!(w.trigger_type, TriggerType::Focus);

    rig.ticks(4, secs(5));
    assert_eq!(window(&rig, &id).data_points.len(), 4);
    assert_eq!(p.calls("b"), 4);
}

#[test]
fn a_second_trigger_extends_the_open_window_returns_its_id_and_is_recorded() {
    let rig = Rig::memory(small_config()); // post 60 s
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let first = rig.start("a", Trigger::manual());
    rig.ticks(6, secs(5)); // t0..t25, clock at t30
    let second = rig.start("a", Trigger::alert("cpu-high"));
    assert_eq!(first, second);

    let w = window(&rig, &first);
    assert_eq!(w.deadline, Some(t(90)));
    assert_eq!(w.triggers.len(), 2);
    assert!(w.triggers[0].opened_window);
    assert_eq!(w.triggers[1].trigger_type, TriggerType::Alert);
    assert_eq!(w.triggers[1].trigger_id.as_deref(), Some("cpu-high"));
    assert_eq!(w.triggers[1].fired_at, t(30));
    assert!(!w.triggers[1].opened_window);
    // The window keeps the trigger that opened it.
    assert_eq!(w.trigger_type, TriggerType::Manual);

    // Recording continues through t90 (the new deadline) and closes after it.
    rig.ticks(13, secs(5)); // t30..t90
    assert_eq!(window(&rig, &first).status, WindowStatus::Recording);
    rig.recorder.record_sample().unwrap(); // t95
    let w = window(&rig, &first);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(90)));
    assert_eq!(*times(&w).last().unwrap(), 90);
}

#[test]
fn a_window_completes_after_its_deadline_with_a_summary_in_real_milliseconds() {
    let rig = Rig::memory(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(13, secs(5)); // t0..t60: the deadline tick is still recorded
    assert_eq!(window(&rig, &id).status, WindowStatus::Recording);
    rig.ticks(1, secs(5)); // t65 > deadline
    let w = window(&rig, &id);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(60)));
    assert_eq!(w.data_points.len(), 13);
    let s = w.summary.unwrap();
    assert_eq!(s.data_points, 13);
    // The seed wrote a Go time.Duration (nanoseconds) under `duration_ms`.
    assert_eq!(s.duration_ms, 60_000);
    let json = serde_json::to_value(window(&rig, &id)).unwrap();
    assert_eq!(json["summary"]["duration_ms"], 60_000);
}

#[test]
fn a_window_is_truncated_at_max_points() {
    let config = RecorderConfig {
        max_data_points_per_window: 10,
        ..small_config()
    };
    let rig = Rig::memory(config);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(12, secs(5));
    let w = window(&rig, &id);
    assert_eq!(w.status, WindowStatus::Truncated);
    assert_eq!(w.data_points.len(), 10);
    assert_eq!(w.end_time, Some(t(45)));
    assert_eq!(w.summary.unwrap().data_points, 10);
}

#[test]
fn buffered_points_count_toward_max_points() {
    // 6 buffered points, limit 8: two more samples, then truncated.
    let config = RecorderConfig {
        max_data_points_per_window: 8,
        ..small_config()
    };
    let rig = Rig::memory(config);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    rig.ticks(10, secs(5)); // t0..t45; buffer holds t20..t45 at t45
    rig.clock.set(t(45));
    let id = rig.start("a", Trigger::manual());
    assert_eq!(window(&rig, &id).data_points.len(), 6);
    rig.clock.set(t(50));
    rig.ticks(5, secs(5));
    let w = window(&rig, &id);
    assert_eq!(w.data_points.len(), 8);
    assert_eq!(w.status, WindowStatus::Truncated);

    // Limit below the buffer: the newest points fill the window and it closes
    // at once (the seed copied all 6 and went over its own limit).
    let config = RecorderConfig {
        max_data_points_per_window: 4,
        ..small_config()
    };
    let rig = Rig::memory(config);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    rig.ticks(10, secs(5));
    rig.clock.set(t(45));
    let id = rig.start("a", Trigger::manual());
    let w = window(&rig, &id);
    assert_eq!(times(&w), vec![30, 35, 40, 45]);
    assert_eq!(w.status, WindowStatus::Truncated);
    assert_eq!(w.end_time, Some(t(45)));
}

#[test]
fn stop_recording_closes_now_and_tolerates_repeats_but_not_unknown_ids() {
    let rig = Rig::memory(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(3, secs(5)); // t0, t5, t10; clock at t15
    rig.recorder.stop_recording(&id).unwrap();
    let w = window(&rig, &id);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(15)));
    assert_eq!(w.data_points.len(), 3);
    rig.recorder.stop_recording(&id).unwrap();
    let err = rig.recorder.stop_recording(&"iw-nope".into()).unwrap_err();
    assert!(matches!(err, Error::WindowNotFound(_)), "{err}");
    // A new trigger after a stop opens a new window.
    let again = rig.start("a", Trigger::manual());
    assert_ne!(again, id);
}

#[test]
fn the_provider_is_asked_once_per_resource_per_tick() {
    let rig = Rig::memory(small_config());
    let p = Scripted::counting(&["a", "b", "a"]); // a listed twice
    rig.recorder.set_metrics_provider(p.clone());
    rig.start("a", Trigger::manual());
    rig.start("c", Trigger::manual()); // not listed
    rig.ticks(10, secs(5));
    // The seed asked twice for resources with an open window.
    assert_eq!(p.calls("a"), 10);
    assert_eq!(p.calls("b"), 10);
    assert_eq!(p.calls("c"), 10);
    assert_eq!(p.batch_calls.load(std::sync::atomic::Ordering::Relaxed), 10);
}

#[test]
fn buffers_of_resources_no_longer_monitored_are_dropped() {
    let rig = Rig::memory(small_config());
    let p = Scripted::counting(&["a", "b"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(3, secs(5));
    assert_eq!(rig.recorder.stats().resources, 2);
    p.set_ids(&["a"]);
    rig.ticks(1, secs(5));
    let stats = rig.recorder.stats();
    assert_eq!(stats.resources, 1);
    assert_eq!(stats.buffered_points, 4);
    // No longer monitored: a trigger for it is refused rather than opening a
    // window that nothing would ever feed.
    let err = rig
        .recorder
        .start_recording("b", Trigger::manual())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("resource \"b\" is not monitored by this recorder; it monitors \"a\""),
        "{err}"
    );
}

#[test]
fn batch_results_out_of_order_or_missing_fall_back_to_single_calls() {
    struct Partial;
    impl incident_recorder::MetricsProvider for Partial {
        fn current_metrics(&self, id: &str) -> Result<Metrics, ProviderError> {
            Ok(Metrics::new().with("single", id.len() as f64))
        }
        fn monitored_resource_ids(&self) -> Vec<String> {
            vec!["a".into(), "bb".into(), "ccc".into()]
        }
        fn current_metrics_batch(
            &self,
            _: &[String],
        ) -> Vec<(String, Result<Metrics, ProviderError>)> {
            // Reversed, missing "bb", plus an id nobody asked for.
            vec![
                ("ccc".into(), Ok(Metrics::new().with("batch", 3.0))),
                ("zzz".into(), Ok(Metrics::new().with("batch", 9.0))),
                ("a".into(), Ok(Metrics::new().with("batch", 1.0))),
            ]
        }
    }
    let rig = Rig::memory(small_config());
    rig.recorder.set_metrics_provider(Arc::new(Partial));
    rig.recorder.record_sample().unwrap();
    for (id, metric, value) in [
        ("a", "batch", 1.0),
        ("bb", "single", 2.0),
        ("ccc", "batch", 3.0),
    ] {
        let w = rig.start(id, Trigger::manual());
        let w = window(&rig, &w);
        assert_eq!(w.data_points.len(), 1, "{id}");
        assert_eq!(w.data_points[0].metrics[metric], value, "{id}");
    }
    assert_eq!(rig.recorder.stats().resources, 3, "zzz was not listed");
}

#[test]
fn provider_errors_and_panics_skip_only_that_resource() {
    let rig = Rig::memory(small_config());
    let p = Scripted::new(&["good", "bad", "boom"], |id, n| match id {
        "bad" => Err(ProviderError::new("unreachable")),
        "boom" => panic!("provider bug"),
        _ => Ok(Metrics::new().with("cpu", n as f64)),
    });
    rig.recorder.set_metrics_provider(p.clone());
    let id = rig.start("good", Trigger::manual());
    let bad = rig.start("bad", Trigger::manual());
    rig.ticks(5, secs(5));
    assert_eq!(window(&rig, &id).data_points.len(), 5);
    assert!(window(&rig, &bad).data_points.is_empty());
    let stats = rig.recorder.stats();
    assert_eq!(stats.ticks, 5);
    assert_eq!(stats.provider_errors, 5);
    // Each tick: the batch call panics (at "boom"), then "boom" alone panics.
    assert_eq!(stats.provider_panics, 10);
}

#[test]
fn non_finite_values_are_rejected_one_by_one_and_counted() {
    let rig = Rig::memory(small_config());
    let id = rig.start("a", Trigger::manual());
    let m = Metrics::new()
        .with("cpu", f64::NAN)
        .with("memory", 42.5)
        .with("disk", f64::INFINITY)
        .with("swap", f64::NEG_INFINITY)
        .with("", 1.0);
    rig.recorder.push_sample("a", t(1), m, None).unwrap();
    let w = window(&rig, &id);
    assert_eq!(w.data_points.len(), 1);
    assert_eq!(
        w.data_points[0].metrics.iter().collect::<Vec<_>>(),
        vec![(&"memory".to_string(), &42.5)]
    );
    assert_eq!(rig.recorder.stats().rejected_values, 4);

    // A sample with nothing valid left is not a point at all.
    rig.recorder
        .push_sample("a", t(2), Metrics::new().with("cpu", f64::NAN), None)
        .unwrap();
    assert_eq!(window(&rig, &id).data_points.len(), 1);
    assert_eq!(rig.recorder.stats().rejected_values, 5);
}

#[test]
fn samples_going_back_in_time_are_refused() {
    let rig = Rig::memory(small_config());
    let id = rig.start("a", Trigger::manual());
    let m = || Metrics::new().with("cpu", 1.0);
    rig.recorder.push_sample("a", t(10), m(), None).unwrap();
    // The same sample again is a duplicate: skipped, counted, no error.
    rig.recorder.push_sample("a", t(10), m(), None).unwrap();
    // Another value at the same time is refused.
    let err = rig
        .recorder
        .push_sample("a", t(10), Metrics::new().with("cpu", 2.0), None)
        .unwrap_err();
    assert!(matches!(err, Error::ConflictingSample { .. }), "{err}");
    // Within the window's span but not in it: a late sample, refused.
    let err = rig.recorder.push_sample("a", t(9), m(), None).unwrap_err();
    assert!(matches!(err, Error::OutOfOrder { .. }), "{err}");
    assert!(err.to_string().contains("older than"), "{err}");
    // Other resources have their own order.
    rig.recorder.push_sample("b", t(1), m(), None).unwrap();
    assert_eq!(window(&rig, &id).data_points.len(), 1);
    let stats = rig.recorder.stats();
    assert_eq!(
        (stats.out_of_order, stats.duplicates, stats.conflicts),
        (1, 1, 1)
    );
}

#[test]
fn bad_resource_ids_timestamps_and_metadata_are_refused_clearly() {
    let rig = Rig::memory(small_config());
    let m = || Metrics::new().with("cpu", 1.0);
    for bad in [
        String::new(),
        "x".repeat(10 * 1024),
        "a\0b".into(),
        "line\nbreak".into(),
    ] {
        let err = rig
            .recorder
            .push_sample(bad.as_str(), t(0), m(), None)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidResourceId { .. }), "{err}");
        let err = rig
            .recorder
            .start_recording(bad.as_str(), Trigger::manual())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidResourceId { .. }), "{err}");
    }
    let err = rig
        .recorder
        .push_sample(
            "a",
            incident_recorder::Timestamp::from_unix_ms(-1),
            m(),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTimestamp { .. }), "{err}");

    let mut huge = serde_json::Map::new();
    huge.insert("blob".into(), "x".repeat(1 << 20).into());
    let err = rig
        .recorder
        .push_sample("a", t(0), m(), Some(&huge))
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");

    let mut deep = serde_json::Value::Null;
    for _ in 0..200 {
        deep = serde_json::json!({ "d": deep });
    }
    let err = rig
        .recorder
        .push_sample("a", t(0), m(), deep.as_object())
        .unwrap_err();
    assert!(err.to_string().contains("deeper"), "{err}");
    assert_eq!(rig.recorder.stats().samples, 0);
    assert!(rig.recorder.recent_windows(0).unwrap().is_empty());
}

#[test]
fn metadata_is_kept_with_its_sample() {
    let rig = Rig::memory(small_config());
    let meta = serde_json::json!({"alert": {"rule": "cpu>90", "level": 2}, "tags": ["a", "b"]});
    rig.recorder
        .push_sample("a", t(0), Metrics::new().with("cpu", 1.0), meta.as_object())
        .unwrap();
    rig.recorder
        .push_sample("a", t(5), Metrics::new().with("cpu", 2.0), None)
        .unwrap();
    rig.clock.set(t(5));
    let id = rig.start("a", Trigger::manual());
    let w = window(&rig, &id);
    assert_eq!(w.data_points[0].metadata.as_ref(), meta.as_object());
    assert_eq!(w.data_points[1].metadata, None);
}

#[test]
fn sql_looking_and_unicode_resource_ids_round_trip() {
    let rig = Rig::file(small_config());
    let ids = [
        "'; DROP TABLE windows; --",
        "vm-101\"); DELETE FROM data_points; --",
        "Ünïcødé-节点-🚀",
        "%_*?[]{}\\",
    ];
    for (i, id) in ids.iter().enumerate() {
        rig.recorder
            .push_sample(*id, t(i as i64), Metrics::new().with("cpu", i as f64), None)
            .unwrap();
        let w = rig.start(*id, Trigger::manual());
        assert_eq!(window(&rig, &w).resource_id, *id);
        let found = rig.recorder.windows_for_resource(id, 0).unwrap();
        assert_eq!(found.len(), 1, "{id}");
        assert_eq!(found[0].data_points.len(), 1);
    }
    let conn = rig.sql();
    assert_eq!(count(&conn, "SELECT count(*) FROM windows"), 4);
}

#[test]
fn queries_are_most_recent_first_and_limits_count_recording_windows() {
    let rig = Rig::memory(small_config());
    // Closed windows on a (t0) and b (t10), then recording ones on c (t20) and a (t30).
    let w1 = rig.start("a", Trigger::manual());
    rig.recorder.stop_recording(&w1).unwrap();
    rig.clock.set(t(10));
    let w2 = rig.start("b", Trigger::manual());
    rig.recorder.stop_recording(&w2).unwrap();
    rig.clock.set(t(20));
    let w3 = rig.start("c", Trigger::manual());
    rig.clock.set(t(30));
    let w4 = rig.start("a", Trigger::manual());

    let ids = |ws: Vec<IncidentWindow>| ws.into_iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(rig.recorder.recent_windows(0).unwrap()),
        vec![w4.clone(), w3.clone(), w2.clone(), w1.clone()]
    );
    // The seed returned every active window whatever the limit.
    assert_eq!(
        ids(rig.recorder.recent_windows(1).unwrap()),
        vec![w4.clone()]
    );
    assert_eq!(
        ids(rig.recorder.recent_windows(3).unwrap()),
        vec![w4.clone(), w3, w2]
    );
    assert_eq!(
        ids(rig.recorder.windows_for_resource("a", 0).unwrap()),
        vec![w4.clone(), w1]
    );
    assert_eq!(
        ids(rig.recorder.windows_for_resource("a", 1).unwrap()),
        vec![w4]
    );
    assert!(
        rig.recorder
            .windows_for_resource("zzz", 0)
            .unwrap()
            .is_empty()
    );

    // Same start time: the later window (higher id) first, every time.
    rig.clock.set(t(40));
    let x = rig.start("x", Trigger::manual());
    let y = rig.start("y", Trigger::manual());
    for _ in 0..5 {
        assert_eq!(
            ids(rig.recorder.recent_windows(2).unwrap()),
            vec![y.clone(), x.clone()]
        );
    }
}

#[test]
fn alert_windows_can_be_held_until_the_alert_resolves() {
    let config = RecorderConfig {
        hold_while_alert_active: true,
        ..small_config()
    };
    let rig = Rig::memory(config);
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::alert("cpu>90"));
    rig.ticks(25, secs(5)); // t0..t120, far past the t60 deadline
    assert_eq!(window(&rig, &id).status, WindowStatus::Recording);

    assert!(rig.recorder.resolve_trigger("a", "cpu>90").unwrap());
    let w = window(&rig, &id);
    assert_eq!(w.deadline, Some(t(125 + 60)));
    assert_eq!(w.triggers[0].resolved_at, Some(t(125)));
    rig.ticks(13, secs(5)); // t125..t185
    assert_eq!(window(&rig, &id).status, WindowStatus::Recording);
    rig.ticks(1, secs(5)); // t190
    let w = window(&rig, &id);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(185)));
    // Resolving what is not active says so.
    assert!(!rig.recorder.resolve_trigger("a", "cpu>90").unwrap());
    assert!(!rig.recorder.resolve_trigger("a", "other").unwrap());
}

#[test]
fn two_alerts_hold_until_both_resolve_and_the_deadline_never_moves_earlier() {
    let config = RecorderConfig {
        hold_while_alert_active: true,
        ..small_config()
    };
    let rig = Rig::memory(config);
    let id = rig.start("a", Trigger::alert("cpu"));
    rig.clock.set(t(10));
    rig.start("a", Trigger::alert("mem"));
    assert_eq!(window(&rig, &id).deadline, Some(t(70)));
    rig.clock.set(t(20));
    rig.recorder.resolve_trigger("a", "cpu").unwrap();
    assert_eq!(window(&rig, &id).deadline, Some(t(70)), "mem still active");
    rig.clock.set(t(200));
    rig.recorder.record_sample().unwrap();
    assert_eq!(
        window(&rig, &id).status,
        WindowStatus::Recording,
        "held by mem"
    );
    rig.recorder.resolve_trigger("a", "mem").unwrap();
    assert_eq!(window(&rig, &id).deadline, Some(t(260)));
}

#[test]
fn without_hold_alert_windows_close_at_their_deadline_like_the_seed() {
    let rig = Rig::memory(small_config());
    let id = rig.start("a", Trigger::alert("cpu>90"));
    // With no sample of its resource past the deadline (60 s), a tick closes
    // it once the recorder's time is past it by the allowed lag (5 s).
    rig.clock.set(t(65));
    rig.recorder.record_sample().unwrap();
    assert_eq!(window(&rig, &id).status, WindowStatus::Recording);
    rig.clock.set(t(66));
    rig.recorder.record_sample().unwrap();
    assert_eq!(window(&rig, &id).status, WindowStatus::Complete);
    assert_eq!(window(&rig, &id).end_time, Some(t(60)));
    // The resolution is still recorded on the closed window.
    assert!(rig.recorder.resolve_trigger("a", "cpu>90").unwrap());
    assert_eq!(window(&rig, &id).triggers[0].resolved_at, Some(t(66)));
}

#[test]
fn thousands_of_windows_opened_concurrently_get_distinct_ids() {
    let rig = Arc::new(Rig::memory(small_config()));
    let threads: Vec<_> = (0..8)
        .map(|th| {
            let rig = Arc::clone(&rig);
            std::thread::spawn(move || {
                (0..250)
                    .map(|i| rig.start(format!("r-{th}-{i}").as_str(), Trigger::manual()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<_> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 2000);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "every window id is distinct");
    assert_eq!(rig.recorder.recent_windows(0).unwrap().len(), 2000);
}

#[test]
fn a_trigger_after_the_deadline_opens_a_new_window_even_before_a_tick() {
    let rig = Rig::memory(small_config()); // post 60 s
    let first = rig.start("a", Trigger::manual());
    rig.recorder
        .push_sample("a", t(30), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    // No tick ran since the deadline (t60) passed: the window has ended all
    // the same, and a new trigger must not revive it.
    rig.clock.set(t(90));
    let second = rig.start("a", Trigger::alert("cpu"));
    assert_ne!(first, second);
    let w = window(&rig, &first);
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(t(60)));
    assert_eq!(w.triggers.len(), 1);
    assert_eq!(window(&rig, &second).deadline, Some(t(150)));
}
