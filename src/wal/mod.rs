//! Write-ahead log: a sequence of preallocated segment files of CRC-checked records,
//! replayed on open.
//!
//! Durability model: `append(.., durable = true)` returns only after the record is on disk
//! (fdatasync). Concurrent durable appends share one write and one sync (group commit): the
//! first waiting writer writes everything buffered so far and syncs it for all of them.
//! Non-durable appends are buffered in memory and handed to the OS when the buffer fills,
//! on [`Wal::flush`], on a durable append, on close and on drop.
//!
//! Segments: records are appended to the *active* segment, the newest file. A record that
//! would take the active segment past [`WalOptions::segment_size`] starts a new segment
//! instead (a record larger than that gets a segment of its own), so records never span
//! files. Before the first record of a new segment is written, the previous segment is
//! synced and the new one is created durably (file and directory fsynced): a crash can then
//! only lose the newest records, never leave a hole between segments. Old segments are
//! read-only; [`Wal::remove_segments_through`] deletes those a snapshot covers, oldest
//! first. The file at the WAL path itself holds the lock, and a log written before segments
//! existed (one file, format version 1), which is carried forward as the first segment.
//! docs/wal-format.md describes the files.
//!
//! Within a segment, synced writes grow the file in zero-filled steps (up to the segment
//! size), fsynced once, so that an ordinary sync has no file size to commit; buffered
//! (non-durable) writes just extend the file. A failed write or sync poisons the WAL: that
//! append and every later one fail until the WAL is opened again, because after a failed
//! fsync the kernel may have dropped the dirty pages and a retry could report success for
//! data that is gone.

#[cfg(any(test, feature = "internals"))]
mod doubles;
mod faults;
pub mod format;
#[cfg(test)]
mod offsets_past_4_gib;
#[cfg(any(test, feature = "internals"))]
mod sparse;
pub mod stats;
pub mod storage;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::io_error::describe_io;

#[cfg(any(test, feature = "internals"))]
pub use doubles::{DirImage, MemDir, PowerCut};
pub use faults::{Fault, FaultPlan, FaultyDir};
#[cfg(any(test, feature = "internals"))]
pub use sparse::SparseDir;
use format::{FileHeader, HeaderProblem, ScanError};
pub use format::{LogEnd, RecordType, ScannedRecord};
pub use stats::{SYNC_BUCKETS_US, SyncLatencySnapshot, WalStatsSnapshot};
pub use storage::{
    FileDir, FileSnapshotDir, SegmentDir, SnapshotDir, WalFile, WalStorage, segment_path,
    wal_file_path,
};

/// Default [`WalOptions::segment_size`]: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Smallest [`WalOptions::segment_size`]: one page. Any size works (a record too large for
/// a segment gets one of its own), but tinier ones would only make a file per record.
pub const MIN_SEGMENT_SIZE: u64 = 4096;
/// Largest [`WalOptions::segment_size`]: 1 TiB, far beyond any use, so that offset
/// arithmetic within a segment has room to spare.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 40;

/// Smallest step by which a segment grows; also the size of a new segment (or the segment
/// size, when smaller).
const MIN_GROWTH: u64 = 1024 * 1024;
/// Largest step by which a segment grows.
const MAX_GROWTH: u64 = 64 * 1024 * 1024;
/// Buffered non-durable bytes that trigger a write to the OS.
const BUFFER_LIMIT: usize = 256 * 1024;
const HEADER_LEN: u64 = format::FILE_HEADER_LEN as u64;

/// Errors of the WAL layer. Every message names the WAL file, or the segment file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The WAL's directory does not exist (opening the WAL does not create it).
    #[error("cannot open WAL {path}: directory {dir} does not exist")]
    MissingDirectory {
        /// The WAL file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },

    /// What should be the WAL's directory is a file.
    #[error("cannot open WAL {path}: {dir} is not a directory")]
    NotADirectory {
        /// The WAL file.
        path: PathBuf,
        /// The path that should be its directory.
        dir: PathBuf,
    },

    /// The WAL path names a directory.
    #[error("cannot open WAL {path}: it is a directory")]
    IsADirectory {
        /// The WAL path.
        path: PathBuf,
    },

    /// Another process holds the WAL's lock (a running node, say).
    #[error("WAL {path} is in use by another process")]
    Locked {
        /// The WAL file.
        path: PathBuf,
    },

    /// A file operation failed: permission denied, disk full, an I/O error.
    #[error("cannot {op} WAL {path}: {}", describe_io(source))]
    Io {
        /// The operation, in words ("open", "write to", "sync", ...).
        op: &'static str,
        /// The WAL file or segment.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The file does not start with a WAL header this library reads (another file, or a
    /// newer format).
    #[error("WAL {path} is not a Softadastra WAL: {problem}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        problem: String,
    },

    /// A damaged record before the end of the log (a torn last record is cut off at open
    /// instead): the log is not opened rather than some of it silently lost.
    #[error("WAL {path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// The WAL file or segment.
        path: PathBuf,
        /// Where the damaged record starts (0: the file as a whole, its header or name).
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// Records are missing between two segments, or before the first one where no
    /// snapshot covers them: a segment file was deleted or lost. The log is not opened
    /// rather than the hole skipped.
    #[error("WAL {path} is missing records {first} to {last}: {reason}")]
    MissingRecords {
        /// The WAL file.
        path: PathBuf,
        /// The first missing sequence number.
        first: u64,
        /// The last missing sequence number.
        last: u64,
        /// Where the hole is.
        reason: String,
    },

    /// A [`WalOptions`] value out of range.
    #[error("cannot open WAL {path}: {reason}")]
    InvalidOptions {
        /// The WAL file.
        path: PathBuf,
        /// Which option, and its limits.
        reason: String,
    },

    /// An earlier write or sync failed: nothing more is written until the WAL is opened
    /// again, since the kernel may have dropped the data a retry would report as synced.
    #[error(
        "WAL {path} refuses writes after an earlier write failure ({cause}); reopen to recover"
    )]
    Poisoned {
        /// The WAL file.
        path: PathBuf,
        /// The failure that poisoned it.
        cause: String,
    },

    /// The WAL was closed.
    #[error("WAL {path} is closed")]
    Closed {
        /// The WAL file.
        path: PathBuf,
    },

    /// Every sequence number has been used: no record can be numbered any more.
    #[error("WAL {path} has used every sequence number")]
    SequenceExhausted {
        /// The WAL file.
        path: PathBuf,
    },

    /// A record larger than a WAL record may be (a write batch too large, say).
    #[error("WAL record of {len} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's payload length, in bytes.
        len: usize,
        /// The largest payload a record takes.
        limit: usize,
    },
}

