//! The peer table: what discovery knows about other nodes. Pure logic: the caller passes
//! the time in (milliseconds on any monotonic clock) and the packets it received.
//!
//! ```text
//! (absent)  --announcement-->                        Available   event Discovered
//! Available --no announcement for ttl/2 (tick)-->    Stale       event Stale
//! Available/Stale/Faulted --none for ttl (tick)-->   (removed)   event Expired, once
//! Stale/Faulted --announcement-->                    Available   event Discovered
//! any --announcement with a new instance id-->       Available   event Restarted
//! any --mark_connected-->                            Connected   (does not age)
//! any --mark_faulted-->                              Faulted
//! Connected/Faulted --mark_disconnected-->           Available   (then ages as usual)
//! ```
//!
//! Announcements from the local node id are ignored. A routine announcement of an
//! available or connected peer only refreshes `last_seen_ms` (and its address, if it moved).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::packet::Packet;

/// Most peers the table holds; announcements from further node ids are ignored, so that a
/// flood of forged node ids cannot grow memory without bound.
pub const MAX_PEERS: usize = 1024;

/// Where a peer is, as far as this node knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PeerState {
    /// Never assigned by the registry; the default value.
    #[default]
    Unknown,
    /// Announced within the last half TTL.
    Available,
    /// No announcement for half the TTL.
    Stale,
    /// The node has a transport connection to the peer (`mark_connected`). Does not age.
    Connected,
    /// The node's last attempt to reach the peer failed (`mark_faulted`). The next
    /// announcement makes it available again.
    Faulted,
}

impl PeerState {
    /// Lowercase name: "unknown", "available", "stale", "connected", "faulted".
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Available => "available",
            PeerState::Stale => "stale",
            PeerState::Connected => "connected",
            PeerState::Faulted => "faulted",
        }
    }
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the peer table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredPeer {
    pub node_id: String,
    /// As announced; may be empty.
    pub display_name: String,
    /// The peer's transport address: the announced host, or the datagram's source address
    /// when the announced host is unspecified (see [`resolve_transport_host`]).
    pub host: IpAddr,
    pub port: u16,
    /// The protocol version of the peer's transport, as announced.
    pub transport_version: u16,
    pub state: PeerState,
    /// When the last announcement arrived (the caller's clock, in milliseconds).
    pub last_seen_ms: u64,
    /// The peer's per-start instance id.
    pub instance_id: u64,
    /// Where the peer's last discovery datagram came from (its discovery socket).
    pub discovery_addr: SocketAddr,
}

impl DiscoveredPeer {
    /// `host:port` of the peer's transport.
    pub fn transport_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// What discovery reports to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// The peer became available: first heard of, or heard again after it was stale or
    /// faulted (or after it expired).
    Discovered(DiscoveredPeer),
    /// A known peer announced a new instance id: it restarted. Any connection to its
    /// previous instance is gone; the peer is available again.
    Restarted(DiscoveredPeer),
    /// No announcement for half the TTL.
    Stale(String),
    /// No announcement for the full TTL; the peer is no longer in the table.
    Expired(String),
}

/// Why [`PeerRegistry::observe`] did not take a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// The packet came from this node (its own broadcast, looped back).
    OwnNode,
    /// A probe describes no peer to connect to.
    NotAnAnnouncement,
    /// The table holds [`MAX_PEERS`] peers already.
    TableFull,
}

/// The transport host to use for an announcement received from `source` (bug 19 of the
/// original: a LAN peer must never make us connect to our own loopback):
/// - unspecified (`None`, "0.0.0.0", "::") → the datagram's source address;
/// - a loopback address received from a non-loopback source → the source address, since
///   the announced address would point at this machine rather than the sender;
/// - anything else → as announced.
///
/// IPv4-mapped IPv6 addresses are reduced to IPv4.
pub fn resolve_transport_host(announced: Option<IpAddr>, source: IpAddr) -> IpAddr {
    let source = source.to_canonical();
    match announced.map(|ip| ip.to_canonical()) {
        None => source,
        Some(ip) if ip.is_unspecified() => source,
        Some(ip) if ip.is_loopback() && !source.is_loopback() => source,
        Some(ip) => ip,
    }
}

