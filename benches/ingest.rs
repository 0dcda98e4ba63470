//! Bulk ingest: `IncidentRecorder::push_samples` of 10,000 points × 8 metrics
//! into 100 recording windows, one commit per call, against raw rusqlite
//! inserting exactly the same rows (the journal's `recent_points` + `recent_values`, same
//! schema and pragmas) with one cached single-row statement per table in one
//! transaction. Both run in this process, interleaved by criterion's groups,
//! so their ratio is the recorder's distance to SQLite's own insert speed.
//!
//! `cargo bench --bench ingest`; `cargo test --benches` runs a small batch once.

#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{Batches, INGEST_WINDOWS, IngestRig, RawRig};

fn ingest(c: &mut Criterion) {
    support::assert_peer_generator();
    let per_window = if support::full_size() { 100 } else { 2 };
    let values = (INGEST_WINDOWS * per_window * 8) as u64;
    let mut group = c.benchmark_group("ingest");
    group.sample_size(20);
    group.throughput(Throughput::Elements(values));

    let mut ours = IngestRig::new(INGEST_WINDOWS);
    group.bench_function("push_samples", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let batch = ours.batch(per_window);
                    ours.timed_push(&batch)
                })
                .sum()
        })
    });

    let mut raw = RawRig::new(INGEST_WINDOWS);
    let mut batches = Batches::new(INGEST_WINDOWS, support::now_truncated());
    group.bench_function("raw_rusqlite", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let batch = batches.next(per_window);
                    raw.timed_insert(&batch)
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
