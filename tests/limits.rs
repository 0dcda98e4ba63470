//! Hostile input (DESIGN.md, "Files, limits and hostile input"): every
//! input has a bound, refused with a clear error past it, cost stays linear,
//! text from the database never drives the terminal, and every stored window
//! exports and imports back.

mod common;

use common::bin::*;
use common::*;
use incident_recorder::{
    Error, IncidentWindow, Metrics, RecorderConfig, Sample, Store, Trigger, WindowFilter,
};

#[test]
fn samples_of_ever_new_metric_names_keep_the_buffer_bounded() {
    let rig = Rig::memory(RecorderConfig {
        pre_incident_window: secs(300),
        ..small_config()
    });
    // 20,000 samples 1 ms apart, each with a metric no sample had before.
    let samples: Vec<Sample<'_>> = (0..20_000)
        .map(|i| Sample {
            resource: "r".into(),
            timestamp: incident_recorder::Timestamp::from_unix_ms(T0 + i),
            metrics: Metrics::new().with(format!("m{i}"), i as f64),
            metadata: None,
        })
        .collect();
    let report = rig.recorder.push_samples(samples).unwrap();
    assert_eq!(report.accepted, 20_000);
    let stats = rig.recorder.stats();
    // At most twice the window point limit of samples, each its own value.
    assert_eq!(stats.buffered_points, 1000);
    assert!(stats.buffer_bytes < 1000 * 64, "{}", stats.buffer_bytes);
    // A window takes the newest of them, each with its own value.
    let id = rig.start("r", Trigger::manual());
    let w = rig.recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.data_points.len(), 500);
    assert_eq!(w.data_points[0].metrics["m19500"], 19_500.0);
}

