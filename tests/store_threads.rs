//! Opening and dropping recorders does not pile up threads.
//!
//! r2d2's idle-connection reaper used to keep each dropped pool's three
//! worker threads alive for 30 s, so a process opening a database repeatedly
//! (a service reopening per request, a benchmark of `open`) accumulated
//! thousands of them and eventually failed to start threads at all. Alone in
//! its own test binary, so no other test's threads are counted.

#![cfg(target_os = "linux")]

use incident_recorder::{IncidentRecorder, RecorderConfig};

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn dropped_recorders_leave_no_threads_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig::with_db_path(dir.path().join("incidents.db"));
    for _ in 0..200 {
        drop(IncidentRecorder::open(config.clone()).unwrap());
    }
    // Three per pool would be 600; exiting threads may lag a little.
    assert!(threads() < 100, "{} threads", threads());
}
