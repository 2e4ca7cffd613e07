//! One description of every type that crosses a foreign boundary: the C ABI (`src/ffi`),
//! the cxx bridge behind the C++ SDK (`src/bridge.rs`) and the JavaScript binding to come
//! each convert from this module, in one place each.
//!
//! - Options: [`OptionId`] numbers every field of [`ClientOptions`] (the numbers are the C
//!   ABI's `sa_option_t` and never change); [`OPTIONS`] gives each its name and kind;
//!   [`get_option`] and [`set_option`] read and write one field by number, checking its
//!   kind and range. The C ABI's options handle, the C++ SDK's conversion and the
//!   JavaScript binding all go through them, so a new option is a field, a number and a
//!   line here (plus the C++ struct's field, which the parity test checks).
//! - Values the library returns ([`SyncState`], [`TickResult`], [`NodeInfo`], [`Peer`],
//!   [`NetworkStats`]) and the options: [`Described::fields`] lists every field by name
//!   and value. Each list destructures its type exhaustively, so a field added to a type
//!   without being described does not compile. [`describe`] renders a list as
//!   `name=value` lines; `sa_client_describe`, the C++ SDK's `describe` functions and the
//!   parity tests, which walk every field through C and through C++, compare against it.
//! - Enums crossing as numbers ([`ErrorCode`], [`KeyStatus`], [`PeerState`]): [`ALL_ERROR_CODES`],
//!   [`ALL_KEY_STATUSES`] and [`ALL_PEER_STATES`] in number order.

use std::fmt;

use crate::error::{Error, ErrorCode, Result};
use crate::metadata::NodeInfo;
use crate::node::{ClientOptions, NetworkStats, Peer, PeerState};
use crate::sync::{KeyStatus, SyncState, TickResult};

/// The number of an option (`sa_option_t` in C). Numbers are never reused or renumbered;
/// new options take the next number.
///
/// The variants carry the C prefix (`SaOptionNodeId` is `SA_OPTION_NODE_ID`) because cbindgen
/// names C enumerators after the Rust variants.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum OptionId {
    /// Text: the node id, 1 to 128 of `A-Z a-z 0-9 . _ -`. Default "node-1".
    SaOptionNodeId = 0,
    /// Text: the WAL file; its directory must exist. Default "data/sdk-store.wal".
    SaOptionWalPath = 1,
    /// Boolean: keep a WAL (true) or memory only. Default true.
    SaOptionEnableWal = 2,
    /// Boolean: sync every write to disk before it returns. Default true.
    SaOptionAutoFlush = 3,
    /// Number: operations per sync batch, at least 1. Default 64.
    SaOptionSyncBatchSize = 4,
    /// Number: retries of an unacknowledged operation before it fails. Default 5.
    SaOptionMaxSyncRetries = 5,
    /// Number: how long a sent batch waits for its ACK. Default 10000.
    SaOptionAckTimeoutMs = 6,
    /// Number: the first retry's delay (doubling after). Default 5000.
    SaOptionRetryIntervalMs = 7,
    /// Boolean: an operation is done only when a peer acknowledges it. Default true.
    SaOptionRequireAck = 8,
    /// Boolean: queue local writes for sync at once (else: pending until queued). Default true.
    SaOptionAutoQueue = 9,
    /// Boolean: allow the TCP transport. Default false.
    SaOptionEnableTransport = 10,
    /// Text: the transport's listening host. Default "0.0.0.0".
    SaOptionTransportHost = 11,
    /// Number (port): the transport's listening port, not 0 when enabled. Default 0.
    SaOptionTransportPort = 12,
    /// Boolean: allow UDP discovery. Default false.
    SaOptionEnableDiscovery = 13,
    /// Text: the discovery socket's host. Default "0.0.0.0".
    SaOptionDiscoveryHost = 14,
    /// Number (port): the discovery socket's port, not 0 when enabled. Default 0.
    SaOptionDiscoveryPort = 15,
    /// Text: where announcements go. Default "255.255.255.255".
    SaOptionDiscoveryBroadcastHost = 16,
    /// Number (port): their port; 0 means the discovery port. Default 0.
    SaOptionDiscoveryBroadcastPort = 17,
    /// Text: the name shown for the node; empty shows the node id. Default "".
    SaOptionDisplayName = 18,
    /// Text: the application's version in node info, not empty. Default the library's.
    SaOptionVersion = 19,
    /// Number: time between announcements. Default 3000.
    SaOptionDiscoveryIntervalMs = 20,
    /// Number: silent for half of this: stale; for all of it: expired. Default 15000.
    SaOptionDiscoveryTtlMs = 21,
    /// Boolean: connect to peers discovery finds. Default true.
    SaOptionAutoConnectDiscovered = 22,
    /// Number: remote operations stamped further ahead of this clock are refused. Default 60000.
    SaOptionMaxClockDriftMs = 23,
    /// Text: the identity key file (made on first open, mode 0600). Default "": the WAL's
    /// path with ".key" appended (memory-only: a new key each open).
    SaOptionIdentityPath = 24,
    /// Boolean: plaintext peer connections accepting any peer, for tests only (a warning
    /// at every start). Default false: TLS 1.3 with trusted keys only.
    SaOptionInsecureTransport = 25,
    /// Text: the file of trusted peers ("node-id fingerprint" lines). Default "": the
    /// WAL's path with ".trust" appended (memory-only: kept in memory).
    SaOptionTrustPath = 26,
    /// Number: a peer connection's handshake (TLS and Hello) must be done within this.
    /// Default 10000.
    SaOptionHandshakeTimeoutMs = 27,
    /// Number: bytes of one WAL segment file (4 KiB to 1 TiB). Default 64 MiB.
    SaOptionWalSegmentSize = 28,
    /// Boolean: compact on its own when the log since the last snapshot outgrows
    /// `compact_log_bytes`. Default true.
    SaOptionAutoCompact = 29,
    /// Number: log bytes since the last snapshot that start an automatic compaction; 0 is
    /// the larger of the last snapshot and one segment. Default 0.
    SaOptionCompactLogBytes = 30,
    /// Number: tombstones are dropped once every peer has seen them; a peer silent for
    /// longer than this is not waited for (and gets the full state when it is back). 0
    /// never drops them. Default 604800000 (7 days).
    SaOptionTombstoneHorizonMs = 31,
    /// Boolean: the transport binds a port the system picks (read it back with
    /// `sa_client_transport_port`); `transport_port` must then be 0. Default false.
    SaOptionEphemeralTransportPort = 32,
    /// Boolean: discovery binds a port the system picks (`sa_client_discovery_port`);
    /// `discovery_port` must then be 0, and with `discovery_broadcast_port` 0 nothing is
    /// broadcast (announcements go to added targets only). Default false.
    SaOptionEphemeralDiscoveryPort = 33,
    /// Boolean, for tests only: the client's clock stands still until
    /// `sa_client_advance_clock` moves it (timeouts, retries, backoff, stale peers).
    /// Default false.
    SaOptionManualClock = 34,
    /// Number, for tests only: the n-th write to the node's files (from its first open,
    /// over its life) fails with an I/O error, once; 0 never. Needs the WAL. Default 0.
    SaOptionFailWriteAt = 35,
    /// Number, for tests only: the n-th sync of the node's files fails, once; 0 never.
    /// Needs the WAL. Default 0.
    SaOptionFailSyncAt = 36,
    /// Number: most keys whose newest unsent write the outbox holds to push to peers
    /// itself; writes of further keys reach peers by catch-up (when a peer connects, then
    /// every 30 s), which keeps a node writing many keys offline small. At least 1.
    /// Default 16384.
    SaOptionSyncPushKeyLimit = 37,
}

