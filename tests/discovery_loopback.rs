//! Discovery between real sockets on loopback. Each scenario starts two or three
//! `Discovery` endpoints on 127.0.0.1 (or another 127/8 address) with ephemeral ports, polls
//! them on one `mio::Poll` as the node runtime does, and drives time by hand: `tick` and
//! `on_readable` get the milliseconds the test chooses, so stale and expired transitions
//! need no sleeping.
//!
//! Ports are only known after binding, so every endpoint starts with its broadcast address
//! pointing at a sink socket owned by the test (which also shows what went on the wire),
//! and the test then points the endpoints at each other with `add_target`: each announces
//! to the others' ports directly, standing in for a broadcast address. Every wait is bounded
//! in iterations and in time.
//!
//! Every endpoint has an identity key of its own, kept across a restart (as a node with a
//! data directory keeps its key). Forged, replayed and impersonating datagrams are sent
//! from a plain socket; the wall clock is the system's (only the monotonic time is driven
//! by hand).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use softadastra::clock::wall_now_ms;
use softadastra::discovery::{
    DiscoveredPeer, Discovery, DiscoveryConfig, DiscoveryEvent, DiscoveryStats, Packet, PacketKind,
    PeerState,
};
use softadastra::identity::Identity;

const WAIT: Duration = Duration::from_secs(5);
const MAX_ROUNDS: usize = 500;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A test-owned socket that receives what endpoints send to their broadcast address.
struct Sink {
    socket: UdpSocket,
}

impl Sink {
    fn new() -> Sink {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Sink { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The next datagram, decoded and its signature checked (bounded by the read timeout).
    fn next_packet(&self) -> Packet {
        let datagram = self.next_datagram();
        let decoded = Packet::decode(&datagram).expect("a valid packet");
        decoded.verify().expect("a good signature");
        decoded.packet
    }

    /// The next datagram as it was on the wire.
    fn next_datagram(&self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (len, _) = self.socket.recv_from(&mut buf).expect("a datagram");
        buf[..len].to_vec()
    }
}

/// Endpoints on one poll, with every event they reported (index of the endpoint, event).
struct Cluster {
    poll: Poll,
    events: Events,
    nodes: Vec<Discovery>,
    identities: Vec<Arc<Identity>>,
    log: Vec<(usize, DiscoveryEvent)>,
    sink: Sink,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(64),
            nodes: Vec::new(),
            identities: Vec::new(),
            log: Vec::new(),
            sink: Sink::new(),
        }
    }

    /// Loopback config announcing transport port `transport_port`, broadcasting to the sink.
    fn config(&self, node_id: &str, transport_port: u16) -> DiscoveryConfig {
        let mut c = DiscoveryConfig::new(node_id, transport_port);
        c.bind_host = "127.0.0.1".into();
        c.bind_port = 0;
        c.broadcast_host = "127.0.0.1".into();
        c.broadcast_port = self.sink.addr().port();
        c
    }

    fn add(&mut self, config: DiscoveryConfig) -> usize {
        let identity = Arc::new(Identity::generate().unwrap());
        let mut d = Discovery::start(config, identity.clone()).unwrap();
        d.register(self.poll.registry(), Token(self.nodes.len()))
            .unwrap();
        self.nodes.push(d);
        self.identities.push(identity);
        self.nodes.len() - 1
    }

    /// Stops endpoint `i` and starts a new one in its place (a node restart), with the
    /// same key, or a new one (a node that lost its key, or a memory-only node).
    fn restart_with(&mut self, i: usize, config: DiscoveryConfig, new_key: bool) {
        self.nodes[i].deregister(self.poll.registry()).unwrap();
        if new_key {
            self.identities[i] = Arc::new(Identity::generate().unwrap());
        }
        let mut d = Discovery::start(config, self.identities[i].clone()).unwrap();
        d.register(self.poll.registry(), Token(i)).unwrap();
        self.nodes[i] = d;
    }

    fn restart(&mut self, i: usize, config: DiscoveryConfig) {
        self.restart_with(i, config, false);
    }

    fn stats(&self, i: usize) -> DiscoveryStats {
        self.nodes[i].stats()
    }

