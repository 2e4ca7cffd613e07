//! `node start` as an operator meets it (issue 14, item 8), driving the real binary: it
//! warns about a WAL in a temporary directory and a generic node id; monitoring that runs
//! `status` in loops never keeps it from starting; a data directory whose path is too long
//! for a Unix socket still runs, its control socket placed elsewhere. Every node runs on
//! 127.0.0.1 on a free port, every loop and wait is bounded, every child is reaped.

mod cli_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cli_support::{Node, cli, free_port, json, stderr, stdout, wait_for};

#[test]
fn node_start_warns_about_a_temporary_wal_and_a_generic_node_id() {
    // The test's directories are under /tmp: the very thing the guide advises against.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data, &["--node-id", "test"]);
    let log = node.log();
    let warned = |needle: &str| {
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains(needle))
    };
    assert!(
        warned("a temporary directory the system may clean"),
        "{log}"
    );
    assert!(warned("node id \"test\" is a generic name"), "{log}");
    let out = node.out();
    assert!(
        out.contains("temporary directory") && out.contains("generic name"),
        "{out}"
    );

    // A real id: only the directory is warned about.
    let other = dir.path().join("other");
    let node = Node::start(&other, &["--node-id", "edge-store-kampala-01"]);
    let log = node.log();
    assert!(!log.contains("generic name"), "{log}");
    assert!(log.contains("temporary directory"), "{log}");
}

#[test]
fn status_loops_never_keep_a_node_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(&data, &["--node-id", "till-monitored", "node", "init"]);
    // A log that takes a moment to replay: each status holds the WAL that long.
    let value = dir.path().join("value");
    std::fs::write(&value, vec![b'x'; 4 << 20]).unwrap();
    let value = value.to_str().unwrap();
    for i in 0..12 {
        json(
            &data,
            &["store", "put", &format!("k{i}"), "--value-file", value],
        );
    }
    // Two monitors run `status` back to back, as fast as they can, until told to stop
    // (at most 2 minutes).
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let monitors: Vec<_> = (0..2)
        .map(|_| {
            let (stop, runs, data) = (stop.clone(), runs.clone(), data.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
                    let out = cli(&data, &["status", "--json"]);
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "status failed: {}",
                        stderr(&out)
                    );
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let busy = wait_for(Duration::from_secs(20), || {
        (runs.load(Ordering::SeqCst) >= 4).then_some(())
    });
    assert!(busy.is_some(), "the monitors run");
    // Every start succeeds (a start that could not take the WAL exits with an error, and
    // Node::start fails the test with its log).
    for round in 0..4 {
        let mut node = Node::start(&data, &["--node-id", "till-monitored"]);
        let status = json(&data, &["status"]);
        assert_eq!(status["node"]["running"], true, "round {round}: {status}");
        assert_eq!(node.stop_with(libc::SIGTERM), Some(0), "round {round}");
        assert!(
            !data.join("node.starting").exists(),
            "round {round}: the announcement is gone once the node answers"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for m in monitors {
        m.join().expect("no status failed");
    }
}

/// Waits (15 s at most) until `status` on `data` reports a running node.
fn wait_running(data: &Path, node: &mut Node) {
    let running = wait_for(Duration::from_secs(15), || {
        if let Some(Ok(Some(_))) = node.child.as_mut().map(|c| c.try_wait()) {
            return Some(false);
        }
        let out = cli(data, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["node"]["running"] == true).then_some(true)
    });
    assert_eq!(running, Some(true), "{}{}", node.out(), node.log());
}

#[test]
fn a_data_directory_too_long_for_a_unix_socket_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Over 200 characters: <data>/control.sock would not fit a Unix socket's 108 bytes.
    let mut data = dir.path().to_path_buf();
    for part in 0..4 {
        data.push(format!("{part}-{}", "long".repeat(14)));
    }
    assert!(data.as_os_str().len() > 200, "{}", data.display());
    let port = free_port();
    let mut node = Node::spawn(&data, port, &["--node-id", "till-long"], 0);
    wait_running(&data, &mut node);
    let control = node
        .out()
        .lines()
        .find(|l| l.contains("control"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        !control.contains(&*data.to_string_lossy()) && control.contains(".sock"),
        "the socket is placed outside the data directory: {control}"
    );
    let socket = control
        .split(": ")
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(Path::new(&socket).exists(), "{socket}");
    // Commands reach the node through it (running: true), and its writes are its own.
    let put = json(&data, &["store", "put", "far/1", "away"]);
    assert_eq!(put["status"], "created");
    let get = json(&data, &["store", "get", "far/1"]);
    assert_eq!(get["value"], "away");
    let status = json(&data, &["status"]);
    assert_eq!(status["node"]["running"], true, "{status}");
    // A second start sees it running.
    let second = cli(
        &data,
        &[
            "node",
            "start",
            "--transport-port",
            &free_port().to_string(),
        ],
    );
    assert_eq!(second.status.code(), Some(1), "{}", stdout(&second));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    assert!(
        !Path::new(&socket).exists(),
        "the socket is removed at exit"
    );
}
