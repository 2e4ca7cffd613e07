//! WAL recovery scenarios on real files: a log written, damaged in controlled ways, and
//! reopened. A torn tail (a write that never finished) is the end of the log and is cut off
//! before new appends; damage followed by valid records is corruption, reported with its
//! file and byte offset, and the file is left untouched. Also the files themselves: the
//! segments' names, rotation and removal, the lock.

use std::path::{Path, PathBuf};

use softadastra::wal::format::{FILE_HEADER_LEN, RECORD_HEADER_LEN};
use softadastra::wal::{
    Fault, FaultyDir, FileDir, RecordType, Wal, WalError, WalOptions, segment_path,
};

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(i as usize % 7)).into_bytes()
}

/// Opens the WAL and returns it with every replayed payload.
fn open(path: &Path) -> Result<(Wal, Vec<Vec<u8>>), WalError> {
    let mut seen = Vec::new();
    let (wal, _) = Wal::open(path, |r| {
        seen.push(r.payload.to_vec());
        Ok(())
    })?;
    Ok((wal, seen))
}

fn append(wal: &Wal, data: &[u8]) -> Result<u64, WalError> {
    wal.append(RecordType::StoreOps, true, |_, out| {
        out.extend_from_slice(data);
    })
}

fn write_log(path: &Path, count: u64) -> Vec<u64> {
    let (wal, seen) = open(path).unwrap();
    assert!(seen.is_empty());
    let mut offsets = Vec::new();
    let mut offset = FILE_HEADER_LEN as u64;
    for i in 1..=count {
        offsets.push(offset);
        assert_eq!(append(&wal, &payload(i)).unwrap(), i);
        offset += (RECORD_HEADER_LEN + payload(i).len()) as u64;
    }
    offsets.push(offset);
    wal.close().unwrap();
    offsets
}

fn temp_wal() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.wal");
    (dir, path)
}

/// The first segment of the WAL at `path`: where a new log's records go.
fn first_segment(path: &Path) -> PathBuf {
    segment_path(path, 1)
}