    /// Points every endpoint at every other one.
    fn connect_all(&mut self) {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|d| d.local_addr()).collect();
        for (i, d) in self.nodes.iter_mut().enumerate() {
            for (j, addr) in addrs.iter().enumerate() {
                if i != j {
                    assert!(d.add_target(*addr).unwrap());
                }
            }
        }
    }

    fn tick_all(&mut self, now_ms: u64) {
        for i in 0..self.nodes.len() {
            let events = self.nodes[i].tick(now_ms);
            self.log.extend(events.into_iter().map(|e| (i, e)));
        }
    }

    /// Polls and hands readable endpoints their datagrams at `now_ms` until `done` holds;
    /// panics naming `what` after `MAX_ROUNDS` polls or `WAIT`.
    fn pump_until(&mut self, now_ms: u64, what: &str, done: impl Fn(&Cluster) -> bool) {
        let started = Instant::now();
        for _ in 0..MAX_ROUNDS {
            if done(self) {
                return;
            }
            assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(10)))
                .unwrap();
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                let events = self.nodes[i].on_readable(now_ms);
                self.log.extend(events.into_iter().map(|e| (i, e)));
            }
        }
        assert!(done(self), "gave up waiting for {what}");
    }

    /// Events reported by endpoint `i`, in order.
    fn events_of(&self, i: usize) -> Vec<DiscoveryEvent> {
        self.log
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn discovered_by(&self, i: usize) -> Vec<DiscoveredPeer> {
        self.events_of(i)
            .into_iter()
            .filter_map(|e| match e {
                DiscoveryEvent::Discovered(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn knows(&self, i: usize, node_id: &str) -> bool {
        self.nodes[i].peer(node_id).is_some()
    }
}

#[test]
fn discovery_can_move_to_the_node_thread() {
    fn is_send_and_sync<T: Send + Sync>() {}
    is_send_and_sync::<Discovery>();
    is_send_and_sync::<DiscoveryEvent>();
}

#[test]
fn two_nodes_find_each_other_with_the_right_id_host_and_port() {
    let mut c = Cluster::new();
    let mut ca = c.config("node-a", 9501);
    ca.display_name = "Till A".into();
    let a = c.add(ca);
    let b = c.add(c.config("node-b", 9502));
    c.connect_all();
    c.tick_all(0);
    c.pump_until(0, "both discoveries", |c| {
        c.knows(a, "node-b") && c.knows(b, "node-a")
    });

    let seen_by_a = c.discovered_by(a);
    assert_eq!(seen_by_a.len(), 1, "{seen_by_a:?}");
    let pb = &seen_by_a[0];
    assert_eq!(pb.node_id, "node-b");
    assert_eq!(
        pb.display_name, "node-b",
        "display name defaults to the node id"
    );
    assert_eq!(pb.host, LOOPBACK);
    assert_eq!(pb.port, 9502);
    assert_eq!(pb.state, PeerState::Available);
    assert_eq!(pb.instance_id, c.nodes[b].instance_id());
    assert_eq!(pb.discovery_addr, c.nodes[b].local_addr());
    assert_eq!(
        pb.fingerprint,
        c.identities[b].fingerprint(),
        "the fingerprint is learnt from the beacon"
    );

    let seen_by_b = c.discovered_by(b);
    assert_eq!(seen_by_b.len(), 1, "{seen_by_b:?}");
    let pa = &seen_by_b[0];
    assert_eq!(pa.node_id, "node-a");
    assert_eq!(pa.display_name, "Till A");
    assert_eq!(pa.transport_addr(), "127.0.0.1:9501".parse().unwrap());
    assert_eq!(pa.instance_id, c.nodes[a].instance_id());

    assert_eq!(
        c.nodes[a].peers(),
        vec![c.nodes[a].peer("node-b").unwrap().clone()]
    );
}

#[test]
fn three_nodes_find_each_other() {
    let mut c = Cluster::new();
    let ids = ["node-a", "node-b", "node-c"];
    for (i, id) in ids.iter().enumerate() {
        let config = c.config(id, 9600 + i as u16);
        c.add(config);
    }
    c.connect_all();
    c.tick_all(0);
    c.pump_until(0, "six discoveries", |c| {
        (0..3).all(|i| c.nodes[i].peers().len() == 2)
    });
    for (i, id) in ids.iter().enumerate() {
        let peers = c.nodes[i].peers();
        let expected: Vec<(String, u16)> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, other)| (other.to_string(), 9600 + j as u16))
            .collect();
        let got: Vec<(String, u16)> = peers.iter().map(|p| (p.node_id.clone(), p.port)).collect();
        assert_eq!(got, expected, "peers of {id}");
        assert!(peers.iter().all(|p| p.host == LOOPBACK));
    }
}

#[test]
fn own_announcements_are_ignored() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let own = c.nodes[a].local_addr();
    c.nodes[a].add_target(own).unwrap();
    c.tick_all(0);
    c.pump_until(0, "the looped-back announcement", |c| {
        c.nodes[a].stats().own_packets_ignored >= 1
    });
    assert!(c.nodes[a].peers().is_empty());
    assert!(c.log.is_empty(), "{:?}", c.log);
    assert_eq!(c.nodes[a].stats().packets_received, 0);
}

#[test]
fn a_probe_gets_a_reply_and_the_prober_introduces_itself() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let b = c.add(c.config("node-b", 9502));
    let b_addr = c.nodes[b].local_addr();
    c.nodes[a].add_target(b_addr).unwrap();
    // Nobody ticks: no periodic announcement, only the probe and its answers.
    c.nodes[a].probe();
    c.pump_until(0, "the reply", |c| c.knows(a, "node-b"));
    assert_eq!(c.nodes[a].stats().probes_sent, 2, "sink and node-b");
    assert_eq!(c.nodes[b].stats().replies_sent, 1);
    let pb = c.nodes[a].peer("node-b").unwrap();
    assert_eq!(pb.transport_addr(), "127.0.0.1:9502".parse().unwrap());
    // The probe itself teaches node-b nothing, but node-a answers the newly found peer
    // with an announcement at once.
    c.pump_until(0, "node-a's answer", |c| c.knows(b, "node-a"));
    assert_eq!(
        c.nodes[b].peer("node-a").unwrap().transport_addr(),
        "127.0.0.1:9501".parse().unwrap()
    );
}

