//! UDP discovery: nodes on one network find each other without configuration.
//!
//! Every node announces itself (node id, transport address, a random per-start instance
//! id) to a broadcast address every `announce_interval_ms`, listens for the announcements
//! of others, and keeps a [`PeerRegistry`] of what it heard: peers go stale after half the
//! TTL without an announcement and expire after the full TTL. A probe asks every node to
//! answer at once, with a reply unicast to the prober. The design follows syncthing's
//! local discovery (magic-prefixed packets, instance ids, own packets ignored, source
//! address substituted for an unspecified one). The wire format is in [`packet`] and in
//! `docs/discovery.md`.
//!
//! Every datagram is signed with the node's identity key and carries its public key, a
//! timestamp and a counter (issue 12): a peer's fingerprint is learnt from its
//! announcements, a node id stays bound to the key it was first announced with while its
//! entry lives, and forged, replayed or impersonating datagrams are ignored and counted.
//! Discovery finds; the node decides whom to trust ([`Discovery::set_trusted`], which only
//! protects trusted entries from eviction here) and whom to connect to.
//!
//! [`Discovery`] holds a non-blocking socket and no thread and no clock: the node registers
//! it on its `mio::Poll`, calls [`Discovery::on_readable`] when the socket is readable and
//! [`Discovery::tick`] regularly (a few times per announce interval), passing its
//! monotonic time in milliseconds. Both return [`DiscoveryEvent`]s. Discovery never
//! connects to anyone: the node decides, and reports back with
//! [`Discovery::mark_connected`] / [`Discovery::mark_faulted`].
//!
//! Nothing a peer sends can stop discovery: malformed datagrams are counted in
//! [`DiscoveryStats`] and dropped, send failures (no route to the broadcast address, a full
//! socket buffer) are logged and counted and never returned as errors. Only
//! [`Discovery::start`] (bad configuration, a port in use) and registration can fail.
//!
//! ```
//! use std::sync::Arc;
//! use softadastra::discovery::{Discovery, DiscoveryConfig};
//! use softadastra::identity::Identity;
//!
//! let mut config = DiscoveryConfig::new("till-01", 9500);
//! config.bind_host = "127.0.0.1".into();
//! config.bind_port = 0; // any free port
//! config.broadcast_host = "127.0.0.1".into();
//! let identity = Arc::new(Identity::generate()?); // the node's own, in a node
//! let mut discovery = Discovery::start(config, identity)?;
//! let mut poll = mio::Poll::new()?;
//! discovery.register(poll.registry(), mio::Token(7))?;
//! let events = discovery.tick(0); // announces (the first tick always does)
//! assert!(events.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This file holds `Discovery` and its owner's API; `config.rs` the settings, errors and
//! address checks; `beacon.rs` the socket side; `packet.rs` the datagram format;
//! `registry.rs` the peer table (pure logic).

mod beacon;
mod config;
pub mod packet;
pub mod registry;

pub use config::{DiscoveryConfig, DiscoveryError};
use config::{check_target, resolve_host};

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use crate::clock::Clock;
use crate::id::validate_node_id;
use crate::identity::Identity;
use crate::io_error::describe_io;
pub use packet::{Packet, PacketError, PacketKind, PublicKey, Unverified};
pub use registry::{
    DEFAULT_MAX_PEERS, DiscoveredPeer, DiscoveryEvent, Ignored, Observed, PeerRegistry, PeerState,
};

/// Default discovery port (bind and broadcast), as in the original.
pub const DEFAULT_DISCOVERY_PORT: u16 = 9400;
/// Default time between two announcements.
pub const DEFAULT_ANNOUNCE_INTERVAL_MS: u64 = 3_000;
/// Default time after which a silent peer expires (stale at half of it).
pub const DEFAULT_TTL_MS: u64 = 15_000;
/// Default transport protocol version carried in announcements.
pub const DEFAULT_TRANSPORT_VERSION: u16 = 1;

