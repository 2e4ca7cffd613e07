//! Sync through the public `Client`, with batches carried by hand between two clients (what
//! the transport will do): operations are tracked, acknowledged, never resent once
//! acknowledged, resent after a restart when they were not, and their per-key status
//! follows them.

use softadastra::sync::KeyStatus;
use softadastra::{Client, ClientOptions, ErrorCode};

fn persistent(dir: &tempfile::TempDir, node: &str) -> Client {
    let path = dir.path().join(format!("{node}.wal"));
    let client = Client::new(ClientOptions::persistent(node, path.to_str().unwrap()));
    client.open().unwrap();
    client
}

/// Carries one batch from `from` to `to` and the ACK back; returns how many operations
/// the batch held.
fn deliver(from: &Client, to: &Client) -> usize {
    let Some(batch) = from.take_sync_batch().unwrap() else {
        return 0;
    };
    from.sync_batch_sent(&batch, true).unwrap();
    let ack = to.receive_sync_batch(&batch).unwrap();
    from.receive_sync_ack(&ack).unwrap();
    batch.len()
}

#[test]
fn a_put_is_tracked_until_a_peer_acknowledges_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    let v = a.put("draft/1", b"hello").unwrap();
    let state = a.sync_state().unwrap();
    assert_eq!((state.outbox_size, state.queued_count), (1, 1));
    assert_eq!(state.last_submitted_version, v.0);
    assert_eq!(a.sync_status("draft/1").unwrap(), KeyStatus::WaitingToSync);

    let batch = a.take_sync_batch().unwrap().unwrap();
    assert_eq!(a.sync_status("draft/1").unwrap(), KeyStatus::Syncing);
    let ack = b.receive_sync_batch(&batch).unwrap();
    assert_eq!(b.get("draft/1").unwrap(), b"hello");
    assert_eq!(b.sync_status("draft/1").unwrap(), KeyStatus::Synced);
    assert_eq!(b.sync_state().unwrap().last_applied_remote_version, v.0);
    assert_eq!(a.receive_sync_ack(&ack).unwrap(), 1);
    assert_eq!(a.sync_state().unwrap().acknowledged_count, 1);
    assert_eq!(a.sync_status("draft/1").unwrap(), KeyStatus::Synced);
    assert_eq!(a.prune_completed().unwrap(), 1);
    assert_eq!(a.sync_state().unwrap().outbox_size, 0);
    assert_eq!(a.sync_status("draft/1").unwrap(), KeyStatus::Synced);
}

#[test]
fn an_operation_not_acknowledged_before_a_crash_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    a.put("k1", b"1").unwrap();
    a.put("k2", b"2").unwrap();
    let batch = a.take_sync_batch().unwrap().unwrap();
    b.receive_sync_batch(&batch).unwrap(); // the ACK is lost with the crash
    drop(a);
    let a = persistent(&dir, "node-a");
    let state = a.sync_state().unwrap();
    assert_eq!((state.queued_count, state.in_flight_count), (2, 0));
    let again = a.take_sync_batch().unwrap().unwrap();
    assert_eq!(again.ranges(), batch.ranges());
    let ack = b.receive_sync_batch(&again).unwrap();
    assert_eq!(b.size().unwrap(), 2, "applying twice changes nothing");
    assert_eq!(a.receive_sync_ack(&ack).unwrap(), 2);
}

#[test]
fn an_acknowledged_operation_is_never_sent_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    a.put("k1", b"1").unwrap();
    assert_eq!(deliver(&a, &b), 1);
    a.put("k2", b"2").unwrap();
    a.close().unwrap();
    a.open().unwrap();
    let batch = a.take_sync_batch().unwrap().unwrap();
    assert_eq!(
        batch.ops.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["k2"]
    );
    let next = a.put("k3", b"3").unwrap();
    assert!(
        next.0 > batch.ops[0].version.0,
        "versions continue after the restart"
    );
    assert_eq!(a.sync_state().unwrap().last_submitted_version, next.0);
}

#[test]
fn a_superseded_operation_is_sent_by_number_only() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    a.put("k", b"old").unwrap();
    a.put("k", b"new").unwrap();
    let batch = a.take_sync_batch().unwrap().unwrap();
    assert_eq!(batch.ops.len(), 1);
    assert_eq!(batch.superseded.len(), 1);
    let ack = b.receive_sync_batch(&batch).unwrap();
    assert_eq!(b.get("k").unwrap(), b"new");
    assert_eq!(a.receive_sync_ack(&ack).unwrap(), 2);
    assert_eq!(
        b.version_vector()
            .unwrap()
            .get("node-a")
            .unwrap()
            .contiguous,
        2
    );
}

#[test]
fn a_remove_travels_and_an_older_put_does_not_bring_the_key_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    b.put("k", b"b-first").unwrap();
    let stale = b.take_sync_batch().unwrap().unwrap(); // held back by a slow network
    a.put("k", b"a-later").unwrap();
    a.remove("k").unwrap();
    deliver(&a, &b);
    assert!(!b.contains("k").unwrap());
    a.receive_sync_batch(&stale).unwrap();
    assert!(
        !a.contains("k").unwrap(),
        "the older put lost to the remove"
    );
}