impl WalError {
    /// The WAL file (or segment) the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            WalError::MissingDirectory { path, .. }
            | WalError::NotADirectory { path, .. }
            | WalError::IsADirectory { path }
            | WalError::Locked { path }
            | WalError::Io { path, .. }
            | WalError::BadHeader { path, .. }
            | WalError::Corrupt { path, .. }
            | WalError::MissingRecords { path, .. }
            | WalError::InvalidOptions { path, .. }
            | WalError::Poisoned { path, .. }
            | WalError::Closed { path }
            | WalError::SequenceExhausted { path } => Some(path),
            WalError::RecordTooLarge { .. } => None,
        }
    }
}

/// How a WAL is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes a segment file holds before a new one is started (header included), from
    /// [`MIN_SEGMENT_SIZE`] to [`MAX_SEGMENT_SIZE`]. A record that does not fit in an
    /// empty segment gets a segment of its own, as large as it needs. Changing it applies
    /// to segments started afterwards.
    pub segment_size: u64,
    /// Records numbered up to this are covered by a snapshot: they are not passed to the
    /// replay callback, segments holding nothing else are not read beyond their header, and
    /// the log may start right after it. 0: no snapshot.
    pub skip_through: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            skip_through: 0,
        }
    }
}

/// One file of the log, for status and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// The sequence number of its first record (or of the record it will take first).
    pub first_sequence: u64,
    /// The sequence number of its last record handed to the OS; `None` when it has none.
    pub last_sequence: Option<u64>,
    /// Its size on disk, preallocation included.
    pub bytes: u64,
    /// The single-file log of format version 1 at the WAL path, carried forward as the
    /// first segment.
    pub legacy: bool,
}

/// What opening the WAL found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records replayed (passed to the callback).
    pub records: u64,
    /// Valid records read but not replayed: [`WalOptions::skip_through`] covers them.
    pub skipped: u64,
    /// The sequence number of the last record in the log (0 for a log that never had one);
    /// the next record gets the number after it, or after `skip_through` when that is
    /// greater.
    pub last_sequence: u64,
    /// Bytes of a torn tail that were cut off (0 when the log ended cleanly).
    pub torn_bytes: u64,
    /// No file of the WAL existed and the log was created.
    pub created: bool,
    /// Files of the log after opening (segments, and a carried-forward version 1 file).
    pub segments: usize,
}

/// A segment no longer written to.
struct ClosedSegment {
    file: WalFile,
    first: u64,
    last: Option<u64>,
    bytes: u64,
}

/// The segment records are written to.
struct ActiveSegment {
    first: u64,
    storage: Box<dyn WalStorage>,
    /// File length: bytes from here on have not been zero-filled yet.
    allocated: u64,
    /// Where the next record goes.
    end: u64,
    /// The last record handed to the OS.
    last: Option<u64>,
}

struct WalState {
    next_sequence: u64,
    /// Encoded records not yet handed to the OS.
    buffer: Vec<u8>,
    /// Offsets in `buffer` where a new segment starts, with its first sequence number: the
    /// record there and the ones after it go to that segment.
    breaks: Vec<(usize, u64)>,
    /// Bytes of the segment the next record joins (header and records, written or
    /// buffered) and whether it holds a record: they decide when to start a new one.
    tail_len: u64,
    tail_has_records: bool,
    /// Every record numbered up to this is on disk.
    synced_through: u64,
    /// One thread at a time writes; the others wait on `io_done`.
    io_in_progress: bool,
    /// Set by the first failed write or sync; every later append fails with it.
    poisoned: Option<String>,
    closed: bool,
}

