//! Client options: every field of the C++ `ClientOptions`, its presets and validity rules.

use crate::error::{Error, Result};
use crate::metadata::validate_node_id;

/// Default WAL path of the presets, relative to the working directory.
pub const DEFAULT_WAL_PATH: &str = "data/sdk-store.wal";

/// How a client is configured. Field names and defaults are those of the C++ SDK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// This node's id, the origin of its writes: 1 to 128 characters of `[A-Za-z0-9._-]`
    /// ([`crate::validate_node_id`]).
    pub node_id: String,
    /// The WAL file; its directory must exist.
    pub wal_path: String,
    /// Keep a write-ahead log. Off, nothing survives the process.
    pub enable_wal: bool,
    /// Sync every write to disk before it returns.
    pub auto_flush: bool,
    /// Most operations in one sync batch (at least 1).
    pub sync_batch_size: usize,
    /// Retries after the first send before an operation fails.
    pub max_sync_retries: u32,
    /// How long an operation in flight waits for a peer's ACK before it is sent again.
    pub ack_timeout_ms: u32,
    /// The base of the retry backoff.
    pub retry_interval_ms: u32,
    /// An operation completes on a peer's ACK; off, once written to a peer.
    pub require_ack: bool,
    /// Queue local writes for sync at once; off, they stay pending until
    /// [`Client::queue_pending`](crate::Client::queue_pending).
    pub auto_queue: bool,
    /// Allow [`Client::start_transport`](crate::Client::start_transport).
    pub enable_transport: bool,
    /// The address the transport binds.
    pub transport_host: String,
    /// The port the transport binds (not 0 when the transport is enabled).
    pub transport_port: u16,
    /// Allow [`Client::start_discovery`](crate::Client::start_discovery).
    pub enable_discovery: bool,
    /// The address the discovery socket binds.
    pub discovery_host: String,
    /// The port the discovery socket binds (not 0 when discovery is enabled).
    pub discovery_port: u16,
    /// Where announcements are sent.
    pub discovery_broadcast_host: String,
    /// The port announcements are sent to; 0 means `discovery_port`.
    pub discovery_broadcast_port: u16,
    /// Time between discovery announcements.
    pub discovery_interval_ms: u32,
    /// A peer not heard from for half of this is stale, for all of it expired.
    pub discovery_ttl_ms: u32,
    /// Connect to peers found by discovery.
    pub auto_connect_discovered: bool,
    /// Empty means "use the node id".
    pub display_name: String,
    /// The application's version, shown in [`NodeInfo`](crate::NodeInfo) (not empty).
    pub version: String,
    /// A remote operation stamped more than this many milliseconds ahead of this node's
    /// clock is refused and counted; it never moves the local clock.
    pub max_clock_drift_ms: u64,
    /// The file of this node's identity key (made on first open, mode 0600). Empty: the
    /// WAL's path with ".key" appended; a memory-only node makes a new key each open.
    pub identity_path: String,
    /// Plaintext peer connections that accept any peer: for tests only, with a warning at
    /// every start. Off (the default), connections are TLS 1.3 and only trusted keys are
    /// accepted ([`Client::trust_peer`](crate::Client::trust_peer)).
    pub insecure_transport: bool,
    /// The file of trusted peers, one "node-id fingerprint" per line. Empty: the WAL's
    /// path with ".trust" appended; a memory-only node keeps its trust in memory.
    pub trust_path: String,
    /// A peer connection whose handshake (TLS and Hello) is not done after this long is
    /// closed: a stalled or slow handshake holds a connection slot no longer (at least 1).
    pub handshake_timeout_ms: u32,
    /// Bytes of one WAL segment file (4 KiB to 1 TiB); the log is a sequence of them
    /// (docs/wal-format.md).
    pub wal_segment_size: u64,
    /// Compact on its own (a snapshot, then the log it covers deleted) when the log since
    /// the last snapshot outgrows `compact_log_bytes`, checked by `tick()` and the
    /// background loop.
    pub auto_compact: bool,
    /// Log bytes since the last snapshot beyond which an automatic compaction runs. 0: the
    /// larger of the last snapshot's size and one segment, which keeps the disk use under
    /// twice the live data plus two segments.
    pub compact_log_bytes: u64,
    /// Tombstones (what a removal leaves) are dropped once every peer this node syncs with
    /// has seen them; a peer not heard from for longer than this is not waited for, and is
    /// sent the full state when it comes back (docs/sync.md). 0: tombstones are never
    /// dropped (set it when the application carries batches itself: its peers are not
    /// known to the node, which drops tombstones at once when it knows none).
    pub tombstone_horizon_ms: u64,
    /// The transport binds a port the system picks, free at that moment; read it with
    /// [`Client::transport_port`](crate::Client::transport_port). `transport_port` must
    /// then be 0 (a plain port 0 is refused, so that a port left unset is not mistaken for
    /// "any"). For tests and tools that run several nodes at once.
    pub ephemeral_transport_port: bool,
    /// Discovery binds a port the system picks ([`Client::discovery_port`](crate::Client::discovery_port));
    /// `discovery_port` must then be 0. With `discovery_broadcast_port` 0, nothing is
    /// broadcast: announcements go to the targets added with
    /// [`Client::add_discovery_target`](crate::Client::add_discovery_target) only.
    pub ephemeral_discovery_port: bool,
    /// For tests only: the client reads the time from a clock of its own that stands still
    /// until [`Client::advance_clock`](crate::Client::advance_clock) moves it, so that ACK
    /// timeouts, retries and their backoff, redials, keepalives and stale peers are tested
    /// without sleeping. Off (the default): the system's clocks.
    pub manual_clock: bool,
    /// For tests only: the n-th write to the node's files (counting from 1 over the
    /// client's life, from its first open; what opening writes is not counted) fails with
    /// an I/O error, once. 0 (the default): never. Needs the WAL.
    pub fail_write_at: u64,
    /// For tests only: the n-th sync of the node's files fails with an I/O error, once,
    /// counted as `fail_write_at` is. 0 (the default): never. Needs the WAL.
    pub fail_sync_at: u64,
    /// Most keys whose newest unsent write the outbox holds to push to peers itself (each
    /// costs about 230 bytes); writes of further keys wait for the next catch-up a peer
    /// asks for (on connecting, then every 30 s). At least 1. Default 16384.
    pub sync_push_key_limit: usize,
}

