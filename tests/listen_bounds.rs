//! The HTTP listener's bounds: requests that are malformed, oversized,
//! slow or hostile, connections over the limit, clients that stop reading,
//! stopping under load, and listings paged and streamed.

mod common;
mod listen_rig;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{secs, t};
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::provider::prometheus::parse_text;
use incident_recorder::{IncidentRecorder, ManualClock, Trigger, WindowFilter};
use listen_rig::{Rig, config, notification, raw, result, rig, rig_with};
use serde_json::Value;

#[test]
fn oversized_and_garbage_requests_are_refused() {
    let r = rig_with(|c| c.max_body_bytes = 1024);
    let big_head = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(raw(&r, big_head.as_bytes()).starts_with("HTTP/1.1 431 "));
    let many = format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(150));
    assert!(raw(&r, many.as_bytes()).starts_with("HTTP/1.1 431 "));
    let big_body = "POST /trigger HTTP/1.1\r\nContent-Length: 2000\r\n\r\n{}";
    let answer = raw(&r, big_body.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("over the limit of 1024"), "{answer}");
    // A chunked body is read within the same limit.
    let chunk = "a".repeat(600);
    let chunked = format!(
        "POST /trigger HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw(&r, chunked.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let small = "POST /trigger HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let answer = raw(&r, small.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("missing field `resource`"), "{answer}");
    // What is not HTTP gets hyper's bare 400; what is, our JSON error.
    for garbage in [
        &b"\x00\x01\x02\xff\xfe\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /x HTTP/9.9\r\n\r\n",
        b"POST /trigger HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST /trigger HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        let answer = raw(&r, garbage);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{garbage:?}: {answer}");
    }
    let absolute = raw(
        &r,
        b"GET http://elsewhere/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(absolute.starts_with("HTTP/1.1 400 "), "{absolute}");
    assert!(absolute.contains("\"error\""), "{absolute}");
    // Everything still works.
    r.ticks(1);
    assert_eq!(r.request("GET", "/healthz", None, None).0, 200);
}

#[test]
fn slow_and_idle_clients_time_out_without_blocking_others() {
    let r = rig_with(|c| {
        c.read_timeout = Duration::from_millis(300);
        c.request_timeout = Duration::from_millis(900);
    });
    // Half a request, then silence: 408 after the read timeout.
    let started = Instant::now();
    let answer = raw(
        &r,
        b"POST /trigger HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"res",
    );
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client dripping a byte at a time is cut at the request timeout.
    let mut drip = TcpStream::connect(r.listener.local_addr()).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if drip.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    drip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = drip.read_to_string(&mut out);
    assert!(cut || out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(started.elapsed() < Duration::from_secs(7));
    // More idle connections than workers: others are still served.
    let idle: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(r.listener.local_addr()).unwrap())
        .collect();
    let started = Instant::now();
    assert_eq!(r.request("GET", "/healthz", None, None).0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn stopping_the_listener_leaves_the_recorder_running() {
    let r = rig();
    let addr = r.listener.local_addr();
    let Rig {
        recorder,
        clock,
        listener,
    } = r;
    listener.stop();
    assert!(TcpStream::connect(addr).is_err(), "closed");
    recorder.record_sample().unwrap();
    clock.advance(secs(5));
    recorder.record_sample().unwrap();
    assert_eq!(recorder.stats().ticks, 2);
}

#[test]
fn a_slow_client_does_not_delay_stopping() {
    // Default timeouts: 10 s per read, 30 s per request.
    let r = rig();
    let mut slow = TcpStream::connect(r.listener.local_addr()).unwrap();
    slow.write_all(b"POST /trigger HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200)); // a worker is reading it
    let started = Instant::now();
    r.listener.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        r.recorder
            .store()
            .windows(&WindowFilter::default())
            .unwrap()
            .is_empty()
    );
}

/// The ids of one `GET /windows` answer.
fn ids_of(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listed}"))
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn listings_page_every_window_exactly_once_and_carry_points_only_when_asked() {
    let r = rig();
    r.ticks(2);
    // 14 windows, pairs of them starting at the same time (the cursor must
    // tell them apart).
    for _ in 0..7 {
        let a = r
            .recorder
            .start_recording("web-1", Trigger::manual())
            .unwrap();
        let b = r
            .recorder
            .start_recording("db:9100", Trigger::manual())
            .unwrap();
        r.ticks(2);
        r.recorder.stop_recording(&a).unwrap();
        r.recorder.stop_recording(&b).unwrap();
        r.ticks(1);
    }
    let all: Vec<String> = r
        .recorder
        .store()
        .windows(&WindowFilter::default())
        .unwrap()
        .into_iter()
        .map(|w| w.id.to_string())
        .collect();
    assert_eq!(all.len(), 14);
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/windows?limit=4&before={id}"),
            None => "/windows?limit=4".to_owned(),
        };
        let (status, listed) = r.request("GET", &path, None, None);
        assert_eq!(status, 200, "{listed}");
        let page = ids_of(&listed);
        assert!(page.len() <= 4);
        for w in listed.as_array().unwrap() {
            assert!(
                w["data_points"].as_array().is_none_or(|p| p.is_empty()),
                "points only when asked"
            );
            assert!(w["summary"].is_object(), "the summary is listed");
        }
        // A window recorded meanwhile is newer: it changes no later page.
        if paged.is_empty() {
            let c = r
                .recorder
                .start_recording("web-1", Trigger::manual())
                .unwrap();
            r.ticks(1);
            r.recorder.stop_recording(&c).unwrap();
        }
        let Some(last) = page.last().cloned() else {
            break;
        };
        paged.extend(page);
        before = Some(last);
    }
    assert_eq!(paged, all, "every window once, in the listing's order");

    // Points when asked, and the filters still apply.
    let (_, with) = r.request(
        "GET",
        "/windows?resource=web-1&limit=2&points=true",
        None,
        None,
    );
    for w in with.as_array().unwrap() {
        assert_eq!(w["resource_id"], "web-1");
        assert!(!w["data_points"].as_array().unwrap().is_empty(), "{w}");
    }
    // An unknown cursor, and pages beyond the bound, are refused clearly.
    let (status, answer) = r.request("GET", "/windows?before=iw-gone", None, None);
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("start again"));
    for limit in ["0", "1001"] {
        let (status, answer) = r.request("GET", &format!("/windows?limit={limit}"), None, None);
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("before="),
            "{answer}"
        );
    }
    let (status, _) = r.request("GET", "/windows?points=maybe", None, None);
    assert_eq!(status, 400);
    // The listing is streamed (chunked), not sent with a length built whole.
    let answer = raw(
        &r,
        b"GET /windows?limit=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
}

