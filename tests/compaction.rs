//! Compaction (issue 13): a snapshot of the live state, then the log it covers deleted.
//! The state after a reopen is the state before; the outbox keeps exactly the work not
//! acknowledged; writers keep going during a compaction; a damaged snapshot is reported
//! with its file and offset.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use softadastra::{Client, ClientOptions, ErrorCode, Peer};

fn options(dir: &Path, id: &str) -> ClientOptions {
    ClientOptions::persistent(id, dir.join(format!("{id}.wal")).to_str().unwrap())
}

/// Bytes of every file of the node's log and snapshots.
fn disk_bytes(dir: &Path, id: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&format!("{id}.wal"))
                && !name.ends_with(".key")
                && !name.ends_with(".trust")
                && !name.ends_with(".lock")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn snapshots(dir: &Path, id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{id}.wal.snap.")))
        .collect();
    names.sort();
    names
}

#[test]
fn a_compacted_node_reopens_with_the_same_data_and_a_smaller_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), "till");
    o.auto_flush = false;
    let client = Client::new(o);
    client.open().unwrap();
    for round in 0..50 {
        for key in 0..100 {
            // 1 KiB values: 5 MB of log for 100 KB of live data.
            let mut value = format!("{round}-{key}-").into_bytes();
            value.resize(1024, b'.');
            client.put(&format!("k{key:03}"), &value).unwrap();
        }
    }
    for key in 0..10 {
        client.remove(&format!("k{key:03}")).unwrap();
    }
    let before = client.list("").unwrap();
    client.flush().unwrap();
    let grown = disk_bytes(dir.path(), "till");
    let report = client.compact().unwrap();
    assert!(report.covers_through >= 5_010, "{report:?}");
    assert!(report.segments_removed >= 1, "{report:?}");
    assert_eq!(snapshots(dir.path(), "till").len(), 1);
    client.put("after", b"compaction").unwrap();
    client.close().unwrap();

    client.open().unwrap();
    let mut expected = before.clone();
    expected.push(("after".to_string(), b"compaction".to_vec()));
    expected.sort();
    assert_eq!(client.list("").unwrap(), expected);
    assert!(
        client.get("k003").is_err(),
        "a removal survives the compaction"
    );
    let state = client.sync_state().unwrap();
    assert_eq!(
        state.outbox_size, 5_011,
        "nothing was acknowledged: every operation is still to send ({state:?})"
    );
    // Compacting again: the first snapshot goes, the disk follows the live data.
    client.compact().unwrap();
    assert_eq!(snapshots(dir.path(), "till").len(), 1);
    client.close().unwrap();
    let compacted = disk_bytes(dir.path(), "till");
    assert!(
        compacted < grown,
        "the log of 5,000 writes ({grown} bytes) is gone ({compacted} bytes left)"
    );
}

#[test]
fn acknowledged_work_is_not_sent_again_after_a_compaction_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let wal = |id: &str| dir.path().join(format!("{id}.wal"));
    let mut oa = ClientOptions::persistent("node-a", wal("node-a").to_str().unwrap());
    oa.ack_timeout_ms = 500;
    let a = common::client_with_transport(&oa, None);
    let b = common::client_with_transport(
        &ClientOptions::persistent("node-b", wal("node-b").to_str().unwrap()),
        None,
    );
    common::trust_each_other(&[&a, &b]);
    a.connect(&Peer::local(
        "node-b",
        b.transport_address().unwrap().port(),
    ))
    .unwrap();
    for i in 0..100 {
        a.put(&format!("k{i}"), b"v").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.sync_state().unwrap().acknowledged_count < 100 && Instant::now() < deadline {
        for c in [&a, &b] {
            c.process_transport_events_wait(64, Duration::from_millis(2))
                .unwrap();
        }
    }
    assert_eq!(a.sync_state().unwrap().acknowledged_count, 100);
    a.stop_transport().unwrap();
    // Written while b is away: still to send after the restart.
    a.put("offline", b"1").unwrap();
    a.compact().unwrap();
    a.close().unwrap();
    a.open().unwrap();
    let state = a.sync_state().unwrap();
    assert_eq!(
        state.outbox_size, 1,
        "only the unacknowledged write is in the outbox: {state:?}"
    );
    assert_eq!(
        a.sync_status("offline").unwrap(),
        softadastra::KeyStatus::WaitingToSync
    );
}

