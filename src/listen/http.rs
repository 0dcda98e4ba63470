//! The listener's HTTP server: hyper 1 (HTTP/1.1) on a small tokio runtime
//! of its own, with every bound the listener promises.
//!
//! Why hyper and not threads of our own: the hand-written server this
//! replaces gave each connection a worker thread for its whole life, so 4
//! clients dripping a header byte every few seconds held all 4 workers and
//! Alertmanager's webhook waited behind them (68 such clients blocked it
//! completely, with or without a token, which is only read after the
//! request). Waiting for bytes must cost a socket, not a thread: here every
//! connection is a task on two runtime threads, and the recorder's blocking
//! calls (SQLite) run on tokio's blocking pool, a bounded number at a time.
//! hyper is the well-kept HTTP/1.1 implementation under most of Rust's
//! servers, and tokio is already built for the fleet push's client.
//!
//! The bounds:
//!
//! - at most `max_connections` connections at once; one more is answered
//!   503 at once and closed (counted, and logged at most once a minute);
//! - the request head must arrive within `request_timeout` (hyper's header
//!   timer, also for an idle kept-alive connection), and is at most
//!   [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] headers (431);
//! - the body must arrive within `request_timeout`, never waiting more than
//!   `read_timeout` for the next bytes (408), and is at most
//!   `max_body_bytes` (413), with a `Content-Length` or chunked;
//! - a response must be taken by the client without stalling for more than
//!   `read_timeout` on any write, and a streamed one within
//!   [`MAX_STREAM_TIME`];
//! - at most `handlers` POSTs and `handlers` GETs run the recorder at once,
//!   each on a blocking thread; a request that waits more than
//!   `request_timeout` for one gets 503 with `Retry-After`. POSTs (the
//!   webhook, triggers) never wait behind GETs (listings);
//! - handlers run under `catch_unwind` (500); a request hyper cannot parse
//!   gets hyper's bare 400 or 431, every other refusal a JSON
//!   `{"error": "..."}`.
//!
//! Stopping closes every connection at once (a slow client cannot delay it)
//! and waits for the recorder calls in progress.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Largest request line plus headers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 100;
/// Longest a streamed response (a listing) may take to be read.
pub const MAX_STREAM_TIME: Duration = Duration::from_secs(300);
/// Chunks of a streamed response buffered ahead of the client.
const STREAM_AHEAD: usize = 2;

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_body_bytes: usize,
    pub(super) read_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) handlers: usize,
}

/// A request, read whole.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    /// The path, without the query.
    pub(super) path: String,
    /// The query, without the `?`.
    pub(super) query: String,
    headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query's parameters, percent-decoded.
    pub(super) fn params(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// What writes a streamed body: [`Sink::write`] each chunk; an `Err` before
/// the first chunk is answered instead, after it cuts the response short.
pub(super) type Producer = Box<dyn FnOnce(&mut Sink) -> Result<(), Response> + Send>;

/// A response body.
pub(super) enum Body {
    /// All of it, now.
    Bytes(Vec<u8>),
    /// Written chunk by chunk on the handler's thread, in bounded memory.
    Stream(Producer),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// A response.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Body,
}

impl Response {
    /// A JSON response.
    pub(super) fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let body = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot serialize the response: {e}\"}}").into_bytes()
        });
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    /// `{"error": message}`.
    pub(super) fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// A response whose body `producer` writes as it goes.
    pub(super) fn stream(status: u16, content_type: &'static str, producer: Producer) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Stream(producer),
        }
    }
}

/// What answers requests; called on a blocking thread.
pub(super) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Where a [`Producer`] writes: hands each chunk to the connection, waiting
/// at most `read_timeout` for the client to take the previous ones.
pub(super) struct Sink {
    /// Until the first chunk: the head to answer with, and where to send it.
    head: Option<(Response, oneshot::Sender<Answer>)>,
    chunks: mpsc::Sender<io::Result<Bytes>>,
    receiver: Option<mpsc::Receiver<io::Result<Bytes>>>,
    runtime: tokio::runtime::Handle,
    read_timeout: Duration,
    deadline: Instant,
}

