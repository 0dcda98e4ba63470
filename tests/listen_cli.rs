//! `watch --listen` as users meet it, through the real binary: the token
//! file only the owner can read (another Unix user gets 401), the bearer
//! scheme in any case, short tokens and tokenless non-loopback addresses
//! refused before anything is opened, the explicit `--listen-no-auth`, and
//! Alertmanager's webhook answered within a second while 200 clients drip
//! their headers a byte at a time.
//!
//! Tests that need a second user (`ir-other`) and root skip with a message
//! when they are missing, and fail under `CI=true`.

mod real;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use real::{Running, wait_for};

/// `watch` on this host with a rule that never fires, listening with `args`.
fn watch(dir: &Path, args: &[&str]) -> Running {
    let db = dir.join("incidents.db");
    let mut all: Vec<String> = [
        "--db",
        db.to_str().unwrap(),
        "watch",
        "--interval",
        "200ms",
        "--rule",
        "load1>1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    Running::start(&real::our_binary(), &all, dir.join("watch.log"))
}

/// Waits until `watch` answers `/healthz` on `addr`.
fn ready(w: &mut Running, addr: &str) {
    wait_for(Duration::from_secs(20), "watch to answer /healthz", || {
        w.assert_running();
        real::get(&format!("http://{addr}/healthz"))
            .filter(|(s, _)| *s == 200)
            .map(|_| ())
    });
}

/// (status, body) of a request with an optional `Authorization` header.
fn call(method: &str, url: &str, authorization: Option<&str>, body: &str) -> (u16, String) {
    let agent = real::agent();
    let mut response = match method {
        "GET" => {
            let mut r = agent.get(url);
            if let Some(a) = authorization {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = agent.post(url);
            if let Some(a) = authorization {
                r = r.header("Authorization", a);
            }
            r.send(body.as_bytes())
        }
    }
    .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn webhook() -> String {
    serde_json::json!({
        "version": "4", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Hot", "instance": "nowhere:1"},
                    "startsAt": serde_json::to_value(incident_recorder::Timestamp::now()).unwrap()}]
    })
    .to_string()
}

fn token_file(dir: &Path) -> PathBuf {
    dir.join("incidents.db.listen-token")
}

/// `ir-other`'s (uid, gid) when root can act as them (the user created
/// if missing); otherwise the test skips, visibly (`common/skip.rs`).
fn second_user() -> Option<(u32, u32)> {
    real::skip::other_user("the second-user test", None)
}

/// Runs `script` with bash as `user`; (success, stdout).
fn as_user(user: (u32, u32), script: &str) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new("bash")
        .args(["-c", script])
        .uid(user.0)
        .gid(user.1)
        .current_dir("/")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The HTTP status line `user` gets for `request` sent to `addr`, with
/// nothing but bash (its `/dev/tcp`), as any local user could.
fn status_as(user: (u32, u32), addr: &str, request: &str) -> String {
    let (host, port) = addr.split_once(':').unwrap();
    let script =
        format!("exec 3<>/dev/tcp/{host}/{port} && printf '%s' \"$REQ\" >&3 && head -c 12 <&3");
    use std::os::unix::process::CommandExt;
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("REQ", request)
        .uid(user.0)
        .gid(user.1)
        .current_dir("/")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

fn post_request(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn another_user_cannot_read_or_steer_the_recorder_without_the_token_file() {
    let Some(other) = second_user() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The directory is searchable (as /var/lib usually is): only the file's
    // own mode keeps the token from ir-other.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", real::free_port());
    let mut w = watch(dir.path(), &["--listen", &addr]);
    ready(&mut w, &addr);
    let file = token_file(dir.path());
    let meta = std::fs::symlink_metadata(&file).expect("a token file beside the database");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(token.len() >= 43, "at least 32 random bytes: {token:?}");
    assert!(
        w.output().contains(&file.display().to_string()),
        "watch says where the token is:\n{}",
        w.output()
    );

    // Another user on the host: no history, no alerts, no token.
    let body = webhook();
    assert_eq!(
        status_as(other, &addr, &get_request("/windows")),
        "HTTP/1.1 401"
    );
    assert_eq!(
        status_as(other, &addr, &post_request("/alertmanager", &body)),
        "HTTP/1.1 401"
    );
    assert_eq!(
        status_as(
            other,
            &addr,
            &post_request("/trigger", "{\"resource\":\"x\"}")
        ),
        "HTTP/1.1 401"
    );
    assert_eq!(
        status_as(other, &addr, &get_request("/healthz")),
        "HTTP/1.1 200"
    );
    let (read, _) = as_user(other, &format!("cat '{}'", file.display()));
    assert!(!read, "ir-other read the token file");

    // The owner, with the file's token, is served (the same client too).
    let base = format!("http://{addr}");
    let bearer = format!("Bearer {token}");
    let with_token = get_request("/windows").replace(
        "Host: x\r\n",
        &format!("Host: x\r\nAuthorization: {bearer}\r\n"),
    );
    assert_eq!(status_as((0, 0), &addr, &with_token), "HTTP/1.1 200");
    assert_eq!(
        call("GET", &format!("{base}/windows"), Some(&bearer), "").0,
        200
    );
    let (status, answer) = call(
        "POST",
        &format!("{base}/alertmanager"),
        Some(&bearer),
        &body,
    );
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn the_token_file_is_reused_and_one_planted_or_loose_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", real::free_port());
    let mut first = watch(dir.path(), &["--listen", &addr]);
    ready(&mut first, &addr);
    drop(first);
    let file = token_file(dir.path());
    let token = std::fs::read_to_string(&file).unwrap();
    let mut second = watch(dir.path(), &["--listen", &addr]);
    ready(&mut second, &addr);
    drop(second);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        token,
        "reused, not replaced"
    );

    // Readable by a group on purpose (Alertmanager's): still the owner's.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut third = watch(dir.path(), &["--listen", &addr]);
    ready(&mut third, &addr);
    drop(third);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);

    let run = |dir: &Path| {
        let db = dir.join("incidents.db");
        Command::new(real::our_binary())
            .args(["--db", db.to_str().unwrap(), "watch", "--for", "1s"])
            .args(["--interval", "200ms", "--listen", &addr])
            .output()
            .unwrap()
    };
    // Readable by others: the token may have leaked.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("listen-token") && err.contains("others"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("recording"));

    // A link is never followed.
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &file).unwrap();
    let out = run(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("link"), "{err}");
    assert!(!dir.path().join("elsewhere").exists());

    // Planted by another user.
    if second_user().is_some() {
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "a-token-that-ir-other-knows-0123456789\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let chown = Command::new("chown")
            .args(["ir-other"])
            .arg(&file)
            .status()
            .unwrap();
        assert!(chown.success());
        let out = run(dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("another user"), "{err}");
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_short_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", real::free_port());
    let db = dir.path().join("incidents.db");
    let out = Command::new(real::our_binary())
        .args(["--db", db.to_str().unwrap(), "watch", "--for", "1s"])
        .args(["--listen", &addr, "--listen-token", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("16"), "{err}");
    assert!(!db.exists(), "nothing opened");

    let token = "0123456789abcdef-long-enough";
    let mut w = watch(dir.path(), &["--listen", &addr, "--listen-token", token]);
    ready(&mut w, &addr);
    let url = format!("http://{addr}/windows");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body) = call("GET", &url, Some(&format!("{scheme} {token}")), "");
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    assert_eq!(
        call("GET", &url, Some(&format!("Basic {token}")), "").0,
        401
    );
    assert_eq!(call("GET", &url, Some("Bearer"), "").0, 401);
    assert!(
        !token_file(dir.path()).exists(),
        "an explicit token: no file"
    );
}

/// Defect 17: a listener beyond loopback without a credential (now only
/// with --listen-no-auth: without options, the token file is the
/// credential) or with a guessable one is refused with exit 2 before the
/// database is opened or anything printed.
#[test]
fn a_tokenless_or_weak_listener_beyond_loopback_is_refused_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("incidents.db");
    let addr = format!("0.0.0.0:{}", real::free_port());
    for extra in [&["--listen-no-auth"][..], &["--listen-token", "short"][..]] {
        let out = Command::new(real::our_binary())
            .args(["--db", db.to_str().unwrap(), "watch", "--for", "2s"])
            .args(["--listen", &addr])
            .args(extra)
            .env_remove("INCIDENT_RECORDER_LISTEN_TOKEN")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stdout}{stderr}");
        assert!(!stdout.contains("recording"), "{stdout}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!db.exists(), "the database was opened");
        assert!(!token_file(dir.path()).exists());
    }
    // Without options, the token file guards it there too.
    let mut w = watch(dir.path(), &["--listen", &addr]);
    let local = addr.replace("0.0.0.0", "127.0.0.1");
    ready(&mut w, &local);
    assert_eq!(
        call("GET", &format!("http://{local}/windows"), None, "").0,
        401
    );
    assert!(token_file(dir.path()).exists());
}

