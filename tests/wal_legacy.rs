//! A WAL written by the single-file format (version 1), kept as a fixture
//! (tests/fixtures/legacy-v1.wal, described in tests/fixtures/README.md), opens and replays
//! without loss, and is carried forward as the first segment of the log: read-only, new
//! records in segment files after it, emptied (it stays as the lock file) once a snapshot
//! covers it.

use std::path::{Path, PathBuf};

use softadastra::store::{ReplayObserver, Store, StoreOptions};
use softadastra::sync::marks::{self, MarkKind};
use softadastra::wal::{RecordType, ScannedRecord, Wal, WalOptions};

const FIXTURE: &[u8] = include_bytes!("fixtures/legacy-v1.wal");
/// The size of the file as the old code left it: its preallocation.
const PREALLOCATED: usize = 1024 * 1024;

/// The sync marks replayed.
#[derive(Default)]
struct Marks(Vec<(MarkKind, Vec<(u64, u64)>)>);

impl ReplayObserver for Marks {
    fn record(&mut self, record: &ScannedRecord<'_>) -> Result<(), String> {
        assert_eq!(record.record_type, RecordType::SyncMarks);
        self.0.push(marks::decode(record.payload)?);
        Ok(())
    }
}

fn options(path: &Path) -> StoreOptions {
    StoreOptions::new("node-a", Some(path.to_path_buf()), true)
}

/// The fixture in a fresh directory, with or without its preallocated zeros.
fn install(padded: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.wal");
    let mut image = FIXTURE.to_vec();
    if padded {
        image.resize(PREALLOCATED, 0);
    }
    std::fs::write(&path, &image).unwrap();
    (dir, path)
}

/// Checks the store holds exactly what the fixture's six records leave.
fn check_fixture_content(store: &Store, marks: &Marks) {
    assert_eq!(store.get("gamma").as_deref(), Some(&b"three"[..]));
    assert_eq!(store.get("delta"), Some(vec![0xd5; 300]));
    assert_eq!(store.get("alpha"), None);
    assert_eq!(store.get("beta"), None);
    // The removes left tombstones, with the numbers they were written under.
    let alpha = store.entry("alpha").expect("alpha's tombstone");
    assert!(alpha.value.is_none());
    assert_eq!(alpha.origin_seq, 4);
    let beta = store.entry("beta").expect("beta's tombstone");
    assert!(beta.value.is_none());
    assert_eq!(beta.origin_seq, 5);
    assert_eq!(store.entry("delta").unwrap().origin_seq, 6);
    assert_eq!(store.len(), 2);
    assert_eq!(store.next_seq(), 7);
    assert_eq!(marks.0, vec![(MarkKind::Acknowledged, vec![(1, 2)])]);
}

#[test]
fn a_single_file_wal_of_format_version_1_replays_its_records() {
    for padded in [false, true] {
        let (_dir, path) = install(padded);
        let mut marks = Marks::default();
        let store = Store::open_with(&options(&path), None, &mut marks).unwrap();
        let recovery = store.recovery().unwrap();
        assert_eq!(recovery.records, 6, "padded: {padded}");
        assert_eq!(recovery.last_sequence, 6);
        assert_eq!(recovery.torn_bytes, 0);
        check_fixture_content(&store, &marks);
    }
}

/// The names of the files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_version_1_log_is_carried_forward_read_only_with_new_records_in_segments() {
    for padded in [false, true] {
        let (dir, path) = install(padded);
        let before = std::fs::read(&path).unwrap();
        let store = Store::open_with(&options(&path), None, &mut Marks::default()).unwrap();
        store.put("epsilon", b"five").unwrap();
        store.remove("gamma").unwrap();
        drop(store);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the version 1 file is not written to"
        );
        assert_eq!(
            files(dir.path()),
            ["node.wal", "node.wal.00000000000000000007"],
            "new records go to a segment that continues the numbering"
        );
        for _ in 0..2 {
            let mut marks = Marks::default();
            let store = Store::open_with(&options(&path), None, &mut marks).unwrap();
            assert_eq!(store.recovery().unwrap().records, 8);
            assert_eq!(store.get("epsilon").as_deref(), Some(&b"five"[..]));
            assert_eq!(store.get("gamma"), None);
            assert_eq!(store.get("delta"), Some(vec![0xd5; 300]));
            assert_eq!(store.entry("gamma").unwrap().origin_seq, 8);
            assert_eq!(store.next_seq(), 9);
            assert_eq!(marks.0, vec![(MarkKind::Acknowledged, vec![(1, 2)])]);
        }
    }
}

/// Once a snapshot covers the version 1 file's records, removing segments empties it (it
/// stays as the lock file) and the log reopens from the snapshot's end.
#[test]
fn a_version_1_log_is_emptied_when_a_snapshot_covers_it() {
    let (dir, path) = install(true);
    let (wal, recovery) = Wal::open(&path, |_| Ok(())).unwrap();
    assert_eq!(recovery.records, 6);
    let segments = wal.segments();
    assert_eq!(segments.len(), 2);
    assert!(segments[0].legacy);
    assert_eq!(
        (segments[0].first_sequence, segments[0].last_sequence),
        (1, Some(6))
    );
    assert_eq!(segments[1].first_sequence, 7);
    wal.append(RecordType::SyncMarks, true, |_, out| {
        out.extend_from_slice(&marks::encode(MarkKind::Acknowledged, &[(3, 3)]));
    })
    .unwrap();
    assert_eq!(wal.remove_segments_through(5).unwrap(), 0);
    assert_eq!(wal.remove_segments_through(6).unwrap(), 1);
    drop(wal);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(
        files(dir.path()),
        ["node.wal", "node.wal.00000000000000000007"]
    );
    let options = WalOptions {
        skip_through: 6,
        ..WalOptions::default()
    };
    let mut seen = Vec::new();
    let (_wal, _) = Wal::open_with(&path, options, |r| {
        seen.push(r.sequence);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![7]);
}

/// The last record of a version 1 log torn: cut off as before segments existed, the rest
/// carried forward.
#[test]
fn a_torn_version_1_log_is_cut_and_carried_forward() {
    let (_dir, path) = install(false);
    std::fs::write(&path, &FIXTURE[..FIXTURE.len() - 100]).unwrap();
    let store = Store::open_with(&options(&path), None, &mut Marks::default()).unwrap();
    let recovery = store.recovery().unwrap();
    assert_eq!(recovery.records, 5);
    assert!(recovery.torn_bytes > 0);
    assert_eq!(store.get("delta"), None);
    assert_eq!(store.next_seq(), 6);
    store.put("delta", b"again").unwrap();
    drop(store);
    let store = Store::open_with(&options(&path), None, &mut Marks::default()).unwrap();
    assert_eq!(store.get("delta").as_deref(), Some(&b"again"[..]));
    assert_eq!(store.get("gamma").as_deref(), Some(&b"three"[..]));
}

/// A damaged record in the middle of a version 1 log is corruption naming the file and the
/// record's offset, and nothing is written.
#[test]
fn a_damaged_version_1_log_is_refused_naming_file_and_offset() {
    let (dir, path) = install(true);
    let mut image = std::fs::read(&path).unwrap();
    // Record 3 starts at byte 159 (tests/fixtures/README.md lists the records).
    image[159 + 30] ^= 0x20;
    std::fs::write(&path, &image).unwrap();
    let err = Store::open_with(&options(&path), None, &mut Marks::default())
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("byte offset 159"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), image);
    assert_eq!(files(dir.path()), ["node.wal"], "no segment was created");
}
