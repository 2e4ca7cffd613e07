//! The WAL's segments on the simulated disk: rotation, removal, holes, snapshots, records
//! that never span segments, and power cuts during rotation and removal.

use std::path::PathBuf;

use proptest::prelude::*;

use super::format::{self, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::*;

/// Only named in messages: the data lives in the [`MemDir`].
fn path() -> PathBuf {
    PathBuf::from("/simulated/node.wal")
}

fn options(segment_size: u64, skip_through: u64) -> WalOptions {
    WalOptions {
        segment_size,
        skip_through,
    }
}

/// Replayed records: (sequence number, payload).
type Replayed = Vec<(u64, Vec<u8>)>;

fn open(dir: &MemDir, options: WalOptions) -> Result<(Wal, Replayed, Recovery), WalError> {
    let mut seen = Vec::new();
    let (wal, recovery) = Wal::open_with_dir(&path(), Box::new(dir.clone()), options, |r| {
        seen.push((r.sequence, r.payload.to_vec()));
        Ok(())
    })?;
    Ok((wal, seen, recovery))
}

/// A payload that says which record it is.
fn payload(sequence: u64, len: usize) -> Vec<u8> {
    let mut p = sequence.to_le_bytes().to_vec();
    p.resize(len.max(8), (sequence % 251) as u8);
    p
}

fn append(wal: &Wal, sequence: u64, len: usize, durable: bool) -> Result<u64, WalError> {
    wal.append(RecordType::StoreOps, durable, |s, out| {
        assert_eq!(s, sequence, "records are numbered in order");
        out.extend_from_slice(&payload(sequence, len));
    })
}

fn records(range: std::ops::RangeInclusive<u64>, len: usize) -> Replayed {
    range.map(|s| (s, payload(s, len))).collect()
}

/// The (first, last) of every file of the log.
fn ranges(wal: &Wal) -> Vec<(u64, Option<u64>)> {
    wal.segments()
        .iter()
        .map(|s| (s.first_sequence, s.last_sequence))
        .collect()
}

/// A log of segments 1..=3, 4..=6, 7..=9 and the active one 10..=12 (records of 100 bytes).
fn four_segments(dir: &MemDir) -> Wal {
    let (wal, _, _) = open(dir, WalOptions::default()).unwrap();
    for s in 1..=12 {
        append(&wal, s, 100, true).unwrap();
        if s % 3 == 0 && s < 12 {
            assert_eq!(wal.rotate().unwrap(), s + 1);
        }
    }
    assert_eq!(
        ranges(&wal),
        vec![
            (1, Some(3)),
            (4, Some(6)),
            (7, Some(9)),
            (10, Some(12))
        ]
    );
    wal
}

/// Every power cut worth trying on `dir`: keep each number of pending changes, tearing the
/// next one (when a write) at its start, after one byte, in the middle and before its end.
fn every_cut(dir: &MemDir) -> Vec<PowerCut> {
    let pending = dir.pending_writes();
    let mut cuts = Vec::new();
    for kept_writes in 0..=pending.len() {
        let len = pending.get(kept_writes).copied().unwrap_or(0);
        let mut tears = vec![0, 1, len / 2, len.saturating_sub(1)];
        tears.retain(|&t| t < len.max(1));
        tears.dedup();
        for torn_bytes in tears {
            cuts.push(PowerCut {
                kept_writes,
                torn_bytes,
            });
        }
    }
    cuts
}

#[test]
fn records_round_trip_across_many_segments_and_reopen() {
    let dir = MemDir::new();
    let (wal, seen, recovery) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
    assert!(seen.is_empty());
    assert!(recovery.created);
    for s in 1..=100 {
        append(&wal, s, 300, s % 3 == 0).unwrap();
    }
    wal.flush().unwrap();
    let segments = wal.segments();
    assert!(segments.len() > 5, "{} segments", segments.len());
    // Contiguous, and named after their first record.
    for pair in segments.windows(2) {
        assert_eq!(
            pair[0].last_sequence.unwrap() + 1,
            pair[1].first_sequence,
            "{segments:?}"
        );
        assert_eq!(pair[1].path, segment_path(&path(), pair[1].first_sequence));
    }
    assert_eq!(segments.last().unwrap().last_sequence, Some(100));
    assert_eq!(
        wal.disk_bytes(),
        segments.iter().map(|s| s.bytes).sum::<u64>()
    );
    drop(wal);
    let (wal, seen, recovery) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
    assert_eq!(seen, records(1..=100, 300));
    assert_eq!(recovery.segments, segments.len());
    assert_eq!(recovery.last_sequence, 100);
    assert_eq!(append(&wal, 101, 10, true).unwrap(), 101);
}

#[test]
fn rotation_and_removal_round_trip() {
    let dir = MemDir::new();
    let (wal, _, _) = open(&dir, WalOptions::default()).unwrap();
    for s in 1..=10 {
        append(&wal, s, 50, s % 2 == 0).unwrap();
    }
    // Buffered records are written and synced by the rotation.
    append(&wal, 11, 50, false).unwrap();
    assert_eq!(wal.rotate().unwrap(), 12);
    assert_eq!(ranges(&wal), vec![(1, Some(11)), (12, None)]);
    // Rotating an empty segment keeps it.
    assert_eq!(wal.rotate().unwrap(), 12);
    assert_eq!(ranges(&wal), vec![(1, Some(11)), (12, None)]);
    for s in 12..=15 {
        append(&wal, s, 50, true).unwrap();
    }
    // Nothing is removed while a segment holds a record after `through`.
    assert_eq!(wal.remove_segments_through(10).unwrap(), 0);
    assert_eq!(wal.remove_segments_through(11).unwrap(), 1);
    assert_eq!(ranges(&wal), vec![(12, Some(15))]);
    // The active segment is never removed.
    assert_eq!(wal.remove_segments_through(1000).unwrap(), 0);
    assert_eq!(dir.image().len(), 2, "the lock file and one segment");
    drop(wal);

    let (wal, seen, recovery) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 11)).unwrap();
    assert_eq!(seen, records(12..=15, 50));
    assert_eq!(recovery.records, 4);
    assert_eq!(append(&wal, 16, 50, true).unwrap(), 16);
    drop(wal);
    // Without the snapshot, the records it covered are missing.
    let err = open(&dir, WalOptions::default()).err().expect("must fail");
    assert!(
        matches!(err, WalError::MissingRecords { first: 1, last: 11, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("missing records 1 to 11"), "{err}");
}

#[test]
fn a_missing_middle_segment_is_reported_naming_the_gap() {
    let dir = MemDir::new();
    drop(four_segments(&dir));
    let mut image = dir.image();
    image.remove(&WalFile::Segment(4)).unwrap();
    let damaged = MemDir::from_image(image.clone());
    let err = open(&damaged, WalOptions::default())
        .err()
        .expect("a hole must not be skipped");
    match &err {
        WalError::MissingRecords { first, last, .. } => assert_eq!((*first, *last), (4, 6)),
        other => panic!("expected missing records, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("missing records 4 to 6"), "{msg}");
    assert!(
        msg.contains(&segment_path(&path(), 7).display().to_string()),
        "the message names the segment after the hole: {msg}"
    );
    assert_eq!(damaged.image(), image, "a failed open changes nothing");
    // A snapshot covering only part of the hole does not make it good.
    assert!(matches!(
        open(&damaged, options(DEFAULT_SEGMENT_SIZE, 5)),
        Err(WalError::MissingRecords { first: 4, last: 6, .. })
    ));
    // One covering all of it does: the records before it are not needed.
    let (_wal, seen, _) = open(&damaged, options(DEFAULT_SEGMENT_SIZE, 6)).unwrap();
    assert_eq!(seen, records(7..=12, 100));
}

#[test]
fn the_first_segment_may_start_after_one_when_a_snapshot_covers_the_rest() {
    let dir = MemDir::new();
    let wal = four_segments(&dir);
    assert_eq!(wal.remove_segments_through(6).unwrap(), 2);
    assert_eq!(ranges(&wal), vec![(7, Some(9)), (10, Some(12))]);
    drop(wal);
    let (wal, seen, recovery) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 6)).unwrap();
    assert_eq!(seen, records(7..=12, 100));
    assert_eq!((recovery.records, recovery.skipped), (6, 0));
    drop(wal);
    // Records the snapshot covers are read but not replayed.
    let (wal, seen, recovery) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 8)).unwrap();
    assert_eq!(seen, records(9..=12, 100));
    assert_eq!((recovery.records, recovery.skipped), (4, 2));
    assert_eq!(append(&wal, 13, 100, true).unwrap(), 13);
    drop(wal);
    // A snapshot that ends before the log starts leaves records missing.
    let err = open(&dir, options(DEFAULT_SEGMENT_SIZE, 4)).err().unwrap();
    assert!(
        matches!(err, WalError::MissingRecords { first: 5, last: 6, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("snapshot ends at record 4"), "{err}");
}

#[test]
fn segments_a_snapshot_covers_are_not_read_beyond_their_header() {
    let dir = MemDir::new();
    drop(four_segments(&dir));
    // Damage a record of the second segment (4..=6).
    let record = FILE_HEADER_LEN as u64 + RECORD_HEADER_LEN as u64 + 10;
    dir.flip_bit(WalFile::Segment(4), record * 8);
    let err = open(&dir, WalOptions::default()).err().unwrap();
    match &err {
        WalError::Corrupt { path: p, offset, .. } => {
            assert_eq!(*p, segment_path(&path(), 4));
            assert_eq!(*offset, FILE_HEADER_LEN as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let (_wal, seen, recovery) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 6)).unwrap();
    assert_eq!(seen, records(7..=12, 100));
    assert_eq!(recovery.skipped, 0, "covered segments were not scanned");
    // Their headers still are checked.
    dir.flip_bit(WalFile::Segment(1), 3);
    assert!(matches!(
        open(&dir, options(DEFAULT_SEGMENT_SIZE, 6)),
        Err(WalError::BadHeader { .. })
    ));
}

#[test]
fn a_log_that_ends_before_the_snapshot_continues_after_it_without_a_hole() {
    let dir = MemDir::new();
    let (wal, _, _) = open(&dir, WalOptions::default()).unwrap();
    for s in 1..=5 {
        append(&wal, s, 20, true).unwrap();
    }
    drop(wal);
    let (wal, seen, recovery) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 9)).unwrap();
    assert!(seen.is_empty());
    assert_eq!(recovery.skipped, 5);
    assert_eq!(append(&wal, 10, 20, true).unwrap(), 10);
    assert_eq!(ranges(&wal), vec![(10, Some(10))]);
    drop(wal);
    let (_wal, seen, _) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 9)).unwrap();
    assert_eq!(seen, records(10..=10, 20));
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = MemDir::new();
    let (wal, _, _) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
    append(&wal, 1, 100, true).unwrap();
    append(&wal, 2, 3 * MIN_SEGMENT_SIZE as usize, true).unwrap();
    append(&wal, 3, 100, true).unwrap();
    assert_eq!(
        ranges(&wal),
        vec![(1, Some(1)), (2, Some(2)), (3, Some(3))]
    );
    let big = &wal.segments()[1];
    assert!(big.bytes >= 3 * MIN_SEGMENT_SIZE, "{big:?}");
    drop(wal);
    let (_wal, seen, _) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1], (2, payload(2, 3 * MIN_SEGMENT_SIZE as usize)));
}