/// The default of [`ClientOptions::tombstone_horizon_ms`]: seven days.
pub const DEFAULT_TOMBSTONE_HORIZON_MS: u64 = 7 * 24 * 60 * 60 * 1000;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            node_id: "node-1".into(),
            wal_path: DEFAULT_WAL_PATH.into(),
            enable_wal: true,
            auto_flush: true,
            sync_batch_size: 64,
            max_sync_retries: 5,
            ack_timeout_ms: 10_000,
            retry_interval_ms: 5_000,
            require_ack: true,
            auto_queue: true,
            enable_transport: false,
            transport_host: "0.0.0.0".into(),
            transport_port: 0,
            enable_discovery: false,
            discovery_host: "0.0.0.0".into(),
            discovery_port: 0,
            discovery_broadcast_host: "255.255.255.255".into(),
            discovery_broadcast_port: 0,
            discovery_interval_ms: 3_000,
            discovery_ttl_ms: 15_000,
            auto_connect_discovered: true,
            display_name: String::new(),
            version: crate::DEFAULT_VERSION.into(),
            max_clock_drift_ms: crate::store::DEFAULT_MAX_CLOCK_DRIFT_MS,
            identity_path: String::new(),
            insecure_transport: false,
            trust_path: String::new(),
            handshake_timeout_ms: 10_000,
            wal_segment_size: crate::wal::DEFAULT_SEGMENT_SIZE,
            auto_compact: true,
            compact_log_bytes: 0,
            tombstone_horizon_ms: DEFAULT_TOMBSTONE_HORIZON_MS,
            ephemeral_transport_port: false,
            ephemeral_discovery_port: false,
            manual_clock: false,
            fail_write_at: 0,
            fail_sync_at: 0,
            sync_push_key_limit: crate::sync::outbox::DEFAULT_PUSH_KEY_LIMIT,
        }
    }
}

