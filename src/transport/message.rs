//! Protocol messages and their payload encoding (see docs/protocol.md). Pure logic: decoding
//! never panics, whatever the bytes.

use crate::codec::Reader;
use crate::store::op::{decode_ops, encode_ops};
use crate::store::{Collected, FullPart, Operation, Version, VersionVector};
use crate::sync::session::SessionMessage;
use crate::sync::{Ack, Superseded, SyncBatch};

/// Version of the protocol spoken by this build; a peer must speak the same.
pub const PROTOCOL_VERSION: u16 = 4;

/// The message types (the frame's type byte).
pub mod kind {
    pub const HELLO: u8 = 1;
    pub const REJECT: u8 = 2;
    pub const BATCH: u8 = 3;
    pub const ACK: u8 = 4;
    pub const PING: u8 = 5;
    pub const PONG: u8 = 6;
    pub const VECTOR: u8 = 7;
    pub const CATCH_UP: u8 = 8;
    pub const CATCH_UP_DONE: u8 = 9;
    pub const VECTOR_REQUEST: u8 = 10;
    pub const FULL_CATCH_UP: u8 = 11;
    pub const FULL_CATCH_UP_DONE: u8 = 12;
}

/// The first message on every connection, in both directions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub protocol_version: u16,
    pub node_id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
    /// 0: none. Reserved so that authentication can be added without a new protocol
    /// version: a node that requires a scheme rejects a Hello without it.
    pub auth_scheme: u8,
    pub auth_data: Vec<u8>,
    /// Random per start of the sender's transport: two live connections with one node id
    /// and different instance ids are two nodes sharing an id (a cloned data directory).
    pub instance_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    /// Why the sender is about to close the connection.
    Reject(String),
    Batch(SyncBatch),
    Ack(Ack),
    Ping(u64),
    Pong(u64),
    /// "This is what I have seen; send me what I lack."
    Vector(VersionVector),
    /// Part of the answer to a Vector: operations the receiver lacks.
    CatchUp(Vec<Operation>),
    /// End of the answer: the sender's vector, to merge once every part is applied.
    CatchUpDone(VersionVector),
    /// "Send me your Vector" (the sender has operations you may lack).
    VectorRequest,
    /// Part of a full-state answer to a Vector: every entry of a key range.
    FullCatchUp(FullPart),
    /// End of a full-state answer: the sender's vector and its collected removals.
    FullCatchUpDone(VersionVector, Collected),
}

impl From<SessionMessage> for Message {
    fn from(m: SessionMessage) -> Message {
        match m {
            SessionMessage::Batch(b) => Message::Batch(b),
            SessionMessage::Ack(a) => Message::Ack(a),
            SessionMessage::Vector(v) => Message::Vector(v),
            SessionMessage::CatchUp(ops) => Message::CatchUp(ops),
            SessionMessage::CatchUpDone(v) => Message::CatchUpDone(v),
            SessionMessage::VectorRequest => Message::VectorRequest,
            SessionMessage::FullCatchUp(p) => Message::FullCatchUp(p),
            SessionMessage::FullCatchUpDone(v, c) => Message::FullCatchUpDone(v, c),
        }
    }
}

impl Message {
    /// The sync conversation's message this is, or the message itself when it belongs
    /// to the transport (Hello, Reject, Ping, Pong).
    pub fn into_session(self) -> Result<SessionMessage, Message> {
        Ok(match self {
            Message::Batch(b) => SessionMessage::Batch(b),
            Message::Ack(a) => SessionMessage::Ack(a),
            Message::Vector(v) => SessionMessage::Vector(v),
            Message::CatchUp(ops) => SessionMessage::CatchUp(ops),
            Message::CatchUpDone(v) => SessionMessage::CatchUpDone(v),
            Message::VectorRequest => SessionMessage::VectorRequest,
            Message::FullCatchUp(p) => SessionMessage::FullCatchUp(p),
            Message::FullCatchUpDone(v, c) => SessionMessage::FullCatchUpDone(v, c),
            other @ (Message::Hello(_) | Message::Reject(_) | Message::Ping(_) | Message::Pong(_)) => {
                return Err(other);
            }
        })
    }

