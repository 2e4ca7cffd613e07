//! Nodes syncing over real TCP on loopback, in one process: two and three nodes converge
//! (also across a node that relays), a node that was offline catches up, a refused or
//! vanished peer is marked faulted while local work goes on and delivery resumes, and a
//! peer restarted mid-sync ends up with every acknowledged write. Ports are ephemeral and
//! every wait is bounded.

mod common;
mod hostile_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::trust_each_other;
use softadastra::sync::KeyStatus;
use softadastra::{Client, ClientOptions, Peer, PeerState, WriteBatch};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A persistent client with its transport started on 127.0.0.1 and a free port.
fn node(dir: &Path, id: &str) -> Client {
    node_on(dir, id, None)
}

fn node_on(dir: &Path, id: &str, port: Option<u16>) -> Client {
    node_tuned(dir, id, port, |_| {})
}

/// [`node_on`] with options changed by `tune`.
fn node_tuned(
    dir: &Path,
    id: &str,
    port: Option<u16>,
    tune: impl Fn(&mut ClientOptions),
) -> Client {
    for _ in 0..20 {
        let port = port.unwrap_or_else(free_port);
        let wal = dir.join(format!("{id}.wal"));
        let mut options =
            ClientOptions::persistent(id, wal.to_str().unwrap()).with_local_transport(port);
        tune(&mut options);
        let client = Client::new(options);
        client.open().unwrap();
        match client.start_transport() {
            Ok(()) => return client,
            Err(e) if e.to_string().contains("in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port found");
}

trait WithTransport {
    fn with_local_transport(self, port: u16) -> Self;
}

impl WithTransport for ClientOptions {
    fn with_local_transport(mut self, port: u16) -> Self {
        self.enable_transport = true;
        self.transport_host = "127.0.0.1".into();
        self.transport_port = port;
        self
    }
}

fn peer_of(id: &str, client: &Client) -> Peer {
    Peer::local(id, client.transport_address().unwrap().port())
}

/// Drives every client's transport until `done` holds (at most 10 s). Returns whether it did.
fn pump(clients: &[&Client], mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..100_000 {
        for c in clients {
            if c.transport_running() {
                c.process_transport_events_wait(256, Duration::from_millis(1))
                    .unwrap();
            }
        }
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
    false
}

fn same_data(a: &Client, b: &Client) -> bool {
    a.list("").unwrap() == b.list("").unwrap()
}

#[test]
fn two_nodes_converge_and_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "node-a"), node(dir.path(), "node-b"));
    trust_each_other(&[&a, &b]);
    for i in 0..100 {
        a.put(&format!("a/{i:03}"), format!("value {i}").as_bytes())
            .unwrap();
    }
    b.put("b/only", b"from b").unwrap();
    a.connect(&peer_of("node-b", &b)).unwrap();
    let ok = pump(&[&a, &b], || {
        same_data(&a, &b) && a.sync_state().unwrap().acknowledged_count == 100
    });
    assert!(ok, "a: {:?}\nb: {:?}", a.sync_state(), b.sync_state());
    assert_eq!(b.get("a/042").unwrap(), b"value 42");
    assert_eq!(a.get("b/only").unwrap(), b"from b");
    assert_eq!(a.sync_status("a/000").unwrap(), KeyStatus::Synced);
    let peers = a.peers().unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].node_id.as_str(), peers[0].state),
        ("node-b", PeerState::Connected)
    );
}