struct WalIo {
    dir: Box<dyn SegmentDir>,
    /// Oldest first.
    closed: VecDeque<ClosedSegment>,
    active: ActiveSegment,
}

/// An open write-ahead log. Safe to share between threads.
pub struct Wal {
    path: PathBuf,
    segment_size: u64,
    state: Mutex<WalState>,
    io_done: Condvar,
    /// Lock order: never taken while waiting for `state` (writers release `state` first).
    io: Mutex<WalIo>,
    /// Records and bytes appended, fsync latencies: lock-free, read without either lock.
    stats: stats::WalStats,
}

/// Where the previous file of the log ended, while opening.
#[derive(Clone, Copy)]
enum Before {
    /// No file yet: the first must start where the snapshot ends (or at 1).
    Start,
    /// The previous file's last record (the number before its first, when empty).
    Last(u64),
    /// The previous file was not read (a snapshot covers it): this file's first number
    /// says where it ended.
    Covered,
}

impl Wal {
    /// Opens (or creates) the WAL at `path` with default options, takes its exclusive lock,
    /// and calls `on_record` for every valid record in order. An error returned by
    /// `on_record` is reported as corruption at that record's offset. A torn tail is cut
    /// off before returning.
    // The store opens with options: only the tests use the defaults.
    #[cfg(any(test, feature = "internals"))]
    pub fn open(
        path: &Path,
        on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        Self::open_with(path, WalOptions::default(), on_record)
    }

    /// [`Wal::open`] with options.
    pub fn open_with(
        path: &Path,
        options: WalOptions,
        on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        check_options(path, &options)?;
        let dir = FileDir::open(path)?;
        Self::open_inner(path, Box::new(dir), options, on_record)
    }

    /// Opens a WAL on a caller-provided directory (fault-injection tests). No lock is taken
    /// beyond what `dir` holds: the caller owns exclusivity.
    pub fn open_with_dir(
        path: &Path,
        dir: Box<dyn SegmentDir>,
        options: WalOptions,
        on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        check_options(path, &options)?;
        Self::open_inner(path, dir, options, on_record)
    }