#[test]
fn concurrent_writes_show_conflict_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (persistent(&dir, "node-a"), persistent(&dir, "node-b"));
    a.put("k", b"from-a").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    b.put("k", b"from-b").unwrap();
    deliver(&b, &a);
    assert_eq!(a.get("k").unwrap(), b"from-b");
    assert_eq!(a.sync_status("k").unwrap(), KeyStatus::ConflictDetected);
    let conflicts = a.recent_conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(a.sync_state().unwrap().conflict_count, 1);
    a.put("k", b"resolved").unwrap();
    assert_eq!(a.sync_status("k").unwrap(), KeyStatus::WaitingToSync);
}

#[test]
fn without_auto_queue_operations_stay_saved_locally_until_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut options =
        ClientOptions::persistent("node-a", dir.path().join("a.wal").to_str().unwrap());
    options.auto_queue = false;
    let a = Client::new(options);
    a.open().unwrap();
    a.put("k", b"v").unwrap();
    let state = a.sync_state().unwrap();
    assert_eq!((state.outbox_size, state.queued_count), (1, 0));
    assert_eq!(a.sync_status("k").unwrap(), KeyStatus::SavedLocally);
    assert!(a.take_sync_batch().unwrap().is_none());
    assert_eq!(a.queue_pending().unwrap(), 1);
    assert_eq!(a.sync_status("k").unwrap(), KeyStatus::WaitingToSync);
}

#[test]
fn without_require_ack_an_operation_is_acknowledged_once_written_to_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let a = Client::new(ClientOptions::fast(
        "node-a",
        dir.path().join("a.wal").to_str().unwrap(),
    ));
    a.open().unwrap();
    a.put("k", b"v").unwrap();
    let batch = a.take_sync_batch().unwrap().unwrap();
    a.sync_batch_sent(&batch, false).unwrap();
    assert_eq!(
        a.sync_state().unwrap().queued_count,
        1,
        "not written: queued again"
    );
    let batch = a.take_sync_batch().unwrap().unwrap();
    a.sync_batch_sent(&batch, true).unwrap();
    assert_eq!(a.sync_state().unwrap().acknowledged_count, 1);
}

#[test]
fn offline_ticks_spend_no_retries_and_keep_work_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let a = persistent(&dir, "node-a");
    a.put("k", b"v").unwrap();
    for _ in 0..5 {
        let tick = a.tick(false).unwrap();
        assert_eq!((tick.batch_size, tick.retried_count), (0, 0));
    }
    assert_eq!(a.sync_status("k").unwrap(), KeyStatus::WaitingToSync);
}

#[test]
fn catch_up_delivers_what_a_pruned_outbox_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        persistent(&dir, "node-a"),
        persistent(&dir, "node-b"),
        persistent(&dir, "node-c"),
    );
    for i in 0..10 {
        a.put(&format!("k{i}"), b"v").unwrap();
    }
    deliver(&a, &b);
    a.prune_completed().unwrap();
    assert!(a.take_sync_batch().unwrap().is_none());
    // c was offline: it catches up from b.
    let catch_up = b.catch_up_for(&c.version_vector().unwrap()).unwrap();
    assert_eq!(c.apply_catch_up(&catch_up).unwrap(), 10);
    assert_eq!(c.list("").unwrap(), a.list("").unwrap());
    assert!(
        b.catch_up_for(&c.version_vector().unwrap())
            .unwrap()
            .ops
            .is_empty()
    );
}

#[test]
fn failed_work_is_queued_again_by_retry_failed_and_sent_with_the_next_batch() {
    let mut options = ClientOptions::memory_only("node-a");
    options.max_sync_retries = 0;
    options.ack_timeout_ms = 1;
    let a = Client::new(options);
    a.open().unwrap();
    assert_eq!(a.retry_failed().unwrap(), 0, "nothing failed yet");
    a.put("k1", b"1").unwrap();
    a.put("k2", b"2").unwrap();
    let first = a.take_sync_batch().unwrap().unwrap();
    // No ACK comes: once the deadline has passed, with no retries the work fails.
    let failed = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        a.retry_expired().unwrap();
        a.sync_state().unwrap().failed_count == 2
    });
    assert!(failed, "{:?}", a.sync_state().unwrap());
    assert_eq!(a.sync_status("k1").unwrap(), KeyStatus::SyncFailed);
    assert_eq!(
        a.queue_pending().unwrap(),
        0,
        "queue_pending leaves failed work alone"
    );

    assert_eq!(a.retry_failed().unwrap(), 2);
    let state = a.sync_state().unwrap();
    assert_eq!(
        (state.failed_count, state.queued_count),
        (0, 2),
        "{state:?}"
    );
    assert_eq!(a.sync_status("k1").unwrap(), KeyStatus::WaitingToSync);
    let again = a.take_sync_batch().unwrap().unwrap();
    assert_eq!(again.ops, first.ops, "the same operations are sent again");
    assert_eq!(a.retry_failed().unwrap(), 0, "in flight, not failed");
}

#[test]
fn sync_calls_on_a_closed_client_are_invalid_state() {
    let a = Client::new(ClientOptions::memory_only("node-a"));
    assert_eq!(a.sync_state().unwrap_err().code(), ErrorCode::InvalidState);
    assert_eq!(a.tick(false).unwrap_err().code(), ErrorCode::InvalidState);
    a.open().unwrap();
    assert_eq!(
        a.sync_status("never").unwrap_err().code(),
        ErrorCode::NotFound
    );
}
