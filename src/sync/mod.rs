//! The sync engine: local operations travel to peers through the [`Outbox`], remote
//! operations are applied last-writer-wins by the store, and a catch-up by version vector
//! repairs whatever the outbox could not deliver (a peer offline for days, a pruned
//! outbox, a new node).
//!
//! The engine holds no socket and no clock: the caller passes the time in and moves the
//! messages ([`SyncBatch`], [`Ack`], [`CatchUp`]) between nodes, which is what the
//! transport does, and what tests and simulations do in memory. Its only I/O is through
//! the [`Store`] it is given (the WAL).
//!
//! Durability of sync state: local operations are in the WAL already; acknowledgements and
//! abandoned operations are logged as sync marks. On open the outbox is rebuilt from the
//! log: every local operation not acknowledged (or abandoned) is queued again, and an
//! acknowledged one is never sent again. Sequence numbers and versions continue after the
//! greatest in the log.

pub mod collect;
pub mod marks;
pub mod outbox;
pub mod session;

use std::collections::{BTreeMap, VecDeque};

pub use crate::store::{Collected, FullPart, Superseded};
use crate::store::{
    Conflict, Op, Operation, RemoteApply, ReplayObserver, Store, StoreError, Version,
    VersionVector, WriteStamp, merge_ranges,
};
pub use collect::{CollectPolicy, PeerKnowledge};
use crate::wal::{RecordType, ScannedRecord};
pub use marks::MarkKind;
pub use outbox::{OpState, Outbox, SyncConfig};

/// Local operations of one node, sent to peers. `superseded` lists ranges of operations
/// of the batch whose key has changed again since (a newer operation carries the key's
/// state): they are sent by number only, so that receivers can record them as seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncBatch {
    /// The node id of the node whose operations these are (the sender).
    pub origin: String,
    /// The operations, in full.
    pub ops: Vec<Operation>,
    /// Operations sent by number only.
    pub superseded: Vec<Superseded>,
}

impl SyncBatch {
    /// Every sequence number the batch covers, as sorted, merged ranges.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> =
            self.ops.iter().map(|o| (o.origin_seq, o.origin_seq)).collect();
        ranges.extend(self.superseded.iter().map(|s| (s.first, s.last)));
        merge_ranges(ranges)
    }

    /// How many operations the batch covers, superseded ones included.
    pub fn len(&self) -> usize {
        self.superseded.iter().fold(self.ops.len(), |n, s| {
            n.saturating_add(usize::try_from(s.count()).unwrap_or(usize::MAX))
        })
    }

    /// Whether the batch covers no operation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A receiver's confirmation that operations of `origin` are applied and durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The node id of the node whose operations are acknowledged.
    pub origin: String,
    /// Their origin sequence numbers, as sorted, merged inclusive ranges.
    pub ranges: Vec<(u64, u64)>,
}

/// Everything a peer lacked, with the sender's vector: once applied, the receiver holds the
/// effect of every operation the sender had seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// The operations the peer lacked, of every origin.
    pub ops: Vec<Operation>,
    /// The sender's version vector when it built the catch-up.
    pub vector: VersionVector,
}

#[cfg(any(test, feature = "internals"))]
/// Everything a sender holds, for a peer that has not seen every removal the sender
/// collected (see [`Store::needs_full_state`]): one part covering every key, the sender's
/// vector and its collected removals. The transport streams the same in several parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullState {
    /// Every entry of the sender: in full those the peer lacks, by key the others.
    pub part: FullPart,
    /// The sender's version vector when it built the parts.
    pub vector: VersionVector,
    /// The removals the sender collected, or learned collected.
    pub collected: Collected,
}

/// A full state being received a part at a time: the values of this node the parts
/// showed the sender holds no value for (at most one per entry of this store; keys and
/// identities only, no values), and where the next part must start.
#[derive(Debug)]
pub struct FullStateReceiver {
    candidates: BTreeMap<String, crate::store::collect::Candidate>,
    /// The key the next part must start after (`Some(None)`: the first key); `None`: the
    /// last part came.
    next_after: Option<Option<String>>,
}

impl Default for FullStateReceiver {
    fn default() -> Self {
        FullStateReceiver {
            candidates: BTreeMap::new(),
            next_after: Some(None),
        }
    }
}

impl FullStateReceiver {
    /// Takes note of `part`'s range, which must follow the parts before it: the first from
    /// the start, each next one from where the previous ended, none after the one that
    /// reached the end, none empty. So a full state covers each key once, and costs the
    /// receiver one pass over its store, whatever the sender sends. The error says what
    /// is wrong (a protocol error).
    pub fn follows(&mut self, part: &FullPart) -> Result<(), String> {
        let Some(expected) = &self.next_after else {
            return Err("a full-state part after the one that reached the last key".into());
        };
        if *expected != part.after {
            return Err(
                "a full-state part that does not start where the previous one ended".into(),
            );
        }
        if let (Some(after), Some(through)) = (&part.after, &part.through)
            && through <= after
        {
            return Err("a full-state part whose range is empty".into());
        }
        self.next_after = part.through.clone().map(Some);
        Ok(())
    }
}

/// What a user interface shows for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Written and durable locally; not queued for sync (`auto_queue` off).
    SavedLocally,
    /// Queued, not sent yet.
    WaitingToSync,
    /// Sent, waiting for a peer's ACK.
    Syncing,
    /// A peer has it (or it came from a peer).
    Synced,
    /// A send timed out; it will be sent again.
    Retrying,
    /// Every attempt timed out; the catch-up with the next peer still delivers it.
    SyncFailed,
    /// The key's value was decided by last-writer-wins between concurrent writes.
    ConflictDetected,
}

impl KeyStatus {
    /// snake_case name, as in JSON and the C ABI.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::SavedLocally => "saved_locally",
            KeyStatus::WaitingToSync => "waiting_to_sync",
            KeyStatus::Syncing => "syncing",
            KeyStatus::Synced => "synced",
            KeyStatus::Retrying => "retrying",
            KeyStatus::SyncFailed => "sync_failed",
            KeyStatus::ConflictDetected => "conflict_detected",
        }
    }

    /// Words for a person: "saved locally", "waiting to sync", ...
    pub fn label(self) -> &'static str {
        match self {
            KeyStatus::SavedLocally => "saved locally",
            KeyStatus::WaitingToSync => "waiting to sync",
            KeyStatus::Syncing => "syncing",
            KeyStatus::Synced => "synced",
            KeyStatus::Retrying => "retrying",
            KeyStatus::SyncFailed => "sync failed",
            KeyStatus::ConflictDetected => "conflict detected",
        }
    }
}

