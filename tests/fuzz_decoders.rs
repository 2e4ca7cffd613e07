//! Fuzzing in CI: the decoders that read bytes from disk or the network (the WAL reader and
//! the store and sync-marks payloads, the frame decoder and protocol messages, the discovery
//! datagram), fed random bytes and mutated valid inputs
//! (random byte changes, truncations, extensions, optionally with checksums made valid
//! again). Each must refuse bad input without panicking, and what it accepts must be
//! consistent (see `fuzz_support`). The CLI's config file parser is fuzzed in its own
//! package (cli/tests/config_fuzz.rs).
//!
//! The runs are deterministic: a fixed seed and a fixed number of cases per target, so a
//! failure in CI repeats locally. `SOFTADASTRA_FUZZ_SEED=<u64>` and
//! `SOFTADASTRA_FUZZ_CASES=<n>` change them for a longer local run. The coverage-guided
//! long run is cargo-fuzz, in `fuzz/` (see README.md, "Longer test runs").
//!
//! Every crash found by either becomes a test at the end of this file, its input inline.

mod fuzz_support;
mod proptest_support;

use std::net::IpAddr;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;

use fuzz_support::{
    check_discovery_packet, check_forget_payload, check_frame_stream, check_marks_payload,
    check_message, check_store_payload, check_wal_image, mark_discovery_key, node_session_input,
    reseal_frame_stream, reseal_wal_image,
};
use proptest_support::{edits, mutate, random_bytes, run};
use softadastra::discovery::packet::{MAX_DISPLAY_NAME_LEN, Packet, PacketKind, truncate_utf8};
use softadastra::identity::Identity;
use softadastra::store::collect::encode_forget;
use softadastra::store::op::encode_ops;
use softadastra::store::{Collected, FullPart, Operation, Version, VersionVector};
use softadastra::sync::marks::{self, MarkKind};
use softadastra::sync::{Ack, Superseded, SyncBatch};
use softadastra::transport::frame;
use softadastra::transport::message::{Hello, Message};
use softadastra::wal::format::{
    RecordType, encode_legacy_header, encode_record, encode_segment_header,
};

/// Cases per decoder target in CI.
const CASES: u32 = 2000;
// ---- Valid inputs ----

fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..1000u64,
        1 => any::<u64>(),
        1 => (u64::MAX - 3)..=u64::MAX,
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    (
        "[a-z/é]{1,12}",
        proptest::option::of(vec(any::<u8>(), 0..24)),
        u64_edge(),
        "[a-z0-9-]{0,8}",
        u64_edge(),
        // A base origin is never empty: the encoding writes "no base" as length 0.
        proptest::option::of(("[a-z0-9-]{1,8}", u64_edge())),
    )
        .prop_map(
            |(key, value, version, origin, origin_seq, base)| Operation {
                key,
                value,
                version: Version(version),
                origin,
                origin_seq,
                base,
            },
        )
}

fn store_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(operation(), 0..4).prop_map(|ops| {
        let mut out = Vec::new();
        encode_ops(&mut out, ops.iter().map(Operation::as_op));
        out
    })
}

/// A range of operation numbers as the protocol allows it: from 1, not empty.
fn range() -> impl Strategy<Value = (u64, u64)> {
    (u64_edge(), u64_edge()).prop_map(|(a, b)| (a.min(b).max(1), a.max(b).max(1)))
}

fn marks_payload() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec((u64_edge(), u64_edge()), 0..6)).prop_map(|(ack, ranges)| {
        let kind = if ack {
            MarkKind::Acknowledged
        } else {
            MarkKind::Abandoned
        };
        marks::encode(kind, &ranges)
    })
}

fn collected() -> impl Strategy<Value = Collected> {
    (
        vec(("[a-c]{1,2}", u64_edge()), 0..4),
        u64_edge(),
        vec(("[a-c]{1,2}", u64_edge()), 0..3),
    )
        .prop_map(|(frontier, w, away)| {
            let away = away.into_iter().map(|(id, v)| (id, Version(v)));
            Collected::from_parts(frontier, Version(w), away)
        })
}

