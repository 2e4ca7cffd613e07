//! Store operations, their validation and their encoding as WAL payloads. Pure logic.
//!
//! Payload of a `StoreOps` record (all integers little-endian):
//! ```text
//! u8  payload version = 1
//! u32 operation count
//! per operation:
//!   u8  kind (1 put, 2 remove)
//!   u64 version (hybrid clock)
//!   u8  origin node id length, then its bytes
//!   u64 origin sequence number (1, 2, 3, ... per origin node)
//!   u8  base origin length (0: the key had no entry), then its bytes and a u64 base sequence
//!   u16 key length, then its bytes (UTF-8)
//!   put only: u32 value length, then its bytes
//! ```
//! The base is the entry the writer overwrote (its origin and origin sequence number): a
//! receiver whose entry is that base knows the write followed it, and any other entry from
//! another origin means the two writes were concurrent (a conflict).

use super::StoreError;
use super::hlc::Version;
use crate::codec::Reader;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

const PAYLOAD_VERSION: u8 = 1;
const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;

/// A change to one key, as the application asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Sets `key` to `value`.
    Put {
        /// The key to set.
        key: String,
        /// Its new value.
        value: Vec<u8>,
    },
    /// Removes `key` (it leaves a tombstone, which syncs like a value).
    Remove {
        /// The key to remove.
        key: String,
    },
}

impl Change {
    /// The key the change is to.
    pub fn key(&self) -> &str {
        match self {
            Change::Put { key, .. } | Change::Remove { key } => key,
        }
    }
}

/// A change stamped with its identity (origin, origin sequence number), version and base,
/// as logged and applied. Borrowed, for the write and replay paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<'a> {
    /// The key it changes.
    pub key: &'a str,
    /// `None` is a removal (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Its hybrid-clock version, which orders it (last writer wins).
    pub version: Version,
    /// The node id of the node that made it.
    pub origin: &'a str,
    /// That node's number for it (1, 2, 3, ... per origin).
    pub origin_seq: u64,
    /// The entry this change overwrote: (origin, origin sequence number).
    pub base: Option<(&'a str, u64)>,
}

/// An owned [`Op`]: what the sync engine sends to and receives from peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The key it changes.
    pub key: String,
    /// `None` is a removal (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Its hybrid-clock version, which orders it (last writer wins).
    pub version: Version,
    /// The node id of the node that made it.
    pub origin: String,
    /// That node's number for it (1, 2, 3, ... per origin).
    pub origin_seq: u64,
    /// The entry this change overwrote: (origin, origin sequence number).
    pub base: Option<(String, u64)>,
}

impl Operation {
    /// The borrowed form, for encoding and applying without copies.
    pub fn as_op(&self) -> Op<'_> {
        Op {
            key: &self.key,
            value: self.value.as_deref(),
            version: self.version,
            origin: &self.origin,
            origin_seq: self.origin_seq,
            base: self.base.as_ref().map(|(o, s)| (o.as_str(), *s)),
        }
    }
}

impl Op<'_> {
    /// The owned form, to keep or send.
    pub fn to_operation(&self) -> Operation {
        Operation {
            key: self.key.to_string(),
            value: self.value.map(<[u8]>::to_vec),
            version: self.version,
            origin: self.origin.to_string(),
            origin_seq: self.origin_seq,
            base: self.base.map(|(o, s)| (o.to_string(), s)),
        }
    }
}

/// A key shortened for error messages.
pub(crate) fn shown_key(key: &str) -> String {
    const SHOWN: usize = 64;
    // Keys may come from a peer and errors may be logged: control characters are escaped.
    let escape = |k: &str| {
        k.chars().fold(String::new(), |mut out, c| {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            out
        })
    };
    if key.len() <= SHOWN {
        return escape(key);
    }
    let mut cut = SHOWN;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", escape(&key[..cut]))
}

/// Checks the key rules: non-empty, at most [`MAX_KEY_LEN`] bytes.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: String::new(),
            reason: "key must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey {
            key: shown_key(key),
            reason: format!(
                "key is {} bytes long (limit {MAX_KEY_LEN} bytes)",
                key.len()
            ),
        });
    }
    Ok(())
}

/// A key received as bytes (from C or C++): must be UTF-8 and follow [`validate_key`].
pub fn key_from_bytes(key: &[u8]) -> Result<&str, StoreError> {
    let key = std::str::from_utf8(key).map_err(|e| StoreError::InvalidKey {
        key: shown_key(&String::from_utf8_lossy(key)),
        reason: format!(
            "key is not valid UTF-8 (invalid byte at index {})",
            e.valid_up_to()
        ),
    })?;
    validate_key(key)?;
    Ok(key)
}

