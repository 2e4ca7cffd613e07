//! The discovery datagram: one UDP datagram is one signed [`Packet`]. Pure encoding,
//! decoding and signature checking, no I/O. The byte layout is documented in
//! `docs/discovery.md`; all integers are little-endian.
//!
//! ```text
//! offset size field
//!  0     4    magic "SADI"
//!  4     1    packet format version (PROTOCOL_VERSION, 2)
//!  5     1    kind: 1 announce, 2 probe, 3 reply
//!  6     8    instance id (random per start)
//! 14     8    counter (per instance, greater in every datagram the instance sends)
//! 22     8    timestamp: the sender's wall clock, milliseconds since the Unix epoch
//! 30     2    transport port
//! 32     2    transport protocol version
//! 34    65    sender's public key: uncompressed ECDSA P-256 point (0x04, X, Y)
//! 99     1    node id length n (1..=128), then n bytes of node id
//!  .     1    transport host length h (0..=64), then h bytes: "" or an IP literal
//!  .     1    display name length d (0..=255), then d bytes of UTF-8
//!  .     s    signature (8..=72 bytes, to the end of the datagram): ECDSA P-256 SHA-256,
//!             ASN.1 DER, of every byte before it, by the key at offset 34
//! ```
//!
//! Every kind is signed, probes included: one layout, and a probe's sender is known by its
//! key like any other. There is no checksum: any changed byte fails the signature, which
//! is checked before anything a packet says is believed.
//!
//! Decoding ([`Packet::decode`]) never panics: every malformed input gives a
//! [`PacketError`]. It does not check the signature: [`Unverified::verify`] does, so that
//! the receiver can first drop, for almost nothing, packets it would refuse anyway
//! (replays, a clock far off), and spends a signature check only on the rest.

use std::fmt;
use std::net::IpAddr;

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use crate::id::{MAX_NODE_ID_LEN, validate_node_id};
use crate::identity::{Identity, P256_POINT_LEN, fingerprint_of_p256_point};

/// First four bytes of every discovery datagram.
pub const MAGIC: [u8; 4] = *b"SADI";

/// The packet format version this build speaks. Packets of any other version are refused
/// with both versions named. Version 1 had no key, signature, counter or timestamp.
pub const PROTOCOL_VERSION: u8 = 2;

/// Longest transport host on the wire, in bytes (an IPv6 literal is at most 45).
pub const MAX_HOST_LEN: usize = 64;

/// Longest display name on the wire, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 255;

/// Shortest ASN.1 DER ECDSA signature: a SEQUENCE of two one-byte INTEGERs.
pub const MIN_SIGNATURE_LEN: usize = 8;

/// Longest ASN.1 DER ECDSA P-256 signature: a SEQUENCE of two 33-byte INTEGERs.
pub const MAX_SIGNATURE_LEN: usize = 72;

/// Offset of the public key: after magic, version, kind, instance id, counter, timestamp,
/// port and transport version.
const KEY_AT: usize = 34;

/// Bytes before the node id.
const FIXED_LEN: usize = KEY_AT + P256_POINT_LEN;

/// Shortest valid packet: a one-byte node id, empty host and display name, the shortest
/// signature.
pub const MIN_PACKET_LEN: usize = FIXED_LEN + 1 + 1 + 1 + 1 + MIN_SIGNATURE_LEN;

/// Longest valid packet.
pub const MAX_PACKET_LEN: usize = FIXED_LEN
    + 1
    + MAX_NODE_ID_LEN
    + 1
    + MAX_HOST_LEN
    + 1
    + MAX_DISPLAY_NAME_LEN
    + MAX_SIGNATURE_LEN;

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

/// A sender's public key as discovery carries it: an uncompressed ECDSA P-256 point. The
/// point is 26 bytes shorter than the DER SubjectPublicKeyInfo, which the fingerprint is
/// computed from, and every P-256 SPKI is the same 26 bytes then the point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; P256_POINT_LEN]);

impl PublicKey {
    /// The key for a 65-byte uncompressed point (first byte 0x04), if `bytes` is one.
    /// Whether the point is on the curve is checked when a signature is verified with it.
    pub fn from_sec1(bytes: &[u8]) -> Option<PublicKey> {
        let point: [u8; P256_POINT_LEN] = bytes.try_into().ok()?;
        (point[0] == 0x04).then_some(PublicKey(point))
    }

