//! Remote input can never crash, freeze, silence or exhaust a node. Each test sends one
//! attack of issue 9 over a real loopback socket, as a hostile or buggy peer would, and
//! checks what the node does instead. Ports are ephemeral; every wait is bounded.

mod hostile_support;

use std::time::Duration;

use hostile_support::{Attacker, Node, capture_logs, forged, logged, now_ms, wait_until};
use softadastra::node::{MAX_PEER_RECORDS, MAX_SERVING};
use softadastra::store::{Collected, FullPart, MAX_ORIGINS, Version, VersionVector};
use softadastra::sync::{Superseded, SyncBatch};
use softadastra::transport::message::Message;
use softadastra::transport::{Transport, TransportConfig, TransportEvent};
use softadastra::{Client, PeerState, WriteBatch};

const WAIT: Duration = Duration::from_secs(10);

fn batch(origin: &str, ops: Vec<softadastra::store::Operation>) -> Message {
    Message::Batch(SyncBatch {
        origin: origin.into(),
        ops,
        superseded: vec![],
    })
}

/// Sends `m` and waits for the node's ACK of it; returns the acknowledged numbers.
fn send_and_wait_ack(a: &mut Attacker, m: &Message) -> Vec<u64> {
    a.send(m);
    match a.recv_until(WAIT, |m| matches!(m, Message::Ack(_))) {
        // Expanded, at most 10,000 numbers (the tests' batches are small).
        Some(Message::Ack(ack)) => ack
            .ranges
            .iter()
            .flat_map(|&(first, last)| first..=last)
            .take(10_000)
            .collect(),
        other => panic!("no ACK: {other:?}"),
    }
}

fn now_version() -> u64 {
    Version::from_millis(now_ms()).0
}

fn has_value(c: &Client, key: &str, value: &[u8]) -> bool {
    c.get(key).is_ok_and(|v| v == value)
}

#[test]
fn a_forged_operation_of_the_victims_own_origin_cannot_size_its_outbox() {
    // Attack 1: origin = victim, seq 10^12; the next local write used to abort with
    // "memory allocation of 56000000000056 bytes failed", and every restart after it.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-seq");
    victim.client.put("before", b"1").unwrap();
    let mut a = Attacker::join(&victim, "mallory-seq");
    let bomb = forged("victim-seq", 1_000_000_000_000, now_version(), "bomb", b"x");
    let acked = send_and_wait_ack(&mut a, &batch("mallory-seq", vec![bomb]));
    assert!(acked.is_empty(), "a refused operation is not acknowledged");
    let superseded = Message::Batch(SyncBatch {
        origin: "victim-seq".into(),
        ops: vec![],
        superseded: vec![Superseded {
            first: u64::MAX,
            last: u64::MAX,
            version: Version(now_version()),
        }],
    });
    assert!(send_and_wait_ack(&mut a, &superseded).is_empty());
    victim.client.put("after", b"2").unwrap();
    assert_eq!(victim.client.entry("after").unwrap().unwrap().origin_seq, 2);
    assert!(victim.client.get("bomb").is_err());
    let stats = victim.client.network_stats().unwrap();
    assert_eq!(stats.refused_operations.own_origin, 1);
    assert_eq!(
        stats.refused_operations.second_hand, 1,
        "numbers of our origin reported superseded by another node"
    );
    let victim = victim.restart();
    victim.client.put("after-restart", b"3").unwrap();
    let e = victim.client.entry("after-restart").unwrap().unwrap();
    assert_eq!(
        e.origin_seq, 3,
        "the restart did not pick up a forged number"
    );
}

#[test]
fn a_version_at_the_end_of_the_clock_cannot_freeze_a_key() {
    // Attack 2: version u64::MAX won last-writer-wins for ever; put said "updated".
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-frozen");
    let mut a = Attacker::join(&victim, "mallory-frozen");
    let forever = forged("mallory-frozen", 1, u64::MAX, "frozen", b"forged");
    assert!(send_and_wait_ack(&mut a, &batch("mallory-frozen", vec![forever])).is_empty());
    victim.client.put("frozen", b"real").unwrap();
    assert_eq!(victim.client.get("frozen").unwrap(), b"real");
    victim.client.remove("frozen").unwrap();
    assert!(
        victim.client.get("frozen").is_err(),
        "the removal took effect"
    );
    let victim = victim.restart();
    assert!(
        victim.client.get("frozen").is_err(),
        "and still after a restart"
    );
}