impl Sink {
    /// Sends `chunk`; fails when the client went away or stopped reading.
    pub(super) fn write(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.start();
        let wait = self
            .read_timeout
            .min(self.deadline.saturating_duration_since(Instant::now()));
        let send = self.chunks.send_timeout(Ok(Bytes::from(chunk)), wait);
        match self.runtime.block_on(send) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            )),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
        }
    }

    /// Answers with the head (once), the body to follow.
    fn start(&mut self) {
        if let (Some((head, answer)), Some(rx)) = (self.head.take(), self.receiver.take()) {
            let _ = answer.send(Answer {
                response: head,
                stream: Some(rx),
            });
        }
    }
}

/// A handler's answer as the connection sends it.
struct Answer {
    response: Response,
    stream: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

/// A warning that can repeat for every request or connection: logged the
/// first time, then at most once per [`Throttle::EVERY`] with how many were
/// left unsaid (one client must not fill the log).
#[derive(Debug, Default)]
pub(super) struct Throttle(Mutex<Option<(Instant, u64)>>);

impl Throttle {
    /// How often a repeated warning is logged at most.
    pub(super) const EVERY: Duration = Duration::from_secs(60);

    /// Counts one occurrence at `now`; `Some(n)` when it is to be logged,
    /// with `n` occurrences since the last line that were not.
    pub(super) fn hit(&self, now: Instant) -> Option<u64> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *s {
            Some((last, unsaid)) if now.saturating_duration_since(*last) < Self::EVERY => {
                *unsaid += 1;
                None
            }
            other => {
                let unsaid = other.map_or(0, |(_, n)| n);
                *other = Some((now, 0));
                Some(unsaid)
            }
        }
    }
}

/// What the server counts, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Connections refused because `max_connections` were open.
    pub(super) refused_connections: AtomicU64,
    /// Requests answered 503 because every handler was busy too long.
    pub(super) busy_requests: AtomicU64,
    refused_log: Throttle,
    busy_log: Throttle,
}

/// Shared by the acceptor and every connection.
struct State {
    limits: Limits,
    handler: Handler,
    /// Handlers for POSTs (the webhook, triggers) and for everything else.
    posts: Arc<Semaphore>,
    gets: Arc<Semaphore>,
    counters: Arc<Counters>,
    runtime: tokio::runtime::Handle,
}

/// The running server; dropping it stops it.
pub(super) struct Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
    state: Arc<State>,
}

impl Server {
    /// Serves `listener` with `handler` within `limits`.
    pub(super) fn start(
        listener: std::net::TcpListener,
        limits: Limits,
        handler: Handler,
        counters: Arc<Counters>,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2 * limits.handlers + 2)
            .thread_name("incident-recorder-http")
            .enable_io()
            .enable_time()
            .build()?;
        let state = Arc::new(State {
            limits,
            handler,
            posts: Arc::new(Semaphore::new(limits.handlers)),
            gets: Arc::new(Semaphore::new(limits.handlers)),
            counters,
            runtime: runtime.handle().clone(),
        });
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let acceptor = runtime.spawn(accept(listener, Arc::clone(&state)));
        Ok(Server {
            addr,
            runtime: Some(runtime),
            acceptor: Some(acceptor),
            state,
        })
    }

    /// The address served.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let acceptor = self.acceptor.take();
        let state = Arc::clone(&self.state);
        // On a thread of its own: blocking on (or dropping) a runtime is
        // refused inside another one, as in an embedder's async code.
        let stopping = std::thread::Builder::new()
            .name("incident-recorder-http-stop".into())
            .spawn(move || shut_down(runtime, acceptor, &state));
        if let Ok(t) = stopping {
            let _ = t.join();
        }
    }
}

