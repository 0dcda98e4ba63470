//! The fleet push (`fleet::push`) of a history into a local PostgreSQL,
//! against a raw binary `COPY` of the same points and values
//! (`benches/push_support`); the full comparison at 1,000 windows × 500
//! points is `examples/pushbench.rs`. Without PostgreSQL this bench says why
//! and does nothing, except under `CI=true`.
//!
//! `cargo bench --bench push`; `cargo test --benches` runs small sizes once.

#[path = "../tests/pg/mod.rs"]
mod pg;
#[path = "push_support/mod.rs"]
mod push_support;
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

fn push(c: &mut Criterion) {
    let (windows, points) = if support::full_size() {
        (200, 500)
    } else {
        (4, 20)
    };
    let Some(mut rig) = push_support::PushRig::new(windows, points) else {
        return;
    };
    let mut group = c.benchmark_group(format!("push_{windows}x{points}"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function("fleet_push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (url, _) = rig.fresh_central();
                total += rig.timed_push(&url).0;
            }
            total
        })
    });
    group.bench_function("raw_binary_copy", |b| {
        b.iter_custom(|iters| {
            let (_, mut client) = rig.fresh_central();
            (0..iters)
                .map(|_| rig.timed_raw_copy(&mut client, true))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, push);
criterion_main!(benches);
