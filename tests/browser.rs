//! The pages in a real browser: headless Chromium loads `/` and `/w/ID`
//! from `watch --listen` and from `serve` on a database with a recorded
//! window, and a report file from disk with networking off, and the test
//! checks what a person would see: the window listed, a chart per metric
//! drawn with all its points, the trigger marked, the pre-incident part
//! shaded, anomalies ringed, a `<script>` resource name and alert summary
//! shown as text, the runbook a link only when it is a web URL. The page's script
//! leaves what it drew on each chart's element (`data-points`,
//! `data-trigger-px`, `data-shade-px`, `data-anomalies`, `data-drawn`), which
//! `--dump-dom` shows; `--screenshot` must give a picture.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it): without it the tests
//! say so and return, except under `CI=true`.

mod real;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use real::{Running, wait_for};

const TOKEN: &str = "browser-test-token-0123456789abcdef";
const EVIL: &str = "<script>alert(1)</script>";

/// JSON lines: `points` samples 5 s apart of `metrics` metrics on
/// `resource`, an alert at sample `at` resolved 40 samples later.
fn lines(resource: &str, points: usize, metrics: usize, at: usize) -> String {
    let base = (incident_recorder::Timestamp::now().as_unix_ms() / 1000 - 2 * 86_400) * 1000;
    let mut out = String::new();
    for i in 0..points {
        let ts = base + i as i64 * 5000;
        let values: serde_json::Map<String, serde_json::Value> = (0..metrics)
            .map(|m| {
                let name = if m == 0 {
                    "cpu".into()
                } else {
                    format!("m{m:02}")
                };
                let v = if m == 0 && i >= at { 90.0 } else { 20.0 } + ((i * (m + 1)) % 7) as f64;
                (name, v.into())
            })
            .collect();
        let sample = serde_json::json!({"type": "sample", "resource": resource, "ts": ts, "metrics": values});
        out.push_str(&format!("{sample}\n"));
        let event = |kind: &str| {
            serde_json::json!({"type": kind, "resource": resource, "trigger": "alert",
                               "trigger_id": "cpu-high", "ts": ts})
        };
        if i == at {
            out.push_str(&format!("{}\n", event("trigger")));
        }
        if i == at + 40 {
            out.push_str(&format!("{}\n", event("resolve")));
        }
    }
    out
}

