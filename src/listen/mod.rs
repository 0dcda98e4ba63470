//! An HTTP listener on top of a running recorder: Alertmanager's webhook,
//! triggers, window queries, the recorder's own metrics, and pages for a
//! browser. [`Listener::serve_store`] serves the read routes of a store
//! opened read-only instead (`incident-recorder serve`).
//!
//! The recorder records; something else decides when. In a Prometheus shop
//! that is Alertmanager, which can only *send* (a webhook), so the recorder
//! listens: [`Listener::start`] serves an [`IncidentRecorder`] shared with
//! the sampling thread (`watch --listen`, or any embedder):
//!
//! | request | does |
//! |---|---|
//! | `POST /alertmanager` | Alertmanager's webhook (payload version 4): each `firing` alert opens or extends an `alert` window on the resource its `instance` label (or [`ListenConfig::alert_resource_label`]) names, at `startsAt`; `resolved` resolves it at `endsAt`. Answers each alert's result (see `alertmanager`). |
//! | `POST /trigger` | `{"resource": "web-1", "type": "manual", "id": null}`: opens or extends a window now; answers `{"window": ...}` |
//! | `GET /windows` | a page of `list --json`, most recent first, streamed: parameters `resource`, `status`, `since` (RFC 3339), `limit` (default 50, at most [`MAX_PAGE`]), `before` (a window id: the page after it; pass the last id of a page to get the next one), `points` (`true`: each window's data points too; default without) |
//! | `GET /windows/{id}` | the JSON of `show --json` |
//! | `GET /metrics` | the recorder's health in the Prometheus text format |
//! | `GET /`, `GET /w/{id}` | pages: the windows (the parameters of `GET /windows` but `points`), one window's charts (see `pages` and [`crate::web`]) |
//! | `GET /w/{id}/report.html`, `GET /w/{id}/chart.svg` | the window's self-contained report (as `export --format html`); a static SVG of its top metrics (`top=N`, `metric=NAME`) |
//! | `GET /assets/…` | the pages' script and style, compiled in |
//! | `GET /healthz` | `{"status": "ok"}`, or 503 `stalled` when the tick count has not moved for three intervals (and at least twice the provider timeout) |
//!
//! ```no_run
//! use std::sync::Arc;
//! use incident_recorder::{IncidentRecorder, RecorderConfig};
//! use incident_recorder::listen::{ListenAuth, ListenConfig, Listener};
//! use incident_recorder::provider::host::HostProvider;
//!
//! let config = RecorderConfig {
//!     hold_while_alert_active: true, // record while Alertmanager says it fires
//!     ..RecorderConfig::with_db_path("incidents.db")
//! };
//! let recorder = Arc::new(IncidentRecorder::open(config)?);
//! recorder.set_metrics_provider(Arc::new(HostProvider::new()?));
//! recorder.start()?;
//! let token = std::fs::read_to_string("/etc/incident-recorder/listen-token")?;
//! let auth = ListenAuth::Bearer(token.trim().to_owned());
//! let listener = Listener::start(Arc::clone(&recorder), ListenConfig::new("127.0.0.1:9465".parse()?, auth))?;
//! // ... until shutdown: stop the listener first, so no trigger arrives while
//! // the recorder saves what is pending.
//! listener.stop();
//! recorder.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety of the listener
//!
//! The history is as private as the database file, so the listener asks
//! for a credential by default: [`ListenConfig`] cannot be made without
//! choosing a [`ListenAuth`]. With [`ListenAuth::Bearer`] every request but
//! `/healthz` needs `Authorization: Bearer <token>` (the scheme in any
//! case; 401 otherwise), or for a GET the cookie a page link with
//! `?token=` sets, and the token is at least [`MIN_TOKEN_BYTES`]
//! long. [`ListenAuth::Unauthenticated`] lets anyone who can connect read
//! the history and open or resolve windows, which on loopback is every
//! user of the host; it is refused on any other address. Requests are
//! bounded (see `http`: connections, head, body, timeouts, handlers at
//! once), listings are paged and streamed one window at a time, and every
//! bad request gets a 4xx with `{"error": "..."}`. Handlers only call the
//! recorder's public methods, which validate what they are given; nothing
//! a client sends can stop the recorder or panic it.

mod alertmanager;
mod http;
mod metrics;
mod pages;
mod source;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use alertmanager::is_alertmanager_id;
pub use http::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_STREAM_TIME};
pub use metrics::STORE_STATS_TTL;
pub use pages::{COOKIE, MAX_INDEX};

