//! Offsets and sizes past 4 GiB in the WAL's write, roll, reopen and removal paths, through
//! the storage seam ([`SparseDir`]: files that claim gigabytes and hold only their
//! records). On a 32-bit device (armv7, `scripts/test-cross.sh armv7`) an offset or size
//! that went through a 32-bit `usize` on the way would land at the wrong place or be
//! counted wrong, and these tests would see it.

use std::path::PathBuf;

use super::format::{self, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::*;

const GIB: u64 = 1 << 30;

/// Only named in messages: the data lives in the [`SparseDir`].
fn path() -> PathBuf {
    PathBuf::from("/sparse/node.wal")
}

fn open(dir: &SparseDir, segment_size: u64, skip_through: u64) -> Result<(Wal, Vec<u64>), WalError> {
    let mut replayed = Vec::new();
    let options = WalOptions {
        segment_size,
        skip_through,
    };
    let (wal, _) = Wal::open_with_dir(&path(), Box::new(dir.clone()), options, |r| {
        replayed.push(r.sequence);
        Ok(())
    })?;
    Ok((wal, replayed))
}

/// A payload that says which record it is.
fn payload(sequence: u64, len: usize) -> Vec<u8> {
    let mut p = sequence.to_le_bytes().to_vec();
    p.resize(len, 0xa5);
    p
}

fn append(wal: &Wal, len: usize, durable: bool) -> u64 {
    wal.append(RecordType::StoreOps, durable, |s, out| {
        out.extend_from_slice(&payload(s, len));
    })
    .unwrap()
}

/// A WAL whose active segment (from record 1) holds records 1 to `last` in its first `end`
/// bytes: the state that opening a segment grown that large on a device leaves, set
/// directly, since a test can neither write nor scan gigabytes of records.
fn grown(dir: &SparseDir, segment_size: u64, end: u64, last: u64) -> Wal {
    let (wal, _) = open(dir, segment_size, 0).unwrap();
    dir.set_len(WalFile::Segment(1), end);
    {
        let mut state = wal.state.lock();
        state.next_sequence = last + 1;
        state.synced_through = last;
        state.tail_len = end;
        state.tail_has_records = true;
    }
    let mut io = wal.io.lock();
    io.active.allocated = end;
    io.active.end = end;
    io.active.last = Some(last);
    drop(io);
    wal
}

/// The record at `offset` of `file`: its sequence number and payload.
fn record_at(dir: &SparseDir, file: WalFile, offset: u64, payload_len: usize) -> (u64, Vec<u8>) {
    let bytes = dir
        .read(file, offset, RECORD_HEADER_LEN + payload_len)
        .expect("the record's bytes are there");
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, payload_len, "the record's length field");
    let sequence = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
    (sequence, bytes[RECORD_HEADER_LEN..].to_vec())
}

#[test]
fn appends_past_4_gib_land_at_their_u64_offsets() {
    let dir = SparseDir::default();
    // An odd offset, so that nothing lines up by chance.
    let end = 5 * GIB + 3;
    let wal = grown(&dir, 6 * GIB, end, 1000);

    // A durable append grows the file by a zero-filled step first.
    assert_eq!(append(&wal, 100, true), 1001);
    assert_eq!(
        record_at(&dir, WalFile::Segment(1), end, 100),
        (1001, payload(1001, 100))
    );
    let step = 64 * 1024 * 1024;
    let grown_to = 5 * GIB + step;
    assert_eq!(dir.len_of(WalFile::Segment(1)), Some(grown_to));
    let segment = &wal.segments()[0];
    assert_eq!((segment.first_sequence, segment.last_sequence), (1, Some(1001)));
    assert_eq!(segment.bytes, grown_to);
    assert_eq!(wal.disk_bytes(), grown_to);
    assert_eq!(wal.room_needed(), step);

    // A buffered one goes right after it.
    assert_eq!(append(&wal, 200, false), 1002);
    wal.flush().unwrap();
    let second = end + (RECORD_HEADER_LEN + 100) as u64;
    assert_eq!(
        record_at(&dir, WalFile::Segment(1), second, 200),
        (1002, payload(1002, 200))
    );
    assert_eq!(wal.segments()[0].last_sequence, Some(1002));
    // Nothing was written below the old end: the records did not wrap to a low offset.
    assert_eq!(dir.read(WalFile::Segment(1), 0, FILE_HEADER_LEN).unwrap()[..], {
        format::encode_segment_header(1)
    });
}

#[test]
fn a_segment_full_past_4_gib_rolls_over_and_is_counted_removed_and_skipped_whole() {
    let dir = SparseDir::default();
    let segment_size = 5 * GIB;
    let end = segment_size - 50;
    let wal = grown(&dir, segment_size, end, 7);

    // 120 bytes do not fit in the 50 left: record 8 starts segment 8.
    assert_eq!(append(&wal, 100, true), 8);
    let segments = wal.segments();
    assert_eq!(segments.len(), 2);
    assert_eq!(
        (segments[0].first_sequence, segments[0].last_sequence, segments[0].bytes),
        (1, Some(7), end)
    );
    assert_eq!((segments[1].first_sequence, segments[1].last_sequence), (8, Some(8)));
    assert_eq!(wal.disk_bytes(), end + segments[1].bytes);
    assert_eq!(
        record_at(&dir, WalFile::Segment(8), FILE_HEADER_LEN as u64, 100),
        (8, payload(8, 100))
    );
    drop(wal);

    // Reopened after a snapshot of records 1 to 7: the 5 GiB segment is only counted (its
    // header read, nothing else), segment 8 replayed; then the segment is removed.
    let (wal, replayed) = open(&dir, segment_size, 7).unwrap();
    assert_eq!(replayed, vec![8]);
    assert_eq!(wal.segments()[0].bytes, end);
    assert_eq!(wal.remove_segments_through(7).unwrap(), 1);
    assert_eq!(dir.len_of(WalFile::Segment(1)), None);
    assert_eq!(append(&wal, 10, true), 9);
}

/// Past what this process can hold in memory: 5 GiB on a 32-bit target (where a length
/// cut to 32 bits would read 1 GiB), 2^63 bytes on a 64-bit one.
const TOO_LARGE: u64 = if usize::BITS == 32 { 5 * GIB } else { 1 << 63 };

#[test]
fn a_log_file_larger_than_memory_is_refused_with_its_size() {
    let dir = SparseDir::default();
    dir.write(WalFile::Segment(1), 0, &format::encode_segment_header(1));
    dir.set_len(WalFile::Segment(1), TOO_LARGE);
    let Err(error) = open(&dir, MAX_SEGMENT_SIZE, 0) else {
        panic!("a log file of {TOO_LARGE} bytes opened");
    };
    let message = error.to_string();
    assert!(
        message.contains(&segment_path(&path(), 1).display().to_string())
            && message.contains(&format!(
                "holds {TOO_LARGE} bytes, more than a {}-bit process can read into memory",
                usize::BITS
            )),
        "{message}"
    );
}
