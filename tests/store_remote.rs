//! Remote operations meeting the local store: last-writer-wins by (version, origin) with
//! tombstones, idempotent re-delivery, conflict detection, and the version-vector catch-up.

use softadastra::store::{
    MAX_ORIGINS, MAX_RANGES, MAX_RELAYED_ORIGINS, Operation, Refusal, Store, StoreError,
    StoreOptions, Superseded, Version, VersionVector,
};

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

/// Records in the store's WAL (one segment: these logs are far smaller than a segment).
fn records(s: &Store) -> u64 {
    s.flush().unwrap();
    let path = softadastra::wal::segment_path(s.wal_path().unwrap(), 1);
    let bytes = std::fs::read(path).unwrap();
    let mut n = 0;
    softadastra::wal::format::scan_from::<()>(&bytes, Some(1), |_| {
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
fn a_batch_of_remote_operations_is_one_wal_record_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    let before = records(&s);
    let ops: Vec<_> = (1..=100)
        .map(|i| op("node-b", i, 100 + i, &format!("k{i}"), Some(b"v")))
        .collect();
    let report = s.apply_remote(&ops).unwrap();
    assert_eq!(report.applied, 100);
    assert_eq!(records(&s), before + 1, "one record for the whole batch");
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
fn operations_claiming_this_nodes_origin_that_it_never_wrote_are_refused() {
    // The "sequence bomb": an operation of our own origin numbered 10^12 used to move the
    // next local number there, and the outbox then tried to allocate 56 TB.
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "node-a");
    s.put("mine", b"1").unwrap();
    let report = s
        .apply_remote(&[
            op("node-a", 1_000_000_000_000, 100, "k", Some(b"forged")),
            op("node-b", 1, 100, "b", Some(b"fine")),
        ])
        .unwrap();
    assert_eq!(report.refused, vec![(0, Refusal::OwnOrigin)]);
    assert_eq!(report.applied, 1, "the rest of the batch is applied");
    assert!(s.get("k").is_none());
    let taken = s.mark_seen("node-a", &[sup(u64::MAX, u64::MAX, 1)], None);
    assert!(
        taken.is_empty(),
        "superseded numbers of our origin are refused too"
    );
    assert_eq!(s.refused_counts().own_origin, 2);
    assert_eq!(s.put("k2", b"2").unwrap().first_seq, 2);
    // Our own operation coming back is a plain duplicate.
    let again = s
        .apply_remote(&[op("node-a", 1, 1, "mine", Some(b"1"))])
        .unwrap();
    assert_eq!((again.duplicates, again.refused.len()), (1, 0));
    drop(s);
    let s = store(&dir, "node-a");
    assert_eq!(s.next_seq(), 3, "nothing forged reached the log");
}

#[test]
fn a_remote_version_beyond_the_allowed_drift_is_refused_and_never_moves_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_700_000_000_000;
    let s = store_at(&dir, "node-a", now);
    let century = 100 * 365 * 24 * 3_600 * 1_000;
    let report = s
        .apply_remote(&[
            op(
                "node-b",
                1,
                Version::from_millis(now + century).0,
                "k",
                Some(b"2126"),
            ),
            op("node-b", 2, u64::MAX, "frozen", Some(b"forever")),
            op(
                "node-b",
                3,
                Version::from_millis(now + 30_000).0,
                "near",
                Some(b"ok"),
            ),
        ])
        .unwrap();
    assert_eq!(
        report.refused,
        vec![(0, Refusal::ClockAhead), (1, Refusal::ClockAhead)]
    );
    assert_eq!(s.get("near").unwrap(), b"ok", "within the drift: taken");
    assert!(s.get("k").is_none() && s.get("frozen").is_none());
    assert!(
        !s.version_vector().contains("node-b", 1),
        "a refused operation is not recorded as seen: it can come again"
    );
    assert_eq!(s.refused_counts().clock_ahead, 2);
    assert!(
        s.last_version().millis() <= now + 30_000,
        "the clock did not jump"
    );
    let v = s.put("frozen", b"mine").unwrap().first_version;
    assert!(v.millis() <= now + 30_000);
    assert_eq!(s.get("frozen").unwrap(), b"mine");
}

#[test]
fn a_version_from_the_far_future_already_stored_cannot_freeze_a_key() {
    // Data stored before such versions were refused: a node that accepted any drift.
    let dir = tempfile::tempdir().unwrap();
    let now = 1_700_000_000_000;
    let mut options = StoreOptions::new("node-a", Some(dir.path().join("a.wal")), true);
    options.time = Some(std::sync::Arc::new(move || now));
    options.max_clock_drift_ms = u64::MAX;
    let s = Store::open(&options).unwrap();
    s.apply_remote(&[
        op("node-b", 1, u64::MAX - 1, "late", Some(b"forged")),
        op("node-b", 2, u64::MAX, "end", Some(b"forged")),
    ])
    .unwrap();
    drop(s);
    options.max_clock_drift_ms = 60_000;
    let s = Store::open(&options).unwrap();
    // Other keys keep real time: the stored versions did not drag the clock along.
    let other = s.put("other", b"x").unwrap().first_version;
    assert_eq!(other.millis(), now);
    // A write over the stored version still wins while a version is left above it...
    s.put("late", b"mine").unwrap();
    assert_eq!(s.get("late").unwrap(), b"mine");
    // ...and is refused with a clear error, changing nothing, once none is.
    let err = s.put("end", b"mine").unwrap_err();
    assert!(err.to_string().contains("far future"), "{err}");
    assert!(matches!(err, StoreError::NumbersExhausted { .. }));
    assert!(s.remove("end").is_err());
    assert_eq!(s.get("end").unwrap(), b"forged", "stored data left intact");
    assert_eq!(s.put("other", b"y").unwrap().first_version.millis(), now);
}

#[test]
fn forged_origins_and_gaps_beyond_the_vector_limits_are_refused() {
    let s = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
    let ops: Vec<Operation> = (0..MAX_ORIGINS + 10)
        .map(|i| op(&format!("fake-{i}"), 1, 1, &format!("k{i}"), Some(b"v")))
        .collect();
    for chunk in ops.chunks(1000) {
        s.apply_remote(chunk).unwrap();
    }
    // Second-hand origins fill only part of the table...
    assert_eq!(s.version_vector().origin_count(), MAX_RELAYED_ORIGINS);
    assert_eq!(
        s.refused_counts().too_many_origins,
        (MAX_ORIGINS + 10 - MAX_RELAYED_ORIGINS) as u64
    );
    // ...the rest is kept for nodes sending their own operations.
    let first_hand = op("real-peer", 1, 1, "real", Some(b"v"));
    let r = s
        .apply_remote_from(&[first_hand], Some("real-peer"))
        .unwrap();
    assert_eq!(r.applied, 1);
    // Superseded numbers carry no data: every other one opens a gap in the vector.
    let gaps: Vec<Superseded> = (1..=MAX_RANGES as u64 + 10)
        .map(|i| sup(2 * i + 1, 2 * i + 1, 1))
        .collect();
    let taken = s.mark_seen("fake-0", &gaps, None);
    assert!(s.version_vector().range_count() <= MAX_RANGES);
    assert!(taken.len() < gaps.len());
    assert!(s.refused_counts().too_many_ranges > 0);
    // Operations that extend what is seen still pass.
    assert_eq!(s.mark_seen("fake-1", &[sup(2, 2, 1)], None), vec![(2, 2)]);
}

#[test]
fn only_the_origin_may_report_its_operations_superseded() {
    // Otherwise any peer could report node-b's next numbers superseded and silence them.
    let s = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
    let claim = [sup(1, 1, 1), sup(2, 2, 2)];
    assert!(s.mark_seen("node-b", &claim, Some("node-c")).is_empty());
    assert_eq!(s.refused_counts().second_hand, 2);
    assert!(!s.version_vector().contains("node-b", 1));
    assert_eq!(s.mark_seen("node-b", &claim, Some("node-b")), vec![(1, 2)]);
}

#[test]
fn a_superseded_range_fills_the_gaps_between_operations_seen_and_takes_them_all() {
    let s = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
    s.apply_remote(&[
        op("node-b", 1, 10, "x", Some(b"1")),
        op("node-b", 5, 50, "y", Some(b"5")),
        op("node-b", 6, 60, "z", Some(b"6")),
    ])
    .unwrap();
    assert_eq!(s.version_vector().range_count(), 1);
    let taken = s.mark_seen("node-b", &[sup(1, 10, 40)], Some("node-b"));
    assert_eq!(
        taken,
        vec![(1, 10)],
        "seen and newly seen numbers are all taken"
    );
    let vector = s.version_vector();
    assert_eq!(vector.get("node-b").unwrap().contiguous, 10);
    assert_eq!(vector.range_count(), 0);
    assert_eq!(
        s.get("y").unwrap(),
        b"5",
        "recording numbers applies nothing"
    );
    // Ranges that overlap or repeat are visited once.
    let taken = s.mark_seen(
        "node-b",
        &[sup(12, 20, 1), sup(11, 15, 1), sup(12, 20, 1)],
        None,
    );
    assert_eq!(taken, vec![(11, 20)]);
    assert_eq!(s.version_vector().get("node-b").unwrap().contiguous, 20);
}

#[test]
fn a_superseded_range_of_this_nodes_own_numbers_beyond_its_counter_is_refused_whole() {
    let s = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
    s.put("k", b"1").unwrap();
    let taken = s.mark_seen("node-a", &[sup(1, 5, 1)], Some("node-a"));
    assert_eq!(taken, vec![(1, 1)], "only the number really seen is taken");
    assert_eq!(s.refused_counts().own_origin, 4);
    assert_eq!(s.put("k2", b"2").unwrap().first_seq, 2);
}

fn sup(first: u64, last: u64, version: u64) -> Superseded {
    Superseded {
        first,
        last,
        version: Version(version),
    }
}

#[test]
fn an_operation_a_claim_covered_before_it_arrived_is_still_applied() {
    let s = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
    s.apply_remote(&[op("node-b", 1, 10, "x", Some(b"1"))])
        .unwrap();
    s.apply_remote(&[op("node-b", 3, 30, "y", Some(b"3"))])
        .unwrap();
    // A peer's catch-up claims node-b's operation 2 was seen (wrongly, or superseded).
    let claim = VersionVector::from_parts([("node-b".to_string(), 3, vec![], Version(30))]);
    s.merge_seen(&claim);
    assert!(s.version_vector().contains("node-b", 2));
    let late = op("node-b", 2, 20, "z", Some(b"2"));
    let r = s.apply_remote(std::slice::from_ref(&late)).unwrap();
    assert_eq!(r.applied, 1, "the claim did not swallow it");
    assert_eq!(s.get("z").unwrap(), b"2");
    let again = s.apply_remote(&[late]).unwrap();
    assert_eq!(
        (again.applied, again.duplicates),
        (0, 1),
        "a real duplicate"
    );
}

#[test]
fn a_forged_own_operation_already_in_the_log_neither_moves_the_numbering_nor_is_resent() {
    // A log written before such operations were refused: the same file opened under
    // another node id takes an operation "of node-a" numbered u64::MAX, as old code did.
    use softadastra::sync::{SyncConfig, SyncEngine};
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("shared.wal");
    let as_node = |id: &str| StoreOptions::new(id, Some(wal.clone()), true);
    let s = Store::open(&as_node("node-a")).unwrap();
    s.put("mine", b"1").unwrap();
    drop(s);
    let s = Store::open(&as_node("node-x")).unwrap();
    s.apply_remote(&[op("node-a", u64::MAX, 5, "forged", Some(b"x"))])
        .unwrap();
    drop(s);
    let mut engine = SyncEngine::new("node-a", SyncConfig::default());
    let s = Store::open_with(&as_node("node-a"), None, &mut engine).unwrap();
    assert_eq!(s.next_seq(), 2, "numbering continues after the real writes");
    assert_eq!(
        engine.outbox().counts().total,
        1,
        "only the real write is queued"
    );
    assert_eq!(
        s.get("forged").unwrap(),
        b"x",
        "stored data is left as it was"
    );
    assert_eq!(s.put("next", b"2").unwrap().first_seq, 2);
}
