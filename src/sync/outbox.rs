//! The outbox: every local operation on its way to peers, as a state machine. Pure logic:
//! time is passed in, nothing here does I/O.
//!
//! ```text
//! submit -> Pending --(auto_queue, or queue_pending)--> Queued --next_batch--> InFlight
//! InFlight --ack (or, without require_ack, written to a peer)--> Acknowledged
//! InFlight --ack timeout, retries left--> Queued (waits for its backoff)
//! InFlight --ack timeout, no retries left--> Failed
//! Failed --retry_failed--> Queued (attempts reset: one attempt plus max_retries again)
//! ```
//! Backoff: the n-th retry (n = 1, 2, ...) is sent no earlier than
//! `retry_interval_ms * 2^(n-1)` after the timeout that caused it, at most
//! `32 * retry_interval_ms`. `max_retries` counts retries after the first attempt, so an
//! operation is sent at most `1 + max_retries` times.
//!
//! Memory follows the keys with unacknowledged work, not the operations: an operation
//! whose key this node has written again since is *superseded* (the newer operation
//! carries the key's state), keeps no key, and joins its neighbours in one run of numbers
//! when they are in the same state. A node without peers that overwrites 100 k keys 10 M
//! times holds 100 k keyed entries and a few runs, not 10 M entries. Runs travel by number
//! only (see `SyncBatch::superseded`), so that receivers record them as seen.
//!
//! The keyed entries are bounded too (`push_key_limit`): a keyed entry costs a copy of its
//! key and an index slot (about 230 bytes), more than the store's whole entry for a small
//! value. Once that many keys have an operation waiting, an operation of another key joins
//! a run *awaiting catch-up*: the outbox does not push it (it holds no key to read it by),
//! and the next catch-up a peer asks for (on connecting, then every 30 s) delivers it from
//! the store, as it delivers whatever a peer lacks; the peer's vector then acknowledges it.
//! Such a run is never sent by number: that would tell the peer it has seen operations
//! whose values it never got. A node writing a million keys with no peer holds a few runs
//! for them, not a million keyed entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::store::{Version, merge_ranges};

/// The sync settings of `ClientOptions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub batch_size: usize,
    pub max_retries: u32,
    pub ack_timeout_ms: u64,
    pub retry_interval_ms: u64,
    pub require_ack: bool,
    pub auto_queue: bool,
    /// Most keys with a keyed entry (an operation the outbox pushes itself); operations of
    /// further keys await catch-up.
    pub push_key_limit: usize,
}

/// The default of [`SyncConfig::push_key_limit`]: keyed entries then hold at most about
/// 4 MB, while a peer that keeps up is pushed every write at once.
pub const DEFAULT_PUSH_KEY_LIMIT: usize = 16 * 1024;

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_size: 64,
            max_retries: 5,
            ack_timeout_ms: 10_000,
            retry_interval_ms: 5_000,
            require_ack: true,
            auto_queue: true,
            push_key_limit: DEFAULT_PUSH_KEY_LIMIT,
        }
    }
}

impl SyncConfig {
    /// Delay before retry number `retry` (1-based) may be sent.
    pub fn backoff_ms(&self, retry: u32) -> u64 {
        let factor = 1u64 << retry.saturating_sub(1).min(5);
        self.retry_interval_ms.saturating_mul(factor)
    }
}

/// Where one operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpState {
    /// Logged locally, not yet queued (`auto_queue = false`).
    Pending,
    /// Waiting to be sent (first time, or again after a timeout).
    Queued,
    /// Sent, waiting for an ACK.
    InFlight,
    /// A peer confirmed it.
    Acknowledged,
    /// Every attempt timed out.
    Failed,
}

/// One local operation in the outbox, or a run of superseded ones (numbered from the
/// entry's place in the outbox to `last`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The last operation number of the entry: the first one unless it is a run.
    pub last: u64,
    /// The operation's key; `None` for superseded operations, which travel by number only,
    /// and for operations awaiting catch-up.
    pub key: Option<Arc<str>>,
    /// Operations a catch-up delivers (see the module's note): never taken for a batch,
    /// done when a peer's vector shows them.
    pub awaits_catch_up: bool,
    /// The operation's version; for a run, the greatest of its operations.
    pub version: Version,
    pub state: OpState,
    /// Times sent.
    pub attempts: u32,
    /// Not sent again before this time.
    pub next_attempt_at: u64,
    /// An ACK is expected before this time (in flight only).
    pub ack_deadline: u64,
}

impl OutboxEntry {
    /// How many operations the entry holds, when it starts at `first`.
    fn len(&self, first: u64) -> usize {
        usize::try_from(self.last - first)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    }

    /// Whether two keyless entries side by side can be one run.
    fn joins(&self, other: &OutboxEntry) -> bool {
        self.key.is_none()
            && other.key.is_none()
            && self.awaits_catch_up == other.awaits_catch_up
            && self.state == other.state
            && self.attempts == other.attempts
            && self.next_attempt_at == other.next_attempt_at
            && self.ack_deadline == other.ack_deadline
    }
}