impl ClientOptions {
    /// WAL on, every write synced before it returns.
    pub fn persistent(node_id: &str, wal_path: &str) -> Self {
        ClientOptions {
            node_id: node_id.into(),
            wal_path: wal_path.into(),
            ..Default::default()
        }
    }

    /// WAL on, writes buffered (not synced before returning), batch 128, 2 retries, no ACK.
    pub fn fast(node_id: &str, wal_path: &str) -> Self {
        ClientOptions {
            auto_flush: false,
            sync_batch_size: 128,
            max_sync_retries: 2,
            require_ack: false,
            ..Self::persistent(node_id, wal_path)
        }
    }

    /// No WAL: nothing survives the process. 2 retries, no ACK.
    pub fn memory_only(node_id: &str) -> Self {
        ClientOptions {
            node_id: node_id.into(),
            enable_wal: false,
            auto_flush: false,
            max_sync_retries: 2,
            require_ack: false,
            ..Default::default()
        }
    }

    /// Where the identity key is kept: `identity_path`, else next to the WAL; `None` for a
    /// memory-only node without an `identity_path` (a new key each open).
    pub fn effective_identity_path(&self) -> Option<std::path::PathBuf> {
        if !self.identity_path.is_empty() {
            return Some(self.identity_path.clone().into());
        }
        self.enable_wal
            .then(|| format!("{}.key", self.wal_path).into())
    }


    /// Where the trusted peers are kept: `trust_path`, else next to the WAL; `None` for a
    /// memory-only node without a `trust_path` (trust kept in memory).
    pub fn effective_trust_path(&self) -> Option<std::path::PathBuf> {
        if !self.trust_path.is_empty() {
            return Some(self.trust_path.clone().into());
        }
        self.enable_wal
            .then(|| format!("{}.trust", self.wal_path).into())
    }

