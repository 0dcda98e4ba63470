//! The history at the CLI's limits (issue 12), shared by `benches/history.rs`
//! and `examples/historybench.rs`: a database of `windows` closed windows of
//! `points` points × 8 metrics over `resources` resources, plus `recording`
//! windows still recording, built once through the public library API and
//! cached under `target/history-cache/`; the SQLite queries printed in
//! README.md and docs/schema.md; the CLI read commands run as a user runs
//! them; and the storm tick of `examples/peerbench.rs` (on [`TickRig`]).
//!
//! Included next to `support/mod.rs` (as `mod support;`), whose generator
//! (the peer's SplitMix64 values) and rigs it uses.
#![allow(dead_code)] // the bench and the example use different subsets

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use incident_recorder::{
    IncidentRecorder, IncidentWindow, ManualClock, Metrics, RecorderConfig, Resource, Sample,
    Store, Timestamp, Trigger, WindowFilter, WindowStatus,
};
use rusqlite::OpenFlags;

use crate::support::{self, METRIC_NAMES, Rng, TickRig};

/// Bump when the generated history changes, so caches are rebuilt.
const GENERATOR: u32 = 2;

/// Time between two samples of a resource.
const INTERVAL_MS: i64 = 5_000;
/// The history ends about here: 2026-11-30T00:00:00Z (the exact end is
/// the recording windows' last tick, after every closed window's end:
/// bursts, which wait for all their resources, push the schedule a few
/// hours later).
const END_MS: i64 = 1_795_996_800_000;
/// The closed windows start over this span before the end: under the CLI's
/// 30-day retention, so `watch` on this database would trim none of them.
const SPAN_MS: i64 = 29 * 24 * 3600 * 1000;

/// The shape of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistorySize {
    /// Closed windows (all reach the point limit: `truncated`).
    pub windows: usize,
    /// Points per closed window (the point limit).
    pub points: usize,
    /// Resources the windows are spread over.
    pub resources: usize,
    /// Windows still recording at the end, recorded together.
    pub recording: usize,
}

impl HistorySize {
    /// The CLI's limits: `--max-windows 10000`, `--max-points 500`.
    pub const CLI_LIMITS: HistorySize = HistorySize {
        windows: 10_000,
        points: 500,
        resources: 200,
        recording: 100,
    };

    /// What `cargo test --benches` (CI) builds, in an unoptimised build.
    pub const SMALL: HistorySize = HistorySize {
        windows: 200,
        points: 100,
        resources: 20,
        recording: 10,
    };

    /// `windows` closed windows of `points` points, with the CLI limits'
    /// resources (at most one per 10 windows) and recording windows.
    pub fn with(windows: usize, points: usize) -> HistorySize {
        let resources = (windows / 10).clamp(4, 200);
        HistorySize {
            windows,
            points,
            resources,
            recording: (resources / 2).min(100),
        }
    }

    /// The cache file's name: what makes one history differ from another.
    pub fn cache_key(&self) -> String {
        format!(
            "v{}-{}-g{GENERATOR}-w{}-p{}-r{}-a{}",
            Store::schema_version(),
            schema_fingerprint(),
            self.windows,
            self.points,
            self.resources,
            self.recording
        )
    }

    /// Points buffered before each closed window's trigger (the
    /// pre-incident window: 5 minutes, 60 samples 5 s apart).
    fn pre(&self) -> usize {
        (self.points / 4).clamp(1, 60)
    }

    fn check(&self) {
        assert!(self.points >= 8, "at least 8 points a window");
        assert!(self.resources >= 3, "at least 3 resources");
        assert!(
            self.recording < self.resources,
            "recording windows need a resource each, and one resource has a single window"
        );
    }
}

impl std::fmt::Display for HistorySize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} windows x {} points x 8 metrics, {} resources, {} recording",
            self.windows, self.points, self.resources, self.recording
        )
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and toolchains.
struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x100_0000_01b3); // field separator
    }
}

/// A hash of the schema this build creates (every table, index, view and
/// trigger as SQLite stores it), so a layout change rebuilds the cache even
/// without a new schema version.
pub fn schema_fingerprint() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("schema.db");
    drop(Store::open(&path).expect("create an empty store"));
    let conn = read_connection(&path);
    let mut stmt = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .expect("schema query");
    let mut rows = stmt.query([]).expect("schema rows");
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    while let Some(r) = rows.next().expect("schema row") {
        for i in 0..3 {
            h.write(r.get::<_, String>(i).expect("text").as_bytes());
        }
    }
    format!("{:08x}", h.0 >> 32)
}

/// A read-only connection, as `sqlite3` opens a file.
pub fn read_connection(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open read-only")
}

/// The cargo target directory this bench or example runs from: its
/// executable is `<target>/<profile>/deps/<bench>` or
/// `<target>/<profile>/examples/<example>`.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A cached history and what was picked from it for the measurements.
pub struct History {
    /// The database (checkpointed; never written by the measurements).
    pub path: PathBuf,
    pub size: HistorySize,
    /// How long building it took, if this run built it.
    pub built_in: Option<Duration>,
    /// How long building it took when it was built (from its side file).
    pub build_seconds: Option<f64>,
    pub picks: Picks,
}

