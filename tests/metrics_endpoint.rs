//! The metrics endpoint of a running node, scraped over loopback with a plain HTTP client
//! (a `TcpStream`): the families are there and their values move (a put counts as a write,
//! a connected peer as connected, its traffic as bytes and frames, its ACKs as ACKs);
//! `/healthz` is 200 while writes are accepted and 503 with the reason once a full file
//! system made the log refuse them; anything but `GET /metrics` and `GET /healthz` is
//! refused, and a request that is too long or too slow is cut off without stopping the
//! endpoint. Ports are ephemeral, every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, ErrorCode, Health, HealthWatch, Peer};

/// Sends `request` as is and reads the whole response (the endpoint closes after it).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `GET path`: the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    parse(&exchange(addr, request.as_bytes()))
}

fn parse(response: &str) -> (u16, String) {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no length in {head:?}"));
    assert_eq!(body.len(), length, "{response}");
    (status, body.to_string())
}

/// The value of one series (`name{labels}`) in a scrape.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// A persistent node with its transport on 127.0.0.1.
fn node(dir: &Path, id: &str) -> Client {
    let wal = dir.join(format!("{id}.wal"));
    common::client_with_transport(&ClientOptions::persistent(id, wal.to_str().unwrap()), None)
}

/// Drives both transports until `done` holds (10 s at most).
fn pump(clients: &[&Client], mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for c in clients {
            c.process_transport_events_wait(256, Duration::from_millis(5))
                .unwrap();
        }
        if done() {
            return true;
        }
    }
    false
}

#[test]
fn scraping_a_running_node_shows_its_writes_peers_traffic_and_acks_move() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "metrics-a");
    let b = node(dir.path(), "metrics-b");
    common::trust_each_other(&[&a, &b]);
    let addr = a.start_metrics_server("127.0.0.1:0").unwrap();
    assert_eq!(a.metrics_address(), Some(addr));
    assert_ne!(addr.port(), 0, "port 0 picks a free port");
    assert_eq!(
        a.start_metrics_server("127.0.0.1:0").unwrap(),
        addr,
        "started twice: the running endpoint"
    );

    let before = scrape(addr);
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert_eq!(value(&before, "softadastra_local_writes_total"), 0.0);
    assert_eq!(value(&before, "softadastra_writes_accepted"), 1.0);
    assert_eq!(
        value(&before, "softadastra_peers{state=\"connected\"}"),
        0.0
    );
    assert!(
        before.contains("softadastra_node_info{node_id=\"metrics-a\""),
        "{before}"
    );

    a.connect(&Peer::local(
        "metrics-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    let connected = pump(&[&a, &b], || {
        a.peers()
            .unwrap()
            .iter()
            .any(|p| p.state == softadastra::PeerState::Connected)
    });
    assert!(connected, "a connected to b");
    // Written while connected: it travels in a batch, and b acknowledges it.
    a.put("greeting", b"hello").unwrap();
    let acked = pump(&[&a, &b], || {
        a.sync_state().unwrap().acknowledged_count == 1
    });
    assert!(
        acked,
        "the put reached b and was acknowledged: {:?}",
        a.sync_state()
    );
    assert_eq!(b.get("greeting").unwrap(), b"hello");

    let after = scrape(addr);
    assert_eq!(value(&after, "softadastra_local_writes_total"), 1.0);
    assert_eq!(value(&after, "softadastra_local_operations_total"), 1.0);
    assert_eq!(
        value(&after, "softadastra_local_write_bytes_total"),
        ("greeting".len() + "hello".len()) as f64
    );
    assert_eq!(value(&after, "softadastra_peers{state=\"connected\"}"), 1.0);
    assert!(value(&after, "softadastra_sync_acks_received_total") >= 1.0);
    assert_eq!(
        value(&after, "softadastra_sync_operations_acknowledged_total"),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "softadastra_outbox_operations{state=\"acknowledged\"}"
        ),
        1.0
    );
    for series in [
        "softadastra_transport_sent_bytes_total",
        "softadastra_transport_received_bytes_total",
        "softadastra_transport_frames_sent_total",
        "softadastra_transport_frames_received_total",
        "softadastra_wal_records_appended_total",
        "softadastra_wal_appended_bytes_total",
        "softadastra_wal_fsync_duration_seconds_count",
        "softadastra_wal_size_bytes",
    ] {
        assert!(value(&after, series) > 0.0, "{series}:\n{after}");
    }
    assert!(
        value(&after, "softadastra_wal_fsync_duration_seconds_count")
            > value(&before, "softadastra_wal_fsync_duration_seconds_count"),
        "the durable put was synced"
    );
    // b made the ACK: its own figures say so.
    let b_text = b.metrics_text().unwrap();
    assert!(value(&b_text, "softadastra_sync_acks_sent_total") >= 1.0);

    let (status, body) = get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "healthy\n"));

    a.close().unwrap();
    assert_eq!(a.metrics_address(), None, "close stops the endpoint");
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn only_get_metrics_and_get_healthz_are_answered() {
    let client = Client::new(ClientOptions::memory_only("routes-node"));
    client.open().unwrap();
    let addr = client.start_metrics_server("127.0.0.1:0").unwrap();
    let status = |request: &str| parse(&exchange(addr, request.as_bytes())).0;
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(status("GET /metrics/x HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(
        status("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        405
    );
    assert_eq!(status("HEAD /healthz HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(status("GET /metrics HTTP/2\r\n\r\n"), 505);
    assert_eq!(status("nonsense\r\n\r\n"), 400);
    assert_eq!(status("GET /healthz?verbose=1 HTTP/1.0\r\n\r\n"), 200);
    let response = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        response.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{response}"
    );
    assert!(response.contains("Connection: close"), "{response}");
}

#[test]
fn a_request_too_long_or_too_slow_is_cut_off_and_the_endpoint_goes_on() {
    let client = Client::new(ClientOptions::memory_only("bounded-node"));
    client.open().unwrap();
    let addr = client.start_metrics_server("127.0.0.1:0").unwrap();

    // A head that never ends: refused once it passes the limit, without reading it all.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let header = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n",
        "a".repeat(1000)
    );
    let mut sent = 0usize;
    let mut refused = String::new();
    for _ in 0..64 {
        if stream.write_all(header.as_bytes()).is_err() {
            break;
        }
        sent += header.len();
    }
    let _ = stream.read_to_string(&mut refused);
    assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
    assert!(sent >= 8 * 1024, "it was given more than the limit: {sent}");

    // A client that connects and sends nothing is answered 408 within the bound.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    silent.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");

    // And the endpoint still serves.
    assert_eq!(get(addr, "/healthz").0, 200);
}

#[test]
fn a_bad_metrics_address_is_refused_as_invalid() {
    let client = Client::new(ClientOptions::memory_only("address-node"));
    client.open().unwrap();
    for bad in ["localhost", "127.0.0.1:http", ":9100"] {
        let e = client.start_metrics_server(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}: {e}");
    }
    let closed = Client::new(ClientOptions::memory_only("closed-node"));
    assert_eq!(
        closed
            .start_metrics_server("127.0.0.1:0")
            .unwrap_err()
            .code(),
        ErrorCode::InvalidState
    );
}

const CHILD_ENV: &str = "SOFTADASTRA_TEST_METRICS_FULL_DIR";
const FILE_SIZE_LIMIT: u64 = 2 * 1024 * 1024;

/// Sets this process's file size limit (soft) to `bytes`.
fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: FILE_SIZE_LIMIT,
    };
    // SAFETY: a valid rlimit for the call's duration.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
}