#[test]
fn an_operation_stamped_a_century_ahead_is_refused_and_never_moves_the_clock() {
    // Attack 9: the receiving node's clock moved to 2126 for good.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-clock");
    let mut a = Attacker::join(&victim, "mallory-clock");
    let century = 100 * 365 * 24 * 3_600 * 1_000;
    let ahead = Version::from_millis(now_ms() + century).0;
    let near = Version::from_millis(now_ms() + 5_000).0;
    let ops = vec![
        forged("mallory-clock", 1, ahead, "future", b"2126"),
        forged("mallory-clock", 2, near, "near", b"fine"),
    ];
    assert_eq!(
        send_and_wait_ack(&mut a, &batch("mallory-clock", ops)),
        vec![2]
    );
    assert!(victim.client.get("future").is_err());
    assert_eq!(victim.client.get("near").unwrap(), b"fine");
    let v = victim.client.put("local", b"now").unwrap();
    assert!(
        v.millis() < now_ms() + 60_000,
        "a local write is stamped near real time, not {} ms ahead",
        v.millis().saturating_sub(now_ms())
    );
    let stats = victim.client.network_stats().unwrap();
    assert_eq!(stats.refused_operations.clock_ahead, 1);
}

#[test]
fn a_catch_up_claim_cannot_silence_a_node_and_an_unsolicited_one_closes_the_connection() {
    // Attack 3: a CatchUpDone claiming every operation of node A up to 10^9 made the victim
    // acknowledge and drop A's real writes from then on.
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-silence");
    let honest = Node::start(dir.path(), "honest-silence");
    honest.trust_each_other(&victim);
    honest.client.connect(&victim.peer()).unwrap();
    honest.client.put("first", b"1").unwrap();
    assert!(wait_until(WAIT, || has_value(
        &victim.client,
        "first",
        b"1"
    )));

    let mut a = Attacker::join(&victim, "mallory-silence");
    // The victim asked for a catch-up on connecting (its Vector): answer it with a lie.
    assert!(
        a.recv_until(WAIT, |m| matches!(m, Message::Vector(_)))
            .is_some()
    );
    let claim = VersionVector::from_parts([(
        "honest-silence".to_string(),
        1_000_000_000,
        vec![],
        Version(u64::MAX),
    )]);
    a.send(&Message::CatchUpDone(claim.clone()));
    // A second end that nothing asked for breaks the conversation.
    a.send(&Message::CatchUpDone(claim));
    assert!(
        a.closed_within(WAIT),
        "the unsolicited end closed the connection"
    );
    assert!(
        !logged("a catch-up end that no vector of this node asked for").is_empty(),
        "and the reason was logged"
    );

    honest.client.put("after-attack", b"2").unwrap();
    assert!(
        wait_until(WAIT, || has_value(&victim.client, "after-attack", b"2")),
        "the victim still takes the honest node's writes"
    );
    let seen = victim.client.version_vector().unwrap();
    assert!(seen.get("honest-silence").unwrap().max_seq() < 1_000);
}

