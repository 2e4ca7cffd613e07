//! The waiting event-loop call and the background mode (issue 11): waiting sleeps until
//! there is work, a local write or a peer's frame wakes it at once, and the background
//! loop syncs two nodes and stops cleanly, also when the client is closed while it runs.
//! Waits are bounded; the bounds are generous (they only tell "woke early" from "slept the
//! whole timeout").

use std::sync::Arc;
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, Peer};

mod common;

fn node(id: &str) -> Arc<Client> {
    Arc::new(common::client_with_transport(
        &ClientOptions::memory_only(id),
        None,
    ))
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

#[test]
fn the_background_loop_syncs_two_nodes_and_stops_cleanly() {
    let (a, b) = (node("node-a"), node("node-b"));
    common::trust_each_other(&[&a, &b]);
    a.start_background().unwrap();
    a.start_background().unwrap(); // twice is fine
    b.start_background().unwrap();
    assert!(a.background_running() && b.background_running());
    a.connect(&Peer::local(
        "node-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    for i in 0..50 {
        a.put(&format!("k{i}"), b"from a").unwrap();
    }
    b.put("from/b", b"1").unwrap();
    // The test drives nothing: the two background threads do.
    assert!(wait_until(Duration::from_secs(10), || {
        b.size().unwrap() == 51 && a.contains("from/b").unwrap()
    }));
    // Acknowledged work is pruned by the background loop.
    assert!(wait_until(Duration::from_secs(10), || {
        a.sync_state().unwrap().outbox_size == 0
    }));
    a.stop_background();
    assert!(!a.background_running());
    a.stop_background(); // twice is fine
    // Stopped: A's new writes wait in its outbox.
    a.put("after-stop", b"1").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!b.contains("after-stop").unwrap());
    assert_eq!(a.sync_state().unwrap().queued_count, 1);
}

#[test]
fn closing_a_client_stops_its_background_loop() {
    let a = node("node-a");
    a.start_background().unwrap();
    let t = Instant::now();
    a.close().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "close waited {:?}",
        t.elapsed()
    );
    assert!(!a.background_running());
    assert_eq!(
        a.start_background().unwrap_err().code(),
        softadastra::ErrorCode::InvalidState
    );
    a.open().unwrap();
    a.put("k", b"v").unwrap();
    // A closed client without a transport: the loop sleeps until stopped.
    a.start_background().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(a.background_running());
    drop(a); // dropping closes, which stops the thread
}

#[test]
fn a_waiting_call_wakes_at_once_on_a_local_write_and_on_a_peers_frame() {
    let (a, b) = (node("node-a"), node("node-b"));
    common::trust_each_other(&[&a, &b]);
    b.start_background().unwrap();
    a.connect(&Peer::local(
        "node-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    // Let the handshake and catch-up settle with short waits.
    assert!(wait_until(Duration::from_secs(10), || {
        a.process_transport_events_wait(64, Duration::from_millis(5))
            .unwrap();
        common::connected(&a, "node-b")
    }));
    for _ in 0..20 {
        a.process_transport_events_wait(64, Duration::from_millis(5))
            .unwrap();
    }

    // A local write from another thread.
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            a.put("wake", b"up").unwrap();
        })
    };
    let t = Instant::now();
    let mut woke = false;
    // The first wait may end early for other reasons; wait until the write was pushed.
    for _ in 0..100 {
        a.process_transport_events_wait(64, Duration::from_secs(10))
            .unwrap();
        let state = a.sync_state().unwrap();
        if state.in_flight_count + state.acknowledged_count > 0 {
            woke = true;
            break;
        }
        if t.elapsed() > Duration::from_secs(9) {
            break;
        }
    }
    writer.join().unwrap();
    assert!(woke, "the put was pushed");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a 10 s wait ended {:?} after it began",
        t.elapsed()
    );

    // A peer's frame: B writes, its background loop sends, A's wait ends.
    for _ in 0..20 {
        a.process_transport_events_wait(64, Duration::from_millis(5))
            .unwrap();
    }
    let writer = {
        let b = b.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            b.put("from-b", b"1").unwrap();
        })
    };
    let t = Instant::now();
    for _ in 0..100 {
        a.process_transport_events_wait(64, Duration::from_secs(10))
            .unwrap();
        if a.contains("from-b").unwrap() || t.elapsed() > Duration::from_secs(9) {
            break;
        }
    }
    writer.join().unwrap();
    assert!(a.contains("from-b").unwrap());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a 10 s wait ended {:?} after it began",
        t.elapsed()
    );
}
