//! Write-ahead log: one preallocated file of CRC-checked records, replayed on open.
//!
//! Durability model: `append(.., durable = true)` returns only after the record is on disk
//! (fdatasync). Concurrent durable appends share one write and one sync (group commit): the
//! first waiting writer writes everything buffered so far and syncs it for all of them.
//! Non-durable appends are buffered in memory and handed to the OS when the buffer fills,
//! on [`Wal::flush`], on a durable append, on close and on drop.
//!
//! For synced writes the file grows in zero-filled steps, fsynced once, so that an ordinary
//! sync has no file size to commit; buffered (non-durable) writes just extend the file. A failed write or sync poisons the WAL: that append and every later one
//! fail until the WAL is opened again, because after a failed fsync the kernel may have
//! dropped the dirty pages and a retry could report success for data that is gone.

#[cfg(any(test, feature = "internals"))]
mod doubles;
pub mod format;
pub mod storage;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::io_error::describe_io;

#[cfg(any(test, feature = "internals"))]
pub use doubles::{Fault, FaultyStorage, MemStorage, PowerCut};
use format::{HeaderProblem, ScanError};
pub use format::{LogEnd, RecordType, ScannedRecord};
pub use storage::{FileStorage, WalStorage};

/// Smallest step by which the file grows; also the size of a new WAL.
const MIN_GROWTH: u64 = 1024 * 1024;
/// Largest step by which the file grows.
const MAX_GROWTH: u64 = 64 * 1024 * 1024;
/// Buffered non-durable bytes that trigger a write to the OS.
const BUFFER_LIMIT: usize = 256 * 1024;

/// Errors of the WAL layer. Every message names the WAL file.
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
        /// The WAL file.
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
        /// The WAL file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
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
    /// The WAL file the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            WalError::MissingDirectory { path, .. }
            | WalError::NotADirectory { path, .. }
            | WalError::IsADirectory { path }
            | WalError::Locked { path }
            | WalError::Io { path, .. }
            | WalError::BadHeader { path, .. }
            | WalError::Corrupt { path, .. }
            | WalError::Poisoned { path, .. }
            | WalError::Closed { path } => Some(path),
            WalError::RecordTooLarge { .. } => None,
        }
    }
}

/// What opening the WAL found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records replayed.
    pub records: u64,
    /// Sequence number of the last valid record (0 for an empty log).
    pub last_sequence: u64,
    /// Bytes of a torn tail that were cut off (0 when the log ended cleanly).
    pub torn_bytes: u64,
    /// The WAL file did not exist and was created.
    pub created: bool,
}

struct WalState {
    next_sequence: u64,
    /// Encoded records not yet handed to the OS; they start at file offset `buffer_start`.
    buffer: Vec<u8>,
    buffer_start: u64,
    /// Everything before this offset is on disk.
    synced_end: u64,
    /// One thread at a time writes; the others wait on `io_done`.
    io_in_progress: bool,
    /// Set by the first failed write or sync; every later append fails with it.
    poisoned: Option<String>,
    closed: bool,
}

struct WalIo {
    storage: Box<dyn WalStorage>,
    /// File length: bytes from here on have not been zero-filled yet.
    allocated: u64,
}

/// An open write-ahead log. Safe to share between threads.
pub struct Wal {
    path: PathBuf,
    state: Mutex<WalState>,
    io_done: Condvar,
    io: Mutex<WalIo>,
    /// Holds the exclusive lock for the WAL's lifetime (None when opened on a custom storage).
    _lock: Option<File>,
}

