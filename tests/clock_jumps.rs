//! Every timer runs on the monotonic clock (issue 11): a wall-clock jump of an hour, forward
//! or back, closes no connection, fires no retry early and stalls none, and versions never
//! go backwards. The wall clock is made to jump through the clock seam
//! (`Client::with_clock`); the monotonic clock runs as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use softadastra::clock::{Clock, SystemClock};
use softadastra::{Client, ClientOptions, Peer};

mod common;

/// The system's clocks, with the wall clock shifted by an offset the test sets.
#[derive(Debug, Default)]
struct JumpingClock {
    offset_ms: AtomicI64,
}

impl JumpingClock {
    fn jump(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for JumpingClock {
    fn wall_ms(&self) -> u64 {
        SystemClock
            .wall_ms()
            .saturating_add_signed(self.offset_ms.load(Ordering::SeqCst))
    }
    fn mono_ms(&self) -> u64 {
        SystemClock.mono_ms()
    }
}

const HOUR_MS: i64 = 3_600_000;

fn options(id: &str, ack_timeout_ms: u32) -> ClientOptions {
    let mut o = ClientOptions::memory_only(id);
    o.ack_timeout_ms = ack_timeout_ms;
    o.retry_interval_ms = 100;
    o.require_ack = true;
    o
}

fn started(options: ClientOptions, clock: Arc<dyn Clock>) -> Client {
    common::client_with_transport(&options, Some(clock))
}

/// Drives `clients` until `done` (bounded by `limit`).
fn pump(clients: &[&Client], limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for c in clients {
            c.process_transport_events_wait(64, Duration::from_millis(5))
                .unwrap();
        }
        if done() {
            return true;
        }
    }
    done()
}

/// A connected to B, with one operation of A's in flight that B has not acknowledged
/// (B is not driven any more).
fn in_flight(ack_timeout_ms: u32) -> (Client, Client, Arc<JumpingClock>) {
    let clock = Arc::new(JumpingClock::default());
    let a = started(options("node-a", ack_timeout_ms), clock.clone());
    let b = started(options("node-b", ack_timeout_ms), Arc::new(SystemClock));
    common::trust_each_other(&[&a, &b]);
    a.connect(&Peer::local(
        "node-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    assert!(pump(&[&a, &b], Duration::from_secs(10), || {
        common::connected(&a, "node-b") && common::connected(&b, "node-a")
    }));
    // Let the opening catch-up conversation finish.
    pump(&[&a, &b], Duration::from_millis(300), || false);
    a.put("k", b"v").unwrap();
    let ok = pump(&[&a], Duration::from_secs(5), || {
        a.sync_state().unwrap().in_flight_count == 1
    });
    assert!(ok, "{:?} {:?}", a.sync_state(), a.peers());
    (a, b, clock)
}

#[test]
fn a_wall_clock_jump_forward_closes_nothing_and_fires_no_retry_early() {
    let (a, b, clock) = in_flight(5_000);
    let before = a.entry("k").unwrap().unwrap().version;
    clock.jump(HOUR_MS);
    // Half a second of A's event loop an hour "later".
    pump(&[&a], Duration::from_millis(500), || false);
    let state = a.sync_state().unwrap();
    assert_eq!(state.total_retries, 0, "{state:?}");
    assert_eq!(state.in_flight_count, 1, "{state:?}");
    assert!(common::connected(&a, "node-b"), "{:?}", a.peers());
    // The peer list shows wall-clock times: B was heard of within the last seconds of
    // the (jumped) wall clock.
    let seen = a
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.node_id == "node-b")
        .unwrap()
        .last_seen_ms;
    assert!(clock.wall_ms().abs_diff(seen) < 60_000, "last seen {seen}");
    // Versions follow the wall clock forward.
    a.put("k2", b"v").unwrap();
    let after = a.entry("k2").unwrap().unwrap().version;
    assert!(after > before);
    // B answers: the operation from before the jump is acknowledged (no retry was
    // needed); the one stamped an hour ahead of B's clock is refused by B and counted.
    assert!(pump(&[&a, &b], Duration::from_secs(10), || {
        a.sync_state().unwrap().acknowledged_count == 1
            && b.network_stats().unwrap().refused_operations.clock_ahead >= 1
    }));
    assert_eq!(b.get("k").unwrap(), b"v");
    assert!(!b.contains("k2").unwrap());
}

#[test]
fn a_wall_clock_jump_back_stalls_no_retry_and_versions_never_go_back() {
    let (a, _b, clock) = in_flight(200);
    let before = a.entry("k").unwrap().unwrap().version;
    clock.jump(-HOUR_MS);
    // The ACK deadline (200 ms) passes on the monotonic clock: the retry comes on time,
    // not an hour later.
    assert!(pump(&[&a], Duration::from_secs(5), || {
        a.sync_state().unwrap().total_retries >= 1
    }));
    assert!(common::connected(&a, "node-b"), "{:?}", a.peers());
    // A write after the jump still gets a greater version.
    a.put("k", b"after the jump").unwrap();
    let after = a.entry("k").unwrap().unwrap().version;
    assert!(after > before, "{after:?} after {before:?}");
}
