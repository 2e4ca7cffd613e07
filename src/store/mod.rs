//! The local store: an ordered in-memory map rebuilt from the WAL on open.
//!
//! Every write is logged first and applied to memory only once the log accepted it, so a
//! failed append changes nothing. Each entry carries a hybrid-clock [`Version`] and the node
//! id it came from; a removal leaves a tombstone. Memory is updated last-writer-wins by
//! (version, origin), which makes replay and concurrent writers order-independent and is the
//! rule the sync engine applies to remote operations too.

pub mod hlc;
pub mod op;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::ErrorCode;
use crate::wal::{RecordType, Recovery, Wal, WalError, WalStorage};
pub use hlc::{HybridClock, Version};
pub use op::{Change, MAX_KEY_LEN, MAX_VALUE_LEN, key_from_bytes, validate_key};
use op::{Op, shown_key};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Wal(#[from] WalError),

    #[error("invalid key \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },

    #[error("value for key \"{key}\" is too large: {size} bytes (limit {MAX_VALUE_LEN} bytes)")]
    ValueTooLarge { key: String, size: usize },
}

impl StoreError {
    /// The stable code for foreign callers.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidKey { .. } | StoreError::ValueTooLarge { .. } => {
                ErrorCode::InvalidArgument
            }
            StoreError::Wal(WalError::RecordTooLarge { .. }) => ErrorCode::InvalidArgument,
            StoreError::Wal(WalError::Closed { .. }) => ErrorCode::InvalidState,
            StoreError::Wal(WalError::Corrupt { .. } | WalError::BadHeader { .. }) => {
                ErrorCode::StoreError
            }
            StoreError::Wal(_) => ErrorCode::IoError,
        }
    }

    /// The key or path the error is about.
    pub fn context(&self) -> String {
        match self {
            StoreError::InvalidKey { key, .. } | StoreError::ValueTooLarge { key, .. } => {
                key.clone()
            }
            StoreError::Wal(e) => e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// One key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `None` for a tombstone (the key was removed).
    pub value: Option<Vec<u8>>,
    pub version: Version,
    /// Node id of the node that made this change.
    pub origin: Arc<str>,
}

impl Entry {
    fn wins_over(&self, version: Version, origin: &str) -> bool {
        (self.version, &*self.origin) >= (version, origin)
    }
}

#[derive(Default)]
struct Map {
    entries: BTreeMap<String, Entry>,
    /// Entries that are not tombstones.
    live: usize,
    /// Interned origin ids, so a million entries share a handful of strings.
    origins: HashMap<String, Arc<str>>,
    /// The origin interned last: replayed records mostly come from one node.
    last_origin: Option<Arc<str>>,
}

impl Map {
    fn intern(&mut self, origin: &str) -> Arc<str> {
        if let Some(last) = self.last_origin.as_ref().filter(|l| ***l == *origin) {
            return last.clone();
        }
        let interned = match self.origins.get(origin) {
            Some(o) => o.clone(),
            None => {
                let o: Arc<str> = Arc::from(origin);
                self.origins.insert(origin.to_string(), o.clone());
                o
            }
        };
        self.last_origin = Some(interned.clone());
        interned
    }

    /// Last-writer-wins apply. Returns false when the entry already holds this or a newer
    /// change (applying the same operation twice changes nothing).
    fn apply(&mut self, op: &Op<'_>) -> bool {
        self.apply_as(op, |map| map.intern(op.origin))
    }

    /// [`Map::apply`] for an origin the caller already holds (local writes).
    fn apply_with_origin(&mut self, op: &Op<'_>, origin: &Arc<str>) -> bool {
        self.apply_as(op, |_| origin.clone())
    }

    /// One tree walk for an existing key, two for a new one (the lookup, then the insert).
    fn apply_as(&mut self, op: &Op<'_>, origin: impl FnOnce(&mut Map) -> Arc<str>) -> bool {
        let origin = origin(self);
        let entry = |origin| Entry {
            value: op.value.map(<[u8]>::to_vec),
            version: op.version,
            origin,
        };
        let was_live = match self.entries.get_mut(op.key) {
            Some(slot) if slot.wins_over(op.version, op.origin) => return false,
            Some(slot) => std::mem::replace(slot, entry(origin)).value.is_some(),
            None => {
                self.entries.insert(op.key.to_string(), entry(origin));
                false
            }
        };
        match (was_live, op.value.is_some()) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        true
    }
}

/// Where and how a store keeps its data.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Node id stamped on local changes as their origin.
    pub node_id: String,
    /// The WAL file; `None` keeps everything in memory only.
    pub wal_path: Option<PathBuf>,
    /// Sync every write to disk before it returns (`auto_flush`).
    pub durable: bool,
}

/// An open store. Safe to share between threads.
pub struct Store {
    node_id: Arc<str>,
    wal: Option<Wal>,
    durable: bool,
    clock: Mutex<HybridClock>,
    map: RwLock<Map>,
    recovery: Option<Recovery>,
}

