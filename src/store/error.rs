//! The store layer's errors.

use super::*;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The WAL failed: an I/O error, a corrupt, locked or closed log.
    #[error(transparent)]
    Wal(#[from] WalError),

    /// A snapshot could not be written or read: I/O, or damage (named with its offset).
    #[error(transparent)]
    Snapshot(#[from] super::snapshot::SnapshotError),

    /// A key breaks the rules: empty, longer than [`MAX_KEY_LEN`] bytes, or (from C or
    /// C++) not UTF-8.
    #[error("invalid key \"{key}\": {reason}")]
    InvalidKey {
        /// The key, escaped and shortened for messages.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// A value longer than [`MAX_VALUE_LEN`] bytes.
    #[error("value for key \"{key}\" is too large: {size} bytes (limit {MAX_VALUE_LEN} bytes)")]
    ValueTooLarge {
        /// The key, escaped and shortened for messages.
        key: String,
        /// The value's length, in bytes.
        size: usize,
    },

    /// A remote operation that breaks the rules; nothing of its batch was applied.
    #[error("invalid remote operation {seq} from \"{origin}\": {reason}")]
    InvalidRemoteOp {
        /// The node id that claims to have made it.
        origin: String,
        /// Its origin sequence number.
        seq: u64,
        /// Which rule it breaks.
        reason: String,
    },

    /// A restore into the WAL's directory began and did not finish (its marker file is
    /// still there): what is there may be part of the backup and part of what was there
    /// before, and opening it could reuse numbers its peers have seen. Nothing is opened.
    #[error(
        "a restore into {} did not finish ({} is still there): run the restore again \
         (with --force) before opening the node",
        marker.parent().map(|d| d.display().to_string()).unwrap_or_default(),
        marker.display()
    )]
    RestoreUnfinished {
        /// The marker file (`<wal>.restoring`).
        marker: PathBuf,
    },

    /// A local write found no version or sequence number left to give it: the log holds a
    /// number at the end of its range (forged or damaged data stored before such numbers
    /// were refused). Nothing was written.
    #[error("cannot write key \"{key}\": {reason}")]
    NumbersExhausted {
        /// The key of the write, escaped and shortened for messages.
        key: String,
        /// Which number ran out.
        reason: String,
    },
}

impl StoreError {
    /// The key, path or origin the error is about.
    pub fn context(&self) -> String {
        match self {
            StoreError::InvalidKey { key, .. }
            | StoreError::ValueTooLarge { key, .. }
            | StoreError::NumbersExhausted { key, .. } => key.clone(),
            StoreError::InvalidRemoteOp { origin, .. } => origin.clone(),
            StoreError::Snapshot(e) => e.path().display().to_string(),
            StoreError::RestoreUnfinished { marker } => marker.display().to_string(),
            StoreError::Wal(e) => e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}
