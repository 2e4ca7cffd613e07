//! Test doubles for the storage seam: a simulated disk that can lose what was not synced
//! (data, and file creations, renames and deletions alike), tear a write at any byte or flip
//! bits (`MemDir`, `PowerCut`). It serves the WAL's segments ([`SegmentDir`]) and the
//! snapshots next to them ([`SnapshotDir`]) as one directory. (The directory that fails
//! chosen writes or syncs, `FaultyDir`, is in `faults.rs`: the client's test-only options
//! use it, so the library ships it.) Built for tests only: the crate's own unit tests, and
//! its integration tests through the `internals` feature (enabled by the crate's
//! dev-dependency on itself); the library that applications link has none of it.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::{SegmentDir, SnapshotDir, WalFile, WalStorage};

/// The files of a directory, by name: what a [`MemDir`] holds (or would hold after a power
/// cut). [`WalFile::Legacy`] is always there, possibly empty.
pub type DirImage = BTreeMap<WalFile, Vec<u8>>;

/// The name of a file of a [`MemDir`]: one of the WAL's, or one named by a
/// [`SnapshotDir`] caller.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Wal(WalFile),
    Named(String),
}

/// One file's contents: what reads see, and what survived its last sync.
#[derive(Clone, Debug, Default)]
struct Inode {
    written: Vec<u8>,
    durable: Vec<u8>,
}

/// A change not yet made durable, in the order it was made.
#[derive(Clone, Debug)]
enum Pending {
    Write {
        inode: usize,
        offset: u64,
        bytes: Vec<u8>,
    },
    Create {
        name: Name,
        inode: usize,
    },
    Remove {
        name: Name,
    },
    Rename {
        from: Name,
        to: Name,
    },
    /// The legacy file emptied.
    Empty {
        inode: usize,
    },
}

/// The state of a simulated disk.
#[derive(Clone, Debug)]
struct SimDisk {
    /// File contents; files are referred to by index, so that a name can be removed and
    /// the file still be found by the changes made to it.
    inodes: Vec<Inode>,
    /// The names reads see.
    names: BTreeMap<Name, usize>,
    /// The names that survived the last directory sync.
    durable_names: BTreeMap<Name, usize>,
    /// Changes since the last sync that covers them, in order.
    pending: Vec<Pending>,
    /// Mutating calls (writes, syncs, creations, renames, removals) left before the power
    /// goes off; `None`: never.
    power_left: Option<u64>,
    /// Mutating calls made (that the power allowed).
    calls: u64,
}

/// Applies a write to an image, zero-filling any gap before `offset` (like a sparse file).
fn apply_write(image: &mut Vec<u8>, offset: u64, buf: &[u8]) {
    let offset = offset as usize;
    if image.len() < offset + buf.len() {
        image.resize(offset + buf.len(), 0);
    }
    image[offset..offset + buf.len()].copy_from_slice(buf);
}

/// Renames `from` to `to` in a directory's names (nothing when `from` is not there).
fn apply_rename(names: &mut BTreeMap<Name, usize>, from: &Name, to: &Name) {
    if let Some(inode) = names.remove(from) {
        names.insert(to.clone(), inode);
    }
}

impl SimDisk {
    fn from_files(files: BTreeMap<Name, Vec<u8>>) -> SimDisk {
        let mut disk = SimDisk {
            inodes: Vec::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending: Vec::new(),
            power_left: None,
            calls: 0,
        };
        let mut files = files;
        files.entry(Name::Wal(WalFile::Legacy)).or_default();
        for (name, bytes) in files {
            disk.names.insert(name, disk.inodes.len());
            disk.inodes.push(Inode {
                written: bytes.clone(),
                durable: bytes,
            });
        }
        disk.durable_names = disk.names.clone();
        disk
    }

    /// Counts a mutating call against the power budget.
    fn powered(&mut self) -> io::Result<()> {
        match &mut self.power_left {
            Some(0) => Err(io::Error::other("simulated power loss")),
            Some(n) => {
                *n -= 1;
                self.calls += 1;
                Ok(())
            }
            None => {
                self.calls += 1;
                Ok(())
            }
        }
    }