/// What an option holds (`sa_option_kind_t` in C).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum OptionKind {
    /// UTF-8 text.
    SaOptionKindText = 0,
    /// true or false.
    SaOptionKindBool = 1,
    /// An unsigned number up to [`OptionSpec::max`].
    SaOptionKindUint = 2,
}

/// An option's number, name and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    /// Its number.
    pub id: OptionId,
    /// The field's name in Rust, C (`sa_option_name`), C++ and the CLI's configuration
    /// (snake_case; JavaScript spells it in camelCase).
    pub name: &'static str,
    /// What it holds.
    pub kind: OptionKind,
    /// The largest value of a `Uint` option (the width of its field); 0 for the others.
    pub max: u64,
}

const fn spec(id: OptionId, name: &'static str, kind: OptionKind, max: u64) -> OptionSpec {
    OptionSpec {
        id,
        name,
        kind,
        max,
    }
}

const TEXT: OptionKind = OptionKind::SaOptionKindText;
const BOOL: OptionKind = OptionKind::SaOptionKindBool;
const UINT: OptionKind = OptionKind::SaOptionKindUint;
const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;
const USIZE: u64 = if usize::BITS >= 64 {
    u64::MAX
} else {
    usize::MAX as u64
};

/// Every option, in number order (`OPTIONS[n].id as usize == n`).
pub const OPTIONS: &[OptionSpec] = &[
    spec(OptionId::SaOptionNodeId, "node_id", TEXT, 0),
    spec(OptionId::SaOptionWalPath, "wal_path", TEXT, 0),
    spec(OptionId::SaOptionEnableWal, "enable_wal", BOOL, 0),
    spec(OptionId::SaOptionAutoFlush, "auto_flush", BOOL, 0),
    spec(
        OptionId::SaOptionSyncBatchSize,
        "sync_batch_size",
        UINT,
        USIZE,
    ),
    spec(
        OptionId::SaOptionMaxSyncRetries,
        "max_sync_retries",
        UINT,
        U32,
    ),
    spec(OptionId::SaOptionAckTimeoutMs, "ack_timeout_ms", UINT, U32),
    spec(
        OptionId::SaOptionRetryIntervalMs,
        "retry_interval_ms",
        UINT,
        U32,
    ),
    spec(OptionId::SaOptionRequireAck, "require_ack", BOOL, 0),
    spec(OptionId::SaOptionAutoQueue, "auto_queue", BOOL, 0),
    spec(
        OptionId::SaOptionEnableTransport,
        "enable_transport",
        BOOL,
        0,
    ),
    spec(OptionId::SaOptionTransportHost, "transport_host", TEXT, 0),
    spec(OptionId::SaOptionTransportPort, "transport_port", UINT, U16),
    spec(
        OptionId::SaOptionEnableDiscovery,
        "enable_discovery",
        BOOL,
        0,
    ),
    spec(OptionId::SaOptionDiscoveryHost, "discovery_host", TEXT, 0),
    spec(OptionId::SaOptionDiscoveryPort, "discovery_port", UINT, U16),
    spec(
        OptionId::SaOptionDiscoveryBroadcastHost,
        "discovery_broadcast_host",
        TEXT,
        0,
    ),
    spec(
        OptionId::SaOptionDiscoveryBroadcastPort,
        "discovery_broadcast_port",
        UINT,
        U16,
    ),
    spec(OptionId::SaOptionDisplayName, "display_name", TEXT, 0),
    spec(OptionId::SaOptionVersion, "version", TEXT, 0),
    spec(
        OptionId::SaOptionDiscoveryIntervalMs,
        "discovery_interval_ms",
        UINT,
        U32,
    ),
    spec(
        OptionId::SaOptionDiscoveryTtlMs,
        "discovery_ttl_ms",
        UINT,
        U32,
    ),
    spec(
        OptionId::SaOptionAutoConnectDiscovered,
        "auto_connect_discovered",
        BOOL,
        0,
    ),
    spec(
        OptionId::SaOptionMaxClockDriftMs,
        "max_clock_drift_ms",
        UINT,
        u64::MAX,
    ),
    spec(OptionId::SaOptionIdentityPath, "identity_path", TEXT, 0),
    spec(
        OptionId::SaOptionInsecureTransport,
        "insecure_transport",
        BOOL,
        0,
    ),
    spec(OptionId::SaOptionTrustPath, "trust_path", TEXT, 0),
    spec(
        OptionId::SaOptionHandshakeTimeoutMs,
        "handshake_timeout_ms",
        UINT,
        U32,
    ),
    spec(
        OptionId::SaOptionWalSegmentSize,
        "wal_segment_size",
        UINT,
        u64::MAX,
    ),
    spec(OptionId::SaOptionAutoCompact, "auto_compact", BOOL, 0),
    spec(
        OptionId::SaOptionCompactLogBytes,
        "compact_log_bytes",
        UINT,
        u64::MAX,
    ),
    spec(
        OptionId::SaOptionTombstoneHorizonMs,
        "tombstone_horizon_ms",
        UINT,
        u64::MAX,
    ),
    spec(
        OptionId::SaOptionEphemeralTransportPort,
        "ephemeral_transport_port",
        BOOL,
        0,
    ),
    spec(
        OptionId::SaOptionEphemeralDiscoveryPort,
        "ephemeral_discovery_port",
        BOOL,
        0,
    ),
    spec(OptionId::SaOptionManualClock, "manual_clock", BOOL, 0),
    spec(
        OptionId::SaOptionFailWriteAt,
        "fail_write_at",
        UINT,
        u64::MAX,
    ),
    spec(OptionId::SaOptionFailSyncAt, "fail_sync_at", UINT, u64::MAX),
    spec(
        OptionId::SaOptionSyncPushKeyLimit,
        "sync_push_key_limit",
        UINT,
        USIZE,
    ),
];