/// The peer table of one node.
#[derive(Debug)]
pub struct PeerRegistry {
    local_node_id: String,
    ttl_ms: u64,
    peers: BTreeMap<String, DiscoveredPeer>,
}

impl PeerRegistry {
    /// A table for the node `local_node_id`; peers go stale after `ttl_ms / 2` without an
    /// announcement and expire after `ttl_ms`.
    pub fn new(local_node_id: impl Into<String>, ttl_ms: u64) -> Self {
        PeerRegistry {
            local_node_id: local_node_id.into(),
            ttl_ms,
            peers: BTreeMap::new(),
        }
    }

    /// Takes an announce or reply received from `source` at `now_ms`. Returns the event it
    /// causes, if any, or why it was ignored.
    pub fn observe(
        &mut self,
        packet: &Packet,
        source: SocketAddr,
        now_ms: u64,
    ) -> Result<Option<DiscoveryEvent>, Ignored> {
        if !packet.kind.is_announcement() {
            return Err(Ignored::NotAnAnnouncement);
        }
        if packet.node_id == self.local_node_id {
            return Err(Ignored::OwnNode);
        }
        let host = resolve_transport_host(packet.transport_host, source.ip());
        if let Some(peer) = self.peers.get_mut(&packet.node_id) {
            let restarted = peer.instance_id != packet.instance_id;
            peer.display_name.clone_from(&packet.display_name);
            peer.host = host;
            peer.port = packet.transport_port;
            peer.transport_version = packet.transport_version;
            peer.last_seen_ms = now_ms;
            peer.instance_id = packet.instance_id;
            peer.discovery_addr = source;
            if restarted {
                peer.state = PeerState::Available;
                return Ok(Some(DiscoveryEvent::Restarted(peer.clone())));
            }
            return Ok(match peer.state {
                PeerState::Available | PeerState::Connected => None,
                PeerState::Stale | PeerState::Faulted | PeerState::Unknown => {
                    peer.state = PeerState::Available;
                    Some(DiscoveryEvent::Discovered(peer.clone()))
                }
            });
        }
        if self.peers.len() >= MAX_PEERS {
            return Err(Ignored::TableFull);
        }
        let peer = DiscoveredPeer {
            node_id: packet.node_id.clone(),
            display_name: packet.display_name.clone(),
            host,
            port: packet.transport_port,
            transport_version: packet.transport_version,
            state: PeerState::Available,
            last_seen_ms: now_ms,
            instance_id: packet.instance_id,
            discovery_addr: source,
        };
        self.peers.insert(peer.node_id.clone(), peer.clone());
        Ok(Some(DiscoveryEvent::Discovered(peer)))
    }