#[test]
fn a_damaged_record_in_an_earlier_segment_is_corruption_naming_file_and_offset() {
    let dir = MemDir::new();
    drop(four_segments(&dir));
    // The last record of segment 7..=9 damaged, zeros after it: in the last segment this
    // would be a torn tail; here it is corruption.
    let last = FILE_HEADER_LEN as u64 + 2 * (RECORD_HEADER_LEN as u64 + 100);
    dir.flip_bit(WalFile::Segment(7), (last + 30) * 8);
    let err = open(&dir, WalOptions::default()).err().unwrap();
    let msg = err.to_string();
    assert!(
        matches!(&err, WalError::Corrupt { offset, .. } if *offset == last),
        "{msg}"
    );
    assert!(
        msg.contains(&segment_path(&path(), 7).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains(&format!("byte offset {last}")), "{msg}");
}

#[test]
fn a_torn_last_record_of_the_last_segment_is_cut_off() {
    let dir = MemDir::new();
    drop(four_segments(&dir));
    let last = FILE_HEADER_LEN as u64 + 2 * (RECORD_HEADER_LEN as u64 + 100);
    dir.flip_bit(WalFile::Segment(10), (last + 30) * 8);
    let (wal, seen, recovery) = open(&dir, WalOptions::default()).unwrap();
    assert_eq!(seen, records(1..=11, 100));
    assert!(recovery.torn_bytes > 0);
    assert_eq!(append(&wal, 12, 5, true).unwrap(), 12);
}

#[test]
fn a_segment_whose_header_disagrees_with_its_name_is_refused() {
    let dir = MemDir::new();
    drop(four_segments(&dir));
    let mut image = dir.image();
    let moved = image.remove(&WalFile::Segment(7)).unwrap();
    image.insert(WalFile::Segment(8), moved);
    let err = open(&MemDir::from_image(image), WalOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, WalError::BadHeader { .. }), "{err}");
    assert!(err.to_string().contains("its name says 8"), "{err}");
}