#[test]
fn three_nodes_converge_through_a_node_that_relays() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        node(dir.path(), "node-a"),
        node(dir.path(), "node-b"),
        node(dir.path(), "node-c"),
    );
    trust_each_other(&[&a, &b, &c]);
    // A chain: a - b - c. a and c never connect.
    a.connect(&peer_of("node-b", &b)).unwrap();
    c.connect(&peer_of("node-b", &b)).unwrap();
    assert!(pump(&[&a, &b, &c], || b
        .peers()
        .unwrap()
        .iter()
        .filter(|p| p.state == PeerState::Connected)
        .count()
        == 2));
    for i in 0..50 {
        a.put(&format!("a/{i}"), b"a").unwrap();
        c.put(&format!("c/{i}"), b"c").unwrap();
    }
    a.remove("a/7").unwrap();
    let ok = pump(&[&a, &b, &c], || {
        same_data(&a, &b) && same_data(&b, &c) && a.size().unwrap() == 99
    });
    assert!(
        ok,
        "sizes a={} b={} c={}",
        a.size().unwrap(),
        b.size().unwrap(),
        c.size().unwrap()
    );
    assert!(!c.contains("a/7").unwrap(), "the remove travelled two hops");
}

#[test]
fn a_node_that_was_offline_catches_up_even_from_a_pruned_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "node-a"), node(dir.path(), "node-b"));
    trust_each_other(&[&a, &b]);
    a.connect(&peer_of("node-b", &b)).unwrap();
    for i in 0..30 {
        a.put(&format!("k{i}"), b"v").unwrap();
    }
    assert!(pump(&[&a, &b], || a
        .sync_state()
        .unwrap()
        .acknowledged_count
        == 30));
    a.prune_completed().unwrap();
    // c was never connected: everything reaches it by the catch-up on connect.
    let c = node(dir.path(), "node-c");
    trust_each_other(&[&a, &c]);
    c.connect(&peer_of("node-a", &a)).unwrap();
    assert!(
        pump(&[&a, &b, &c], || same_data(&a, &c)),
        "c has {}",
        c.size().unwrap()
    );
}

#[test]
fn a_refused_peer_is_faulted_local_work_goes_on_and_delivery_resumes_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "node-a");
    let port = free_port();
    a.connect(&Peer::local("node-b", port)).unwrap();
    a.put("draft/1", b"hello").unwrap();
    assert!(pump(&[&a], || a
        .peers()
        .unwrap()
        .iter()
        .any(|p| p.state == PeerState::Faulted)));
    assert_eq!(
        a.get("draft/1").unwrap(),
        b"hello",
        "local reads keep working"
    );
    a.put("draft/2", b"still writing").unwrap();
    let state = a.sync_state().unwrap();
    assert_eq!(
        state.queued_count + state.in_flight_count,
        2,
        "sync work stays tracked"
    );
    a.tick(false).unwrap();
    // b comes up on the port a keeps redialling.
    let b = node_on(dir.path(), "node-b", Some(port));
    trust_each_other(&[&a, &b]);
    let ok = pump(&[&a, &b], || {
        same_data(&a, &b) && a.sync_state().unwrap().acknowledged_count == 2
    });
    assert!(ok, "{:?}", a.peers());
}

#[test]
fn a_peer_restarted_mid_sync_ends_with_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "node-a"), node(dir.path(), "node-b"));
    trust_each_other(&[&a, &b]);
    let b_port = b.transport_address().unwrap().port();
    a.connect(&Peer::local("node-b", b_port)).unwrap();
    assert!(pump(&[&a, &b], || !a.peers().unwrap().is_empty()
        && a.peers().unwrap()[0].state == PeerState::Connected));
    for i in 0..2_000 {
        a.put(&format!("k{i:04}"), &[7u8; 200]).unwrap();
    }
    // Let part of it through, then restart b.
    pump(&[&a, &b], || b.size().unwrap() > 0);
    b.close().unwrap();
    pump(&[&a], || {
        a.peers()
            .unwrap()
            .iter()
            .any(|p| p.state == PeerState::Faulted)
    });
    let acknowledged_before = a.sync_state().unwrap().acknowledged_count;
    drop(b);
    let b = node_on(dir.path(), "node-b", Some(b_port));
    let ok = pump(&[&a, &b], || {
        same_data(&a, &b) && a.sync_state().unwrap().acknowledged_count == 2_000
    });
    assert!(
        ok,
        "b has {}, a state {:?}",
        b.size().unwrap(),
        a.sync_state().unwrap()
    );
    assert!(acknowledged_before <= 2_000);
}