    /// Encodes a session message as its [`Message`] would be (without copying it into
    /// one); returns its message kind.
    pub fn encode_session(m: &SessionMessage, out: &mut Vec<u8>) -> u8 {
        let mut w = Writer(out);
        match m {
            SessionMessage::Batch(b) => {
                write_batch(&mut w, b);
                kind::BATCH
            }
            SessionMessage::Ack(a) => {
                write_ack(&mut w, a);
                kind::ACK
            }
            SessionMessage::Vector(v) => {
                w.vector(v);
                kind::VECTOR
            }
            SessionMessage::CatchUp(ops) => {
                w.ops(ops);
                kind::CATCH_UP
            }
            SessionMessage::CatchUpDone(v) => {
                w.vector(v);
                kind::CATCH_UP_DONE
            }
            SessionMessage::VectorRequest => kind::VECTOR_REQUEST,
            SessionMessage::FullCatchUp(p) => {
                write_full_part(&mut w, p);
                kind::FULL_CATCH_UP
            }
            SessionMessage::FullCatchUpDone(v, c) => {
                w.vector(v);
                c.encode(w.0);
                kind::FULL_CATCH_UP_DONE
            }
        }
    }
}

fn write_full_part(w: &mut Writer<'_>, p: &FullPart) {
    for bound in [&p.after, &p.through] {
        match bound {
            Some(key) => {
                w.u8(1);
                w.str(key);
            }
            None => w.u8(0),
        }
    }
    w.ops(&p.ops);
    w.u32(p.held.len() as u32);
    for key in &p.held {
        w.str(key);
    }
}

fn read_full_part(r: &mut Reader<'_>) -> Result<FullPart, String> {
    let bound = |r: &mut Reader<'_>, what: &str| match r.u8(what)? {
        0 => Ok(None),
        1 => r.string(what).map(Some),
        other => Err(format!("{what} marker {other} is neither 0 nor 1")),
    };
    let after = bound(r, "range start")?;
    let through = bound(r, "range end")?;
    let ops = r.ops()?;
    let n = r.count("held key count", 4)?;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(r.string("held key")?);
    }
    Ok(FullPart {
        after,
        through,
        ops,
        held,
    })
}

fn write_batch(w: &mut Writer<'_>, b: &SyncBatch) {
    w.str(&b.origin);
    w.ops(&b.ops);
    w.u32(b.superseded.len() as u32);
    for s in &b.superseded {
        w.u64(s.first);
        w.u64(s.last);
        w.u64(s.version.0);
    }
}

/// An inclusive range of operation numbers: never empty, never from 0.
fn read_range(r: &mut Reader<'_>, what: &str) -> Result<(u64, u64), String> {
    let first = r.u64("range start")?;
    let last = r.u64("range end")?;
    if first == 0 || first > last {
        return Err(format!("{what} {first}..={last} is empty or starts at 0"));
    }
    Ok((first, last))
}

fn write_ack(w: &mut Writer<'_>, a: &Ack) {
    w.str(&a.origin);
    w.u32(a.ranges.len() as u32);
    for &(first, last) in &a.ranges {
        w.u64(first);
        w.u64(last);
    }
}