#[test]
fn options_out_of_range_are_refused() {
    for (size, skip) in [
        (MIN_SEGMENT_SIZE - 1, 0),
        (MAX_SEGMENT_SIZE + 1, 0),
        (DEFAULT_SEGMENT_SIZE, u64::MAX - 1),
    ] {
        let err = open(&MemDir::new(), options(size, skip)).err().unwrap();
        assert!(matches!(err, WalError::InvalidOptions { .. }), "{err}");
    }
}

/// A version 1 log (one file at the WAL path) of records 1..=`count`.
fn legacy_image(count: u64) -> Vec<u8> {
    let mut image = format::encode_legacy_header().to_vec();
    for s in 1..=count {
        format::encode_record(&mut image, RecordType::StoreOps, s, &payload(s, 40));
    }
    image.resize(64 * 1024, 0);
    image
}

#[test]
fn a_version_1_log_is_the_first_segment_and_is_emptied_when_a_snapshot_covers_it() {
    let dir = MemDir::from_image(DirImage::from([(WalFile::Legacy, legacy_image(4))]));
    let (wal, seen, _) = open(&dir, WalOptions::default()).unwrap();
    assert_eq!(seen, records(1..=4, 40));
    assert_eq!(append(&wal, 5, 40, true).unwrap(), 5);
    let segments = wal.segments();
    assert_eq!(ranges(&wal), vec![(1, Some(4)), (5, Some(5))]);
    assert!(segments[0].legacy);
    assert_eq!(segments[0].path, path());
    drop(wal);
    // Read-only: new records went to a segment.
    assert_eq!(dir.image()[&WalFile::Legacy], legacy_image(4));
    let (wal, seen, _) = open(&dir, WalOptions::default()).unwrap();
    assert_eq!(seen, records(1..=5, 40));
    assert_eq!(wal.remove_segments_through(4).unwrap(), 1);
    drop(wal);
    assert!(dir.image()[&WalFile::Legacy].is_empty(), "emptied, kept as the lock");
    let (_wal, seen, _) = open(&dir, options(DEFAULT_SEGMENT_SIZE, 4)).unwrap();
    assert_eq!(seen, records(5..=5, 40));
}

