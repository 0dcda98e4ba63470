//! The HTTP listener (`incident_recorder::listen`) on a recorder with a
//! scripted provider and a manual clock: Alertmanager's webhook payloads
//! (firing, repeats, resolves, per-alert problems), `/trigger`, `/windows`
//! and `/metrics` against the library's own answers, tokens. The bounds
//! (sizes, slow clients, paging, streaming) are in `listen_bounds.rs`.

mod common;
mod listen_rig;

use std::sync::Arc;
use std::time::Duration;

use common::{Scripted, secs, t};
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::provider::prometheus::parse_text;
use incident_recorder::{
    IncidentRecorder, ManualClock, RecorderConfig, Timestamp, Trigger, WindowFilter, WindowStatus,
};
use listen_rig::{Rig, config, notification, raw, result, rfc3339, rig, rig_with};
use serde_json::{Value, json};

#[test]
fn firing_opens_at_starts_at_repeats_change_nothing_and_resolved_acts_at_ends_at() {
    let r = rig();
    r.ticks(8); // t(0)..t(35) buffered; the clock is at t(40)
    // The webhook arrives after Alertmanager's group_wait: the alert started
    // 10 s before the recorder's now, and the window opens there.
    let starts = t(30);
    let firing = notification("firing", "HighCPU", "db:9100", starts, None);
    let (status, answer) = r.post("/alertmanager", &firing);
    assert_eq!(status, 200, "{answer}");
    let (what, window) = result(&answer, 0);
    assert_eq!(what, "opened");
    let id = window.unwrap().to_owned();
    assert_eq!(
        answer["alerts"][0]["trigger_id"],
        "HighCPU/0000000000007777"
    );
    assert_eq!(answer["alerts"][0]["resource"], "db:9100");
    let w = r.recorder.store().window(&id).unwrap().unwrap();
    assert_eq!(w.triggers[0].fired_at, starts, "fired at startsAt");
    assert_eq!(w.deadline, Some(starts.saturating_add(secs(60))));
    // The samples within --pre (30 s) before startsAt, t(5)..t(25), and the
    // ones taken between startsAt and the webhook's arrival, t(30), t(35).
    let times: Vec<Timestamp> = w.data_points.iter().map(|p| p.timestamp).collect();
    assert_eq!(times, [t(5), t(10), t(15), t(20), t(25), t(30), t(35)]);
    assert_eq!(w.start_time, t(5));

    // Alertmanager repeats the notification: nothing changes.
    r.ticks(2);
    let (_, again) = r.post("/alertmanager", &firing);
    assert_eq!(result(&again, 0), ("unchanged", Some(id.as_str())));
    let w = r.recorder.store().window(&id).unwrap().unwrap();
    assert_eq!(w.triggers.len(), 1, "a repeat adds no trigger");

    // Another alert on the same resource extends the window.
    let other = notification("firing", "DiskFull", "db:9100", r.clock_now(), None);
    let (_, answer) = r.post("/alertmanager", &other);
    assert_eq!(result(&answer, 0), ("extended", Some(id.as_str())));

    // Held past the post window while both fire.
    r.ticks(20); // to t(150)
    let w = r.recorder.store().window(&id).unwrap().unwrap();
    assert_eq!(w.status, WindowStatus::Recording);

    // Both resolved at a time before the recorder's now.
    let ends = t(140);
    let resolved = notification("resolved", "HighCPU", "db:9100", starts, Some(ends));
    assert_eq!(
        result(&r.post("/alertmanager", &resolved).1, 0).0,
        "resolved"
    );
    let resolved_disk = notification("resolved", "DiskFull", "db:9100", starts, Some(ends));
    assert_eq!(
        result(&r.post("/alertmanager", &resolved_disk).1, 0).0,
        "resolved"
    );
    // A repeated resolve does nothing.
    assert_eq!(
        result(&r.post("/alertmanager", &resolved).1, 0).0,
        "not_open"
    );
    let w = r.recorder.store().window(&id).unwrap().unwrap();
    let high = w
        .triggers
        .iter()
        .find(|t| t.trigger_id.as_deref() == Some("HighCPU/0000000000007777"))
        .unwrap();
    assert_eq!(high.resolved_at, Some(ends), "resolved at endsAt");
    assert_eq!(
        w.deadline,
        Some(ends.saturating_add(secs(60))),
        "post window after the last resolve"
    );

    r.ticks(14); // 70 s on: past the deadline
    // Through the recorder: its reads wait for the closes it decided.
    let w = r
        .recorder
        .window(&incident_recorder::WindowId::from(id.as_str()))
        .unwrap()
        .unwrap();
    assert_eq!(w.status, WindowStatus::Complete);
    assert_eq!(w.end_time, Some(ends.saturating_add(secs(60))));
    let windows = r
        .recorder
        .store()
        .windows(&WindowFilter::default())
        .unwrap();
    assert_eq!(windows.len(), 1, "one window for the whole incident");
    // A late repeat of the firing notification still adds nothing.
    let (_, late) = r.post("/alertmanager", &firing);
    assert_eq!(result(&late, 0).0, "unchanged");
    assert_eq!(
        r.recorder
            .store()
            .windows(&WindowFilter::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_repeat_after_a_listener_restart_changes_nothing() {
    let r = rig();
    r.ticks(3);
    let firing = notification("firing", "A", "web-1", t(10), None);
    assert_eq!(result(&r.post("/alertmanager", &firing).1, 0).0, "opened");
    // A new listener (as after `watch` restarts) on the same recorder.
    let Rig {
        recorder,
        clock,
        listener,
    } = r;
    listener.stop();
    let listener = Listener::start(
        Arc::clone(&recorder),
        ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated),
    )
    .unwrap();
    let r = Rig {
        recorder,
        clock,
        listener,
    };
    let (_, again) = r.post("/alertmanager", &firing);
    assert_eq!(result(&again, 0).0, "unchanged");
    let w = r
        .recorder
        .store()
        .windows(&WindowFilter::default())
        .unwrap();
    assert_eq!((w.len(), w[0].triggers.len()), (1, 1));
}

#[test]
fn an_alert_for_a_resource_nobody_records_is_answered_and_opens_nothing() {
    let r = rig();
    r.ticks(2);
    let n = notification("firing", "HighCPU", "elsewhere:9100", r.clock_now(), None);
    let (status, answer) = r.post("/alertmanager", &n);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(result(&answer, 0), ("unknown_resource", None));
    let error = answer["alerts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("not monitored") && error.contains("db:9100"),
        "{error}"
    );
    let (status, answer) = r.post("/trigger", &json!({"resource": "elsewhere:9100"}));
    assert_eq!(status, 404, "{answer}");
    assert!(
        r.recorder
            .store()
            .windows(&WindowFilter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn problems_are_answered_per_alert_and_the_rest_applied() {
    let r = rig();
    r.ticks(2);
    let now = rfc3339(r.clock_now());
    let body = json!({
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "NoInstance"}, "startsAt": now},
            {"status": "firing", "labels": {"alertname": "BadTime", "instance": "web-1"}, "startsAt": "yesterday"},
            {"status": "weird", "labels": {"alertname": "X", "instance": "web-1"}, "startsAt": now},
            {"status": "firing", "labels": {"alertname": "Good", "instance": "web-1"}, "startsAt": now},
            {"status": "firing", "labels": {"alertname": "Bad\u{1}Name", "instance": "web-1"}, "startsAt": now},
        ]
    });
    let (status, answer) = r.post("/alertmanager", &body);
    assert_eq!(status, 200, "{answer}");
    let results: Vec<&str> = (0..5).map(|i| result(&answer, i).0).collect();
    assert_eq!(
        results,
        ["unknown_resource", "error", "error", "opened", "error"]
    );
    assert!(
        answer["alerts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no label \"instance\"")
    );
    assert!(
        answer["alerts"][1]["error"]
            .as_str()
            .unwrap()
            .contains("startsAt")
    );
    // Without a fingerprint, the alert gets Alertmanager's own.
    let id = answer["alerts"][3]["trigger_id"].as_str().unwrap();
    assert!(
        id.starts_with("Good/") && id.len() == "Good/".len() + 16,
        "{id}"
    );
    // The recorder goes on.
    r.ticks(1);
    assert!(r.recorder.stats().ticks >= 3);
}

#[test]
fn another_resource_label_can_name_the_resource() {
    let r = rig_with(|c| c.alert_resource_label = "host".into());
    r.ticks(2);
    let mut n = notification("firing", "A", "ignored:1", r.clock_now(), None);
    n["alerts"][0]["labels"]["host"] = "web-1".into();
    let (_, answer) = r.post("/alertmanager", &n);
    assert_eq!(result(&answer, 0).0, "opened", "{answer}");
    assert_eq!(answer["alerts"][0]["resource"], "web-1");
}

#[test]
fn trigger_and_windows_answer_what_the_cli_prints() {
    let r = rig();
    r.ticks(3);
    let (status, answer) = r.post("/trigger", &json!({"resource": "web-1", "type": "focus"}));
    assert_eq!(status, 200, "{answer}");
    let id = answer["window"].as_str().unwrap().to_owned();
    r.ticks(2);
    let store = r.recorder.store();
    // GET /windows is `list --json`: the listing without points, most recent first.
    let (status, listed) = r.request("GET", "/windows", None, None);
    assert_eq!(status, 200);
    let expected = store
        .windows(&WindowFilter {
            limit: 50,
            ..WindowFilter::default()
        })
        .unwrap();
    assert_eq!(listed, serde_json::to_value(&expected).unwrap());
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["trigger_type"], "focus");
    // Filters as `list` has them.
    let (_, none) = r.request(
        "GET",
        "/windows?resource=db%3A9100&status=recording",
        None,
        None,
    );
    assert_eq!(none, json!([]));
    let (_, some) = r.request("GET", "/windows?resource=web-1&limit=1", None, None);
    assert_eq!(some.as_array().unwrap().len(), 1);
    // GET /windows/{id} is `show --json`: the window with its points.
    let (status, shown) = r.request("GET", &format!("/windows/{id}"), None, None);
    assert_eq!(status, 200);
    assert_eq!(
        shown,
        serde_json::to_value(store.window(&id).unwrap().unwrap()).unwrap()
    );
    assert!(!shown["data_points"].as_array().unwrap().is_empty());
}

#[test]
fn metrics_are_the_recorders_own_and_parse() {
    let r = rig();
    r.ticks(4);
    r.post("/trigger", &json!({"resource": "web-1"}));
    r.ticks(2);
    let (status, text) = r.request("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    let parsed = parse_text(&text).unwrap();
    let value = |name: &str| {
        parsed
            .samples()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .value
    };
    let stats = r.recorder.stats();
    assert_eq!(value("incident_recorder_ticks_total"), stats.ticks as f64);
    assert_eq!(
        value("incident_recorder_points_written_total"),
        stats.points_written as f64
    );
    assert_eq!(value("incident_recorder_windows_recording"), 1.0);
    assert_eq!(value("incident_recorder_resources"), 2.0);
    assert_eq!(value("incident_recorder_failed_commits_total"), 0.0);
    assert_eq!(value("incident_recorder_rejected_values_total"), 0.0);
    assert!(value("incident_recorder_tick_seconds_sum") > 0.0);
    let recording = parsed
        .samples()
        .find(|s| {
            s.name == "incident_recorder_stored_windows" && s.label("status") == Some("recording")
        })
        .unwrap();
    assert_eq!(recording.value, 1.0);
    // Every family has HELP and TYPE; counters end in _total.
    for s in parsed.samples() {
        if s.kind == incident_recorder::provider::prometheus::MetricKind::Counter {
            assert!(s.name.ends_with("_total"), "{}", s.name);
        }
    }
}

/// A database that pushes to a fleet shows its backlog: closed windows the
/// central database does not have (here unreachable, so they wait).
#[test]
fn metrics_show_the_fleet_push_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    let clock = ManualClock::new(t(0));
    let recorder = Arc::new(
        IncidentRecorder::open_with_clock(
            RecorderConfig {
                db_path: Some(db.clone()),
                ..config()
            },
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    recorder.set_metrics_provider(Scripted::counting(&["web-1", "db:9100"]));
    let r = Rig {
        listener: Listener::start(
            Arc::clone(&recorder),
            ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated),
        )
        .unwrap(),
        recorder,
        clock,
    };
    let backlog = |r: &Rig| {
        let (status, text) = r.request("GET", "/metrics", None, None);
        assert_eq!(status, 200);
        let parsed = parse_text(text.as_str().unwrap()).unwrap();
        parsed
            .samples()
            .find(|s| s.name == "incident_recorder_push_backlog_windows")
            .map(|s| s.value)
    };
    r.ticks(2);
    assert_eq!(backlog(&r), None, "no push: no push metrics");
    // Port 1 on loopback: nothing listens, the pusher backs off.
    let pusher = incident_recorder::fleet::Pusher::start(
        incident_recorder::Store::open(&db).unwrap(),
        incident_recorder::fleet::Target::new("postgresql://ir@127.0.0.1:1/fleet", Some("n1"))
            .unwrap(),
        incident_recorder::fleet::PusherOptions::default(),
    )
    .unwrap();
    assert_eq!(backlog(&r), Some(0.0));
    for _ in 0..2 {
        let id = r
            .recorder
            .start_recording("web-1", Trigger::manual())
            .unwrap();
        r.ticks(2);
        r.recorder.stop_recording(&id).unwrap();
    }
    assert_eq!(backlog(&r), Some(2.0), "two closed windows wait");
    pusher.stop();
}

#[test]
fn bad_requests_get_a_4xx_with_a_json_error() {
    let r = rig();
    for (method, path, body, status, why) in [
        (
            "POST",
            "/alertmanager",
            Some("{not json"),
            400,
            "not an Alertmanager webhook payload",
        ),
        (
            "POST",
            "/alertmanager",
            Some("{\"version\":\"3\",\"alerts\":[]}"),
            400,
            "version \"3\"",
        ),
        (
            "POST",
            "/alertmanager",
            Some("[]"),
            400,
            "not an Alertmanager",
        ),
        ("GET", "/alertmanager", None, 405, "takes POST"),
        ("PUT", "/windows", Some(""), 405, "takes GET"),
        ("GET", "/nope", None, 404, "unknown path"),
        ("GET", "/windows?colour=red", None, 400, "unknown parameter"),
        (
            "GET",
            "/windows?status=bogus",
            None,
            400,
            "unknown status \"bogus\"",
        ),
        ("GET", "/windows?limit=-1", None, 400, "not a count"),
        (
            "GET",
            "/windows?since=yesterday",
            None,
            400,
            "invalid timestamp",
        ),
        ("GET", "/windows/iw-none", None, 404, "no incident window"),
        ("GET", "/metrics?x=1", None, 400, "takes no parameters"),
        (
            "POST",
            "/trigger",
            Some("{}"),
            400,
            "missing field `resource`",
        ),
        (
            "POST",
            "/trigger",
            Some("{\"resource\":\"web-1\",\"colour\":1}"),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/trigger",
            Some("{\"resource\":\"web-1\",\"type\":\"boom\"}"),
            400,
            "\"boom\"",
        ),
        (
            "POST",
            "/trigger",
            Some("{\"resource\":\"\"}"),
            400,
            "invalid resource id",
        ),
    ] {
        let (got, answer) = r.request(method, path, body, None);
        assert_eq!(got, status, "{method} {path}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no JSON error in {answer}"));
        assert!(
            error.to_lowercase().contains(&why.to_lowercase()),
            "{method} {path}: {error}"
        );
    }
    let (_, healthz) = r.request("GET", "/healthz", None, None);
    assert_eq!(healthz["status"], "starting");
}

const TOKEN: &str = "s3cret-token-0123456789";

#[test]
fn a_token_guards_everything_but_healthz() {
    let r = rig_with(|c| c.auth = ListenAuth::Bearer(TOKEN.into()));
    assert_eq!(r.request("GET", "/windows", None, None).0, 401);
    assert_eq!(r.request("GET", "/windows", None, Some("wrong")).0, 401);
    let (status, answer) = r.request(
        "POST",
        "/trigger",
        Some("{\"resource\":\"web-1\"}"),
        Some(&format!("{TOKEN}-x")),
    );
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("bearer token"));
    assert_eq!(r.request("GET", "/windows", None, Some(TOKEN)).0, 200);
    assert_eq!(r.request("GET", "/healthz", None, None).0, 200);
    assert!(
        r.recorder
            .store()
            .windows(&WindowFilter::default())
            .unwrap()
            .is_empty(),
        "nothing opened without the token"
    );
    // The scheme is case-insensitive (RFC 9110); other schemes are not it.
    for header in [
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("Bearer   {TOKEN} "),
    ] {
        let answer = raw(
            &r,
            format!("GET /windows HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 200 "), "{header}: {answer}");
    }
    for header in [
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
        "Bearer".into(),
    ] {
        let answer = raw(
            &r,
            format!("GET /windows HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 401 "), "{header}: {answer}");
    }
}