/// The windows and resources the measurements ask about.
pub struct Picks {
    /// Closed windows spread evenly over the history (oldest first).
    pub closed: Vec<String>,
    /// The closed window in the middle of the history.
    pub closed_window: String,
    /// The recording window with the most points.
    pub recording_window: String,
    /// The resource of `recording_window`: it has closed windows too.
    pub resource: String,
    /// The resource with exactly one window (closed), for `export` of one window.
    pub export_resource: String,
    /// Windows of `resource`.
    pub resource_windows: usize,
}

/// The history of `size` from the cache under [`target_dir`], built first if
/// missing (or if `IR_HISTORY_REBUILD` is set). It is built under a
/// temporary name and renamed into place once complete and checkpointed, so
/// an interrupted build is never taken for a cache.
pub fn cached(size: HistorySize, log: impl Fn(String)) -> History {
    size.check();
    let dir = target_dir().join("history-cache");
    std::fs::create_dir_all(&dir).expect("cache directory");
    remove_abandoned_builds(&dir);
    let key = size.cache_key();
    let path = dir.join(format!("{key}.db"));
    let side = dir.join(format!("{key}.json"));
    let mut built_in = None;
    if std::env::var_os("IR_HISTORY_REBUILD").is_some() || !path.exists() {
        let tmp = dir.join(format!("{key}.building-{}.db", std::process::id()));
        remove_db(&tmp);
        log(format!("building {size} into {}", tmp.display()));
        let t0 = Instant::now();
        build(&tmp, size);
        let took = t0.elapsed();
        std::fs::rename(&tmp, &path).expect("rename the built history into place");
        remove_db(&tmp);
        let note = serde_json::json!({
            "size": size.to_string(),
            "build_seconds": took.as_secs_f64(),
            "built": Timestamp::now().to_string(),
        });
        std::fs::write(&side, note.to_string()).expect("write the cache's side file");
        log(format!(
            "built in {:.1} s: {} ({:.0} MB)",
            took.as_secs_f64(),
            path.display(),
            file_mb(&path)
        ));
        built_in = Some(took);
    } else {
        log(format!(
            "using the cached history {} ({:.0} MB; IR_HISTORY_REBUILD=1 rebuilds it)",
            path.display(),
            file_mb(&path)
        ));
    }
    let build_seconds = std::fs::read_to_string(&side)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["build_seconds"].as_f64());
    let picks = picks(&path, size);
    History {
        path,
        size,
        built_in,
        build_seconds,
        picks,
    }
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// Removes a database file and its companions.
fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Deletes the files of builds whose process is gone (killed mid-build).
fn remove_abandoned_builds(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((_, rest)) = name.split_once(".building-") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What a group of windows recorded together does: its trigger, its spike
/// (the samples that set the trigger off) and later triggers and resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `cpu>90 for 1m`: CPU high from a minute before the trigger, resolved
    /// when it comes down; sometimes a second alert (`load1>8 for 2m`)
    /// extends the window and resolves later.
    Alert { extra: bool },
    /// An `anomaly` window on `memory`, memory high for a while.
    Anomaly,
    /// A `manual` window, nothing unusual in the values.
    Manual,
    /// A `focus` window, later extended by a `manual` trigger.
    Focus,
}

const CPU_RULE: &str = "cpu>90 for 1m";
const LOAD_RULE: &str = "load1>8 for 2m";

/// Windows opened together on these resources, first tick at `t0_ms`.
struct Group {
    resources: Vec<usize>,
    t0_ms: i64,
    kind: Kind,
    /// Spike: first tick and length, in ticks.
    spike: (usize, usize),
}

/// Names of the resources: the peer's ids, a display name, a kind.
struct Names {
    ids: Vec<String>,
    names: Vec<String>,
}

impl Names {
    fn new(n: usize) -> Names {
        Names {
            ids: (0..n).map(support::resource_id).collect(),
            names: (0..n).map(|i| format!("vm-{i:03}")).collect(),
        }
    }

    fn resource(&self, r: usize) -> Resource<'_> {
        Resource::named(&self.ids[r], &self.names[r], "vm")
    }
}

/// The point metadata some samples carry (a node and a kernel, as a
/// Proxmox-style monitor attaches).
fn metadata_maps() -> Vec<serde_json::Map<String, serde_json::Value>> {
    (1..=4)
        .map(|n| {
            let v = serde_json::json!({"node": format!("pve{n}"), "kernel": "6.8.12-4-pve"});
            v.as_object().expect("object").clone()
        })
        .collect()
}

/// The values of tick `k` of a window of kind `kind`, from the peer's
/// generator: CPU between 15 and 40 % and memory between 40 and 60 % in
/// normal times, the spike's metric above 90 % (so closed windows have
/// anomalies), rates as the peer draws them. One point in 50 lacks the
/// disk rates (a rate needs two samples: a monitor that restarted).
fn values(rng: &mut Rng, kind: Kind, k: usize, spike: (usize, usize)) -> Metrics {
    let v = support::metric_values(rng);
    let in_spike = k >= spike.0 && k < spike.0.saturating_add(spike.1);
    let missing = rng.next_u64().is_multiple_of(50);
    let mut m = Metrics::with_capacity(8);
    for (i, (name, x)) in METRIC_NAMES.iter().zip(v).enumerate() {
        let x = match (i, kind) {
            (0, Kind::Alert { .. }) if in_spike => 90.0 + x * 0.1,
            (0, _) => 15.0 + x * 0.25,
            (1, Kind::Anomaly) if in_spike => 88.0 + x * 0.1,
            (1, _) => 40.0 + x * 0.2,
            (2, _) => 30.0 + x * 0.02,
            (5 | 6, _) if missing => continue,
            (7, Kind::Alert { .. }) if in_spike => 16.0 + x,
            _ => x,
        };
        m.insert(Cow::Borrowed(*name), x);
    }
    m
}

