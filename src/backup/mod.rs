//! Backups (issue 13): a consistent copy of a running node's state in a directory of its
//! own (`Client::backup`, in `node/backup.rs`), checked by [`verify`] and put back into a
//! node's data directory by [`restore`]. docs/backup.md is the operator's guide.
//!
//! A backup directory holds (names in `manifest.rs`):
//! - `snapshot`: a snapshot (docs/snapshot-format.md) taken at a cut of the node's log
//!   while writers went on, so "fuzzy": each entry as it was at some moment after the cut;
//! - `log.<first record, 20 digits>`: the node's log segments from just after that cut
//!   up to a second cut, taken once the snapshot was written. Replayed on top of the
//!   snapshot they make the state exact as of the second cut: every write acknowledged
//!   before the backup began is in it, every write batch whole or not at all;
//! - `identity.key` and `trust`: the node's key and trusted peers, so that a restored node
//!   is the same node to its peers (mode 0600: the backup is as secret as the key);
//! - `MANIFEST`, written last: node id, fingerprint, versions, the cuts, the next own
//!   sequence number, and each file's size and CRC32.
//!
//! Restoring must never let the node reuse an (origin, sequence number) pair: after the
//! backup, the node went on writing, its peers saw those operations, and a restored node
//! numbering from the backup would write new operations under numbers the peers already
//! hold, which they would drop as duplicates. So a restore starts a new *incarnation*: the
//! restored snapshot's next own sequence number is raised to [`incarnation_floor`], far
//! beyond any number an earlier incarnation reached. The numbers skipped are not lost:
//! operations the earlier incarnation wrote with them come back from the peers that have
//! them (the store takes an own operation from outside only below its next own number,
//! and only one it has never seen: `store/remote.rs`).

mod manifest;
mod repair;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use manifest::{
    BackupFile, BackupFileKind, BackupManifest, KEY_FILE, MANIFEST_FILE, SNAPSHOT_FILE, TRUST_FILE,
};
pub use repair::{
    Damage, InspectedFile, InspectedRecord, InspectedSnapshot, SalvageReport, WalInspection,
    inspect, salvage,
};

use crate::io_error::describe_io;
use crate::store::checkpoint::{
    clock_next_seq, clock_with_next_seq_at_least, restore_marker_path, snapshot_path,
};
use crate::store::snapshot::{self, SnapshotError, SnapshotWriter, block};
use crate::wal::format;
use crate::wal::{WalError, segment_path};

/// Bytes of a key or trust file read at most: both are a few hundred bytes; a larger one
/// is not the node's.
const MAX_SMALL_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Numbers a restore skips at least (2^31): the original node would have to write more
/// operations than this between the backup and the restore for a number to be reused,
/// even on a host whose clock is wrong. Well below the store's check of own numbers that
/// jump too far in its log (2^32).
pub const INCARNATION_GAP: u64 = 1 << 31;

/// Numbers per millisecond of wall-clock time in the floor of a new incarnation (2^20,
/// about a million): an incarnation started at time T numbers from at least T * 2^20, so
/// one started later is beyond every number of one started earlier unless that one wrote
/// more than a million operations per millisecond of its life.
pub const NUMBERS_PER_MS: u64 = 1 << 20;

/// Clears the node files `files` of a data directory being replaced (a restore or a
/// salvage with `--force`), all but the marker at `marker` and its temporary file (left by
/// an earlier run cut short while it wrote its marker, it became the marker just now: it
/// is written through it). The WAL file at `wal` holds the lock: emptied, never unlinked
/// (another process could then lock a new file of the same name). The directory is synced
/// when anything changed. Returns the files removed or emptied.
pub(crate) fn clear_node_files(
    files: &[PathBuf],
    wal: &Path,
    marker: &Path,
) -> Result<Vec<PathBuf>, BackupError> {
    let mut marker_tmp = marker.as_os_str().to_owned();
    marker_tmp.push(".tmp");
    let marker_tmp = PathBuf::from(marker_tmp);
    let mut removed = Vec::new();
    for path in files.iter().filter(|p| **p != marker && **p != marker_tmp) {
        if path == wal {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_error("open", path))?;
            file.set_len(0).map_err(io_error("empty", path))?;
            file.sync_all().map_err(io_error("sync", path))?;
        } else {
            std::fs::remove_file(path).map_err(io_error("remove", path))?;
        }
        removed.push(path.clone());
    }
    if !removed.is_empty() {
        crate::io_error::sync_parent_dir(wal).map_err(io_error("sync the directory of", wal))?;
    }
    Ok(removed)
}