    fn open_inner(
        path: &Path,
        mut dir: Box<dyn SegmentDir>,
        options: WalOptions,
        mut on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        let skip = options.skip_through;
        let file_path = |file: WalFile| wal_file_path(path, file);
        let mut names = dir.list().map_err(io_err("list the segments of", path))?;
        names.sort_unstable();
        let mut files: Vec<WalFile> = Vec::with_capacity(names.len() + 1);
        let mut legacy = dir
            .open(WalFile::Legacy)
            .map_err(io_err("open", path))?;
        let legacy_len = legacy.file_len().map_err(io_err("read", path))?;
        // Whether the file at the WAL path holds bytes but no record (a version 1 log
        // whose creation never finished, or that never got a record): it is emptied, once
        // the whole log has been read (a failed open changes nothing).
        let mut empty_legacy = false;
        if legacy_len > 0 && legacy_holds_a_log(path, &mut *legacy)? {
            files.push(WalFile::Legacy);
        } else if legacy_len > 0 {
            empty_legacy = true;
        }
        files.extend(names.iter().map(|&first| WalFile::Segment(first)));

        let mut recovery = Recovery {
            records: 0,
            skipped: 0,
            last_sequence: 0,
            torn_bytes: 0,
            created: files.is_empty() && legacy_len == 0,
            segments: 0,
        };
        let mut closed: VecDeque<ClosedSegment> = VecDeque::new();
        let mut active: Option<ActiveSegment> = None;
        let mut before = Before::Start;
        let mut legacy = Some(legacy);
        for (i, &file) in files.iter().enumerate() {
            let fpath = file_path(file);
            let next_first = match files.get(i + 1) {
                Some(WalFile::Segment(first)) => Some(*first),
                // Only the first file can be the legacy one.
                Some(WalFile::Legacy) | None => None,
            };
            if let WalFile::Segment(first @ (0 | u64::MAX)) = file {
                return Err(WalError::BadHeader {
                    path: fpath,
                    problem: format!(
                        "its name says its first record is {first}, which no record is"
                    ),
                });
            }
            let mut storage = match file {
                WalFile::Legacy => legacy.take().expect("the legacy file comes first, once"),
                WalFile::Segment(_) => dir.open(file).map_err(io_err("open", &fpath))?,
            };
            let len = storage.file_len().map_err(io_err("read", &fpath))?;
            // A file that is not the last and holds only records a snapshot covers: only
            // its header is checked, for its first number.
            if next_first.is_some_and(|next| next <= skip.saturating_add(1)) {
                let head = storage
                    .read_prefix(format::FILE_HEADER_LEN)
                    .map_err(io_err("read", &fpath))?;
                let first = check_header_of(&fpath, file, &head)?;
                check_start(path, &fpath, before, first, skip)?;
                let next = next_first.expect("checked above");
                closed.push_back(ClosedSegment {
                    file,
                    first,
                    last: next.checked_sub(1).filter(|&l| l >= first),
                    bytes: len,
                });
                before = Before::Covered;
                continue;
            }
            let is_last = next_first.is_none();
            let bytes = read_whole(&mut *storage, len).map_err(io_err("read", &fpath))?;
            let first_required = match file {
                WalFile::Legacy => None,
                WalFile::Segment(name) => match check_header_of(&fpath, file, &bytes) {
                    Ok(_) => Some(name),
                    Err(_) if is_last && unfinished_creation(&bytes, name) => {
                        // A crash while the segment was created: it holds no record. It is
                        // initialised again and becomes the active segment.
                        check_start(path, &fpath, before, name, skip)?;
                        let segment = init_segment(
                            &mut *dir,
                            &fpath,
                            storage,
                            name,
                            len,
                            options.segment_size,
                        )?;
                        active = Some(segment);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let mut first_seen = None;
            let summary = format::scan_from(&bytes, first_required, |r| {
                first_seen.get_or_insert(r.sequence);
                if r.sequence <= skip {
                    recovery.skipped += 1;
                    return Ok(());
                }
                recovery.records += 1;
                on_record(&r).map_err(|e| (r.offset, e))
            })
            .map_err(|e| {
                let (offset, reason) = match e {
                    ScanError::Corrupt(c) => (c.offset, c.reason),
                    ScanError::Callback((offset, reason)) => (offset, reason),
                };
                WalError::Corrupt {
                    path: fpath.clone(),
                    offset,
                    reason,
                }
            })?;
            let (first, last) = match (file, first_seen) {
                (WalFile::Segment(name), _) => {
                    (name, (summary.records > 0).then_some(summary.last_sequence))
                }
                (WalFile::Legacy, Some(first)) => (first, Some(summary.last_sequence)),
                (WalFile::Legacy, None) => {
                    // A version 1 log that never got a record (or only a torn one, never
                    // acknowledged): nothing to carry forward.
                    empty_legacy = true;
                    continue;
                }
            };
            check_start(path, &fpath, before, first, skip)?;
            let end = match summary.end {
                LogEnd::Clean { end } => end,
                LogEnd::TornTail { end, .. } if !is_last => {
                    // Segments are synced before the next one is created: damage at the
                    // end of one that is not the last is not a write that never finished.
                    return Err(WalError::Corrupt {
                        path: fpath,
                        offset: end,
                        reason: format!(
                            "damaged record at the end of a segment that is not the last \
                             (the next one starts at record {})",
                            next_first.unwrap_or_default()
                        ),
                    });
                }
                LogEnd::TornTail { end, dropped_end } => {
                    // Cut the torn tail so that new records never sit in front of garbage.
                    let zeros = vec![0u8; (dropped_end - end) as usize];
                    storage.write_at(end, &zeros).map_err(io_err("truncate", &fpath))?;
                    storage.sync_data().map_err(io_err("sync", &fpath))?;
                    log::warn!(
                        "WAL {}: cut off a torn tail of {} bytes at byte offset {end}",
                        fpath.display(),
                        dropped_end - end
                    );
                    recovery.torn_bytes = dropped_end - end;
                    end
                }
            };
            before = Before::Last(last.unwrap_or(first - 1));
            match file {
                WalFile::Segment(_) if is_last => {
                    active = Some(ActiveSegment {
                        first,
                        storage,
                        allocated: len,
                        end,
                        last,
                    });
                }
                _ => {
                    if is_last {
                        // The version 1 file is read-only from now on; what it holds must
                        // be durable before records go to a new segment after it (a
                        // process of the old version may have died with some unsynced).
                        storage.sync_all().map_err(io_err("sync", &fpath))?;
                    }
                    closed.push_back(ClosedSegment {
                        file,
                        first,
                        last,
                        bytes: len,
                    });
                }
            }
        }
        if empty_legacy {
            dir.remove(WalFile::Legacy).map_err(io_err("empty", path))?;
            dir.sync()
                .map_err(io_err("sync the directory of", path))?;
        }
        // The last record of the log, or the number before its next one.
        let log_last = match (&active, &before) {
            (Some(a), _) => a.last.unwrap_or(a.first - 1),
            (None, Before::Last(last)) => *last,
            (None, _) => 0,
        };
        if log_last < skip && (active.is_some() || !closed.is_empty()) {
            // The snapshot covers every record the log holds, and more: the files are
            // removed (oldest first, so that a crash leaves the log contiguous) and a new
            // segment starts after the snapshot, leaving no hole in the numbering.
            log::warn!(
                "WAL {}: a snapshot covers records up to {skip}, the log ends at {log_last}; \
                 its files are removed",
                path.display()
            );
            let mut doomed: Vec<WalFile> = closed.drain(..).map(|c| c.file).collect();
            doomed.extend(active.take().map(|a| WalFile::Segment(a.first)));
            for file in doomed {
                dir.remove(file).map_err(io_err("remove", &file_path(file)))?;
                dir.sync().map_err(io_err("sync the directory of", path))?;
            }
        }
        let next_sequence = log_last.max(skip) + 1;
        let active = match active {
            Some(active) => active,
            None => create_segment(&mut *dir, path, next_sequence, options.segment_size)?,
        };
        recovery.last_sequence = log_last;
        recovery.segments = closed.len() + 1;
        let wal = Wal {
            path: path.to_path_buf(),
            segment_size: options.segment_size,
            state: Mutex::new(WalState {
                next_sequence,
                buffer: Vec::new(),
                breaks: Vec::new(),
                tail_len: active.end,
                tail_has_records: active.last.is_some(),
                synced_through: next_sequence - 1,
                io_in_progress: false,
                poisoned: None,
                closed: false,
            }),
            io_done: Condvar::new(),
            io: Mutex::new(WalIo {
                dir,
                closed,
                active,
            }),
            stats: stats::WalStats::default(),
        };
        Ok((wal, recovery))
    }

    /// The WAL's path (the lock file; segment files are named after it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and returns its sequence number. With `durable`, returns only once
    /// the record is on disk; otherwise once it is buffered. `build_payload` appends the
    /// payload to the buffer it is given (and must not touch what is already there); it runs
    /// under the append lock with the record's sequence number, so callers can number their
    /// own data in log order.
    pub fn append(
        &self,
        record_type: RecordType,
        durable: bool,
        build_payload: impl FnOnce(u64, &mut Vec<u8>),
    ) -> Result<u64, WalError> {
        self.try_append(record_type, durable, |sequence, out| {
            build_payload(sequence, out);
            Ok::<(), WalError>(())
        })
    }

    /// [`Wal::append`] with a payload builder that may refuse: its error is returned and
    /// nothing is appended.
    pub fn try_append<E: From<WalError>>(
        &self,
        record_type: RecordType,
        durable: bool,
        build_payload: impl FnOnce(u64, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        let sequence = state.next_sequence;
        // The reader refuses u64::MAX (no number would be left after it).
        if sequence == u64::MAX {
            return Err(WalError::SequenceExhausted {
                path: self.path.clone(),
            }
            .into());
        }
        // Encode in place: a header-sized gap, the payload, then the header is sealed.
        let start = state.buffer.len();
        state.buffer.resize(start + format::RECORD_HEADER_LEN, 0);
        if let Err(e) = build_payload(sequence, &mut state.buffer) {
            state.buffer.truncate(start);
            return Err(e);
        }
        let len = state.buffer.len() - start - format::RECORD_HEADER_LEN;
        if len > format::MAX_PAYLOAD_LEN {
            state.buffer.truncate(start);
            return Err(WalError::RecordTooLarge {
                len,
                limit: format::MAX_PAYLOAD_LEN,
            }
            .into());
        }
        let record_len = (state.buffer.len() - start) as u64;
        // Records never span segments: one that does not fit starts a new segment, unless
        // the segment is still empty (then it is too large for any and gets this one).
        if state.tail_has_records && state.tail_len + record_len > self.segment_size {
            state.breaks.push((start, sequence));
            state.tail_len = HEADER_LEN;
        }
        state.tail_len += record_len;
        state.tail_has_records = true;
        state.next_sequence += 1;
        self.stats.appended(record_len);
        format::seal_record(&mut state.buffer[start..], record_type, sequence);
        if durable {
            self.wait_synced(&mut state, sequence)?;
        } else if state.buffer.len() >= BUFFER_LIMIT && !state.io_in_progress {
            self.write_out(&mut state, false);
            self.check_writable(&state)?;
        }
        Ok(sequence)
    }

    /// Hands every buffered record to the OS and syncs it to disk.
    pub fn flush(&self) -> Result<(), WalError> {
        let mut state = self.state.lock();
        let through = state.next_sequence - 1;
        self.wait_synced(&mut state, through)
    }

    /// Ends the active segment and starts a new one: every record before the returned
    /// sequence number (the one the next record will get) is then on disk, in segments
    /// that [`Wal::remove_segments_through`] can delete once a snapshot covers them. When
    /// the active segment holds no record yet, it stays the active one.
    pub fn rotate(&self) -> Result<u64, WalError> {
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        let next = state.next_sequence;
        if state.tail_has_records {
            let at = state.buffer.len();
            state.breaks.push((at, next));
            state.tail_len = HEADER_LEN;
            state.tail_has_records = false;
        }
        loop {
            if let Some(cause) = &state.poisoned {
                return Err(WalError::Poisoned {
                    path: self.path.clone(),
                    cause: cause.clone(),
                });
            }
            if state.io_in_progress {
                self.io_done.wait(&mut state);
            } else if state.breaks.is_empty() && state.synced_through >= next - 1 {
                return Ok(next);
            } else if let Some(e) = self.write_out(&mut state, true) {
                return Err(e);
            }
        }
    }

    /// Deletes the segments all of whose records are numbered `through` or less, oldest
    /// first, syncing the directory after each deletion (so that a crash leaves the
    /// remaining segments contiguous), and returns how many. The active segment is never
    /// deleted; the version 1 file at the WAL path is emptied rather than deleted, since it
    /// holds the lock.
    pub fn remove_segments_through(&self, through: u64) -> Result<usize, WalError> {
        self.check_writable(&self.state.lock())?;
        let mut removed = 0;
        let mut sync_failure = None;
        let mut io = self.io.lock();
        let result = loop {
            let Some(segment) = io.closed.front() else {
                break Ok(());
            };
            if segment.last.is_some_and(|last| last > through) {
                break Ok(());
            }
            let file = segment.file;
            let fpath = wal_file_path(&self.path, file);
            if let Err(source) = io.dir.remove(file) {
                // Nothing changed: the log is as it was, the WAL stays usable.
                break Err(WalError::Io {
                    op: "remove",
                    path: fpath,
                    source,
                });
            }
            io.closed.pop_front();
            removed += 1;
            log::info!(
                "WAL {}: removed segment {}",
                self.path.display(),
                fpath.display()
            );
            if let Err(source) = io.dir.sync() {
                sync_failure = Some(describe_io(&source));
                break Err(WalError::Io {
                    op: "sync the directory of",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        drop(io);
        if let Some(cause) = sync_failure {
            // A failed sync poisons, as for records: what it reported may be undone.
            log::error!(
                "WAL {}: syncing its directory failed ({cause}); the WAL refuses further \
                 writes until it is reopened",
                self.path.display()
            );
            self.state.lock().poisoned = Some(cause);
        }
        result.map(|()| removed)
    }

    /// The log's files, oldest first, the active segment last.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let io = self.io.lock();
        io.closed
            .iter()
            .map(|c| SegmentInfo {
                path: wal_file_path(&self.path, c.file),
                first_sequence: c.first,
                last_sequence: c.last,
                bytes: c.bytes,
                legacy: c.file == WalFile::Legacy,
            })
            .chain(std::iter::once(SegmentInfo {
                path: segment_path(&self.path, io.active.first),
                first_sequence: io.active.first,
                last_sequence: io.active.last,
                bytes: io.active.allocated,
                legacy: false,
            }))
            .collect()
    }

    /// The bytes the log's files take on disk, preallocation included.
    pub fn disk_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.bytes).sum()
    }

    /// Why the WAL refuses writes, when an earlier write or sync failed: the error every
    /// append returns until the WAL is opened again.
    pub fn refusal(&self) -> Option<WalError> {
        self.state
            .lock()
            .poisoned
            .as_ref()
            .map(|cause| WalError::Poisoned {
                path: self.path.clone(),
                cause: cause.clone(),
            })
    }

    /// Bytes the log's next write may have to allocate on disk: the active segment's next
    /// growth step, or a new segment's first step when the active one is full. A file
    /// system with less free than this may refuse the next write.
    pub fn room_needed(&self) -> u64 {
        let io = self.io.lock();
        let allocated = io.active.allocated;
        if allocated < self.segment_size {
            allocated
                .clamp(MIN_GROWTH, MAX_GROWTH)
                .min(self.segment_size - allocated)
        } else {
            MIN_GROWTH.min(self.segment_size)
        }
    }

    /// What the WAL counted since it was opened: records, bytes, fsync latencies.
    pub fn stats(&self) -> WalStatsSnapshot {
        self.stats.snapshot()
    }

    /// Flushes and refuses further appends. Idempotent.
    pub fn close(&self) -> Result<(), WalError> {
        let result = if self.state.lock().closed {
            Ok(())
        } else {
            self.flush()
        };
        self.state.lock().closed = true;
        result
    }

    fn check_writable(&self, state: &WalState) -> Result<(), WalError> {
        if let Some(cause) = &state.poisoned {
            return Err(WalError::Poisoned {
                path: self.path.clone(),
                cause: cause.clone(),
            });
        }
        if state.closed {
            return Err(WalError::Closed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Blocks until every record numbered up to `through` is on disk, writing and syncing
    /// as the group leader when no other thread is doing so.
    fn wait_synced(
        &self,
        state: &mut MutexGuard<'_, WalState>,
        through: u64,
    ) -> Result<(), WalError> {
        loop {
            if state.synced_through >= through {
                return Ok(());
            }
            if let Some(cause) = &state.poisoned {
                return Err(WalError::Poisoned {
                    path: self.path.clone(),
                    cause: cause.clone(),
                });
            }
            if state.io_in_progress {
                self.io_done.wait(state);
            } else if let Some(e) = self.write_out(state, true) {
                return Err(e);
            }
        }
    }

    /// Writes the whole buffer, starting the new segments it calls for, (and syncs it when
    /// `sync`) with the state lock released. Returns the error of a failed write or sync,
    /// which also poisons the WAL.
    fn write_out(&self, state: &mut MutexGuard<'_, WalState>, sync: bool) -> Option<WalError> {
        state.io_in_progress = true;
        let buffer = std::mem::take(&mut state.buffer);
        let breaks = std::mem::take(&mut state.breaks);
        // The last record buffered (or written earlier).
        let last = state.next_sequence - 1;
        let result = MutexGuard::unlocked(state, || {
            let mut io = self.io.lock();
            let mut from = 0;
            // Everything before the last segment started here is synced.
            let mut rolled_through = None;
            let syncs = &self.stats.syncs;
            for &(at, first) in &breaks {
                let records = &buffer[from..at];
                io.write_records(&self.path, records, first - 1, sync, self.segment_size, syncs)?;
                io.roll_to(&self.path, first, self.segment_size, syncs)?;
                rolled_through = Some(first - 1);
                from = at;
            }
            io.write_records(&self.path, &buffer[from..], last, sync, self.segment_size, syncs)?;
            if sync {
                let fpath = segment_path(&self.path, io.active.first);
                syncs
                    .time(|| io.active.storage.sync_data())
                    .map_err(io_err("sync", &fpath))?;
            }
            Ok(rolled_through)
        });
        state.io_in_progress = false;
        if state.buffer.is_empty() {
            // Keep the allocation for the next group.
            let mut buffer = buffer;
            buffer.clear();
            state.buffer = buffer;
        }
        self.io_done.notify_all();
        match result {
            Ok(rolled_through) => {
                let synced = if sync { Some(last) } else { rolled_through };
                if let Some(synced) = synced {
                    state.synced_through = state.synced_through.max(synced);
                }
                None
            }
            Err(e) => {
                log::error!("{e}; the WAL refuses further writes until it is reopened");
                state.poisoned = Some(match &e {
                    WalError::Io { source, .. } => describe_io(source),
                    other => other.to_string(),
                });
                Some(e)
            }
        }
    }
}

impl WalIo {
    /// Writes encoded records, the last numbered `last`, at the end of the active segment,
    /// growing it first when needed.
    fn write_records(
        &mut self,
        wal_path: &Path,
        records: &[u8],
        last: u64,
        sync: bool,
        segment_size: u64,
        syncs: &stats::SyncLatency,
    ) -> Result<(), WalError> {
        if records.is_empty() {
            return Ok(());
        }
        let fpath = segment_path(wal_path, self.active.first);
        let active = &mut self.active;
        let start = active.end;
        let end = start + records.len() as u64;
        if end > active.allocated && !sync {
            // Unsynced writes simply extend the file: preallocating only pays off for
            // writes that are synced one by one.
            active.allocated = end;
        } else if end > active.allocated {
            let growth = active.allocated.clamp(MIN_GROWTH, MAX_GROWTH);
            // Not past the segment size, unless a record too large for it needs the room.
            let new_len = (end.div_ceil(growth) * growth).min(segment_size.max(end));
            zero_fill(&mut *active.storage, active.allocated, new_len)
                .map_err(io_err("grow", &fpath))?;
            syncs
                .time(|| active.storage.sync_all())
                .map_err(io_err("sync", &fpath))?;
            active.allocated = new_len;
        }
        active
            .storage
            .write_at(start, records)
            .map_err(io_err("write to", &fpath))?;
        active.end = end;
        active.last = Some(last);
        Ok(())
    }

    /// Ends the active segment and makes a new one, starting at `first`, the active one.
    fn roll_to(
        &mut self,
        wal_path: &Path,
        first: u64,
        segment_size: u64,
        syncs: &stats::SyncLatency,
    ) -> Result<(), WalError> {
        // The old segment's records must be durable before any record of the new one can
        // be: a crash must never leave a hole between the two.
        let old_path = segment_path(wal_path, self.active.first);
        syncs
            .time(|| self.active.storage.sync_data())
            .map_err(io_err("sync", &old_path))?;
        let new = create_segment(&mut *self.dir, wal_path, first, segment_size)?;
        let old = std::mem::replace(&mut self.active, new);
        self.closed.push_back(ClosedSegment {
            file: WalFile::Segment(old.first),
            first: old.first,
            last: old.last,
            bytes: old.allocated,
        });
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing {}: {e}", self.path.display());
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

fn check_options(path: &Path, options: &WalOptions) -> Result<(), WalError> {
    let invalid = |reason: String| {
        Err(WalError::InvalidOptions {
            path: path.to_path_buf(),
            reason,
        })
    };
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&options.segment_size) {
        return invalid(format!(
            "segment size {} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE} bytes",
            options.segment_size
        ));
    }
    // The next record gets the number after it, and u64::MAX is no record's.
    if options.skip_through >= u64::MAX - 1 {
        return invalid(format!(
            "skip_through {} leaves no sequence number for a record",
            options.skip_through
        ));
    }
    Ok(())
}

/// Whether the file at the WAL path (not empty) holds a log of format version 1. A prefix
/// of its header followed by nothing but zeros is a creation that never finished (no);
/// anything else that is not such a log is somebody else's file, refused untouched.
fn legacy_holds_a_log(path: &Path, storage: &mut dyn WalStorage) -> Result<bool, WalError> {
    let head = storage
        .read_prefix(format::FILE_HEADER_LEN)
        .map_err(io_err("read", path))?;
    let problem = match format::check_file_header(&head) {
        Ok(FileHeader::Legacy) => return Ok(true),
        Ok(FileHeader::Segment { first_sequence }) => format!(
            "it holds the header of a segment (record {first_sequence} on); the file at \
             the WAL path is its lock or a log of format version 1"
        ),
        Err(HeaderProblem::Incomplete) => {
            let len = storage.file_len().map_err(io_err("read", path))?;
            let bytes = read_whole(storage, len).map_err(io_err("read", path))?;
            if bytes.iter().skip(format::FILE_HEADER_LEN).all(|&b| b == 0) {
                return Ok(false);
            }
            HeaderProblem::Incomplete.describe()
        }
        Err(problem) => problem.describe(),
    };
    Err(WalError::BadHeader {
        path: path.to_path_buf(),
        problem,
    })
}

/// Checks the header of a file of the log and returns its first sequence number (1 for a
/// version 1 file: the only first number that version wrote).
fn check_header_of(fpath: &Path, file: WalFile, bytes: &[u8]) -> Result<u64, WalError> {
    let bad = |problem: String| {
        Err(WalError::BadHeader {
            path: fpath.to_path_buf(),
            problem,
        })
    };
    let (expected, name) = match file {
        WalFile::Legacy => (format::encode_legacy_header(), None),
        WalFile::Segment(first) => (format::encode_segment_header(first), Some(first)),
    };
    match (format::check_header(bytes, &expected), name) {
        (Ok(FileHeader::Legacy), None) => Ok(1),
        (Ok(FileHeader::Segment { first_sequence }), Some(name)) if first_sequence == name => {
            Ok(name)
        }
        (Ok(FileHeader::Segment { first_sequence }), Some(name)) => bad(format!(
            "its header says its first record is {first_sequence}, its name says {name}"
        )),
        (Ok(FileHeader::Legacy), Some(_)) => {
            bad("a segment file with the header of format version 1".to_string())
        }
        (Ok(FileHeader::Segment { .. }), None) => {
            bad("the file at the WAL path holds the header of a segment".to_string())
        }
        (Err(problem), _) => bad(problem.describe()),
    }
}

/// Whether a segment image is what a crash during its creation leaves: a prefix of its
/// header, then nothing but zeros.
fn unfinished_creation(bytes: &[u8], first: u64) -> bool {
    matches!(
        format::check_header(bytes, &format::encode_segment_header(first)),
        Err(HeaderProblem::Incomplete)
    ) && bytes.iter().skip(format::FILE_HEADER_LEN).all(|&b| b == 0)
}

/// Checks that a file of the log starting at `first` follows what came before it: the
/// previous file's last record, or at the start, the end of the snapshot.
fn check_start(
    path: &Path,
    fpath: &Path,
    before: Before,
    first: u64,
    skip: u64,
) -> Result<(), WalError> {
    let (expected, reason) = match before {
        Before::Covered => return Ok(()),
        Before::Start => (
            skip + 1,
            if skip == 0 {
                format!("the log starts at {}", fpath.display())
            } else {
                format!(
                    "the snapshot ends at record {skip} and the log starts at {}",
                    fpath.display()
                )
            },
        ),
        Before::Last(last) => (
            last + 1,
            format!("the segment before {} ends at record {last}", fpath.display()),
        ),
    };
    if first > expected {
        return Err(WalError::MissingRecords {
            path: path.to_path_buf(),
            first: expected,
            last: first - 1,
            reason,
        });
    }
    match before {
        Before::Last(last) if first <= last => Err(WalError::Corrupt {
            path: fpath.to_path_buf(),
            offset: 0,
            reason: format!(
                "the segment starts at record {first}, but the one before it ends at {last}"
            ),
        }),
        _ => Ok(()),
    }
}

/// Creates segment `first` durably: the file, its header and first zero-filled step, then
/// an fsync of the file and one of the directory.
fn create_segment(
    dir: &mut dyn SegmentDir,
    wal_path: &Path,
    first: u64,
    segment_size: u64,
) -> Result<ActiveSegment, WalError> {
    let fpath = segment_path(wal_path, first);
    let storage = dir.create(first).map_err(io_err("create", &fpath))?;
    init_segment(dir, &fpath, storage, first, 0, segment_size)
}

/// Writes a segment's header over a new (or unfinished) file of `len` bytes, zero-fills its
/// first step and makes it durable with its directory entry.
fn init_segment(
    dir: &mut dyn SegmentDir,
    fpath: &Path,
    mut storage: Box<dyn WalStorage>,
    first: u64,
    len: u64,
    segment_size: u64,
) -> Result<ActiveSegment, WalError> {
    storage
        .write_at(0, &format::encode_segment_header(first))
        .map_err(io_err("write to", fpath))?;
    let from = len.max(HEADER_LEN);
    let allocated = from.max(MIN_GROWTH.min(segment_size));
    zero_fill(&mut *storage, from, allocated).map_err(io_err("grow", fpath))?;
    storage.sync_all().map_err(io_err("sync", fpath))?;
    dir.sync()
        .map_err(io_err("sync the directory of", fpath))?;
    Ok(ActiveSegment {
        first,
        storage,
        allocated,
        end: HEADER_LEN,
        last: None,
    })
}

/// Reads a whole file of the log, of `len` bytes. One larger than this process can hold in
/// memory (past 2 GiB on a 32-bit device, with a segment size set that large) is refused
/// with an error that gives its size, where reading it would fail to allocate and abort.
fn read_whole(storage: &mut dyn WalStorage, len: u64) -> io::Result<Vec<u8>> {
    if usize::try_from(len)
        .ok()
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "the file holds {len} bytes, more than a {}-bit process can read into memory",
                usize::BITS
            ),
        ));
    }
    storage.read_all()
}

/// Writes zeros over `from..to`.
fn zero_fill(storage: &mut dyn WalStorage, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1024 * 1024;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK);
        storage.write_at(at, &zeros[..n as usize])?;
        at += n;
    }
    Ok(())
}