#[test]
fn a_power_cut_during_rotation_leaves_a_log_that_opens_with_every_durable_record() {
    let mut checked = 0;
    for buffered in [false, true] {
        for calls in 0..16 {
            let dir = MemDir::new();
            let (wal, _, _) = open(&dir, WalOptions::default()).unwrap();
            for s in 1..=5 {
                append(&wal, s, 60, true).unwrap();
            }
            let mut written = 5;
            if buffered {
                for s in 6..=8 {
                    append(&wal, s, 60, false).unwrap();
                }
                written = 8;
            }
            dir.power_off_after(calls);
            let rotated = wal.rotate();
            let acknowledged = if rotated.is_ok() { written } else { 5 };
            drop(wal);
            for cut in every_cut(&dir) {
                checked += 1;
                let ctx = format!("buffered {buffered}, {calls} calls, {cut:?}");
                let rebooted = dir.power_cut(cut);
                let (wal, seen, recovery) = open(&rebooted, WalOptions::default())
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let n = seen.len() as u64;
                assert!(
                    (acknowledged..=written).contains(&n),
                    "{ctx}: {n} records"
                );
                assert_eq!(seen, records(1..=n, 60), "{ctx}");
                assert_eq!(recovery.last_sequence, n, "{ctx}");
                assert_eq!(append(&wal, n + 1, 7, true).unwrap(), n + 1, "{ctx}");
                drop(wal);
                let (_wal, seen, _) =
                    open(&rebooted.power_cut(PowerCut::LOSE_UNSYNCED), WalOptions::default())
                        .unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
                assert_eq!(seen.len() as u64, n + 1, "{ctx}");
            }
        }
    }
    assert!(checked > 50, "{checked} cuts");
}