#[test]
fn a_new_peer_is_answered_directly() {
    // node-b and node-c know only the hub; the hub answers each with an announcement.
    let mut c = Cluster::new();
    let hub = c.add(c.config("hub", 9500));
    let b = c.add(c.config("node-b", 9502));
    let d = c.add(c.config("node-c", 9503));
    let hub_addr = c.nodes[hub].local_addr();
    c.nodes[b].add_target(hub_addr).unwrap();
    c.nodes[d].add_target(hub_addr).unwrap();
    c.nodes[b].tick(0);
    c.nodes[d].tick(0);
    c.pump_until(0, "the hub's answers", |c| {
        c.knows(hub, "node-b") && c.knows(hub, "node-c") && c.knows(b, "hub") && c.knows(d, "hub")
    });
    assert!(!c.knows(b, "node-c"), "discovery does not relay");
    assert_eq!(c.nodes[hub].stats().announcements_sent, 2);
}

#[test]
fn peers_go_stale_then_expire_with_a_short_ttl_and_come_back() {
    let mut c = Cluster::new();
    let configure = |mut cfg: DiscoveryConfig| {
        cfg.announce_interval_ms = 50;
        cfg.ttl_ms = 200;
        cfg
    };
    let a = c.add(configure(c.config("node-a", 9501)));
    let b = c.add(configure(c.config("node-b", 9502)));
    c.connect_all();
    c.tick_all(0);
    c.pump_until(0, "both discoveries", |c| {
        c.knows(a, "node-b") && c.knows(b, "node-a")
    });

    // node-b falls silent: only node-a ticks from here.
    assert!(c.nodes[a].tick(99).is_empty());
    assert_eq!(
        c.nodes[a].tick(100),
        vec![DiscoveryEvent::Stale("node-b".into())]
    );
    assert_eq!(c.nodes[a].peer("node-b").unwrap().state, PeerState::Stale);
    assert!(c.nodes[a].tick(150).is_empty(), "stale is reported once");
    assert_eq!(
        c.nodes[a].tick(200),
        vec![DiscoveryEvent::Expired("node-b".into())]
    );
    assert!(c.nodes[a].peers().is_empty(), "expired peers are dropped");
    assert!(c.nodes[a].tick(400).is_empty(), "expired is reported once");

    // node-b speaks again: discovered anew.
    let before = c.discovered_by(a).len();
    c.nodes[b].tick(400);
    c.pump_until(400, "the rediscovery", |c| {
        c.discovered_by(a).len() > before
    });
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().state,
        PeerState::Available
    );
    assert_eq!(c.nodes[a].peer("node-b").unwrap().last_seen_ms, 400);
}