    /// The public key of `identity`; `None` if it is not an ECDSA P-256 key (an identity
    /// loaded from a file refuses other keys, so this does not happen in a node).
    pub fn of(identity: &Identity) -> Option<PublicKey> {
        PublicKey::from_sec1(identity.public_key_raw())
    }

    /// The 65 bytes of the point.
    pub fn as_bytes(&self) -> &[u8; P256_POINT_LEN] {
        &self.0
    }

    /// The key's fingerprint: the same as [`Identity::fingerprint`] of its owner.
    pub fn fingerprint(&self) -> String {
        fingerprint_of_p256_point(&self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// One discovery datagram's contents, without the key and signature that seal it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub kind: PacketKind,
    /// The sender's node id (valid by `id::validate_node_id`).
    pub node_id: String,
    /// Random per start of the sender: a changed value for a known node id means it restarted.
    pub instance_id: u64,
    /// Counts the datagrams of one instance: each is greater than the one before, so that a
    /// receiver can refuse one it already had (a replay) within an instance.
    pub counter: u64,
    /// The sender's wall clock when it signed, in milliseconds since the Unix epoch: a
    /// receiver refuses a datagram too far from its own clock (an old one replayed), and,
    /// from another instance than the last it took from that node, one older than that.
    pub timestamp_ms: u64,
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

/// Why bytes are not a discovery packet (or a packet cannot be encoded or is not
/// authentic).
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

    #[error("{field} runs past the end of the packet")]
    Truncated { field: &'static str },

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

    #[error("the public key is not an uncompressed P-256 point (first byte {0:#04x})")]
    InvalidPublicKey(u8),

    #[error(
        "the signature is {len} bytes; an ECDSA P-256 signature is {MIN_SIGNATURE_LEN} to \
         {MAX_SIGNATURE_LEN}"
    )]
    SignatureLength { len: usize },

    #[error("the signature does not match the packet and its key (forged or corrupted)")]
    BadSignature,

    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A decoded datagram whose signature has not been checked yet: nothing in it is to be
/// believed before [`Unverified::verify`] succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified<'a> {
    /// What the datagram says.
    pub packet: Packet,
    /// The key it claims to be signed by.
    pub key: PublicKey,
    /// Every byte before the signature: what the signature covers.
    signed: &'a [u8],
    signature: &'a [u8],
}

impl Unverified<'_> {
    /// Checks the signature over every byte before it with the packet's key.
    pub fn verify(&self) -> Result<(), PacketError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.key.as_bytes())
            .verify(self.signed, self.signature)
            .map_err(|_| PacketError::BadSignature)
    }

    /// The bytes the signature covers.
    #[cfg(any(test, feature = "internals"))]
    pub fn signed_bytes(&self) -> &[u8] {
        self.signed
    }

    /// The signature, as received.
    #[cfg(any(test, feature = "internals"))]
    pub fn signature(&self) -> &[u8] {
        self.signature
    }
}

impl Packet {
    /// The bytes a signature covers: the whole datagram but the signature, with `key` as
    /// the sender's key. Fails only for fields the format cannot carry (an invalid node id,
    /// an over-long display name, port 0 in an announcement).
    pub fn signed_bytes(&self, key: &PublicKey) -> Result<Vec<u8>, PacketError> {
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
            FIXED_LEN
                + 3
                + self.node_id.len()
                + host.len()
                + self.display_name.len()
                + MAX_SIGNATURE_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.instance_id.to_le_bytes());
        out.extend_from_slice(&self.counter.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.transport_port.to_le_bytes());
        out.extend_from_slice(&self.transport_version.to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        for field in [
            self.node_id.as_bytes(),
            host.as_bytes(),
            self.display_name.as_bytes(),
        ] {
            // Lengths are bounded above (128, 45, 255), so each fits in a u8.
            out.push(field.len() as u8);
            out.extend_from_slice(field);
        }
        Ok(out)
    }

