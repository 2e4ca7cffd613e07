//! Test doubles for the storage seam: a file that fails on the n-th write or sync
//! (`FaultyStorage`), and a simulated disk that can lose what was not synced, tear a write
//! at any byte or flip bits (`MemStorage`, `PowerCut`). Built for tests only: the crate's
//! own unit tests, and its integration tests through the `internals` feature (enabled
//! by the crate's dev-dependency on itself); the library that applications link has none
//! of it.

use std::io;

use super::storage::WalStorage;

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

/// The state of a simulated disk: what a reader sees now, what survived the last sync, and
/// the writes in between, in order.
#[derive(Clone, Debug, Default)]
struct SimDisk {
    /// What reads see: every write applied.
    written: Vec<u8>,
    /// What survived the last `sync_data`/`sync_all` (both make everything durable).
    durable: Vec<u8>,
    /// Writes since the last sync, in order: (offset, bytes).
    pending: Vec<(u64, Vec<u8>)>,
    /// Mutating calls (writes and syncs) left before the power goes off; `None`: never.
    power_left: Option<u64>,
}

/// Applies a write to an image, zero-filling any gap before `offset` (like a sparse file).
fn apply_write(image: &mut Vec<u8>, offset: u64, buf: &[u8]) {
    let offset = offset as usize;
    if image.len() < offset + buf.len() {
        image.resize(offset + buf.len(), 0);
    }
    image[offset..offset + buf.len()].copy_from_slice(buf);
}

/// What a simulated power cut keeps of the writes made since the last sync: the first
/// `kept_writes` of them in full, then the first `torn_bytes` bytes of the next one (a torn
/// write), then nothing. Writes reach the disk in order; the synced image always survives.
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

/// An in-memory [`WalStorage`] for power-cut tests. Clones share one simulated disk, so a
/// test keeps a handle while the WAL owns another.
///
/// The disk keeps the *durable* image (what the last sync made durable) apart from the
/// *written* image (what reads see), plus the list of writes in between.
/// [`MemStorage::power_cut`] builds the image a reboot would find, as a new independent
/// disk; [`MemStorage::flip_bit`] damages the medium. [`MemStorage::power_off_after`] makes
/// the disk stop mid-operation: later writes and syncs fail and change nothing, as if the
/// machine had died there.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    disk: std::sync::Arc<std::sync::Mutex<SimDisk>>,
}

impl MemStorage {
    /// An empty disk: the WAL file does not exist yet.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// A disk holding `image`, all of it durable.
    pub fn with_image(image: Vec<u8>) -> MemStorage {
        let disk = SimDisk {
            written: image.clone(),
            durable: image,
            ..SimDisk::default()
        };
        MemStorage {
            disk: std::sync::Arc::new(std::sync::Mutex::new(disk)),
        }
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, SimDisk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What reads see now (every write applied).
    pub fn image(&self) -> Vec<u8> {
        self.disk().written.clone()
    }

    /// What survived the last sync.
    pub fn durable_image(&self) -> Vec<u8> {
        self.disk().durable.clone()
    }

    /// Lengths of the writes made since the last sync, in order.
    pub fn pending_writes(&self) -> Vec<usize> {
        self.disk().pending.iter().map(|(_, b)| b.len()).collect()
    }

    /// Lets `calls` more writes or syncs succeed; every later one fails with an I/O error
    /// and changes nothing (the power went off there).
    pub fn power_off_after(&self, calls: u64) {
        self.disk().power_left = Some(calls);
    }

    /// The disk a reboot would find after a power cut now: the durable image plus what
    /// `cut` keeps of the later writes. The result is a new disk, all of it durable.
    pub fn power_cut(&self, cut: PowerCut) -> MemStorage {
        let disk = self.disk();
        let mut image = disk.durable.clone();
        let mut pending = disk.pending.iter();
        for (offset, buf) in pending.by_ref().take(cut.kept_writes) {
            apply_write(&mut image, *offset, buf);
        }
        if let Some((offset, buf)) = pending.next() {
            let torn = cut.torn_bytes.min(buf.len());
            apply_write(&mut image, *offset, &buf[..torn]);
        }
        MemStorage::with_image(image)
    }

    /// Flips bit `bit` (counting from bit 0 of byte 0) in both images, as bit rot on the
    /// medium would.
    pub fn flip_bit(&self, bit: u64) {
        let mut guard = self.disk();
        let disk = &mut *guard;
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        for image in [&mut disk.written, &mut disk.durable] {
            if let Some(b) = image.get_mut(byte) {
                *b ^= mask;
            }
        }
        for (offset, buf) in &mut disk.pending {
            if let Some(b) = byte
                .checked_sub(*offset as usize)
                .and_then(|i| buf.get_mut(i))
            {
                *b ^= mask;
            }
        }
    }

    /// Counts a mutating call against the power budget.
    fn powered(disk: &mut SimDisk) -> io::Result<()> {
        match &mut disk.power_left {
            Some(0) => Err(io::Error::other("simulated power loss")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.disk();
        Self::powered(&mut disk)?;
        // Apply the pending writes rather than copy the whole image: syncs are frequent.
        let disk = &mut *disk;
        for (offset, buf) in disk.pending.drain(..) {
            apply_write(&mut disk.durable, offset, &buf);
        }
        Ok(())
    }
}

impl WalStorage for MemStorage {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.image())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        Self::powered(&mut disk)?;
        apply_write(&mut disk.written, offset, buf);
        disk.pending.push((offset, buf.to_vec()));
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
