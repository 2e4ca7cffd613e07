//! The client-level error and the numeric code table shared by every foreign caller.
//!
//! Each layer has its own error enum (`wal::WalError`, `store::StoreError`,
//! `metadata::MetadataError`); [`Error`] wraps them for the runtime behind `Client`, and
//! [`ErrorCode`] is the one stable table that the C ABI (`sa_status_t`) and the C++ SDK
//! (`Error::Code`) both use. Codes are never renumbered.

use crate::discovery::DiscoveryError;
use crate::metadata::MetadataError;
use crate::store::StoreError;
use crate::transport::TransportError;
use crate::wal::WalError;

/// Stable numeric error codes, identical to `softadastra::sdk::Error::Code` and `sa_status_t`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success (`SA_OK`): what a foreign caller sees when there is no error.
    None = 0,
    /// An error that fits no other code.
    Unknown = 1,
    /// A bad argument: an invalid key, option, node id or peer, a value too large.
    InvalidArgument = 2,
    /// The call does not fit the client's state, e.g. the client or its WAL is closed.
    InvalidState = 3,
    /// The key has no live value.
    NotFound = 4,
    /// The thing to create already exists. In the table for the foreign callers; no
    /// `Client` call returns it today.
    AlreadyExists = 5,
    /// The file system refused: missing directory, permission denied, disk full, WAL
    /// locked by another process.
    IoError = 6,
    /// Stored data is damaged (a corrupt WAL), or the store ran out of numbers.
    StoreError = 7,
    /// Synchronisation with peers failed. In the table for the foreign callers; no
    /// `Client` call returns it today.
    SyncError = 8,
    /// The network transport failed, or is disabled or not started.
    TransportError = 9,
    /// Peer discovery failed, or is disabled or not started.
    DiscoveryError = 10,
    /// Node metadata is invalid or unavailable. In the table for the foreign callers;
    /// invalid metadata (a bad node id) is reported as `InvalidArgument`.
    MetadataError = 11,
    /// A bug in the library, including a caught panic.
    InternalError = 12,
}

impl ErrorCode {
    /// The snake_case name used by `Error::code_string()` in C++ and by the CLI's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::None => "none",
            ErrorCode::Unknown => "unknown",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::IoError => "io_error",
            ErrorCode::StoreError => "store_error",
            ErrorCode::SyncError => "sync_error",
            ErrorCode::TransportError => "transport_error",
            ErrorCode::DiscoveryError => "discovery_error",
            ErrorCode::MetadataError => "metadata_error",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

/// Everything a `Client` call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is invalid; `field` names it.
    #[error("invalid client options: {field}: {reason}")]
    InvalidOptions {
        /// The `ClientOptions` field, by name.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// The client is closed (never opened, or closed since).
    #[error("client is not open")]
    NotOpen,

    /// The key has no live value.
    #[error("key not found: {key}")]
    NotFound {
        /// The key, as given.
        key: String,
    },

    /// The store or its WAL failed: an invalid key, a value too large, an I/O error, a
    /// corrupt or locked WAL.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The node's identity key could not be read, made or trusted (the message names the
    /// file).
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),

