//! Property tests feeding hostile input to the two parsers that read files
//! from elsewhere: `ingest` lines and Pulse windows. Whatever comes in, they
//! return a value or an error (never panic), and what they accept the
//! library either stores or refuses with an error.

use incident_recorder::{IncidentRecorder, ManualClock, Metrics, RecorderConfig, Store, Timestamp};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::ingest_line::{self, Line};
use super::pulse::PulseWindow;

/// Any JSON value, nested a few levels, with awkward numbers and strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("2026-11-24T10:00:00Z")),
        Just(json!("9999-12-31T23:59:59.999999999+14:00")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like real lines, with any value in any field.
fn line_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        4 => Just(json!("sample")),
        1 => Just(json!("trigger")),
        1 => Just(json!("resolve")),
        1 => Just(json!("stop")),
        1 => any_json(),
    ];
    let field = prop_oneof![
        2 => plausible(40).prop_map(Value::String),
        1 => any_json(),
    ];
    let value = prop_oneof![
        3 => (-1e12f64..1e12).prop_map(|f| json!(f)),
        1 => any_json(),
    ];
    (
        kind,
        field.clone(),
        field,
        prop::collection::btree_map(plausible(10), value, 0..5),
        prop_oneof![3 => Just(json!(1_795_514_400_000i64)), 1 => any_json()],
    )
        .prop_map(|(kind, resource, trigger, metrics, ts)| {
            let metrics: Map<String, Value> = metrics.into_iter().collect();
            json!({"type": kind, "resource": resource, "trigger": trigger,
                   "trigger_id": "x", "metrics": metrics, "ts": ts, "metadata": {"k": 1}})
        })
}

/// Mostly names a monitor would send, sometimes anything at all.
fn plausible(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::string::string_regex(&format!("[a-zA-Z0-9_.:/ -]{{1,{max}}}")).unwrap(),
        1 => proptest::string::string_regex(&format!(".{{0,{max}}}")).unwrap(),
    ]
}

fn recorder() -> IncidentRecorder {
    let clock = ManualClock::new(Timestamp::from_unix_ms(1_795_514_400_000));
    IncidentRecorder::open_with_clock(RecorderConfig::default(), std::sync::Arc::new(clock))
        .unwrap()
}

/// How many generated windows were imported: the shaped cases must reach
/// the store, or the property says little.
static IMPORTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many generated sample lines were stored.
static STORED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn generated_samples_do_reach_the_recorder() {
    accepted_samples_are_stored_or_refused_cleanly();
    assert!(STORED.load(std::sync::atomic::Ordering::Relaxed) > 20);
}

#[test]
fn shaped_pulse_windows_do_reach_the_store() {
    any_pulse_window_imports_or_is_refused();
    assert!(IMPORTED.load(std::sync::atomic::Ordering::Relaxed) > 50);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_is_a_line_or_an_error(text in ".{0,200}") {
        let _ = ingest_line::parse(&text);
    }

    #[test]
    fn any_json_is_a_line_or_an_error(v in any_json()) {
        let _ = ingest_line::parse(&v.to_string());
    }

    #[test]
    fn accepted_samples_are_stored_or_refused_cleanly(v in line_like()) {
        let Ok(Line::Sample(s)) = ingest_line::parse(&v.to_string()) else { return Ok(()) };
        let rec = recorder();
        let metrics: Metrics = s.metrics.into_iter().collect();
        let pushed = rec.push_sample(s.resource.as_str(), s.ts.0, metrics, s.metadata.as_ref());
        if pushed.is_ok() {
            STORED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Whatever was kept can be recorded into a window and read back.
            let id = rec.start_recording(s.resource.as_str(), incident_recorder::Trigger::manual());
            if let Ok(id) = id {
                prop_assert!(rec.window(&id).unwrap().is_some());
            }
        }
    }

    #[test]
    fn any_pulse_window_imports_or_is_refused(
        v in any_json(),
        resource in plausible(20),
        points in prop::collection::vec((any::<i64>(), prop::collection::btree_map(plausible(6), any::<f64>(), 0..4)), 0..6),
    ) {
        // Half of the cases look like a seed window, the rest are anything.
        let shaped = json!({
            "id": format!("iw-{resource}-1"), "resource_id": resource, "trigger_type": "alert",
            "start_time": "2026-11-24T10:00:00Z", "status": "complete",
            "data_points": points.iter().map(|(ms, m)| json!({
                "timestamp": Timestamp::from_unix_ms(ms.rem_euclid(253_402_300_799_999)).to_string(),
                "metrics": m.iter().filter(|(_, f)| f.is_finite()).map(|(k, f)| (k.clone(), json!(f))).collect::<Map<String, Value>>(),
            })).collect::<Vec<_>>(),
        });
        let store = Store::open_in_memory().unwrap();
        let mut with_summary = shaped.clone();
        with_summary["summary"] = v.clone();
        for candidate in [shaped, with_summary, v] {
            let Ok(w) = serde_json::from_value::<PulseWindow>(candidate) else { continue };
            let Ok(window) = w.into_window() else { continue };
            match store.import_window(&window) {
                Ok(true) => {
                    IMPORTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let back = store.window(window.id.as_str()).unwrap().unwrap();
                    prop_assert_eq!(back.data_points.len(), window.data_points.len());
                    // Importing again adds nothing.
                    prop_assert!(!store.import_window(&window).unwrap());
                }
                Ok(false) => {}
                Err(e) => prop_assert!(matches!(e, incident_recorder::Error::InvalidWindow { .. }), "{e}")
            }
        }
    }
}