#[test]
fn writers_keep_going_while_a_compaction_runs_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(Client::new(options(dir.path(), "busy")));
    client.open().unwrap();
    let mut seed = softadastra::WriteBatch::new();
    for i in 0..20_000 {
        seed.put(format!("seed/{i:05}"), vec![1u8; 100]);
    }
    client.write_batch(&seed).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut written = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let key = format!("w{w}/{i:06}");
                    client.put(&key, b"during").unwrap();
                    written.push(key);
                    i += 1;
                }
                written
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..3 {
        client.compact().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let written: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(!written.is_empty());
    client.close().unwrap();
    client.open().unwrap();
    for key in &written {
        assert_eq!(client.get(key).unwrap(), b"during", "{key}");
    }
    assert_eq!(client.size().unwrap(), 20_000 + written.len());
}

#[test]
fn a_damaged_snapshot_is_reported_naming_the_file_and_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(options(dir.path(), "rot"));
    client.open().unwrap();
    for i in 0..1_000 {
        client.put(&format!("k{i}"), &[7u8; 64]).unwrap();
    }
    client.compact().unwrap();
    client.close().unwrap();
    let name = snapshots(dir.path(), "rot").pop().unwrap();
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = client.open().unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&name) && message.contains("damaged at offset"),
        "{message}"
    );
    assert_eq!(e.code(), ErrorCode::StoreError);
}

#[test]
fn a_memory_only_node_has_nothing_to_compact() {
    let client = Client::new(ClientOptions::memory_only("mem"));
    client.open().unwrap();
    let e = client.compact().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidState);
}

#[test]
fn an_unfinished_snapshot_is_ignored() {
    // A crash while a snapshot is written leaves its temporary file: the node opens
    // from the log as if nothing happened.
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(options(dir.path(), "crash"));
    client.open().unwrap();
    client.put("k", b"v").unwrap();
    client.close().unwrap();
    let tmp = dir.path().join("crash.wal.snap.00000000000000000001.tmp");
    std::fs::write(&tmp, b"SOFTASNP half a snapshot").unwrap();
    client.open().unwrap();
    assert_eq!(client.get("k").unwrap(), b"v");
}

#[test]
fn the_log_is_compacted_on_its_own_once_it_outgrows_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), "auto");
    o.auto_flush = false;
    o.wal_segment_size = 64 * 1024;
    let client = Client::new(o);
    client.open().unwrap();
    let value = [5u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0u32;
    // Overwrites of 50 keys: the live data stays ~25 KB while the log grows; each tick
    // may start a compaction (on a thread of its own).
    while snapshots(dir.path(), "auto").is_empty() && Instant::now() < deadline {
        for key in 0..50 {
            client.put(&format!("k{key}"), &value).unwrap();
        }
        client.tick(true).unwrap();
        round += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        !snapshots(dir.path(), "auto").is_empty(),
        "no automatic compaction after {round} rounds"
    );
    client.close().unwrap(); // waits for a compaction in progress
    let on_disk = disk_bytes(dir.path(), "auto");
    assert!(
        on_disk < 4 * 64 * 1024 + 64 * 1024,
        "disk use follows the live data: {on_disk} bytes after {round} rounds"
    );
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 50);
}

