//! Faults a recorder meets in the field: a full disk, a read-only file
//! system, a truncated database, clocks that jump. Each keeps what was
//! committed and refuses what it cannot do with a clear error.

mod common;

use std::io::Write;
use std::sync::Arc;

use common::*;
use incident_recorder::{
    Error, IncidentRecorder, ManualClock, Metrics, RecorderConfig, Store, Trigger, WindowStatus,
};

/// 20 resources × 8 metrics whose values encode (resource, tick): every stored
/// value can be checked against the time it was taken.
fn fleet() -> Arc<Scripted> {
    let ids: Vec<String> = (0..20).map(|i| format!("node-{i:02}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    Scripted::new(&ids, |id, n| {
        let r: f64 = id[5..].parse().unwrap();
        Ok((0..8)
            .map(|m| (format!("m{m}"), r * 1000.0 + n as f64 + m as f64 / 10.0))
            .collect())
    })
}

#[test]
fn a_full_disk_loses_nothing_and_recording_resumes_when_space_returns() {
    let Some(fs) = TmpMount::new("3m") else {
        return;
    };
    let config = RecorderConfig {
        db_path: Some(fs.path().join("incidents.db")),
        post_incident_window: secs(3600),
        max_data_points_per_window: 10_000,
        ..small_config()
    };
    let clock = ManualClock::new(t(0));
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let provider = fleet();
    recorder.set_metrics_provider(provider.clone());
    let ids: Vec<_> = (0..5)
        .map(|i| {
            recorder
                .start_recording(format!("node-{i:02}").as_str(), Trigger::manual())
                .unwrap()
        })
        .collect();
    let tick = || {
        let r = recorder.record_sample();
        clock.advance(secs(5));
        r
    };
    for _ in 0..10 {
        tick().unwrap();
    }

    // Fill the file system to the last byte.
    let filler_path = fs.path().join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    while filler.write_all(&chunk[..1]).is_ok() {}
    drop(filler);

    // A commit may succeed now and then meanwhile, in pages the closer's
    // seals freed (the journal's): what fails stays pending until one does.
    let mut failed = 0;
    let mut first_error = None;
    for _ in 0..30 {
        if tick().is_err() {
            failed += 1;
            let stats = recorder.stats();
            first_error.get_or_insert(stats.last_error.clone());
            assert!(
                stats.pending_points > 0,
                "points are kept for the next commit"
            );
        }
    }
    let stats = recorder.stats();
    assert!(failed > 0, "the disk was full: commits must have failed");
    assert_eq!(stats.write_errors as usize, failed);
    let first_error = first_error.flatten();
    assert!(
        first_error.as_deref().unwrap_or("").contains("full"),
        "{first_error:?}"
    );
    // Sampling went on: every buffer is full (the 30 s pre-incident window
    // and the 5 s allowed lag, of 5 s ticks).
    assert_eq!(stats.buffered_points, 20 * 7);

    std::fs::remove_file(&filler_path).unwrap();
    tick().unwrap();
    let stats = recorder.stats();
    assert_eq!(stats.pending_points, 0);
    assert_eq!(stats.last_error, None);

    // Every tick of the 41 is in every window, with exactly its values.
    for (i, id) in ids.iter().enumerate() {
        let w = recorder.window(id).unwrap().unwrap();
        assert_eq!(w.data_points.len(), 41, "window {i}");
        for (n, p) in w.data_points.iter().enumerate() {
            assert_eq!(p.timestamp, t(5 * n as i64));
            assert_eq!(p.metrics.len(), 8);
            assert_eq!(p.metrics["m0"], i as f64 * 1000.0 + n as f64);
        }
    }
    recorder.stop().unwrap();
    drop(recorder);
    let conn = sql(&fs.path().join("incidents.db"));
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_read_only_file_system_refuses_recording_but_serves_reads() {
    let Some(fs) = TmpMount::new("4m") else {
        return;
    };
    let path = fs.path().join("incidents.db");
    {
        let clock = ManualClock::new(t(0));
        let recorder = IncidentRecorder::open_with_clock(
            RecorderConfig::with_db_path(&path),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let id = recorder.start_recording("a", Trigger::manual()).unwrap();
        recorder
            .push_sample("a", t(0), Metrics::new().with("cpu", 1.0), None)
            .unwrap();
        recorder.stop_recording(&id).unwrap();
    }
    fs.remount(true);
    let err = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    // Reading needs no write access at all.
    let store = Store::open_read_only(&path).unwrap();
    let windows = store
        .windows(&incident_recorder::WindowFilter {
            with_points: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].data_points.len(), 1);
    assert_eq!(store.stats().unwrap().points, 1);
    drop(store);
    fs.remount(false);
}

#[test]
fn a_truncated_database_is_refused_and_left_untouched() {
    let rig = Rig::file(small_config());
    for i in 0..200 {
        rig.recorder
            .push_sample(
                "a",
                t(i),
                (0..8)
                    .map(|m| (format!("m{m}"), m as f64))
                    .collect::<Metrics>(),
                None,
            )
            .unwrap();
        if i % 20 == 0 {
            rig.clock.set(t(i));
            let id = rig.start("a", Trigger::manual());
            rig.recorder.stop_recording(&id).unwrap();
        }
    }
    let path = rig.db_path();
    let dir = rig.dir;
    drop(rig.recorder); // checkpoints the WAL into the file
    let full = std::fs::read(&path).unwrap();
    assert!(full.len() > 8192);
    for cut in [full.len() / 2, 4096, 60] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let err = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &full[..cut],
            "left untouched"
        );
    }
    drop(dir);
}

