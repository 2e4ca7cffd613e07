//! Which peers the node trusts: kept in the trust file (`trust_path`, by default the WAL's
//! path with ".trust"), shared with the running transport, changed by
//! [`Client::trust_peer`] and [`Client::untrust_peer`].

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::Client;
use crate::error::{Error, Result};
use crate::identity::IdentityError;
use crate::transport::trust::TrustedPeers;

/// A trusted peer: the node id its key speaks for, and the key's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedPeer {
    /// The node id the key is trusted for.
    pub node_id: String,
    /// The SHA-256 of the peer's public key, 64 lowercase hex digits.
    pub fingerprint: String,
}

/// The trusted peers of a node and where they are kept.
pub(super) struct Trust {
    /// Shared with the transport, which reads it at each handshake.
    pub(super) peers: Arc<RwLock<TrustedPeers>>,
    file: Option<std::path::PathBuf>,
}

impl Trust {
    /// The trust kept at `file` (none yet when it does not exist), or in memory only.
    pub(super) fn load(file: Option<std::path::PathBuf>) -> Result<Trust> {
        let peers = match &file {
            None => TrustedPeers::new(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => TrustedPeers::from_text(&text, &path.display().to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => TrustedPeers::new(),
                Err(e) => return Err(io_error("read", path, &e)),
            },
        };
        Ok(Trust {
            peers: Arc::new(RwLock::new(peers)),
            file,
        })
    }

    /// The trusted fingerprints, for discovery (which keeps trusted entries).
    pub(super) fn fingerprints(&self) -> std::collections::HashSet<String> {
        self.peers
            .read()
            .entries()
            .into_iter()
            .map(|(_, fingerprint)| fingerprint)
            .collect()
    }

    /// Applies `change` and, when it changed anything, writes the file (durably) before
    /// the new trust is used: a trust that is not on disk is not reported as made.
    fn change(&self, change: impl FnOnce(&mut TrustedPeers) -> Result<bool>) -> Result<bool> {
        let mut next = self.peers.read().clone();
        if !change(&mut next)? {
            return Ok(false);
        }
        if let Some(path) = &self.file {
            crate::identity::write_private(path, next.to_text().as_bytes())
                .map_err(|e| io_error("write", path, &e))?;
        }
        *self.peers.write() = next;
        Ok(true)
    }
}

fn io_error(op: &'static str, path: &Path, e: &std::io::Error) -> Error {
    IdentityError::Io {
        op,
        path: path.to_path_buf(),
        cause: crate::io_error::describe_io(e),
    }
    .into()
}

impl Client {
    /// Trusts the key `fingerprint` (64 hex digits, as `node_info().fingerprint` shows it
    /// on that node) as node `node_id`: connections from and to it are accepted from now
    /// on. A node id has one key and a key one node id: an earlier entry of either is
    /// replaced. Kept in the trust file, written durably before this returns.
    pub fn trust_peer(&self, node_id: &str, fingerprint: &str) -> Result<()> {
        self.with_node(|n| {
            let changed = n
                .trust
                .change(|peers| Ok(peers.trust(node_id, fingerprint)?))?;
            if changed {
                let fingerprint = crate::transport::trust::parse_fingerprint(fingerprint)?;
                log::info!(
                    "node {}: trusting {node_id} (key {fingerprint})",
                    self.options.node_id
                );
                self.after_trust_change(n, Some((node_id, &fingerprint)));
            }
            Ok(())
        })
    }

    /// Stops trusting the key of `node_id_or_fingerprint` (a node id, or a fingerprint)
    /// and closes the connections that key holds. An `InvalidPeer` error when none
    /// was trusted.
    pub fn untrust_peer(&self, node_id_or_fingerprint: &str) -> Result<()> {
        self.with_node(|n| {
            let before = n.trust.peers.read().entries();
            if !n
                .trust
                .change(|peers| Ok(peers.untrust(node_id_or_fingerprint)))?
            {
                return Err(Error::InvalidPeer {
                    peer: crate::logsafe::shown(node_id_or_fingerprint),
                    reason: "not trusted".into(),
                });
            }
            let after = n.trust.peers.read().entries();
            let removed: Vec<&(String, String)> =
                before.iter().filter(|e| !after.contains(e)).collect();
            if let Some(net) = n.net.lock().as_mut() {
                let mut events = Vec::new();
                for (node_id, _) in &removed {
                    net.transport.disconnect_node(node_id, &mut events);
                }
            }
            self.after_trust_change(n, None);
            for (node_id, fingerprint) in removed {
                log::info!(
                    "node {}: no longer trusting {node_id} (key {fingerprint})",
                    self.options.node_id
                );
            }
            Ok(())
        })
    }

    /// Tells discovery the trusted keys (trusted entries are never evicted) and, when a
    /// key was just trusted, dials the peer discovery already found with it: a peer found
    /// before it was trusted was not connected to.
    fn after_trust_change(&self, n: &super::OpenNode, trusted: Option<(&str, &str)>) {
        let mut net = n.net.lock();
        let mut discovery = n.discovery.lock();
        let Some(d) = discovery.as_mut() else {
            return;
        };
        d.set_trusted(n.trust.fingerprints());
        let (Some(net), Some((node_id, fingerprint))) = (net.as_mut(), trusted) else {
            return;
        };
        if !self.options.auto_connect_discovered {
            return;
        }
        let now = n.clock.mono_ms();
        for p in d.peers() {
            if p.node_id == node_id && p.fingerprint == fingerprint {
                net.dial_discovered(&p.node_id, p.transport_addr(), now);
            }
        }
    }

    /// The trusted peers, sorted by node id.
    pub fn trusted_peers(&self) -> Result<Vec<TrustedPeer>> {
        self.with_node(|n| {
            Ok(n.trust
                .peers
                .read()
                .entries()
                .into_iter()
                .map(|(node_id, fingerprint)| TrustedPeer {
                    node_id,
                    fingerprint,
                })
                .collect())
        })
    }
}