/// Closes every connection, waits for the recorder calls in progress
/// (they have their own bounds; a stream's producer stops at its next
/// chunk, its client gone), and stops the runtime.
fn shut_down(
    runtime: tokio::runtime::Runtime,
    acceptor: Option<tokio::task::JoinHandle<()>>,
    state: &State,
) {
    if let Some(acceptor) = acceptor {
        acceptor.abort(); // its connections go with it, closed unanswered
        let _ = runtime.block_on(acceptor);
    }
    let n = u32::try_from(state.limits.handlers).unwrap_or(u32::MAX);
    let (posts, gets) = (Arc::clone(&state.posts), Arc::clone(&state.gets));
    runtime.block_on(async move {
        let _ = posts.acquire_many(n).await;
        let _ = gets.acquire_many(n).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>) {
    let open = Arc::new(Semaphore::new(state.limits.max_connections));
    let errors = Throttle::default();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, a connection reset before accept:
                // wait a little instead of spinning.
                if let Some(unsaid) = errors.hit(Instant::now()) {
                    tracing::warn!(error = %e, unsaid, "the listener cannot accept connections");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            refuse(stream, &state.counters, state.limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve(stream, permit, Arc::clone(&state)));
    }
}

/// Answers a connection over the limit with a 503 if the socket takes it at
/// once, and closes it.
fn refuse(stream: TcpStream, counters: &Counters, max: usize) {
    counters.refused_connections.fetch_add(1, Ordering::Relaxed);
    if let Some(unsaid) = counters.refused_log.hit(Instant::now()) {
        tracing::warn!(
            max_connections = max,
            unsaid,
            "listener full: refusing connections with 503 (counted in incident_recorder_listener_refused_connections_total)"
        );
    }
    let body = b"{\"error\": \"busy: too many connections at once; retry\"}\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.try_write(&[head.as_bytes(), body].concat());
}

async fn serve(stream: TcpStream, _permit: OwnedSemaphorePermit, state: Arc<State>) {
    let limits = state.limits;
    let io = hyper_util::rt::TokioIo::new(WriteTimeout::new(stream, limits.read_timeout));
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond(&state, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service)
        .await;
}

/// One request: its body read within the bounds, the handler run on a
/// blocking thread, its answer turned into hyper's.
async fn respond(state: &Arc<State>, req: hyper::Request<Incoming>) -> hyper::Response<OutBody> {
    let started = Instant::now();
    let request = match read(req, state.limits, started).await {
        Ok(r) => r,
        Err(refused) => return to_hyper(refused, None),
    };
    let pool = if request.method == "POST" {
        &state.posts
    } else {
        &state.gets
    };
    let wait = state
        .limits
        .request_timeout
        .saturating_sub(started.elapsed());
    let permit = match tokio::time::timeout(wait, Arc::clone(pool).acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            state.counters.busy_requests.fetch_add(1, Ordering::Relaxed);
            if let Some(unsaid) = state.counters.busy_log.hit(Instant::now()) {
                tracing::warn!(
                    handlers = state.limits.handlers,
                    unsaid,
                    "listener busy: every handler taken; answering 503"
                );
            }
            let mut r = Response::error(503, "busy: too many requests at once; retry");
            r.headers.push(("Retry-After", "1".into()));
            return to_hyper(r, None);
        }
    };
    let (tx, rx) = oneshot::channel();
    let blocking = Arc::clone(state);
    state
        .runtime
        .spawn_blocking(move || run_handler(&blocking, &request, permit, tx));
    match rx.await {
        Ok(answer) => to_hyper(answer.response, answer.stream),
        Err(_) => to_hyper(
            Response::error(500, "internal error (this is a bug; please report it)"),
            None,
        ),
    }
}

/// Runs the handler (and a streamed body's producer) on this blocking
/// thread, holding `permit` throughout.
fn run_handler(
    state: &State,
    request: &Request,
    _permit: OwnedSemaphorePermit,
    answer: oneshot::Sender<Answer>,
) {
    let panicked = || {
        tracing::error!(path = ?crate::error::clip(&request.path), "request handler panicked");
        Response::error(500, "internal error (this is a bug; please report it)")
    };
    let mut response =
        catch_unwind(AssertUnwindSafe(|| (state.handler)(request))).unwrap_or_else(|_| panicked());
    let producer = match std::mem::replace(&mut response.body, Body::Bytes(Vec::new())) {
        Body::Bytes(b) => {
            response.body = Body::Bytes(b);
            let _ = answer.send(Answer {
                response,
                stream: None,
            });
            return;
        }
        Body::Stream(p) => p,
    };
    let (chunks, receiver) = mpsc::channel(STREAM_AHEAD);
    let mut sink = Sink {
        head: Some((response, answer)),
        chunks,
        receiver: Some(receiver),
        runtime: state.runtime.clone(),
        read_timeout: state.limits.read_timeout,
        deadline: Instant::now() + MAX_STREAM_TIME,
    };
    let outcome =
        catch_unwind(AssertUnwindSafe(|| producer(&mut sink))).unwrap_or_else(|_| Err(panicked()));
    match (outcome, sink.head.take()) {
        // Nothing sent yet: answer the error instead.
        (Err(refusal), Some((_, answer))) => {
            let _ = answer.send(Answer {
                response: refusal,
                stream: None,
            });
        }
        // Cut short: the client sees the body end in an error.
        (Err(refusal), None) => {
            let why = format!("the response was cut short ({})", refusal.status);
            let send = sink
                .chunks
                .send_timeout(Err(io::Error::other(why)), state.limits.read_timeout);
            let _ = state.runtime.block_on(send);
        }
        (Ok(()), head) => {
            sink.head = head;
            sink.start(); // an empty body
        }
    }
}

/// The request's head and body, within the bounds; or the refusal.
async fn read(
    req: hyper::Request<Incoming>,
    limits: Limits,
    started: Instant,
) -> Result<Request, Response> {
    let (parts, mut body) = req.into_parts();
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return Err(Response::error(
            400,
            "the request target must be a path (/windows), not an absolute URL",
        ));
    }
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    let too_big = |n: u64| {
        Response::error(
            413,
            format!(
                "the body is {n} bytes or more, over the limit of {}",
                limits.max_body_bytes
            ),
        )
    };
    let max = limits.max_body_bytes as u64;
    let announced = hyper::body::Body::size_hint(&body).lower();
    if announced > max {
        return Err(too_big(announced));
    }
    let deadline = started + limits.request_timeout;
    let mut data = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = left.min(limits.read_timeout);
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(Response::error(408, "the body did not arrive in time")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Response::error(400, format!("cannot read the body: {e}")));
            }
            Ok(Some(Ok(frame))) => {
                if let Some(chunk) = frame.data_ref() {
                    if (data.len() + chunk.len()) as u64 > max {
                        return Err(too_big((data.len() + chunk.len()) as u64));
                    }
                    data.extend_from_slice(chunk);
                }
            }
        }
    }
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: data,
    })
}

