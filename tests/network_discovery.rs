//! Discovery through the public `Client` on 127.0.0.1 with distinct ports: nodes find each
//! other, connect on their own and converge; a silent peer goes stale, then expired (short
//! TTL) and stays listed; finding no peer never blocks local work. Ports are ephemeral, waits bounded.

mod common;

use std::time::{Duration, Instant};

use softadastra::identity::Identity;
use softadastra::{Client, ClientOptions, ErrorCode, PeerState};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A memory-only node announcing to `announce_to` on 127.0.0.1.
fn options(id: &str, discovery_port: u16, announce_to: u16, transport: bool) -> ClientOptions {
    let mut o = ClientOptions::memory_only(id);
    o.enable_transport = transport;
    o.transport_host = "127.0.0.1".into();
    o.transport_port = free_tcp_port();
    o.enable_discovery = true;
    o.discovery_host = "127.0.0.1".into();
    o.discovery_port = discovery_port;
    o.discovery_broadcast_host = "127.0.0.1".into();
    o.discovery_broadcast_port = announce_to;
    o.discovery_interval_ms = 50;
    o.discovery_ttl_ms = 300;
    o
}

fn start(o: ClientOptions) -> Client {
    let c = Client::new(o);
    c.open().unwrap();
    if c.options().enable_transport {
        c.start_transport().unwrap();
    }
    c.start_discovery().unwrap();
    c
}

fn pump(clients: &[&Client], limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    for _ in 0..100_000 {
        for c in clients {
            c.process_transport_events_wait(64, Duration::from_millis(2))
                .unwrap();
        }
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
    false
}

fn state_of(c: &Client, id: &str) -> Option<PeerState> {
    c.peers()
        .unwrap()
        .into_iter()
        .find(|p| p.node_id == id)
        .map(|p| p.state)
}

#[test]
fn discovered_nodes_connect_and_converge() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = start(options("node-a", pa, pb, true));
    let b = start(options("node-b", pb, pa, true));
    common::trust_each_other(&[&a, &b]);
    a.put("from/a", b"1").unwrap();
    b.put("from/b", b"2").unwrap();
    let ok = pump(&[&a, &b], Duration::from_secs(10), || {
        a.contains("from/b").unwrap() && b.contains("from/a").unwrap()
    });
    assert!(ok, "a peers {:?}, b peers {:?}", a.peers(), b.peers());
    assert_eq!(state_of(&a, "node-b"), Some(PeerState::Connected));
    let peer = a
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.node_id == "node-b")
        .unwrap();
    assert_eq!(peer.host, "127.0.0.1");
    assert_eq!(
        peer.port,
        b.transport_address().unwrap().port(),
        "the announced transport port"
    );
}

#[test]
fn discovery_finds_and_trust_decides() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = start(options("node-a", pa, pb, true));
    let b = start(options("node-b", pb, pa, true));
    a.put("from/a", b"1").unwrap();
    // Found, but not trusted: never connected, nothing synced.
    assert!(pump(&[&a, &b], Duration::from_secs(5), || {
        state_of(&b, "node-a") == Some(PeerState::Available)
    }));
    assert!(!pump(&[&a, &b], Duration::from_millis(500), || {
        b.contains("from/a").unwrap()
    }));
    let stats = b.network_stats().unwrap();
    assert_eq!(stats.discovered_dials, 0, "{stats:?}");
    // Trusted on both sides: the peer already found is connected to, and data flows.
    common::trust_each_other(&[&a, &b]);
    assert!(
        pump(&[&a, &b], Duration::from_secs(10), || b
            .contains("from/a")
            .unwrap()),
        "a peers {:?}, b peers {:?}",
        a.peers(),
        b.peers()
    );
    assert_eq!(state_of(&a, "node-b"), Some(PeerState::Connected));
}

#[test]
fn a_silent_peer_goes_stale_then_expired() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    // Transports run (only a node with a transport announces itself), but do not connect:
    // a connected peer does not age.
    let quiet = |id, own, to| ClientOptions {
        auto_connect_discovered: false,
        ..options(id, own, to, true)
    };
    let a = start(quiet("node-a", pa, pb));
    let b = start(quiet("node-b", pb, pa));
    common::trust_each_other(&[&a, &b]);
    assert!(pump(&[&a, &b], Duration::from_secs(5), || state_of(
        &a, "node-b"
    ) == Some(
        PeerState::Available
    )));
    b.stop_discovery().unwrap();
    assert!(pump(&[&a], Duration::from_secs(5), || state_of(
        &a, "node-b"
    ) == Some(
        PeerState::Stale
    )));
    assert!(pump(&[&a], Duration::from_secs(5), || state_of(
        &a, "node-b"
    ) == Some(
        PeerState::Expired
    )));
    // Listed until pruned (minutes later), at the address b announced, on every call.
    let b_port = b.options().transport_port;
    for _ in 0..3 {
        let listed = a.peers().unwrap();
        let expired = listed.iter().find(|p| p.node_id == "node-b");
        assert!(
            expired.is_some_and(|p| p.state == PeerState::Expired
                && p.host == "127.0.0.1"
                && p.port == b_port
                && p.last_seen_ms > 0),
            "{listed:?}"
        );
    }
}