#[test]
fn samples_from_the_far_future_are_refused_without_blocking_the_resource() {
    let rig = Rig::memory(RecorderConfig {
        post_incident_window: secs(3600),
        ..small_config()
    });
    let id = rig.start("a", Trigger::manual());
    let m = || Metrics::new().with("cpu", 1.0);
    let err = rig
        .recorder
        .push_sample("a", t(24 * 3600), m(), None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTimestamp { .. }), "{err}");
    assert!(err.to_string().contains("ahead"), "{err}");
    // Up to 10 minutes of clock skew is fine; the resource still takes samples.
    rig.recorder.push_sample("a", t(5), m(), None).unwrap();
    rig.recorder.push_sample("a", t(590), m(), None).unwrap();
    assert_eq!(
        rig.recorder.window(&id).unwrap().unwrap().data_points.len(),
        2
    );
}

#[test]
fn a_clock_that_jumps_back_skips_samples_instead_of_storing_them_out_of_order() {
    let rig = Rig::memory(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    let id = rig.start("a", Trigger::manual());
    rig.ticks(3, secs(5)); // t0, t5, t10
    rig.clock.set(t(2)); // NTP stepped the clock back
    rig.recorder.record_sample().unwrap();
    assert_eq!(rig.recorder.stats().out_of_order, 1);
    rig.clock.set(t(15));
    rig.recorder.record_sample().unwrap();
    let w = rig.recorder.window(&id).unwrap().unwrap();
    let times: Vec<_> = w.data_points.iter().map(|p| p.timestamp).collect();
    assert_eq!(times, vec![t(0), t(5), t(10), t(15)]);
    assert_eq!(w.status, WindowStatus::Recording);
}

/// A provider whose `stuck` resource blocks until the gate opens (or for
/// `hang_for` if set), counting calls.
struct Hanging {
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    hang_for: Option<std::time::Duration>,
    hang_listing: std::sync::atomic::AtomicBool,
    calls: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Hanging {
    fn new(hang_for: Option<std::time::Duration>) -> Arc<Hanging> {
        Arc::new(Hanging {
            gate: Arc::default(),
            hang_for,
            hang_listing: Default::default(),
            calls: Default::default(),
        })
    }

    fn block(&self) {
        let (open, cv) = &*self.gate;
        let guard = open.lock().unwrap();
        match self.hang_for {
            Some(d) => drop(cv.wait_timeout_while(guard, d, |o| !*o).unwrap()),
            None => drop(cv.wait_while(guard, |o| !*o).unwrap()),
        }
    }

    fn release(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn calls(&self, id: &str) -> usize {
        self.calls.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl incident_recorder::MetricsProvider for Hanging {
    fn current_metrics(&self, id: &str) -> Result<Metrics, incident_recorder::ProviderError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default() += 1;
        if id == "stuck" {
            self.block();
        }
        Ok(Metrics::new().with("cpu", 1.0))
    }
    fn monitored_resource_ids(&self) -> Vec<String> {
        if self
            .hang_listing
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.block();
        }
        vec!["a".into(), "stuck".into(), "b".into()]
    }
}

/// Waits (up to 10 s) until no provider call is stuck: released calls return
/// on their own threads, and a resource is not asked again before that.
fn wait_until_unstuck(rig: &Rig) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rig.recorder.stats().stuck_provider_calls > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stuck calls never returned"
        );
        std::thread::yield_now();
    }
}

