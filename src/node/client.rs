//! `Client`: lifecycle (open, close, the poisoning of a client whose call panicked) and the
//! key-value API.

use super::*;

impl Client {
    /// A closed client with these options (they are checked by [`Client::open`]). With
    /// the test-only option `manual_clock`, it reads the time from a clock of its own that
    /// [`Client::advance_clock`] moves.
    pub fn new(options: ClientOptions) -> Client {
        if options.manual_clock {
            let manual = Arc::new(crate::clock::ManualClock::new());
            return Self::build(options, manual.clone(), Some(manual));
        }
        Self::build(options, Arc::new(crate::clock::SystemClock), None)
    }

    /// A closed client reading the time from `clock` (tests make its wall clock jump).
    #[cfg(any(test, feature = "internals"))]
    pub fn with_clock(options: ClientOptions, clock: Arc<dyn crate::clock::Clock>) -> Client {
        Self::build(options, clock, None)
    }

    fn build(
        options: ClientOptions,
        clock: Arc<dyn crate::clock::Clock>,
        manual_clock: Option<Arc<crate::clock::ManualClock>>,
    ) -> Client {
        use crate::wal::{Fault, FaultPlan};
        let faults = [
            (options.fail_write_at, Fault::WriteOnce(options.fail_write_at)),
            (options.fail_sync_at, Fault::SyncOnce(options.fail_sync_at)),
        ]
        .into_iter()
        .filter(|(at, _)| *at != 0)
        .map(|(_, fault)| fault)
        .collect::<Vec<_>>();
        Client {
            faults: (!faults.is_empty()).then(|| FaultPlan::new(faults)),
            options,
            clock,
            manual_clock,
            node: RwLock::new(None),
            poisoned: Arc::new(Mutex::new(None)),
            background: Mutex::new(None),
            metrics_server: Mutex::new(None),
            changes: Arc::default(),
        }
    }