/// The names of the files in the WAL's directory, sorted.
fn files(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn records_round_trip_across_reopen_in_order() {
    let (_dir, path) = temp_wal();
    write_log(&path, 50);
    let (wal, seen) = open(&path).unwrap();
    assert_eq!(seen, (1..=50).map(payload).collect::<Vec<_>>());
    assert_eq!(append(&wal, b"next").unwrap(), 51);
}

#[test]
fn new_wal_is_preallocated_with_zeros() {
    let (_dir, path) = temp_wal();
    write_log(&path, 1);
    let len = std::fs::metadata(first_segment(&path)).unwrap().len();
    assert!(len >= 1024 * 1024, "file is {len} bytes");
    assert_eq!(
        files(&path),
        ["node.wal", "node.wal.00000000000000000001"],
        "the lock file and one segment named after its first record"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the lock file");
}

/// Cuts the last record at every byte offset, both as a short file and as a record followed
/// by the preallocated zeros, and checks the log ends before it and stays appendable.
#[test]
fn torn_tail_is_cut_at_every_byte_offset_of_the_last_record() {
    let (_dir, path) = temp_wal();
    let offsets = write_log(&path, 3);
    let segment = first_segment(&path);
    let full = std::fs::read(&segment).unwrap();
    let (last_start, last_end) = (offsets[2] as usize, offsets[3] as usize);
    for cut in last_start..last_end {
        for zero_padded in [false, true] {
            let mut image = full[..cut].to_vec();
            if zero_padded {
                image.resize(full.len(), 0);
            }
            std::fs::write(&segment, &image).unwrap();
            let (wal, seen) = open(&path).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(seen, vec![payload(1), payload(2)], "cut at {cut}");
            assert_eq!(append(&wal, b"after-tear").unwrap(), 3, "cut at {cut}");
            drop(wal);
            let (_wal, seen) = open(&path).unwrap();
            assert_eq!(seen, vec![payload(1), payload(2), b"after-tear".to_vec()]);
        }
    }
}

#[test]
fn torn_tail_cut_is_reported_in_recovery() {
    let (_dir, path) = temp_wal();
    let offsets = write_log(&path, 2);
    let segment = first_segment(&path);
    let mut image = std::fs::read(&segment).unwrap();
    let last = offsets[1] as usize;
    for b in &mut image[last + 10..offsets[2] as usize] {
        *b = 0;
    }
    std::fs::write(&segment, &image).unwrap();
    // The cut runs from the torn record to its last non-zero byte.
    let expected = image[last..last + 10]
        .iter()
        .rposition(|&b| b != 0)
        .unwrap()
        + 1;
    let (_wal, recovery) = Wal::open(&path, |_| Ok(())).unwrap();
    assert_eq!(recovery.records, 1);
    assert_eq!(recovery.torn_bytes, expected as u64);
}

#[test]
fn bit_flip_in_the_middle_is_corruption_with_its_offset() {
    let (_dir, path) = temp_wal();
    let offsets = write_log(&path, 5);
    let segment = first_segment(&path);
    let mut image = std::fs::read(&segment).unwrap();
    let victim = offsets[2] as usize + RECORD_HEADER_LEN + 3;
    image[victim] ^= 0x04;
    std::fs::write(&segment, &image).unwrap();
    let err = open(&path).err().expect("open must fail");
    match &err {
        WalError::Corrupt { offset, .. } => assert_eq!(*offset, offsets[2]),
        other => panic!("expected corruption, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&segment.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("byte offset {}", offsets[2])),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        image,
        "a failed open must not modify the file"
    );
}

#[test]
fn bit_flip_in_a_record_header_is_corruption() {
    let (_dir, path) = temp_wal();
    let offsets = write_log(&path, 4);
    let segment = first_segment(&path);
    let mut image = std::fs::read(&segment).unwrap();
    image[offsets[1] as usize + 5] ^= 0x80; // the length field of record 2
    std::fs::write(&segment, &image).unwrap();
    assert!(matches!(open(&path), Err(WalError::Corrupt { offset, .. }) if offset == offsets[1]));
}

#[test]
fn a_file_that_is_not_a_wal_is_refused_untouched() {
    let (_dir, path) = temp_wal();
    let text = b"these are somebody's notes, not a log\n".repeat(10);
    std::fs::write(&path, &text).unwrap();
    let msg = open(&path).err().expect("must fail").to_string();
    assert!(msg.contains("not a Softadastra WAL"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), text);
    assert_eq!(files(&path), ["node.wal"], "nothing created beside it");
}

#[test]
fn second_opener_is_told_the_wal_is_in_use() {
    let (_dir, path) = temp_wal();
    let (_first, _) = open(&path).unwrap();
    let err = open(&path).err().expect("second open must fail");
    assert_eq!(
        err.to_string(),
        format!("WAL {} is in use by another process", path.display())
    );
}

#[test]
fn lock_is_released_when_the_wal_is_dropped() {
    let (_dir, path) = temp_wal();
    drop(open(&path).unwrap());
    assert!(open(&path).is_ok());
}

fn faulty(path: &Path, fault: Fault) -> Wal {
    let dir = FaultyDir::new(Box::new(FileDir::open(path).unwrap()), fault);
    Wal::open_with_dir(path, Box::new(dir), WalOptions::default(), |_| Ok(()))
        .unwrap()
        .0
}

/// After a failed sync, the failing append and every later one fail; nothing is retried;
/// after reopening, every acknowledged record is there.
#[test]
fn failed_sync_poisons_the_wal_until_reopen() {
    let (_dir, path) = temp_wal();
    write_log(&path, 2);
    let wal = faulty(&path, Fault::Sync(3));
    assert_eq!(append(&wal, b"a").unwrap(), 3);
    assert_eq!(append(&wal, b"b").unwrap(), 4);
    let err = append(&wal, b"c").unwrap_err();
    assert!(err.to_string().contains("cannot sync WAL"), "{err}");
    for _ in 0..3 {
        let err = append(&wal, b"d").unwrap_err();
        assert!(matches!(err, WalError::Poisoned { .. }), "{err:?}");
        assert!(err.to_string().contains("injected sync failure"), "{err}");
    }
    assert!(matches!(wal.flush(), Err(WalError::Poisoned { .. })));
    drop(wal);
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(
        &seen[..4],
        &[payload(1), payload(2), b"a".to_vec(), b"b".to_vec()]
    );
}

/// A failed write leaves a torn record on disk; the WAL refuses writes, and a reopen cuts
/// the torn record off and keeps every acknowledged one.
#[test]
fn failed_write_poisons_the_wal_and_reopen_cuts_the_torn_record() {
    let (_dir, path) = temp_wal();
    write_log(&path, 2);
    let wal = faulty(&path, Fault::Write(2));
    assert_eq!(append(&wal, b"kept").unwrap(), 3);
    let big = vec![7u8; 4000];
    assert!(matches!(append(&wal, &big), Err(WalError::Io { .. })));
    assert!(matches!(append(&wal, b"x"), Err(WalError::Poisoned { .. })));
    drop(wal);
    let (wal, seen) = open(&path).unwrap();
    assert_eq!(seen, vec![payload(1), payload(2), b"kept".to_vec()]);
    assert_eq!(append(&wal, b"again").unwrap(), 4);
}

#[test]
fn concurrent_durable_appends_all_survive() {
    let (_dir, path) = temp_wal();
    let (wal, _) = open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let wal = &wal;
            s.spawn(move || {
                for i in 0..100u8 {
                    append(wal, &[t, i]).unwrap();
                }
            });
        }
    });
    drop(wal);
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(seen.len(), 800);
    for t in 0..8u8 {
        let mine: Vec<u8> = seen.iter().filter(|p| p[0] == t).map(|p| p[1]).collect();
        assert_eq!(
            mine,
            (0..100).collect::<Vec<u8>>(),
            "thread {t} kept its order"
        );
    }
}

