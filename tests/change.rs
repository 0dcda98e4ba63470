//! Change scores stored with a closed window's statistics (issue 20 part 2):
//! ranked so SQL can `ORDER BY` them, in the JSON, and computed on read for
//! a recording window and for one closed before store version 12.

mod common;

use common::*;
use incident_recorder::{IncidentSummary, Metrics, RecorderConfig, Trigger, WindowStatus};

fn config() -> RecorderConfig {
    RecorderConfig {
        pre_incident_window: secs(300),
        post_incident_window: secs(3600),
        ..small_config()
    }
}

/// 12 samples before a trigger and 12 after, 5 s apart: `cpu` jumps from
/// about 20 to about 90, `memory` holds at about 50, `late` appears with the
/// trigger. Returns the rig and the window's id, left recording.
fn recording() -> (Rig, incident_recorder::WindowId) {
    let rig = Rig::file(config());
    let push = |i: i64, cpu: f64| {
        let mut m = Metrics::new()
            .with("cpu", cpu + (i % 3) as f64)
            .with("memory", 50.0 + (i % 2) as f64);
        if i >= 12 {
            m = m.with("late", 1.0);
        }
        rig.recorder.push_sample("vm", t(5 * i), m, None).unwrap();
    };
    for i in 0..12 {
        push(i, 20.0);
    }
    rig.clock.set(t(60));
    let id = rig.start("vm", Trigger::alert("cpu"));
    for i in 12..24 {
        push(i, 90.0);
    }
    rig.clock.set(t(120));
    (rig, id)
}

fn ranks(s: &IncidentSummary) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = s
        .change_scores
        .iter()
        .map(|(m, c)| (m.clone(), c.rank))
        .collect();
    v.sort_by_key(|x| x.1);
    v
}

#[test]
fn a_closed_window_stores_scores_and_ranks_sql_can_order_by() {
    let (rig, id) = recording();
    rig.recorder.stop_recording(&id).unwrap();
    let names: Vec<(String, Option<f64>, Option<String>)> = rig
        .sql()
        .prepare(
            "SELECT m.name, s.change_score, s.change_unscored FROM window_metric_stats s
             JOIN metrics m ON m.id = s.metric_id ORDER BY s.change_rank",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let order: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
    assert_eq!(order, ["cpu", "memory", "late"]);
    // cpu: baseline 20, 21, 22 repeated: median 21, MAD 1 (sigma 1.4826);
    // its 90th percentile after, 92: (92 - 21) / 1.4826.
    assert!(
        (names[0].1.unwrap() - 71.0 / 1.4826).abs() < 1e-6,
        "{names:?}"
    );
    assert_eq!(names[2].1, None);
    assert_eq!(names[2].2.as_deref(), Some("no values before the trigger"));
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(
        ranks(w.summary.as_ref().unwrap()),
        [("cpu".into(), 1), ("memory".into(), 2), ("late".into(), 3)]
    );
}

#[test]
fn a_recording_window_is_scored_on_read() {
    let (rig, id) = recording();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Recording);
    let s = w.summary.unwrap();
    assert_eq!(ranks(&s)[0], ("cpu".into(), 1));
    assert!(s.change_scores["cpu"].score.unwrap() > 40.0);
}

#[test]
fn a_window_closed_before_version_12_is_scored_on_read_the_same() {
    let (rig, id) = recording();
    rig.recorder.stop_recording(&id).unwrap();
    let stored = rig.recorder.window(&id).unwrap().unwrap().summary.unwrap();
    // What a window closed by an older recorder has: no scores.
    rig.recorder.sync().unwrap();
    rusqlite::Connection::open(rig.db_path())
        .unwrap()
        .execute(
            "UPDATE window_metric_stats
             SET change_score = NULL, change_rank = NULL, change_unscored = NULL",
            [],
        )
        .unwrap();
    let rig = rig.reopen();
    let read = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(read.summary.unwrap().change_scores, stored.change_scores);
    // Also in a listing without points.
    let listed = rig
        .recorder
        .store()
        .windows(&incident_recorder::WindowFilter::default())
        .unwrap();
    assert_eq!(
        listed[0].summary.as_ref().unwrap().change_scores,
        stored.change_scores
    );
}
