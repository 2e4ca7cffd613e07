//! The outbox: every local operation on its way to peers, as a state machine. Pure logic:
//! time is passed in, nothing here does I/O.
//!
//! ```text
//! submit -> Pending --(auto_queue, or queue_pending)--> Queued --next_batch--> InFlight
//! InFlight --ack (or, without require_ack, written to a peer)--> Acknowledged
//! InFlight --ack timeout, retries left--> Queued (waits for its backoff)
//! InFlight --ack timeout, no retries left--> Failed
//! ```
//! Backoff: the n-th retry (n = 1, 2, ...) is sent no earlier than
//! `retry_interval_ms * 2^(n-1)` after the timeout that caused it, at most
//! `32 * retry_interval_ms`. `max_retries` counts retries after the first attempt, so an
//! operation is sent at most `1 + max_retries` times.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use crate::store::Version;

/// The sync settings of `ClientOptions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    pub batch_size: usize,
    pub max_retries: u32,
    pub ack_timeout_ms: u64,
    pub retry_interval_ms: u64,
    pub require_ack: bool,
    pub auto_queue: bool,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_size: 64,
            max_retries: 5,
            ack_timeout_ms: 10_000,
            retry_interval_ms: 5_000,
            require_ack: true,
            auto_queue: true,
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

/// One local operation in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub key: String,
    pub version: Version,
    pub state: OpState,
    /// Times sent.
    pub attempts: u32,
    /// Not sent again before this time.
    pub next_attempt_at: u64,
    /// An ACK is expected before this time (in flight only).
    pub ack_deadline: u64,
}

/// Counts by state.
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

/// The outbox, keyed by the operations' origin sequence numbers.
///
/// Entries live in an ordered map, so memory follows the number of operations and never a
/// sequence number (one read from a damaged log, say): every operation is O(log n) in the
/// number of entries, however many are in flight. New operations are found from a cursor,
/// retries from a small ordered set, expired ACK deadlines from the front of a queue, and
/// pruning only visits what it removes.
/// The outbox's counts and prune lists, kept apart from its entries so that an entry can
/// change state in place (one lookup).
#[derive(Clone, Debug, Default)]
struct Books {
    counts: OutboxCounts,
    /// Operations that failed, for pruning. (Acknowledged ones leave the map at once and
    /// are only counted until pruned: an acknowledged operation keeps no key in memory.)
    failed: Vec<u64>,
}