impl Wal {
    /// Opens (or creates) the WAL at `path`, takes its exclusive lock, and calls `on_record`
    /// for every valid record in order. An error returned by `on_record` is reported as
    /// corruption at that record's offset. A torn tail is cut off before returning.
    pub fn open(
        path: &Path,
        on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        let file = open_file(path)?;
        let lock = file.try_clone().map_err(|source| WalError::Io {
            op: "open",
            path: path.to_path_buf(),
            source,
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(WalError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(WalError::Io {
                    op: "lock",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        Self::open_inner(
            path,
            Box::new(FileStorage::new(file)),
            Some(lock),
            on_record,
        )
    }

    /// Opens a WAL on a caller-provided storage (used by fault-injection tests). No lock is
    /// taken: the caller owns exclusivity.
    pub fn open_with_storage(
        path: &Path,
        storage: Box<dyn WalStorage>,
        on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        Self::open_inner(path, storage, None, on_record)
    }

    fn open_inner(
        path: &Path,
        mut storage: Box<dyn WalStorage>,
        lock: Option<File>,
        mut on_record: impl FnMut(&ScannedRecord<'_>) -> Result<(), String>,
    ) -> Result<(Wal, Recovery), WalError> {
        let io_err = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| WalError::Io { op, path, source }
        };
        let bytes = storage.read_all().map_err(io_err("read"))?;
        let mut recovery = Recovery {
            records: 0,
            last_sequence: 0,
            torn_bytes: 0,
            created: false,
        };
        let mut allocated = bytes.len() as u64;
        let end = match format::check_file_header(&bytes) {
            Err(HeaderProblem::Incomplete)
                if bytes.iter().skip(format::FILE_HEADER_LEN).all(|&b| b == 0) =>
            {
                // New file, or a creation that never completed: (re)initialise it.
                storage
                    .write_at(0, &format::encode_file_header())
                    .map_err(io_err("write to"))?;
                allocated = allocated.max(format::FILE_HEADER_LEN as u64);
                zero_fill(&mut *storage, allocated, MIN_GROWTH).map_err(io_err("grow"))?;
                allocated = allocated.max(MIN_GROWTH);
                storage.sync_all().map_err(io_err("sync"))?;
                crate::io_error::sync_parent_dir(path).map_err(io_err("sync the directory of"))?;
                recovery.created = bytes.is_empty();
                format::FILE_HEADER_LEN as u64
            }
            Err(problem) => {
                let problem = match problem {
                    HeaderProblem::Incomplete => "incomplete file header".to_string(),
                    HeaderProblem::BadMagic => "bad magic bytes".to_string(),
                    HeaderProblem::BadChecksum => "file header checksum mismatch".to_string(),
                    HeaderProblem::UnsupportedVersion(v) => format!(
                        "format version {v} is not supported (this build reads version {})",
                        format::FORMAT_VERSION
                    ),
                };
                return Err(WalError::BadHeader {
                    path: path.to_path_buf(),
                    problem,
                });
            }
            Ok(()) => {
                let summary = format::scan(&bytes, |r| on_record(&r).map_err(|e| (r.offset, e)))
                    .map_err(|e| {
                        let (offset, reason) = match e {
                            ScanError::Corrupt(c) => (c.offset, c.reason),
                            ScanError::Callback((offset, reason)) => (offset, reason),
                        };
                        WalError::Corrupt {
                            path: path.to_path_buf(),
                            offset,
                            reason,
                        }
                    })?;
                recovery.records = summary.records;
                recovery.last_sequence = summary.last_sequence;
                match summary.end {
                    LogEnd::Clean { end } => end,
                    LogEnd::TornTail { end, dropped_end } => {
                        // Cut the torn tail so that new records never sit in front of garbage.
                        let zeros = vec![0u8; (dropped_end - end) as usize];
                        storage.write_at(end, &zeros).map_err(io_err("truncate"))?;
                        storage.sync_data().map_err(io_err("sync"))?;
                        log::warn!(
                            "WAL {}: cut off a torn tail of {} bytes at byte offset {end}",
                            path.display(),
                            dropped_end - end
                        );
                        recovery.torn_bytes = dropped_end - end;
                        end
                    }
                }
            }
        };
        let wal = Wal {
            path: path.to_path_buf(),
            state: Mutex::new(WalState {
                next_sequence: recovery.last_sequence + 1,
                buffer: Vec::new(),
                buffer_start: end,
                synced_end: end,
                io_in_progress: false,
                poisoned: None,
                closed: false,
            }),
            io_done: Condvar::new(),
            io: Mutex::new(WalIo { storage, allocated }),
            _lock: lock,
        };
        Ok((wal, recovery))
    }

    /// The WAL file's path.
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
        state.next_sequence += 1;
        format::seal_record(&mut state.buffer[start..], record_type, sequence);
        let my_end = state.buffer_start + state.buffer.len() as u64;
        if durable {
            self.wait_synced(&mut state, my_end)?;
        } else if state.buffer.len() >= BUFFER_LIMIT && !state.io_in_progress {
            self.write_out(&mut state, false);
            self.check_writable(&state)?;
        }
        Ok(sequence)
    }

    /// Hands every buffered record to the OS and syncs it to disk.
    pub fn flush(&self) -> Result<(), WalError> {
        let mut state = self.state.lock();
        let end = state.buffer_start + state.buffer.len() as u64;
        self.wait_synced(&mut state, end)
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

    /// Blocks until everything before `end` is on disk, writing and syncing as the group
    /// leader when no other thread is doing so.
    fn wait_synced(&self, state: &mut MutexGuard<'_, WalState>, end: u64) -> Result<(), WalError> {
        loop {
            if state.synced_end >= end {
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

    /// Writes the whole buffer (and syncs it when `sync`) with the state lock released.
    /// Returns the error of a failed write or sync, which also poisons the WAL.
    fn write_out(&self, state: &mut MutexGuard<'_, WalState>, sync: bool) -> Option<WalError> {
        state.io_in_progress = true;
        let buffer = std::mem::take(&mut state.buffer);
        let start = state.buffer_start;
        let end = start + buffer.len() as u64;
        state.buffer_start = end;
        let result = MutexGuard::unlocked(state, || {
            let mut io = self.io.lock();
            let io_err = |op: &'static str| {
                let path = self.path.clone();
                move |source| WalError::Io { op, path, source }
            };
            if end > io.allocated && !sync {
                // Unsynced writes simply extend the file: preallocating only pays off for
                // writes that are synced one by one.
                io.allocated = end;
            } else if end > io.allocated {
                let growth = io.allocated.clamp(MIN_GROWTH, MAX_GROWTH);
                let new_len = end.div_ceil(growth) * growth;
                let from = io.allocated;
                zero_fill(&mut *io.storage, from, new_len).map_err(io_err("grow"))?;
                io.storage.sync_all().map_err(io_err("sync"))?;
                io.allocated = new_len;
            }
            io.storage
                .write_at(start, &buffer)
                .map_err(io_err("write to"))?;
            if sync {
                io.storage.sync_data().map_err(io_err("sync"))?;
            }
            Ok(())
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
            Ok(()) => {
                if sync {
                    state.synced_end = end;
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

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing {}: {e}", self.path.display());
        }
    }
}

/// Writes zeros over `from..to`.
fn zero_fill(storage: &mut dyn WalStorage, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1024 * 1024;
    let zeros = vec![0u8; CHUNK as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK);
        storage.write_at(at, &zeros[..n as usize])?;
        at += n;
    }
    Ok(())
}

/// Opens the WAL file for reading and writing, creating it if missing, with an error that
/// says exactly what is wrong with the path. Nothing is created outside the named file.
fn open_file(path: &Path) -> Result<File, WalError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => {
            return Err(WalError::NotADirectory {
                path: path.to_path_buf(),
                dir,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(WalError::MissingDirectory {
                path: path.to_path_buf(),
                dir,
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(WalError::NotADirectory {
                path: path.to_path_buf(),
                dir,
            });
        }
        Err(source) => {
            return Err(WalError::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    if path.is_dir() {
        return Err(WalError::IsADirectory {
            path: path.to_path_buf(),
        });
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| WalError::Io {
            op: "open",
            path: path.to_path_buf(),
            source,
        })
}


