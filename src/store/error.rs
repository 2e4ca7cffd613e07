//! The store layer's errors.

use super::*;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Wal(#[from] WalError),

    #[error("invalid key \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },

    #[error("value for key \"{key}\" is too large: {size} bytes (limit {MAX_VALUE_LEN} bytes)")]
    ValueTooLarge { key: String, size: usize },

    /// A remote operation that breaks the rules; nothing of its batch was applied.
    #[error("invalid remote operation {seq} from \"{origin}\": {reason}")]
    InvalidRemoteOp {
        origin: String,
        seq: u64,
        reason: String,
    },

    /// A local write found no version or sequence number left to give it: the log holds a
    /// number at the end of its range (forged or damaged data stored before such numbers
    /// were refused). Nothing was written.
    #[error("cannot write key \"{key}\": {reason}")]
    NumbersExhausted { key: String, reason: String },
}

impl StoreError {
    /// The key, path or origin the error is about.
    pub fn context(&self) -> String {
        match self {
            StoreError::InvalidKey { key, .. }
            | StoreError::ValueTooLarge { key, .. }
            | StoreError::NumbersExhausted { key, .. } => key.clone(),
            StoreError::InvalidRemoteOp { origin, .. } => origin.clone(),
            StoreError::Wal(e) => e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}
