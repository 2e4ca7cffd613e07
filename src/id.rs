//! Node-id rules: a leaf every layer may use (the store checks origins, the transport
//! Hellos, discovery announcements, the node its options).

/// Longest node id, in characters.
pub const MAX_NODE_ID_LEN: usize = 128;

/// A node id that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid node id \"{node_id}\": {reason}")]
pub struct InvalidNodeId {
    /// The id as given, escaped and cut (it may come from a peer and be logged).
    pub node_id: String,
    /// Which rule it breaks, in words.
    pub reason: String,
}

/// Node ids are non-empty, at most 128 characters of `[A-Za-z0-9._-]`, so that they are safe
/// in file names, logs, and on the wire.
pub fn validate_node_id(node_id: &str) -> Result<(), InvalidNodeId> {
    let invalid = |reason: String| InvalidNodeId {
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

/// A fresh node id for an application that does not choose its own:
/// `node-<host>-<8 hex digits>`, from `hostname` (usually [`crate::hostname`]) reduced to
/// allowed characters, and a random suffix, so that ids are readable and differ from
/// machine to machine. The CLI generates its nodes' ids this way (and stores them, so that
/// they stay stable across runs).
pub fn generate_node_id(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let suffix = new_instance_id() as u32;
    let host = host.trim_matches('-');
    if host.is_empty() {
        format!("node-{suffix:08x}")
    } else {
        format!("node-{host}-{suffix:08x}")
    }
}

/// A random id: per start of a transport or discovery (instance ids), and the suffix of a
/// generated node id. From the OS's random source (getrandom); should it fail, std's
/// randomly keyed hasher over the time, the process id and a counter.
pub fn new_instance_id() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
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
    })
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
    fn generated_node_ids_are_valid_and_distinct() {
        let a = generate_node_id("Till 3.shop.local");
        let b = generate_node_id("Till 3.shop.local");
        assert!(a.starts_with("node-till-3-shop-local-"), "{a}");
        assert!(validate_node_id(&a).is_ok() && validate_node_id(&generate_node_id("")).is_ok());
        assert_ne!(a, b);
    }
}
