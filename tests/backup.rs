//! Backup and restore (issue 13): a backup taken while writers run restores every write
//! acknowledged before it began, with every batch whole; verify finds damage and names the
//! file; restore refuses what it must; and a node restored from a backup never reuses a
//! number its peers saw from it after the backup (two nodes over TCP, trusted, ephemeral
//! ports, bounded waits).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, ErrorCode, Peer, WriteBatch};

fn options(dir: &Path, id: &str) -> ClientOptions {
    ClientOptions::persistent(id, dir.join(format!("{id}.wal")).to_str().unwrap())
}

/// Drives every client's transport until `done` holds (at most 20 s). Returns whether it
/// did.
fn pump(clients: &[&Client], mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for c in clients {
            if c.transport_running() {
                c.process_transport_events_wait(256, Duration::from_millis(1))
                    .unwrap();
            }
        }
        if done() {
            return true;
        }
    }
    false
}

fn connected(a: &Client, b: &Client, b_id: &str) {
    a.connect(&Peer::local(b_id, b.transport_address().unwrap().port()))
        .unwrap();
}

#[test]
fn a_backup_taken_while_writers_run_restores_every_acknowledged_write_and_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(Client::new(options(dir.path(), "busy")));
    client.open().unwrap();
    let mut seed = WriteBatch::new();
    for i in 0..20_000 {
        seed.put(format!("seed/{i:05}"), vec![1u8; 100]);
    }
    client.write_batch(&seed).unwrap();
    client.put("seed/00007", b"changed").unwrap();
    client.remove("seed/00008").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Each writer writes batches of two keys far apart in key order (so a fuzzy snapshot
    // could catch one without the other), and records which batches were acknowledged.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let mut batch = WriteBatch::new();
                    let value = format!("{w}-{i}");
                    batch.put(format!("a/{w}/{i:06}"), value.clone());
                    batch.put(format!("z/{w}/{i:06}"), value);
                    client.write_batch(&batch).unwrap();
                    acknowledged.push((Instant::now(), i));
                    i += 1;
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let backup_dir = dir.path().join("backup");
    let report = client.backup(&backup_dir).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<Vec<(Instant, u32)>> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let manifest = softadastra::verify_backup(&backup_dir).unwrap();
    assert_eq!(manifest.covers_through, report.covers_through);
    assert!(
        manifest.covers_through > manifest.snapshot_cut,
        "writes went on during the snapshot: the backup holds the log after its cut \
         ({manifest:?})"
    );
    assert!(
        manifest
            .files
            .iter()
            .any(|f| matches!(f.kind, softadastra::BackupFileKind::Log { .. })),
        "{manifest:?}"
    );
    client.close().unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    let restored_options = options(restored_dir.path(), "busy");
    softadastra::restore_backup(&backup_dir, &restored_options, false).unwrap();
    let restored = Client::new(restored_options);
    restored.open().unwrap();
    assert_eq!(restored.get("seed/00007").unwrap(), b"changed");
    assert!(restored.get("seed/00008").is_err());
    assert_eq!(restored.get("seed/19999").unwrap(), vec![1u8; 100]);
    for (w, acks) in acknowledged.iter().enumerate() {
        for &(at, i) in acks {
            let a = restored.get(&format!("a/{w}/{i:06}")).ok();
            let z = restored.get(&format!("z/{w}/{i:06}")).ok();
            assert_eq!(a, z, "batch {w}/{i} is whole or absent");
            if at < started {
                assert_eq!(
                    a.as_deref(),
                    Some(format!("{w}-{i}").as_bytes()),
                    "batch {w}/{i} was acknowledged before the backup began"
                );
            }
        }
    }
    // The restored node writes on; it numbers past the backup (a new incarnation).
    restored.put("after/restore", b"1").unwrap();
    restored.close().unwrap();
    restored.open().unwrap();
    assert_eq!(restored.get("after/restore").unwrap(), b"1");
}

/// A persistent node with a backup of a few keys, closed; returns the backup directory.
fn small_backup(dir: &Path, id: &str) -> std::path::PathBuf {
    let client = Client::new(options(dir, id));
    client.open().unwrap();
    for i in 0..100 {
        client.put(&format!("k{i}"), b"v").unwrap();
    }
    client.trust_peer("node-z", &"ab".repeat(32)).unwrap();
    let backup = dir.join(format!("{id}-backup"));
    client.backup(&backup).unwrap();
    client.close().unwrap();
    backup
}

