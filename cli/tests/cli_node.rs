//! The production guide's workflows, driving the real binary: `node start` runs a node with
//! its transport and control socket, and the other commands reach it through that socket
//! while it runs, or open the data directory themselves when it does not. Covered: restart
//! recovery, a peer that is down, two CLI nodes converging on loopback, the control socket
//! itself, graceful SIGTERM/SIGINT losing nothing, and start failures. Every node runs on
//! 127.0.0.1 on a free port, every wait is bounded, and every child is reaped.

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cli_support::{
    Node, cli, discovery_config, free_port, free_udp_port, json, stderr, stdout, wait_for,
};

#[test]
fn restart_recovery_put_restart_get() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &[]);
    let put = cli(
        &data,
        &["store", "put", "app/name", "Softadastra  restarted"],
    );
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0), "{}", node.log());
    let _again = Node::start(&data, &[]);
    let got = json(&data, &["store", "get", "app/name"]);
    assert_eq!(got["value"], "Softadastra  restarted");
    drop(_again);
    // And with no node running, the data directory is read directly.
    let got = json(&data, &["store", "get", "app/name"]);
    assert_eq!(got["value"], "Softadastra  restarted");
}

#[test]
fn a_peer_that_is_down_leaves_work_pending_and_local_reads_working() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ghost = format!("ghost@127.0.0.1:{}", free_port());
    let node = Node::start(&data, &["--peer", &ghost]);
    assert_eq!(
        cli(&data, &["store", "put", "draft/1", "hello"])
            .status
            .code(),
        Some(0)
    );
    let status = json(&data, &["sync", "status"]);
    assert!(status["outbox_size"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["acknowledged_count"], 0);
    assert_eq!(
        status["queued_count"].as_u64().unwrap() + status["pending_count"].as_u64().unwrap(),
        status["outbox_size"].as_u64().unwrap()
    );
    let tick = json(&data, &["sync", "tick"]);
    assert_eq!(tick["connected_peers"], 0);
    assert_eq!(tick["outcome"], "no_peers");
    let faulted = wait_for(Duration::from_secs(10), || {
        let peers = json(&data, &["peers"]);
        let p = peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["node_id"] == "ghost")?
            .clone();
        (p["state"] == "faulted").then_some(p)
    });
    let ghost_entry = faulted.unwrap_or_else(|| panic!("ghost never faulted\n{}", node.log()));
    // The peer entry of docs/cli-json.md.
    assert!(ghost_entry["host"].is_string() && ghost_entry["port"].is_u64());
    assert!(ghost_entry["state"].is_string() && ghost_entry["last_seen_ms"].is_u64());
    let text = stdout(&cli(&data, &["peers"]));
    assert!(text.contains("ghost") && text.contains("faulted"), "{text}");
    let got = json(&data, &["store", "get", "draft/1"]);
    assert_eq!(got["value"], "hello");
    assert!(
        node.log().contains("connection") && node.log().contains("failed"),
        "peer connection failures are logged\n{}",
        node.log()
    );
}

