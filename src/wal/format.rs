//! The WAL's byte layout: constants, encoding and the replay scan. Pure logic, no I/O.
//!
//! The prose description lives in `docs/wal-format.md`; keep both in step.
//!
//! ```text
//! file header (32 bytes), at the start of every segment file
//!   0  8  magic "SOFTAWAL"
//!   8  4  format version (u32 LE) = 2 (1: the single-file WAL of earlier versions)
//!  12  8  version 2: the segment's first sequence number (u64 LE); version 1: zero
//!  20  8  reserved, zero
//!  28  4  CRC32 of bytes 0..28
//! record (20-byte header + payload), repeated
//!   0  4  CRC32 of bytes 4..20 of the header followed by the payload
//!   4  4  payload length (u32 LE)
//!   8  1  record type
//!   9  3  reserved, zero
//!  12  8  sequence number (u64 LE), consecutive from the segment's first
//!  20  n  payload
//! ```
//! A file is preallocated with zeros; a zero record header marks the end of its records.

/// Magic bytes at offset 0 of every WAL file.
pub const MAGIC: [u8; 8] = *b"SOFTAWAL";
/// The format version this build writes: one file per segment, its first sequence number
/// in its header.
pub const FORMAT_VERSION: u32 = 2;
/// The single-file WAL of earlier versions, which this build still reads (and carries
/// forward as the log's first segment).
pub const LEGACY_FORMAT_VERSION: u32 = 1;
/// Size of the file header.
pub const FILE_HEADER_LEN: usize = 32;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 20;
/// Largest payload a record may carry (a batch of several large values fits).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;

/// What a record holds. Unknown types are an error on replay, never skipped silently.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    /// A group of store operations applied atomically (see `store::op`).
    StoreOps = 1,
    /// Sync progress: operations acknowledged by a peer or given up (see `sync::marks`).
    SyncMarks = 2,
    /// Entries a full-state exchange showed superseded by removals a peer has collected,
    /// forgotten, with the collected frontier learned (see `store::collect`).
    StoreForget = 3,
}

impl RecordType {
    pub fn from_u8(v: u8) -> Option<RecordType> {
        match v {
            1 => Some(RecordType::StoreOps),
            2 => Some(RecordType::SyncMarks),
            3 => Some(RecordType::StoreForget),
            _ => None,
        }
    }
}

fn seal_header(mut h: [u8; FILE_HEADER_LEN]) -> [u8; FILE_HEADER_LEN] {
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The file header of a segment whose first record is numbered `first_sequence`.
pub fn encode_segment_header(first_sequence: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_sequence.to_le_bytes());
    seal_header(h)
}

/// The file header of a single-file WAL of format version 1 (never written by this build;
/// tests make old logs with it).
pub fn encode_legacy_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&LEGACY_FORMAT_VERSION.to_le_bytes());
    seal_header(h)
}

/// What a valid file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileHeader {
    /// A single-file WAL of format version 1: its records start at sequence number 1.
    Legacy,
    /// A segment (format version 2) whose first record is numbered `first_sequence`.
    Segment { first_sequence: u64 },
}

/// Why a file header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// A prefix of the expected header followed by zeros (or nothing): a file whose
    /// creation never completed.
    Incomplete,
    BadMagic,
    BadChecksum,
    UnsupportedVersion(u32),
    /// A segment header whose first sequence number no record can have (0 or the last
    /// number there is).
    BadFirstSequence(u64),
}

impl HeaderProblem {
    /// The problem in words, for an error message.
    pub fn describe(&self) -> String {
        match self {
            HeaderProblem::Incomplete => "incomplete file header".to_string(),
            HeaderProblem::BadMagic => "bad magic bytes".to_string(),
            HeaderProblem::BadChecksum => "file header checksum mismatch".to_string(),
            HeaderProblem::UnsupportedVersion(v) => format!(
                "format version {v} is not supported (this build reads versions \
                 {LEGACY_FORMAT_VERSION} and {FORMAT_VERSION})"
            ),
            HeaderProblem::BadFirstSequence(s) => {
                format!("segment header names first sequence number {s}, which no record has")
            }
        }
    }
}