/// The recorder settings of the build: the CLI's limits (`--max-points`,
/// `--max-windows`), nothing trimmed, alerts holding their windows (as
/// `watch` rules do), and a post-incident window long enough that every
/// closed window reaches the point limit. The allowed source lag covers
/// windows pushed one after another whose times overlap (see [`build`]).
fn build_config(path: &Path, size: HistorySize) -> RecorderConfig {
    let window_ms = size.points as u64 * INTERVAL_MS as u64;
    RecorderConfig {
        max_data_points_per_window: size.points,
        max_windows: size.windows,
        retention: Duration::from_secs(100 * 365 * 24 * 3600),
        post_incident_window: Duration::from_millis(window_ms + 10 * 60_000)
            .max(Duration::from_secs(40 * 60)),
        hold_while_alert_active: true,
        max_source_lag: Duration::from_millis(2 * window_ms + 3_600_000),
        ..RecorderConfig::with_db_path(path)
    }
}

/// Builds the history of `size` at `path` through the public API
/// (`push_samples`, `record_trigger`, `resolve_trigger_at` on a
/// [`ManualClock`]), so it has whatever layout the code writes.
///
/// Closed windows open every `SPAN_MS / windows` (about 4 minutes at 10,000)
/// over 29 days, so, each lasting `points` × 5 s (42 minutes at 500), about
/// ten overlap in time, on different resources (a resource records one
/// window at a time, and waits 10 minutes before its next). Most are pushed
/// one window after the other, as the samples of independent incidents
/// arrive (an ingest of one source's lines after another's): each window's
/// points are contiguous in the store. About a fifth are recorded in
/// bursts of 10, 20, 50, 100 or all resources (a switch fails and every VM
/// behind it alerts): their samples are pushed tick by tick, so their points
/// interleave in the store, and they all reach the point limit in the same
/// commit. Each closed window has `pre` buffered points before its trigger
/// and reaches `points` (truncated). At the end `recording` resources record
/// together, their windows opened at staggered times (from `pre` + 1 to
/// `points` − 1 points so far), and stay recording.
pub fn build(path: &Path, size: HistorySize) {
    let names = Names::new(size.resources);
    let metas = metadata_maps();
    let clock = ManualClock::new(Timestamp::from_unix_ms(END_MS - SPAN_MS));
    let recorder =
        IncidentRecorder::open_with_clock(build_config(path, size), Arc::new(clock.clone()))
            .expect("open the history");
    let mut rng = Rng::new(12);
    let window_ms = size.points as i64 * INTERVAL_MS;
    // A resource is free again this long after its last sample: its next
    // window's buffered samples are not its previous window's.
    let rest_ms = 10 * 60_000;
    let mut free_at = vec![i64::MIN; size.resources];
    let export = size.resources - 1;
    let step_ms = (SPAN_MS - 2 * window_ms) / size.windows as i64;
    let mut t = END_MS - SPAN_MS;
    let (mut closed, mut in_bursts, mut bursts) = (0usize, 0usize, 0usize);
    let burst_sizes = [10, 20, 50, 100, usize::MAX];
    while closed < size.windows {
        let left = size.windows - closed;
        // The single window of the export resource comes first.
        let eligible: Vec<usize> = if closed == 0 {
            vec![export]
        } else {
            (0..export).collect()
        };
        let k = if closed > 0 && in_bursts * 5 < closed {
            let k = burst_sizes[bursts % burst_sizes.len()]
                .min(eligible.len())
                .min(left);
            bursts += 1;
            in_bursts += k;
            k
        } else {
            1
        };
        let mut chosen = eligible;
        chosen.sort_by_key(|&r| (free_at[r], r));
        chosen.truncate(k);
        let t0 = chosen.iter().map(|&r| free_at[r]).max().unwrap_or(t).max(t);
        let kind = if k > 1 {
            Kind::Alert { extra: false }
        } else {
            match rng.next_u64() % 100 {
                0..45 => Kind::Alert { extra: false },
                45..60 => Kind::Alert { extra: true },
                60..75 => Kind::Anomaly,
                75..92 => Kind::Manual,
                _ => Kind::Focus,
            }
        };
        let pre = size.pre();
        let spike_len =
            (size.points / 40).max(2) + (rng.next_u64() % (size.points as u64 / 5)) as usize;
        let spike = match kind {
            Kind::Alert { .. } => (pre.saturating_sub(12).max(pre / 2), spike_len),
            Kind::Anomaly => (pre, spike_len),
            Kind::Manual | Kind::Focus => (usize::MAX, 0),
        };
        let group = Group {
            resources: chosen,
            t0_ms: t0,
            kind,
            spike,
        };
        push_group(&recorder, &clock, &names, &metas, &mut rng, size, &group);
        for &r in &group.resources {
            free_at[r] = t0 + window_ms + rest_ms;
        }
        closed += k;
        t = t0 + k as i64 * step_ms;
    }
    // The recording windows: the resources free first, recording together,
    // up to the end of the history ("now"), which is after every closed
    // window's end: they are the most recent windows.
    let mut last: Vec<usize> = (0..export).collect();
    last.sort_by_key(|&r| (free_at[r], r));
    last.truncate(size.recording);
    let closed_end = free_at.iter().copied().max().unwrap_or(t) - rest_ms;
    let t0 = last
        .iter()
        .map(|&r| free_at[r])
        .max()
        .unwrap_or(t)
        .max(END_MS.max(closed_end + INTERVAL_MS) - (size.points as i64 - 1) * INTERVAL_MS);
    push_recording(&recorder, &clock, &names, &metas, &mut rng, size, &last, t0);
    drop(recorder);
    support::checkpoint(path);
    let store = Store::open_read_only(path).expect("reopen the history");
    let stats = store.stats().expect("stats");
    let recording = stats
        .windows_by_status
        .get("recording")
        .copied()
        .unwrap_or(0);
    let total: u64 = stats.windows_by_status.values().sum();
    assert_eq!(
        recording, size.recording as u64,
        "recording windows: {stats:?}"
    );
    assert_eq!(
        total - recording,
        size.windows as u64,
        "closed windows: {stats:?}"
    );
    assert_eq!(
        stats.resources, size.resources as u64,
        "resources: {stats:?}"
    );
}

