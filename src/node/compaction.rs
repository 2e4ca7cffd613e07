//! Compaction (issue 13): a snapshot of the node's live state, after which the log it
//! covers is deleted, so that disk use and start-up time follow the live data rather than
//! the history.
//!
//! The steps, and why a crash at any of them loses nothing:
//! 1. The cut. Under the sync lock (no remote operation or sync mark is being logged) and
//!    the write gate (no local write is between its log record and its entry into the
//!    outbox's queue), the log starts a new segment: every record before it is applied.
//!    Held for one segment switch (a sync, a file creation), never while the snapshot is
//!    serialised or synced.
//! 2. The sync engine's blocks are taken (its outbox, with every local write up to the
//!    cut drained into it), then the sync lock is released.
//! 3. The store's blocks are written while writers go on (see `store::checkpoint`: the
//!    snapshot is fuzzy and the records after the cut, replayed on top, make it exact).
//! 4. The snapshot is synced, renamed into place, its directory synced, then read back
//!    whole. Only a snapshot that reads back intact lets anything go.
//! 5. Older snapshots (and the temporary files of unfinished ones, left by a crash) are
//!    deleted, then the log segments the new snapshot covers.
//!
//! Before step 4 completes the previous snapshot and every segment are still there; after
//! it, the new snapshot plus the remaining segments hold everything. Steps 3 to 5 are the
//! store's (`Store::compact_through`, through the storage seam, so that the power-cut tests
//! cut the power at each of their calls: tests/compaction_powercut.rs); steps 1 and 2 need
//! the node's locks.

use std::path::Path;

use super::*;
use crate::store::snapshot::block;

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// The log sequence number through which the new snapshot holds every record.
    pub covers_through: u64,
    /// The new snapshot's size, in bytes.
    pub snapshot_bytes: u64,
    /// Older snapshots deleted.
    pub snapshots_removed: usize,
    /// Log segments deleted (the snapshot holds their effect).
    pub segments_removed: usize,
}

impl Client {
    /// Writes a snapshot of the node's state and deletes the log it covers (and older
    /// snapshots). Writers keep going meanwhile. A memory-only node has nothing to
    /// compact: `InvalidState`. One compaction runs at a time; a second call waits for the
    /// first.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.with_node(|n| compact(n, self.clock.wall_ms()))
    }
}

/// Steps 1 and 2 of a compaction, shared with the backup (`backup.rs`): the cut, and the
/// sync engine's blocks at the cut. Returns the cut and the blocks' payloads (of type
/// [`block::SYNC`]). The caller holds `n.compaction`: one snapshot at a time, and no
/// compaction deletes the log segments a backup copies.
pub(super) fn cut(n: &OpenNode) -> Result<(u64, Vec<Vec<u8>>)> {
    let mut sync = n.sync.lock();
    let cut = {
        let _no_write_half_done = n.write_gate.write();
        n.store.cut_log()?
    };
    OpenNode::drain(&n.local, &n.store, &mut sync);
    Ok((cut, sync.snapshot_blocks()))
}

/// The sync engine's payloads as snapshot blocks.
pub(super) fn sync_blocks(payloads: &[Vec<u8>]) -> Vec<(u8, &[u8])> {
    payloads.iter().map(|p| (block::SYNC, p.as_slice())).collect()
}

/// Starts a compaction on a thread of its own when automatic compaction is on and the log
/// since the last snapshot has outgrown the threshold (`compact_log_bytes`, or the larger
/// of the last snapshot and one segment), unless one is running or the log refuses writes.
/// The caller goes on at once: a compaction of a large store takes seconds.
pub(super) fn maybe_compact(options: &ClientOptions, node: &Arc<OpenNode>, now_wall_ms: u64) {
    use std::sync::atomic::Ordering;
    // A log that refuses writes cannot be cut: trying on every tick would only log the
    // same failure until the node is reopened (the health says why).
    if !options.auto_compact || node.store.write_refusal().is_some() {
        return;
    }
    let threshold = match options.compact_log_bytes {
        0 => node
            .last_snapshot_bytes
            .load(Ordering::Relaxed)
            .max(options.wal_segment_size),
        n => n,
    };
    if node.store.log_disk_bytes() <= threshold {
        return;
    }
    let mut compactor = node.compactor.lock();
    if compactor.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    if let Some(done) = compactor.take() {
        let _ = done.join();
    }
    let worker = node.clone();
    let id = options.node_id.clone();
    *compactor = std::thread::Builder::new()
        .name(format!("softadastra-compact-{id}"))
        .spawn(move || {
            if let Err(e) = compact(&worker, now_wall_ms) {
                log::error!("node {id}: automatic compaction failed: {e}; the log is kept");
            }
        })
        .map_err(|e| log::error!("node {}: cannot start a compaction: {e}", options.node_id))
        .ok();
}

pub(super) fn compact(n: &OpenNode, now_wall_ms: u64) -> Result<CompactionReport> {
    let Some(wal_path) = n.store.wal_path().map(Path::to_path_buf) else {
        return Err(Error::InvalidState(
            "a memory-only node has no log to compact".into(),
        ));
    };
    let _one_at_a_time = n.compaction.lock();
    let (cut, payloads) = cut(n)?;
    let done = n
        .store
        .compact_through(cut, now_wall_ms, &sync_blocks(&payloads))?;
    n.last_snapshot_bytes
        .store(done.snapshot.bytes, std::sync::atomic::Ordering::Relaxed);
    log::info!(
        "node: compacted {}: snapshot of {} bytes through record {cut}; {} older snapshots, \
         {} unfinished ones and {} log segments removed",
        wal_path.display(),
        done.snapshot.bytes,
        done.snapshots_removed,
        done.unfinished_removed,
        done.segments_removed
    );
    Ok(CompactionReport {
        covers_through: cut,
        snapshot_bytes: done.snapshot.bytes,
        snapshots_removed: done.snapshots_removed,
        segments_removed: done.segments_removed,
    })
}
