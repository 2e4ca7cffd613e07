//! What the WAL counts about its own work, for the node's metrics: records and bytes
//! handed to the log, and how long each fsync of its files took, in fixed buckets.
//!
//! Lock-free (relaxed atomics): counting never adds a lock to the write path, and a reader
//! sees each figure as of some moment (the figures of one snapshot may be a few writes
//! apart). Nothing here knows of any metrics format: the node encodes the snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the fsync latency buckets, in microseconds: 50 µs to 10 s, roughly
/// three per decade, which covers an NVMe drive's fdatasync (tens of microseconds), a
/// spinning disk's (milliseconds) and a stalled device (seconds). A sync slower than the
/// last bound is counted in the implicit `+Inf` bucket only.
pub const SYNC_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Counts of fsync durations in [`SYNC_BUCKETS_US`], lock-free.
#[derive(Debug, Default)]
pub struct SyncLatency {
    /// Per bucket (not cumulative); the last slot is beyond every bound.
    buckets: [AtomicU64; SYNC_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl SyncLatency {
    /// Counts one sync that took `took`.
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = SYNC_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(SYNC_BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Runs `sync` and counts how long it took, whether it failed or not (a failed sync
    /// took that long too).
    pub fn time<T>(&self, sync: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = sync();
        self.record(start.elapsed());
        result
    }

    /// The counts so far.
    pub fn snapshot(&self) -> SyncLatencySnapshot {
        let mut buckets = [0u64; SYNC_BUCKETS_US.len() + 1];
        for (out, b) in buckets.iter_mut().zip(&self.buckets) {
            *out = b.load(Ordering::Relaxed);
        }
        SyncLatencySnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// The fsync latency counts at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncLatencySnapshot {
    /// Syncs per bucket of [`SYNC_BUCKETS_US`] (not cumulative); the last one counts the
    /// syncs slower than every bound.
    pub buckets: [u64; SYNC_BUCKETS_US.len() + 1],
    /// Syncs counted.
    pub count: u64,
    /// Their total duration, in nanoseconds.
    pub sum_ns: u64,
}

/// The WAL's counters.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records appended (buffered or written).
    records: AtomicU64,
    /// Bytes of those records, headers included.
    bytes: AtomicU64,
    /// Every fsync (and fdatasync) of the log's files and directory made while writing.
    pub(super) syncs: SyncLatency,
}

impl WalStats {
    pub(super) fn appended(&self, bytes: u64) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters at one moment.
    pub fn snapshot(&self) -> WalStatsSnapshot {
        WalStatsSnapshot {
            records_appended: self.records.load(Ordering::Relaxed),
            bytes_appended: self.bytes.load(Ordering::Relaxed),
            syncs: self.syncs.snapshot(),
        }
    }
}

/// The WAL's counters at one moment, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStatsSnapshot {
    /// Records appended.
    pub records_appended: u64,
    /// Their bytes, record headers included (file headers and preallocation not).
    pub bytes_appended: u64,
    /// How long the syncs of the log's files took.
    pub syncs: SyncLatencySnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_holds_it() {
        let latency = SyncLatency::default();
        latency.record(Duration::from_micros(10));
        latency.record(Duration::from_micros(50));
        latency.record(Duration::from_micros(51));
        latency.record(Duration::from_millis(3));
        latency.record(Duration::from_secs(60));
        let s = latency.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], 2, "10 and 50 µs: at most 50 µs");
        assert_eq!(s.buckets[1], 1, "51 µs: at most 100 µs");
        let three_ms = SYNC_BUCKETS_US.iter().position(|&b| b == 5_000).unwrap();
        assert_eq!(s.buckets[three_ms], 1, "3 ms: at most 5 ms");
        assert_eq!(s.buckets[SYNC_BUCKETS_US.len()], 1, "a minute: beyond every bound");
        assert_eq!(s.buckets.iter().sum::<u64>(), s.count);
        assert_eq!(s.sum_ns, 10_000 + 50_000 + 51_000 + 3_000_000 + 60_000_000_000);
    }

    #[test]
    fn a_timed_sync_is_counted_and_its_result_returned() {
        let latency = SyncLatency::default();
        let r: Result<(), &str> = latency.time(|| Err("failed"));
        assert_eq!(r, Err("failed"));
        assert_eq!(latency.snapshot().count, 1);
    }
}