fn hang_config() -> RecorderConfig {
    RecorderConfig {
        provider_timeout: std::time::Duration::from_millis(200),
        post_incident_window: secs(3600),
        ..small_config()
    }
}

#[test]
fn a_provider_call_that_never_returns_costs_one_tick_and_one_thread() {
    let rig = Rig::memory(hang_config());
    let p = Hanging::new(None);
    rig.recorder.set_metrics_provider(p.clone());
    let a = rig.start("a", Trigger::manual());
    let b = rig.start("b", Trigger::manual());
    // Tick 1: the batch call (the default one, resource by resource) hangs at
    // `stuck`; it is abandoned after the timeout and the tick goes on.
    rig.ticks(1, secs(5));
    let stats = rig.recorder.stats();
    assert_eq!(stats.provider_hangs, 1);
    // Tick 2: resources are asked one by one; `stuck` hangs, is given up on
    // and the others are still asked in the same tick.
    rig.ticks(1, secs(5));
    assert_eq!(rig.recorder.stats().provider_hangs, 2);
    // Then `stuck` is skipped while its call is out: no more waiting, no
    // more threads, every other sample recorded.
    rig.ticks(10, secs(5));
    let stats = rig.recorder.stats();
    assert_eq!(stats.provider_hangs, 2);
    assert_eq!(stats.provider_skipped, 10);
    assert_eq!(stats.stuck_provider_calls, 2);
    assert_eq!(p.calls("stuck"), 2);
    for id in [&a, &b] {
        let w = rig.recorder.window(id).unwrap().unwrap();
        assert_eq!(w.data_points.len(), 11, "every tick but the first");
        assert_eq!(w.data_points[0].timestamp, t(5));
    }
    p.release();
    wait_until_unstuck(&rig);
}

#[test]
fn a_resource_that_hung_once_is_asked_again_after_a_while() {
    let rig = Rig::memory(hang_config());
    // `stuck` takes 300 ms (over the 200 ms timeout) each time it is asked.
    let p = Hanging::new(Some(std::time::Duration::from_millis(300)));
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(2, secs(5)); // batch hangs, then `stuck` hangs alone
    let first = p.calls("stuck");
    p.release(); // from now on `stuck` answers at once
    wait_until_unstuck(&rig);
    rig.ticks(12, secs(5));
    assert!(p.calls("stuck") > first, "retried after its quarantine");
    let id = rig.start("stuck", Trigger::manual());
    assert!(
        !rig.recorder
            .window(&id)
            .unwrap()
            .unwrap()
            .data_points
            .is_empty()
    );
}

