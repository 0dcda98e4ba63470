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

    let mut failed = 0;
    for _ in 0..30 {
        if tick().is_err() {
            failed += 1;
        }
    }
    let stats = recorder.stats();
    assert!(failed > 0, "the disk was full: commits must have failed");
    assert_eq!(stats.write_errors as usize, failed);
    assert!(
        stats.last_error.as_deref().unwrap_or("").contains("full"),
        "{:?}",
        stats.last_error
    );
    assert!(
        stats.pending_points > 0,
        "points are kept for the next commit"
    );
    // Sampling went on: every buffer is full (30 s of 5 s ticks).
    assert_eq!(stats.buffered_points, 20 * 6);

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
