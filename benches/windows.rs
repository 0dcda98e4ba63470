//! Window life cycle against a history: completing a 500-point window
//! (summary + commit + trimming the oldest, as the seed's `completeWindow`
//! does) with 100 and 1,000 windows stored; `IncidentRecorder::open` of such
//! a database; and the reads `window(id)` and `recent_windows(100)`.
//!
//! `cargo bench --bench windows`; `cargo test --benches` runs small sizes once.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use incident_recorder::{IncidentRecorder, WindowId};
use support::CompleteRig;

/// (stored windows, points per window) for each size.
fn sizes() -> (Vec<usize>, usize) {
    if support::full_size() {
        (vec![100, 1_000], 500)
    } else {
        (vec![3, 6], 20)
    }
}

/// One fixture database per history size, built once for all the benches.
struct Fixture {
    windows: usize,
    path: PathBuf,
    ids: Vec<WindowId>,
}

fn fixtures(dir: &tempfile::TempDir) -> (Vec<Fixture>, usize) {
    support::assert_peer_generator();
    let (windows, points) = sizes();
    let end = support::now_truncated();
    let fx = windows
        .into_iter()
        .map(|w| {
            let path = dir.path().join(format!("w{w}.db"));
            let ids = support::build_history(&path, w, points, end);
            Fixture {
                windows: w,
                path,
                ids,
            }
        })
        .collect();
    (fx, points)
}

fn windows(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (fx, points) = fixtures(&dir);

    let mut group = c.benchmark_group("complete");
    group.sample_size(30);
    for f in &fx {
        let mut rig = CompleteRig::new(&f.path, f.windows, points);
        group.bench_function(BenchmarkId::new("stop_recording", f.windows), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rig.timed_complete()).sum())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for f in &fx {
        let config = support::fixture_config(&f.path, f.windows);
        group.bench_function(BenchmarkId::new("stored_windows", f.windows), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    let recorder = IncidentRecorder::open(config.clone()).expect("open");
                    total += t0.elapsed();
                    drop(recorder); // closing is not part of opening
                }
                total
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("read");
    // recent_windows(100) reads 50,000 points (~0.1 s): same-size samples,
    // few of them, or criterion's linear sampling would take minutes.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for f in &fx {
        let recorder =
            IncidentRecorder::open(support::fixture_config(&f.path, f.windows)).expect("open");
        group.bench_function(BenchmarkId::new("window", f.windows), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7) % f.ids.len();
                black_box(recorder.window(&f.ids[i]).expect("read"))
            })
        });
        group.bench_function(BenchmarkId::new("recent_windows_100", f.windows), |b| {
            b.iter(|| black_box(recorder.recent_windows(100).expect("read")))
        });
    }
    group.finish();
}

criterion_group!(benches, windows);
criterion_main!(benches);
