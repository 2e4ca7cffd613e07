//! A node under a flood of held connections (issue 9, attack 8): the real binary, started
//! with a small open-files limit, keeps room for its control socket, its WAL and its
//! configured peers. Connections come from several loopback addresses (127.0.0.x), as
//! from several machines; every wait is bounded.

mod cli_support;
#[path = "../../tests/hostile_support/mod.rs"]
mod hostile_support;

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use cli_support::{Node, cli, wait_for};

/// A TCP connection to `to` from the loopback address `from` (any port).
fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> Option<TcpStream> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the addresses are
    // valid sockaddr_in values of the given length.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let stream = TcpStream::from_raw_fd(fd);
        let src = sockaddr(SocketAddrV4::new(from, 0));
        if libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) != 0 {
            return None;
        }
        let dst = sockaddr(to);
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            return None;
        }
        Some(stream)
    }
}

#[test]
fn a_flood_of_held_connections_leaves_room_for_commands_and_real_peers() {
    // Attack 8: 1,100 held connections exhausted a 1024-descriptor limit: CLI commands
    // failed or took 10-30 s and a real peer could not reconnect.
    let dir = tempfile::tempdir().unwrap();
    let till_data = dir.path().join("till");
    let hub_data = dir.path().join("hub");
    cli_support::enroll(&[(&till_data, "till-fd"), (&hub_data, "hub-fd")]);
    let mut till = Node::start(&till_data, &["--node-id", "till-fd"]);
    let till_port = till.port;
    let peer = format!("till-fd@127.0.0.1:{till_port}");
    let hub = Node::start_limited(
        &hub_data,
        &["--node-id", "hub-fd", "--peer", &peer],
        Some(200),
    );
    let hub_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, hub.port);
    // 300 connections from 20 addresses, held open: more than the descriptors the node has.
    let started = Instant::now();
    let mut held = Vec::new();
    for i in 0..300u32 {
        let from = Ipv4Addr::new(127, 0, 1, 1 + (i % 20) as u8);
        if let Some(s) = connect_from(from, hub_addr) {
            held.push(s);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "flood took too long"
        );
    }
    assert!(
        held.len() >= 250,
        "the kernel took the connections ({})",
        held.len()
    );

    // Commands still reach the node through its control socket...
    let status = cli(&hub_data, &["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", hub.log());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["node"]["running"], true);
    let put = cli(&hub_data, &["store", "put", "hub/key", "during the flood"]);
    assert_eq!(put.status.code(), Some(0), "{}", hub.log());

    // ...and the configured peer, restarted, is redialled through its kept place.
    assert_eq!(till.stop_with(libc::SIGTERM), Some(0));
    let mut till = Node::spawn(&till_data, till_port, &["--node-id", "till-fd"], 1);
    till.wait_ready().unwrap();
    let put = cli(&till_data, &["store", "put", "till/key", "from till"]);
    assert_eq!(put.status.code(), Some(0));
    let value_at = |data: &std::path::Path, key: &str| {
        let out = cli(data, &["store", "get", key, "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()?["value"]
            .as_str()
            .map(str::to_string)
    };
    let synced = wait_for(Duration::from_secs(20), || {
        let both = value_at(&hub_data, "till/key").as_deref() == Some("from till")
            && value_at(&till_data, "hub/key").as_deref() == Some("during the flood");
        both.then_some(())
    });
    assert!(synced.is_some(), "{}\n{}", hub.log(), till.log());
    assert!(
        hub.log().contains("holds its limit of"),
        "the refused connections were logged: {}",
        hub.log()
    );
    drop(held);
}

#[test]
fn the_configured_clock_drift_decides_what_is_refused_and_sync_status_counts_it() {
    use softadastra::store::Version;
    use softadastra::sync::SyncBatch;
    use softadastra::transport::message::Message;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "[sync]\nmax_clock_drift_ms = 2000\n").unwrap();
    let data = dir.path().join("data");
    let config_arg = config.to_str().unwrap();
    let node = Node::start(&data, &["--node-id", "drift-node", "--config", config_arg]);
    let line = node
        .out()
        .lines()
        .find(|l| l.trim_start().starts_with("sync.max_clock_drift_ms"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("2000") && line.contains("file"), "{line}");

    let addr = format!("127.0.0.1:{}", node.port).parse().unwrap();
    // A peer the operator trusted (`softadastra peers trust`), gone rogue.
    let peer = hostile_support::Attacker::trusted_by(addr, |fingerprint| {
        let trusted = cli(&data, &["peers", "trust", "drift-peer", fingerprint]);
        assert!(trusted.status.success(), "{trusted:?}");
    });
    let mut peer = hostile_support::Attacker::hello(peer, "drift-peer", "drift-peer", 0x5eed);
    let now = hostile_support::now_ms();
    let at = |ms: u64| Version::from_millis(ms).0;
    let ops = vec![
        hostile_support::forged("drift-peer", 1, at(now + 10_000), "ahead", b"10 s"),
        hostile_support::forged("drift-peer", 2, at(now), "now", b"fine"),
    ];
    peer.send(&Message::Batch(SyncBatch {
        origin: "drift-peer".into(),
        ops,
        superseded: vec![],
    }));
    let ack = peer.recv_until(Duration::from_secs(10), |m| matches!(m, Message::Ack(_)));
    assert!(
        matches!(&ack, Some(Message::Ack(a)) if a.ranges == vec![(2, 2)]),
        "{ack:?}"
    );
    let status = cli(&data, &["sync", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["refused_count"], 1, "{v}");
    let get = cli(&data, &["store", "get", "ahead"]);
    assert_eq!(
        get.status.code(),
        Some(1),
        "the refused value is not stored"
    );
}
