//! Scraping Prometheus exporters: the text parser on node_exporter's real
//! output (captured in `tests/fixtures/` and live from the installed
//! binary), the edge cases and a property test; the `ScrapeProvider` on a
//! real node_exporter, next to the host provider it must agree with, and on
//! targets that are down, slow or serve garbage.

mod real;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use incident_recorder::provider::host::{self, HostProvider};
use incident_recorder::provider::prometheus::{
    Component, MetricKind, ScrapeOptions, ScrapeProvider, ScrapeTarget, parse_text,
};
use incident_recorder::{
    Error, IncidentRecorder, Metrics, MetricsProvider, RecorderConfig, Trigger,
};
use proptest::prelude::*;
use real::{FakeExporter, Reply};

/// The sample lines of an exposition text, read the simple way: every line
/// that is not blank or a comment, split into (series, value).
fn sample_lines(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').expect("series and value"))
        .collect()
}

/// `name{a="x",b="y"}` as written by our canonical form, from a parsed sample.
fn series_text(s: &incident_recorder::provider::prometheus::Sample<'_, '_>) -> String {
    let mut out = s.name.to_owned();
    if !s.labels.is_empty() {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        out.push('{');
        out.push_str(&labels.join(","));
        out.push('}');
    }
    out
}

#[test]
fn node_exporters_captured_output_parses_completely() {
    let text = real::node_fixture();
    let parsed = parse_text(&text).unwrap();
    let lines = sample_lines(&text);
    assert!(lines.len() > 700, "a node_exporter-sized text");
    assert_eq!(parsed.len(), lines.len(), "every sample line is a sample");
    // node_exporter writes labels sorted and no escapes, so each sample
    // prints back as the line it came from.
    for (s, (series, value)) in parsed.samples().zip(&lines) {
        assert_eq!(&series_text(&s), series, "line {}", s.line);
        let expected: f64 = value.parse().unwrap();
        assert!(
            s.value == expected || (s.value.is_nan() && expected.is_nan()),
            "line {}: {} != {value}",
            s.line,
            s.value
        );
        assert_eq!(s.timestamp_ms, None);
    }
    // Types come from the TYPE lines.
    let typed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_owned(), t.to_owned())
        })
        .collect();
    let seen: BTreeSet<(String, String)> = parsed
        .samples()
        .map(|s| (s.family.to_owned(), s.kind.to_string()))
        .collect();
    assert_eq!(seen, typed, "every family with its declared type");
    let gc: Vec<Component> = parsed
        .samples()
        .filter(|s| s.family == "go_gc_duration_seconds")
        .map(|s| s.component)
        .collect();
    assert_eq!(gc.iter().filter(|c| **c == Component::Quantile).count(), 5);
    assert!(gc.contains(&Component::Sum) && gc.contains(&Component::Count));
    let cpu = parsed
        .samples()
        .find(|s| s.name == "node_cpu_seconds_total")
        .unwrap();
    assert_eq!(cpu.kind, MetricKind::Counter);
}

#[test]
fn edge_cases_of_the_format() {
    let text = "# HELP a_total Help with \\\\ and \\n escapes.\r\n\
                # TYPE a_total counter\r\n\
                a_total{path=\"C:\\\\x\",msg=\"say \\\"hi\\\"\\nbye\",} 1e3 1700000000000\r\n\
                \r\n\
                \t  # indented comment\n\
                b NaN\n\
                c +Inf\n\
                d -Inf\n\
                e{l=\"日本\"} -0.5\n\
                # TYPE h histogram\n\
                h_bucket{le=\"+Inf\"} 3\n\
                h_sum 1.5\n\
                h_count 3\n";
    let e = parse_text(text).unwrap();
    let s: Vec<_> = e.samples().collect();
    assert_eq!(s.len(), 8);
    assert_eq!(s[0].label("path"), Some("C:\\x"));
    assert_eq!(s[0].label("msg"), Some("say \"hi\"\nbye"));
    assert_eq!(s[0].value, 1000.0);
    assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_000));
    assert!(s[1].value.is_nan());
    assert_eq!((s[2].value, s[3].value), (f64::INFINITY, f64::NEG_INFINITY));
    assert_eq!(s[4].label("l"), Some("日本"));
    assert_eq!(
        (s[5].family, s[5].component, s[7].component),
        ("h", Component::Bucket, Component::Count)
    );
    // Garbage is refused with its line, never half-read.
    let Err(Error::InvalidExposition { line, reason }) =
        parse_text("ok 1\n<!DOCTYPE html>\n<html>")
    else {
        panic!("HTML is not an exposition");
    };
    assert_eq!(line, 2, "{reason}");
}

