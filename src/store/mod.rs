//! The local store: an ordered in-memory map rebuilt from the WAL on open.
//!
//! Every write is logged first and applied to memory only once the log accepted it, so a
//! failed append changes nothing. Each entry carries a hybrid-clock [`Version`], the node id
//! it came from with that node's operation number (its identity), and the entry it
//! overwrote (its base); a removal leaves a tombstone. Memory is updated last-writer-wins by
//! (version, origin), which makes replay, concurrent writers and remote operations
//! order-independent. A [`VersionVector`] records which operations of each origin the store
//! has seen.
//!
//! This file holds the store, its map and local writes; `remote.rs` what comes from other
//! nodes; `error.rs` the layer's errors.

mod error;
pub mod hlc;
pub(crate) mod checkpoint;
mod entries;
pub mod collect;
pub mod op;
pub mod snapshot;
mod remote;
pub mod vector;

// Named in `Store::compact_through`'s signature; the node reads its fields without naming it.
#[cfg(feature = "internals")]
pub use checkpoint::Compacted;
pub use collect::{Collected, FullPart, TombstoneFate};
pub use error::StoreError;
#[cfg(feature = "internals")]
pub use remote::Refusal;
pub use remote::{Conflict, OpId, RefusedCounts, RemoteApply};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::wal::{
    FileSnapshotDir, RecordType, Recovery, ScannedRecord, SegmentDir, SnapshotDir, Wal, WalError,
    WalOptions,
};
pub use hlc::{HybridClock, Version};
use op::shown_key;
pub use op::{Change, MAX_KEY_LEN, MAX_VALUE_LEN, Op, Operation, key_from_bytes, validate_key};
pub use vector::{
    MAX_ORIGINS, MAX_RANGES, MAX_RELAYED_ORIGINS, OriginProgress, Superseded, VersionVector,
    merge_ranges,
};

/// One key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `None` for a tombstone (the key was removed).
    pub value: Option<Vec<u8>>,
    /// The version of the change that made it, which orders it (last writer wins).
    pub version: Version,
    /// Node id of the node that made this change.
    pub origin: Arc<str>,
    /// That node's number for this change.
    pub origin_seq: u64,
    /// The entry this change overwrote, as (origin, origin sequence number).
    pub base: Option<(Arc<str>, u64)>,
}

pub use entries::EntryRef;

/// The numbers given to a local write: its changes got consecutive sequence numbers and
/// versions starting at these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteStamp {
    pub first_seq: u64,
    pub first_version: Version,
    pub count: u64,
}

impl WriteStamp {
    pub fn last_version(&self) -> Version {
        Version(self.first_version.0 + self.count - 1)
    }
}

#[derive(Default)]
struct Map {
    entries: entries::Entries,
    /// Entries that are not tombstones.
    live: usize,
    /// The keys of the tombstones, so that collecting them visits only them (a store
    /// without tombstones costs nothing).
    tombstones: BTreeSet<String>,
    /// Where the last collection stopped (collections visit a bounded number at a time).
    collect_cursor: Option<String>,
    /// The removals this store collected, or learned that a peer collected.
    collected: Collected,
    vector: VersionVector,
    refused: RefusedCounts,
}

impl Map {
    /// Last-writer-wins apply, and records the operation as seen. Returns false when the
    /// entry already holds this or a newer change (applying twice changes nothing).
    fn apply(&mut self, op: &Op<'_>) -> bool {
        self.apply_replacing(op, None).is_some()
    }

