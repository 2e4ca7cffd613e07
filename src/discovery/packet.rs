//! The discovery datagram: one UDP datagram is one [`Packet`]. Pure encoding and decoding,
//! no I/O. The byte layout is documented in `docs/discovery.md`; all integers are
//! little-endian.
//!
//! ```text
//! offset size field
//!  0     4    magic "SADI"
//!  4     1    packet format version (PROTOCOL_VERSION)
//!  5     1    kind: 1 announce, 2 probe, 3 reply
//!  6     8    instance id (random per start)
//! 14     2    transport port
//! 16     2    transport protocol version
//! 18     1    node id length n (1..=128), then n bytes of node id
//!  .     1    transport host length h (0..=64), then h bytes: "" or an IP literal
//!  .     1    display name length d (0..=255), then d bytes of UTF-8
//!  .     4    CRC32 (IEEE) of every byte before it
//! ```
//!
//! Decoding never panics: every malformed input gives a [`PacketError`].

use std::fmt;
use std::net::IpAddr;

use crate::id::{MAX_NODE_ID_LEN, validate_node_id};

/// First four bytes of every discovery datagram.
pub const MAGIC: [u8; 4] = *b"SADI";

/// The packet format version this build speaks. Packets of any other version are refused
/// with both versions named.
pub const PROTOCOL_VERSION: u8 = 1;

/// Longest transport host on the wire, in bytes (an IPv6 literal is at most 45).
pub const MAX_HOST_LEN: usize = 64;

/// Longest display name on the wire, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 255;

/// Bytes before the node id: magic, version, kind, instance id, port, transport version.
const FIXED_LEN: usize = 18;

/// Trailing CRC32.
const CRC_LEN: usize = 4;

/// Shortest valid packet: a one-byte node id, empty host and display name.
pub const MIN_PACKET_LEN: usize = FIXED_LEN + 1 + 1 + 1 + 1 + CRC_LEN;

/// Longest valid packet.
pub const MAX_PACKET_LEN: usize =
    FIXED_LEN + 1 + MAX_NODE_ID_LEN + 1 + MAX_HOST_LEN + 1 + MAX_DISPLAY_NAME_LEN + CRC_LEN;

/// What a datagram is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Periodic "I am here", sent to the broadcast address.
    Announce = 1,
    /// "Who is there?": every node that hears it answers with a [`PacketKind::Reply`].
    Probe = 2,
    /// An announcement sent in answer to a probe, unicast to the prober.
    Reply = 3,
}

impl PacketKind {
    /// The kind for a wire byte, if it is one.
    pub fn from_u8(value: u8) -> Option<PacketKind> {
        match value {
            1 => Some(PacketKind::Announce),
            2 => Some(PacketKind::Probe),
            3 => Some(PacketKind::Reply),
            _ => None,
        }
    }

    /// Lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketKind::Announce => "announce",
            PacketKind::Probe => "probe",
            PacketKind::Reply => "reply",
        }
    }

    /// Announcements and replies describe a node that can be connected to.
    pub fn is_announcement(self) -> bool {
        matches!(self, PacketKind::Announce | PacketKind::Reply)
    }
}

impl fmt::Display for PacketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One discovery datagram, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub kind: PacketKind,
    /// The sender's node id (valid by `id::validate_node_id`).
    pub node_id: String,
    /// Random per start of the sender: a changed value for a known node id means it restarted.
    pub instance_id: u64,
    /// Where the sender's transport listens. `None` means unspecified (the sender listens on
    /// all addresses): the receiver uses the datagram's source address. On the wire an
    /// unspecified host is the empty string; "0.0.0.0" and "::" are read as unspecified too.
    pub transport_host: Option<IpAddr>,
    /// The sender's transport port. Never 0 in an announce or a reply.
    pub transport_port: u16,
    /// The protocol version of the sender's transport. Discovery carries it and does not
    /// interpret it; the node may decline to connect to an incompatible peer.
    pub transport_version: u16,
    /// Free text for user interfaces, at most [`MAX_DISPLAY_NAME_LEN`] bytes; may be empty.
    pub display_name: String,
}