#[test]
fn a_node_without_a_transport_listens_without_announcing_and_sleeps_while_it_waits() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let listener = start(options("listener", pa, pb, false));
    let server = start(options("server", pb, pa, true));
    // The listener learns of the server (its probes are answered, and it hears the
    // server's announcements)...
    assert!(pump(&[&listener, &server], Duration::from_secs(5), || {
        state_of(&listener, "server").is_some()
    }));
    // ...but is never announced: the server neither lists nor dials it, although the
    // listener's options name a transport port.
    assert!(!pump(
        &[&listener, &server],
        Duration::from_millis(500),
        || { state_of(&server, "listener").is_some() }
    ));
    assert_eq!(server.network_stats().unwrap().transport.dialled, 0);

    // Waiting with discovery alone sleeps on the socket: about one wake-up per
    // announcement interval (50 ms here), not a busy loop.
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(1) && calls < 100_000 {
        listener
            .process_transport_events_wait(64, Duration::from_millis(200))
            .unwrap();
        calls += 1;
    }
    assert!(calls < 200, "{calls} waits in one second");

    // Once its transport runs, the node announces itself and is found.
    let mut o = options("late", free_udp_port(), pb, true);
    o.auto_connect_discovered = false;
    let late = Client::new(o);
    late.open().unwrap();
    late.start_discovery().unwrap();
    assert!(!pump(&[&late, &server], Duration::from_millis(300), || {
        state_of(&server, "late").is_some()
    }));
    late.start_transport().unwrap();
    assert!(pump(&[&late, &server], Duration::from_secs(5), || {
        state_of(&server, "late").is_some()
    }));
    let seen = server
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.node_id == "late")
        .unwrap();
    assert_eq!(seen.port, late.transport_address().unwrap().port());
}

#[test]
fn finding_no_peer_never_blocks_local_work() {
    let a = start(options("node-a", free_udp_port(), free_udp_port(), true));
    for i in 0..100 {
        a.put(&format!("k{i}"), b"v").unwrap();
        a.process_transport_events(16).unwrap();
    }
    assert_eq!(a.size().unwrap(), 100);
    assert!(a.peers().unwrap().is_empty());
}

#[test]
fn discovery_calls_follow_the_rules() {
    let off = Client::new(ClientOptions::memory_only("node-x"));
    off.open().unwrap();
    assert_eq!(
        off.start_discovery().unwrap_err().code(),
        ErrorCode::DiscoveryError
    );
    assert!(off.stop_discovery().is_ok());
    assert!(!off.discovery_running());
    assert_eq!(off.peers().unwrap_err().code(), ErrorCode::TransportError);
    let a = start(options("node-a", free_udp_port(), free_udp_port(), false));
    a.start_discovery().unwrap(); // twice is fine
    assert!(a.discovery_running());
    a.stop_discovery().unwrap();
    a.stop_discovery().unwrap();
    assert!(!a.discovery_running());
    a.close().unwrap();
    assert!(!a.discovery_running());
}

#[test]
fn announcements_carry_the_protocol_version_of_the_transport() {
    use softadastra::discovery::packet::Packet;
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let to = listener.local_addr().unwrap().port();
    let node = start(options("announcer", free_udp_port(), to, true));
    let mut buf = [0u8; 2048];
    let mut seen = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen.is_none() && std::time::Instant::now() < deadline {
        node.process_transport_events(64).unwrap();
        if let Ok((n, _)) = listener.recv_from(&mut buf) {
            seen = Packet::decode(&buf[..n])
                .ok()
                .filter(|d| d.verify().is_ok())
                .map(|d| d.packet);
        }
    }
    let packet = seen.expect("an announcement arrived");
    assert_eq!(packet.node_id, "announcer");
    assert_eq!(
        packet.transport_version,
        softadastra::transport::PROTOCOL_VERSION
    );
}

// ---- Signed discovery (issue 12): forged, replayed and impersonating datagrams ----

/// Datagrams from a plain socket on 127.0.0.1, as an attacker on the network sends them.
struct Sender {
    socket: std::net::UdpSocket,
    counter: u64,
}

impl Sender {
    fn new() -> Sender {
        Sender {
            socket: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            counter: 0,
        }
    }

    /// An announcement of `node_id` at 127.0.0.1:`port`, stamped now.
    fn announcement(&mut self, node_id: &str, port: u16) -> softadastra::discovery::Packet {
        self.counter += 1;
        softadastra::discovery::Packet {
            kind: softadastra::discovery::PacketKind::Announce,
            node_id: node_id.into(),
            instance_id: 42,
            counter: self.counter,
            timestamp_ms: softadastra::clock::wall_now_ms(),
            transport_host: Some("127.0.0.1".parse().unwrap()),
            transport_port: port,
            transport_version: softadastra::transport::PROTOCOL_VERSION,
            display_name: String::new(),
        }
    }

    fn send(&self, datagram: &[u8], to: std::net::SocketAddr) {
        self.socket.send_to(datagram, to).unwrap();
    }

