//! Node metadata: who this node is and what it runs. Node id rules live here.

use crate::error::ErrorCode;

/// Longest node id, in characters.
pub const MAX_NODE_ID_LEN: usize = 128;

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("invalid node id \"{node_id}\": {reason}")]
    InvalidNodeId { node_id: String, reason: String },
}

impl MetadataError {
    pub fn code(&self) -> ErrorCode {
        match self {
            MetadataError::InvalidNodeId { .. } => ErrorCode::InvalidArgument,
        }
    }

    pub fn context(&self) -> String {
        match self {
            MetadataError::InvalidNodeId { node_id, .. } => node_id.clone(),
        }
    }
}

/// Node ids are non-empty, at most 128 characters of `[A-Za-z0-9._-]`, so that they are safe
/// in file names, logs, and on the wire.
pub fn validate_node_id(node_id: &str) -> Result<(), MetadataError> {
    let invalid = |reason: String| MetadataError::InvalidNodeId {
        // Escaped and cut: the id may come from a peer, and the error may be logged.
        node_id: crate::logsafe::shown(node_id),
        reason,
    };
    if node_id.is_empty() {
        return Err(invalid("node id must not be empty".into()));
    }
    if node_id.chars().count() > MAX_NODE_ID_LEN {
        return Err(invalid(format!(
            "node id is longer than {MAX_NODE_ID_LEN} characters"
        )));
    }
    if let Some(c) = node_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "character {c:?} is not allowed (use letters, digits, '.', '_' and '-')"
        )));
    }
    Ok(())
}

/// A description of the local node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: String,
    /// Defaults to the node id when not configured.
    pub display_name: String,
    pub hostname: String,
    /// `std::env::consts::OS`: "linux", "macos", "windows", ...
    pub os_name: String,
    pub version: String,
    /// When the client was opened, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub uptime_ms: i64,
    /// What this node runs: "core", "wal", "store", "sync", "transport", "discovery", "metadata".
    pub capabilities: Vec<String>,
}

impl NodeInfo {
    /// The display name, or the node id when there is none.
    pub fn label(&self) -> &str {
        if self.display_name.is_empty() {
            &self.node_id
        } else {
            &self.display_name
        }
    }
}

/// The machine's host name, or "unknown-host" when it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "unknown-host".into(),
    }
}

/// Random per start: std's randomly keyed hasher over the time, the process id and a
/// per-process counter (two starts in one process differ too).
pub fn new_instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.write_u64(STARTS.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_rules() {
        for ok in ["edge-store-kampala-01", "a", "n.1_x-Y", &"x".repeat(128)] {
            assert!(validate_node_id(ok).is_ok(), "{ok}");
        }
        let msg = validate_node_id("").unwrap_err().to_string();
        assert!(msg.contains("must not be empty"), "{msg}");
        let msg = validate_node_id(&"x".repeat(129)).unwrap_err().to_string();
        assert!(msg.contains("longer than 128"), "{msg}");
        let msg = validate_node_id("node a").unwrap_err().to_string();
        assert!(msg.contains("' '"), "{msg}");
        assert!(validate_node_id("nöde").is_err());
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