#[test]
fn buffered_appends_reach_disk_on_close() {
    let (_dir, path) = temp_wal();
    let (wal, _) = open(&path).unwrap();
    for i in 0..1000u64 {
        wal.append(RecordType::StoreOps, false, |_, out| {
            out.extend_from_slice(&payload(i));
        })
        .unwrap();
    }
    wal.close().unwrap();
    assert!(matches!(
        append(&wal, b"late"),
        Err(WalError::Closed { .. })
    ));
    drop(wal);
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(seen.len(), 1000);
}

#[test]
fn log_grows_past_its_preallocation() {
    let (_dir, path) = temp_wal();
    let (wal, _) = open(&path).unwrap();
    let chunk = vec![0xabu8; 100 * 1024];
    for _ in 0..30 {
        append(&wal, &chunk).unwrap();
    }
    drop(wal);
    assert!(std::fs::metadata(first_segment(&path)).unwrap().len() >= 3 * 1024 * 1024);
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(seen.len(), 30);
    assert!(seen.iter().all(|p| p == &chunk));
}

#[test]
fn a_short_file_that_is_not_a_wal_is_refused_untouched() {
    let (_dir, path) = temp_wal();
    std::fs::write(&path, b"todo: milk").unwrap();
    let msg = open(&path).err().expect("must fail").to_string();
    assert!(msg.contains("not a Softadastra WAL"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"todo: milk");
}

#[test]
fn a_torn_header_from_an_unfinished_creation_is_started_again() {
    let (_dir, path) = temp_wal();
    let mut image = softadastra::wal::format::encode_segment_header(1)[..13].to_vec();
    image.resize(1024 * 1024, 0);
    std::fs::write(&path, b"").unwrap();
    std::fs::write(first_segment(&path), &image).unwrap();
    let (wal, seen) = open(&path).unwrap();
    assert!(seen.is_empty());
    assert_eq!(append(&wal, b"first").unwrap(), 1);
}

/// A crash while a WAL of format version 1 was created left a prefix of its header and
/// zeros at the WAL path: it holds nothing, and the log starts afresh in segments.
#[test]
fn a_torn_header_from_an_unfinished_creation_of_version_1_is_started_again() {
    let (_dir, path) = temp_wal();
    let mut image = softadastra::wal::format::encode_legacy_header()[..13].to_vec();
    image.resize(1024 * 1024, 0);
    std::fs::write(&path, &image).unwrap();
    let (wal, seen) = open(&path).unwrap();
    assert!(seen.is_empty());
    assert_eq!(append(&wal, b"first").unwrap(), 1);
    drop(wal);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied");
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(seen, vec![b"first".to_vec()]);
}

/// Segments on real files: rotation starts a file named after its first record, removal
/// deletes the old ones, and a reopen with the snapshot's end finds the rest.
#[test]
fn rotation_and_removal_on_real_files() {
    let (_dir, path) = temp_wal();
    let (wal, _) = open(&path).unwrap();
    for i in 1..=3 {
        append(&wal, &payload(i)).unwrap();
    }
    assert_eq!(wal.rotate().unwrap(), 4);
    append(&wal, &payload(4)).unwrap();
    assert_eq!(
        files(&path),
        [
            "node.wal",
            "node.wal.00000000000000000001",
            "node.wal.00000000000000000004"
        ]
    );
    assert_eq!(wal.remove_segments_through(3).unwrap(), 1);
    assert_eq!(files(&path), ["node.wal", "node.wal.00000000000000000004"]);
    drop(wal);
    let options = WalOptions {
        skip_through: 3,
        ..WalOptions::default()
    };
    let mut seen = Vec::new();
    let (_wal, recovery) = Wal::open_with(&path, options, |r| {
        seen.push(r.payload.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![payload(4)]);
    assert_eq!(recovery.last_sequence, 4);
    drop(_wal);
    let err = open(&path).err().expect("records 1 to 3 are gone");
    assert!(err.to_string().contains("missing records 1 to 3"), "{err}");
}

/// Files beside the WAL whose names only look like segments are not the WAL's.
#[test]
fn files_that_are_not_segments_are_left_alone() {
    let (_dir, path) = temp_wal();
    write_log(&path, 2);
    let dir = path.parent().unwrap();
    for name in [
        "node.wal.key",
        "node.wal.1",
        "node.wal.0000000000000000000x",
        "node.wal.99999999999999999999",
        "other.wal.00000000000000000009",
    ] {
        std::fs::write(dir.join(name), b"not a segment").unwrap();
    }
    let (_wal, seen) = open(&path).unwrap();
    assert_eq!(seen, vec![payload(1), payload(2)]);
}