/// One generated sample: name, labels, value, timestamp.
type GenSample = (String, Vec<(String, String)>, f64, Option<i64>);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:e}")
    }
}

fn gen_sample() -> impl Strategy<Value = GenSample> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        proptest::collection::btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,10}",
            "\\PC{0,12}|[\\\\\"\n]{0,4}",
            0..5,
        ),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ],
        proptest::option::of(any::<i64>()),
    )
        .prop_filter("__name__ is reserved", |(_, labels, _, _)| {
            !labels.contains_key("__name__")
        })
        .prop_map(|(n, l, v, t)| (n, l.into_iter().collect(), v, t))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text at all: parsed or refused with a line number, never a panic.
    #[test]
    fn any_text_is_parsed_or_refused(text in "\\PC{0,300}|[#{}=\",\\\\ \\n\\tA-Za-z0-9_.+-]{0,300}") {
        match parse_text(&text) {
            Ok(e) => prop_assert!(e.len() <= text.lines().count()),
            Err(Error::InvalidExposition { line, .. }) => {
                prop_assert!(line >= 1 && line <= text.split('\n').count())
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// Samples written in the format (any names, label values with every
    /// escape, any value, shuffled label order, CRLF or LF) read back as
    /// they were.
    #[test]
    fn written_samples_read_back(samples in proptest::collection::vec(gen_sample(), 0..20), crlf in any::<bool>(), reverse in any::<bool>()) {
        let mut text = String::new();
        for (name, labels, value, ts) in &samples {
            text.push_str(name);
            if !labels.is_empty() {
                let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                if reverse { parts.reverse(); }
                text.push('{');
                text.push_str(&parts.join(","));
                text.push('}');
            }
            text.push(' ');
            text.push_str(&format_value(*value));
            if let Some(t) = ts { text.push_str(&format!(" {t}")); }
            text.push_str(if crlf { "\r\n" } else { "\n" });
        }
        let parsed = parse_text(&text).unwrap();
        prop_assert_eq!(parsed.len(), samples.len());
        for (s, (name, labels, value, ts)) in parsed.samples().zip(&samples) {
            prop_assert_eq!(s.name, name.as_str());
            let got: Vec<(String, String)> = s.labels.iter().map(|l| (l.name.to_owned(), l.value.to_string())).collect();
            prop_assert_eq!(&got, labels);
            prop_assert!(s.value == *value || (s.value.is_nan() && value.is_nan()));
            prop_assert_eq!(s.timestamp_ms, *ts);
        }
    }
}

fn provider(urls: &[String], options: ScrapeOptions) -> ScrapeProvider {
    let targets = urls
        .iter()
        .map(|u| u.parse::<ScrapeTarget>().unwrap())
        .collect();
    ScrapeProvider::new(targets, options).unwrap()
}

fn batch(p: &ScrapeProvider) -> Vec<(String, Result<Metrics, incident_recorder::ProviderError>)> {
    p.current_metrics_batch(&p.monitored_resource_ids())
}

#[test]
fn a_fixture_target_gives_canonical_series_rates_and_host_metrics() {
    let text = real::node_fixture();
    // The second answer has every counter 10 higher.
    let bumped: String = text
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((series, v)) if series.starts_with("node_network_receive_bytes_total") => {
                format!("{series} {}\n", v.parse::<f64>().unwrap() + 1000.0)
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let (a, b) = (text.clone(), bumped.clone());
    let exporter =
        FakeExporter::start(move |n| Reply::text(if n == 0 { a.clone() } else { b.clone() }));
    let p = provider(&[exporter.url()], ScrapeOptions::default());
    let resource = exporter.addr.to_string();
    assert_eq!(p.monitored_resource_ids(), vec![resource.clone()]);

    let first = batch(&p);
    let (id, m) = &first[0];
    assert_eq!(id, &resource);
    let m = m.as_ref().unwrap();
    // Every gauge and untyped line is a metric under its own series text,
    // with its value; counters have no rate yet; the summary is left out.
    let kinds: Vec<(MetricKind, Component)> = parse_text(&text)
        .unwrap()
        .samples()
        .map(|s| (s.kind, s.component))
        .collect();
    let mut gauges = 0;
    for ((series, value), (kind, _)) in sample_lines(&text).into_iter().zip(kinds) {
        let value: f64 = value.parse().unwrap();
        match kind {
            MetricKind::Gauge | MetricKind::Untyped if value.is_finite() => {
                gauges += 1;
                assert_eq!(m.get(series), Some(value), "{series}");
            }
            MetricKind::Counter => {
                assert_eq!(m.get(&format!("{series}_per_s")), None, "{series}");
                assert_eq!(m.get(series), None, "{series}");
            }
            _ => assert_eq!(m.get(series), None, "{series}"),
        }
    }
    let derived: Vec<&str> = m
        .iter()
        .map(|(n, _)| n)
        .filter(|n| host::METRICS.contains(n))
        .collect();
    assert_eq!(m.len(), gauges + derived.len());
    // Host metrics from the first scrape: the ones that need no rate.
    let total = real::plain_value(&text, "node_memory_MemTotal_bytes");
    let avail = real::plain_value(&text, "node_memory_MemAvailable_bytes");
    assert_eq!(m.get("memory"), Some((total - avail) * 100.0 / total));
    assert_eq!(m.get("load1"), Some(real::plain_value(&text, "node_load1")));
    assert_eq!(m.get("load5"), Some(real::plain_value(&text, "node_load5")));
    assert!(m.get("disk").is_some_and(|d| (0.0..=100.0).contains(&d)));
    assert_eq!(m.get("cpu"), None, "cpu needs two scrapes");
    let status = &p.status()[0];
    assert_eq!(status.derived.len(), 9, "{:?}", status.derived);
    assert!(
        !status.derived.contains(&"swap".to_owned()),
        "this node has no swap"
    );

    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    let second = batch(&p);
    let elapsed = started.elapsed();
    let m = second[0].1.as_ref().unwrap();
    let interfaces = text
        .lines()
        .filter(|l| l.starts_with("node_network_receive_bytes_total{"))
        .count();
    let rx = m.get("net_rx_bytes_per_s").unwrap();
    // 1000 more bytes per interface (none is lo here) over 150 ms and a bit.
    let most = interfaces as f64 * 1000.0 / 0.150;
    let least = interfaces as f64 * 1000.0 / (0.150 + 1.0 + elapsed.as_secs_f64());
    assert!(rx <= most && rx >= least, "{rx} not in {least}..{most}");
    assert_eq!(
        m.get("cpu"),
        None,
        "CPU counters that did not move say nothing"
    );
    let eth0 = m
        .get("node_network_receive_bytes_total_per_s{device=\"eth0\"}")
        .unwrap();
    assert!(eth0 > 0.0 && eth0 <= 1000.0 / 0.150);
    assert_eq!(
        m.get("node_network_transmit_bytes_total_per_s{device=\"eth0\"}"),
        Some(0.0)
    );
}

#[test]
fn a_live_node_exporter_agrees_with_the_host_provider() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, addr)) = real::node_exporter(dir.path()) else {
        return;
    };
    // The text node_exporter serves right now parses, every line of it.
    let (_, live) = real::get(&format!("http://{addr}/metrics")).unwrap();
    assert_eq!(parse_text(&live).unwrap().len(), sample_lines(&live).len());

    let host = HostProvider::with_resource_id("me").unwrap();
    let p = provider(
        &[format!("http://{addr}/metrics")],
        ScrapeOptions::default(),
    );
    batch(&p);
    std::thread::sleep(Duration::from_millis(300));
    let _ = host.sample();
    std::thread::sleep(Duration::from_millis(300));
    let scraped = batch(&p).remove(0).1.unwrap();
    let mine = host.sample();
    // The same names: every host metric the host provider reports.
    let names = |m: &Metrics| -> BTreeSet<String> {
        m.iter()
            .map(|(n, _)| n.to_owned())
            .filter(|n| host::METRICS.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(names(&scraped), names(&mine));
    // The same meaning: the same host, read a moment apart.
    for (metric, tolerance) in [
        ("memory", 2.0),
        ("swap", 2.0),
        ("disk", 1.0),
        ("load1", 1.5),
        ("load5", 1.0),
    ] {
        if let Some(want) = mine.get(metric) {
            let got = scraped.get(metric).unwrap();
            assert!(
                (got - want).abs() <= tolerance,
                "{metric}: scraped {got}, host {want}"
            );
        }
    }
    for metric in ["cpu", "net_rx_bytes_per_s", "disk_write_bytes_per_s"] {
        let v = scraped.get(metric).unwrap();
        assert!(
            v >= 0.0 && (metric != "cpu" || v <= 100.0),
            "{metric} = {v}"
        );
    }
}

#[test]
fn a_down_slow_or_garbage_target_skips_only_its_own_resource() {
    let dir = tempfile::tempdir().unwrap();
    let good = FakeExporter::start(|_| Reply::text("up 1\n"));
    let html = FakeExporter::start(|_| {
        Reply::text("<!DOCTYPE html>\n<html><body>Welcome</body></html>\n")
    });
    let slow = FakeExporter::start(|_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::text("up 1\n")
    });
    let error = FakeExporter::start(|_| Reply {
        status: 503,
        ..Reply::text("overloaded")
    });
    let protobuf = FakeExporter::start(|_| Reply {
        content_type: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
        ..Reply::text(vec![0u8, 1, 2])
    });
    let binary = FakeExporter::start(|_| Reply::text(b"up 1\nbad \xff\xfe 2\n".to_vec()));
    let closed = format!("http://127.0.0.1:{}/metrics", real::free_port());
    let urls = [
        good.url(),
        format!("html={}", html.url()),
        format!("slow={}", slow.url()),
        format!("error={}", error.url()),
        format!("protobuf={}", protobuf.url()),
        format!("binary={}", binary.url()),
        format!("down={closed}"),
    ];
    let options = ScrapeOptions {
        timeout: Duration::from_millis(500),
        ..ScrapeOptions::default()
    };
    let p = Arc::new(provider(&urls, options));
    let started = Instant::now();
    let answers = batch(&p);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "one tick took {took:?}: targets are scraped in parallel, each within its timeout"
    );
    let answer = |id: &str| answers.iter().find(|a| a.0 == id).unwrap().1.as_ref();
    assert_eq!(answer(&good.addr.to_string()).unwrap().get("up"), Some(1.0));
    for (id, why) in [
        ("html", "line 1"),
        ("slow", "within 500 ms"),
        ("error", "HTTP 503"),
        ("protobuf", "only the Prometheus text format"),
        ("binary", "not UTF-8 text (line 2"),
        ("down", "scrape of down="),
    ] {
        let err = answer(id).unwrap_err().to_string();
        assert!(err.contains(why), "{id}: {err}");
    }
    let status = p.status();
    assert_eq!(status[0].failures, 0);
    assert!(
        status[1..]
            .iter()
            .all(|s| s.failures == 1 && s.last_error.is_some())
    );

    // In a recorder: the good target is recorded, the others skipped and counted.
    let recorder = IncidentRecorder::open(RecorderConfig {
        db_path: Some(dir.path().join("db")),
        sample_interval: Duration::from_secs(1),
        ..RecorderConfig::default()
    })
    .unwrap();
    recorder.set_metrics_provider(p.clone());
    recorder.record_sample().unwrap();
    let id = recorder
        .start_recording(good.addr.to_string().as_str(), Trigger::manual())
        .unwrap();
    recorder.stop_recording(&id).unwrap();
    let w = recorder.window(&id).unwrap().unwrap();
    assert_eq!(w.data_points.len(), 1);
    assert_eq!(w.data_points[0].metrics["up"], 1.0);
    assert_eq!(recorder.stats().provider_errors, 6);
}

