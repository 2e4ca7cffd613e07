//! A WAL written by the single-file format (version 1), kept as a fixture
//! (tests/fixtures/legacy-v1.wal, described in tests/fixtures/README.md), opens and replays
//! without loss.

use std::path::{Path, PathBuf};

use softadastra::store::{ReplayObserver, Store, StoreOptions};
use softadastra::sync::marks::{self, MarkKind};
use softadastra::wal::{RecordType, ScannedRecord};

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
