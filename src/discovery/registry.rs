//! The peer table: what discovery knows about other nodes. Pure logic: the caller passes
//! the time in (milliseconds on any monotonic clock, and its wall clock for the senders'
//! timestamps), the packets it received, and a way to check a packet's signature.
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
//! any untrusted, not connected --evicted-->          (removed)   reported by the caller
//! ```
//!
//! Announcements from the local node id are ignored. A routine announcement of an
//! available or connected peer only refreshes `last_seen_ms` (and its address, if it moved).
//!
//! An announcement is taken only if, in this order (cheapest first, so that a flood costs
//! a signature check only for packets that would otherwise be taken):
//! 1. its timestamp is within the clock window of this node's wall clock;
//! 2. for a node id in the table: it carries the key the entry is bound to (another key is
//!    an impersonation), and it is newer than the last one taken from it: a greater
//!    counter from the same instance, or a timestamp not older from another instance (a
//!    replay is neither);
//! 3. for a new node id: the table has room, or an entry may be evicted for it;
//! 4. its signature verifies.
//!
//! Why the window is at most half the TTL: a peer expires after a TTL of silence, so any
//! packet it sent before is by then at least `ttl - skew` old, where `skew` is how far its
//! clock runs ahead of ours; packets are only taken with `skew < window`, so the old
//! packet is more than `ttl - window >= window` old and refused. A captured announcement
//! replayed after its sender expired cannot bring it back; while the sender is in the
//! table, its counter and timestamp refuse the replay.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::packet::{Packet, PublicKey};

/// Default for the most peers the table holds (`DiscoveryConfig::max_peers`). When it is
/// full, a new peer evicts the least recently heard untrusted entry, or is ignored, so
/// that a flood of forged node ids cannot grow memory without bound.
pub const DEFAULT_MAX_PEERS: usize = 1024;

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
    /// The fingerprint of the key the peer signs its announcements with (the SHA-256 of its
    /// DER SubjectPublicKeyInfo, 64 lowercase hex digits, as `Identity::fingerprint`). The
    /// node id is bound to it while the entry lives. Discovery finds; whether to trust the
    /// peer is the node's decision, by this fingerprint.
    pub fingerprint: String,
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
    /// No announcement for the full TTL, or evicted to make room for another peer: the
    /// peer is no longer in the table.
    Expired(String),
}

/// What [`PeerRegistry::observe`] did with a packet it took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The event the packet causes, if any (none for a routine refresh).
    pub event: Option<DiscoveryEvent>,
    /// The node id of the entry evicted to make room for a new peer, if one was.
    pub evicted: Option<String>,
}

/// Why [`PeerRegistry::observe`] did not take a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// The packet came from this node (its own broadcast, looped back).
    OwnNode,
    /// A probe describes no peer to connect to.
    NotAnAnnouncement,
    /// The sender's timestamp is `by_ms` away from this node's wall clock, not less than
    /// the clock window: a replay of an old packet, or a clock set wrong on either side.
    OutOfWindow {
        /// Whether the sender's timestamp is ahead of this node's clock (else behind).
        ahead: bool,
        /// How far apart, in milliseconds.
        by_ms: u64,
    },
    /// Not newer than the last packet taken from this node: a replay.
    Replayed,
    /// The node id is in the table bound to another key: an impersonation (or a node that
    /// lost its key; it is believed again once the old entry expires).
    Impersonation,
    /// The signature does not verify: forged or corrupted.
    BadSignature,
    /// The table is full and every entry is trusted or connected: nothing may be evicted.
    TableFull,
}

