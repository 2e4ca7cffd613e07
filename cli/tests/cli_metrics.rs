//! `node start --metrics-addr` and `softadastra metrics`: the running node serves its
//! metrics and health over loopback (scraped here with a `TcpStream`), a put through the
//! CLI moves them, `softadastra metrics` prints the same families through the control
//! socket and fails (exit 1) when no node runs, and a metrics address that cannot be used
//! stops the start (exit 1 when it cannot be bound, 2 when it is not HOST:PORT). Ports are
//! ephemeral, every wait is bounded.

mod cli_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cli_support::{Node, cli, json, stderr, stdout};

/// `GET path` over a plain TCP connection: the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// The families of a metrics text (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(str::to_string)
        .collect()
}

/// The metrics address a running node reports in `status --json`.
fn metrics_addr(data: &std::path::Path) -> SocketAddr {
    let status = json(data, &["status"]);
    status["metrics"]["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics address: {status}"))
        .parse()
        .unwrap()
}

#[test]
fn node_start_serves_metrics_and_healthz_and_a_put_moves_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("till");
    let node = Node::start(&data, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&data);
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(
        node.out().contains(&format!("http://{addr}/metrics")),
        "{}",
        node.out()
    );

    let (status, before) = get(addr, "/metrics");
    assert_eq!(status, 200, "{before}");
    assert_eq!(value(&before, "softadastra_local_writes_total"), 0.0);
    assert_eq!(value(&before, "softadastra_writes_accepted"), 1.0);

    let put = cli(&data, &["store", "put", "greeting", "hello"]);
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    let (_, after) = get(addr, "/metrics");
    assert_eq!(value(&after, "softadastra_local_writes_total"), 1.0);
    assert_eq!(value(&after, "softadastra_local_write_bytes_total"), 13.0);
    assert_eq!(
        value(&after, "softadastra_outbox_operations{state=\"queued\"}"),
        1.0
    );
    assert!(
        value(&after, "softadastra_wal_fsync_duration_seconds_count")
            > value(&before, "softadastra_wal_fsync_duration_seconds_count")
    );
    assert_eq!(get(addr, "/healthz"), (200, "healthy\n".to_string()));

    let status = cli(&data, &["--no-color", "status"]);
    let text = stdout(&status);
    assert!(
        text.contains("health") && text.contains("healthy"),
        "{text}"
    );
    assert!(text.contains(&addr.to_string()), "{text}");
}

#[test]
fn softadastra_metrics_prints_the_families_the_endpoint_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("till");
    let _node = Node::start(&data, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&data);
    let out = cli(&data, &["metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let (_, served) = get(addr, "/metrics");
    assert!(printed.ends_with("# EOF\n"), "{printed}");
    assert_eq!(families(&printed), families(&served));
    assert!(families(&printed).len() >= 30, "{printed}");
    let doc = json(&data, &["metrics"]);
    assert_eq!(doc["command"], "metrics");
    let text = doc["text"].as_str().unwrap();
    assert_eq!(families(text), families(&served));
}

#[test]
fn softadastra_metrics_without_a_running_node_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("till");
    json(&data, &["node", "init"]);
    let out = cli(&data, &["metrics"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no node is running on data directory"),
        "{}",
        stderr(&out)
    );
    // No node at all: the same exit code.
    let none = cli(&dir.path().join("nothing"), &["metrics"]);
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
}

#[test]
fn a_metrics_address_that_cannot_be_used_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let busy = cli(
        &dir.path().join("busy"),
        &[
            "node",
            "start",
            "--transport-host",
            "127.0.0.1",
            "--transport-port",
            &cli_support::free_port().to_string(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert_eq!(busy.status.code(), Some(1), "{}", stderr(&busy));
    assert!(
        stderr(&busy).contains("metrics endpoint start failed"),
        "{}",
        stderr(&busy)
    );
    let bad = cli(
        &dir.path().join("bad"),
        &["node", "start", "--metrics-addr", "localhost"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("metrics.addr"), "{}", stderr(&bad));
}