#[test]
fn one_resource_per_label_value_discovered_by_scrapes() {
    let exporter = FakeExporter::start(|n| {
        let mut body = String::from(
            "# TYPE vm_cpu gauge\nexporter_up 1\nvm_cpu{id=\"qemu/100\",node=\"pve\"} 10\n",
        );
        if n > 0 {
            body.push_str("vm_cpu{id=\"qemu/101\",node=\"pve\"} 20\n");
        }
        Reply::text(body)
    });
    let p = provider(
        &[format!("pve={}", exporter.url())],
        ScrapeOptions {
            resource_label: Some("id".into()),
            ..ScrapeOptions::default()
        },
    );
    // Before any scrape, only the target itself is known.
    assert_eq!(p.monitored_resource_ids(), ["pve"]);
    let answers = batch(&p);
    assert_eq!(answers[0].1.as_ref().unwrap().get("exporter_up"), Some(1.0));
    assert_eq!(p.monitored_resource_ids(), ["pve", "qemu/100"]);
    let answers = batch(&p);
    let vm = answers
        .iter()
        .find(|a| a.0 == "qemu/100")
        .unwrap()
        .1
        .as_ref()
        .unwrap();
    assert_eq!(vm.get("vm_cpu{node=\"pve\"}"), Some(10.0));
    // The VM that appeared in the second scrape is listed from then on.
    assert_eq!(p.monitored_resource_ids(), ["pve", "qemu/100", "qemu/101"]);
}