/// Whether a packet stamped `timestamp_ms` by its sender is within `window_ms` of this
/// node's wall clock `wall_ms`. Pure; never overflows.
pub fn check_clock(timestamp_ms: u64, wall_ms: u64, window_ms: u64) -> Result<(), Ignored> {
    let by_ms = timestamp_ms.abs_diff(wall_ms);
    if by_ms < window_ms {
        Ok(())
    } else {
        Err(Ignored::OutOfWindow {
            ahead: timestamp_ms > wall_ms,
            by_ms,
        })
    }
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

/// A table entry: the peer as reported, and what the rules check new packets against. Its
/// size is bounded (the strings by the packet format), so the table's is too.
#[derive(Debug)]
struct Entry {
    peer: DiscoveredPeer,
    /// The key the node id is bound to.
    key: PublicKey,
    /// The counter and timestamp of the last packet taken (its instance id is the peer's).
    counter: u64,
    timestamp_ms: u64,
}

impl Entry {
    /// Whether `packet` is newer than the last one taken. Within an instance the counter
    /// decides, so that the sender's wall clock being set back changes nothing; a new
    /// instance's counter starts again, so there its timestamp must not be older (equal
    /// is taken: a restart within the same millisecond is still a restart).
    fn is_superseded_by(&self, packet: &Packet) -> bool {
        if packet.instance_id == self.peer.instance_id {
            packet.counter > self.counter
        } else {
            packet.timestamp_ms >= self.timestamp_ms
        }
    }
}

/// The peer table of one node.
#[derive(Debug)]
pub struct PeerRegistry {
    local_node_id: String,
    ttl_ms: u64,
    max_peers: usize,
    clock_window_ms: u64,
    /// Fingerprints the node trusts: their entries are never evicted.
    trusted: HashSet<String>,
    peers: BTreeMap<String, Entry>,
}

impl PeerRegistry {
    /// A table for the node `local_node_id`; peers go stale after `ttl_ms / 2` without an
    /// announcement and expire after `ttl_ms`. At most [`DEFAULT_MAX_PEERS`] peers, and a
    /// clock window of half the TTL, until set otherwise.
    pub fn new(local_node_id: impl Into<String>, ttl_ms: u64) -> Self {
        PeerRegistry {
            local_node_id: local_node_id.into(),
            ttl_ms,
            max_peers: DEFAULT_MAX_PEERS,
            clock_window_ms: ttl_ms / 2,
            trusted: HashSet::new(),
            peers: BTreeMap::new(),
        }
    }

    /// At most `max_peers` entries (at least 1).
    pub fn with_max_peers(mut self, max_peers: usize) -> Self {
        self.max_peers = max_peers.max(1);
        self
    }

    /// Packets whose timestamp is `clock_window_ms` or more away from the wall clock are
    /// ignored. The caller keeps it at most half the TTL (see the module documentation).
    pub fn with_clock_window_ms(mut self, clock_window_ms: u64) -> Self {
        self.clock_window_ms = clock_window_ms;
        self
    }

    /// The fingerprints the node trusts (lowercase hex): their entries are never evicted.
    /// Replaces the previous set.
    pub fn set_trusted(&mut self, fingerprints: HashSet<String>) {
        self.trusted = fingerprints
            .into_iter()
            .map(|f| f.to_ascii_lowercase())
            .collect();
    }

    /// Takes an announce or reply received from `source` at `now_ms` (monotonic), signed by
    /// `key`, when this node's wall clock reads `wall_ms`. `verify` checks the packet's
    /// signature; it is called only once every other rule has passed, and nothing changes
    /// unless it returns true. Returns what taking the packet caused, or why it was ignored.
    pub fn observe(
        &mut self,
        packet: &Packet,
        key: &PublicKey,
        source: SocketAddr,
        now_ms: u64,
        wall_ms: u64,
        verify: impl FnOnce() -> bool,
    ) -> Result<Observed, Ignored> {
        if !packet.kind.is_announcement() {
            return Err(Ignored::NotAnAnnouncement);
        }
        if packet.node_id == self.local_node_id {
            return Err(Ignored::OwnNode);
        }
        check_clock(packet.timestamp_ms, wall_ms, self.clock_window_ms)?;
        let evict = match self.peers.get(&packet.node_id) {
            Some(entry) if entry.key != *key => return Err(Ignored::Impersonation),
            Some(entry) if !entry.is_superseded_by(packet) => return Err(Ignored::Replayed),
            Some(_) => None,
            None if self.peers.len() >= self.max_peers => {
                Some(self.eviction_candidate().ok_or(Ignored::TableFull)?)
            }
            None => None,
        };
        if !verify() {
            return Err(Ignored::BadSignature);
        }

        let host = resolve_transport_host(packet.transport_host, source.ip());
        if let Some(entry) = self.peers.get_mut(&packet.node_id) {
            entry.counter = packet.counter;
            entry.timestamp_ms = packet.timestamp_ms;
            let peer = &mut entry.peer;
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
                return Ok(Observed {
                    event: Some(DiscoveryEvent::Restarted(peer.clone())),
                    evicted: None,
                });
            }
            let event = match peer.state {
                PeerState::Available | PeerState::Connected => None,
                PeerState::Stale | PeerState::Faulted | PeerState::Unknown => {
                    peer.state = PeerState::Available;
                    Some(DiscoveryEvent::Discovered(peer.clone()))
                }
            };
            return Ok(Observed {
                event,
                evicted: None,
            });
        }
        if let Some(node_id) = &evict {
            self.peers.remove(node_id);
        }
        let peer = DiscoveredPeer {
            node_id: packet.node_id.clone(),
            fingerprint: key.fingerprint(),
            display_name: packet.display_name.clone(),
            host,
            port: packet.transport_port,
            transport_version: packet.transport_version,
            state: PeerState::Available,
            last_seen_ms: now_ms,
            instance_id: packet.instance_id,
            discovery_addr: source,
        };
        self.peers.insert(
            peer.node_id.clone(),
            Entry {
                peer: peer.clone(),
                key: *key,
                counter: packet.counter,
                timestamp_ms: packet.timestamp_ms,
            },
        );
        Ok(Observed {
            event: Some(DiscoveryEvent::Discovered(peer)),
            evicted: evict,
        })
    }

    /// The entry a new peer may replace in a full table: the least recently heard one that
    /// is neither trusted nor connected (a connection in use is the transport's to end).
    /// Ties go to the first node id. One pass over the table, only when it is full.
    fn eviction_candidate(&self) -> Option<String> {
        self.peers
            .values()
            .filter(|e| {
                e.peer.state != PeerState::Connected && !self.trusted.contains(&e.peer.fingerprint)
            })
            .min_by_key(|e| e.peer.last_seen_ms)
            .map(|e| e.peer.node_id.clone())
    }

    /// Ages the table at `now_ms`: available peers silent for half the TTL become stale
    /// (reported once); peers silent for the full TTL are reported expired and dropped.
    /// Connected peers do not age: the transport decides about them.
    pub fn tick(&mut self, now_ms: u64) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        let ttl = self.ttl_ms;
        self.peers.retain(|node_id, entry| {
            let peer = &mut entry.peer;
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
            .filter_map(|e| match e.peer.state {
                PeerState::Connected => None,
                PeerState::Available => Some(e.peer.last_seen_ms.saturating_add(ttl.div_ceil(2))),
                _ => Some(e.peer.last_seen_ms.saturating_add(ttl)),
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
        for (node_id, entry) in &mut self.peers {
            if entry.peer.state == PeerState::Connected && !connected.contains(&node_id.as_str())
            {
                entry.peer.state = PeerState::Available;
            }
        }
    }

    fn set_state(&mut self, node_id: &str, state: PeerState) -> bool {
        match self.peers.get_mut(node_id) {
            Some(entry) => {
                entry.peer.state = state;
                true
            }
            None => false,
        }
    }

    /// One peer, if known.
    #[cfg(any(test, feature = "internals"))]
    pub fn get(&self, node_id: &str) -> Option<&DiscoveredPeer> {
        self.peers.get(node_id).map(|e| &e.peer)
    }

    /// Every known peer, ordered by node id.
    pub fn peers(&self) -> Vec<DiscoveredPeer> {
        self.peers.values().map(|e| e.peer.clone()).collect()
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
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TTL: u64 = 200;
    /// The wall clock in these tests reads WALL + the monotonic time.
    const WALL: u64 = 1_700_000_000_000;

    fn src(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)), 9400)
    }

    /// A key of its own for every node id (never checked: `verify` is injected).
    fn key_of(node_id: &str) -> PublicKey {
        let mut point = [0x5a; 65];
        point[0] = 4;
        for (at, b) in node_id.bytes().take(64).enumerate() {
            point[1 + at] = b;
        }
        PublicKey::from_sec1(&point).unwrap()
    }

    fn announce(node_id: &str, instance_id: u64) -> Packet {
        Packet {
            kind: PacketKind::Announce,
            node_id: node_id.into(),
            instance_id,
            counter: 0,
            timestamp_ms: 0,
            transport_host: None,
            transport_port: 9500,
            transport_version: 1,
            display_name: format!("{node_id} display"),
        }
    }

    /// `p` as its sender sends it at `t`: counter and timestamp taken from `t`.
    fn sent_at(p: &Packet, t: u64) -> Packet {
        Packet {
            counter: t + 1,
            timestamp_ms: WALL + t,
            ..p.clone()
        }
    }

    /// `p`, sent at `t` with its node's own key and a good signature, heard at `t`.
    fn heard(
        r: &mut PeerRegistry,
        p: &Packet,
        from: SocketAddr,
        t: u64,
    ) -> Result<Option<DiscoveryEvent>, Ignored> {
        let observed = r.observe(&sent_at(p, t), &key_of(&p.node_id), from, t, WALL + t, || {
            true
        })?;
        assert_eq!(observed.evicted, None);
        Ok(observed.event)
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
        let event = heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
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
        assert_eq!(peer.fingerprint, key_of("b").fingerprint());
        assert_eq!(r.peers(), vec![peer]);
    }

    #[test]
    fn a_repeated_announcement_only_refreshes() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(heard(&mut r, &announce("b", 7), src(2), 1050), Ok(None));
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1050);
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
    }

    #[test]
    fn own_announcements_are_ignored() {
        let mut r = registry();
        assert_eq!(
            heard(&mut r, &announce("me", 1), src(2), 0),
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
            heard(&mut r, &probe, src(2), 0),
            Err(Ignored::NotAnAnnouncement)
        );
        assert!(r.is_empty());
        let reply = Packet {
            kind: PacketKind::Reply,
            ..announce("b", 1)
        };
        assert!(matches!(
            heard(&mut r, &reply, src(2), 0),
            Ok(Some(DiscoveryEvent::Discovered(_)))
        ));
    }

    #[test]
    fn silence_for_half_the_ttl_makes_a_peer_stale_once() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert!(r.tick(1099).is_empty());
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
        assert_eq!(r.tick(1100), vec![DiscoveryEvent::Stale("b".into())]);
        assert_eq!(state(&r, "b"), Some(PeerState::Stale));
        assert!(r.tick(1150).is_empty(), "reported once");
    }

    #[test]
    fn silence_for_the_ttl_expires_once_and_drops_the_peer() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        r.tick(1100);
        assert!(r.tick(1199).is_empty());
        assert_eq!(r.tick(1200), vec![DiscoveryEvent::Expired("b".into())]);
        assert!(r.get("b").is_none());
        assert!(r.tick(5000).is_empty(), "reported once");
    }

    #[test]
    fn a_long_gap_goes_straight_to_expired() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(r.tick(9000), vec![DiscoveryEvent::Expired("b".into())]);
    }

    #[test]
    fn an_announcement_makes_a_stale_peer_available_again() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        r.tick(1150);
        let event = heard(&mut r, &announce("b", 7), src(2), 1160).unwrap();
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
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        r.tick(1300);
        assert!(matches!(
            heard(&mut r, &announce("b", 7), src(2), 1400),
            Ok(Some(DiscoveryEvent::Discovered(_)))
        ));
    }

    #[test]
    fn a_new_instance_id_reports_a_restart() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        let event = heard(&mut r, &announce("b", 8), src(3), 1010).unwrap();
        let Some(DiscoveryEvent::Restarted(peer)) = event else {
            panic!("{event:?}")
        };
        assert_eq!(peer.instance_id, 8);
        assert_eq!(peer.host, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 3)));
        assert_eq!(peer.state, PeerState::Available);
        assert_eq!(heard(&mut r, &announce("b", 8), src(3), 1020), Ok(None));
    }

    #[test]
    fn a_restart_of_a_connected_peer_makes_it_available() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_connected("b"));
        assert!(matches!(
            heard(&mut r, &announce("b", 9), src(2), 1010),
            Ok(Some(DiscoveryEvent::Restarted(_)))
        ));
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
    }

    #[test]
    fn connected_peers_keep_their_state_and_do_not_age() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_connected("b"));
        assert_eq!(heard(&mut r, &announce("b", 7), src(2), 1050), Ok(None));
        assert_eq!(state(&r, "b"), Some(PeerState::Connected));
        assert!(r.tick(100_000).is_empty());
        assert_eq!(state(&r, "b"), Some(PeerState::Connected));
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1050);
    }

    #[test]
    fn peers_no_longer_connected_become_available_and_the_others_stay() {
        let mut r = registry();
        for (id, port) in [("b", 2), ("c", 3), ("d", 4)] {
            heard(&mut r, &announce(id, 7), src(port), 1000).unwrap();
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
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        r.mark_connected("b");
        assert!(r.tick(1500).is_empty());
        assert!(r.mark_disconnected("b"));
        assert_eq!(state(&r, "b"), Some(PeerState::Available));
        assert_eq!(r.tick(1500), vec![DiscoveryEvent::Expired("b".into())]);
    }

    #[test]
    fn an_announcement_after_a_fault_makes_the_peer_available() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert!(r.mark_faulted("b"));
        assert_eq!(state(&r, "b"), Some(PeerState::Faulted));
        let event = heard(&mut r, &announce("b", 7), src(2), 1010).unwrap();
        let available = |p: &DiscoveredPeer| p.state == PeerState::Available;
        assert!(
            matches!(&event, Some(DiscoveryEvent::Discovered(p)) if available(p)),
            "{event:?}"
        );
    }

    #[test]
    fn a_faulted_peer_is_not_reported_stale_but_does_expire() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
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
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        assert_eq!(heard(&mut r, &announce("b", 7), src(9), 1010), Ok(None));
        assert_eq!(
            r.get("b").unwrap().host,
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 9))
        );
    }

    // ---- Signed announcements: the clock window, replays, binding, forgeries ----

    /// Observes `p` as is (its counter and timestamp untouched), signed by `key`, heard at
    /// monotonic `t` (the wall clock WALL + t); `good` is what the signature check says.
    fn observe_raw(
        r: &mut PeerRegistry,
        p: &Packet,
        key: &PublicKey,
        from: SocketAddr,
        t: u64,
        good: bool,
    ) -> Result<Observed, Ignored> {
        r.observe(p, key, from, t, WALL + t, || good)
    }

    #[test]
    fn the_fingerprint_of_the_announcing_key_is_recorded() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        let peer = r.get("b").unwrap();
        assert_eq!(peer.fingerprint, key_of("b").fingerprint());
        assert_eq!(peer.fingerprint.len(), 64);
    }

    #[test]
    fn a_forged_announcement_is_ignored_and_changes_nothing() {
        let mut r = registry();
        let p = sent_at(&announce("b", 7), 1000);
        assert_eq!(
            observe_raw(&mut r, &p, &key_of("b"), src(2), 1000, false),
            Err(Ignored::BadSignature)
        );
        assert!(r.is_empty());
        // A forged packet for a known peer does not refresh or move it either.
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        let forged = sent_at(&announce("b", 7), 1050);
        assert_eq!(
            observe_raw(&mut r, &forged, &key_of("b"), src(9), 1050, false),
            Err(Ignored::BadSignature)
        );
        let peer = r.get("b").unwrap();
        assert_eq!((peer.last_seen_ms, peer.host), (1000, src(2).ip()));
    }

    #[test]
    fn an_announcement_outside_the_clock_window_is_ignored() {
        let mut r = registry();
        let window = TTL / 2;
        for (offset, ahead) in [(window, true), (window + 1, true), (u64::MAX - WALL - 1000, true)] {
            let p = Packet {
                timestamp_ms: WALL + 1000 + offset,
                ..sent_at(&announce("b", 7), 1000)
            };
            assert_eq!(
                observe_raw(&mut r, &p, &key_of("b"), src(2), 1000, true),
                Err(Ignored::OutOfWindow {
                    ahead,
                    by_ms: offset
                })
            );
        }
        for offset in [window, WALL + 1000] {
            let p = Packet {
                timestamp_ms: WALL + 1000 - offset,
                ..sent_at(&announce("b", 7), 1000)
            };
            assert_eq!(
                observe_raw(&mut r, &p, &key_of("b"), src(2), 1000, true),
                Err(Ignored::OutOfWindow {
                    ahead: false,
                    by_ms: offset
                })
            );
        }
        assert!(r.is_empty());
        // Just inside, either way: taken.
        for (id, ts) in [("b", WALL + 1000 + window - 1), ("c", WALL + 1000 - window + 1)] {
            let p = Packet {
                timestamp_ms: ts,
                ..sent_at(&announce(id, 7), 1000)
            };
            assert!(observe_raw(&mut r, &p, &key_of(id), src(2), 1000, true).is_ok());
        }
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn the_clock_window_is_configurable() {
        let mut r = registry().with_clock_window_ms(10);
        let p = Packet {
            timestamp_ms: WALL + 1000 - 10,
            ..sent_at(&announce("b", 7), 1000)
        };
        assert!(matches!(
            observe_raw(&mut r, &p, &key_of("b"), src(2), 1000, true),
            Err(Ignored::OutOfWindow { by_ms: 10, .. })
        ));
        assert_eq!(check_clock(5, 9, 5), Ok(()));
        assert_eq!(
            check_clock(u64::MAX, 0, u64::MAX),
            Err(Ignored::OutOfWindow {
                ahead: true,
                by_ms: u64::MAX
            })
        );
    }

    #[test]
    fn a_replayed_announcement_is_ignored() {
        let mut r = registry();
        let first = sent_at(&announce("b", 7), 1000);
        let second = sent_at(&announce("b", 7), 1010);
        let b = key_of("b");
        observe_raw(&mut r, &first, &b, src(2), 1000, true).unwrap();
        observe_raw(&mut r, &second, &b, src(2), 1010, true).unwrap();
        // The same packet again, and an older one: counters not greater.
        for p in [&second, &first] {
            assert_eq!(
                observe_raw(&mut r, p, &b, src(2), 1020, true),
                Err(Ignored::Replayed)
            );
        }
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1010);
    }

    #[test]
    fn a_replayed_announcement_does_not_change_the_peers_address() {
        let mut r = registry();
        let b = key_of("b");
        let captured = sent_at(&announce("b", 7), 1000);
        observe_raw(&mut r, &captured, &b, src(2), 1000, true).unwrap();
        // The attacker replays it from its own address (the announced host is unspecified,
        // so the source address would be the peer's).
        assert_eq!(
            observe_raw(&mut r, &captured, &b, src(66), 1005, true),
            Err(Ignored::Replayed)
        );
        assert_eq!(r.get("b").unwrap().host, src(2).ip());
    }

    #[test]
    fn a_replayed_announcement_does_not_revive_an_expired_peer() {
        let mut r = registry();
        let b = key_of("b");
        let captured = sent_at(&announce("b", 7), 1000);
        observe_raw(&mut r, &captured, &b, src(2), 1000, true).unwrap();
        assert_eq!(r.tick(1000 + TTL), vec![DiscoveryEvent::Expired("b".into())]);
        // The entry, and with it the replay bookkeeping, is gone: the clock window refuses
        // the old packet, even from a sender whose clock ran almost a window ahead.
        for t in [1000 + TTL, 1000 + TTL + 1, 1000 + 10 * TTL] {
            assert!(matches!(
                observe_raw(&mut r, &captured, &b, src(66), t, true),
                Err(Ignored::OutOfWindow { ahead: false, .. })
            ));
        }
        let fast_clock = Packet {
            timestamp_ms: WALL + 1000 + TTL / 2 - 1,
            ..captured.clone()
        };
        assert!(matches!(
            observe_raw(&mut r, &fast_clock, &b, src(66), 1000 + TTL, true),
            Err(Ignored::OutOfWindow { .. })
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn a_packet_from_a_previous_instance_is_a_replay_not_a_restart() {
        let mut r = registry();
        let b = key_of("b");
        let old = sent_at(&announce("b", 7), 1000);
        observe_raw(&mut r, &old, &b, src(2), 1000, true).unwrap();
        // The node restarts: a new instance whose counter starts again.
        let new = Packet {
            counter: 1,
            ..sent_at(&announce("b", 8), 1010)
        };
        assert!(matches!(
            observe_raw(&mut r, &new, &b, src(2), 1010, true),
            Ok(Observed {
                event: Some(DiscoveryEvent::Restarted(_)),
                ..
            })
        ));
        // The old instance's packet, late or replayed, is older than the restart.
        assert_eq!(
            observe_raw(&mut r, &old, &b, src(2), 1020, true),
            Err(Ignored::Replayed)
        );
        assert_eq!(r.get("b").unwrap().instance_id, 8);
    }

    #[test]
    fn within_an_instance_the_counter_decides_not_the_senders_clock() {
        let mut r = registry();
        let b = key_of("b");
        observe_raw(&mut r, &sent_at(&announce("b", 7), 1000), &b, src(2), 1000, true).unwrap();
        // The sender's clock was set back a little: a greater counter is still newer.
        let later = Packet {
            timestamp_ms: WALL + 1000 - 20,
            ..sent_at(&announce("b", 7), 1010)
        };
        assert!(observe_raw(&mut r, &later, &b, src(2), 1010, true).is_ok());
        assert_eq!(r.get("b").unwrap().last_seen_ms, 1010);
    }

    #[test]
    fn an_announcement_with_another_key_for_a_known_id_is_ignored() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        let impostor = key_of("mallory");
        // Newer, well signed, another instance: still not the key "b" is bound to.
        for p in [
            sent_at(&announce("b", 7), 1010),
            sent_at(&announce("b", 99), 1010),
        ] {
            let mut verified = false;
            assert_eq!(
                r.observe(&p, &impostor, src(66), 1010, WALL + 1010, || {
                    verified = true;
                    true
                }),
                Err(Ignored::Impersonation)
            );
            assert!(!verified, "refused before its signature is checked");
        }
        let peer = r.get("b").unwrap();
        assert_eq!(peer.fingerprint, key_of("b").fingerprint());
        assert_eq!((peer.host, peer.instance_id), (src(2).ip(), 7));
    }

    #[test]
    fn another_key_may_take_an_id_once_the_old_entry_expired() {
        let mut r = registry();
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        r.tick(1000 + TTL);
        let new_key = key_of("b-with-a-new-key");
        let p = sent_at(&announce("b", 8), 1000 + TTL);
        let observed = observe_raw(&mut r, &p, &new_key, src(3), 1000 + TTL, true).unwrap();
        assert!(matches!(observed.event, Some(DiscoveryEvent::Discovered(_))));
        assert_eq!(r.get("b").unwrap().fingerprint, new_key.fingerprint());
    }

    #[test]
    fn cheap_refusals_do_not_spend_a_signature_check() {
        let mut r = registry().with_max_peers(1);
        r.set_trusted(HashSet::from([key_of("b").fingerprint()]));
        heard(&mut r, &announce("b", 7), src(2), 1000).unwrap();
        let cases = [
            // Replayed.
            (sent_at(&announce("b", 7), 1000), key_of("b")),
            // Out of the window.
            (
                Packet {
                    timestamp_ms: 0,
                    ..sent_at(&announce("c", 7), 1010)
                },
                key_of("c"),
            ),
            // The table is full of trusted entries.
            (sent_at(&announce("c", 7), 1010), key_of("c")),
        ];
        for (p, key) in cases {
            let result = r.observe(&p, &key, src(3), 1010, WALL + 1010, || {
                panic!("signature checked for {p:?}")
            });
            assert!(result.is_err());
        }
    }

    // ---- The bound and eviction ----

    #[test]
    fn a_flood_of_fake_ids_evicts_untrusted_entries_and_stays_bounded() {
        let max = 64;
        let mut r = registry().with_max_peers(max);
        for i in 0..max {
            heard(&mut r, &announce(&format!("n{i}"), 1), src(2), i as u64).unwrap();
        }
        assert_eq!(r.len(), max);
        // Ten times as many fake ids, each heard once: each evicts the least recently
        // heard entry, and the table never grows.
        let mut evicted = Vec::new();
        for i in 0..10 * max {
            let t = (max + i) as u64;
            let p = sent_at(&announce(&format!("fake{i}"), 1), t);
            let observed = observe_raw(&mut r, &p, &key_of(&p.node_id), src(3), t, true).unwrap();
            assert!(matches!(observed.event, Some(DiscoveryEvent::Discovered(_))));
            evicted.push(observed.evicted.expect("an entry evicted"));
            assert_eq!(r.len(), max);
        }
        // The oldest first: the genuine entries, then the earliest fakes.
        let expected: Vec<String> = (0..max)
            .map(|i| format!("n{i}"))
            .chain((0..9 * max).map(|i| format!("fake{i}")))
            .collect();
        assert_eq!(evicted, expected);
    }

    #[test]
    fn the_least_recently_heard_entry_is_evicted_not_the_oldest_discovered() {
        let mut r = registry().with_max_peers(2);
        heard(&mut r, &announce("a", 1), src(2), 1000).unwrap();
        heard(&mut r, &announce("b", 1), src(2), 1010).unwrap();
        heard(&mut r, &announce("a", 1), src(2), 1020).unwrap(); // "a" heard again
        let p = sent_at(&announce("c", 1), 1030);
        let observed = observe_raw(&mut r, &p, &key_of("c"), src(2), 1030, true).unwrap();
        assert_eq!(observed.evicted.as_deref(), Some("b"));
        assert!(r.get("a").is_some() && r.get("c").is_some());
    }

    #[test]
    fn trusted_entries_are_not_evicted() {
        let mut r = registry().with_max_peers(3);
        // Fingerprints in any case: the table compares them in lowercase.
        r.set_trusted(HashSet::from([
            key_of("t1").fingerprint().to_uppercase(),
            key_of("t2").fingerprint(),
        ]));
        heard(&mut r, &announce("t1", 1), src(2), 1000).unwrap();
        heard(&mut r, &announce("u", 1), src(2), 1010).unwrap();
        heard(&mut r, &announce("t2", 1), src(2), 1020).unwrap();
        // The only untrusted entry goes, though it is not the oldest.
        let p = sent_at(&announce("x", 1), 1030);
        let observed = observe_raw(&mut r, &p, &key_of("x"), src(2), 1030, true).unwrap();
        assert_eq!(observed.evicted.as_deref(), Some("u"));
        // Trust "x" too: every entry is trusted, so a newcomer is refused.
        let mut all = HashSet::from([key_of("t1").fingerprint(), key_of("t2").fingerprint()]);
        all.insert(key_of("x").fingerprint());
        r.set_trusted(all);
        let p = sent_at(&announce("y", 1), 1040);
        assert_eq!(
            observe_raw(&mut r, &p, &key_of("y"), src(2), 1040, true),
            Err(Ignored::TableFull)
        );
        let ids: Vec<String> = r.peers().into_iter().map(|p| p.node_id).collect();
        assert_eq!(ids, ["t1", "t2", "x"]);
        // Known peers still refresh in a full table.
        assert_eq!(heard(&mut r, &announce("t1", 1), src(2), 1050), Ok(None));
    }

    #[test]
    fn connected_entries_are_not_evicted() {
        let mut r = registry().with_max_peers(2);
        heard(&mut r, &announce("a", 1), src(2), 1000).unwrap();
        heard(&mut r, &announce("b", 1), src(2), 1010).unwrap();
        r.mark_connected("a");
        let p = sent_at(&announce("c", 1), 1020);
        let observed = observe_raw(&mut r, &p, &key_of("c"), src(2), 1020, true).unwrap();
        assert_eq!(observed.evicted.as_deref(), Some("b"));
        r.mark_connected("c");
        let p = sent_at(&announce("d", 1), 1030);
        assert_eq!(
            observe_raw(&mut r, &p, &key_of("d"), src(2), 1030, true),
            Err(Ignored::TableFull)
        );
    }

    #[test]
    fn a_forged_newcomer_evicts_nobody() {
        let mut r = registry().with_max_peers(1);
        heard(&mut r, &announce("a", 1), src(2), 1000).unwrap();
        let p = sent_at(&announce("c", 1), 1010);
        assert_eq!(
            observe_raw(&mut r, &p, &key_of("c"), src(2), 1010, false),
            Err(Ignored::BadSignature)
        );
        assert!(r.get("a").is_some());
    }

    #[test]
    fn signatures_are_checked_with_the_real_keys() {
        use crate::identity::Identity;
        let b = Identity::generate().unwrap();
        let bytes = sent_at(&announce("b", 7), 1000).encode(&b).unwrap();
        let mut tampered = bytes.clone();
        tampered[40] ^= 1; // in the key: another (or no) point
        let mut r = registry();
        for datagram in [&tampered, &bytes] {
            let d = Packet::decode(datagram).unwrap();
            let result = r.observe(&d.packet, &d.key, src(2), 1000, WALL + 1000, || {
                d.verify().is_ok()
            });
            if datagram == &tampered {
                assert_eq!(result, Err(Ignored::BadSignature));
            } else {
                assert!(result.is_ok(), "{result:?}");
            }
        }
        assert_eq!(r.get("b").unwrap().fingerprint, b.fingerprint());
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
