//! Softadastra: a local-first runtime. Applications write locally, keep working offline and
//! sync with peers when the network returns.
//!
//! Layers, each depending only on the ones before it: `wal` (durable log) <- `store`
//! (ordered map with versions and tombstones) <- `node` (the runtime behind [`Client`]),
//! with `metadata` describing the node. The C ABI (`ffi`), the cxx bridge and the CLI
//! sit on top and hold no logic of their own.
//!
//! # Public API
//!
//! What an application embedding the library uses is re-exported here, at the crate root:
//! [`Client`] and its options, the values its calls return (entries, versions, sync and
//! network figures, peers, conflicts, the batches an application carries itself), the
//! errors they fail with (each layer's error type, which [`Error`] wraps), and the
//! node-id rules. That is the whole API: the modules themselves are crate-private, so
//! the layers can change without breaking applications. The C ABI is not Rust API: its
//! `sa_*` functions are exported from the static and shared libraries by their
//! `#[no_mangle]`, whatever the module's visibility.
//!
//! This project's own tests, benches and fuzz targets reach into the layers (the WAL's
//! record format, the wire messages, the sync engine) through the `internals` feature,
//! which makes the internal modules public (hidden from the docs) and compiles the WAL's
//! test doubles. The crate's dev-dependency on itself turns it on for `cargo test`; a
//! build for applications never has it, and nothing under it is a stable API. What only
//! the tests call is compiled only for them (`#[cfg(any(test, feature = "internals"))]`),
//! so that the library applications link has no dead code.
//!
//! ```
//! use softadastra::{Client, ClientOptions};
//! let client = Client::new(ClientOptions::memory_only("doc-node"));
//! client.open()?;
//! client.put("app/name", b"Softadastra")?;
//! assert_eq!(client.get("app/name")?, b"Softadastra");
//! # Ok::<(), softadastra::Error>(())
//! ```

/// Declares the internal modules: crate-private for applications, public (and hidden from
/// the docs) with the `internals` feature, for this project's tests, benches and fuzz
/// targets. Without the feature, what the tests reach stays `pub` in them and is
/// unreachable (hence the `allow`): `unreachable_pub` checks those modules in the build
/// with the feature, where `pub` means reachable.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        #[allow(unreachable_pub, reason = "pub for the tests, reachable with `internals`")]
        mod $name;
    )*};
}

internal_modules!(
    backup, clock, codec, discovery, error, id, identity, io_error, logsafe, metadata, node, store,
    sync, transport, wal,
);

// The cxx bridge behind the C++ SDK: `#[cxx::bridge]` declares its shared types' fields
// `pub`, whatever the module's visibility.
#[allow(
    unreachable_pub,
    reason = "cxx::bridge makes the shared types' fields pub"
)]
mod bridge;
// The C ABI: its `pub extern "C"` functions are exported by `#[no_mangle]` from the static
// and shared libraries, not through Rust visibility, so `pub` there marks the C ABI.
// Its enums' variant names are the C enumerators' (cbindgen writes them into the header).
#[allow(unreachable_pub, reason = "pub marks the sa_* functions of the C ABI")]
#[allow(
    clippy::enum_variant_names,
    reason = "the names of the C ABI's enumerators"
)]
mod ffi;
// Public: the foreign bindings convert through it, the JavaScript binding to come from a
// crate of its own.
pub mod surface;

pub use backup::{
    BackupError, BackupFile, BackupFileKind, BackupManifest, Damage, InspectedFile,
    InspectedRecord, InspectedSnapshot, RestoreReport, SalvageReport, WalInspection,
    incarnation_floor,
};
pub use discovery::DiscoveryError;
pub use error::{Error, ErrorCode, Result};
pub use id::{InvalidNodeId, MAX_NODE_ID_LEN, generate_node_id, validate_node_id};
pub use identity::IdentityError;
pub use io_error::describe_io;
pub use metadata::{MetadataError, NodeInfo, hostname};
pub use node::{
    BackupReport, CatchUpStats, ChangeEvent, ChangeSubscription, Client, ClientOptions,
    CompactionReport, EXPIRED_PEER_RETENTION_MS, Health, HealthWatch, MAX_CHANGE_QUEUE,
    NetworkStats, PROBE_EVERY, Peer, PeerState, RemoteChange, TrustedPeer, WriteBatch, inspect_wal,
    read_backup_manifest, restore_backup, salvage_wal, verify_backup,
};
pub use store::snapshot::SnapshotError;
pub use store::{
    Change, Conflict, Entry, MAX_KEY_LEN, MAX_VALUE_LEN, Op, OpId, Operation, OriginProgress,
    RefusedCounts, StoreError, Version, VersionVector,
};
pub use sync::{Ack, CatchUp, KeyStatus, Superseded, SyncBatch, SyncState, TickResult};
pub use transport::trust::parse_fingerprint;
pub use transport::{TransportError, TransportStats};
pub use wal::WalError;

/// Version of this library, also the default `ClientOptions::version`.
pub const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");
