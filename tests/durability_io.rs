//! Durability promise 3 (I/O errors). See docs/durability.md.
//!
//! The storage seam fails the Nth write or the Nth sync, for every N that the workload
//! reaches, on real files ([`FileDir`]) and on the simulated disk ([`MemDir`]), in durable
//! and fast mode, with segments large enough for the whole workload and with segments so
//! small that it starts new ones (so that faults also hit segment creation). A real
//! disk-full comes from a 2 MiB tmpfs (this file) and from RLIMIT_FSIZE
//! (`disk_full_fails_the_put_and_keeps_every_acknowledged_write` in tests/client_faults.rs). Each time: the failing call returns an error, memory is
//! unchanged, every later write is refused until reopen, and after reopen every
//! acknowledged write is there (and nothing that was never written).
//!
//! Run: `cargo test --release --test durability_io -- --nocapture`. Every N is covered in
//! every run, so there is no separate long run.

mod common;
use common::{Action, Model};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use softadastra::store::{Change, Store, StoreError, StoreOptions};
use softadastra::wal::{Fault, FaultyDir, FileDir, MemDir, PowerCut, SegmentDir, WalError};

/// Small puts, removes and batches, with three 400 KiB values: the log outgrows its
/// 1 MiB preallocation (durable mode) and the 256 KiB write buffer spills (fast mode).
fn workload() -> Vec<Action> {
    let mut actions = Vec::new();
    for i in 0..24u32 {
        let key = format!("k{}", i % 7);
        actions.push(match i % 6 {
            0 | 1 | 3 => Action::Put(key, format!("value-{i}").into_bytes()),
            2 => Action::Remove(key),
            4 => Action::Batch(vec![
                Change::Put {
                    key,
                    value: vec![i as u8; 100],
                },
                Change::Remove {
                    key: format!("k{}", (i + 1) % 7),
                },
            ]),
            _ => Action::Put(format!("big{i}"), vec![i as u8; 400 * 1024]),
        });
    }
    actions
}

fn state(store: &Store) -> Model {
    store.list("").into_iter().collect()
}

fn wal_error(e: &StoreError) -> Option<&WalError> {
    match e {
        StoreError::Wal(w) => Some(w),
        _ => None,
    }
}

/// A segment size small enough that the workload starts several segments (its large values
/// get one each).
const SMALL_SEGMENTS: u64 = 64 * 1024;

