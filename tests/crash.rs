//! Crash safety: a child process records and is killed with SIGKILL at random
//! moments; after every kill the database is intact, every closed window has
//! its summary, every recording window holds exactly the ticks that
//! committed, and reopening resumes or closes windows as the design says.
//!
//! The child is this test binary itself, run with `crash_child` and an
//! environment variable naming the database.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use incident_recorder::{
    Clock, IncidentRecorder, IncidentWindow, ManualClock, Metrics, MetricsProvider, ProviderError,
    RecorderConfig, Store, Timestamp, Trigger, WindowFilter, WindowStatus,
};

const RESOURCES: usize = 40;
const KILLS: usize = 24;

fn config(db: &std::path::Path) -> RecorderConfig {
    RecorderConfig {
        db_path: Some(db.to_path_buf()),
        sample_interval: secs(5),
        pre_incident_window: secs(30),
        post_incident_window: secs(60),
        max_data_points_per_window: 40,
        retention: secs(10 * 365 * 24 * 3600),
        max_windows: 1_000_000,
        ..RecorderConfig::default()
    }
}

/// Every value says which resource, time and metric it belongs to.
fn expected(resource: usize, ts: Timestamp, metric: usize) -> f64 {
    resource as f64 * 1e6 + ((ts.as_unix_ms() - T0) / 1000) as f64 + metric as f64 / 10.0
}

struct Encoded(ManualClock);

impl MetricsProvider for Encoded {
    fn current_metrics(&self, id: &str) -> Result<Metrics, ProviderError> {
        let r: usize = id[1..].parse().map_err(|_| ProviderError::new("bad id"))?;
        let now = self.0.now();
        Ok((0..8)
            .map(|m| (format!("m{m}"), expected(r, now, m)))
            .collect())
    }
    fn monitored_resource_ids(&self) -> Vec<String> {
        (0..RESOURCES).map(|i| format!("r{i}")).collect()
    }
}

/// The child: records forever (until killed) from `IR_CRASH_START_MS`.
#[test]
fn crash_child() {
    let Ok(db) = std::env::var("IR_CRASH_CHILD_DB") else {
        return; // a normal test run: nothing to do
    };
    let start: i64 = std::env::var("IR_CRASH_START_MS").unwrap().parse().unwrap();
    let clock = ManualClock::new(Timestamp::from_unix_ms(start));
    let recorder =
        IncidentRecorder::open_with_clock(config(db.as_ref()), Arc::new(clock.clone())).unwrap();
    recorder.set_metrics_provider(Arc::new(Encoded(clock.clone())));
    for k in 0u64.. {
        recorder.record_sample().unwrap();
        if k % 3 == 1 {
            let r = format!("r{}", k % 7);
            recorder
                .start_recording(r.as_str(), Trigger::manual())
                .unwrap();
        }
        if k % 11 == 5
            && let Some(w) = recorder.windows_for_resource("r3", 1).unwrap().pop()
        {
            recorder.stop_recording(&w.id).unwrap();
        }
        clock.advance(secs(5));
    }
}

/// A small deterministic generator for kill delays (reproducible runs).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn killed_at_random_moments_the_recorder_keeps_every_committed_tick() {
    kill_and_verify(KILLS, 0x5eed);
}

