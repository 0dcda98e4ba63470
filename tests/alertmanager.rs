//! The whole loop with the real programs: node_exporter scraped by
//! `incident-recorder watch --scrape ... --listen ...`, an alert posted to a
//! real Alertmanager (`POST /api/v2/alerts`), Alertmanager's webhook
//! delivering it to the listener, and the window checked in the database:
//! opened on the node_exporter resource at `startsAt` with the buffered
//! seconds before it and node_exporter-derived points, held while the alert
//! fires (through repeated notifications, which add nothing), resolved at
//! `endsAt`, complete after the post window. Also `GET /metrics` through
//! our parser and `promtool check metrics`; and issue 18's cases: a
//! `group_wait` longer than `--post` (the window is held, with its whole
//! `--pre`), a real `sqlite3` holding the write lock while Alertmanager
//! notifies (503, and its retry lands once), and, posted straight to
//! `watch`, a resolve before its firing, a `startsAt` from 1970 and one 5
//! minutes ahead of this host's clock.
//!
//! Each program that is missing skips its test with a message (fails under
//! `CI=true`). Real processes, so waits are polls with bounded timeouts.

mod real;
mod sqlite_lock;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use incident_recorder::provider::prometheus::parse_text;
use incident_recorder::{
    IncidentWindow, Store, Timestamp, TriggerType, WindowFilter, WindowStatus,
};
use real::{Running, wait_for};
use sqlite_lock::LockHolder;

const PRE: Duration = Duration::from_secs(4);
const POST: Duration = Duration::from_secs(3);

/// `watch` recording node_exporter at `node` and listening on `listen`.
fn watch(dir: &Path, node: &str, listen: &str, extra: &[&str]) -> Running {
    let mut args: Vec<String> = [
        "--db",
        dir.join("incidents.db").to_str().unwrap(),
        "watch",
        "--scrape",
        &format!("http://{node}/metrics"),
        "--listen",
        listen,
        "--interval",
        "200ms",
        "--pre",
        "4s",
        "--post",
        "3s",
        // A rule that never fires, instead of the default ones on this host.
        "--rule",
        "load1>1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut running = Running::start(&real::our_binary(), &args, dir.join("watch.log"));
    let health = format!("http://{listen}/healthz");
    wait_for(Duration::from_secs(20), "watch to answer /healthz", || {
        running.assert_running();
        real::get(&health)
            .filter(|(s, b)| *s == 200 && b.contains("\"ok\""))
            .map(|_| ())
    });
    running
}

/// Alertmanager's timing of the first tests: quick notifications, repeats
/// every 2 s.
const QUICK: &str = "group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s";

/// Alertmanager sending every alert to `webhook` with the bearer `token`
/// (the receiver snippet of the README), with the route's `timing`
/// (`group_wait`, `group_interval`, `repeat_interval` lines).
fn alertmanager(dir: &Path, webhook: &str, token: &str, timing: &str) -> Option<(Running, String)> {
    let program = real::program(
        &["prometheus-alertmanager", "alertmanager"],
        "prometheus-alertmanager",
    )?;
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: recorder\n  group_by: ['alertname', 'instance']\n  {timing}\n\
             receivers:\n  - name: recorder\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials: '{token}'\n"
        ),
    )
    .unwrap();
    let port = real::free_port();
    let addr = format!("127.0.0.1:{port}");
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let mut running = Running::start(
        &program,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address={addr}"),
            "--cluster.listen-address=".into(),
            "--log.level=debug".into(),
        ],
        dir.join("alertmanager.log"),
    );
    let ready = format!("http://{addr}/-/ready");
    wait_for(Duration::from_secs(20), "Alertmanager to be ready", || {
        running.assert_running();
        real::get(&ready).filter(|(s, _)| *s == 200).map(|_| ())
    });
    Some((running, addr))
}

