//! `Client`'s sync API: ticks, the outbox's counters and pruning, per-key status, and the
//! manual carrying of batches, ACKs and catch-ups (for applications that move them
//! themselves; the transport does it otherwise).

use super::*;

/// Sync: the outbox, its counters, remote operations and the catch-up.
impl Client {
    pub(super) fn with_sync<T>(
        &self,
        f: impl FnOnce(&Store, &mut SyncEngine) -> Result<T>,
    ) -> Result<T> {
        self.with_node(|n| f(&n.store, &mut n.sync()))
    }

    /// One sync cycle: retry operations whose ACK timed out (after their backoff), build the
    /// next batch when a peer is connected, and prune acknowledged work when asked. With no
    /// connected peer nothing is sent and queued work keeps waiting: being offline spends
    /// no retries.
    pub fn tick(&self, prune_completed: bool) -> Result<TickResult> {
        let result = self.tick_sync(prune_completed)?;
        // Outside every lock of the node: a compaction, when one is due, runs on its own.
        let node = self.node.read().clone();
        if let Some(node) = node {
            super::compaction::maybe_compact(&self.options, &node, self.clock.wall_ms());
        }
        Ok(result)
    }

    fn tick_sync(&self, prune_completed: bool) -> Result<TickResult> {
        self.with_node(|n| {
            let now = n.clock.mono_ms();
            let mut net = n.net.lock();
            let mut sync = n.sync();
            let tick = sync.tick(&n.store, now, prune_completed, false);
            let mut result = tick.result();
            if let Some(net) = net.as_mut() {
                result.batch_size = net.push_outbox(&n.store, &mut sync, now);
            }
            super::collection::collect_if_due(&self.options, n, net.as_ref(), &mut sync);
            log::debug!(
                "node {}: sync tick: retried {}, batch {}, pruned {}",
                self.options.node_id,
                result.retried_count,
                result.batch_size,
                result.pruned_count
            );
            Ok(result)
        })
    }

    /// The sync counters.
    pub fn sync_state(&self) -> Result<SyncState> {
        self.with_sync(|store, sync| Ok(sync.state(store)))
    }

    /// The entries the outbox holds in memory: one per key with an unacknowledged change,
    /// plus one per run of superseded operations (tests check that it follows the keys,
    /// not the writes).
    #[cfg(feature = "internals")]
    pub fn outbox_entry_count(&self) -> Result<usize> {
        self.with_sync(|_, sync| Ok(sync.outbox().entry_count()))
    }

    /// Queues again the in-flight operations whose ACK timed out; returns how many.
    pub fn retry_expired(&self) -> Result<usize> {
        self.with_node(|n| Ok(n.sync().retry_expired(n.clock.mono_ms())))
    }

    /// Removes acknowledged operations from the outbox; returns how many.
    pub fn prune_completed(&self) -> Result<usize> {
        self.with_sync(|_, sync| Ok(sync.prune_completed()))
    }

    /// Removes failed operations from the outbox (they are not queued again after a
    /// restart); returns how many. Their data stays and reaches peers by catch-up.
    pub fn prune_failed(&self) -> Result<usize> {
        self.with_sync(|store, sync| Ok(sync.prune_failed(store)?))
    }

    /// Queues every pending operation (with `auto_queue` off); returns how many.
    pub fn queue_pending(&self) -> Result<usize> {
        self.with_sync(|_, sync| Ok(sync.queue_pending()))
    }

    /// Queues every failed operation (every attempt timed out) again, its attempts reset,
    /// for the next batch; returns how many. Operations already given up on with
    /// [`Client::prune_failed`] left the outbox and are not queued: they reach peers by
    /// catch-up.
    pub fn retry_failed(&self) -> Result<usize> {
        self.with_sync(|_, sync| Ok(sync.retry_failed()))
    }

    /// Where `key`'s latest change is on its way to peers; `NotFound` when the key was
    /// never written.
    pub fn sync_status(&self, key: &str) -> Result<KeyStatus> {
        self.with_sync(|store, sync| {
            crate::store::validate_key(key)?;
            sync.key_status(store, key).ok_or_else(|| Error::NotFound {
                key: key.to_string(),
            })
        })
    }

    /// The most recent conflicts (oldest first).
    pub fn recent_conflicts(&self) -> Result<Vec<Conflict>> {
        self.with_sync(|_, sync| Ok(sync.recent_conflicts().cloned().collect()))
    }

    /// What this node has seen of every origin's operations.
    pub fn version_vector(&self) -> Result<VersionVector> {
        self.with_node(|n| Ok(n.store.version_vector()))
    }

    /// Takes the next batch of local operations to carry to peers yourself (they are then
    /// in flight); `None` when nothing is ready. The transport does this when it runs.
    pub fn take_sync_batch(&self) -> Result<Option<SyncBatch>> {
        self.with_node(|n| Ok(n.sync().next_batch(&n.store, n.clock.mono_ms())))
    }

    /// Reports that a batch from [`Client::take_sync_batch`] was written to a peer (with
    /// `require_ack` off this completes it) or could not be written to any (`written`
    /// false: its operations are queued again).
    pub fn sync_batch_sent(&self, batch: &SyncBatch, written: bool) -> Result<()> {
        self.with_sync(|store, sync| {
            if written {
                Ok(sync.batch_written(store, batch)?)
            } else {
                sync.batch_unsent(batch);
                Ok(())
            }
        })
    }

    /// Applies a peer's batch (last-writer-wins, idempotent) and returns the ACK for it.
    pub fn receive_sync_batch(&self, batch: &SyncBatch) -> Result<Ack> {
        self.with_sync(|store, sync| Ok(sync.receive_batch(store, batch)?))
    }

    /// Records a peer's ACK; returns how many operations it newly acknowledged.
    pub fn receive_sync_ack(&self, ack: &Ack) -> Result<usize> {
        self.with_sync(|store, sync| Ok(sync.receive_ack(store, ack)?))
    }

    /// What a peer with vector `peer` lacks from this node.
    pub fn catch_up_for(&self, peer: &VersionVector) -> Result<CatchUp> {
        self.with_sync(|store, sync| Ok(sync.catch_up_for(store, peer)))
    }

    /// Applies a catch-up received from a peer; returns how many operations changed the
    /// store.
    pub fn apply_catch_up(&self, catch_up: &CatchUp) -> Result<usize> {
        self.with_sync(|store, sync| Ok(sync.apply_catch_up(store, catch_up)?.applied))
    }
}