    /// Creates file `name` empty, replacing one of that name (a new file takes the name).
    fn create(&mut self, name: Name) -> io::Result<usize> {
        self.powered()?;
        let inode = self.inodes.len();
        self.inodes.push(Inode::default());
        self.names.insert(name.clone(), inode);
        self.pending.push(Pending::Create { name, inode });
        Ok(inode)
    }

    /// Makes every pending change to one file durable (a file sync).
    fn sync_inode(&mut self, inode: usize) {
        let mut kept = Vec::with_capacity(self.pending.len());
        for change in self.pending.drain(..) {
            match change {
                Pending::Write {
                    inode: i,
                    offset,
                    bytes,
                } if i == inode => apply_write(&mut self.inodes[i].durable, offset, &bytes),
                Pending::Empty { inode: i } if i == inode => self.inodes[i].durable.clear(),
                other => kept.push(other),
            }
        }
        self.pending = kept;
    }

    /// Makes the pending creations, removals and emptyings durable (a directory sync).
    fn sync_dir(&mut self) {
        // An emptied file is synced as a whole first, so that no earlier pending write can
        // bring its old contents back.
        let emptied: Vec<usize> = self
            .pending
            .iter()
            .filter_map(|c| match c {
                Pending::Empty { inode } => Some(*inode),
                _ => None,
            })
            .collect();
        for inode in emptied {
            self.sync_inode(inode);
        }
        let mut kept = Vec::with_capacity(self.pending.len());
        for change in self.pending.drain(..) {
            match change {
                Pending::Create { name, inode } => {
                    self.durable_names.insert(name, inode);
                }
                Pending::Remove { name } => {
                    self.durable_names.remove(&name);
                }
                Pending::Rename { from, to } => apply_rename(&mut self.durable_names, &from, &to),
                other => kept.push(other),
            }
        }
        self.pending = kept;
    }
}

/// What a simulated power cut keeps of the changes made since they were last synced: the
/// first `kept_writes` of them in full, then the first `torn_bytes` bytes of the next one
/// when it is a write (a torn write), then nothing. Changes reach the disk in order;
/// creations, renames and removals of files are changes like writes (kept whole or lost),
/// until a directory sync makes them durable. What was synced always survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerCut {
    pub kept_writes: usize,
    pub torn_bytes: usize,
}

impl PowerCut {
    /// Everything written since the last sync is lost.
    pub const LOSE_UNSYNCED: PowerCut = PowerCut {
        kept_writes: 0,
        torn_bytes: 0,
    };
}

/// An in-memory [`SegmentDir`] for power-cut tests. Clones share one simulated disk, so a
/// test keeps a handle while the WAL owns another.
///
/// Each file keeps its *durable* contents (what its last sync made durable) apart from
/// what reads see; the directory keeps the names that survived its last sync apart from
/// the names reads see; the changes in between are kept in order.
/// [`MemDir::power_cut`] builds the directory a reboot would find, as a new independent
/// disk; [`MemDir::flip_bit`] damages the medium. [`MemDir::power_off_after`] makes the disk
/// stop mid-operation: later writes, syncs, creations and removals fail and change nothing,
/// as if the machine had died there.
#[derive(Clone, Debug)]
pub struct MemDir {
    disk: Arc<Mutex<SimDisk>>,
}

impl Default for MemDir {
    fn default() -> Self {
        MemDir::new()
    }
}

/// A file of a [`MemDir`].
struct MemFile {
    disk: Arc<Mutex<SimDisk>>,
    inode: usize,
}

impl MemDir {
    /// An empty directory: no WAL yet (the file at the WAL path exists, empty, as the lock
    /// file would).
    pub fn new() -> MemDir {
        MemDir::from_image(DirImage::new())
    }

    /// A directory holding `image`, all of it durable.
    pub fn from_image(image: DirImage) -> MemDir {
        Self::from_files(
            image
                .into_iter()
                .map(|(name, bytes)| (Name::Wal(name), bytes))
                .collect(),
        )
    }

    fn from_files(files: BTreeMap<Name, Vec<u8>>) -> MemDir {
        MemDir {
            disk: Arc::new(Mutex::new(SimDisk::from_files(files))),
        }
    }

