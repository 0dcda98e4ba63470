//! `GET /windows` in bounded memory (issue 18, defect 7): a listing of
//! many big windows (1,000 series each, so each summary is large) is
//! written window by window, so the heap grows by about one window while
//! it is served, not by the whole answer. Measured with a counting global
//! allocator; this file holds one test so nothing else allocates meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Scripted, secs, t};
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::{IncidentRecorder, ManualClock, Metrics, RecorderConfig, Trigger};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = CURRENT.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SERIES: usize = 1000;
const WINDOWS: usize = 40;

#[test]
fn a_listing_of_big_windows_is_served_in_the_memory_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t(0));
    let config = RecorderConfig {
        db_path: Some(dir.path().join("incidents.db")),
        sample_interval: secs(5),
        pre_incident_window: secs(10),
        post_incident_window: secs(10),
        ..RecorderConfig::default()
    };
    let recorder =
        Arc::new(IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap());
    recorder.set_metrics_provider(Scripted::new(&["big"], |_, n| {
        let mut m = Metrics::new();
        for i in 0..SERIES {
            m = m.with(
                format!("node_some_long_series_name{{device=\"dev{i}\"}}"),
                (n * 7 + i) as f64 * 1.000_001,
            );
        }
        Ok(m)
    }));
    let tick = |n: usize| {
        for _ in 0..n {
            recorder.record_sample().unwrap();
            clock.advance(secs(5));
        }
    };
    tick(2);
    for _ in 0..WINDOWS {
        let id = recorder.start_recording("big", Trigger::manual()).unwrap();
        tick(2);
        recorder.stop_recording(&id).unwrap();
    }
    let listener = Listener::start(
        Arc::clone(&recorder),
        ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated),
    )
    .unwrap();
    let url = format!("http://{}/windows?limit=1000", listener.local_addr());
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .new_agent();
    // Warm up (the runtime's threads, connections), then measure.
    let _ = agent.get(&url).call().unwrap().body_mut().read_to_vec();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut response = agent.get(&url).call().unwrap();
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut total, mut windows) = (0usize, 0usize);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        windows += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert!(windows > WINDOWS, "{windows} lines: every window listed");
    assert!(total > 10 << 20, "the answer is {total} bytes");
    println!("answer {total} bytes, heap grew by at most {grew} bytes");
    assert!(
        grew < total / 5,
        "the heap grew by {grew} bytes for an answer of {total}: not streamed"
    );
}
