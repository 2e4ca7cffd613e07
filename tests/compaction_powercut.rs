//! Durability promise 4 for compaction: a power cut at any step of a compaction loses
//! nothing. On the simulated disk [`MemDir`] under the real store (see
//! docs/durability.md, "The simulated disk"), through the same calls a node's compaction
//! makes after its cut (`Store::cut_log`, then `Store::compact_through`, the function
//! `Client::compact` calls).
//!
//! The store holds data spread over many small segments, an earlier snapshot and the
//! temporary file of a snapshot a crash left unfinished. A dry run counts the storage calls
//! of one compaction (the cut's new segment, the snapshot's creation, writes, sync, rename
//! and directory sync, the removal of the older snapshot and of the temporary file, each
//! segment removal and the directory sync after it). Then, for every step, the compaction
//! runs again on a copy of the disk with the power going off at that step, and the
//! changes not yet synced are cut in every way the model allows, up to where a write is
//! torn: each prefix of them kept, and each write torn at a random byte after the ones
//! before it. Every such disk must reopen with
//! exactly the acknowledged writes (all of them durable, nothing invented), with the other
//! layers' blocks of the very snapshot it loaded, accept a write, compact again and reopen
//! with one snapshot, no temporary file and no segment the snapshot covers.
//!
//! Deterministic: the random cuts come from a fixed seed.

mod common;
use common::{Action, Model, Rng};

use std::collections::BTreeSet;
use std::path::PathBuf;

use softadastra::store::snapshot::block;
use softadastra::store::{Change, Compacted, ReplayObserver, Store, StoreError, StoreOptions};
use softadastra::wal::{MemDir, PowerCut, SegmentDir};

/// Bytes per segment: small, so that the data spans many segments and the compaction
/// removes many of them.
const SEGMENT_SIZE: u64 = 16 * 1024;
/// The time the snapshots say they were written at.
const WRITTEN_AT_MS: u64 = 1_767_225_600_000;
/// Bytes of the large opaque block (the sync engine's outbox, here): over the writer's
/// 1 MiB buffer, so that the snapshot takes several writes.
const LARGE_BLOCK: usize = (1 << 20) + 4096;

/// The WAL's path: only named in messages and snapshot names; the data lives in the
/// [`MemDir`].
fn wal_path() -> PathBuf {
    std::env::temp_dir().join("softadastra-compaction-powercut.wal")
}

/// The blocks of the layers above the store, as a compaction at `cut` passes them: one
/// larger than the snapshot writer's buffer, one small, both naming the cut.
fn other_blocks(cut: u64) -> Vec<Vec<u8>> {
    let mut large = format!("outbox at cut {cut};").into_bytes();
    large.resize(LARGE_BLOCK, b'o');
    vec![large, format!("progress at cut {cut}").into_bytes()]
}

/// Takes the other layers' snapshot blocks, as the sync engine does on open.
#[derive(Default)]
struct Blocks(Vec<Vec<u8>>);

impl ReplayObserver for Blocks {
    fn snapshot_block(&mut self, block_type: u8, payload: &[u8]) -> Result<(), String> {
        if block_type != block::SYNC {
            return Err(format!("unexpected snapshot block type {block_type}"));
        }
        self.0.push(payload.to_vec());
        Ok(())
    }
}

/// The store on `disk` (durable mode) and the other layers' blocks of the snapshot it
/// loaded.
fn open(disk: &MemDir) -> Result<(Store, Vec<Vec<u8>>), StoreError> {
    let mut options = StoreOptions::new("node-a", Some(wal_path()), true);
    options.wal_segment_size = SEGMENT_SIZE;
    let mut blocks = Blocks::default();
    let store = Store::open_with(&options, Some(Box::new(disk.clone())), &mut blocks)?;
    Ok((store, blocks.0))
}

/// A compaction as the node makes it once it has cut the log: cut, then the store's file
/// steps with the other layers' blocks at the cut.
fn compact(store: &Store) -> Result<(u64, Compacted), StoreError> {
    let cut = store.cut_log()?;
    let payloads = other_blocks(cut);
    let blocks: Vec<(u8, &[u8])> = payloads
        .iter()
        .map(|p| (block::SYNC, p.as_slice()))
        .collect();
    Ok((cut, store.compact_through(cut, WRITTEN_AT_MS, &blocks)?))
}

fn state(store: &Store) -> Model {
    store.list("").into_iter().collect()
}