#[test]
fn a_cap_and_a_match_choose_what_is_kept() {
    let text = real::node_fixture();
    let body = text.clone();
    let exporter = FakeExporter::start(move |_| Reply::text(body.clone()));
    let p = provider(
        &[exporter.url()],
        ScrapeOptions {
            max_series_per_target: 10,
            ..ScrapeOptions::default()
        },
    );
    let m = batch(&p).remove(0).1.unwrap();
    let scraped = m.iter().filter(|(n, _)| !host::METRICS.contains(n)).count();
    assert!(scraped <= 10, "{scraped} series kept");
    assert!(p.status()[0].over_cap > 0);
    assert!(
        m.get("memory").is_some(),
        "host metrics are derived whatever the cap"
    );

    let p = provider(
        &[exporter.url()],
        ScrapeOptions {
            series_match: Some("^go_gc_duration_seconds".into()),
            ..ScrapeOptions::default()
        },
    );
    let m = batch(&p).remove(0).1.unwrap();
    let scraped: Vec<&str> = m
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !host::METRICS.contains(n))
        .collect();
    // The summary's quantiles (gauges) are let in by the match; its sum and
    // count are counters, so rates from the next scrape.
    assert_eq!(scraped.len(), 5, "{scraped:?}");
    assert!(
        scraped
            .iter()
            .all(|n| n.starts_with("go_gc_duration_seconds{quantile="))
    );
    let bad = ScrapeProvider::new(
        vec![exporter.url().parse().unwrap()],
        ScrapeOptions {
            series_match: Some("(".into()),
            ..ScrapeOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        bad.to_string().contains("invalid series match pattern"),
        "{bad}"
    );
}