/// Errors of backups: every message names the file or directory at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file operation failed: permission denied, disk full, a missing directory.
    #[error("backup: cannot {op} {path}: {cause}")]
    Io {
        /// The operation, in words.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        cause: String,
    },

    /// The directory to write into already holds files: a backup goes into a new or
    /// empty directory; a restore does not replace a node's files unless forced.
    #[error("{dir} is not empty ({found}): {hint}")]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
        /// What is there (a few names).
        found: String,
        /// What to do.
        hint: &'static str,
    },

    /// The backup directory has no manifest: the backup did not finish (or this is not a
    /// backup).
    #[error(
        "{dir} holds no finished backup: {MANIFEST_FILE} is missing (a backup writes it \
         last)"
    )]
    Unfinished {
        /// The directory.
        dir: PathBuf,
    },

    /// A file the manifest lists is not there.
    #[error("backup file {path} is missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },

    /// A file of the backup is not what the manifest says, or not what it should be.
    #[error("backup file {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The backup's snapshot cannot be read or is damaged.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),

    /// The target's WAL cannot be locked or its directory is unusable.
    #[error(transparent)]
    Wal(#[from] WalError),

    /// The backup is of another node than the one to restore.
    #[error(
        "backup {dir} is of node {backup}, not of {configured}: restore it as node {backup} \
         (a node id is bound to its key and to its numbers)"
    )]
    OtherNode {
        /// The backup directory.
        dir: PathBuf,
        /// The node id in its manifest.
        backup: String,
        /// The node id to restore.
        configured: String,
    },

    /// A node runs on the WAL to restore into.
    #[error("cannot restore into {wal}: a node is running on it; stop it first")]
    NodeRunning {
        /// The WAL path.
        wal: PathBuf,
    },

    /// A node runs on the WAL to salvage: stop it first (a running node is backed up
    /// with `backup`, not salvaged).
    #[error("cannot salvage {wal}: a node is running on it; stop it first")]
    SourceInUse {
        /// The WAL path.
        wal: PathBuf,
    },
}

impl BackupError {
    /// The file or directory the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            BackupError::Io { path, .. }
            | BackupError::Missing { path }
            | BackupError::Damaged { path, .. } => Some(path),
            BackupError::NotEmpty { dir, .. }
            | BackupError::Unfinished { dir }
            | BackupError::OtherNode { dir, .. } => Some(dir),
            BackupError::NodeRunning { wal } | BackupError::SourceInUse { wal } => Some(wal),
            BackupError::Snapshot(e) => Some(e.path()),
            BackupError::Wal(e) => e.path(),
        }
    }
}

pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |e| BackupError::Io {
        op,
        path,
        cause: describe_io(&e),
    }
}

/// The first own sequence number of a node restored at wall-clock time `now_ms` from a
/// backup whose next own number was `next_own_seq`: past every number the node's earlier
/// incarnations can have used (module docs, docs/backup.md).
///
/// - `next_own_seq + INCARNATION_GAP`: the incarnation the backup was taken from wrote
///   fewer than 2^31 operations after it (whatever the clocks say);
/// - `now_ms * NUMBERS_PER_MS`: every incarnation started (restored) earlier, from this
///   backup or another, stayed below its start time's floor plus a million operations per
///   millisecond since, so below this one's, as long as this host's clock is not behind
///   theirs. This covers restoring the same backup twice.
pub fn incarnation_floor(next_own_seq: u64, now_ms: u64) -> u64 {
    next_own_seq
        .saturating_add(INCARNATION_GAP)
        .max(now_ms.saturating_mul(NUMBERS_PER_MS))
}

