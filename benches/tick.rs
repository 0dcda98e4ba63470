//! One tick (`IncidentRecorder::record_sample`) in the peer's steady state:
//! R resources × 8 metrics with full 60-point buffers, A windows recording,
//! every tick committed to a WAL file database. Also the synthetic provider
//! alone, since it runs inside every tick (on both sides).
//!
//! `cargo bench --bench tick`; `cargo test --benches` runs a small size once.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use incident_recorder::MetricsProvider;
use support::{PeerProvider, TickSeries};

fn sizes() -> (Vec<usize>, Vec<usize>) {
    if support::full_size() {
        (vec![1_000, 10_000], vec![0, 100, 1_000])
    } else {
        (vec![50], vec![0, 5])
    }
}

fn tick(c: &mut Criterion) {
    support::assert_peer_generator();
    let (resources, active) = sizes();
    let mut group = c.benchmark_group("tick");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(2));
    for &r in &resources {
        group.measurement_time(Duration::from_secs(if r >= 10_000 { 15 } else { 5 }));
        for &a in active.iter().filter(|&&a| a <= r) {
            let mut series = TickSeries::new(r, a);
            group.bench_function(BenchmarkId::new(format!("R{r}"), format!("A{a}")), |b| {
                b.iter_custom(|iters| series.time(iters as usize))
            });
        }
    }
    group.finish();
}

fn provider(c: &mut Criterion) {
    let (resources, _) = sizes();
    let mut group = c.benchmark_group("provider");
    for &r in &resources {
        let p = PeerProvider::new(r, 1);
        group.bench_function(BenchmarkId::new("current_metrics", r), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % r;
                black_box(p.current_metrics(&p.ids[i]).unwrap())
            })
        });
        group.bench_function(BenchmarkId::new("monitored_resource_ids", r), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    black_box(p.monitored_resource_ids());
                }
                t0.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, provider, tick);
criterion_main!(benches);