#[test]
fn a_sample_with_too_many_values_is_refused_whole() {
    let rig = Rig::memory(small_config());
    let metrics: Metrics = (0..100_000)
        .map(|i| (format!("m{i}"), 1.0))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into();
    let err = rig
        .recorder
        .push_sample("r", t(0), metrics, None)
        .unwrap_err();
    assert!(matches!(err, Error::TooManyValues { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("has 100000 values, over the limit of 4096"),
        "{err}"
    );
    assert_eq!(rig.recorder.stats().buffered_points, 0);

    // The same through ingest: one clear line, and the rest goes on.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wide.db");
    let wide: Vec<String> = (0..100_000).map(|i| format!("\"m{i}\":1")).collect();
    let lines = format!(
        "{{\"type\":\"sample\",\"resource\":\"a\",\"ts\":{T0},\"metrics\":{{{}}}}}\n{{\"type\":\"sample\",\"resource\":\"a\",\"ts\":{},\"metrics\":{{\"cpu\":1}}}}",
        wide.join(","),
        T0 + 5000
    );
    let o = run_with_stdin(
        &db,
        &["ingest", "-", "--max-line-bytes", "4000000"],
        Some(&lines),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .starts_with("line 1: sample for \"a\" has 100000 values, over the limit of 4096"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains(": 1 samples"), "{}", stdout(&o));
}

#[test]
fn new_resources_past_the_cap_are_refused_and_counted() {
    let rig = Rig::memory(RecorderConfig {
        max_resources: 100,
        ..small_config()
    });
    let mut refused = 0;
    for i in 0..150 {
        match rig.recorder.push_sample(
            format!("r{i}").as_str(),
            t(0),
            Metrics::new().with("cpu", 1.0),
            None,
        ) {
            Ok(()) => {}
            Err(Error::TooManyResources { limit: 100, .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 50);
    let stats = rig.recorder.stats();
    assert_eq!((stats.resources, stats.resources_refused), (100, 50));
    // Known resources go on; once the others are dropped (their buffers
    // past the pre-incident window), new ones are taken again.
    rig.recorder
        .push_sample("r5", t(5), Metrics::new().with("cpu", 2.0), None)
        .unwrap();
    rig.clock.set(t(100));
    rig.recorder.record_sample().unwrap();
    rig.recorder
        .push_sample("fresh", t(100), Metrics::new().with("cpu", 1.0), None)
        .unwrap();

    // A provider listing more is cut to the cap, with the rest counted.
    let rig = Rig::memory(RecorderConfig {
        max_resources: 100,
        ..small_config()
    });
    let ids: Vec<String> = (0..150).map(|i| format!("p{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    rig.recorder
        .set_metrics_provider(Scripted::counting(&id_refs));
    rig.recorder.record_sample().unwrap();
    let stats = rig.recorder.stats();
    assert_eq!((stats.resources, stats.resources_refused), (100, 50));
}

#[test]
fn values_near_the_float_limit_are_refused_and_every_stored_window_exports_and_imports() {
    let rig = Rig::memory(small_config());
    let id = rig.start("r", Trigger::manual());
    let report = rig
        .recorder
        .push_samples(
            [1e308, 1.7e308, -1.7e308, 1e300, -1e300]
                .iter()
                .enumerate()
                .map(|(i, &v)| Sample {
                    resource: "r".into(),
                    timestamp: t(i as i64),
                    metrics: Metrics::new().with("x", v).with("y", 1.0),
                    metadata: None,
                }),
        )
        .unwrap();
    let reasons: Vec<&str> = report
        .rejected_values
        .iter()
        .map(|(_, v)| v.reason)
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("too large"), "{reasons:?}");
    rig.recorder.stop_recording(&id).unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    let s = w.summary.as_ref().unwrap();
    for v in [s.averages["x"], s.changes["x"], s.p95["x"], s.peaks["x"]] {
        assert!(v.is_finite(), "{s:?}");
    }
    assert_eq!(s.changes["x"], -2e300);
    // Out and back in, value for value.
    let json = serde_json::to_string(&w).unwrap();
    let back: IncidentWindow = serde_json::from_str(&json).unwrap();
    let other = Store::open_in_memory().unwrap();
    assert!(other.import_window(&back).unwrap());
    assert_eq!(
        other.window(id.as_str()).unwrap().unwrap().summary,
        w.summary
    );

    // A file's values get the same bound.
    let mut huge = back.clone();
    huge.id = "huge".into();
    huge.data_points[0].metrics.insert("x".into(), 1.7e308);
    let err = other.import_window(&huge).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a finite number of at most 1e300"),
        "{err}"
    );
}

#[test]
fn inconsistent_imported_windows_are_refused_one_by_one_with_the_reason() {
    let rig = Rig::memory(small_config());
    let id = rig.start("r", Trigger::alert("a"));
    for s in 0..3 {
        rig.recorder
            .push_sample("r", t(s), Metrics::new().with("cpu", 1.0), None)
            .unwrap();
    }
    rig.recorder.resolve_trigger("r", "a").unwrap();
    rig.recorder.stop_recording(&id).unwrap();
    let good = rig.recorder.window(&id).unwrap().unwrap();
    let store = Store::open_in_memory().unwrap();
    type Break = fn(&mut IncidentWindow);
    let cases: [(Break, &str); 5] = [
        (|w| w.end_time = Some(t(-100)), "before it starts"),
        (
            |w| w.data_points[0].timestamp = t(-31_536_000 * 55),
            "is before its start",
        ),
        (|w| w.data_points.swap(0, 2), "not in time order"),
        (|w| w.deadline = Some(t(-200)), "its deadline"),
        (
            |w| w.triggers[0].resolved_at = Some(t(-5)),
            "is resolved before that",
        ),
    ];
    for (i, (break_it, why)) in cases.into_iter().enumerate() {
        let mut w = good.clone();
        w.id = format!("bad-{i}").into();
        break_it(&mut w);
        let err = store.import_window(&w).unwrap_err();
        assert!(matches!(err, Error::InvalidWindow { .. }), "{err}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert!(store.windows(&WindowFilter::default()).unwrap().is_empty());
    assert!(store.import_window(&good).unwrap());
}

#[test]
fn text_fields_are_checked_and_stored_control_characters_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let lines = [
        format!(
            r#"{{"type":"trigger","resource":"a","trigger_id":"{}","ts":{T0}}}"#,
            "x".repeat(2000)
        ),
        format!(
            r#"{{"type":"trigger","resource":"a","trigger_id":"\u001b]0;pwned\u0007","ts":{T0}}}"#
        ),
        format!(
            r#"{{"type":"sample","resource":"a","name":"\u001b[2J","ts":{T0},"metrics":{{"cpu":1}}}}"#
        ),
        format!(
            r#"{{"type":"sample","resource":"a","ts":{},"metrics":{{"cpu":1}}}}"#,
            T0 + 1000
        ),
        format!(
            r#"{{"type":"trigger","resource":"a","trigger_id":"ok","ts":{}}}"#,
            T0 + 1000
        ),
    ];
    let o = run_with_stdin(&db, &["ingest", "-", "--finish"], Some(&lines.join("\n")));
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    let errs: Vec<&str> = err.lines().collect();
    assert_eq!(errs.len(), 3, "{err}");
    assert!(
        errs[0].contains("invalid trigger id") && errs[0].contains("longer than 1024 bytes"),
        "{err}"
    );
    assert!(
        errs[1].contains("invalid trigger id") && errs[1].contains("control character"),
        "{err}"
    );
    assert!(
        errs[2].contains("invalid resource name") && errs[2].contains("control character"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // The request path of `trigger` checks the same.
    let store = Store::open(&db).unwrap();
    let bad = Trigger::new(
        incident_recorder::TriggerType::Manual,
        Some("\u{1b}]0;pwned\u{7}".into()),
    );
    assert!(matches!(
        store.request_trigger("a", &bad, t(0)),
        Err(Error::InvalidTriggerId { .. })
    ));
    drop(store);

    // Whatever a hand edit puts in the database is shown escaped.
    let id = json(&db, &["list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE resources SET name = char(27) || '[2J' || char(7);
             UPDATE windows SET trigger_id = char(27) || ']0;pwned' || char(7);
             UPDATE window_triggers SET trigger_id = char(27) || '[31m';",
        )
        .unwrap();
    for args in [
        vec!["list"],
        vec!["show", &id],
        vec!["context", &id],
        vec!["stats"],
    ] {
        let out = ok(&db, &args);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
    }
    let show = ok(&db, &["show", &id]);
    assert!(show.contains("\\u{1b}]0;pwned\\u{7}"), "{show}");
}
