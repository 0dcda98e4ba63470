//! Issue 18, defect 3: a source whose metric names keep changing (a label
//! holding a request id) fills the recorder's table of 100,000 names; the
//! names no buffer holds are reclaimed, so another resource's new metric
//! (`swap`) is recorded again, and the full table is counted apart from
//! invalid or non-finite values.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use incident_recorder::{
    Clock, IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError, RecorderConfig,
    Timestamp, Trigger,
};

/// `host` reports `cpu` (and `swap` once asked); `c0`, `c1`... report
/// 4,000 names never seen before on every call while churning.
struct Churn {
    churners: usize,
    churning: AtomicBool,
    swap: AtomicBool,
    next: AtomicU64,
}

impl Churn {
    fn new(churners: usize) -> Churn {
        Churn {
            churners,
            churning: AtomicBool::new(true),
            swap: AtomicBool::new(false),
            next: AtomicU64::new(0),
        }
    }
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
        let mut ids = vec!["host".to_owned()];
        ids.extend((0..self.churners).map(|i| format!("c{i}")));
        ids
    }
}

fn recorder(dir: &std::path::Path, clock: &Arc<ManualClock>) -> IncidentRecorder {
    IncidentRecorder::open_with_clock(
        RecorderConfig {
            db_path: Some(dir.join("db")),
            sample_interval: Duration::from_secs(5),
            pre_incident_window: Duration::from_secs(600),
            // The host's window replaces the churned one: then no window
            // uses the churned names.
            max_windows: 1,
            ..RecorderConfig::default()
        },
        clock.clone(),
    )
    .unwrap()
}

/// One resource whose names keep changing takes at most its share (a
/// quarter) of the table: the host's new metric is recorded meanwhile.
#[test]
fn one_resource_with_ever_new_names_does_not_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let recorder = recorder(dir.path(), &clock);
    let provider = Arc::new(Churn::new(2));
    recorder.set_metrics_provider(provider.clone());
    let tick = || {
        clock.advance(Duration::from_secs(5));
        recorder.record_sample().unwrap();
    };
    // Until one of them has its share (7 samples; more if a loaded machine
    // makes the recorder skip a slow call).
    for _ in 0..40 {
        if recorder.stats().names_refused > 0 {
            break;
        }
        tick();
    }
    let stats = recorder.stats();
    assert!(stats.names_refused > 0, "{stats:?}");
    assert_eq!(stats.rejected_values, 0);
    provider.swap.store(true, Ordering::SeqCst);
    tick();
    tick();
    let host = recorder.start_recording("host", Trigger::manual()).unwrap();
    recorder.stop_recording(&host).unwrap();
    let w = recorder.window(&host).unwrap().unwrap();
    assert_eq!(
        w.data_points.last().unwrap().metrics.get("swap"),
        Some(&7.0)
    );
}

#[test]
fn names_no_buffer_holds_are_reclaimed_and_new_names_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let recorder = recorder(dir.path(), &clock);
    // Four of them, each at its share, fill the table.
    let provider = Arc::new(Churn::new(4));
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
    assert!(stats.names_reclaimed == 0, "all were in buffers: {stats:?}");
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
    assert!(stats.names_reclaimed > 90_000, "{stats:?}");
    let host = recorder.start_recording("host", Trigger::manual()).unwrap();
    tick();
    recorder.stop_recording(&host).unwrap();
    let w = recorder.window(&host).unwrap().unwrap();
    let last = w.data_points.last().unwrap();
    assert_eq!(last.metrics.get("swap"), Some(&7.0), "{:?}", last.metrics);
    assert_eq!(last.metrics.get("cpu"), Some(&5.0));
    assert_eq!(last.metrics.len(), 2, "{:?}", last.metrics);
    // The churned window was trimmed: its `metrics` rows, which no window
    // uses any more, are deleted by the closer when idle.
    assert!(recorder.window(&churned).unwrap().is_none());
    recorder.sync().unwrap();
    let start = std::time::Instant::now();
    loop {
        let rows = recorder.store().stats().unwrap().metrics;
        if rows <= 3 {
            break; // cpu, swap and up
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{rows} metrics rows left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still the right names after the reclaim, for the recorder and a reader.
    let host_again = recorder.start_recording("host", Trigger::manual()).unwrap();
    tick();
    recorder.stop_recording(&host_again).unwrap();
    let w = recorder.window(&host_again).unwrap().unwrap();
    assert_eq!(
        w.data_points.last().unwrap().metrics.get("swap"),
        Some(&7.0)
    );
}

/// `prune` (the command) deletes the metric names of the windows it
/// deleted that no other window uses, and says so.
#[test]
fn prune_deletes_the_names_no_remaining_window_uses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let hour_ago = Timestamp::from_unix_ms(Timestamp::now().as_unix_ms() - 3_600_000);
    {
        let clock = Arc::new(ManualClock::new(hour_ago));
        let recorder = IncidentRecorder::open_with_clock(
            RecorderConfig {
                db_path: Some(db.clone()),
                ..RecorderConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        for (resource, names) in [("old", 0..500), ("kept", 1000..1002)] {
            let id = recorder
                .start_recording(resource, Trigger::manual())
                .unwrap();
            let mut m = Metrics::new().with("shared", 1.0);
            for n in names {
                m = m.with(format!("requests{{request_id=\"{n}\"}}"), 1.0);
            }
            recorder
                .push_sample(resource, clock.now(), m, None)
                .unwrap();
            clock.advance(Duration::from_secs(1));
            recorder.stop_recording(&id).unwrap();
            // `kept` ends within the retention given below.
            clock.set(Timestamp::now());
        }
        recorder.stop().unwrap();
    }
    let rows = |db: &std::path::Path| {
        incident_recorder::Store::open_read_only(db)
            .unwrap()
            .stats()
            .unwrap()
            .metrics
    };
    assert_eq!(rows(&db), 503);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_incident-recorder"))
        .arg("--db")
        .arg(&db)
        .args(["prune", "--retention", "30m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("deleted 1 windows"), "{text}");
    assert!(
        text.contains("deleted 500 metric names no remaining window uses"),
        "{text}"
    );
    assert_eq!(rows(&db), 3, "shared and kept's two names stay");
}
