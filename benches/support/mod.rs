//! What the benches, `examples/peerbench.rs` and `examples/heap.rs` share: the
//! Go peer's synthetic data, reproduced bit for bit, and the rigs that put a
//! recorder in the state each measurement needs.
//!
//! The peer (`../shared/peer`, README section "Synthetic data") draws every value
//! from SplitMix64 in a fixed order. Generating the same values here means both
//! sides store and summarise the same numbers, so their timings compare the
//! recorders and not the data.
#![allow(dead_code)] // every bench and example uses a different subset

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use incident_recorder::{
    IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError, RecorderConfig,
    Resource, Sample, Timestamp, Trigger, WindowId,
};

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function applied to state `z`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64, as `Rng` in the peer's `bench_helpers.go`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// A float in [0, 1) with 53 random bits.
    pub fn float(&mut self) -> f64 {
        unit(self.next_u64())
    }
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The 8 metrics of every synthetic point, in the peer's order.
pub const METRIC_NAMES: [&str; 8] = [
    "cpu",
    "memory",
    "disk",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "load",
];

/// Values of one point from 8 consecutive SplitMix64 outputs (`MetricValues`).
fn values_from(draw: impl Fn(usize) -> u64) -> [f64; 8] {
    [
        unit(draw(0)) * 100.0,
        unit(draw(1)) * 100.0,
        unit(draw(2)) * 100.0,
        unit(draw(3)) * 1.25e8,
        unit(draw(4)) * 1.25e8,
        unit(draw(5)) * 5e8,
        unit(draw(6)) * 5e8,
        (draw(7) % 1600) as f64 / 100.0,
    ]
}

/// One point's values (`MetricValues(r)`).
pub fn metric_values(r: &mut Rng) -> [f64; 8] {
    let base = r.0;
    r.0 = base.wrapping_add(8u64.wrapping_mul(GAMMA));
    values_from(|k| mix(base.wrapping_add((k as u64 + 1).wrapping_mul(GAMMA))))
}

/// The values as `Metrics`, names borrowed (no string is allocated).
pub fn to_metrics(v: [f64; 8]) -> Metrics {
    let mut m = Metrics::with_capacity(8);
    for (name, value) in METRIC_NAMES.iter().zip(v) {
        m.insert(Cow::Borrowed(*name), value);
    }
    m
}

/// Resource `i`: `cluster1-node%02d-%d` with (i%8+1, 100+i).
pub fn resource_id(i: usize) -> String {
    format!("cluster1-node{:02}-{}", i % 8 + 1, 100 + i)
}

/// The peer's `BenchProvider`: a fresh set of 8 metrics per call, a fresh copy
/// of the id list per listing. The generator state is an atomic, so calls from
/// the recorder's thread need no lock: SplitMix64's state only ever advances by
/// a constant, so reserving 8 steps with one `fetch_add` gives exactly the
/// values 8 sequential `next()` calls would.
pub struct PeerProvider {
    pub ids: Vec<String>,
    state: AtomicU64,
}

impl PeerProvider {
    pub fn new(resources: usize, seed: u64) -> PeerProvider {
        PeerProvider {
            ids: (0..resources).map(resource_id).collect(),
            state: AtomicU64::new(seed),
        }
    }
}

impl MetricsProvider for PeerProvider {
    fn current_metrics(&self, _resource_id: &str) -> Result<Metrics, ProviderError> {
        let step = 8u64.wrapping_mul(GAMMA);
        let base = self.state.fetch_add(step, Ordering::Relaxed);
        Ok(to_metrics(values_from(|k| {
            mix(base.wrapping_add((k as u64 + 1).wrapping_mul(GAMMA)))
        })))
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        self.ids.clone()
    }
}

/// True when run by `cargo bench` (or with `--bench`), false under
/// `cargo test --benches`, which only checks that every bench runs: then the
/// sizes shrink so CI stays fast even on an unoptimised build.
pub fn full_size() -> bool {
    std::env::args().any(|a| a == "--bench") || std::env::var_os("IR_BENCH_FULL").is_some()
}