    /// Encodes the packet signed by `identity` (whose key it carries).
    pub fn encode(&self, identity: &Identity) -> Result<Vec<u8>, PacketError> {
        let key = PublicKey::of(identity).ok_or_else(|| {
            PacketError::Sign("the identity key is not an ECDSA P-256 key".into())
        })?;
        let signed = self.signed_bytes(&key)?;
        let signature = identity
            .sign(&signed)
            .map_err(|e| PacketError::Sign(e.to_string()))?;
        seal(signed, &signature)
    }

    /// Decodes one datagram, without checking its signature (see [`Unverified`]). Checks,
    /// in order: length, magic, version, then every field. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Unverified<'_>, PacketError> {
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

        let kind = PacketKind::from_u8(bytes[5]).ok_or(PacketError::UnknownKind(bytes[5]))?;
        let mut r = Reader { bytes, pos: 6 };
        let instance_id = u64::from_le_bytes(r.array("instance id")?);
        let counter = u64::from_le_bytes(r.array("counter")?);
        let timestamp_ms = u64::from_le_bytes(r.array("timestamp")?);
        let transport_port = u16::from_le_bytes(r.array("transport port")?);
        let transport_version = u16::from_le_bytes(r.array("transport version")?);
        let point: [u8; P256_POINT_LEN] = r.array("public key")?;
        let key = PublicKey::from_sec1(&point).ok_or(PacketError::InvalidPublicKey(point[0]))?;
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
        // The rest of the datagram is the signature (UDP keeps datagram boundaries, so it
        // needs no length of its own, and the signer need not know its length in advance).
        let (signed, signature) = bytes.split_at(r.pos);
        if !(MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&signature.len()) {
            return Err(PacketError::SignatureLength {
                len: signature.len(),
            });
        }
        if kind.is_announcement() && transport_port == 0 {
            return Err(PacketError::MissingPort(kind));
        }
        Ok(Unverified {
            packet: Packet {
                kind,
                node_id,
                instance_id,
                counter,
                timestamp_ms,
                transport_host,
                transport_port,
                transport_version,
                display_name,
            },
            key,
            signed,
            signature,
        })
    }
}

