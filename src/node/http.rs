//! The metrics endpoint: a minimal HTTP/1.1 responder over `std::net`, on one thread of
//! the client's ([`Client::start_metrics_server`]).
//!
//! It answers `GET /metrics` (the OpenMetrics text of [`Client::metrics_text`]) and
//! `GET /healthz` (200 "healthy" while writes are accepted, 503 with the reason when they
//! are refused), and nothing else: any other path is 404, any other method 405. A request
//! is untrusted input, so everything is bounded: one connection at a time, a request head
//! of at most [`MAX_REQUEST_BYTES`] that must arrive within [`IO_TIMEOUT`], a response
//! written within the same time, and the connection closed after each response. A client
//! that stalls holds the thread for [`IO_TIMEOUT`] at most; the next scrape waits that
//! long. A hand-written responder rather than an HTTP crate: two fixed GET routes need no
//! more, and an HTTP server crate would bring an async runtime or a thread pool into the
//! library that C and C++ programs link.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use super::*;

/// The longest request head read (request line and headers); a longer one is refused
/// with 431. A scraper's GET is a few hundred bytes.
pub(super) const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client has to send its request head, and then again to take the response.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the thread waits for a connection before it looks at the stop flag again.
const ACCEPT_WAIT: Duration = Duration::from_millis(100);

/// A running metrics endpoint.
pub(super) struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// Parses a request head (everything before the blank line): the route it asks for, or the
/// response refusing it.
fn parse_request(head: &[u8]) -> std::result::Result<Route, Response> {
    let bad = |why: &str| Response::text("400 Bad Request", format!("bad request: {why}\n"));
    let text = std::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not METHOD TARGET VERSION"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Response::text(
            "505 HTTP Version Not Supported",
            "only HTTP/1.x is served\n",
        ));
    }
    let path = target.split('?').next().unwrap_or("");
    let route = match path {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Health,
        _ => {
            return Err(Response::text(
                "404 Not Found",
                "not found: this endpoint serves GET /metrics and GET /healthz\n",
            ));
        }
    };
    if method != "GET" {
        let mut r = Response::text("405 Method Not Allowed", "only GET is served\n");
        r.allow = true;
        return Err(r);
    }
    Ok(route)
}

/// Reads a request head within [`MAX_REQUEST_BYTES`] and `deadline`: the bytes before the
/// blank line, or the response refusing the request (`None`: the client went away).
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Option<std::result::Result<Vec<u8>, Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(&buf) {
            buf.truncate(end);
            return Some(Ok(buf));
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Some(Err(Response::text(
                "431 Request Header Fields Too Large",
                format!("request refused: its head is longer than {MAX_REQUEST_BYTES} bytes\n"),
            )));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Some(Err(timed_out()));
        }
        // At most one byte past the limit is kept: enough to know the head is too long.
        let room = (MAX_REQUEST_BYTES + 1 - buf.len().min(MAX_REQUEST_BYTES)).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            // Closed before a whole head: nothing to answer.
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Some(Err(timed_out()));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn timed_out() -> Response {
    Response::text(
        "408 Request Timeout",
        format!(
            "request refused: not received within {} s\n",
            IO_TIMEOUT.as_secs()
        ),
    )
}

/// Where the head ends: the first blank line (CRLF CRLF, or LF LF from lenient clients).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the endpoint needs of the node: shared with the client, as the background loop's.
struct Source {
    options: ClientOptions,
    node: Arc<OpenNode>,
    poisoned: Arc<Mutex<Option<String>>>,
}

impl Source {
    fn respond(&self, route: Route) -> Response {
        let poisoned = self.poisoned.lock().clone();
        match route {
            Route::Metrics => Response {
                status: "200 OK",
                content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body: super::metrics::render(&self.options, &self.node, poisoned.as_deref()),
                allow: false,
            },
            Route::Health => match super::health::health_of(Some(&self.node), poisoned.as_deref())
            {
                Health::Healthy => Response::text("200 OK", "healthy\n"),
                refused @ Health::WritesRefused(_) => {
                    Response::text("503 Service Unavailable", format!("{refused}\n"))
                }
            },
        }
    }