#[test]
fn a_power_cut_during_removal_leaves_a_log_that_opens_with_every_record_after_the_snapshot() {
    let mut checked = 0;
    for with_legacy in [false, true] {
        for calls in 0..12 {
            let dir = if with_legacy {
                MemDir::from_image(DirImage::from([(WalFile::Legacy, legacy_image(2))]))
            } else {
                MemDir::new()
            };
            let (wal, _, _) = open(&dir, WalOptions::default()).unwrap();
            let first = if with_legacy { 3 } else { 1 };
            for s in first..=12 {
                append(&wal, s, 30, true).unwrap();
                if s % 3 == 0 && s < 12 {
                    wal.rotate().unwrap();
                }
            }
            dir.power_off_after(calls);
            let removed = wal.remove_segments_through(9);
            drop(wal);
            for cut in every_cut(&dir) {
                checked += 1;
                let ctx = format!("legacy {with_legacy}, {calls} calls, {removed:?}, {cut:?}");
                let rebooted = dir.power_cut(cut);
                let (wal, seen, _) = open(&rebooted, options(DEFAULT_SEGMENT_SIZE, 9))
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(seen, records(10..=12, 30), "{ctx}");
                // What is left is contiguous: without the snapshot, either everything is
                // there or records are missing from the start only.
                let files = wal.segments();
                drop(wal);
                match open(&rebooted, WalOptions::default()) {
                    Ok((_, seen, _)) => assert_eq!(seen.len(), 12, "{ctx}"),
                    Err(WalError::MissingRecords { first: 1, last, .. }) => {
                        assert_eq!(last + 1, files[0].first_sequence, "{ctx}");
                    }
                    Err(e) => panic!("{ctx}: {e}"),
                }
            }
        }
    }
    assert!(checked > 20, "{checked} cuts");
}

#[test]
fn a_power_cut_while_appends_start_a_new_segment_keeps_every_durable_record() {
    let mut checked = 0;
    for calls in 0..24 {
        let dir = MemDir::new();
        let (wal, _, _) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
        dir.power_off_after(calls);
        let mut acknowledged = 0;
        for s in 1..=12 {
            if append(&wal, s, 900, true).is_err() {
                break;
            }
            acknowledged = s;
        }
        drop(wal);
        for cut in every_cut(&dir) {
            checked += 1;
            let ctx = format!("{calls} calls, {cut:?}");
            let (_wal, seen, _) = open(&dir.power_cut(cut), options(MIN_SEGMENT_SIZE, 0))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let n = seen.len() as u64;
            assert!(n == acknowledged || n == acknowledged + 1, "{ctx}: {n}");
            assert_eq!(seen, records(1..=n, 900), "{ctx}");
        }
    }
    assert!(checked > 50, "{checked} cuts");
}

