//! The local store: an ordered in-memory map rebuilt from the WAL on open.
//!
//! Every write is logged first and applied to memory only once the log accepted it, so a
//! failed append changes nothing. Each entry carries a hybrid-clock [`Version`], the node id
//! it came from with that node's operation number (its identity), and the entry it
//! overwrote (its base); a removal leaves a tombstone. Memory is updated last-writer-wins by
//! (version, origin), which makes replay, concurrent writers and remote operations
//! order-independent. A [`VersionVector`] records which operations of each origin the store
//! has seen.

pub mod hlc;
pub mod op;
pub mod vector;

use std::collections::{BTreeMap, HashMap, HashSet, btree_map};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::wal::{RecordType, Recovery, ScannedRecord, Wal, WalError, WalStorage};
pub use hlc::{HybridClock, Version};
use op::shown_key;
pub use op::{Change, MAX_KEY_LEN, MAX_VALUE_LEN, Op, Operation, key_from_bytes, validate_key};
pub use vector::{MAX_ORIGINS, MAX_RANGES, MAX_RELAYED_ORIGINS, OriginProgress, VersionVector};

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

    /// A remote operation that breaks the rules; nothing of its batch was applied.
    #[error("invalid remote operation {seq} from \"{origin}\": {reason}")]
    InvalidRemoteOp {
        origin: String,
        seq: u64,
        reason: String,
    },

    /// A local write found no version or sequence number left to give it: the log holds a
    /// number at the end of its range (forged or damaged data stored before such numbers
    /// were refused). Nothing was written.
    #[error("cannot write key \"{key}\": {reason}")]
    NumbersExhausted { key: String, reason: String },
}

impl StoreError {
    /// The key, path or origin the error is about.
    pub fn context(&self) -> String {
        match self {
            StoreError::InvalidKey { key, .. }
            | StoreError::ValueTooLarge { key, .. }
            | StoreError::NumbersExhausted { key, .. } => key.clone(),
            StoreError::InvalidRemoteOp { origin, .. } => origin.clone(),
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
    /// That node's number for this change.
    pub origin_seq: u64,
    /// The entry this change overwrote, as (origin, origin sequence number).
    pub base: Option<(Arc<str>, u64)>,
}

impl Entry {
    fn wins_over(&self, version: Version, origin: &str) -> bool {
        (self.version, &*self.origin) >= (version, origin)
    }

    /// This entry as an operation that recreates it.
    pub fn to_operation(&self, key: &str) -> Operation {
        Operation {
            key: key.to_string(),
            value: self.value.clone(),
            version: self.version,
            origin: self.origin.to_string(),
            origin_seq: self.origin_seq,
            base: self.base.as_ref().map(|(o, s)| (o.to_string(), *s)),
        }
    }
}

/// An operation's identity and version, as shown in conflict reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpId {
    pub origin: String,
    pub seq: u64,
    pub version: Version,
}

/// Two writes to one key made without knowledge of each other; last-writer-wins kept one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: String,
    /// The entry the store held when the remote operation arrived.
    pub local: OpId,
    pub remote: OpId,
    /// Whether the remote operation won (and replaced the local entry).
    pub remote_won: bool,
}

/// What [`Store::apply_remote`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteApply {
    /// Operations that changed the store (and were logged).
    pub applied: usize,
    /// Operations older than the entry they met: nothing written.
    pub ignored: usize,
    /// Operations seen before: nothing written.
    pub duplicates: usize,
    pub conflicts: Vec<Conflict>,
    /// Positions (in the call's slice) of the operations that changed the store: new to
    /// this node, and possibly to its other peers.
    pub applied_indices: Vec<usize>,
    /// Positions of the operations refused, in order, with why (see [`Refusal`]): not
    /// applied, not recorded as seen, not to be acknowledged. The rest of the call was
    /// applied.
    pub refused: Vec<(usize, Refusal)>,
}

/// Why a well-formed remote operation was refused. The operation is neither applied nor
/// recorded as seen, so a later delivery (retry or catch-up) can still bring it once it is
/// acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// It claims this node's own origin, but this node never wrote it.
    OwnOrigin,
    /// Its version is further ahead of this node's clock than the allowed drift.
    ClockAhead,
    /// Its origin is new and the vector already holds [`MAX_ORIGINS`] origins
    /// ([`MAX_RELAYED_ORIGINS`] for an operation that did not come from its origin itself).
    TooManyOrigins,
    /// It would open a gap in the vector beyond [`MAX_RANGES`].
    TooManyRanges,
    /// A number reported superseded by a node that is not its origin: only the origin
    /// knows which of its operations it superseded (others could silence its future ones).
    SecondHand,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::OwnOrigin => "claims this node's own origin but was never written here",
            Refusal::ClockAhead => "stamped further ahead of this node's clock than allowed",
            Refusal::TooManyOrigins => "from a new origin while the origin table is full",
            Refusal::TooManyRanges => "would open a gap while the version vector is full",
            Refusal::SecondHand => "reported superseded by a node that is not its origin",
        }
    }
}