#[test]
fn two_cli_nodes_on_loopback_converge() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = dir.path().join("a");
    let b_data = dir.path().join("b");
    // Written while no node runs: a local write like any other, synced once A runs.
    let offline = cli(
        &a_data,
        &["--node-id", "till-a", "store", "put", "sale/0", "offline"],
    );
    assert_eq!(offline.status.code(), Some(0));
    // b names a's key with the peer; a trusts b with `peers trust` (before it starts).
    let a_print = cli_support::fingerprint(&a_data, "till-a");
    let b_print = cli_support::fingerprint(&b_data, "till-b");
    json(
        &a_data,
        &["--node-id", "till-a", "peers", "trust", "till-b", &b_print],
    );
    let a = Node::start(&a_data, &["--node-id", "till-a"]);
    let peer_a = format!("till-a@127.0.0.1:{}#{a_print}", a.port);
    let b = Node::start(&b_data, &["--node-id", "till-b", "--peer", &peer_a]);
    assert_eq!(
        cli(&a_data, &["store", "put", "sale/1", "from a"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        cli(&b_data, &["store", "put", "sale/2", "from b"])
            .status
            .code(),
        Some(0)
    );
    for (data, key, value) in [
        (&b_data, "sale/0", "offline"),
        (&b_data, "sale/1", "from a"),
        (&a_data, "sale/2", "from b"),
    ] {
        let seen = wait_for(Duration::from_secs(15), || {
            let out = cli(data, &["store", "get", key, "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["value"] == value).then_some(v)
        });
        assert!(
            seen.is_some(),
            "{key} never reached {}\n{}\n{}",
            data.display(),
            a.log(),
            b.log()
        );
    }
    let peers = json(&b_data, &["peers"]);
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["node_id"] == "till-a" && p["state"] == "connected"),
        "{peers}"
    );
    let acked = wait_for(Duration::from_secs(15), || {
        let s = json(&a_data, &["sync", "status"]);
        (s["acknowledged_count"].as_u64()? >= 1).then_some(())
    });
    assert!(acked.is_some(), "a's write was acknowledged by b");
}

#[test]
fn two_cli_nodes_find_each_other_by_discovery_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (dir.path().join("a"), dir.path().join("b"));
    let (pa, pb) = (free_udp_port(), free_udp_port());
    // Each node announces to the other's discovery port on loopback.
    let (ca, cb) = (
        discovery_config(dir.path(), pa, pb),
        discovery_config(dir.path(), pb, pa),
    );
    cli_support::enroll(&[(&a_data, "disc-a"), (&b_data, "disc-b")]);
    let a = Node::start(&a_data, &["--node-id", "disc-a", "--config", &ca]);
    let b = Node::start(&b_data, &["--node-id", "disc-b", "--config", &cb]);
    assert_eq!(json(&a_data, &["peers"])["discovery"], true);
    assert_eq!(
        cli(&a_data, &["store", "put", "found/1", "by discovery"])
            .status
            .code(),
        Some(0)
    );
    let seen = wait_for(Duration::from_secs(20), || {
        let out = cli(&b_data, &["store", "get", "found/1", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["value"] == "by discovery").then_some(())
    });
    assert!(
        seen.is_some(),
        "no convergence by discovery\n{}\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log().contains("discovered peer disc-b") || b.log().contains("discovered peer disc-a")
    );
}

#[test]
fn while_a_node_runs_commands_go_through_its_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &[]);
    let socket = data.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");
    // The WAL is locked by the node, yet every command works (through the node).
    assert_eq!(
        cli(&data, &["store", "put", "k", "v"]).status.code(),
        Some(0)
    );
    assert_eq!(json(&data, &["status"])["node"]["running"], true);
    assert_eq!(json(&data, &["node", "info"])["node_running"], true);
    assert_eq!(json(&data, &["store", "list"])["count"], 1);
    assert_eq!(json(&data, &["peers"])["transport"], true);
    assert_eq!(cli(&data, &["store", "remove", "k"]).status.code(), Some(0));
    let missing = cli(&data, &["store", "get", "k"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "key not found through the socket"
    );
    assert!(stderr(&missing).contains("key not found: k"));
    assert_eq!(
        cli(&data, &["store", "put", "", "x"]).status.code(),
        Some(2)
    );
    // A second node on the same data directory refuses to start.
    let second = cli(
        &data,
        &[
            "node",
            "start",
            "--transport-port",
            &free_port().to_string(),
        ],
    );
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    assert!(!socket.exists(), "the socket is removed at exit");
    // Without the node, commands open the data directory directly.
    assert_eq!(json(&data, &["status"])["node"]["running"], false);
}

#[test]
fn a_stale_control_socket_is_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(&data, &["node", "init"]);
    let socket = data.join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    // Commands fall back to the data directory...
    assert_eq!(json(&data, &["status"])["node"]["running"], false);
    // ...and a node starts, replacing the leftover.
    let node = Node::start(&data, &[]);
    assert!(
        node.log().contains("stale control socket"),
        "{}",
        node.log()
    );
}

#[test]
fn sigterm_and_sigint_stop_gracefully_losing_nothing() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut node = Node::start(&data, &[]);
        for i in 0..20 {
            let key = format!("k/{i:02}");
            assert_eq!(
                cli(&data, &["store", "put", &key, "v"]).status.code(),
                Some(0)
            );
        }
        assert_eq!(node.stop_with(signal), Some(0), "{}", node.log());
        let log = node.log();
        assert!(
            log.contains("received, stopping") && log.contains("runtime stopped"),
            "{log}"
        );
        assert!(node.out().contains("Softadastra node stopped."));
        let list = json(&data, &["store", "list", "k/"]);
        assert_eq!(list["count"], 20, "{list}");
    }
}

