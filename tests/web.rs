//! The listener's pages over HTTP (`/`, `/w/ID`, its report and SVG,
//! `/assets/`), on a recorder and on a store served read-only: what a
//! browser gets (status, headers, escaped text), what it may not (other
//! files, pages without the token), and the token-link cookie. What the
//! pages look like once drawn is `browser.rs`'s, in a real browser.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{Scripted, secs, t};
use incident_recorder::Metrics;
use incident_recorder::TriggerWords;
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
use incident_recorder::{
    IncidentRecorder, ManualClock, RecorderConfig, Store, Timestamp, Trigger, web,
};

const TOKEN: &str = "a-token-of-thirty-two-bytes-long";
const EVIL: &str = "<script>alert(1)</script>";

struct Site {
    recorder: Arc<IncidentRecorder>,
    listener: Listener,
    id: String,
    _dir: tempfile::TempDir,
}

/// A recorder on a file with one closed alert window on the resource
/// [`EVIL`], listening with [`TOKEN`].
fn site() -> Site {
    site_of(Scripted::counting(&[EVIL, "web-1"]))
}

/// [`site`] with `provider`'s metrics: 8 samples, the alert `cpu-high` on
/// [`EVIL`], 12 samples (the window closes).
fn site_of(provider: Arc<Scripted>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        sample_interval: secs(5),
        pre_incident_window: secs(30),
        post_incident_window: secs(30),
        ..RecorderConfig::with_db_path(dir.path().join("incidents.db"))
    };
    let clock = ManualClock::new(t(0));
    let recorder =
        Arc::new(IncidentRecorder::open_with_clock(config, Arc::new(clock.clone())).unwrap());
    recorder.set_metrics_provider(provider);
    let tick = |n| {
        for _ in 0..n {
            recorder.record_sample().unwrap();
            clock.advance(secs(5));
        }
    };
    tick(8);
    let id = recorder
        .start_recording(EVIL, Trigger::alert("cpu-high"))
        .unwrap()
        .to_string();
    tick(12);
    // The window closed at its deadline: wait for the closer to seal it, so
    // every request sees it closed (store reads do not wait for the closer).
    recorder.sync().unwrap();
    let auth = ListenAuth::Bearer(TOKEN.into());
    let listener = Listener::start(
        Arc::clone(&recorder),
        ListenConfig::new("127.0.0.1:0".parse().unwrap(), auth),
    )
    .unwrap();
    Site {
        recorder,
        listener,
        id,
        _dir: dir,
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `method path` as written (no client normalizes it) with
/// `headers`, and reads the whole answer.
fn send(l: &Listener, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(l.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 2\r\n\r\n{}");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies here are short enough to come whole or chunked once.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get(l: &Listener, path: &str) -> Answer {
    send(
        l,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
}

#[test]
fn pages_escape_what_the_database_holds_and_send_a_strict_policy() {
    let s = site();
    for path in ["/".to_owned(), format!("/w/{}", s.id)] {
        let a = get(&s.listener, &path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = a.header("content-security-policy").unwrap();
        assert_eq!(csp, web::PAGE_CSP);
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        assert!(
            a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
        assert!(!a.body.contains(EVIL), "{path}: the name became markup");
        assert!(
            !a.body.contains("<script>") && !a.body.contains("<script >"),
            "{path}: an inline script the policy would refuse"
        );
        assert!(a.body.contains(&s.id));
    }
    let page = get(&s.listener, &format!("/w/{}", s.id)).body;
    for link in ["/windows/", "/report.html", "/chart.svg"] {
        assert!(page.contains(link), "the page links {link}");
    }
}

#[test]
fn unknown_windows_are_404_and_bad_parameters_400() {
    let s = site();
    let l = &s.listener;
    for path in [
        "/w/iw-nope".to_owned(),
        "/w/iw-nope/report.html".into(),
        "/w/iw-nope/chart.svg".into(),
        format!("/w/{}/other", s.id),
        "/w/".into(),
        format!("/w/{}/chart.svg?metric=nope", s.id),
    ] {
        assert_eq!(get(l, &path).status, 404, "{path}");
    }
    for path in [
        "/?status=bogus".to_owned(),
        "/?since=yesterday".into(),
        "/?limit=0".into(),
        "/?limit=1001".into(),
        "/?limit=201".into(),
        "/?colour=red".into(),
        format!("/w/{}?x=1", s.id),
        format!("/w/{}/chart.svg?top=0", s.id),
        format!("/w/{}/chart.svg?top=21", s.id),
        format!("/w/{}/chart.svg?size=9", s.id),
    ] {
        let a = get(l, &path);
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert!(a.body.contains("\"error\""), "{path}: says why");
    }
    let a = get(l, "/?status=complete&resource=web-1");
    assert_eq!(a.status, 200);
    assert!(a.body.contains("No windows match"), "the filter filters");
    let a = get(l, "/?resource=&status=&since=");
    assert!(
        a.status == 200 && a.body.contains(&s.id),
        "the form's empty fields"
    );
    let a = get(l, &format!("/?resource={}", web::url_part(EVIL)));
    assert!(a.body.contains(&s.id));
}

#[test]
fn nothing_but_the_compiled_assets_is_served_under_assets() {
    let s = site();
    let l = &s.listener;
    let a = get(l, "/assets/app.js");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(a.header("cache-control").unwrap().contains("max-age"));
    let a = get(l, "/assets/uplot-1.6.32.min.js");
    assert!(a.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(
        get(l, "/").header("cache-control"),
        Some("no-store"),
        "pages change with every tick"
    );
    for path in [
        "/assets/",
        "/assets",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/vendor/uplot/LICENSE",
        "/src/lib.rs",
        "/w/../assets/app.js",
        "/index.html",
    ] {
        let a = get(l, path);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert!(
            !a.body.contains("uPlot") && !a.body.contains("fn "),
            "{path}"
        );
    }
}

#[test]
fn pages_need_the_token_which_a_link_trades_for_a_cookie_good_for_reading_only() {
    let s = site();
    let l = &s.listener;
    for path in [
        "/".to_owned(),
        format!("/w/{}", s.id),
        format!("/w/{}/chart.svg", s.id),
        "/assets/app.js".into(),
        "/?token=a-wrong-token-of-thirty-two-byte".into(),
    ] {
        let a = send(l, "GET", &path, &[]);
        assert_eq!(a.status, 401, "{path}");
        assert!(!a.body.contains(&s.id));
    }
    let a = send(l, "GET", &format!("/?token={TOKEN}&status=complete"), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let cookie = a.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        a.body.contains("url=/?status=complete\"") && !a.body.contains(TOKEN),
        "goes on without the token in the URL: {}",
        a.body
    );
    let pair = cookie.split(';').next().unwrap();
    let a = send(l, "GET", &format!("/w/{}", s.id), &[("Cookie", pair)]);
    assert_eq!(a.status, 200, "the cookie opens the pages");
    let a = send(l, "GET", "/windows", &[("Cookie", pair)]);
    assert_eq!(a.status, 200, "and the JSON they link");
    let a = send(l, "POST", "/trigger", &[("Cookie", pair)]);
    assert_eq!(
        a.status, 401,
        "but never a POST: no other site opens windows"
    );
    let a = send(
        l,
        "GET",
        "/",
        &[("Cookie", "incident_recorder_token=guess")],
    );
    assert_eq!(a.status, 401);
}

#[test]
fn the_report_is_one_file_with_its_own_policy_and_the_svg_draws_the_top_metrics() {
    let s = site();
    let l = &s.listener;
    let a = get(l, &format!("/w/{}/report.html", s.id));
    assert_eq!(a.status, 200);
    let w = s.recorder.store().window(&s.id).unwrap().unwrap();
    assert_eq!(
        a.body,
        web::report(&w, Timestamp::now()),
        "a closed window's report is the same bytes as export --format html"
    );
    let csp = a.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(
        a.body.contains(&format!("content=\"{csp}\"")),
        "its own <meta> says the same"
    );
    for outside in ["<script src", "<link", "<img", "href=\"http", "href=\"/"] {
        assert!(
            !a.body.contains(outside),
            "the report loads nothing: {outside}"
        );
    }
    let a = get(l, &format!("/w/{}/chart.svg?top=1", s.id));
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("image/svg+xml"));
    assert!(a.header("content-security-policy").is_some());
    assert_eq!(a.body.matches("class=\"series\"").count(), 1);
    assert!(
        a.body.contains("data-metric=\"cpu\""),
        "cpu moved, memory did not"
    );
    assert!(a.body.contains("class=\"trigger\"") && a.body.contains("pre-incident"));
    assert!(!a.body.contains(EVIL) && !a.body.contains("<script"));
    let a = get(
        l,
        &format!("/w/{}/chart.svg?metric=memory&metric=cpu", s.id),
    );
    assert_eq!(a.body.matches("class=\"series\"").count(), 2);
}

#[test]
fn serve_reads_a_store_and_refuses_what_would_record() {
    let s = site();
    let path = s.recorder.store().path().unwrap().to_owned();
    let store = Arc::new(Store::open_read_only(&path).unwrap());
    let config = ListenConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ListenAuth::Bearer(TOKEN.into()),
    );
    let served = Listener::serve_store(store, config).unwrap();
    let a = get(&served, "/");
    assert_eq!(a.status, 200);
    assert!(a.body.contains(&s.id));
    assert_eq!(get(&served, &format!("/w/{}", s.id)).status, 200);
    assert_eq!(get(&served, &format!("/windows/{}", s.id)).status, 200);
    let auth = format!("Bearer {TOKEN}");
    for (method, path) in [
        ("POST", "/trigger"),
        ("POST", "/alertmanager"),
        ("GET", "/metrics"),
    ] {
        let a = send(&served, method, path, &[("Authorization", &auth)]);
        assert_eq!(a.status, 409, "{method} {path}: {}", a.body);
        assert!(a.body.contains("read-only"));
    }
    let a = send(&served, "GET", "/", &[]);
    assert_eq!(a.status, 401, "the same token rules");
    let a = send(&served, "GET", "/healthz", &[]);
    assert!(
        a.status == 200 && a.body.contains("read-only"),
        "{}",
        a.body
    );
}

#[test]
fn export_html_writes_one_window_and_says_what_it_needs() {
    let s = site();
    let db = s.recorder.store().path().unwrap().to_owned();
    let out = db.with_file_name("incident.html");
    let ir = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_incident-recorder"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let o = ir(&[
        "export",
        "--format",
        "html",
        "-o",
        out.to_str().unwrap(),
        &s.id,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bytes, self-contained"));
    let w = s.recorder.store().window(&s.id).unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        web::report(&w, Timestamp::now())
    );
    let o = ir(&["export", "--format", "html", "--resource", EVIL]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&s.id),
        "its latest window"
    );
    for (args, why) in [
        (
            &["export", "--format", "html"][..],
            "give its ID, or --resource",
        ),
        (&["export", "--format", "html", "iw-nope"][..], "iw-nope"),
        (
            &["export", "--format", "html", "--resource", "nobody"][..],
            "no window of resource",
        ),
        (&["export", &s.id][..], "a window ID is for --format html"),
        (&["import", "--format", "html", "x.html"][..], "export only"),
    ] {
        let o = ir(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn serve_keeps_serving_when_a_recorder_starts_on_the_file_it_read_alone() {
    let s = site();
    let path = s.recorder.store().path().unwrap().to_owned();
    let Site {
        recorder,
        listener,
        id,
        _dir: dir,
    } = s;
    drop(listener);
    recorder.stop().unwrap();
    drop(recorder);
    assert!(
        !path.with_extension("db-wal").exists(),
        "no recorder: the file alone"
    );
    let store = Arc::new(Store::open_read_only(&path).unwrap());
    let config = ListenConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ListenAuth::Bearer(TOKEN.into()),
    );
    let served = Listener::serve_store(store, config).unwrap();
    assert_eq!(get(&served, &format!("/w/{id}")).status, 200);
    // Its clock is the wall clock: keep the test's old window.
    let again = IncidentRecorder::open(RecorderConfig {
        retention: Duration::from_secs(100 * 365 * 86_400),
        ..RecorderConfig::with_db_path(&path)
    })
    .unwrap();
    assert!(
        path.with_extension("db-wal").exists(),
        "a recorder writes it"
    );
    for path in ["/".to_owned(), format!("/w/{id}"), "/windows".into()] {
        let a = get(&served, &path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains(&id));
    }
    drop(again);
    drop(dir);
}

/// `body` from the first `after` on (empty if `after` is not in it).
fn after<'a>(body: &'a str, after: &str) -> &'a str {
    body.find(after).map_or("", |i| &body[i..])
}

#[test]
fn pictures_lead_with_what_moved_after_the_trigger_not_what_swung_widest() {
    // `noisy` swings 0..100 the whole time (the widest range); `step` goes
    // from 100 to 110 at the trigger and stays: what the incident changed.
    let s = site_of(Scripted::new(&[EVIL], |_, n| {
        Ok(Metrics::new()
            .with("noisy", if n % 2 == 0 { 0.0 } else { 100.0 })
            .with("step", if n < 8 { 100.0 } else { 110.0 }))
    }));
    let w = s.recorder.store().window(&s.id).unwrap().unwrap();
    let ranks = &w.summary.as_ref().unwrap().change_scores;
    assert_eq!((ranks["step"].rank, ranks["noisy"].rank), (1, 2));
    let l = &s.listener;
    let page = get(l, &format!("/w/{}", s.id)).body;
    let data = after(&page, "id=\"window-data\"");
    let (step, noisy) = (
        data.find("\"step\"").unwrap(),
        data.find("\"noisy\"").unwrap(),
    );
    assert!(step < noisy, "the charts draw step first: {data}");
    let table = after(&page, "class=\"summary\"");
    assert!(
        table.find("<td>step</td>").unwrap() < table.find("<td>noisy</td>").unwrap(),
        "and the summary lists it first"
    );
    let row = after(table, "<td>step</td>");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.ends_with("<td>+9.1</td>"),
        "with its score (10 / 1.1): {row}"
    );
    let index = get(l, "/").body;
    assert!(
        index.contains("<span class=\"metric\">step</span>"),
        "the listing's sparkline is step's"
    );
    let svg = get(l, &format!("/w/{}/chart.svg?top=1", s.id)).body;
    assert!(svg.contains("data-metric=\"step\"") && !svg.contains("data-metric=\"noisy\""));
}

#[test]
fn the_alerts_words_are_shown_as_text_and_only_web_urls_are_links() {
    let s = site();
    let store = s.recorder.store();
    let w = store.window(&s.id).unwrap().unwrap();
    let fired = w.triggers[0].fired_at;
    let words = TriggerWords {
        labels: [
            ("alertname".to_owned(), "CpuHigh".to_owned()),
            ("severity".to_owned(), "<b>page</b>".to_owned()),
        ]
        .into(),
        annotations: [
            ("summary".to_owned(), format!("CPU over 90% {EVIL}")),
            (
                "description".to_owned(),
                "first line\nsecond line".to_owned(),
            ),
            ("runbook_url".to_owned(), "javascript:alert(2)".to_owned()),
            (
                "generatorURL".to_owned(),
                "http://prom:9090/graph?g0.expr=cpu&x=\"y".to_owned(),
            ),
        ]
        .into(),
        rule: Some("cpu > 90 for 30s".to_owned()),
    };
    assert!(
        store
            .keep_trigger_words(&s.id, "cpu-high", fired, &words)
            .unwrap()
    );
    let w = store.window(&s.id).unwrap().unwrap();
    let a = get(&s.listener, &format!("/w/{}", s.id));
    assert_eq!(a.header("content-security-policy"), Some(web::PAGE_CSP));
    for body in [a.body, web::report(&w, Timestamp::now())] {
        let said = after(&body, "What the alert said");
        assert!(!said.is_empty(), "a section of the alert's words");
        assert!(said.contains("CPU over 90% &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!body.contains(EVIL), "a <script> in an annotation is text");
        assert!(said.contains("first line\nsecond line"));
        assert!(
            said.contains("<code>cpu &gt; 90 for 30s</code>"),
            "the rule"
        );
        assert!(said.contains("<b>severity</b>=<code>&lt;b&gt;page&lt;/b&gt;</code>"));
        assert!(said.contains(">javascript:alert(2)</dd>"), "shown as text");
        assert!(!body.contains("href=\"javascript"), "never a link");
        let link = "http://prom:9090/graph?g0.expr=cpu&amp;x=&quot;y";
        assert!(
            said.contains(&format!(
                "<a href=\"{link}\" rel=\"noopener noreferrer nofollow\""
            )),
            "generatorURL is a link, escaped"
        );
    }
}
