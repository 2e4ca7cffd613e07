//! The storage seam under the WAL: the few file operations it needs, so that tests can put
//! a fault-injecting file in place of the real one.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// The file operations the WAL uses. Offsets are absolute.
pub trait WalStorage: Send {
    /// Reads the whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes written data durable (fdatasync: file size and times are not committed).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes data and metadata durable (fsync), needed after the file grew.
    fn sync_all(&mut self) -> io::Result<()>;
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

/// Which operation a [`FaultyStorage`] makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The n-th `write_at` (counting from 1) and every later one fail.
    Write(u64),
    /// The n-th `sync_data` or `sync_all` (counting from 1) and every later one fail.
    Sync(u64),
}

/// A storage wrapper that fails chosen operations with an I/O error, for fault tests.
/// The failing write is still applied partially (its first half), as a real torn write
/// would be.
pub struct FaultyStorage<S> {
    inner: S,
    fault: Fault,
    writes: u64,
    syncs: u64,
}

impl<S: WalStorage> FaultyStorage<S> {
    pub fn new(inner: S, fault: Fault) -> Self {
        FaultyStorage {
            inner,
            fault,
            writes: 0,
            syncs: 0,
        }
    }

    fn injected(what: &str) -> io::Error {
        io::Error::other(format!("injected {what} failure"))
    }

    fn sync_fails(&mut self) -> bool {
        self.syncs += 1;
        matches!(self.fault, Fault::Sync(n) if self.syncs >= n)
    }
}

impl<S: WalStorage> WalStorage for FaultyStorage<S> {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.writes += 1;
        if matches!(self.fault, Fault::Write(n) if self.writes >= n) {
            self.inner.write_at(offset, &buf[..buf.len() / 2])?;
            return Err(Self::injected("write"));
        }
        self.inner.write_at(offset, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if self.sync_fails() {
            return Err(Self::injected("sync"));
        }
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        if self.sync_fails() {
            return Err(Self::injected("sync"));
        }
        self.inner.sync_all()
    }
}
