//! `watch --scrape` and `--listen` as a user runs them, against exporters
//! played by small local HTTP servers: rules checked against what the
//! targets report, a failing target logged once and not every tick, and
//! Alertmanager alerts left unresolved by a restart with the listener (only
//! Alertmanager resolves them), resolved by one without.

mod real;

use std::path::Path;
use std::process::{Command, Output};

use std::time::Duration;

use incident_recorder::{Store, WindowFilter, WindowStatus};
use real::{FakeExporter, Reply, wait_for};

fn run(bin: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn rules_must_name_a_metric_some_source_reports() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    let exporter = FakeExporter::start(|_| {
        Reply::text("# TYPE app_queue_depth gauge\napp_queue_depth{queue=\"jobs\"} 3\n")
    });
    let target = format!("app={}", exporter.url());
    let out = run(
        &bin,
        &db,
        &[
            "watch",
            "--no-host",
            "--scrape",
            &target,
            "--rule",
            "app_queue>10",
            "--for",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("no scrape target reports"), "{message}");
    assert!(
        message.contains("app_queue_depth{queue=\\\"jobs\\\"}"),
        "close names: {message}"
    );
    // The series' own name is a metric rules can use.
    let out = run(
        &bin,
        &db,
        &[
            "watch",
            "--no-host",
            "--scrape",
            &target,
            "--rule",
            "app_queue_depth{queue=\"jobs\"}>10",
            "--interval",
            "200ms",
            "--for",
            "1s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("recording 1 scrape target every 200ms"),
        "{}",
        text(&out)
    );
    // Without --rule, the default rules on metrics this exporter lacks
    // (cpu, memory, disk) are left out rather than refused.
    let out = run(
        &bin,
        &db,
        &[
            "watch",
            "--no-host",
            "--scrape",
            &target,
            "--interval",
            "200ms",
            "--for",
            "1s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(rules: none)"), "{}", text(&out));
}

#[test]
fn a_failing_target_is_logged_when_it_fails_and_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    // Fails its first 5 scrapes, then answers.
    let flaky = FakeExporter::start(|n| {
        if n < 5 {
            Reply {
                status: 503,
                ..Reply::text("warming up")
            }
        } else {
            Reply::text("up 1\n")
        }
    });
    let good = FakeExporter::start(|_| Reply::text("up 1\n"));
    let out = run(
        &bin,
        &db,
        &[
            "-v",
            "watch",
            "--no-host",
            "--scrape",
            &format!("flaky={}", flaky.url()),
            "--scrape",
            &format!("good={}", good.url()),
            "--rule",
            "up<1",
            "--interval",
            "200ms",
            "--for",
            "3s",
        ],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("scrape failed; the target's resources are skipped")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("HTTP 503"), "{log}");
    assert_eq!(
        log.matches("scrape target answers again").count(),
        1,
        "{log}"
    );
    assert!(flaky.requests.load(std::sync::atomic::Ordering::SeqCst) > 5);
}

#[test]
fn an_alertmanager_alert_stays_unresolved_across_a_restart_with_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    let exporter = FakeExporter::start(|_| Reply::text("up 1\n"));
    let target = format!("node={}", exporter.url());
    let listen = format!("127.0.0.1:{}", real::free_port());
    let args = |listening: bool, seconds: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "--db",
            db.to_str().unwrap(),
            "watch",
            "--no-host",
            "--scrape",
            &target,
        ]
        .iter()
        .chain(&[
            "--rule",
            "up<1",
            "--interval",
            "200ms",
            "--post",
            "1s",
            "--for",
            seconds,
        ])
        .map(|s| s.to_string())
        .collect();
        if listening {
            a.extend([
                "--listen".to_owned(),
                listen.clone(),
                "--listen-no-auth".into(),
            ]);
        }
        a
    };
    let watch = |listening: bool, seconds: &str| {
        let mut cmd = Command::new(&bin);
        cmd.args(args(listening, seconds));
        cmd
    };
    let mut first = real::Running::start(&bin, &args(true, "4s"), dir.path().join("first.log"));
    wait_for(Duration::from_secs(10), "the listener", || {
        first.assert_running();
        real::get(&format!("http://{listen}/healthz")).filter(|(s, _)| *s == 200)
    });
    let alert = serde_json::json!({
        "version": "4", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Down", "instance": "node"},
                    "startsAt": serde_json::to_value(incident_recorder::Timestamp::now()).unwrap()}]
    });
    let mut r = real::agent()
        .post(&format!("http://{listen}/alertmanager"))
        .send(alert.to_string().as_bytes())
        .unwrap();
    let answer = r.body_mut().read_to_string().unwrap();
    assert!(answer.contains("\"opened\""), "{answer}");
    let _ = first.child.wait();
    let recording = |db: &Path| {
        let store = Store::open_read_only(db).unwrap();
        let w = store.windows(&WindowFilter::default()).unwrap().remove(0);
        (w.status, w.triggers[0].resolved_at.is_some())
    };
    assert_eq!(
        recording(&db),
        (WindowStatus::Recording, false),
        "{}",
        first.output()
    );

    // Restarted with the listener: Alertmanager will resolve it, so it stays held.
    let out = watch(true, "2s").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        recording(&db),
        (WindowStatus::Recording, false),
        "{}",
        text(&out)
    );

    // Held past its --post (1 s) through a clean restart with the listener;
    // restarted without one, nothing could resolve it: resolved at start,
    // and the window records its --post and completes.
    let out = watch(false, "2s").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(recording(&db), (WindowStatus::Complete, true));
}