impl Message {
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => kind::HELLO,
            Message::Reject(_) => kind::REJECT,
            Message::Batch(_) => kind::BATCH,
            Message::Ack(_) => kind::ACK,
            Message::Ping(_) => kind::PING,
            Message::Pong(_) => kind::PONG,
            Message::Vector(_) => kind::VECTOR,
            Message::CatchUp(_) => kind::CATCH_UP,
            Message::CatchUpDone(_) => kind::CATCH_UP_DONE,
            Message::VectorRequest => kind::VECTOR_REQUEST,
            Message::FullCatchUp(_) => kind::FULL_CATCH_UP,
            Message::FullCatchUpDone(..) => kind::FULL_CATCH_UP_DONE,
        }
    }

    /// Appends the payload (without the frame header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Message::Hello(h) => {
                w.u16(h.protocol_version);
                w.str(&h.node_id);
                w.str(&h.display_name);
                w.u32(h.capabilities.len() as u32);
                for c in &h.capabilities {
                    w.str(c);
                }
                w.u8(h.auth_scheme);
                w.bytes(&h.auth_data);
                w.u64(h.instance_id);
            }
            Message::Reject(reason) => w.str(reason),
            Message::Batch(b) => write_batch(&mut w, b),
            Message::Ack(a) => write_ack(&mut w, a),
            Message::Ping(n) | Message::Pong(n) => w.u64(*n),
            Message::Vector(v) | Message::CatchUpDone(v) => w.vector(v),
            Message::CatchUp(ops) => w.ops(ops),
            Message::VectorRequest => {}
            Message::FullCatchUp(p) => write_full_part(&mut w, p),
            Message::FullCatchUpDone(v, c) => {
                w.vector(v);
                c.encode(w.0);
            }
        }
    }

    /// Decodes a payload of message type `kind`.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Message, String> {
        let mut r = Reader::new(payload, "message");
        let m = match kind {
            kind::HELLO => {
                let protocol_version = r.u16("protocol version")?;
                let node_id = r.string("node id")?;
                let display_name = r.string("display name")?;
                let n = r.count("capability count", 2)?;
                let mut capabilities = Vec::with_capacity(n);
                for _ in 0..n {
                    capabilities.push(r.string("capability")?);
                }
                let auth_scheme = r.u8("auth scheme")?;
                let auth_data = r.bytes("auth data")?.to_vec();
                let instance_id = r.u64("instance id")?;
                Message::Hello(Hello {
                    protocol_version,
                    node_id,
                    display_name,
                    capabilities,
                    auth_scheme,
                    auth_data,
                    instance_id,
                })
            }
            kind::REJECT => Message::Reject(r.string("reason")?),
            kind::BATCH => {
                let origin = r.string("origin")?;
                let ops = r.ops()?;
                let n = r.count("superseded count", 24)?;
                let mut superseded = Vec::with_capacity(n);
                for _ in 0..n {
                    let (first, last) = read_range(&mut r, "superseded range")?;
                    let version = Version(r.u64("version")?);
                    superseded.push(Superseded {
                        first,
                        last,
                        version,
                    });
                }
                Message::Batch(SyncBatch {
                    origin,
                    ops,
                    superseded,
                })
            }
            kind::ACK => {
                let origin = r.string("origin")?;
                let n = r.count("range count", 16)?;
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    ranges.push(read_range(&mut r, "acknowledged range")?);
                }
                Message::Ack(Ack { origin, ranges })
            }
            kind::PING => Message::Ping(r.u64("nonce")?),
            kind::PONG => Message::Pong(r.u64("nonce")?),
            kind::VECTOR => Message::Vector(r.vector()?),
            kind::CATCH_UP => Message::CatchUp(r.ops()?),
            kind::CATCH_UP_DONE => Message::CatchUpDone(r.vector()?),
            kind::VECTOR_REQUEST => Message::VectorRequest,
            kind::FULL_CATCH_UP => Message::FullCatchUp(read_full_part(&mut r)?),
            kind::FULL_CATCH_UP_DONE => {
                let vector = r.vector()?;
                Message::FullCatchUpDone(vector, Collected::decode(&mut r)?)
            }
            other => return Err(format!("unknown message type {other}")),
        };
        if r.remaining() > 0 {
            return Err(format!(
                "{} unexpected bytes after message type {kind}",
                r.remaining()
            ));
        }
        Ok(m)
    }
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn ops(&mut self, ops: &[Operation]) {
        let at = self.0.len();
        self.u32(0);
        encode_ops(self.0, ops.iter().map(Operation::as_op));
        let len = (self.0.len() - at - 4) as u32;
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn vector(&mut self, v: &VersionVector) {
        v.encode(self.0);
    }
}

/// The wire's own fields, read over the shared cursor.
trait WireReader<'a> {
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize, String>;
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String>;
    fn string(&mut self, what: &str) -> Result<String, String>;
    fn ops(&mut self) -> Result<Vec<Operation>, String>;
    fn vector(&mut self) -> Result<VersionVector, String>;
}