#[test]
fn a_restarted_node_is_reported_with_its_new_instance() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let b = c.add(c.config("node-b", 9502));
    c.connect_all();
    c.tick_all(0);
    c.pump_until(0, "both discoveries", |c| {
        c.knows(a, "node-b") && c.knows(b, "node-a")
    });
    let old_instance = c.nodes[b].instance_id();

    let config = c.config("node-b", 9602);
    c.restart(b, config);
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(10);
    c.pump_until(10, "the restart", |c| {
        c.events_of(a)
            .iter()
            .any(|e| matches!(e, DiscoveryEvent::Restarted(_)))
    });
    let restarted: Vec<DiscoveredPeer> = c
        .events_of(a)
        .into_iter()
        .filter_map(|e| match e {
            DiscoveryEvent::Restarted(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(restarted.len(), 1);
    let p = &restarted[0];
    assert_eq!(p.node_id, "node-b");
    assert_ne!(p.instance_id, old_instance);
    assert_eq!(p.instance_id, c.nodes[b].instance_id());
    assert_eq!(p.port, 9602);
    assert_eq!(p.discovery_addr, c.nodes[b].local_addr());
    // The restarted node learns about node-a from node-a's immediate answer.
    c.pump_until(10, "node-a's answer", |c| c.knows(b, "node-a"));
}

#[test]
fn an_unspecified_transport_host_is_replaced_by_the_source_address() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    // node-b listens on all addresses and sends from 127.0.0.2.
    let mut cb = c.config("node-b", 9502);
    cb.bind_host = "127.0.0.2".into();
    cb.transport_host = "0.0.0.0".into();
    let b = c.add(cb);
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    // On the wire, the host is unspecified.
    let wire = c.sink.next_packet();
    assert_eq!(wire.kind, PacketKind::Announce);
    assert_eq!(wire.transport_host, None);
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().transport_addr(),
        "127.0.0.2:9502".parse().unwrap()
    );
}

#[test]
fn a_specific_transport_host_is_announced_as_is() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let mut cb = c.config("node-b", 9502);
    cb.transport_host = "10.1.2.3".into();
    let b = c.add(cb);
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    let wire = c.sink.next_packet();
    assert_eq!(wire.transport_host, Some("10.1.2.3".parse().unwrap()));
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().transport_addr(),
        "10.1.2.3:9502".parse().unwrap()
    );
}

/// Sends datagrams from a plain socket, signed with a key of its own: an attacker on the
/// network (or, with a stolen capture, a replayer).
struct Forger {
    socket: UdpSocket,
    identity: Identity,
    instance_id: u64,
    counter: u64,
}

impl Forger {
    fn new() -> Forger {
        Forger {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            identity: Identity::generate().unwrap(),
            instance_id: 77,
            counter: 0,
        }
    }

    /// An announcement of `node_id` at `port`, stamped now with the next counter.
    fn announce(&mut self, node_id: &str, port: u16) -> Packet {
        self.counter += 1;
        Packet {
            kind: PacketKind::Announce,
            node_id: node_id.into(),
            instance_id: self.instance_id,
            counter: self.counter,
            timestamp_ms: wall_now_ms(),
            transport_host: None,
            transport_port: port,
            transport_version: 1,
            display_name: String::new(),
        }
    }

