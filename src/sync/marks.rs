//! Sync progress in the WAL (record type 2): which local operations a peer acknowledged,
//! and which failed operations the application gave up on. Pure encoding.
//!
//! ```text
//! u8  payload version = 1
//! u8  kind: 1 acknowledged, 2 abandoned
//! u32 range count
//! per range: u64 first, u64 last (origin sequence numbers, inclusive)
//! ```
//! With `auto_flush`, marks are synced like any write: an acknowledged operation is never
//! sent again, even after a crash.

const PAYLOAD_VERSION: u8 = 1;

/// What a mark says about its operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Acknowledged = 1,
    Abandoned = 2,
}

/// Encodes a mark for `ranges` (inclusive; merged here).
pub fn encode(kind: MarkKind, ranges: &[(u64, u64)]) -> Vec<u8> {
    let ranges = crate::store::merge_ranges(ranges.to_vec());
    let mut out = Vec::with_capacity(6 + ranges.len() * 16);
    out.push(PAYLOAD_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (first, last) in ranges {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
    }
    out
}

/// Decodes a marks payload into its kind and ranges.
pub fn decode(payload: &[u8]) -> Result<(MarkKind, Vec<(u64, u64)>), String> {
    if payload.len() < 6 {
        return Err("sync marks payload truncated".into());
    }
    if payload[0] != PAYLOAD_VERSION {
        return Err(format!("unsupported sync marks version {}", payload[0]));
    }
    let kind = match payload[1] {
        1 => MarkKind::Acknowledged,
        2 => MarkKind::Abandoned,
        other => return Err(format!("unknown sync mark kind {other}")),
    };
    let count = u32::from_le_bytes(payload[2..6].try_into().expect("4 bytes")) as usize;
    let body = &payload[6..];
    if body.len() != count.saturating_mul(16) {
        return Err(format!(
            "sync marks payload holds {} bytes for {count} ranges",
            body.len()
        ));
    }
    let ranges = body
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
            )
        })
        .collect();
    Ok((kind, ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_as_merged_ranges() {
        let payload = encode(
            MarkKind::Acknowledged,
            &[(5, 5), (1, 2), (3, 3), (9, 10), (2, 2)],
        );
        assert_eq!(
            decode(&payload).unwrap(),
            (MarkKind::Acknowledged, vec![(1, 3), (5, 5), (9, 10)])
        );
    }

    #[test]
    fn malformed_marks_are_rejected() {
        let mut payload = encode(MarkKind::Abandoned, &[(1, 1)]);
        payload.pop();
        assert!(decode(&payload).unwrap_err().contains("ranges"));
        assert!(decode(&[1, 7, 0, 0, 0, 0]).unwrap_err().contains("kind 7"));
    }
}
