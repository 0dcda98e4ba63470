//! An HTTP listener on top of a running recorder: Alertmanager's webhook,
//! triggers, window queries, the recorder's own metrics.
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
//! | `GET /windows` | the JSON of `list --json`; parameters `resource`, `status`, `since` (RFC 3339), `limit` (default 50, 0 = all) |
//! | `GET /windows/{id}` | the JSON of `show --json` |
//! | `GET /metrics` | the recorder's health in the Prometheus text format |
//! | `GET /healthz` | `{"status": "ok"}`, or 503 `stalled` when the tick count has not moved for three intervals (and at least twice the provider timeout) |
//!
//! ```no_run
//! use std::sync::Arc;
//! use incident_recorder::{IncidentRecorder, RecorderConfig};
//! use incident_recorder::listen::{ListenConfig, Listener};
//! use incident_recorder::provider::host::HostProvider;
//!
//! let config = RecorderConfig {
//!     hold_while_alert_active: true, // record while Alertmanager says it fires
//!     ..RecorderConfig::with_db_path("incidents.db")
//! };
//! let recorder = Arc::new(IncidentRecorder::open(config)?);
//! recorder.set_metrics_provider(Arc::new(HostProvider::new()?));
//! recorder.start()?;
//! let listener = Listener::start(Arc::clone(&recorder), ListenConfig::new("127.0.0.1:9465".parse()?))?;
//! // ... until shutdown: stop the listener first, so no trigger arrives while
//! // the recorder saves what is pending.
//! listener.stop();
//! recorder.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety of the listener
//!
//! The listener binds loopback unless given a token: [`Listener::start`]
//! refuses any other address without [`ListenConfig::token`], and with a
//! token every request but `/healthz` needs `Authorization: Bearer <token>`
//! (401 otherwise). Bodies are at most [`ListenConfig::max_body_bytes`]
//! (default 1 MiB), reads time out, a fixed number of workers serve
//! requests (see `http`), and every bad request gets a 4xx with
//! `{"error": "..."}`. Handlers only call the recorder's public methods,
//! which validate what they are given; nothing a client sends can stop the
//! recorder or panic it.

mod alertmanager;
mod http;
mod metrics;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use alertmanager::is_alertmanager_id;
pub use http::{MAX_HEAD_BYTES, MAX_HEADERS};
pub use metrics::STORE_STATS_TTL;

use crate::error::{Error, Result, clip};
use crate::model::{Timestamp, Trigger, TriggerType, WindowStatus};
use crate::recorder::IncidentRecorder;
use crate::store::WindowFilter;
use http::{Request, Response};

/// Where and how a [`Listener`] listens.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenConfig {
    /// The address to bind (`127.0.0.1:9465`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// A bearer token every request (but `/healthz`) must carry. Required
    /// for an address that is not loopback.
    pub token: Option<String>,
    /// The alert label whose value is the resource id. Default `instance`.
    pub alert_resource_label: String,
    /// Largest request body. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Longest wait for the next bytes of a request. Default 10 s.
    pub read_timeout: Duration,
    /// Longest a whole request may take to arrive. Default 30 s.
    pub request_timeout: Duration,
    /// Threads serving requests. Default 4.
    pub workers: usize,
}

impl ListenConfig {
    /// The default body limit.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// The default per-read timeout.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default whole-request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default number of workers.
    pub const DEFAULT_WORKERS: usize = 4;
    /// Connections waiting for a worker beyond which new ones get a 503.
    pub const QUEUE: usize = 64;

