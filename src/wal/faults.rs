//! A directory whose files fail chosen writes or syncs with an I/O error (`FaultyDir`):
//! the WAL's fault tests put it in place of the real directory, and a client opened with
//! the test-only options `fail_write_at` / `fail_sync_at` ([`crate::ClientOptions`]) opens
//! its store through it, so that applications test what they do when a put fails. The
//! library ships it for that; nothing uses it unless asked.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::{SegmentDir, SnapshotDir, WalFile, WalStorage};

/// Which operation a [`FaultyDir`] makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(any(test, feature = "internals")),
    allow(dead_code, reason = "the lasting faults are the WAL tests'")
)]
pub enum Fault {
    /// The n-th write (counting from 1) and every later one fail. Writes are `write_at` on
    /// any file of the WAL or a snapshot, and the creation, renaming and removal of files.
    Write(u64),
    /// The n-th sync (counting from 1) and every later one fail: `sync_data` or `sync_all`
    /// on any file, or a sync of the directory.
    Sync(u64),
    /// Only the n-th write fails (a fault that clears: the option `fail_write_at`).
    WriteOnce(u64),
    /// Only the n-th sync fails (the option `fail_sync_at`).
    SyncOnce(u64),
}

impl Fault {
    fn write_fails(self, writes: u64) -> bool {
        match self {
            Fault::Write(n) => writes >= n,
            Fault::WriteOnce(n) => writes == n,
            Fault::Sync(_) | Fault::SyncOnce(_) => false,
        }
    }

    fn sync_fails(self, syncs: u64) -> bool {
        match self {
            Fault::Sync(n) => syncs >= n,
            Fault::SyncOnce(n) => syncs == n,
            Fault::Write(_) | Fault::WriteOnce(_) => false,
        }
    }
}

/// The faults of one or more [`FaultyDir`]s and what they have counted so far. A client
/// keeps one for its whole life, so that its writes and syncs are counted across reopens
/// and a fault fires once; the counting is paused while the store opens (see
/// [`FaultPlan::count`]).
#[derive(Clone, Debug)]
pub struct FaultPlan(Arc<Mutex<Counters>>);

#[derive(Debug)]
struct Counters {
    faults: Vec<Fault>,
    counting: bool,
    writes: u64,
    syncs: u64,
}

impl Counters {
    fn write_fails(&mut self) -> bool {
        if !self.counting {
            return false;
        }
        self.writes = self.writes.saturating_add(1);
        self.faults.iter().any(|f| f.write_fails(self.writes))
    }

    fn sync_fails(&mut self) -> bool {
        if !self.counting {
            return false;
        }
        self.syncs = self.syncs.saturating_add(1);
        self.faults.iter().any(|f| f.sync_fails(self.syncs))
    }
}

impl FaultPlan {
    /// These faults, counting from now.
    pub fn new(faults: Vec<Fault>) -> FaultPlan {
        FaultPlan(Arc::new(Mutex::new(Counters {
            faults,
            counting: true,
            writes: 0,
            syncs: 0,
        })))
    }

    /// Counts writes and syncs (and fails the chosen ones) or not: a client does not count
    /// what opening its store writes, so that `fail_write_at = 1` is the first write the
    /// application makes.
    pub fn count(&self, counting: bool) {
        counters(&self.0).counting = counting;
    }
}

type SharedCounters = Arc<Mutex<Counters>>;

fn counters(c: &SharedCounters) -> MutexGuard<'_, Counters> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

/// A file of a [`FaultyDir`]. A failing write is still applied partially (its first
/// half), as a real torn write would be.
struct FaultyStorage {
    inner: Box<dyn WalStorage>,
    counters: SharedCounters,
}

impl WalStorage for FaultyStorage {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }

    fn read_prefix(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read_prefix(len)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn file_len(&mut self) -> io::Result<u64> {
        self.inner.file_len()
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if counters(&self.counters).write_fails() {
            self.inner.write_at(offset, &buf[..buf.len() / 2])?;
            return Err(injected("write"));
        }
        self.inner.write_at(offset, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if counters(&self.counters).sync_fails() {
            return Err(injected("sync"));
        }
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        if counters(&self.counters).sync_fails() {
            return Err(injected("sync"));
        }
        self.inner.sync_all()
    }
}

/// A directory wrapper that fails chosen operations, counted over every file of the WAL, its
/// snapshots and the directory itself, with an I/O error, for fault tests.
pub struct FaultyDir {
    inner: Box<dyn SegmentDir>,
    counters: SharedCounters,
}

impl FaultyDir {
    /// `inner` with `fault`, counted from now.
    #[cfg(any(test, feature = "internals"))]
    pub fn new(inner: Box<dyn SegmentDir>, fault: Fault) -> FaultyDir {
        Self::with_plan(inner, &FaultPlan::new(vec![fault]))
    }

    /// `inner` failing as `plan` says, counting with every other directory of the plan.
    pub fn with_plan(inner: Box<dyn SegmentDir>, plan: &FaultPlan) -> FaultyDir {
        FaultyDir {
            inner,
            counters: plan.0.clone(),
        }
    }

    fn wrap(&self, inner: Box<dyn WalStorage>) -> Box<dyn WalStorage> {
        wrap(&self.counters, inner)
    }
}

fn wrap(counters: &SharedCounters, inner: Box<dyn WalStorage>) -> Box<dyn WalStorage> {
    Box::new(FaultyStorage {
        inner,
        counters: counters.clone(),
    })
}

/// The snapshot side of a [`FaultyDir`], counting with it.
struct FaultySnapshotDir {
    inner: Arc<dyn SnapshotDir>,
    counters: SharedCounters,
}

impl SnapshotDir for FaultySnapshotDir {
    fn path(&self, name: &str) -> PathBuf {
        self.inner.path(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        if counters(&self.counters).write_fails() {
            return Err(injected("create"));
        }
        Ok(wrap(&self.counters, self.inner.create(name)?))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn WalStorage>> {
        Ok(wrap(&self.counters, self.inner.open(name)?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if counters(&self.counters).write_fails() {
            return Err(injected("rename"));
        }
        self.inner.rename(from, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if counters(&self.counters).write_fails() {
            return Err(injected("remove"));
        }
        self.inner.remove(name)
    }

    fn sync(&self) -> io::Result<()> {
        if counters(&self.counters).sync_fails() {
            return Err(injected("sync"));
        }
        self.inner.sync()
    }
}

impl SegmentDir for FaultyDir {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        self.inner.list()
    }

    fn open(&mut self, file: WalFile) -> io::Result<Box<dyn WalStorage>> {
        let inner = self.inner.open(file)?;
        Ok(self.wrap(inner))
    }

    fn create(&mut self, first_sequence: u64) -> io::Result<Box<dyn WalStorage>> {
        if counters(&self.counters).write_fails() {
            return Err(injected("create"));
        }
        let inner = self.inner.create(first_sequence)?;
        Ok(self.wrap(inner))
    }

    fn remove(&mut self, file: WalFile) -> io::Result<()> {
        if counters(&self.counters).write_fails() {
            return Err(injected("remove"));
        }
        self.inner.remove(file)
    }

    fn sync(&mut self) -> io::Result<()> {
        if counters(&self.counters).sync_fails() {
            return Err(injected("sync"));
        }
        self.inner.sync()
    }

    fn snapshot_dir(&self) -> Arc<dyn SnapshotDir> {
        Arc::new(FaultySnapshotDir {
            inner: self.inner.snapshot_dir(),
            counters: self.counters.clone(),
        })
    }
}