/// Prepares `dir` for a backup: creates it (mode 0700) when missing, else checks it is
/// an empty directory.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(entry) => {
                let first = entry
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                Err(BackupError::NotEmpty {
                    dir: dir.to_path_buf(),
                    found: format!("{first} is there"),
                    hint: "a backup goes into a new or empty directory",
                })
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error("create the directory", dir))?;
            crate::io_error::sync_parent_dir(dir).map_err(io_error("sync the directory of", dir))
        }
        Err(e) => Err(io_error("read the directory", dir)(e)),
    }
}

/// Writes `bytes` to `path` durably, private to its owner (temporary file, fsync, rename,
/// directory fsync).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    crate::identity::write_private(path, bytes).map_err(io_error("write", path))
}

/// Reads a file of at most `limit` bytes (a larger one is damage, refused before reading).
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BackupError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_error("open", path)(e)),
    };
    let len = file
        .metadata()
        .map_err(io_error("read the size of", path))?
        .len();
    if len > limit {
        return Err(BackupError::Damaged {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is more than the limit of {limit}"),
        });
    }
    // A file larger than memory (past 4 GiB on a 32-bit device) is refused by name, not
    // truncated to a wrong capacity.
    let capacity = usize::try_from(len).map_err(|_| BackupError::Damaged {
        path: path.to_path_buf(),
        reason: format!("{len} bytes do not fit in this process's memory"),
    })?;
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    Ok(bytes)
}

/// Checks a log segment's image: the segment header for record `first`, clean records
/// numbered from `first` on, nothing damaged (a backup's copy has no torn tail). Returns
/// its last record's number and where its records end (a copy needs no more).
pub(crate) fn check_log_image(path: &Path, bytes: &[u8], first: u64) -> Result<(u64, usize), BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    match format::check_header(bytes, &format::encode_segment_header(first)) {
        Ok(format::FileHeader::Segment { first_sequence }) if first_sequence == first => {}
        Ok(_) => return Err(damaged(format!("not the log segment from record {first}"))),
        Err(problem) => return Err(damaged(problem.describe())),
    }
    let summary = format::scan_from(bytes, Some(first), |_| Ok::<(), ()>(())).map_err(|e| {
        damaged(match e {
            format::ScanError::Corrupt(c) => format!("at byte offset {}: {}", c.offset, c.reason),
            format::ScanError::Callback(()) => "unreadable".to_string(),
        })
    })?;
    match summary.end {
        format::LogEnd::Clean { end } if summary.records > 0 => {
            Ok((summary.last_sequence, end as usize))
        }
        format::LogEnd::Clean { .. } => Err(damaged("it holds no record".into())),
        format::LogEnd::TornTail { end, .. } => Err(damaged(format!(
            "a damaged record at byte offset {end} (a copy is never torn)"
        ))),
    }
}

/// Checks one file against its manifest line: present, of the size and CRC32 listed.
fn check_listed(dir: &Path, f: &BackupFile) -> Result<PathBuf, BackupError> {
    let path = dir.join(f.kind.file_name());
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::Missing { path });
        }
        Err(e) => return Err(io_error("open", &path)(e)),
    };
    let len = file
        .metadata()
        .map_err(io_error("read the size of", &path))?
        .len();
    if len != f.bytes {
        return Err(BackupError::Damaged {
            path,
            reason: format!("{len} bytes where the manifest lists {}", f.bytes),
        });
    }
    let mut crc = crc32fast::Hasher::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file.take(f.bytes));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(io_error("read", &path))?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
    }
    let crc = crc.finalize();
    if crc != f.crc32 {
        return Err(BackupError::Damaged {
            path,
            reason: format!(
                "its CRC32 is {crc:08x} where the manifest lists {:08x}",
                f.crc32
            ),
        });
    }
    Ok(path)
}