/// Remote operations refused since the store was opened, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusedCounts {
    pub own_origin: u64,
    pub clock_ahead: u64,
    pub too_many_origins: u64,
    pub too_many_ranges: u64,
    pub second_hand: u64,
}

impl RefusedCounts {
    fn add(&mut self, refusal: Refusal) {
        let slot = match refusal {
            Refusal::OwnOrigin => &mut self.own_origin,
            Refusal::ClockAhead => &mut self.clock_ahead,
            Refusal::TooManyOrigins => &mut self.too_many_origins,
            Refusal::TooManyRanges => &mut self.too_many_ranges,
            Refusal::SecondHand => &mut self.second_hand,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        self.own_origin
            .saturating_add(self.clock_ahead)
            .saturating_add(self.too_many_origins)
            .saturating_add(self.too_many_ranges)
            .saturating_add(self.second_hand)
    }
}

/// Decides which remote operations of one call this store takes: checks run against the
/// vector as it was, plus what the call itself adds.
struct Admission<'a> {
    vector: &'a VersionVector,
    node_id: &'a str,
    /// The node the operations came from, when known: its own operations are first-hand.
    sender: Option<&'a str>,
    /// The greatest version accepted: the local clock plus the allowed drift.
    horizon: Version,
    new_origins: HashSet<&'a str>,
    new_ranges: usize,
    /// The origin admitted last, its progress, and the number admitted: operations of a
    /// batch mostly come from one origin in order, and each then extends the one before.
    last: Option<(&'a str, Option<&'a OriginProgress>, u64)>,
}

impl<'a> Admission<'a> {
    fn new(map: &'a Map, node_id: &'a str, sender: Option<&'a str>, horizon: Version) -> Self {
        Admission {
            vector: &map.vector,
            node_id,
            sender,
            horizon,
            new_origins: HashSet::new(),
            new_ranges: 0,
            last: None,
        }
    }

