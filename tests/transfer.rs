//! Moving windows between databases: `Store::for_each_window` and
//! `Store::import_window`, plus the small query helpers the CLI relies on
//! (`recording_window`, `trigger_request`).

mod common;

use std::collections::BTreeMap;

use common::*;
use incident_recorder::{
    DataPoint, Error, IncidentWindow, Metrics, Store, Trigger, TriggerType, WindowFilter, WindowId,
    WindowStatus, WindowTrigger,
};

/// Records two closed windows and leaves one recording, on two resources.
fn recorded() -> Rig {
    let rig = Rig::file(small_config());
    for i in 0..4 {
        let meta = serde_json::json!({ "i": i }).as_object().cloned();
        rig.recorder
            .push_sample(
                "vm-1",
                t(i * 5),
                Metrics::new().with("cpu", 10.0 * i as f64),
                meta.as_ref(),
            )
            .unwrap();
    }
    let first = rig
        .recorder
        .start_recording("vm-1", Trigger::alert("cpu-high"))
        .unwrap();
    rig.recorder.resolve_trigger("vm-1", "cpu-high").unwrap();
    rig.recorder.stop_recording(&first).unwrap();
    rig.clock.set(t(100));
    rig.recorder
        .push_sample(
            "vm-2",
            t(100),
            Metrics::new().with("mem", -0.5).with("cpu", 3.0),
            None,
        )
        .unwrap();
    let second = rig
        .recorder
        .start_recording("vm-2", Trigger::manual())
        .unwrap();
    rig.recorder.stop_recording(&second).unwrap();
    rig.clock.set(t(110));
    rig.recorder
        .push_sample("vm-1", t(110), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    rig.recorder
        .start_recording("vm-1", Trigger::focus())
        .unwrap();
    rig
}

fn all_windows(store: &Store) -> Vec<IncidentWindow> {
    let mut out = Vec::new();
    store
        .for_each_window(
            &WindowFilter {
                with_points: true,
                ..Default::default()
            },
            |w| {
                out.push(w);
                Ok::<_, Error>(())
            },
        )
        .unwrap();
    out
}

#[test]
fn for_each_window_walks_oldest_first_with_points() {
    let rig = recorded();
    let windows = all_windows(rig.recorder.store());
    let starts: Vec<i64> = windows
        .iter()
        .map(|w| (w.start_time.as_unix_ms() - T0) / 1000)
        .collect();
    assert_eq!(starts, vec![0, 100, 110]);
    assert_eq!(windows[0].data_points.len(), 4);
    assert_eq!(windows[2].status, WindowStatus::Recording);

    // An error from the callback stops the walk and comes back as is.
    let mut seen = 0;
    let err = rig
        .recorder
        .store()
        .for_each_window(&WindowFilter::default(), |_| {
            seen += 1;
            Err(Error::WindowNotFound("stop".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::WindowNotFound(_)));
    assert_eq!(seen, 1);
}

#[test]
fn imported_windows_read_back_identically_and_twice_adds_nothing() {
    let rig = recorded();
    let source: Vec<IncidentWindow> = all_windows(rig.recorder.store())
        .into_iter()
        .filter(|w| w.status != WindowStatus::Recording)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path().join("copy.db")).unwrap();
    for w in &source {
        assert!(target.import_window(w).unwrap());
    }
    for w in &source {
        assert!(
            !target.import_window(w).unwrap(),
            "second import of {} adds nothing",
            w.id
        );
    }
    let copied = all_windows(&target);
    assert_eq!(copied, source);
    assert_eq!(copied[1].summary.as_ref().unwrap().lows["mem"], -0.5);
    assert_eq!(
        copied[0].triggers[0].resolved_at,
        source[0].triggers[0].resolved_at
    );
    assert!(copied[0].data_points[1].metadata.is_some());
}

#[test]
fn a_recording_window_is_imported_as_interrupted_at_its_last_point() {
    let rig = recorded();
    let recording = all_windows(rig.recorder.store()).pop().unwrap();
    assert_eq!(recording.status, WindowStatus::Recording);
    let target = Store::open_in_memory().unwrap();
    assert!(target.import_window(&recording).unwrap());
    let w = target.window(recording.id.as_str()).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Interrupted);
    assert_eq!(w.end_time, Some(t(110)));
    assert_eq!(w.summary.unwrap().data_points, 1);
}

#[test]
fn a_window_without_triggers_gets_its_opening_trigger_and_a_fresh_summary() {
    let w = IncidentWindow {
        id: WindowId::new("iw-vm-101-20261124100000-1"),
        resource_id: "vm-101".into(),
        resource_name: Some("web".into()),
        resource_type: Some("vm".into()),
        trigger_type: TriggerType::Alert,
        trigger_id: Some("cpu-high".into()),
        start_time: t(0),
        end_time: Some(t(20)),
        deadline: None,
        status: WindowStatus::Truncated,
        triggers: Vec::new(),
        data_points: (0..3)
            .map(|i| DataPoint {
                timestamp: t(i * 10),
                metrics: BTreeMap::from([("cpu".to_owned(), 90.0 + i as f64)]),
                metadata: None,
            })
            .collect(),
        summary: None,
    };
    let store = Store::open_in_memory().unwrap();
    assert!(store.import_window(&w).unwrap());
    let back = store.window(w.id.as_str()).unwrap().unwrap();
    assert_eq!(back.status, WindowStatus::Truncated);
    assert_eq!(back.end_time, Some(t(20)));
    assert_eq!(back.triggers.len(), 1);
    assert_eq!(back.triggers[0].fired_at, t(0));
    assert!(back.triggers[0].opened_window);
    let s = back.summary.unwrap();
    assert_eq!((s.data_points, s.duration_ms), (3, 20_000));
    assert_eq!(
        (s.peaks["cpu"], s.averages["cpu"], s.changes["cpu"]),
        (92.0, 91.0, 2.0)
    );
}

#[test]
fn invalid_windows_are_refused_whole() {
    let store = Store::open_in_memory().unwrap();
    let mut w = IncidentWindow {
        id: WindowId::new("w"),
        resource_id: String::new(),
        resource_name: None,
        resource_type: None,
        trigger_type: TriggerType::Manual,
        trigger_id: None,
        start_time: t(0),
        end_time: None,
        deadline: None,
        status: WindowStatus::Complete,
        triggers: vec![WindowTrigger {
            trigger_type: TriggerType::Manual,
            trigger_id: None,
            fired_at: t(0),
            resolved_at: None,
            opened_window: true,
        }],
        data_points: Vec::new(),
        summary: None,
    };
    let err = store.import_window(&w).unwrap_err();
    assert!(matches!(err, Error::InvalidWindow { .. }), "{err}");
    w.resource_id = "vm".into();
    w.data_points.push(DataPoint {
        timestamp: t(1),
        metrics: BTreeMap::from([("cpu".to_owned(), f64::NAN)]),
        metadata: None,
    });
    let err = store.import_window(&w).unwrap_err();
    assert!(err.to_string().contains("finite"), "{err}");
    assert_eq!(store.stats().unwrap().windows_by_status.len(), 0);
}

#[test]
fn recording_window_names_the_open_window_only() {
    let rig = Rig::memory(small_config());
    assert_eq!(rig.recorder.recording_window("vm-1"), None);
    let id = rig
        .recorder
        .start_recording("vm-1", Trigger::manual())
        .unwrap();
    assert_eq!(rig.recorder.recording_window("vm-1"), Some(id.clone()));
    rig.recorder.stop_recording(&id).unwrap();
    assert_eq!(rig.recorder.recording_window("vm-1"), None);
}

#[test]
fn trigger_requests_report_what_became_of_them() {
    let rig = Rig::file(small_config());
    let store = Store::open(rig.db_path()).unwrap();
    assert!(store.recorder_running().unwrap());
    let req = store
        .request_trigger("vm-9", &Trigger::manual(), t(0))
        .unwrap();
    let pending = store.trigger_request(req).unwrap().unwrap();
    assert_eq!(
        (pending.handled_at, pending.window_id.clone()),
        (None, None)
    );
    rig.recorder.record_sample().unwrap();
    let done = store.trigger_request(req).unwrap().unwrap();
    assert_eq!(done.handled_at, Some(t(0)));
    assert_eq!(done.window_id, rig.recorder.recording_window("vm-9"));
    assert_eq!(store.trigger_request(req + 1).unwrap(), None);
}
