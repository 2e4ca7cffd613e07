//! The node runtime behind `Client`. The C ABI, the cxx bridge and the CLI all call this
//! type and hold no logic of their own.
//!
//! - this file: the types (`Client`, its open state, `WriteBatch`) and the lock order;
//! - `client.rs`: lifecycle and the key-value API;
//! - `sync_api.rs`: ticks, the outbox, per-key status, manual batches and catch-ups;
//! - `network.rs`: transport and discovery, the event-loop step, connecting, peers;
//! - `net.rs`: what the event loop does with the transport (the catch-up conversation,
//!   relay, outbox push, peer and dial records);
//! - `peers.rs`: `Peer` and `PeerState`, and what is remembered of discovered peers;
//! - `trust.rs`: the trusted peers and their file;
//! - `changes.rs`: the feed of remote changes applied locally (`subscribe_changes`);
//! - `health.rs`: whether writes are accepted, and the recovery policy of a long-running
//!   node when they are not (`HealthWatch`);
//! - `metrics.rs`: the metrics in the OpenMetrics text format; `http.rs`: the endpoint
//!   serving them and the health.
//!
//! Lock order: `lock_order.rs` (checked in debug builds), also in docs/architecture.md.

mod background;
mod backup;
mod changes;
mod client;
mod collection;
mod compaction;
mod health;
mod http;
mod lock_order;
mod metrics;
mod net;
mod network;
pub mod options;
mod peers;
mod sync_api;
mod trust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::metadata::{self, NodeInfo};
use crate::store::{
    Change, Conflict, Entry, Store, StoreError, StoreOptions, Version, VersionVector, WriteStamp,
};
use crate::sync::{Ack, CatchUp, KeyStatus, SyncBatch, SyncEngine, SyncState, TickResult};
pub use net::CatchUpStats;
// The limits the hostile-peer tests check.
#[cfg(feature = "internals")]
pub use net::{MAX_DISCOVERED_DIALS, MAX_PEER_RECORDS, MAX_SERVING, MAX_VECTOR_BYTES};
pub use changes::{ChangeEvent, ChangeSubscription, MAX_CHANGE_QUEUE, RemoteChange};
pub use backup::{
    BackupReport, inspect_wal, read_backup_manifest, restore_backup, salvage_wal, verify_backup,
};
pub use compaction::CompactionReport;
pub use health::{Health, HealthWatch, PROBE_EVERY};
pub use network::NetworkStats;
pub use options::ClientOptions;
pub use peers::{EXPIRED_PEER_RETENTION_MS, Peer, PeerState};
pub use trust::TrustedPeer;

/// A batch of changes written atomically by [`Client::write_batch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    changes: Vec<Change>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds setting `key` to `value`; returns the batch, so that calls chain.
    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.changes.push(Change::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds removing `key`; returns the batch, so that calls chain.
    pub fn remove(&mut self, key: impl Into<String>) -> &mut Self {
        self.changes.push(Change::Remove { key: key.into() });
        self
    }

    /// How many changes the batch holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes, in the order they were added (a later change to a key wins).
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }
}

/// A local write on its way into the outbox (see [`OpenNode::local`]).
struct Submission {
    stamp: WriteStamp,
    keys: Vec<String>,
}

/// Local writes waiting for the sync lock are moved into the outbox by the writer itself
/// once this many wait and the lock is free (bounds the queue when nothing else takes the
/// lock: no event loop, no ticks).
const DRAIN_LOCAL_AT: usize = 1024;

struct OpenNode {
    store: Store,
    /// The sync engine. Held by the event loop across the fsyncs of remote operations and
    /// sync marks, so a local write never takes it: it pushes to `local`, which every
    /// holder of this lock drains first ([`OpenNode::sync`]).
    sync: lock_order::Ranked<SyncEngine>,
    /// Local writes not yet in the outbox, in the order they were pushed.
    local: lock_order::Ranked<Vec<Submission>>,
    /// The running transport, if started.
    net: lock_order::Ranked<Option<net::Net>>,
    /// Discovery, if started.
    discovery: lock_order::Ranked<Option<network::RunningDiscovery>>,
    /// Where discovered peers were last heard, and the expired ones until pruned.
    peer_book: Mutex<peers::PeerBook>,
    /// When the outbox next has timed work (ACK deadline, end of a retry's backoff), as of
    /// the last event-loop turn; `u64::MAX` for none. Read before the loop sleeps.
    sync_deadline_ms: std::sync::atomic::AtomicU64,
    /// Wakes a thread waiting in the transport's poll when there is new local work.
    waker: RwLock<Option<Arc<mio::Waker>>>,
    started_at_ms: i64,
    /// When it was opened, on the monotonic clock (for the uptime).
    started_mono_ms: u64,
    clock: Arc<dyn crate::clock::Clock>,
    /// This node's key pair and fingerprint.
    identity: Arc<crate::identity::Identity>,
    /// The peers this node trusts (shared with the running transport).
    trust: trust::Trust,
    /// Held shared by a local write from its log record to its entry into `local`, and
    /// exclusively by a compaction's cut: at the cut no write is half done.
    write_gate: RwLock<()>,
    /// One compaction at a time.
    compaction: Mutex<()>,
    /// The thread of an automatic compaction, joined by `close`.
    compactor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The size of the newest snapshot (0: none), for the automatic threshold.
    last_snapshot_bytes: std::sync::atomic::AtomicU64,
    /// Local writes accepted and failed since the node was opened (its metrics).
    writes: metrics::WriteCounters,
    /// When tombstones were last collected, on the monotonic clock (`u64::MAX`: never).
    last_collect_ms: std::sync::atomic::AtomicU64,
}