    /// Whether operation `seq` of `origin` stamped `version` may be taken in. Call only for
    /// operations not seen before.
    fn admit(&mut self, origin: &'a str, seq: u64, version: Version) -> Result<(), Refusal> {
        if origin == self.node_id {
            return Err(Refusal::OwnOrigin);
        }
        if version > self.horizon {
            return Err(Refusal::ClockAhead);
        }
        let (progress, previous) = match self.last {
            Some((o, p, s)) if o == origin => (p, Some(s)),
            _ => {
                let progress = self.vector.get(origin);
                if progress.is_none() && !self.new_origins.contains(origin) {
                    let limit = if self.sender == Some(origin) {
                        MAX_ORIGINS
                    } else {
                        MAX_RELAYED_ORIGINS
                    };
                    if self.vector.origin_count() + self.new_origins.len() >= limit {
                        return Err(Refusal::TooManyOrigins);
                    }
                    self.new_origins.insert(origin);
                }
                (progress, None)
            }
        };
        // A number right after the one admitted before it extends it. Otherwise counted
        // conservatively: operations of one call that touch each other out of order count
        // as new gaps.
        let extends = previous.is_some_and(|p| p.checked_add(1) == Some(seq));
        if !extends && seq > 1 && progress.is_none_or(|p| p.opens_range(seq)) {
            if self.vector.range_count() + self.new_ranges >= MAX_RANGES {
                return Err(Refusal::TooManyRanges);
            }
            self.new_ranges += 1;
        }
        self.last = Some((origin, progress, seq));
        Ok(())
    }
}

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
    entries: BTreeMap<String, Entry>,
    /// Entries that are not tombstones.
    live: usize,
    /// Interned origin ids, so a million entries share a handful of strings.
    origins: HashMap<String, Arc<str>>,
    /// The origin interned last: replayed records mostly come from one node.
    last_origin: Option<Arc<str>>,
    vector: VersionVector,
    refused: RefusedCounts,
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

    /// Last-writer-wins apply, and records the operation as seen. Returns false when the
    /// entry already holds this or a newer change (applying twice changes nothing).
    fn apply(&mut self, op: &Op<'_>) -> bool {
        self.vector.observe(op.origin, op.origin_seq, op.version);
        let origin = self.intern(op.origin);
        let base = op.base.map(|(o, s)| (self.intern(o), s));
        let entry = |origin| Entry {
            value: op.value.map(<[u8]>::to_vec),
            version: op.version,
            origin,
            origin_seq: op.origin_seq,
            base,
        };
        // One tree walk (the key is copied even when it exists: cheaper than a second walk).
        let was_live = match self.entries.entry(op.key.to_string()) {
            btree_map::Entry::Occupied(slot) if slot.get().wins_over(op.version, op.origin) => {
                return false;
            }
            btree_map::Entry::Occupied(mut slot) => {
                std::mem::replace(slot.get_mut(), entry(origin))
                    .value
                    .is_some()
            }
            btree_map::Entry::Vacant(slot) => {
                slot.insert(entry(origin));
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

    /// Every entry (tombstones included) whose operation `peer` has not seen.
    fn missing_for(&self, peer: &VersionVector) -> Vec<Operation> {
        self.entries
            .iter()
            .filter(|(_, e)| !peer.contains(&e.origin, e.origin_seq))
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
    /// A record that is not a store record. An error is reported as corruption at the
    /// record's offset.
    fn record(&mut self, _record: &ScannedRecord<'_>) -> Result<(), String> {
        Ok(())
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
    pub fn new(node_id: &str, wal_path: Option<PathBuf>, durable: bool) -> Self {
        StoreOptions {
            node_id: node_id.to_string(),
            wal_path,
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
    recovery: Option<Recovery>,
    max_clock_drift_ms: u64,
}

impl Store {
    /// Opens the store, replaying its WAL when it has one. Records of other layers are
    /// skipped.
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        Self::open_with(options, None, &mut ())
    }

    /// Opens the store on a caller-provided WAL storage (fault-injection tests) when given
    /// one, and shows every replayed operation and every record of another layer to
    /// `observer`.
    pub fn open_with(
        options: &StoreOptions,
        storage: Option<Box<dyn WalStorage>>,
        observer: &mut dyn ReplayObserver,
    ) -> Result<Store, StoreError> {
        let mut map = Map::default();
        let mut clock = HybridClock::default();
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
        let mut own_max = 0u64;
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
                        map.apply(&op);
                        if op.origin == options.node_id {
                            if op.origin_seq > own_max.saturating_add(MAX_OWN_SEQ_JUMP) {
                                forged_own += 1;
                                return;
                            }
                            own_max = own_max.max(op.origin_seq);
                        }
                        observer.op(&op);
                    }),
                    _ => observer.record(r),
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
        let node_id: Arc<str> = map.intern(&options.node_id);
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
            max_clock_drift_ms: options.max_clock_drift_ms,
        })
    }

    /// This store's node id: the origin of its local changes.
    pub fn node_id(&self) -> &str {
        &self.node_id
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
            let first_version = if floor > horizon_at(now, self.max_clock_drift_ms) {
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

    /// Applies operations received from peers, last-writer-wins. Operations seen before, or
    /// older than the entry they meet, write nothing. Operations this node must not take
    /// ([`Refusal`]) are refused one by one and counted. The others are logged as one
    /// record and applied. Invalid operations fail the whole call before anything is
    /// written.
    pub fn apply_remote(&self, ops: &[Operation]) -> Result<RemoteApply, StoreError> {
        self.apply_remote_from(ops, None)
    }

    /// [`Store::apply_remote`] for operations received from node `sender`: those it wrote
    /// itself are first-hand (see [`MAX_RELAYED_ORIGINS`]).
    pub fn apply_remote_from(
        &self,
        ops: &[Operation],
        sender: Option<&str>,
    ) -> Result<RemoteApply, StoreError> {
        let mut checked_origin: Option<&str> = None;
        for o in ops {
            // A batch mostly comes from one origin: check each origin id once.
            let check_origin = checked_origin != Some(o.origin.as_str());
            validate_remote(o, check_origin)?;
            checked_origin = Some(&o.origin);
        }
        let mut report = RemoteApply::default();
        let mut winners: Vec<(usize, &Operation)> = Vec::new();
        {
            let map = self.map.read();
            let mut admission = Admission::new(&map, &self.node_id, sender, self.horizon());
            for (i, o) in ops.iter().enumerate() {
                let existing = map.entries.get(&o.key);
                let wins = existing.is_none_or(|e| !e.wins_over(o.version, &o.origin));
                // Seen before and not newer than what the key holds: a duplicate. Recorded as
                // seen but newer: a peer's claim covered it before it arrived (a claim can
                // be wrong); applying it is still right, last-writer-wins is idempotent.
                if !wins && map.vector.contains(&o.origin, o.origin_seq) {
                    report.duplicates += 1;
                    continue;
                }
                if let Err(refusal) = admission.admit(&o.origin, o.origin_seq, o.version) {
                    report.refused.push((i, refusal));
                    continue;
                }
                if let Some(c) = existing.and_then(|e| conflict(&o.key, e, o, wins)) {
                    report.conflicts.push(c);
                }
                if wins {
                    winners.push((i, o));
                } else {
                    report.ignored += 1;
                }
            }
        }
        if let Some(wal) = self.wal.as_ref().filter(|_| !winners.is_empty()) {
            wal.append(RecordType::StoreOps, self.durable, |_, payload| {
                op::encode_ops(payload, winners.iter().map(|(_, o)| o.as_op()));
            })?;
        }
        let mut map = self.map.write();
        // Which operations were refused, by position (empty, and never read, when none).
        let mut refused = Vec::new();
        if !report.refused.is_empty() {
            refused = vec![false; ops.len()];
            for &(i, r) in &report.refused {
                map.refused.add(r);
                refused[i] = true;
            }
        }
        let accepted = |(i, _): &(usize, &Operation)| refused.is_empty() || !refused[*i];
        let mut counters = self.counters.lock();
        for (_, o) in ops.iter().enumerate().filter(accepted) {
            counters.clock.observe(o.version);
        }
        drop(counters);
        for (i, o) in winners {
            if map.apply(&o.as_op()) {
                report.applied += 1;
                report.applied_indices.push(i);
            } else {
                report.ignored += 1;
            }
        }
        for (_, o) in ops.iter().enumerate().filter(accepted) {
            map.vector.observe(&o.origin, o.origin_seq, o.version);
        }
        Ok(report)
    }

    /// The greatest version a remote operation may carry now.
    fn horizon(&self) -> Version {
        horizon_at((self.time)(), self.max_clock_drift_ms)
    }

    /// Records operations as seen without applying them: operations their origin reported
    /// as superseded by a newer change to the same key. The same rules as for
    /// [`Store::apply_remote`] apply, and when the `sender` is known it must be the origin
    /// itself; returns the numbers taken (the others were refused).
    pub fn mark_seen(
        &self,
        origin: &str,
        seqs: &[(u64, Version)],
        sender: Option<&str>,
    ) -> Vec<u64> {
        if seqs.is_empty() {
            return Vec::new();
        }
        let mut map = self.map.write();
        if sender.is_some_and(|s| s != origin) {
            let refused = seqs.len() as u64;
            map.refused.second_hand = map.refused.second_hand.saturating_add(refused);
            return Vec::new();
        }
        let mut taken = Vec::with_capacity(seqs.len());
        let mut refusals = Vec::new();
        let mut admitted = Vec::new();
        {
            let mut admission = Admission::new(&map, &self.node_id, sender, self.horizon());
            for &(seq, version) in seqs {
                if seq == 0 {
                    continue;
                }
                if map.vector.contains(origin, seq) {
                    taken.push(seq);
                    continue;
                }
                match admission.admit(origin, seq, version) {
                    Ok(()) => admitted.push((seq, version)),
                    Err(r) => refusals.push(r),
                }
            }
        }
        for r in refusals {
            map.refused.add(r);
        }
        for (seq, version) in admitted {
            map.vector.observe(origin, seq, version);
            taken.push(seq);
        }
        taken
    }

    /// Remote operations refused since the store was opened, by reason.
    pub fn refused_counts(&self) -> RefusedCounts {
        self.map.read().refused
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

    /// Takes in a peer's vector once everything it lacked from that peer has been applied,
    /// trusting it entirely (tests and tools; the network uses [`Store::merge_seen`]).
    pub fn merge_vector(&self, other: &VersionVector) {
        self.map.write().vector.merge(other);
    }

    /// Takes in a peer's catch-up claim only up to what this store has itself received
    /// (see [`VersionVector::merge_seen`]).
    pub fn merge_seen(&self, other: &VersionVector) {
        self.map.write().vector.merge_seen(other, &self.node_id);
    }

    /// What a peer with vector `peer` lacks, and this store's vector, read together: the
    /// vector claims exactly what the operations (and earlier knowledge) cover, even while
    /// other threads write.
    pub fn catch_up_for(&self, peer: &VersionVector) -> (Vec<Operation>, VersionVector) {
        let map = self.map.read();
        (map.missing_for(peer), map.vector.clone())
    }

    /// Every entry (tombstones included) whose operation `peer` has not seen: what a peer
    /// with that vector lacks.
    pub fn missing_for(&self, peer: &VersionVector) -> Vec<Operation> {
        self.map.read().missing_for(peer)
    }

    /// One part of what a peer with vector `peer` lacks, in key order after `after`: entries
    /// (tombstones included) whose operation it has not seen, until about `max_bytes` are
    /// collected or `max_scan` entries visited, whichever comes first. Returns the part and
    /// where to resume (`None`: the end was reached). Holds the store's read lock for one
    /// part only, so local writes never wait for a whole catch-up.
    pub fn missing_part(
        &self,
        peer: &VersionVector,
        after: Option<&str>,
        max_bytes: usize,
        max_scan: usize,
    ) -> (Vec<Operation>, Option<String>) {
        let map = self.map.read();
        let range = match after {
            Some(key) => (std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut part = Vec::new();
        let mut bytes = 0usize;
        let mut last_visited: Option<&String> = None;
        for (scanned, (key, e)) in map.entries.range::<str, _>(range).enumerate() {
            if scanned >= max_scan.max(1) || (!part.is_empty() && bytes >= max_bytes) {
                return (part, last_visited.cloned());
            }
            last_visited = Some(key);
            if !peer.contains(&e.origin, e.origin_seq) {
                // About its encoded size: a fixed part, the key and the value.
                bytes += 64 + key.len() + e.value.as_ref().map_or(0, Vec::len);
                part.push(e.to_operation(key));
            }
        }
        (part, None)
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
                out.extend_from_slice(payload)
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
            .and_then(|e| e.value.clone())
    }

    /// The entry of `key`, tombstones included.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.map.read().entries.get(key).cloned()
    }

    /// `key`'s entry as an operation, if it is the operation `(origin, seq)`.
    pub fn operation_if(&self, key: &str, origin: &str, seq: u64) -> Option<Operation> {
        self.map
            .read()
            .entries
            .get(key)
            .filter(|e| *e.origin == *origin && e.origin_seq == seq)
            .map(|e| e.to_operation(key))
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

    /// Every entry, tombstones included, in key order.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        let map = self.map.read();
        map.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
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

fn validate_remote(o: &Operation, check_origin: bool) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidRemoteOp {
        origin: crate::logsafe::shown(&o.origin),
        seq: o.origin_seq,
        reason,
    };
    if check_origin {
        crate::id::validate_node_id(&o.origin).map_err(|e| invalid(e.to_string()))?;
    }
    if o.origin_seq == 0 {
        return Err(invalid("origin sequence number 0".into()));
    }
    if let Some((base, _)) = &o.base {
        crate::id::validate_node_id(base).map_err(|e| invalid(format!("base: {e}")))?;
    }
    let change = match &o.value {
        Some(v) if v.len() > MAX_VALUE_LEN => {
            return Err(invalid(format!(
                "value of {} bytes exceeds the limit of {MAX_VALUE_LEN} bytes",
                v.len()
            )));
        }
        _ => validate_key(&o.key),
    };
    change.map_err(|e| invalid(e.to_string()))
}

/// Whether a remote operation and the entry it meets were written without knowledge of
/// each other: different origins, and neither overwrote the other.
fn conflict(key: &str, local: &Entry, remote: &Operation, remote_won: bool) -> Option<Conflict> {
    let same_origin = *local.origin == *remote.origin;
    let remote_follows_local = remote
        .base
        .as_ref()
        .is_some_and(|(o, s)| **o == *local.origin && *s == local.origin_seq);
    let local_follows_remote = local
        .base
        .as_ref()
        .is_some_and(|(o, s)| **o == *remote.origin && *s == remote.origin_seq);
    if same_origin || remote_follows_local || local_follows_remote {
        return None;
    }
    Some(Conflict {
        key: key.to_string(),
        local: OpId {
            origin: local.origin.to_string(),
            seq: local.origin_seq,
            version: local.version,
        },
        remote: OpId {
            origin: remote.origin.clone(),
            seq: remote.origin_seq,
            version: remote.version,
        },
        remote_won,
    })
}
