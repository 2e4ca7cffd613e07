//! Store behaviour a user relies on: versions, tombstones, atomic batches, limits, and a
//! clock that never goes backwards across restarts.

use softadastra::store::{
    Change, MAX_KEY_LEN, MAX_VALUE_LEN, Store, StoreError, StoreOptions, Version,
};
use softadastra::wal::format::{self, RecordType};

fn options(dir: &tempfile::TempDir) -> StoreOptions {
    StoreOptions::new("node-a", Some(dir.path().join("node-a.wal")), true)
}

#[test]
fn remove_leaves_a_tombstone_with_a_newer_version_that_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(&dir)).unwrap();
    let put = store.put("k", b"v").unwrap().last_version();
    let removed = store.remove("k").unwrap().last_version();
    assert!(removed > put);
    let entry = store.entry("k").unwrap();
    assert_eq!(
        (entry.value, entry.version, &*entry.origin),
        (None, removed, "node-a")
    );
    assert_eq!(store.len(), 0);
    drop(store);
    let store = Store::open(&options(&dir)).unwrap();
    let entry = store.entry("k").expect("tombstone is replayed");
    assert_eq!((entry.value, entry.version), (None, removed));
    assert!(!store.contains("k"));
}

#[test]
fn removing_a_missing_key_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(&dir)).unwrap();
    store.remove("never-written").unwrap();
    assert!(store.is_empty());
}

#[test]
fn batch_is_one_record_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(&dir)).unwrap();
    store.put("gone", b"1").unwrap();
    let changes = vec![
        Change::Put {
            key: "a".into(),
            value: b"1".to_vec(),
        },
        Change::Put {
            key: "a".into(),
            value: b"2".to_vec(),
        },
        Change::Remove { key: "gone".into() },
        Change::Put {
            key: "b".into(),
            value: vec![0, 1, 0],
        },
    ];
    store.write_batch(&changes).unwrap();
    assert_eq!(store.get("a").unwrap(), b"2");
    assert_eq!(store.get("b").unwrap(), vec![0, 1, 0]);
    assert!(!store.contains("gone"));
    drop(store);
    let store = Store::open(&options(&dir)).unwrap();
    assert_eq!(
        store.recovery().unwrap().records,
        2,
        "one put and one batch record"
    );
    assert_eq!(store.get("a").unwrap(), b"2");
    assert!(!store.contains("gone"));
}

#[test]
fn batch_with_one_invalid_change_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(&dir)).unwrap();
    let changes = vec![
        Change::Put {
            key: "ok".into(),
            value: b"1".to_vec(),
        },
        Change::Put {
            key: String::new(),
            value: b"2".to_vec(),
        },
    ];
    assert!(matches!(
        store.write_batch(&changes),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(!store.contains("ok"));
    drop(store);
    assert_eq!(
        Store::open(&options(&dir))
            .unwrap()
            .recovery()
            .unwrap()
            .records,
        0
    );
}

#[test]
fn key_and_value_limits_are_enforced_at_their_boundaries() {
    let store = Store::open(&StoreOptions::new("n", None, false)).unwrap();
    let longest = "k".repeat(MAX_KEY_LEN);
    store.put(&longest, b"v").unwrap();
    let err = store.put(&"k".repeat(MAX_KEY_LEN + 1), b"v").unwrap_err();
    assert!(err.to_string().contains("limit 1024 bytes"), "{err}");
    store.put("biggest", &vec![1u8; MAX_VALUE_LEN]).unwrap();
    let err = store
        .put("too-big", &vec![1u8; MAX_VALUE_LEN + 1])
        .unwrap_err();
    assert!(
        err.to_string().contains("\"too-big\"") && err.to_string().contains("limit 16777216 bytes"),
        "{err}"
    );
    assert!(!store.contains("too-big"));
}

#[test]
fn clock_never_goes_backwards_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir);
    // A record stamped far in the future, as if written while the wall clock was wrong, in
    // a log of format version 1 (the file at the WAL path), which is read as the first
    // segment.
    let future = Version::from_millis(softadastra::store::hlc::now_millis() + 86_400_000);
    let mut image = format::encode_legacy_header().to_vec();
    let mut payload = Vec::new();
    softadastra::store::op::encode_ops(
        &mut payload,
        std::iter::once(softadastra::store::op::Op {
            key: "k",
            value: Some(b"old"),
            version: future,
            origin: "node-a",
            origin_seq: 1,
            base: None,
        }),
    );
    format::encode_record(&mut image, RecordType::StoreOps, 1, &payload);
    std::fs::write(opts.wal_path.as_ref().unwrap(), &image).unwrap();

    let store = Store::open(&opts).unwrap();
    assert_eq!(store.get("k").unwrap(), b"old");
    let v = store.put("k", b"new").unwrap().last_version();
    assert!(
        v > future,
        "a new write must win over every replayed version"
    );
    drop(store);
    let store = Store::open(&opts).unwrap();
    assert_eq!(store.get("k").unwrap(), b"new");
    assert_eq!(
        store.next_seq(),
        3,
        "sequence numbers continue after the replayed ones"
    );
}

#[test]
fn concurrent_writers_on_one_key_leave_the_newest_version_in_memory_and_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(&dir)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let store = &store;
            s.spawn(move || {
                for i in 0..50u8 {
                    store.put("shared", &[t, i]).unwrap();
                }
            });
        }
    });
    let in_memory = store.entry("shared").unwrap();
    drop(store);
    let replayed = Store::open(&options(&dir))
        .unwrap()
        .entry("shared")
        .unwrap();
    assert_eq!(in_memory, replayed);
}
