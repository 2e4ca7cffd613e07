//! The node runtime behind `Client`: options, lifecycle, and the local store. Sync,
//! transport and discovery join it in later layers. The C ABI, the cxx bridge and the CLI
//! all call this type and hold no logic of their own.

mod net;
pub mod options;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::metadata::{self, NodeInfo};
use crate::store::{
    Change, Conflict, Entry, Store, StoreError, StoreOptions, Version, VersionVector, WriteStamp,
    hlc,
};
use crate::sync::{Ack, CatchUp, KeyStatus, SyncBatch, SyncEngine, SyncState, TickResult};
pub use net::{
    CATCH_UP_MIN_INTERVAL_MS, CatchUpStats, MAX_DISCOVERED_DIALS, MAX_PEER_RECORDS, MAX_SERVING,
    MAX_VECTOR_BYTES, PEER_RECORD_TTL_MS,
};
pub use options::ClientOptions;

/// A batch of changes written atomically by [`Client::write_batch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    changes: Vec<Change>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.changes.push(Change::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn remove(&mut self, key: impl Into<String>) -> &mut Self {
        self.changes.push(Change::Remove { key: key.into() });
        self
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }
}

struct OpenNode {
    store: Store,
    /// Locked after `net` and after the store's own locks, never before a WAL append of a
    /// local write.
    sync: Mutex<SyncEngine>,
    /// The running transport, if started. Locked before `sync`.
    net: Mutex<Option<net::Net>>,
    /// Discovery, if started. Locked after `net`, before `sync`.
    discovery: Mutex<Option<crate::discovery::Discovery>>,
    /// Peers that expired since `peers()` last reported them.
    expired: Mutex<Vec<Peer>>,
    /// Wakes a thread waiting in the transport's poll when there is new local work.
    waker: RwLock<Option<Arc<mio::Waker>>>,
    started_at_ms: i64,
}

/// A local-first node. Every method takes `&self`; a client is safe to use from several
/// threads. Writes hold a shared lock for their whole duration, so `close` waits for the
/// writes in progress to finish before it flushes.
pub struct Client {
    options: ClientOptions,
    node: RwLock<Option<OpenNode>>,
    /// Set when a call panicked (a bug): its state may be half-updated, so every later
    /// call fails with `Internal` naming the panic until the client is closed and opened
    /// again.
    poisoned: Mutex<Option<String>>,
}