/// The counters of `Client::sync_state()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Every operation in the outbox, pending ones included.
    pub outbox_size: usize,
    /// Kept local until `Client::queue_pending()` (`auto_queue` off).
    pub pending_count: usize,
    /// Queued, not sent yet.
    pub queued_count: usize,
    /// Sent, waiting for a peer's ACK.
    pub in_flight_count: usize,
    /// Acknowledged, not pruned yet.
    pub acknowledged_count: usize,
    /// Failed (every attempt timed out), not pruned yet.
    pub failed_count: usize,
    /// Version of the newest local operation.
    pub last_submitted_version: u64,
    /// Version of the newest operation applied from another node.
    pub last_applied_remote_version: u64,
    /// Retries since the client was opened.
    pub total_retries: u64,
    /// Conflicts detected since the client was opened.
    pub conflict_count: u64,
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    pub retried_count: usize,
    pub pruned_count: usize,
    /// The batch to hand to the transport, if one was built.
    pub batch: Option<SyncBatch>,
}

impl Tick {
    pub fn batch_size(&self) -> usize {
        self.batch.as_ref().map_or(0, SyncBatch::len)
    }

    /// The figures `Client::tick()` reports.
    pub fn result(&self) -> TickResult {
        TickResult {
            retried_count: self.retried_count,
            pruned_count: self.pruned_count,
            batch_size: self.batch_size(),
        }
    }
}

/// What `Client::tick()` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickResult {
    /// In-flight operations whose ACK timed out, queued again.
    pub retried_count: usize,
    /// Acknowledged operations removed from the outbox (when pruning was asked for).
    pub pruned_count: usize,
    /// Operations in the batch sent to peers (0: nothing sent).
    pub batch_size: usize,
}

/// What a sync engine counted since it was made (since the client was opened), for the
/// node's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// ACKs made for peers' batches (the transport sends each back at once).
    pub acks_sent: u64,
    /// ACKs received for this node's operations.
    pub acks_received: u64,
    /// This node's operations newly acknowledged: by an ACK, by a peer's vector, or on
    /// being written to a peer when ACKs are not required.
    pub operations_acknowledged: u64,
}

/// How many operations `ranges` (inclusive) cover.
fn covered(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().fold(0u64, |n, &(f, l)| {
        n.saturating_add(l.saturating_sub(f).saturating_add(1))
    })
}

/// How many conflicts are kept for inspection.
pub const RECENT_CONFLICTS: usize = 64;

/// The sync engine of one node.
pub struct SyncEngine {
    node_id: String,
    outbox: Outbox,
    recent_conflicts: VecDeque<Conflict>,
    conflict_count: u64,
    /// Local operations given up on (`prune_failed`, or abandoned marks on replay): they
    /// left the outbox, but their keys still report `SyncFailed`, not `Synced`.
    abandoned: SeqRanges,
    counters: SyncCounters,
    /// What this node knows of its peers' progress, for collecting tombstones.
    peers: PeerKnowledge,
}

/// An outbox state in a snapshot block.
fn state_code(state: OpState) -> u8 {
    match state {
        OpState::Pending => 0,
        OpState::Queued => 1,
        OpState::InFlight => 2,
        OpState::Acknowledged => 3,
        OpState::Failed => 4,
    }
}

fn state_of(code: u8) -> Result<OpState, String> {
    Ok(match code {
        0 => OpState::Pending,
        1 => OpState::Queued,
        2 => OpState::InFlight,
        3 => OpState::Acknowledged,
        4 => OpState::Failed,
        other => return Err(format!("unknown outbox state {other}")),
    })
}

/// Payload version of the engine's snapshot blocks.
const SNAPSHOT_VERSION: u8 = 1;
/// Snapshot block kinds: unacknowledged operations, abandoned ranges, unacknowledged runs
/// of superseded operations, and runs of operations awaiting catch-up (written only when
/// the outbox holds some, so that other snapshots stay readable by earlier versions).
const SNAPSHOT_OPERATIONS: u8 = 1;
const SNAPSHOT_ABANDONED: u8 = 2;
const SNAPSHOT_SUPERSEDED: u8 = 3;
const SNAPSHOT_AWAITING_CATCH_UP: u8 = 4;

/// Sorted, disjoint, merged inclusive ranges of sequence numbers, at most
/// [`SeqRanges::MAX_RANGES`] of them (beyond, the oldest ranges are forgotten: their keys
/// then read as synced, the answer before abandoned operations were remembered).
#[derive(Debug, Default)]
struct SeqRanges {
    ranges: Vec<(u64, u64)>,
}

impl SeqRanges {
    /// Enough for any real history of give-ups (failures come in bursts, one range each),
    /// small enough that a damaged log cannot make it large (16 bytes a range: 1 MiB).
    const MAX_RANGES: usize = 65_536;

    fn add(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        // Insert in order, then merge the neighbours it touches or overlaps.
        let at = self
            .ranges
            .partition_point(|&(_, l)| l.saturating_add(1) < first);
        let mut lo = first;
        let mut hi = last;
        let mut end = at;
        while end < self.ranges.len() && self.ranges[end].0 <= hi.saturating_add(1) {
            lo = lo.min(self.ranges[end].0);
            hi = hi.max(self.ranges[end].1);
            end += 1;
        }
        self.ranges.splice(at..end, [(lo, hi)]);
        if self.ranges.len() > Self::MAX_RANGES {
            let excess = self.ranges.len() - Self::MAX_RANGES;
            self.ranges.drain(..excess);
        }
    }

    /// Removes `first..=last`, splitting a range that holds it in part.
    fn remove(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let at = self
            .ranges
            .partition_point(|&(_, l)| l < first);
        let mut end = at;
        let mut kept = Vec::new();
        while end < self.ranges.len() && self.ranges[end].0 <= last {
            let (f, l) = self.ranges[end];
            if f < first {
                kept.push((f, first - 1));
            }
            if l > last {
                kept.push((last + 1, l));
            }
            end += 1;
        }
        self.ranges.splice(at..end, kept);
    }

    fn contains(&self, seq: u64) -> bool {
        let at = self.ranges.partition_point(|&(_, l)| l < seq);
        self.ranges.get(at).is_some_and(|&(f, _)| f <= seq)
    }
}

