//! `Client::backup`: a consistent copy of the running node in a directory of its own, made
//! while writers go on (the file side, verify and restore: `crate::backup`; the operator's
//! guide: docs/backup.md).
//!
//! The steps, under the compaction lock (one snapshot at a time, and no compaction deletes
//! a segment being copied):
//! 1. The compaction's cut (`compaction::cut`) and the snapshot at it
//!    (`Store::write_snapshot`), written into the backup directory: the state at the
//!    first cut, fuzzy (writers went on).
//! 2. A second cut: the log segments between the two cuts are then closed and on disk.
//!    Every entry the snapshot read had its record logged before this cut (a write is
//!    logged before it is applied), so the snapshot plus these records replayed make the
//!    state exact as of the second cut.
//! 3. Those segments are checked (every record's checksum) and copied, up to their last
//!    record; then the key and the trusted peers.
//! 4. The manifest, last. A backup cut short has none and is never taken for one; its
//!    files are removed.

use std::path::{Path, PathBuf};

use super::*;
use crate::backup::{
    self, BackupFile, BackupFileKind, BackupManifest, RestoreReport, RestoreTarget,
    SalvageReport, WalInspection,
};
use crate::wal::FileSnapshotDir;

/// What [`Client::backup`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// The node backed up.
    pub node_id: String,
    /// The log record through which the backup holds everything: every write acknowledged
    /// before the backup began, and some made during it.
    pub covers_through: u64,
    /// Files written, the manifest included.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl Client {
    /// Writes a consistent backup of the node into `dir` (created when missing, else it
    /// must be empty) while the node goes on: a snapshot, the log written meanwhile, the
    /// node's key and trusted peers, and a manifest (docs/backup.md). The backup holds
    /// every write acknowledged before the call. Nothing of the node is changed or deleted.
    /// A memory-only node has nothing to back up: `InvalidState`. A backup that fails
    /// leaves no manifest and removes what it wrote.
    pub fn backup(&self, dir: &Path) -> Result<BackupReport> {
        self.with_node(|n| {
            let now = self.clock.wall_ms();
            if !n.store.has_wal() {
                return Err(Error::InvalidState(
                    "a memory-only node has nothing to back up".into(),
                ));
            }
            backup::prepare_dir(dir)?;
            let mut written = Written {
                dir,
                names: Vec::new(),
                done: false,
            };
            let report = write_backup(n, &self.options, dir, now, &mut written)?;
            written.done = true;
            log::info!(
                "node {}: backed up to {}: {} files, {} bytes, every record through {}",
                self.options.node_id,
                dir.display(),
                report.files,
                report.bytes,
                report.covers_through
            );
            Ok(report)
        })
    }
}

/// The files a backup wrote so far: removed if it does not finish (the directory was
/// empty, so they are all its own).
struct Written<'a> {
    dir: &'a Path,
    names: Vec<String>,
    done: bool,
}

impl Drop for Written<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for name in &self.names {
            let _ = std::fs::remove_file(self.dir.join(name));
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.tmp")));
        }
    }
}

fn write_backup(
    n: &OpenNode,
    options: &ClientOptions,
    dir: &Path,
    now: u64,
    written: &mut Written<'_>,
) -> Result<BackupReport> {
    let _one_at_a_time = n.compaction.lock();
    written.names.push(backup::SNAPSHOT_FILE.into());
    let (snapshot_cut, payloads) = super::compaction::cut(n)?;
    let info = n.store.write_snapshot(
        Arc::new(FileSnapshotDir::new(dir)),
        backup::SNAPSHOT_FILE,
        snapshot_cut,
        now,
        &super::compaction::sync_blocks(&payloads),
    )?;
    let snapshot_crc = crc_of(&dir.join(backup::SNAPSHOT_FILE))?;
    let mut files = vec![BackupFile {
        kind: BackupFileKind::Snapshot,
        bytes: info.bytes,
        crc32: snapshot_crc,
    }];
    // The second cut needs neither the sync lock nor the write gate: the records up to it
    // are copied, whether applied yet or not. Every own operation in them was numbered
    // before it (under the log's append lock): the next own number read after it is
    // beyond them all.
    let covers_through = n.store.cut_log()?;
    let next_own_seq = n.store.next_seq();
    let mut last = snapshot_cut;
    for segment in n.store.log_segments() {
        let first = segment.first_sequence;
        if first <= snapshot_cut || first > covers_through {
            continue;
        }
        if segment.legacy || first != last + 1 {
            return Err(Error::Internal(format!(
                "backup: log segment {} does not follow record {last}",
                segment.path.display()
            )));
        }
        let bytes = std::fs::read(&segment.path).map_err(backup::io_error("read", &segment.path))?;
        let (seg_last, end) = backup::check_log_image(&segment.path, &bytes, first)?;
        let kind = BackupFileKind::Log { first };
        written.names.push(kind.file_name());
        backup::write_file(&dir.join(kind.file_name()), &bytes[..end])?;
        files.push(BackupFile {
            kind,
            bytes: end as u64,
            crc32: crc32fast::hash(&bytes[..end]),
        });
        last = seg_last;
    }
    if last != covers_through {
        return Err(Error::Internal(format!(
            "backup: the log segments copied end at record {last}, the cut is {covers_through}"
        )));
    }
    for (kind, from) in [
        (BackupFileKind::Key, options.effective_identity_path()),
        (BackupFileKind::Trust, options.effective_trust_path()),
    ] {
        let Some(from) = from else { continue };
        let bytes = match std::fs::read(&from) {
            Ok(bytes) => bytes,
            // No trusted peer yet: no file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(backup::io_error("read", &from)(e).into()),
        };
        written.names.push(kind.file_name());
        backup::write_file(&dir.join(kind.file_name()), &bytes)?;
        files.push(BackupFile {
            kind,
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
        });
    }
    let manifest = BackupManifest {
        node_id: options.node_id.clone(),
        fingerprint: n.identity.fingerprint().to_string(),
        library_version: crate::DEFAULT_VERSION.to_string(),
        created_at_ms: now,
        snapshot_cut,
        covers_through,
        next_own_seq,
        files,
    };
    let text = manifest.to_text();
    written.names.push(backup::MANIFEST_FILE.into());
    backup::write_file(&dir.join(backup::MANIFEST_FILE), text.as_bytes())?;
    Ok(BackupReport {
        dir: dir.to_path_buf(),
        node_id: options.node_id.clone(),
        covers_through,
        files: manifest.files.len() + 1,
        bytes: manifest.files.iter().map(|f| f.bytes).sum::<u64>() + text.len() as u64,
    })
}