    /// A genuine announcement of `node_id` signed by `identity`: datagrams from one socket
    /// are read in order, so once `node_id` is listed, everything sent before was read.
    fn marker(&mut self, identity: &Identity, node_id: &str, to: std::net::SocketAddr) {
        let packet = self.announcement(node_id, 9);
        self.send(&packet.encode(identity).unwrap(), to);
    }
}

fn listed(c: &Client, id: &str) -> bool {
    state_of(c, id).is_some_and(|s| s != PeerState::Expired)
}

/// A node that finds peers without connecting to them (connected peers do not age).
fn quiet(id: &str, own: u16, to: u16) -> ClientOptions {
    ClientOptions {
        auto_connect_discovered: false,
        ..options(id, own, to, true)
    }
}

#[test]
fn a_forged_announcement_is_ignored() {
    let node = start(options("victim", free_udp_port(), free_udp_port(), true));
    let to = node.discovery_address().unwrap();
    let mut attacker = Sender::new();
    let attacker_key = Identity::generate().unwrap();
    let victim_of_forgery = Identity::generate().unwrap();
    // Claims another node's key, signed with the attacker's: the signature fails.
    let packet = attacker.announcement("forged-key", 7001);
    let claimed = softadastra::discovery::PublicKey::of(&victim_of_forgery).unwrap();
    let signed = packet.signed_bytes(&claimed).unwrap();
    let signature = attacker_key.sign(&signed).unwrap();
    attacker.send(
        &softadastra::discovery::packet::seal(signed, &signature).unwrap(),
        to,
    );
    // A genuine announcement altered on the way: one byte of its port.
    let packet = attacker.announcement("altered", 7002);
    let mut altered = packet.encode(&attacker_key).unwrap();
    altered[30] ^= 1;
    attacker.send(&altered, to);
    attacker.marker(&attacker_key, "marker", to);
    assert!(pump(&[&node], Duration::from_secs(5), || listed(
        &node, "marker"
    )));
    assert!(!listed(&node, "forged-key"));
    assert!(!listed(&node, "altered"));
    let stats = node.network_stats().unwrap();
    assert_eq!(
        stats.transport.dialled, 0,
        "nothing untrusted is dialled, not even the genuine marker"
    );
    assert_eq!(stats.forged_announcements, 2, "{stats:?}");
}

#[test]
fn a_replayed_announcement_does_not_revive_an_expired_peer() {
    let capture = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    capture
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let pa = free_udp_port();
    let a = start(quiet("node-a", pa, free_udp_port()));
    // node-b announces to the capture socket (its broadcast address) and to node-a.
    let b = start(quiet(
        "node-b",
        free_udp_port(),
        capture.local_addr().unwrap().port(),
    ));
    b.add_discovery_target(a.discovery_address().unwrap())
        .unwrap();
    let mut captured = None;
    assert!(pump(&[&a, &b], Duration::from_secs(5), || {
        let mut buf = [0u8; 2048];
        if captured.is_none()
            && let Ok((n, _)) = capture.recv_from(&mut buf)
        {
            captured = Some(buf[..n].to_vec());
        }
        captured.is_some() && state_of(&a, "node-b") == Some(PeerState::Available)
    }));
    let captured = captured.unwrap();
    b.stop_discovery().unwrap();
    assert!(
        pump(&[&a], Duration::from_secs(5), || !listed(&a, "node-b")),
        "node-b expires"
    );
    // The captured announcement, replayed: its timestamp is by now older than the clock
    // window (half the 300 ms TTL), so node-b does not come back.
    let mut attacker = Sender::new();
    attacker.send(&captured, a.discovery_address().unwrap());
    attacker.marker(
        &Identity::generate().unwrap(),
        "marker",
        a.discovery_address().unwrap(),
    );
    assert!(pump(&[&a], Duration::from_secs(5), || listed(&a, "marker")));
    assert!(!listed(&a, "node-b"), "{:?}", a.peers());
    let stats = a.network_stats().unwrap();
    assert!(stats.replayed_announcements >= 1, "counted: {stats:?}");
}

#[test]
fn an_announcement_with_another_key_for_a_known_id_is_ignored() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = start(quiet("node-a", pa, pb));
    let b = start(quiet("node-b", pb, pa));
    assert!(pump(&[&a, &b], Duration::from_secs(5), || listed(
        &a, "node-b"
    )));
    let b_port = b.transport_address().unwrap().port();
    // Well signed and fresh, but by another key than node-b's: it would move node-b to
    // the attacker's port.
    let mut attacker = Sender::new();
    let attacker_key = Identity::generate().unwrap();
    let claim = attacker.announcement("node-b", 1);
    let to = a.discovery_address().unwrap();
    attacker.send(&claim.encode(&attacker_key).unwrap(), to);
    attacker.marker(&attacker_key, "marker", to);
    assert!(pump(&[&a, &b], Duration::from_secs(5), || listed(
        &a, "marker"
    )));
    let peer = a
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.node_id == "node-b")
        .unwrap();
    assert_eq!(peer.port, b_port);
}