/// Counts of operations by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub total: usize,
    pub pending: usize,
    pub queued: usize,
    pub in_flight: usize,
    pub acknowledged: usize,
    pub failed: usize,
}

impl OutboxCounts {
    fn slot(&mut self, state: OpState) -> &mut usize {
        match state {
            OpState::Pending => &mut self.pending,
            OpState::Queued => &mut self.queued,
            OpState::InFlight => &mut self.in_flight,
            OpState::Acknowledged => &mut self.acknowledged,
            OpState::Failed => &mut self.failed,
        }
    }
}

/// The outbox, keyed by the first origin sequence number of each entry.
///
/// Entries live in an ordered map, so memory follows the entries and never a sequence
/// number (one read from a damaged log, say), and every operation is O(log n) in the
/// number of entries. New operations are found from a cursor, retries from a small ordered
/// set, expired ACK deadlines from an ordered set, and pruning only visits what it
/// removes. Every entry goes in through [`Outbox::insert`] and out through
/// [`Outbox::take_out`], which keep those indexes and the counts right.
#[derive(Clone, Debug)]
pub struct Outbox {
    config: SyncConfig,
    entries: BTreeMap<u64, OutboxEntry>,
    /// Per key, the number of its keyed entry: the newest local operation of the key
    /// still in the outbox.
    heads: HashMap<Arc<str>, u64>,
    /// The last number of the last entry considered for a first send: entries starting
    /// above it have not been taken yet (pieces split off a taken run stay behind it).
    taken_up_to: Option<u64>,
    /// Queued entries behind the cursor: retries, and pending ones queued later.
    requeued: BTreeSet<u64>,
    /// (ACK deadline, first number) of the entries in flight.
    deadlines: BTreeSet<(u64, u64)>,
    /// Failed entries, for pruning.
    failed: BTreeSet<u64>,
    counts: OutboxCounts,
    /// Operations in runs awaiting catch-up.
    awaiting_catch_up: usize,
    total_retries: u64,
    last_submitted_version: Version,
}