/// The CRC32 of a file, read in pieces.
fn crc_of(path: &Path) -> Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(backup::io_error("open", path))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(backup::io_error("read", path))?;
        if n == 0 {
            return Ok(crc.finalize());
        }
        crc.update(&buf[..n]);
    }
}

/// Reads and checks only the manifest of the backup in `dir` (what it is of, what it
/// lists), not the files: [`verify_backup`] checks those.
pub fn read_backup_manifest(dir: &Path) -> Result<BackupManifest> {
    Ok(backup::read_manifest(dir)?)
}

/// Checks the backup in `dir` whole (docs/backup.md): the manifest, every file's size and
/// CRC32, the snapshot's and the log's own checksums, the key's fingerprint. Returns its
/// manifest.
pub fn verify_backup(dir: &Path) -> Result<BackupManifest> {
    Ok(backup::verify(dir)?)
}

/// Restores the backup in `dir` as the node `options` describe (its node id, WAL path,
/// key and trust paths), which must not be running. The node's files must not be there
/// already, unless `force`: then exactly its log segments, snapshots, key, trusted peers
/// and an unfinished restore's marker are removed, and its WAL file emptied; nothing else
/// in the directory is touched. The backup is verified first. The restored node starts a
/// new incarnation: its own operations are numbered past any number the node used after
/// the backup (docs/backup.md).
pub fn restore_backup(dir: &Path, options: &ClientOptions, force: bool) -> Result<RestoreReport> {
    crate::id::validate_node_id(&options.node_id)?;
    if !options.enable_wal {
        return Err(Error::InvalidOptions {
            field: "enable_wal",
            reason: "a restore needs a persistent node (a WAL path)".into(),
        });
    }
    let target = RestoreTarget {
        node_id: options.node_id.clone(),
        wal_path: PathBuf::from(&options.wal_path),
        key_path: options.effective_identity_path(),
        trust_path: options.effective_trust_path(),
    };
    let now = crate::clock::Clock::wall_ms(&crate::clock::SystemClock);
    Ok(backup::restore(dir, &target, force, now)?)
}

/// Lists the snapshots and log files of the WAL at `wal_path` (with each record when
/// `list_records`), and every damaged place: file, byte offset and what. Reads only, takes
/// no lock, never changes a file (docs/wal-format.md, "Inspecting and salvaging").
pub fn inspect_wal(wal_path: &Path, list_records: bool) -> Result<WalInspection> {
    Ok(backup::inspect(wal_path, list_records)?)
}

/// Copies the good part of the WAL at `from` (its newest intact snapshot, and the unbroken
/// run of intact records after it) with its key and trusted peers into a new node at the
/// WAL path `to`, whose directory must be new or empty unless `force` (then the node's
/// files there are replaced). The source is only read; a node running on it is refused.
/// The salvaged node starts a new incarnation, as a restored one does.
pub fn salvage_wal(from: &Path, to: &Path, force: bool) -> Result<SalvageReport> {
    let now = crate::clock::Clock::wall_ms(&crate::clock::SystemClock);
    Ok(backup::salvage(from, to, force, now)?)
}