impl Client {
    /// A closed client with these options (they are checked by [`Client::open`]).
    pub fn new(options: ClientOptions) -> Client {
        Client {
            options,
            node: RwLock::new(None),
            poisoned: Mutex::new(None),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Opens the client: validates the options, opens and replays the WAL. Opening an open
    /// client does nothing.
    pub fn open(&self) -> Result<()> {
        let mut node = self.node.write();
        if node.is_some() {
            return Ok(());
        }
        self.options.validate()?;
        let store_options = StoreOptions {
            node_id: self.options.node_id.clone(),
            wal_path: self
                .options
                .enable_wal
                .then(|| PathBuf::from(&self.options.wal_path)),
            durable: self.options.auto_flush,
            time: None,
            max_clock_drift_ms: self.options.max_clock_drift_ms,
        };
        let mut sync = SyncEngine::new(&self.options.node_id, self.options.sync_config());
        let store = Store::open_with(&store_options, None, &mut sync).inspect_err(|e| {
            log::error!("node {}: client open failed: {e}", self.options.node_id);
        })?;
        sync.finish_replay();
        log::info!(
            "node {}: runtime started ({})",
            self.options.node_id,
            match store.wal_path() {
                Some(p) => format!("WAL {}", p.display()),
                None => "memory only".into(),
            }
        );
        *node = Some(OpenNode {
            store,
            sync: Mutex::new(sync),
            net: Mutex::new(None),
            discovery: Mutex::new(None),
            expired: Mutex::new(Vec::new()),
            waker: RwLock::new(None),
            started_at_ms: hlc::now_millis() as i64,
        });
        Ok(())
    }

    /// Flushes and closes. Closing a closed client does nothing. The client can be opened
    /// again afterwards.
    pub fn close(&self) -> Result<()> {
        // Closing drops whatever a panic left half-done: the next open starts clean.
        self.poisoned.lock().take();
        let Some(node) = self.node.write().take() else {
            return Ok(());
        };
        node.discovery.lock().take();
        if node.net.lock().take().is_some() {
            log::info!("node {}: transport stopped", self.options.node_id);
        }
        let result = node.store.close();
        log::info!("node {}: runtime stopped", self.options.node_id);
        Ok(result?)
    }

    pub fn is_open(&self) -> bool {
        self.node.read().is_some()
    }

    /// Runs `f` on the open node. A panic in `f` poisons the client (see
    /// [`Client::poisoned`]) and goes on unwinding to the caller's boundary.
    fn with_node<T>(&self, f: impl FnOnce(&OpenNode) -> Result<T>) -> Result<T> {
        if let Some(panic) = &*self.poisoned.lock() {
            return Err(Error::Internal(format!(
                "the client is unusable after {panic}; close it and open it again"
            )));
        }
        let node = self.node.read();
        let Some(node) = node.as_ref() else {
            return Err(Error::NotOpen);
        };
        // Locks here do not poison and a half-done call can leave state inconsistent, so
        // the client refuses further work itself.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(node))) {
            Ok(result) => result,
            Err(payload) => {
                let what = crate::error::panic_text(payload.as_ref());
                log::error!(
                    "node {}: a call panicked ({what}); the client refuses every call until \
                     it is closed and opened again",
                    self.options.node_id
                );
                *self.poisoned.lock() = Some(format!("a panic ({what})"));
                std::panic::resume_unwind(payload)
            }
        }
    }

    /// Why the client refuses every call, if a call panicked since it was opened.
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned.lock().clone()
    }

    fn logged_write<T>(&self, result: std::result::Result<T, StoreError>) -> Result<T> {
        result.map_err(|e| {
            let e = Error::Store(e);
            if e.code() == crate::error::ErrorCode::IoError {
                log::error!("node {}: store write failed: {e}", self.options.node_id);
            }
            e
        })
    }

    /// A successful local write enters the outbox.
    fn submitted<'k>(
        &self,
        node: &OpenNode,
        stamp: WriteStamp,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Version {
        node.sync.lock().record_local(stamp, keys);
        if let Some(waker) = &*node.waker.read() {
            // A thread waiting in the transport's poll pushes the new work right away.
            let _ = waker.wake();
        }
        stamp.last_version()
    }