#[test]
fn no_credential_beyond_loopback_and_no_short_token_anywhere() {
    let recorder = Arc::new(IncidentRecorder::open(config()).unwrap());
    let open = ListenConfig::new("0.0.0.0:0".parse().unwrap(), ListenAuth::Unauthenticated);
    let err = Listener::start(Arc::clone(&recorder), open.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("without a token"), "{err}");
    let guarded = ListenConfig {
        auth: ListenAuth::Bearer(TOKEN.into()),
        ..open
    };
    let l = Listener::start(Arc::clone(&recorder), guarded).unwrap();
    assert!(l.local_addr().ip().is_unspecified());
    drop(l);
    for (token, why) in [
        ("x", "16"),
        ("fifteen-bytes-x", "16"),
        ("has space in the middle", "printable ASCII"),
        ("", "16"),
    ] {
        let bad = ListenConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ListenAuth::Bearer(token.into()),
        );
        let err = Listener::start(Arc::clone(&recorder), bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{token:?}: {err}");
    }
    // The token never shows in a debug print of the configuration.
    let shown = format!(
        "{:?}",
        ListenConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ListenAuth::Bearer(TOKEN.into())
        )
    );
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn healthz_says_stalled_when_ticks_stop() {
    let recorder = Arc::new(
        IncidentRecorder::open(RecorderConfig {
            sample_interval: Duration::from_millis(100),
            provider_timeout: Duration::from_millis(200),
            ..RecorderConfig::default()
        })
        .unwrap(),
    );
    recorder.set_metrics_provider(Scripted::counting(&["web-1"]));
    let listener = Listener::start(
        Arc::clone(&recorder),
        ListenConfig::new("127.0.0.1:0".parse().unwrap(), ListenAuth::Unauthenticated),
    )
    .unwrap();
    let url = format!("http://{}/healthz", listener.local_addr());
    let get = || {
        let mut r = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .get(&url)
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (status, body["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(get(), (200, "starting".to_owned()));
    recorder.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(), (200, "ok".to_owned()));
    // Ticking: still ok a while later.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(get(), (200, "ok".to_owned()));
    // Stopped: no tick for more than 3 intervals and twice the provider timeout.
    recorder.stop().unwrap();
    let _ = get();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(get(), (503, "stalled".to_owned()));
}