fn to_hyper(
    r: Response,
    stream: Option<mpsc::Receiver<io::Result<Bytes>>>,
) -> hyper::Response<OutBody> {
    let body = match (stream, r.body) {
        (Some(rx), _) => OutBody::Stream(rx),
        (None, Body::Bytes(b)) => OutBody::Full(Some(Bytes::from(b))),
        (None, Body::Stream(_)) => OutBody::Full(None), // not reached: streams come with a receiver
    };
    let mut builder = hyper::Response::builder()
        .status(r.status)
        .header("Content-Type", r.content_type);
    // Answers change with every tick; only the assets compiled into the
    // binary say how long they may be cached.
    if !r.headers.iter().any(|(n, _)| *n == "Cache-Control") {
        builder = builder.header("Cache-Control", "no-store");
    }
    for (name, value) in &r.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(body).unwrap_or_else(|e| {
        let mut fallback = hyper::Response::new(OutBody::Full(Some(Bytes::from(format!(
            "{{\"error\": \"cannot build the response: {e}\"}}"
        )))));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// A response body: all at once, or chunks from a producer.
enum OutBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<io::Result<Bytes>>),
}

impl hyper::body::Body for OutBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.get_mut() {
            OutBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, OutBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            OutBody::Full(None) => SizeHint::with_exact(0),
            OutBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// A connection whose writes fail once they make no progress for
/// `timeout`: a client that stops reading its answer loses the connection
/// instead of holding it for ever.
struct WriteTimeout {
    stream: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> WriteTimeout {
        WriteTimeout {
            stream,
            timeout,
            stalled: None,
        }
    }

    /// `poll` (a write or flush), failing once it has been pending too long.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// `%XX` and `+` decoded; invalid escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let digits = (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                );
                if let (Some(h), Some(l)) = digits {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let r = Request {
            method: "GET".into(),
            path: "/windows".into(),
            query: "resource=qemu%2F100&limit=5&x=a+b&bad=%zz&end=%4".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(
            r.params(),
            [
                ("resource".into(), "qemu/100".into()),
                ("limit".into(), "5".into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn a_repeated_warning_is_logged_once_a_minute_with_what_was_left_unsaid() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.hit(t0), Some(0), "the first is logged");
        for i in 1..=12_000u64 {
            assert_eq!(throttle.hit(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(throttle.hit(t0 + Duration::from_secs(59)), None);
        assert_eq!(
            throttle.hit(t0 + Throttle::EVERY),
            Some(12_001),
            "a minute on: one line saying how many more"
        );
        assert_eq!(
            throttle.hit(t0 + Throttle::EVERY + Duration::from_secs(1)),
            None
        );
        assert_eq!(throttle.hit(t0 + Throttle::EVERY * 3), Some(1));
    }
}