    /// Stores `value` under `key`. With `auto_flush`, returns once the write is on disk.
    /// The write is a local operation that syncs to peers.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<Version> {
        self.with_node(|n| {
            let stamp = self.logged_write(n.store.put(key, value))?;
            Ok(self.submitted(n, stamp, [key]))
        })
    }

    /// The value of `key`; `NotFound` (with the key as context) when it has none.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.with_node(|n| {
            crate::store::validate_key(key)?;
            n.store.get(key).ok_or_else(|| Error::NotFound {
                key: key.to_string(),
            })
        })
    }

    /// Removes `key` (a tombstone that syncs). Removing a missing key succeeds.
    pub fn remove(&self, key: &str) -> Result<Version> {
        self.with_node(|n| {
            let stamp = self.logged_write(n.store.remove(key))?;
            Ok(self.submitted(n, stamp, [key]))
        })
    }

    /// Applies all changes of `batch` atomically (one WAL record, one sync).
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Version> {
        self.with_node(
            |n| match self.logged_write(n.store.write_batch(batch.changes()))? {
                None => Ok(n.store.last_version()),
                Some(stamp) => {
                    Ok(self.submitted(n, stamp, batch.changes().iter().map(Change::key)))
                }
            },
        )
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.with_node(|n| {
            crate::store::validate_key(key)?;
            Ok(n.store.contains(key))
        })
    }

    /// The entry of `key` with its version and origin, tombstones included.
    pub fn entry(&self, key: &str) -> Result<Option<Entry>> {
        self.with_node(|n| Ok(n.store.entry(key)))
    }

    /// Number of keys with a value.
    pub fn size(&self) -> Result<usize> {
        self.with_node(|n| Ok(n.store.len()))
    }

    /// Keys starting with `prefix` (all keys for ""), in order, with their values.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.with_node(|n| Ok(n.store.list(prefix)))
    }

    /// Makes every buffered write durable (useful with `auto_flush` off).
    pub fn flush(&self) -> Result<()> {
        self.with_node(|n| Ok(n.store.flush()?))
    }

    /// A fresh description of this node.
    pub fn node_info(&self) -> Result<NodeInfo> {
        self.with_node(|n| {
            let now = hlc::now_millis() as i64;
            let capabilities = self.capabilities();
            Ok(NodeInfo {
                node_id: self.options.node_id.clone(),
                display_name: self.options.effective_display_name().to_string(),
                hostname: metadata::hostname(),
                os_name: std::env::consts::OS.to_string(),
                version: self.options.version.clone(),
                started_at_ms: n.started_at_ms,
                uptime_ms: (now - n.started_at_ms).max(0),
                capabilities: capabilities.into_iter().map(String::from).collect(),
            })
        })
    }

    /// Like [`Client::node_info`], and logs that the metadata was refreshed.
    pub fn refresh_node_info(&self) -> Result<NodeInfo> {
        let info = self.node_info()?;
        log::debug!("node {}: node metadata refreshed", info.node_id);
        Ok(info)
    }
}

/// Sync: the outbox, its counters, remote operations and the catch-up.
impl Client {
    fn with_sync<T>(&self, f: impl FnOnce(&Store, &mut SyncEngine) -> Result<T>) -> Result<T> {
        self.with_node(|n| f(&n.store, &mut n.sync.lock()))
    }

    /// One sync cycle: retry operations whose ACK timed out (after their backoff), build the
    /// next batch when a peer is connected, and prune acknowledged work when asked. With no
    /// connected peer nothing is sent and queued work keeps waiting: being offline spends
    /// no retries.
    pub fn tick(&self, prune_completed: bool) -> Result<TickResult> {
        self.with_node(|n| {
            let now = hlc::now_millis();
            let mut net = n.net.lock();
            let mut sync = n.sync.lock();
            let tick = sync.tick(&n.store, now, prune_completed, false);
            let mut result = TickResult::from(&tick);
            if let Some(net) = net.as_mut() {
                result.batch_size = net.push_outbox(&n.store, &mut sync, now);
            }
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

    /// Queues again the in-flight operations whose ACK timed out; returns how many.
    pub fn retry_expired(&self) -> Result<usize> {
        self.with_sync(|_, sync| Ok(sync.retry_expired(hlc::now_millis())))
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
        self.with_sync(|store, sync| Ok(sync.next_batch(store, hlc::now_millis())))
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

/// See [`Client::network_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub transport: crate::transport::TransportStats,
    pub catch_ups: CatchUpStats,
    /// Records of peers that are not connected (dialled, or seen recently).
    pub peer_records: usize,
    /// Addresses dialled because discovery found them.
    pub discovered_dials: usize,
    /// Remote operations refused since the client was opened, by reason.
    pub refused_operations: crate::store::RefusedCounts,
}

/// The token of the discovery socket on the transport's poll.
const DISCOVERY_TOKEN: mio::Token = mio::Token(2);

/// The state of a peer, as `Client::peers()` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Known and reachable as far as we know (announced recently, or being connected).
    Available,
    /// Handshake done: operations flow.
    Connected,
    /// Not announced for half the discovery TTL.
    Stale,
    /// Not announced for a full TTL (reported once, then dropped).
    Expired,
    /// The last connection failed or broke; the node retries with backoff.
    Faulted,
    Unknown,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Available => "available",
            PeerState::Connected => "connected",
            PeerState::Stale => "stale",
            PeerState::Expired => "expired",
            PeerState::Faulted => "faulted",
            PeerState::Unknown => "unknown",
        }
    }
}

/// A peer node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    pub host: String,
    pub port: u16,
    pub state: PeerState,
    /// When it was last heard from, in milliseconds since the Unix epoch (0: never).
    pub last_seen_ms: u64,
}