#[test]
fn a_forged_full_state_makes_the_victim_forget_only_what_the_claim_and_its_caps_allow() {
    // A trusted peer answers the victim's Vector with a full state covering keys up to
    // k/5, naming none of them, and claims to have seen every operation of the honest node
    // up to 10^9, and removals up to now. What its claim covers, in its range, not newer
    // than its removals, goes (as a forged removal of those keys would); the victim's own
    // writes (not claimed), a newer write, and keys outside the range stay; the claim does
    // not silence the honest node's next writes.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-full");
    let honest = Node::start(dir.path(), "honest-full");
    honest.trust_each_other(&victim);
    honest.client.connect(&victim.peer()).unwrap();
    // The victim's own write first, so that the honest node's clock is past it.
    victim.client.put("k/3", b"own").unwrap();
    assert!(wait_until(WAIT, || honest.client.contains("k/3").unwrap()));
    for key in ["k/1", "k/9", "k/2"] {
        honest.client.put(key, b"h").unwrap();
    }
    assert!(wait_until(WAIT, || victim.client.contains("k/2").unwrap()));
    // The removals claimed collected are no newer than k/2; k/4 is.
    let collected_up_to = victim.client.entry("k/2").unwrap().unwrap().version;
    honest.client.put("k/4", b"newer").unwrap();
    assert!(wait_until(WAIT, || ["k/1", "k/2", "k/4", "k/9"]
        .iter()
        .all(|k| victim.client.contains(k).unwrap())));
    let received = victim
        .client
        .version_vector()
        .unwrap()
        .get("honest-full")
        .unwrap()
        .max_seq();

    let mut a = Attacker::join(&victim, "mallory-full");
    assert!(
        a.recv_until(WAIT, |m| matches!(m, Message::Vector(_)))
            .is_some()
    );
    a.send(&Message::FullCatchUp(FullPart {
        after: None,
        through: Some("k/5".into()),
        ops: vec![],
        held: vec![],
    }));
    let claim = VersionVector::from_parts([(
        "honest-full".to_string(),
        1_000_000_000,
        vec![],
        Version(u64::MAX),
    )]);
    let frontier = [("honest-full".to_string(), 1_000_000_000)];
    a.send(&Message::FullCatchUpDone(
        claim,
        Collected::from_parts(frontier, collected_up_to, []),
    ));
    assert!(
        wait_until(WAIT, || !victim.client.contains("k/1").unwrap()),
        "what the claim covers in its range goes"
    );
    assert!(!victim.client.contains("k/2").unwrap());
    assert_eq!(victim.client.get("k/3").unwrap(), b"own", "not claimed");
    assert_eq!(
        victim.client.get("k/4").unwrap(),
        b"newer",
        "newer than the claim"
    );
    assert_eq!(victim.client.get("k/9").unwrap(), b"h", "outside the range");

    // The claim was taken no further than what the victim received: the honest node's
    // next writes arrive and stay.
    let seen = victim.client.version_vector().unwrap();
    assert_eq!(seen.get("honest-full").unwrap().max_seq(), received);
    honest.client.put("k/6", b"next").unwrap();
    assert!(wait_until(WAIT, || has_value(
        &victim.client,
        "k/6",
        b"next"
    )));
    // A full-state part nothing asked for breaks the conversation.
    a.send(&Message::FullCatchUp(FullPart::default()));
    assert!(
        a.closed_within(WAIT),
        "the unsolicited part closed the connection"
    );
}

#[test]
fn forged_origins_cannot_bloat_the_vector_and_catch_up_keeps_working() {
    // Attack 4: 900k fake origins pushed the vector past the frame limit for good.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-bloat");
    let mut a = Attacker::join(&victim, "mallory-bloat");
    let v = now_version();
    let fakes: Vec<_> = (0..MAX_ORIGINS + 500)
        .map(|i| forged(&format!("fake-{i}"), 1, v, &format!("f/{i}"), b""))
        .collect();
    for chunk in fakes.chunks(1_500) {
        send_and_wait_ack(&mut a, &batch("mallory-bloat", chunk.to_vec()));
    }
    let vector = victim.client.version_vector().unwrap();
    assert!(
        vector.origin_count() <= MAX_ORIGINS,
        "{}",
        vector.origin_count()
    );
    assert!(vector.wire_len() <= softadastra::node::MAX_VECTOR_BYTES);
    let stats = victim.client.network_stats().unwrap();
    assert!(stats.refused_operations.too_many_origins >= 500);

    // Vector exchange still works: a new node catches up with the victim.
    victim.client.put("real", b"data").unwrap();
    let newcomer = Node::start(dir.path(), "newcomer-bloat");
    newcomer.trust_each_other(&victim);
    newcomer.client.connect(&victim.peer()).unwrap();
    assert!(wait_until(WAIT, || has_value(
        &newcomer.client,
        "real",
        b"data"
    )));
}

