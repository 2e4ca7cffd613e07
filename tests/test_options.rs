//! The options for applications' own tests (issue 17): ephemeral ports read back after
//! binding, a manual clock that timeouts, retries, backoff, redials and stale peers follow
//! (tested without sleeping for them), and disk faults on demand.

use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, ErrorCode, KeyStatus, Peer, PeerState};

mod common;

/// A memory-only client on loopback with an ephemeral transport port, opened and started.
fn ephemeral(id: &str, tune: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut o = ClientOptions::memory_only(id);
    o.enable_transport = true;
    o.transport_host = "127.0.0.1".into();
    o.ephemeral_transport_port = true;
    tune(&mut o);
    let c = Client::new(o);
    c.open().unwrap();
    c.start_transport().unwrap();
    c
}

/// Drives `clients` until `done`, at most `turns` turns of at most 5 ms each.
fn pump(clients: &[&Client], turns: usize, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..turns {
        for c in clients {
            c.process_transport_events_wait(64, Duration::from_millis(5))
                .unwrap();
            c.tick(false).unwrap();
        }
        if done() {
            return true;
        }
    }
    done()
}

#[test]
fn ephemeral_transport_ports_are_read_back_and_peers_connect_on_them() {
    let a = ephemeral("till-a", |_| {});
    let b = ephemeral("till-b", |_| {});
    let (pa, pb) = (a.transport_port().unwrap(), b.transport_port().unwrap());
    assert!(pa != 0 && pb != 0 && pa != pb, "{pa} {pb}");
    assert_eq!(a.transport_address().unwrap().port(), pa);
    common::trust_each_other(&[&a, &b]);
    a.connect(&Peer::new("till-b", "127.0.0.1", pb)).unwrap();
    a.put("sale/1", b"9.50").unwrap();
    assert!(pump(&[&a, &b], 400, || b.get("sale/1").is_ok()));
    assert!(common::connected(&a, "till-b"));
}

#[test]
fn the_ports_of_a_transport_or_discovery_that_does_not_run_are_clear_errors() {
    let mut o = ClientOptions::memory_only("till-a");
    o.enable_transport = true;
    o.ephemeral_transport_port = true;
    let c = Client::new(o);
    assert_eq!(
        c.transport_port().unwrap_err().code(),
        ErrorCode::InvalidState
    );
    c.open().unwrap();
    let e = c.transport_port().unwrap_err();
    assert_eq!(e.code(), ErrorCode::TransportError);
    assert!(e.to_string().contains("not running"), "{e}");
    let e = c.discovery_port().unwrap_err();
    assert_eq!(e.code(), ErrorCode::DiscoveryError);
}

#[test]
fn advance_clock_without_a_manual_clock_is_refused() {
    let c = Client::new(ClientOptions::memory_only("till-a"));
    let e = c.advance_clock(1).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidState);
    assert!(e.to_string().contains("manual_clock"), "{e}");
}

#[test]
fn ack_timeouts_retries_and_their_backoff_follow_the_manual_clock() {
    let mut o = ClientOptions::memory_only("till-a");
    o.manual_clock = true;
    o.require_ack = true;
    o.ack_timeout_ms = 1_000;
    o.retry_interval_ms = 500;
    o.max_sync_retries = 1;
    let c = Client::new(o);
    c.open().unwrap();
    c.put("sale/1", b"9.50").unwrap();
    // Carried by hand: the batch is in flight, and no ACK will come.
    let batch = c.take_sync_batch().unwrap().expect("a batch");
    c.sync_batch_sent(&batch, true).unwrap();
    assert_eq!(c.sync_status("sale/1").unwrap(), KeyStatus::Syncing);

    c.advance_clock(999).unwrap();
    assert_eq!(c.retry_expired().unwrap(), 0, "the ACK is not late yet");
    c.advance_clock(1).unwrap();
    assert_eq!(c.retry_expired().unwrap(), 1, "the ACK timed out");
    assert_eq!(c.sync_status("sale/1").unwrap(), KeyStatus::Retrying);

    // The first retry waits retry_interval_ms after the timeout.
    c.advance_clock(499).unwrap();
    assert!(c.take_sync_batch().unwrap().is_none(), "still backing off");
    c.advance_clock(1).unwrap();
    let retry = c.take_sync_batch().unwrap().expect("the retry");
    c.sync_batch_sent(&retry, true).unwrap();

    // No retry left: the next timeout fails the operation.
    c.advance_clock(1_000).unwrap();
    assert_eq!(c.retry_expired().unwrap(), 0);
    assert_eq!(c.sync_status("sale/1").unwrap(), KeyStatus::SyncFailed);
    let state = c.sync_state().unwrap();
    assert_eq!((state.failed_count, state.total_retries), (1, 1));
}

#[test]
fn redials_wait_for_the_manual_clock() {
    // A port where nothing listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = ephemeral("till-a", |o| {
        o.manual_clock = true;
        o.insecure_transport = true;
    });
    a.connect(&Peer::new("till-b", "127.0.0.1", port)).unwrap();
    let faulted = || {
        a.peers()
            .unwrap()
            .iter()
            .any(|p| p.node_id == "till-b" && p.state == PeerState::Faulted)
    };
    assert!(pump(&[&a], 200, faulted), "the first dial fails");
    // Now something listens there; the redial is due 250 ms later on a's clock.
    let mut o = ClientOptions::memory_only("till-b");
    o.enable_transport = true;
    o.transport_host = "127.0.0.1".into();
    o.transport_port = port;
    o.insecure_transport = true;
    let b = Client::new(o);
    b.open().unwrap();
    b.start_transport().unwrap();
    // Real time passes (at least 300 ms, past the first redial's 250 ms); a's does not.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        assert!(!pump(&[&a, &b], 1, || common::connected(&a, "till-b")));
    }
    a.advance_clock(250).unwrap();
    assert!(pump(&[&a, &b], 400, || common::connected(&a, "till-b")));
}