impl Peer {
    pub fn new(node_id: &str, host: &str, port: u16) -> Peer {
        Peer {
            node_id: node_id.to_string(),
            host: host.to_string(),
            port,
            state: PeerState::Unknown,
            last_seen_ms: 0,
        }
    }

    /// A peer on 127.0.0.1.
    pub fn local(node_id: &str, port: u16) -> Peer {
        Peer::new(node_id, "127.0.0.1", port)
    }

    /// Checks the peer and resolves its address.
    pub fn address(&self) -> Result<SocketAddr> {
        let invalid = |reason: String| Error::InvalidPeer {
            peer: format!("{}@{}:{}", self.node_id, self.host, self.port),
            reason,
        };
        if let Err(e) = metadata::validate_node_id(&self.node_id) {
            return Err(invalid(e.to_string()));
        }
        if self.port == 0 {
            return Err(invalid("port 0".into()));
        }
        crate::transport::resolve(&self.host, self.port).map_err(|e| invalid(e.to_string()))
    }
}

/// Transport and peers.
impl Client {
    fn with_net<T>(&self, f: impl FnOnce(&OpenNode, &mut net::Net) -> Result<T>) -> Result<T> {
        self.with_node(|n| {
            if !self.options.enable_transport {
                return Err(Error::TransportUnavailable("transport is disabled".into()));
            }
            let mut guard = n.net.lock();
            let net = guard.as_mut().ok_or_else(|| {
                Error::TransportUnavailable(
                    "transport is not running; call start_transport() first".into(),
                )
            })?;
            f(n, net)
        })
    }

    /// Binds the transport on `transport_host:transport_port`. Starting a running
    /// transport does nothing.
    pub fn start_transport(&self) -> Result<()> {
        self.with_node(|n| {
            if !self.options.enable_transport {
                return Err(Error::TransportUnavailable("transport is disabled".into()));
            }
            let mut net = n.net.lock();
            if net.is_some() {
                return Ok(());
            }
            let mut config = crate::transport::TransportConfig::new(
                &self.options.node_id,
                &self.options.transport_host,
                self.options.transport_port,
            );
            config.display_name = self.options.effective_display_name().to_string();
            config.capabilities = self.capabilities().into_iter().map(String::from).collect();
            let transport = crate::transport::Transport::start(config).inspect_err(|e| {
                log::error!("node {}: transport start failed: {e}", self.options.node_id);
            })?;
            *n.waker.write() = Some(transport.waker());
            if let Some(d) = n.discovery.lock().as_mut() {
                d.register(transport.registry(), DISCOVERY_TOKEN)?;
            }
            *net = Some(net::Net::new(transport));
            Ok(())
        })
    }

    /// Closes every connection and the listener. Stopping a stopped (or disabled)
    /// transport does nothing. Sync work stays tracked.
    pub fn stop_transport(&self) -> Result<()> {
        self.with_node(|n| {
            *n.waker.write() = None;
            if n.net.lock().take().is_some() {
                log::info!("node {}: transport stopped", self.options.node_id);
            }
            Ok(())
        })
    }