/// The writes of one phase: puts of 200 B to 3 KiB over 40 keys, a removal every seventh,
/// a batch every eleventh.
fn phase(rng: &mut Rng, tag: &str, count: u64) -> Vec<Action> {
    let key = |rng: &mut Rng| format!("k{:02}", rng.below(40));
    (0..count)
        .map(|i| {
            let mut value = format!("{tag}-{i}-").into_bytes();
            value.resize(200 + rng.below(3000) as usize, b'a' + (i % 26) as u8);
            if i % 7 == 6 {
                Action::Remove(key(rng))
            } else if i % 11 == 10 {
                Action::Batch(vec![
                    Change::Put {
                        key: key(rng),
                        value: value.clone(),
                    },
                    Change::Remove { key: key(rng) },
                    Change::Put {
                        key: format!("batch/{tag}/{i}"),
                        value,
                    },
                ])
            } else {
                Action::Put(key(rng), value)
            }
        })
        .collect()
}

/// The disk before the compaction under test, everything on it durable, and what the
/// store holds: phase one, a compaction (the earlier snapshot), phase two, and the
/// temporary file of a snapshot a crash left half written.
fn base() -> (MemDir, Model, u64) {
    let disk = MemDir::new();
    let (store, _) = open(&disk).unwrap();
    let mut rng = Rng(13);
    let mut model = Model::new();
    for action in phase(&mut rng, "one", 80) {
        action.perform(&store).unwrap();
        action.apply(&mut model);
    }
    let (earlier, _) = compact(&store).unwrap();
    for action in phase(&mut rng, "two", 160) {
        action.perform(&store).unwrap();
        action.apply(&mut model);
    }
    let snapshots = disk.snapshot_dir();
    let unfinished = format!(
        "{}.snap.{:020}.tmp",
        wal_path().file_name().unwrap().to_str().unwrap(),
        earlier + 5
    );
    let mut tmp = snapshots.create(&unfinished).unwrap();
    tmp.write_at(0, b"SOFTASNP half a snapshot").unwrap();
    tmp.sync_all().unwrap();
    snapshots.sync().unwrap();
    assert!(
        store.log_segments().len() > 10,
        "the data spans many segments: {}",
        store.log_segments().len()
    );
    drop(store);
    assert_eq!(
        disk.pending_writes(),
        Vec::<usize>::new(),
        "all of it durable"
    );
    (disk.power_cut(PowerCut::LOSE_UNSYNCED), model, earlier)
}

/// The cuts taken after the power went off with `pending` changes unsynced (in order):
/// every prefix of them kept (none, some, all), and for each one that is a write, the
/// prefix before it kept and it torn at a random byte.
fn cuts(rng: &mut Rng, pending: &[usize]) -> Vec<PowerCut> {
    let mut cuts = Vec::new();
    for (kept_writes, len) in pending.iter().copied().map(Some).chain([None]).enumerate() {
        cuts.push(PowerCut {
            kept_writes,
            torn_bytes: 0,
        });
        if let Some(len @ 2..) = len {
            cuts.push(PowerCut {
                kept_writes,
                torn_bytes: rng.between(1, len as u64 - 1) as usize,
            });
        }
    }
    cuts
}

/// Snapshot files of the WAL on `disk`: (finished ones, temporary ones).
fn snapshot_files(disk: &MemDir) -> (Vec<String>, Vec<String>) {
    let names: Vec<String> = disk.named_files().into_keys().collect();
    let (tmp, done) = names.into_iter().partition(|n| n.ends_with(".tmp"));
    (done, tmp)
}

/// What a reopen after a cut found, for the coverage checks.
struct Reopened {
    /// The cut of the snapshot it loaded.
    snapshot: u64,
    /// The log's files.
    segments: usize,
}

