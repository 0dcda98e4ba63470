//! A small HTTP/1.1 server on plain threads, with every bound the listener
//! promises.
//!
//! Why not `tiny_http` (the crate DESIGN.md names): version 0.12 reads
//! header lines without a length limit, starts a thread for every
//! connection and sets no read timeout, so one client sending a header
//! without an end, or many clients sending nothing, grows memory or threads
//! without bound; and its accept loop ends on the first accept error, so a
//! timeout cannot be set on the listening socket either. A server for a few
//! JSON endpoints is short enough to own:
//!
//! - one acceptor thread hands connections to a fixed number of workers
//!   through a bounded queue; when the queue is full the connection gets a
//!   503 at once (so a flood costs the flood, not the workers);
//! - each read waits at most `read_timeout`, and a whole request must
//!   arrive within `request_timeout`, so a client that stalls or drips loses
//!   its connection (408);
//! - the request head is at most [`MAX_HEAD_BYTES`] with at most
//!   [`MAX_HEADERS`] headers (431), the body at most `max_body_bytes` (413)
//!   and sent with `Content-Length` (411 otherwise);
//! - one request per connection (`Connection: close`), the handler run
//!   under `catch_unwind` (500), nothing a client sends can panic a thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request line plus headers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 100;

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_body_bytes: usize,
    pub(super) read_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) workers: usize,
    pub(super) queue: usize,
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

/// A response.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
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
            body,
        }
    }

    /// `{"error": message}`.
    pub(super) fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }
}

/// What answers requests.
pub(super) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The running server; dropping it stops and joins its threads.
pub(super) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    /// Each worker's connection in progress, so stopping can cut it short
    /// (a slow client must not delay the recorder's shutdown).
    busy: Arc<Vec<Mutex<Option<TcpStream>>>>,
}

impl Server {
    /// Serves `listener` with `handler` within `limits`.
    pub(super) fn start(
        listener: TcpListener,
        limits: Limits,
        handler: Handler,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<TcpStream>(limits.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let n = limits.workers.max(1);
        let busy: Arc<Vec<Mutex<Option<TcpStream>>>> =
            Arc::new((0..n).map(|_| Mutex::new(None)).collect());
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let handler = Arc::clone(&handler);
            let (stop, busy) = (Arc::clone(&stop), Arc::clone(&busy));
            workers.push(
                std::thread::Builder::new()
                    .name(format!("incident-recorder-http-{i}"))
                    .spawn(move || worker(&rx, &handler, limits, &stop, &busy[i]))?,
            );
        }
        let flag = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name("incident-recorder-http-accept".into())
            .spawn(move || accept(listener, tx, &flag, limits))?;
        Ok(Server {
            addr,
            stop,
            acceptor: Some(acceptor),
            workers,
            busy,
        })
    }

    /// The address served.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, blocked in accept(), with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        for slot in self.busy.iter() {
            if let Some(s) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn accept(listener: TcpListener, tx: SyncSender<TcpStream>, stop: &AtomicBool, limits: Limits) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(s) => match tx.try_send(s) {
                Ok(()) => {}
                Err(TrySendError::Full(s)) => {
                    tracing::warn!(
                        "listener busy: every worker and queue slot taken; answering 503"
                    );
                    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                    let busy = Response::error(503, "busy: too many requests at once; retry");
                    let _ = write_response(&s, &busy);
                }
                Err(TrySendError::Disconnected(_)) => break,
            },
            Err(e) => {
                // Out of descriptors, a connection reset before accept: wait
                // a little instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50).min(limits.read_timeout));
            }
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<TcpStream>>,
    handler: &Handler,
    limits: Limits,
    stop: &AtomicBool,
    busy: &Mutex<Option<TcpStream>>,
) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(stream) = next else { return };
        if stop.load(Ordering::SeqCst) {
            return; // stopping: queued connections are closed unanswered
        }
        *busy.lock().unwrap_or_else(|e| e.into_inner()) = stream.try_clone().ok();
        serve(&stream, handler, limits);
        *busy.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Reads one request from `stream`, answers it, closes.
