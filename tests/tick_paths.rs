//! The tick's fast paths give the same results as the general one.
//!
//! A provider that keeps the default `current_metrics_batch` is asked per id
//! directly, and while its listing stays the same the tick skips marking each
//! listed id up front (`ListingMemo` in `src/recorder/tick.rs`). These tests
//! change everything that memo depends on between ticks (windows on listed
//! and unlisted resources, pushes, errors, a changed listing) and check that
//! every resource is still asked exactly once per tick and recorded as before.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use incident_recorder::{Metrics, MetricsProvider, ProviderError, Trigger};

/// The common `Scripted` provider (cpu = call number, calls counted) without
/// its batch override, so the recorder takes the direct path; resources
/// named in `failing` answer with an error.
struct Plain {
    inner: Arc<Scripted>,
    failing: Arc<Mutex<Vec<String>>>,
}

impl Plain {
    fn new(ids: &[&str]) -> Arc<Plain> {
        let failing: Arc<Mutex<Vec<String>>> = Arc::default();
        let f = failing.clone();
        let inner = Scripted::new(ids, move |id, n| {
            if f.lock().unwrap().iter().any(|x| x == id) {
                return Err(ProviderError::new("down"));
            }
            Ok(Metrics::new().with("cpu", n as f64).with("memory", 1.0))
        });
        Arc::new(Plain { inner, failing })
    }

    fn set_ids(&self, ids: &[&str]) {
        self.inner.set_ids(ids);
    }

    fn calls(&self, id: &str) -> usize {
        self.inner.calls(id)
    }
}

impl MetricsProvider for Plain {
    fn current_metrics(&self, id: &str) -> Result<Metrics, ProviderError> {
        self.inner.current_metrics(id)
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        self.inner.monitored_resource_ids()
    }
}

fn points(rig: &Rig, id: &incident_recorder::WindowId) -> usize {
    rig.recorder.window(id).unwrap().unwrap().data_points.len()
}

#[test]
fn a_stable_listing_still_samples_every_resource_and_unlisted_windows_once_per_tick() {
    let rig = Rig::memory(small_config());
    let p = Plain::new(&["a", "b", "c"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(1, secs(5));
    let c = rig
        .recorder
        .start_recording("c", Trigger::manual())
        .unwrap();
    p.set_ids(&["a", "b"]);
    rig.ticks(2, secs(5));
    assert_eq!((p.calls("a"), p.calls("b")), (3, 3));

    // A window on a resource the provider no longer lists: fetched each tick.
    rig.ticks(3, secs(5));
    assert_eq!((p.calls("a"), p.calls("c")), (6, 6));
    assert_eq!(points(&rig, &c), 6);
    // (A resource the provider never listed gets no window.)
    assert!(matches!(
        rig.recorder.start_recording("d", Trigger::manual()),
        Err(incident_recorder::Error::NotMonitored { .. })
    ));

    // A window on a listed resource: still one call per tick.
    let a = rig
        .recorder
        .start_recording("a", Trigger::manual())
        .unwrap();
    let buffered = points(&rig, &a);
    rig.ticks(2, secs(5));
    assert_eq!((p.calls("a"), p.calls("c")), (8, 8));
    assert_eq!(points(&rig, &a), buffered + 2);

    // Once the unlisted resource's window closes, it is neither asked nor kept.
    rig.recorder.stop_recording(&c).unwrap();
    rig.ticks(2, secs(5));
    assert_eq!(p.calls("c"), 8);
    assert_eq!(rig.recorder.stats().resources, 2);
}

#[test]
fn pushes_errors_and_a_changed_listing_between_ticks_keep_the_usual_rules() {
    let rig = Rig::memory(small_config());
    let p = Plain::new(&["a", "b"]);
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(2, secs(5));

    // A pushed, unlisted resource is dropped at the next tick, as always.
    rig.recorder
        .push_sample("d", rig_now(&rig), Metrics::new().with("cpu", 1.0), None)
        .unwrap();
    assert_eq!(rig.recorder.stats().resources, 3);
    rig.ticks(1, secs(5));
    assert_eq!(rig.recorder.stats().resources, 2);
    assert_eq!(p.calls("d"), 0);

    // A listed resource whose provider call fails keeps its buffer.
    p.failing.lock().unwrap().push("b".into());
    rig.ticks(2, secs(5));
    let stats = rig.recorder.stats();
    assert_eq!((stats.resources, stats.provider_errors), (2, 2));
    assert_eq!(p.calls("b"), 5);

    // A new listing (another order, one more id) is asked once per id.
    p.failing.lock().unwrap().clear();
    p.set_ids(&["e", "b", "a"]);
    rig.ticks(2, secs(5));
    assert_eq!((p.calls("a"), p.calls("b"), p.calls("e")), (7, 7, 2));
    assert_eq!(rig.recorder.stats().resources, 3);
    p.set_ids(&["e"]);
    rig.ticks(1, secs(5));
    assert_eq!(rig.recorder.stats().resources, 1);
}

fn rig_now(rig: &Rig) -> incident_recorder::Timestamp {
    incident_recorder::Clock::now(&rig.clock)
}