fn rfc3339(t: Timestamp) -> String {
    serde_json::to_value(t)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts one alert to Alertmanager's own API.
fn post_alert(am: &str, instance: &str, starts: Timestamp, ends: Option<Timestamp>) {
    let mut alert = serde_json::json!({
        "labels": {"alertname": "NodeHot", "instance": instance, "severity": "page"},
        "annotations": {
            "summary": "the node is hot",
            "description": "load above 8\non all cores",
            "runbook_url": "https://runbooks.example/node-hot"
        },
        "startsAt": rfc3339(starts),
    });
    if let Some(e) = ends {
        alert["endsAt"] = rfc3339(e).into();
    }
    let body = serde_json::to_string(&[alert]).unwrap();
    let mut r = real::agent()
        .post(&format!("http://{am}/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        status,
        200,
        "{}",
        r.body_mut().read_to_string().unwrap_or_default()
    );
}

/// Webhook notifications Alertmanager has sent (its own counter).
fn notifications(am: &str) -> f64 {
    am_counter(am, "alertmanager_notifications_total")
}

/// Alertmanager's counter `name` for its webhook integration.
fn am_counter(am: &str, name: &str) -> f64 {
    let (_, text) = real::get(&format!("http://{am}/metrics")).unwrap();
    let parsed = parse_text(&text).unwrap();
    parsed
        .samples()
        .filter(|s| s.name == name && s.label("integration") == Some("webhook"))
        .map(|s| s.value)
        .sum()
}

fn windows_of(db: &Path, resource: &str) -> Vec<IncidentWindow> {
    let store = match Store::open_read_only(db) {
        Ok(s) => s,
        Err(_) => return Vec::new(), // not created yet
    };
    store
        .windows(&WindowFilter {
            resource: Some(resource.to_owned()),
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap_or_default()
}

/// Rows in `window_triggers` for the window, counted with sqlite3 the way
/// an operator would (when installed), else through the store.
fn trigger_rows(db: &Path, w: &IncidentWindow) -> usize {
    if let Ok(out) = Command::new("sqlite3")
        .arg(db)
        .arg(format!(
            "SELECT count(*) FROM window_triggers t JOIN windows w ON w.id = t.window_id WHERE w.public_id = '{}'",
            w.id
        ))
        .output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    }
    w.triggers.len()
}

#[test]
fn an_alertmanager_alert_records_the_node_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let token = "a-long-random-token-0123456789";
    let Some((_am, am)) = alertmanager(
        dir.path(),
        &format!("http://{listen}/alertmanager"),
        token,
        QUICK,
    ) else {
        return;
    };
    let mut watch = watch(dir.path(), &node, &listen, &["--listen-token", token]);
    // Let the pre-incident buffer fill for a while.
    std::thread::sleep(Duration::from_millis(2500));
    let db = dir.path().join("incidents.db");

    let starts = Timestamp::now();
    post_alert(&am, &node, starts, None);
    let w = wait_for(Duration::from_secs(15), "the alert's window", || {
        watch.assert_running();
        windows_of(&db, &node).into_iter().next()
    });
    let first_sent = notifications(&am);
    // The trigger: an alert named alertname/fingerprint, with Alertmanager's fingerprint.
    let (_, listed) = real::get(&format!("http://{am}/api/v2/alerts")).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let fingerprint = listed[0]["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(w.trigger_type, TriggerType::Alert);
    assert_eq!(
        w.trigger_id.as_deref(),
        Some(format!("NodeHot/{fingerprint}").as_str())
    );
    assert_eq!(w.triggers[0].fired_at, starts, "fired at startsAt");
    // The buffered seconds before startsAt, from node_exporter.
    let before: Vec<_> = w
        .data_points
        .iter()
        .filter(|p| p.timestamp < starts)
        .collect();
    assert!(
        before.len() >= 5,
        "{} buffered points before the alert",
        before.len()
    );
    assert!(w.start_time >= starts.saturating_sub(PRE) && w.start_time < starts);
    for metric in ["memory", "load1", "disk", "node_load1"] {
        assert!(
            before.iter().all(|p| p.metrics.contains_key(metric)),
            "{metric} in every buffered point"
        );
    }
    assert!(
        before.iter().any(|p| p.metrics.contains_key("cpu")),
        "cpu from the second scrape on"
    );

    // Firing past the post window, through repeated notifications: held,
    // still one window and one trigger.
    wait_for(
        Duration::from_secs(20),
        "two repeated notifications",
        || (notifications(&am) >= first_sent + 2.0).then_some(()),
    );
    let wait_post =
        (starts.as_unix_ms() + POST.as_millis() as i64 + 1000) - Timestamp::now().as_unix_ms();
    if wait_post > 0 {
        std::thread::sleep(Duration::from_millis(wait_post as u64));
    }
    let held = windows_of(&db, &node);
    assert_eq!(held.len(), 1, "repeats open no window");
    assert_eq!(
        held[0].status,
        WindowStatus::Recording,
        "held while the alert fires"
    );
    assert_eq!(trigger_rows(&db, &held[0]), 1, "repeats add no trigger row");
    assert!(held[0].triggers[0].resolved_at.is_none());

    // Resolved: at endsAt, then the post window, then complete.
    let ends = Timestamp::now();
    post_alert(&am, &node, starts, Some(ends));
    let done = wait_for(Duration::from_secs(20), "the window to complete", || {
        watch.assert_running();
        windows_of(&db, &node)
            .into_iter()
            .find(|w| w.status != WindowStatus::Recording)
    });
    assert_eq!(done.status, WindowStatus::Complete);
    assert_eq!(
        done.triggers[0].resolved_at,
        Some(ends),
        "resolved at endsAt"
    );
    assert_eq!(
        done.end_time,
        Some(ends.saturating_add(POST)),
        "complete after the post window"
    );
    let after = done
        .data_points
        .iter()
        .filter(|p| p.timestamp > ends)
        .count();
    assert!(after >= 5, "{after} points recorded after the resolve");
    // The alert's own words reach the trigger, `show` and `context`.
    let t = &done.triggers[0];
    assert_eq!(t.labels["severity"], "page");
    assert_eq!(t.labels["alertname"], "NodeHot");
    assert_eq!(t.annotations["summary"], "the node is hot");
    assert_eq!(t.annotations["description"], "load above 8\non all cores");
    assert_eq!(t.ends_at, Some(ends), "the resolve's endsAt");
    let read = |cmd: &str| {
        let o = Command::new(real::our_binary())
            .args(["--db", db.to_str().unwrap(), cmd, done.id.as_str()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let shown = read("show");
    assert!(
        shown.contains("\n          summary: the node is hot\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\n          description: load above 8 ⏎ on all cores\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\n          runbook_url: https://runbooks.example/node-hot\n"),
        "{shown}"
    );
    assert!(shown.contains("severity=page"), "{shown}");
    let context = read("context");
    assert!(
        context.contains("### What the trigger said\n- summary: the node is hot\n"),
        "{context}"
    );
    assert!(
        context.contains("- runbook_url: https://runbooks.example/node-hot\n"),
        "{context}"
    );
    let summary = done.summary.as_ref().unwrap();
    for metric in ["cpu", "memory", "load1", "net_rx_bytes_per_s"] {
        assert!(
            summary.peaks.contains_key(metric),
            "{metric} in the summary"
        );
    }
    // Alertmanager keeps the resolved alert and may notify about it again:
    // still one window, one trigger.
    std::thread::sleep(Duration::from_secs(3));
    let last = windows_of(&db, &node);
    assert_eq!(last.len(), 1);
    assert_eq!(trigger_rows(&db, &last[0]), 1);
    // The recorder's log names the alert.
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap();
    assert!(
        log.contains(&format!("alert NodeHot/{fingerprint}")),
        "{log}"
    );
}

#[test]
fn the_listeners_metrics_parse_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let _watch = watch(dir.path(), &node, &listen, &["--listen-no-auth"]);
    let started = Instant::now();
    let (status, text) = wait_for(Duration::from_secs(10), "a few ticks", || {
        let (s, t) = real::get(&format!("http://{listen}/metrics"))?;
        (started.elapsed() > Duration::from_secs(1)).then_some((s, t))
    });
    assert_eq!(status, 200);
    let parsed = parse_text(&text).unwrap();
    let value = |name: &str| parsed.samples().find(|s| s.name == name).map(|s| s.value);
    assert!(value("incident_recorder_ticks_total").unwrap() >= 3.0);
    assert!(value("incident_recorder_tick_seconds_sum").unwrap() > 0.0);
    assert_eq!(value("incident_recorder_windows_recording"), Some(0.0));
    assert_eq!(
        value("incident_recorder_resources"),
        Some(2.0),
        "this host and the node"
    );
    assert_eq!(value("incident_recorder_failed_commits_total"), Some(0.0));
    let Some(promtool) = real::program(&["promtool"], "prometheus") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 18, defect 1: Alertmanager notifies `group_wait` after `startsAt`.
/// With a `group_wait` (6 s) longer than `--post` (3 s), the window used to
/// be closed at once as complete while the alert still fired. Now it opens
/// at `startsAt` with the whole `--pre` before it (buffers keep `--pre` +
/// `--alert-allowance`), is held while the alert fires, and completes
/// `--post` after `endsAt`.
#[test]
fn a_notification_later_than_post_holds_the_window_while_the_alert_fires() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let token = "a-long-random-token-0123456789";
    let Some((_am, am)) = alertmanager(
        dir.path(),
        &format!("http://{listen}/alertmanager"),
        token,
        "group_wait: 6s\n  group_interval: 1s\n  repeat_interval: 1h",
    ) else {
        return;
    };
    let mut watch = watch(dir.path(), &node, &listen, &["--listen-token", token]);
    std::thread::sleep(Duration::from_secs(5)); // more than --pre buffered
    let db = dir.path().join("incidents.db");

    let starts = Timestamp::now();
    post_alert(&am, &node, starts, None);
    let w = wait_for(Duration::from_secs(30), "the alert's window", || {
        watch.assert_running();
        windows_of(&db, &node).into_iter().next()
    });
    let waited = Timestamp::now().as_unix_ms() - starts.as_unix_ms();
    assert!(
        waited >= 6_000,
        "notified after group_wait, past --post: {waited} ms"
    );
    assert_eq!(
        w.status,
        WindowStatus::Recording,
        "held while the alert fires"
    );
    assert_eq!(w.triggers[0].fired_at, starts, "fired at startsAt");
    assert!(
        w.start_time
            <= starts
                .saturating_sub(PRE)
                .saturating_add(Duration::from_millis(400)),
        "the whole --pre before startsAt: starts {}, window from {}",
        starts,
        w.start_time
    );
    // Still recording, and taking points, after startsAt + --post + a margin.
    std::thread::sleep(Duration::from_secs(3));
    let held = windows_of(&db, &node);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].status, WindowStatus::Recording);
    let newest = held[0].data_points.last().unwrap().timestamp;
    assert!(
        newest > starts.saturating_add(Duration::from_secs(9)),
        "{newest}"
    );

    // Resolved: --post after endsAt, then complete.
    let ends = Timestamp::now();
    post_alert(&am, &node, starts, Some(ends));
    let done = wait_for(Duration::from_secs(30), "the window to complete", || {
        watch.assert_running();
        windows_of(&db, &node)
            .into_iter()
            .find(|w| w.status != WindowStatus::Recording)
    });
    assert_eq!(done.status, WindowStatus::Complete);
    assert_eq!(done.triggers[0].resolved_at, Some(ends));
    assert_eq!(done.end_time, Some(ends.saturating_add(POST)));
    assert_eq!(windows_of(&db, &node).len(), 1);
}

/// Issue 18, defect 2: while another program (a real `sqlite3` in
/// `BEGIN IMMEDIATE`) holds the write lock, the webhook was answered 200
/// with `"error"` per alert, and Alertmanager never sent it again. Now it
/// is answered 503, Alertmanager retries, and its retry lands once the lock
/// is let go. `group_interval` and `repeat_interval` are long, so only a
/// retry can deliver it.
#[test]
fn alertmanager_retries_an_alert_the_locked_database_could_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let token = "a-long-random-token-0123456789";
    let Some((_am, am)) = alertmanager(
        dir.path(),
        &format!("http://{listen}/alertmanager"),
        token,
        "group_wait: 1s\n  group_interval: 10m\n  repeat_interval: 1h",
    ) else {
        return;
    };
    let mut watch = watch(dir.path(), &node, &listen, &["--listen-token", token]);
    std::thread::sleep(Duration::from_secs(2));
    let db = dir.path().join("incidents.db");

    let Some(lock) = LockHolder::hold(&db) else {
        return;
    };
    let starts = Timestamp::now();
    post_alert(&am, &node, starts, None);
    wait_for(
        Duration::from_secs(20),
        "Alertmanager to see the webhook fail",
        || {
            (am_counter(&am, "alertmanager_notification_requests_failed_total") >= 1.0)
                .then_some(())
        },
    );
    assert!(windows_of(&db, &node).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    lock.release();
    let w = wait_for(
        Duration::from_secs(30),
        "the retried alert's window",
        || {
            watch.assert_running();
            windows_of(&db, &node).into_iter().next()
        },
    );
    assert_eq!(w.triggers[0].fired_at, starts);
    assert_eq!(w.status, WindowStatus::Recording);
    std::thread::sleep(Duration::from_secs(2));
    let windows = windows_of(&db, &node);
    assert_eq!(windows.len(), 1);
    assert_eq!(trigger_rows(&db, &windows[0]), 1, "the retry landed once");
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap();
    assert!(log.contains("answered 503"), "{log}");
}

/// POSTs a webhook body to the listener (no token): (status, answer).
fn post_webhook(listen: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut r = real::agent()
        .post(&format!("http://{listen}/alertmanager"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// One alert `name` on `instance`, as Alertmanager's webhook sends it.
fn one_alert(
    status: &str,
    name: &str,
    instance: &str,
    starts: &str,
    ends: &str,
) -> serde_json::Value {
    serde_json::json!({
        "version": "4", "status": status, "receiver": "recorder", "groupKey": "{}",
        "alerts": [{
            "status": status,
            "labels": {"alertname": name, "instance": instance},
            "startsAt": starts, "endsAt": ends,
        }],
    })
}

/// Issue 18, defects 8, 9 and the absurd dates of 1, through `watch`: a
/// resolve before its firing, a `startsAt` 5 minutes ahead of this host's
/// clock, and one from 1970, posted as Alertmanager's webhook would.
#[test]
fn out_of_order_skewed_and_absurd_alerts_through_watch() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let mut watch = watch(dir.path(), &node, &listen, &["--listen-no-auth"]);
    std::thread::sleep(Duration::from_secs(2));
    let db = dir.path().join("incidents.db");
    let zero = "0001-01-01T00:00:00Z";

    // The resolve first, then its firing: opens and completes.
    let starts = Timestamp::now().saturating_sub(Duration::from_secs(1));
    let ends = Timestamp::now();
    let (status, early) = post_webhook(
        &listen,
        &one_alert("resolved", "Early", &node, &rfc3339(starts), &rfc3339(ends)),
    );
    assert_eq!(status, 200, "{early}");
    assert_eq!(early["alerts"][0]["result"], "not_open", "{early}");
    let (_, late) = post_webhook(
        &listen,
        &one_alert("firing", "Early", &node, &rfc3339(starts), zero),
    );
    assert_eq!(late["alerts"][0]["result"], "opened", "{late}");
    assert_eq!(late["alerts"][0]["resolved_at"], rfc3339(ends));
    let done = wait_for(Duration::from_secs(20), "the window to complete", || {
        watch.assert_running();
        windows_of(&db, &node)
            .into_iter()
            .find(|w| w.status != WindowStatus::Recording)
    });
    assert_eq!(
        done.status,
        WindowStatus::Complete,
        "not held to --max-points"
    );
    assert_eq!(done.end_time, Some(ends.saturating_add(POST)));

    // From 1970: a window of what the buffer holds, marked as such.
    let (_, old) = post_webhook(
        &listen,
        &one_alert("firing", "Old", &node, "1970-01-01T00:00:00Z", zero),
    );
    let a = &old["alerts"][0];
    assert_eq!(a["result"], "opened", "{old}");
    assert_eq!(a["adjusted"]["reason"], "older_than_buffer");
    let id = a["window"].as_str().unwrap().to_owned();
    let (_, resolved) = post_webhook(
        &listen,
        &one_alert(
            "resolved",
            "Old",
            &node,
            "1970-01-01T00:00:00Z",
            &rfc3339(Timestamp::now()),
        ),
    );
    assert_eq!(resolved["alerts"][0]["result"], "resolved", "{resolved}");
    let old_window = wait_for(Duration::from_secs(20), "the 1970 alert's window", || {
        windows_of(&db, &node)
            .into_iter()
            .find(|w| w.id.as_str() == id && w.status != WindowStatus::Recording)
    });
    assert_eq!(old_window.status, WindowStatus::Complete);
    assert!(
        old_window.data_points.len() >= 10,
        "{}",
        old_window.data_points.len()
    );

    // 5 minutes ahead: taken now, the skew in the answer, the trigger and the log.
    let now = Timestamp::now();
    let ahead = now.saturating_add(Duration::from_secs(300));
    let (_, skewed) = post_webhook(
        &listen,
        &one_alert("firing", "Skewed", &node, &rfc3339(ahead), zero),
    );
    let a = &skewed["alerts"][0];
    assert_eq!(a["result"], "opened", "{skewed}");
    assert_eq!(a["adjusted"]["reason"], "clock_ahead");
    let skew = a["adjusted"]["by_ms"].as_i64().unwrap();
    assert!((295_000..=300_000).contains(&skew), "{skew}");
    let id = a["window"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(1));
    let w = windows_of(&db, &node)
        .into_iter()
        .find(|w| w.id.as_str() == id)
        .unwrap();
    assert!(w.trigger_time.unwrap() <= Timestamp::now());
    assert_eq!(w.triggers[0].fired_at, ahead, "the trigger keeps startsAt");
    assert!(
        w.data_points.iter().any(|p| p.timestamp > now),
        "recording now, not from startsAt on"
    );
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap();
    assert!(log.contains("ahead of this host's clock"), "{log}");
}

/// An alert's words are bounded and checked without losing the alert: a
/// description over 4 KB is cut with the marker, annotations with an escape
/// sequence are not kept (the answer says so) while the window opens, and
/// `GET /windows/ID` carries the words and the change scores.
#[test]
fn alert_words_are_bounded_checked_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_node, node)) = real::node_exporter(dir.path()) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", real::free_port());
    let mut watch = watch(dir.path(), &node, &listen, &["--listen-no-auth"]);
    std::thread::sleep(Duration::from_secs(2));
    let db = dir.path().join("incidents.db");
    let starts = rfc3339(Timestamp::now());
    let zero = "0001-01-01T00:00:00Z";

    let mut long = one_alert("firing", "Long", &node, &starts, zero);
    long["alerts"][0]["annotations"] =
        serde_json::json!({"description": "x".repeat(10_000), "summary": "long"});
    long["alerts"][0]["generatorURL"] = "http://prometheus:9090/graph?g0.expr=up".into();
    let (status, answer) = post_webhook(&listen, &long);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["alerts"][0]["result"], "opened", "{answer}");

    let mut bad = one_alert("firing", "Escape", &node, &starts, zero);
    bad["alerts"][0]["annotations"] = serde_json::json!({"summary": "red \u{1b}[31m"});
    let (status, answer) = post_webhook(&listen, &bad);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["alerts"][0]["result"], "extended", "{answer}");
    let note = answer["alerts"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("annotations not kept") && note.contains("control character"),
        "{note}"
    );

    let w = wait_for(Duration::from_secs(10), "the window", || {
        watch.assert_running();
        windows_of(&db, &node).into_iter().next()
    });
    let (_, served) = real::get(&format!("http://{listen}/windows/{}", w.id)).unwrap();
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let triggers = served["triggers"].as_array().unwrap();
    let long = &triggers[0]["annotations"];
    let description = long["description"].as_str().unwrap();
    assert!(description.len() <= 4096, "{}", description.len());
    assert!(description.ends_with("…[cut]"));
    assert_eq!(
        long["generatorURL"],
        "http://prometheus:9090/graph?g0.expr=up"
    );
    assert_eq!(triggers[0]["labels"]["alertname"], "Long");
    assert!(triggers[1].get("annotations").is_none(), "{served}");
    assert_eq!(triggers[1]["labels"]["alertname"], "Escape");
    // The window records: its scores are computed on read.
    let scores = served["summary"]["change_scores"].as_object().unwrap();
    assert!(scores.len() > 10, "{served}");
    assert!(scores.values().any(|c| c["rank"] == 1));
}
