//! Per-key sync status after the outbox lets go of an operation: acknowledged and pruned
//! reads `Synced`, given up on (`prune_failed`) reads `SyncFailed`, also after a restart.

use softadastra::store::{Store, StoreOptions, Version, VersionVector};
use softadastra::sync::{KeyStatus, SyncConfig, SyncEngine};

fn options(dir: &tempfile::TempDir) -> StoreOptions {
    StoreOptions::new("node-a", Some(dir.path().join("a.wal")), true)
}

/// An engine whose operations fail after one unanswered attempt.
fn engine() -> SyncEngine {
    SyncEngine::new(
        "node-a",
        SyncConfig {
            max_retries: 0,
            ack_timeout_ms: 10,
            retry_interval_ms: 10,
            ..SyncConfig::default()
        },
    )
}

/// Sends `key`'s operation once and lets its ACK time out, so it fails.
fn fail(store: &Store, engine: &mut SyncEngine, key: &str) {
    let stamp = store.put(key, b"v").unwrap();
    engine.record_local(store, stamp, [key]);
    let batch = engine.next_batch(store, 1_000).expect("a batch");
    engine.batch_written(store, &batch).unwrap();
    assert_eq!(engine.key_status(store, key), Some(KeyStatus::Syncing));
    engine.tick(store, 1_000_000, false, false);
    assert_eq!(engine.key_status(store, key), Some(KeyStatus::SyncFailed));
}

#[test]
fn a_key_given_up_on_stays_sync_failed_after_prune_failed_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut engine = engine();
        let store = Store::open_with(&options(&dir), None, &mut engine).unwrap();
        fail(&store, &mut engine, "given-up");
        assert_eq!(engine.prune_failed(&store).unwrap(), 1);
        assert_eq!(engine.outbox().counts().total, 0);
        assert_eq!(
            engine.key_status(&store, "given-up"),
            Some(KeyStatus::SyncFailed),
            "pruning a failed operation does not make it synced"
        );
        fail(&store, &mut engine, "other");
        assert_eq!(engine.prune_failed(&store).unwrap(), 1);
        // A later write of the key is a new operation with its own status.
        let stamp = store.put("given-up", b"again").unwrap();
        engine.record_local(&store, stamp, ["given-up"]);
        assert_eq!(
            engine.key_status(&store, "given-up"),
            Some(KeyStatus::WaitingToSync)
        );
        store.flush().unwrap();
    }
    let mut engine = engine();
    let store = Store::open_with(&options(&dir), None, &mut engine).unwrap();
    engine.finish_replay();
    assert_eq!(
        engine.key_status(&store, "other"),
        Some(KeyStatus::SyncFailed),
        "the abandoned mark in the log keeps the status across a restart"
    );
    assert_eq!(
        engine.key_status(&store, "given-up"),
        Some(KeyStatus::WaitingToSync),
        "the newer write is queued again"
    );
}

#[test]
fn failed_and_given_up_work_a_peer_holds_becomes_acknowledged_and_synced() {
    // A catch-up delivered what the outbox gave up on: a peer's vector says so.
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine();
    let store = Store::open_with(&options(&dir), None, &mut engine).unwrap();
    fail(&store, &mut engine, "given-up");
    assert_eq!(engine.prune_failed(&store).unwrap(), 1);
    fail(&store, &mut engine, "failed");
    fail(&store, &mut engine, "not-held");
    assert_eq!(engine.outbox().counts().failed, 2);
    let mut peer = VersionVector::new();
    for seq in [1, 2] {
        peer.observe("node-a", seq, Version(1));
    }
    peer.observe("node-a", 1_000, Version(1)); // beyond what node-a wrote: ignored
    assert_eq!(engine.peer_holds(&store, &peer).unwrap(), 1);
    let counts = engine.outbox().counts();
    assert_eq!((counts.failed, counts.acknowledged), (1, 1));
    assert_eq!(
        engine.key_status(&store, "given-up"),
        Some(KeyStatus::Synced)
    );
    assert_eq!(engine.key_status(&store, "failed"), Some(KeyStatus::Synced));
    assert_eq!(
        engine.key_status(&store, "not-held"),
        Some(KeyStatus::SyncFailed)
    );
    let stamp = store.put("later", b"v").unwrap();
    engine.record_local(&store, stamp, ["later"]);
    assert_eq!(
        engine.key_status(&store, "later"),
        Some(KeyStatus::WaitingToSync),
        "the claim of number 1000 did not complete work to come"
    );
}
