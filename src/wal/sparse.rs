//! A test double for the storage seam whose files may be far larger than the memory of the
//! machine running the test: [`SparseDir`]. A file keeps only what was written to it, as
//! extents in write order (runs of zeros by their length alone), so that a log past 4 GiB
//! costs only its records; and it may claim a length nothing wrote
//! ([`SparseDir::set_len`]), as a segment that grew past 4 GiB on a device would. Used to
//! check that the WAL's offsets and sizes are u64 everywhere, on 32-bit targets too
//! (docs/edge.md). Built for tests only, like `doubles.rs`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::MemDir;
use super::storage::{SegmentDir, SnapshotDir, WalFile, WalStorage};

/// What one write left in a file.
#[derive(Clone, Debug)]
enum Extent {
    /// Bytes that are not all zero.
    Data(Vec<u8>),
    /// This many zero bytes (preallocation, a cut torn tail).
    Zeros(u64),
}

#[derive(Clone, Debug, Default)]
struct SparseFile {
    len: u64,
    /// (offset, extent), oldest first: a later write covers an earlier one.
    extents: Vec<(u64, Extent)>,
}

impl SparseFile {
    fn write(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::other("write past the largest u64 offset"))?;
        let extent = if buf.iter().all(|&b| b == 0) {
            Extent::Zeros(buf.len() as u64)
        } else {
            Extent::Data(buf.to_vec())
        };
        self.extents.push((offset, extent));
        self.len = self.len.max(end);
        Ok(())
    }

    /// Fills `buf` with the bytes at `offset` (zeros where nothing was written).
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.fill(0);
        for (at, extent) in &self.extents {
            let (at, len) = match extent {
                Extent::Data(bytes) => (*at, bytes.len() as u64),
                Extent::Zeros(n) => (*at, *n),
            };
            let from = at.max(offset);
            let to = (at + len).min(end);
            if from >= to {
                continue;
            }
            // Both differences are below buf.len(): they fit in usize.
            let dest = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match extent {
                Extent::Data(bytes) => {
                    dest.copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
                }
                Extent::Zeros(_) => dest.fill(0),
            }
        }
        Ok(())
    }

    /// The first `len` bytes (all of them when the file is shorter), refused when they
    /// would not fit in this platform's memory, as a real read would fail.
    fn prefix(&self, len: u64) -> io::Result<Vec<u8>> {
        let len = len.min(self.len);
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("a read of {len} bytes does not fit in memory"),
                )
            })?;
        let mut bytes = vec![0; n];
        self.read(0, &mut bytes)?;
        Ok(bytes)
    }
}

type Files = Arc<Mutex<BTreeMap<WalFile, SparseFile>>>;

/// An in-memory [`SegmentDir`] of sparse files (see the module). Clones share the files,
/// so a test keeps a handle while the WAL owns another. Syncs do nothing: there is no
/// power cut here. Snapshots go to an in-memory directory of their own (a [`MemDir`]):
/// the WAL writes none.
#[derive(Clone)]
pub struct SparseDir {
    files: Files,
    snapshots: Arc<MemDir>,
}

impl Default for SparseDir {
    fn default() -> Self {
        let mut files = BTreeMap::new();
        files.insert(WalFile::Legacy, SparseFile::default());
        SparseDir {
            files: Arc::new(Mutex::new(files)),
            snapshots: Arc::new(MemDir::default()),
        }
    }
}

impl SparseDir {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<WalFile, SparseFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `file` `len` bytes long, as `ftruncate` would (what lies past its written
    /// bytes reads as zeros); creates it when missing.
    pub fn set_len(&self, file: WalFile, len: u64) {
        let mut files = self.lock();
        let f = files.entry(file).or_default();
        f.len = len;
        f.extents.retain(|(at, _)| *at < len);
    }

    /// Writes `bytes` at `offset` of `file`, creating it when missing.
    pub fn write(&self, file: WalFile, offset: u64, bytes: &[u8]) {
        self.lock()
            .entry(file)
            .or_default()
            .write(offset, bytes)
            .expect("a write within u64");
    }

    /// `len` bytes of `file` from `offset`; `None` when the file is missing or shorter.
    pub fn read(&self, file: WalFile, offset: u64, len: usize) -> Option<Vec<u8>> {
        let files = self.lock();
        let mut bytes = vec![0; len];
        files.get(&file)?.read(offset, &mut bytes).ok()?;
        Some(bytes)
    }

    /// The length of `file`; `None` when it is missing.
    pub fn len_of(&self, file: WalFile) -> Option<u64> {
        self.lock().get(&file).map(|f| f.len)
    }

    /// The files present, with their lengths.
    pub fn files(&self) -> Vec<(WalFile, u64)> {
        self.lock().iter().map(|(k, f)| (*k, f.len)).collect()
    }
}

/// A file of a [`SparseDir`].
struct SparseHandle {
    files: Files,
    file: WalFile,
}

impl SparseHandle {
    fn with<T>(&self, f: impl FnOnce(&mut SparseFile) -> io::Result<T>) -> io::Result<T> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let file = files
            .get_mut(&self.file)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f(file)
    }
}

impl WalStorage for SparseHandle {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.with(|f| f.prefix(f.len))
    }

    fn read_prefix(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.with(|f| f.prefix(len as u64))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|f| f.read(offset, buf))
    }

    fn file_len(&mut self) -> io::Result<u64> {
        self.with(|f| Ok(f.len))
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.with(|f| f.write(offset, buf))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|_| Ok(()))
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.with(|_| Ok(()))
    }
}

impl SegmentDir for SparseDir {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        Ok(self
            .lock()
            .keys()
            .filter_map(|f| match f {
                WalFile::Segment(first) => Some(*first),
                WalFile::Legacy => None,
            })
            .collect())
    }

    fn open(&mut self, file: WalFile) -> io::Result<Box<dyn WalStorage>> {
        if !self.lock().contains_key(&file) {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(Box::new(SparseHandle {
            files: self.files.clone(),
            file,
        }))
    }

    fn create(&mut self, first_sequence: u64) -> io::Result<Box<dyn WalStorage>> {
        let file = WalFile::Segment(first_sequence);
        let mut files = self.lock();
        if files.contains_key(&file) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        files.insert(file, SparseFile::default());
        Ok(Box::new(SparseHandle {
            files: self.files.clone(),
            file,
        }))
    }

    fn remove(&mut self, file: WalFile) -> io::Result<()> {
        let mut files = self.lock();
        match file {
            WalFile::Legacy => {
                files.insert(WalFile::Legacy, SparseFile::default());
            }
            WalFile::Segment(_) => {
                files
                    .remove(&file)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn snapshot_dir(&self) -> Arc<dyn SnapshotDir> {
        self.snapshots.clone()
    }
}