#[test]
fn verify_finds_a_flipped_byte_or_a_missing_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let backup = small_backup(dir.path(), "rot");
    let manifest = softadastra::verify_backup(&backup).unwrap();
    assert_eq!(manifest.node_id, "rot");
    let names: Vec<String> = manifest.files.iter().map(|f| f.kind.file_name()).collect();
    assert!(names.contains(&"identity.key".to_string()), "{names:?}");
    assert!(names.contains(&"trust".to_string()), "{names:?}");
    for name in names.iter().map(String::as_str).chain(["MANIFEST"]) {
        let path = backup.join(name);
        let good = std::fs::read(&path).unwrap();
        for at in [0, good.len() / 2, good.len() - 2] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            let e = softadastra::verify_backup(&backup).unwrap_err();
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "{name}, byte {at}: {e}"
            );
            assert_eq!(e.code(), ErrorCode::StoreError, "{name}: {e}");
        }
        std::fs::remove_file(&path).unwrap();
        let e = softadastra::verify_backup(&backup).unwrap_err();
        let expected = if name == "MANIFEST" {
            "holds no finished backup"
        } else {
            "is missing"
        };
        assert!(
            e.to_string().contains(expected) && e.to_string().contains(name),
            "{name}: {e}"
        );
        std::fs::write(&path, &good).unwrap();
        softadastra::verify_backup(&backup).unwrap();
    }
}

#[test]
fn restore_refuses_a_node_that_is_there_unless_forced_and_a_running_or_other_node() {
    let dir = tempfile::tempdir().unwrap();
    let backup = small_backup(dir.path(), "here");
    // The node's own files are there: refused, nothing changed.
    let o = options(dir.path(), "here");
    let e = softadastra::restore_backup(&backup, &o, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    assert!(e.to_string().contains("force"), "{e}");
    // Another node's backup: refused.
    let other = options(dir.path(), "elsewhere");
    let e = softadastra::restore_backup(&backup, &other, true).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    // A running node: refused, even forced.
    let running = Client::new(o.clone());
    running.open().unwrap();
    running.put("later", b"1").unwrap();
    let e = softadastra::restore_backup(&backup, &o, true).unwrap_err();
    assert!(e.to_string().contains("running"), "{e}");
    running.close().unwrap();
    // A file that is not the node's stays.
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let report = softadastra::restore_backup(&backup, &o, true).unwrap();
    assert!(
        !report.removed.is_empty() && report.key_restored,
        "{report:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );
    let client = Client::new(o);
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 100);
    assert!(client.get("later").is_err(), "the state is the backup's");
    assert_eq!(client.trusted_peers().unwrap().len(), 1);
    client.close().unwrap();
}

#[test]
fn a_restore_cut_short_is_never_opened_as_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let backup = small_backup(dir.path(), "cut");
    let target = tempfile::tempdir().unwrap();
    let o = options(target.path(), "cut");
    // What a crash between the marker and the end leaves: the marker.
    std::fs::write(target.path().join("cut.wal.restoring"), b"restoring\n").unwrap();
    let client = Client::new(o.clone());
    let e = client.open().unwrap_err();
    assert!(e.to_string().contains("did not finish"), "{e}");
    let e = softadastra::restore_backup(&backup, &o, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    softadastra::restore_backup(&backup, &o, true).unwrap();
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 100);
}

#[test]
fn a_restore_cut_short_while_it_wrote_its_marker_is_finished_by_a_forced_restore() {
    let dir = tempfile::tempdir().unwrap();
    let backup = small_backup(dir.path(), "early");
    let target = tempfile::tempdir().unwrap();
    let o = options(target.path(), "early");
    // What a crash while the marker was written leaves: its temporary file (and the WAL
    // file, locked first).
    std::fs::write(target.path().join("early.wal"), b"").unwrap();
    std::fs::write(target.path().join("early.wal.restoring.tmp"), b"restor").unwrap();
    let report = softadastra::restore_backup(&backup, &o, true).unwrap();
    assert!(!target.path().join("early.wal.restoring.tmp").exists());
    assert!(!target.path().join("early.wal.restoring").exists());
    assert!(report.key_restored, "{report:?}");
    let client = Client::new(o);
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 100);
}