fn forget_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        collected(),
        vec(("[a-z0-9/]{1,8}", "[a-c]{1,2}", u64_edge()), 0..4),
    )
        .prop_map(|(learned, entries)| {
            let mut out = Vec::new();
            let entries = entries.iter().map(|(k, o, s)| (k.as_str(), o.as_str(), *s));
            encode_forget(&mut out, &learned, entries.collect::<Vec<_>>().into_iter());
            out
        })
}

/// A valid WAL image: the file header, records numbered from `first` (consecutive,
/// wrapping past u64::MAX so that the end of the range is reached), and zero padding.
fn wal_image() -> impl Strategy<Value = Vec<u8>> {
    let record = prop_oneof![
        store_payload().prop_map(|p| (RecordType::StoreOps, p)),
        marks_payload().prop_map(|p| (RecordType::SyncMarks, p)),
        forget_payload().prop_map(|p| (RecordType::StoreForget, p)),
    ];
    (
        prop_oneof![3 => Just(1u64), 1 => u64_edge()],
        any::<bool>(),
        vec(record, 0..5),
        0..64usize,
    )
        .prop_map(|(first, segment, records, padding)| {
            // A segment header names the first record's number (0 and u64::MAX are no
            // record's: such headers are refused, and checked so).
            let mut b = if segment {
                encode_segment_header(first).to_vec()
            } else {
                encode_legacy_header().to_vec()
            };
            for (i, (t, payload)) in records.iter().enumerate() {
                encode_record(&mut b, *t, first.wrapping_add(i as u64), payload);
            }
            b.resize(b.len() + padding, 0);
            b
        })
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9-]{0,10}", ".{0,6}"]
}

fn vector() -> impl Strategy<Value = VersionVector> {
    vec(("[a-c]{1,2}", u64_edge(), u64_edge()), 0..8).prop_map(|seen| {
        let mut v = VersionVector::new();
        for (origin, seq, version) in seen {
            v.observe(&origin, seq, Version(version));
        }
        v
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u16>(),
            string(),
            string(),
            vec(string(), 0..3),
            any::<u8>(),
            vec(any::<u8>(), 0..8),
            u64_edge()
        )
            .prop_map(
                |(v, id, name, caps, scheme, data, instance)| Message::Hello(Hello {
                    protocol_version: v,
                    node_id: id,
                    display_name: name,
                    capabilities: caps,
                    auth_scheme: scheme,
                    auth_data: data,
                    instance_id: instance,
                })
            ),
        string().prop_map(Message::Reject),
        (
            string(),
            vec(operation(), 0..3),
            vec((range(), u64_edge()), 0..3)
        )
            .prop_map(|(origin, ops, sup)| Message::Batch(SyncBatch {
                origin,
                ops,
                superseded: sup
                    .into_iter()
                    .map(|((first, last), v)| Superseded {
                        first,
                        last,
                        version: Version(v),
                    })
                    .collect(),
            })),
        (string(), vec(range(), 0..4))
            .prop_map(|(origin, ranges)| Message::Ack(Ack { origin, ranges })),
        u64_edge().prop_map(Message::Ping),
        u64_edge().prop_map(Message::Pong),
        vector().prop_map(Message::Vector),
        vec(operation(), 0..3).prop_map(Message::CatchUp),
        vector().prop_map(Message::CatchUpDone),
        Just(Message::VectorRequest),
        (
            proptest::option::of(string()),
            proptest::option::of(string()),
            vec(operation(), 0..3),
            vec(string(), 0..3)
        )
            .prop_map(
                |(after, through, ops, held)| Message::FullCatchUp(FullPart {
                    after,
                    through,
                    ops,
                    held,
                })
            ),
        (vector(), collected()).prop_map(|(v, c)| Message::FullCatchUpDone(v, c)),
    ]
}