/// Issue 18, defect 14: a target that redirects to another host or port is
/// refused with where it points; the other server's answer is never
/// recorded as the target's.
#[test]
fn a_redirect_is_refused_not_followed() {
    use std::io::{Read, Write};
    let elsewhere = FakeExporter::start(|_| Reply::text("up 1\nstolen 42\n"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let location = elsewhere.url();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            let _ = write!(
                conn,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let p = provider(
        &[format!("http://{addr}/metrics")],
        ScrapeOptions::default(),
    );
    let answers = batch(&p);
    let err = answers[0].1.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("redirects (HTTP 302)") && err.contains(&elsewhere.url()),
        "{err}"
    );
    assert_eq!(
        elsewhere.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert_eq!(p.status()[0].failures, 1);
}

/// Issue 18, defect 3 (the scraper's half): a target whose series names
/// keep changing spends its name budget and no more; its steady series
/// are still recorded, and the status says what happened.
#[test]
fn a_target_with_ever_new_names_stays_within_its_name_budget() {
    let exporter = FakeExporter::start(|n| {
        Reply::text(format!(
            "up 1\nrequests{{request_id=\"{}\"}} 1\nrequests{{request_id=\"{}\"}} 1\n",
            2 * n,
            2 * n + 1
        ))
    });
    let options = ScrapeOptions {
        max_names_per_target: 21,
        ..ScrapeOptions::default()
    };
    let p = provider(&[exporter.url()], options);
    for _ in 0..10 {
        let m = batch(&p).remove(0).1.unwrap();
        assert_eq!((m.len(), m.get("up")), (3, Some(1.0)));
    }
    let m = batch(&p).remove(0).1.unwrap();
    assert_eq!(m.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["up"]);
    let status = &p.status()[0];
    assert_eq!((status.names, status.over_budget), (21, 2));
}

/// A scrape that outlasts its tick's wait is not started again while it
/// runs, and is recorded by the next tick; one no tick took for two ticks
/// is dropped rather than recorded late.
#[test]
fn a_scrape_longer_than_the_wait_is_taken_by_the_next_call() {
    let exporter = FakeExporter::start(|n| Reply {
        delay: Duration::from_millis(600),
        ..Reply::text(format!("n {n}\n"))
    });
    let options = ScrapeOptions {
        wait: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        ..ScrapeOptions::default()
    };
    let p = provider(&[exporter.url()], options);
    let started = Instant::now();
    let first = batch(&p).remove(0).1.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the call waited"
    );
    assert!(first.contains("still scraping"), "{first}");
    // Still running: not asked again.
    let again = batch(&p).remove(0).1.unwrap_err().to_string();
    assert!(again.contains("still scraping"), "{again}");
    std::thread::sleep(Duration::from_millis(700));
    // Done since: this call takes it (and starts the next scrape).
    let m = batch(&p).remove(0).1.unwrap();
    assert_eq!(m.get("n"), Some(0.0));
    assert_eq!(
        exporter.requests.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    // The second scrape finishes, then two calls go by without it (a
    // recorder stopped, say): too old to be recorded as now.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(p.status()[0].scrapes, 2);
    let stale = p.current_metrics_batch(&[]);
    assert!(stale.is_empty());
    let _ = p.current_metrics_batch(&[]);
    let m = batch(&p).remove(0).1;
    assert!(m.is_err(), "{m:?}");
}