#[test]
fn a_backup_needs_an_empty_directory_and_a_persistent_node() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(options(dir.path(), "full"));
    client.open().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("other"), b"x").unwrap();
    let e = client.backup(&target).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    let memory = Client::new(ClientOptions::memory_only("mem"));
    memory.open().unwrap();
    let e = memory.backup(&dir.path().join("mem")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidState, "{e}");
    let e = softadastra::verify_backup(&target).unwrap_err();
    assert!(e.to_string().contains("no finished backup"), "{e}");
}

/// Everything `b` holds must be in `a`, with the same value.
fn holds_all_of(a: &Client, b: &Client) -> bool {
    let theirs: BTreeMap<String, Vec<u8>> = b.list("").unwrap().into_iter().collect();
    theirs
        .iter()
        .all(|(k, v)| a.get(k).ok().as_ref() == Some(v))
}

#[test]
fn a_restored_node_never_reuses_a_number_its_peer_saw_and_gets_its_lost_writes_back() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("a-backup");
    let oa = options(&dir.path().join("a"), "node-a");
    let ob = options(&dir.path().join("b"), "node-b");
    for d in ["a", "b"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let b = common::client_with_transport(&ob, None);
    let a = common::client_with_transport(&oa, None);
    common::trust_each_other(&[&a, &b]);
    for i in 0..20 {
        a.put(&format!("before/{i}"), b"1").unwrap();
    }
    b.put("from-b/0", b"b").unwrap();
    connected(&a, &b, "node-b");
    assert!(pump(&[&a, &b], || holds_all_of(&b, &a) && holds_all_of(&a, &b)));
    a.backup(&backup).unwrap();
    // After the backup: writes that only the peer will keep.
    for i in 0..20 {
        a.put(&format!("after-backup/{i}"), b"2").unwrap();
    }
    a.put("before/3", b"overwritten after the backup").unwrap();
    assert!(pump(&[&a, &b], || holds_all_of(&b, &a)));
    a.close().unwrap();
    drop(a);

    // The incarnations: the same backup restored twice over (its disk lost each time).
    for incarnation in 1..=2 {
        softadastra::restore_backup(&backup, &oa, true).unwrap();
        let restored = common::client_with_transport(&oa, None);
        assert!(
            restored.get("after-backup/0").is_err(),
            "lost with the disk"
        );
        // Writes before meeting the peer: a reused number would be dropped by it.
        let keys: Vec<String> = (0..20)
            .map(|i| format!("incarnation-{incarnation}/{i}"))
            .collect();
        for k in &keys {
            restored.put(k, k.as_bytes()).unwrap();
        }
        restored.put("before/5", b"rewritten").unwrap();
        connected(&restored, &b, "node-b");
        let ok = pump(&[&restored, &b], || {
            keys.iter()
                .all(|k| b.get(k).ok().as_deref() == Some(k.as_bytes()))
                && b.get("before/5").ok().as_deref() == Some(&b"rewritten"[..])
                && holds_all_of(&restored, &b)
        });
        assert!(
            ok,
            "incarnation {incarnation}: b {:?}, restored {:?}, refused by b {:?}",
            b.sync_state().unwrap(),
            restored.sync_state().unwrap(),
            b.network_stats().unwrap().refused_operations
        );
        // The writes of the node after the backup came back from the peer.
        assert_eq!(restored.get("after-backup/19").unwrap(), b"2");
        assert_eq!(
            restored.get("before/3").unwrap(),
            b"overwritten after the backup"
        );
        assert_eq!(b.network_stats().unwrap().refused_operations.total(), 0);
        assert_eq!(
            restored.network_stats().unwrap().refused_operations.total(),
            0
        );
        // And they stay across a restart (they were logged as the node's own).
        restored.close().unwrap();
        restored.open().unwrap();
        assert_eq!(restored.get("after-backup/19").unwrap(), b"2");
        restored.close().unwrap();
    }
}