/// One `watch` with everything at once: this host sampled, a scrape target,
/// a rule, the listener and `--anomaly`. A spike in the target's gauge opens
/// an `anomaly` window on the target, a `POST /trigger` opens a `focus`
/// window on the host, and each has its own source's metrics.
#[test]
fn one_watch_combines_host_scrapes_rules_the_listener_and_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    // A steady, slightly varying gauge for 30 scrapes (6 s), then a spike.
    let exporter = FakeExporter::start(|n| {
        let v = if n < 30 { 10 + n % 3 } else { 500 };
        Reply::text(format!("# TYPE queue_depth gauge\nqueue_depth {v}\n"))
    });
    let host = incident_recorder::provider::host::HostProvider::new().unwrap();
    let host_id = host.resource_id().to_owned();
    let listen = format!("127.0.0.1:{}", real::free_port());
    let args: Vec<String> = [
        "--db",
        db.to_str().unwrap(),
        "watch",
        "--scrape",
        &format!("app={}", exporter.url()),
        "--rule",
        "cpu>1000",
        "--anomaly",
        "--listen",
        &listen,
        "--listen-no-auth",
        "--interval",
        "200ms",
        // A baseline of 25 samples (the detector needs 10 besides the
        // newest 3).
        "--pre",
        "5s",
        "--post",
        "2s",
        "--for",
        "12s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut watch = real::Running::start(&bin, &args, dir.path().join("watch.log"));
    wait_for(Duration::from_secs(10), "the listener", || {
        watch.assert_running();
        real::get(&format!("http://{listen}/healthz")).filter(|(s, _)| *s == 200)
    });
    let body = serde_json::json!({"resource": host_id, "type": "focus", "id": "look"});
    let mut r = real::agent()
        .post(&format!("http://{listen}/trigger"))
        .send(body.to_string().as_bytes())
        .unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(answer["resource"], host_id.as_str(), "{answer}");
    let focus_id = answer["window"].as_str().unwrap().to_owned();
    let status = watch.child.wait().unwrap();
    let log = watch.output();
    assert!(status.success(), "{log}");
    let store = Store::open_read_only(&db).unwrap();
    let windows = store
        .windows(&WindowFilter {
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap();
    let find = |resource: &str, kind: incident_recorder::TriggerType| {
        windows
            .iter()
            .find(|w| w.resource_id == resource && w.trigger_type == kind)
            .unwrap_or_else(|| panic!("no {kind:?} window on {resource}: {windows:#?}\n{log}"))
    };
    let anomaly = find("app", incident_recorder::TriggerType::Anomaly);
    assert!(
        anomaly
            .data_points
            .iter()
            .any(|p| p.metrics.get("queue_depth") == Some(&500.0)),
        "the spike is in the anomaly window"
    );
    let focus = find(&host_id, incident_recorder::TriggerType::Focus);
    assert_eq!(focus.id.as_str(), focus_id);
    assert_eq!(focus.trigger_id.as_deref(), Some("look"));
    // The host's own metrics (CPU needs two readings far enough apart, so
    // not every 200 ms tick has it), none of the target's.
    assert!(!focus.data_points.is_empty());
    assert!(
        focus
            .data_points
            .iter()
            .all(|p| p.metrics.contains_key("memory") && !p.metrics.contains_key("queue_depth")),
        "{focus:#?}"
    );
    assert!(
        focus
            .data_points
            .iter()
            .any(|p| p.metrics.contains_key("cpu"))
    );
}

/// Issue 18, defect 4: 30 targets that hang or drip cost only their own
/// samples. The host and a healthy target keep every sample at `--interval`
/// (the former batch scraped 8 targets at once and waited out each
/// timeout: the host was sampled every few intervals).
#[test]
fn thirty_slow_targets_cost_the_host_and_a_good_target_no_sample() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    let good = FakeExporter::start(|_| Reply::text("up 1\n"));
    let slow: Vec<real::SlowExporter> = (0..30)
        .map(|i| real::SlowExporter::start(i % 2 == 0, Duration::from_millis(200)))
        .collect();
    let mut args: Vec<String> = ["watch", "--scrape", &format!("good={}", good.url())]
        .map(String::from)
        .to_vec();
    for (i, s) in slow.iter().enumerate() {
        args.extend(["--scrape".into(), format!("slow{i}={}", s.url())]);
    }
    args.extend(
        [
            "--rule",
            "up>0",
            "--trigger-now",
            "--interval",
            "1s",
            "--pre",
            "1m",
            "--post",
            "1m",
            "--for",
            "12s",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&bin, &db, &args);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let store = Store::open_read_only(&db).unwrap();
    let windows = store
        .windows(&WindowFilter {
            with_points: true,
            ..WindowFilter::default()
        })
        .unwrap();
    let host = incident_recorder::provider::host::HostProvider::new().unwrap();
    for resource in [host.resource_id(), "good"] {
        let w = windows
            .iter()
            .find(|w| w.resource_id == resource)
            .unwrap_or_else(|| panic!("no window on {resource}: {windows:#?}\n{log}"));
        let times: Vec<i64> = w
            .data_points
            .iter()
            .map(|p| p.timestamp.as_unix_ms())
            .collect();
        let gap = times.windows(2).map(|t| t[1] - t[0]).max().unwrap_or(0);
        eprintln!("{resource}: {} samples, longest gap {gap} ms", times.len());
        // A loaded machine may make a scrape miss its tick's wait (its
        // sample then skipped): nearly every sample, never two in a row.
        assert!(
            times.len() >= 10 && gap <= 2_100,
            "{resource}: {} samples in 12 s at 1 s, longest gap {gap} ms\n{log}",
            times.len()
        );
    }
    // Each slow target is logged when it starts failing, not every tick.
    assert!(
        log.matches("scrape failed; the target's resources are skipped")
            .count()
            <= 30,
        "{log}"
    );
}

/// Issue 18, defect 18: a value past 1e300 is logged as what it is (not
/// "non-finite value or invalid metric name"), and a trigger on a scrape
/// target that has not answered yet opens its window (it is a known
/// resource, not an unmonitored one): the window records once it answers.
#[test]
fn a_huge_value_is_named_as_such_and_a_silent_target_is_still_monitored() {
    let dir = tempfile::tempdir().unwrap();
    let bin = real::our_binary();
    let db = dir.path().join("db");
    let good = FakeExporter::start(|_| Reply::text("up 1\nbig 1e308\n"));
    let silent = real::SlowExporter::start(false, Duration::from_millis(100));
    let listen = format!("127.0.0.1:{}", real::free_port());
    let args: Vec<String> = [
        "--db",
        db.to_str().unwrap(),
        "watch",
        "--no-host",
        "--scrape",
        &format!("good={}", good.url()),
        "--scrape",
        &format!("silent={}", silent.url()),
        "--listen",
        &listen,
        "--interval",
        "500ms",
        "--for",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut watch = real::Running::start(&bin, &args, dir.path().join("watch.log"));
    wait_for(Duration::from_secs(15), "the listener", || {
        watch.assert_running();
        real::get(&format!("http://{listen}/healthz")).filter(|(s, _)| *s == 200)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let body = serde_json::json!({"resource": "silent", "type": "manual", "id": "look"});
    let mut r = real::agent()
        .post(&format!("http://{listen}/trigger"))
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = r.status().as_u16();
    let answer = r.body_mut().read_to_string().unwrap();
    let _ = watch.child.wait();
    let log = watch.output();
    assert_eq!(status, 200, "{answer}\n{log}");
    assert!(answer.contains("\"window\""), "{answer}");
    assert!(
        log.contains("value rejected: too large"),
        "the reason is named: {log}"
    );
    assert!(
        !log.contains("non-finite value or invalid metric name"),
        "{log}"
    );
}
