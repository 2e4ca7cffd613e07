//! The change feed: remote changes (operations from peers, and values a peer showed
//! superseded) as they are applied to this node's store, for applications that react to
//! them without polling (`Client::subscribe_changes`; the JavaScript binding's
//! `client.on("change")`).
//!
//! Each subscription is a bounded queue. When its reader falls behind and the queue is
//! full, the oldest change is dropped and counted: the reader's next event is
//! [`ChangeEvent::Lagged`] with how many it missed (it then reads the state itself, e.g.
//! with `Client::list`), so a slow reader never makes the node hold unbounded memory, and
//! the node never waits for a reader. With no subscription the store builds no change:
//! a remote batch costs one atomic load more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Client;
use crate::store::{Operation, RemoteObserver, Version};

/// The most a subscription may hold; larger capacities are clamped to it.
pub const MAX_CHANGE_QUEUE: usize = 1 << 20;

/// A change a peer's operation made to this node's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteChange {
    /// The key it changed.
    pub key: String,
    /// The key's new value; `None` when it was removed.
    pub value: Option<Vec<u8>>,
    /// The node that made the change.
    pub origin: String,
    /// That node's number for it.
    pub origin_seq: u64,
    /// Its version (hybrid clock: above 2^53 in practice).
    pub version: Version,
}

/// What a subscription reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeEvent {
    /// A remote change, in the order changes were applied.
    Changed(RemoteChange),
    /// The queue was full: this many changes, older than every change still to be read,
    /// were dropped. Read the state again to catch up.
    Lagged {
        /// How many changes were dropped.
        missed: u64,
    },
}

struct QueueState {
    changes: VecDeque<RemoteChange>,
    missed: u64,
    closed: bool,
}

/// Called (without locks held) after changes are queued, for a reader that waits on an
/// event loop of its own rather than in [`ChangeSubscription::next_timeout`].
type Notify = Box<dyn Fn() + Send + Sync>;

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
    notify: Option<Notify>,
}

impl Queue {
    fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}

/// The subscriptions of one client (kept across close and open).
#[derive(Default)]
pub(super) struct ChangeFeed {
    queues: Mutex<Vec<Arc<Queue>>>,
    /// `queues.len()`, read without the lock by [`RemoteObserver::listening`].
    count: AtomicUsize,
}

impl ChangeFeed {
    fn remove(&self, queue: &Arc<Queue>) {
        let mut queues = self.queues.lock();
        queues.retain(|q| !Arc::ptr_eq(q, queue));
        self.count.store(queues.len(), Ordering::Release);
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        for q in self.queues.get_mut().drain(..) {
            q.close();
        }
    }
}