    /// The display name, falling back to the node id.
    pub fn effective_display_name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.node_id
        } else {
            &self.display_name
        }
    }

    /// The sync engine's settings.
    pub(crate) fn sync_config(&self) -> crate::sync::SyncConfig {
        crate::sync::SyncConfig {
            batch_size: self.sync_batch_size,
            max_retries: self.max_sync_retries,
            ack_timeout_ms: u64::from(self.ack_timeout_ms),
            retry_interval_ms: u64::from(self.retry_interval_ms),
            require_ack: self.require_ack,
            auto_queue: self.auto_queue,
            push_key_limit: self.sync_push_key_limit,
        }
    }

    /// What the production guide advises against in these options, as warnings for the
    /// operator (each says why and what to do); empty when nothing is. Not errors: tests
    /// and demos use such settings on purpose.
    ///
    /// - A WAL under `/tmp` or `/var/tmp` (or the process's temporary directory): the
    ///   system may clean it.
    /// - A generic node id (`test`, `local`, `default`, `node-1`, ...): peers, logs and
    ///   diagnostics tell nodes apart by it, and two nodes given the same generic id
    ///   collide.
    pub fn advice(&self) -> Vec<String> {
        let mut advice = Vec::new();
        if self.enable_wal
            && let Some(dir) = temporary_dir_of(std::path::Path::new(&self.wal_path))
        {
            advice.push(format!(
                "the WAL {} is under {}, a temporary directory the system may clean: keep \
                 a node's data in a stable path such as /var/lib/softadastra/<node id>",
                self.wal_path,
                dir.display()
            ));
        }
        if is_generic_node_id(&self.node_id) {
            advice.push(format!(
                "node id \"{}\" is a generic name: peers, logs and diagnostics tell nodes \
                 apart by it, and two nodes given it would collide; give each node a \
                 stable, unique id such as edge-store-kampala-01",
                self.node_id
            ));
        }
        advice
    }

    /// Checks every rule; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, reason: &str| {
            Err(Error::InvalidOptions {
                field,
                reason: reason.into(),
            })
        };
        if let Err(e) = validate_node_id(&self.node_id) {
            return Err(Error::InvalidOptions {
                field: "node_id",
                reason: e.to_string(),
            });
        }
        if self.version.is_empty() {
            return invalid("version", "version must not be empty");
        }
        if self.enable_wal && self.wal_path.is_empty() {
            return invalid(
                "wal_path",
                "wal_path must not be empty when the WAL is enabled",
            );
        }
        if self.enable_wal
            && !(crate::wal::MIN_SEGMENT_SIZE..=crate::wal::MAX_SEGMENT_SIZE)
                .contains(&self.wal_segment_size)
        {
            return Err(Error::InvalidOptions {
                field: "wal_segment_size",
                reason: format!(
                    "wal_segment_size must be from {} to {} bytes",
                    crate::wal::MIN_SEGMENT_SIZE,
                    crate::wal::MAX_SEGMENT_SIZE
                ),
            });
        }
        if self.sync_batch_size == 0 {
            return invalid("sync_batch_size", "sync_batch_size must be at least 1");
        }
        if self.sync_push_key_limit == 0 {
            return invalid(
                "sync_push_key_limit",
                "sync_push_key_limit must be at least 1",
            );
        }
        if self.enable_transport {
            if self.transport_host.is_empty() {
                return invalid("transport_host", "transport_host must not be empty");
            }
            if let Err(reason) = check_port(
                "transport_port",
                self.transport_port,
                "ephemeral_transport_port",
                self.ephemeral_transport_port,
            ) {
                return invalid("transport_port", &reason);
            }
            if self.handshake_timeout_ms == 0 {
                return invalid(
                    "handshake_timeout_ms",
                    "handshake_timeout_ms must be at least 1",
                );
            }
        }
        if self.enable_discovery {
            if self.discovery_interval_ms == 0 {
                return invalid(
                    "discovery_interval_ms",
                    "discovery_interval_ms must be at least 1",
                );
            }
            if u64::from(self.discovery_ttl_ms) < 2 * u64::from(self.discovery_interval_ms) {
                return invalid(
                    "discovery_ttl_ms",
                    "discovery_ttl_ms must be at least twice discovery_interval_ms",
                );
            }
            if self.discovery_host.is_empty() {
                return invalid("discovery_host", "discovery_host must not be empty");
            }
            if let Err(reason) = check_port(
                "discovery_port",
                self.discovery_port,
                "ephemeral_discovery_port",
                self.ephemeral_discovery_port,
            ) {
                return invalid("discovery_port", &reason);
            }
        }
        for (field, at) in [
            ("fail_write_at", self.fail_write_at),
            ("fail_sync_at", self.fail_sync_at),
        ] {
            if at != 0 && !self.enable_wal {
                return Err(Error::InvalidOptions {
                    field,
                    reason: format!(
                        "{field} needs the WAL (enable_wal): a memory-only node writes no file"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A port and its "ephemeral" flag agree: a port, or 0 with the flag.
fn check_port(
    name: &str,
    port: u16,
    flag: &str,
    ephemeral: bool,
) -> std::result::Result<(), String> {
    match (port, ephemeral) {
        (0, false) => Err(format!(
            "{name} must not be 0 (set {flag} for a port the system picks)"
        )),
        (port, true) if port != 0 => Err(format!(
            "{name} must be 0 with {flag} (the system picks the port), not {port}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_sdk_table() {
        let p = ClientOptions::persistent("a", "x.wal");
        assert!(p.enable_wal && p.auto_flush && p.require_ack);
        assert_eq!((p.sync_batch_size, p.max_sync_retries), (64, 5));
        let f = ClientOptions::fast("a", "x.wal");
        assert!(f.enable_wal && !f.auto_flush && !f.require_ack);
        assert_eq!((f.sync_batch_size, f.max_sync_retries), (128, 2));
        let m = ClientOptions::memory_only("a");
        assert!(!m.enable_wal && !m.require_ack);
        assert!(p.validate().is_ok() && f.validate().is_ok() && m.validate().is_ok());
    }

    #[test]
    fn invalid_options_name_the_field() {
        let field = |o: ClientOptions| match o.validate() {
            Err(Error::InvalidOptions { field, .. }) => field,
            other => panic!("expected invalid options, got {other:?}"),
        };
        let base = ClientOptions::persistent("a", "x.wal");
        assert_eq!(
            field(ClientOptions {
                node_id: String::new(),
                ..base.clone()
            }),
            "node_id"
        );
        assert_eq!(
            field(ClientOptions {
                version: String::new(),
                ..base.clone()
            }),
            "version"
        );
        assert_eq!(
            field(ClientOptions {
                wal_path: String::new(),
                ..base.clone()
            }),
            "wal_path"
        );
        assert_eq!(
            field(ClientOptions {
                sync_batch_size: 0,
                ..base.clone()
            }),
            "sync_batch_size"
        );
        let t = ClientOptions {
            enable_transport: true,
            transport_port: 0,
            ..base.clone()
        };
        assert_eq!(field(t), "transport_port");
        let discovery = ClientOptions {
            enable_discovery: true,
            discovery_port: 9400,
            transport_port: 4041,
            ..base.clone()
        };
        assert!(discovery.validate().is_ok());
        let d = ClientOptions {
            discovery_host: String::new(),
            ..discovery.clone()
        };
        assert_eq!(field(d), "discovery_host");
        let d = ClientOptions {
            discovery_ttl_ms: 5_000,
            ..discovery.clone()
        };
        assert_eq!(field(d), "discovery_ttl_ms");
        let d = ClientOptions {
            discovery_interval_ms: 0,
            ..discovery.clone()
        };
        assert_eq!(field(d), "discovery_interval_ms");
        let listen_only = ClientOptions {
            transport_port: 0,
            ..discovery
        };
        assert!(listen_only.validate().is_ok(), "the api.md rules allow it");
        let no_wal = ClientOptions {
            enable_wal: false,
            wal_path: String::new(),
            ..base
        };
        assert!(no_wal.validate().is_ok());
    }
}

/// The temporary directory `path` lies under (`/tmp`, `/var/tmp`, or the process's
/// temporary directory), if any. The path is made absolute (against the working directory)
/// and its existing part resolved, so that `./data` in /tmp or a link into /tmp counts.
fn temporary_dir_of(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    // The longest existing ancestor, resolved (the WAL file may not exist yet).
    let resolved = absolute
        .ancestors()
        .find_map(|a| {
            let real = a.canonicalize().ok()?;
            Some(real.join(absolute.strip_prefix(a).ok()?))
        })
        .unwrap_or(absolute);
    let mut temporary: Vec<PathBuf> = vec![PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    temporary.push(std::env::temp_dir());
    temporary
        .into_iter()
        .filter(|t| t != Path::new("/"))
        .flat_map(|t| {
            let real = t.canonicalize().ok();
            [Some(t), real]
        })
        .flatten()
        .find(|t| resolved.starts_with(t))
}

/// Whether `id` is one of the generic names the production guide warns about: `test`,
/// `local`, `default` and the like, or such a word with a short number (`node-1`,
/// `test02`). A generated id (`node-<host>-<8 hex digits>`) is not.
pub fn is_generic_node_id(id: &str) -> bool {
    const WORDS: &[&str] = &[
        "test", "testing", "local", "localhost", "default", "node", "demo", "example", "tmp",
        "temp", "dev", "peer", "client", "server", "device", "foo", "bar",
    ];
    let lower = id.to_ascii_lowercase();
    let word = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = lower.len() - word.len();
    let word = word.trim_end_matches(['-', '_', '.']);
    WORDS.contains(&word) && digits <= 4 && (digits > 0 || word == lower)
}

#[cfg(test)]
mod test_option_tests {
    use super::*;

    fn refusal(o: &ClientOptions) -> (&'static str, String) {
        match o.validate() {
            Err(Error::InvalidOptions { field, reason }) => (field, reason),
            other => panic!("expected invalid options, got {other:?}"),
        }
    }

    #[test]
    fn port_zero_is_refused_unless_an_ephemeral_port_is_asked_for() {
        let mut o = ClientOptions::memory_only("edge-a");
        o.enable_transport = true;
        let (field, reason) = refusal(&o);
        assert_eq!(field, "transport_port");
        assert!(reason.contains("ephemeral_transport_port"), "{reason}");
        o.ephemeral_transport_port = true;
        assert!(o.validate().is_ok());
        o.transport_port = 4040;
        let (field, reason) = refusal(&o);
        assert_eq!(field, "transport_port");
        assert!(reason.contains("must be 0") && reason.contains("4040"), "{reason}");

        let mut o = ClientOptions::memory_only("edge-a");
        o.enable_discovery = true;
        assert_eq!(refusal(&o).0, "discovery_port");
        o.ephemeral_discovery_port = true;
        assert!(o.validate().is_ok());
        o.discovery_port = 9400;
        assert_eq!(refusal(&o).0, "discovery_port");
    }

    #[test]
    fn disk_faults_need_a_wal() {
        let mut o = ClientOptions::memory_only("edge-a");
        o.fail_write_at = 1;
        let (field, reason) = refusal(&o);
        assert_eq!(field, "fail_write_at");
        assert!(reason.contains("enable_wal"), "{reason}");
        o.fail_write_at = 0;
        o.fail_sync_at = 2;
        assert_eq!(refusal(&o).0, "fail_sync_at");
        let mut p = ClientOptions::persistent("edge-a", "x.wal");
        p.fail_write_at = 1;
        p.fail_sync_at = 2;
        assert!(p.validate().is_ok());
    }

    #[test]
    fn the_test_only_options_are_off_by_default() {
        let o = ClientOptions::default();
        assert!(!o.manual_clock && !o.ephemeral_transport_port && !o.ephemeral_discovery_port);
        assert_eq!((o.fail_write_at, o.fail_sync_at), (0, 0));
    }
}

#[cfg(test)]
mod advice_tests {
    use super::*;

    #[test]
    fn generic_node_ids_are_told_from_real_ones() {
        for generic in ["test", "local", "default", "node-1", "Node_01", "test02", "node.123"] {
            assert!(is_generic_node_id(generic), "{generic}");
        }
        for real in [
            "edge-store-kampala-01",
            "clinic-tablet-17",
            "node-till-3-1a2b3c4d",
            "node-12345678",
            "testbed-paris",
            "node-a",
        ] {
            assert!(!is_generic_node_id(real), "{real}");
        }
    }

    #[test]
    fn a_wal_under_a_temporary_directory_and_a_generic_id_are_advised_against() {
        let o = ClientOptions::persistent("test", "/tmp/node-a.wal");
        let advice = o.advice();
        assert_eq!(advice.len(), 2, "{advice:?}");
        assert!(advice[0].contains("/tmp/node-a.wal") && advice[0].contains("temporary"));
        assert!(advice[1].contains("\"test\""));
        let o = ClientOptions::persistent("edge-01", "/var/tmp/x/node.wal");
        assert_eq!(o.advice().len(), 1);
        let o = ClientOptions::persistent("edge-01", "/var/lib/softadastra/edge-01/node.wal");
        assert!(o.advice().is_empty(), "{:?}", o.advice());
        let mut o = ClientOptions::memory_only("edge-01");
        o.wal_path = "/tmp/unused.wal".into();
        assert!(o.advice().is_empty(), "no WAL, nothing to lose");
    }
}