    /// `packet` signed with this forger's key.
    fn signed(&self, packet: &Packet) -> Vec<u8> {
        packet.encode(&self.identity).unwrap()
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.socket.send_to(datagram, to).unwrap();
    }
}

#[test]
fn garbage_datagrams_are_counted_and_ignored() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let a_addr = c.nodes[a].local_addr();
    let mut forger = Forger::new();
    let packet = forger.announce("node-x", 9700);
    let valid = forger.signed(&packet);
    let mut version_1 = valid.clone();
    version_1[4] = 1;
    let mut tampered = valid.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let claim = forger.announce("node-a", 9700);
    let forged_self = forger.signed(&claim);
    let huge: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
    let garbage: Vec<&[u8]> = vec![b"", b"hello", b"SADI", &huge, &version_1];

    for datagram in &garbage {
        forger.send(datagram, a_addr);
    }
    forger.send(&tampered, a_addr);
    forger.send(&forged_self, a_addr);
    forger.send(&valid, a_addr);
    c.pump_until(0, "every datagram", |c| {
        let s = c.stats(a);
        s.invalid_packets + s.bad_signatures + s.duplicate_node_id + s.packets_received >= 8
    });
    let stats = c.stats(a);
    assert_eq!(stats.invalid_packets, garbage.len() as u64);
    assert_eq!(stats.bad_signatures, 1, "the tampered copy");
    assert_eq!(stats.duplicate_node_id, 1, "our id from another key");
    assert_eq!(stats.packets_received, 1);
    assert_eq!(c.nodes[a].peers().len(), 1);
    let x = c.nodes[a].peer("node-x").unwrap();
    assert_eq!(x.transport_addr(), SocketAddr::new(LOOPBACK, 9700));
    assert_eq!(x.fingerprint, forger.identity.fingerprint());
}

#[test]
fn a_forged_announcement_is_ignored_and_counted() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let a_addr = c.nodes[a].local_addr();
    let forger = Forger::new();
    let victim = Identity::generate().unwrap();
    let mut packet = Packet {
        kind: PacketKind::Announce,
        node_id: "node-v".into(),
        instance_id: 5,
        counter: 1,
        timestamp_ms: wall_now_ms(),
        transport_host: None,
        transport_port: 9800,
        transport_version: 1,
        display_name: String::new(),
    };
    // The victim's key, but the forger's signature: it cannot sign for that key.
    let victim_key = softadastra::discovery::PublicKey::of(&victim).unwrap();
    let signed = packet.signed_bytes(&victim_key).unwrap();
    let signature = forger.identity.sign(&signed).unwrap();
    let forged = softadastra::discovery::packet::seal(signed, &signature).unwrap();
    forger.send(&forged, a_addr);
    // A forged probe is not answered either.
    packet.kind = PacketKind::Probe;
    packet.counter = 2;
    let signed = packet.signed_bytes(&victim_key).unwrap();
    let signature = forger.identity.sign(&signed).unwrap();
    let forged_probe = softadastra::discovery::packet::seal(signed, &signature).unwrap();
    forger.send(&forged_probe, a_addr);
    c.pump_until(0, "both forgeries", |c| c.stats(a).bad_signatures == 2);
    assert!(c.nodes[a].peers().is_empty());
    assert!(c.log.is_empty(), "{:?}", c.log);
    assert_eq!(c.stats(a).replies_sent, 0);
    assert_eq!(c.stats(a).packets_received, 0);
    // The same announcement signed by the victim's own key is taken.
    packet.kind = PacketKind::Announce;
    packet.counter = 3;
    forger.send(&packet.encode(&victim).unwrap(), a_addr);
    c.pump_until(0, "the genuine announcement", |c| c.knows(a, "node-v"));
    assert_eq!(
        c.nodes[a].peer("node-v").unwrap().fingerprint,
        victim.fingerprint()
    );
}