impl Books {
    /// Entry `seq` (`e`) moves to `state`.
    fn moved(&mut self, seq: u64, e: &mut OutboxEntry, state: OpState) {
        let old = std::mem::replace(&mut e.state, state);
        *self.counts.slot(old) -= 1;
        *self.counts.slot(state) += 1;
        if state == OpState::Failed {
            self.failed.push(seq);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Outbox {
    config: SyncConfig,
    entries: BTreeMap<u64, OutboxEntry>,
    /// The greatest sequence number already considered for a first send: operations above
    /// it have not been taken yet.
    taken_up_to: Option<u64>,
    /// Queued operations behind the cursor: retries, and pending ones queued later.
    requeued: BTreeSet<u64>,
    /// (ACK deadline, seq) in send order; pairs whose operation moved on are skipped.
    deadlines: VecDeque<(u64, u64)>,
    books: Books,
    total_retries: u64,
    last_submitted_version: Version,
}

impl Outbox {
    pub fn new(config: SyncConfig) -> Self {
        Outbox {
            config,
            entries: BTreeMap::new(),
            taken_up_to: None,
            requeued: BTreeSet::new(),
            deadlines: VecDeque::new(),
            books: Books::default(),
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

    fn entry_mut(&mut self, seq: u64) -> Option<&mut OutboxEntry> {
        self.entries.get_mut(&seq)
    }

    /// Moves an entry to `state`, keeping the counts and the prune lists right.
    fn set_state(&mut self, seq: u64, state: OpState) {
        if let Some(e) = self.entries.get_mut(&seq) {
            self.books.moved(seq, e, state);
        }
    }

    /// Removes an entry, if present.
    fn remove(&mut self, seq: u64) -> Option<OutboxEntry> {
        let e = self.entries.remove(&seq)?;
        *self.books.counts.slot(e.state) -= 1;
        self.books.counts.total -= 1;
        self.requeued.remove(&seq);
        Some(e)
    }

    /// Adds a local operation: queued at once with `auto_queue`, else pending. Operations
    /// may be submitted out of order (concurrent writers).
    pub fn submit(&mut self, seq: u64, key: &str, version: Version) {
        let state = if self.config.auto_queue {
            OpState::Queued
        } else {
            OpState::Pending
        };
        let replaced = self.entries.insert(
            seq,
            OutboxEntry {
                key: key.to_string(),
                version,
                state,
                attempts: 0,
                next_attempt_at: 0,
                ack_deadline: 0,
            },
        );
        match replaced {
            // Submitted again (a replayed number): the new entry takes its place.
            Some(old) => {
                *self.books.counts.slot(old.state) -= 1;
                self.requeued.remove(&seq);
            }
            None => self.books.counts.total += 1,
        }
        *self.books.counts.slot(state) += 1;
        if state == OpState::Queued && self.behind_cursor(seq) {
            self.requeued.insert(seq);
        }
        self.last_submitted_version = self.last_submitted_version.max(version);
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
        for &seq in &pending {
            self.set_state(seq, OpState::Queued);
            if self.behind_cursor(seq) {
                self.requeued.insert(seq);
            }
        }
        pending.len()
    }

    /// When the outbox next has timed work: an ACK deadline, or a retry whose backoff ends
    /// (from the first 64 operations waiting for one: waking early is harmless). A waiting
    /// event loop sleeps no longer than this.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let ack = self.deadlines.front().map(|&(at, _)| at);
        let retry = self
            .requeued
            .iter()
            .take(64)
            .filter_map(|&seq| self.get(seq).map(|e| e.next_attempt_at))
            .min();
        ack.into_iter().chain(retry).min()
    }


    /// Operations whose ACK did not come in time: queued again with backoff, or failed
    /// when no retries are left. Returns how many were queued again.
    pub fn retry_expired(&mut self, now: u64) -> usize {
        let mut retried = 0;
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let Some(attempts) = self
                .get(seq)
                .filter(|e| e.state == OpState::InFlight && e.ack_deadline == deadline)
                .map(|e| e.attempts)
            else {
                continue; // acknowledged, or sent again since
            };
            if attempts > self.config.max_retries {
                self.set_state(seq, OpState::Failed);
            } else {
                let next_attempt_at = now.saturating_add(self.config.backoff_ms(attempts));
                if let Some(e) = self.entry_mut(seq) {
                    e.next_attempt_at = next_attempt_at;
                }
                self.set_state(seq, OpState::Queued);
                self.requeued.insert(seq);
                self.total_retries += 1;
                retried += 1;
            }
        }
        retried
    }

    fn take(&mut self, seq: u64, deadline: u64, batch: &mut Vec<u64>) {
        if let Some(e) = self.entries.get_mut(&seq) {
            take_entry(
                &mut self.books,
                &mut self.deadlines,
                seq,
                e,
                deadline,
                batch,
            );
        }
    }

    /// Takes up to `batch_size` queued operations whose backoff has passed, lowest sequence
    /// numbers first, and marks them in flight. Returns their sequence numbers.
    pub fn next_batch(&mut self, now: u64) -> Vec<u64> {
        let deadline = now.saturating_add(self.config.ack_timeout_ms);
        let size = self.config.batch_size;
        let mut batch = Vec::new();
        let ready: Vec<u64> = self
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
        for seq in ready {
            self.requeued.remove(&seq);
            self.take(seq, deadline, &mut batch);
        }
        if batch.len() < size {
            let after = match self.taken_up_to {
                Some(t) => (Bound::Excluded(t), Bound::Unbounded),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            let mut last_visited = None;
            for (&seq, e) in self.entries.range_mut(after) {
                if batch.len() >= size {
                    break;
                }
                last_visited = Some(seq);
                if e.state == OpState::Queued {
                    take_entry(
                        &mut self.books,
                        &mut self.deadlines,
                        seq,
                        e,
                        deadline,
                        &mut batch,
                    );
                }
            }
            if last_visited.is_some() {
                self.taken_up_to = last_visited;
            }
        }
        batch.sort_unstable();
        batch
    }

    /// Puts operations of a batch that could not be written to any peer back in the queue,
    /// as if they had not been taken (no attempt spent).
    pub fn return_unsent(&mut self, seqs: &[u64]) {
        for &seq in seqs {
            let Some(e) = self.entry_mut(seq).filter(|e| e.state == OpState::InFlight) else {
                continue;
            };
            e.attempts -= 1;
            e.ack_deadline = 0;
            self.set_state(seq, OpState::Queued);
            self.requeued.insert(seq);
        }
    }

    /// Records ACKs (or, without `require_ack`, that a batch was written to a peer).
    /// Returns the sequence numbers acknowledged now for the first time.
    pub fn acknowledge(&mut self, seqs: &[u64]) -> Vec<u64> {
        let mut newly = Vec::new();
        for &seq in seqs {
            let Some(e) = self
                .entries
                .get_mut(&seq)
                .filter(|e| e.state != OpState::Acknowledged)
            else {
                continue;
            };
            if e.state == OpState::Queued {
                self.requeued.remove(&seq);
            }
            // Done: the entry (its key) goes; the counts keep it as acknowledged until
            // pruned, as the outbox's totals promise.
            let state = e.state;
            self.entries.remove(&seq);
            *self.books.counts.slot(state) -= 1;
            self.books.counts.acknowledged += 1;
            newly.push(seq);
        }
        newly
    }

    /// Removes acknowledged operations (only counted since their ACK) from the counts;
    /// returns how many.
    pub fn prune_completed(&mut self) -> usize {
        let pruned = std::mem::take(&mut self.books.counts.acknowledged);
        self.books.counts.total -= pruned;
        pruned
    }

    /// Removes failed operations only; returns their sequence numbers.
    pub fn prune_failed(&mut self) -> Vec<u64> {
        let mut pruned = Vec::new();
        for seq in std::mem::take(&mut self.books.failed) {
            let failed = self
                .entries
                .get(&seq)
                .is_some_and(|e| e.state == OpState::Failed);
            if failed && self.remove(seq).is_some() {
                pruned.push(seq);
            }
        }
        pruned.sort_unstable();
        pruned
    }

    /// Forgets the operations numbered `first..=last` (acknowledged or given up before a
    /// restart). Visits only the entries present, however wide the range.
    pub fn forget(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let seqs: Vec<u64> = self.entries.range(first..=last).map(|(&s, _)| s).collect();
        for seq in seqs {
            self.remove(seq);
        }
    }

    /// Takes back an operation a snapshot kept, with its state and retry count. One in
    /// flight is queued again (its ACK deadline died with the process), its attempts kept;
    /// a failed one stays failed, a pending one pending.
    pub fn restore(&mut self, seq: u64, key: &str, version: Version, state: OpState, attempts: u32) {
        self.submit(seq, key, version);
        let state = match state {
            OpState::InFlight | OpState::Acknowledged => OpState::Queued,
            other => other,
        };
        if let Some(e) = self.entry_mut(seq) {
            e.attempts = attempts;
        }
        if self.entries.get(&seq).is_some_and(|e| e.state != state) {
            if state != OpState::Queued {
                self.requeued.remove(&seq);
            }
            self.set_state(seq, state);
            if state == OpState::Queued && self.behind_cursor(seq) {
                self.requeued.insert(seq);
            }
        }
    }

    /// Operations not acknowledged yet, by number: what a snapshot keeps of the outbox.
    pub fn unacknowledged(&self) -> impl Iterator<Item = (u64, &OutboxEntry)> {
        self.entries.iter().map(|(&seq, e)| (seq, e))
    }

    pub fn get(&self, seq: u64) -> Option<&OutboxEntry> {
        self.entries.get(&seq)
    }

    pub fn counts(&self) -> OutboxCounts {
        self.books.counts
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
        self.books.counts.pending + self.books.counts.queued + self.books.counts.in_flight > 0
    }
}

/// Takes entry `seq` (`e`) for a send: one more attempt, in flight until `deadline`.
fn take_entry(
    books: &mut Books,
    deadlines: &mut VecDeque<(u64, u64)>,
    seq: u64,
    e: &mut OutboxEntry,
    deadline: u64,
    batch: &mut Vec<u64>,
) {
    e.attempts += 1;
    e.ack_deadline = deadline;
    books.moved(seq, e, OpState::InFlight);
    deadlines.push_back((deadline, seq));
    batch.push(seq);
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

    #[test]
    fn submitted_operations_are_queued_then_in_flight_then_acknowledged() {
        let mut o = outbox(SyncConfig::default());
        assert_eq!(o.counts().queued, 3);
        assert_eq!(o.last_submitted_version(), Version(30));
        assert_eq!(o.next_batch(0), vec![1, 2, 3]);
        assert_eq!(o.counts().in_flight, 3);
        assert_eq!(o.acknowledge(&[2, 2, 9]), vec![2]);
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
        assert_eq!(o.next_batch(0), vec![1, 2]);
        assert_eq!(o.next_batch(0), vec![3]);
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
        o.acknowledge(&[1]);
        o.retry_expired(5); // 2, 3, 4 fail (no retries)
        o.submit(5, "queued", Version(50));
        assert_eq!(o.prune_completed(), 1);
        assert_eq!(o.counts().failed, 3);
        assert_eq!(o.prune_failed(), vec![2, 3, 4]);
        assert_eq!(o.counts().total, 1, "the queued operation stays");
        assert_eq!(state(&o, 5), OpState::Queued);
    }

    #[test]
    fn operations_submitted_out_of_order_are_all_sent_in_order() {
        let mut o = Outbox::new(SyncConfig::default());
        o.submit(3, "c", Version(3));
        o.submit(1, "a", Version(1));
        assert_eq!(o.next_batch(0), vec![1, 3]);
        o.submit(2, "b", Version(2)); // a concurrent writer recorded late
        assert_eq!(o.next_batch(0), vec![2]);
        assert_eq!(o.counts().in_flight, 3);
    }

    #[test]
    fn pruned_and_forgotten_operations_free_their_slots() {
        let mut o = outbox(SyncConfig::default());
        o.next_batch(0);
        o.acknowledge(&[1, 2]);
        assert_eq!(o.prune_completed(), 2);
        assert!(o.get(1).is_none() && o.get(3).is_some());
        o.forget(3, 3);
        assert_eq!(o.counts(), OutboxCounts::default());
        o.submit(4, "d", Version(4));
        assert_eq!(o.next_batch(0), vec![4]);
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
        assert_eq!(o.acknowledge(&[1]), vec![1], "a late ACK still counts");
        assert_eq!(o.next_batch(5_000), vec![2, 3]);
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
        assert_eq!(o.next_batch(0), vec![1, 2, 3, 1_000_000_000_000, u64::MAX]);
        assert!(o.next_batch(0).is_empty());
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
}