    /// The options the client was made with.
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
            wal_segment_size: self.options.wal_segment_size,
            durable: self.options.auto_flush,
            time: Some({
                let clock = self.clock.clone();
                Arc::new(move || clock.wall_ms())
            }),
            max_clock_drift_ms: self.options.max_clock_drift_ms,
        };
        let mut sync = SyncEngine::new(&self.options.node_id, self.options.sync_config());
        let store = self.open_store(&store_options, &mut sync).inspect_err(|e| {
            log::error!("node {}: client open failed: {e}", self.options.node_id);
        })?;
        sync.finish_replay();
        store.observe_remote(self.changes.clone());
        // After the WAL: its lock keeps a second process from making a key meanwhile.
        let identity = match self.options.effective_identity_path() {
            Some(path) => crate::identity::Identity::load_or_create(&path, &self.options.node_id),
            None => crate::identity::Identity::generate(),
        }
        .inspect_err(|e| log::error!("node {}: client open failed: {e}", self.options.node_id))?;
        // The size of the snapshot just loaded (not a second listing of the directory).
        let last_snapshot_bytes = store.loaded_snapshot().map_or(0, |s| s.bytes);
        let trust = super::trust::Trust::load(self.options.effective_trust_path())
            .inspect_err(|e| log::error!("node {}: client open failed: {e}", self.options.node_id))?;
        log::info!(
            "node {}: runtime started ({})",
            self.options.node_id,
            match store.wal_path() {
                Some(p) => format!("WAL {}", p.display()),
                None => "memory only".into(),
            }
        );
        *node = Some(Arc::new(OpenNode {
            store,
            sync: lock_order::Ranked::new(lock_order::Rank::Sync, sync),
            local: lock_order::Ranked::new(lock_order::Rank::Local, Vec::new()),
            net: lock_order::Ranked::new(lock_order::Rank::Net, None),
            discovery: lock_order::Ranked::new(lock_order::Rank::Discovery, None),
            peer_book: Mutex::new(peers::PeerBook::default()),
            sync_deadline_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            waker: RwLock::new(None),
            started_at_ms: i64::try_from(self.clock.wall_ms()).unwrap_or(i64::MAX),
            started_mono_ms: self.clock.mono_ms(),
            clock: self.clock.clone(),
            identity: Arc::new(identity),
            trust,
            write_gate: RwLock::new(()),
            compaction: Mutex::new(()),
            compactor: Mutex::new(None),
            last_snapshot_bytes: std::sync::atomic::AtomicU64::new(last_snapshot_bytes),
            writes: super::metrics::WriteCounters::default(),
            last_collect_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
        }));
        Ok(())
    }

    /// The store, on the real directory, or through a [`crate::wal::FaultyDir`] when the
    /// test-only options ask for disk faults (what opening writes is not counted).
    fn open_store(&self, options: &StoreOptions, sync: &mut SyncEngine) -> Result<Store> {
        let (Some(plan), Some(path)) = (&self.faults, options.wal_path.as_deref()) else {
            return Ok(Store::open_with(options, None, sync)?);
        };
        let dir = crate::wal::FileDir::open(path)?;
        plan.count(false);
        let faulty = crate::wal::FaultyDir::with_plan(Box::new(dir), plan);
        let store = Store::open_with(options, Some(Box::new(faulty)), sync);
        plan.count(true);
        Ok(store?)
    }

    /// For tests: moves the clock of a client made with the test-only option
    /// `manual_clock` `ms` milliseconds forward, and wakes a thread waiting for network
    /// events, so that what falls due by then (ACK timeouts, retries at the end of their
    /// backoff, redials, keepalives, stale and expired peers) happens on the next turn of
    /// the event loop or tick. `InvalidState` without `manual_clock`. Open or closed.
    pub fn advance_clock(&self, ms: u64) -> Result<()> {
        let Some(clock) = &self.manual_clock else {
            return Err(Error::InvalidState(
                "advance_clock needs a client made with the option manual_clock".into(),
            ));
        };
        clock.advance(ms);
        if let Some(node) = &*self.node.read()
            && let Some(waker) = &*node.waker.read()
        {
            let _ = waker.wake();
        }
        Ok(())
    }

    /// Flushes and closes. Closing a closed client does nothing. The client can be opened
    /// again afterwards.
    pub fn close(&self) -> Result<()> {
        // The background loop and the metrics endpoint first: they work on the node this
        // closes.
        self.stop_background();
        self.stop_metrics_server();
        // Closing drops whatever a panic left half-done: the next open starts clean.
        self.poisoned.lock().take();
        let Some(node) = self.node.write().take() else {
            return Ok(());
        };
        // An automatic compaction in progress finishes first: it writes to the store.
        if let Some(compactor) = node.compactor.lock().take()
            && compactor.join().is_err()
        {
            log::error!("node {}: the compaction thread panicked", self.options.node_id);
        }
        node.discovery.lock().take();
        if node.net.lock().take().is_some() {
            log::info!("node {}: transport stopped", self.options.node_id);
        }
        let result = node.store.close();
        log::info!("node {}: runtime stopped", self.options.node_id);
        Ok(result?)
    }

    /// Whether the client is open (opened, and not closed since).
    pub fn is_open(&self) -> bool {
        self.node.read().is_some()
    }

    /// Runs `f` on the open node. A panic in `f` poisons the client (see
    /// [`Client::poisoned`]) and goes on unwinding to the caller's boundary.
    pub(super) fn with_node<T>(&self, f: impl FnOnce(&OpenNode) -> Result<T>) -> Result<T> {
        if let Some(panic) = &*self.poisoned.lock() {
            return Err(Error::Internal(super::health::unusable_after(panic)));
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

    /// A local write's result: a failure is counted by kind (and logged when it is the
    /// file system's), a success by its operations and bytes.
    pub(super) fn logged_write<T>(
        &self,
        n: &OpenNode,
        changes: &[(&str, Option<&[u8]>)],
        result: std::result::Result<T, StoreError>,
    ) -> Result<T> {
        match result {
            Ok(v) => {
                n.writes.accepted(changes);
                Ok(v)
            }
            Err(e) => {
                n.writes.failed(&e);
                let e = Error::Store(e);
                if e.code() == crate::error::ErrorCode::IoError {
                    log::error!("node {}: store write failed: {e}", self.options.node_id);
                }
                Err(e)
            }
        }
    }

    /// A successful local write enters the outbox.
    pub(super) fn submitted<'k>(
        &self,
        node: &OpenNode,
        stamp: WriteStamp,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Version {
        node.submit(stamp, keys);
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
            let _gate = n.write_gate.read();
            let stamp = self.logged_write(n, &[(key, Some(value))], n.store.put(key, value))?;
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
            let _gate = n.write_gate.read();
            let stamp = self.logged_write(n, &[(key, None)], n.store.remove(key))?;
            Ok(self.submitted(n, stamp, [key]))
        })
    }

    /// Applies all changes of `batch` atomically (one WAL record, one sync).
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Version> {
        self.with_node(|n| {
            let _gate = n.write_gate.read();
            let changes: Vec<(&str, Option<&[u8]>)> = batch
                .changes()
                .iter()
                .map(|c| match c {
                    Change::Put { key, value } => (key.as_str(), Some(value.as_slice())),
                    Change::Remove { key } => (key.as_str(), None),
                })
                .collect();
            match self.logged_write(n, &changes, n.store.write_batch(batch.changes()))? {
                None => Ok(n.store.last_version()),
                Some(stamp) => {
                    Ok(self.submitted(n, stamp, batch.changes().iter().map(Change::key)))
                }
            }
        })
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
            let uptime = n.clock.mono_ms().saturating_sub(n.started_mono_ms);
            let capabilities = self.capabilities();
            Ok(NodeInfo {
                node_id: self.options.node_id.clone(),
                display_name: self.options.effective_display_name().to_string(),
                hostname: metadata::hostname(),
                os_name: std::env::consts::OS.to_string(),
                version: self.options.version.clone(),
                started_at_ms: n.started_at_ms,
                uptime_ms: i64::try_from(uptime).unwrap_or(i64::MAX),
                capabilities: capabilities.into_iter().map(String::from).collect(),
                fingerprint: n.identity.fingerprint().to_string(),
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