#[test]
fn many_catch_up_requests_cost_one_catch_up_and_non_readers_hold_bounded_memory() {
    // Attack 7: 2,000 vectors cost 2.7 s of CPU and delayed a local put; 20 peers that asked
    // and never read pushed memory from 91 to 706 MB.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start_with(dir.path(), "victim-amp", |o| o.auto_flush = false);
    let value = vec![7u8; 1024];
    for round in 0..10 {
        let mut b = WriteBatch::new();
        for i in 0..1_000 {
            b.put(format!("k/{round}/{i}"), value.clone());
        }
        victim.client.write_batch(&b).unwrap();
    }
    let mut a = Attacker::join(&victim, "mallory-amp");
    for _ in 0..2_000 {
        a.send(&Message::Vector(VersionVector::new()));
    }
    victim.client.put("local", b"still fast").unwrap();
    let mut ends = 0;
    let mut parts = 0;
    while ends < 2_000 {
        match a.recv(WAIT) {
            Some(Message::CatchUpDone(_)) => ends += 1,
            Some(Message::CatchUp(ops)) => parts += ops.len(),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(ends, 2_000, "every request was answered");
    assert!(
        parts >= 10_000,
        "one full catch-up was served ({parts} operations)"
    );
    let stats = victim.client.network_stats().unwrap();
    assert_eq!(stats.catch_ups.started, 1);
    assert_eq!(stats.catch_ups.busy, 1_999);

    // Peers that ask and never read: bounded by the catch-ups served at once and the
    // node's send budget, whatever the store holds.
    let silent: Vec<Attacker> = (0..12)
        .map(|i| {
            let mut s = Attacker::join(&victim, &format!("silent-{i}"));
            s.send(&Message::Vector(VersionVector::new()));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let stats = victim.client.network_stats().unwrap();
    assert!(stats.catch_ups.serving <= MAX_SERVING);
    assert!(
        stats.transport.send_buffered <= 64 * 1024 * 1024,
        "{}",
        stats.transport.send_buffered
    );
    victim.client.put("local-2", b"still works").unwrap();
    drop(silent);
}

#[test]
fn a_hundred_thousand_strangers_leave_a_bounded_peer_table() {
    // Attack 6: 100k Hellos with distinct ids left 112,481 faulted peer records.
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-records");
    let count = MAX_PEER_RECORDS + 200;
    let connections = || victim.client.network_stats().unwrap().transport.connections;
    for wave in 0..count / 4 {
        let joined: Vec<Attacker> = (0..4)
            .map(|i| Attacker::join(&victim, &format!("stranger-{wave}-{i}")))
            .collect();
        drop(joined);
        // Within the per-address connection limit.
        assert!(wait_until(WAIT, || connections() < 8));
    }
    assert!(wait_until(WAIT, || {
        victim
            .client
            .network_stats()
            .is_ok_and(|s| s.transport.connections == 0)
    }));
    let stats = victim.client.network_stats().unwrap();
    assert!(
        stats.peer_records <= MAX_PEER_RECORDS,
        "{} records",
        stats.peer_records
    );
    assert!(victim.client.peers().unwrap().len() <= MAX_PEER_RECORDS);
}

#[test]
fn forged_announcements_are_never_dialled_and_expire() {
    // Attack 6: forged discovery datagrams left 5,535 peers redialled for ever. Now they
    // are signed by keys nobody trusts: found, never dialled, expired.
    use softadastra::discovery::packet::{Packet, PacketKind};
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start_with(dir.path(), "victim-dials", |o| {
        o.enable_discovery = true;
        o.discovery_host = "127.0.0.1".into();
        o.discovery_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        o.discovery_broadcast_host = "127.0.0.1".into();
        o.discovery_interval_ms = 100;
        o.discovery_ttl_ms = 500;
        o.auto_connect_discovered = true;
    });
    victim.client.start_discovery().unwrap();
    let to = victim.client.discovery_address().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Discovery datagrams are signed: the attacker signs with a key of its own, which it
    // can always make.
    let attacker = softadastra::identity::Identity::generate().unwrap();
    let mut counter = 0;
    for round in 0..3 {
        for i in 0..150u16 {
            counter += 1;
            let p = Packet {
                kind: PacketKind::Announce,
                node_id: format!("ghost-{i}"),
                instance_id: round,
                counter,
                timestamp_ms: softadastra::clock::wall_now_ms(),
                transport_host: Some("127.0.0.1".parse().unwrap()),
                transport_port: 1 + i,
                transport_version: softadastra::transport::PROTOCOL_VERSION,
                display_name: String::new(),
            };
            udp.send_to(&p.encode(&attacker).unwrap(), to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Discovery finds them (they are signed, if by a key nobody trusts); trust decides:
    // none is dialled.
    assert!(wait_until(WAIT, || {
        victim
            .client
            .peers()
            .is_ok_and(|p| p.iter().filter(|p| p.node_id.starts_with("ghost-")).count() >= 100)
    }));
    let stats = victim.client.network_stats().unwrap();
    assert_eq!(
        (stats.discovered_dials, stats.transport.dialled),
        (0, 0),
        "{stats:?}"
    );
    // The ghosts stop announcing: discovery expires them, and nothing is left of them.
    assert!(
        wait_until(WAIT, || {
            victim.client.peers().is_ok_and(|p| p.is_empty())
                && victim
                    .client
                    .network_stats()
                    .is_ok_and(|s| s.discovered_dials == 0 && s.transport.dialled == 0)
        }),
        "{:?}",
        victim.client.network_stats().unwrap()
    );
}

#[test]
fn two_live_nodes_claiming_one_id_are_detected_and_the_second_refused() {
    // Attack 10: a cloned data directory; the hub acknowledged and silently dropped writes.
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let hub = Node::start(dir.path(), "hub-dup");
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    let first = Node::start(&dir.path().join("a"), "till-dup");
    // A copied data directory: the same id and the same key.
    let key = dir.path().join("a").join("till-dup.wal.key");
    let clone = Node::start_with(&dir.path().join("b"), "till-dup", |o| {
        o.identity_path = key.to_str().unwrap().into();
    });
    hub.trust_each_other(&first);
    hub.trust_each_other(&clone);
    first.client.connect(&hub.peer()).unwrap();
    assert!(wait_until(WAIT, || {
        hub.client
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.node_id == "till-dup")
    }));
    clone.client.connect(&hub.peer()).unwrap();
    assert!(
        wait_until(WAIT, || !logged("two live nodes claim node id till-dup")
            .is_empty()),
        "the hub logs the duplicate"
    );
    let lines = logged("two live nodes claim node id till-dup");
    assert_eq!(lines[0].0, log::Level::Error);
    assert!(wait_until(WAIT, || {
        !logged("node id till-dup is already used by another running node").is_empty()
    }));
    first.client.put("from-first", b"1").unwrap();
    assert!(wait_until(WAIT, || has_value(
        &hub.client,
        "from-first",
        b"1"
    )));
}

#[test]
fn a_display_name_cannot_inject_log_lines() {
    // Attack 11: a Hello's display name was logged verbatim.
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-log");
    let name = "till\n2026-11-30T09:00:00Z ERROR node victim-log: forged line\u{1b}[2J";
    let _a = Attacker::join_as(&victim, "mallory-log", name, 1);
    assert!(wait_until(WAIT, || !logged("connected to mallory-log").is_empty()));
    for (_, line) in logged("mallory-log") {
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
    }
    assert!(
        logged("connected to mallory-log")[0]
            .1
            .contains("till\\n2026")
    );

    // An invalid node id is quoted in the reason the node logs: escaped too.
    let mut bad = Attacker::trusted(&victim, "mallory-log-2");
    bad.send(&Message::Hello(softadastra::transport::message::Hello {
        protocol_version: softadastra::transport::PROTOCOL_VERSION,
        node_id: "bad\nERROR node victim-log: forged".into(),
        display_name: String::new(),
        capabilities: vec![],
        auth_scheme: 0,
        auth_data: vec![],
        instance_id: 2,
    }));
    assert!(bad.closed_within(WAIT));
    assert!(wait_until(WAIT, || !logged("invalid node id \"bad\\n").is_empty()));
    for (_, line) in logged("forged") {
        assert!(!line.contains('\n'), "{line:?}");
    }
}

/// Polls a bare transport until `done` holds (at most 20 s), returning its events.
fn pump(t: &mut Transport, mut on_poll: impl FnMut(&Transport, &[TransportEvent]) -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let events = t.poll(Some(Duration::from_millis(10)), 0, now_ms());
        if on_poll(t, &events) {
            return true;
        }
    }
    false
}

#[test]
fn incomplete_frames_stay_within_the_receive_budget_and_time_out() {
    incomplete_frames(false);
}

#[test]
fn incomplete_frames_stay_within_the_receive_budget_and_time_out_over_tls() {
    incomplete_frames(true);
}

type Trusted = std::sync::Arc<parking_lot::RwLock<softadastra::transport::trust::TrustedPeers>>;

/// A connection to a bare transport: over TLS with a key `trusted` holds as `id`, or bare
/// TCP when there is no trust (a plaintext transport).
fn hoarder(addr: std::net::SocketAddr, id: &str, trusted: Option<&Trusted>) -> Attacker {
    match trusted {
        Some(trusted) => Attacker::trusted_by(addr, |fingerprint| {
            trusted.write().trust(id, fingerprint).unwrap();
        }),
        None => Attacker::connect(addr),
    }
}

fn incomplete_frames(secure: bool) {
    // Attack 5: 40 connections each buffering up to 24 MiB took a node to 992 MB; a peer
    // trickling a byte every 5 s kept its buffer for ever.
    use std::io::Write;
    let mut config = TransportConfig::new("victim-frames", "127.0.0.1", 0);
    config.max_frame = 4 << 20;
    config.max_receive_buffered = 2 << 20;
    config.frame_timeout_ms = 700;
    let trusted: Option<Trusted> = secure.then(Default::default);
    if let Some(trusted) = &trusted {
        let identity = softadastra::identity::Identity::generate().unwrap();
        config.security = Some(softadastra::transport::Security {
            tls: std::sync::Arc::new(
                softadastra::transport::tls::TlsContext::new(&identity).unwrap(),
            ),
            trusted: trusted.clone(),
        });
    }
    let mut t = Transport::start(config.clone()).unwrap();
    let addr = t.local_addr();

    // Before the handshake only a Hello-sized frame is taken. (The peer runs on a thread
    // of its own: its TLS handshake needs the transport polled meanwhile.)
    let stranger = {
        let trusted = trusted.clone();
        std::thread::spawn(move || {
            let mut stranger = hoarder(addr, "stranger", trusted.as_ref());
            let mut header = (20u32 << 20).to_le_bytes().to_vec();
            header.extend_from_slice(&[1, 0, 0, 0, 0]);
            stranger.stream.write_all(&header).unwrap();
            stranger
        })
    };
    assert!(pump(&mut t, |_, events| events.iter().any(|e| matches!(
        e,
        TransportEvent::Closed { reason, .. } if reason.contains("exceeds the limit of 65536")
    ))));
    drop(stranger.join().unwrap());

    // Eight peers complete the handshake, then each sends 3 MiB of a 4 MiB frame.
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let trusted = trusted.clone();
            std::thread::spawn(move || {
                let mut a = hoarder(addr, &format!("hoarder-{i}"), trusted.as_ref());
                a.send(&Message::Hello(softadastra::transport::message::Hello {
                    protocol_version: softadastra::transport::PROTOCOL_VERSION,
                    node_id: format!("hoarder-{i}"),
                    display_name: String::new(),
                    capabilities: vec![],
                    auth_scheme: 0,
                    auth_data: vec![],
                    instance_id: i,
                }));
                let mut frame = (4u32 << 20).to_le_bytes().to_vec();
                frame.extend_from_slice(&[3, 0, 0, 0, 0]);
                frame.resize(9 + (3 << 20), 0xAB);
                // Blocks while the node does not read (its budget is spent); ends when
                // the node closes the connection.
                let _ = a.stream.write_all(&frame);
                a.closed_within(Duration::from_secs(30))
            })
        })
        .collect();
    let mut most = 0;
    let mut timed_out = 0;
    let all_closed = pump(&mut t, |t, events| {
        most = most.max(t.stats().receive_buffered);
        timed_out += events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TransportEvent::Closed { reason, .. } if reason.contains("did not complete")
                )
            })
            .count();
        timed_out == 8
    });
    assert!(
        all_closed,
        "every incomplete frame timed out ({timed_out} of 8)"
    );
    assert!(
        most <= config.max_receive_buffered + config.max_frame + 64 * 1024,
        "at most {most} bytes buffered"
    );
    for s in senders {
        assert!(s.join().unwrap(), "the node closed the connection");
    }
}