    fn disk(&self) -> MutexGuard<'_, SimDisk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The WAL's files as reads see them now (every change applied).
    pub fn image(&self) -> DirImage {
        let disk = self.disk();
        disk.names
            .iter()
            .filter_map(|(name, &i)| match name {
                Name::Wal(file) => Some((*file, disk.inodes[i].written.clone())),
                Name::Named(_) => None,
            })
            .collect()
    }

    /// The other files (snapshots and their temporary files), by name, as reads see them
    /// now.
    pub fn named_files(&self) -> BTreeMap<String, Vec<u8>> {
        let disk = self.disk();
        disk.names
            .iter()
            .filter_map(|(name, &i)| match name {
                Name::Named(n) => Some((n.clone(), disk.inodes[i].written.clone())),
                Name::Wal(_) => None,
            })
            .collect()
    }

    /// Mutating calls (writes, syncs, creations, renames, removals) made so far on this
    /// disk; the power budget of [`MemDir::power_off_after`] counts the same calls.
    pub fn calls(&self) -> u64 {
        self.disk().calls
    }

    /// The WAL's files that survived the last syncs.
    pub fn durable_image(&self) -> DirImage {
        self.power_cut(PowerCut::LOSE_UNSYNCED).image()
    }

    /// Sizes of the changes made since they were last synced, in order (0 for a creation,
    /// rename, removal or emptying of a file).
    pub fn pending_writes(&self) -> Vec<usize> {
        self.disk()
            .pending
            .iter()
            .map(|c| match c {
                Pending::Write { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .collect()
    }

    /// Lets `calls` more writes, syncs, creations, renames or removals succeed; every later
    /// one fails with an I/O error and changes nothing (the power went off there).
    pub fn power_off_after(&self, calls: u64) {
        self.disk().power_left = Some(calls);
    }

    /// The directory a reboot would find after a power cut now: the durable files and
    /// names plus what `cut` keeps of the later changes. The result is a new disk, all of
    /// it durable.
    pub fn power_cut(&self, cut: PowerCut) -> MemDir {
        let disk = self.disk();
        let mut contents: Vec<Vec<u8>> = disk.inodes.iter().map(|i| i.durable.clone()).collect();
        let mut names = disk.durable_names.clone();
        let mut pending = disk.pending.iter();
        for change in pending.by_ref().take(cut.kept_writes) {
            match change {
                Pending::Write {
                    inode,
                    offset,
                    bytes,
                } => apply_write(&mut contents[*inode], *offset, bytes),
                Pending::Create { name, inode } => {
                    names.insert(name.clone(), *inode);
                }
                Pending::Remove { name } => {
                    names.remove(name);
                }
                Pending::Rename { from, to } => apply_rename(&mut names, from, to),
                Pending::Empty { inode } => contents[*inode].clear(),
            }
        }
        if let Some(Pending::Write {
            inode,
            offset,
            bytes,
        }) = pending.next()
        {
            let torn = cut.torn_bytes.min(bytes.len());
            apply_write(&mut contents[*inode], *offset, &bytes[..torn]);
        }
        MemDir::from_files(
            names
                .into_iter()
                .map(|(name, i)| (name, std::mem::take(&mut contents[i])))
                .collect(),
        )
    }

    /// Flips bit `bit` (counting from bit 0 of byte 0) of `file`, in what reads see and in
    /// what is durable, as bit rot on the medium would.
    pub fn flip_bit(&self, file: WalFile, bit: u64) {
        let mut guard = self.disk();
        let disk = &mut *guard;
        let Some(&inode) = disk.names.get(&Name::Wal(file)) else {
            return;
        };
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        let contents = &mut disk.inodes[inode];
        for image in [&mut contents.written, &mut contents.durable] {
            if let Some(b) = image.get_mut(byte) {
                *b ^= mask;
            }
        }
        for change in &mut disk.pending {
            if let Pending::Write {
                inode: i,
                offset,
                bytes,
            } = change
                && *i == inode
                && let Some(b) = byte
                    .checked_sub(*offset as usize)
                    .and_then(|at| bytes.get_mut(at))
            {
                *b ^= mask;
            }
        }
    }

    fn not_found(name: &Name) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{name:?} does not exist"))
    }

    fn file(&self, inode: usize) -> Box<dyn WalStorage> {
        Box::new(MemFile {
            disk: self.disk.clone(),
            inode,
        })
    }

    fn inode_of(&self, name: &Name) -> io::Result<usize> {
        self.disk()
            .names
            .get(name)
            .copied()
            .ok_or_else(|| Self::not_found(name))
    }
}

impl SegmentDir for MemDir {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        Ok(self
            .disk()
            .names
            .keys()
            .filter_map(|name| match name {
                Name::Wal(WalFile::Segment(first)) => Some(*first),
                Name::Wal(WalFile::Legacy) | Name::Named(_) => None,
            })
            .collect())
    }

    fn open(&mut self, file: WalFile) -> io::Result<Box<dyn WalStorage>> {
        let inode = self.inode_of(&Name::Wal(file))?;
        Ok(self.file(inode))
    }

    fn create(&mut self, first_sequence: u64) -> io::Result<Box<dyn WalStorage>> {
        let name = Name::Wal(WalFile::Segment(first_sequence));
        let mut disk = self.disk();
        if disk.names.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name:?} exists"),
            ));
        }
        let inode = disk.create(name)?;
        drop(disk);
        Ok(self.file(inode))
    }

    fn remove(&mut self, file: WalFile) -> io::Result<()> {
        let name = Name::Wal(file);
        let mut disk = self.disk();
        let inode = *disk.names.get(&name).ok_or_else(|| Self::not_found(&name))?;
        disk.powered()?;
        match file {
            WalFile::Legacy => {
                disk.inodes[inode].written.clear();
                disk.pending.push(Pending::Empty { inode });
            }
            WalFile::Segment(_) => {
                disk.names.remove(&name);
                disk.pending.push(Pending::Remove { name });
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.powered()?;
        disk.sync_dir();
        Ok(())
    }

    fn snapshot_dir(&self) -> Arc<dyn SnapshotDir> {
        Arc::new(self.clone())
    }
}

/// The snapshot files of a [`MemDir`]: named files beside the WAL's, in the same
/// simulated directory (one directory sync covers both).
impl SnapshotDir for MemDir {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("(simulated disk)").join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self
            .disk()
            .names
            .keys()
            .filter_map(|name| match name {
                Name::Named(n) => Some(n.clone()),
                Name::Wal(_) => None,
            })
            .collect())
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        let inode = self.disk().create(Name::Named(name.to_string()))?;
        Ok(self.file(inode))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        let inode = self.inode_of(&Name::Named(name.to_string()))?;
        Ok(self.file(inode))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (Name::Named(from.to_string()), Name::Named(to.to_string()));
        let mut disk = self.disk();
        if !disk.names.contains_key(&from) {
            return Err(Self::not_found(&from));
        }
        disk.powered()?;
        apply_rename(&mut disk.names, &from, &to);
        disk.pending.push(Pending::Rename { from, to });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let name = Name::Named(name.to_string());
        let mut disk = self.disk();
        if !disk.names.contains_key(&name) {
            return Err(Self::not_found(&name));
        }
        disk.powered()?;
        disk.names.remove(&name);
        disk.pending.push(Pending::Remove { name });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.powered()?;
        disk.sync_dir();
        Ok(())
    }
}

impl MemFile {
    fn disk(&self) -> MutexGuard<'_, SimDisk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.powered()?;
        disk.sync_inode(self.inode);
        Ok(())
    }
}

impl WalStorage for MemFile {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.disk().inodes[self.inode].written.clone())
    }

    fn read_prefix(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let disk = self.disk();
        let written = &disk.inodes[self.inode].written;
        Ok(written[..len.min(written.len())].to_vec())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let disk = self.disk();
        let written = &disk.inodes[self.inode].written;
        let from = usize::try_from(offset).unwrap_or(usize::MAX);
        match written.get(from..).and_then(|rest| rest.get(..buf.len())) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn file_len(&mut self) -> io::Result<u64> {
        Ok(self.disk().inodes[self.inode].written.len() as u64)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.powered()?;
        apply_write(&mut disk.inodes[self.inode].written, offset, buf);
        disk.pending.push(Pending::Write {
            inode: self.inode,
            offset,
            bytes: buf.to_vec(),
        });
        Ok(())
    }

    /// Like `fdatasync` on a preallocated file; the simulation commits the size as well.
    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }
}
