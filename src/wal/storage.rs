//! The storage seam under the WAL: the few file and directory operations it needs, so that
//! tests can put a fault-injecting or in-memory directory (`doubles.rs`, feature
//! `internals`) in place of the real one.
//!
//! A WAL is a directory of segment files next to the WAL path, `<wal path>.<20-digit first
//! sequence number>`, plus the file at the WAL path itself, which holds the lock and, for a
//! log written before segments existed, the whole single-file log of format version 1
//! (docs/wal-format.md).
//!
//! The snapshots a compaction writes next to the WAL (`<wal path>.snap.<20 digits>`, and
//! their `.tmp` while they are written) go through a sibling seam, [`SnapshotDir`], which
//! every WAL directory hands out for the same directory ([`SegmentDir::snapshot_dir`]): a
//! store opened on a simulated directory keeps its snapshots there too. It knows nothing
//! of snapshot names or contents (the store's `checkpoint.rs` and `snapshot.rs` do): only
//! files named by the caller.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::WalError;

/// The mode the WAL's files are created with: its owner's only, as the data it logs is.
/// (An existing file keeps its mode.)
pub const FILE_MODE: u32 = 0o600;

/// The file operations the WAL uses on one file. Offsets are absolute.
pub trait WalStorage: Send {
    /// Reads the whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Reads the first `len` bytes of the file (all of it when it is shorter).
    fn read_prefix(&mut self, len: usize) -> io::Result<Vec<u8>>;
    /// Fills `buf` from `offset`; a file that ends first is an `UnexpectedEof` error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The file's length in bytes.
    fn file_len(&mut self) -> io::Result<u64>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes written data durable (fdatasync: file size and times are not committed).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes data and metadata durable (fsync), needed after the file grew.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// One file of a WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalFile {
    /// The file at the WAL path: the lock, and the single-file log of format version 1 when
    /// the WAL was written before segments existed (empty otherwise).
    Legacy,
    /// The segment whose first record has this sequence number (its name says so).
    Segment(u64),
}

/// The directory operations the WAL uses. A creation or removal may be undone by a crash
/// until [`SegmentDir::sync`] returns, like unsynced data.
pub trait SegmentDir: Send {
    /// The first sequence numbers of the segment files present (read from their names), in
    /// any order.
    fn list(&mut self) -> io::Result<Vec<u64>>;
    /// Opens an existing file of the WAL for reading and writing. [`WalFile::Legacy`] always
    /// exists (empty when there is no log of format version 1).
    fn open(&mut self, file: WalFile) -> io::Result<Box<dyn WalStorage>>;
    /// Creates a new, empty segment file; fails if it exists.
    fn create(&mut self, first_sequence: u64) -> io::Result<Box<dyn WalStorage>>;
    /// Deletes a segment file; [`WalFile::Legacy`] is emptied instead, since it holds the
    /// lock.
    fn remove(&mut self, file: WalFile) -> io::Result<()>;
    /// Makes creations and removals durable (fsync of the directory).
    fn sync(&mut self) -> io::Result<()>;
    /// The same directory for the snapshot files next to the WAL. Changes made through it
    /// and through this one are made durable by the same directory syncs, as on a real
    /// disk.
    fn snapshot_dir(&self) -> Arc<dyn SnapshotDir>;
}

/// The directory operations snapshots use, on files named by the caller (names of the
/// directory's own files, no paths). Like [`SegmentDir`]: a creation, rename or removal
/// may be undone by a crash until [`SnapshotDir::sync`] returns, and a file's data until
/// its own sync. Safe to share: a snapshot being written holds a handle of its own.
pub trait SnapshotDir: Send + Sync {
    /// The path of file `name`, for messages.
    fn path(&self, name: &str) -> PathBuf;
    /// The names of the files in the directory, in any order (a real directory lists
    /// every file; the caller picks its own by name).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates file `name` empty for writing; one of that name is replaced (truncated).
    fn create(&self, name: &str) -> io::Result<Box<dyn WalStorage>>;
    /// Opens existing file `name` for reading.
    fn open(&self, name: &str) -> io::Result<Box<dyn WalStorage>>;
    /// Renames `from` to `to` atomically, replacing a file named `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes file `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable (fsync of the directory).
    fn sync(&self) -> io::Result<()>;
}

/// The path of segment `first_sequence` of the WAL at `wal_path`: the WAL path followed by
/// a dot and the number in 20 digits, so that names sort in log order.
pub fn segment_path(wal_path: &Path, first_sequence: u64) -> PathBuf {
    let mut name = OsString::from(wal_path.as_os_str());
    name.push(format!(".{first_sequence:020}"));
    PathBuf::from(name)
}