impl OptionId {
    /// The option numbered `n`, if there is one.
    pub fn from_number(n: u32) -> Option<OptionId> {
        OPTIONS.get(usize::try_from(n).ok()?).map(|s| s.id)
    }

    /// The option named `name` (snake_case), if there is one.
    pub fn from_name(name: &str) -> Option<OptionId> {
        OPTIONS.iter().find(|s| s.name == name).map(|s| s.id)
    }

    /// Its number, name, kind and range.
    pub fn spec(self) -> &'static OptionSpec {
        &OPTIONS[self as usize]
    }

    /// Its snake_case name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// The value of one option or field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// UTF-8 text.
    Text(String),
    /// true or false.
    Bool(bool),
    /// An unsigned number (counts, versions, ports, milliseconds).
    Uint(u64),
    /// A signed number (times since the Unix epoch).
    Int(i64),
    /// A list of texts (a node's capabilities).
    List(Vec<String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Uint(n) => write!(f, "{n}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::List(items) => f.write_str(&items.join(",")),
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn uint(n: impl TryInto<u64>) -> Value {
    // Every unsigned field is at most 64 bits wide, so this never saturates in practice.
    Value::Uint(n.try_into().unwrap_or(u64::MAX))
}

/// The value of option `id` in `options`.
pub fn get_option(options: &ClientOptions, id: OptionId) -> Value {
    let o = options;
    match id {
        OptionId::SaOptionNodeId => text(&o.node_id),
        OptionId::SaOptionWalPath => text(&o.wal_path),
        OptionId::SaOptionEnableWal => Value::Bool(o.enable_wal),
        OptionId::SaOptionAutoFlush => Value::Bool(o.auto_flush),
        OptionId::SaOptionSyncBatchSize => uint(o.sync_batch_size),
        OptionId::SaOptionMaxSyncRetries => uint(o.max_sync_retries),
        OptionId::SaOptionAckTimeoutMs => uint(o.ack_timeout_ms),
        OptionId::SaOptionRetryIntervalMs => uint(o.retry_interval_ms),
        OptionId::SaOptionRequireAck => Value::Bool(o.require_ack),
        OptionId::SaOptionAutoQueue => Value::Bool(o.auto_queue),
        OptionId::SaOptionEnableTransport => Value::Bool(o.enable_transport),
        OptionId::SaOptionTransportHost => text(&o.transport_host),
        OptionId::SaOptionTransportPort => uint(o.transport_port),
        OptionId::SaOptionEnableDiscovery => Value::Bool(o.enable_discovery),
        OptionId::SaOptionDiscoveryHost => text(&o.discovery_host),
        OptionId::SaOptionDiscoveryPort => uint(o.discovery_port),
        OptionId::SaOptionDiscoveryBroadcastHost => text(&o.discovery_broadcast_host),
        OptionId::SaOptionDiscoveryBroadcastPort => uint(o.discovery_broadcast_port),
        OptionId::SaOptionDisplayName => text(&o.display_name),
        OptionId::SaOptionVersion => text(&o.version),
        OptionId::SaOptionDiscoveryIntervalMs => uint(o.discovery_interval_ms),
        OptionId::SaOptionDiscoveryTtlMs => uint(o.discovery_ttl_ms),
        OptionId::SaOptionAutoConnectDiscovered => Value::Bool(o.auto_connect_discovered),
        OptionId::SaOptionMaxClockDriftMs => uint(o.max_clock_drift_ms),
        OptionId::SaOptionIdentityPath => text(&o.identity_path),
        OptionId::SaOptionInsecureTransport => Value::Bool(o.insecure_transport),
        OptionId::SaOptionTrustPath => text(&o.trust_path),
        OptionId::SaOptionHandshakeTimeoutMs => uint(o.handshake_timeout_ms),
        OptionId::SaOptionWalSegmentSize => uint(o.wal_segment_size),
        OptionId::SaOptionAutoCompact => Value::Bool(o.auto_compact),
        OptionId::SaOptionCompactLogBytes => uint(o.compact_log_bytes),
        OptionId::SaOptionTombstoneHorizonMs => uint(o.tombstone_horizon_ms),
        OptionId::SaOptionEphemeralTransportPort => Value::Bool(o.ephemeral_transport_port),
        OptionId::SaOptionEphemeralDiscoveryPort => Value::Bool(o.ephemeral_discovery_port),
        OptionId::SaOptionManualClock => Value::Bool(o.manual_clock),
        OptionId::SaOptionFailWriteAt => uint(o.fail_write_at),
        OptionId::SaOptionFailSyncAt => uint(o.fail_sync_at),
        OptionId::SaOptionSyncPushKeyLimit => uint(o.sync_push_key_limit),
    }
}

/// Sets option `id` of `options` to `value`. A value of the wrong kind, or a number
/// beyond the field's width, is an `InvalidOptions` error naming the option; `options`
/// is then unchanged. Whether the options as a whole make sense is
/// [`ClientOptions::validate`]'s business.
pub fn set_option(options: &mut ClientOptions, id: OptionId, value: Value) -> Result<()> {
    let spec = id.spec();
    let wrong_kind = |got: &str| Error::InvalidOptions {
        field: spec.name,
        reason: format!("expects {}, got {got}", kind_name(spec.kind)),
    };
    match (spec.kind, value) {
        (OptionKind::SaOptionKindText, Value::Text(s)) => set_text(options, id, s),
        (OptionKind::SaOptionKindBool, Value::Bool(b)) => set_bool(options, id, b),
        (OptionKind::SaOptionKindUint, Value::Uint(n)) if n > spec.max => {
            Err(Error::InvalidOptions {
                field: spec.name,
                reason: format!("{n} is larger than {}", spec.max),
            })
        }
        (OptionKind::SaOptionKindUint, Value::Uint(n)) => set_uint(options, id, n),
        (_, Value::Text(_)) => Err(wrong_kind("text")),
        (_, Value::Bool(_)) => Err(wrong_kind("a boolean")),
        (_, Value::Uint(_) | Value::Int(_)) => Err(wrong_kind("a number")),
        (_, Value::List(_)) => Err(wrong_kind("a list")),
    }
}

fn kind_name(kind: OptionKind) -> &'static str {
    match kind {
        OptionKind::SaOptionKindText => "text",
        OptionKind::SaOptionKindBool => "a boolean",
        OptionKind::SaOptionKindUint => "an unsigned number",
    }
}

fn set_text(o: &mut ClientOptions, id: OptionId, s: String) -> Result<()> {
    let slot = match id {
        OptionId::SaOptionNodeId => &mut o.node_id,
        OptionId::SaOptionWalPath => &mut o.wal_path,
        OptionId::SaOptionTransportHost => &mut o.transport_host,
        OptionId::SaOptionDiscoveryHost => &mut o.discovery_host,
        OptionId::SaOptionDiscoveryBroadcastHost => &mut o.discovery_broadcast_host,
        OptionId::SaOptionDisplayName => &mut o.display_name,
        OptionId::SaOptionVersion => &mut o.version,
        OptionId::SaOptionIdentityPath => &mut o.identity_path,
        OptionId::SaOptionTrustPath => &mut o.trust_path,
        _ => return Err(kind_mismatch(id)),
    };
    *slot = s;
    Ok(())
}

fn set_bool(o: &mut ClientOptions, id: OptionId, b: bool) -> Result<()> {
    let slot = match id {
        OptionId::SaOptionEnableWal => &mut o.enable_wal,
        OptionId::SaOptionAutoFlush => &mut o.auto_flush,
        OptionId::SaOptionRequireAck => &mut o.require_ack,
        OptionId::SaOptionAutoQueue => &mut o.auto_queue,
        OptionId::SaOptionEnableTransport => &mut o.enable_transport,
        OptionId::SaOptionEnableDiscovery => &mut o.enable_discovery,
        OptionId::SaOptionAutoConnectDiscovered => &mut o.auto_connect_discovered,
        OptionId::SaOptionInsecureTransport => &mut o.insecure_transport,
        OptionId::SaOptionAutoCompact => &mut o.auto_compact,
        OptionId::SaOptionEphemeralTransportPort => &mut o.ephemeral_transport_port,
        OptionId::SaOptionEphemeralDiscoveryPort => &mut o.ephemeral_discovery_port,
        OptionId::SaOptionManualClock => &mut o.manual_clock,
        _ => return Err(kind_mismatch(id)),
    };
    *slot = b;
    Ok(())
}

/// `n` is at most the option's `max` (checked by [`set_option`]), so the narrowing
/// conversions below cannot fail; they still report rather than truncate.
fn set_uint(o: &mut ClientOptions, id: OptionId, n: u64) -> Result<()> {
    fn narrow<T: TryFrom<u64>>(id: OptionId, n: u64) -> Result<T> {
        T::try_from(n).map_err(|_| Error::InvalidOptions {
            field: id.name(),
            reason: format!("{n} does not fit"),
        })
    }
    match id {
        OptionId::SaOptionSyncBatchSize => o.sync_batch_size = narrow(id, n)?,
        OptionId::SaOptionMaxSyncRetries => o.max_sync_retries = narrow(id, n)?,
        OptionId::SaOptionAckTimeoutMs => o.ack_timeout_ms = narrow(id, n)?,
        OptionId::SaOptionRetryIntervalMs => o.retry_interval_ms = narrow(id, n)?,
        OptionId::SaOptionTransportPort => o.transport_port = narrow(id, n)?,
        OptionId::SaOptionDiscoveryPort => o.discovery_port = narrow(id, n)?,
        OptionId::SaOptionDiscoveryBroadcastPort => o.discovery_broadcast_port = narrow(id, n)?,
        OptionId::SaOptionDiscoveryIntervalMs => o.discovery_interval_ms = narrow(id, n)?,
        OptionId::SaOptionDiscoveryTtlMs => o.discovery_ttl_ms = narrow(id, n)?,
        OptionId::SaOptionMaxClockDriftMs => o.max_clock_drift_ms = n,
        OptionId::SaOptionHandshakeTimeoutMs => o.handshake_timeout_ms = narrow(id, n)?,
        OptionId::SaOptionWalSegmentSize => o.wal_segment_size = n,
        OptionId::SaOptionCompactLogBytes => o.compact_log_bytes = n,
        OptionId::SaOptionTombstoneHorizonMs => o.tombstone_horizon_ms = n,
        OptionId::SaOptionFailWriteAt => o.fail_write_at = n,
        OptionId::SaOptionFailSyncAt => o.fail_sync_at = n,
        OptionId::SaOptionSyncPushKeyLimit => o.sync_push_key_limit = narrow(id, n)?,
        _ => return Err(kind_mismatch(id)),
    }
    Ok(())
}

/// [`OPTIONS`] and the setters disagree about an option's kind: a bug, caught by the
/// round-trip test below.
fn kind_mismatch(id: OptionId) -> Error {
    Error::Internal(format!("option {} has no setter of its kind", id.name()))
}

/// One field of a described value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as the C header and the C++ SDK spell it.
    pub name: &'static str,
    /// Its value.
    pub value: Value,
}