#[test]
fn concurrent_appends_rotations_and_removals_keep_every_record_in_order() {
    let dir = MemDir::new();
    let (wal, _, _) = open(&dir, options(MIN_SEGMENT_SIZE, 0)).unwrap();
    let removed_through = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..6u8 {
            let wal = &wal;
            s.spawn(move || {
                for i in 0..150u8 {
                    wal.append(RecordType::StoreOps, i % 4 == 0, |_, out| {
                        out.extend_from_slice(&[t, i]);
                        out.extend(std::iter::repeat_n(t, 40 + usize::from(i) * 7));
                    })
                    .unwrap();
                }
            });
        }
        let (wal, removed_through) = (&wal, &removed_through);
        s.spawn(move || {
            for round in 0..40 {
                let next = wal.rotate().unwrap();
                if round % 4 == 3 {
                    // As compaction would: everything before `next` is in old segments.
                    wal.remove_segments_through(next / 2).unwrap();
                    removed_through.fetch_max(next / 2, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::yield_now();
            }
        });
    });
    wal.flush().unwrap();
    let segments = wal.segments();
    for pair in segments.windows(2) {
        assert_eq!(
            pair[0].last_sequence.map_or(pair[0].first_sequence, |l| l + 1),
            pair[1].first_sequence,
            "contiguous: {segments:?}"
        );
    }
    // The last rotation may have come after the last append: its segment is empty.
    let last = segments.iter().rev().find_map(|s| s.last_sequence);
    assert_eq!(last, Some(900), "{segments:?}");
    drop(wal);
    let start = segments[0].first_sequence;
    let (_wal, seen, _) = open(&dir, options(MIN_SEGMENT_SIZE, start - 1)).unwrap();
    assert_eq!(seen.len() as u64, 900 - (start - 1));
    assert_eq!(
        seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (start..=900).collect::<Vec<_>>()
    );
    // Each thread's records, among those kept, in the order it wrote them.
    for t in 0..6u8 {
        let mine: Vec<u8> = seen
            .iter()
            .filter(|(_, p)| p[0] == t)
            .map(|(_, p)| p[1])
            .collect();
        // A thread done early may have had all its records removed.
        assert!(mine.windows(2).all(|w| w[0] + 1 == w[1]), "thread {t}: {mine:?}");
        assert!(mine.is_empty() || mine.last() == Some(&149), "thread {t}");
    }
    assert!(
        removed_through.load(std::sync::atomic::Ordering::SeqCst) >= start - 1,
        "only covered segments were removed"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random record sizes (some larger than a segment), durable or buffered, and random
    /// rotations: every segment starts with its own header, holds whole records only and
    /// stays within the segment size unless it holds one record alone; the records read
    /// back are those written.
    #[test]
    fn records_never_span_segments(
        segment_size in MIN_SEGMENT_SIZE..4 * MIN_SEGMENT_SIZE,
        writes in prop::collection::vec((0usize..9000, any::<bool>(), 0u8..12), 1..60),
    ) {
        let dir = MemDir::new();
        let (wal, _, _) = open(&dir, options(segment_size, 0)).unwrap();
        let mut expected = Vec::new();
        for (i, &(len, durable, dice)) in writes.iter().enumerate() {
            let sequence = i as u64 + 1;
            if dice == 0 {
                prop_assert_eq!(wal.rotate().unwrap(), sequence);
            }
            append(&wal, sequence, len, durable).unwrap();
            expected.push((sequence, payload(sequence, len)));
        }
        wal.close().unwrap();
        drop(wal);
        let mut read = Vec::new();
        for (file, bytes) in dir.image() {
            let WalFile::Segment(first) = file else {
                prop_assert!(bytes.is_empty(), "the lock file stays empty");
                continue;
            };
            prop_assert_eq!(
                format::check_header(&bytes, &format::encode_segment_header(first)),
                Ok(format::FileHeader::Segment { first_sequence: first })
            );
            let mut count = 0u64;
            let summary = format::scan_from::<()>(&bytes, Some(first), |r| {
                read.push((r.sequence, r.payload.to_vec()));
                count += 1;
                Ok(())
            })
            .unwrap_or_else(|_| panic!("segment {first} scans"));
            let LogEnd::Clean { end } = summary.end else {
                panic!("segment {first} ends cleanly");
            };
            prop_assert!(
                end <= segment_size || count == 1,
                "segment {} ends at {} with {} records (size {})", first, end, count, segment_size
            );
        }
        prop_assert_eq!(&read, &expected);
        let (_wal, seen, _) = open(&dir, options(segment_size, 0)).unwrap();
        prop_assert_eq!(seen, expected);
    }
}

#[test]
fn a_snapshot_file_renamed_into_place_survives_a_power_cut_only_once_the_directory_is_synced()
{
    let dir = MemDir::new();
    let snapshots = dir.snapshot_dir();
    let mut tmp = snapshots.create("s.tmp").unwrap();
    tmp.write_at(0, b"complete").unwrap();
    tmp.sync_all().unwrap();
    snapshots.sync().unwrap();
    snapshots.rename("s.tmp", "s").unwrap();
    assert_eq!(snapshots.list().unwrap(), vec!["s".to_string()]);
    let mut read = vec![0u8; 8];
    snapshots.open("s").unwrap().read_at(0, &mut read).unwrap();
    assert_eq!(read, b"complete");
    // Before the directory sync, a power cut may undo the rename (the change is kept or
    // lost whole), never lose the synced contents.
    let lost = dir.power_cut(PowerCut::LOSE_UNSYNCED).named_files();
    assert_eq!(lost.keys().collect::<Vec<_>>(), ["s.tmp"]);
    let kept = dir.power_cut(PowerCut {
        kept_writes: 1,
        torn_bytes: 0,
    });
    assert_eq!(kept.named_files()["s"], b"complete");
    assert_eq!(kept.named_files().len(), 1);
    snapshots.sync().unwrap();
    let synced = dir.power_cut(PowerCut::LOSE_UNSYNCED).named_files();
    assert_eq!(synced.keys().collect::<Vec<_>>(), ["s"]);
    // A removal is undone the same way until the directory is synced.
    snapshots.remove("s").unwrap();
    assert!(snapshots.list().unwrap().is_empty());
    assert_eq!(dir.power_cut(PowerCut::LOSE_UNSYNCED).named_files().len(), 1);
    snapshots.sync().unwrap();
    assert!(dir.power_cut(PowerCut::LOSE_UNSYNCED).named_files().is_empty());
    // The WAL's own files are not snapshot files.
    assert_eq!(dir.image().len(), 1, "the lock file only");
}