/// Reopens a disk a power cut left and checks it: the model exactly, the other layers'
/// blocks of the snapshot loaded, a write accepted, a second compaction, and a reopen
/// after it with one snapshot and nothing it covers.
fn check(disk: &MemDir, model: &Model) -> Result<Reopened, String> {
    let (store, blocks) = open(disk).map_err(|e| format!("reopen failed: {e}"))?;
    let found = state(&store);
    if found != *model {
        let missing: Vec<&String> = model
            .iter()
            .filter(|(k, v)| found.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        let invented: Vec<&String> = found.keys().filter(|k| !model.contains_key(*k)).collect();
        return Err(format!(
            "reopened with {} keys instead of {}: missing or changed {missing:?}, never \
             written {invented:?}",
            found.len(),
            model.len()
        ));
    }
    let snapshot = store
        .loaded_snapshot()
        .ok_or("no snapshot loaded, though one was durable before the compaction")?
        .covers_through;
    if blocks != other_blocks(snapshot) {
        return Err(format!(
            "the other layers' blocks are not those of snapshot {snapshot}: {} blocks, \
             starting {:?}",
            blocks.len(),
            blocks
                .iter()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned())
                .collect::<Vec<_>>()
        ));
    }
    let reopened = Reopened {
        snapshot,
        segments: store.log_segments().len(),
    };
    store
        .put("after", b"the power cut")
        .map_err(|e| format!("the reopened store refuses a write: {e}"))?;
    let (cut, _) = compact(&store).map_err(|e| format!("a second compaction failed: {e}"))?;
    drop(store);

    let disk = disk.power_cut(PowerCut::LOSE_UNSYNCED);
    let (store, _) = open(&disk).map_err(|e| format!("reopen after the second compaction: {e}"))?;
    let mut expected = model.clone();
    expected.insert("after".into(), b"the power cut".to_vec());
    if state(&store) != expected {
        return Err("after the second compaction the store lost or invented writes".into());
    }
    if store.loaded_snapshot().map(|s| s.covers_through) != Some(cut) {
        return Err(format!(
            "the second compaction's snapshot ({cut}) was not loaded"
        ));
    }
    let (done, tmp) = snapshot_files(&disk);
    if done.len() != 1 || !tmp.is_empty() {
        return Err(format!(
            "after the second compaction: snapshots {done:?}, temporary files {tmp:?}"
        ));
    }
    if let Some(s) = store
        .log_segments()
        .iter()
        .find(|s| s.first_sequence <= cut)
    {
        return Err(format!(
            "segment {} (from record {}) is still there, though snapshot {cut} covers it",
            s.path.display(),
            s.first_sequence
        ));
    }
    Ok(reopened)
}

#[test]
fn a_power_cut_at_any_step_of_a_compaction_loses_no_acknowledged_write() {
    let (base, model, earlier) = base();
    let segments_before = {
        let (store, _) = open(&base).unwrap();
        store.log_segments().len()
    };

    // The dry run: how many storage calls a compaction makes.
    let dry = base.power_cut(PowerCut::LOSE_UNSYNCED);
    let (store, _) = open(&dry).unwrap();
    let before = dry.calls();
    let (cut, done) = compact(&store).unwrap();
    let steps = dry.calls() - before;
    drop(store);
    assert_eq!(
        (done.snapshots_removed, done.unfinished_removed),
        (1, 1),
        "{done:?}"
    );
    assert!(
        done.segments_removed >= 10 && steps > 2 * done.segments_removed as u64 + 10,
        "{steps} calls, {done:?}"
    );

    let mut rng = Rng(2026);
    let mut reopens = 0;
    let mut loaded = BTreeSet::new();
    let mut segments_left = BTreeSet::new();
    let mut failures = Vec::new();
    // `steps` itself: the compaction finished, the power goes off right after.
    for step in 0..=steps {
        let disk = base.power_cut(PowerCut::LOSE_UNSYNCED);
        let (store, _) = open(&disk).unwrap();
        disk.power_off_after(step);
        let result = compact(&store);
        assert_eq!(
            result.is_ok(),
            step == steps,
            "power off after {step} of {steps} calls: {result:?}"
        );
        assert_eq!(
            state(&store),
            model,
            "step {step}: the failed compaction changed memory"
        );
        drop(store);
        let pending = disk.pending_writes();
        for power_cut in cuts(&mut rng, &pending) {
            reopens += 1;
            match check(&disk.power_cut(power_cut), &model) {
                Ok(r) => {
                    loaded.insert(r.snapshot);
                    if r.snapshot == cut {
                        segments_left.insert(r.segments);
                    }
                }
                Err(e) => failures.push(format!(
                    "power off after {step} of {steps} calls, {power_cut:?} of {} unsynced \
                     changes: {e}",
                    pending.len()
                )),
            }
        }
    }
    println!(
        "{steps} calls in a compaction removing {} segments of {segments_before}: {reopens} \
         reopens, snapshots loaded {loaded:?}, segments left with the new one \
         {segments_left:?}, {} failures",
        done.segments_removed,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        loaded,
        BTreeSet::from([earlier, cut]),
        "cuts landed both before and after the new snapshot became durable"
    );
    assert!(
        segments_left.len() > done.segments_removed / 2,
        "cuts landed between segment removals: {segments_left:?}"
    );
}