/// The long version: `cargo test --release --test crash -- --ignored`
/// (`IR_SOAK_KILLS` sets the number of kills, default 300).
#[test]
#[ignore = "soak: minutes long"]
fn soak_killed_hundreds_of_times() {
    let kills = std::env::var("IR_SOAK_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(300);
    kill_and_verify(kills, 0xdecade);
}

fn kill_and_verify(kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Lcg(seed);
    let mut start = T0;
    let mut resumed_total = 0;
    let mut interrupted_total = 0;
    for kill in 0..kills {
        let mut child = std::process::Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("IR_CRASH_CHILD_DB", &db)
            .env("IR_CRASH_START_MS", start.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.next(150)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let last_tick = verify(&db, kill);
        // Even runs restart right after the last tick (windows resume), odd
        // ones an hour later (windows are past their deadline: interrupted).
        let gap = if kill % 2 == 0 { 5_000 } else { 3_600_000 };
        // (Time never goes back: a child killed before its first tick
        // leaves the last tick where it was, but its start stays past.)
        start = last_tick.map_or(start, |t| t.as_unix_ms()).max(start) + gap;
        let (resumed, interrupted) = verify_recovery(&db, start);
        resumed_total += resumed;
        interrupted_total += interrupted;
    }
    assert!(resumed_total > 0, "some runs resumed windows");
    assert!(
        interrupted_total > 0,
        "some runs closed windows as interrupted"
    );
}

/// Checks the database after a kill; returns the time of the last committed tick.
fn verify(db: &std::path::Path, kill: usize) -> Option<Timestamp> {
    let conn = sql(db);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "kill {kill}");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    drop(conn);

    let store = match Store::open_read_only(db) {
        // Killed before it created the schema (the migration is one
        // transaction): an empty database, nothing to check.
        Err(incident_recorder::Error::OlderSchema { found: 0, .. }) if kill == 0 => return None,
        other => other.unwrap_or_else(|e| panic!("kill {kill}: {e:?}")),
    };
    let windows = store
        .windows(&WindowFilter {
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap();
    let last_tick = windows
        .iter()
        .filter_map(|w| w.data_points.last())
        .map(|p| p.timestamp)
        .max();
    let closing: std::collections::HashSet<String> = sql(db)
        .prepare("SELECT w.public_id FROM window_closes c JOIN windows w ON w.id = c.window_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for w in &windows {
        let r: usize = w.resource_id[1..].parse().unwrap();
        // No partial tick, no foreign value: each point carries its 8 values.
        for p in &w.data_points {
            assert_eq!(p.metrics.len(), 8, "kill {kill}, window {}", w.id);
            for (m, (name, v)) in p.metrics.iter().enumerate() {
                assert_eq!(name, &format!("m{m}"));
                assert_eq!(
                    *v,
                    expected(r, p.timestamp, m),
                    "kill {kill}, window {}",
                    w.id
                );
            }
        }
        // No gap: one point per tick, 5 s apart.
        for pair in w.data_points.windows(2) {
            let step = pair[1].timestamp.as_unix_ms() - pair[0].timestamp.as_unix_ms();
            assert_eq!(step, 5_000, "kill {kill}, window {} has a gap", w.id);
        }
        match w.status {
            // Its close was decided and committed; the closer had not done it.
            WindowStatus::Recording if closing.contains(w.id.as_str()) => {}
            // A recording window got every committed tick, up to the last one.
            WindowStatus::Recording => {
                assert_eq!(
                    w.data_points.last().map(|p| p.timestamp),
                    last_tick,
                    "kill {kill}, window {}",
                    w.id
                );
            }
            _ => verify_summary(w, kill),
        }
    }
    last_tick
}

/// A closed window's summary matches its points exactly.
fn verify_summary(w: &IncidentWindow, kill: usize) {
    let Some(s) = &w.summary else {
        assert!(
            w.data_points.is_empty(),
            "kill {kill}: window {} lost its summary",
            w.id
        );
        return;
    };
    assert_eq!(
        s.data_points as usize,
        w.data_points.len(),
        "kill {kill}, window {}",
        w.id
    );
    let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for p in &w.data_points {
        for (k, v) in &p.metrics {
            series.entry(k).or_default().push(*v);
        }
    }
    for (k, values) in series {
        let peak = values.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(s.peaks[k], peak, "kill {kill}, window {}", w.id);
        assert_eq!(s.samples[k] as usize, values.len());
        assert_eq!(s.changes[k], values[values.len() - 1] - values[0]);
    }
}

/// Opens the database the way the next run will; checks that windows past
/// their deadline were closed as interrupted and the others resumed.
fn verify_recovery(db: &std::path::Path, clock_ms: i64) -> (usize, usize) {
    let before = match Store::open_read_only(db) {
        // The first child was killed before it created the schema: nothing
        // was recording.
        Err(incident_recorder::Error::OlderSchema { found: 0, .. }) => Vec::new(),
        other => other
            .unwrap()
            .windows(&WindowFilter {
                status: Some(WindowStatus::Recording),
                ..WindowFilter::default()
            })
            .unwrap(),
    };
    // Closes the killed recorder had decided (committed) but not done yet:
    // the next one does them as decided.
    let decided: std::collections::HashMap<String, (String, i64)> = if before.is_empty() {
        Default::default()
    } else {
        sql(db)
            .prepare(
                "SELECT w.public_id, c.status, c.end_ms FROM window_closes c
                 JOIN windows w ON w.id = c.window_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let clock = ManualClock::new(Timestamp::from_unix_ms(clock_ms));
    // A window is over once the recorder's time passes its deadline by the
    // allowed source lag (one sample interval here).
    let lag = config(db).normalized().max_source_lag.as_millis() as i64;
    let recorder = IncidentRecorder::open_with_clock(config(db), Arc::new(clock)).unwrap();
    // A child killed before it opened the database leaves the previous
    // check's clean stop in place: then due windows complete at their
    // deadline, as a running recorder would have closed them.
    let clean = recorder.recovery().clean_stop;
    // The recorder's time never goes back: after such a clean stop it is
    // the time that check stopped at, if later than this run's clock.
    let now_ms = recorder.now().as_unix_ms();
    assert!(now_ms >= clock_ms);
    let mut resumed = 0;
    let mut interrupted = 0;
    for w in &before {
        let after = recorder.window(&w.id).unwrap().unwrap();
        if let Some((status, end_ms)) = decided.get(w.id.as_str()) {
            assert_eq!(after.status.as_str(), status, "{}", w.id);
            assert_eq!(after.end_time.map(Timestamp::as_unix_ms), Some(*end_ms));
            verify_summary(&after, 0);
            interrupted += 1;
        } else if w.deadline.unwrap().as_unix_ms() + lag >= now_ms {
            assert_eq!(after.status, WindowStatus::Recording, "{}", w.id);
            resumed += 1;
        } else if clean {
            assert_eq!(after.status, WindowStatus::Complete, "{}", w.id);
            assert_eq!(after.end_time, w.deadline);
            interrupted += 1;
        } else {
            assert_eq!(after.status, WindowStatus::Interrupted, "{}", w.id);
            assert_eq!(
                after.end_time,
                after
                    .data_points
                    .last()
                    .map(|p| p.timestamp)
                    .or(Some(after.start_time))
            );
            interrupted += 1;
        }
    }
    assert_eq!(recorder.stats().active_windows, resumed);
    (resumed, interrupted)
}
