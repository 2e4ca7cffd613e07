//! Sync work through the real binary (issue 14, item 5): `sync status KEY` tells where one
//! key's change is; `sync retry` queues failed work again and it is sent again; failed work
//! that a peer later holds (delivered by a catch-up) reads acknowledged. A peer that takes
//! batches and never answers is played by hand (tests/hostile_support), so work fails
//! without any timing trick: with `max_retries = 0` one ACK timeout fails it. Every node
//! runs on 127.0.0.1 on a free port, every wait is bounded, every child is reaped.

mod cli_support;
#[path = "../../tests/hostile_support/mod.rs"]
mod hostile_support;

use std::path::Path;
use std::time::Duration;

use cli_support::{Node, cli, json, stderr, wait_for};
use serde_json::Value;
use softadastra::transport::message::Message;

/// A config file that fails sync work after its first attempt (no retries).
fn no_retries_config(dir: &Path) -> String {
    let config = dir.join("no-retries.toml");
    std::fs::write(&config, "[sync]\nmax_retries = 0\n").unwrap();
    config.to_str().unwrap().to_string()
}

/// The keys of the operations in a batch the node sent.
fn batch_keys(m: &Message) -> Vec<String> {
    match m {
        Message::Batch(b) => {
            let mut keys: Vec<String> = b.ops.iter().map(|o| o.key.clone()).collect();
            keys.sort();
            keys
        }
        _ => Vec::new(),
    }
}

/// A peer the node trusts (`peers trust`), connected and past the Hello, that never answers.
fn silent_peer(data: &Path, port: u16) -> hostile_support::Attacker {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let peer = hostile_support::Attacker::trusted_by(addr, |fingerprint| {
        let trusted = cli(data, &["peers", "trust", "silent-peer", fingerprint]);
        assert!(trusted.status.success(), "{}", stderr(&trusted));
    });
    hostile_support::Attacker::hello(peer, "silent-peer", "silent-peer", 0x51)
}

/// Waits (20 s at most) until `sync status` shows `failed` failed operations.
fn wait_failed(data: &Path, node: &Node, failed: u64) -> Value {
    wait_for(Duration::from_secs(20), || {
        let s = json(data, &["sync", "status"]);
        (s["failed_count"] == failed).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} failed never shown: {}\n{}",
            failed,
            json(data, &["sync", "status"]),
            node.log()
        )
    })
}

#[test]
fn sync_status_of_a_key_names_where_its_change_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    json(
        &data,
        &["--node-id", "till-key", "store", "put", "sale/1", "coffee"],
    );
    let status = json(&data, &["sync", "status", "sale/1"]);
    assert_eq!(status["command"], "sync status");
    assert_eq!(status["key"], "sale/1");
    assert_eq!(status["status"], "waiting_to_sync", "{status}");
    assert_eq!(status["label"], "waiting to sync");
    let table = cli(&data, &["sync", "status", "sale/1"]);
    assert!(
        cli_support::stdout(&table).contains("waiting_to_sync"),
        "{}",
        cli_support::stdout(&table)
    );
    // A key never written is not found (exit 1); the counters are still `sync status`.
    let missing = cli(&data, &["sync", "status", "sale/2", "--json"]);
    assert_eq!(missing.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(error["error"]["code"], "not_found", "{error}");
    assert_eq!(json(&data, &["sync", "status"])["queued_count"], 1);
}

#[test]
fn sync_retry_queues_failed_work_again_and_it_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = no_retries_config(dir.path());
    let node = Node::start(&data, &["--node-id", "till-retry", "--config", &config]);
    json(&data, &["store", "put", "sale/1", "coffee"]);
    json(&data, &["store", "put", "sale/2", "tea"]);
    let mut peer = silent_peer(&data, node.port);
    let first = peer.recv_until(Duration::from_secs(10), |m| batch_keys(m).len() == 2);
    assert!(first.is_some(), "the work was sent once\n{}", node.log());
    wait_failed(&data, &node, 2);
    assert_eq!(
        json(&data, &["sync", "status", "sale/1"])["status"],
        "sync_failed"
    );

    let retry = json(&data, &["sync", "retry"]);
    assert_eq!(retry["command"], "sync retry");
    assert_eq!(retry["node_running"], true, "{retry}");
    assert_eq!(retry["failed_requeued"], 2, "{retry}");
    assert_eq!(retry["pending_queued"], 0, "{retry}");
    let again = peer.recv_until(Duration::from_secs(10), |m| batch_keys(m).len() == 2);
    assert_eq!(
        again.as_ref().map(batch_keys),
        Some(vec!["sale/1".to_string(), "sale/2".to_string()]),
        "the failed work was sent again\n{}",
        node.log()
    );
    // Still unanswered, it fails again after its one attempt; nothing is left to retry
    // until then.
    wait_failed(&data, &node, 2);
    assert!(
        node.log().contains("sync retry (requested): 2 failed"),
        "{}",
        node.log()
    );
}

#[test]
fn failed_work_reads_acknowledged_once_a_peer_has_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = dir.path().join("a");
    let b_data = dir.path().join("b");
    cli_support::enroll(&[(&a_data, "till-a"), (&b_data, "hub-b")]);
    let config = no_retries_config(dir.path());
    let a = Node::start(&a_data, &["--node-id", "till-a", "--config", &config]);
    json(&a_data, &["store", "put", "sale/1", "coffee"]);
    json(&a_data, &["store", "put", "sale/2", "tea"]);
    {
        let mut peer = silent_peer(&a_data, a.port);
        let sent = peer.recv_until(Duration::from_secs(10), |m| batch_keys(m).len() == 2);
        assert!(sent.is_some(), "{}", a.log());
        wait_failed(&a_data, &a, 2);
    } // the silent peer goes away

    // A real peer connects and catches up on a's operations...
    let peer_arg = format!("till-a@127.0.0.1:{}", a.port);
    let mut b = Node::start(&b_data, &["--node-id", "hub-b", "--peer", &peer_arg]);
    let has = |key: &str| {
        let out = cli(&b_data, &["store", "get", key, "--json"]);
        out.status.success().then_some(())
    };
    let caught_up = wait_for(Duration::from_secs(20), || has("sale/1").and(has("sale/2")));
    assert!(caught_up.is_some(), "{}\n{}", a.log(), b.log());
    // ...and the vector it sends at its next connection shows a that it holds them.
    assert_eq!(b.stop_with(libc::SIGTERM), Some(0));
    let _b = Node::start(&b_data, &["--node-id", "hub-b", "--peer", &peer_arg]);
    let acknowledged = wait_for(Duration::from_secs(20), || {
        let s = json(&a_data, &["sync", "status"]);
        (s["failed_count"] == 0 && s["acknowledged_count"].as_u64() > Some(0)).then_some(s)
    });
    assert!(
        acknowledged.is_some(),
        "{}\n{}",
        json(&a_data, &["sync", "status"]),
        a.log()
    );
    assert_eq!(
        json(&a_data, &["sync", "status", "sale/2"])["status"],
        "synced"
    );
}