/// Runs our binary; it must succeed.
fn ours(args: &[&str]) -> String {
    let o = Command::new(real::our_binary())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A database in `dir` with one closed window of `points` points of
/// `metrics` metrics on `resource`; its id.
fn recorded(dir: &Path, resource: &str, points: usize, metrics: usize) -> (PathBuf, String) {
    let db = dir.join("incidents.db");
    let input = dir.join("lines.jsonl");
    std::fs::write(&input, lines(resource, points + 60, metrics, 100)).unwrap();
    let db_arg = db.to_str().unwrap();
    let max = points.to_string();
    ours(&[
        "--db",
        db_arg,
        "ingest",
        "--pre",
        "10m",
        "--post",
        "1h",
        "--max-points",
        &max,
        "--finish",
        input.to_str().unwrap(),
    ]);
    let listed: serde_json::Value =
        serde_json::from_str(&ours(&["--db", db_arg, "list", "--json"])).unwrap();
    let w = &listed[0];
    assert_eq!(w["summary"]["data_points"], points as u64, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    say_words(&db, &id);
    (db, id)
}

/// A runbook link that is a web URL, and one that is not.
const RUNBOOK: &str = "https://runbooks.example/cpu-high";
const NOT_A_LINK: &str = "javascript:alert(3)";

/// Keeps on the window's alert the words an Alertmanager webhook would
/// (`ingest` has no field for them): a summary holding [`EVIL`], a
/// [`RUNBOOK`] and a `generatorURL` that is [`NOT_A_LINK`].
fn say_words(db: &Path, id: &str) {
    let store = incident_recorder::Store::open(db).unwrap();
    let fired = store.window(id).unwrap().unwrap().triggers[0].fired_at;
    let words = incident_recorder::TriggerWords {
        labels: [("severity".to_owned(), "page".to_owned())].into(),
        annotations: [
            ("summary".to_owned(), format!("CPU over 90% on {EVIL}")),
            ("runbook_url".to_owned(), RUNBOOK.to_owned()),
            ("generatorURL".to_owned(), NOT_A_LINK.to_owned()),
        ]
        .into(),
        rule: None,
    };
    assert!(
        store
            .keep_trigger_words(id, "cpu-high", fired, &words)
            .unwrap()
    );
}

struct Browser {
    program: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new() -> Option<Browser> {
        let program = real::program(&["chromium", "chromium-browser"], "chromium")?;
        Some(Browser {
            program,
            profile: tempfile::tempdir().unwrap(),
        })
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .args(extra);
        c
    }

    /// The DOM after `url` loaded and its scripts ran (a token link's
    /// refresh included: virtual time runs until the page is idle).
    fn dom(&self, url: &str, extra: &[&str]) -> String {
        let o = self
            .command(&["--virtual-time-budget=5000", "--dump-dom"])
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chromium {url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A screenshot of `url` into `png`, which must be a picture.
    fn screenshot(&self, url: &str, png: &Path, extra: &[&str]) {
        let o = self
            .command(&["--virtual-time-budget=5000"])
            .arg(format!("--screenshot={}", png.display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bytes = std::fs::read(png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(bytes.len() > 15_000, "a blank page? {} bytes", bytes.len());
    }
}

/// The `data-*` attributes of each chart the page drew, in order.
fn charts(dom: &str) -> Vec<Vec<(String, String)>> {
    dom.split("<div class=\"chart\"")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            tag.split_whitespace()
                .filter_map(|a| a.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect()
        })
        .collect()
}

fn attr<'a>(chart: &'a [(String, String)], name: &str) -> &'a str {
    chart
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// What a person sees on `/w/ID`, or a report: a chart per metric, each
/// drawn with all `points`, the trigger marked inside it, the part before
/// it shaded; the resource's name as text.
fn check_window_page(dom: &str, metrics: usize, points: usize) {
    let drawn = charts(dom);
    assert_eq!(drawn.len(), metrics, "a chart per metric: {dom}");
    assert_eq!(
        attr(&drawn[0], "data-metric"),
        "cpu",
        "the one that moved first"
    );
    let rings: u32 = attr(&drawn[0], "data-anomalies").parse().unwrap();
    assert!(
        rings > 0,
        "cpu's jump is ringed as anomalies: {:?}",
        drawn[0]
    );
    for c in &drawn {
        assert_eq!(attr(c, "data-drawn"), "1", "{c:?}");
        assert_eq!(attr(c, "data-points"), points.to_string(), "{c:?}");
        let trigger: u32 = attr(c, "data-trigger-px")
            .parse()
            .expect("a trigger marker");
        let shade: u32 = attr(c, "data-shade-px").parse().unwrap();
        assert!(shade > 50, "the pre-incident part is shaded: {c:?}");
        assert!(
            trigger > shade,
            "the trigger marks where the shade ends: {c:?}"
        );
    }
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!dom.contains(EVIL), "the resource name became an element");
    assert!(
        dom.contains("CPU over 90% on &lt;script&gt;alert(1)&lt;/script&gt;"),
        "the alert's summary, as text"
    );
    assert!(
        dom.contains(&format!("<a href=\"{RUNBOOK}\"")),
        "the runbook, a link"
    );
    assert!(
        dom.contains(NOT_A_LINK) && !dom.contains("href=\"javascript"),
        "a javascript: URL shown, not linked"
    );
}

fn listen_addr() -> String {
    format!("127.0.0.1:{}", real::free_port())
}

fn wait_ready(p: &mut Running, addr: &str) {
    wait_for(Duration::from_secs(30), "the listener", || {
        p.assert_running();
        real::get(&format!("http://{addr}/healthz"))
            .filter(|(s, _)| *s == 200)
            .map(|_| ())
    });
}

/// `/` and `/w/ID` from `addr`, each opened by a token link.
fn check_served(browser: &Browser, addr: &str, id: &str, shots: Option<&Path>) {
    let list = browser.dom(&format!("http://{addr}/?token={TOKEN}"), &[]);
    assert!(
        list.contains("Incident windows"),
        "signed in and listed: {list}"
    );
    assert!(
        list.contains(&format!("href=\"/w/{id}\"")),
        "the window listed"
    );
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !list.contains(EVIL));
    assert!(list.contains("<svg class=\"spark\""), "with its sparkline");
    let page = browser.dom(&format!("http://{addr}/w/{id}?token={TOKEN}"), &[]);
    check_window_page(&page, 3, 120);
    if let Some(dir) = shots {
        let index = format!("http://{addr}/?token={TOKEN}");
        browser.screenshot(&index, &dir.join("index.png"), &["--window-size=1280,200"]);
        let window = format!("http://{addr}/w/{id}?token={TOKEN}");
        // Tall enough for the summary and what the alert said.
        browser.screenshot(
            &window,
            &dir.join("window.png"),
            &["--window-size=1200,1320"],
        );
    }
}

#[test]
fn a_browser_shows_the_window_from_watch_and_from_serve() {
    let Some(browser) = Browser::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path(), EVIL, 120, 3);
    let db_arg = db.to_str().unwrap().to_owned();
    let addr = listen_addr();
    let args: Vec<String> = [
        "--db",
        &db_arg,
        "watch",
        "--interval",
        "200ms",
        "--rule",
        "load1>1000000",
        "--listen",
        &addr,
        "--listen-token",
        TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut watch = Running::start(&real::our_binary(), &args, dir.path().join("watch.log"));
    wait_ready(&mut watch, &addr);
    // Screenshots for the README: `IR_SCREENSHOTS=docs cargo test --test browser`.
    let shots = std::env::var_os("IR_SCREENSHOTS").map(PathBuf::from);
    let shots = shots.unwrap_or_else(|| dir.path().to_owned());
    check_served(&browser, &addr, &id, Some(&shots));

    let addr = listen_addr();
    let args: Vec<String> = [
        "--db",
        &db_arg,
        "serve",
        "--listen",
        &addr,
        "--listen-token",
        TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut serve = Running::start(&real::our_binary(), &args, dir.path().join("serve.log"));
    wait_ready(&mut serve, &addr);
    check_served(&browser, &addr, &id, None);
    watch.assert_running();
}

/// `export --format html` of `id` in `db` into `dir`; its file URL.
fn report(db: &Path, id: &str, dir: &Path) -> String {
    let file = dir.join("report.html");
    ours(&[
        "--db",
        db.to_str().unwrap(),
        "export",
        "--format",
        "html",
        "-o",
        file.to_str().unwrap(),
        id,
    ]);
    format!("file://{}", file.display())
}

/// Networking off: every request goes to a proxy that is not there.
const OFFLINE: &[&str] = &[
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
];

#[test]
fn a_report_opens_from_disk_without_a_network() {
    let Some(browser) = Browser::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path(), EVIL, 120, 3);
    let url = report(&db, &id, dir.path());
    let dom = browser.dom(&url, OFFLINE);
    check_window_page(&dom, 3, 120);
    assert!(dom.contains("Summary"), "and the tables");
    browser.screenshot(&url, &dir.path().join("report.png"), OFFLINE);
}

/// 50 metrics of 500 points each: every chart drawn with every point. How
/// soon the first one is drawn is printed (`data-first-draw-ms`: from
/// navigation start, on the browser's own clock, in a second run without
/// virtual time, which would stop that clock while scripts run), to read,
/// not asserted: speed is for measurements, not tests.
#[test]
fn fifty_charts_of_five_hundred_points_are_all_drawn() {
    let Some(browser) = Browser::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path(), "big-1", 500, 50);
    let url = report(&db, &id, dir.path());
    let dom = browser.dom(&url, OFFLINE);
    let drawn = charts(&dom);
    assert_eq!(drawn.len(), 50);
    for c in &drawn {
        assert_eq!(attr(c, "data-points"), "500");
        assert_eq!(attr(c, "data-drawn"), "1");
    }
    let o = browser
        .command(&["--dump-dom"])
        .args(OFFLINE)
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let ms = |name: &str| {
        dom.split(&format!("data-{name}-ms=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_owned()
    };
    let bytes = std::fs::metadata(dir.path().join("report.html"))
        .unwrap()
        .len();
    eprintln!(
        "500 points x 50 series: script started {} ms, first chart drawn {} ms after navigation; report {bytes} bytes",
        ms("script-start"),
        ms("first-draw")
    );
}