/// In the child, whose files may not grow past FILE_SIZE_LIMIT: writes until the log
/// refuses, then checks what the node says, over HTTP and to the health watch.
fn refused_writes_child(dir: &Path) {
    let wal = dir.join("full.wal");
    let client = Client::new(ClientOptions::persistent(
        "full-node",
        wal.to_str().unwrap(),
    ));
    client.open().unwrap();
    let addr = client.start_metrics_server("127.0.0.1:0").unwrap();
    assert_eq!(get(addr, "/healthz").0, 200);
    let value_bytes = vec![0x5au8; 100 * 1024];
    let mut written = 0;
    let err = loop {
        assert!(written < 1000, "the size limit never stopped a put");
        match client.put(&format!("k{written}"), &value_bytes) {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("file too large"), "{err}");
    let refused = client.put("later", b"1").unwrap_err();
    assert!(refused.to_string().contains("refuses writes"), "{refused}");

    let Health::WritesRefused(reason) = client.health() else {
        panic!("the node still says it is healthy");
    };
    assert!(
        reason.contains("refuses writes") && reason.contains("file too large"),
        "{reason}"
    );
    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, format!("writes refused: {reason}\n"));
    let text = scrape(addr);
    assert_eq!(value(&text, "softadastra_writes_accepted"), 0.0);
    assert_eq!(
        value(&text, "softadastra_write_errors_total{kind=\"no_space\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "softadastra_write_errors_total{kind=\"refused\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "softadastra_local_writes_total"),
        written as f64
    );
    assert_eq!(client.get("k0").unwrap(), value_bytes, "reads go on");

    // The watch: while no file can be written (the probe fails) it waits for the grace;
    // once the grace is over it asks for the exit. Time is given, not waited for.
    let start = Instant::now();
    let mut watch = HealthWatch::new(Duration::from_secs(60));
    limit_file_size(0);
    assert_eq!(
        watch.check(&client, start),
        None,
        "probe fails: keep waiting"
    );
    assert_eq!(watch.check(&client, start + Duration::from_secs(30)), None);
    assert_eq!(
        watch.check(&client, start + Duration::from_secs(60)),
        Some(reason.clone()),
        "the grace is over"
    );
    // Once files can be written again, the next probe asks for the exit at once.
    limit_file_size(FILE_SIZE_LIMIT);
    let mut watch = HealthWatch::new(Duration::from_secs(60));
    assert_eq!(watch.check(&client, start), Some(reason));
    std::fs::write(dir.join("done"), written.to_string()).unwrap();
}

#[test]
fn healthz_is_503_with_the_reason_once_a_full_file_system_makes_the_log_refuse_writes() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        refused_writes_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::run_with_file_size_limit(
        "healthz_is_503_with_the_reason_once_a_full_file_system_makes_the_log_refuse_writes",
        CHILD_ENV,
        dir.path(),
        FILE_SIZE_LIMIT,
    );
    let written: usize = std::fs::read_to_string(dir.path().join("done"))
        .unwrap()
        .parse()
        .unwrap();
    // Reopened (what the restart does), the node is healthy and has every acknowledged write.
    let wal = dir.path().join("full.wal");
    let client = Client::new(ClientOptions::persistent(
        "full-node",
        wal.to_str().unwrap(),
    ));
    client.open().unwrap();
    assert_eq!(client.health(), Health::Healthy);
    assert_eq!(client.size().unwrap(), written);
    client.put("after-reopen", b"ok").unwrap();
}
