//! Scraping Prometheus exporters (issue 13).
//!
//! - `parse`: the text parser on node_exporter's real output (the captured
//!   `tests/fixtures/node_exporter-1.5.0.prom`, 788 series) against the
//!   `prometheus-parse` crate on the same text, in the same run; throughput
//!   in series per second;
//! - `scrape`: one tick's provider call (`ScrapeProvider::current_metrics_batch`)
//!   over 1 and 10 targets, each a local HTTP server serving the fixture:
//!   HTTP, parse, canonical names, rates, node_exporter's host metrics;
//! - `tick`: a whole recorder tick (`record_sample`, in memory) over the
//!   same 10 targets.
//!
//! `cargo bench --bench scrape`; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use incident_recorder::provider::prometheus::{ScrapeOptions, ScrapeProvider, parse_text};
use incident_recorder::{IncidentRecorder, MetricsProvider, RecorderConfig};

fn fixture() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter-1.5.0.prom");
    std::fs::read_to_string(path).expect("the node_exporter fixture")
}

fn series(text: &str) -> u64 {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count() as u64
}

fn parse(c: &mut Criterion) {
    let text = fixture();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(series(&text)));
    group.bench_function("incident-recorder", |b| {
        b.iter(|| black_box(parse_text(black_box(&text)).unwrap().len()))
    });
    group.bench_function("prometheus-parse", |b| {
        b.iter(|| {
            let lines = black_box(&text).lines().map(|l| Ok(l.to_owned()));
            black_box(
                prometheus_parse::Scrape::parse(lines)
                    .unwrap()
                    .samples
                    .len(),
            )
        })
    });
    group.finish();
}

/// `n` local exporters serving `body`, each answering on its own threads.
struct Exporters {
    servers: Vec<Arc<tiny_http::Server>>,
}

impl Exporters {
    fn start(n: usize, body: &str) -> Exporters {
        let mut servers = Vec::new();
        for _ in 0..n {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
            for _ in 0..2 {
                let s = Arc::clone(&server);
                let body = body.to_owned();
                std::thread::spawn(move || {
                    let header = tiny_http::Header::from_bytes(
                        "Content-Type",
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                    .unwrap();
                    for rq in s.incoming_requests() {
                        let r = tiny_http::Response::from_string(body.clone())
                            .with_header(header.clone());
                        let _ = rq.respond(r);
                    }
                });
            }
            servers.push(server);
        }
        Exporters { servers }
    }

    fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("http://{}/metrics", s.server_addr().to_ip().unwrap()))
            .collect()
    }
}

impl Drop for Exporters {
    fn drop(&mut self) {
        for s in &self.servers {
            for _ in 0..2 {
                s.unblock();
            }
        }
    }
}

fn provider(urls: &[String]) -> ScrapeProvider {
    let targets = urls.iter().map(|u| u.parse().unwrap()).collect();
    ScrapeProvider::new(targets, ScrapeOptions::default()).unwrap()
}

fn scrape(c: &mut Criterion) {
    let text = fixture();
    let per_target = series(&text);
    let mut group = c.benchmark_group("scrape");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(8));
    for n in [1usize, 10] {
        let exporters = Exporters::start(n, &text);
        let p = provider(&exporters.urls());
        let ids = p.monitored_resource_ids();
        group.throughput(Throughput::Elements(per_target * n as u64));
        group.bench_function(BenchmarkId::new("batch", format!("{n} targets")), |b| {
            b.iter(|| black_box(p.current_metrics_batch(&ids)))
        });
        let failed = p.status().iter().filter(|s| s.last_error.is_some()).count();
        assert_eq!(failed, 0, "every local target answered");
    }
    group.finish();
}

fn tick(c: &mut Criterion) {
    let text = fixture();
    let exporters = Exporters::start(10, &text);
    let p = Arc::new(provider(&exporters.urls()));
    let recorder = IncidentRecorder::open(RecorderConfig::default()).unwrap();
    recorder.set_metrics_provider(p.clone());
    let mut group = c.benchmark_group("tick");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(series(&text) * 10));
    group.bench_function("record_sample, 10 targets", |b| {
        b.iter(|| recorder.record_sample().unwrap())
    });
    group.finish();
    assert_eq!(recorder.stats().provider_errors, 0);
}

criterion_group!(benches, parse, scrape, tick);
criterion_main!(benches);