    /// [`Map::apply`], also telling which operation of node `own` (this node) the change
    /// replaced: `None` when nothing changed, else `Some(number)` or `Some(None)`. Remote
    /// operations and replayed ones ask (the sync engine stops waiting for a catch-up to
    /// carry an operation no longer in the store), local writes do not.
    fn apply_replacing(&mut self, op: &Op<'_>, own: Option<&str>) -> Option<Option<u64>> {
        self.vector.observe(op.origin, op.origin_seq, op.version);
        // Was there an entry, and was it live?
        let before = self.entries.insert_if_newer(op, own)?;
        let own_replaced = before.and_then(|b| b.own_seq);
        match (before.map(|b| b.live), op.value.is_some()) {
            (Some(false), true) => {
                self.live += 1;
                self.tombstones.remove(op.key);
            }
            (None, true) => self.live += 1,
            (Some(true), false) => {
                self.live -= 1;
                self.tombstones.insert(op.key.to_string());
            }
            (None, false) => {
                self.tombstones.insert(op.key.to_string());
            }
            (Some(true), true) | (Some(false), false) => {}
        }
        Some(own_replaced)
    }

    /// Removes `key`'s entry if it is still the operation `(origin, seq)`; returns whether
    /// it did.
    fn forget(&mut self, key: &str, origin: &str, seq: u64) -> bool {
        if !self
            .entries
            .get(key)
            .is_some_and(|e| **e.origin == *origin && e.origin_seq == seq)
        {
            return false;
        }
        match self.entries.remove(key) {
            Some(true) => self.live -= 1,
            _ => {
                self.tombstones.remove(key);
            }
        }
        true
    }

    /// Every entry (tombstones included) whose operation `peer` has not seen.
    fn missing_for(&self, peer: &VersionVector) -> Vec<Operation> {
        self.entries
            .iter()
            .filter(|(_, e)| !peer.contains(e.origin, e.origin_seq))
            .map(|(k, e)| e.to_operation(k))
            .collect()
    }

    /// The identity of the entry a new write to `key` overwrites.
    fn base_of(&self, key: &str) -> Option<(Arc<str>, u64)> {
        self.entries
            .get(key)
            .map(|e| (e.origin.clone(), e.origin_seq))
    }
}

/// Where local changes get their numbers: the hybrid clock and the next origin sequence
/// number. Both only move forward, also across restarts (replay feeds them).
#[derive(Default)]
struct LocalCounters {
    clock: HybridClock,
    next_seq: u64,
}

/// Sees what a store replays on open: the layers above the store rebuild their state
/// from it (the sync engine its outbox).
pub trait ReplayObserver {
    /// A replayed operation, in log order.
    fn op(&mut self, _op: &Op<'_>) {}
    /// One of this node's own operations left the store (another operation replaced it, or
    /// it was forgotten), in log order.
    fn own_left(&mut self, _seq: u64) {}
    /// A record that is not a store record. An error is reported as corruption at the
    /// record's offset.
    fn record(&mut self, _record: &ScannedRecord<'_>) -> Result<(), String> {
        Ok(())
    }
    /// A snapshot block of another layer, before the records after the snapshot's cut
    /// are replayed. An error stops the open. Blocks no layer reads come from a newer
    /// version: refused, as an unknown record type is.
    fn snapshot_block(&mut self, block_type: u8, _payload: &[u8]) -> Result<(), String> {
        Err(format!("unknown snapshot block type {block_type}"))
    }
}

/// Observes nothing.
impl ReplayObserver for () {}

/// The wall clock the store stamps versions from, in milliseconds since the Unix epoch.
/// Replaceable so that simulations are deterministic.
pub type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Where and how a store keeps its data.
#[derive(Clone)]
pub struct StoreOptions {
    /// Node id stamped on local changes as their origin.
    pub node_id: String,
    /// The WAL file; `None` keeps everything in memory only.
    pub wal_path: Option<PathBuf>,
    /// Bytes per WAL segment file ([`crate::wal::WalOptions::segment_size`]).
    pub wal_segment_size: u64,
    /// Sync every write to disk before it returns (`auto_flush`).
    pub durable: bool,
    /// `None`: the system clock.
    pub time: Option<TimeSource>,
    /// A remote operation stamped more than this many milliseconds ahead of the local clock
    /// is refused (and never moves the local clock).
    pub max_clock_drift_ms: u64,
}

/// An own operation replayed with a number more than this beyond the greatest before it
/// was not written by this node (no node writes four billion operations between two).
const MAX_OWN_SEQ_JUMP: u64 = 1 << 32;

/// The default of [`StoreOptions::max_clock_drift_ms`]: one minute.
pub const DEFAULT_MAX_CLOCK_DRIFT_MS: u64 = 60_000;

impl StoreOptions {
    #[cfg(any(test, feature = "internals"))]
    pub fn new(node_id: &str, wal_path: Option<PathBuf>, durable: bool) -> Self {
        StoreOptions {
            node_id: node_id.to_string(),
            wal_path,
            wal_segment_size: crate::wal::DEFAULT_SEGMENT_SIZE,
            durable,
            time: None,
            max_clock_drift_ms: DEFAULT_MAX_CLOCK_DRIFT_MS,
        }
    }
}

/// An open store. Safe to share between threads.
pub struct Store {
    node_id: Arc<str>,
    wal: Option<Wal>,
    durable: bool,
    time: TimeSource,
    counters: Mutex<LocalCounters>,
    map: RwLock<Map>,
    /// What replaying the WAL found, for [`Store::recovery`].
    #[cfg_attr(
        not(any(test, feature = "internals")),
        allow(dead_code, reason = "only the tests read it")
    )]
    recovery: Option<Recovery>,
    /// The snapshot the store was opened from, if any.
    loaded_snapshot: Option<snapshot::SnapshotInfo>,
    /// Where its snapshots are: its WAL's directory (`None` without a WAL).
    snapshots: Option<Arc<dyn SnapshotDir>>,
    max_clock_drift_ms: u64,
    /// Told of the changes remote operations make (the node's change feed), if set.
    remote_observer: std::sync::OnceLock<Arc<dyn RemoteObserver>>,
}