/// Receive buffer: larger than any valid packet, so that an over-long datagram is seen as
/// such (and a newer version's longer packet still shows its version byte).
const RECV_BUF_LEN: usize = 2048;
/// Datagrams read per call before yielding back to the node's loop; the rest are read at
/// the next `tick` or readiness event.
const MAX_DATAGRAMS_PER_CALL: usize = 1024;
/// A given address is answered (reply to a probe, announcement to a new peer) at most once
/// per this many milliseconds, so that forged probes cannot turn this node into a flooder.
const ANSWER_MIN_INTERVAL_MS: u64 = 100;
/// Addresses remembered for the answer limit; beyond this, answers are dropped.
const MAX_ANSWERED: usize = 1024;
/// Source addresses remembered for "warned once" log lines.
const MAX_WARNED: usize = 256;

/// Counters since start. Datagram counts are per destination (an announcement to the
/// broadcast address and one extra target counts 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Announcements sent: periodic ones, and answers to newly discovered peers.
    pub announcements_sent: u64,
    pub probes_sent: u64,
    /// Replies sent to probes.
    pub replies_sent: u64,
    /// Datagrams that could not be sent (logged, never fatal).
    pub send_errors: u64,
    /// Datagrams from other nodes that passed every check (well formed, recent, new, signed)
    /// and were acted on. Probes this node would not answer (it has no transport, or it
    /// answered that address moments ago) are dropped unchecked and not counted.
    pub packets_received: u64,
    /// Datagrams that were not valid discovery packets (garbage, other versions).
    pub invalid_packets: u64,
    /// Well-formed datagrams whose signature did not verify: forged or corrupted.
    pub bad_signatures: u64,
    /// Signed datagrams whose timestamp was outside the clock window: replays of old
    /// packets, or a clock set wrong on one side (logged once per address, with the gap).
    pub out_of_window: u64,
    /// Announcements not newer than the last one taken from their node: replays.
    pub replayed: u64,
    /// Announcements for a node id the table holds bound to another key.
    pub impersonations: u64,
    /// Our own datagrams, looped back by the broadcast.
    pub own_packets_ignored: u64,
    /// Genuine datagrams carrying our node id from another instance or key: two nodes
    /// share a node id.
    pub duplicate_node_id: u64,
    /// Answers not sent because the same address was answered moments ago.
    pub answers_suppressed: u64,
    /// Entries evicted from a full table to make room for a new peer (each reported as
    /// `Expired`).
    pub peers_evicted: u64,
    /// New peers ignored because the table is full of trusted or connected entries.
    pub peers_refused: u64,
    /// Failed reads from the socket (other than "no more data").
    pub receive_errors: u64,
}