#[test]
fn stale_and_expired_peers_follow_the_manual_clock() {
    let node = |id: &str, manual: bool| {
        let mut o = ClientOptions::memory_only(id);
        o.enable_discovery = true;
        o.discovery_host = "127.0.0.1".into();
        o.ephemeral_discovery_port = true;
        o.discovery_interval_ms = 1_000;
        o.discovery_ttl_ms = 4_000;
        o.insecure_transport = true;
        o.manual_clock = manual;
        // A node announces the port its transport listens on; nothing is dialled here.
        o.enable_transport = true;
        o.transport_host = "127.0.0.1".into();
        o.ephemeral_transport_port = true;
        o.auto_connect_discovered = false;
        let c = Client::new(o);
        c.open().unwrap();
        c.start_transport().unwrap();
        c.start_discovery().unwrap();
        c
    };
    let a = node("till-a", true);
    let b = node("till-b", false);
    let (pa, pb) = (a.discovery_port().unwrap(), b.discovery_port().unwrap());
    assert!(pa != 0 && pb != 0 && pa != pb);
    a.add_discovery_target(([127, 0, 0, 1], pb).into()).unwrap();
    b.add_discovery_target(([127, 0, 0, 1], pa).into()).unwrap();
    let state_of_b = || {
        a.peers()
            .unwrap()
            .into_iter()
            .find(|p| p.node_id == "till-b")
            .map(|p| p.state)
    };
    let seen = pump(&[&a, &b], 400, || {
        state_of_b() == Some(PeerState::Available)
    });
    assert!(seen, "a hears b: {:?}", state_of_b());
    // b falls silent; only a's clock says how long for.
    b.stop_discovery().unwrap();
    a.advance_clock(1_999).unwrap();
    assert_eq!(state_of_b(), Some(PeerState::Available));
    a.advance_clock(1).unwrap();
    assert_eq!(state_of_b(), Some(PeerState::Stale), "half the TTL");
    a.advance_clock(2_000).unwrap();
    assert_eq!(state_of_b(), Some(PeerState::Expired), "the whole TTL");
}

/// A persistent client in `dir` with these disk faults, opened.
fn faulty(dir: &std::path::Path, fail_write_at: u64, fail_sync_at: u64) -> Client {
    let mut o = ClientOptions::persistent("till-a", dir.join("till.wal").to_str().unwrap());
    o.fail_write_at = fail_write_at;
    o.fail_sync_at = fail_sync_at;
    let c = Client::new(o);
    c.open().unwrap();
    c
}

#[test]
fn a_failed_write_is_an_error_not_an_accepted_put_and_the_data_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let c = faulty(dir.path(), 3, 0);
    c.put("sale/1", b"9.50").unwrap();
    c.put("sale/2", b"4.00").unwrap();
    let e = c.put("sale/3", b"1.25").unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError, "{e}");
    assert!(e.to_string().contains("injected write failure"), "{e}");
    // Not accepted: not readable, not on its way to peers.
    assert_eq!(c.get("sale/3").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        c.sync_status("sale/3").unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(c.sync_state().unwrap().outbox_size, 2);
    assert_eq!(c.size().unwrap(), 2);
    assert_eq!(c.get("sale/1").unwrap(), b"9.50");
    // The log refuses writes until the client is opened again.
    assert!(!c.health().is_healthy());
    assert!(c.put("sale/4", b"2.00").is_err());
    // Closing says the log failed; the client is closed all the same.
    assert_eq!(c.close().unwrap_err().code(), ErrorCode::IoError);
    c.open().unwrap();
    assert_eq!(c.get("sale/2").unwrap(), b"4.00");
    assert_eq!(c.get("sale/3").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(c.size().unwrap(), 2);
    // The fault fired once: writes go on after the reopen, and last.
    c.put("sale/3", b"1.25").unwrap();
    c.close().unwrap();
    c.open().unwrap();
    assert_eq!(c.get("sale/3").unwrap(), b"1.25");
    assert_eq!(c.size().unwrap(), 3);
}

#[test]
fn a_failed_sync_is_an_error_and_the_earlier_data_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let c = faulty(dir.path(), 0, 1);
    let e = c.put("sale/1", b"9.50").unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError, "{e}");
    assert!(e.to_string().contains("injected sync failure"), "{e}");
    assert_eq!(c.get("sale/1").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(c.sync_state().unwrap().outbox_size, 0);
    assert_eq!(c.close().unwrap_err().code(), ErrorCode::IoError);
    c.open().unwrap();
    c.put("sale/2", b"4.00").unwrap();
    c.close().unwrap();
    c.open().unwrap();
    assert_eq!(c.get("sale/2").unwrap(), b"4.00");
}

#[test]
fn what_opening_writes_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh log: opening creates and writes its first file, which does not count.
    let c = faulty(dir.path(), 1, 0);
    assert!(
        c.put("sale/1", b"9.50").is_err(),
        "the first put is write 1"
    );
}