/// Why bytes are not a discovery packet (or a packet cannot be encoded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    #[error("packet of {len} bytes is shorter than the {min}-byte minimum")]
    TooShort { len: usize, min: usize },

    #[error("packet of {len} bytes is longer than the {max}-byte maximum")]
    TooLong { len: usize, max: usize },

    #[error("not a Softadastra discovery packet (magic {found:02x?})")]
    BadMagic { found: [u8; 4] },

    #[error(
        "discovery protocol version {found} is {} than this node's version {supported}",
        if *found > *supported { "newer" } else { "older" }
    )]
    UnsupportedVersion { found: u8, supported: u8 },

    #[error("unknown discovery message kind {0}")]
    UnknownKind(u8),

    #[error("checksum mismatch: the packet says {stored:08x}, its contents give {computed:08x}")]
    BadChecksum { stored: u32, computed: u32 },

    #[error("{field} runs past the end of the packet")]
    Truncated { field: &'static str },

    #[error("{extra} unexpected bytes after the display name")]
    TrailingBytes { extra: usize },

    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },

    #[error("{field} is {len} bytes, the limit is {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },

    #[error("{0}")]
    InvalidNodeId(String),

    #[error("transport host \"{0}\" is not an IP address")]
    InvalidHost(String),

    #[error("{0} carries transport port 0")]
    MissingPort(PacketKind),
}

impl Packet {
    /// Encodes the packet. Fails only for fields the format cannot carry (an invalid node
    /// id, an over-long display name, port 0 in an announcement).
    pub fn encode(&self) -> Result<Vec<u8>, PacketError> {
        validate_node_id(&self.node_id).map_err(|e| PacketError::InvalidNodeId(e.to_string()))?;
        if self.kind.is_announcement() && self.transport_port == 0 {
            return Err(PacketError::MissingPort(self.kind));
        }
        let host = match self.transport_host {
            Some(ip) if !ip.is_unspecified() => ip.to_string(),
            _ => String::new(),
        };
        if self.display_name.len() > MAX_DISPLAY_NAME_LEN {
            return Err(PacketError::FieldTooLong {
                field: "display name",
                len: self.display_name.len(),
                max: MAX_DISPLAY_NAME_LEN,
            });
        }
        let mut out = Vec::with_capacity(
            FIXED_LEN + 3 + self.node_id.len() + host.len() + self.display_name.len() + CRC_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.instance_id.to_le_bytes());
        out.extend_from_slice(&self.transport_port.to_le_bytes());
        out.extend_from_slice(&self.transport_version.to_le_bytes());
        for field in [
            self.node_id.as_bytes(),
            host.as_bytes(),
            self.display_name.as_bytes(),
        ] {
            // Lengths are bounded above (128, 45, 255), so each fits in a u8.
            out.push(field.len() as u8);
            out.extend_from_slice(field);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes one datagram. Checks, in order: length, magic, version, checksum, then every
    /// field. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
        let len = bytes.len();
        if len < MAGIC.len() + 1 {
            return Err(PacketError::TooShort {
                len,
                min: MIN_PACKET_LEN,
            });
        }
        let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if found != MAGIC {
            return Err(PacketError::BadMagic { found });
        }
        if bytes[4] != PROTOCOL_VERSION {
            // Checked before anything else about the layout, which a newer version may change.
            return Err(PacketError::UnsupportedVersion {
                found: bytes[4],
                supported: PROTOCOL_VERSION,
            });
        }
        if len < MIN_PACKET_LEN {
            return Err(PacketError::TooShort {
                len,
                min: MIN_PACKET_LEN,
            });
        }
        if len > MAX_PACKET_LEN {
            return Err(PacketError::TooLong {
                len,
                max: MAX_PACKET_LEN,
            });
        }
        let (body, crc) = bytes.split_at(len - CRC_LEN);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(PacketError::BadChecksum { stored, computed });
        }

        let kind = PacketKind::from_u8(body[5]).ok_or(PacketError::UnknownKind(body[5]))?;
        let mut r = Reader {
            bytes: body,
            pos: 6,
        };
        let instance_id = u64::from_le_bytes(r.array("instance id")?);
        let transport_port = u16::from_le_bytes(r.array("transport port")?);
        let transport_version = u16::from_le_bytes(r.array("transport version")?);
        let node_id = r.string("node id", MAX_NODE_ID_LEN)?;
        validate_node_id(&node_id).map_err(|e| PacketError::InvalidNodeId(e.to_string()))?;
        let host = r.string("transport host", MAX_HOST_LEN)?;
        let transport_host = if host.is_empty() {
            None
        } else {
            let ip: IpAddr = host
                .parse()
                .map_err(|_| PacketError::InvalidHost(crate::logsafe::shown(&host)))?;
            (!ip.is_unspecified()).then_some(ip)
        };
        let display_name = r.string("display name", MAX_DISPLAY_NAME_LEN)?;
        if r.pos != body.len() {
            return Err(PacketError::TrailingBytes {
                extra: body.len() - r.pos,
            });
        }
        if kind.is_announcement() && transport_port == 0 {
            return Err(PacketError::MissingPort(kind));
        }
        Ok(Packet {
            kind,
            node_id,
            instance_id,
            transport_host,
            transport_port,
            transport_version,
            display_name,
        })
    }
}