/// A stranger (a key nobody trusts) and an impersonator (a key trusted as another node)
/// are both refused, told why and counted, while an honest peer keeps syncing.
#[test]
fn an_unknown_key_and_an_impersonated_id_are_refused_and_counted_while_an_honest_peer_syncs() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-trust");
    let honest = Node::start(dir.path(), "honest-trust");
    honest.trust_each_other(&victim);
    honest.client.connect(&victim.peer()).unwrap();
    honest.client.put("before", b"1").unwrap();
    assert!(wait_until(WAIT, || has_value(
        &victim.client,
        "before",
        b"1"
    )));

    // A key nobody trusts: refused once its TLS handshake is done, before any Hello.
    let mut stranger = Attacker::stranger(victim.addr());
    let told = stranger.recv_until(WAIT, |m| matches!(m, Message::Reject(_)));
    assert!(
        matches!(&told, Some(Message::Reject(r)) if r.contains("is not trusted")),
        "{told:?}"
    );
    assert!(stranger.closed_within(WAIT));

    // A key trusted as "mallory-trust" that claims to be the honest node.
    let impersonator = Attacker::trusted(&victim, "mallory-trust");
    let mut impersonator = {
        let mut a = impersonator;
        a.send(&Message::Hello(softadastra::transport::message::Hello {
            protocol_version: softadastra::transport::PROTOCOL_VERSION,
            node_id: "honest-trust".into(),
            display_name: String::new(),
            capabilities: vec![],
            auth_scheme: 0,
            auth_data: vec![],
            instance_id: 99,
        }));
        a
    };
    let told = impersonator.recv_until(WAIT, |m| matches!(m, Message::Reject(_)));
    assert!(
        matches!(&told, Some(Message::Reject(r)) if r.contains("claims node id honest-trust")),
        "{told:?}"
    );
    assert!(impersonator.closed_within(WAIT));

    // Bare TCP, not TLS: the handshake fails and is counted.
    let mut plain = Attacker::connect(victim.addr());
    plain.send(&Message::Ping(1));
    assert!(plain.closed_within(WAIT));

    let stats = victim.client.network_stats().unwrap();
    assert_eq!(stats.transport.untrusted_peers, 2, "{stats:?}");
    assert!(stats.transport.tls_failures >= 1, "{stats:?}");
    assert!(
        !logged("is not trusted").is_empty(),
        "the refusal was logged"
    );
    honest.client.put("after", b"2").unwrap();
    assert!(
        wait_until(WAIT, || has_value(&victim.client, "after", b"2")),
        "the honest peer kept syncing"
    );
    assert!(
        victim
            .client
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.node_id == "honest-trust" && p.state == PeerState::Connected),
        "the impersonator did not take the honest node's connection"
    );
}

