//! Collecting tombstones (docs/sync.md, "Collecting removals"): every few seconds, from
//! the event loop, `tick()` and the background loop, the node drops the tombstones that
//! every peer it syncs with has seen, or that only peers away longer than
//! `tombstone_horizon_ms` have not. The peers it syncs with are the trusted ones and any
//! connected one. The rule is the sync engine's (`sync::collect`); this file says when it
//! runs and with which peers.

use std::sync::atomic::Ordering;

use super::*;
use crate::sync::CollectPolicy;

/// Collections run at most this often. A store without tombstones costs nothing more than
/// a counter's read; one with many visits at most 65,536 of them per run.
pub(super) const COLLECT_EVERY_MS: u64 = 2_000;

/// Collects when due (and `tombstone_horizon_ms` is not 0); returns how many tombstones
/// went. The caller holds the sync lock, and the transport's when it runs (the connected
/// peers are read from it).
pub(super) fn collect_if_due(
    options: &ClientOptions,
    n: &OpenNode,
    net: Option<&net::Net>,
    sync: &mut SyncEngine,
) -> usize {
    if options.tombstone_horizon_ms == 0 {
        return 0;
    }
    let now = n.clock.mono_ms();
    let last = n.last_collect_ms.load(Ordering::Relaxed);
    if last != u64::MAX && now.saturating_sub(last) < COLLECT_EVERY_MS {
        return 0;
    }
    n.last_collect_ms.store(now, Ordering::Relaxed);
    if n.store.tombstone_count() == 0 {
        return 0;
    }
    let mut peers: Vec<String> = n
        .trust
        .peers
        .read()
        .entries()
        .into_iter()
        .map(|(node_id, _)| node_id)
        .collect();
    if let Some(net) = net {
        // A connected peer is heard from now (its keepalives do not reach the sync
        // conversation): it is waited for, whatever the horizon.
        for (_, node_id) in net.transport.ready() {
            sync.note_heard(&node_id, now);
            peers.push(node_id);
        }
    }
    peers.sort_unstable();
    peers.dedup();
    let policy = CollectPolicy {
        peers: &peers,
        now_ms: now,
        started_ms: n.started_mono_ms,
        horizon_ms: options.tombstone_horizon_ms,
    };
    sync.collect_tombstones(&n.store, &policy)
}

/// [`collect_if_due`] taking the locks itself (the background loop, `tick()`).
pub(super) fn collect(options: &ClientOptions, n: &OpenNode) -> usize {
    let net = n.net.lock();
    let mut sync = n.sync();
    collect_if_due(options, n, net.as_ref(), &mut sync)
}