/// Reads and checks a backup's manifest (bounded).
pub fn read_manifest(dir: &Path) -> Result<BackupManifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match read_bounded(&path, manifest::MAX_MANIFEST_BYTES) {
        Err(BackupError::Missing { .. }) if dir.is_dir() => {
            return Err(BackupError::Unfinished {
                dir: dir.to_path_buf(),
            });
        }
        Err(BackupError::Missing { .. }) => {
            return Err(BackupError::Io {
                op: "read the backup directory",
                path: dir.to_path_buf(),
                cause: "no such directory".into(),
            });
        }
        other => other?,
    };
    let text = String::from_utf8(bytes).map_err(|_| BackupError::Damaged {
        path: path.clone(),
        reason: "not text (UTF-8)".into(),
    })?;
    BackupManifest::parse(&path, &text)
}

/// Checks a backup whole: the manifest, then every file it lists (size, CRC32), the
/// snapshot (every checksum, its cut, its block types), the log files (every record's
/// checksum, numbered on from the snapshot's cut to `covers_through` without a hole), the
/// key (its fingerprint and node id are the manifest's) and the trusted peers (they
/// parse). Returns the manifest.
pub fn verify(dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest = read_manifest(dir)?;
    for f in &manifest.files {
        check_listed(dir, f)?;
    }
    let snapshot = dir.join(SNAPSHOT_FILE);
    let info = snapshot::read_file(&snapshot, |block_type, payload| match block_type {
        block::CLOCK => clock_next_seq(payload).map(drop),
        block::ENTRIES | block::VECTOR | block::SYNC => Ok(()),
        other => Err(format!("unknown block type {other}")),
    })?;
    if info.covers_through != manifest.snapshot_cut {
        return Err(BackupError::Damaged {
            path: snapshot,
            reason: format!(
                "it holds the records through {}, the manifest says {}",
                info.covers_through, manifest.snapshot_cut
            ),
        });
    }
    let mut last = manifest.snapshot_cut;
    for (first, f) in manifest.logs() {
        let path = dir.join(f.kind.file_name());
        if first != last + 1 {
            return Err(BackupError::Damaged {
                path,
                reason: format!(
                    "it starts at record {first}, but the backup before it ends at {last}"
                ),
            });
        }
        let bytes = read_bounded(&path, f.bytes)?;
        last = check_log_image(&path, &bytes, first)?.0;
    }
    if last != manifest.covers_through {
        return Err(BackupError::Damaged {
            path: dir.join(MANIFEST_FILE),
            reason: format!(
                "its files hold the records through {last}, it says {}",
                manifest.covers_through
            ),
        });
    }
    if let Some(f) = manifest.file(BackupFileKind::Key) {
        let path = dir.join(KEY_FILE);
        let text = small_text(&path, f.bytes)?;
        let (bound, fingerprint) = crate::identity::Identity::inspect(&path, &text).map_err(|e| {
            BackupError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        if fingerprint != manifest.fingerprint || bound.is_some_and(|b| b != manifest.node_id) {
            return Err(BackupError::Damaged {
                path,
                reason: format!(
                    "the key is not node {}'s of fingerprint {}",
                    manifest.node_id, manifest.fingerprint
                ),
            });
        }
    }
    if let Some(f) = manifest.file(BackupFileKind::Trust) {
        let path = dir.join(TRUST_FILE);
        let text = small_text(&path, f.bytes)?;
        crate::transport::trust::TrustedPeers::from_text(&text, &path.display().to_string())
            .map_err(|e| BackupError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(manifest)
}

/// A key or trust file's text.
fn small_text(path: &Path, listed: u64) -> Result<String, BackupError> {
    let bytes = read_bounded(path, listed.min(MAX_SMALL_FILE_BYTES))?;
    String::from_utf8(bytes).map_err(|_| BackupError::Damaged {
        path: path.to_path_buf(),
        reason: "not text (UTF-8)".into(),
    })
}

/// Where a restore puts a node's files.
#[derive(Clone, Debug)]
pub struct RestoreTarget {
    /// The node id to restore (must be the backup's).
    pub node_id: String,
    /// The WAL path the node will open.
    pub wal_path: PathBuf,
    /// Where the node keeps its key (`None`: the backup's key is not put back).
    pub key_path: Option<PathBuf>,
    /// Where the node keeps its trusted peers (`None`: not put back).
    pub trust_path: Option<PathBuf>,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The node restored.
    pub node_id: String,
    /// The log record through which the restored state holds everything.
    pub covers_through: u64,
    /// The number the restored node gives its next own operation: the start of its new
    /// incarnation.
    pub next_own_seq: u64,
    /// Files of the node that were there and were removed (with `force`).
    pub removed: Vec<PathBuf>,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Whether the backup held the node's key (else the node makes a new one, which its
    /// peers must trust again).
    pub key_restored: bool,
}

/// The files of the node at `target` that are there: the log's segments, its snapshots
/// (finished or not), an unfinished restore's marker, the WAL file when it holds a log
/// (else it is only the lock), the key and the trusted peers. Nothing else in the
/// directory is the node's, and nothing else is ever removed.
fn node_files(target: &RestoreTarget) -> Result<Vec<PathBuf>, BackupError> {
    let wal = &target.wal_path;
    let dir = match wal.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = wal
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError::Io {
            op: "use",
            path: wal.clone(),
            cause: "the WAL path has no file name in UTF-8".into(),
        })?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_error("read the directory", &dir))? {
        let entry = entry.map_err(io_error("read the directory", &dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(base)) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let snapshot = rest
            .strip_prefix("snap.")
            .map(|s| s.strip_suffix(".tmp").unwrap_or(s));
        let marker = matches!(rest, "restoring" | "restoring.tmp");
        if digits(rest) || snapshot.is_some_and(digits) || marker {
            found.push(entry.path());
        }
    }
    if std::fs::metadata(wal).is_ok_and(|m| m.len() > 0) {
        found.push(wal.clone());
    }
    for path in [&target.key_path, &target.trust_path].into_iter().flatten() {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        for p in [path.clone(), PathBuf::from(tmp)] {
            if p.exists() && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A few names, for a message.
fn some_names(paths: &[PathBuf]) -> String {
    let mut names: Vec<String> = paths
        .iter()
        .take(4)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > 4 {
        names.push(format!("and {} more", paths.len() - 4));
    }
    names.join(", ")
}

/// Restores the backup in `dir` for the node `target` describes, at wall-clock time
/// `now_ms`. The backup is verified whole first. The node must not run (its WAL's lock is
/// held throughout). Its files must not be there, unless `force`: then exactly the files
/// [`node_files`] lists are removed (the WAL file, which holds the lock, is emptied).
///
/// Crash safety: a marker (`<wal>.restoring`) is written durably before anything else
/// and removed last; a store does not open while it is there, so a restore cut short is
/// never taken for a node (it would number from 1 again). Running the restore again with
/// `force` finishes it.
pub fn restore(
    dir: &Path,
    target: &RestoreTarget,
    force: bool,
    now_ms: u64,
) -> Result<RestoreReport, BackupError> {
    let manifest = verify(dir)?;
    if manifest.node_id != target.node_id {
        return Err(BackupError::OtherNode {
            dir: dir.to_path_buf(),
            backup: manifest.node_id,
            configured: target.node_id.clone(),
        });
    }
    let wal = &target.wal_path;
    // Held until the end: no node opens the WAL meanwhile, and none runs on it now.
    let _lock = match crate::wal::FileDir::open(wal) {
        Ok(lock) => lock,
        Err(WalError::Locked { .. }) => return Err(BackupError::NodeRunning { wal: wal.clone() }),
        Err(e) => return Err(e.into()),
    };
    let existing = node_files(target)?;
    if !existing.is_empty() && !force {
        return Err(BackupError::NotEmpty {
            dir: wal.parent().map(Path::to_path_buf).unwrap_or_default(),
            found: format!("the node's files are there: {}", some_names(&existing)),
            hint: "restore with force (--force) to replace them",
        });
    }
    let marker = restore_marker_path(wal);
    write_file(
        &marker,
        format!("restoring {} from {} at {now_ms}\n", manifest.node_id, dir.display()).as_bytes(),
    )?;
    let mut report = RestoreReport {
        node_id: manifest.node_id.clone(),
        covers_through: manifest.covers_through,
        ..RestoreReport::default()
    };
    report.removed = clear_node_files(&existing, wal, &marker)?;
    for (first, f) in manifest.logs() {
        let bytes = read_copy(dir, f)?;
        let to = segment_path(wal, first);
        write_file(&to, &bytes)?;
        report.written.push(to);
    }
    for (kind, to) in [
        (BackupFileKind::Key, &target.key_path),
        (BackupFileKind::Trust, &target.trust_path),
    ] {
        if let (Some(f), Some(to)) = (manifest.file(kind), to) {
            let bytes = read_copy(dir, f)?;
            write_file(to, &bytes)?;
            report.written.push(to.clone());
            report.key_restored |= kind == BackupFileKind::Key;
        }
    }
    let (path, next_own_seq) = write_restored_snapshot(dir, &manifest, wal, now_ms)?;
    report.written.push(path);
    report.next_own_seq = next_own_seq;
    std::fs::remove_file(&marker).map_err(io_error("remove", &marker))?;
    crate::io_error::sync_parent_dir(&marker).map_err(io_error("sync the directory of", &marker))?;
    log::info!(
        "restored node {} from {} into {}: every record through {}, own numbers from {} on",
        manifest.node_id,
        dir.display(),
        wal.display(),
        manifest.covers_through,
        next_own_seq
    );
    Ok(report)
}

/// A file of the backup read for copying, checked against its manifest line again (it
/// was verified, but it is read anew).
fn read_copy(dir: &Path, f: &BackupFile) -> Result<Vec<u8>, BackupError> {
    let path = dir.join(f.kind.file_name());
    let bytes = read_bounded(&path, f.bytes)?;
    if bytes.len() as u64 != f.bytes || crc32fast::hash(&bytes) != f.crc32 {
        return Err(BackupError::Damaged {
            path,
            reason: "it changed while the restore read it".into(),
        });
    }
    Ok(bytes)
}

/// Writes the backup's snapshot as the node's (`<wal>.snap.<cut>`) with its next own
/// sequence number raised to a new incarnation's floor, reads it back, and returns its
/// path and that number.
fn write_restored_snapshot(
    dir: &Path,
    manifest: &BackupManifest,
    wal: &Path,
    now_ms: u64,
) -> Result<(PathBuf, u64), BackupError> {
    let from = dir.join(SNAPSHOT_FILE);
    let to = snapshot_path(wal, manifest.snapshot_cut);
    let mut writer = SnapshotWriter::create_file(&to, manifest.snapshot_cut, now_ms)?;
    let mut write_error = None;
    let mut next_own_seq = 0;
    snapshot::read_file(&from, |block_type, payload| {
        let raised;
        let payload = if block_type == block::CLOCK {
            let floor = incarnation_floor(manifest.next_own_seq.max(clock_next_seq(payload)?), now_ms);
            raised = clock_with_next_seq_at_least(payload, floor)?;
            next_own_seq = floor;
            &raised[..]
        } else {
            payload
        };
        writer.block(block_type, payload).map_err(|e| {
            let text = e.to_string();
            write_error = Some(e);
            text
        })
    })
    .map_err(|e| match write_error.take() {
        Some(write) => BackupError::Snapshot(write),
        None => BackupError::Snapshot(e),
    })?;
    if next_own_seq == 0 {
        return Err(BackupError::Damaged {
            path: from,
            reason: "it has no clock block".into(),
        });
    }
    writer.finish()?;
    snapshot::read_file(&to, |_, _| Ok(()))?;
    Ok((to, next_own_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_incarnation_starts_past_the_gap_and_past_earlier_restores() {
        // A young node, restored now: the clock term dominates.
        let now = 1_767_225_600_000u64;
        assert_eq!(incarnation_floor(100, now), now * NUMBERS_PER_MS);
        // A wrong clock (1970) still leaves the gap.
        assert_eq!(incarnation_floor(100, 5), 100 + INCARNATION_GAP);
        // The same backup restored again later starts beyond the first restore's floor
        // plus a million numbers per millisecond between them.
        let first = incarnation_floor(100, now);
        let second = incarnation_floor(100, now + 1);
        assert!(second >= first + NUMBERS_PER_MS);
        // Far in the future the numbers saturate rather than wrap.
        assert_eq!(incarnation_floor(u64::MAX - 1, u64::MAX), u64::MAX);
    }
}