/// A fixed point in time close to now, truncated to the second (as the peer's
/// `time.Now().UTC().Truncate(time.Second)`), so the default 24 h retention
/// keeps the synthetic windows when a recorder opens them with the system clock.
pub fn now_truncated() -> Timestamp {
    Timestamp::from_unix_ms(Timestamp::now().as_unix_ms() / 1000 * 1000)
}

const SECOND: i64 = 1000;
const INTERVAL_MS: i64 = 5 * SECOND;

/// The database file of a rig, in its own temporary directory.
pub fn temp_db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("incidents.db")
}

/// A recorder in the peer's tick steady state: `resources` buffers full with
/// 60 points, `active` windows recording, durable writes to a file database.
///
/// Differences from the peer, both forced by the simulated clock: the peer's
/// ticks happen within seconds of wall time, so its 10-minute post-incident
/// deadline never passes; here each tick advances the clock 5 s, so the
/// deadline is raised to 1 h (720 ticks) to keep every window recording. And
/// the recorder closes a window in the tick that brings it to the point limit,
/// where the seed only refuses the next point, so the limit is 501 to let
/// windows grow from 63 to exactly 500 points like the peer's.
pub struct TickRig {
    pub recorder: IncidentRecorder,
    pub clock: ManualClock,
    pub provider: Arc<PeerProvider>,
    pub resources: usize,
    pub active: usize,
    /// Measured ticks left before the windows reach 500 points.
    pub ticks_left: usize,
    _dir: tempfile::TempDir,
}

/// Ticks a rig can measure (`-ticks` of the peer): windows go from 63 to 500 points.
pub const RIG_TICKS: usize = 437;
/// Unmeasured ticks after the windows open (`-warmup` of the peer).
pub const RIG_WARMUP: usize = 3;
/// Points per full pre-incident buffer with the default config.
pub const BUFFER_POINTS: usize = 60;

impl TickRig {
    /// `seed` is the provider's seed (the peer uses 1 + repetition).
    pub fn new(resources: usize, active: usize, seed: u64) -> TickRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = RecorderConfig {
            post_incident_window: Duration::from_secs(3600),
            max_data_points_per_window: 501,
            ..RecorderConfig::with_db_path(temp_db(&dir))
        };
        TickRig::with_config(config, dir, resources, active, seed)
    }

    /// A rig with `config` (its `db_path` inside `dir`).
    pub fn with_config(
        config: RecorderConfig,
        dir: tempfile::TempDir,
        resources: usize,
        active: usize,
        seed: u64,
    ) -> TickRig {
        let clock = ManualClock::new(now_truncated());
        let recorder =
            IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).expect("open");
        let provider = Arc::new(PeerProvider::new(resources, seed));
        recorder.set_metrics_provider(provider.clone());
        let rig = TickRig {
            recorder,
            clock,
            provider,
            resources,
            active,
            ticks_left: RIG_TICKS,
            _dir: dir,
        };
        for i in 0..BUFFER_POINTS {
            if i > 0 {
                rig.clock.advance(Duration::from_secs(5));
            }
            rig.recorder.record_sample().expect("fill tick");
        }
        for id in rig.provider.ids[..active].iter() {
            rig.recorder
                .start_recording(
                    Resource::named(id, &format!("vm-{id}"), "vm"),
                    Trigger::alert(format!("cpu-{id}")),
                )
                .expect("start recording");
        }
        for _ in 0..RIG_WARMUP {
            rig.step();
        }
        rig
    }

    /// One tick, after moving the clock one interval on.
    pub fn step(&self) {
        self.clock.advance(Duration::from_secs(5));
        self.recorder.record_sample().expect("tick");
    }

    /// Runs `n` measured ticks and returns the time spent inside
    /// `record_sample` only (the clock is moved outside the timed region, as
    /// the peer's `ExpireOldest`).
    pub fn timed_ticks(&mut self, n: usize) -> Duration {
        assert!(n <= self.ticks_left, "rig exhausted");
        self.ticks_left -= n;
        let mut total = Duration::ZERO;
        for _ in 0..n {
            self.clock.advance(Duration::from_secs(5));
            let t0 = Instant::now();
            self.recorder.record_sample().expect("tick");
            total += t0.elapsed();
        }
        total
    }

    /// Checks the steady state the peer checks after each repetition.
    pub fn check(&self) {
        let stats = self.recorder.stats();
        // A buffer keeps the pre-incident window plus one interval for a
        // lagging source (`max_source_lag`, issue 10): one sample more
        // than the peer's.
        assert_eq!(stats.buffered_points, self.resources * (BUFFER_POINTS + 1));
        assert_eq!(stats.active_windows, self.active);
        assert_eq!(stats.pending_points, 0);
    }
}