#[test]
fn a_hanging_resource_list_skips_the_tick_and_keeps_the_buffers() {
    let rig = Rig::memory(hang_config());
    let p = Hanging::new(Some(std::time::Duration::from_millis(400)));
    p.release(); // `stuck` answers; only the listing will hang
    rig.recorder.set_metrics_provider(p.clone());
    rig.ticks(3, secs(5));
    p.hang_listing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    *p.gate.0.lock().unwrap() = false;
    rig.ticks(1, secs(5)); // the listing hangs: no samples, buffers kept
    let stats = rig.recorder.stats();
    assert_eq!(stats.provider_hangs, 1);
    assert_eq!(stats.buffered_points, 9);
    p.release();
    wait_until_unstuck(&rig);
    rig.ticks(1, secs(5));
    assert_eq!(rig.recorder.stats().buffered_points, 12);
}

/// Needs root (a tmpfs of its own); says why and returns elsewhere, fails
/// under `CI=true`.
fn small_fs(size: &str) -> Option<TmpMount> {
    let fs = TmpMount::new(size);
    if fs.is_none() && std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs a tmpfs (root) on CI");
    }
    fs
}

#[test]
fn a_two_megabyte_file_system_keeps_recording_for_ten_minutes_of_ticks() {
    let Some(fs) = small_fs("2m") else { return };
    let db = fs.path().join("incidents.db");
    // `watch --interval 200ms` for ten minutes: 3,000 ticks of one host,
    // a window opened every 100 ticks, the newest three kept.
    let config = RecorderConfig {
        db_path: Some(db.clone()),
        sample_interval: std::time::Duration::from_millis(200),
        pre_incident_window: secs(10),
        post_incident_window: secs(10),
        max_windows: 3,
        ..RecorderConfig::default()
    };
    let clock = ManualClock::new(t(0));
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap();
    let host = Scripted::new(&["host"], |_, n| {
        Ok((0..10)
            .map(|m| (format!("m{m}"), (n * 7 + m) as f64 * 1.37))
            .collect())
    });
    recorder.set_metrics_provider(host);
    let wal = fs.path().join("incidents.db-wal");
    let mut largest_wal = 0;
    for tick in 0..3000 {
        recorder.record_sample().unwrap();
        if tick % 100 == 50 {
            recorder.start_recording("host", Trigger::manual()).unwrap();
        }
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        clock.advance(std::time::Duration::from_millis(200));
    }
    let stats = recorder.stats();
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.pending_points, 0);
    // The WAL stays within an eighth of the free space (checkpointed every
    // 64 pages here), not the 40 MB it used to reach first.
    assert!(largest_wal < 600 * 1024, "WAL reached {largest_wal} bytes");
    let windows = recorder.recent_windows(0).unwrap();
    assert_eq!(windows.len(), 4, "three closed and one recording");
    let last = windows[0].data_points.last().unwrap().timestamp;
    assert_eq!(
        last,
        incident_recorder::Timestamp::from_unix_ms(T0 + 2999 * 200)
    );
    drop(recorder);
    let conn = sql(&db);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn points_that_cannot_be_written_at_stop_are_reported_with_their_count() {
    let rig = Rig::file(small_config());
    rig.recorder
        .set_metrics_provider(Scripted::counting(&["a"]));
    rig.start("a", Trigger::manual());
    rig.ticks(2, secs(5));
    // Another program takes the write lock and keeps it.
    let other = rusqlite::Connection::open(rig.db_path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..3 {
        // The tick says its commit failed; its sample waits in memory.
        assert!(rig.recorder.record_sample().unwrap_err().is_locked());
        rig.clock.advance(secs(5));
    }
    assert_eq!(rig.recorder.stats().pending_points, 3);
    let err = rig.recorder.stop().unwrap_err();
    assert!(matches!(err, Error::Unwritten { points: 3, .. }), "{err}");
    assert!(
        incident_recorder::error_chain(&err)
            .starts_with("3 points could not be written before the recorder stopped"),
        "{err}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    // Once the lock is free they go with the next commit.
    rig.recorder.stop().unwrap();
    assert_eq!(rig.recorder.stats().pending_points, 0);
}
