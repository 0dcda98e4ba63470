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

/// `n` local exporters serving `body`: plain keep-alive HTTP/1.1 servers
/// writing one prepared response, so the measurement is the scraper's work
/// (and the loopback), not a server's.
struct Exporters {
    addrs: Vec<std::net::SocketAddr>,
}

impl Exporters {
    fn start(n: usize, body: &str) -> Exporters {
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body.as_bytes());
        let response = Arc::new(response);
        let mut addrs = Vec::new();
        for _ in 0..n {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            addrs.push(listener.local_addr().unwrap());
            let response = Arc::clone(&response);
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let response = Arc::clone(&response);
                    std::thread::spawn(move || serve(stream, &response));
                }
            });
        }
        Exporters { addrs }
    }

    fn urls(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| format!("http://{a}/metrics"))
            .collect()
    }
}

/// Answers every request on `stream` with `response` until it closes.
fn serve(mut stream: std::net::TcpStream, response: &[u8]) {
    use std::io::{Read, Write};
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.drain(..end + 4);
            if stream.write_all(response).is_err() {
                return;
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
        p.current_metrics_batch(&ids); // connections open, counters known
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