#[test]
fn a_replayed_announcement_is_ignored_and_changes_no_address() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let b = c.add(c.config("node-b", 9502));
    let a_addr = c.nodes[a].local_addr();
    // node-b announces to the sink (its broadcast address), then to node-a: two datagrams,
    // each signed with its own counter. The attacker captured the first.
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    let captured = c.sink.next_datagram();
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    let before = c.nodes[a].peer("node-b").unwrap().clone();
    // Replayed from the attacker's own address: node-b announces an unspecified host, so
    // taking it would point node-a at the attacker.
    let replayer = Forger::new();
    replayer.send(&captured, a_addr);
    replayer.send(&captured, a_addr);
    c.pump_until(0, "the replays", |c| c.stats(a).replayed == 2);
    let after = c.nodes[a].peer("node-b").unwrap();
    assert_eq!(after, &before);
    assert_eq!(c.stats(a).bad_signatures, 0, "genuine, only old");
}

#[test]
fn a_replayed_announcement_does_not_revive_an_expired_peer() {
    let mut c = Cluster::new();
    let configure = |mut cfg: DiscoveryConfig| {
        cfg.announce_interval_ms = 100;
        cfg.ttl_ms = 400; // a clock window of 200 ms
        cfg
    };
    let a = c.add(configure(c.config("node-a", 9501)));
    let b = c.add(configure(c.config("node-b", 9502)));
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    let captured = c.sink.next_datagram();
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    // node-b falls silent and expires (after a TTL, which the test makes pass on the
    // monotonic clock; the wall clock must pass the window too, as it would have).
    assert_eq!(
        c.nodes[a].tick(400),
        vec![DiscoveryEvent::Expired("node-b".into())]
    );
    std::thread::sleep(Duration::from_millis(250));
    let before = c.log.len();
    Forger::new().send(&captured, a_addr);
    c.pump_until(400, "the replay", |c| c.stats(a).out_of_window == 1);
    assert!(c.nodes[a].peers().is_empty());
    assert_eq!(c.log.len(), before, "no event");
}

#[test]
fn an_announcement_with_another_key_for_a_known_id_is_ignored() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let b = c.add(c.config("node-b", 9502));
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    // Well signed, fresh, a new instance: but by another key than node-b's.
    let mut impostor = Forger::new();
    let claim = impostor.announce("node-b", 9999);
    impostor.send(&impostor.signed(&claim), a_addr);
    c.pump_until(0, "the impersonation", |c| c.stats(a).impersonations == 1);
    let peer = c.nodes[a].peer("node-b").unwrap();
    assert_eq!(peer.port, 9502);
    assert_eq!(peer.fingerprint, c.identities[b].fingerprint());
    assert_eq!(peer.instance_id, c.nodes[b].instance_id());
}

#[test]
fn a_node_with_a_new_key_is_believed_once_its_old_entry_expired() {
    let mut c = Cluster::new();
    let configure = |mut cfg: DiscoveryConfig| {
        cfg.announce_interval_ms = 50;
        cfg.ttl_ms = 200;
        cfg
    };
    let a = c.add(configure(c.config("node-a", 9501)));
    let b = c.add(configure(c.config("node-b", 9502)));
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    let old = c.identities[b].fingerprint().to_string();
    // node-b restarts with a new key (a memory-only node): not believed while its old
    // entry lives...
    c.restart_with(b, configure(c.config("node-b", 9502)), true);
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(10);
    c.pump_until(10, "the refusal", |c| c.stats(a).impersonations == 1);
    assert_eq!(c.nodes[a].peer("node-b").unwrap().fingerprint, old);
    // ...and discovered with its new key once the old entry expired.
    c.nodes[a].tick(200);
    assert!(!c.knows(a, "node-b"));
    c.nodes[b].announce(210);
    c.pump_until(210, "the new key", |c| c.knows(a, "node-b"));
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().fingerprint,
        c.identities[b].fingerprint()
    );
}