impl RemoteObserver for ChangeFeed {
    fn listening(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    fn applied(&self, ops: &[&Operation]) {
        if ops.is_empty() {
            return;
        }
        let queues = self.queues.lock().clone();
        for q in &queues {
            let mut state = q.state.lock();
            for op in ops {
                if state.changes.len() == q.capacity {
                    state.changes.pop_front();
                    state.missed = state.missed.saturating_add(1);
                }
                state.changes.push_back(RemoteChange {
                    key: op.key.clone(),
                    value: op.value.clone(),
                    origin: op.origin.clone(),
                    origin_seq: op.origin_seq,
                    version: op.version,
                });
            }
            drop(state);
            q.ready.notify_all();
            if let Some(notify) = &q.notify {
                notify();
            }
        }
    }
}

/// A subscription to a client's remote changes (see the module's documentation). It ends
/// when it is closed or dropped, or when its client is dropped; it outlives closing and
/// opening the client again. Safe to share between threads.
pub struct ChangeSubscription {
    queue: Arc<Queue>,
    feed: Weak<ChangeFeed>,
}

impl ChangeSubscription {
    /// The next event, waiting at most `timeout` for one. `None` when none came in time,
    /// or when the subscription is closed and every event was read.
    pub fn next_timeout(&self, timeout: Duration) -> Option<ChangeEvent> {
        let deadline = Instant::now() + timeout;
        let mut state = self.queue.state.lock();
        loop {
            if state.missed > 0 {
                let missed = std::mem::take(&mut state.missed);
                return Some(ChangeEvent::Lagged { missed });
            }
            if let Some(change) = state.changes.pop_front() {
                return Some(ChangeEvent::Changed(change));
            }
            if state.closed
                || self
                    .queue
                    .ready
                    .wait_until(&mut state, deadline)
                    .timed_out()
            {
                return None;
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_next(&self) -> Option<ChangeEvent> {
        self.next_timeout(Duration::ZERO)
    }

    /// Ends the subscription: no change is queued any more, and a reader waiting in
    /// [`ChangeSubscription::next_timeout`] returns (after the events already queued).
    pub fn close(&self) {
        if let Some(feed) = self.feed.upgrade() {
            feed.remove(&self.queue);
        }
        self.queue.close();
    }

    /// Whether the subscription was closed (or its client dropped).
    pub fn is_closed(&self) -> bool {
        self.queue.state.lock().closed
    }
}

impl Drop for ChangeSubscription {
    fn drop(&mut self) {
        self.close();
    }
}

impl Client {
    /// Subscribes to the changes operations from peers make to this node's store, from
    /// now on: a queue of at most `capacity` changes (1 to [`MAX_CHANGE_QUEUE`]; clamped),
    /// whose oldest change is dropped (and counted, see [`ChangeEvent::Lagged`]) when the
    /// reader falls behind. Local writes are not reported. Works whether the client is
    /// open or not, and across closing and opening it.
    pub fn subscribe_changes(&self, capacity: usize) -> ChangeSubscription {
        self.subscribe(capacity, None)
    }

    /// [`Client::subscribe_changes`], calling `notify` each time changes are queued (on
    /// the thread that applied them, with no lock held: it must return at once), for a
    /// reader that then takes them with [`ChangeSubscription::try_next`].
    pub fn subscribe_changes_notify(
        &self,
        capacity: usize,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> ChangeSubscription {
        self.subscribe(capacity, Some(Box::new(notify)))
    }

    fn subscribe(&self, capacity: usize, notify: Option<Notify>) -> ChangeSubscription {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                changes: VecDeque::new(),
                missed: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.clamp(1, MAX_CHANGE_QUEUE),
            notify,
        });
        let mut queues = self.changes.queues.lock();
        queues.push(queue.clone());
        self.changes.count.store(queues.len(), Ordering::Release);
        ChangeSubscription {
            queue,
            feed: Arc::downgrade(&self.changes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ClientOptions;
    use crate::sync::SyncBatch;

    /// Two memory-only clients; `b` receives what `a` writes by batches carried by hand.
    fn pair() -> (Client, Client) {
        let mut options = ClientOptions::memory_only("feed-a");
        options.require_ack = false;
        let a = Client::new(options);
        let b = Client::new(ClientOptions::memory_only("feed-b"));
        a.open().unwrap();
        b.open().unwrap();
        (a, b)
    }

    fn carry(from: &Client, to: &Client) {
        for _ in 0..100 {
            let Some(batch): Option<SyncBatch> = from.take_sync_batch().unwrap() else {
                return;
            };
            to.receive_sync_batch(&batch).unwrap();
            from.sync_batch_sent(&batch, true).unwrap();
        }
        panic!("more than 100 batches");
    }

    fn changed(event: Option<ChangeEvent>) -> RemoteChange {
        match event {
            Some(ChangeEvent::Changed(c)) => c,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn remote_puts_and_removals_are_reported_in_order_and_local_writes_are_not() {
        let (a, b) = pair();
        let sub = b.subscribe_changes(16);
        b.put("local", b"mine").unwrap();
        a.put("k1", b"v1").unwrap();
        a.put("k2", b"v2").unwrap();
        carry(&a, &b);
        a.remove("k1").unwrap();
        carry(&a, &b);
        let first = changed(sub.try_next());
        assert_eq!(
            (first.key.as_str(), first.value.as_deref()),
            ("k1", Some(&b"v1"[..]))
        );
        assert_eq!((first.origin.as_str(), first.origin_seq), ("feed-a", 1));
        assert_eq!(changed(sub.try_next()).key, "k2");
        let removal = changed(sub.try_next());
        assert_eq!((removal.key.as_str(), removal.value), ("k1", None));
        assert!(removal.version > first.version);
        assert_eq!(sub.try_next(), None, "the local write is not reported");
    }

    #[test]
    fn a_full_queue_drops_the_oldest_changes_and_says_how_many() {
        let (a, b) = pair();
        let sub = b.subscribe_changes(2);
        for i in 0..5 {
            a.put(&format!("k{i}"), b"v").unwrap();
        }
        carry(&a, &b);
        assert_eq!(sub.try_next(), Some(ChangeEvent::Lagged { missed: 3 }));
        assert_eq!(changed(sub.try_next()).key, "k3");
        assert_eq!(changed(sub.try_next()).key, "k4");
        assert_eq!(sub.try_next(), None);
    }

    #[test]
    fn operations_seen_before_are_not_reported_again() {
        let (a, b) = pair();
        let sub = b.subscribe_changes(8);
        a.put("k", b"v").unwrap();
        let batch = a.take_sync_batch().unwrap().unwrap();
        b.receive_sync_batch(&batch).unwrap();
        b.receive_sync_batch(&batch).unwrap();
        assert_eq!(changed(sub.try_next()).key, "k");
        assert_eq!(sub.try_next(), None);
    }

    #[test]
    fn a_waiting_reader_wakes_for_a_change_and_for_close() {
        let (a, b) = pair();
        let b = Arc::new(b);
        let sub = Arc::new(b.subscribe_changes(8));
        let reader = std::thread::spawn({
            let sub = sub.clone();
            move || {
                let first = sub.next_timeout(Duration::from_secs(10));
                let second = sub.next_timeout(Duration::from_secs(10));
                (first, second)
            }
        });
        a.put("k", b"v").unwrap();
        carry(&a, &b);
        // Bounded: the reader returns at its 10 s timeout at worst.
        let start = Instant::now();
        while !sub.queue.state.lock().changes.is_empty() && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        sub.close();
        let (first, second) = reader.join().unwrap();
        assert_eq!(changed(first).key, "k");
        assert_eq!(second, None);
        assert!(sub.is_closed());
        assert!(!b.changes.listening(), "a closed subscription is not fed");
    }

    #[test]
    fn subscriptions_outlive_close_and_open_and_end_with_the_client() {
        let (a, b) = pair();
        let sub = b.subscribe_changes(8);
        b.close().unwrap();
        b.open().unwrap();
        a.put("k", b"v").unwrap();
        carry(&a, &b);
        assert_eq!(changed(sub.try_next()).key, "k");
        drop(b);
        assert!(sub.is_closed());
        assert_eq!(sub.next_timeout(Duration::from_secs(5)), None);
    }

    #[test]
    fn notify_is_called_once_per_applied_batch() {
        let (a, b) = pair();
        let calls = Arc::new(AtomicUsize::new(0));
        let sub = b.subscribe_changes_notify(8, {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        });
        a.put("k1", b"v").unwrap();
        a.put("k2", b"v").unwrap();
        carry(&a, &b);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(changed(sub.try_next()).key, "k1");
        assert_eq!(changed(sub.try_next()).key, "k2");
    }

    #[test]
    fn nobody_listens_without_a_subscription() {
        let (_, b) = pair();
        assert!(!b.changes.listening());
        let sub = b.subscribe_changes(0);
        assert!(b.changes.listening());
        assert_eq!(sub.queue.capacity, 1, "capacity 0 is clamped to 1");
        drop(sub);
        assert!(!b.changes.listening());
    }
}