#[test]
fn writes_racing_a_sigterm_are_either_refused_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &[]);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut accepted = Vec::new();
            for i in 0..60 {
                let key = format!("race/{i:03}");
                if cli(&data, &["store", "put", &key, "v"]).status.code() == Some(0) {
                    accepted.push(key);
                }
            }
            accepted
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0), "{}", node.log());
    let accepted = writer.join().unwrap();
    assert!(!accepted.is_empty());
    for key in &accepted {
        assert_eq!(json(&data, &["store", "get", key])["value"], "v", "{key}");
    }
}

#[test]
fn the_log_has_timestamps_levels_and_the_node_id_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &["--node-id", "edge-01"]);
    assert_eq!(cli(&data, &["sync", "tick"]).status.code(), Some(0));
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    let log = node.log();
    for want in [
        "runtime started",
        "node metadata refreshed",
        "sync tick",
        "runtime stopped",
    ] {
        assert!(log.contains(want), "missing {want:?}\n{log}");
    }
    for line in log.lines() {
        let mut parts = line.split_whitespace();
        let ts = parts.next().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{line}"
        );
        let level = parts.next().unwrap();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "{line}"
        );
        assert_eq!(parts.next(), Some("node=edge-01"), "{line}");
    }
}

#[test]
fn node_start_prints_the_effective_configuration_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &["--node-id", "cfg-node"]);
    assert_eq!(node.stop_with(libc::SIGTERM), Some(0));
    let out = node.out();
    let config_at = out
        .find("Softadastra node configuration")
        .expect("config table");
    assert!(
        config_at < out.find("Starting Softadastra node").unwrap(),
        "{out}"
    );
    let port_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("transport.port"))
        .unwrap();
    assert!(
        port_line.contains(&node.port.to_string()) && port_line.contains("flag"),
        "{port_line}"
    );
    assert!(out.contains("Softadastra node started."), "{out}");
    assert!(
        out.contains(&format!("running on 127.0.0.1:{}", node.port)),
        "{out}"
    );
    let id_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("node_id"))
        .unwrap();
    assert!(id_line.contains("cfg-node"), "{id_line}");
}

#[test]
fn start_failures_exit_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut node = Node::spawn(&dir.path().join("busy"), port, &[], 0);
    assert_eq!(node.wait_exit(), Some(1));
    assert!(
        node.log().contains("transport start failed"),
        "{}",
        node.log()
    );
    assert!(!dir.path().join("busy/control.sock").exists());
    // WAL locked by another process (here: a WAL path shared with a running node; with a
    // node id given, since none is made up for a WAL that exists).
    let data = dir.path().join("locked");
    let running = Node::start(&data, &[]);
    let other = dir.path().join("other");
    let wal = data.join("node.wal");
    // The running node's id: without it, a data directory without a node id naming a WAL
    // that exists is refused before the WAL is tried.
    let id = std::fs::read_to_string(data.join("node-id")).unwrap();
    let out = cli_support::command()
        .arg("--data-dir")
        .arg(&other)
        .args(["--node-id", id.trim()])
        .args(["node", "start", "--transport-host", "127.0.0.1"])
        .args(["--transport-port", &free_port().to_string()])
        .env("SOFTADASTRA_WAL", &wal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );
    drop(running);
    // A data directory that is a file.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let out = cli(&file, &["node", "start"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn peers_trust_and_untrust_keep_the_trusted_list_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("till");
    let other = dir.path().join("other");
    let print = cli_support::fingerprint(&other, "till-9");
    let trusted = json(
        &data,
        &["--node-id", "till-1", "peers", "trust", "till-9", &print],
    );
    assert_eq!(trusted["trusted"][0]["node_id"], "till-9", "{trusted}");
    assert_eq!(trusted["trusted"][0]["fingerprint"], print.as_str());
    // Kept: listed by `peers` in a later command.
    let listed = json(&data, &["--node-id", "till-1", "peers"]);
    assert_eq!(listed["trusted"].as_array().unwrap().len(), 1, "{listed}");

    let bad = cli(
        &data,
        &["--node-id", "till-1", "peers", "trust", "till-9", "abc"],
    );
    assert_ne!(bad.status.code(), Some(0));
    assert!(stderr(&bad).contains("64 hex digits"), "{}", stderr(&bad));

    json(
        &data,
        &["--node-id", "till-1", "peers", "untrust", "till-9"],
    );
    let again = cli(
        &data,
        &["--node-id", "till-1", "peers", "untrust", "till-9"],
    );
    assert_ne!(again.status.code(), Some(0));
    assert!(stderr(&again).contains("not trusted"), "{}", stderr(&again));
    let listed = json(&data, &["--node-id", "till-1", "peers"]);
    assert!(listed["trusted"].as_array().unwrap().is_empty(), "{listed}");
}