/// The datagram: `signed` (from [`Packet::signed_bytes`]) then `signature`, whose length
/// is checked so that what is sent decodes.
pub fn seal(mut signed: Vec<u8>, signature: &[u8]) -> Result<Vec<u8>, PacketError> {
    if !(MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&signature.len()) {
        return Err(PacketError::SignatureLength {
            len: signature.len(),
        });
    }
    signed.extend_from_slice(signature);
    Ok(signed)
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
    use std::sync::OnceLock;

    /// One key for the whole module: making one per proptest case would be slow.
    fn identity() -> &'static Identity {
        static IDENTITY: OnceLock<Identity> = OnceLock::new();
        IDENTITY.get_or_init(|| Identity::generate().unwrap())
    }

    fn key() -> PublicKey {
        PublicKey::of(identity()).unwrap()
    }

    fn announce() -> Packet {
        Packet {
            kind: PacketKind::Announce,
            node_id: "node-a".into(),
            instance_id: 0x0102_0304_0506_0708,
            counter: 0x11,
            timestamp_ms: 0x0000_0190_0000_0001,
            transport_host: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))),
            transport_port: 9500,
            transport_version: 1,
            display_name: "Till 3".into(),
        }
    }

    fn encode(p: &Packet) -> Vec<u8> {
        p.encode(identity()).unwrap()
    }

    fn decode_verified(bytes: &[u8]) -> Result<Packet, PacketError> {
        let d = Packet::decode(bytes)?;
        d.verify()?;
        Ok(d.packet)
    }

    /// Re-signs a hand-edited packet (everything but its signature, which is dropped) so
    /// that the signature does not hide the field check.
    fn resign(mut bytes: Vec<u8>, signature_len: usize) -> Vec<u8> {
        bytes.truncate(bytes.len() - signature_len);
        let signature = identity().sign(&bytes).unwrap();
        bytes.extend_from_slice(&signature);
        bytes
    }

    fn signature_len(bytes: &[u8]) -> usize {
        Packet::decode(bytes).unwrap().signature().len()
    }

    const NODE_AT: usize = 99;

    #[test]
    fn layout_matches_the_documented_bytes() {
        let bytes = encode(&announce());
        let mut expected = Vec::new();
        expected.extend_from_slice(b"SADI");
        expected.extend_from_slice(&[2, 1]);
        expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        expected.extend_from_slice(&[0x11, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0x90, 1, 0, 0]);
        expected.extend_from_slice(&9500u16.to_le_bytes());
        expected.extend_from_slice(&[1, 0]);
        expected.extend_from_slice(identity().public_key_raw());
        assert_eq!(expected.len(), NODE_AT);
        expected.push(6);
        expected.extend_from_slice(b"node-a");
        expected.push(12);
        expected.extend_from_slice(b"192.168.1.20");
        expected.push(6);
        expected.extend_from_slice(b"Till 3");
        assert_eq!(&bytes[..expected.len()], expected.as_slice());
        // Then the signature of all of the above, to the end.
        let signature = &bytes[expected.len()..];
        assert!((MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&signature.len()));
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
        let d = Packet::decode(&bytes).unwrap();
        assert_eq!(d.signed_bytes(), expected.as_slice());
        assert_eq!(d.signature(), signature);
        // The bounds docs/discovery.md states.
        assert_eq!((MIN_PACKET_LEN, MAX_PACKET_LEN), (111, 621));
        assert_eq!(decode_verified(&bytes).unwrap(), announce());
    }

    #[test]
    fn every_kind_round_trips_signed() {
        for kind in [PacketKind::Announce, PacketKind::Probe, PacketKind::Reply] {
            let p = Packet { kind, ..announce() };
            let bytes = encode(&p);
            let d = Packet::decode(&bytes).unwrap();
            assert_eq!(d.key, key());
            assert_eq!(d.verify(), Ok(()));
            assert_eq!(d.packet, p);
        }
    }

    #[test]
    fn the_carried_key_gives_the_senders_fingerprint() {
        let bytes = encode(&announce());
        let d = Packet::decode(&bytes).unwrap();
        assert_eq!(d.key.fingerprint(), identity().fingerprint());
        assert_eq!(
            format!("{:?}", d.key),
            format!("PublicKey({})", identity().fingerprint())
        );
    }

    #[test]
    fn a_tampered_byte_fails_the_signature() {
        let good = encode(&announce());
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x10;
            // Either the layout no longer holds (magic, version, a length, the key's form)
            // or the signature fails; it never decodes as authentic.
            let result = Packet::decode(&bytes).and_then(|d| d.verify());
            assert!(result.is_err(), "byte {i} changed and still verifies");
        }
    }

    #[test]
    fn a_packet_signed_by_one_key_and_carrying_another_fails() {
        let other = Identity::generate().unwrap();
        let theirs = PublicKey::of(&other).unwrap();
        // Signed by `identity()` but claiming `other`'s key (and so its fingerprint).
        let signed = announce().signed_bytes(&theirs).unwrap();
        let signature = identity().sign(&signed).unwrap();
        let bytes = seal(signed, &signature).unwrap();
        let d = Packet::decode(&bytes).unwrap();
        assert_eq!(d.key, theirs);
        assert_eq!(d.verify(), Err(PacketError::BadSignature));
    }

    #[test]
    fn a_signature_moved_to_another_packet_fails() {
        let a = encode(&announce());
        let b = encode(&Packet {
            counter: 0x12,
            ..announce()
        });
        let sig_a = Packet::decode(&a).unwrap().signature().to_vec();
        let mut moved = Packet::decode(&b).unwrap().signed_bytes().to_vec();
        moved.extend_from_slice(&sig_a);
        let err = Packet::decode(&moved).unwrap().verify().unwrap_err();
        assert_eq!(err, PacketError::BadSignature);
    }

    #[test]
    fn signature_lengths_outside_the_ecdsa_range_are_refused() {
        let good = encode(&announce());
        let signed_len = good.len() - signature_len(&good);
        for len in [0, 1, MIN_SIGNATURE_LEN - 1, MAX_SIGNATURE_LEN + 1] {
            let mut bytes = good[..signed_len].to_vec();
            bytes.resize(signed_len + len, 0x30);
            let err = Packet::decode(&bytes).unwrap_err();
            assert!(
                matches!(
                    err,
                    PacketError::SignatureLength { .. } | PacketError::TooShort { .. }
                ),
                "{len}: {err:?}"
            );
        }
        assert_eq!(
            seal(vec![1, 2, 3], &[0; MAX_SIGNATURE_LEN + 1]),
            Err(PacketError::SignatureLength { len: 73 })
        );
    }

    #[test]
    fn a_key_that_is_not_an_uncompressed_point_is_refused() {
        let mut bytes = encode(&announce());
        bytes[KEY_AT] = 0x02; // a compressed point
        assert_eq!(
            Packet::decode(&bytes).unwrap_err(),
            PacketError::InvalidPublicKey(0x02)
        );
        assert!(PublicKey::from_sec1(&[4; 64]).is_none());
        assert!(PublicKey::from_sec1(&[3; 65]).is_none());
        assert!(PublicKey::from_sec1(&[4; 65]).is_some());
    }

    #[test]
    fn a_point_off_the_curve_decodes_but_never_verifies() {
        let mut bytes = encode(&announce());
        bytes[KEY_AT + 1..KEY_AT + 65].fill(0x11);
        let d = Packet::decode(&bytes).unwrap();
        assert_eq!(d.verify(), Err(PacketError::BadSignature));
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
            let bytes = encode(&p);
            assert_eq!(bytes[NODE_AT + 1 + 6], 0, "host length");
            assert_eq!(decode_verified(&bytes).unwrap().transport_host, None);
        }
    }

    #[test]
    fn a_literal_unspecified_host_from_another_implementation_reads_as_unspecified() {
        let bytes = encode(&announce());
        // Replace "192.168.1.20" (12 bytes) with "0.0.0.0".
        let host_at = NODE_AT + 1 + 6;
        let mut edited = bytes[..host_at].to_vec();
        edited.push(7);
        edited.extend_from_slice(b"0.0.0.0");
        edited.extend_from_slice(&bytes[host_at + 1 + 12..]);
        let sig = signature_len(&bytes);
        let p = decode_verified(&resign(edited, sig)).unwrap();
        assert_eq!(p.transport_host, None);
    }

    #[test]
    fn ipv6_hosts_round_trip() {
        let p = Packet {
            transport_host: Some("fe80::1:2".parse().unwrap()),
            ..announce()
        };
        assert_eq!(decode_verified(&encode(&p)).unwrap(), p);
    }

    #[test]
    fn short_packets_are_refused() {
        let good = encode(&announce());
        for len in 0..MIN_PACKET_LEN {
            let err = Packet::decode(&good[..len]).unwrap_err();
            assert!(
                matches!(err, PacketError::TooShort { .. }),
                "{len}: {err:?}"
            );
        }
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut bytes = encode(&announce());
        bytes[0] = b'X';
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(err, PacketError::BadMagic { found: *b"XADI" });
    }

    #[test]
    fn other_versions_are_refused_naming_both() {
        let mut bytes = encode(&announce());
        bytes[4] = 3;
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "discovery protocol version 3 is newer than this node's version 2"
        );
        // Version 1, the unsigned format, from a node not yet upgraded.
        let mut v1 = b"SADI\x01\x01".to_vec();
        v1.extend_from_slice(&[0; 40]);
        let err = Packet::decode(&v1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "discovery protocol version 1 is older than this node's version 2"
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
    fn oversized_packets_are_refused() {
        let mut bytes = encode(&announce());
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
        let mut bytes = encode(&announce());
        bytes[5] = 9;
        assert_eq!(
            Packet::decode(&bytes).unwrap_err(),
            PacketError::UnknownKind(9)
        );
    }

    #[test]
    fn bad_fields_are_refused_even_when_signed() {
        let good = encode(&announce());
        let sig = signature_len(&good);
        let decode_resigned = |bytes: Vec<u8>| Packet::decode(&resign(bytes, sig)).unwrap_err();

        let mut bytes = good.clone();
        bytes[NODE_AT + 1] = b' ';
        let err = decode_resigned(bytes);
        assert!(matches!(err, PacketError::InvalidNodeId(_)), "{err:?}");

        let mut bytes = good.clone();
        bytes[NODE_AT] = 200;
        let err = decode_resigned(bytes);
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
        bytes[NODE_AT] = 0;
        let err = decode_resigned(bytes);
        assert!(matches!(err, PacketError::InvalidNodeId(_)), "{err:?}");

        let host_at = NODE_AT + 1 + 6;
        let mut bytes = good.clone();
        bytes[host_at + 1] = b'x';
        let err = decode_resigned(bytes);
        assert_eq!(err, PacketError::InvalidHost("x92.168.1.20".into()));

        let name_at = host_at + 1 + 12;
        let mut bytes = good.clone();
        bytes[name_at + 1] = 0xFF;
        let err = decode_resigned(bytes);
        assert_eq!(
            err,
            PacketError::InvalidUtf8 {
                field: "display name"
            }
        );

        // A display name running into the signature leaves too little of it.
        let mut bytes = good.clone();
        bytes[name_at] = 100;
        let err = Packet::decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PacketError::SignatureLength { .. } | PacketError::Truncated { .. }
            ),
            "{err:?}"
        );

        let mut bytes = good.clone();
        bytes[name_at] = 255;
        let err = Packet::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            PacketError::Truncated {
                field: "display name"
            }
        );

        let mut bytes = good;
        bytes[30] = 0;
        bytes[31] = 0;
        let err = decode_resigned(bytes);
        assert_eq!(err, PacketError::MissingPort(PacketKind::Announce));
    }

    #[test]
    fn probes_may_carry_port_zero_announcements_may_not() {
        let probe = Packet {
            kind: PacketKind::Probe,
            transport_port: 0,
            ..announce()
        };
        assert_eq!(decode_verified(&encode(&probe)).unwrap(), probe);
        let bad = Packet {
            transport_port: 0,
            ..announce()
        };
        assert_eq!(
            bad.encode(identity()).unwrap_err(),
            PacketError::MissingPort(PacketKind::Announce)
        );
    }

    #[test]
    fn encode_refuses_what_the_format_cannot_carry() {
        let p = Packet {
            node_id: "bad id".into(),
            ..announce()
        };
        assert!(matches!(
            p.encode(identity()),
            Err(PacketError::InvalidNodeId(_))
        ));
        let p = Packet {
            display_name: "x".repeat(256),
            ..announce()
        };
        assert!(matches!(
            p.encode(identity()),
            Err(PacketError::FieldTooLong { .. })
        ));
        let longest = Packet {
            node_id: "n".repeat(MAX_NODE_ID_LEN),
            transport_host: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                    .parse()
                    .unwrap(),
            ),
            display_name: "d".repeat(MAX_DISPLAY_NAME_LEN),
            counter: u64::MAX,
            timestamp_ms: u64::MAX,
            instance_id: u64::MAX,
            ..announce()
        };
        let bytes = encode(&longest);
        assert!(bytes.len() <= MAX_PACKET_LEN);
        assert_eq!(decode_verified(&bytes).unwrap(), longest);
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
            (kind(), node_id(), any::<u64>(), any::<u64>(), any::<u64>()),
            (host(), 1..=u16::MAX, any::<u16>(), ".{0,80}"),
        )
            .prop_map(
                |((kind, node_id, instance_id, counter, timestamp_ms), (host, port, tv, name))| {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Ok(d) = Packet::decode(&bytes) {
                let _ = d.verify();
            }
        }

        #[test]
        fn random_bodies_behind_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..700)
        ) {
            let mut bytes = b"SADI\x02".to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(d) = Packet::decode(&bytes) {
                let _ = d.verify();
            }
        }

        #[test]
        fn mutated_packets_never_panic_and_never_verify(
            p in packet(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let good = encode(&p);
            let mut bytes = good.clone();
            for (at, value) in edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(d) = Packet::decode(&bytes)
                && d.verify().is_ok()
            {
                // Only an edit that changed nothing that is signed can still verify.
                let original = Packet::decode(&good).unwrap();
                prop_assert_eq!(d.signed_bytes(), original.signed_bytes());
            }
        }

        #[test]
        fn encode_then_decode_round_trips(p in packet()) {
            let bytes = encode(&p);
            prop_assert!(bytes.len() <= MAX_PACKET_LEN);
            let mut expected = p.clone();
            expected.transport_host = p.transport_host.filter(|ip| !ip.is_unspecified());
            prop_assert_eq!(decode_verified(&bytes).unwrap(), expected);
        }
    }
}