#[test]
fn no_auth_is_an_explicit_choice_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", real::free_port());
    let mut w = watch(dir.path(), &["--listen", &addr, "--listen-no-auth"]);
    ready(&mut w, &addr);
    assert_eq!(
        call("GET", &format!("http://{addr}/windows"), None, "").0,
        200
    );
    assert!(!token_file(dir.path()).exists());
    assert!(
        w.output().contains("without authentication"),
        "{}",
        w.output()
    );
}

/// Slowloris: 200 clients each sending a header byte every two seconds
/// (never finishing a request) while Alertmanager's webhook arrives; every
/// webhook is answered within a second.
#[test]
fn the_webhook_is_served_within_a_second_while_200_clients_drip() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", real::free_port());
    let token = "slowloris-test-token-0123456789";
    let mut w = watch(dir.path(), &["--listen", &addr, "--listen-token", token]);
    ready(&mut w, &addr);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripping = {
        let (addr, stop) = (addr.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut clients: Vec<TcpStream> = (0..200)
                .filter_map(|_| TcpStream::connect(&addr).ok())
                .collect();
            for c in &mut clients {
                let _ = c.write_all(b"GET /windows HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            }
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for c in &mut clients {
                    let _ = c.write_all(b"a");
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            clients.len()
        })
    };
    std::thread::sleep(Duration::from_secs(3)); // every dripping client connected
    let url = format!("http://{addr}/alertmanager");
    let bearer = format!("Bearer {token}");
    let mut slowest = Duration::ZERO;
    for _ in 0..6 {
        let started = Instant::now();
        let (status, answer) = call("POST", &url, Some(&bearer), &webhook());
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let connected = dripping.join().unwrap();
    assert_eq!(connected, 200);
    println!("slowest of 6 webhooks while 200 clients dripped: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a webhook took {slowest:?} while 200 clients dripped"
    );
    w.assert_running();
    let log = w.output();
    assert!(
        log.matches("busy").count() <= 2,
        "one line per refused connection:\n{}",
        &log[..log.len().min(3000)]
    );
}

/// The README's receiver: Alertmanager reads the generated token file with
/// `http_config.authorization.credentials_file`, and its webhooks get
/// through (none fails with 401).
#[test]
fn alertmanager_reads_the_token_file_with_credentials_file() {
    let Some(program) = real::program(
        &["prometheus-alertmanager", "alertmanager"],
        "prometheus-alertmanager",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", real::free_port());
    let mut w = watch(dir.path(), &["--listen", &listen]);
    ready(&mut w, &listen);
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: recorder\n  group_by: ['alertname', 'instance']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\n\
             receivers:\n  - name: recorder\n    webhook_configs:\n      - url: 'http://{listen}/alertmanager'\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials_file: '{}'\n",
            token_file(dir.path()).display()
        ),
    )
    .unwrap();
    let am = format!("127.0.0.1:{}", real::free_port());
    let storage = dir.path().join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let mut running = Running::start(
        &program,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address={am}"),
            "--cluster.listen-address=".into(),
        ],
        dir.path().join("alertmanager.log"),
    );
    wait_for(Duration::from_secs(20), "Alertmanager to be ready", || {
        running.assert_running();
        real::get(&format!("http://{am}/-/ready"))
            .filter(|(s, _)| *s == 200)
            .map(|_| ())
    });
    let alert = serde_json::json!([{
        "labels": {"alertname": "NodeHot", "instance": "nowhere:1"},
        "startsAt": serde_json::to_value(incident_recorder::Timestamp::now()).unwrap(),
    }]);
    let mut r = real::agent()
        .post(&format!("http://{am}/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .send(alert.to_string().as_bytes())
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    let counter = |name: &str| -> f64 {
        let (_, text) = real::get(&format!("http://{am}/metrics")).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("integration=\"webhook\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    wait_for(Duration::from_secs(20), "a webhook notification", || {
        (counter("alertmanager_notifications_total{") >= 1.0).then_some(())
    });
    assert_eq!(
        counter("alertmanager_notifications_failed_total{"),
        0.0,
        "{}",
        running.output()
    );
    w.assert_running();
}