impl SyncEngine {
    pub fn new(node_id: &str, config: SyncConfig) -> Self {
        SyncEngine {
            node_id: node_id.to_string(),
            outbox: Outbox::new(config),
            recent_conflicts: VecDeque::new(),
            conflict_count: 0,
            abandoned: SeqRanges::default(),
            counters: SyncCounters::default(),
            peers: PeerKnowledge::default(),
        }
    }

    /// What the engine counted since it was made.
    pub fn counters(&self) -> SyncCounters {
        self.counters
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Replay: a logged operation. Our own ones enter the outbox (until a mark says they
    /// were acknowledged or abandoned).
    pub fn replay_op(&mut self, op: &Op<'_>) {
        if op.origin == self.node_id {
            self.outbox.submit(op.origin_seq, op.key, op.version);
        }
    }

    /// This node's operations that left the store (replaced by remote ones, forgotten or
    /// collected): see [`Outbox::left_the_store`].
    fn note_own_left(&mut self, seqs: &[u64]) {
        for &seq in seqs {
            self.outbox.left_the_store(seq);
        }
    }

    /// Replay: a sync marks record.
    pub fn replay_marks(&mut self, payload: &[u8]) -> Result<(), String> {
        let (kind, ranges) = marks::decode(payload)?;
        for (first, last) in ranges {
            self.outbox.forget(first, last);
            if kind == MarkKind::Abandoned {
                self.abandoned.add(first, last);
            }
        }
        Ok(())
    }

    /// The engine's snapshot blocks (type `SYNC`): the local operations not acknowledged
    /// yet (number, version, key) and the runs of superseded ones not acknowledged yet
    /// (numbers, version), in blocks of about 1 MiB, then the abandoned ranges.
    /// Acknowledged operations keep nothing. Restored with the same rules as a replay
    /// (submitting and forgetting are idempotent), so the records after the snapshot's
    /// cut, replayed on top, give the same outbox as the whole log.
    ///
    /// ```text
    /// u8 payload version = 1
    /// u8 kind: 1 operations, 2 abandoned ranges, 3 superseded runs, 4 runs awaiting catch-up
    /// u32 count
    /// operations: u64 number, u64 version, u8 state (outbox::OpState: 0 pending,
    ///             1 queued, 2 in flight, 4 failed), u32 attempts, u16 key length, key
    /// superseded runs: u64 first, u64 last, u64 greatest version, u8 state, u32 attempts
    /// runs awaiting catch-up: as superseded runs
    /// abandoned ranges: u64 first, u64 last
    /// ```
    pub fn snapshot_blocks(&self) -> Vec<Vec<u8>> {
        const BLOCK_BYTES: usize = 1 << 20;
        let start = |kind: u8| vec![SNAPSHOT_VERSION, kind, 0, 0, 0, 0];
        let seal = |mut block: Vec<u8>, count: u32| {
            block[2..6].copy_from_slice(&count.to_le_bytes());
            block
        };
        let mut blocks = Vec::new();
        for kind in [
            SNAPSHOT_OPERATIONS,
            SNAPSHOT_SUPERSEDED,
            SNAPSHOT_AWAITING_CATCH_UP,
        ] {
            let mut block = start(kind);
            let mut count = 0u32;
            for (seq, e) in self.outbox.unacknowledged() {
                match (&e.key, kind) {
                    (Some(key), SNAPSHOT_OPERATIONS) => {
                        block.extend_from_slice(&seq.to_le_bytes());
                        block.extend_from_slice(&e.version.0.to_le_bytes());
                        block.push(state_code(e.state));
                        block.extend_from_slice(&e.attempts.to_le_bytes());
                        block.extend_from_slice(&(key.len() as u16).to_le_bytes());
                        block.extend_from_slice(key.as_bytes());
                    }
                    (None, SNAPSHOT_SUPERSEDED | SNAPSHOT_AWAITING_CATCH_UP)
                        if e.awaits_catch_up == (kind == SNAPSHOT_AWAITING_CATCH_UP) =>
                    {
                        block.extend_from_slice(&seq.to_le_bytes());
                        block.extend_from_slice(&e.last.to_le_bytes());
                        block.extend_from_slice(&e.version.0.to_le_bytes());
                        block.push(state_code(e.state));
                        block.extend_from_slice(&e.attempts.to_le_bytes());
                    }
                    _ => continue,
                }
                count += 1;
                if block.len() >= BLOCK_BYTES {
                    blocks.push(seal(block, count));
                    block = start(kind);
                    count = 0;
                }
            }
            if count > 0 {
                blocks.push(seal(block, count));
            }
        }
        let mut ranges = start(SNAPSHOT_ABANDONED);
        for &(first, last) in &self.abandoned.ranges {
            ranges.extend_from_slice(&first.to_le_bytes());
            ranges.extend_from_slice(&last.to_le_bytes());
        }
        blocks.push(seal(ranges, self.abandoned.ranges.len() as u32));
        blocks
    }

    /// Takes one of the blocks [`SyncEngine::snapshot_blocks`] wrote.
    pub fn restore_snapshot_block(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut r = crate::codec::Reader::new(payload, "sync snapshot block");
        let version = r.u8("payload version")?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("unsupported sync snapshot block version {version}"));
        }
        let kind = r.u8("kind")?;
        let count = r.u32("count")?;
        match kind {
            SNAPSHOT_OPERATIONS => {
                for _ in 0..count {
                    let seq = r.u64("operation number")?;
                    let version = Version(r.u64("version")?);
                    let state = state_of(r.u8("state")?)?;
                    let attempts = r.u32("attempts")?;
                    let len = usize::from(r.u16("key length")?);
                    let key = r.str(len, "key")?;
                    crate::store::validate_key(key).map_err(|e| e.to_string())?;
                    self.outbox.restore(seq, key, version, state, attempts);
                }
            }
            SNAPSHOT_SUPERSEDED | SNAPSHOT_AWAITING_CATCH_UP => {
                for _ in 0..count {
                    let (first, last) = (r.u64("run start")?, r.u64("run end")?);
                    if first == 0 || first > last {
                        return Err(format!("run {first}..={last} is empty"));
                    }
                    let version = Version(r.u64("version")?);
                    let state = state_of(r.u8("state")?)?;
                    let attempts = r.u32("attempts")?;
                    let awaits_catch_up = kind == SNAPSHOT_AWAITING_CATCH_UP;
                    self.outbox
                        .restore_run(first, last, awaits_catch_up, version, state, attempts);
                }
            }
            SNAPSHOT_ABANDONED => {
                for _ in 0..count {
                    let (first, last) = (r.u64("range start")?, r.u64("range end")?);
                    self.abandoned.add(first, last);
                }
            }
            other => return Err(format!("unknown sync snapshot block kind {other}")),
        }
        if r.remaining() != 0 {
            return Err(format!("{} bytes after the last item", r.remaining()));
        }
        Ok(())
    }