/// Times `n` ticks over as many fresh rigs as needed (each measures at most
/// [`RIG_TICKS`] ticks, as one repetition of the peer does).
pub struct TickSeries {
    resources: usize,
    active: usize,
    seed: u64,
    rig: Option<TickRig>,
}

impl TickSeries {
    pub fn new(resources: usize, active: usize) -> TickSeries {
        TickSeries {
            resources,
            active,
            seed: 1,
            rig: None,
        }
    }

    pub fn time(&mut self, mut n: usize) -> Duration {
        let mut total = Duration::ZERO;
        while n > 0 {
            if self.rig.as_ref().is_none_or(|r| r.ticks_left == 0) {
                self.rig = None; // drop the old one (and its files) first
                self.rig = Some(TickRig::new(self.resources, self.active, self.seed));
                self.seed += 1;
            }
            let rig = self.rig.as_mut().expect("just built");
            let k = n.min(rig.ticks_left);
            total += rig.timed_ticks(k);
            n -= k;
        }
        total
    }
}

/// The recorder configuration of the window fixtures: keep `windows` closed
/// windows (as the peer raises `MaxWindows` for W=1000), deadlines far enough
/// for 500 points.
pub fn fixture_config(path: &Path, windows: usize) -> RecorderConfig {
    RecorderConfig {
        max_windows: windows.max(RecorderConfig::DEFAULT_MAX_WINDOWS),
        post_incident_window: Duration::from_secs(3600),
        ..RecorderConfig::with_db_path(path)
    }
}

/// The samples of one synthetic window: `points` points 5 s apart (plus the
/// peer's sub-second jitter, in whole ms here), drawn from `rng`: point k at
/// `end - points * 5 s + k * 5 s + jitter`, as the peer's `syntheticWindow`.
pub fn window_samples(rng: &mut Rng, points: usize, end: Timestamp) -> Vec<(Timestamp, [f64; 8])> {
    let start = end.as_unix_ms() - points as i64 * INTERVAL_MS;
    (0..points)
        .map(|k| {
            let v = metric_values(rng);
            let jitter_ms = (rng.next_u64() % 1_000_000_000) as i64 / 1_000_000;
            let ts = start + k as i64 * INTERVAL_MS + jitter_ms;
            (Timestamp::from_unix_ms(ts), v)
        })
        .collect()
}

/// Records one window the way production does: the first
/// [`BUFFER_POINTS`] samples fill the buffer, a trigger opens the window, the
/// rest are pushed into it in one batch. With `max_data_points_per_window`
/// equal to `samples.len()` the last point closes it as `truncated`, as the
/// peer's windows are; with a higher limit it stays recording.
pub fn record_window(
    recorder: &IncidentRecorder,
    clock: &ManualClock,
    resource: &str,
    samples: &[(Timestamp, [f64; 8])],
) -> WindowId {
    let pre = samples.len().min(BUFFER_POINTS);
    let push = |s: &[(Timestamp, [f64; 8])]| {
        // Samples may not be more than 10 minutes ahead of the clock.
        if let Some((last, _)) = s.last() {
            clock.set(*last);
        }
        let report = recorder
            .push_samples(s.iter().map(|(ts, v)| Sample {
                resource: Resource::from(resource),
                timestamp: *ts,
                metrics: to_metrics(*v),
                metadata: None,
            }))
            .expect("push");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    };
    push(&samples[..pre]);
    clock.set(samples[pre - 1].0);
    // The trigger acts at its own time: windows of different resources
    // overlap in time, and the recorder's clock never goes back.
    let id = recorder
        .start_recording_at(
            resource,
            Trigger::alert(format!("cpu-{resource}")),
            samples[pre - 1].0,
        )
        .expect("start");
    push(&samples[pre..]);
    clock.set(samples[samples.len() - 1].0);
    id
}

