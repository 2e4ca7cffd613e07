//! Whether the node accepts writes ([`Client::health`]), and what a long-running node does
//! when it does not ([`HealthWatch`]).
//!
//! After a failed write or fsync (a full disk, an I/O error) the WAL refuses every write
//! until it is opened again: the kernel may have dropped the data a retry would report as
//! synced (src/wal/mod.rs). Reads go on. The node says so (its health, the status, the
//! metrics, the health endpoint), and a long-running node recovers by exiting with status
//! 1 for its service manager to restart it, which reopens the store and replays the log:
//! at once when the data directory takes writes again, or after a bounded grace. The
//! policy and its reasons are in docs/monitoring.md ("Health and recovery").

use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// Whether a node accepts writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Writes are accepted.
    Healthy,
    /// Every write is refused until the node is opened again (a failed write or sync of
    /// its log, a call that panicked, a closed client): why, in words.
    WritesRefused(String),
}

impl Health {
    /// Whether writes are accepted.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// Why writes are refused (`None` when they are accepted).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::WritesRefused(reason) => Some(reason),
        }
    }
}

/// "healthy", or "writes refused: <reason>", as `softadastra status` shows it.
impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::WritesRefused(reason) => write!(f, "writes refused: {reason}"),
        }
    }
}

/// The health of an open node (`None`: closed), given why its client is poisoned, if it is.
pub(super) fn health_of(node: Option<&OpenNode>, poisoned: Option<&str>) -> Health {
    if let Some(panic) = poisoned {
        return Health::WritesRefused(unusable_after(panic));
    }
    match node {
        None => Health::WritesRefused(Error::NotOpen.to_string()),
        Some(n) => match n.store.write_refusal() {
            Some(e) => Health::WritesRefused(e.to_string()),
            None => Health::Healthy,
        },
    }
}

/// What every call of a client poisoned by `panic` fails with.
pub(super) fn unusable_after(panic: &str) -> String {
    format!("the client is unusable after {panic}; close it and open it again")
}

impl Client {
    /// Whether the node accepts writes: [`Health::WritesRefused`] with the reason after a
    /// write or fsync of its log failed (until it is closed and opened again), after a
    /// call panicked, or when it is closed. Reads go on meanwhile (except after a panic).
    pub fn health(&self) -> Health {
        let poisoned = self.poisoned();
        let node = self.node.read();
        health_of(node.as_deref(), poisoned.as_deref())
    }

    /// Whether the cause of refused writes may have cleared: the file system of the WAL
    /// has room for the log's next write, and takes a small file, written and synced, in
    /// the WAL's directory. `Ok` for a memory-only node (nothing to probe).
    pub(super) fn probe_storage(&self) -> std::result::Result<(), String> {
        let node = self.node.read().clone();
        let Some(node) = node.filter(|n| n.store.has_wal()) else {
            return Ok(());
        };
        let wal = PathBuf::from(&self.options.wal_path);
        let dir = wal_dir(&wal);
        let needed = node.store.write_room_needed();
        let space = fs_space(&dir).map_err(|e| {
            format!("cannot read the free space of {}: {}", dir.display(), describe(&e))
        })?;
        if space.available < needed {
            return Err(format!(
                "{} has {} bytes free, the log's next write may need {needed}",
                dir.display(),
                space.available
            ));
        }
        let mut name = wal.into_os_string();
        name.push(".probe");
        let probe = PathBuf::from(name);
        let written = write_probe(&probe);
        // Removed whether it was written or not: a partial file must not stay.
        let _ = std::fs::remove_file(&probe);
        written.map_err(|e| format!("cannot write {}: {}", probe.display(), describe(&e)))
    }
}

fn describe(e: &io::Error) -> String {
    crate::io_error::describe_io(e)
}

/// A probe's bytes: small, so that probing a full disk every second costs nothing.
const PROBE_BYTES: usize = 4096;

fn write_probe(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&[0u8; PROBE_BYTES])?;
    file.sync_all()
}

/// The directory holding the WAL file `wal`.
pub(super) fn wal_dir(wal: &Path) -> PathBuf {
    match wal.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The size of a file system and the bytes its unprivileged users may still write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Space {
    pub total: u64,
    pub available: u64,
}

/// The space of the file system holding `path` (statvfs).
pub(super) fn fs_space(path: &Path) -> io::Result<Space> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statvfs for the call's duration.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types differ between platforms"
    )]
    let (frsize, blocks, bavail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok(Space {
        total: blocks.saturating_mul(frsize),
        available: bavail.saturating_mul(frsize),
    })
}