#[test]
fn connections_over_the_limit_are_answered_503_and_counted() {
    let r = rig_with(|c| c.max_connections = 2);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(r.listener.local_addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // both accepted
    for _ in 0..20 {
        let mut s = TcpStream::connect(r.listener.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("Retry-After: 1"), "{out}");
    }
    drop(held);
    let refused = wait_metric(&r, "incident_recorder_listener_refused_connections_total");
    // The 20, and maybe a first /metrics before the held ones were seen closed.
    assert!((20.0..25.0).contains(&refused), "{refused}");
}

/// A metric of `/metrics`, once a connection is free to ask.
fn wait_metric(r: &Rig, name: &str) -> f64 {
    let started = Instant::now();
    loop {
        let (status, text) = r.request("GET", "/metrics", None, None);
        if status == 200 {
            let parsed = parse_text(text.as_str().unwrap()).unwrap();
            return parsed.samples().find(|s| s.name == name).unwrap().value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{status}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that asks for a big answer and never reads it holds neither a
/// handler nor the webhook for long: its writes stall and time out, and
/// POSTs never wait behind GETs anyway.
#[test]
fn clients_that_stop_reading_do_not_hold_the_webhook() {
    let clock = ManualClock::new(t(0));
    let recorder =
        Arc::new(IncidentRecorder::open_with_clock(config(), Arc::new(clock.clone())).unwrap());
    // 1,000 series: a window of 10 points is ~0.3 MB of JSON, 8 are more
    // than the sockets buffer.
    recorder.set_metrics_provider(common::Scripted::new(&["web-1", "db:9100"], |id, n| {
        let mut m = incident_recorder::Metrics::new();
        for i in 0..if id == "web-1" { 1000 } else { 2 } {
            m = m.with(format!("series_{i}"), (n * i) as f64 + 0.123_456_789);
        }
        Ok(m)
    }));
    let mut c = ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated);
    c.read_timeout = Duration::from_millis(500);
    c.handlers = 1;
    let r = Rig {
        listener: Listener::start(Arc::clone(&recorder), c).unwrap(),
        recorder,
        clock,
    };
    r.ticks(2);
    for _ in 0..8 {
        let id = r
            .recorder
            .start_recording("web-1", Trigger::manual())
            .unwrap();
        r.ticks(10);
        r.recorder.stop_recording(&id).unwrap();
    }
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(r.listener.local_addr()).unwrap();
            s.write_all(b"GET /windows?limit=1000&points=true HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // the answers are stuck
    let started = Instant::now();
    let n = notification("firing", "A", "db:9100", r.clock_now(), None);
    let (status, answer) = r.post("/alertmanager", &n);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(result(&answer, 0).0, "opened", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The only GET handler is free again once the stalled answers time out
    // (their reading and serializing counts too), long before a request
    // would give up waiting for it (request_timeout, 30 s).
    let started = Instant::now();
    assert_eq!(r.request("GET", "/windows", None, None).0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// An embedder whose own code is async (tokio) can stop the listener from
/// a task: blocking on the listener's runtime there would panic.
#[test]
fn a_listener_stops_inside_an_embedders_async_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let r = rig();
        assert_eq!(r.request("GET", "/healthz", None, None).0, 200);
        let Rig { listener, .. } = r;
        listener.stop();
    });
}