/// Checks the file header at the start of `bytes`, where `expected` is the header the
/// file should have (a segment's follows from its name): only a prefix of *that* header
/// followed by zeros counts as an unfinished creation. A header that is valid but not the
/// expected one is returned for the caller to judge.
pub fn check_header(
    bytes: &[u8],
    expected: &[u8; FILE_HEADER_LEN],
) -> Result<FileHeader, HeaderProblem> {
    // An unfinished creation leaves a prefix of our own header followed by zeros (or
    // nothing); anything else in those bytes is somebody else's file, never overwritten.
    let head = &bytes[..bytes.len().min(FILE_HEADER_LEN)];
    let written = head
        .iter()
        .zip(expected.iter())
        .take_while(|(a, b)| a == b)
        .count();
    if head[written..].iter().all(|&b| b == 0) && head != expected.as_slice() {
        return Err(HeaderProblem::Incomplete);
    }
    if bytes.len() < FILE_HEADER_LEN {
        return Err(HeaderProblem::BadMagic);
    }
    let h = &bytes[..FILE_HEADER_LEN];
    if h[0..8] != MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    if crc32fast::hash(&h[0..28]) != le_u32(&h[28..32]) {
        return Err(HeaderProblem::BadChecksum);
    }
    match le_u32(&h[8..12]) {
        LEGACY_FORMAT_VERSION => Ok(FileHeader::Legacy),
        FORMAT_VERSION => match le_u64(&h[12..20]) {
            s @ (0 | u64::MAX) => Err(HeaderProblem::BadFirstSequence(s)),
            first_sequence => Ok(FileHeader::Segment { first_sequence }),
        },
        version => Err(HeaderProblem::UnsupportedVersion(version)),
    }
}

/// Checks a file header where a single-file WAL of format version 1 is expected (the file
/// at the WAL path); a valid segment header is accepted too, for the caller to judge.
pub fn check_file_header(bytes: &[u8]) -> Result<FileHeader, HeaderProblem> {
    check_header(bytes, &encode_legacy_header())
}

/// Appends one encoded record to `out`.
#[cfg(any(test, feature = "internals"))]
pub fn encode_record(out: &mut Vec<u8>, record_type: RecordType, sequence: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out.extend_from_slice(payload);
    seal_record(&mut out[start..], record_type, sequence);
}

/// Fills in the header of `record`, a header-sized gap followed by the payload, so that the
/// payload can be encoded in place without a copy.
pub fn seal_record(record: &mut [u8], record_type: RecordType, sequence: u64) {
    let payload_len = record.len() - RECORD_HEADER_LEN;
    debug_assert!(payload_len <= MAX_PAYLOAD_LEN);
    record[4..8].copy_from_slice(&(payload_len as u32).to_le_bytes());
    record[8..12].copy_from_slice(&[record_type as u8, 0, 0, 0]);
    record[12..20].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32fast::hash(&record[4..]);
    record[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// One valid record found by [`scan`].
#[derive(Debug)]
pub struct ScannedRecord<'a> {
    /// Byte offset of the record header in the file.
    pub offset: u64,
    pub record_type: RecordType,
    /// The record's sequence number ([`scan`] checked that they increase).
    #[cfg_attr(
        not(feature = "internals"),
        allow(dead_code, reason = "read by the tests' own checks of scan")
    )]
    pub sequence: u64,
    pub payload: &'a [u8],
}

/// How the log ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// The log ends at `end`; everything after it is zeros (or the end of the file).
    Clean { end: u64 },
    /// A record at `end` is incomplete or damaged and nothing but zeros follows it: a write
    /// that never finished. Bytes `end..dropped_end` must be cut off before appending.
    TornTail { end: u64, dropped_end: u64 },
}

/// Damage that is not a torn tail: valid-looking data follows it, so good data would be lost
/// by cutting there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub offset: u64,
    pub reason: String,
}

/// What can stop a scan: damage in the log, or the record callback's own error.
#[derive(Debug)]
pub enum ScanError<E> {
    Corrupt(Corruption),
    Callback(E),
}

/// The outcome of a successful scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanSummary {
    pub end: LogEnd,
    pub records: u64,
    /// The last record's number; with no record, the number before the required first
    /// (0 without one).
    pub last_sequence: u64,
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Position one past the last non-zero byte of `bytes` at or after `from`, if any.
fn last_non_zero_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| from + i + 1)
}