impl Outbox {
    pub fn new(config: SyncConfig) -> Self {
        Outbox {
            config,
            entries: BTreeMap::new(),
            heads: HashMap::new(),
            taken_up_to: None,
            requeued: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            failed: BTreeSet::new(),
            counts: OutboxCounts::default(),
            awaiting_catch_up: 0,
            total_retries: 0,
            last_submitted_version: Version::default(),
        }
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Whether `seq` is behind the cursor (already considered for a first send).
    fn behind_cursor(&self, seq: u64) -> bool {
        self.taken_up_to.is_some_and(|t| seq <= t)
    }

    /// Adds an entry starting at `first` (the numbers must be free), with its counts and
    /// indexes.
    fn insert(&mut self, first: u64, e: OutboxEntry) {
        let len = e.len(first);
        self.counts.total = self.counts.total.saturating_add(len);
        let slot = self.counts.slot(e.state);
        *slot = slot.saturating_add(len);
        if e.awaits_catch_up {
            self.awaiting_catch_up = self.awaiting_catch_up.saturating_add(len);
        }
        match e.state {
            // Never a retry: a run awaiting catch-up is not sent.
            OpState::Queued if e.awaits_catch_up => {}
            OpState::Queued if self.behind_cursor(first) => {
                self.requeued.insert(first);
            }
            OpState::InFlight => {
                self.deadlines.insert((e.ack_deadline, first));
            }
            OpState::Failed => {
                self.failed.insert(first);
            }
            _ => {}
        }
        if let Some(key) = &e.key {
            self.heads.insert(key.clone(), first);
        }
        self.entries.insert(first, e);
    }

    /// Removes the entry starting at `first`, with its counts and indexes.
    fn take_out(&mut self, first: u64) -> Option<OutboxEntry> {
        let e = self.entries.remove(&first)?;
        let len = e.len(first);
        self.counts.total -= len;
        *self.counts.slot(e.state) -= len;
        if e.awaits_catch_up {
            self.awaiting_catch_up -= len;
        }
        self.requeued.remove(&first);
        self.failed.remove(&first);
        if e.state == OpState::InFlight {
            self.deadlines.remove(&(e.ack_deadline, first));
        }
        if let Some(key) = &e.key
            && self.heads.get(key) == Some(&first)
        {
            self.heads.remove(key);
        }
        Some(e)
    }

    /// The first number of the entry holding `seq`, if any.
    fn entry_holding(&self, seq: u64) -> Option<u64> {
        let (&first, e) = self.entries.range(..=seq).next_back()?;
        (seq <= e.last).then_some(first)
    }

    /// Makes `seq` the first number of an entry, when a run holds it further in.
    fn split_at(&mut self, seq: u64) {
        let Some(first) = self.entry_holding(seq).filter(|&f| f < seq) else {
            return;
        };
        let mut e = self.take_out(first).expect("the entry holding seq");
        let mut tail = e.clone();
        e.last = seq - 1;
        self.insert(first, e);
        tail.key = None;
        self.insert(seq, tail);
    }

    /// The first numbers of the entries within `first..=last`, once runs crossing either
    /// end are split there. Visits only the entries present, however wide the range.
    fn entries_within(&mut self, first: u64, last: u64) -> Vec<u64> {
        if first > last {
            return Vec::new();
        }
        self.split_at(first);
        if let Some(after) = last.checked_add(1) {
            self.split_at(after);
        }
        self.entries.range(first..=last).map(|(&s, _)| s).collect()
    }

    /// Puts a superseded entry in, joined with its neighbours when they can be one run.
    fn insert_superseded(&mut self, first: u64, mut e: OutboxEntry) {
        let mut first = first;
        let before = self
            .entries
            .range(..first)
            .next_back()
            .filter(|(_, b)| b.last.checked_add(1) == Some(first) && b.joins(&e))
            .map(|(&s, _)| s);
        if let Some(start) = before {
            let b = self.take_out(start).expect("the entry before");
            e.version = e.version.max(b.version);
            first = start;
        }
        let after = e.last.checked_add(1).filter(|next| {
            self.entries.get(next).is_some_and(|a| e.joins(a))
        });
        if let Some(next) = after {
            let a = self.take_out(next).expect("the entry after");
            e.version = e.version.max(a.version);
            e.last = a.last;
        }
        self.insert(first, e);
    }

    /// Adds a local operation: queued at once with `auto_queue`, else pending. Operations
    /// may be submitted out of order (concurrent writers). The key's previous operation
    /// still in the outbox is superseded by it (or it by a newer one submitted first).
    pub fn submit(&mut self, seq: u64, key: &str, version: Version) {
        let state = if self.config.auto_queue {
            OpState::Queued
        } else {
            OpState::Pending
        };
        self.last_submitted_version = self.last_submitted_version.max(version);
        match self.entry_holding(seq) {
            // Submitted again (a replayed number): a keyed entry is replaced; in a run,
            // the operation is superseded already.
            Some(first) if first == seq && self.entries[&first].key.is_some() => {
                self.take_out(seq);
            }
            Some(_) => return,
            None => {}
        }
        let head = self.heads.get(key).copied();
        let mut entry = OutboxEntry {
            last: seq,
            key: None,
            awaits_catch_up: false,
            version,
            state,
            attempts: 0,
            next_attempt_at: 0,
            ack_deadline: 0,
        };
        match head {
            Some(newer) if newer > seq => self.insert_superseded(seq, entry),
            // A new key beyond the limit: its value reaches peers by catch-up.
            None if self.heads.len() >= self.config.push_key_limit => {
                entry.awaits_catch_up = true;
                self.insert_superseded(seq, entry);
            }
            _ => {
                if let Some(older) = head
                    && let Some(mut old) = self.take_out(older)
                {
                    old.key = None;
                    self.insert_superseded(older, old);
                }
                entry.key = Some(Arc::from(key));
                self.insert(seq, entry);
            }
        }
    }

    /// Operation `seq` left the store: a remote operation or a later local write replaced
    /// it, or it was forgotten or collected. One awaiting catch-up is then sent by number,
    /// as a superseded one is:
    /// no catch-up can carry it any more, and a peer records a number as seen by itself
    /// only below the greatest of this node's operations it received, which this one may
    /// be above (it would wait for ever). Others are left as they are: a keyed one finds
    /// out when its batch is built.
    pub fn left_the_store(&mut self, seq: u64) {
        let awaits = self
            .entry_holding(seq)
            .is_some_and(|first| self.entries[&first].awaits_catch_up);
        if !awaits {
            return;
        }
        self.split_at(seq);
        if let Some(next) = seq.checked_add(1) {
            self.split_at(next);
        }
        let mut e = self.take_out(seq).expect("split at seq");
        e.awaits_catch_up = false;
        self.insert_superseded(seq, e);
    }

    /// Changes the entry at `first` (taken out and put back, so that its indexes follow).
    fn update(&mut self, first: u64, change: impl FnOnce(&mut OutboxEntry)) {
        if let Some(mut e) = self.take_out(first) {
            change(&mut e);
            self.insert(first, e);
        }
    }

    /// Queues every pending operation; returns how many. (Visits every entry: it is called
    /// by the application, not on the hot path.)
    pub fn queue_pending(&mut self) -> usize {
        let pending: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state == OpState::Pending)
            .map(|(&seq, _)| seq)
            .collect();
        let before = self.counts.pending;
        for first in pending {
            self.update(first, |e| e.state = OpState::Queued);
        }
        before
    }

    /// Queues every failed operation again, as if it had never been sent: its attempts
    /// start over (one attempt plus `max_retries` again) and it is sent with the next
    /// batch, without a backoff. Returns how many operations were queued. (Visits only the
    /// failed entries.)
    pub fn retry_failed(&mut self) -> usize {
        let before = self.counts.failed;
        for first in std::mem::take(&mut self.failed) {
            self.update(first, |e| {
                e.state = OpState::Queued;
                e.attempts = 0;
                e.next_attempt_at = 0;
                e.ack_deadline = 0;
            });
        }
        before - self.counts.failed
    }