/// The discovery endpoint of one node. See the module documentation.
#[derive(Debug)]
pub struct Discovery {
    socket: UdpSocket,
    local_addr: SocketAddr,
    node_id: String,
    instance_id: u64,
    targets: Vec<SocketAddr>,
    announce_interval_ms: u64,
    /// Signs every datagram (a fresh timestamp and counter each, so each is signed anew).
    identity: Arc<Identity>,
    /// The identity's public key, as every datagram carries it.
    key: PublicKey,
    /// The wall clock the timestamps are read from (the node's, so tests can move it).
    wall: Arc<dyn Clock>,
    /// What this node says about itself; its transport port 0 means "no transport runs":
    /// the node then listens and probes, and neither announces nor replies (nobody could
    /// connect to it). Its counter is the last one sent.
    template: Packet,
    clock_window_ms: u64,
    registry: PeerRegistry,
    next_announce_ms: Option<u64>,
    stats: DiscoveryStats,
    buf: Vec<u8>,
    /// Datagrams may be left in the socket (read limit or read error): `tick` reads them.
    backlog: bool,
    /// Configured targets whose last send failed, with the error: logged once per change.
    failing_targets: HashMap<SocketAddr, Option<i32>>,
    /// Sources already warned about (other protocol version, duplicate node id).
    warned: HashSet<(IpAddr, &'static str)>,
    /// When each address was last answered.
    answered: HashMap<SocketAddr, u64>,
}

impl Discovery {
    /// Validates `config`, binds the socket (non-blocking, SO_BROADCAST on for IPv4) and
    /// checks that `identity` (the node's key pair) can sign the datagrams. Does not send
    /// anything: the first [`Discovery::tick`] announces. Host names (not IP literals) are
    /// resolved here, once, which may block.
    pub fn start(
        config: DiscoveryConfig,
        identity: Arc<Identity>,
    ) -> Result<Discovery, DiscoveryError> {
        let invalid =
            |field: &'static str, reason: String| DiscoveryError::InvalidConfig { field, reason };
        validate_node_id(&config.node_id).map_err(|e| invalid("node_id", e.to_string()))?;
        if config.broadcast && config.broadcast_port == 0 {
            return Err(invalid("broadcast_port", "must not be 0".into()));
        }
        if config.announce_interval_ms == 0 {
            return Err(invalid("announce_interval_ms", "must not be 0".into()));
        }
        if config.ttl_ms < config.announce_interval_ms.saturating_mul(2) {
            return Err(invalid(
                "ttl_ms",
                format!(
                    "{} ms is less than twice announce_interval_ms ({} ms): peers would go \
                     stale between two announcements",
                    config.ttl_ms, config.announce_interval_ms
                ),
            ));
        }
        if config.max_peers == 0 {
            return Err(invalid("max_peers", "must not be 0".into()));
        }
        let max_window = config.ttl_ms / 2;
        let clock_window_ms = config.clock_window_ms.unwrap_or(max_window);
        if clock_window_ms == 0 || clock_window_ms > max_window {
            return Err(invalid(
                "clock_window_ms",
                format!(
                    "{clock_window_ms} ms is not between 1 ms and half of ttl_ms ({max_window} \
                     ms): a wider window would let an expired peer's old announcement bring \
                     it back"
                ),
            ));
        }
        let key = PublicKey::of(&identity)
            .ok_or_else(|| invalid("identity", "not an ECDSA P-256 key".into()))?;
        let bind_ip = resolve_host("bind_host", &config.bind_host)?;
        let broadcast_ip = resolve_host("broadcast_host", &config.broadcast_host)?;
        let transport_host = if config.transport_host.is_empty() {
            None
        } else {
            Some(resolve_host("transport_host", &config.transport_host)?)
        };
        let mut targets = Vec::new();
        if config.broadcast {
            targets.push(check_target(
                "broadcast_host",
                bind_ip,
                SocketAddr::new(broadcast_ip, config.broadcast_port),
            )?);
        }
        for t in &config.extra_targets {
            let t = check_target("extra_targets", bind_ip, *t)?;
            if !targets.contains(&t) {
                targets.push(t);
            }
        }

        let display_name = if config.display_name.is_empty() {
            config.node_id.as_str()
        } else {
            packet::truncate_utf8(&config.display_name, packet::MAX_DISPLAY_NAME_LEN)
        };
        let instance_id = crate::id::new_instance_id();
        let template = Packet {
            kind: PacketKind::Probe,
            node_id: config.node_id.clone(),
            instance_id,
            counter: 0,
            timestamp_ms: 0,
            transport_host,
            transport_port: config.transport_port,
            transport_version: config.transport_version,
            display_name: display_name.to_string(),
        };
        // Everything a datagram carries is fixed but the kind, port, counter and time:
        // one signed now shows the others will encode and sign (a key that cannot sign
        // fails here rather than on every send).
        template
            .encode(&identity)
            .map_err(|e| invalid("identity", e.to_string()))?;

        let bind_addr = SocketAddr::new(bind_ip, config.bind_port);
        let socket = UdpSocket::bind(bind_addr).map_err(|source| DiscoveryError::Bind {
            addr: bind_addr,
            source,
        })?;
        if let Err(source) = socket.set_broadcast(true) {
            if bind_ip.is_ipv4() {
                return Err(DiscoveryError::Socket {
                    op: "enable broadcast on",
                    addr: bind_addr,
                    source,
                });
            }
            log::debug!("discovery socket {bind_addr}: no SO_BROADCAST on IPv6: {source}");
        }
        let local_addr = socket
            .local_addr()
            .map_err(|source| DiscoveryError::Socket {
                op: "read the address of",
                addr: bind_addr,
                source,
            })?;
        log::info!(
            "discovery {}: listening on {local_addr}, announcing to {}",
            config.node_id,
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Discovery {
            socket,
            local_addr,
            registry: PeerRegistry::new(config.node_id.clone(), config.ttl_ms)
                .with_max_peers(config.max_peers)
                .with_clock_window_ms(clock_window_ms),
            node_id: config.node_id,
            instance_id,
            targets,
            announce_interval_ms: config.announce_interval_ms,
            identity,
            key,
            wall: Arc::new(crate::clock::SystemClock),
            template,
            clock_window_ms,
            next_announce_ms: None,
            stats: DiscoveryStats::default(),
            buf: vec![0; RECV_BUF_LEN],
            backlog: false,
            failing_targets: HashMap::new(),
            warned: HashSet::new(),
            answered: HashMap::new(),
        })
    }

