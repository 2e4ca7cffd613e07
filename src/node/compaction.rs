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
//! 5. Older snapshots are deleted, then the log segments the new snapshot covers.
//!
//! Before step 4 completes the previous snapshot and every segment are still there; after
//! it, the new snapshot plus the remaining segments hold everything.

use std::path::{Path, PathBuf};

use super::*;
use crate::store::checkpoint::{list_snapshots, snapshot_path};
use crate::store::snapshot::{self, SnapshotInfo, SnapshotWriter, block};

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

/// Steps 1 to 4 of a compaction, shared with the backup (`backup.rs`): the cut, then the
/// snapshot of the state at the cut written to `path_for(cut)` while writers go on,
/// synced, put in place and read back whole. Returns the cut, the snapshot's path and
/// what was written. The caller holds `n.compaction`: one snapshot at a time, and no
/// compaction deletes the log segments a backup copies.
pub(super) fn cut_and_snapshot(
    n: &OpenNode,
    now_wall_ms: u64,
    path_for: impl FnOnce(u64) -> PathBuf,
) -> Result<(u64, PathBuf, SnapshotInfo)> {
    let (cut, sync_blocks) = {
        let mut sync = n.sync.lock();
        let cut = {
            let _no_write_half_done = n.write_gate.write();
            n.store.cut_log()?
        };
        OpenNode::drain(&n.local, &mut sync);
        (cut, sync.snapshot_blocks())
    };
    let path = path_for(cut);
    let mut writer = SnapshotWriter::create(&path, cut, now_wall_ms).map_err(StoreError::from)?;
    n.store.write_snapshot_blocks(&mut writer)?;
    for payload in &sync_blocks {
        writer
            .block(block::SYNC, payload)
            .map_err(StoreError::from)?;
    }
    let info = writer.finish().map_err(StoreError::from)?;
    // Nothing relies on the new snapshot before it reads back whole.
    snapshot::read(&path, |_, _| Ok(())).map_err(StoreError::from)?;
    Ok((cut, path, info))
}

/// Starts a compaction on a thread of its own when automatic compaction is on and the log
/// since the last snapshot has outgrown the threshold (`compact_log_bytes`, or the larger
/// of the last snapshot and one segment), unless one is running. The caller goes on at
/// once: a compaction of a large store takes seconds.
pub(super) fn maybe_compact(options: &ClientOptions, node: &Arc<OpenNode>, now_wall_ms: u64) {
    use std::sync::atomic::Ordering;
    if !options.auto_compact {
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
    let (cut, _, info) = cut_and_snapshot(n, now_wall_ms, |cut| snapshot_path(&wal_path, cut))?;
    let mut report = CompactionReport {
        covers_through: cut,
        snapshot_bytes: info.bytes,
        ..CompactionReport::default()
    };
    for (older_cut, older) in list_snapshots(&wal_path)? {
        if older_cut < cut {
            std::fs::remove_file(&older).map_err(|e| {
                StoreError::from(snapshot::SnapshotError::Io {
                    op: "remove",
                    path: older.clone(),
                    cause: crate::io_error::describe_io(&e),
                })
            })?;
            report.snapshots_removed += 1;
        }
    }
    n.last_snapshot_bytes
        .store(info.bytes, std::sync::atomic::Ordering::Relaxed);
    report.segments_removed = n.store.remove_log_through(cut)?;
    log::info!(
        "node: compacted {}: snapshot of {} bytes through record {cut}; {} older snapshots \
         and {} log segments removed",
        wal_path.display(),
        info.bytes,
        report.snapshots_removed,
        report.segments_removed
    );
    Ok(report)
}
