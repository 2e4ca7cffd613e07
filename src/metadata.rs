//! Node metadata: who this node is and what it runs. The node-id rules are in [`crate::id`].

use crate::id::InvalidNodeId;
// The node-id rules are `crate::id`'s; the layers above the metadata reach them here too.
pub(crate) use crate::id::validate_node_id;

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A node id breaks the rules of [`crate::validate_node_id`].
    #[error(transparent)]
    InvalidNodeId(#[from] InvalidNodeId),
}

impl MetadataError {
    /// What the error is about: the node id, escaped and cut.
    pub fn context(&self) -> String {
        match self {
            MetadataError::InvalidNodeId(e) => e.node_id.clone(),
        }
    }
}

/// A description of the local node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The configured node id.
    pub node_id: String,
    /// Defaults to the node id when not configured.
    pub display_name: String,
    /// The machine's host name ([`hostname`]).
    pub hostname: String,
    /// `std::env::consts::OS`: "linux", "macos", "windows", ...
    pub os_name: String,
    /// `ClientOptions::version`: the application's version.
    pub version: String,
    /// When the client was opened, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Milliseconds since the client was opened.
    pub uptime_ms: i64,
    /// What this node runs: "core", "wal", "store", "sync", "transport", "discovery", "metadata".
    pub capabilities: Vec<String>,
    /// The SHA-256 of the node's public key, 64 lowercase hex digits: how peers know it.
    pub fingerprint: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