    /// Registers the socket for readable events on the node's poll.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<(), DiscoveryError> {
        registry
            .register(&mut self.socket, token, Interest::READABLE)
            .map_err(|source| DiscoveryError::Socket {
                op: "register",
                addr: self.local_addr,
                source,
            })
    }

    /// Removes the socket from the node's poll.
    pub fn deregister(&mut self, registry: &Registry) -> Result<(), DiscoveryError> {
        registry
            .deregister(&mut self.socket)
            .map_err(|source| DiscoveryError::Socket {
                op: "deregister",
                addr: self.local_addr,
                source,
            })
    }

    /// The address the socket is bound to (with the actual port when `bind_port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This start's random instance id, carried in every datagram.
    #[cfg(any(test, feature = "internals"))]
    pub fn instance_id(&self) -> u64 {
        self.instance_id
    }

    /// Reads the wall clock (datagram timestamps, and the window they are checked against)
    /// from `clock` instead of the system's: the node passes its own.
    pub fn set_wall_clock(&mut self, clock: Arc<dyn Clock>) {
        self.wall = clock;
    }

    /// The fingerprints (of `Identity::fingerprint`, 64 hex digits) of the peers the node
    /// trusts, replacing the previous set. Discovery still finds and reports every peer;
    /// trusted ones are only never evicted from a full table. Whom to connect to is the
    /// node's decision.
    #[allow(dead_code, reason = "the node's trust store (issue 12) calls it")]
    pub fn set_trusted(&mut self, fingerprints: HashSet<String>) {
        self.registry.set_trusted(fingerprints);
    }

    /// Adds a destination for announcements and probes (a peer's discovery socket known
    /// from configuration, say). Returns false when it is one already. Refused, like
    /// `extra_targets` at start, for port 0 or an IPv6 address on an IPv4 socket.
    pub fn add_target(&mut self, target: SocketAddr) -> Result<bool, DiscoveryError> {
        let target = check_target("target", self.local_addr.ip(), target)?;
        if self.targets.contains(&target) {
            return Ok(false);
        }
        self.targets.push(target);
        Ok(true)
    }