    /// When the outbox next has timed work: an ACK deadline, or a retry whose backoff ends
    /// (from the first 64 entries waiting for one: waking early is harmless). A waiting
    /// event loop sleeps no longer than this.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let ack = self.deadlines.first().map(|&(at, _)| at);
        let retry = self
            .requeued
            .iter()
            .take(64)
            .filter_map(|seq| self.entries.get(seq).map(|e| e.next_attempt_at))
            .min();
        ack.into_iter().chain(retry).min()
    }

    /// Operations whose ACK did not come in time: queued again with backoff, or failed
    /// when no retries are left. Returns how many were queued again.
    pub fn retry_expired(&mut self, now: u64) -> usize {
        let mut retried = 0usize;
        while let Some(&(deadline, first)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let expired = self
                .entries
                .get(&first)
                .is_some_and(|e| e.state == OpState::InFlight && e.ack_deadline == deadline);
            if !expired {
                continue;
            }
            let mut e = self.take_out(first).expect("the expired entry");
            if e.attempts > self.config.max_retries {
                e.state = OpState::Failed;
            } else {
                e.state = OpState::Queued;
                e.next_attempt_at = now.saturating_add(self.config.backoff_ms(e.attempts));
                let len = e.len(first);
                self.total_retries = self.total_retries.saturating_add(len as u64);
                retried = retried.saturating_add(len);
            }
            e.ack_deadline = 0;
            // Taken before, so behind the cursor: a queued one joins the retry set.
            self.insert(first, e);
        }
        retried
    }

    /// Takes up to `batch_size` queued entries whose backoff has passed, lowest numbers
    /// first, and marks them in flight. Returns their ranges of operation numbers
    /// (`first..=last`).
    pub fn next_batch(&mut self, now: u64) -> Vec<(u64, u64)> {
        let size = self.config.batch_size;
        let mut chosen: Vec<u64> = self
            .requeued
            .iter()
            .copied()
            .filter(|seq| {
                self.entries
                    .get(seq)
                    .is_some_and(|e| e.state == OpState::Queued && e.next_attempt_at <= now)
            })
            .take(size)
            .collect();
        if chosen.len() < size {
            let after = match self.taken_up_to {
                Some(t) => (Bound::Excluded(t), Bound::Unbounded),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            let mut last_visited = None;
            for (&seq, e) in self.entries.range(after) {
                if chosen.len() >= size {
                    break;
                }
                last_visited = Some(e.last);
                if e.state == OpState::Queued && !e.awaits_catch_up {
                    chosen.push(seq);
                }
            }
            if last_visited.is_some() {
                self.taken_up_to = last_visited;
            }
        }
        chosen.sort_unstable();
        chosen.dedup();
        let deadline = now.saturating_add(self.config.ack_timeout_ms);
        let mut batch = Vec::with_capacity(chosen.len());
        for first in chosen {
            self.update(first, |e| {
                e.attempts = e.attempts.saturating_add(1);
                e.ack_deadline = deadline;
                e.state = OpState::InFlight;
            });
            if let Some(e) = self.entries.get(&first) {
                batch.push((first, e.last));
            }
        }
        batch.sort_unstable();
        batch
    }

    /// Puts operations of a batch that could not be written to any peer back in the queue,
    /// as if they had not been taken (no attempt spent).
    pub fn return_unsent(&mut self, ranges: &[(u64, u64)]) {
        for &(first, last) in ranges {
            for seq in self.entries_within(first, last) {
                if self.entries.get(&seq).is_none_or(|e| e.state != OpState::InFlight) {
                    continue;
                }
                self.update(seq, |e| {
                    e.attempts = e.attempts.saturating_sub(1);
                    e.ack_deadline = 0;
                    e.state = OpState::Queued;
                });
            }
        }
    }

    /// Records ACKs (or, without `require_ack`, that a batch was written to a peer), as
    /// ranges of operation numbers. Returns the ranges acknowledged now for the first time.
    pub fn acknowledge(&mut self, ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut newly = Vec::new();
        for &(first, last) in ranges {
            for seq in self.entries_within(first, last) {
                // Done: the entry (its key) goes; the counts keep it as acknowledged until
                // pruned, as the outbox's totals promise.
                let Some(e) = self.take_out(seq) else { continue };
                let len = e.len(seq);
                self.counts.total = self.counts.total.saturating_add(len);
                self.counts.acknowledged = self.counts.acknowledged.saturating_add(len);
                newly.push((seq, e.last));
            }
        }
        merge_ranges(newly)
    }

    /// Removes acknowledged operations (only counted since their ACK) from the counts;
    /// returns how many.
    pub fn prune_completed(&mut self) -> usize {
        let pruned = std::mem::take(&mut self.counts.acknowledged);
        self.counts.total -= pruned;
        pruned
    }

    /// Removes failed operations only; returns their ranges of numbers.
    pub fn prune_failed(&mut self) -> Vec<(u64, u64)> {
        let mut pruned = Vec::new();
        for first in std::mem::take(&mut self.failed) {
            if let Some(e) = self.take_out(first) {
                pruned.push((first, e.last));
            }
        }
        merge_ranges(pruned)
    }

    /// Forgets the operations numbered `first..=last` (acknowledged or given up before a
    /// restart). Visits only the entries present, however wide the range.
    pub fn forget(&mut self, first: u64, last: u64) {
        for seq in self.entries_within(first, last) {
            self.take_out(seq);
        }
    }

    /// One in flight when a snapshot was taken is queued again (its ACK deadline died with
    /// the process), its attempts kept; a failed one stays failed, a pending one pending.
    fn restored_state(state: OpState) -> OpState {
        match state {
            OpState::InFlight | OpState::Acknowledged => OpState::Queued,
            other => other,
        }
    }

    /// Takes back an operation a snapshot kept, with its state and retry count.
    pub fn restore(&mut self, seq: u64, key: &str, version: Version, state: OpState, attempts: u32) {
        self.submit(seq, key, version);
        let Some(first) = self.entry_holding(seq) else {
            return;
        };
        if first != seq {
            return; // in a run already: superseded, restored with the run
        }
        let state = Self::restored_state(state);
        self.update(seq, |e| {
            e.attempts = attempts;
            e.state = state;
        });
    }

    /// Takes back a run a snapshot kept: superseded operations, or ones awaiting catch-up.
    pub fn restore_run(
        &mut self,
        first: u64,
        last: u64,
        awaits_catch_up: bool,
        version: Version,
        state: OpState,
        attempts: u32,
    ) {
        if first > last {
            return;
        }
        self.forget(first, last);
        self.last_submitted_version = self.last_submitted_version.max(version);
        let entry = OutboxEntry {
            last,
            key: None,
            awaits_catch_up,
            version,
            state: Self::restored_state(state),
            attempts,
            next_attempt_at: 0,
            ack_deadline: 0,
        };
        self.insert_superseded(first, entry);
    }

    /// Entries not acknowledged yet, by first number: what a snapshot keeps of the outbox.
    pub fn unacknowledged(&self) -> impl Iterator<Item = (u64, &OutboxEntry)> {
        self.entries.iter().map(|(&seq, e)| (seq, e))
    }

    /// The entry holding operation `seq` (a run of superseded operations may hold it).
    pub fn get(&self, seq: u64) -> Option<&OutboxEntry> {
        self.entry_holding(seq).and_then(|first| self.entries.get(&first))
    }

    /// How many entries the outbox holds (keyed operations and runs): what its memory
    /// follows.
    #[cfg(any(test, feature = "internals"))]
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// How many operations await catch-up (see the module's note).
    pub fn awaiting_catch_up(&self) -> usize {
        self.awaiting_catch_up
    }

    pub fn counts(&self) -> OutboxCounts {
        self.counts
    }

    pub fn total_retries(&self) -> u64 {
        self.total_retries
    }

    pub fn last_submitted_version(&self) -> Version {
        self.last_submitted_version
    }

    /// Whether anything still waits to be sent or acknowledged.
    #[cfg(any(test, feature = "internals"))]
    pub fn has_unfinished_work(&self) -> bool {
        self.counts.pending + self.counts.queued + self.counts.in_flight > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(config: SyncConfig) -> Outbox {
        let mut o = Outbox::new(config);
        for seq in 1..=3 {
            o.submit(seq, &format!("k{seq}"), Version(seq * 10));
        }
        o
    }

    fn state(o: &Outbox, seq: u64) -> OpState {
        o.get(seq).unwrap().state
    }

    fn singles(seqs: &[u64]) -> Vec<(u64, u64)> {
        seqs.iter().map(|&s| (s, s)).collect()
    }

    #[test]
    fn submitted_operations_are_queued_then_in_flight_then_acknowledged() {
        let mut o = outbox(SyncConfig::default());
        assert_eq!(o.counts().queued, 3);
        assert_eq!(o.last_submitted_version(), Version(30));
        assert_eq!(o.next_batch(0), singles(&[1, 2, 3]));
        assert_eq!(o.counts().in_flight, 3);
        assert_eq!(o.acknowledge(&[(2, 2), (2, 2), (9, 9)]), vec![(2, 2)]);
        assert!(o.get(2).is_none(), "an acknowledged operation keeps nothing");
        assert_eq!(state(&o, 1), OpState::InFlight);
        assert_eq!((o.counts().acknowledged, o.counts().total), (1, 3));
        assert_eq!(o.prune_completed(), 1);
        assert_eq!((o.counts().acknowledged, o.counts().total), (0, 2));
    }

    #[test]
    fn batches_respect_the_batch_size_and_sequence_order() {
        let config = SyncConfig {
            batch_size: 2,
            ..Default::default()
        };
        let mut o = outbox(config);
        assert_eq!(o.next_batch(0), singles(&[1, 2]));
        assert_eq!(o.next_batch(0), singles(&[3]));
        assert!(o.next_batch(0).is_empty());
    }

    #[test]
    fn without_auto_queue_operations_stay_pending_until_queued() {
        let config = SyncConfig {
            auto_queue: false,
            ..Default::default()
        };
        let mut o = outbox(config);
        assert_eq!((o.counts().pending, o.counts().queued), (3, 0));
        assert!(o.next_batch(0).is_empty());
        assert_eq!(o.queue_pending(), 3);
        assert_eq!(o.next_batch(0).len(), 3);
    }

    #[test]
    fn timed_out_operations_wait_for_their_backoff_before_the_retry() {
        let config = SyncConfig {
            ack_timeout_ms: 100,
            retry_interval_ms: 1_000,
            ..Default::default()
        };
        let mut o = outbox(config);
        o.next_batch(0);
        assert_eq!(o.retry_expired(99), 0, "not yet expired");
        assert_eq!(o.retry_expired(100), 3);
        assert_eq!(o.total_retries(), 3);
        assert!(
            o.next_batch(1_099).is_empty(),
            "first retry waits retry_interval"
        );
        assert_eq!(o.next_batch(1_100).len(), 3);
        assert_eq!(o.retry_expired(1_200), 3);
        assert!(
            o.next_batch(3_199).is_empty(),
            "second retry waits twice as long"
        );
        assert_eq!(o.next_batch(3_200).len(), 3);
    }

    #[test]
    fn backoff_doubles_up_to_thirty_two_intervals() {
        let c = SyncConfig {
            retry_interval_ms: 5_000,
            ..Default::default()
        };
        let delays: Vec<u64> = (1..=8).map(|n| c.backoff_ms(n)).collect();
        assert_eq!(
            delays,
            vec![
                5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 160_000, 160_000
            ]
        );
    }

    #[test]
    fn an_operation_fails_after_one_attempt_plus_max_retries() {
        let config = SyncConfig {
            max_retries: 2,
            ack_timeout_ms: 10,
            retry_interval_ms: 1,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        o.submit(1, "k", Version(1));
        let mut now = 0;
        let mut sends = 0;
        for _ in 0..10 {
            if !o.next_batch(now).is_empty() {
                sends += 1;
            }
            now += 100;
            o.retry_expired(now);
        }
        assert_eq!(sends, 3);
        assert_eq!(state(&o, 1), OpState::Failed);
        assert_eq!(o.total_retries(), 2);
    }

    #[test]
    fn unsent_batches_go_back_without_spending_an_attempt() {
        let mut o = outbox(SyncConfig::default());
        let batch = o.next_batch(0);
        o.return_unsent(&batch);
        assert_eq!(o.counts().queued, 3);
        assert_eq!(o.get(1).unwrap().attempts, 0);
        assert_eq!(o.next_batch(0), batch, "sent again as it was");
    }

    #[test]
    fn failed_operations_are_queued_again_with_their_attempts_reset() {
        let config = SyncConfig {
            max_retries: 0,
            ack_timeout_ms: 10,
            retry_interval_ms: 1_000,
            ..Default::default()
        };
        let mut o = outbox(config);
        o.submit(4, "k1", Version(40)); // supersedes 1: a run of one
        assert_eq!(o.next_batch(0).len(), 4);
        o.acknowledge(&[(2, 2)]);
        o.retry_expired(10); // 1, 3, 4 fail (no retries)
        o.submit(5, "queued", Version(50));
        assert_eq!(o.counts().failed, 3);
        assert_eq!(o.retry_failed(), 3);
        let c = o.counts();
        assert_eq!((c.failed, c.queued, c.acknowledged), (0, 4, 1));
        assert_eq!(o.get(4).unwrap().attempts, 0, "attempts start over");
        assert_eq!(
            o.next_batch(10),
            vec![(1, 1), (3, 3), (4, 4), (5, 5)],
            "sent with the next batch, no backoff"
        );
        o.retry_expired(20);
        assert_eq!(o.counts().failed, 4, "one attempt plus max_retries again");
        assert_eq!(o.retry_failed(), 4);
        assert_eq!(o.retry_failed(), 0, "nothing left failed");
    }

    #[test]
    fn pruning_removes_only_finished_work_of_its_kind() {
        let config = SyncConfig {
            max_retries: 0,
            ack_timeout_ms: 1,
            ..Default::default()
        };
        let mut o = outbox(config);
        o.submit(4, "pending-one", Version(40));
        o.next_batch(0); // 1..=4 in flight
        o.acknowledge(&[(1, 1)]);
        o.retry_expired(5); // 2, 3, 4 fail (no retries)
        o.submit(5, "queued", Version(50));
        assert_eq!(o.prune_completed(), 1);
        assert_eq!(o.counts().failed, 3);
        assert_eq!(o.prune_failed(), vec![(2, 4)]);
        assert_eq!(o.counts().total, 1, "the queued operation stays");
        assert_eq!(state(&o, 5), OpState::Queued);
    }

    #[test]
    fn operations_submitted_out_of_order_are_all_sent_in_order() {
        let mut o = Outbox::new(SyncConfig::default());
        o.submit(3, "c", Version(3));
        o.submit(1, "a", Version(1));
        assert_eq!(o.next_batch(0), singles(&[1, 3]));
        o.submit(2, "b", Version(2)); // a concurrent writer recorded late
        assert_eq!(o.next_batch(0), singles(&[2]));
        assert_eq!(o.counts().in_flight, 3);
    }

    #[test]
    fn pruned_and_forgotten_operations_free_their_slots() {
        let mut o = outbox(SyncConfig::default());
        o.next_batch(0);
        o.acknowledge(&[(1, 2)]);
        assert_eq!(o.prune_completed(), 2);
        assert!(o.get(1).is_none() && o.get(3).is_some());
        o.forget(3, 3);
        assert_eq!(o.counts(), OutboxCounts::default());
        assert_eq!(o.entry_count(), 0);
        o.submit(4, "d", Version(4));
        assert_eq!(o.next_batch(0), singles(&[4]));
    }

    #[test]
    fn an_ack_for_a_retried_operation_waiting_for_its_backoff_completes_it() {
        let config = SyncConfig {
            ack_timeout_ms: 10,
            retry_interval_ms: 1_000,
            ..Default::default()
        };
        let mut o = outbox(config);
        o.next_batch(0);
        o.retry_expired(10);
        assert_eq!(o.acknowledge(&[(1, 1)]), vec![(1, 1)], "a late ACK still counts");
        assert_eq!(o.next_batch(5_000), singles(&[2, 3]));
        assert_eq!(o.counts().acknowledged, 1);
    }

    #[test]
    fn far_apart_sequence_numbers_cost_no_memory_for_the_gap() {
        // A damaged or forged log can hold any number: the outbox must not size anything
        // by it (this aborted with a 56 TB allocation when entries were indexed by seq).
        let mut o = outbox(SyncConfig::default());
        o.submit(1_000_000_000_000, "far", Version(40));
        o.submit(u64::MAX, "farthest", Version(50));
        assert_eq!(o.counts().total, 5);
        assert_eq!(
            o.next_batch(0),
            singles(&[1, 2, 3, 1_000_000_000_000, u64::MAX])
        );
        assert!(o.next_batch(0).is_empty());
        assert_eq!(
            o.acknowledge(&[(4, u64::MAX)]),
            vec![(1_000_000_000_000, 1_000_000_000_000), (u64::MAX, u64::MAX)]
        );
        assert_eq!(o.counts().in_flight, 3);
    }

    #[test]
    fn forgetting_a_huge_range_visits_only_what_is_there() {
        let mut o = outbox(SyncConfig::default());
        o.forget(2, u64::MAX);
        assert_eq!(o.counts().total, 1);
        assert!(o.get(1).is_some());
        o.forget(5, 4);
        assert_eq!(o.counts().total, 1);
    }

    #[test]
    fn overwriting_keys_leaves_one_keyed_entry_per_key_and_one_run() {
        let mut o = Outbox::new(SyncConfig::default());
        let mut seq = 0;
        for round in 0..50u64 {
            for k in 0..20u64 {
                seq += 1;
                o.submit(seq, &format!("k{k}"), Version(seq * 2 + round));
            }
        }
        assert_eq!(o.counts().total, 1_000, "every operation is still counted");
        assert_eq!(o.counts().queued, 1_000);
        assert_eq!(o.entry_count(), 21, "20 keyed entries and one run of 980");
        let run = o.get(500).unwrap();
        assert_eq!((run.key.as_deref(), run.last), (None, 980));
        assert_eq!(o.get(1_000).unwrap().key.as_deref(), Some("k19"));
        let batch = o.next_batch(0);
        assert_eq!(batch.first(), Some(&(1, 980)), "the run travels as one range");
        assert_eq!(batch.len(), 21);
        assert_eq!(o.counts().in_flight, 1_000);
    }

    #[test]
    fn an_older_operation_submitted_late_is_superseded_at_once() {
        let mut o = Outbox::new(SyncConfig::default());
        o.submit(2, "k", Version(20));
        o.submit(1, "k", Version(10));
        assert_eq!(o.get(2).unwrap().key.as_deref(), Some("k"));
        assert_eq!(o.get(1).unwrap().key, None);
        assert_eq!(o.counts().total, 2);
    }

    #[test]
    fn an_ack_for_part_of_a_run_leaves_the_rest_in_flight() {
        let config = SyncConfig {
            ack_timeout_ms: 10,
            retry_interval_ms: 1,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        for seq in 1..=10 {
            o.submit(seq, "k", Version(seq));
        }
        assert_eq!(o.next_batch(0), vec![(1, 9), (10, 10)]);
        assert_eq!(o.acknowledge(&[(4, 6)]), vec![(4, 6)]);
        assert_eq!(o.counts().in_flight, 7);
        assert_eq!(o.counts().acknowledged, 3);
        assert!(o.get(5).is_none());
        assert_eq!(o.get(3).unwrap().last, 3);
        assert_eq!(o.get(7).unwrap().last, 9);
        assert_eq!(o.retry_expired(10), 7, "both pieces time out and are queued again");
        assert_eq!(o.next_batch(20), vec![(1, 3), (7, 9), (10, 10)]);
    }

    #[test]
    fn failed_runs_are_pruned_as_ranges() {
        let config = SyncConfig {
            max_retries: 0,
            ack_timeout_ms: 1,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        for seq in 1..=5 {
            o.submit(seq, "k", Version(seq));
        }
        o.next_batch(0);
        o.retry_expired(1);
        assert_eq!(o.counts().failed, 5);
        assert_eq!(o.prune_failed(), vec![(1, 5)]);
        assert_eq!(o.entry_count(), 0);
        o.submit(6, "k", Version(6));
        assert_eq!(o.get(6).unwrap().key.as_deref(), Some("k"), "a new head for the key");
    }

    #[test]
    fn keys_beyond_the_push_limit_await_catch_up_in_one_run_and_are_never_batched() {
        let config = SyncConfig {
            push_key_limit: 2,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        for seq in 1..=5 {
            o.submit(seq, &format!("k{seq}"), Version(seq));
        }
        assert_eq!(o.entry_count(), 3, "two keyed entries and one run");
        let run = o.get(4).unwrap();
        assert!(run.awaits_catch_up && run.key.is_none() && run.last == 5);
        assert_eq!(o.counts().queued, 5, "counted per operation");
        assert_eq!(o.next_batch(0), singles(&[1, 2]), "the run is not pushed");
        assert!(o.next_batch(0).is_empty());
        // A keyed key written again stays keyed; another key beyond the limit does not.
        o.submit(6, "k1", Version(6));
        assert_eq!(o.get(6).unwrap().key.as_deref(), Some("k1"));
        o.submit(7, "k3", Version(7));
        assert!(o.get(7).unwrap().awaits_catch_up);
        assert_eq!(o.next_batch(0), singles(&[6]));
        // A peer's vector (or any ACK) acknowledges the run, whole or in part.
        assert_eq!(o.acknowledge(&[(3, 4)]), vec![(3, 4)]);
        assert_eq!(o.get(5).map(|e| e.awaits_catch_up), Some(true));
        assert_eq!(o.counts().acknowledged, 2);
        // Never timed out, retried or failed: it was never sent.
        assert_eq!(o.retry_expired(u64::MAX), 3, "only the pushed 1, 2 and 6");
        assert!(o.get(5).unwrap().state == OpState::Queued && o.get(5).unwrap().attempts == 0);
    }

    #[test]
    fn an_operation_awaiting_catch_up_that_left_the_store_is_sent_by_number() {
        let config = SyncConfig {
            push_key_limit: 1,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        for seq in 1..=4 {
            o.submit(seq, &format!("k{seq}"), Version(seq));
        }
        o.left_the_store(3);
        let three = o.get(3).unwrap();
        assert!(!three.awaits_catch_up && three.key.is_none() && three.last == 3);
        assert!(o.get(2).unwrap().awaits_catch_up && o.get(4).unwrap().awaits_catch_up);
        // A keyed one is left alone: its batch finds out.
        o.left_the_store(1);
        assert_eq!(o.get(1).unwrap().key.as_deref(), Some("k1"));
        assert_eq!(o.next_batch(0), singles(&[1, 3]));
        assert!(o.next_batch(0).is_empty());
        assert_eq!(o.counts().queued, 2);
    }

    #[test]
    fn pending_operations_awaiting_catch_up_are_not_pushed_once_queued() {
        let config = SyncConfig {
            push_key_limit: 1,
            auto_queue: false,
            ..Default::default()
        };
        let mut o = Outbox::new(config);
        for seq in 1..=3 {
            o.submit(seq, &format!("k{seq}"), Version(seq));
        }
        // The cursor passes them while pending: once queued they are behind it, where
        // retries wait.
        assert!(o.next_batch(0).is_empty());
        assert_eq!(o.queue_pending(), 3);
        assert_eq!(o.counts().queued, 3);
        assert_eq!(o.next_batch(0), singles(&[1]));
        assert!(o.next_batch(0).is_empty());
        assert_eq!(o.next_deadline_ms(), Some(SyncConfig::default().ack_timeout_ms));
    }

    #[test]
    fn restored_runs_and_entries_rebuild_the_same_outbox() {
        let mut o = Outbox::new(SyncConfig::default());
        for seq in 1..=6 {
            o.submit(seq, if seq % 2 == 0 { "a" } else { "b" }, Version(seq));
        }
        let mut again = Outbox::new(SyncConfig::default());
        for (first, e) in o.unacknowledged() {
            match &e.key {
                Some(k) => again.restore(first, k, e.version, e.state, e.attempts),
                None => again.restore_run(
                        first,
                        e.last,
                        e.awaits_catch_up,
                        e.version,
                        e.state,
                        e.attempts,
                    ),
            }
        }
        assert_eq!(again.counts(), o.counts());
        let entries = |o: &Outbox| -> Vec<(u64, OutboxEntry)> {
            o.unacknowledged().map(|(s, e)| (s, e.clone())).collect()
        };
        assert_eq!(entries(&again), entries(&o));
        again.submit(7, "a", Version(7));
        assert_eq!(again.get(6).unwrap().key, None, "the restored head is superseded");
    }
}