fn frame_stream() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        3 => message().prop_map(|m| {
            let mut p = Vec::new();
            m.encode(&mut p);
            (m.kind(), p)
        }),
        1 => (any::<u8>(), random_bytes(40)),
    ];
    vec(one, 0..4).prop_map(|frames| {
        let mut out = Vec::new();
        for (k, p) in frames {
            frame::encode(&mut out, k, &p);
        }
        out
    })
}

fn packet() -> impl Strategy<Value = Packet> {
    let kind = prop_oneof![
        Just(PacketKind::Announce),
        Just(PacketKind::Probe),
        Just(PacketKind::Reply)
    ];
    let host = prop_oneof![
        Just(None),
        any::<std::net::Ipv4Addr>().prop_map(|ip| Some(IpAddr::V4(ip))),
        any::<std::net::Ipv6Addr>().prop_map(|ip| Some(IpAddr::V6(ip))),
    ];
    (
        (kind, "[A-Za-z0-9._-]{1,128}", any::<u64>()),
        (u64_edge(), u64_edge()),
        (host, 1..=u16::MAX, any::<u16>(), ".{0,40}"),
    )
        .prop_map(
            |((kind, node_id, instance_id), (counter, timestamp_ms), (host, port, tv, name))| {
                Packet {
                    kind,
                    node_id,
                    instance_id,
                    counter,
                    timestamp_ms,
                    transport_host: host,
                    transport_port: port,
                    transport_version: tv,
                    display_name: truncate_utf8(&name, MAX_DISPLAY_NAME_LEN).to_string(),
                }
            },
        )
}

/// The key the generated discovery packets are signed with (one for the run: making a key
/// per case would be slow).
fn discovery_identity() -> &'static Identity {
    static IDENTITY: OnceLock<Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| Identity::generate().unwrap())
}

// ---- WAL reader ----

#[test]
fn wal_reader_random_bytes() {
    run(
        "wal_reader_random_bytes",
        CASES,
        (any::<bool>(), random_bytes(512)),
        |(with_header, tail)| {
            let mut b = if with_header {
                encode_legacy_header().to_vec()
            } else {
                Vec::new()
            };
            b.extend_from_slice(&tail);
            check_wal_image(&b);
        },
    );
}

#[test]
fn wal_reader_mutated_images() {
    run(
        "wal_reader_mutated_images",
        CASES,
        (wal_image(), proptest::option::of(edits()), any::<bool>()),
        |(image, edits, reseal)| {
            let mut b = match &edits {
                Some(e) => mutate(image, e),
                None => image,
            };
            if reseal {
                reseal_wal_image(&mut b);
            }
            check_wal_image(&b);
        },
    );
}

#[test]
fn wal_payload_decoders_random_and_mutated() {
    let payload = prop_oneof![
        random_bytes(128),
        (store_payload(), edits()).prop_map(|(p, e)| mutate(p, &e)),
        (marks_payload(), edits()).prop_map(|(p, e)| mutate(p, &e)),
        (forget_payload(), edits()).prop_map(|(p, e)| mutate(p, &e)),
    ];
    run("wal_payload_decoders", CASES, payload, |p| {
        check_store_payload(&p);
        check_marks_payload(&p);
        check_forget_payload(&p);
    });
}

// ---- Frame decoder and messages ----

#[test]
fn frame_decoder_random_streams() {
    run(
        "frame_decoder_random_streams",
        CASES,
        (random_bytes(256), 1..64usize, 0..300usize),
        |(stream, chunk, max)| check_frame_stream(&stream, chunk, max),
    );
}

#[test]
fn frame_decoder_mutated_streams() {
    run(
        "frame_decoder_mutated_streams",
        CASES,
        (
            frame_stream(),
            proptest::option::of(edits()),
            any::<bool>(),
            1..64usize,
            prop_oneof![Just(0usize), Just(16), Just(256), Just(1 << 20)],
        ),
        |(stream, edits, reseal, chunk, max)| {
            let mut b = match &edits {
                Some(e) => mutate(stream, e),
                None => stream,
            };
            if reseal {
                reseal_frame_stream(&mut b);
            }
            check_frame_stream(&b, chunk, max);
        },
    );
}