/// Builds a database at `path` holding `windows` closed windows of `points`
/// points (the peer's persist fixture: seed 1, window i on resource i, ending
/// `windows - i` seconds before `end`). Returns the window ids, oldest first.
pub fn build_history(path: &Path, windows: usize, points: usize, end: Timestamp) -> Vec<WindowId> {
    let clock = ManualClock::new(Timestamp::from_unix_ms(0));
    let config = RecorderConfig {
        max_data_points_per_window: points,
        ..fixture_config(path, windows)
    };
    let recorder =
        IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).expect("open fixture");
    let mut rng = Rng::new(1);
    let mut ids = Vec::with_capacity(windows);
    for i in 0..windows {
        let end_i = Timestamp::from_unix_ms(end.as_unix_ms() - (windows - i) as i64 * SECOND);
        let samples = window_samples(&mut rng, points, end_i);
        ids.push(record_window(&recorder, &clock, &resource_id(i), &samples));
    }
    let stats = recorder.store().stats().expect("stats");
    assert_eq!(stats.points, (windows * points) as u64, "fixture points");
    drop(recorder);
    checkpoint(path);
    ids
}

/// Folds the WAL into the database file and empties it, so copies of the
/// file are self-contained and every measurement starts from the same state.
/// The file is then synced, so the kernel is not still writing a freshly
/// built fixture back while the next measurement runs.
pub fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("open for checkpoint");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .expect("sync");
}

/// Copies a database file (checkpointed, so without its WAL) into `dir`.
pub fn copy_db(from: &Path, dir: &tempfile::TempDir) -> PathBuf {
    let to = temp_db(dir);
    std::fs::copy(from, &to).expect("copy fixture");
    to
}

/// Completes 500-point windows on top of a fixture history: each round arms
/// a window (untimed) and then times `stop_recording`, which computes the
/// summary, commits it and trims the oldest window, as the peer's
/// `StopRecording` → `completeWindow` does with its 100 kept windows.
pub struct CompleteRig {
    pub recorder: IncidentRecorder,
    clock: ManualClock,
    rng: Rng,
    points: usize,
    next: usize,
    _dir: tempfile::TempDir,
}

impl CompleteRig {
    pub fn new(fixture: &Path, windows: usize, points: usize) -> CompleteRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = copy_db(fixture, &dir);
        let clock = ManualClock::new(now_truncated());
        let config = RecorderConfig {
            max_windows: windows,
            max_data_points_per_window: points + 1,
            // The simulated clock runs ~40 min per round; keep the fixture.
            retention: Duration::from_secs(100 * 365 * 24 * 3600),
            ..fixture_config(&path, windows)
        };
        let recorder =
            IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).expect("open");
        CompleteRig {
            recorder,
            clock,
            rng: Rng::new(2),
            points,
            next: 0,
            _dir: dir,
        }
    }

    /// Arms one recording window of `points` points and returns its id.
    pub fn arm(&mut self) -> WindowId {
        let end = self.clock.now_ts().as_unix_ms() + (self.points as i64 + 2) * INTERVAL_MS;
        let samples = window_samples(&mut self.rng, self.points, Timestamp::from_unix_ms(end));
        // A few resources in turn: each keeps a buffer, none grows.
        let resource = resource_id(100_000 + self.next % 8);
        self.next += 1;
        let id = record_window(&self.recorder, &self.clock, &resource, &samples);
        // The window's points arrived in one burst; recorded live, over
        // minutes, the closer sealed all but the last of them long before
        // the window closes. So that is done (untimed) before it is closed.
        self.recorder.sync().expect("sync");
        id
    }

    /// Arms a window, then times completing it.
    pub fn timed_complete(&mut self) -> Duration {
        let id = self.arm();
        let t0 = Instant::now();
        self.recorder.stop_recording(&id).expect("stop");
        t0.elapsed()
    }
}