    /// The node's metadata is invalid (a bad node id).
    #[error(transparent)]
    Metadata(#[from] MetadataError),

    /// The transport failed: it could not bind, or an address is invalid.
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// A transport call while the transport is disabled or not started.
    #[error("{0}")]
    TransportUnavailable(String),

    /// Discovery failed: an invalid configuration, or its socket could not be set up.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),

    /// A discovery call while discovery is disabled or not started.
    #[error("{0}")]
    DiscoveryUnavailable(String),

    /// An argument a foreign binding could not convert (the JavaScript binding's: a
    /// number where a string belongs, an option name that does not exist).
    #[error("invalid argument {argument}: {reason}")]
    InvalidArgument {
        /// The argument or option, by the name the caller used.
        argument: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A peer that cannot be connected to as given.
    #[error("invalid peer {peer}: {reason}")]
    InvalidPeer {
        /// The peer as given ("node-id@host:port").
        peer: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A backup could not be made, verified or restored (the message names the file or
    /// directory).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),

    /// A call that the client's state does not allow (compacting a memory-only node, say).
    #[error("{0}")]
    InvalidState(String),

    /// A bug: a panic caught at the boundary, or an invariant that did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::id::InvalidNodeId> for Error {
    fn from(e: crate::id::InvalidNodeId) -> Self {
        Error::Metadata(e.into())
    }
}

impl From<WalError> for Error {
    fn from(e: WalError) -> Self {
        Error::Store(StoreError::Wal(e))
    }
}

impl Error {
    /// The stable code for foreign callers.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidOptions { .. } => ErrorCode::InvalidArgument,
            Error::NotOpen => ErrorCode::InvalidState,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Store(e) => store_code(e),
            Error::Metadata(_) => ErrorCode::InvalidArgument,
            Error::Identity(e) => identity_code(e),
            Error::Transport(e) => transport_code(e),
            Error::TransportUnavailable(_) => ErrorCode::TransportError,
            Error::Discovery(e) => discovery_code(e),
            Error::DiscoveryUnavailable(_) => ErrorCode::DiscoveryError,
            Error::InvalidState(_) => ErrorCode::InvalidState,
            Error::Backup(e) => backup_code(e),
            Error::InvalidPeer { .. } | Error::InvalidArgument { .. } => {
                ErrorCode::InvalidArgument
            }
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// What the error is about: the key, the path or the option name ("" when nothing applies).
    pub fn context(&self) -> String {
        match self {
            Error::InvalidOptions { field, .. } => (*field).to_string(),
            Error::NotFound { key } => key.clone(),
            Error::Store(e) => e.context(),
            Error::Metadata(e) => e.context(),
            Error::Identity(e) => identity_context(e),
            Error::Transport(e) => e.context(),
            Error::InvalidPeer { peer, .. } => peer.clone(),
            Error::InvalidArgument { argument, .. } => argument.clone(),
            Error::Discovery(e) => e.context(),
            Error::Backup(e) => e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Error::NotOpen
            | Error::Internal(_)
            | Error::TransportUnavailable(_)
            | Error::DiscoveryUnavailable(_)
            | Error::InvalidState(_) => String::new(),
        }
    }
}

fn identity_code(e: &crate::identity::IdentityError) -> ErrorCode {
    use crate::identity::IdentityError;
    match e {
        IdentityError::Io { .. } | IdentityError::Exposed { .. } => ErrorCode::IoError,
        IdentityError::Damaged { .. } => ErrorCode::StoreError,
        IdentityError::OtherNodeId { .. } => ErrorCode::InvalidArgument,
        IdentityError::Generate(_) | IdentityError::Sign(_) => ErrorCode::InternalError,
    }
}

fn identity_context(e: &crate::identity::IdentityError) -> String {
    use crate::identity::IdentityError;
    match e {
        IdentityError::Io { path, .. }
        | IdentityError::Exposed { path, .. }
        | IdentityError::Damaged { path, .. }
        | IdentityError::OtherNodeId { path, .. } => path.display().to_string(),
        IdentityError::Generate(_) | IdentityError::Sign(_) => String::new(),
    }
}

/// Result alias for the client layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The one mapping from the layers' errors to the stable codes: the layers themselves know
// nothing of the foreign callers' table.

fn store_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::InvalidKey { .. }
        | StoreError::ValueTooLarge { .. }
        | StoreError::InvalidRemoteOp { .. } => ErrorCode::InvalidArgument,
        StoreError::NumbersExhausted { .. } => ErrorCode::StoreError,
        StoreError::Wal(e) => wal_code(e),
        StoreError::Snapshot(crate::store::snapshot::SnapshotError::Io { .. }) => {
            ErrorCode::IoError
        }
        StoreError::Snapshot(_) => ErrorCode::StoreError,
        StoreError::RestoreUnfinished { .. } => ErrorCode::StoreError,
    }
}

fn wal_code(e: &WalError) -> ErrorCode {
    match e {
        WalError::RecordTooLarge { .. } => ErrorCode::InvalidArgument,
        WalError::Closed { .. } => ErrorCode::InvalidState,
        WalError::Corrupt { .. } | WalError::BadHeader { .. } | WalError::MissingRecords { .. } => {
            ErrorCode::StoreError
        }
        _ => ErrorCode::IoError,
    }
}

fn backup_code(e: &crate::backup::BackupError) -> ErrorCode {
    use crate::backup::BackupError;
    use crate::store::snapshot::SnapshotError;
    match e {
        BackupError::Io { .. }
        | BackupError::NodeRunning { .. }
        | BackupError::SourceInUse { .. } => ErrorCode::IoError,
        BackupError::NotEmpty { .. } => ErrorCode::AlreadyExists,
        BackupError::OtherNode { .. } => ErrorCode::InvalidArgument,
        BackupError::Unfinished { .. }
        | BackupError::Missing { .. }
        | BackupError::Damaged { .. } => ErrorCode::StoreError,
        BackupError::Snapshot(SnapshotError::Io { .. }) => ErrorCode::IoError,
        BackupError::Snapshot(_) => ErrorCode::StoreError,
        BackupError::Wal(e) => wal_code(e),
    }
}

fn transport_code(e: &TransportError) -> ErrorCode {
    match e {
        TransportError::InvalidAddress { .. } | TransportError::InvalidTrust { .. } => {
            ErrorCode::InvalidArgument
        }
        _ => ErrorCode::TransportError,
    }
}

/// `InvalidArgument` for a bad configuration, `DiscoveryError` otherwise.
pub(crate) fn discovery_code(e: &DiscoveryError) -> ErrorCode {
    match e {
        DiscoveryError::InvalidConfig { .. } => ErrorCode::InvalidArgument,
        _ => ErrorCode::DiscoveryError,
    }
}

/// The message of a panic's payload (a `&str` or a `String`, as `panic!` makes them).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic payload")
}