fn field(name: &'static str, value: Value) -> Field {
    Field { name, value }
}

/// A type that crosses a foreign boundary, described field by field.
pub trait Described {
    /// Every field, in declaration order, with the names the C header and the C++ SDK use.
    fn fields(&self) -> Vec<Field>;
}

/// `name=value` lines, one per field, each ending in a newline. Texts are written as they
/// are (a text holding a newline is not escaped: this is for people and tests, not a
/// format to parse).
pub fn describe(value: &dyn Described) -> String {
    value
        .fields()
        .iter()
        .map(|f| format!("{}={}\n", f.name, f.value))
        .collect()
}

impl Described for ClientOptions {
    fn fields(&self) -> Vec<Field> {
        // Exhaustive: a new option that is not in OPTIONS does not compile here.
        let ClientOptions {
            node_id: _,
            wal_path: _,
            enable_wal: _,
            auto_flush: _,
            sync_batch_size: _,
            max_sync_retries: _,
            ack_timeout_ms: _,
            retry_interval_ms: _,
            require_ack: _,
            auto_queue: _,
            enable_transport: _,
            transport_host: _,
            transport_port: _,
            enable_discovery: _,
            discovery_host: _,
            discovery_port: _,
            discovery_broadcast_host: _,
            discovery_broadcast_port: _,
            discovery_interval_ms: _,
            discovery_ttl_ms: _,
            auto_connect_discovered: _,
            display_name: _,
            version: _,
            max_clock_drift_ms: _,
            identity_path: _,
            insecure_transport: _,
            trust_path: _,
            handshake_timeout_ms: _,
            wal_segment_size: _,
            auto_compact: _,
            compact_log_bytes: _,
            tombstone_horizon_ms: _,
            ephemeral_transport_port: _,
            ephemeral_discovery_port: _,
            manual_clock: _,
            fail_write_at: _,
            fail_sync_at: _,
            sync_push_key_limit: _,
        } = self;
        OPTIONS
            .iter()
            .map(|s| field(s.name, get_option(self, s.id)))
            .collect()
    }
}