    /// Replay is over: operations found in the log are queued again.
    pub fn finish_replay(&mut self) {
        let counts = self.outbox.counts();
        if counts.total > 0 {
            log::info!(
                "node {}: {} local operations not yet acknowledged are queued again",
                self.node_id,
                counts.total
            );
        }
    }

    /// A local write succeeded: its operations enter the outbox.
    pub fn record_local<'k>(
        &mut self,
        store: &Store,
        stamp: WriteStamp,
        keys: impl IntoIterator<Item = &'k str>,
    ) {
        for (i, key) in keys.into_iter().enumerate() {
            let i = i as u64;
            let seq = stamp.first_seq + i;
            self.outbox.submit(seq, key, Version(stamp.first_version.0 + i));
            // While operations await catch-up, one that is no longer its key's entry must
            // go by number (see `Outbox::left_the_store`): the operation this one
            // overwrote, or this one when a newer write replaced it already. (Without such
            // operations, nothing is looked up.)
            if self.outbox.awaiting_catch_up() > 0 {
                match store.own_entry_base(key, seq) {
                    Some(base) => base.into_iter().for_each(|b| self.outbox.left_the_store(b)),
                    None => self.outbox.left_the_store(seq),
                }
            }
        }
    }

    /// One sync cycle: retry what expired, build the next batch when a peer can take it,
    /// and prune acknowledged work when asked.
    pub fn tick(&mut self, store: &Store, now: u64, prune: bool, has_destination: bool) -> Tick {
        let retried_count = self.outbox.retry_expired(now);
        let batch = if has_destination {
            self.next_batch(store, now)
        } else {
            None
        };
        let pruned_count = if prune {
            self.outbox.prune_completed()
        } else {
            0
        };
        Tick {
            retried_count,
            pruned_count,
            batch,
        }
    }

    /// Takes the next batch from the outbox (its operations are now in flight). A keyed
    /// operation whose key has no entry any more (a removal whose tombstone was collected,
    /// or a value forgotten after a full state) has nothing to send: sent by number it would
    /// read as superseded by a newer write, which it is not, and a peer holding an older
    /// value would record it as seen without applying it. It leaves the outbox as done (a
    /// peer that missed it is behind this node's collected removals, and gets the full
    /// state).
    pub fn next_batch(&mut self, store: &Store, now: u64) -> Option<SyncBatch> {
        // A few rounds, so that a batch whose operations all had nothing to send does not
        // end the caller's pushing while work is queued.
        for _ in 0..16 {
            let taken = self.outbox.next_batch(now);
            if taken.is_empty() {
                return None;
            }
            let mut batch = SyncBatch {
                origin: self.node_id.clone(),
                ops: Vec::new(),
                superseded: Vec::new(),
            };
            let mut gone = Vec::new();
            for (first, last) in taken {
                let queued = self.outbox.get(first).expect("just taken from the outbox");
                // A keyed operation may have been superseded by another node's write since.
                let key = queued.key.as_deref();
                let op = key.and_then(|key| store.operation_if(key, &self.node_id, first));
                if op.is_none() && key.is_some_and(|key| store.entry_id(key).is_none()) {
                    gone.push((first, last));
                    continue;
                }
                match op {
                    Some(op) => batch.ops.push(op),
                    None => {
                        let version = queued.version;
                        match batch.superseded.last_mut() {
                            Some(s) if s.last.checked_add(1) == Some(first) => {
                                s.last = last;
                                s.version = s.version.max(version);
                            }
                            _ => batch.superseded.push(Superseded {
                                first,
                                last,
                                version,
                            }),
                        }
                    }
                }
            }
            if !gone.is_empty() {
                let newly = self.outbox.acknowledge(&gone);
                // Without the mark a restart queues them again, and they leave again here.
                if let Err(e) = self.log_marks(store, MarkKind::Acknowledged, &newly) {
                    log::warn!("node {}: {e}", self.node_id);
                }
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
        None
    }

    /// The batch could not be written to any peer: its operations wait in the queue again.
    pub fn batch_unsent(&mut self, batch: &SyncBatch) {
        self.outbox.return_unsent(&batch.ranges());
    }

    /// The batch was written to at least one peer. Without `require_ack` that completes it.
    pub fn batch_written(&mut self, store: &Store, batch: &SyncBatch) -> Result<(), StoreError> {
        if self.outbox.config().require_ack {
            return Ok(());
        }
        self.acknowledge(store, &batch.ranges()).map(|_| ())
    }

    /// Applies a peer's batch and returns the ACK to send back (only once the applied
    /// operations are durable).
    pub fn receive_batch(&mut self, store: &Store, batch: &SyncBatch) -> Result<Ack, StoreError> {
        Ok(self.receive_batch_report(store, batch, None)?.0)
    }

    /// [`SyncEngine::receive_batch`] for a batch received from node `sender` (when known),
    /// also returning what the batch changed (to relay it).
    pub fn receive_batch_report(
        &mut self,
        store: &Store,
        batch: &SyncBatch,
        sender: Option<&str>,
    ) -> Result<(Ack, RemoteApply), StoreError> {
        let report = store.apply_remote_from(&batch.ops, sender)?;
        self.note_own_left(&report.own_left);
        self.note_rewritten(store, &batch.ops, &report);
        let mut taken = store.mark_seen(&batch.origin, &batch.superseded, sender);
        self.note_conflicts(&report);
        note_refusals(&self.node_id, &batch.origin, &batch.ops, &report);
        // Only what was taken is acknowledged: a refused operation may come again.
        let mut refused = report.refused.iter().map(|&(i, _)| i).peekable();
        for (i, op) in batch.ops.iter().enumerate() {
            if refused.next_if_eq(&i).is_none() && op.origin == batch.origin {
                taken.push((op.origin_seq, op.origin_seq));
            }
        }
        let ack = Ack {
            origin: batch.origin.clone(),
            ranges: merge_ranges(taken),
        };
        self.counters.acks_sent = self.counters.acks_sent.saturating_add(1);
        Ok((ack, report))
    }

    /// A peer acknowledged some of our operations; returns how many were new.
    pub fn receive_ack(&mut self, store: &Store, ack: &Ack) -> Result<usize, StoreError> {
        if ack.origin != self.node_id {
            return Ok(0);
        }
        self.counters.acks_received = self.counters.acks_received.saturating_add(1);
        self.acknowledge(store, &ack.ranges)
    }

    /// Acknowledges the operations in `ranges` (an ACK's, or those a peer's vector shows it
    /// holds), logs the marks, and returns how many were acknowledged now.
    fn acknowledge(&mut self, store: &Store, ranges: &[(u64, u64)]) -> Result<usize, StoreError> {
        let newly = self.outbox.acknowledge(ranges);
        let count = covered(&newly);
        self.counters.operations_acknowledged =
            self.counters.operations_acknowledged.saturating_add(count);
        self.log_marks(store, MarkKind::Acknowledged, &newly)?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// A peer's vector shows which of this node's operations it holds (delivered by a
    /// catch-up, or their ACK was lost): those are acknowledged, failed and given-up ones
    /// included, so that sync state tells the truth. Numbers beyond what this node has
    /// written are left alone (a claim cannot complete work to come). Returns how many
    /// operations were acknowledged now.
    pub fn peer_holds(&mut self, store: &Store, peer: &VersionVector) -> Result<usize, StoreError> {
        let Some(progress) = peer.get(&self.node_id) else {
            return Ok(0);
        };
        let Some(written) = store.next_seq().checked_sub(1).filter(|&w| w > 0) else {
            return Ok(0);
        };
        let held: Vec<(u64, u64)> = std::iter::once((1, progress.contiguous))
            .chain(progress.ranges_above())
            .filter(|&(first, _)| first <= written)
            .map(|(first, last)| (first.max(1), last.min(written)))
            .collect();
        for &(first, last) in &held {
            self.abandoned.remove(first, last);
        }
        self.acknowledge(store, &held)
    }

    /// What a peer with vector `peer` lacks, to send it in a catch-up.
    pub fn catch_up_for(&self, store: &Store, peer: &VersionVector) -> CatchUp {
        let (ops, vector) = store.catch_up_for(peer);
        CatchUp { ops, vector }
    }

    /// Applies one part of a catch-up arriving in several messages; returns how many
    /// operations changed the store.
    pub fn receive_catch_up_part(
        &mut self,
        store: &Store,
        ops: &[Operation],
        sender: Option<&str>,
    ) -> Result<RemoteApply, StoreError> {
        let report = store.apply_remote_from(ops, sender)?;
        self.note_own_left(&report.own_left);
        self.note_rewritten(store, ops, &report);
        self.note_conflicts(&report);
        let origin = ops.first().map_or("", |o| o.origin.as_str());
        note_refusals(&self.node_id, origin, ops, &report);
        Ok(report)
    }

    /// Remote writes the store wrote again (see [`RemoteApply::rewritten`]) are local
    /// writes: they enter the outbox.
    fn note_rewritten(&mut self, store: &Store, ops: &[Operation], report: &RemoteApply) {
        if let Some((stamp, positions)) = &report.rewritten {
            self.record_local(store, *stamp, positions.iter().map(|&i| ops[i].key.as_str()));
        }
    }

    /// Something was received from `peer` (at `now_ms`, on the clock of
    /// [`SyncEngine::collect_tombstones`]).
    pub fn note_heard(&mut self, peer: &str, now_ms: u64) {
        self.peers.heard(peer, now_ms);
    }

    /// `peer` sent its vector.
    pub fn note_vector(&mut self, peer: &str, vector: &VersionVector, now_ms: u64) {
        self.peers.vector(peer, vector, now_ms);
    }

    /// Drops the tombstones every peer of `policy` has seen (or that only peers away past
    /// the horizon have not); returns how many. Cheap when the store has none.
    pub fn collect_tombstones(&mut self, store: &Store, policy: &CollectPolicy<'_>) -> usize {
        let mut own_left = Vec::new();
        let dropped = self.peers.collect(store, policy, &mut own_left);
        self.note_own_left(&own_left);
        if dropped > 0 {
            log::debug!("node {}: {dropped} tombstones collected", self.node_id);
        }
        dropped
    }

    #[cfg(any(test, feature = "internals"))]
    /// Everything this node holds, for a peer with vector `peer` (in one part).
    pub fn full_state_for(&self, store: &Store, peer: &VersionVector) -> FullState {
        let (vector, collected) = store.vector_and_collected();
        let part = store.full_part(peer, None, usize::MAX, usize::MAX);
        FullState {
            part,
            vector,
            collected,
        }
    }

    /// Applies one part of a full state: its entries as a catch-up's, and notes this
    /// node's values in its range that the sender holds no value for. The caller checked
    /// that it follows the parts before it ([`FullStateReceiver::follows`]).
    pub fn receive_full_part(
        &mut self,
        store: &Store,
        receiver: &mut FullStateReceiver,
        part: &FullPart,
        sender: Option<&str>,
    ) -> Result<RemoteApply, StoreError> {
        for key in &part.held {
            crate::store::validate_key(key)?;
        }
        let report = self.receive_catch_up_part(store, &part.ops, sender)?;
        store.absent_from(part, |key, candidate| {
            receiver.candidates.insert(key.to_string(), candidate);
        });
        Ok(report)
    }

    /// Ends a full state whose every part was applied. The values of this node its parts
    /// showed the sender holds no value for are forgotten when the sender has seen them (its
    /// vector, taken no further than this node has itself received) and they are not newer
    /// than the removals it collected: one of those superseded them. The sender's collected
    /// removals are taken in. Then its vector is, as at the end of a catch-up, unless some
    /// of those entries were kept although not newer than its collected removals: the
    /// sender never saw them, and one of its collected removals may still supersede them
    /// (through a write it saw, superseding them, that this node did not): this node must
    /// not claim to have seen those removals, so that the sender's next answer is a full
    /// state again (by then it has received them, or knows them superseded). Returns how
    /// many entries were forgotten.
    pub fn finish_full_state(
        &mut self,
        store: &Store,
        receiver: FullStateReceiver,
        vector: &VersionVector,
        collected: &Collected,
    ) -> Result<usize, StoreError> {
        let learned = collected.capped(store.horizon());
        let mut unsettled = 0usize;
        let forget: Vec<_> = receiver
            .candidates
            .into_iter()
            .filter(|(_, c)| {
                if c.version > learned.watermark {
                    return false; // newer than every removal the sender collected
                }
                let seen = vector.contains(&c.origin, c.seq) && c.seq <= store.claim_cap(&c.origin);
                if !seen {
                    unsettled += 1;
                }
                seen
            })
            .collect();
        let mut own_left = Vec::new();
        let gone = store.forget(&forget, &learned, &mut own_left);
        self.note_own_left(&own_left);
        let gone = gone?;
        if gone > 0 {
            log::info!(
                "node {}: forgot {gone} entries a peer has seen superseded by removals it \
                 collected",
                self.node_id
            );
        }
        if unsettled == 0 {
            store.merge_seen(vector);
        } else {
            log::debug!(
                "node {}: {unsettled} entries older than a peer's collected removals are news \
                 to it: its vector is not taken in",
                self.node_id
            );
        }
        Ok(gone)
    }

    #[cfg(any(test, feature = "internals"))]
    /// Applies a whole full state from a peer; returns what its entries changed and how
    /// many entries were forgotten.
    pub fn apply_full_state(
        &mut self,
        store: &Store,
        full: &FullState,
        sender: Option<&str>,
    ) -> Result<(RemoteApply, usize), StoreError> {
        let mut receiver = FullStateReceiver::default();
        if let Err(reason) = receiver.follows(&full.part) {
            return Err(StoreError::InvalidRemoteOp {
                origin: sender.map(crate::logsafe::shown).unwrap_or_default(),
                seq: 0,
                reason,
            });
        }
        let report = self.receive_full_part(store, &mut receiver, &full.part, sender)?;
        let gone = self.finish_full_state(store, receiver, &full.vector, &full.collected)?;
        Ok((report, gone))
    }

    /// Ends a catch-up whose every part was applied: takes in the sender's vector, up to
    /// what this node has itself received (a claim cannot silence operations to come).
    pub fn finish_catch_up(&mut self, store: &Store, vector: &VersionVector) {
        store.merge_seen(vector);
    }

    /// Applies a catch-up from a peer, then takes in its vector.
    pub fn apply_catch_up(
        &mut self,
        store: &Store,
        catch_up: &CatchUp,
    ) -> Result<RemoteApply, StoreError> {
        let report = self.receive_catch_up_part(store, &catch_up.ops, None)?;
        self.finish_catch_up(store, &catch_up.vector);
        Ok(report)
    }

    fn note_conflicts(&mut self, report: &RemoteApply) {
        for c in &report.conflicts {
            log::info!(
                "node {}: conflict on key {:?}: {}#{} vs {}#{}, {} kept",
                self.node_id,
                c.key,
                c.local.origin,
                c.local.seq,
                c.remote.origin,
                c.remote.seq,
                if c.remote_won { "remote" } else { "local" }
            );
            self.conflict_count += 1;
            if self.recent_conflicts.len() == RECENT_CONFLICTS {
                self.recent_conflicts.pop_front();
            }
            self.recent_conflicts.push_back(c.clone());
        }
    }

    fn log_marks(
        &self,
        store: &Store,
        kind: MarkKind,
        ranges: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        if ranges.is_empty() || !store.has_wal() {
            return Ok(());
        }
        // Durable (with auto_flush): an acknowledged operation is never sent again, even
        // after a crash right after its ACK.
        store.append_record(RecordType::SyncMarks, true, &marks::encode(kind, ranges))
    }

    /// The most recent conflicts, oldest first (at most [`RECENT_CONFLICTS`]).
    pub fn recent_conflicts(&self) -> impl Iterator<Item = &Conflict> {
        self.recent_conflicts.iter()
    }

    pub fn retry_expired(&mut self, now: u64) -> usize {
        self.outbox.retry_expired(now)
    }

    pub fn queue_pending(&mut self) -> usize {
        self.outbox.queue_pending()
    }

    pub fn retry_failed(&mut self) -> usize {
        self.outbox.retry_failed()
    }

    pub fn prune_completed(&mut self) -> usize {
        self.outbox.prune_completed()
    }

    /// Removes failed operations and logs that they were given up, so that a restart does
    /// not queue them again. Their data stays in the store (and reaches peers by catch-up).
    pub fn prune_failed(&mut self, store: &Store) -> Result<usize, StoreError> {
        let failed = self.outbox.prune_failed();
        for &(first, last) in &failed {
            self.abandoned.add(first, last);
        }
        self.log_marks(store, MarkKind::Abandoned, &failed)?;
        Ok(usize::try_from(covered(&failed)).unwrap_or(usize::MAX))
    }

    pub fn state(&self, store: &Store) -> SyncState {
        let c = self.outbox.counts();
        let last_submitted = self
            .outbox
            .last_submitted_version()
            .max(store.version_vector_of(&self.node_id));
        SyncState {
            outbox_size: c.total,
            pending_count: c.pending,
            queued_count: c.queued,
            in_flight_count: c.in_flight,
            acknowledged_count: c.acknowledged,
            failed_count: c.failed,
            last_submitted_version: last_submitted.0,
            last_applied_remote_version: store.max_remote_version().0,
            total_retries: self.outbox.total_retries(),
            conflict_count: self.conflict_count,
        }
    }

    /// The sync status of `key`, or `None` when the store has no entry for it.
    pub fn key_status(&self, store: &Store, key: &str) -> Option<KeyStatus> {
        let (origin, seq) = store.entry_id(key)?;
        let decided_by_conflict = self.recent_conflicts.iter().rev().any(|c| {
            c.key == key && {
                let winner = if c.remote_won { &c.remote } else { &c.local };
                *winner.origin == *origin && winner.seq == seq
            }
        });
        if decided_by_conflict {
            return Some(KeyStatus::ConflictDetected);
        }
        if *origin != *self.node_id {
            return Some(KeyStatus::Synced);
        }
        Some(match self.outbox.get(seq) {
            None if self.abandoned.contains(seq) => KeyStatus::SyncFailed,
            None => KeyStatus::Synced,
            Some(e) => match e.state {
                OpState::Pending => KeyStatus::SavedLocally,
                OpState::Queued if e.attempts == 0 => KeyStatus::WaitingToSync,
                OpState::Queued => KeyStatus::Retrying,
                OpState::InFlight => KeyStatus::Syncing,
                OpState::Acknowledged => KeyStatus::Synced,
                OpState::Failed => KeyStatus::SyncFailed,
            },
        })
    }

    /// When the outbox next has timed work (see [`Outbox::next_deadline_ms`]).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.outbox.next_deadline_ms()
    }

    /// Whether anything still waits to be sent or acknowledged.
    #[cfg(any(test, feature = "internals"))]
    pub fn has_unfinished_work(&self) -> bool {
        self.outbox.has_unfinished_work()
    }
}

/// Logs one line for the refused operations of a call (not one per operation: a flood of
/// them must not flood the log).
fn note_refusals(node_id: &str, from_origin: &str, ops: &[Operation], report: &RemoteApply) {
    let Some(&(first, why)) = report.refused.first() else {
        return;
    };
    let op = &ops[first];
    log::warn!(
        "node {node_id}: refused {} of {} operations from {}: the first, {}#{}, {}",
        report.refused.len(),
        ops.len(),
        crate::logsafe::shown(from_origin),
        crate::logsafe::shown(&op.origin),
        op.origin_seq,
        why.describe(),
    );
}

impl ReplayObserver for SyncEngine {
    fn op(&mut self, op: &Op<'_>) {
        self.replay_op(op);
    }

    fn own_left(&mut self, seq: u64) {
        self.outbox.left_the_store(seq);
    }

    fn record(&mut self, record: &ScannedRecord<'_>) -> Result<(), String> {
        match record.record_type {
            RecordType::SyncMarks => self.replay_marks(record.payload),
            other @ (RecordType::StoreOps | RecordType::StoreForget) => {
                Err(format!("unexpected record type {other:?}"))
            }
        }
    }

    fn snapshot_block(&mut self, block_type: u8, payload: &[u8]) -> Result<(), String> {
        match block_type {
            crate::store::snapshot::block::SYNC => self.restore_snapshot_block(payload),
            other => Err(format!("unknown snapshot block type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeqRanges;

    #[test]
    fn the_outbox_comes_back_from_its_snapshot_blocks_with_states_and_retries() {
        use super::{OpState, SyncConfig, SyncEngine};
        use crate::store::Version;
        let config = SyncConfig {
            batch_size: 2,
            max_retries: 1,
            ack_timeout_ms: 10,
            retry_interval_ms: 1,
            ..SyncConfig::default()
        };
        let mut engine = SyncEngine::new("node-a", config.clone());
        for seq in 1..=5 {
            engine.outbox.submit(seq, &format!("k{seq}"), Version(seq * 10));
        }
        // 1 and 2: sent, timed out, sent again, timed out again: failed.
        assert_eq!(engine.outbox.next_batch(0), vec![(1, 1), (2, 2)]);
        engine.outbox.retry_expired(100);
        assert_eq!(engine.outbox.next_batch(200), vec![(1, 1), (2, 2)]);
        engine.outbox.retry_expired(300);
        // 3: in flight; 4: acknowledged (gone); 5: still queued, never sent.
        assert_eq!(engine.outbox.next_batch(300), vec![(3, 3), (4, 4)]);
        engine.outbox.acknowledge(&[(4, 4)]);
        // 6 and 7 rewrite k6: 6 is superseded, kept as a run by number.
        engine.outbox.submit(6, "k6", Version(60));
        engine.outbox.submit(7, "k6", Version(70));
        engine.abandoned.add(7, 9);
        let before: Vec<(u64, OpState, u32)> = engine
            .outbox
            .unacknowledged()
            .map(|(s, e)| (s, e.state, e.attempts))
            .collect();
        assert_eq!(
            before,
            vec![
                (1, OpState::Failed, 2),
                (2, OpState::Failed, 2),
                (3, OpState::InFlight, 1),
                (5, OpState::Queued, 0),
                (6, OpState::Queued, 0),
                (7, OpState::Queued, 0)
            ]
        );

        let mut restored = SyncEngine::new("node-a", config);
        for block in engine.snapshot_blocks() {
            restored.restore_snapshot_block(&block).unwrap();
        }
        let after: Vec<(u64, OpState, u32)> = restored
            .outbox
            .unacknowledged()
            .map(|(s, e)| (s, e.state, e.attempts))
            .collect();
        assert_eq!(
            after,
            vec![
                (1, OpState::Failed, 2),
                (2, OpState::Failed, 2),
                (3, OpState::Queued, 1),
                (5, OpState::Queued, 0),
                (6, OpState::Queued, 0),
                (7, OpState::Queued, 0)
            ],
            "an operation in flight is queued again, the rest keep their state"
        );
        assert_eq!(restored.outbox.counts().failed, 2);
        assert!(restored.abandoned.contains(8));
        assert_eq!(restored.outbox.get(5).unwrap().key.as_deref(), Some("k5"));
        assert_eq!(restored.outbox.get(6).unwrap().key, None);
        assert_eq!(restored.outbox.get(7).unwrap().key.as_deref(), Some("k6"));
        let mut broken = engine.snapshot_blocks()[0].clone();
        broken.truncate(broken.len() - 1);
        assert!(restored.restore_snapshot_block(&broken).is_err());
    }

    #[test]
    fn runs_awaiting_catch_up_come_back_from_a_snapshot_awaiting_catch_up_not_superseded() {
        use super::{SyncConfig, SyncEngine};
        use crate::store::Version;
        let config = SyncConfig {
            push_key_limit: 1,
            ..SyncConfig::default()
        };
        let mut engine = SyncEngine::new("node-a", config.clone());
        // k1 keyed; k2, k3 await catch-up; k1 again (4) keyed, 1 superseded.
        for (seq, key) in [(1, "k1"), (2, "k2"), (3, "k3"), (4, "k1")] {
            engine.outbox.submit(seq, key, Version(seq * 10));
        }
        let shape = |e: &SyncEngine| -> Vec<(u64, u64, Option<String>, bool)> {
            e.outbox
                .unacknowledged()
                .map(|(s, x)| (s, x.last, x.key.as_deref().map(String::from), x.awaits_catch_up))
                .collect()
        };
        let before = shape(&engine);
        assert_eq!(
            before,
            vec![
                (1, 1, None, false),
                (2, 3, None, true),
                (4, 4, Some("k1".into()), false)
            ]
        );
        let mut restored = SyncEngine::new("node-a", config);
        for block in engine.snapshot_blocks() {
            restored.restore_snapshot_block(&block).unwrap();
        }
        assert_eq!(shape(&restored), before);
        // Sent: the superseded 1 by number and k1's 4; never 2 and 3.
        assert_eq!(restored.outbox.next_batch(0), vec![(1, 1), (4, 4)]);
        assert!(restored.outbox.next_batch(0).is_empty());
        assert_eq!(restored.outbox.counts().queued, 2);
    }

    #[test]
    fn an_own_write_awaiting_catch_up_replaced_by_a_remote_one_goes_by_number_also_after_a_restart()
    {
        use super::{SyncBatch, SyncConfig, SyncEngine};
        use crate::store::{Operation, Store, StoreOptions, Version};
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new("node-a", Some(dir.path().join("a.wal")), false);
        let config = SyncConfig {
            push_key_limit: 1,
            ..SyncConfig::default()
        };
        let mut engine = SyncEngine::new("node-a", config.clone());
        let store = Store::open_with(&options, None, &mut engine).unwrap();
        let mut last = Version(0);
        for key in ["k1", "k2"] {
            let stamp = store.put(key, b"a").unwrap();
            last = stamp.last_version();
            engine.record_local(&store, stamp, [key]);
        }
        // k2 (number 2) awaits catch-up; a concurrent write of node-b wins over it.
        assert!(engine.outbox.get(2).unwrap().awaits_catch_up);
        let remote = Operation {
            key: "k2".into(),
            value: Some(b"b".to_vec()),
            version: Version(last.0 + 1),
            origin: "node-b".into(),
            origin_seq: 1,
            base: None,
        };
        let batch = SyncBatch {
            origin: "node-b".into(),
            ops: vec![remote],
            superseded: Vec::new(),
        };
        engine.receive_batch(&store, &batch).unwrap();
        let sent_by_number = |engine: &mut SyncEngine, store: &Store| {
            let batch = engine.next_batch(store, 0).unwrap();
            let ops: Vec<u64> = batch.ops.iter().map(|o| o.origin_seq).collect();
            let numbers: Vec<(u64, u64)> =
                batch.superseded.iter().map(|s| (s.first, s.last)).collect();
            (ops, numbers)
        };
        assert_eq!(sent_by_number(&mut engine, &store), (vec![1], vec![(2, 2)]));
        drop(store);

        // Rebuilt from the log: the same.
        let mut engine = SyncEngine::new("node-a", config);
        let store = Store::open_with(&options, None, &mut engine).unwrap();
        assert!(!engine.outbox.get(2).unwrap().awaits_catch_up);
        assert_eq!(sent_by_number(&mut engine, &store), (vec![1], vec![(2, 2)]));
    }

    #[test]
    fn a_local_removal_whose_tombstone_was_collected_leaves_the_outbox_unsent() {
        use super::{CollectPolicy, SyncConfig, SyncEngine};
        use crate::store::{Store, StoreOptions};
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        let mut engine = SyncEngine::new("node-a", SyncConfig::default());
        let put = store.put("kept", b"v").unwrap();
        engine.record_local(&store, put, ["kept"]);
        let removal = store.remove("k").unwrap();
        engine.record_local(&store, removal, ["k"]);
        // No peer at all: the tombstone goes at once, before the removal was sent.
        let policy = CollectPolicy {
            peers: &[],
            now_ms: 10,
            started_ms: 0,
            horizon_ms: 1,
        };
        assert_eq!(engine.collect_tombstones(&store, &policy), 1);
        let batch = engine.next_batch(&store, 10).expect("the put goes out");
        assert_eq!(batch.ops.len(), 1);
        assert_eq!(batch.ops[0].key, "kept");
        assert!(
            batch.superseded.is_empty(),
            "the removal is not sent as superseded: it is not"
        );
        assert!(engine.outbox.get(removal.first_seq).is_none(), "done");
        assert!(engine.next_batch(&store, 10).is_none());
    }

    #[test]
    fn full_state_parts_must_follow_each_other_to_the_end() {
        use super::{FullPart, FullStateReceiver};
        let part = |after: Option<&str>, through: Option<&str>| FullPart {
            after: after.map(str::to_string),
            through: through.map(str::to_string),
            ..FullPart::default()
        };
        let mut r = FullStateReceiver::default();
        assert!(r.follows(&part(Some("a"), Some("c"))).is_err(), "not from the start");
        assert!(r.follows(&part(None, Some("c"))).is_ok());
        assert!(r.follows(&part(None, Some("d"))).is_err(), "the same range again");
        assert!(r.follows(&part(Some("c"), Some("c"))).is_err(), "empty");
        assert!(r.follows(&part(Some("c"), Some("b"))).is_err(), "reversed");
        assert!(r.follows(&part(Some("c"), Some("f"))).is_ok());
        assert!(r.follows(&part(Some("f"), None)).is_ok());
        let e = r.follows(&part(Some("z"), None)).unwrap_err();
        assert!(e.contains("after the one that reached the last key"), "{e}");
    }

    #[test]
    fn seq_ranges_merge_neighbours_and_answer_membership() {
        let mut r = SeqRanges::default();
        r.add(10, 12);
        r.add(1, 1);
        r.add(13, 13); // touches 10..=12
        r.add(5, 3); // empty: ignored
        r.add(u64::MAX - 1, u64::MAX);
        assert_eq!(r.ranges, vec![(1, 1), (10, 13), (u64::MAX - 1, u64::MAX)]);
        r.add(2, 9); // bridges the first two
        assert_eq!(r.ranges, vec![(1, 13), (u64::MAX - 1, u64::MAX)]);
        for (seq, inside) in [
            (0, false),
            (1, true),
            (13, true),
            (14, false),
            (u64::MAX, true),
        ] {
            assert_eq!(r.contains(seq), inside, "{seq}");
        }
    }

    #[test]
    fn seq_ranges_remove_splits_what_it_cuts_through() {
        let mut r = SeqRanges::default();
        r.add(1, 10);
        r.add(20, 30);
        r.remove(5, 22);
        assert_eq!(r.ranges, vec![(1, 4), (23, 30)]);
        r.remove(0, u64::MAX - 1);
        assert!(r.ranges.is_empty());
    }

    #[test]
    fn seq_ranges_keep_at_most_their_bound_forgetting_the_oldest() {
        let mut r = SeqRanges::default();
        let n = SeqRanges::MAX_RANGES as u64 + 10;
        for i in 0..n {
            r.add(i * 2, i * 2);
        }
        assert_eq!(r.ranges.len(), SeqRanges::MAX_RANGES);
        assert!(!r.contains(0));
        assert!(r.contains((n - 1) * 2));
    }
}