/// A flood of TLS connections from strangers: each is refused, the table of peers does
/// not grow, and local writes and an honest peer go on.
#[test]
fn a_flood_of_strangers_is_refused_and_grows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "victim-strangers");
    let honest = Node::start(dir.path(), "honest-strangers");
    honest.trust_each_other(&victim);
    honest.client.connect(&victim.peer()).unwrap();
    for i in 0..200 {
        let mut s = Attacker::stranger(victim.addr());
        if i % 50 == 0 {
            victim.client.put(&format!("local/{i}"), b"fine").unwrap();
        }
        s.send(&Message::Ping(1));
    }
    assert!(wait_until(WAIT, || victim
        .client
        .network_stats()
        .is_ok_and(|s| s.transport.untrusted_peers >= 200)));
    let stats = victim.client.network_stats().unwrap();
    assert!(stats.peer_records <= 2, "{stats:?}");
    assert!(
        victim.client.peers().unwrap().len() <= 1,
        "strangers leave no peer record"
    );
    honest.client.put("through", b"the flood").unwrap();
    assert!(wait_until(WAIT, || has_value(
        &victim.client,
        "through",
        b"the flood"
    )));
}

/// A secure bare transport trusting nobody, for the handshake tests.
fn secure_transport(id: &str, tune: impl FnOnce(&mut TransportConfig)) -> Transport {
    let identity = softadastra::identity::Identity::generate().unwrap();
    let mut config = TransportConfig::new(id, "127.0.0.1", 0);
    config.security = Some(softadastra::transport::Security {
        tls: std::sync::Arc::new(softadastra::transport::tls::TlsContext::new(&identity).unwrap()),
        trusted: Default::default(),
    });
    tune(&mut config);
    Transport::start(config).unwrap()
}