/// Sample `k` of resource `r` in a group starting at `t0`: 5 s apart, with
/// a per-resource offset and up to a second of jitter, as real samplers.
fn sample_ts(rng: &mut Rng, t0: i64, slot: usize, k: usize) -> Timestamp {
    let jitter = (rng.next_u64() % 1000) as i64;
    Timestamp::from_unix_ms(
        t0 + k as i64 * INTERVAL_MS + slot as i64 * 3 + jitter.min(INTERVAL_MS / 5 - 1),
    )
}

/// Pushes ticks `from..to` of `resources` (interleaved tick by tick), in
/// batches of at most 64 ticks, as `ingest` batches its lines.
#[allow(clippy::too_many_arguments)]
fn push_ticks(
    recorder: &IncidentRecorder,
    clock: &ManualClock,
    names: &Names,
    metas: &[serde_json::Map<String, serde_json::Value>],
    rng: &mut Rng,
    resources: &[usize],
    t0: i64,
    ticks: std::ops::Range<usize>,
    kind: impl Fn(usize) -> (Kind, (usize, usize)),
    last_ts: &mut [i64],
) {
    let mut k = ticks.start;
    while k < ticks.end {
        let end = (k + 64).min(ticks.end);
        let mut batch = Vec::with_capacity((end - k) * resources.len());
        for tick in k..end {
            for (slot, &r) in resources.iter().enumerate() {
                let ts = sample_ts(rng, t0, slot, tick);
                last_ts[slot] = ts.as_unix_ms();
                let (kind, spike) = kind(slot);
                let metrics = values(rng, kind, tick, spike);
                let metadata = rng
                    .next_u64()
                    .is_multiple_of(20)
                    .then(|| &metas[r % metas.len()]);
                batch.push(Sample {
                    resource: names.resource(r),
                    timestamp: ts,
                    metrics,
                    metadata,
                });
            }
        }
        let newest = batch.iter().map(|s| s.timestamp).max().expect("a sample");
        clock.set(newest);
        let n = batch.len();
        let report = recorder.push_samples(batch).expect("push");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert_eq!(report.accepted, n, "every sample taken");
        k = end;
    }
}

fn at(ms: i64) -> Option<Timestamp> {
    Some(Timestamp::from_unix_ms(ms))
}

