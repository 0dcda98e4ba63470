//! The library's push mode under `ingest`: triggers at their own time,
//! replays that add nothing, buffers that survive a clean stop.

mod common;

use common::*;
use incident_recorder::{
    Error, InputClock, ManualClock, Metrics, RecorderConfig, Timestamp, Trigger, TriggerAction,
    WindowStatus,
};

fn cpu(v: f64) -> Metrics {
    Metrics::new().with("cpu", v)
}

/// `small_config` (5 s, 30 s before, 60 s after) on a file.
fn rig() -> Rig {
    Rig::file(small_config())
}

#[test]
fn buffers_survive_a_clean_stop_and_fill_the_next_window() {
    let rig = rig();
    for s in (0..=25).step_by(5) {
        rig.recorder
            .push_sample("a", t(s), cpu(s as f64), None)
            .unwrap();
    }
    rig.clock.set(t(25));
    let rig = rig.reopen(); // a clean stop: buffers saved
    assert_eq!(rig.recorder.recovery().restored_buffers, 1);
    rig.clock.set(t(30));
    let id = rig
        .recorder
        .start_recording("a", Trigger::manual())
        .unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    let times: Vec<Timestamp> = w.data_points.iter().map(|p| p.timestamp).collect();
    assert_eq!(times, [t(5), t(10), t(15), t(20), t(25)], "the 30 s before");

    // A crash saves nothing: the next window starts empty.
    rig.recorder
        .push_sample("b", t(30), cpu(1.0), None)
        .unwrap();
    let rig = rig.crash_and_reopen();
    assert_eq!(rig.recorder.recovery().restored_buffers, 0);
    let id = rig
        .recorder
        .start_recording("b", Trigger::manual())
        .unwrap();
    assert!(
        rig.recorder
            .window(&id)
            .unwrap()
            .unwrap()
            .data_points
            .is_empty()
    );
}

#[test]
fn saved_buffers_older_than_the_pre_incident_window_are_not_restored() {
    let rig = rig();
    rig.recorder.push_sample("a", t(0), cpu(1.0), None).unwrap();
    rig.clock.set(t(300));
    let rig = rig.reopen();
    assert_eq!(rig.recorder.recovery().restored_buffers, 0);
    assert_eq!(rig.recorder.stats().buffered_points, 0);
}

#[test]
fn a_trigger_dated_earlier_takes_its_own_pre_window_and_deadline() {
    // Triggers may come up to two minutes late (an alert notified after it
    // started): buffers keep the pre-incident window and that much more.
    let rig = Rig::file(RecorderConfig {
        max_source_lag: secs(120),
        ..small_config()
    });
    // `a` is at +100 s, but the trigger happened at +40 s.
    for s in (0..=100).step_by(5) {
        rig.recorder
            .push_sample("a", t(s), cpu(s as f64), None)
            .unwrap();
    }
    rig.clock.set(t(100));
    let outcome = rig
        .recorder
        .record_trigger("a", Trigger::alert("late"), Some(t(40)))
        .unwrap();
    assert_eq!(outcome.action, TriggerAction::Opened);
    let w = rig.recorder.window(&outcome.window).unwrap().unwrap();
    assert_eq!(w.trigger_time, Some(t(40)));
    assert_eq!(w.triggers[0].fired_at, t(40));
    assert_eq!(w.deadline, Some(t(100)));
    assert_eq!(w.start_time, t(15), "the 30 s before the trigger");
    assert_eq!(w.data_points.len(), 18, "+15..+100, already buffered");

    // The same trigger again is already recorded: nothing changes.
    let again = rig
        .recorder
        .record_trigger("a", Trigger::alert("late"), Some(t(40)))
        .unwrap();
    assert_eq!(
        (again.window, again.action),
        (outcome.window.clone(), TriggerAction::AlreadyRecorded)
    );
    let w2 = rig.recorder.window(&outcome.window).unwrap().unwrap();
    assert_eq!(w2.triggers.len(), 1);

    // A resolve dated before the alert fired clears nothing; one after does,
    // and holds the deadline at resolution + post window.
    assert!(
        !rig.recorder
            .resolve_trigger_at("a", "late", Some(t(39)))
            .unwrap()
    );
    assert!(
        rig.recorder
            .resolve_trigger_at("a", "late", Some(t(90)))
            .unwrap()
    );
    assert!(
        !rig.recorder
            .resolve_trigger_at("a", "late", Some(t(90)))
            .unwrap(),
        "the same resolve again: a replay"
    );
}

#[test]
fn a_replayed_sample_is_a_duplicate_and_another_value_a_conflict() {
    let rig = rig();
    let id = rig.start("a", Trigger::manual());
    for s in (0..=20).step_by(5) {
        rig.recorder
            .push_sample("a", t(s), cpu(s as f64), None)
            .unwrap();
    }
    let rig = rig.crash_and_reopen(); // as an ingest killed part way
    let replay: Vec<incident_recorder::Sample<'_>> = (0..=30)
        .step_by(5)
        .map(|s| incident_recorder::Sample {
            resource: "a".into(),
            timestamp: t(s),
            metrics: cpu(if s == 10 { 99.0 } else { s as f64 }),
            metadata: None,
        })
        .collect();
    let report = rig.recorder.push_samples(replay).unwrap();
    assert_eq!(report.duplicates, 4, "+0, +5, +15, +20");
    assert_eq!(report.accepted, 2, "+25, +30 are new");
    assert_eq!(report.rejected.len(), 1);
    assert!(matches!(
        report.rejected[0],
        (2, Error::ConflictingSample { .. })
    ));
    let w = rig.recorder.window(&id).unwrap().unwrap();
    let values: Vec<f64> = w.data_points.iter().map(|p| p.metrics["cpu"]).collect();
    assert_eq!(values, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
}

#[test]
fn an_input_clock_refuses_times_beyond_the_wall_clock_and_never_goes_back() {
    let wall = ManualClock::new(t(0));
    let clock = InputClock::with_wall(t(-3600), wall.clone());
    clock.advance_to(t(-60)).unwrap();
    clock.advance_to(t(-120)).unwrap();
    assert_eq!(incident_recorder::Clock::now(&clock), t(-60));
    clock.advance_to(t(600)).unwrap();
    let err = clock.advance_to(t(601)).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "timestamp 2026-11-24T10:10:01.000Z is more than 10 minutes ahead of the wall clock"
        ),
        "{err}"
    );
    assert_eq!(incident_recorder::Clock::now(&clock), t(600));
}

#[test]
fn a_clean_stop_closes_past_windows_as_complete_and_a_crash_as_interrupted() {
    let config = RecorderConfig {
        hold_while_alert_active: true,
        ..small_config()
    };
    let rig = Rig::file(config);
    let held = rig.start("a", Trigger::alert("x"));
    let plain = rig.start("b", Trigger::manual());
    rig.clock.set(t(500));
    let rig = rig.reopen();
    let r = rig.recorder.recovery();
    assert!(r.clean_stop);
    assert_eq!(r.closed, vec![(plain.clone(), WindowStatus::Complete)]);
    assert_eq!(
        r.resumed,
        vec![held.clone()],
        "an unresolved alert holds it"
    );
    let w = rig.recorder.window(&plain).unwrap().unwrap();
    assert_eq!(w.end_time, Some(t(60)));
}
