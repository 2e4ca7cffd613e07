//! The peers a node trusts: key fingerprints, each bound to one node id.
//!
//! A connection is accepted only when the key the peer proved it holds (TLS) is listed
//! here, and the node id in its Hello is the one listed with that key. Pure data and
//! rules; the node keeps it in a file and the transport consults it at each handshake.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::TransportError;

/// Most trusted keys. The list comes from the operator (configuration, trust file,
/// commands), still bounded: a trust file is read from the disk, and the disk is not
/// trusted to be sane.
pub const MAX_TRUSTED_PEERS: usize = 4096;

/// Length of a fingerprint: SHA-256 in hex.
const FINGERPRINT_LEN: usize = 64;

/// Trusted keys and the node id each speaks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedPeers {
    /// Fingerprint -> node id.
    by_fingerprint: BTreeMap<String, String>,
}

/// Why a peer's key is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distrust {
    /// The key is not trusted at all.
    UnknownKey {
        /// The peer's fingerprint.
        fingerprint: String,
    },
    /// The key is trusted, for another node id than the one the peer claims.
    WrongNodeId {
        /// The peer's fingerprint.
        fingerprint: String,
        /// The node id the key is trusted for.
        trusted_for: String,
        /// The node id the peer claimed.
        claimed: String,
    },
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::UnknownKey { fingerprint } => write!(
                f,
                "the peer's key {fingerprint} is not trusted (trust it with \
                 `softadastra peers trust <node-id> {fingerprint}` if it is yours)"
            ),
            Distrust::WrongNodeId {
                fingerprint,
                trusted_for,
                claimed,
            } => write!(
                f,
                "the peer claims node id {} but its key {fingerprint} is trusted as node \
                 {trusted_for}",
                crate::logsafe::shown(claimed)
            ),
        }
    }
}

/// A fingerprint as given by a person: 64 hex digits, in either case, optionally in pairs
/// separated by ':'. Returns it in the one form used everywhere (lowercase, no ':').
pub fn parse_fingerprint(text: &str) -> Result<String, TransportError> {
    let invalid = |reason: &str| TransportError::InvalidTrust {
        entry: crate::logsafe::shown(text),
        reason: reason.into(),
    };
    let digits: String = text.trim().chars().filter(|&c| c != ':').collect();
    if digits.len() != FINGERPRINT_LEN {
        return Err(invalid(
            "a fingerprint is 64 hex digits (the SHA-256 of the peer's key; \
             `softadastra node info` shows it)",
        ));
    }
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("a fingerprint has only the hex digits 0-9 and a-f"));
    }
    Ok(digits.to_ascii_lowercase())
}

impl TrustedPeers {
    /// No peer trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `fingerprint` as node `node_id`. A node id speaks with one key and a key for
    /// one node: an earlier entry of either is replaced (a key rotation, or a key moved to
    /// a renamed node). Returns whether anything changed.
    pub fn trust(&mut self, node_id: &str, fingerprint: &str) -> Result<bool, TransportError> {
        let fingerprint = parse_fingerprint(fingerprint)?;
        crate::id::validate_node_id(node_id).map_err(|e| TransportError::InvalidTrust {
            entry: crate::logsafe::shown(node_id),
            reason: e.to_string(),
        })?;
        if self.by_fingerprint.get(&fingerprint).map(String::as_str) == Some(node_id) {
            return Ok(false);
        }
        self.by_fingerprint.retain(|_, id| id != node_id);
        if !self.by_fingerprint.contains_key(&fingerprint)
            && self.by_fingerprint.len() >= MAX_TRUSTED_PEERS
        {
            return Err(TransportError::InvalidTrust {
                entry: format!("{node_id} {fingerprint}"),
                reason: format!("at most {MAX_TRUSTED_PEERS} peers can be trusted"),
            });
        }
        self.by_fingerprint.insert(fingerprint, node_id.to_string());
        Ok(true)
    }

    /// Stops trusting the key of `node_id` (or the key `node_id` names, when it is a
    /// fingerprint). Returns whether one was trusted.
    pub fn untrust(&mut self, node_id_or_fingerprint: &str) -> bool {
        let before = self.by_fingerprint.len();
        let fingerprint = parse_fingerprint(node_id_or_fingerprint).ok();
        self.by_fingerprint.retain(|fp, id| {
            id != node_id_or_fingerprint && Some(fp.as_str()) != fingerprint.as_deref()
        });
        self.by_fingerprint.len() != before
    }

    /// Whether the key `fingerprint` may be a peer at all (before its Hello names it).
    pub fn check_key(&self, fingerprint: &str) -> Result<(), Distrust> {
        if self.by_fingerprint.contains_key(fingerprint) {
            Ok(())
        } else {
            Err(Distrust::UnknownKey {
                fingerprint: fingerprint.to_string(),
            })
        }
    }

