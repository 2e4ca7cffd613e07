//! Peers as `Client::peers()` shows them.

use std::collections::{BTreeMap, HashMap};

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
    /// Not announced for a full TTL: listed, with its last address, until it announces
    /// again or is pruned [`EXPIRED_PEER_RETENTION_MS`] later.
    Expired,
    /// The last connection failed or broke; the node retries with backoff.
    Faulted,
    /// Nothing is known yet: the state of a [`Peer::new`] made by the application.
    Unknown,
}

impl PeerState {
    /// Every state, in number order (the numbers of `sa_peer_state_t`).
    pub const ALL: [PeerState; 6] = [
        PeerState::Available,
        PeerState::Connected,
        PeerState::Stale,
        PeerState::Expired,
        PeerState::Faulted,
        PeerState::Unknown,
    ];

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

/// How long a peer that expired stays listed (as `Expired`, with the address it was last
/// heard at) before it is pruned from `Client::peers()`: as long as the record of a peer
/// that is no longer connected.
pub const EXPIRED_PEER_RETENTION_MS: u64 = super::net::PEER_RECORD_TTL_MS;

/// What the node remembers of peers discovery found, to list them once discovery drops
/// them: where each was last heard, and the ones that expired (until pruned). Only peers
/// this node trusts are listed after they expire: anyone can announce, so untrusted
/// announcements (a flood of forged node ids) leave nothing behind. Bounded by discovery's
/// table size. Times are on the monotonic clock.
#[derive(Debug, Default)]
pub(super) struct PeerBook {
    /// Node id -> (host, port, last heard, trusted) of the peers discovery holds.
    heard: HashMap<String, (String, u16, u64, bool)>,
    /// Node id -> (the peer as last heard, with state `Expired`; when it expired).
    expired: BTreeMap<String, (Peer, u64)>,
}

impl PeerBook {
    /// Discovery holds `node_id` at `host:port`, last heard at `last_seen_ms`: no longer
    /// expired. `trusted`: its key is trusted as `node_id` (listed once it expires).
    pub(super) fn heard(
        &mut self,
        node_id: &str,
        (host, port): (String, u16),
        last_seen_ms: u64,
        trusted: bool,
    ) {
        self.expired.remove(node_id);
        if self.heard.len() >= crate::discovery::DEFAULT_MAX_PEERS
            && !self.heard.contains_key(node_id)
        {
            return;
        }
        self.heard
            .insert(node_id.to_string(), (host, port, last_seen_ms, trusted));
    }

    /// Discovery dropped `node_id` at `now_ms` after `ttl_ms` of silence (or evicted it):
    /// listed as expired from now on if it was trusted. Beyond the bound, the oldest expiry
    /// is pruned first.
    pub(super) fn expired(&mut self, node_id: &str, now_ms: u64, ttl_ms: u64) {
        let Some((host, port, heard_ms, true)) = self.heard.remove(node_id) else {
            return;
        };
        let mut peer = Peer::new(node_id, &host, port);
        peer.state = PeerState::Expired;
        peer.last_seen_ms = heard_ms.max(now_ms.saturating_sub(ttl_ms));
        self.expired.insert(node_id.to_string(), (peer, now_ms));
        while self.expired.len() > crate::discovery::DEFAULT_MAX_PEERS {
            let oldest = self
                .expired
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.expired.remove(&id),
                None => break,
            };
        }
    }

    /// Where discovery last heard `node_id`, if it holds it.
    pub(super) fn address_of(&self, node_id: &str) -> Option<(&str, u16)> {
        self.heard
            .get(node_id)
            .map(|(host, port, _, _)| (host.as_str(), *port))
    }

    /// The expired peers still listed at `now_ms` (older ones are pruned).
    pub(super) fn expired_peers(&mut self, now_ms: u64) -> Vec<Peer> {
        self.expired
            .retain(|_, (_, at)| now_ms.saturating_sub(*at) < EXPIRED_PEER_RETENTION_MS);
        self.expired.values().map(|(p, _)| p.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_peer_is_listed_with_its_last_address_until_pruned() {
        let mut book = PeerBook::default();
        book.heard("b", ("127.0.0.1".into(), 9500), 1_000, true);
        book.expired("b", 16_000, 15_000);
        assert_eq!(book.address_of("b"), None);
        let listed = book.expired_peers(16_000);
        assert_eq!(listed.len(), 1);
        let b = &listed[0];
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 9500));
        assert_eq!((b.state, b.last_seen_ms), (PeerState::Expired, 1_000));
        assert_eq!(
            book.expired_peers(16_000 + EXPIRED_PEER_RETENTION_MS - 1).len(),
            1,
            "listed on every call until pruned"
        );
        assert!(book.expired_peers(16_000 + EXPIRED_PEER_RETENTION_MS).is_empty());
    }

    #[test]
    fn an_expired_peer_heard_again_is_no_longer_expired() {
        let mut book = PeerBook::default();
        book.heard("b", ("127.0.0.1".into(), 9500), 1_000, true);
        book.expired("b", 16_000, 15_000);
        book.heard("b", ("127.0.0.1".into(), 9501), 17_000, true);
        assert!(book.expired_peers(17_000).is_empty());
        assert_eq!(book.address_of("b"), Some(("127.0.0.1", 9501)));
    }

    #[test]
    fn an_untrusted_peer_leaves_nothing_behind_when_it_expires() {
        let mut book = PeerBook::default();
        book.heard("ghost", ("127.0.0.1".into(), 1), 1_000, false);
        book.expired("ghost", 16_000, 15_000);
        book.expired("never-heard", 16_000, 15_000);
        assert!(book.expired_peers(16_000).is_empty());
        assert_eq!(book.address_of("ghost"), None);
    }

    #[test]
    fn expired_peers_stay_bounded_dropping_the_oldest_expiry() {
        let mut book = PeerBook::default();
        let bound = crate::discovery::DEFAULT_MAX_PEERS;
        for i in 0..bound as u64 + 10 {
            let id = format!("p{i}");
            book.heard(&id, ("127.0.0.1".into(), 9500), 100 + i, true);
            book.expired(&id, 100 + i, 50);
        }
        let listed = book.expired_peers(200 + bound as u64);
        assert_eq!(listed.len(), bound);
        assert!(!listed.iter().any(|p| p.node_id == "p0"), "the oldest went first");
    }
}
