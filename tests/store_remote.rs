//! Remote operations meeting the local store: last-writer-wins by (version, origin) with
//! tombstones, idempotent re-delivery, conflict detection, and the version-vector catch-up.

use softadastra::store::{Operation, Store, StoreOptions, Version};

fn store(dir: &tempfile::TempDir, node: &str) -> Store {
    Store::open(&StoreOptions::new(
        node,
        Some(dir.path().join(format!("{node}.wal"))),
        true,
    ))
    .unwrap()
}

/// A store whose clock reads a fixed time, so versions are predictable.
fn store_at(dir: &tempfile::TempDir, node: &str, now_ms: u64) -> Store {
    let mut options = StoreOptions::new(node, Some(dir.path().join(format!("{node}.wal"))), true);
    options.time = Some(std::sync::Arc::new(move || now_ms));
    Store::open(&options).unwrap()
}

fn op(origin: &str, seq: u64, version: u64, key: &str, value: Option<&[u8]>) -> Operation {
    Operation {
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
        version: Version(version),
        origin: origin.into(),
        origin_seq: seq,
        base: None,
    }
}

fn records(s: &Store) -> u64 {
    s.flush().unwrap();
    let path = s.wal_path().unwrap().to_path_buf();
    let bytes = std::fs::read(path).unwrap();
    let mut n = 0;
    softadastra::wal::format::scan::<()>(&bytes, |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    n
}

#[test]
fn remote_operation_is_applied_logged_and_replayed_with_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    let report = s
        .apply_remote(&[op("node-b", 1, 100, "k", Some(b"from-b"))])
        .unwrap();
    assert_eq!(report.applied, 1);
    drop(s);
    let s = store(&dir, "node-a");
    let e = s.entry("k").unwrap();
    assert_eq!(
        (e.value.as_deref(), &*e.origin, e.origin_seq),
        (Some(&b"from-b"[..]), "node-b", 1)
    );
    assert!(s.version_vector().contains("node-b", 1));
    assert!(s.last_version() >= Version(100));
}

#[test]
fn applying_an_operation_twice_changes_nothing_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    let o = op("node-b", 1, 100, "k", Some(b"v"));
    s.apply_remote(std::slice::from_ref(&o)).unwrap();
    let before = records(&s);
    let report = s.apply_remote(&[o.clone(), o]).unwrap();
    assert_eq!((report.applied, report.duplicates), (0, 2));
    assert_eq!(records(&s), before);
}

#[test]
fn an_older_put_never_undoes_a_newer_remove() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    s.apply_remote(&[op("node-b", 2, 200, "k", None)]).unwrap();
    let report = s
        .apply_remote(&[op("node-c", 1, 150, "k", Some(b"stale"))])
        .unwrap();
    assert_eq!((report.applied, report.ignored), (0, 1));
    assert!(!s.contains("k"));
    drop(s);
    assert!(
        !store(&dir, "node-a").contains("k"),
        "still removed after replay"
    );
}

#[test]
fn equal_versions_are_ordered_by_origin_id_the_same_way_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let a = store(&dir, "node-a");
    let b = store(&dir, "node-b");
    let x = op("node-x", 1, 500, "k", Some(b"x"));
    let y = op("node-y", 1, 500, "k", Some(b"y"));
    a.apply_remote(&[x.clone(), y.clone()]).unwrap();
    b.apply_remote(&[y, x]).unwrap();
    assert_eq!(a.get("k").unwrap(), b"y");
    assert_eq!(b.get("k").unwrap(), b"y");
}

#[test]
fn concurrent_writes_are_reported_as_conflicts_and_sequential_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = store(&dir, "node-a");
    a.put("k", b"local").unwrap();
    // node-b wrote k without having seen node-a's write: a conflict, which b wins (newer).
    let far = a.last_version().0 + 1000;
    let report = a
        .apply_remote(&[op("node-b", 1, far, "k", Some(b"remote"))])
        .unwrap();
    assert_eq!(report.conflicts.len(), 1);
    let c = &report.conflicts[0];
    assert_eq!(
        (
            c.key.as_str(),
            c.local.origin.as_str(),
            c.remote.origin.as_str(),
            c.remote_won
        ),
        ("k", "node-a", "node-b", true)
    );
    // node-c overwrote node-b's entry knowing it: no conflict.
    let mut follow = op("node-c", 1, far + 1, "k", Some(b"after"));
    follow.base = Some(("node-b".into(), 1));
    let report = a.apply_remote(&[follow]).unwrap();
    assert!(report.conflicts.is_empty());
    assert_eq!(a.get("k").unwrap(), b"after");
}

#[test]
fn an_invalid_remote_operation_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    let good = op("node-b", 1, 10, "ok", Some(b"1"));
    let bad = op("bad origin!", 1, 10, "k", Some(b"1"));
    let err = s.apply_remote(&[good, bad]).unwrap_err();
    assert!(err.to_string().contains("bad origin!"), "{err}");
    assert!(!s.contains("ok"));
    let err = s
        .apply_remote(&[op("node-b", 1, 10, "", Some(b"1"))])
        .unwrap_err();
    assert!(err.to_string().contains("key must not be empty"), "{err}");
}

#[test]
fn catch_up_by_version_vector_makes_two_stores_equal() {
    let dir = tempfile::tempdir().unwrap();
    let a = store_at(&dir, "node-a", 1_000);
    let b = store_at(&dir, "node-b", 2_000);
    for i in 0..20 {
        a.put(&format!("a/{i}"), b"a").unwrap();
        b.put(&format!("b/{i}"), b"b").unwrap();
    }
    a.put("shared", b"from-a").unwrap();
    a.remove("a/3").unwrap();
    b.put("shared", b"from-b").unwrap();
    // Each sends what the other lacks, then takes in the other's vector.
    let to_b = a.missing_for(&b.version_vector());
    let to_a = b.missing_for(&a.version_vector());
    let (va, vb) = (a.version_vector(), b.version_vector());
    b.apply_remote(&to_b).unwrap();
    a.apply_remote(&to_a).unwrap();
    a.merge_vector(&vb);
    b.merge_vector(&va);
    assert_eq!(a.entries(), b.entries());
    assert_eq!(
        a.get("shared").unwrap(),
        b"from-b",
        "the write with the greater version wins"
    );
    assert!(!b.contains("a/3"), "the tombstone travelled");
    assert!(a.missing_for(&b.version_vector()).is_empty());
    assert!(b.missing_for(&a.version_vector()).is_empty());
}

#[test]
fn own_operations_coming_back_never_reuse_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    s.apply_remote(&[op("node-a", 41, 100, "k", Some(b"old me"))])
        .unwrap();
    let stamp = s.put("k2", b"new me").unwrap();
    assert_eq!(stamp.first_seq, 42);
}