    /// Ages the table at `now_ms`: available peers silent for half the TTL become stale
    /// (reported once); peers silent for the full TTL are reported expired and dropped.
    /// Connected peers do not age: the transport decides about them.
    pub fn tick(&mut self, now_ms: u64) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        let ttl = self.ttl_ms;
        self.peers.retain(|node_id, peer| {
            if peer.state == PeerState::Connected {
                return true;
            }
            let age = now_ms.saturating_sub(peer.last_seen_ms);
            if age >= ttl {
                events.push(DiscoveryEvent::Expired(node_id.clone()));
                return false;
            }
            if age.saturating_mul(2) >= ttl && peer.state == PeerState::Available {
                peer.state = PeerState::Stale;
                events.push(DiscoveryEvent::Stale(node_id.clone()));
            }
            true
        });
        events
    }

    /// When [`PeerRegistry::tick`] next has something to report: the earliest time a peer
    /// goes stale or expires (connected peers do not age).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let ttl = self.ttl_ms;
        self.peers
            .values()
            .filter_map(|peer| match peer.state {
                PeerState::Connected => None,
                PeerState::Available => Some(peer.last_seen_ms.saturating_add(ttl.div_ceil(2))),
                _ => Some(peer.last_seen_ms.saturating_add(ttl)),
            })
            .min()
    }

    /// The node connected to the peer. False (and nothing changes) for an unknown node id.
    pub fn mark_connected(&mut self, node_id: &str) -> bool {
        self.set_state(node_id, PeerState::Connected)
    }

    /// The node could not reach the peer, or lost its connection. False for an unknown node id.
    pub fn mark_faulted(&mut self, node_id: &str) -> bool {
        self.set_state(node_id, PeerState::Faulted)
    }

    /// The node closed its connection to the peer normally: the peer is available again and
    /// ages from its last announcement. False for an unknown node id.
    #[cfg(any(test, feature = "internals"))]
    pub fn mark_disconnected(&mut self, node_id: &str) -> bool {
        self.set_state(node_id, PeerState::Available)
    }

    /// Every peer marked connected whose node id is not in `connected` lost its connection:
    /// it is available again and ages from its last announcement. One pass over the table.
    pub fn mark_disconnected_except(&mut self, connected: &[&str]) {
        for (node_id, peer) in &mut self.peers {
            if peer.state == PeerState::Connected && !connected.contains(&node_id.as_str()) {
                peer.state = PeerState::Available;
            }
        }
    }

    fn set_state(&mut self, node_id: &str, state: PeerState) -> bool {
        match self.peers.get_mut(node_id) {
            Some(peer) => {
                peer.state = state;
                true
            }
            None => false,
        }
    }

    /// One peer, if known.
    #[cfg(any(test, feature = "internals"))]
    pub fn get(&self, node_id: &str) -> Option<&DiscoveredPeer> {
        self.peers.get(node_id)
    }

    /// Every known peer, ordered by node id.
    pub fn peers(&self) -> Vec<DiscoveredPeer> {
        self.peers.values().cloned().collect()
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::packet::PacketKind;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TTL: u64 = 200;

    fn src(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)), 9400)
    }

    fn announce(node_id: &str, instance_id: u64) -> Packet {
        Packet {
            kind: PacketKind::Announce,
            node_id: node_id.into(),
            instance_id,
            transport_host: None,
            transport_port: 9500,
            transport_version: 1,
            display_name: format!("{node_id} display"),
        }
    }

    fn registry() -> PeerRegistry {
        PeerRegistry::new("me", TTL)
    }

    fn state(r: &PeerRegistry, id: &str) -> Option<PeerState> {
        r.get(id).map(|p| p.state)
    }

    #[test]
    fn a_first_announcement_discovers_the_peer() {
        let mut r = registry();
        let event = r.observe(&announce("b", 7), src(2), 1000).unwrap();
        let Some(DiscoveryEvent::Discovered(peer)) = event else {
            panic!("{event:?}")
        };
        assert_eq!(peer.node_id, "b");
        assert_eq!(peer.display_name, "b display");
        assert_eq!(peer.host, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(peer.port, 9500);
        assert_eq!(peer.transport_addr(), "192.168.1.2:9500".parse().unwrap());
        assert_eq!(peer.state, PeerState::Available);
        assert_eq!(peer.last_seen_ms, 1000);
        assert_eq!(peer.instance_id, 7);
        assert_eq!(peer.discovery_addr, src(2));
        assert_eq!(r.peers(), vec![peer]);
    }

    #[test]
    fn a_repeated_announcement_only_refreshes() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(r.observe(&announce("b", 7), src(2), 1050), Ok(None));
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1050);
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
    }

    #[test]
    fn own_announcements_are_ignored() {
        let mut r = registry();
        assert_eq!(
            r.observe(&announce("me", 1), src(2), 0),
            Err(Ignored::OwnNode)
        );
        assert!(r.is_empty());
    }

    #[test]
    fn probes_are_not_announcements() {
        let mut r = registry();
        let probe = Packet {
            kind: PacketKind::Probe,
            ..announce("b", 1)
        };
        assert_eq!(
            r.observe(&probe, src(2), 0),
            Err(Ignored::NotAnAnnouncement)
        );
        assert!(r.is_empty());
        let reply = Packet {
            kind: PacketKind::Reply,
            ..announce("b", 1)
        };
        assert!(matches!(
            r.observe(&reply, src(2), 0),
            Ok(Some(DiscoveryEvent::Discovered(_)))
        ));
    }

    #[test]
    fn silence_for_half_the_ttl_makes_a_peer_stale_once() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert!(r.tick(1099).is_empty());
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
        assert_eq!(r.tick(1100), vec![DiscoveryEvent::Stale("b".into())]);
        assert_eq!(state(&r, "b"), Some(PeerState::Stale));
        assert!(r.tick(1150).is_empty(), "reported once");
    }

    #[test]
    fn silence_for_the_ttl_expires_once_and_drops_the_peer() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        r.tick(1100);
        assert!(r.tick(1199).is_empty());
        assert_eq!(r.tick(1200), vec![DiscoveryEvent::Expired("b".into())]);
        assert!(r.get("b").is_none());
        assert!(r.tick(5000).is_empty(), "reported once");
    }

    #[test]
    fn a_long_gap_goes_straight_to_expired() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(r.tick(9000), vec![DiscoveryEvent::Expired("b".into())]);
    }

    #[test]
    fn an_announcement_makes_a_stale_peer_available_again() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        r.tick(1150);
        let event = r.observe(&announce("b", 7), src(2), 1160).unwrap();
        let available = |p: &DiscoveredPeer| p.state == PeerState::Available;
        assert!(
            matches!(&event, Some(DiscoveryEvent::Discovered(p)) if available(p)),
            "{event:?}"
        );
        assert!(r.tick(1200).is_empty());
    }

    #[test]
    fn an_expired_peer_that_returns_is_discovered_anew() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        r.tick(1300);
        assert!(matches!(
            r.observe(&announce("b", 7), src(2), 1400),
            Ok(Some(DiscoveryEvent::Discovered(_)))
        ));
    }

    #[test]
    fn a_new_instance_id_reports_a_restart() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        let event = r.observe(&announce("b", 8), src(3), 1010).unwrap();
        let Some(DiscoveryEvent::Restarted(peer)) = event else {
            panic!("{event:?}")
        };
        assert_eq!(peer.instance_id, 8);
        assert_eq!(peer.host, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 3)));
        assert_eq!(peer.state, PeerState::Available);
        assert_eq!(r.observe(&announce("b", 8), src(3), 1020), Ok(None));
    }

    #[test]
    fn a_restart_of_a_connected_peer_makes_it_available() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_connected("b"));
        assert!(matches!(
            r.observe(&announce("b", 9), src(2), 1010),
            Ok(Some(DiscoveryEvent::Restarted(_)))
        ));
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
    }

    #[test]
    fn connected_peers_keep_their_state_and_do_not_age() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_connected("b"));
        assert_eq!(r.observe(&announce("b", 7), src(2), 1050), Ok(None));
        assert_eq!(state(&r, "b"), Some(PeerState::Connected));
        assert!(r.tick(100_000).is_empty());
        assert_eq!(state(&r, "b"), Some(PeerState::Connected));
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1050);
    }

    #[test]
    fn peers_no_longer_connected_become_available_and_the_others_stay() {
        let mut r = registry();
        for (id, port) in [("b", 2), ("c", 3), ("d", 4)] {
            r.observe(&announce(id, 7), src(port), 1000).unwrap();
        }
        r.mark_connected("b");
        r.mark_connected("c");
        r.mark_faulted("d");
        r.mark_disconnected_except(&["c"]);
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
        assert_eq!(state(&r, "c"), Some(PeerState::Connected));
        assert_eq!(state(&r, "d"), Some(PeerState::Faulted));
    }

    #[test]
    fn a_disconnected_peer_ages_from_its_last_announcement() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        r.mark_connected("b");
        assert!(r.tick(1500).is_empty());
        assert!(r.mark_disconnected("b"));
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
        assert_eq!(r.tick(1500), vec![DiscoveryEvent::Expired("b".into())]);
    }

    #[test]
    fn an_announcement_after_a_fault_makes_the_peer_available() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_faulted("b"));
        assert_eq!(state(&r, "b"), Some(PeerState::Faulted));
        let event = r.observe(&announce("b", 7), src(2), 1010).unwrap();
        let available = |p: &DiscoveredPeer| p.state == PeerState::Available;
        assert!(
            matches!(&event, Some(DiscoveryEvent::Discovered(p)) if available(p)),
            "{event:?}"
        );
    }

    #[test]
    fn a_faulted_peer_is_not_reported_stale_but_does_expire() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        r.mark_faulted("b");
        assert!(r.tick(1150).is_empty());
        assert_eq!(state(&r, "b"), Some(PeerState::Faulted));
        assert_eq!(r.tick(1200), vec![DiscoveryEvent::Expired("b".into())]);
    }

    #[test]
    fn marking_an_unknown_peer_changes_nothing() {
        let mut r = registry();
        assert!(!r.mark_connected("nobody"));
        assert!(!r.mark_faulted("nobody"));
        assert!(!r.mark_disconnected("nobody"));
        assert!(r.is_empty());
    }

    #[test]
    fn a_moved_peer_updates_its_address_without_an_event() {
        let mut r = registry();
        r.observe(&announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(r.observe(&announce("b", 7), src(9), 1010), Ok(None));
        assert_eq!(
            r.get("b").unwrap().host,
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 9))
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut r = registry();
        for i in 0..MAX_PEERS {
            r.observe(&announce(&format!("n{i}"), 1), src(2), 0)
                .unwrap();
        }
        assert_eq!(
            r.observe(&announce("one-more", 1), src(2), 0),
            Err(Ignored::TableFull)
        );
        assert_eq!(r.observe(&announce("n0", 1), src(2), 1), Ok(None));
        assert_eq!(r.len(), MAX_PEERS);
    }

    #[test]
    fn transport_host_rules() {
        let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        // Unspecified: the source address.
        assert_eq!(resolve_transport_host(None, lan), lan);
        assert_eq!(
            resolve_transport_host(Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), lan),
            lan
        );
        assert_eq!(
            resolve_transport_host(Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), lan),
            lan
        );
        // A specific address is kept.
        assert_eq!(resolve_transport_host(Some(other), lan), other);
        // A LAN peer never sends us to our own loopback.
        assert_eq!(resolve_transport_host(Some(lo4), lan), lan);
        assert_eq!(resolve_transport_host(Some(lo6), lan), lan);
        // On one machine, loopback is right.
        assert_eq!(resolve_transport_host(Some(lo4), lo4), lo4);
        assert_eq!(resolve_transport_host(None, lo4), lo4);
        // A dual-stack socket sees IPv4 sources as mapped addresses.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 168, 1, 2).to_ipv6_mapped());
        assert_eq!(resolve_transport_host(None, mapped), lan);
    }

    #[test]
    fn state_names() {
        let names: Vec<&str> = [
            PeerState::Unknown,
            PeerState::Available,
            PeerState::Stale,
            PeerState::Connected,
            PeerState::Faulted,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "unknown",
                "available",
                "stale",
                "connected",
                "faulted"
            ]
        );
        assert_eq!(PeerState::default(), PeerState::Unknown);
    }
}