impl Described for SyncState {
    fn fields(&self) -> Vec<Field> {
        let SyncState {
            outbox_size,
            pending_count,
            queued_count,
            in_flight_count,
            acknowledged_count,
            failed_count,
            last_submitted_version,
            last_applied_remote_version,
            total_retries,
            conflict_count,
        } = *self;
        vec![
            field("outbox_size", uint(outbox_size)),
            field("pending_count", uint(pending_count)),
            field("queued_count", uint(queued_count)),
            field("in_flight_count", uint(in_flight_count)),
            field("acknowledged_count", uint(acknowledged_count)),
            field("failed_count", uint(failed_count)),
            field("last_submitted_version", uint(last_submitted_version)),
            field(
                "last_applied_remote_version",
                uint(last_applied_remote_version),
            ),
            field("total_retries", uint(total_retries)),
            field("conflict_count", uint(conflict_count)),
        ]
    }
}

impl Described for TickResult {
    fn fields(&self) -> Vec<Field> {
        let TickResult {
            retried_count,
            pruned_count,
            batch_size,
        } = *self;
        vec![
            field("retried_count", uint(retried_count)),
            field("pruned_count", uint(pruned_count)),
            field("batch_size", uint(batch_size)),
        ]
    }
}

impl Described for NodeInfo {
    fn fields(&self) -> Vec<Field> {
        let NodeInfo {
            node_id,
            display_name,
            hostname,
            os_name,
            version,
            started_at_ms,
            uptime_ms,
            capabilities,
            fingerprint,
        } = self;
        vec![
            field("node_id", text(node_id)),
            field(
                "display_name",
                text(if display_name.is_empty() {
                    node_id
                } else {
                    display_name
                }),
            ),
            field("hostname", text(hostname)),
            field("os_name", text(os_name)),
            field("version", text(version)),
            field("started_at_ms", Value::Int(*started_at_ms)),
            field("uptime_ms", Value::Int(*uptime_ms)),
            field("capabilities", Value::List(capabilities.clone())),
            field("fingerprint", text(fingerprint)),
        ]
    }
}