    /// Reads every datagram waiting on the socket (up to an internal limit per call):
    /// answers probes with a unicast reply, takes announcements and replies into the peer
    /// table, and answers a newly discovered or restarted peer with a unicast announcement
    /// so that it learns about this node without waiting for the next interval. Invalid
    /// datagrams are counted and dropped. Safe to call when nothing is readable.
    pub fn on_readable(&mut self, now_ms: u64) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        self.receive(now_ms, &mut events);
        events
    }

    /// Periodic work: reads datagrams left behind by `on_readable`'s limit, announces when
    /// `announce_interval_ms` has passed since the last announcement (the first call always
    /// announces), and ages the peer table (stale, expired).
    pub fn tick(&mut self, now_ms: u64) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        if self.backlog {
            self.receive(now_ms, &mut events);
        }
        let interval = self.announce_interval_ms;
        // A next time more than one interval ahead means the clock went backwards.
        let due = self
            .next_announce_ms
            .is_none_or(|next| now_ms >= next || next > now_ms.saturating_add(interval));
        if due {
            if self.announcing() {
                self.announce(now_ms);
            } else {
                // Listening only: ask the others to reply, on the same interval.
                self.next_announce_ms = Some(now_ms.saturating_add(interval));
                self.send_probes();
            }
        }
        self.answered
            .retain(|_, at| *at <= now_ms && now_ms - *at < ANSWER_MIN_INTERVAL_MS);
        for event in self.registry.tick(now_ms) {
            log_event(&self.node_id, &event);
            events.push(event);
        }
        events
    }

    /// Announces now to every target and restarts the announce interval from `now_ms`.
    /// Does not send anything while no transport runs (transport port 0).
    pub fn announce(&mut self, now_ms: u64) {
        self.next_announce_ms = Some(now_ms.saturating_add(self.announce_interval_ms));
        if !self.announcing() {
            // No transport: an announcement would tell peers to dial a port where nothing
            // listens (and the format refuses port 0).
            return;
        }
        for i in 0..self.targets.len() {
            let target = self.targets[i];
            if self.send_to_target(PacketKind::Announce, target) {
                self.stats.announcements_sent += 1;
            }
        }
    }

    /// Sends a probe to every target: every node that hears it replies at once.
    #[cfg(any(test, feature = "internals"))]
    pub fn probe(&mut self) {
        self.send_probes();
    }

    fn send_probes(&mut self) {
        for i in 0..self.targets.len() {
            let target = self.targets[i];
            if self.send_to_target(PacketKind::Probe, target) {
                self.stats.probes_sent += 1;
            }
        }
    }

    /// Whether datagrams may still wait in the socket (a read limit was hit): the next
    /// [`Discovery::tick`] reads them, so a waiting event loop must not sleep.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Whether this node announces itself (its transport runs).
    pub fn announcing(&self) -> bool {
        self.template.transport_port != 0
    }

    /// The node's transport now listens on `port` (0: it stopped). With a port, the node
    /// announces itself at once and on every interval; without one it only listens and
    /// probes, so that no peer dials an address where nothing listens.
    pub fn set_transport_port(&mut self, port: u16, now_ms: u64) {
        if port == self.template.transport_port {
            return;
        }
        self.template.transport_port = port;
        if port != 0 {
            self.announce(now_ms);
        }
    }

    /// When [`Discovery::tick`] has work next (an announcement, a probe, a peer going
    /// stale or expiring), so that a waiting event loop wakes for it.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let mut next = self.next_announce_ms;
        if let Some(at) = self.registry.next_deadline_ms() {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next
    }

    /// Every known peer (any state but expired), ordered by node id.
    pub fn peers(&self) -> Vec<DiscoveredPeer> {
        self.registry.peers()
    }

    /// One known peer.
    #[cfg(any(test, feature = "internals"))]
    pub fn peer(&self, node_id: &str) -> Option<&DiscoveredPeer> {
        self.registry.get(node_id)
    }

    /// The node connected to `node_id`. False for a node id discovery does not know.
    pub fn mark_connected(&mut self, node_id: &str) -> bool {
        self.registry.mark_connected(node_id)
    }

    /// The node failed to reach `node_id` (or lost it). False for an unknown node id.
    pub fn mark_faulted(&mut self, node_id: &str) -> bool {
        self.registry.mark_faulted(node_id)
    }

    /// The node closed its connection to `node_id` normally. False for an unknown node id.
    #[cfg(any(test, feature = "internals"))]
    pub fn mark_disconnected(&mut self, node_id: &str) -> bool {
        self.registry.mark_disconnected(node_id)
    }

    /// Peers marked connected that are not among `connected` (node ids) lost their
    /// connection: they age again from their last announcement.
    pub fn mark_disconnected_except(&mut self, connected: &[&str]) {
        self.registry.mark_disconnected_except(connected);
    }

    /// The counters since start.
    pub fn stats(&self) -> DiscoveryStats {
        self.stats
    }
}