    /// Serves one connection: one request, one response, then the connection is closed.
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let response = match read_head(&mut stream, Instant::now() + IO_TIMEOUT) {
            None => return,
            Some(Err(refusal)) => refusal,
            Some(Ok(head)) => match parse_request(&head) {
                Err(refusal) => refusal,
                Ok(route) => {
                    // Rendering only reads; a bug in it answers 500 and the endpoint goes on.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.respond(route)
                    })) {
                        Ok(r) => r,
                        Err(payload) => {
                            let what = crate::error::panic_text(payload.as_ref()).to_string();
                            log::error!(
                                "node {}: the metrics endpoint panicked ({what})",
                                self.options.node_id
                            );
                            Response::text("500 Internal Server Error", format!("{what}\n"))
                        }
                    }
                }
            },
        };
        if let Err(e) = write_within(&mut stream, &response.bytes(), Instant::now() + IO_TIMEOUT)
        {
            log::debug!(
                "node {}: metrics endpoint: the response was not taken: {e}",
                self.options.node_id
            );
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes all of `bytes` by `deadline`: a timeout on each write alone would let a client
/// that takes a byte every second hold the thread for as many seconds as the response has
/// bytes.
fn write_within(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `listener` has a connection to accept, or [`ACCEPT_WAIT`] passes.
fn wait_readable(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = i32::try_from(ACCEPT_WAIT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the duration of the call; an error (EINTR) just ends
    // the wait early.
    unsafe { libc::poll(&mut fd, 1, timeout) };
}

fn run(source: &Source, listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => source.serve(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait_readable(listener),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!(
                    "node {}: metrics endpoint: accept failed: {e}",
                    source.options.node_id
                );
                std::thread::sleep(ACCEPT_WAIT);
            }
        }
    }
}

/// Splits "HOST:PORT" ("[v6]:PORT" for an IPv6 address) and resolves it.
fn resolve_addr(addr: &str) -> Result<SocketAddr> {
    let invalid = |reason: String| Error::InvalidOptions {
        field: "metrics_addr",
        reason,
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("'{addr}' is not HOST:PORT")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(format!("'{addr}': '{port}' is not a port (0-65535)")))?;
    if host.is_empty() {
        return Err(invalid(format!("'{addr}' has no host")));
    }
    crate::transport::resolve(host, port).map_err(|e| invalid(format!("'{addr}': {e}")))
}

impl Client {
    /// Serves the metrics endpoint on `addr` ("HOST:PORT"; port 0 picks a free one) from a
    /// thread of the client's: `GET /metrics` ([`Client::metrics_text`]) and `GET /healthz`
    /// (200 while writes are accepted, 503 with the reason when they are refused). Returns
    /// the address it listens on. Bounded: one connection at a time, request heads of at
    /// most 8 KiB received within 2 s, each connection closed after its response. Starting
    /// it again while it runs returns its address; `close()` (and
    /// [`Client::stop_metrics_server`]) stops it. `InvalidArgument` for an address that is
    /// not HOST:PORT, `TransportError` when it cannot be bound.
    pub fn start_metrics_server(&self, addr: &str) -> Result<SocketAddr> {
        self.with_node(|_| Ok(()))?;
        let Some(node) = self.node.read().clone() else {
            return Err(Error::NotOpen);
        };
        let mut server = self.metrics_server.lock();
        if let Some(s) = server.as_ref().filter(|s| !s.thread.is_finished()) {
            return Ok(s.addr);
        }
        let resolved = resolve_addr(addr)?;
        let bind_error = |source| {
            Error::Transport(crate::transport::TransportError::Bind {
                addr: addr.to_string(),
                source,
            })
        };
        let listener = TcpListener::bind(resolved).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let source = Source {
            options: self.options.clone(),
            node,
            poisoned: self.poisoned.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("softadastra-metrics-{}", self.options.node_id))
            .spawn({
                let stop = stop.clone();
                move || run(&source, &listener, &stop)
            })
            .map_err(|e| Error::Internal(format!("cannot start the metrics thread: {e}")))?;
        log::info!(
            "node {}: metrics endpoint on http://{local}/metrics (health: /healthz)",
            self.options.node_id
        );
        *server = Some(MetricsServer {
            stop,
            thread,
            addr: local,
        });
        Ok(local)
    }

    /// Stops the metrics endpoint and waits for its thread (at most the request it is
    /// serving). Stopping a client without one does nothing.
    pub fn stop_metrics_server(&self) {
        let Some(server) = self.metrics_server.lock().take() else {
            return;
        };
        server.stop.store(true, Ordering::SeqCst);
        if server.thread.join().is_err() {
            log::error!("node {}: the metrics thread panicked", self.options.node_id);
        }
        log::info!("node {}: metrics endpoint stopped", self.options.node_id);
    }

    /// The address the metrics endpoint listens on, while it runs.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server
            .lock()
            .as_ref()
            .filter(|s| !s.thread.is_finished())
            .map(|s| s.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(head: &str) -> std::result::Result<Route, &'static str> {
        parse_request(head.as_bytes()).map_err(|r| r.status)
    }

    #[test]
    fn only_get_of_the_two_paths_is_served() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x"), Ok(Route::Metrics));
        assert_eq!(route("GET /healthz HTTP/1.0"), Ok(Route::Health));
        assert_eq!(route("GET /metrics?name[]=x HTTP/1.1"), Ok(Route::Metrics));
        assert_eq!(route("GET / HTTP/1.1"), Err("404 Not Found"));
        assert_eq!(route("POST /metrics HTTP/1.1"), Err("405 Method Not Allowed"));
        assert_eq!(route("GET /metrics HTTP/2.0"), Err("505 HTTP Version Not Supported"));
        assert_eq!(route("GET /metrics"), Err("400 Bad Request"));
        assert_eq!(route("GET  /metrics HTTP/1.1"), Err("400 Bad Request"));
        assert_eq!(parse_request(b"GET /\xff HTTP/1.1").err().map(|r| r.status), Some("400 Bad Request"));
    }

    #[test]
    fn a_head_ends_at_the_first_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn addresses_are_host_colon_port() {
        assert_eq!(
            resolve_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve_addr("[::1]:9100").unwrap(),
            "[::1]:9100".parse::<SocketAddr>().unwrap()
        );
        for bad in ["9100", "host:", ":9100", "127.0.0.1:70000", "127.0.0.1:x"] {
            let e = resolve_addr(bad).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidArgument, "{bad}: {e}");
        }
    }
}
