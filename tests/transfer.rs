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
        trigger_time: None,
        start_time: t(0),
        end_time: Some(t(20)),
        deadline: None,
        status: WindowStatus::Truncated,
        notes: Vec::new(),
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
        trigger_time: None,
        start_time: t(0),
        end_time: None,
        deadline: None,
        status: WindowStatus::Complete,
        notes: Vec::new(),
        triggers: vec![WindowTrigger {
            trigger_type: TriggerType::Manual,
            trigger_id: None,
            fired_at: t(0),
            resolved_at: None,
            opened_window: true,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            rule: None,
            ends_at: None,
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

/// A database with a bit of everything: an alert window with a resolution,
/// anomalies and metadata (complete), a truncated one, an interrupted one
/// (found past its deadline after a crash) and one still recording.
fn varied() -> Rig {
    let config = incident_recorder::RecorderConfig {
        max_data_points_per_window: 30,
        hold_while_alert_active: true,
        ..small_config()
    };
    let rig = Rig::file(config);
    let s = std::cell::Cell::new(0);
    let push = |rig: &Rig, r: &str, v: f64, meta: bool| {
        let n = s.get();
        let m = meta.then(|| {
            serde_json::json!({ "n": n, "tag": "x" })
                .as_object()
                .cloned()
                .unwrap()
        });
        rig.clock.set(t(n));
        rig.recorder
            .push_sample(
                r,
                t(n),
                Metrics::new().with("cpu", v).with("mem", 40.0 + v / 10.0),
                m.as_ref(),
            )
            .unwrap();
        s.set(n + 1);
    };
    // A calm baseline, then a spike after the alert: anomalies.
    for i in 0..20 {
        push(&rig, "web", 10.0 + (i % 3) as f64, i % 5 == 0);
    }
    let alert = rig.start("web", Trigger::alert("cpu-high"));
    for _ in 0..5 {
        push(&rig, "web", 95.0, true);
    }
    assert!(rig.recorder.resolve_trigger("web", "cpu-high").unwrap());
    rig.start("web", Trigger::focus());
    push(&rig, "web", 12.0, false);
    rig.recorder.stop_recording(&alert).unwrap();
    // Truncated: more points than the limit.
    let full = rig.start("db", Trigger::manual());
    for i in 0..35 {
        push(&rig, "db", i as f64, false);
    }
    // Interrupted: left recording, then a crash and a late restart.
    let lost = rig.start("cache", Trigger::anomaly("cpu"));
    push(&rig, "cache", 1.0, false);
    rig.clock.set(t(s.get() + 500));
    let rig = rig.crash_and_reopen();
    // Recording: left open.
    s.set(s.get() + 500);
    let open = rig.start("queue", Trigger::manual());
    push(&rig, "queue", 7.0, true);
    for (id, status) in [
        (&alert, WindowStatus::Complete),
        (&full, WindowStatus::Truncated),
        (&lost, WindowStatus::Interrupted),
        (&open, WindowStatus::Recording),
    ] {
        assert_eq!(rig.recorder.window(id).unwrap().unwrap().status, status);
    }
    let alerted = rig.recorder.window(&alert).unwrap().unwrap();
    assert!(
        !alerted.summary.unwrap().anomaly_points.is_empty(),
        "anomalies recorded"
    );
    rig
}

#[test]
fn a_native_export_imports_back_row_for_row() {
    use common::bin::*;
    let rig = varied();
    let db = rig.db_path();
    let open = rig.recorder.recording_window("queue").unwrap();
    let Rig {
        recorder,
        dir: _keep,
        ..
    } = rig; // the temp dir stays
    drop(recorder);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.json");
    ok(&db, &["export", "-o", file.to_str().unwrap()]);
    let copy = dir.path().join("copy.db");
    let out = ok(&copy, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 4 windows"), "{out}");

    // Every row of every table under the windows, except the one window
    // documented to change: a recording window cannot go on recording in
    // another database, so it is imported as interrupted at its last point.
    let open_id = format!("{:?}", untagged(open.as_str()));
    let (a, b) = (dump(&db), dump(&copy));
    let (a_rest, b_rest): (Vec<String>, Vec<String>) = (
        a.iter()
            .filter(|l| !l.contains(&open_id))
            .cloned()
            .collect(),
        b.iter()
            .filter(|l| !l.contains(&open_id))
            .cloned()
            .collect(),
    );
    assert!(a_rest == b_rest, "{}", diff(&a_rest, &b_rest));
    assert!(
        a_rest
            .iter()
            .any(|l| l.starts_with("anomaly ") && !l.contains("NULL"))
    );
    assert!(
        a_rest
            .iter()
            .any(|l| l.starts_with("trigger ") && l.contains("\"cpu-high\""))
    );
    let points = |d: &[String]| -> Vec<String> {
        d.iter()
            .filter(|l| l.starts_with("point ") && l.contains(&open_id))
            .cloned()
            .collect()
    };
    assert_eq!(points(&a), points(&b));
    let w = json(&copy, &["show", open.as_str(), "--json"]);
    assert_eq!(w["status"], "interrupted");
    assert_eq!(w["end_time"], w["data_points"][0]["timestamp"]);
}