/// Records one group of closed windows: `pre` buffered ticks, the triggers,
/// then the rest with the resolves and extensions at their ticks, up to the
/// point limit.
fn push_group(
    recorder: &IncidentRecorder,
    clock: &ManualClock,
    names: &Names,
    metas: &[serde_json::Map<String, serde_json::Value>],
    rng: &mut Rng,
    size: HistorySize,
    g: &Group,
) {
    let pre = size.pre();
    let p = size.points;
    let mut last = vec![0i64; g.resources.len()];
    let kind = |_: usize| (g.kind, g.spike);
    /// What happens after a tick: an alert resolves, a trigger extends.
    #[derive(Clone, Copy)]
    enum Act {
        Resolve(&'static str),
        Extend(Extension),
    }
    #[derive(Clone, Copy)]
    enum Extension {
        Load,
        Manual,
    }
    let spike_end = g.spike.0.saturating_add(g.spike.1);
    let mut acts: Vec<(usize, Act)> = match g.kind {
        Kind::Alert { extra } => {
            let mut v = vec![(spike_end, Act::Resolve(CPU_RULE))];
            if extra {
                let mid = (pre + spike_end) / 2;
                v.push((mid, Act::Extend(Extension::Load)));
                v.push((spike_end + 24, Act::Resolve(LOAD_RULE)));
            }
            v
        }
        Kind::Focus => vec![(p / 2, Act::Extend(Extension::Manual))],
        Kind::Anomaly | Kind::Manual => Vec::new(),
    };
    // Each after a tick of the window proper (after its trigger, before its
    // last point).
    for a in &mut acts {
        a.0 = a.0.clamp(pre, p - 2);
    }
    acts.sort_by_key(|a| a.0);
    let mut args = |ticks: std::ops::Range<usize>, last: &mut [i64]| {
        push_ticks(
            recorder,
            clock,
            names,
            metas,
            rng,
            &g.resources,
            g.t0_ms,
            ticks,
            kind,
            last,
        )
    };
    args(0..pre, &mut last);
    let trigger = match g.kind {
        Kind::Alert { .. } => Trigger::alert(CPU_RULE),
        Kind::Anomaly => Trigger::anomaly("memory"),
        Kind::Manual => Trigger::manual(),
        Kind::Focus => Trigger::focus(),
    };
    for (slot, &r) in g.resources.iter().enumerate() {
        recorder
            .record_trigger(names.resource(r), trigger.clone(), at(last[slot]))
            .expect("trigger");
    }
    let mut k = pre;
    for (tick, act) in acts {
        if tick + 1 > k {
            args(k..tick + 1, &mut last);
            k = tick + 1;
        }
        for (slot, &r) in g.resources.iter().enumerate() {
            match act {
                Act::Resolve(rule) => {
                    recorder
                        .resolve_trigger_at(&names.ids[r], rule, at(last[slot]))
                        .expect("resolve");
                }
                Act::Extend(t) => {
                    let t = match t {
                        Extension::Load => Trigger::alert(LOAD_RULE),
                        Extension::Manual => Trigger::manual(),
                    };
                    recorder
                        .record_trigger(names.resource(r), t, at(last[slot]))
                        .expect("extend");
                }
            }
        }
    }
    args(k..p, &mut last);
    for &r in &g.resources {
        assert!(
            recorder.recording_window(&names.ids[r]).is_none(),
            "window of {} reached its limit",
            names.ids[r]
        );
    }
}

/// The windows still recording at the end: `resources` sampled together
/// for `points - 1` ticks from `t0`, resource i triggered (an alert that
/// has not cleared) at a tick staggered from `pre` on.
#[allow(clippy::too_many_arguments)]
fn push_recording(
    recorder: &IncidentRecorder,
    clock: &ManualClock,
    names: &Names,
    metas: &[serde_json::Map<String, serde_json::Value>],
    rng: &mut Rng,
    size: HistorySize,
    resources: &[usize],
    t0: i64,
) {
    let pre = size.pre();
    let ticks = size.points - 1;
    let span = ticks - 1 - pre;
    let n = resources.len().max(1);
    let trig: Vec<usize> = (0..resources.len())
        .map(|i| pre - 1 + i * span / n)
        .collect();
    let mut last = vec![0i64; resources.len()];
    let kind = |slot: usize| {
        (
            Kind::Alert { extra: false },
            (trig[slot] - 11.min(trig[slot]), usize::MAX),
        )
    };
    let mut k = 0;
    let mut order: Vec<usize> = (0..resources.len()).collect();
    order.sort_by_key(|&s| trig[s]);
    for slot in order {
        push_ticks(
            recorder,
            clock,
            names,
            metas,
            rng,
            resources,
            t0,
            k..trig[slot] + 1,
            kind,
            &mut last,
        );
        k = trig[slot] + 1;
        recorder
            .record_trigger(
                names.resource(resources[slot]),
                Trigger::alert(CPU_RULE),
                at(last[slot]),
            )
            .expect("trigger");
    }
    push_ticks(
        recorder,
        clock,
        names,
        metas,
        rng,
        resources,
        t0,
        k..ticks,
        kind,
        &mut last,
    );
    for &r in resources {
        assert!(
            recorder.recording_window(&names.ids[r]).is_some(),
            "still recording"
        );
    }
}

/// Picks the measured windows, through the public API.
fn picks(path: &Path, size: HistorySize) -> Picks {
    let store = Store::open_read_only(path).expect("open the history");
    let all = store
        .windows(&WindowFilter::default())
        .expect("list windows");
    let mut closed: Vec<&IncidentWindow> = all
        .iter()
        .filter(|w| w.status != WindowStatus::Recording)
        .collect();
    closed.sort_by_key(|w| (w.start_time, w.id.clone()));
    for w in &closed {
        let points = w.summary.as_ref().map_or(0, |s| s.data_points);
        assert_eq!(points, size.points as u64, "points of {}", w.id);
    }
    let n = closed.len();
    let spread: Vec<String> = (0..64.min(n))
        .map(|i| closed[i * n / 64.min(n)].id.to_string())
        .collect();
    let recording = all
        .iter()
        .filter(|w| w.status == WindowStatus::Recording)
        .max_by_key(|w| w.summary.as_ref().map_or(0, |s| s.data_points))
        .expect("a recording window");
    let mut per_resource = std::collections::BTreeMap::<&str, usize>::new();
    for w in &all {
        *per_resource.entry(&w.resource_id).or_default() += 1;
    }
    let export_resource = per_resource
        .iter()
        .find(|(_, n)| **n == 1)
        .map(|(r, _)| r.to_string())
        .expect("a resource with one window");
    Picks {
        closed_window: closed[n / 2].id.to_string(),
        closed: spread,
        recording_window: recording.id.to_string(),
        resource: recording.resource_id.clone(),
        resource_windows: per_resource[recording.resource_id.as_str()],
        export_resource,
    }
}

/// What a documented query's `?1` stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    None,
    /// `Picks::closed_window`.
    ClosedWindow,
    /// `Picks::recording_window`.
    RecordingWindow,
    /// `Picks::resource`.
    Resource,
}

