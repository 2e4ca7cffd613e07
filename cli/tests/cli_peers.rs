//! `peers` through the real binary with a discovery pair on loopback (issue 14, item 6):
//! one table (Node ID, Host, Port, State) for discovery and transport; each peer shows the
//! port it listens on, also the one whose connection this node accepted; two discovered
//! peers that dial each other keep one connection without a steady warning; an expired
//! peer stays listed with its address. Ports are ephemeral, every wait is bounded, every
//! child is reaped.

mod cli_support;

use std::path::Path;
use std::time::Duration;

use cli_support::{Node, cli, discovery_config, free_udp_port, json, stdout, wait_for};
use serde_json::Value;

/// `id`'s entry in the `peers --json` of the node on `data`.
fn peer(data: &Path, id: &str) -> Option<Value> {
    json(data, &["peers"])["peers"]
        .as_array()?
        .iter()
        .find(|p| p["node_id"] == id)
        .cloned()
}

/// Whether `id` is listed on `data` in `state` at 127.0.0.1:`port`.
fn listed_as(data: &Path, id: &str, state: &str, port: u16) -> bool {
    peer(data, id)
        .is_some_and(|p| p["state"] == state && p["host"] == "127.0.0.1" && p["port"] == port)
}

/// The WARN lines of a node's log about its peers (not, say, about its data directory).
fn peer_warnings(log: &str, other: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" WARN "))
        .filter(|l| l.contains(other) || l.contains("already connected") || l.contains("faulted"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_discovery_pair_shows_one_connection_at_listening_ports_and_expired_peers_stay_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (dir.path().join("a"), dir.path().join("b"));
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let (ca, cb) = (
        discovery_config(dir.path(), pa, pb),
        discovery_config(dir.path(), pb, pa),
    );
    cli_support::enroll(&[(&a_data, "disc-a"), (&b_data, "disc-b")]);
    let a = Node::start(&a_data, &["--node-id", "disc-a", "--config", &ca]);
    let mut b = Node::start(&b_data, &["--node-id", "disc-b", "--config", &cb]);
    // Both found and dialled each other; one connection is kept (the one disc-a dialled),
    // and each side shows the other's listening port, not a connection's source port.
    let both = wait_for(Duration::from_secs(20), || {
        (listed_as(&a_data, "disc-b", "connected", b.port)
            && listed_as(&b_data, "disc-a", "connected", a.port))
        .then_some(())
    });
    assert!(
        both.is_some(),
        "{:?}\n{:?}\n{}\n{}",
        peer(&a_data, "disc-b"),
        peer(&b_data, "disc-a"),
        a.log(),
        b.log()
    );
    // Redials of the connection the tie-break closed would come every 0.25, 0.5, 1, 2, 4 s:
    // 8 s of steady connection, checked twice a second, shows none.
    for _ in 0..16 {
        assert!(listed_as(&a_data, "disc-b", "connected", b.port));
        assert!(listed_as(&b_data, "disc-a", "connected", a.port));
        std::thread::sleep(Duration::from_millis(500));
    }
    for (log, other) in [(a.log(), "disc-b"), (b.log(), "disc-a")] {
        let warnings = peer_warnings(&log, other);
        assert!(warnings.is_empty(), "{warnings:#?}\n{log}");
    }
    // The table: one per peer, the guide's columns.
    let table = stdout(&cli(&a_data, &["peers"]));
    assert!(
        table.contains("Node ID") && table.contains("Host") && table.contains("State"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("disc-b") && l.contains("connected"));
    assert!(
        row.is_some_and(|r| r.contains(&b.port.to_string())),
        "{table}"
    );

    // b stops: after discovery's TTL (15 s) a lists it as expired, at its address, on
    // every call until it is pruned (minutes later).
    assert_eq!(b.stop_with(libc::SIGTERM), Some(0));
    let expired = wait_for(Duration::from_secs(40), || {
        listed_as(&a_data, "disc-b", "expired", b.port).then_some(())
    });
    assert!(
        expired.is_some(),
        "{:?}\n{}",
        peer(&a_data, "disc-b"),
        a.log()
    );
    assert!(
        listed_as(&a_data, "disc-b", "expired", b.port),
        "listed again"
    );
    let table = stdout(&cli(&a_data, &["peers"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("disc-b") && l.contains("expired")),
        "{table}"
    );
    let status = json(&a_data, &["status"]);
    assert_eq!(
        status["discovery"]["peers"], 0,
        "an expired peer is not known: {status}"
    );
}