/// Checks a change's key and value size.
pub fn validate_change(change: &Change) -> Result<(), StoreError> {
    validate_key(change.key())?;
    if let Change::Put { key, value } = change
        && value.len() > MAX_VALUE_LEN
    {
        return Err(StoreError::ValueTooLarge {
            key: shown_key(key),
            size: value.len(),
        });
    }
    Ok(())
}

/// Appends the encoding of `ops` to `out`.
pub fn encode_ops<'a>(out: &mut Vec<u8>, ops: impl ExactSizeIterator<Item = Op<'a>>) {
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        out.push(if op.value.is_some() {
            KIND_PUT
        } else {
            KIND_REMOVE
        });
        out.extend_from_slice(&op.version.0.to_le_bytes());
        out.push(op.origin.len() as u8);
        out.extend_from_slice(op.origin.as_bytes());
        out.extend_from_slice(&op.origin_seq.to_le_bytes());
        match op.base {
            Some((origin, seq)) => {
                out.push(origin.len() as u8);
                out.extend_from_slice(origin.as_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(op.key.len() as u16).to_le_bytes());
        out.extend_from_slice(op.key.as_bytes());
        if let Some(value) = op.value {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
}

/// Decodes a payload, calling `apply` for each operation in order. The error text describes
/// what is malformed; the WAL adds the file and offset.
pub fn decode_ops(payload: &[u8], mut apply: impl FnMut(Op<'_>)) -> Result<(), String> {
    let mut r = Reader::new(payload, "store payload");
    let version = r.u8("payload version")?;
    if version != PAYLOAD_VERSION {
        return Err(format!("unsupported store payload version {version}"));
    }
    let count = r.u32("operation count")?;
    for _ in 0..count {
        let kind = r.u8("operation kind")?;
        let version = Version(r.u64("version")?);
        let origin_len = r.u8("origin length")? as usize;
        let origin = r.str(origin_len, "origin")?;
        let origin_seq = r.u64("origin sequence number")?;
        let base = match r.u8("base origin length")? as usize {
            0 => None,
            len => Some((r.str(len, "base origin")?, r.u64("base sequence number")?)),
        };
        let key_len = r.u16("key length")? as usize;
        let key = r.str(key_len, "key")?;
        let value = match kind {
            KIND_PUT => {
                let len = r.u32("value length")? as usize;
                Some(r.take(len, "value")?)
            }
            KIND_REMOVE => None,
            other => return Err(format!("unknown operation kind {other}")),
        };
        apply(Op {
            key,
            value,
            version,
            origin,
            origin_seq,
            base,
        });
    }
    if r.remaining() > 0 {
        return Err(format!(
            "{} unexpected bytes after the operations",
            r.remaining()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_including_tombstones_and_binary_values() {
        let ops = vec![
            Op {
                key: "a/1",
                value: Some(b"x\0y"),
                version: Version(7),
                origin: "node-a",
                origin_seq: 3,
                base: Some(("node-b", 9)),
            },
            Op {
                key: "a/2",
                value: None,
                version: Version(8),
                origin: "node-b",
                origin_seq: 4,
                base: None,
            },
        ];
        let mut buf = Vec::new();
        encode_ops(&mut buf, ops.clone().into_iter());
        let mut decoded = Vec::new();
        decode_ops(&buf, |op| decoded.push(op.to_operation())).unwrap();
        let expected: Vec<_> = ops.iter().map(Op::to_operation).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn truncated_payload_is_rejected_with_the_field_name() {
        let mut buf = Vec::new();
        let op = Op {
            key: "k",
            value: Some(b"value"),
            version: Version(1),
            origin: "n",
            origin_seq: 1,
            base: None,
        };
        encode_ops(&mut buf, std::iter::once(op));
        let err = decode_ops(&buf[..buf.len() - 2], |_| {}).unwrap_err();
        assert!(err.contains("value"), "{err}");
    }

    #[test]
    fn key_rules_name_the_limit() {
        assert!(validate_key("ok").is_ok());
        let empty = validate_key("").unwrap_err().to_string();
        assert!(empty.contains("must not be empty"), "{empty}");
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let msg = validate_key(&long).unwrap_err().to_string();
        assert!(
            msg.contains("1025 bytes") && msg.contains("limit 1024"),
            "{msg}"
        );
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
        let msg = key_from_bytes(b"a\xffb").unwrap_err().to_string();
        assert!(msg.contains("not valid UTF-8"), "{msg}");
    }

    #[test]
    fn oversized_value_is_rejected_with_key_and_limit() {
        let change = Change::Put {
            key: "big".into(),
            value: vec![0; MAX_VALUE_LEN + 1],
        };
        let msg = validate_change(&change).unwrap_err().to_string();
        assert!(msg.contains("big") && msg.contains("16777216"), "{msg}");
    }
}