/// An SQLite query printed in the documentation, copied by hand: the
/// literal it uses (`'web-1'`, `'iw-20261124100000-1'`) is `?1` here, bound
/// to a window or resource of the history. When the docs change, change
/// these with them.
pub struct DocQuery {
    pub name: &'static str,
    /// Where it is printed.
    pub source: &'static str,
    pub sql: &'static str,
    pub param: Param,
}

impl DocQuery {
    /// The value bound to `?1`.
    pub fn bind<'a>(&self, p: &'a Picks) -> Option<&'a str> {
        match self.param {
            Param::None => None,
            Param::ClosedWindow => Some(&p.closed_window),
            Param::RecordingWindow => Some(&p.recording_window),
            Param::Resource => Some(&p.resource),
        }
    }
}

/// README.md, "A five-minute tour": values over 90 of the latest window
/// (here one still recording: the newest windows are).
pub const README_TOUR: &str = "SELECT substr(ts, 12, 8) AS time, round(value, 1) AS cpu
                      FROM incident_samples
                      WHERE window_id = (SELECT public_id FROM windows ORDER BY start_ms DESC LIMIT 1)
                        AND metric = 'cpu' AND value > 90 ORDER BY ts_ms LIMIT 5";

/// README.md, "The database" (`'web-1'` there).
pub const README_RESOURCE_LAST_5: &str = "SELECT ts, metric, value FROM incident_samples WHERE resource_id = ?1 AND metric = 'cpu' ORDER BY ts_ms DESC LIMIT 5";

/// Issue 12's first row, "`incident_samples` filtered by resource and
/// metric": README.md's query above without its `LIMIT`, every row.
pub const ISSUE_RESOURCE_METRIC: &str = "SELECT ts, metric, value FROM incident_samples WHERE resource_id = ?1 AND metric = 'cpu' ORDER BY ts_ms DESC";

/// docs/schema.md, `series` and `samples`: one metric of a window without
/// the view, in time order (`'iw-20261124100000-1f2e3d4c-1'` there).
pub const SCHEMA_WINDOW_SERIES: &str = "SELECT s.from_ms + v.offset_ms AS ts_ms, v.value
FROM windows w
JOIN series s  ON s.window_id = w.id
JOIN metrics m ON m.id = s.metric_id
JOIN samples v ON v.series_id = s.id
WHERE w.public_id = ?1 AND m.name = 'cpu'
ORDER BY ts_ms";

/// docs/schema.md, `recent_points`: a recording window's points still in
/// the journal, through its id range.
pub const SCHEMA_RECORDING_POINTS: &str = "SELECT p.ts_ms, m.name AS metric, v.value
FROM windows w
JOIN recent_points p ON p.id >= w.recent_from AND p.window_id = w.id
JOIN recent_values v ON v.point_id = p.id
JOIN metrics m       ON m.id = v.metric_id
WHERE w.public_id = ?1";

/// Issue 19's shapes: the window by scalar subquery (the newest closed
/// one), the README tour's shape.
pub const SHAPE_SUBQUERY_CLOSED: &str = "SELECT ts, value FROM incident_samples
WHERE window_id = (SELECT public_id FROM windows WHERE status <> 'recording'
                   ORDER BY start_ms DESC LIMIT 1)
  AND metric = 'cpu'";

/// Issue 19: windows by `IN (SELECT ...)` (the 10 newest closed).
pub const SHAPE_IN_SELECT: &str = "SELECT window_id, ts, value FROM incident_samples
WHERE window_id IN (SELECT public_id FROM windows WHERE status <> 'recording'
                    ORDER BY start_ms DESC LIMIT 10)
  AND metric = 'cpu'";

/// Issue 19: a join with `windows` filtered on its columns (the windows
/// that started in a day: the first of the history).
pub const SHAPE_JOIN_WINDOWS: &str = "SELECT i.window_id, i.ts_ms, i.value
FROM windows w JOIN incident_samples i ON i.window_id = w.public_id
WHERE w.start_ms < (SELECT min(start_ms) FROM windows) + 86400000 AND i.metric = 'cpu'";

/// Issue 19: a join with `resources` filtered on its columns.
pub const SHAPE_JOIN_RESOURCES: &str = "SELECT i.window_id, i.ts_ms, i.value
FROM resources r JOIN incident_samples i ON i.resource_id = r.external_id
WHERE r.external_id = ?1 AND i.metric = 'cpu'";

/// Issue 19: a resource and a time range (its last day).
pub const SHAPE_RESOURCE_RANGE: &str = "SELECT ts_ms, value FROM incident_samples
WHERE resource_id = ?1 AND metric = 'cpu'
  AND ts_ms >= (SELECT max(start_ms) FROM windows) - 86400000";

/// Issue 19: one metric across the windows of a time range (a day),
/// bounded through `windows`.
pub const SHAPE_METRIC_ACROSS: &str = "SELECT i.window_id, max(i.value)
FROM windows w JOIN incident_samples i ON i.window_id = w.public_id
WHERE w.start_ms >= (SELECT max(start_ms) FROM windows) - 86400000 AND i.metric = 'cpu'
GROUP BY i.window_id";