#[test]
fn stalled_tls_handshakes_are_dropped_at_the_handshake_timeout() {
    use std::io::Write;
    let mut t = secure_transport("victim-handshake", |c| c.handshake_timeout_ms = 500);
    let addr = t.local_addr();
    // Silent after connecting; a ClientHello cut in the middle; half a record header.
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    let mut partial = std::net::TcpStream::connect(addr).unwrap();
    partial.write_all(&[22, 3, 1, 0x02, 0x00, 1, 0, 1]).unwrap();
    let mut header = std::net::TcpStream::connect(addr).unwrap();
    header.write_all(&[22, 3]).unwrap();
    let started = std::time::Instant::now();
    let mut timed_out = 0;
    assert!(pump(&mut t, |t, events| {
        timed_out += events
            .iter()
            .filter(|e| matches!(e, TransportEvent::Closed { reason, .. } if reason.contains("handshake timed out")))
            .count();
        timed_out == 3 && t.stats().connections == 0
    }));
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(t.stats().untrusted_peers, 0);
}

#[test]
fn a_peer_that_is_not_speaking_tls_is_refused_and_counted() {
    use std::io::Write;
    let mut t = secure_transport("victim-plain", |_| {});
    let mut plain = std::net::TcpStream::connect(t.local_addr()).unwrap();
    // A plaintext Hello frame, as an old or insecure node would send it.
    plain.write_all(&[40, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    plain.write_all(&[0u8; 40]).unwrap();
    assert!(pump(&mut t, |t, events| {
        events.iter().any(|e| matches!(e, TransportEvent::Closed { reason, .. } if reason.contains("TLS handshake failed")))
            && t.stats().tls_failures == 1
    }));
}

#[test]
fn the_handshake_timeout_option_drops_a_silent_connection() {
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start_with(dir.path(), "victim-slow", |o| o.handshake_timeout_ms = 300);
    let _silent = std::net::TcpStream::connect(victim.addr()).unwrap();
    let connections = || victim.client.network_stats().unwrap().transport.connections;
    assert!(wait_until(WAIT, || connections() == 1));
    // Well before the default 10 s: the option reached the transport.
    assert!(wait_until(Duration::from_secs(5), || connections() == 0));
}

#[test]
fn the_insecure_mode_is_plaintext_with_a_warning_and_cannot_reach_a_secure_node() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let insecure = |id: &str| Node::start_with(dir.path(), id, |o| o.insecure_transport = true);
    let (a, b) = (insecure("plain-a"), insecure("plain-b"));
    assert!(
        !logged("node plain-a: transport listening").is_empty()
            && logged("node plain-a: transport listening")
                .iter()
                .all(|(level, line)| *level == log::Level::Warn && line.contains("WITHOUT TLS")),
        "{:?}",
        logged("node plain-a: transport listening")
    );
    // No trust needed: any peer that speaks the protocol is taken.
    a.client.connect(&b.peer()).unwrap();
    a.client.put("plain", b"text").unwrap();
    assert!(wait_until(WAIT, || has_value(&b.client, "plain", b"text")));

    // A secure node refuses the plaintext one, even when it trusts its key.
    let secure = Node::start(dir.path(), "secure-c");
    secure.trust_each_other(&a);
    a.client.connect(&secure.peer()).unwrap();
    assert!(wait_until(WAIT, || secure
        .client
        .network_stats()
        .is_ok_and(|s| s.transport.tls_failures > 0)));
    assert!(!secure.client.contains("plain").unwrap());
}