#[test]
fn a_thousand_keys_overwritten_a_thousand_times_offline_keep_a_small_outbox_and_sync_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("node-a.wal");
    // Offline: no transport, no peer, every write kept for sync. Batches of one write per
    // key keep the test quick; each write is an operation with its own number.
    let a = Client::new(ClientOptions::fast("node-a", wal.to_str().unwrap()));
    a.open().unwrap();
    for round in 0..1_000u32 {
        let mut batch = WriteBatch::new();
        for k in 0..1_000u32 {
            batch.put(format!("k{k:03}"), format!("{k}@{round}"));
        }
        a.write_batch(&batch).unwrap();
    }
    let counted = |c: &Client| c.sync_state().unwrap().outbox_size;
    assert_eq!(counted(&a), 1_000_000, "every write is still counted");
    let small = 2 * 1_000;
    assert!(
        a.outbox_entry_count().unwrap() <= small,
        "{}",
        a.outbox_entry_count().unwrap()
    );
    // Opened again from its log, the outbox is rebuilt just as small.
    a.close().unwrap();
    drop(a);
    let a = node_tuned(dir.path(), "node-a", None, |o| o.auto_flush = false);
    assert_eq!(counted(&a), 1_000_000);
    assert!(
        a.outbox_entry_count().unwrap() <= small,
        "{}",
        a.outbox_entry_count().unwrap()
    );

    // A peer appears: it ends with the newest value of each key, every operation is
    // acknowledged, and each key reads synced.
    let b = node(dir.path(), "node-b");
    trust_each_other(&[&a, &b]);
    a.connect(&peer_of("node-b", &b)).unwrap();
    let ok = pump(&[&a, &b], || {
        b.size().unwrap() == 1_000 && a.sync_state().unwrap().acknowledged_count == 1_000_000
    });
    assert!(
        ok,
        "b has {}, a: {:?}",
        b.size().unwrap(),
        a.sync_state().unwrap()
    );
    assert_eq!(b.get("k042").unwrap(), b"42@999");
    assert_eq!(b.list("").unwrap(), a.list("").unwrap());
    assert_eq!(a.sync_status("k999").unwrap(), KeyStatus::Synced);

    // Nothing acknowledged is lost across restarts of both.
    a.close().unwrap();
    b.close().unwrap();
    drop((a, b));
    let a = node_tuned(dir.path(), "node-a", None, |o| o.auto_flush = false);
    let b = node(dir.path(), "node-b");
    // Acknowledged work is done: it is not kept, counted again or sent again.
    let state = a.sync_state().unwrap();
    let unfinished = state.pending_count + state.queued_count + state.in_flight_count;
    assert_eq!((unfinished, state.failed_count), (0, 0), "{state:?}");
    assert_eq!(a.sync_status("k000").unwrap(), KeyStatus::Synced);
    assert_eq!(b.get("k999").unwrap(), b"999@999");
    assert_eq!(b.size().unwrap(), 1_000);
}