/// A bounds-checked cursor: every read returns an error instead of indexing past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], PacketError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(PacketError::Truncated { field })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], PacketError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// A u8 length then that many bytes of UTF-8, at most `max` bytes.
    fn string(&mut self, field: &'static str, max: usize) -> Result<String, PacketError> {
        let [len] = self.array::<1>(field)?;
        let len = usize::from(len);
        if len > max {
            return Err(PacketError::FieldTooLong { field, len, max });
        }
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| PacketError::InvalidUtf8 { field })
    }
}

/// `name` cut to at most `max` bytes at a character boundary.
pub fn truncate_utf8(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn announce() -> Packet {
        Packet {
            kind: PacketKind::Announce,
            node_id: "node-a".into(),
            instance_id: 0x0102_0304_0506_0708,
            transport_host: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
            transport_port: 9500,
            transport_version: 1,
            display_name: "Till 3".into(),
        }
    }

    /// Re-seals a hand-edited packet so that the checksum does not hide the field check.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len() - CRC_LEN;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn layout_matches_the_documented_bytes() {
        let bytes = announce().encode().unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"SADI");
        expected.extend_from_slice(&[1, 1]);
        expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        expected.extend_from_slice(&9500u16.to_le_bytes());
        expected.extend_from_slice(&[1, 0]);
        expected.push(6);
        expected.extend_from_slice(b"node-a");
        expected.push(12);
        expected.extend_from_slice(b"192.168.1.20");
        expected.push(6);
        expected.extend_from_slice(b"Till 3");
        let crc = crc32fast::hash(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes, expected);
        // The bounds docs/discovery.md states.
        assert_eq!((MIN_PACKET_LEN, MAX_PACKET_LEN), (26, 472));
        assert_eq!(Packet::decode(&bytes).unwrap(), announce());
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in [PacketKind::Announce, PacketKind::Probe, PacketKind::Reply] {
            let p = Packet { kind, ..announce() };
            assert_eq!(Packet::decode(&p.encode().unwrap()).unwrap(), p);
        }
    }

    #[test]
    fn unspecified_hosts_travel_as_the_empty_string() {
        for host in [
            None,
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ] {
            let p = Packet {
                transport_host: host,
                ..announce()
            };
            let bytes = p.encode().unwrap();
            assert_eq!(bytes[18 + 1 + 6], 0, "host length");
            assert_eq!(Packet::decode(&bytes).unwrap().transport_host, None);
        }
    }

    #[test]
    fn a_literal_unspecified_host_from_another_implementation_reads_as_unspecified() {
        let bytes = announce().encode().unwrap();
        // Replace "192.168.1.20" (12 bytes) with "0.0.0.0".
        let host_at = 18 + 1 + 6;
        let mut edited = bytes[..host_at].to_vec();
        edited.push(7);
        edited.extend_from_slice(b"0.0.0.0");
        edited.extend_from_slice(&bytes[host_at + 1 + 12..]);
        let p = Packet::decode(&reseal(edited)).unwrap();
        assert_eq!(p.transport_host, None);
    }

    #[test]
    fn ipv6_hosts_round_trip() {
        let p = Packet {
            transport_host: Some("fe80::1:2".parse().unwrap()),
            ..announce()
        };
        assert_eq!(Packet::decode(&p.encode().unwrap()).unwrap(), p);
    }

    #[test]
    fn short_packets_are_refused() {
        for len in 0..MIN_PACKET_LEN {
            let bytes = &announce().encode().unwrap()[..len];
            let err = Packet::decode(bytes).unwrap_err();
            assert!(
                matches!(err, PacketError::TooShort { .. }),
                "{len}: {err:?}"
            );
        }
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut bytes = announce().encode().unwrap();
        bytes[0] = b'X';
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(err, PacketError::BadMagic { found: *b"XADI" });
    }

    #[test]
    fn other_versions_are_refused_naming_both() {
        let mut bytes = announce().encode().unwrap();
        bytes[4] = 2;
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "discovery protocol version 2 is newer than this node's version 1"
        );
        bytes[4] = 0;
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "discovery protocol version 0 is older than this node's version 1"
        );
        // A newer version is recognised even when its layout is not ours (longer, shorter).
        let mut newer = b"SADI\x07".to_vec();
        assert!(matches!(
            Packet::decode(&newer),
            Err(PacketError::UnsupportedVersion { found: 7, .. })
        ));
        newer.resize(4000, 0xAA);
        assert!(matches!(
            Packet::decode(&newer),
            Err(PacketError::UnsupportedVersion { found: 7, .. })
        ));
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let good = announce().encode().unwrap();
        for i in 5..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x10;
            let err = Packet::decode(&bytes).unwrap_err();
            assert!(
                matches!(err, PacketError::BadChecksum { .. }),
                "byte {i}: {err:?}"
            );
        }
    }

    #[test]
    fn oversized_packets_are_refused() {
        let mut bytes = announce().encode().unwrap();
        bytes.resize(MAX_PACKET_LEN + 1, 0);
        assert_eq!(
            Packet::decode(&bytes).unwrap_err(),
            PacketError::TooLong {
                len: MAX_PACKET_LEN + 1,
                max: MAX_PACKET_LEN
            }
        );
    }

    #[test]
    fn unknown_kind_is_refused() {
        let mut bytes = announce().encode().unwrap();
        bytes[5] = 9;
        assert_eq!(
            Packet::decode(&reseal(bytes)).unwrap_err(),
            PacketError::UnknownKind(9)
        );
    }

    #[test]
    fn bad_fields_are_refused_even_with_a_valid_checksum() {
        let good = announce().encode().unwrap();
        let node_at = 18;

        let mut bytes = good.clone();
        bytes[node_at + 1] = b' ';
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert!(matches!(err, PacketError::InvalidNodeId(_)), "{err:?}");

        let mut bytes = good.clone();
        bytes[node_at] = 200;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert!(
            matches!(
                err,
                PacketError::FieldTooLong {
                    field: "node id",
                    ..
                }
            ),
            "{err:?}"
        );

        let mut bytes = good.clone();
        bytes[node_at] = 0;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert!(matches!(err, PacketError::InvalidNodeId(_)), "{err:?}");

        let host_at = node_at + 1 + 6;
        let mut bytes = good.clone();
        bytes[host_at + 1] = b'x';
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert_eq!(err, PacketError::InvalidHost("x92.168.1.20".into()));

        let name_at = host_at + 1 + 12;
        let mut bytes = good.clone();
        bytes[name_at + 1] = 0xFF;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert_eq!(
            err,
            PacketError::InvalidUtf8 {
                field: "display name"
            }
        );

        let mut bytes = good.clone();
        bytes[name_at] = 100;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert_eq!(
            err,
            PacketError::Truncated {
                field: "display name"
            }
        );

        let mut bytes = good.clone();
        bytes[name_at] = 2;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert_eq!(err, PacketError::TrailingBytes { extra: 4 });

        let mut bytes = good;
        bytes[14] = 0;
        bytes[15] = 0;
        let err = Packet::decode(&reseal(bytes)).unwrap_err();
        assert_eq!(err, PacketError::MissingPort(PacketKind::Announce));
    }

    #[test]
    fn probes_may_carry_port_zero_announcements_may_not() {
        let probe = Packet {
            kind: PacketKind::Probe,
            transport_port: 0,
            ..announce()
        };
        assert_eq!(Packet::decode(&probe.encode().unwrap()).unwrap(), probe);
        let bad = Packet {
            transport_port: 0,
            ..announce()
        };
        assert_eq!(
            bad.encode().unwrap_err(),
            PacketError::MissingPort(PacketKind::Announce)
        );
    }

    #[test]
    fn encode_refuses_what_the_format_cannot_carry() {
        let p = Packet {
            node_id: "bad id".into(),
            ..announce()
        };
        assert!(matches!(p.encode(), Err(PacketError::InvalidNodeId(_))));
        let p = Packet {
            display_name: "x".repeat(256),
            ..announce()
        };
        assert!(matches!(p.encode(), Err(PacketError::FieldTooLong { .. })));
        let longest = Packet {
            node_id: "n".repeat(MAX_NODE_ID_LEN),
            transport_host: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                    .parse()
                    .unwrap(),
            ),
            display_name: "d".repeat(MAX_DISPLAY_NAME_LEN),
            ..announce()
        };
        let bytes = longest.encode().unwrap();
        assert!(bytes.len() <= MAX_PACKET_LEN);
        assert_eq!(Packet::decode(&bytes).unwrap(), longest);
    }

    #[test]
    fn truncate_utf8_keeps_whole_characters() {
        assert_eq!(truncate_utf8("abc", 5), "abc");
        assert_eq!(truncate_utf8("abc", 2), "ab");
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("éé", 0), "");
    }

    fn node_id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,128}"
    }

    fn host() -> impl Strategy<Value = Option<IpAddr>> {
        prop_oneof![
            Just(None),
            any::<Ipv4Addr>().prop_map(|ip| Some(IpAddr::V4(ip))),
            any::<Ipv6Addr>().prop_map(|ip| Some(IpAddr::V6(ip))),
        ]
    }

    fn kind() -> impl Strategy<Value = PacketKind> {
        prop_oneof![
            Just(PacketKind::Announce),
            Just(PacketKind::Probe),
            Just(PacketKind::Reply)
        ]
    }

    fn packet() -> impl Strategy<Value = Packet> {
        (
            kind(),
            node_id(),
            any::<u64>(),
            host(),
            1..=u16::MAX,
            any::<u16>(),
            ".{0,80}",
        )
            .prop_map(
                |(kind, node_id, instance_id, host, port, tv, name)| Packet {
                    kind,
                    node_id,
                    instance_id,
                    transport_host: host,
                    transport_port: port,
                    transport_version: tv,
                    display_name: truncate_utf8(&name, MAX_DISPLAY_NAME_LEN).to_string(),
                },
            )
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn random_bodies_behind_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..700)
        ) {
            // Sealed with a valid checksum, so decoding reaches the field parser.
            let mut bytes = b"SADI\x01".to_vec();
            bytes.extend_from_slice(&tail);
            bytes.extend_from_slice(&[0; CRC_LEN]);
            let _ = Packet::decode(&reseal(bytes));
        }

        #[test]
        fn mutated_packets_never_panic(
            p in packet(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
            seal in any::<bool>(),
        ) {
            let mut bytes = p.encode().unwrap();
            for (at, value) in edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            if seal && bytes.len() >= CRC_LEN {
                bytes = reseal(bytes);
            }
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn encode_then_decode_round_trips(p in packet()) {
            let bytes = p.encode().unwrap();
            prop_assert!(bytes.len() <= MAX_PACKET_LEN);
            let mut expected = p.clone();
            expected.transport_host = p.transport_host.filter(|ip| !ip.is_unspecified());
            prop_assert_eq!(Packet::decode(&bytes).unwrap(), expected);
        }
    }
}
