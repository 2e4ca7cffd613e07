//! The storage seam under the WAL: the few file operations it needs, so that tests can put
//! a fault-injecting or in-memory file (`doubles.rs`, feature `internals`) in place of
//! the real one.

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