impl<'a> WireReader<'a> for Reader<'a> {
    /// A count of items of at least `min_item` bytes each: bounded by what is left, so a
    /// forged count cannot make us allocate.
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(format!("{what} {n} exceeds the message"));
        }
        Ok(n)
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)? as usize;
        Ok(self.str(n, what)?.to_string())
    }
    fn ops(&mut self) -> Result<Vec<Operation>, String> {
        let blob = self.bytes("operations")?;
        let mut ops = Vec::new();
        decode_ops(blob, |op| ops.push(op.to_operation()))?;
        Ok(ops)
    }
    fn vector(&mut self) -> Result<VersionVector, String> {
        VersionVector::decode(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_messages_encode_as_their_messages_and_convert_both_ways() {
        use crate::store::Version;
        let op = Operation {
            key: "k".into(),
            value: Some(b"v".to_vec()),
            version: Version(7),
            origin: "node-b".into(),
            origin_seq: 3,
            base: None,
        };
        let mut vector = VersionVector::new();
        vector.observe("node-b", 3, Version(7));
        let all = [
            SessionMessage::Batch(SyncBatch {
                origin: "node-b".into(),
                ops: vec![op.clone()],
                superseded: vec![Superseded {
                    first: 2,
                    last: 2,
                    version: Version(5),
                }],
            }),
            SessionMessage::Ack(Ack {
                origin: "node-a".into(),
                ranges: vec![(1, 2)],
            }),
            SessionMessage::Vector(vector.clone()),
            SessionMessage::CatchUp(vec![op]),
            SessionMessage::CatchUpDone(vector.clone()),
            SessionMessage::VectorRequest,
            SessionMessage::FullCatchUp(FullPart {
                after: None,
                through: Some("k".into()),
                ops: vec![],
                held: vec!["j".into()],
            }),
            SessionMessage::FullCatchUpDone(
                vector,
                Collected::from_parts([("node-b".to_string(), 2)], Version(9), []),
            ),
        ];
        for m in all {
            let message = Message::from(m.clone());
            let (mut direct, mut via) = (Vec::new(), Vec::new());
            let kind = Message::encode_session(&m, &mut direct);
            message.encode(&mut via);
            assert_eq!((kind, &direct), (message.kind(), &via), "{m:?}");
            assert_eq!(Message::decode(kind, &direct).unwrap(), message);
            assert_eq!(message.into_session(), Ok(m));
        }
        assert!(Message::Ping(1).into_session().is_err());
    }

    use super::*;

    fn round_trip(m: Message) {
        let mut payload = Vec::new();
        m.encode(&mut payload);
        assert_eq!(Message::decode(m.kind(), &payload).unwrap(), m);
    }

    fn op(seq: u64) -> Operation {
        Operation {
            key: format!("k{seq}"),
            value: Some(vec![0, 1, 2]),
            version: Version(seq * 100),
            origin: "node-a".into(),
            origin_seq: seq,
            base: Some(("node-b".into(), 4)),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let mut v = VersionVector::new();
        for s in [1, 2, 3, 7] {
            v.observe("node-a", s, Version(s));
        }
        round_trip(Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: "node-a".into(),
            display_name: "Node A".into(),
            capabilities: vec!["store".into(), "sync".into()],
            auth_scheme: 0,
            auth_data: vec![],
            instance_id: u64::MAX,
        }));
        round_trip(Message::Reject("no".into()));
        round_trip(Message::Batch(SyncBatch {
            origin: "node-a".into(),
            ops: vec![op(1), op(2)],
            superseded: vec![Superseded {
                first: 3,
                last: 1_000,
                version: Version(9),
            }],
        }));
        round_trip(Message::Ack(Ack {
            origin: "node-a".into(),
            ranges: vec![(1, 3), (5, u64::MAX)],
        }));
        round_trip(Message::Ping(7));
        round_trip(Message::Pong(7));
        round_trip(Message::Vector(v.clone()));
        round_trip(Message::CatchUp(vec![op(5)]));
        round_trip(Message::CatchUpDone(v.clone()));
        round_trip(Message::VectorRequest);
        round_trip(Message::FullCatchUp(FullPart {
            after: Some("a".into()),
            through: None,
            ops: vec![op(6)],
            held: vec!["b".into(), "c".into()],
        }));
        round_trip(Message::FullCatchUp(FullPart::default()));
        round_trip(Message::FullCatchUpDone(
            v,
            Collected::from_parts(
                [("node-a".to_string(), 7)],
                Version(70),
                [("node-c".to_string(), Version(60))],
            ),
        ));
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut payload = Vec::new();
        Message::Ack(Ack {
            origin: "a".into(),
            ranges: vec![(1, 2)],
        })
        .encode(&mut payload);
        for cut in 0..payload.len() {
            assert!(Message::decode(kind::ACK, &payload[..cut]).is_err());
        }
        assert!(
            Message::decode(99, &[])
                .unwrap_err()
                .contains("unknown message type")
        );
        // An empty range, or one from 0, is refused naming it.
        for (first, last) in [(5u64, 4u64), (0, 3)] {
            let mut bad = vec![1, 0, 0, 0, b'a', 1, 0, 0, 0];
            bad.extend_from_slice(&first.to_le_bytes());
            bad.extend_from_slice(&last.to_le_bytes());
            let err = Message::decode(kind::ACK, &bad).unwrap_err();
            assert!(err.contains(&format!("acknowledged range {first}..={last}")), "{err}");
        }
        // A forged count larger than the message is refused before allocating.
        let forged = [1, 0, 0, 0, b'a', 0xff, 0xff, 0xff, 0xff];
        assert!(
            Message::decode(kind::ACK, &forged)
                .unwrap_err()
                .contains("exceeds")
        );
    }
}