#[test]
fn keys_beyond_the_push_limit_reach_a_new_peer_by_catch_up_and_its_vector_acknowledges_them() {
    let dir = tempfile::tempdir().unwrap();
    let tune = |o: &mut ClientOptions| {
        o.sync_push_key_limit = 100;
        o.manual_clock = true;
        o.auto_flush = false;
    };
    // Offline: 1,000 keys written 10 times; the outbox pushes 100 keys itself.
    let a = node_tuned(dir.path(), "node-a", None, tune);
    for round in 0..10u32 {
        let mut batch = WriteBatch::new();
        for k in 0..1_000u32 {
            batch.put(format!("k{k:03}"), format!("{k}@{round}"));
        }
        a.write_batch(&batch).unwrap();
    }
    let state = a.sync_state().unwrap();
    assert_eq!((state.outbox_size, state.queued_count), (10_000, 10_000));
    let entries = a.outbox_entry_count().unwrap();
    assert!(
        entries <= 150,
        "100 keyed entries and a few runs, not {entries}"
    );
    assert_eq!(a.sync_status("k050").unwrap(), KeyStatus::WaitingToSync);
    assert_eq!(a.sync_status("k500").unwrap(), KeyStatus::WaitingToSync);
    // The same after a restart: rebuilt from the log with the same limit.
    a.close().unwrap();
    drop(a);
    let a = node_tuned(dir.path(), "node-a", None, tune);
    assert_eq!(a.sync_state().unwrap().queued_count, 10_000);
    assert!(a.outbox_entry_count().unwrap() <= 150);

    // A peer appears: the catch-up it asks for on connecting brings every key.
    let b = node_tuned(dir.path(), "node-b", None, |o| o.manual_clock = true);
    trust_each_other(&[&a, &b]);
    a.connect(&peer_of("node-b", &b)).unwrap();
    let has_all = || {
        b.size().unwrap() == 1_000
            && b.get("k000").is_ok_and(|v| v == b"0@9")
            && b.get("k999").is_ok_and(|v| v == b"999@9")
    };
    assert!(pump(&[&a, &b], has_all), "b has {}", b.size().unwrap());
    assert_eq!(b.list("").unwrap(), a.list("").unwrap());
    // a's next periodic request (30 s on its clock) has b send its vector, which shows b
    // holds everything: a's work is all acknowledged.
    a.advance_clock(30_000).unwrap();
    let acknowledged = || a.sync_state().unwrap().acknowledged_count == 10_000;
    assert!(
        pump(&[&a, &b], acknowledged),
        "{:?}",
        a.sync_state().unwrap()
    );
    assert_eq!(a.sync_status("k050").unwrap(), KeyStatus::Synced);
    assert_eq!(a.sync_status("k500").unwrap(), KeyStatus::Synced);
    let state = a.sync_state().unwrap();
    assert_eq!(
        state.failed_count + state.in_flight_count + state.queued_count,
        0
    );
    assert_eq!(a.outbox_entry_count().unwrap(), 0);
}

#[test]
fn a_key_removed_while_a_peer_was_away_past_the_horizon_stays_removed() {
    // a collects the tombstone of k 200 ms after b went silent; b comes back with k's old
    // value, which it wrote itself. A node c that meets b first gets that value, then
    // meets a: the full state from a makes both forget it, also across restarts.
    let dir = tempfile::tempdir().unwrap();
    let short = |o: &mut ClientOptions| o.tombstone_horizon_ms = 200;
    let a = node_tuned(dir.path(), "node-a", None, short);
    let b = node(dir.path(), "node-b");
    trust_each_other(&[&a, &b]);
    b.connect(&peer_of("node-a", &a)).unwrap();
    b.put("k", b"old").unwrap();
    b.put("other", b"kept").unwrap();
    assert!(pump(&[&a, &b], || a.get("k").is_ok_and(|v| v == b"old")
        && b.sync_state().unwrap().acknowledged_count == 2));
    b.close().unwrap();
    drop(b);

    a.remove("k").unwrap();
    assert!(
        a.entry("k").unwrap().is_some_and(|e| e.value.is_none()),
        "a tombstone first"
    );
    // b is trusted and silent past the horizon: the tombstone goes.
    assert!(
        pump(&[&a], || a.entry("k").unwrap().is_none()),
        "a collected k's tombstone"
    );

    // b comes back with k's old value; c meets it first and gets the value too.
    let b = node(dir.path(), "node-b");
    assert_eq!(b.get("k").unwrap(), b"old");
    let c = node(dir.path(), "node-c");
    trust_each_other(&[&a, &b, &c]);
    c.connect(&peer_of("node-b", &b)).unwrap();
    assert!(
        pump(&[&b, &c], || c.get("k").is_ok_and(|v| v == b"old")),
        "c got the old value from b"
    );
    c.connect(&peer_of("node-a", &a)).unwrap();
    b.connect(&peer_of("node-a", &a)).unwrap();
    let settled = || {
        [&a, &b, &c]
            .iter()
            .all(|n| !n.contains("k").unwrap() && n.get("other").is_ok_and(|v| v == b"kept"))
    };
    assert!(
        pump(&[&a, &b, &c], settled),
        "k: a {:?}, b {:?}, c {:?}",
        a.entry("k"),
        b.entry("k"),
        c.entry("k")
    );

    // Both restart (the forgetting is in b's log; a's log still holds the tombstone), and
    // sync again: k stays removed.
    a.close().unwrap();
    b.close().unwrap();
    drop((a, b));
    let a = node_tuned(dir.path(), "node-a", None, short);
    let b = node(dir.path(), "node-b");
    assert!(!a.contains("k").unwrap() && !b.contains("k").unwrap());
    b.connect(&peer_of("node-a", &a)).unwrap();
    c.connect(&peer_of("node-a", &a)).unwrap();
    b.put("after", b"restart").unwrap();
    assert!(pump(&[&a, &b, &c], || {
        a.contains("after").unwrap() && c.contains("after").unwrap()
    }));
    for n in [&a, &b, &c] {
        assert!(!n.contains("k").unwrap(), "{}", n.options().node_id);
        assert_eq!(n.get("other").unwrap(), b"kept");
    }
}

