//! Helpers for the tests that run real programs: node_exporter,
//! Alertmanager, promtool and our own binary; plus small HTTP servers that
//! play misbehaving exporters (down, slow, serving HTML).
//!
//! A program that is not installed skips its test with a message, except
//! under `CI=true`, where `.ci/run` has installed it and its absence is a
//! failure.
#![allow(dead_code)] // each test binary uses a different subset

// Also `common::skip` in test binaries that load both: one file, one counter each.
#[allow(clippy::duplicate_mod)]
#[path = "../common/skip.rs"]
pub mod skip;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The installed program called one of `names`, or `None` (the test then
/// returns) after saying why; under `CI=true` its absence fails the test.
pub fn program(names: &[&str], package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .collect();
    for name in names {
        for dir in &dirs {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let why = format!(
        "{} is not installed (apt-get install {package})",
        names.join(" or ")
    );
    skip::skip(&why);
    None
}

/// Our binary, checked once to have this branch's options. Used where
/// cargo built it (a copy would be open for writing while another test
/// forks, and its exec would then fail with "text file busy").
pub fn our_binary() -> PathBuf {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let path = PathBuf::from(env!("CARGO_BIN_EXE_incident-recorder"));
    CHECKED.get_or_init(|| {
        let help = Command::new(&path).args(["watch", "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("--scrape") && help.contains("--listen"),
            "the binary under test has no --scrape/--listen: replaced by a build of another branch in a shared target directory? rerun"
        );
    });
    path
}

/// A free loopback port (bound and released, so another program can take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed (and reaped) when dropped.
pub struct Running {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `program` with `args`, output into `log`.
    pub fn start(program: &Path, args: &[String], log: PathBuf) -> Running {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Running {
            child,
            name: program.display().to_string(),
            log,
        }
    }

    /// The program's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails if the program has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.output());
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP client for the tests (short timeouts, statuses as values).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// GET `url`: (status, body), or `None` if nothing answers.
pub fn get(url: &str) -> Option<(u16, String)> {
    let mut r = agent().get(url).call().ok()?;
    let status = r.status().as_u16();
    Some((status, r.body_mut().read_to_string().ok()?))
}

/// node_exporter on a free port, with the collectors that need no
/// privileges or D-Bus; ready when it answers.
pub fn node_exporter(dir: &Path) -> Option<(Running, String)> {
    let program = program(
        &["prometheus-node-exporter", "node_exporter"],
        "prometheus-node-exporter",
    )?;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut running = Running::start(
        &program,
        &[
            format!("--web.listen-address={addr}"),
            "--no-collector.systemd".into(),
            "--no-collector.textfile".into(),
        ],
        dir.join("node_exporter.log"),
    );
    let url = format!("http://{addr}/metrics");
    wait_for(Duration::from_secs(15), "node_exporter to answer", || {
        running.assert_running();
        get(&url).filter(|(s, _)| *s == 200).map(|_| ())
    });
    Some((running, addr))
}

/// What a fake exporter answers to its n-th request (0-based).
pub type Respond = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// One answer of a fake exporter.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn text(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// A small HTTP server on a free loopback port answering with `respond`
/// (each request on its own thread, so a slow answer blocks nothing).
/// Stops when dropped.
pub struct FakeExporter {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    pub requests: Arc<AtomicUsize>,
}

impl FakeExporter {
    pub fn start(respond: impl Fn(usize) -> Reply + Send + Sync + 'static) -> FakeExporter {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let requests = Arc::new(AtomicUsize::new(0));
        let respond: Respond = Arc::new(respond);
        let (s, n) = (Arc::clone(&server), Arc::clone(&requests));
        std::thread::spawn(move || {
            for mut rq in s.incoming_requests() {
                let i = n.fetch_add(1, Ordering::SeqCst);
                let respond = Arc::clone(&respond);
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = rq.as_reader().read_to_end(&mut sink);
                    let reply = respond(i);
                    std::thread::sleep(reply.delay);
                    let header =
                        tiny_http::Header::from_bytes("Content-Type", reply.content_type).unwrap();
                    let response = tiny_http::Response::from_data(reply.body)
                        .with_status_code(reply.status)
                        .with_header(header);
                    let _ = rq.respond(response);
                });
            }
        });
        FakeExporter {
            addr,
            server,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for FakeExporter {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// The captured node_exporter text in `tests/fixtures/`.
pub fn node_fixture() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter-1.5.0.prom");
    std::fs::read_to_string(path).expect("the node_exporter fixture")
}

/// The value of the unlabelled series `name` in an exposition text, read
/// the simple way (for checking the parser against).
pub fn plain_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in the text"))
        .trim()
        .parse()
        .expect("a number")
}

/// An exporter that never finishes an answer: it sends the status line and
/// headers, then one byte of body every `every`, for as long as the client
/// stays (a drip). With `headers: false` it sends nothing at all (a hang).
/// Stops accepting when dropped.
pub struct SlowExporter {
    pub addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SlowExporter {
    pub fn start(headers: bool, every: Duration) -> SlowExporter {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let stopping = Arc::clone(&stopping);
                std::thread::spawn(move || {
                    let mut head = [0u8; 4096];
                    let _ = conn.read(&mut head);
                    if headers {
                        let _ = conn.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 100000\r\n\r\n",
                        );
                    }
                    while !stopping.load(Ordering::SeqCst) {
                        std::thread::sleep(every);
                        if headers && conn.write_all(b"#").is_err() {
                            break;
                        }
                        if !headers && conn.peek(&mut [0u8; 1]).is_ok_and(|n| n == 0) {
                            break; // the client closed
                        }
                    }
                });
            }
        });
        SlowExporter { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for SlowExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}