    /// Whether the key `fingerprint` may speak as `node_id`.
    pub fn check(&self, fingerprint: &str, node_id: &str) -> Result<(), Distrust> {
        match self.by_fingerprint.get(fingerprint) {
            None => Err(Distrust::UnknownKey {
                fingerprint: fingerprint.to_string(),
            }),
            Some(id) if id == node_id => Ok(()),
            Some(id) => Err(Distrust::WrongNodeId {
                fingerprint: fingerprint.to_string(),
                trusted_for: id.clone(),
                claimed: node_id.to_string(),
            }),
        }
    }

    /// (node id, fingerprint) pairs, sorted by node id.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .by_fingerprint
            .iter()
            .map(|(fp, id)| (id.clone(), fp.clone()))
            .collect();
        v.sort();
        v
    }

    /// The trust file's text: a comment, then one "node-id fingerprint" line per key.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# Peers this node trusts: one \"node-id fingerprint\" per line.\n\
             # Managed by `softadastra peers trust` / `untrust`; edits apply at the next start.\n",
        );
        for (id, fp) in self.entries() {
            let _ = writeln!(text, "{id} {fp}");
        }
        text
    }

    /// Reads a trust file's text. `source` names it in errors (with the line number).
    /// Blank lines and lines starting with '#' are skipped.
    pub fn from_text(text: &str, source: &str) -> Result<TrustedPeers, TransportError> {
        let mut peers = TrustedPeers::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: TransportError| TransportError::InvalidTrust {
                entry: format!("{source} line {}", number + 1),
                reason: e.to_string(),
            };
            let mut words = line.split_whitespace();
            let (Some(id), Some(fp), None) = (words.next(), words.next(), words.next()) else {
                return Err(TransportError::InvalidTrust {
                    entry: format!("{source} line {}", number + 1),
                    reason: "expected \"node-id fingerprint\"".into(),
                });
            };
            peers.trust(id, fp).map_err(at)?;
        }
        Ok(peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "aa00000000000000000000000000000000000000000000000000000000000000";
    const FP_B: &str = "bb00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_key_is_accepted_only_for_the_node_id_it_is_trusted_for() {
        let mut t = TrustedPeers::new();
        assert!(t.trust("node-a", FP_A).unwrap());
        assert_eq!(t.check(FP_A, "node-a"), Ok(()));
        assert!(matches!(
            t.check(FP_A, "node-b"),
            Err(Distrust::WrongNodeId { .. })
        ));
        assert!(matches!(
            t.check(FP_B, "node-a"),
            Err(Distrust::UnknownKey { .. })
        ));
        assert!(t.check_key(FP_A).is_ok() && t.check_key(FP_B).is_err());
    }

    #[test]
    fn a_node_id_has_one_key_and_a_key_one_node_id() {
        let mut t = TrustedPeers::new();
        t.trust("node-a", FP_A).unwrap();
        t.trust("node-a", FP_B).unwrap();
        assert_eq!(t.entries(), vec![("node-a".into(), FP_B.into())]);
        t.trust("node-c", FP_B).unwrap();
        assert_eq!(t.entries(), vec![("node-c".into(), FP_B.into())]);
        assert!(!t.trust("node-c", FP_B).unwrap(), "no change");
    }

    #[test]
    fn fingerprints_are_normalised_and_bad_ones_refused_with_the_reason() {
        let colons: String = FP_A
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), FP_A);
        let e = parse_fingerprint("abc").unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = parse_fingerprint(&"g".repeat(64)).unwrap_err().to_string();
        assert!(e.contains("hex digits"), "{e}");
        let mut t = TrustedPeers::new();
        assert!(t.trust("bad id!", FP_A).is_err());
        assert!(t.entries().is_empty());
    }

    #[test]
    fn untrust_by_node_id_or_by_fingerprint() {
        let mut t = TrustedPeers::new();
        t.trust("node-a", FP_A).unwrap();
        t.trust("node-b", FP_B).unwrap();
        assert!(t.untrust("node-a"));
        assert!(t.untrust(&FP_B.to_ascii_uppercase()));
        assert!(!t.untrust("node-a"));
        assert!(t.entries().is_empty());
    }

    #[test]
    fn the_trust_file_round_trips_and_a_bad_line_is_named() {
        let mut t = TrustedPeers::new();
        t.trust("node-a", FP_A).unwrap();
        t.trust("node-b", FP_B).unwrap();
        assert_eq!(TrustedPeers::from_text(&t.to_text(), "f").unwrap(), t);
        let e = TrustedPeers::from_text("# c\n\nnode-a\n", "peers.trust")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peers.trust line 3"), "{e}");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = TrustedPeers::new();
        for i in 0..MAX_TRUSTED_PEERS {
            t.trust(&format!("n{i}"), &format!("{i:064x}")).unwrap();
        }
        let e = t.trust("one-more", FP_A).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
        assert_eq!(t.entries().len(), MAX_TRUSTED_PEERS);
    }
}