impl Store {
    /// Opens the store, replaying its WAL when it has one.
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        Self::open_on(options, None)
    }

    /// Opens the store on a caller-provided WAL storage (fault-injection tests).
    pub fn open_with_storage(
        options: &StoreOptions,
        storage: Box<dyn WalStorage>,
    ) -> Result<Store, StoreError> {
        Self::open_on(options, Some(storage))
    }

    fn open_on(
        options: &StoreOptions,
        storage: Option<Box<dyn WalStorage>>,
    ) -> Result<Store, StoreError> {
        let mut map = Map::default();
        let mut clock = HybridClock::default();
        let (wal, recovery) = match &options.wal_path {
            None => (None, None),
            Some(path) => {
                let replay = |r: &crate::wal::ScannedRecord<'_>| match r.record_type {
                    RecordType::StoreOps => op::decode_ops(r.payload, |op| {
                        clock.observe(op.version);
                        map.apply(&op);
                    }),
                };
                let (wal, recovery) = match storage {
                    None => Wal::open(path, replay)?,
                    Some(s) => Wal::open_with_storage(path, s, replay)?,
                };
                log::info!(
                    "store {}: replayed {} records ({} live keys)",
                    path.display(),
                    recovery.records,
                    map.live
                );
                (Some(wal), Some(recovery))
            }
        };
        let node_id: Arc<str> = map.intern(&options.node_id);
        Ok(Store {
            node_id,
            wal,
            durable: options.durable,
            clock: Mutex::new(clock),
            map: RwLock::new(map),
            recovery,
        })
    }

    /// What replaying the WAL found (`None` for a memory-only store).
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The WAL path, if any.
    pub fn wal_path(&self) -> Option<&Path> {
        self.wal.as_ref().map(Wal::path)
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<Version, StoreError> {
        validate_key(key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::ValueTooLarge {
                key: shown_key(key),
                size: value.len(),
            });
        }
        self.write(&[(key, Some(value))])
    }

    /// Removes `key`, leaving a tombstone. Removing a missing key succeeds.
    pub fn remove(&self, key: &str) -> Result<Version, StoreError> {
        validate_key(key)?;
        self.write(&[(key, None)])
    }

    /// Applies several changes atomically: one WAL record, one sync. All are validated
    /// before anything is written. Returns the version of the last change.
    pub fn write_batch(&self, changes: &[Change]) -> Result<Version, StoreError> {
        for change in changes {
            op::validate_change(change)?;
        }
        let refs: Vec<(&str, Option<&[u8]>)> = changes
            .iter()
            .map(|c| match c {
                Change::Put { key, value } => (key.as_str(), Some(value.as_slice())),
                Change::Remove { key } => (key.as_str(), None),
            })
            .collect();
        if refs.is_empty() {
            return Ok(self.clock.lock().last());
        }
        self.write(&refs)
    }

    /// Logs then applies already validated changes. The changes get consecutive versions.
    fn write(&self, changes: &[(&str, Option<&[u8]>)]) -> Result<Version, StoreError> {
        let count = changes.len() as u64;
        let stamp = || self.clock.lock().tick_n(hlc::now_millis(), count);
        let ops = |first: Version| {
            changes
                .iter()
                .enumerate()
                .map(move |(i, &(key, value))| Op {
                    key,
                    value,
                    version: Version(first.0 + i as u64),
                    origin: &self.node_id,
                })
        };
        let first = match &self.wal {
            Some(wal) => {
                // Versions are issued under the WAL's append lock, so they increase in log order.
                let mut first = Version::default();
                wal.append(RecordType::StoreOps, self.durable, |_, payload| {
                    first = stamp();
                    op::encode_ops(payload, ops(first));
                })?;
                first
            }
            None => stamp(),
        };
        let mut map = self.map.write();
        for op in ops(first) {
            map.apply_with_origin(&op, &self.node_id);
        }
        Ok(Version(first.0 + count - 1))
    }

    /// The live value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map
            .read()
            .entries
            .get(key)
            .and_then(|e| e.value.clone())
    }

    /// The entry of `key`, tombstones included.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.map.read().entries.get(key).cloned()
    }

    /// Whether `key` has a live value.
    pub fn contains(&self, key: &str) -> bool {
        self.map
            .read()
            .entries
            .get(key)
            .is_some_and(|e| e.value.is_some())
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.map.read().live
    }

    /// Whether the store has no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live keys starting with `prefix`, in key order, with their values.
    pub fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let map = self.map.read();
        map.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    /// The greatest version this store has issued or seen.
    pub fn last_version(&self) -> Version {
        self.clock.lock().last()
    }

    /// Makes every buffered write durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.wal {
            Some(wal) => Ok(wal.flush()?),
            None => Ok(()),
        }
    }

    /// Flushes and closes the WAL; later writes fail.
    pub fn close(&self) -> Result<(), StoreError> {
        match &self.wal {
            Some(wal) => Ok(wal.close()?),
            None => Ok(()),
        }
    }
}