fn serve(stream: &TcpStream, handler: &Handler, limits: Limits) {
    let response = match read_request(stream, limits) {
        Ok(request) => match catch_unwind(AssertUnwindSafe(|| handler(&request))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(path = ?crate::error::clip(&request.path), "request handler panicked");
                Response::error(500, "internal error (this is a bug; please report it)")
            }
        },
        Err(Refused::Quiet) => return,
        Err(Refused::With(r)) => r,
    };
    let _ = stream.set_write_timeout(Some(limits.read_timeout));
    let _ = write_response(stream, &response);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Why a request was not handed to the handler.
enum Refused {
    /// The client went away or never spoke: no answer.
    Quiet,
    /// Answer this.
    With(Response),
}

fn read_request(stream: &TcpStream, limits: Limits) -> Result<Request, Refused> {
    let deadline = Instant::now() + limits.request_timeout;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(Refused::With(Response::error(
                431,
                format!("the request line and headers are over {MAX_HEAD_BYTES} bytes"),
            )));
        }
        let room = (MAX_HEAD_BYTES + 4 - buf.len()).min(chunk.len());
        match read_some(stream, &mut chunk[..room], deadline, limits.read_timeout) {
            Ok(0) if buf.is_empty() => return Err(Refused::Quiet),
            Ok(0) => {
                return Err(Refused::With(Response::error(
                    400,
                    "the request ended inside its headers",
                )));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) && !buf.is_empty() => {
                return Err(Refused::With(Response::error(
                    408,
                    "the request did not arrive in time",
                )));
            }
            Err(_) => return Err(Refused::Quiet),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end.0])
        .map_err(|_| Refused::With(Response::error(400, "the request head is not UTF-8")))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!(
            "invalid request line {:?}",
            crate::error::clip(request_line)
        )));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || method.is_empty() || !target.starts_with('/')
    {
        return Err(bad(format!(
            "invalid request line {:?}",
            crate::error::clip(request_line)
        )));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if headers.len() >= MAX_HEADERS {
            return Err(Refused::With(Response::error(
                431,
                format!("more than {MAX_HEADERS} headers"),
            )));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!(
                "invalid header line {:?}",
                crate::error::clip(line)
            )));
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(Refused::With(Response::error(
            411,
            "chunked bodies are not accepted; send a Content-Length",
        )));
    }
    let mut lengths = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>());
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(Ok(n)), None) => n,
        _ => return Err(bad("invalid or repeated Content-Length")),
    };
    if length > limits.max_body_bytes {
        return Err(Refused::With(Response::error(
            413,
            format!(
                "the body is {length} bytes, over the limit of {}",
                limits.max_body_bytes
            ),
        )));
    }
    if length > 0
        && request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let mut w = stream;
        let _ = stream.set_write_timeout(Some(limits.read_timeout));
        let _ = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = buf.split_off(head_end.1);
    body.truncate(length);
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match read_some(stream, &mut chunk[..want], deadline, limits.read_timeout) {
            Ok(0) => return Err(bad("the body is shorter than its Content-Length")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {
                return Err(Refused::With(Response::error(
                    408,
                    "the body did not arrive in time",
                )));
            }
            Err(_) => return Err(Refused::Quiet),
        }
    }
    request.body = body;
    Ok(request)
}

fn bad(message: impl Into<String>) -> Refused {
    Refused::With(Response::error(400, message))
}

/// Reads what is there, waiting at most `per_read` and never past `deadline`.
fn read_some(
    mut stream: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    per_read: Duration,
) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left.min(per_read)))?;
    stream.read(buf)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// (end of the head, start of the body) if the blank line has arrived.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((p, p + 4));
    }
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| (p, p + 2))
}

fn write_response(mut stream: &TcpStream, r: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
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
    fn the_head_ends_at_a_blank_line() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"),
            Some((20, 24))
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nx"), Some((14, 16)));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