#[test]
fn a_flood_of_fake_ids_evicts_untrusted_entries_and_stays_bounded() {
    const MAX: usize = 8;
    const FAKES: usize = 40;
    let mut c = Cluster::new();
    let mut config = c.config("node-a", 9501);
    config.max_peers = MAX;
    let a = c.add(config);
    let b = c.add(c.config("node-b", 9502));
    let a_addr = c.nodes[a].local_addr();
    c.nodes[b].add_target(a_addr).unwrap();
    c.nodes[b].tick(0);
    c.pump_until(0, "node-b", |c| c.knows(a, "node-b"));
    let trusted = c.identities[b].fingerprint().to_string();
    c.nodes[a].set_trusted([trusted.clone()].into());

    let mut forger = Forger::new();
    for i in 0..FAKES {
        let packet = forger.announce(&format!("fake-{i}"), 9000 + i as u16);
        forger.send(&forger.signed(&packet), a_addr);
        c.pump_until(1, "the fake", |c| c.knows(a, &format!("fake-{i}")));
        assert!(c.nodes[a].peers().len() <= MAX);
    }
    let peers = c.nodes[a].peers();
    assert_eq!(peers.len(), MAX);
    assert!(c.knows(a, "node-b"), "the trusted peer stays");
    assert_eq!(c.stats(a).peers_evicted, (FAKES - (MAX - 1)) as u64);
    // Each eviction is reported as the peer expiring, so that the node forgets it.
    let expired = c
        .events_of(a)
        .into_iter()
        .filter(|e| matches!(e, DiscoveryEvent::Expired(_)))
        .count();
    assert_eq!(expired, FAKES - (MAX - 1));

    // Once the forger's key is trusted too, nothing may be evicted: newcomers are refused.
    c.nodes[a].set_trusted([trusted, forger.identity.fingerprint().to_string()].into());
    let mut other = Forger::new();
    let packet = other.announce("one-more", 9100);
    other.send(&other.signed(&packet), a_addr);
    c.pump_until(1, "the refusal", |c| c.stats(a).peers_refused == 1);
    assert_eq!(c.nodes[a].peers().len(), MAX);
    assert!(!c.knows(a, "one-more"));
}

#[test]
fn a_sender_whose_clock_is_far_off_is_ignored_and_counted() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let a_addr = c.nodes[a].local_addr();
    let mut forger = Forger::new();
    for skew in [-60_000i64, 60_000] {
        let mut packet = forger.announce("node-late", 9700);
        packet.timestamp_ms = packet.timestamp_ms.saturating_add_signed(skew);
        forger.send(&forger.signed(&packet), a_addr);
    }
    c.pump_until(0, "both", |c| c.stats(a).out_of_window == 2);
    assert!(c.nodes[a].peers().is_empty());
}

#[test]
fn the_node_reports_connections_and_faults() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let b = c.add(c.config("node-b", 9502));
    c.connect_all();
    c.tick_all(0);
    c.pump_until(0, "both discoveries", |c| {
        c.knows(a, "node-b") && c.knows(b, "node-a")
    });
    assert!(!c.nodes[a].mark_connected("nobody"));

    assert!(c.nodes[a].mark_connected("node-b"));
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().state,
        PeerState::Connected
    );
    assert!(
        c.nodes[a].tick(60_000).is_empty(),
        "connected peers do not age"
    );

    assert!(c.nodes[a].mark_faulted("node-b"));
    assert_eq!(c.nodes[a].peer("node-b").unwrap().state, PeerState::Faulted);
    let before = c.discovered_by(a).len();
    c.nodes[b].tick(60_000);
    c.pump_until(60_000, "the announcement after the fault", |c| {
        c.discovered_by(a).len() > before
    });
    assert_eq!(
        c.nodes[a].peer("node-b").unwrap().state,
        PeerState::Available
    );
}

#[test]
fn a_lone_node_never_blocks() {
    let mut c = Cluster::new();
    let mut config = c.config("node-a", 9501);
    config.announce_interval_ms = 10;
    config.ttl_ms = 100;
    let a = c.add(config);
    // A target nobody listens on.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.nodes[a].add_target(closed).unwrap();
    let started = Instant::now();
    for step in 0..200u64 {
        assert!(c.nodes[a].tick(step * 10).is_empty());
        assert!(c.nodes[a].on_readable(step * 10).is_empty());
        c.nodes[a].probe();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(c.nodes[a].peers().is_empty());
    assert_eq!(c.nodes[a].stats().announcements_sent, 400);
}
