//! Linear cost of hostile input (issue 11): lines that each bring a new
//! metric name, and samples of ever new resources, against the same number
//! of lines of known names and resources, in the same run.
//!
//! - `metric_names/known` and `metric_names/new`: 10,000 samples of one
//!   resource, 1 ms apart (all within the pre-incident window), pushed in
//!   batches of 1,000 as `ingest` does: every sample with the same metric,
//!   or every sample with a metric no sample had before. Target: new ≤ 2×
//!   known (DESIGN.md).
//! - `resources/100` and `resources/10000`: 10,000 samples spread over 100
//!   resources, or each of a new resource.
//!
//! `cargo bench --bench limits`; `cargo test --benches` runs each once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use incident_recorder::{IncidentRecorder, Metrics, RecorderConfig, Sample, Timestamp};

const LINES: usize = 10_000;
const BATCH: usize = 1_000;
const T0: i64 = 1_795_514_400_000;

fn recorder() -> IncidentRecorder {
    IncidentRecorder::open(RecorderConfig {
        pre_incident_window: Duration::from_secs(300),
        ..RecorderConfig::default()
    })
    .expect("an in-memory recorder")
}

/// Pushes `LINES` samples made by `sample(i)` (resource, metric name) on a
/// fresh recorder; the time of the pushes alone.
fn push(sample: impl Fn(usize) -> (String, String)) -> Duration {
    let recorder = recorder();
    let base = Timestamp::now().as_unix_ms().min(T0 + 86_400_000 * 365);
    let lines: Vec<(String, BTreeMap<String, f64>)> = (0..LINES)
        .map(|i| {
            let (resource, name) = sample(i);
            (resource, BTreeMap::from([(name, i as f64)]))
        })
        .collect();
    let start = Instant::now();
    for (n, chunk) in lines.chunks(BATCH).enumerate() {
        let samples = chunk
            .iter()
            .enumerate()
            .map(|(i, (resource, metrics))| Sample {
                resource: resource.as_str().into(),
                timestamp: Timestamp::from_unix_ms(base - 600_000 + (n * BATCH + i) as i64),
                metrics: Metrics::from(metrics.clone()),
                metadata: None,
            });
        let report = recorder.push_samples(samples).expect("pushed");
        assert!(report.rejected.is_empty());
    }
    start.elapsed()
}

fn limits(c: &mut Criterion) {
    let mut group = c.benchmark_group("metric_names");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("known", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| push(|_| ("r".into(), "cpu".into())))
                .sum()
        })
    });
    group.bench_function("new", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| push(|i| ("r".into(), format!("m{i}"))))
                .sum()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("resources");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("100", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| push(|i| (format!("r{}", i % 100), "cpu".into())))
                .sum()
        })
    });
    group.bench_function("10000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| push(|i| (format!("r{i}"), "cpu".into())))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