#[test]
fn message_decoder_random_and_mutated_payloads() {
    let input = prop_oneof![
        (0..14u8, random_bytes(96)),
        (message(), proptest::option::of(edits())).prop_map(|(m, e)| {
            let mut p = Vec::new();
            m.encode(&mut p);
            (m.kind(), e.map_or(p.clone(), |e| mutate(p, &e)))
        }),
    ];
    run("message_decoder", CASES, input, |(k, payload)| {
        check_message(k, &payload);
    });
}

// ---- Discovery decoder ----

#[test]
fn discovery_decoder_random_and_mutated_packets() {
    // (bytes, the signed datagram they were mutated from, if any).
    let input = prop_oneof![
        (random_bytes(700), any::<bool>()).prop_map(|(mut b, headed)| {
            if headed && b.len() >= 5 {
                b[..5].copy_from_slice(b"SADI\x02");
                mark_discovery_key(&mut b);
            }
            (b, None)
        }),
        (packet(), proptest::option::of(edits())).prop_map(|(p, e)| {
            let b = p
                .encode(discovery_identity())
                .expect("a generated packet encodes");
            (e.map_or(b.clone(), |e| mutate(b.clone(), &e)), Some(b))
        }),
    ];
    run("discovery_decoder", CASES, input, |(bytes, original)| {
        check_discovery_packet(&bytes);
        // A mutated datagram still verifies only if nothing it signs changed (the edits
        // wrote bytes over themselves): no change to a signed byte goes unnoticed.
        if let (Some(original), Ok(d)) = (original, Packet::decode(&bytes))
            && d.verify().is_ok()
        {
            let original = Packet::decode(&original).unwrap();
            assert_eq!(d.signed_bytes(), original.signed_bytes());
            assert_eq!(d.packet, original.packet);
        }
    });
}

// ---- Regressions: every crash found, its input inline ----

fn from_hex(hex: &str) -> Vec<u8> {
    let hex: String = hex.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Found by `wal_reader_mutated_images` on its first run: a WAL whose first record is
/// numbered u64::MAX, followed by another record (both with valid checksums). The scan
/// computed u64::MAX + 1 as the expected next number: an overflow panic in debug builds.
/// Fixed in `wal::format::scan`: sequence number u64::MAX is refused as corruption.
#[test]
fn regression_wal_record_numbered_u64_max() {
    let image = from_hex(
        "534f46544157414c 01000000 00000000000000000000000000000000 8435ea0b
         4f077833 00000000 01000000 ffffffffffffffff
         3a071e77 00000000 01000000 0000000000000000",
    );
    check_wal_image(&image);
    let result = softadastra::wal::format::scan::<()>(&image, |_| Ok(()));
    match result {
        Err(softadastra::wal::format::ScanError::Corrupt(c)) => {
            assert_eq!(c.offset, 32);
            assert!(c.reason.contains("out of range"), "{}", c.reason);
        }
        other => panic!("{other:?}"),
    }
}

/// The same bug found by the cargo-fuzz `wal_reader` target, run on the code before the fix
/// from an empty corpus (crash after about 320,000 inputs; 43 bytes, already minimal). Mode
/// 3: a valid file header in front, checksums made valid. Two records (checksum, length,
/// type and reserved bytes, sequence number, payload), the first numbered u64::MAX.
#[test]
fn regression_wal_reader_fuzz_crash_cc91790a() {
    fuzz_support::wal_reader_input(&from_hex(
        "03
         00323b3b 01000000 010000ff ffffffffffffffff ff
         47004747 01000000 01000000 000003fe00ff47ff be",
    ));
}

// ---- A node fed sequences of remote messages (stateful) ----

#[test]
fn node_session_random_message_sequences() {
    run("node_session", CASES, vec(any::<u8>(), 0..512), |steps| {
        node_session_input(&steps);
    });
}