#[test]
fn a_connected_peer_is_waited_for_whatever_the_horizon() {
    // With a horizon of 1 ms, a tombstone still waits for a connected peer's Vector (sent
    // on connecting and every 30 s): the peer is heard from as long as it is connected.
    let dir = tempfile::tempdir().unwrap();
    let a = node_tuned(dir.path(), "node-a", None, |o| o.tombstone_horizon_ms = 1);
    let b = node(dir.path(), "node-b");
    trust_each_other(&[&a, &b]);
    b.connect(&peer_of("node-a", &a)).unwrap();
    a.put("k", b"v").unwrap();
    assert!(pump(&[&a, &b], || b.contains("k").unwrap()));
    a.remove("k").unwrap();
    assert!(pump(&[&a, &b], || b
        .entry("k")
        .unwrap()
        .is_some_and(|e| e.value.is_none())));
    // Two collections' worth of time (they run every 2 s); b's last Vector lacks the
    // removal.
    let until = Instant::now() + Duration::from_millis(4_500);
    pump(&[&a, &b], || Instant::now() > until);
    assert!(
        a.entry("k").unwrap().is_some(),
        "kept while b is connected and has not shown it has the removal"
    );
    // b connects again: its Vector, sent on connecting, has the removal.
    let peer = peer_of("node-a", &a);
    b.disconnect(&peer).unwrap();
    b.connect(&peer).unwrap();
    assert!(
        pump(&[&a, &b], || a.entry("k").unwrap().is_none()),
        "collected once b's Vector has it"
    );
}

#[test]
fn transport_calls_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let off = Client::new(ClientOptions::memory_only("node-x"));
    off.open().unwrap();
    let err = off.start_transport().unwrap_err();
    assert_eq!(err.code(), softadastra::ErrorCode::TransportError);
    assert!(
        off.stop_transport().is_ok(),
        "stopping a disabled transport is safe"
    );
    let a = node(dir.path(), "node-a");
    a.start_transport().unwrap(); // twice is fine
    let err = a.connect(&Peer::local("bad id", 4000)).unwrap_err();
    assert_eq!(err.code(), softadastra::ErrorCode::InvalidArgument);
    let err = a.connect(&Peer::local("node-b", 0)).unwrap_err();
    assert_eq!(err.code(), softadastra::ErrorCode::InvalidArgument);
    a.stop_transport().unwrap();
    a.stop_transport().unwrap();
    assert!(!a.transport_running());
    assert_eq!(
        a.process_transport_events(8).unwrap_err().code(),
        softadastra::ErrorCode::TransportError
    );
    a.put("still", b"works").unwrap();
}