fn log_event(node_id: &str, event: &DiscoveryEvent) {
    match event {
        DiscoveryEvent::Discovered(p) => log::debug!(
            "discovery {node_id}: peer {} available at {}",
            p.node_id,
            p.transport_addr()
        ),
        DiscoveryEvent::Restarted(p) => log::debug!(
            "discovery {node_id}: peer {} restarted, now at {}",
            p.node_id,
            p.transport_addr()
        ),
        DiscoveryEvent::Stale(id) => log::debug!("discovery {node_id}: peer {id} is stale"),
        DiscoveryEvent::Expired(id) => log::debug!("discovery {node_id}: peer {id} expired"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The codes these errors get above this layer (crate::error maps them).
    use crate::error::{ErrorCode, discovery_code};

    fn loopback(node_id: &str) -> DiscoveryConfig {
        let mut c = DiscoveryConfig::new(node_id, 9500);
        c.bind_host = "127.0.0.1".into();
        c.bind_port = 0;
        c.broadcast_host = "127.0.0.1".into();
        c
    }

    fn identity() -> Arc<Identity> {
        Arc::new(Identity::generate().unwrap())
    }

    fn start(config: DiscoveryConfig) -> Discovery {
        Discovery::start(config, identity()).unwrap()
    }

    fn start_error(config: DiscoveryConfig) -> DiscoveryError {
        Discovery::start(config, identity()).expect_err("start must fail")
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = DiscoveryConfig::new("n", 9500);
        assert_eq!(c.bind_host, "0.0.0.0");
        assert_eq!(c.bind_port, 9400);
        assert_eq!(c.broadcast_host, "255.255.255.255");
        assert_eq!(c.broadcast_port, 9400);
        assert_eq!(c.transport_host, "0.0.0.0");
        assert_eq!(c.announce_interval_ms, 3000);
        assert_eq!(c.ttl_ms, 15000);
        assert_eq!(c.max_peers, 1024);
        assert_eq!(c.clock_window_ms, None);
        assert_eq!(start(loopback("n")).clock_window_ms, 7500, "half the TTL");
    }

    #[test]
    fn invalid_configs_name_the_field() {
        type Edit = fn(&mut DiscoveryConfig);
        let cases: Vec<(&str, Edit)> = vec![
            ("node_id", |c| c.node_id = "bad id".into()),
            ("broadcast_port", |c| c.broadcast_port = 0),
            ("announce_interval_ms", |c| c.announce_interval_ms = 0),
            ("ttl_ms", |c| c.ttl_ms = c.announce_interval_ms),
            ("max_peers", |c| c.max_peers = 0),
            ("clock_window_ms", |c| c.clock_window_ms = Some(0)),
            ("clock_window_ms", |c| c.clock_window_ms = Some(c.ttl_ms / 2 + 1)),
            ("bind_host", |c| c.bind_host = String::new()),
            ("broadcast_host", |c| c.broadcast_host = "::1".into()),
            ("extra_targets", |c| {
                c.extra_targets = vec!["[::1]:9400".parse().unwrap()];
            }),
            ("extra_targets", |c| {
                c.extra_targets = vec!["127.0.0.1:0".parse().unwrap()];
            }),
        ];
        for (field, edit) in cases {
            let mut c = loopback("node-a");
            edit(&mut c);
            let err = start_error(c);
            assert_eq!(discovery_code(&err), ErrorCode::InvalidArgument, "{err}");
            assert_eq!(err.context(), field, "{err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn a_port_in_use_names_the_address_and_the_cause() {
        let first = start(loopback("node-a"));
        let mut c = loopback("node-b");
        c.bind_port = first.local_addr().port();
        let err = start_error(c);
        assert_eq!(discovery_code(&err), ErrorCode::DiscoveryError);
        assert_eq!(
            err.to_string(),
            format!(
                "cannot bind discovery socket {}: address already in use",
                first.local_addr()
            )
        );
        assert_eq!(err.context(), first.local_addr().to_string());
    }

    #[test]
    fn an_address_not_on_this_machine_cannot_be_bound() {
        let mut c = loopback("node-a");
        c.bind_host = "192.0.2.1".into(); // TEST-NET-1, never local
        let err = start_error(c);
        assert!(
            err.to_string()
                .starts_with("cannot bind discovery socket 192.0.2.1:0: "),
            "{err}"
        );
    }

    #[test]
    fn host_names_are_resolved_once_at_start() {
        let mut c = loopback("node-a");
        c.bind_host = "localhost".into();
        c.broadcast_host = "localhost".into();
        let d = start(c);
        assert!(d.local_addr().ip().is_loopback());
    }

    #[test]
    fn instance_ids_differ_between_starts() {
        let a = start(loopback("node-a"));
        let b = start(loopback("node-a"));
        assert_ne!(a.instance_id(), b.instance_id());
    }

    #[test]
    fn a_failing_target_is_counted_and_the_others_still_get_the_announcement() {
        let mut listener = start(loopback("listener"));
        let mut c = loopback("node-a");
        c.broadcast_port = listener.local_addr().port();
        let mut d = start(c);
        // An IPv6 destination on an IPv4 socket fails on every send (start refuses such a
        // configuration, so it is injected here to stand for "no route to host").
        d.targets.insert(0, "[::1]:9".parse().unwrap());
        d.tick(0);
        d.tick(10_000);
        d.probe();
        assert_eq!(d.stats().send_errors, 3);
        assert_eq!(d.stats().announcements_sent, 2);
        assert_eq!(d.stats().probes_sent, 1);
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen.extend(listener.on_readable(0));
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            matches!(seen.as_slice(), [DiscoveryEvent::Discovered(p)] if p.node_id == "node-a"),
            "{seen:?}"
        );
    }

    #[test]
    fn every_datagram_is_signed_anew_with_a_greater_counter() {
        let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut c = loopback("node-a");
        c.broadcast_port = listener.local_addr().unwrap().port();
        let id = identity();
        let mut d = Discovery::start(c, id.clone()).unwrap();
        d.tick(0);
        d.probe();
        d.announce(1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut buf = [0u8; 2048];
            let (n, _) = listener.recv_from(&mut buf).unwrap();
            let datagram = Packet::decode(&buf[..n]).unwrap();
            datagram.verify().unwrap();
            assert_eq!(datagram.key.fingerprint(), id.fingerprint());
            let wall = crate::clock::wall_now_ms();
            assert!(datagram.packet.timestamp_ms.abs_diff(wall) < 5_000);
            seen.push((datagram.packet.kind, datagram.packet.counter));
        }
        assert_eq!(
            seen,
            [
                (PacketKind::Announce, 1),
                (PacketKind::Probe, 2),
                (PacketKind::Announce, 3)
            ]
        );
    }

    #[test]
    fn the_first_tick_announces_then_every_interval() {
        let mut c = loopback("node-a");
        c.announce_interval_ms = 100;
        c.ttl_ms = 1000;
        let mut d = start(c);
        d.tick(5);
        assert_eq!(d.stats().announcements_sent, 1);
        d.tick(104);
        assert_eq!(d.stats().announcements_sent, 1);
        d.tick(105);
        assert_eq!(d.stats().announcements_sent, 2);
        // A clock that went backwards does not stop the announcements.
        d.tick(0);
        assert_eq!(d.stats().announcements_sent, 3);
    }
}
