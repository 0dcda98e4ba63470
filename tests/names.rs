//! Issue 18, defect 3: a source whose metric names keep changing (a label
//! holding a request id) fills the recorder's table of 100,000 names; the
//! names no buffer holds are reclaimed, so another resource's new metric
//! (`swap`) is recorded again, and the full table is counted apart from
//! invalid or non-finite values.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError, RecorderConfig,
    Timestamp, Trigger,
};

/// `host` reports `cpu` (and `swap` once asked); `c0` and `c1` report
/// 4,000 names never seen before on every call while churning.
#[derive(Default)]
struct Churn {
    churning: AtomicBool,
    swap: AtomicBool,
    next: AtomicU64,
}

impl MetricsProvider for Churn {
    fn current_metrics(&self, id: &str) -> Result<Metrics, ProviderError> {
        let mut m = Metrics::new();
        if id == "host" {
            m = m.with("cpu", 5.0);
            if self.swap.load(Ordering::SeqCst) {
                m = m.with("swap", 7.0);
            }
            return Ok(m);
        }
        m = m.with("up", 1.0);
        if self.churning.load(Ordering::SeqCst) {
            for _ in 0..4_000 {
                let n = self.next.fetch_add(1, Ordering::SeqCst);
                m = m.with(format!("requests{{request_id=\"{n}\"}}"), 1.0);
            }
        }
        Ok(m)
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        ["host", "c0", "c1"].map(String::from).to_vec()
    }
}

#[test]
fn names_no_buffer_holds_are_reclaimed_and_new_names_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let recorder = IncidentRecorder::open_with_clock(
        RecorderConfig {
            db_path: Some(dir.path().join("db")),
            sample_interval: Duration::from_secs(5),
            pre_incident_window: Duration::from_secs(600),
            ..RecorderConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    let provider = Arc::new(Churn::default());
    provider.churning.store(true, Ordering::SeqCst);
    recorder.set_metrics_provider(provider.clone());
    let tick = || {
        clock.advance(Duration::from_secs(5));
        recorder.record_sample().unwrap();
    };
    tick();
    // A window on a churning resource: its names get `metrics` rows, whose
    // ids the writer keeps by name key.
    let churned = recorder.start_recording("c0", Trigger::manual()).unwrap();
    for _ in 0..20 {
        tick();
    }
    recorder.stop_recording(&churned).unwrap();
    let stats = recorder.stats();
    assert!(stats.names_refused > 0, "the table filled: {stats:?}");
    assert_eq!(
        stats.rejected_values, 0,
        "a full table is not an invalid value"
    );

    // The churn stops and its samples leave the buffers; `swap` appears.
    provider.churning.store(false, Ordering::SeqCst);
    provider.swap.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(700));
    for _ in 0..17 {
        tick();
    }
    let stats = recorder.stats();
    assert!(stats.names_reclaimed > 50_000, "{stats:?}");
    let host = recorder.start_recording("host", Trigger::manual()).unwrap();
    tick();
    recorder.stop_recording(&host).unwrap();
    let w = recorder.window(&host).unwrap().unwrap();
    let last = w.data_points.last().unwrap();
    assert_eq!(last.metrics.get("swap"), Some(&7.0), "{:?}", last.metrics);
    assert_eq!(last.metrics.get("cpu"), Some(&5.0));
    assert_eq!(last.metrics.len(), 2, "{:?}", last.metrics);
    // The churned window still reads back under its own names.
    let w = recorder.window(&churned).unwrap().unwrap();
    assert!(
        w.data_points[1]
            .metrics
            .keys()
            .all(|n| n == "up" || n.starts_with("requests{")),
        "{:?}",
        w.data_points[1].metrics.keys().take(5).collect::<Vec<_>>()
    );
}
