//! SQL history at the CLI's limits (issue 12): what a user waits for when
//! the database is as full as the CLI lets it get, and the tick in which
//! many windows recorded together close.
//!
//! On a history built once and cached under `target/history-cache/`
//! (`benches/support/history.rs`: closed windows of 500 points × 8 metrics
//! over 200 resources, most recorded alone and some in bursts, plus 100
//! windows still recording), it times:
//!
//! - `history_sql`: every SQLite query printed in README.md and
//!   docs/schema.md, run to its last row on a plain read-only connection
//!   (as `sqlite3` runs them), and issue 12's "incident_samples filtered by
//!   resource and metric";
//! - `history_read`: `Store::window(id)` of a closed 500-point window, and
//!   `Store::windows` of the 100 most recent windows with their points (what
//!   `IncidentRecorder::recent_windows(100)` calls; here the 100 recording
//!   windows) and of the 100 most recent closed ones;
//! - `history_cli`: the `incident-recorder` binary's `list`, `show`,
//!   `context`, `export` of one window and of one resource, and `stats`, as
//!   subprocesses with stdout to /dev/null (skipped, saying why, without
//!   the binary);
//! - `storm`: on `TickRig` with every resource recording, a normal tick
//!   (median of the last 10 before the storm), the tick in which all the
//!   windows reach the point limit and close (trimming all but 100 of
//!   them: the rig keeps the library's default `max_windows`, as
//!   `peerbench --only storm`), and the worst of the 10 ticks after it
//!   (where closing work moved off the tick would show).
//!
//! `cargo bench --bench history` uses 2,000 closed windows (set
//! `IR_HISTORY_WINDOWS`, `IR_HISTORY_POINTS` for others; 10,000 × 500 is the
//! CLI's limit, better run with `examples/historybench.rs`) and storms of
//! 1,000 windows. `cargo test --benches` (CI) runs each once on 200 windows
//! × 100 points and a storm of 20.

#[path = "support/history.rs"]
mod history;
#[path = "support/mod.rs"]
mod support;

use std::cell::{Cell, OnceCell};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use history::{History, HistorySize, Storm};
use incident_recorder::{Store, WindowFilter, WindowStatus};

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The history and storm sizes of this run.
fn sizes() -> (HistorySize, usize) {
    if support::full_size() {
        let windows = env_usize("IR_HISTORY_WINDOWS").unwrap_or(2_000);
        let points = env_usize("IR_HISTORY_POINTS").unwrap_or(500);
        let size = if (windows, points) == (10_000, 500) {
            HistorySize::CLI_LIMITS
        } else {
            HistorySize {
                windows,
                points,
                ..HistorySize::CLI_LIMITS
            }
        };
        (size, 1_000)
    } else {
        (HistorySize::SMALL, 20)
    }
}

fn sql(c: &mut Criterion, h: &History) {
    let conn = history::read_connection(&h.path);
    let mut group = c.benchmark_group(format!("history_sql_w{}", h.size.windows));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for q in history::QUERIES {
        let mut stmt = conn.prepare(q.sql).unwrap_or_else(|e| {
            panic!(
                "{} ({}) no longer prepares: {e}; update it in benches/support/history.rs",
                q.name, q.source
            )
        });
        let bind = q.bind(&h.picks);
        group.bench_function(q.name, |b| {
            b.iter(|| black_box(history::run_query(&mut stmt, bind)))
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion, h: &History) {
    let store = Store::open_read_only(&h.path).expect("open the history");
    let mut group = c.benchmark_group(format!("history_read_w{}", h.size.windows));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let points = h.size.points;
    group.bench_function("window", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7) % h.picks.closed.len();
            let w = store.window(&h.picks.closed[i]).expect("read");
            assert_eq!(w.as_ref().map(|w| w.data_points.len()), Some(points));
            black_box(w)
        })
    });
    let recent = WindowFilter {
        limit: 100,
        with_points: true,
        ..WindowFilter::default()
    };
    group.bench_function("recent_windows_100", |b| {
        b.iter(|| black_box(store.windows(&recent).expect("read")))
    });
    let closed = WindowFilter {
        status: Some(WindowStatus::Truncated),
        ..recent.clone()
    };
    group.bench_function("recent_closed_windows_100", |b| {
        b.iter(|| black_box(store.windows(&closed).expect("read")))
    });
    group.finish();
}

fn cli(c: &mut Criterion, h: &History) {
    let bin = match history::cli_binary(None) {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("history: skipping the CLI commands: {why}");
            return;
        }
    };
    let mut group = c.benchmark_group(format!("history_cli_w{}", h.size.windows));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for cmd in history::cli_commands(&h.picks) {
        group.bench_function(cmd.name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| history::run_cli(&bin, &h.path, &cmd.args))
                    .sum()
            })
        });
    }
    group.finish();
}

/// The storm rows. A storm needs a fresh rig (seconds to fill at 1,000
/// windows) and gives three numbers, so the runs are made once, on first
/// use (11 with `cargo bench`: one per sample and one to warm up; 1 under
/// `cargo test --benches`), and the three benchmarks take their numbers from
/// them in turn: however often criterion calls, no more rigs are built.
fn storm(c: &mut Criterion, windows: usize) {
    let n: u64 = if support::full_size() { 11 } else { 1 };
    let runs: OnceCell<Vec<Storm>> = OnceCell::new();
    let take = |which: usize, k: &Cell<usize>| -> Duration {
        let runs = runs.get_or_init(|| {
            (1..=n)
                .map(|seed| Storm::run(windows, seed, None))
                .collect()
        });
        let run = &runs[k.get() % runs.len()];
        k.set(k.get() + 1);
        match which {
            0 => run.normal,
            1 => run.closing,
            _ => run.worst_after(),
        }
    };
    let mut group = c.benchmark_group(format!("storm_{windows}x501"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    // Few calls: a run's time counts for as many iterations as criterion
    // asks for.
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_millis(1));
    for (which, name) in ["normal_tick", "closing_tick", "worst_of_next_10_ticks"]
        .into_iter()
        .enumerate()
    {
        let k = Cell::new(0);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| take(which, &k) * u32::try_from(iters).unwrap_or(u32::MAX))
        });
    }
    group.finish();
    if let Some(last) = runs.get().and_then(|r| r.last()) {
        eprintln!(
            "storm of {windows}: {n} runs; after the closing tick the recorder counted {} windows open; it had closed {} 10 ticks later",
            last.open_after_closing_tick, last.closed_after
        );
    }
}

fn benches(c: &mut Criterion) {
    support::assert_peer_generator();
    let (size, storm_windows) = sizes();
    let h = history::cached(size, |m| eprintln!("history: {m}"));
    sql(c, &h);
    reads(c, &h);
    cli(c, &h);
    storm(c, storm_windows);
}

criterion_group!(history_benches, benches);
criterion_main!(history_benches);