#[test]
fn automatic_compaction_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), "manual");
    o.auto_flush = false;
    o.wal_segment_size = 64 * 1024;
    o.auto_compact = false;
    let client = Client::new(o);
    client.open().unwrap();
    for round in 0..40 {
        for key in 0..50 {
            client.put(&format!("k{key}"), &[round as u8; 512]).unwrap();
        }
        client.tick(true).unwrap();
    }
    client.close().unwrap();
    assert!(snapshots(dir.path(), "manual").is_empty());
}

const FULL_CHILD: &str = "SOFTADASTRA_TEST_COMPACT_FULL";

/// In a child process whose files may not grow past 4 MiB: 5 MiB of live data in small
/// segments (each under the limit), then a compaction whose snapshot cannot be written.
fn disk_full_child(dir: &Path) {
    let mut o = options(dir, "full");
    o.wal_segment_size = 256 * 1024;
    o.auto_compact = false;
    let client = Client::new(o);
    client.open().unwrap();
    for i in 0..80 {
        client
            .put(&format!("k{i:03}"), &vec![i as u8; 64 * 1024])
            .unwrap();
    }
    let e = client.compact().unwrap_err();
    assert_eq!(e.code(), ErrorCode::IoError, "{e}");
    assert!(
        e.to_string().contains(".snap."),
        "the snapshot is named: {e}"
    );
    // The store goes on: the log is whole, nothing was deleted.
    client.put("after", b"the failed compaction").unwrap();
    assert_eq!(client.get("k042").unwrap(), vec![42u8; 64 * 1024]);
    client.close().unwrap();
}

#[test]
fn a_snapshot_that_cannot_be_written_leaves_the_store_working_and_whole() {
    if let Ok(dir) = std::env::var(FULL_CHILD) {
        disk_full_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::run_with_file_size_limit(
        "a_snapshot_that_cannot_be_written_leaves_the_store_working_and_whole",
        FULL_CHILD,
        dir.path(),
        4 << 20,
    );
    assert!(
        snapshots(dir.path(), "full").is_empty(),
        "no snapshot, not even a temporary one"
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let client = Client::new(options(dir.path(), "full"));
    client.open().unwrap();
    assert_eq!(client.size().unwrap(), 81);
    assert_eq!(client.get("after").unwrap(), b"the failed compaction");
}

#[test]
fn a_segment_missing_after_the_snapshot_is_reported_naming_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), "hole");
    o.wal_segment_size = 16 * 1024;
    o.auto_compact = false;
    let client = Client::new(o.clone());
    client.open().unwrap();
    for i in 0..50 {
        client.put(&format!("before/{i}"), &[1u8; 1024]).unwrap();
    }
    client.compact().unwrap();
    for i in 0..100 {
        client.put(&format!("after/{i}"), &[2u8; 1024]).unwrap();
    }
    client.close().unwrap();
    let mut segments: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("hole.wal.")
                .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(dir.path().join(&segments[1])).unwrap();
    let e = Client::new(o).open().unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(e.code(), ErrorCode::StoreError, "{e}");
}

/// Issue 14, item 7: every file the node makes is its owner's only from its first byte,
/// whatever the umask allows: the WAL (the lock file and each segment), the snapshots,
/// the identity key and the trusted peers.
#[test]
fn every_file_of_the_node_is_made_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), "till-01");
    opts.wal_segment_size = 4096;
    let client = Client::new(opts);
    client.open().unwrap();
    for i in 0..20 {
        client.put(&format!("k/{i}"), &[7u8; 512]).unwrap();
    }
    client.compact().unwrap();
    client.put("k/after", b"v").unwrap();
    client.trust_peer("till-02", &"ab".repeat(32)).unwrap();
    client.close().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match name.strip_prefix("till-01.wal").unwrap_or("?") {
            "" => "lock",
            ".key" => "key",
            ".trust" => "trust",
            rest if rest.starts_with(".snap.") => "snapshot",
            rest if rest.len() == 21 => "segment",
            _ => panic!("unexpected file {name}"),
        };
        kinds.insert(kind);
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["key", "lock", "segment", "snapshot", "trust"]
    );
}