    /// What the network side holds and has refused: connections and buffers, catch-ups
    /// served, peer and dial records, and the remote operations refused. For operators and
    /// tests; every figure is bounded by a documented limit (docs/protocol.md).
    pub fn network_stats(&self) -> Result<NetworkStats> {
        self.with_node(|n| {
            let net = n.net.lock();
            let (transport, catch_ups, peer_records, discovered_dials) = match net.as_ref() {
                Some(net) => (
                    net.transport.stats(),
                    net.catch_up_stats(),
                    net.known.len(),
                    net.discovered.len(),
                ),
                None => Default::default(),
            };
            Ok(NetworkStats {
                transport,
                catch_ups,
                peer_records,
                discovered_dials,
                refused_operations: n.store.refused_counts(),
            })
        })
    }

    pub fn transport_running(&self) -> bool {
        self.with_node(|n| Ok(n.net.lock().is_some()))
            .unwrap_or(false)
    }

    /// The address the transport listens on (useful with port 0 in tests and tools).
    pub fn transport_address(&self) -> Result<SocketAddr> {
        self.with_net(|_, net| Ok(net.transport.local_addr()))
    }

    /// Does pending network work without waiting: reads and answers messages, streams
    /// catch-ups and pushes the outbox. Returns how many transport events it handled.
    pub fn process_transport_events(&self, max_events: usize) -> Result<usize> {
        self.process_transport_events_wait(max_events, Duration::ZERO)
    }

    /// Like [`Client::process_transport_events`], waiting up to `timeout` for something
    /// to happen (a local write wakes it at once). For a loop on a thread of its own;
    /// other transport calls wait for it, so keep the timeout short (tens of ms).
    pub fn process_transport_events_wait(
        &self,
        max_events: usize,
        timeout: Duration,
    ) -> Result<usize> {
        self.with_node(|n| {
            let mut net = n.net.lock();
            let mut discovery = n.discovery.lock();
            if net.is_none() && discovery.is_none() {
                return Err(Error::TransportUnavailable(
                    if self.options.enable_transport {
                        "transport is not running; call start_transport() first".into()
                    } else {
                        "transport is disabled".into()
                    },
                ));
            }
            // Wait and do the I/O without the sync lock: local writes go on meanwhile.
            let events = match net.as_mut() {
                Some(net) => net
                    .transport
                    .poll(Some(timeout), max_events, hlc::now_millis()),
                None => Vec::new(),
            };
            let handled = events.len();
            let now = hlc::now_millis();
            if let Some(d) = discovery.as_mut() {
                self.drive_discovery(n, net.as_mut(), d, now);
            }
            let mut sync = n.sync.lock();
            sync.retry_expired(now);
            if let Some(net) = net.as_mut() {
                net.process(&n.store, &mut sync, events, now);
                if let Some(d) = discovery.as_mut() {
                    // Tell discovery which peers are connected or faulted.
                    for p in net.peers() {
                        match p.state {
                            PeerState::Connected => d.mark_connected(&p.node_id),
                            PeerState::Faulted => d.mark_faulted(&p.node_id),
                            _ => false,
                        };
                    }
                }
            }
            Ok(handled)
        })
    }

    /// Reads pending datagrams, announces when due, and acts on what discovery reports.
    fn drive_discovery(
        &self,
        n: &OpenNode,
        mut net: Option<&mut net::Net>,
        discovery: &mut crate::discovery::Discovery,
        now: u64,
    ) {
        use crate::discovery::DiscoveryEvent;
        let events: Vec<_> = discovery
            .on_readable(now)
            .into_iter()
            .chain(discovery.tick(now))
            .collect();
        for event in events {
            match event {
                DiscoveryEvent::Discovered(p) | DiscoveryEvent::Restarted(p) => {
                    log::info!(
                        "node {}: discovered peer {} at {}",
                        self.options.node_id,
                        p.node_id,
                        p.transport_addr()
                    );
                    if let Some(net) = net
                        .as_mut()
                        .filter(|_| self.options.auto_connect_discovered)
                    {
                        net.dial_discovered(&p.node_id, p.transport_addr(), now);
                    }
                }
                DiscoveryEvent::Stale(id) => {
                    log::info!("node {}: peer {id} is stale", self.options.node_id);
                }
                DiscoveryEvent::Expired(id) => {
                    log::info!("node {}: peer {id} expired", self.options.node_id);
                    if let Some(net) = net.as_mut() {
                        // A peer that only discovery knew of and that is gone: stop
                        // redialling it (forged announcements cannot keep dials for ever).
                        net.forget_discovered(&id);
                    }
                    let mut peer = Peer::new(&id, "", 0);
                    peer.state = PeerState::Expired;
                    let mut expired = n.expired.lock();
                    // Reported once by peers(); bounded for callers that never ask.
                    if expired.len() < crate::discovery::MAX_PEERS {
                        expired.push(peer);
                    }
                }
            }
        }
    }