    /// Defaults for `addr`.
    pub fn new(addr: SocketAddr) -> ListenConfig {
        ListenConfig {
            addr,
            token: None,
            alert_resource_label: "instance".into(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            workers: Self::DEFAULT_WORKERS,
        }
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
    recorder: Arc<IncidentRecorder>,
    config: ListenConfig,
    store_stats: metrics::StoreCache,
    /// The tick count `/healthz` last saw change, and when.
    progress: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
}

impl Listener {
    /// Binds `config.addr` and serves `recorder` until dropped. Refuses a
    /// non-loopback address without a token, an empty or malformed token,
    /// and zero limits.
    pub fn start(recorder: Arc<IncidentRecorder>, config: ListenConfig) -> Result<Listener> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if let Some(t) = &config.token
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return bad(
                "the listener token must be printable ASCII without spaces, and not empty".into(),
            );
        }
        if !config.addr.ip().is_loopback() && config.token.is_none() {
            return bad(format!(
                "refusing to listen on {} without a token: anyone who can reach it could open windows; \
                 listen on 127.0.0.1, or set a token (--listen-token)",
                config.addr
            ));
        }
        if config.alert_resource_label.is_empty() {
            return bad("the alert resource label must not be empty".into());
        }
        if config.max_body_bytes == 0
            || config.workers == 0
            || config.read_timeout.is_zero()
            || config.request_timeout.is_zero()
        {
            return bad("listener limits (body size, workers, timeouts) must be above zero".into());
        }
        let socket = TcpListener::bind(config.addr).map_err(|source| Error::Listen {
            addr: config.addr.to_string(),
            source,
        })?;
        let limits = http::Limits {
            max_body_bytes: config.max_body_bytes,
            read_timeout: config.read_timeout,
            request_timeout: config.request_timeout,
            workers: config.workers,
            queue: ListenConfig::QUEUE,
        };
        let shared = Arc::new(Shared {
            recorder,
            config,
            store_stats: metrics::StoreCache::default(),
            progress: std::sync::Mutex::new(None),
        });
        let handler: http::Handler = Arc::new(move |r| handle(&shared, r));
        let addr = socket.local_addr().ok();
        let server =
            http::Server::start(socket, limits, handler).map_err(|source| Error::Listen {
                addr: addr.map_or_else(|| "listener".into(), |a| a.to_string()),
                source,
            })?;
        tracing::info!(addr = %server.addr(), "listening");
        Ok(Listener { server })
    }

    /// The address served (with the port chosen, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving: waits for requests in progress, then closes.
    pub fn stop(self) {}
}

fn handle(s: &Shared, r: &Request) -> Response {
    if r.path != "/healthz"
        && let Some(token) = &s.config.token
    {
        let given = r
            .header("authorization")
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut resp = Response::error(
                401,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            );
            resp.headers.push(("WWW-Authenticate", "Bearer".into()));
            return resp;
        }
    }
    let path = r.path.as_str();
    let allowed = match path {
        "/alertmanager" | "/trigger" => "POST",
        "/windows" | "/metrics" | "/healthz" => "GET",
        p if p.starts_with("/windows/") => "GET",
        _ => {
            return Response::error(
                404,
                format!(
                    "unknown path {:?}; the listener serves POST /alertmanager, POST /trigger, GET /windows, GET /windows/ID, GET /metrics, GET /healthz",
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
        "/metrics" => no_params(Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: metrics::render(&s.recorder, &s.store_stats).into_bytes(),
        }),
        "/healthz" => no_params(healthz(s)),
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

fn recorder_error(e: &Error) -> Response {
    let status = status_of(e);
    if status >= 500 {
        tracing::warn!(error = %crate::error_chain(e), "listener request failed");
    }
    Response::error(status, crate::error_chain(e))
}

fn alertmanager_webhook(s: &Shared, r: &Request) -> Response {
    let reply = alertmanager::webhook(&s.recorder, &r.body, &s.config.alert_resource_label);
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
    match s.recorder.start_recording(body.resource.as_str(), trigger) {
        Ok(id) => Response::json(
            200,
            &serde_json::json!({ "window": id, "resource": body.resource }),
        ),
        Err(e) => recorder_error(&e),
    }
}

fn windows(s: &Shared, r: &Request) -> Response {
    let mut filter = WindowFilter {
        limit: 50,
        ..WindowFilter::default()
    };
    for (k, v) in r.params() {
        let parsed: std::result::Result<(), String> = match k.as_str() {
            "resource" => {
                filter.resource = Some(v);
                Ok(())
            }
            "status" => v
                .parse::<WindowStatus>()
                .map(|st| filter.status = Some(st))
                .map_err(|e| e.to_string()),
            "since" => Timestamp::parse_rfc3339(&v)
                .map(|t| filter.since = Some(t))
                .map_err(|e| e.to_string()),
            "limit" => v
                .parse::<usize>()
                .map(|n| filter.limit = n)
                .map_err(|_| format!("limit {:?} is not a count", clip(&v))),
            _ => Err(format!(
                "unknown parameter {:?}; /windows takes resource, status, since and limit",
                clip(&k)
            )),
        };
        if let Err(e) = parsed {
            return Response::error(400, e);
        }
    }
    match s.recorder.store().windows(&filter) {
        Ok(w) => Response::json(200, &w),
        Err(e) => recorder_error(&e),
    }
}

fn window(s: &Shared, id: &str) -> Response {
    match s.recorder.store().window(id) {
        Ok(Some(w)) => Response::json(200, &w),
        Ok(None) => Response::error(404, Error::WindowNotFound(clip(id)).to_string()),
        Err(e) => recorder_error(&e),
    }
}

fn healthz(s: &Shared) -> Response {
    let stats = s.recorder.stats();
    let config = s.recorder.config();
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