impl Described for Peer {
    fn fields(&self) -> Vec<Field> {
        let Peer {
            node_id,
            host,
            port,
            state,
            last_seen_ms,
        } = self;
        vec![
            field("node_id", text(node_id)),
            field("host", text(host)),
            field("port", uint(*port)),
            field("state", text(state.as_str())),
            field("last_seen_ms", uint(*last_seen_ms)),
        ]
    }
}

impl Described for NetworkStats {
    /// Flat: the nested figures are named by their group (`catch_up_`, `refused_`).
    fn fields(&self) -> Vec<Field> {
        let NetworkStats {
            transport,
            catch_ups,
            peer_records,
            discovered_dials,
            refused_operations,
            forged_announcements,
            replayed_announcements,
        } = self;
        let crate::transport::TransportStats {
            connections,
            connection_limit,
            refused_connections,
            garbage_frames,
            receive_buffered,
            send_buffered,
            dialled,
            untrusted_peers,
            tls_failures,
        } = *transport;
        let crate::node::CatchUpStats {
            serving,
            started,
            busy,
            protocol_errors,
        } = *catch_ups;
        let crate::store::RefusedCounts {
            own_origin,
            clock_ahead,
            too_many_origins,
            too_many_ranges,
            second_hand,
        } = *refused_operations;
        vec![
            field("connections", uint(connections)),
            field("connection_limit", uint(connection_limit)),
            field("refused_connections", uint(refused_connections)),
            field("garbage_frames", uint(garbage_frames)),
            field("receive_buffered", uint(receive_buffered)),
            field("send_buffered", uint(send_buffered)),
            field("dialled", uint(dialled)),
            field("catch_up_serving", uint(serving)),
            field("catch_up_started", uint(started)),
            field("catch_up_busy", uint(busy)),
            field("catch_up_protocol_errors", uint(protocol_errors)),
            field("peer_records", uint(*peer_records)),
            field("discovered_dials", uint(*discovered_dials)),
            field("refused_own_origin", uint(own_origin)),
            field("refused_clock_ahead", uint(clock_ahead)),
            field("refused_too_many_origins", uint(too_many_origins)),
            field("refused_too_many_ranges", uint(too_many_ranges)),
            field("refused_second_hand", uint(second_hand)),
            field("untrusted_peers", uint(untrusted_peers)),
            field("tls_failures", uint(tls_failures)),
            field("forged_announcements", uint(*forged_announcements)),
            field("replayed_announcements", uint(*replayed_announcements)),
        ]
    }
}

