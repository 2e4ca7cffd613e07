//! The node runtime behind `Client`: options, lifecycle, and the local store. Sync,
//! transport and discovery join it in later layers. The C ABI, the cxx bridge and the CLI
//! all call this type and hold no logic of their own.

pub mod data_dir;
pub mod options;

use std::path::PathBuf;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::metadata::{self, NodeInfo};
use crate::store::{Change, Entry, Store, StoreOptions, Version, hlc};
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
    started_at_ms: i64,
}

/// A local-first node. Every method takes `&self`; a client is safe to use from several
/// threads. Writes hold a shared lock for their whole duration, so `close` waits for the
/// writes in progress to finish before it flushes.
pub struct Client {
    options: ClientOptions,
    node: RwLock<Option<OpenNode>>,
}

impl Client {
    /// A closed client with these options (they are checked by [`Client::open`]).
    pub fn new(options: ClientOptions) -> Client {
        Client {
            options,
            node: RwLock::new(None),
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
        };
        let store = Store::open(&store_options).inspect_err(|e| {
            log::error!("node {}: client open failed: {e}", self.options.node_id);
        })?;
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
            started_at_ms: hlc::now_millis() as i64,
        });
        Ok(())
    }

    /// Flushes and closes. Closing a closed client does nothing. The client can be opened
    /// again afterwards.
    pub fn close(&self) -> Result<()> {
        let Some(node) = self.node.write().take() else {
            return Ok(());
        };
        let result = node.store.close();
        log::info!("node {}: runtime stopped", self.options.node_id);
        Ok(result?)
    }

    pub fn is_open(&self) -> bool {
        self.node.read().is_some()
    }

    fn with_node<T>(&self, f: impl FnOnce(&OpenNode) -> Result<T>) -> Result<T> {
        match &*self.node.read() {
            Some(node) => f(node),
            None => Err(Error::NotOpen),
        }
    }

    fn logged_write<T>(
        &self,
        result: std::result::Result<T, crate::store::StoreError>,
    ) -> Result<T> {
        result.map_err(|e| {
            if e.code() == crate::error::ErrorCode::IoError {
                log::error!("node {}: store write failed: {e}", self.options.node_id);
            }
            Error::Store(e)
        })
    }

    /// Stores `value` under `key`. With `auto_flush`, returns once the write is on disk.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<Version> {
        self.with_node(|n| Ok(self.logged_write(n.store.put(key, value))?.last_version()))
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

    /// Removes `key`. Removing a missing key succeeds.
    pub fn remove(&self, key: &str) -> Result<Version> {
        self.with_node(|n| Ok(self.logged_write(n.store.remove(key))?.last_version()))
    }

    /// Applies all changes of `batch` atomically (one WAL record, one sync).
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Version> {
        self.with_node(|n| {
            let stamp = self.logged_write(n.store.write_batch(batch.changes()))?;
            Ok(stamp.map_or_else(|| n.store.last_version(), |s| s.last_version()))
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
            let now = hlc::now_millis() as i64;
            let mut capabilities = vec!["core"];
            if self.options.enable_wal {
                capabilities.push("wal");
            }
            capabilities.extend(["store", "metadata"]);
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

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("node {}: close failed: {e}", self.options.node_id);
        }
    }
}
