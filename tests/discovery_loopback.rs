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

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use softadastra::discovery::{
    DiscoveredPeer, Discovery, DiscoveryConfig, DiscoveryEvent, Packet, PacketKind, PeerState,
};

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

    /// The next datagram, decoded (bounded by the read timeout).
    fn next_packet(&self) -> Packet {
        let mut buf = [0u8; 2048];
        let (len, _) = self.socket.recv_from(&mut buf).expect("a datagram");
        Packet::decode(&buf[..len]).expect("a valid packet")
    }
}

/// Endpoints on one poll, with every event they reported (index of the endpoint, event).
struct Cluster {
    poll: Poll,
    events: Events,
    nodes: Vec<Discovery>,
    log: Vec<(usize, DiscoveryEvent)>,
    sink: Sink,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(64),
            nodes: Vec::new(),
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
        let mut d = Discovery::start(config).unwrap();
        d.register(self.poll.registry(), Token(self.nodes.len()))
            .unwrap();
        self.nodes.push(d);
        self.nodes.len() - 1
    }

    /// Stops endpoint `i` and starts a new one in its place (a node restart).
    fn restart(&mut self, i: usize, config: DiscoveryConfig) {
        self.nodes[i].deregister(self.poll.registry()).unwrap();
        let mut d = Discovery::start(config).unwrap();
        d.register(self.poll.registry(), Token(i)).unwrap();
        self.nodes[i] = d;
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

#[test]
fn garbage_datagrams_are_counted_and_ignored() {
    let mut c = Cluster::new();
    let a = c.add(c.config("node-a", 9501));
    let a_addr = c.nodes[a].local_addr();
    let valid = Packet {
        kind: PacketKind::Announce,
        node_id: "node-x".into(),
        instance_id: 1,
        transport_host: None,
        transport_port: 9700,
        transport_version: 1,
        display_name: String::new(),
    }
    .encode()
    .unwrap();
    let mut other_version = valid.clone();
    other_version[4] = 2;
    let mut bad_crc = valid.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let forged_self = Packet {
        node_id: "node-a".into(),
        instance_id: c.nodes[a].instance_id().wrapping_add(1),
        ..Packet::decode(&valid).unwrap()
    }
    .encode()
    .unwrap();
    let huge: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
    let garbage: Vec<&[u8]> = vec![b"", b"hello", b"SADI", &huge, &other_version, &bad_crc];

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for datagram in &garbage {
        sender.send_to(datagram, a_addr).unwrap();
    }
    sender.send_to(&forged_self, a_addr).unwrap();
    sender.send_to(&valid, a_addr).unwrap();
    c.pump_until(0, "every datagram", |c| {
        let s = c.nodes[a].stats();
        s.invalid_packets + s.duplicate_node_id + s.packets_received >= 8
    });
    let stats = c.nodes[a].stats();
    assert_eq!(stats.invalid_packets, garbage.len() as u64);
    assert_eq!(stats.duplicate_node_id, 1, "our id from another instance");
    assert_eq!(stats.packets_received, 1);
    assert_eq!(c.nodes[a].peers().len(), 1);
    assert_eq!(
        c.nodes[a].peer("node-x").unwrap().transport_addr(),
        SocketAddr::new(LOOPBACK, 9700)
    );
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