/// `ManualClock::now` without importing the `Clock` trait everywhere.
trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        incident_recorder::Clock::now(self)
    }
}

/// Rows for the ingest measurements: `windows` windows × `per_window`
/// consecutive points each (timestamps continue from `start`), values from `rng`.
pub struct IngestBatch {
    /// (window index, timestamp, values), in insertion order.
    pub rows: Vec<(usize, Timestamp, [f64; 8])>,
}

impl IngestBatch {
    pub fn new(rng: &mut Rng, windows: usize, per_window: usize, start: Timestamp) -> IngestBatch {
        let mut rows = Vec::with_capacity(windows * per_window);
        for k in 0..per_window {
            let ts = Timestamp::from_unix_ms(start.as_unix_ms() + k as i64 * INTERVAL_MS);
            for w in 0..windows {
                rows.push((w, ts, metric_values(rng)));
            }
        }
        IngestBatch { rows }
    }

    pub fn values(&self) -> usize {
        self.rows.len() * 8
    }
}

/// Bulk ingest through `push_samples` into `windows` recording windows (one
/// per resource), and the same rows inserted with plain rusqlite into an
/// identical database: the ratio is how close the recorder gets to SQLite.
pub struct IngestRig {
    pub recorder: IncidentRecorder,
    clock: ManualClock,
    /// Resource ids, by window index.
    resources: Vec<String>,
    batches: Batches,
    _dir: tempfile::TempDir,
}

/// The ingest batches: the peer's values (seed 1), timestamps moving on.
pub struct Batches {
    windows: usize,
    next_ts: Timestamp,
    rng: Rng,
}

impl Batches {
    pub fn new(windows: usize, start: Timestamp) -> Batches {
        Batches {
            windows,
            next_ts: start,
            rng: Rng::new(1),
        }
    }

    /// The next batch: `per_window` points for each window, later than the last.
    pub fn next(&mut self, per_window: usize) -> IngestBatch {
        let b = IngestBatch::new(&mut self.rng, self.windows, per_window, self.next_ts);
        self.next_ts =
            Timestamp::from_unix_ms(self.next_ts.as_unix_ms() + per_window as i64 * INTERVAL_MS);
        b
    }
}

/// How many windows the ingest rigs spread their points over.
pub const INGEST_WINDOWS: usize = 100;

impl IngestRig {
    pub fn new(windows: usize) -> IngestRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(now_truncated());
        let config = RecorderConfig {
            max_data_points_per_window: usize::MAX,
            post_incident_window: Duration::from_secs(100 * 365 * 24 * 3600),
            ..RecorderConfig::with_db_path(temp_db(&dir))
        };
        let recorder =
            IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).expect("open");
        let resources: Vec<String> = (0..windows).map(resource_id).collect();
        for r in &resources {
            recorder
                .start_recording(r.as_str(), Trigger::manual())
                .expect("open window");
        }
        let batches = Batches::new(windows, clock.now_ts());
        IngestRig {
            recorder,
            clock,
            resources,
            batches,
            _dir: dir,
        }
    }

    /// The next batch: `per_window` points for each window, later than the last.
    pub fn batch(&mut self, per_window: usize) -> IngestBatch {
        self.batches.next(per_window)
    }

    /// Times `push_samples` of the batch (building the `Sample`s is untimed).
    pub fn timed_push(&mut self, batch: &IngestBatch) -> Duration {
        let samples: Vec<Sample<'_>> = batch
            .rows
            .iter()
            .map(|(w, ts, v)| Sample {
                resource: Resource::from(self.resources[*w].as_str()),
                timestamp: *ts,
                metrics: to_metrics(*v),
                metadata: None,
            })
            .collect();
        let t0 = Instant::now();
        let report = self.recorder.push_samples(samples).expect("push");
        let el = t0.elapsed();
        assert_eq!(report.accepted, batch.rows.len());
        self.clock.set(self.batches.next_ts);
        el
    }
}