/// A peer played by hand, with a key `victim` trusts: on its own thread (the test's thread
/// pumps the victim meanwhile), completes TLS and sends its Hello as `id`, then hands the
/// connection back for the test to misuse.
fn raw_peer(victim: &Client, id: &str) -> std::thread::JoinHandle<hostile_support::Wire> {
    use softadastra::transport::message::{Hello, Message, kind};
    use std::io::Write;
    let addr = victim.transport_address().unwrap();
    let (wire, fingerprint) = hostile_support::tls_wire_pending(addr);
    victim.trust_peer(id, &fingerprint).unwrap();
    let id = id.to_string();
    std::thread::spawn(move || {
        let mut s = wire.finish();
        let mut payload = Vec::new();
        Message::Hello(Hello {
            protocol_version: softadastra::transport::PROTOCOL_VERSION,
            node_id: id.clone(),
            display_name: id,
            capabilities: vec![],
            auth_scheme: 0,
            auth_data: vec![],
            instance_id: 7,
        })
        .encode(&mut payload);
        let mut frame = Vec::new();
        softadastra::transport::frame::encode(&mut frame, kind::HELLO, &payload);
        s.write_all(&frame).unwrap();
        s
    })
}

#[test]
fn a_peer_sending_garbage_is_dropped_and_the_node_keeps_working() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "node-a"), node(dir.path(), "node-b"));
    trust_each_other(&[&a, &b]);
    a.connect(&peer_of("node-b", &b)).unwrap();
    let evil = raw_peer(&a, "node-evil");
    assert!(pump(&[&a, &b], || a
        .peers()
        .unwrap()
        .iter()
        .filter(|p| p.state == PeerState::Connected)
        .count()
        == 2));
    let mut evil = evil.join().unwrap();
    evil.write_all(&[0xff; 4096]).unwrap();
    assert!(pump(&[&a, &b], || a
        .peers()
        .unwrap()
        .iter()
        .any(
            |p| p.node_id == "node-evil" && p.state != PeerState::Connected
        )));
    a.put("after/garbage", b"fine").unwrap();
    assert!(pump(&[&a, &b], || b.contains("after/garbage").unwrap()));
}

#[test]
fn a_peer_that_stops_reading_never_stalls_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "node-a"), node(dir.path(), "node-b"));
    trust_each_other(&[&a, &b]);
    a.connect(&peer_of("node-b", &b)).unwrap();
    // A peer that completes the handshake and then never reads a byte.
    let _stuck = raw_peer(&a, "node-stuck");
    assert!(pump(&[&a, &b], || a
        .peers()
        .unwrap()
        .iter()
        .filter(|p| p.state == PeerState::Connected)
        .count()
        == 2));
    let value = vec![9u8; 1024];
    for i in 0..20_000 {
        a.put(&format!("bulk/{i:05}"), &value).unwrap();
        if i % 500 == 0 {
            a.process_transport_events(256).unwrap();
            b.process_transport_events(256).unwrap();
        }
    }
    let ok = pump(&[&a, &b], || {
        b.size().unwrap() == 20_000 && a.sync_state().unwrap().acknowledged_count == 20_000
    });
    assert!(
        ok,
        "b has {} of 20000 ({:?})",
        b.size().unwrap(),
        a.sync_state().unwrap()
    );
}

#[test]
fn connect_and_disconnect_on_a_closed_client_say_it_is_not_open() {
    let client = Client::new(ClientOptions::memory_only("closed-node"));
    // Even with a host that would not resolve: the state is checked first.
    let peer = Peer::new("far-node", "no-such-host.invalid", 9);
    for result in [client.connect(&peer), client.disconnect(&peer)] {
        let e = result.unwrap_err();
        assert_eq!(e.code(), softadastra::ErrorCode::InvalidState, "{e}");
    }
}