/// A client's description for logs and bug reports (`sa_client_describe`, C++
/// `Client::describe`): `[options]`, and while the client is open `[node_info]`,
/// `[sync_state]` and `[network_stats]`, then one `[conflict]` per recent conflict.
pub fn describe_client(client: &crate::Client) -> Result<String> {
    let mut text = format!("[options]\n{}", describe(client.options()));
    if !client.is_open() {
        return Ok(text);
    }
    text += &format!("[node_info]\n{}", describe(&client.node_info()?));
    text += &format!("[sync_state]\n{}", describe(&client.sync_state()?));
    text += &format!("[network_stats]\n{}", describe(&client.network_stats()?));
    for conflict in client.recent_conflicts()? {
        text += &format!("[conflict]\n{}", describe(&conflict));
    }
    // No peers: listing them reports expired peers once, which a description must not
    // consume.
    Ok(text)
}

impl Described for crate::store::Conflict {
    fn fields(&self) -> Vec<Field> {
        let crate::store::Conflict {
            key,
            local,
            remote,
            remote_won,
        } = self;
        vec![
            field("key", text(key)),
            field("local_origin", text(&local.origin)),
            field("local_seq", uint(local.seq)),
            field("local_version", uint(local.version.0)),
            field("remote_origin", text(&remote.origin)),
            field("remote_seq", uint(remote.seq)),
            field("remote_version", uint(remote.version.0)),
            field("remote_won", Value::Bool(*remote_won)),
        ]
    }
}

/// Every error code, in number order (`ALL_ERROR_CODES[n] as u32 == n`).
pub const ALL_ERROR_CODES: [ErrorCode; 13] = [
    ErrorCode::None,
    ErrorCode::Unknown,
    ErrorCode::InvalidArgument,
    ErrorCode::InvalidState,
    ErrorCode::NotFound,
    ErrorCode::AlreadyExists,
    ErrorCode::IoError,
    ErrorCode::StoreError,
    ErrorCode::SyncError,
    ErrorCode::TransportError,
    ErrorCode::DiscoveryError,
    ErrorCode::MetadataError,
    ErrorCode::InternalError,
];

