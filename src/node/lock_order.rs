//! The node's locks, taken in one order, with a debug-build check of that order.
//!
//! The order (also in docs/architecture.md): `Client.node` (read for every call, write
//! for open and close), then [`Rank::Net`], [`Rank::Discovery`], [`Rank::Sync`],
//! [`Rank::Local`], then the store's own locks (map, then counters; the WAL's append lock
//! is taken by the store around a record's encoding only).
//!
//! A local write (put, remove, batch) takes `Client.node` for reading, the store's locks
//! (never across an fsync: group commit syncs outside them) and `Local` for a push. It
//! never waits for `Net`, `Discovery` or `Sync`, which the event loop holds across socket
//! I/O, polls and the fsyncs of remote operations and sync marks.
//!
//! In debug builds every [`Ranked`] lock checks that the thread holds no lock of the same
//! or a later rank, and panics naming both when it does: an inversion is caught by any
//! test that runs the path, not only by the one that deadlocks.

use parking_lot::{Mutex, MutexGuard};
use std::ops::{Deref, DerefMut};

/// Where a lock sits in the order: a thread takes ranks in increasing order only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// The transport and its conversations (`OpenNode::net`).
    Net = 1,
    /// Discovery (`OpenNode::discovery`).
    Discovery = 2,
    /// The sync engine (`OpenNode::sync`).
    Sync = 3,
    /// Local writes waiting to enter the outbox (`OpenNode::local`): held for a push or a
    /// drain, never across anything else.
    Local = 4,
}

#[cfg(debug_assertions)]
thread_local! {
    static HELD: std::cell::RefCell<Vec<Rank>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A mutex with a place in the lock order.
pub(crate) struct Ranked<T> {
    // Read by the order check, which only debug builds compile.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    rank: Rank,
    inner: Mutex<T>,
}

/// The guard of a [`Ranked`] lock.
pub(crate) struct RankedGuard<'a, T> {
    #[cfg(debug_assertions)]
    rank: Rank,
    guard: MutexGuard<'a, T>,
}

impl<T> Ranked<T> {
    pub(crate) fn new(rank: Rank, value: T) -> Self {
        Ranked {
            rank,
            inner: Mutex::new(value),
        }
    }

    /// Locks, waiting; in debug builds panics on an order inversion.
    pub(crate) fn lock(&self) -> RankedGuard<'_, T> {
        #[cfg(debug_assertions)]
        HELD.with_borrow(|held| {
            if let Some(&last) = held.iter().max() {
                assert!(
                    last < self.rank,
                    "lock order inversion: taking {:?} while holding {last:?}",
                    self.rank
                );
            }
        });
        let guard = self.inner.lock();
        self.held(guard)
    }

    /// Locks when free, without waiting (so in any order: it cannot deadlock).
    pub(crate) fn try_lock(&self) -> Option<RankedGuard<'_, T>> {
        self.inner.try_lock().map(|guard| self.held(guard))
    }

    fn held<'a>(&'a self, guard: MutexGuard<'a, T>) -> RankedGuard<'a, T> {
        #[cfg(debug_assertions)]
        HELD.with_borrow_mut(|held| held.push(self.rank));
        RankedGuard {
            #[cfg(debug_assertions)]
            rank: self.rank,
            guard,
        }
    }
}

impl<T> Drop for RankedGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HELD.with_borrow_mut(|held| {
            if let Some(at) = held.iter().rposition(|&r| r == self.rank) {
                held.remove(at);
            }
        });
    }
}

impl<T> Deref for RankedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for RankedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_order_are_fine_and_released_ranks_can_be_taken_again() {
        let net = Ranked::new(Rank::Net, 1);
        let sync = Ranked::new(Rank::Sync, 2);
        {
            let _n = net.lock();
            let _s = sync.lock();
        }
        let _s = sync.lock();
        assert!(net.try_lock().is_some(), "try_lock never waits, in any order");
    }

    #[cfg(debug_assertions)]
    #[test]
    fn an_inversion_panics_in_debug_builds_naming_both_locks() {
        let net = Ranked::new(Rank::Net, ());
        let sync = Ranked::new(Rank::Sync, ());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _s = sync.lock();
            let _n = net.lock();
        }));
        let payload = caught.unwrap_err();
        let message = crate::error::panic_text(payload.as_ref()).to_string();
        assert!(message.contains("taking Net while holding Sync"), "{message}");
        // The guard released during the unwind: the thread holds nothing now.
        let _n = net.lock();
    }
}