/// Told of every change that operations from other nodes make to a store, once they are
/// applied (the node's change feed, `node/changes.rs`). Called with the sync lock held:
/// it must not block.
pub trait RemoteObserver: Send + Sync {
    /// Whether anyone listens now: when not, the store builds no list (a remote batch
    /// costs one atomic load more).
    fn listening(&self) -> bool;
    /// Operations that changed the store, in the order they were applied. A value a peer
    /// showed superseded by a removal it collected comes as a removal (`value` `None`)
    /// with the forgotten entry's origin, number and version.
    fn applied(&self, ops: &[&Operation]);
}

impl Store {
    /// Opens the store, replaying its WAL when it has one. Records of other layers are
    /// skipped.
    #[cfg(any(test, feature = "internals"))]
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        Self::open_with(options, None, &mut ())
    }

    /// Opens the store on a caller-provided WAL directory (fault-injection tests) when given
    /// one (its snapshots too: [`SegmentDir::snapshot_dir`]), and shows every replayed
    /// operation and every record of another layer to `observer`.
    pub fn open_with(
        options: &StoreOptions,
        wal_dir: Option<Box<dyn SegmentDir>>,
        observer: &mut dyn ReplayObserver,
    ) -> Result<Store, StoreError> {
        // A restore that did not finish leaves its marker: neither the old state nor the
        // backup's is whole, and opening would start numbering from what is there. (Also
        // under a given directory: a client's fault-injecting one wraps the real one.)
        if let Some(path) = options.wal_path.as_deref() {
            let marker = checkpoint::restore_marker_path(path);
            if marker.exists() {
                return Err(StoreError::RestoreUnfinished { marker });
            }
        }
        let snapshots: Option<Arc<dyn SnapshotDir>> = match (&options.wal_path, &wal_dir) {
            (None, _) => None,
            (Some(_), Some(dir)) => Some(dir.snapshot_dir()),
            (Some(path), None) => Some(Arc::new(FileSnapshotDir::of_file(path).0)),
        };
        // The newest intact snapshot, when there is one: the log is replayed on top of it.
        let snapshot = match (&options.wal_path, &snapshots) {
            (Some(path), Some(dir)) => checkpoint::load_newest(&**dir, path)?,
            _ => None,
        };
        let skip_through = snapshot.as_ref().map_or(0, |s| s.info.covers_through);
        let loaded_snapshot = snapshot.as_ref().map(|s| s.info);
        let (mut map, mut clock, mut own_max) = match snapshot {
            Some(checkpoint::Loaded {
                image,
                others,
                info,
            }) => {
                for (block_type, payload) in others {
                    observer.snapshot_block(block_type, &payload).map_err(|reason| {
                        StoreError::Snapshot(snapshot::SnapshotError::BadBlock {
                            path: checkpoint::snapshot_path(
                                options.wal_path.as_deref().unwrap_or(Path::new("")),
                                info.covers_through,
                            ),
                            offset: 0,
                            reason,
                        })
                    })?;
                }
                let own_max = image.counters.next_seq.saturating_sub(1);
                (image.map, image.counters.clock, own_max)
            }
            None => (Map::default(), HybridClock::default(), 0u64),
        };
        let time = options
            .time
            .clone()
            .unwrap_or_else(|| Arc::new(hlc::now_millis));
        // Versions further ahead than the drift (stored before such operations were
        // refused) stay in the entries but do not drag the clock along: a local write to
        // such a key still gets a greater version (see `write`), other keys keep real time.
        let horizon = horizon_at(time(), options.max_clock_drift_ms);
        let mut ahead = 0u64;
        // This node's own operations, in log order, have increasing numbers (they are issued
        // under the log's append lock). One far beyond the greatest so far was never written
        // here: forged data stored before such operations were refused. It keeps its place
        // in the store but is not sent again and does not move the numbering.
        let mut forged_own = 0u64;
        let (wal, recovery) = match &options.wal_path {
            None => (None, None),
            Some(path) => {
                let replay = |r: &ScannedRecord<'_>| match r.record_type {
                    RecordType::StoreOps => op::decode_ops(r.payload, |op| {
                        if op.version <= horizon {
                            clock.observe(op.version);
                        } else {
                            ahead += 1;
                        }
                        // Any operation, this node's included: a replayed one may meet an entry
                        // other than the base it names (a removal whose collection was not
                        // logged comes back in a replay until something overwrites it).
                        if let Some(Some(seq)) =
                            map.apply_replacing(&op, Some(&options.node_id))
                        {
                            observer.own_left(seq);
                        }
                        if op.origin == options.node_id {
                            if op.origin_seq > own_max.saturating_add(MAX_OWN_SEQ_JUMP) {
                                forged_own += 1;
                                return;
                            }
                            own_max = own_max.max(op.origin_seq);
                        }
                        observer.op(&op);
                    }),
                    RecordType::StoreForget => {
                        let own = collect::replay_forget(r.payload, &mut map, &options.node_id)?;
                        own.into_iter().for_each(|seq| observer.own_left(seq));
                        Ok(())
                    }
                    RecordType::SyncMarks => observer.record(r),
                };
                let wal_options = WalOptions {
                    segment_size: options.wal_segment_size,
                    skip_through,
                };
                let (wal, recovery) = match wal_dir {
                    None => Wal::open_with(path, wal_options, replay)?,
                    Some(dir) => Wal::open_with_dir(path, dir, wal_options, replay)?,
                };
                log::info!(
                    "store {}: replayed {} records ({} live keys)",
                    path.display(),
                    recovery.records,
                    map.live
                );
                if forged_own > 0 {
                    log::warn!(
                        "store {}: {forged_own} logged operations claim this node's origin with \
                         numbers it never reached; they are not sent again",
                        path.display()
                    );
                }
                if ahead > 0 {
                    log::warn!(
                        "store {}: {ahead} logged operations are stamped more than {} ms \
                         ahead of this clock; they did not move it",
                        path.display(),
                        options.max_clock_drift_ms
                    );
                }
                (Some(wal), Some(recovery))
            }
        };
        crate::id::validate_node_id(&options.node_id).map_err(|e| StoreError::InvalidRemoteOp {
            origin: options.node_id.clone(),
            seq: 0,
            reason: e.to_string(),
        })?;
        let node_id: Arc<str> = Arc::from(options.node_id.as_str());
        // Saturates: a log ending at u64::MAX refuses further writes with a clear error.
        let next_seq = own_max.saturating_add(1);
        Ok(Store {
            node_id,
            wal,
            durable: options.durable,
            time,
            counters: Mutex::new(LocalCounters { clock, next_seq }),
            map: RwLock::new(map),
            recovery,
            loaded_snapshot,
            snapshots,
            max_clock_drift_ms: options.max_clock_drift_ms,
            remote_observer: std::sync::OnceLock::new(),
        })
    }

    /// Sets who is told of the changes remote operations make; the first one set stays.
    pub fn observe_remote(&self, observer: Arc<dyn RemoteObserver>) {
        let _ = self.remote_observer.set(observer);
    }

    /// The observer of remote changes, when one is set and listening.
    fn remote_listener(&self) -> Option<&dyn RemoteObserver> {
        self.remote_observer
            .get()
            .map(|o| &**o)
            .filter(|o| o.listening())
    }

    /// This store's node id: the origin of its local changes.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The snapshot the store was opened from (`None`: none, or a memory-only store).
    pub fn loaded_snapshot(&self) -> Option<snapshot::SnapshotInfo> {
        self.loaded_snapshot
    }

    /// What replaying the WAL found (`None` for a memory-only store).
    #[cfg(any(test, feature = "internals"))]
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Ends the log's active segment for a snapshot: returns the cut, the sequence number
    /// of the last record before it. The caller makes sure every record up to the cut is
    /// applied (no write is between its record and its apply).
    pub fn cut_log(&self) -> Result<u64, StoreError> {
        let wal = self.wal.as_ref().ok_or_else(|| {
            StoreError::Wal(WalError::Closed {
                path: PathBuf::from("(memory only)"),
            })
        })?;
        Ok(wal.rotate()?.saturating_sub(1))
    }

    /// Deletes the log segments whose records are all at or before `cut` (a snapshot
    /// holds them). Returns how many.
    pub fn remove_log_through(&self, cut: u64) -> Result<usize, StoreError> {
        match &self.wal {
            Some(wal) => Ok(wal.remove_segments_through(cut)?),
            None => Ok(0),
        }
    }

    /// The log's files, oldest first, the active segment last (none without a WAL).
    pub fn log_segments(&self) -> Vec<crate::wal::SegmentInfo> {
        self.wal.as_ref().map_or_else(Vec::new, Wal::segments)
    }

    /// The bytes the log's files take on disk (0 without a WAL).
    pub fn log_disk_bytes(&self) -> u64 {
        self.wal.as_ref().map_or(0, Wal::disk_bytes)
    }

    /// Why the store refuses writes, if it does: its WAL failed a write or a sync, and
    /// every write fails with this until the store is opened again.
    pub fn write_refusal(&self) -> Option<StoreError> {
        self.wal.as_ref()?.refusal().map(StoreError::Wal)
    }

    /// Bytes the WAL's next write may have to allocate on disk (0 without a WAL).
    pub fn write_room_needed(&self) -> u64 {
        self.wal.as_ref().map_or(0, Wal::room_needed)
    }

    /// What the WAL counted since the store was opened (`None` without a WAL).
    pub fn wal_stats(&self) -> Option<crate::wal::WalStatsSnapshot> {
        self.wal.as_ref().map(Wal::stats)
    }

    /// The WAL path, if any.
    pub fn wal_path(&self) -> Option<&Path> {
        self.wal.as_ref().map(Wal::path)
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<WriteStamp, StoreError> {
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
    pub fn remove(&self, key: &str) -> Result<WriteStamp, StoreError> {
        validate_key(key)?;
        self.write(&[(key, None)])
    }

    /// Applies several changes atomically: one WAL record, one sync. All are validated
    /// before anything is written. An empty batch writes nothing and returns `None`.
    pub fn write_batch(&self, changes: &[Change]) -> Result<Option<WriteStamp>, StoreError> {
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
            return Ok(None);
        }
        self.write(&refs).map(Some)
    }

    /// Numbers, logs, then applies already validated local changes.
    fn write(&self, changes: &[(&str, Option<&[u8]>)]) -> Result<WriteStamp, StoreError> {
        self.write_above(changes, None)
    }

    /// [`Store::write`], with versions just above `above` (and the entries overwritten)
    /// when given, instead of the clock's (which does not move): remote writes written
    /// again (see `RemoteApply::rewritten`).
    fn write_above(
        &self,
        changes: &[(&str, Option<&[u8]>)],
        above: Option<Version>,
    ) -> Result<WriteStamp, StoreError> {
        let count = changes.len() as u64;
        // The numbers and bases of the changes, computed together under the counters' lock
        // (and, with a WAL, its append lock, so that numbers increase in log order). Each
        // version is above the clock and above the entry it overwrites, so a local write
        // always takes effect; when no such number is left the write is refused.
        let number = || -> Result<(WriteStamp, Vec<Base>), StoreError> {
            // Lock order: the map before the counters, as in `apply_remote`.
            let map = self.map.read();
            let mut counters = self.counters.lock();
            let first_seq = counters.next_seq;
            let exhausted = |reason: &str| StoreError::NumbersExhausted {
                key: shown_key(changes[0].0),
                reason: reason.to_string(),
            };
            let next_seq = first_seq
                .checked_add(count)
                .ok_or_else(|| exhausted("this node's sequence numbers are used up"))?;
            // The base of each change (an earlier change to the same key in this write, or
            // the entry in the map) and the greatest version among those entries, in one
            // lookup per key.
            let mut floor = Version::default();
            let bases: Vec<Base> = changes
                .iter()
                .enumerate()
                .map(
                    |(i, &(key, _))| match changes[..i].iter().rposition(|c| c.0 == key) {
                        Some(j) => Some((self.node_id.clone(), first_seq + j as u64)),
                        None => map.entries.get(key).map(|e| {
                            floor = floor.max(e.version);
                            (e.origin.clone(), e.origin_seq)
                        }),
                    },
                )
                .collect();
            let now = (self.time)();
            let first_version = if let Some(above) = above {
                floor
                    .max(above)
                    .next()
                    .filter(|first| first.0.checked_add(count - 1).is_some())
            } else if floor > horizon_at(now, self.max_clock_drift_ms) {
                // The stored version is from the far future (logged before such versions
                // were refused): go just above it without dragging the clock along, so
                // that other keys keep real time.
                floor
                    .next()
                    .filter(|first| first.0.checked_add(count - 1).is_some())
            } else {
                counters.clock.tick_n(now, count, floor)
            }
            .ok_or_else(|| {
                exhausted("no version is left above the one stored (a version from the far future)")
            })?;
            counters.next_seq = next_seq;
            let stamp = WriteStamp {
                first_seq,
                first_version,
                count,
            };
            Ok((stamp, bases))
        };
        let (stamp, bases) = match &self.wal {
            Some(wal) => {
                let mut result = None;
                wal.try_append(RecordType::StoreOps, self.durable, |_, payload| {
                    let (stamp, bases) = number()?;
                    op::encode_ops(payload, local_ops(&self.node_id, changes, stamp, &bases));
                    result = Some((stamp, bases));
                    Ok::<(), StoreError>(())
                })?;
                result.expect("the payload builder ran")
            }
            None => number()?,
        };
        let mut map = self.map.write();
        for op in local_ops(&self.node_id, changes, stamp, &bases) {
            map.apply(&op);
        }
        drop(map);
        Ok(stamp)
    }

    /// What this store has seen, per origin.
    pub fn version_vector(&self) -> VersionVector {
        self.map.read().vector.clone()
    }

    /// The greatest version seen from `origin`.
    pub fn version_vector_of(&self, origin: &str) -> Version {
        self.map
            .read()
            .vector
            .get(origin)
            .map(|p| p.max_version)
            .unwrap_or_default()
    }

    /// The greatest version seen from any other node.
    pub fn max_remote_version(&self) -> Version {
        self.map.read().vector.max_remote_version(&self.node_id)
    }

    /// Whether the store logs to a WAL (false: memory only).
    pub fn has_wal(&self) -> bool {
        self.wal.is_some()
    }

    /// Appends a record of another layer (the sync engine's marks) to the WAL. Without a
    /// WAL this does nothing.
    pub fn append_record(
        &self,
        record_type: RecordType,
        durable: bool,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        if let Some(wal) = &self.wal {
            wal.append(record_type, durable && self.durable, |_, out| {
                out.extend_from_slice(payload);
            })?;
        }
        Ok(())
    }

    /// The live value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map
            .read()
            .entries
            .get(key)
            .and_then(|e| e.value.map(<[u8]>::to_vec))
    }

    /// The entry of `key`, tombstones included.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.map.read().entries.get(key).map(|e| e.to_entry())
    }

    /// `key`'s entry as an operation, if it is the operation `(origin, seq)`.
    pub fn operation_if(&self, key: &str, origin: &str, seq: u64) -> Option<Operation> {
        self.map
            .read()
            .entries
            .get(key)
            .filter(|e| **e.origin == *origin && e.origin_seq == seq)
            .map(|e| e.to_operation(key))
    }

    /// Whether `key`'s entry is this node's operation `seq` (`None`: it is not, a newer
    /// one replaced it) and, when it is, the number of this node's operation it overwrote
    /// (its base), if any. For the outbox's operations awaiting catch-up.
    pub fn own_entry_base(&self, key: &str, seq: u64) -> Option<Option<u64>> {
        let map = self.map.read();
        let own = |origin: &Arc<str>| **origin == *self.node_id;
        let e = map
            .entries
            .get(key)
            .filter(|e| own(e.origin) && e.origin_seq == seq)?;
        Some(e.base.filter(|(o, _)| own(o)).map(|(_, s)| s))
    }

    /// The origin and origin sequence number of `key`'s entry.
    pub fn entry_id(&self, key: &str) -> Option<(Arc<str>, u64)> {
        self.map.read().base_of(key)
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
    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live keys starting with `prefix`, in key order, with their values.
    pub fn list(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let map = self.map.read();
        map.entries
            .range((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, e)| e.value.map(|v| (k.to_string(), v.to_vec())))
            .collect()
    }

    /// Every entry, tombstones included, in key order.
    #[cfg(any(test, feature = "internals"))]
    pub fn entries(&self) -> Vec<(String, Entry)> {
        let map = self.map.read();
        map.entries
            .iter()
            .map(|(k, e)| (k.to_string(), e.to_entry()))
            .collect()
    }

    /// The greatest version this store has issued or seen.
    pub fn last_version(&self) -> Version {
        self.counters.lock().clock.last()
    }

    /// The sequence number the next local change will get.
    pub fn next_seq(&self) -> u64 {
        self.counters.lock().next_seq
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

/// The greatest version accepted from outside at wall-clock time `now_ms`.
fn horizon_at(now_ms: u64, max_clock_drift_ms: u64) -> Version {
    Version::last_of_millis(now_ms.saturating_add(max_clock_drift_ms))
}

/// The entry a change overwrites, as (origin, origin sequence number).
type Base = Option<(Arc<str>, u64)>;

/// The operations of a local write: consecutive numbers from `stamp`, bases as computed.
fn local_ops<'a>(
    origin: &'a str,
    changes: &'a [(&'a str, Option<&'a [u8]>)],
    stamp: WriteStamp,
    bases: &'a [Option<(Arc<str>, u64)>],
) -> impl ExactSizeIterator<Item = Op<'a>> + 'a {
    changes
        .iter()
        .zip(bases.iter())
        .enumerate()
        .map(move |(i, (&(key, value), base))| Op {
            key,
            value,
            version: Version(stamp.first_version.0 + i as u64),
            origin,
            origin_seq: stamp.first_seq + i as u64,
            base: base.as_ref().map(|(o, s)| (&**o, *s)),
        })
}