/// Whether a valid record header with a checksum that matches starts at `offset` and could
/// follow sequence `last_sequence` (cheap field checks first, the CRC last).
fn valid_record_at(bytes: &[u8], offset: usize, last_sequence: u64) -> bool {
    let Some(header) = bytes.get(offset..offset + RECORD_HEADER_LEN) else {
        return false;
    };
    let len = le_u32(&header[4..8]) as usize;
    let sequence = le_u64(&header[12..20]);
    let plausible = RecordType::from_u8(header[8]).is_some()
        && header[9..12] == [0, 0, 0]
        && sequence > last_sequence
        && sequence < u64::MAX
        && sequence - last_sequence <= (bytes.len() / RECORD_HEADER_LEN) as u64
        && len <= MAX_PAYLOAD_LEN
        && offset + RECORD_HEADER_LEN + len <= bytes.len();
    if !plausible {
        return false;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..]);
    hasher.update(&bytes[offset + RECORD_HEADER_LEN..offset + RECORD_HEADER_LEN + len]);
    hasher.finalize() == le_u32(&header[0..4])
}

/// Walks every record of a single-file WAL image of format version 1 (header included):
/// [`scan_from`] with no first sequence number required.
#[cfg(any(test, feature = "internals"))]
pub fn scan<E>(
    bytes: &[u8],
    on_record: impl FnMut(ScannedRecord<'_>) -> Result<(), E>,
) -> Result<ScanSummary, ScanError<E>> {
    scan_from(bytes, None, on_record)
}

/// Walks every record of a whole WAL file image (header included) in order, calling
/// `on_record` for each valid one. With `first_sequence` (a segment's, from its header;
/// at least 1) the first record must have that number; without it (a version 1 file) any
/// number from 1 on.
///
/// Where a record is incomplete or damaged, the rest of the file decides: if no valid
/// record follows it, it is a torn tail (a write that never finished) and the log ends
/// there; if a valid record follows, cutting would drop good data, so it is corruption.
pub fn scan_from<E>(
    bytes: &[u8],
    first_sequence: Option<u64>,
    mut on_record: impl FnMut(ScannedRecord<'_>) -> Result<(), E>,
) -> Result<ScanSummary, ScanError<E>> {
    let mut pos = FILE_HEADER_LEN;
    let mut records = 0u64;
    // The number before the first record's: what "the next number" is measured from.
    let mut last_sequence = first_sequence.map_or(0, |f| f.saturating_sub(1));
    loop {
        let summary = |end: LogEnd| ScanSummary {
            end,
            records,
            last_sequence,
        };
        let damaged = |reason: String| {
            let dropped_end = last_non_zero_end(bytes, pos).unwrap_or(pos);
            if (pos + 1..dropped_end).any(|at| valid_record_at(bytes, at, last_sequence)) {
                Err(ScanError::Corrupt(Corruption {
                    offset: pos as u64,
                    reason,
                }))
            } else {
                Ok(summary(LogEnd::TornTail {
                    end: pos as u64,
                    dropped_end: dropped_end as u64,
                }))
            }
        };
        let rest = &bytes[pos.min(bytes.len())..];
        if rest.iter().take(RECORD_HEADER_LEN).all(|&b| b == 0) {
            if last_non_zero_end(bytes, pos).is_none() {
                return Ok(summary(LogEnd::Clean { end: pos as u64 }));
            }
            return damaged("zeroed record header followed by data".into());
        }
        if rest.len() < RECORD_HEADER_LEN {
            return damaged("incomplete record header".into());
        }
        let header = &rest[..RECORD_HEADER_LEN];
        let payload_len = le_u32(&header[4..8]) as usize;
        if payload_len > MAX_PAYLOAD_LEN {
            return damaged(format!(
                "record length {payload_len} exceeds the limit of {MAX_PAYLOAD_LEN} bytes"
            ));
        }
        // Only after the limit check: a forged length near 4 GiB would overflow a 32-bit
        // usize here.
        let extent_end = pos + RECORD_HEADER_LEN + payload_len;
        if extent_end > bytes.len() {
            return damaged("record runs past the end of the file".into());
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[4..]);
        hasher.update(&bytes[pos + RECORD_HEADER_LEN..extent_end]);
        if hasher.finalize() != le_u32(&header[0..4]) {
            return damaged("record checksum mismatch".into());
        }
        let corrupt = |reason: String| {
            Err(ScanError::Corrupt(Corruption {
                offset: pos as u64,
                reason,
            }))
        };
        let sequence = le_u64(&header[12..20]);
        let Some(record_type) = RecordType::from_u8(header[8]) else {
            return corrupt(format!("unknown record type {}", header[8]));
        };
        // u64::MAX would leave no next sequence number for the writer (and `+ 1` below
        // would overflow on the record after it): no log ever gets there, so it is damage.
        if sequence == u64::MAX {
            return corrupt(format!("sequence number {sequence} is out of range"));
        }
        let expected = last_sequence + 1;
        let numbered = records > 0 || first_sequence.is_some();
        if (numbered && sequence != expected) || sequence == 0 {
            return corrupt(format!(
                "sequence number {sequence} where {expected} was expected"
            ));
        }
        on_record(ScannedRecord {
            offset: pos as u64,
            record_type,
            sequence,
            payload: &bytes[pos + RECORD_HEADER_LEN..extent_end],
        })
        .map_err(ScanError::Callback)?;
        records += 1;
        last_sequence = sequence;
        pos = extent_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(payloads: &[&[u8]]) -> Vec<u8> {
        let mut b = encode_legacy_header().to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(&mut b, RecordType::StoreOps, i as u64 + 1, p);
        }
        b
    }

    fn collect(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, ScanSummary), Corruption> {
        let mut out = Vec::new();
        match scan::<()>(bytes, |r| {
            out.push(r.payload.to_vec());
            Ok(())
        }) {
            Ok(s) => Ok((out, s)),
            Err(ScanError::Corrupt(c)) => Err(c),
            Err(ScanError::Callback(())) => unreachable!("callback never fails"),
        }
    }

    #[test]
    fn records_round_trip_with_zero_padding_after_them() {
        let mut b = image(&[b"one", b"", b"three"]);
        let end = b.len() as u64;
        b.resize(b.len() + 4096, 0);
        let (payloads, summary) = collect(&b).unwrap();
        assert_eq!(payloads, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(summary.end, LogEnd::Clean { end });
        assert_eq!(summary.last_sequence, 3);
    }

    #[test]
    fn header_checks_name_the_problem() {
        let h = encode_legacy_header();
        assert_eq!(check_file_header(&h), Ok(FileHeader::Legacy));
        assert_eq!(check_file_header(&h[..10]), Err(HeaderProblem::Incomplete));
        let mut torn = [0u8; FILE_HEADER_LEN];
        torn[..12].copy_from_slice(&h[..12]);
        assert_eq!(check_file_header(&torn), Err(HeaderProblem::Incomplete));
        assert_eq!(
            check_file_header(b"short note"),
            Err(HeaderProblem::BadMagic)
        );
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(check_file_header(&bad), Err(HeaderProblem::BadMagic));
        let mut bad = h;
        bad[20] = 1;
        assert_eq!(check_file_header(&bad), Err(HeaderProblem::BadChecksum));
        let mut v3 = h;
        v3[8] = 3;
        let crc = crc32fast::hash(&v3[0..28]);
        v3[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            check_file_header(&v3),
            Err(HeaderProblem::UnsupportedVersion(3))
        );
    }

    #[test]
    fn a_segment_header_carries_its_first_sequence_number() {
        let h = encode_segment_header(1234);
        assert_eq!(
            check_header(&h, &h),
            Ok(FileHeader::Segment {
                first_sequence: 1234
            })
        );
        // Another segment's header is valid, for the caller to compare with the name.
        assert_eq!(
            check_header(&h, &encode_segment_header(7)),
            Ok(FileHeader::Segment {
                first_sequence: 1234
            })
        );
        let mut torn = [0u8; FILE_HEADER_LEN];
        torn[..14].copy_from_slice(&h[..14]);
        assert_eq!(check_header(&torn, &h), Err(HeaderProblem::Incomplete));
        for bad in [0, u64::MAX] {
            let h = encode_segment_header(bad);
            assert_eq!(
                check_header(&h, &h),
                Err(HeaderProblem::BadFirstSequence(bad))
            );
        }
    }

    #[test]
    fn a_segment_scan_requires_its_first_sequence_number() {
        let mut b = encode_segment_header(100).to_vec();
        encode_record(&mut b, RecordType::StoreOps, 100, b"x");
        encode_record(&mut b, RecordType::StoreOps, 101, b"y");
        let mut seen = Vec::new();
        let summary = scan_from::<()>(&b, Some(100), |r| {
            seen.push(r.sequence);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![100, 101]);
        assert_eq!(summary.last_sequence, 101);
        let Err(ScanError::Corrupt(c)) = scan_from::<()>(&b, Some(99), |_| Ok(())) else {
            panic!("a segment starting at the wrong number must be refused");
        };
        assert_eq!(c.offset, FILE_HEADER_LEN as u64);
        assert!(c.reason.contains("99 was expected"), "{}", c.reason);
        // An empty segment: the number before its first.
        let empty = encode_segment_header(100);
        let summary = scan_from::<()>(&empty, Some(100), |_| Ok(())).unwrap();
        assert_eq!((summary.records, summary.last_sequence), (0, 99));
    }

    #[test]
    fn a_damaged_first_record_of_a_late_segment_followed_by_data_is_corruption() {
        // The plausibility check behind torn-tail detection measures from the segment's
        // first number, not from 0: far into the log, a valid record after a damaged one
        // must still be recognised.
        let first = 1_000_000_000;
        let mut b = encode_segment_header(first).to_vec();
        encode_record(&mut b, RecordType::StoreOps, first, b"aaaa");
        encode_record(&mut b, RecordType::StoreOps, first + 1, b"bbbb");
        b[FILE_HEADER_LEN + RECORD_HEADER_LEN] ^= 1;
        let Err(ScanError::Corrupt(c)) = scan_from::<()>(&b, Some(first), |_| Ok(())) else {
            panic!("damage followed by a valid record is corruption");
        };
        assert_eq!(c.offset, FILE_HEADER_LEN as u64);
    }

    #[test]
    fn damaged_record_followed_by_data_is_corruption_at_its_offset() {
        let mut b = image(&[b"aaaa", b"bbbb", b"cccc"]);
        let second = FILE_HEADER_LEN + RECORD_HEADER_LEN + 4;
        b[second + RECORD_HEADER_LEN + 1] ^= 0x10;
        let err = collect(&b).unwrap_err();
        assert_eq!(err.offset, second as u64);
        assert!(err.reason.contains("checksum"), "{}", err.reason);
    }

    #[test]
    fn damaged_last_record_is_a_torn_tail() {
        let mut b = image(&[b"aaaa", b"bbbb"]);
        let second = FILE_HEADER_LEN + RECORD_HEADER_LEN + 4;
        let len = b.len();
        b[len - 1] ^= 0xff;
        b.resize(len + 100, 0);
        let (payloads, summary) = collect(&b).unwrap();
        assert_eq!(payloads.len(), 1);
        assert_eq!(
            summary.end,
            LogEnd::TornTail {
                end: second as u64,
                dropped_end: len as u64
            }
        );
    }

    #[test]
    fn the_last_possible_sequence_number_is_corruption_not_an_overflow() {
        let mut b = encode_legacy_header().to_vec();
        encode_record(&mut b, RecordType::StoreOps, u64::MAX, b"x");
        encode_record(&mut b, RecordType::StoreOps, 0, b"y");
        let err = collect(&b).unwrap_err();
        assert_eq!(err.offset, FILE_HEADER_LEN as u64);
        assert!(err.reason.contains("out of range"), "{}", err.reason);
    }

    #[test]
    fn out_of_order_sequence_is_corruption() {
        let mut b = encode_legacy_header().to_vec();
        encode_record(&mut b, RecordType::StoreOps, 1, b"x");
        encode_record(&mut b, RecordType::StoreOps, 3, b"y");
        let err = collect(&b).unwrap_err();
        assert!(err.reason.contains("sequence number 3"), "{}", err.reason);
    }
}