/// The path of one file of the WAL at `wal_path`.
pub fn wal_file_path(wal_path: &Path, file: WalFile) -> PathBuf {
    match file {
        WalFile::Legacy => wal_path.to_path_buf(),
        WalFile::Segment(first) => segment_path(wal_path, first),
    }
}

/// The real file.
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    pub fn new(file: File) -> FileStorage {
        FileStorage { file }
    }
}

impl WalStorage for FileStorage {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn read_prefix(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(len);
        self.file.seek(SeekFrom::Start(0))?;
        (&mut self.file).take(len as u64).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn file_len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// The real directory of a WAL. Holds the WAL's exclusive lock (an `flock` on the file at
/// the WAL path) for as long as it lives.
pub struct FileDir {
    path: PathBuf,
    dir: PathBuf,
    /// The file name of the WAL path: segment names are it, a dot and 20 digits.
    name: OsString,
    lock: File,
}

impl FileDir {
    /// Opens the directory of the WAL at `path`: creates the file at `path` if it is missing
    /// (nothing else is created) and takes its exclusive lock.
    pub fn open(path: &Path) -> Result<FileDir, WalError> {
        let (dir, name) = check_wal_path(path)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|source| WalError::Io {
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
        Ok(FileDir {
            path: path.to_path_buf(),
            dir,
            name,
            lock,
        })
    }

    /// The first sequence number a file name stands for, when it is a segment of this WAL.
    fn segment_of(&self, file_name: &[u8]) -> Option<u64> {
        let digits = file_name
            .strip_prefix(self.name.as_bytes())?
            .strip_prefix(b".")?;
        if digits.len() != 20 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Twenty digits can exceed u64: such a name was not written by a WAL.
        std::str::from_utf8(digits).ok()?.parse().ok()
    }
}

impl SegmentDir for FileDir {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(first) = self.segment_of(entry?.file_name().as_bytes()) {
                found.push(first);
            }
        }
        Ok(found)
    }

    fn open(&mut self, file: WalFile) -> io::Result<Box<dyn WalStorage>> {
        let file = match file {
            WalFile::Legacy => self.lock.try_clone()?,
            WalFile::Segment(first) => OpenOptions::new()
                .read(true)
                .write(true)
                .open(segment_path(&self.path, first))?,
        };
        Ok(Box::new(FileStorage::new(file)))
    }

    fn create(&mut self, first_sequence: u64) -> io::Result<Box<dyn WalStorage>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(segment_path(&self.path, first_sequence))?;
        Ok(Box::new(FileStorage::new(file)))
    }

    fn remove(&mut self, file: WalFile) -> io::Result<()> {
        match file {
            // Unlinking it would let a second process lock a new file of the same name.
            // Emptying it is synced here, since the file's own size is not part of the
            // directory that `sync` commits.
            WalFile::Legacy => {
                self.lock.set_len(0)?;
                self.lock.sync_all()
            }
            WalFile::Segment(first) => std::fs::remove_file(segment_path(&self.path, first)),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn snapshot_dir(&self) -> Arc<dyn SnapshotDir> {
        Arc::new(FileSnapshotDir::new(&self.dir))
    }
}

/// A real directory for snapshot files. Holds no lock: the WAL's [`FileDir`] does. New
/// files are readable by their owner only ([`FILE_MODE`]) from their first byte, as the
/// node's other files are: a snapshot holds all of the node's data, and a backup's may
/// sit in a directory others can read.
#[derive(Clone, Debug)]
pub struct FileSnapshotDir {
    dir: PathBuf,
}

impl FileSnapshotDir {
    /// The directory `dir`.
    pub fn new(dir: &Path) -> FileSnapshotDir {
        FileSnapshotDir {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory holding `path` (`.` when it has none) and the file name of `path`.
    pub fn of_file(path: &Path) -> (FileSnapshotDir, String) {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (FileSnapshotDir::new(dir), name)
    }
}

impl SnapshotDir for FileSnapshotDir {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            // A name that is not UTF-8 is no snapshot's.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(self.dir.join(name))?;
        Ok(Box::new(FileStorage::new(file)))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        Ok(Box::new(FileStorage::new(File::open(self.dir.join(name))?)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    fn sync(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// The WAL's directory and file name, with an error that says exactly what is wrong with
/// the path.
fn check_wal_path(path: &Path) -> Result<(PathBuf, OsString), WalError> {
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
    let name = match path.file_name() {
        Some(name) if !path.is_dir() => name.to_os_string(),
        _ => {
            return Err(WalError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
    };
    Ok((dir, name))
}