/// docs/schema.md, `window_pushes`: the push backlog.
pub const SCHEMA_BACKLOG: &str = "SELECT count(*) FROM windows w
WHERE w.status <> 'recording'
  AND NOT EXISTS (SELECT 1 FROM window_pushes p WHERE p.window_id = w.id)";

/// docs/schema.md, view `incident_samples`: "the CPU of the most recent
/// window, minute by minute" (here one still recording).
pub const SCHEMA_LAST_WINDOW_PER_MINUTE: &str =
    "SELECT substr(ts, 1, 16) AS minute, round(avg(value), 1) AS cpu
FROM incident_samples
WHERE window_id = (SELECT public_id FROM windows ORDER BY start_ms DESC LIMIT 1)
  AND metric = 'cpu'
GROUP BY minute ORDER BY minute";

/// The same for a closed window (not printed as such: the docs' query with
/// the window named, `?1`, instead of the most recent one).
pub const SCHEMA_CLOSED_WINDOW_PER_MINUTE: &str =
    "SELECT substr(ts, 1, 16) AS minute, round(avg(value), 1) AS cpu
FROM incident_samples
WHERE window_id = ?1
  AND metric = 'cpu'
GROUP BY minute ORDER BY minute";

/// Every documented SQLite query (README.md's fleet section is PostgreSQL:
/// not here), and two variants.
pub const QUERIES: &[DocQuery] = &[
    DocQuery {
        name: "readme_tour_latest_window_cpu_over_90",
        source: "README.md, A five-minute tour",
        sql: README_TOUR,
        param: Param::None,
    },
    DocQuery {
        name: "readme_resource_cpu_last_5",
        source: "README.md, The database",
        sql: README_RESOURCE_LAST_5,
        param: Param::Resource,
    },
    DocQuery {
        name: "issue12_resource_cpu_all_rows",
        source: "issue 12, first row (README.md's query without LIMIT)",
        sql: ISSUE_RESOURCE_METRIC,
        param: Param::Resource,
    },
    DocQuery {
        name: "schema_closed_window_cpu_series",
        source: "docs/schema.md, series and samples",
        sql: SCHEMA_WINDOW_SERIES,
        param: Param::ClosedWindow,
    },
    DocQuery {
        name: "schema_recording_window_cpu_series",
        source: "variant: docs/schema.md's series query on a recording window",
        sql: SCHEMA_WINDOW_SERIES,
        param: Param::RecordingWindow,
    },
    DocQuery {
        name: "schema_recording_window_journal",
        source: "docs/schema.md, recent_points",
        sql: SCHEMA_RECORDING_POINTS,
        param: Param::RecordingWindow,
    },
    DocQuery {
        name: "issue19_subquery_newest_closed_window",
        source: "issue 19: window by scalar subquery (closed)",
        sql: SHAPE_SUBQUERY_CLOSED,
        param: Param::None,
    },
    DocQuery {
        name: "issue19_in_select_10_windows",
        source: "issue 19: windows by IN (SELECT ...)",
        sql: SHAPE_IN_SELECT,
        param: Param::None,
    },
    DocQuery {
        name: "issue19_join_windows_first_day",
        source: "issue 19: join with windows on start_ms",
        sql: SHAPE_JOIN_WINDOWS,
        param: Param::None,
    },
    DocQuery {
        name: "issue19_join_resources",
        source: "issue 19: join with resources",
        sql: SHAPE_JOIN_RESOURCES,
        param: Param::Resource,
    },
    DocQuery {
        name: "issue19_resource_last_day",
        source: "issue 19: a resource and a time range",
        sql: SHAPE_RESOURCE_RANGE,
        param: Param::Resource,
    },
    DocQuery {
        name: "issue19_cpu_across_last_day_windows",
        source: "issue 19: one metric across the windows of a day",
        sql: SHAPE_METRIC_ACROSS,
        param: Param::None,
    },
    DocQuery {
        name: "schema_push_backlog",
        source: "docs/schema.md, window_pushes",
        sql: SCHEMA_BACKLOG,
        param: Param::None,
    },
    DocQuery {
        name: "schema_latest_window_cpu_per_minute",
        source: "docs/schema.md, view incident_samples",
        sql: SCHEMA_LAST_WINDOW_PER_MINUTE,
        param: Param::None,
    },
    DocQuery {
        name: "schema_closed_window_cpu_per_minute",
        source: "variant: docs/schema.md's per-minute query on a named closed window",
        sql: SCHEMA_CLOSED_WINDOW_PER_MINUTE,
        param: Param::ClosedWindow,
    },
];

/// Runs a prepared documented query to its last row; returns the row count.
pub fn run_query(stmt: &mut rusqlite::Statement<'_>, bind: Option<&str>) -> usize {
    let mut rows = match bind {
        Some(v) => stmt.query([v]),
        None => stmt.query([]),
    }
    .expect("query");
    let mut n = 0;
    while rows.next().expect("row").is_some() {
        n += 1;
    }
    n
}