use crate::error::{Error, Result, clip};
use crate::model::{Timestamp, Trigger, TriggerType, WindowStatus};
use crate::recorder::IncidentRecorder;
use crate::store::{Store, WindowFilter};
use http::{Request, Response, Sink, Throttle};
use source::Source;

/// The shortest bearer token accepted: a short one can be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;
/// The longest bearer token accepted.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Most windows in one page of `GET /windows`.
pub const MAX_PAGE: usize = 1000;
/// Windows in a page of `GET /windows` without `limit`.
pub const DEFAULT_PAGE: usize = 50;

/// Who may use a [`Listener`]: a choice every [`ListenConfig`] makes.
#[derive(Clone, PartialEq, Eq)]
pub enum ListenAuth {
    /// Every request but `/healthz` must carry `Authorization: Bearer
    /// <token>` (the scheme in any case): printable ASCII without spaces,
    /// [`MIN_TOKEN_BYTES`] to [`MAX_TOKEN_BYTES`] long.
    Bearer(String),
    /// No credential: whoever can connect reads the whole history and opens
    /// or resolves windows (on loopback, every user of the host). Only on a
    /// loopback address; for a machine with one user, or tests.
    Unauthenticated,
}

impl std::fmt::Debug for ListenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAuth::Bearer(_) => f.write_str("Bearer(<hidden>)"),
            ListenAuth::Unauthenticated => f.write_str("Unauthenticated"),
        }
    }
}

impl ListenAuth {
    /// Checks a bearer token: long enough to resist guessing, and a value
    /// an `Authorization` header can carry.
    pub fn check_token(token: &str) -> Result<()> {
        if token.len() < MIN_TOKEN_BYTES || token.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidConfig(format!(
                "the listener token is {} bytes; it must be {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES} \
                 (a short one can be guessed; e.g. `head -c 32 /dev/urandom | base64`)",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidConfig(
                "the listener token must be printable ASCII without spaces".into(),
            ));
        }
        Ok(())
    }
}

/// Where and how a [`Listener`] listens.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenConfig {
    /// The address to bind (`127.0.0.1:9465`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Who may use it.
    pub auth: ListenAuth,
    /// The alert label whose value is the resource id. Default `instance`.
    pub alert_resource_label: String,
    /// Largest request body. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Longest wait for the next bytes of a body, or for a client to take
    /// the next bytes of an answer. Default 10 s.
    pub read_timeout: Duration,
    /// Longest the head, and then the body, of a request may take to
    /// arrive. Default 30 s.
    pub request_timeout: Duration,
    /// Connections open at once; more are answered 503. Default 512.
    pub max_connections: usize,
    /// Requests calling the recorder at once, each on a blocking thread:
    /// this many POSTs and this many GETs. Default 4.
    pub handlers: usize,
}

impl ListenConfig {
    /// The default body limit.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// The default read timeout.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default whole-request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default connection limit.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    /// The default number of handlers.
    pub const DEFAULT_HANDLERS: usize = 4;