/// The SQLite limit: the same rows as [`IngestRig`] (the journal's
/// `recent_points` and `recent_values`, same schema, same pragmas) inserted
/// with one cached single-row statement per table in one transaction,
/// nothing else.
pub struct RawRig {
    conn: rusqlite::Connection,
    windows: Vec<i64>,
    metric_ids: [i64; 8],
    next_id: i64,
    _dir: tempfile::TempDir,
}

impl RawRig {
    pub fn new(windows: usize) -> RawRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = temp_db(&dir);
        {
            // The recorder creates the schema and the windows the rows belong to.
            let rig = IncidentRecorder::open(RecorderConfig::with_db_path(&path)).expect("open");
            for i in 0..windows {
                let r = resource_id(i);
                rig.start_recording(r.as_str(), Trigger::manual())
                    .expect("window");
                rig.push_sample(r.as_str(), Timestamp::now(), to_metrics([0.5; 8]), None)
                    .expect("one point, so the metrics exist");
            }
        }
        let conn = rusqlite::Connection::open(&path).expect("open raw");
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        // The recorder's writer's page cache (`WRITER_CACHE_KIB` in
        // src/store/writer.rs). Also keeps the two from evicting each other:
        // all connections of a process share SQLite's page LRU here, and one
        // at its limit recycles the other's pages.
        conn.pragma_update(None, "cache_size", -8192).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let windows: Vec<i64> = {
            let mut stmt = conn.prepare("SELECT id FROM windows ORDER BY id").unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let mut metric_ids = [0; 8];
        for (id, name) in metric_ids.iter_mut().zip(METRIC_NAMES) {
            *id = conn
                .query_row("SELECT id FROM metrics WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .unwrap();
        }
        let next_id: i64 = conn
            .query_row(
                "SELECT coalesce(max(id), 0) + 1 FROM recent_points",
                [],
                |r| r.get(0),
            )
            .unwrap();
        RawRig {
            conn,
            windows,
            metric_ids,
            next_id,
            _dir: dir,
        }
    }

    /// Times inserting the batch's rows in one transaction.
    pub fn timed_insert(&mut self, batch: &IngestBatch) -> Duration {
        let t0 = Instant::now();
        let tx = self.conn.transaction().expect("begin");
        {
            let mut point = tx
                .prepare_cached(
                    "INSERT INTO recent_points (id, window_id, ts_ms, metadata) VALUES (?1, ?2, ?3, NULL)",
                )
                .unwrap();
            let mut value = tx
                .prepare_cached(
                    "INSERT INTO recent_values (point_id, metric_id, value) VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            for (w, ts, v) in &batch.rows {
                let id = self.next_id;
                self.next_id += 1;
                point
                    .execute((id, self.windows[*w], ts.as_unix_ms()))
                    .unwrap();
                for (m, x) in self.metric_ids.iter().zip(v) {
                    value.execute((id, m, x)).unwrap();
                }
            }
        }
        tx.commit().expect("commit");
        t0.elapsed()
    }
}

/// Panics unless the generator reproduces the peer's first point (seed 1), as
/// printed by `sqlite_ref.py`'s `metric_values(SplitMix64(1))`; every bench
/// and example calls it first, so a drift can never go unnoticed.
pub fn assert_peer_generator() {
    let mut r = Rng::new(1);
    let v = metric_values(&mut r);
    let want = [
        56.65615751722809,
        74.57817572627012,
        97.10027535867962,
        55544902.13197151,
        55533087.60329475,
        381447195.9558805,
        438674343.3820865,
        13.33,
    ];
    assert_eq!(v, want, "SplitMix64 / MetricValues differ from the peer's");
    assert_eq!(r.next_u64() % 1_000_000_000, 892_356_520, "jitter draw");
    let p = PeerProvider::new(1, 1);
    assert_eq!(
        p.current_metrics("x")
            .unwrap()
            .iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        want,
        "provider draws"
    );
    assert_eq!(resource_id(2), "cluster1-node03-102");
}
