//! Local reads and writes never wait for the network (issue 11): not for the locks the
//! event loop holds across polls and the fsyncs of remote operations, and not for long
//! while the node takes in a flood of remote writes. The exact figures are measured by
//! `cargo bench --bench network`; the bounds here are generous on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, Peer, WriteBatch};

mod common;

#[test]
fn local_calls_complete_while_the_event_loop_holds_its_locks() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("a.wal");
    let client = Arc::new(Client::new(ClientOptions::persistent(
        "node-a",
        wal.to_str().unwrap(),
    )));
    client.open().unwrap();
    let held = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicBool::new(false));
    let holder = {
        let (client, held, done, released) =
            (client.clone(), held.clone(), done.clone(), released.clone());
        std::thread::spawn(move || {
            client
                .with_event_loop_locks_held(|| {
                    held.store(true, Ordering::SeqCst);
                    // Hold until the local calls are done, at most 10 s.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
                .unwrap();
            released.store(true, Ordering::SeqCst);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !held.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the holder took the locks");
        std::thread::sleep(Duration::from_millis(1));
    }
    client.put("k1", b"v1").unwrap();
    assert_eq!(client.get("k1").unwrap(), b"v1");
    assert!(client.contains("k1").unwrap());
    client.remove("k1").unwrap();
    let mut batch = WriteBatch::new();
    batch.put("k2", b"v2".to_vec()).put("k3", b"v3".to_vec());
    client.write_batch(&batch).unwrap();
    assert_eq!(client.size().unwrap(), 2);
    assert!(
        !released.load(Ordering::SeqCst),
        "put, get, remove and write_batch completed while the locks were held"
    );
    done.store(true, Ordering::SeqCst);
    holder.join().unwrap();
    // The writes entered the outbox once the sync lock was free again.
    let state = client.sync_state().unwrap();
    assert_eq!(state.outbox_size, 4, "{state:?}");
    assert_eq!(
        client.sync_status("k2").unwrap(),
        softadastra::KeyStatus::WaitingToSync
    );
}

fn transport_node(dir: &std::path::Path, id: &str, durable: bool) -> Arc<Client> {
    let wal = dir.join(format!("{id}.wal"));
    let mut options = if durable {
        ClientOptions::persistent(id, wal.to_str().unwrap())
    } else {
        ClientOptions::memory_only(id)
    };
    options.sync_batch_size = 256;
    Arc::new(common::client_with_transport(&options, None))
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() * 99 / 100]
}

#[test]
fn local_latency_stays_low_while_the_node_takes_in_a_flood_of_remote_writes() {
    let dir = tempfile::tempdir().unwrap();
    let a = transport_node(dir.path(), "node-a", true);
    let b = transport_node(dir.path(), "node-b", false);
    common::trust_each_other(&[&a, &b]);
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    c.process_transport_events_wait(1024, Duration::from_millis(5))
                        .unwrap();
                }
            })
        })
        .collect();
    b.connect(&Peer::local(
        "node-a",
        a.transport_address().unwrap().port(),
    ))
    .unwrap();
    let timed = |label: &str| {
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let key = format!("{label}/{i}");
            let t = Instant::now();
            a.put(&key, b"local").unwrap();
            puts.push(t.elapsed());
            let t = Instant::now();
            a.get(&key).unwrap();
            gets.push(t.elapsed());
        }
        (p99(puts), p99(gets))
    };
    let (idle_put, _) = timed("idle");
    let flooding = Arc::new(AtomicBool::new(true));
    let writer = {
        let (b, flooding) = (b.clone(), flooding.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0u64;
            while flooding.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut batch = WriteBatch::new();
                for _ in 0..64 {
                    batch.put(format!("remote/{i:010}"), vec![0x62; 100]);
                    i += 1;
                }
                b.write_batch(&batch).unwrap();
                b.prune_completed().unwrap();
                while b.sync_state().unwrap().queued_count > 20_000 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.size().unwrap() < 2_000 {
        assert!(Instant::now() < deadline, "the flood reaches A");
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = a.size().unwrap();
    let (flood_put, flood_get) = timed("flooded");
    let applied = a.size().unwrap() - before - 300;
    flooding.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    assert!(applied > 0, "remote writes arrived while A was measured");
    // Generous: the benchmark's target is 3x idle + 1 ms. Before the fix a put waited for
    // the event loop's fsyncs and socket work (p99 ~190 ms measured through the C++ SDK).
    let bound = idle_put * 10 + Duration::from_millis(100);
    assert!(
        flood_put <= bound,
        "durable put p99 under flood {flood_put:?} > {bound:?} (idle p99 {idle_put:?})"
    );
    assert!(
        flood_get <= Duration::from_millis(20),
        "get p99 under flood {flood_get:?}"
    );
}
