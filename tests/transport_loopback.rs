//! The transport alone, on loopback with ephemeral ports: handshake, messages, refused
//! connections, garbage, half-written frames, version mismatches and duplicate node ids.
//! Every wait is bounded in iterations and time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use softadastra::store::Version;
use softadastra::sync::Ack;
use softadastra::transport::message::{Hello, Message, kind};
use softadastra::transport::{Transport, TransportConfig, TransportEvent, frame};

fn now_ms() -> u64 {
    softadastra::store::hlc::now_millis()
}

fn transport(id: &str) -> Transport {
    Transport::start(TransportConfig::new(id, "127.0.0.1", 0)).unwrap()
}

/// Polls every transport until `done` holds for the collected events (at most 5 s).
fn pump(
    ts: &mut [&mut Transport],
    mut done: impl FnMut(&[Vec<TransportEvent>]) -> bool,
) -> Vec<Vec<TransportEvent>> {
    let mut seen: Vec<Vec<TransportEvent>> = ts.iter().map(|_| Vec::new()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..10_000 {
        for (i, t) in ts.iter_mut().enumerate() {
            let events = t.poll(Some(Duration::from_millis(2)), 0, now_ms());
            seen[i].extend(events);
        }
        if done(&seen) || Instant::now() > deadline {
            break;
        }
    }
    seen
}

fn is_ready(events: &[TransportEvent], node: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, TransportEvent::Ready { node_id, .. } if node_id == node))
}

fn closed_reason(events: &[TransportEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        TransportEvent::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn two_transports_handshake_and_exchange_messages() {
    let (mut a, mut b) = (transport("node-a"), transport("node-b"));
    a.connect(b.local_addr(), now_ms());
    let seen = pump(&mut [&mut a, &mut b], |s| {
        is_ready(&s[0], "node-b") && is_ready(&s[1], "node-a")
    });
    assert!(
        is_ready(&seen[0], "node-b") && is_ready(&seen[1], "node-a"),
        "{seen:?}"
    );
    let (conn, _) = a.ready()[0].clone();
    let ack = Ack {
        origin: "node-b".into(),
        ranges: vec![(1, 3)],
    };
    assert!(a.send(conn, &Message::Ack(ack.clone())));
    let seen = pump(&mut [&mut a, &mut b], |s| !s[1].is_empty());
    match &seen[1][..] {
        [
            TransportEvent::Message {
                node_id,
                message: Message::Ack(got),
                ..
            },
        ] => {
            assert_eq!((node_id.as_str(), got), ("node-a", &ack));
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn a_refused_connection_is_reported_and_retried_with_backoff() {
    // Find a port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut a = transport("node-a");
    a.connect(addr, now_ms());
    let seen = pump(&mut [&mut a], |s| {
        s[0].iter()
            .filter(|e| matches!(e, TransportEvent::ConnectFailed { .. }))
            .count()
            >= 2
    });
    let failures: Vec<_> = seen[0]
        .iter()
        .filter_map(|e| match e {
            TransportEvent::ConnectFailed { addr: a, reason } => Some((*a, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(failures.len() >= 2, "retried: {failures:?}");
    assert_eq!(failures[0].0, addr);
    assert!(failures[0].1.contains("refused"), "{}", failures[0].1);
}

fn raw_client(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn hello(id: &str, version: u16) -> Vec<u8> {
    let mut payload = Vec::new();
    Message::Hello(Hello {
        protocol_version: version,
        node_id: id.into(),
        display_name: id.into(),
        capabilities: vec![],
        auth_scheme: 0,
        auth_data: vec![],
        instance_id: 7,
    })
    .encode(&mut payload);
    let mut out = Vec::new();
    frame::encode(&mut out, kind::HELLO, &payload);
    out
}

#[test]
fn garbage_bytes_close_the_connection_with_a_reason() {
    let mut b = transport("node-b");
    let mut raw = raw_client(b.local_addr());
    raw.write_all(&[
        0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ])
    .unwrap();
    let seen = pump(&mut [&mut b], |s| closed_reason(&s[0]).is_some());
    let reason = closed_reason(&seen[0]).expect("closed");
    assert!(reason.contains("protocol error"), "{reason}");
    assert_eq!(b.garbage_frames, 1);
}

#[test]
fn a_half_written_frame_then_a_vanished_peer_is_a_clean_close() {
    let mut b = transport("node-b");
    let mut raw = raw_client(b.local_addr());
    let full = hello("node-x", softadastra::transport::PROTOCOL_VERSION);
    raw.write_all(&full[..full.len() / 2]).unwrap();
    pump(&mut [&mut b], |_| true); // the half frame arrives

    drop(raw);
    let seen = pump(&mut [&mut b], |s| closed_reason(&s[0]).is_some());
    let reason = closed_reason(&seen[0]).expect("closed");
    assert!(reason.contains("middle of a frame"), "{reason}");
    assert!(b.ready().is_empty());
}

#[test]
fn an_incompatible_protocol_version_is_rejected_with_both_versions() {
    let mut b = transport("node-b");
    let mut raw = raw_client(b.local_addr());
    raw.write_all(&hello("node-x", 99)).unwrap();
    let seen = pump(&mut [&mut b], |s| closed_reason(&s[0]).is_some());
    let reason = closed_reason(&seen[0]).unwrap();
    assert!(
        reason.contains("incompatible protocol version 99"),
        "{reason}"
    );
    // The peer is told why before the connection closes.
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("incompatible protocol version 99"), "{text}");
}

#[test]
fn a_second_connection_from_the_same_node_id_is_rejected() {
    let mut b = transport("node-b");
    let mut first = raw_client(b.local_addr());
    first
        .write_all(&hello("node-x", softadastra::transport::PROTOCOL_VERSION))
        .unwrap();
    pump(&mut [&mut b], |s| is_ready(&s[0], "node-x"));
    let mut second = raw_client(b.local_addr());
    second
        .write_all(&hello("node-x", softadastra::transport::PROTOCOL_VERSION))
        .unwrap();
    let seen = pump(&mut [&mut b], |s| closed_reason(&s[0]).is_some());
    assert_eq!(
        closed_reason(&seen[0]).unwrap(),
        "node node-x is already connected"
    );
    assert_eq!(b.ready().len(), 1, "the first connection stays");
}

#[test]
fn an_oversized_frame_closes_the_connection() {
    let mut config = TransportConfig::new("node-b", "127.0.0.1", 0);
    config.max_frame = 1024;
    let mut b = Transport::start(config).unwrap();
    let mut raw = raw_client(b.local_addr());
    raw.write_all(&hello("node-x", softadastra::transport::PROTOCOL_VERSION))
        .unwrap();
    let mut big = Vec::new();
    let mut payload = Vec::new();
    Message::Ack(Ack {
        origin: "node-b".into(),
        ranges: (1..1000).map(|s| (2 * s, 2 * s)).collect(),
    })
    .encode(&mut payload);
    frame::encode(&mut big, kind::ACK, &payload);
    raw.write_all(&big).unwrap();
    let seen = pump(&mut [&mut b], |s| closed_reason(&s[0]).is_some());
    let reason = closed_reason(&seen[0]).unwrap();
    assert!(
        reason.contains("exceeds the limit of 1024 bytes"),
        "{reason}"
    );
    let _ = Version(0);
}