    /// Starts UDP discovery on `discovery_host:discovery_port`, announcing this node's
    /// transport address to `discovery_broadcast_host:discovery_broadcast_port` (the
    /// discovery port when 0). Found peers are connected to when `auto_connect_discovered`
    /// is on and the transport runs. Starting it twice does nothing.
    pub fn start_discovery(&self) -> Result<()> {
        self.with_node(|n| {
            if !self.options.enable_discovery {
                return Err(Error::DiscoveryUnavailable("discovery is disabled".into()));
            }
            let net = n.net.lock();
            let mut discovery = n.discovery.lock();
            if discovery.is_some() {
                return Ok(());
            }
            let o = &self.options;
            let transport_port = match net.as_ref() {
                Some(net) => net.transport.local_addr().port(),
                None => o.transport_port,
            };
            if transport_port == 0 {
                return Err(Error::InvalidOptions {
                    field: "transport_port",
                    reason: "discovery announces the transport port: start the transport \
                             first or set transport_port"
                        .into(),
                });
            }
            let mut config =
                crate::discovery::DiscoveryConfig::new(o.node_id.clone(), transport_port);
            config.display_name = o.effective_display_name().to_string();
            config.bind_host = o.discovery_host.clone();
            config.bind_port = o.discovery_port;
            config.broadcast_host = o.discovery_broadcast_host.clone();
            config.broadcast_port = if o.discovery_broadcast_port == 0 {
                o.discovery_port
            } else {
                o.discovery_broadcast_port
            };
            config.transport_host = o.transport_host.clone();
            config.announce_interval_ms = u64::from(o.discovery_interval_ms);
            config.ttl_ms = u64::from(o.discovery_ttl_ms);
            let mut d = crate::discovery::Discovery::start(config).inspect_err(|e| {
                log::error!("node {}: discovery start failed: {e}", o.node_id);
            })?;
            if let Some(net) = net.as_ref() {
                d.register(net.transport.registry(), DISCOVERY_TOKEN)?;
            }
            log::info!(
                "node {}: discovery started on {}",
                o.node_id,
                d.local_addr()
            );
            *discovery = Some(d);
            Ok(())
        })
    }

    /// Stops discovery. Safe when it is disabled or not running.
    pub fn stop_discovery(&self) -> Result<()> {
        self.with_node(|n| {
            let net = n.net.lock();
            if let Some(mut d) = n.discovery.lock().take() {
                if let Some(net) = net.as_ref() {
                    let _ = d.deregister(net.transport.registry());
                }
                log::info!("node {}: discovery stopped", self.options.node_id);
            }
            Ok(())
        })
    }

    pub fn discovery_running(&self) -> bool {
        self.with_node(|n| Ok(n.discovery.lock().is_some()))
            .unwrap_or(false)
    }

    /// The address discovery listens on.
    pub fn discovery_address(&self) -> Result<SocketAddr> {
        self.with_node(|n| {
            n.discovery
                .lock()
                .as_ref()
                .map(|d| d.local_addr())
                .ok_or_else(|| Error::DiscoveryUnavailable("discovery is not running".into()))
        })
    }

