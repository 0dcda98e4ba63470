//! The sampling thread: start/stop from any thread, nothing lost on stop.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use incident_recorder::{Metrics, RecorderConfig, Trigger};

fn fast_config() -> RecorderConfig {
    RecorderConfig {
        sample_interval: Duration::from_millis(1),
        post_incident_window: secs(3600),
        ..RecorderConfig::default()
    }
}

#[test]
fn stop_waits_for_the_thread_and_leaves_no_sample_unsaved() {
    let rig = Rig::file(fast_config());
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let tx = std::sync::Mutex::new(Some(tx));
    // Every tick samples at a new time (a resource takes one sample per
    // timestamp): the provider moves the manual clock on.
    let clock = rig.clock.clone();
    let p = Scripted::new(&["a", "b"], move |id, n| {
        if id == "a" {
            clock.advance(Duration::from_millis(1));
        }
        if id == "a"
            && n == 25
            && let Some(tx) = tx.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
        Ok(Metrics::new().with("n", n as f64))
    });
    rig.recorder.set_metrics_provider(p.clone());
    let id = rig.start("a", Trigger::manual());
    rig.recorder.start().unwrap();
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the thread ticks");
    rig.recorder.stop().unwrap();

    let sampled = p.calls("a");
    assert!(sampled > 25);
    let w = rig.recorder.window(&id).unwrap().unwrap();
    // Every sample the thread took for the window is in the database...
    assert_eq!(w.data_points.len(), sampled);
    let ns: Vec<f64> = w.data_points.iter().map(|d| d.metrics["n"]).collect();
    assert_eq!(ns, (0..sampled).map(|n| n as f64).collect::<Vec<_>>());
    // ...and the thread is gone: no tick after stop() returned.
    rig.recorder.record_sample().unwrap();
    assert_eq!(p.calls("a"), sampled + 1);
}

#[test]
fn start_and_stop_are_idempotent_from_any_thread() {
    let rig = Arc::new(Rig::memory(fast_config()));
    rig.recorder.stop().unwrap(); // never started
    rig.recorder.start().unwrap();
    rig.recorder.start().unwrap();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let rig = Arc::clone(&rig);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    if i % 2 == 0 {
                        rig.recorder.start().unwrap();
                    } else {
                        rig.recorder.stop().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    rig.recorder.stop().unwrap();
    rig.recorder.stop().unwrap();
    let before = rig.recorder.stats().ticks;
    rig.recorder.record_sample().unwrap();
    assert_eq!(
        rig.recorder.stats().ticks,
        before + 1,
        "no thread left ticking"
    );
}

#[test]
fn dropping_a_running_recorder_stops_its_thread() {
    let rig = Rig::file(fast_config());
    let p = Scripted::counting(&["a"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.recorder.start().unwrap();
    let Rig { recorder, dir, .. } = rig;
    drop(recorder);
    let after_drop = p.calls("a");
    // If the thread outlived the recorder it would keep calling the provider;
    // a clean join also released the database lock.
    let path = dir.as_ref().unwrap().path().join("incidents.db");
    let again =
        incident_recorder::IncidentRecorder::open(RecorderConfig::with_db_path(path)).unwrap();
    drop(again);
    assert_eq!(p.calls("a"), after_drop);
}

/// A stop by window id follows the rule of a stop by resource: it applies to
/// a window that was open at the stop's time (by id, an earlier stop is
/// refused rather than closing the window at a time it did not exist).
#[test]
fn a_stop_by_id_applies_to_a_window_open_at_its_time_as_a_stop_by_resource_does() {
    let rig = Rig::memory(small_config());
    rig.clock.set(t(20));
    for s in [0, 5, 10, 15, 20] {
        rig.recorder
            .push_sample("vm", t(s), Metrics::new().with("cpu", s as f64), None)
            .unwrap();
    }
    let id = rig
        .recorder
        .start_recording_at("vm", Trigger::manual(), t(10))
        .unwrap();
    let err = rig.recorder.stop_recording_at(&id, Some(t(5))).unwrap_err();
    assert!(
        matches!(err, incident_recorder::Error::InvalidTimestamp { .. }),
        "{err}"
    );
    assert_eq!(
        rig.recorder.stop_resource_at("vm", Some(t(5))).unwrap(),
        None
    );
    assert_eq!(rig.recorder.recording_window("vm"), Some(id.clone()));
    rig.recorder.stop_recording_at(&id, Some(t(12))).unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.status, incident_recorder::WindowStatus::Complete);
    assert_eq!(
        w.end_time,
        Some(t(20)),
        "its last point, later than the stop"
    );
}

/// A point older than a window's start (a resource whose samples lag its
/// trigger) moves the start back to it: the closed window starts at its
/// first point, also when a restart came in between.
#[test]
fn a_window_starts_at_its_first_point_even_one_that_came_after_the_trigger() {
    let rig = Rig::file(small_config());
    rig.clock.set(t(30));
    let id = rig.start("vm", Trigger::manual()); // nothing buffered: starts at 30 s
    for s in [25, 30] {
        rig.recorder
            .push_sample("vm", t(s), Metrics::new().with("cpu", 1.0), None)
            .unwrap();
    }
    let rig = rig.reopen();
    rig.recorder
        .push_sample("vm", t(35), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    rig.recorder.stop_recording(&id).unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.data_points.len(), 3);
    assert_eq!(w.start_time, t(25));
    assert_eq!(w.end_time, Some(t(35)));
}