/// Where the store's WAL lives for one run.
enum Backend {
    /// The simulated disk.
    Mem(MemDir),
    /// A real file in a temporary directory.
    File {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl Backend {
    fn new(mem: bool) -> Backend {
        if mem {
            Backend::Mem(MemDir::new())
        } else {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("node.wal");
            Backend::File { _dir: dir, path }
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            Backend::Mem(_) => std::env::temp_dir().join("softadastra-io-simulated.wal"),
            Backend::File { path, .. } => path.clone(),
        }
    }

    fn dir(&self) -> Box<dyn SegmentDir> {
        match self {
            Backend::Mem(disk) => Box::new(disk.clone()),
            Backend::File { path, .. } => Box::new(FileDir::open(path).unwrap()),
        }
    }

    fn options(&self, durable: bool, segment_size: u64) -> StoreOptions {
        let mut options = StoreOptions::new("node-a", Some(self.path()), durable);
        options.wal_segment_size = segment_size;
        options
    }

    fn open(
        &self,
        durable: bool,
        segment_size: u64,
        fault: Option<Fault>,
    ) -> Result<Store, StoreError> {
        let dir = match fault {
            Some(fault) => Box::new(FaultyDir::new(self.dir(), fault)),
            None => self.dir(),
        };
        Store::open_with(&self.options(durable, segment_size), Some(dir), &mut ())
    }
}

/// What one faulty run did.
enum Outcome {
    /// Opening the WAL hit the fault.
    OpenFailed,
    /// A write call (or a flush) met the fault.
    CallFailed,
    /// The workload finished without meeting the fault: N is past the end.
    NotReached,
}

/// Runs the workload on a store whose storage fails the chosen call and checks promise 3.
fn run_with_fault(mem: bool, durable: bool, segment_size: u64, fault: Fault) -> Outcome {
    let ctx = format!(
        "{} {} segments of {segment_size} bytes {fault:?}",
        if mem { "memory" } else { "file" },
        if durable { "durable" } else { "fast" }
    );
    let backend = Backend::new(mem);
    let store = match backend.open(durable, segment_size, Some(fault)) {
        Ok(store) => store,
        Err(e) => {
            assert!(
                matches!(wal_error(&e), Some(WalError::Io { .. })),
                "{ctx}: open failed with {e}"
            );
            let store = backend
                .open(durable, segment_size, None)
                .expect("reopen after failed open");
            assert!(store.is_empty(), "{ctx}: data invented");
            store.put("after", b"ok").unwrap();
            return Outcome::OpenFailed;
        }
    };
    // snapshots[i]: the state after the first i calls; the failed one is the last.
    let mut snapshots = vec![Model::new()];
    // Calls whose effect must survive: acknowledged durable writes, or writes before a
    // successful flush.
    let mut floor = 0;
    let mut failure = None;
    for (i, action) in workload().iter().enumerate() {
        let mut next = snapshots.last().unwrap().clone();
        action.apply(&mut next);
        let mut put_applied = false;
        let result = action.perform(&store).and_then(|()| {
            put_applied = true;
            if !durable && i % 5 == 4 {
                store.flush()?;
                floor = snapshots.len();
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                snapshots.push(next);
                if durable {
                    floor = snapshots.len() - 1;
                }
            }
            Err(e) => {
                failure = Some((e, next, put_applied));
                break;
            }
        }
    }
    let Some((error, attempted, put_applied)) = failure else {
        return Outcome::NotReached;
    };
    let acknowledged = snapshots.len() - 1;
    let wal = wal_error(&error).unwrap_or_else(|| panic!("{ctx}: {error}"));
    if durable {
        assert!(matches!(wal, WalError::Io { .. }), "{ctx}: {error}");
    } else {
        // Fast mode: a spilled buffer's failure is reported to the put that triggered it
        // as the poisoned WAL it left; a flush reports the I/O error itself.
        assert!(
            matches!(wal, WalError::Io { .. } | WalError::Poisoned { .. }),
            "{ctx}: {error}"
        );
    }
    let memory = state(&store);
    let unchanged = snapshots.last().unwrap();
    // In fast mode the failing call may be the flush after a successful put.
    let expected = if put_applied { &attempted } else { unchanged };
    assert!(memory == *expected, "{ctx}: the failed call changed memory");
    for action in workload().iter().take(3) {
        let e = action.perform(&store).unwrap_err();
        assert!(
            matches!(wal_error(&e), Some(WalError::Poisoned { .. })),
            "{ctx}: a write after the failure gave {e}"
        );
        assert!(e.to_string().contains("reopen to recover"), "{e}");
    }
    assert!(matches!(
        store
            .flush()
            .map_err(|e| wal_error(&e).map(|w| matches!(w, WalError::Poisoned { .. }))),
        Err(Some(true))
    ));
    assert_eq!(
        state(&store),
        memory,
        "{ctx}: refused writes changed memory"
    );
    drop(store);

    let mut allowed = snapshots[floor..].to_vec();
    allowed.push(attempted);
    let check = |store: &Store, what: &str| {
        let found = state(store);
        assert!(
            allowed.contains(&found),
            "{ctx}, {what}: reopened with {} keys, not a state the store had after its \
             last acknowledged write ({} acknowledged, floor {floor})",
            found.len(),
            acknowledged
        );
    };
    // Restart without losing power: the same image.
    let store = backend.open(durable, segment_size, None).expect("reopen");
    check(&store, "reopen");
    if let Backend::Mem(disk) = &backend {
        drop(store);
        // And a power cut after the error: only what was synced survives.
        let after_cut = disk.power_cut(PowerCut::LOSE_UNSYNCED);
        let options = backend.options(durable, segment_size);
        let store = Store::open_with(&options, Some(Box::new(after_cut)), &mut ()).unwrap();
        check(&store, "reopen after a power cut");
        if durable {
            assert_eq!(
                &state(&store),
                unchanged,
                "{ctx}: durable state after a cut"
            );
        }
    } else {
        store.put("after-reopen", b"ok").unwrap();
        drop(store);
        let store = backend.open(durable, segment_size, None).unwrap();
        assert_eq!(
            store.get("after-reopen").as_deref(),
            Some(&b"ok"[..]),
            "{ctx}"
        );
    }
    Outcome::CallFailed
}

/// Fails write N, then sync N, for N = 1, 2, ... until the workload no longer reaches N,
/// with the default segment size and with small segments.
fn every_n(mem: bool, durable: bool) {
    for segment_size in [softadastra::wal::DEFAULT_SEGMENT_SIZE, SMALL_SEGMENTS] {
        every_n_with(mem, durable, segment_size);
    }
}

fn every_n_with(mem: bool, durable: bool, segment_size: u64) {
    let started = Instant::now();
    for kind in ["write", "sync"] {
        let (mut open_failed, mut call_failed) = (0, 0);
        let mut n = 1;
        loop {
            assert!(n < 1000, "the workload never stopped reaching the fault");
            assert!(started.elapsed() < Duration::from_secs(300), "time limit");
            let fault = if kind == "write" {
                Fault::Write(n)
            } else {
                Fault::Sync(n)
            };
            match run_with_fault(mem, durable, segment_size, fault) {
                Outcome::OpenFailed => open_failed += 1,
                Outcome::CallFailed => call_failed += 1,
                Outcome::NotReached => break,
            }
            n += 1;
        }
        println!(
            "{} {} segments of {segment_size} bytes: failing {kind} N = 1..{}: {open_failed} \
             during open, {call_failed} during writes",
            if mem { "memory" } else { "file" },
            if durable { "durable" } else { "fast" },
            n - 1
        );
        assert!(call_failed > 0, "no write met the fault");
    }
}

#[test]
fn failing_nth_write_or_sync_on_a_real_file_durable_mode() {
    every_n(false, true);
}

#[test]
fn failing_nth_write_or_sync_on_a_real_file_fast_mode() {
    every_n(false, false);
}

#[test]
fn failing_nth_write_or_sync_on_the_simulated_disk_durable_mode() {
    every_n(true, true);
}

#[test]
fn failing_nth_write_or_sync_on_the_simulated_disk_fast_mode() {
    every_n(true, false);
}

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root).
    fn mount(size: &str) -> Option<Tmpfs> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let data = CString::new(format!("size={size}")).unwrap();
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                println!(
                    "skipped: mounting a tmpfs needs root ({e}); RLIMIT_FSIZE covers disk full"
                );
                return None;
            }
            panic!("mounting a tmpfs on {}: {e}", dir.path().display());
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.dir.path().as_os_str().as_encoded_bytes())
            .expect("no NUL in a temp path");
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Fills a real 2 MiB tmpfs until a write fails, then checks the failed put changed
/// nothing, later writes are refused, and reopening keeps every acknowledged write.
fn fill_a_small_tmpfs(durable: bool) {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let path = fs.path().join("node.wal");
    let options = StoreOptions::new("node-a", Some(path.clone()), durable);
    let store = Store::open(&options).unwrap();
    let value = |i: usize| vec![i as u8; 50 * 1024];
    let mut model = Model::new();
    // Fast mode: the writes covered by a successful flush.
    let mut flushed = Model::new();
    let mut history = vec![Model::new()];
    let error = loop {
        assert!(history.len() < 200, "the 2 MiB tmpfs never filled");
        let i = history.len();
        let key = format!("k{i}");
        let result = store.put(&key, &value(i)).and_then(|_| {
            if !durable && i % 4 == 0 {
                store.flush()?;
                let mut now = model.clone();
                now.insert(key.clone(), value(i));
                flushed = now;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                model.insert(key, value(i));
                history.push(model.clone());
            }
            Err(e) => break e,
        }
    };
    let text = error.to_string();
    // Fast mode: a spilled buffer's failure reaches the put as the poisoned WAL.
    assert!(
        text.contains("no space left on device") || (!durable && text.contains("refuses writes")),
        "{text}"
    );
    let memory = state(&store);
    assert!(
        memory == model || (!durable && memory.len() == model.len() + 1),
        "the failed put changed memory"
    );
    let later = store.put("small", b"1").unwrap_err();
    assert!(later.to_string().contains("refuses writes"), "{later}");
    drop(store);
    let store = Store::open(&options).expect("reopen on the full tmpfs");
    let found = state(&store);
    if durable {
        assert!(
            found == model || found.len() == model.len() + 1,
            "after reopen {} keys, {} acknowledged",
            found.len(),
            model.len()
        );
        for (k, v) in &model {
            assert_eq!(found.get(k), Some(v), "acknowledged {k} lost");
        }
    } else {
        for (k, v) in &flushed {
            assert_eq!(found.get(k), Some(v), "flushed {k} lost");
        }
        assert!(
            history.contains(&found) || found.len() == model.len() + 1,
            "after reopen a state the store never had ({} keys)",
            found.len()
        );
    }
    println!(
        "{}: {} puts succeeded ({} flushed) before the 2 MiB tmpfs was full; reopened with {}",
        if durable { "durable" } else { "fast" },
        model.len(),
        if durable { model.len() } else { flushed.len() },
        found.len()
    );
    drop(store);
    drop(fs);
}

#[test]
fn disk_full_on_a_small_tmpfs_fails_the_put_and_reopen_keeps_every_acknowledged_write() {
    fill_a_small_tmpfs(true);
}

#[test]
fn disk_full_on_a_small_tmpfs_in_fast_mode_keeps_every_flushed_write() {
    fill_a_small_tmpfs(false);
}