impl OpenNode {
    /// The sync engine, with every local write made so far in its outbox.
    fn sync(&self) -> lock_order::RankedGuard<'_, SyncEngine> {
        let mut sync = self.sync.lock();
        Self::drain(&self.local, &self.store, &mut sync);
        sync
    }

    fn drain(
        local: &lock_order::Ranked<Vec<Submission>>,
        store: &Store,
        sync: &mut SyncEngine,
    ) {
        let pending = std::mem::take(&mut *local.lock());
        for s in pending {
            sync.record_local(store, s.stamp, s.keys.iter().map(String::as_str));
        }
    }

    /// A local write enters the outbox: queued for the sync lock without waiting for it.
    fn submit<'k>(&self, stamp: WriteStamp, keys: impl IntoIterator<Item = &'k str>) {
        let waiting = {
            let mut local = self.local.lock();
            local.push(Submission {
                stamp,
                keys: keys.into_iter().map(str::to_string).collect(),
            });
            local.len()
        };
        if waiting >= DRAIN_LOCAL_AT
            && let Some(mut sync) = self.sync.try_lock()
        {
            Self::drain(&self.local, &self.store, &mut sync);
        }
    }
}

/// A local-first node. Every method takes `&self`; a client is safe to use from several
/// threads. Writes hold a shared lock for their whole duration, so `close` waits for the
/// writes in progress to finish before it flushes.
pub struct Client {
    options: ClientOptions,
    /// The wall clock (versions, times shown) and the monotonic clock (every timer).
    clock: Arc<dyn crate::clock::Clock>,
    /// The same clock when it is a manual one (the test-only option `manual_clock`), for
    /// [`Client::advance_clock`].
    manual_clock: Option<Arc<crate::clock::ManualClock>>,
    /// The disk faults the test-only options `fail_write_at` and `fail_sync_at` ask for,
    /// counted over every open of the client.
    faults: Option<crate::wal::FaultPlan>,
    /// Shared with the background thread, if one runs.
    node: RwLock<Option<Arc<OpenNode>>>,
    /// Set when a call panicked (a bug): its state may be half-updated, so every later
    /// call fails with `Internal` naming the panic until the client is closed and opened
    /// again.
    poisoned: Arc<Mutex<Option<String>>>,
    /// The event loop on a thread of the client's (`start_background`), if running.
    background: Mutex<Option<background::Background>>,
    /// The metrics endpoint on a thread of the client's (`start_metrics_server`), if
    /// running.
    metrics_server: Mutex<Option<http::MetricsServer>>,
    /// The subscriptions to remote changes (`subscribe_changes`), told by every store the
    /// client opens.
    changes: Arc<changes::ChangeFeed>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("node {}: close failed: {e}", self.options.node_id);
        }
    }
}

/// For the tests of "local writes never wait for the network": runs `f` while holding
/// every lock the event loop holds across I/O (net, discovery, sync), as the event loop
/// does while it polls and fsyncs remote operations.
#[cfg(any(test, feature = "internals"))]
impl Client {
    pub fn with_event_loop_locks_held<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        self.with_node(|n| {
            let _net = n.net.lock();
            let _discovery = n.discovery.lock();
            let _sync = n.sync.lock();
            Ok(f())
        })
    }
}

/// A call that panics, standing in for a bug, for the poisoning tests of every surface.
#[cfg(test)]
impl Client {
    pub(crate) fn call_that_panics(&self) -> Result<()> {
        self.with_node(|_| panic!("injected fault"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_panicked_poisons_the_client_until_it_is_closed_and_opened() {
        let client = Client::new(ClientOptions::memory_only("poisoned-node"));
        client.open().unwrap();
        client.put("before", b"1").unwrap();
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.call_that_panics()));
        assert!(
            caught.is_err(),
            "the panic goes on to the caller's boundary"
        );
        let refused = client.put("after", b"2").unwrap_err();
        assert_eq!(refused.code(), crate::ErrorCode::InternalError);
        assert!(refused.to_string().contains("injected fault"), "{refused}");
        assert!(client.get("before").is_err(), "reads are refused too");
        assert!(client.poisoned().is_some());
        client.close().unwrap();
        client.open().unwrap();
        assert!(client.poisoned().is_none());
        client.put("after", b"2").unwrap();
        assert_eq!(client.get("after").unwrap(), b"2");
    }
}