/// Every key status, in number order (the numbers of `sa_key_status_t` and C++
/// `SyncStatus`).
pub const ALL_KEY_STATUSES: [KeyStatus; 7] = [
    KeyStatus::SavedLocally,
    KeyStatus::WaitingToSync,
    KeyStatus::Syncing,
    KeyStatus::Synced,
    KeyStatus::Retrying,
    KeyStatus::SyncFailed,
    KeyStatus::ConflictDetected,
];

/// Every peer state, in number order (the numbers of `sa_peer_state_t`).
pub const ALL_PEER_STATES: [PeerState; 6] = PeerState::ALL;

/// The number of a key status.
pub fn key_status_number(status: KeyStatus) -> u32 {
    // Exhaustive, so a new status must be given its number here.
    match status {
        KeyStatus::SavedLocally => 0,
        KeyStatus::WaitingToSync => 1,
        KeyStatus::Syncing => 2,
        KeyStatus::Synced => 3,
        KeyStatus::Retrying => 4,
        KeyStatus::SyncFailed => 5,
        KeyStatus::ConflictDetected => 6,
    }
}

/// The number of a peer state.
pub fn peer_state_number(state: PeerState) -> u32 {
    match state {
        PeerState::Available => 0,
        PeerState::Connected => 1,
        PeerState::Stale => 2,
        PeerState::Expired => 3,
        PeerState::Faulted => 4,
        PeerState::Unknown => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_numbered_in_order_with_unique_names() {
        for (n, spec) in OPTIONS.iter().enumerate() {
            assert_eq!(spec.id as usize, n, "{}", spec.name);
            assert_eq!(OptionId::from_number(n as u32), Some(spec.id));
            assert_eq!(OptionId::from_name(spec.name), Some(spec.id));
        }
        assert_eq!(OptionId::from_number(OPTIONS.len() as u32), None);
        assert_eq!(OptionId::from_name("no_such_option"), None);
    }

    /// A value of the option's kind that differs from its default.
    fn other_value(spec: &OptionSpec, current: &Value) -> Value {
        match current {
            Value::Text(s) => Value::Text(format!("{s}x")),
            Value::Bool(b) => Value::Bool(!b),
            Value::Uint(n) => Value::Uint(if *n == spec.max { n - 1 } else { n + 1 }),
            other => panic!("option {} holds {other:?}", spec.name),
        }
    }

    #[test]
    fn every_option_round_trips_and_changes_only_itself() {
        for spec in OPTIONS {
            let mut options = ClientOptions::default();
            let before = options.fields();
            let value = other_value(spec, &get_option(&options, spec.id));
            set_option(&mut options, spec.id, value.clone()).unwrap();
            assert_eq!(get_option(&options, spec.id), value, "{}", spec.name);
            let after = options.fields();
            let changed: Vec<_> = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b != a)
                .map(|(b, _)| b.name)
                .collect();
            assert_eq!(changed, vec![spec.name]);
        }
    }

    #[test]
    fn wrong_kinds_and_numbers_too_wide_are_refused_naming_the_option() {
        let mut options = ClientOptions::default();
        let e = set_option(&mut options, OptionId::SaOptionAutoFlush, Value::Uint(1)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("auto_flush"), "{e}");
        let e = set_option(
            &mut options,
            OptionId::SaOptionTransportPort,
            Value::Uint(65_536),
        )
        .unwrap_err();
        assert!(e.to_string().contains("transport_port"), "{e}");
        assert!(e.to_string().contains("65536"), "{e}");
        let e = set_option(&mut options, OptionId::SaOptionNodeId, Value::Bool(true)).unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
        assert_eq!(options, ClientOptions::default());
    }

    #[test]
    fn enum_tables_are_in_number_order() {
        for (n, code) in ALL_ERROR_CODES.iter().enumerate() {
            assert_eq!(*code as usize, n);
        }
        for (n, status) in ALL_KEY_STATUSES.iter().enumerate() {
            assert_eq!(key_status_number(*status) as usize, n);
        }
        for (n, state) in ALL_PEER_STATES.iter().enumerate() {
            assert_eq!(peer_state_number(*state) as usize, n);
        }
    }

    #[test]
    fn describe_writes_one_line_per_field() {
        let tick = TickResult {
            retried_count: 1,
            pruned_count: 2,
            batch_size: 3,
        };
        assert_eq!(
            describe(&tick),
            "retried_count=1\npruned_count=2\nbatch_size=3\n"
        );
    }
}