/// How often a node whose writes are refused checks whether the cause may have cleared.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The recovery policy of a long-running node (`softadastra node start`) when its writes
/// are refused: [`HealthWatch::check`], called on every turn of its loop, logs the refusal
/// at ERROR with its reason and then asks the node to exit (status 1), so that its service
/// manager restarts it and the reopened store takes writes again:
///
/// - as soon as a probe ([`PROBE_EVERY`]) finds room for the log's next write in the
///   WAL's file system and a small file there written and synced (the cause may have
///   cleared: a full disk freed, a device back);
/// - at the latest `exit_after` after the refusal was first seen, whatever the probes say
///   (the log's file may fail where a new file does not).
///
/// Meanwhile the node serves reads and reports itself unhealthy (status, metrics, health
/// endpoint), so operators and load balancers see the reason.
#[derive(Debug)]
pub struct HealthWatch {
    exit_after: Duration,
    refused: Option<Refused>,
}

#[derive(Debug)]
struct Refused {
    since: Instant,
    next_probe: Instant,
}

impl HealthWatch {
    /// A watch that asks for an exit at the latest `exit_after` after writes are refused.
    pub fn new(exit_after: Duration) -> HealthWatch {
        HealthWatch {
            exit_after,
            refused: None,
        }
    }

    /// Looks at `client`'s health at time `now`; `Some(reason)` when the node should exit
    /// (status 1) for its service manager to restart it. Logs what it sees and decides.
    pub fn check(&mut self, client: &Client, now: Instant) -> Option<String> {
        let node = &client.options.node_id;
        let reason = match client.health() {
            Health::Healthy => {
                if self.refused.take().is_some() {
                    log::info!("node {node}: writes are accepted again");
                }
                return None;
            }
            Health::WritesRefused(reason) => reason,
        };
        let exit_after = self.exit_after;
        let refused = self.refused.get_or_insert_with(|| {
            log::error!(
                "node {node}: writes refused: {reason}. Reads go on. The node exits with \
                 status 1, for its service manager to restart it and reopen the store, as \
                 soon as the data directory takes writes again, or in {} s at the latest",
                exit_after.as_secs()
            );
            Refused {
                since: now,
                next_probe: now,
            }
        });
        if now.saturating_duration_since(refused.since) >= exit_after {
            log::error!(
                "node {node}: writes still refused after {} s ({reason}): exiting with \
                 status 1 so that the service manager restarts the node",
                exit_after.as_secs()
            );
            return Some(reason);
        }
        if now < refused.next_probe {
            return None;
        }
        refused.next_probe = now + PROBE_EVERY;
        match client.probe_storage() {
            Ok(()) => {
                log::warn!(
                    "node {node}: the data directory takes writes again: exiting with status \
                     1 so that the restart reopens the store (writes were refused: {reason})"
                );
                Some(reason)
            }
            Err(why) => {
                log::debug!("node {node}: writes still refused: {why}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_node_is_never_asked_to_exit() {
        let client = Client::new(ClientOptions::memory_only("healthy-node"));
        client.open().unwrap();
        assert_eq!(client.health(), Health::Healthy);
        assert_eq!(client.health().to_string(), "healthy");
        let mut watch = HealthWatch::new(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(watch.check(&client, now), None);
        assert_eq!(watch.check(&client, now + Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_closed_client_refuses_writes_and_says_so() {
        let client = Client::new(ClientOptions::memory_only("closed-node"));
        let health = client.health();
        assert!(!health.is_healthy());
        assert_eq!(health.reason(), Some("client is not open"));
        assert_eq!(health.to_string(), "writes refused: client is not open");
    }

    #[test]
    fn a_panicked_client_refuses_writes_and_the_watch_asks_for_a_restart() {
        let client = Client::new(ClientOptions::memory_only("panicked-node"));
        client.open().unwrap();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.call_that_panics()
        }));
        let reason = client.health().reason().map(str::to_string).unwrap();
        assert!(reason.contains("injected fault"), "{reason}");
        // Nothing to probe on a memory-only node: the first check asks for the exit.
        let mut watch = HealthWatch::new(Duration::from_secs(60));
        assert_eq!(watch.check(&client, Instant::now()), Some(reason));
    }

    #[test]
    fn the_space_of_a_real_file_system_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let space = fs_space(dir.path()).unwrap();
        assert!(space.total > 0 && space.available <= space.total, "{space:?}");
        let missing = fs_space(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