    /// Sends more destinations for discovery announcements (for networks without
    /// broadcast, or several nodes on one host).
    pub fn add_discovery_target(&self, target: SocketAddr) -> Result<()> {
        self.with_node(|n| {
            let mut d = n.discovery.lock();
            let d = d
                .as_mut()
                .ok_or_else(|| Error::DiscoveryUnavailable("discovery is not running".into()))?;
            d.add_target(target)?;
            Ok(())
        })
    }

    /// Connects to `peer` and keeps the connection: it is redialled with backoff whenever it
    /// drops. Returns once the connection attempt has started; the handshake completes
    /// during `process_transport_events`.
    pub fn connect(&self, peer: &Peer) -> Result<()> {
        let addr = peer.address()?;
        self.with_net(|_, net| {
            net.expected.insert(addr, peer.node_id.clone());
            // Configured by the application: kept, whatever discovery says later.
            net.discovered.remove(&addr);
            net.transport.connect(addr, hlc::now_millis());
            Ok(())
        })
    }

    /// Closes the connection to `peer` and stops redialling it.
    pub fn disconnect(&self, peer: &Peer) -> Result<()> {
        let addr = peer.address()?;
        self.with_net(|_, net| {
            let mut events = Vec::new();
            let by_addr = net.transport.disconnect(addr, &mut events);
            let by_id = net.transport.disconnect_node(&peer.node_id, &mut events);
            net.expected.remove(&addr);
            if by_addr || by_id {
                Ok(())
            } else {
                Err(Error::InvalidPeer {
                    peer: format!("{}@{addr}", peer.node_id),
                    reason: "not connected".into(),
                })
            }
        })
    }

    /// Known peers, one per node: connected ones, dialled ones (faulted when their last
    /// connection failed), ones found by discovery (available or stale), and ones that
    /// expired since the last call (reported once). Reads pending discovery datagrams
    /// first, so the list is current even without a transport loop.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        self.with_node(|n| {
            if !self.options.enable_transport && !self.options.enable_discovery {
                return Err(Error::TransportUnavailable(
                    "transport and discovery are disabled".into(),
                ));
            }
            let now = hlc::now_millis();
            let mut net = n.net.lock();
            let mut discovery = n.discovery.lock();
            let mut peers = net.as_ref().map(|net| net.peers()).unwrap_or_default();
            if let Some(d) = discovery.as_mut() {
                self.drive_discovery(n, net.as_mut(), d, now);
                for p in d.peers() {
                    if peers.iter().any(|known| known.node_id == p.node_id) {
                        continue;
                    }
                    peers.push(Peer {
                        node_id: p.node_id.clone(),
                        host: p.host.to_string(),
                        port: p.port,
                        state: match p.state {
                            crate::discovery::PeerState::Available => PeerState::Available,
                            crate::discovery::PeerState::Stale => PeerState::Stale,
                            crate::discovery::PeerState::Expired => PeerState::Expired,
                            crate::discovery::PeerState::Connected => PeerState::Connected,
                            crate::discovery::PeerState::Faulted => PeerState::Faulted,
                            crate::discovery::PeerState::Unknown => PeerState::Unknown,
                        },
                        last_seen_ms: p.last_seen_ms,
                    });
                }
            }
            for p in n.expired.lock().drain(..) {
                if !peers.iter().any(|known| known.node_id == p.node_id) {
                    peers.push(p);
                }
            }
            peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            Ok(peers)
        })
    }

    fn capabilities(&self) -> Vec<&'static str> {
        let mut capabilities = vec!["core"];
        if self.options.enable_wal {
            capabilities.push("wal");
        }
        capabilities.extend(["store", "sync"]);
        if self.options.enable_transport {
            capabilities.push("transport");
        }
        if self.options.enable_discovery {
            capabilities.push("discovery");
        }
        capabilities.push("metadata");
        capabilities
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("node {}: close failed: {e}", self.options.node_id);
        }
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