/// `EXPLAIN QUERY PLAN` of a query, as `sqlite3`'s `.eqp` prints it.
pub fn query_plan(conn: &rusqlite::Connection, sql: &str, bind: Option<&str>) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let mut rows = match bind {
        Some(v) => stmt.query([v]),
        None => stmt.query([]),
    }
    .expect("explain rows");
    let mut depth: Vec<(i64, usize)> = Vec::new(); // (id, indent)
    let mut out = String::new();
    while let Some(r) = rows.next().expect("explain row") {
        let (id, parent): (i64, i64) = (r.get(0).expect("id"), r.get(1).expect("parent"));
        let detail: String = r.get(3).expect("detail");
        let indent = depth
            .iter()
            .rev()
            .find(|(i, _)| *i == parent)
            .map_or(0, |(_, d)| d + 1);
        depth.push((id, indent));
        out.push_str(&"  ".repeat(indent));
        out.push_str(&detail);
        out.push('\n');
    }
    out
}

/// The `incident-recorder` binary: `explicit` if given, else the one cargo
/// built for this bench (`CARGO_BIN_EXE_…`, set for benches, not examples),
/// else `incident-recorder` in this executable's profile directory
/// (`<target>/<profile>/`, beside `deps/` and `examples/`). An error says
/// where it looked.
pub fn cli_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{} is not a file", p.display()))
        };
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_incident-recorder").map(PathBuf::from)
        && p.is_file()
    {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| format!("no current executable: {e}"))?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the executable has no profile directory")?;
    let candidate = profile.join("incident-recorder");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "no incident-recorder binary at {} (build it: cargo build {}--bin incident-recorder)",
            candidate.display(),
            if profile.ends_with("release") {
                "--release "
            } else {
                ""
            }
        ))
    }
}

/// A CLI read command of the history, as a user types it.
pub struct CliCommand {
    pub name: &'static str,
    pub args: Vec<String>,
}

/// `list` (its default 50 windows, and all), `show` and `context` of a closed window, `show` of a recording
/// one, `export` of one window (the resource that has only it: `export`
/// selects by resource) and of one resource's windows, and `stats`.
pub fn cli_commands(p: &Picks) -> Vec<CliCommand> {
    let c = |name, args: &[&str]| CliCommand {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        c("list", &["list"]),
        c("list_all", &["list", "--limit", "0"]),
        c("show_closed", &["show", &p.closed_window]),
        c("show_recording", &["show", &p.recording_window]),
        c("context_closed", &["context", &p.closed_window]),
        c(
            "export_one_window",
            &["export", "--resource", &p.export_resource],
        ),
        c(
            "export_one_resource",
            &["export", "--resource", &p.resource],
        ),
        c("stats", &["stats"]),
    ]
}

/// Runs `bin --db db args…`, stdout to /dev/null; panics if it fails.
pub fn run_cli(bin: &Path, db: &Path, args: &[String]) -> Duration {
    let t0 = Instant::now();
    let out = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run incident-recorder");
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "incident-recorder {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// One storm: [`TickRig`] with every resource recording (`windows` of
/// them), run until the windows hold 500 points; then the tick in which all
/// reach the point limit (501) and close, and the 10 ticks after it (the
/// rig's resources go on being sampled, with no window open).
pub struct Storm {
    /// Median of the last 10 ticks before the storm (the same rig, every
    /// window recording): the "normal tick" of the target.
    pub normal: Duration,
    /// The tick in which every window reaches its limit.
    pub closing: Duration,
    /// The 10 ticks after it.
    pub after: Vec<Duration>,
    /// Windows the recorder still counted open right after the closing tick.
    pub open_after_closing_tick: usize,
    /// Windows the recorder had closed (committed) after the 10 ticks.
    pub closed_after: u64,
}

impl Storm {
    /// The worst of the 10 ticks after the storm.
    pub fn worst_after(&self) -> Duration {
        self.after.iter().copied().max().unwrap_or_default()
    }

    /// A storm on `TickRig::new`, which keeps the library's default
    /// `max_windows` (100, the seed's): its closing tick also trims 900 of
    /// the 1,000 windows it closes, as `peerbench --only storm` always has.
    /// `max_windows` replaces that limit (the CLI keeps 10,000).
    pub fn run(windows: usize, seed: u64, max_windows: Option<usize>) -> Storm {
        let mut rig = match max_windows {
            None => TickRig::new(windows, windows, seed),
            Some(max) => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = RecorderConfig {
                    post_incident_window: Duration::from_secs(3600),
                    max_data_points_per_window: 501,
                    max_windows: max,
                    ..RecorderConfig::with_db_path(support::temp_db(&dir))
                };
                TickRig::with_config(config, dir, windows, windows, seed)
            }
        };
        let left = rig.ticks_left;
        rig.timed_ticks(left - 10);
        let mut normal: Vec<Duration> = (0..10).map(|_| rig.timed_ticks(1)).collect();
        normal.sort();
        let tick = |rig: &TickRig| {
            rig.clock.advance(Duration::from_secs(5));
            let t0 = Instant::now();
            rig.recorder.record_sample().expect("tick");
            t0.elapsed()
        };
        let closing = tick(&rig);
        let open_after_closing_tick = rig.recorder.stats().active_windows;
        let after: Vec<Duration> = (0..10).map(|_| tick(&rig)).collect();
        let closed_after = rig.recorder.stats().windows_closed;
        Storm {
            normal: (normal[4] + normal[5]) / 2,
            closing,
            after,
            open_after_closing_tick,
            closed_after,
        }
    }
}
