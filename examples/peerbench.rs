//! The Rust side of `scripts/compare-peer`: the Go peer's measurements
//! (`../shared/peer/cmd/peerbench`) on this recorder, one JSON line each, in the
//! peer's format (`{"min","median","max"}` over `--reps` repetitions) so one
//! script can put both in a table.
//!
//! ```sh
//! cargo run --release --example peerbench                       # everything
//! cargo run --release --example peerbench -- --only tick --resources 10000 --active 0,1000
//! ```
//!
//! Each line names its bench like the peer's (`provider`, `tick`, `summary`,
//! `complete`, `persist`) plus Rust-only ones: `read` (queries), `ingest` (bulk
//! `push_samples` against raw rusqlite on the same rows), `storm` (the tick
//! in which `--disk-active` windows recorded together all close) and `disk`
//! (bytes written per recorded point; `--commit-interval 0,30` compares
//! `commit_interval`s). Heap per point needs a counting allocator,
//! which would slow everything here: see `examples/heap.rs`.

#[path = "../benches/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use incident_recorder::{IncidentRecorder, MetricsProvider, RecorderConfig, Timestamp};
use support::{CompleteRig, IngestRig, PeerProvider, RawRig, Rng, TickRig};

#[derive(Parser, Debug)]
#[command(about = "Rust counterpart of the Go peer's peerbench; JSON lines on stdout")]
struct Args {
    /// tick: monitored resource counts R
    #[arg(long, default_value = "1000,10000", value_delimiter = ',')]
    resources: Vec<usize>,
    /// tick: active recording window counts A
    #[arg(long, default_value = "0,100,1000", value_delimiter = ',')]
    active: Vec<usize>,
    /// tick: measured ticks per repetition (windows grow 63 -> 500 points)
    #[arg(long, default_value_t = support::RIG_TICKS)]
    ticks: usize,
    /// persist/complete/read: stored window counts W
    #[arg(long, default_value = "100,1000", value_delimiter = ',')]
    windows: Vec<usize>,
    /// points per stored window
    #[arg(long, default_value_t = 500)]
    points: usize,
    /// complete/summary/provider: operations per repetition
    #[arg(long, default_value_t = 200)]
    iters: usize,
    /// repetitions per measurement
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// ingest: points per push_samples batch (spread over 100 windows)
    #[arg(long, default_value_t = 10_000)]
    ingest_points: usize,
    /// disk: active windows kept recording; storm: windows closing together
    #[arg(long, default_value = "100,1000", value_delimiter = ',')]
    disk_active: Vec<usize>,
    /// disk: measured ticks
    #[arg(long, default_value_t = 1000)]
    disk_ticks: usize,
    /// disk: `commit_interval`s to measure, in seconds (0: every tick)
    #[arg(long, default_value = "0", value_delimiter = ',')]
    commit_interval: Vec<u64>,
    /// which benches to run
    #[arg(
        long,
        default_value = "provider,tick,summary,complete,persist,read,ingest,storm,disk",
        value_delimiter = ','
    )]
    only: Vec<String>,
}

/// One value per repetition; printed as min/median/max like the peer.
#[derive(Default, Clone)]
struct Stat(Vec<f64>);

impl Stat {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn json(&self) -> String {
        let mut c = self.0.clone();
        c.sort_by(f64::total_cmp);
        let n = c.len();
        let med = if n % 2 == 1 {
            c[n / 2]
        } else {
            (c[n / 2 - 1] + c[n / 2]) / 2.0
        };
        format!(
            r#"{{"min":{},"median":{},"max":{}}}"#,
            num(c[0]),
            num(med),
            num(c[n - 1])
        )
    }
}

/// Numbers formatted as the peer's `fmtNum` (below 1: four significant digits).
fn num(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == f.trunc() && f.abs() < 1e15 {
        return format!("{}", f as i64);
    }
    let a = f.abs();
    if a >= 100.0 {
        format!("{f:.1}")
    } else if a >= 1.0 {
        format!("{f:.3}")
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 20) as usize;
        format!("{f:.digits$}")
    }
}

enum V {
    S(String),
    N(f64),
    St(Stat),
}

