//! `commit_interval` (`--commit-interval`): points wait in memory until the
//! interval has passed since the last commit, then land in one commit; a
//! clean stop commits what waits.

mod common;

use common::{Rig, Scripted, secs, small_config, t};
use incident_recorder::{Metrics, RecorderConfig, Trigger};

fn config(interval: u64) -> RecorderConfig {
    RecorderConfig {
        commit_interval: secs(interval),
        ..small_config()
    }
}

fn points(rig: &Rig, id: &incident_recorder::WindowId) -> usize {
    rig.recorder.window(id).unwrap().unwrap().data_points.len()
}

#[test]
fn ticks_commit_once_the_interval_passed_and_a_clean_stop_loses_nothing() {
    let rig = Rig::file(config(30));
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["vm"]));
    rig.ticks(3, secs(5)); // t = 0, 5, 10: buffered
    let id = rig.start("vm", Trigger::manual()); // t = 15: opens with them
    assert_eq!(
        points(&rig, &id),
        3,
        "a window opens with its buffered points"
    );
    rig.ticks(3, secs(5)); // t = 15, 20, 25
    assert_eq!(
        points(&rig, &id),
        3,
        "within 30 s of the last commit (the open, at 0) the tick's points wait"
    );
    assert_eq!(rig.recorder.stats().pending_points, 3);
    rig.ticks(1, secs(5)); // t = 30: due
    assert_eq!(points(&rig, &id), 7, "the interval passed: all of them");
    assert_eq!(rig.recorder.stats().pending_points, 0);
    rig.ticks(2, secs(5)); // t = 35, 40
    assert_eq!(points(&rig, &id), 7);
    assert_eq!(rig.recorder.stats().pending_points, 2);
    let rig = rig.reopen(); // a clean stop, then the next recorder
    assert_eq!(
        points(&rig, &id),
        9,
        "the clean stop committed the waiting points"
    );
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["vm"]));
    rig.ticks(1, secs(5));
    assert_eq!(points(&rig, &id), 9);
    rig.recorder.sync().unwrap();
    assert_eq!(points(&rig, &id), 10, "sync commits what waits");
}

#[test]
fn pushed_samples_wait_for_the_interval_as_ticks_do() {
    let rig = Rig::file(config(60));
    let cpu = |v: f64| Metrics::new().with("cpu", v);
    rig.recorder
        .push_sample("vm", t(0), cpu(1.0), None)
        .unwrap();
    let id = rig.start("vm", Trigger::manual());
    for s in 1..=11 {
        rig.clock.set(t(5 * s));
        rig.recorder
            .push_sample("vm", t(5 * s), cpu(s as f64), None)
            .unwrap();
    }
    assert_eq!(points(&rig, &id), 1, "55 s after the last commit");
    rig.clock.set(t(60));
    rig.recorder
        .push_sample("vm", t(60), cpu(12.0), None)
        .unwrap();
    assert_eq!(points(&rig, &id), 13);
    // Without an interval every push commits.
    let every = Rig::file(small_config());
    every
        .recorder
        .push_sample("vm", t(0), cpu(1.0), None)
        .unwrap();
    let id = every.start("vm", Trigger::manual());
    every.clock.set(t(5));
    every
        .recorder
        .push_sample("vm", t(5), cpu(2.0), None)
        .unwrap();
    assert_eq!(points(&every, &id), 2);
}

#[test]
fn stopping_a_window_commits_its_waiting_points() {
    let rig = Rig::file(config(600));
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["vm"]));
    let id = rig.start("vm", Trigger::manual());
    rig.ticks(4, secs(5));
    assert_eq!(points(&rig, &id), 0);
    rig.recorder.stop_recording(&id).unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.data_points.len(), 4);
    assert_ne!(w.status, incident_recorder::WindowStatus::Recording);
}
