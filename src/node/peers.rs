//! Peers as `Client::peers()` shows them.

use super::*;

/// The state of a peer, as `Client::peers()` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Known and reachable as far as we know (announced recently, or being connected).
    Available,
    /// Handshake done: operations flow.
    Connected,
    /// Not announced for half the discovery TTL.
    Stale,
    /// Not announced for a full TTL (reported once, then dropped).
    Expired,
    /// The last connection failed or broke; the node retries with backoff.
    Faulted,
    /// Nothing is known yet: the state of a [`Peer::new`] made by the application.
    Unknown,
}

impl PeerState {
    /// The lower-case name ("available", "connected", ...), as in JSON and the C ABI.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Available => "available",
            PeerState::Connected => "connected",
            PeerState::Stale => "stale",
            PeerState::Expired => "expired",
            PeerState::Faulted => "faulted",
            PeerState::Unknown => "unknown",
        }
    }
}

/// A peer node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's node id.
    pub node_id: String,
    /// Its transport's host: an IP address or a name to resolve.
    pub host: String,
    /// Its transport's port.
    pub port: u16,
    /// Where the node is with it.
    pub state: PeerState,
    /// When it was last heard from, in milliseconds since the Unix epoch (0: never).
    pub last_seen_ms: u64,
}

impl Peer {
    /// A peer to [`Client::connect`] to, at `host:port` (checked when used).
    pub fn new(node_id: &str, host: &str, port: u16) -> Peer {
        Peer {
            node_id: node_id.to_string(),
            host: host.to_string(),
            port,
            state: PeerState::Unknown,
            last_seen_ms: 0,
        }
    }

    /// A peer on 127.0.0.1.
    pub fn local(node_id: &str, port: u16) -> Peer {
        Peer::new(node_id, "127.0.0.1", port)
    }

    /// Checks the peer and resolves its address.
    pub fn address(&self) -> Result<SocketAddr> {
        let invalid = |reason: String| Error::InvalidPeer {
            peer: format!("{}@{}:{}", self.node_id, self.host, self.port),
            reason,
        };
        if let Err(e) = metadata::validate_node_id(&self.node_id) {
            return Err(invalid(e.to_string()));
        }
        if self.port == 0 {
            return Err(invalid("port 0".into()));
        }
        crate::transport::resolve(&self.host, self.port).map_err(|e| invalid(e.to_string()))
    }
}