    /// Defaults for `addr`, with the access `auth`.
    pub fn new(addr: SocketAddr, auth: ListenAuth) -> ListenConfig {
        ListenConfig {
            addr,
            auth,
            alert_resource_label: "instance".into(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            handlers: Self::DEFAULT_HANDLERS,
        }
    }

    /// What [`Listener::start`] refuses, checked without binding anything:
    /// a bad token, no credential beyond loopback, an empty label, zero
    /// limits.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        match &self.auth {
            ListenAuth::Bearer(t) => ListenAuth::check_token(t)?,
            ListenAuth::Unauthenticated if !self.addr.ip().is_loopback() => {
                return bad(format!(
                    "refusing to listen on {} without a token: anyone who can reach it could read \
                     the history and open windows; listen on 127.0.0.1, or use a token",
                    self.addr
                ));
            }
            ListenAuth::Unauthenticated => {}
        }
        if self.alert_resource_label.is_empty() {
            return bad("the alert resource label must not be empty".into());
        }
        if self.max_body_bytes == 0
            || self.handlers == 0
            || self.max_connections == 0
            || self.read_timeout.is_zero()
            || self.request_timeout.is_zero()
        {
            return bad(
                "listener limits (body size, connections, handlers, timeouts) must be above zero"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A running listener; dropping it (or [`stop`](Listener::stop)) stops it.
pub struct Listener {
    server: http::Server,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

struct Shared {
    source: Source,
    config: ListenConfig,
    store_stats: metrics::StoreCache,
    counters: Arc<http::Counters>,
    /// The tick count `/healthz` last saw change, and when.
    progress: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
    /// Requests the recorder failed (5xx), logged at most once a minute.
    failures: Throttle,
}

impl Listener {
    /// Binds `config.addr` and serves `recorder` until dropped. Refuses
    /// what [`ListenConfig::check`] refuses.
    pub fn start(recorder: Arc<IncidentRecorder>, config: ListenConfig) -> Result<Listener> {
        Listener::start_on(Source::Recorder(recorder), config)
    }

    /// Binds `config.addr` and serves `store` read-only until dropped: the
    /// pages and the JSON queries; `POST /alertmanager`, `POST /trigger` and
    /// `GET /metrics`, which need a recorder, answer 409. For a database
    /// opened with [`Store::open_read_only`] (`incident-recorder serve`).
    pub fn serve_store(store: Arc<Store>, config: ListenConfig) -> Result<Listener> {
        Listener::start_on(Source::served(store), config)
    }

    fn start_on(source: Source, config: ListenConfig) -> Result<Listener> {
        config.check()?;
        let socket = TcpListener::bind(config.addr).map_err(|source| Error::Listen {
            addr: config.addr.to_string(),
            source,
        })?;
        let limits = http::Limits {
            max_body_bytes: config.max_body_bytes,
            read_timeout: config.read_timeout,
            request_timeout: config.request_timeout,
            max_connections: config.max_connections,
            handlers: config.handlers,
        };
        let counters = Arc::new(http::Counters::default());
        let open = config.auth == ListenAuth::Unauthenticated;
        let shared = Arc::new(Shared {
            source,
            config,
            store_stats: metrics::StoreCache::default(),
            counters: Arc::clone(&counters),
            progress: std::sync::Mutex::new(None),
            failures: Throttle::default(),
        });
        let handler: http::Handler = Arc::new(move |r| handle(&shared, r));
        let addr = socket.local_addr().ok();
        let server = http::Server::start(socket, limits, handler, counters).map_err(|source| {
            Error::Listen {
                addr: addr.map_or_else(|| "listener".into(), |a| a.to_string()),
                source,
            }
        })?;
        if open {
            tracing::info!(addr = %server.addr(), "listening without authentication");
        } else {
            tracing::info!(addr = %server.addr(), "listening");
        }
        Ok(Listener { server })
    }

    /// The address served (with the port chosen, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving: closes every connection, waits for the recorder
    /// calls in progress.
    pub fn stop(self) {}
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 9110, 11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn handle(s: &Shared, r: &Request) -> Response {
    if r.path != "/healthz"
        && let ListenAuth::Bearer(token) = &s.config.auth
        && let Some(refused) = pages::authenticate(r, token)
    {
        return refused;
    }
    let path = r.path.as_str();
    let allowed = match path {
        "/alertmanager" | "/trigger" => "POST",
        "/windows" | "/metrics" | "/healthz" | "/" => "GET",
        p if p.starts_with("/windows/") || p.starts_with("/w/") || p.starts_with("/assets/") => {
            "GET"
        }
        _ => {
            return Response::error(
                404,
                format!(
                    "unknown path {:?}; the listener serves the pages / and /w/ID, and POST /alertmanager, POST /trigger, GET /windows, GET /windows/ID, GET /metrics, GET /healthz",
                    clip(path)
                ),
            );
        }
    };
    if r.method != allowed {
        let mut resp = Response::error(
            405,
            format!("{path} takes {allowed}, not {}", clip(&r.method)),
        );
        resp.headers.push(("Allow", allowed.into()));
        return resp;
    }
    if allowed == "GET" && !r.body.is_empty() {
        return Response::error(400, "a GET takes no body");
    }
    let no_params = |resp: Response| {
        if r.query.is_empty() {
            resp
        } else {
            Response::error(400, format!("{path} takes no parameters"))
        }
    };
    match path {
        "/alertmanager" => no_params(alertmanager_webhook(s, r)),
        "/trigger" => no_params(trigger(s, r)),
        "/windows" => windows(s, r),
        "/metrics" => no_params(match s.source.recorder("GET /metrics") {
            Ok(recorder) => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                headers: Vec::new(),
                body: http::Body::Bytes(
                    metrics::render(recorder, &s.store_stats, &s.counters).into_bytes(),
                ),
            },
            Err(refused) => refused,
        }),
        "/healthz" => no_params(healthz(s)),
        "/" => pages::index(s, r),
        p if p.starts_with("/w/") => pages::window(s, r, &p["/w/".len()..]),
        p if p.starts_with("/assets/") => no_params(pages::asset(p)),
        _ => no_params(window(s, &path["/windows/".len()..])),
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status of a recorder error.
fn status_of(e: &Error) -> u16 {
    match e {
        Error::InvalidResourceId { .. }
        | Error::InvalidTimestamp { .. }
        | Error::UnknownName { .. }
        | Error::InvalidMetadata { .. } => 400,
        Error::InvalidTriggerId { .. } => 400,
        Error::WindowNotFound(_) | Error::NotMonitored { .. } => 404,
        Error::Suppressed { .. } => 429,
        Error::Unavailable(_) => 503,
        _ => 500,
    }
}

fn recorder_error(s: &Shared, e: &Error) -> Response {
    let status = status_of(e);
    if status >= 500
        && let Some(unsaid) = s.failures.hit(Instant::now())
    {
        tracing::warn!(error = %crate::error_chain(e), unsaid, "listener request failed");
    }
    Response::error(status, crate::error_chain(e))
}

fn alertmanager_webhook(s: &Shared, r: &Request) -> Response {
    let recorder = match s.source.recorder("POST /alertmanager") {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let reply = alertmanager::webhook(recorder, &r.body, &s.config.alert_resource_label);
    let mut resp = Response::json(reply.status, &reply.body);
    if let Some(secs) = reply.retry_after {
        resp.headers.push(("Retry-After", secs.to_string()));
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    resource: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn trigger(s: &Shared, r: &Request) -> Response {
    let recorder = match s.source.recorder("POST /trigger") {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let body: TriggerBody = match serde_json::from_slice(&r.body) {
        Ok(b) => b,
        Err(e) => {
            return Response::error(
                400,
                format!(
                    "expected {{\"resource\": \"...\", \"type\": \"manual\", \"id\": \"...\"}}: {e}"
                ),
            );
        }
    };
    let kind = match body
        .kind
        .as_deref()
        .unwrap_or("manual")
        .parse::<TriggerType>()
    {
        Ok(k) => k,
        Err(e) => return Response::error(400, e.to_string()),
    };
    if let Some(id) = &body.id
        && (id.len() > 1024 || id.chars().any(char::is_control))
    {
        return Response::error(
            400,
            "the trigger id is over 1024 bytes or has control characters",
        );
    }
    let trigger = Trigger::new(kind, body.id);
    match recorder.start_recording(body.resource.as_str(), trigger) {
        Ok(id) => Response::json(
            200,
            &serde_json::json!({ "window": id, "resource": body.resource }),
        ),
        Err(e) => recorder_error(s, &e),
    }
}

/// The parameters of `GET /windows`: a filter and the page's cursor.
fn listing(
    params: Vec<(String, String)>,
) -> std::result::Result<(WindowFilter, Option<String>), String> {
    let mut filter = WindowFilter {
        limit: DEFAULT_PAGE,
        ..WindowFilter::default()
    };
    let mut before = None;
    for (k, v) in params {
        match k.as_str() {
            "resource" => filter.resource = Some(v),
            "status" => filter.status = Some(v.parse::<WindowStatus>().map_err(|e| e.to_string())?),
            "since" => {
                filter.since = Some(Timestamp::parse_rfc3339(&v).map_err(|e| e.to_string())?)
            }
            "limit" => {
                filter.limit = match v.parse::<usize>() {
                    Ok(n @ 1..=MAX_PAGE) => n,
                    _ => {
                        return Err(format!(
                            "limit {:?} is not a count from 1 to {MAX_PAGE}; for more, page \
                             with before=<the last window id of a page>",
                            clip(&v)
                        ));
                    }
                }
            }
            "before" => before = Some(v),
            "points" => {
                filter.with_points = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("points {:?} is not true or false", clip(&v))),
                }
            }
            _ => {
                return Err(format!(
                    "unknown parameter {:?}; /windows takes resource, status, since, limit, before and points",
                    clip(&k)
                ));
            }
        }
    }
    Ok((filter, before))
}

/// `GET /windows`: a page of the listing, written window by window, each
/// read in a query of its own: the memory is one window's whatever the
/// page's size, and a client slow to read holds no database snapshot (which
/// would keep the journal from being checkpointed, or lock an in-memory
/// database against the tick).
fn windows(s: &Shared, r: &Request) -> Response {
    let (filter, before) = match listing(r.params()) {
        Ok(l) => l,
        Err(e) => return Response::error(400, e),
    };
    let source = s.source.clone();
    let produce = move |sink: &mut Sink| {
        let failed = |e: &Error| Response::error(status_of(e), crate::error_chain(e));
        let at = before
            .as_deref()
            .map(|id| source.read(|store| store.listing_cursor(id)));
        let mut cursor = match at {
            None => None,
            Some(Ok(Some(c))) => Some(c),
            Some(Ok(None)) => {
                return Err(Response::error(
                    404,
                    format!(
                        "before: {} (deleted since?); start again without before",
                        Error::WindowNotFound(clip(before.as_deref().unwrap_or_default()))
                    ),
                ));
            }
            Some(Err(e)) => return Err(failed(&e)),
        };
        let one = WindowFilter {
            limit: 1,
            ..filter.clone()
        };
        for i in 0..filter.limit {
            let mut chunk = Vec::new();
            source
                .read(|store| {
                    chunk.clear();
                    store.windows_after(&one, cursor, |at, w| {
                        cursor = Some(at);
                        chunk.extend_from_slice(if i == 0 { b"[\n" } else { b",\n" });
                        serde_json::to_writer(&mut chunk, &w)
                            .map_err(|e| Error::InvalidConfig(e.to_string()))
                    })
                })
                .map_err(|e| failed(&e))?;
            if chunk.is_empty() {
                let end = if i == 0 { &b"[]\n"[..] } else { &b"\n]\n"[..] };
                return sink
                    .write(end.to_vec())
                    .map_err(|e| Response::error(500, e.to_string()));
            }
            sink.write(chunk)
                .map_err(|e| Response::error(500, e.to_string()))?;
        }
        sink.write(b"\n]\n".to_vec())
            .map_err(|e| Response::error(500, e.to_string()))
    };
    Response::stream(200, "application/json", Box::new(produce))
}

fn window(s: &Shared, id: &str) -> Response {
    match s.source.read(|store| {
        let Some(w) = store.window(id)? else {
            return Ok(None);
        };
        let procs = store.window_processes(id)?;
        Ok(Some((w, procs)))
    }) {
        // The process snapshots, if any, in a `processes` field (as `show --json`).
        Ok(Some((w, procs))) if !procs.is_empty() => match serde_json::to_value(&w) {
            Ok(mut value) => {
                value["processes"] = serde_json::to_value(&procs).unwrap_or_default();
                Response::json(200, &value)
            }
            Err(e) => Response::error(500, e.to_string()),
        },
        Ok(Some((w, _))) => Response::json(200, &w),
        Ok(None) => Response::error(404, Error::WindowNotFound(clip(id)).to_string()),
        Err(e) => recorder_error(s, &e),
    }
}

fn healthz(s: &Shared) -> Response {
    let Source::Recorder(recorder) = &s.source else {
        return Response::json(
            200,
            &serde_json::json!({ "status": "ok", "mode": "read-only" }),
        );
    };
    let stats = recorder.stats();
    let config = recorder.config();
    let Some(last) = stats.last_tick else {
        return Response::json(
            200,
            &serde_json::json!({ "status": "starting", "ticks": 0 }),
        );
    };
    // Stalled when the tick count has not moved for a while, measured on
    // this process' monotonic clock: the recorder's own clock may be a
    // replay's (ingest, tests), and the wall clock may jump.
    let late =
        (config.sample_interval * 3).max(config.sample_interval + config.provider_timeout * 2);
    let stalled = {
        let mut seen = s.progress.lock().unwrap_or_else(|e| e.into_inner());
        match *seen {
            Some((ticks, since)) if ticks == stats.ticks => since.elapsed() > late,
            _ => {
                *seen = Some((stats.ticks, std::time::Instant::now()));
                false
            }
        }
    };
    let body = serde_json::json!({
        "status": if stalled { "stalled" } else { "ok" },
        "ticks": stats.ticks,
        "last_tick": last,
        "windows_recording": stats.active_windows,
        "write_failing": stats.last_error.is_some(),
    });
    Response::json(if stalled { 503 } else { 200 }, &body)
}