fn emit(bench: &str, reps: usize, fields: Vec<(&str, V)>) {
    let mut out = format!(r#"{{"bench":"{bench}","lang":"rust","reps":{reps}"#);
    for (k, v) in fields {
        let v = match v {
            V::S(s) => serde_json::to_string(&s).expect("string"),
            V::N(n) => num(n),
            V::St(s) => s.json(),
        };
        out.push_str(&format!(r#","{k}":{v}"#));
    }
    out.push('}');
    println!("{out}");
}

fn progress(msg: String) {
    eprintln!("peerbench(rust): {msg}");
}

/// Process CPU time (user + system, all threads), from /proc/self/stat.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the ")" closing the command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// `write_bytes` of /proc/self/io: bytes this process caused to be written to
/// storage (page cache pages it dirtied), WAL and checkpoints included.
fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bench_env() {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    emit(
        "env",
        0,
        vec![
            ("rustc", V::S(rustc)),
            ("sqlite", V::S(rusqlite::version().to_owned())),
            (
                "num_cpu",
                V::N(std::thread::available_parallelism().map_or(0, |n| n.get()) as f64),
            ),
            ("cpu_model", V::S(model)),
            ("time", V::S(Timestamp::now().to_string())),
        ],
    );
}

fn bench_provider(a: &Args, r: usize) {
    progress(format!("provider R={r}"));
    let p = PeerProvider::new(r, 1);
    let (mut per_call, mut per_ids) = (Stat::default(), Stat::default());
    for _ in 0..a.reps {
        let n = a.iters * 10 * 10;
        let t0 = Instant::now();
        for i in 0..n {
            black_box(p.current_metrics(&p.ids[i % r]).expect("metrics"));
        }
        per_call.push(t0.elapsed().as_nanos() as f64 / n as f64);
        let n2 = 200;
        let t0 = Instant::now();
        for _ in 0..n2 {
            black_box(p.monitored_resource_ids());
        }
        per_ids.push(t0.elapsed().as_nanos() as f64 / n2 as f64);
    }
    emit(
        "provider",
        a.reps,
        vec![
            ("R", V::N(r as f64)),
            ("ns_per_get_current_metrics", V::St(per_call)),
            ("ns_per_get_monitored_ids", V::St(per_ids)),
        ],
    );
}

fn bench_tick(a: &Args, r: usize, act: usize) {
    progress(format!("tick R={r} A={act}"));
    let (mut ns, mut cpu) = (Stat::default(), Stat::default());
    for rep in 0..a.reps {
        let mut rig = TickRig::new(r, act, 1 + rep as u64);
        let c0 = cpu_time();
        let w0 = Instant::now();
        let el = rig.timed_ticks(a.ticks.min(support::RIG_TICKS));
        let fix = w0.elapsed() - el;
        let c1 = cpu_time();
        rig.check();
        let n = a.ticks as f64;
        ns.push(el.as_nanos() as f64 / n);
        cpu.push((c1 - c0).saturating_sub(fix).as_nanos() as f64 / n);
    }
    emit(
        "tick",
        a.reps,
        vec![
            ("R", V::N(r as f64)),
            ("A", V::N(act as f64)),
            ("metrics_per_point", V::N(8.0)),
            ("ticks", V::N(a.ticks as f64)),
            (
                "buffer_points_per_resource",
                V::N(support::BUFFER_POINTS as f64),
            ),
            ("durable", V::S("file db, WAL, synchronous=NORMAL".into())),
            ("ns_per_tick", V::St(ns)),
            ("cpu_ns_per_tick", V::St(cpu)),
        ],
    );
}

fn bench_summary(a: &Args) {
    progress(format!("summary P={}", a.points));
    let mut rng = Rng::new(1);
    let end = support::now_truncated();
    let samples = support::window_samples(&mut rng, a.points, end);
    let series: Vec<Vec<f64>> = (0..8)
        .map(|m| samples.iter().map(|(_, v)| v[m]).collect())
        .collect();
    let mut ns = Stat::default();
    for _ in 0..a.reps {
        let n = a.iters * 10;
        let t0 = Instant::now();
        for _ in 0..n {
            for s in &series {
                black_box(incident_recorder::summary::metric_stats(black_box(s)));
            }
        }
        ns.push(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    emit(
        "summary",
        a.reps,
        vec![
            ("P", V::N(a.points as f64)),
            ("metrics_per_point", V::N(8.0)),
            ("ns_per_compute_summary", V::St(ns)),
        ],
    );
}

/// The fixture databases (W windows of P points), built once and copied.
struct Fixtures {
    dir: tempfile::TempDir,
    built: BTreeMap<usize, (std::path::PathBuf, Vec<incident_recorder::WindowId>)>,
}

impl Fixtures {
    fn get(
        &mut self,
        w: usize,
        p: usize,
    ) -> &(std::path::PathBuf, Vec<incident_recorder::WindowId>) {
        let dir = self.dir.path().to_owned();
        self.built.entry(w).or_insert_with(|| {
            progress(format!("building {w} windows x {p} points"));
            let path = dir.join(format!("w{w}.db"));
            let ids = support::build_history(&path, w, p, support::now_truncated());
            (path, ids)
        })
    }
}

fn bench_complete(a: &Args, fx: &mut Fixtures, w: usize) {
    progress(format!("complete W={w} P={}", a.points));
    let (path, _) = fx.get(w, a.points).clone();
    let mut ns = Stat::default();
    for _ in 0..a.reps {
        let mut rig = CompleteRig::new(&path, w, a.points);
        let n = a.iters.div_ceil(10).max(3);
        let mut total = Duration::ZERO;
        for _ in 0..n {
            total += rig.timed_complete();
        }
        ns.push(total.as_nanos() as f64 / n as f64);
        let stats = rig.recorder.store().stats().expect("stats");
        assert_eq!(stats.windows_by_status.values().sum::<u64>(), w as u64);
    }
    let mut fields = history_fields(w, a.points);
    fields.push(("completed_windows_kept", V::N(w as f64)));
    fields.push(("ns_per_stop_recording", V::St(ns)));
    emit("complete", a.reps, fields);
}

/// The fields describing a history of `w` windows of `p` points.
fn history_fields(w: usize, p: usize) -> Vec<(&'static str, V)> {
    vec![
        ("W", V::N(w as f64)),
        ("P", V::N(p as f64)),
        ("metrics_per_point", V::N(8.0)),
    ]
}

fn open_config(path: &Path, w: usize) -> RecorderConfig {
    support::fixture_config(path, w)
}

fn bench_persist(a: &Args, fx: &mut Fixtures, w: usize) {
    progress(format!("persist W={w} P={}", a.points));
    let (path, _) = fx.get(w, a.points).clone();
    let size = std::fs::metadata(&path).expect("fixture").len();
    // One untimed open first, as the peer's file was just written and cached.
    drop(IncidentRecorder::open(open_config(&path, w)).expect("open"));
    let mut open = Stat::default();
    for _ in 0..a.reps {
        let t0 = Instant::now();
        let rec = IncidentRecorder::open(open_config(&path, w)).expect("open");
        open.push(t0.elapsed().as_nanos() as f64 / 1e6);
        assert_eq!(
            rec.store()
                .stats()
                .expect("stats")
                .windows_by_status
                .values()
                .sum::<u64>(),
            w as u64
        );
        drop(rec);
    }
    let pts = (w * a.points) as f64;
    let mut fields = history_fields(w, a.points);
    fields.push(("file_bytes", V::N(size as f64)));
    fields.push(("file_bytes_per_point", V::N(size as f64 / pts)));
    fields.push(("open_ms", V::St(open)));
    emit("persist", a.reps, fields);
}

fn bench_read(a: &Args, fx: &mut Fixtures, w: usize) {
    progress(format!("read W={w}"));
    let (path, ids) = fx.get(w, a.points).clone();
    let rec = IncidentRecorder::open(open_config(&path, w)).expect("open");
    let (mut one, mut recent) = (Stat::default(), Stat::default());
    for _ in 0..a.reps {
        let n = 50;
        let t0 = Instant::now();
        for i in 0..n {
            let win = rec.window(&ids[i * 7 % ids.len()]).expect("read");
            assert_eq!(win.expect("stored").data_points.len(), a.points);
        }
        one.push(t0.elapsed().as_nanos() as f64 / 1e3 / n as f64);
        let t0 = Instant::now();
        let got = rec.recent_windows(100).expect("recent");
        recent.push(t0.elapsed().as_nanos() as f64 / 1e6);
        assert_eq!(got.len(), 100.min(w));
    }
    emit(
        "read",
        a.reps,
        vec![
            ("W", V::N(w as f64)),
            ("P", V::N(a.points as f64)),
            ("window_us", V::St(one)),
            ("recent_windows_100_ms", V::St(recent)),
        ],
    );
}

fn bench_ingest(a: &Args) {
    let per = a.ingest_points.div_ceil(support::INGEST_WINDOWS);
    progress(format!(
        "ingest {} points x 8 values per batch",
        per * support::INGEST_WINDOWS
    ));
    let (mut ours, mut raw, mut ratio) = (Stat::default(), Stat::default(), Stat::default());
    let mut ingest = IngestRig::new(support::INGEST_WINDOWS);
    let mut base = RawRig::new(support::INGEST_WINDOWS);
    // Interleaved, so both see the same machine noise.
    for _ in 0..a.reps {
        let (mut t_raw, mut t_ours, mut values) = (0.0, 0.0, 0.0);
        for _ in 0..5 {
            let batch = ingest.batch(per);
            values += batch.values() as f64;
            t_raw += base.timed_insert(&batch).as_secs_f64();
            t_ours += ingest.timed_push(&batch).as_secs_f64();
        }
        ours.push(values / t_ours);
        raw.push(values / t_raw);
        ratio.push(t_raw / t_ours);
    }
    emit(
        "ingest",
        a.reps,
        vec![
            (
                "points_per_batch",
                V::N((per * support::INGEST_WINDOWS) as f64),
            ),
            ("windows", V::N(support::INGEST_WINDOWS as f64)),
            ("values_per_s", V::St(ours)),
            ("raw_rusqlite_values_per_s", V::St(raw)),
            ("speed_vs_raw", V::St(ratio)),
        ],
    );
}

/// The tick in which `act` windows recorded together close at once (they
/// reach the point limit, 501, in the same tick): the worst case for finding
/// a window's points, which interleave with those of every other window.
/// Includes the tick's own sampling of `act` resources. Since schema 8 the
/// closing work (sealing, summaries) runs off the tick, so also reported: a
/// normal tick of the same rig (the mean of the last 10 before), the worst of
/// the 10 ticks after (the closer works meanwhile), and the time until all
/// closing work is done. No peer equivalent (the seed completes in memory,
/// then rewrites its whole file).
fn bench_storm(a: &Args, act: usize) {
    progress(format!("storm A={act}"));
    let (mut ns, mut normal, mut after, mut done) = (
        Stat::default(),
        Stat::default(),
        Stat::default(),
        Stat::default(),
    );
    for rep in 0..a.reps {
        let mut rig = TickRig::new(act, act, 1 + rep as u64);
        let left = rig.ticks_left;
        rig.timed_ticks(left - 10);
        normal.push(rig.timed_ticks(10).as_nanos() as f64 / 10.0);
        rig.clock.advance(Duration::from_secs(5));
        let t0 = Instant::now();
        rig.recorder.record_sample().expect("tick");
        ns.push(t0.elapsed().as_nanos() as f64);
        assert_eq!(rig.recorder.stats().active_windows, 0, "all windows closed");
        let mut worst = 0f64;
        for _ in 0..10 {
            rig.clock.advance(Duration::from_secs(5));
            let t = Instant::now();
            rig.recorder.record_sample().expect("tick");
            worst = worst.max(t.elapsed().as_nanos() as f64);
        }
        after.push(worst);
        rig.recorder.sync().expect("closing work done");
        done.push(t0.elapsed().as_nanos() as f64);
    }
    emit(
        "storm",
        a.reps,
        vec![
            ("A", V::N(act as f64)),
            ("points_per_window", V::N(501.0)),
            ("ns_closing_tick", V::St(ns)),
            ("ns_normal_tick", V::St(normal)),
            ("ns_worst_of_next_10_ticks", V::St(after)),
            ("ns_until_closed", V::St(done)),
        ],
    );
}

/// Disk bytes written per recorded point: `act` windows kept recording (a new
/// one opens as others complete), `disk_ticks` ticks, then a final
/// checkpoint, so every byte the points cost (WAL frames and the checkpoint
/// into the database file) is counted. With a `commit_interval` of
/// `interval_s`, the points counted are those committed in the measured
/// ticks (those still waiting at the end are neither written nor counted).
fn bench_disk(a: &Args, act: usize, interval_s: u64) {
    progress(format!(
        "disk A={act} ticks={} commit_interval={interval_s}s",
        a.disk_ticks
    ));
    let r = (2 * act).max(100);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = support::temp_db(&dir);
    let config = RecorderConfig {
        max_windows: 1_000_000,
        commit_interval: Duration::from_secs(interval_s),
        ..RecorderConfig::with_db_path(&path)
    };
    let post_ticks = (config.post_incident_window.as_secs() / 5) as usize;
    let rig = TickRig::with_config(config, dir, r, 0, 1);
    let mut next = 0usize;
    let mut debt = act as f64; // open all windows at first, then the completion rate
    let mut open = |rig: &TickRig, debt: &mut f64| {
        while *debt >= 1.0 {
            let id = &rig.provider.ids[next % r];
            next += 1;
            rig.recorder
                .start_recording(id.as_str(), incident_recorder::Trigger::manual())
                .expect("open");
            *debt -= 1.0;
        }
    };
    // Reach the steady state (windows open and complete at the same rate).
    for _ in 0..post_ticks + 10 {
        open(&rig, &mut debt);
        rig.step();
        debt += act as f64 / post_ticks as f64;
    }
    let points_before = rig.recorder.store().stats().expect("stats").points;
    support::checkpoint(&path);
    let size_before = std::fs::metadata(&path).expect("db").len();
    let w0 = write_bytes();
    for _ in 0..a.disk_ticks {
        open(&rig, &mut debt);
        rig.step();
        debt += act as f64 / post_ticks as f64;
    }
    let active = rig.recorder.stats().active_windows;
    support::checkpoint(&path);
    let written = write_bytes() - w0;
    let stats = rig.recorder.store().stats().expect("stats");
    let size_after = std::fs::metadata(&path).expect("db").len();
    let points = (stats.points - points_before) as f64;
    let stored = (size_after - size_before) as f64 / points;
    let per_point = written as f64 / points;
    emit(
        "disk",
        1,
        vec![
            ("R", V::N(r as f64)),
            ("A", V::N(act as f64)),
            ("commit_interval_s", V::N(interval_s as f64)),
            ("active_at_end", V::N(active as f64)),
            ("ticks", V::N(a.disk_ticks as f64)),
            ("points", V::N(points)),
            ("write_bytes", V::N(written as f64)),
            ("write_bytes_per_point", V::N(per_point)),
            ("stored_bytes_per_point", V::N(stored)),
            ("write_amplification", V::N(per_point / stored)),
        ],
    );
}

fn main() {
    let a = Args::parse();
    support::assert_peer_generator();
    let only = |b: &str| a.only.iter().any(|o| o == b);
    bench_env();
    if only("provider") {
        for &r in &a.resources {
            bench_provider(&a, r);
        }
    }
    if only("tick") {
        for &r in &a.resources {
            for &act in a.active.iter().filter(|&&x| x <= r) {
                bench_tick(&a, r, act);
            }
        }
    }
    if only("summary") {
        bench_summary(&a);
    }
    let mut fx = Fixtures {
        dir: tempfile::tempdir().expect("temp dir"),
        built: BTreeMap::new(),
    };
    if only("complete") {
        for &w in &a.windows {
            bench_complete(&a, &mut fx, w);
        }
    }
    if only("persist") {
        for &w in &a.windows {
            bench_persist(&a, &mut fx, w);
        }
    }
    if only("read") {
        for &w in &a.windows {
            bench_read(&a, &mut fx, w);
        }
    }
    if only("ingest") {
        bench_ingest(&a);
    }
    if only("storm") {
        for &act in &a.disk_active {
            bench_storm(&a, act);
        }
    }
    if only("disk") {
        for &act in &a.disk_active {
            for &interval in &a.commit_interval {
                bench_disk(&a, act, interval);
            }
        }
    }
}
