//! The store's part of a snapshot (`snapshot.rs` is the file format): its entries, clock
//! and version vector written as blocks, and a store's state rebuilt from them.
//!
//! Writers keep going while a snapshot is written. The entries are read a chunk at a
//! time, each under a short read lock, and encoded and written with no lock held; the
//! snapshot is therefore "fuzzy": each entry is as it was at some moment after the cut.
//! That is enough because applying is last-writer-wins and idempotent (an entry, the
//! version vector and the clock only ever move forward): the snapshot plus every record
//! after the cut, replayed on top, gives the same state as the whole log, as long as
//! every record up to the cut was applied before the first chunk was read (the caller's
//! cut guarantees it).

use std::path::{Path, PathBuf};

use super::snapshot::{SnapshotInfo, SnapshotWriter, block};
use super::*;
use crate::codec::Reader;
use crate::wal::SnapshotDir;

/// Encoded entries per block, in bytes: blocks stay small, and a chunk's read lock short.
const ENTRIES_BLOCK_BYTES: usize = 1 << 20;
/// Entries copied under one read lock at most. A local write's apply waits for the lock
/// while a chunk is copied: with 4096 entries of 100 bytes, about 0.7 ms a time, and
/// durable puts' p99 during a compaction was 3.6 times the idle one; with 256 it is
/// within 2 (benches/storage.rs).
const ENTRIES_PER_CHUNK: usize = 256;
/// Key and value bytes copied under one read lock at most (beyond the first entry): large
/// values make short chunks.
const BYTES_PER_CHUNK: usize = 64 << 10;

/// Payload version of the clock block.
const CLOCK_VERSION: u8 = 1;
/// Payload version of the vector block.
const VECTOR_VERSION: u8 = 1;
/// Payload version of the collected block.
const COLLECTED_VERSION: u8 = 1;

impl Store {
    /// Writes the store's blocks (entries, clock, version vector) into `w`. Takes each
    /// lock only to copy a bounded chunk; encoding and writing happen with none held.
    pub fn write_snapshot_blocks(&self, w: &mut SnapshotWriter) -> Result<(), StoreError> {
        let snapshot_error = |e: super::snapshot::SnapshotError| StoreError::Snapshot(e);
        let mut after: Option<String> = None;
        let mut payload = Vec::new();
        let mut pending: Vec<Operation> = Vec::new();
        let mut pending_bytes = 0usize;
        loop {
            let chunk: Vec<Operation> = {
                let map = self.map.read();
                let range = match &after {
                    None => map.entries.range((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)),
                    Some(k) => map
                        .entries
                        .range((std::ops::Bound::Excluded(k.as_str()), std::ops::Bound::Unbounded)),
                };
                let mut bytes = 0usize;
                range
                    .take(ENTRIES_PER_CHUNK)
                    .take_while(|(k, e)| {
                        let within = bytes < BYTES_PER_CHUNK;
                        bytes += k.len() + e.value.map_or(0, <[u8]>::len);
                        within
                    })
                    .map(|(k, e)| e.to_operation(k))
                    .collect()
            };
            let Some(last) = chunk.last() else {
                break;
            };
            after = Some(last.key.clone());
            for op in chunk {
                pending_bytes += op.key.len() + op.value.as_ref().map_or(0, Vec::len) + 64;
                pending.push(op);
                if pending_bytes >= ENTRIES_BLOCK_BYTES {
                    payload.clear();
                    op::encode_ops(&mut payload, pending.iter().map(Operation::as_op));
                    w.block(block::ENTRIES, &payload).map_err(snapshot_error)?;
                    pending.clear();
                    pending_bytes = 0;
                }
            }
        }
        if !pending.is_empty() {
            payload.clear();
            op::encode_ops(&mut payload, pending.iter().map(Operation::as_op));
            w.block(block::ENTRIES, &payload).map_err(snapshot_error)?;
        }
        let (last_version, next_seq) = {
            let counters = self.counters.lock();
            (counters.clock.last(), counters.next_seq)
        };
        let mut clock = vec![CLOCK_VERSION];
        clock.extend_from_slice(&last_version.0.to_le_bytes());
        clock.extend_from_slice(&next_seq.to_le_bytes());
        w.block(block::CLOCK, &clock).map_err(snapshot_error)?;
        let vector = self.map.read().vector.clone();
        let mut encoded = vec![VECTOR_VERSION];
        vector.encode(&mut encoded);
        w.block(block::VECTOR, &encoded).map_err(snapshot_error)?;
        // Read after every entry: it covers each tombstone the entries lack for having
        // been collected (it only grows).
        let collected = self.collected();
        if collected.is_empty() {
            return Ok(());
        }
        let mut encoded = vec![COLLECTED_VERSION];
        collected.encode(&mut encoded);
        w.block(block::COLLECTED, &encoded).map_err(snapshot_error)
    }
}

/// What [`Store::compact_through`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The new snapshot.
    pub snapshot: SnapshotInfo,
    /// Older snapshots deleted.
    pub snapshots_removed: usize,
    /// Temporary files of unfinished snapshots deleted (left by a crash).
    pub unfinished_removed: usize,
    /// Log segments deleted (the snapshot holds their effect).
    pub segments_removed: usize,
}

impl Store {
    /// The directory of the store's snapshots, its WAL's (`None` for a memory-only store).
    pub fn snapshot_dir(&self) -> Option<Arc<dyn SnapshotDir>> {
        self.snapshots.clone()
    }

    /// Writes the snapshot of the store at log cut `cut` as file `name` of `dir`: the
    /// store's blocks (read while writers go on), then `other_blocks` (type, payload: the
    /// layers above, opaque here). The file is written as `<name>.tmp`, synced, renamed
    /// into place, the directory synced, then read back whole: only a snapshot that reads
    /// back intact is returned. The caller makes sure every record up to `cut` is applied.
    pub fn write_snapshot(
        &self,
        dir: Arc<dyn SnapshotDir>,
        name: &str,
        cut: u64,
        written_at_ms: u64,
        other_blocks: &[(u8, &[u8])],
    ) -> Result<SnapshotInfo, StoreError> {
        let mut writer = SnapshotWriter::create(dir.clone(), name, cut, written_at_ms)?;
        self.write_snapshot_blocks(&mut writer)?;
        for &(block_type, payload) in other_blocks {
            writer.block(block_type, payload)?;
        }
        let info = writer.finish()?;
        // Nothing relies on the new snapshot before it reads back whole.
        super::snapshot::read(&*dir, name, |_, _| Ok(()))?;
        Ok(info)
    }

    /// The file steps of a compaction, once the caller has cut the log at `cut` (with
    /// every record up to it applied, and `other_blocks` taken at the cut):
    /// 1. the snapshot is written, synced, renamed into place, its directory synced and
    ///    read back whole ([`Store::write_snapshot`]);
    /// 2. older snapshots and the temporary files of unfinished ones are deleted, then
    ///    the directory synced;
    /// 3. the log segments the snapshot covers are deleted, oldest first, the directory
    ///    synced after each ([`crate::wal::Wal::remove_segments_through`]).
    ///
    /// A crash before step 1 completes leaves the previous snapshot and every segment; after
    /// it, the new snapshot and every segment after its cut. A failure returns the error
    /// with nothing after it done; the store keeps working on what is there.
    pub fn compact_through(
        &self,
        cut: u64,
        written_at_ms: u64,
        other_blocks: &[(u8, &[u8])],
    ) -> Result<Compacted, StoreError> {
        let (Some(dir), Some(wal_path)) = (self.snapshot_dir(), self.wal_path()) else {
            return Err(StoreError::Wal(WalError::Closed {
                path: PathBuf::from("(memory only)"),
            }));
        };
        let wal_name = wal_name(wal_path);
        let snapshot = self.write_snapshot(
            dir.clone(),
            &snapshot_name(&wal_name, cut),
            cut,
            written_at_ms,
            other_blocks,
        )?;
        let files = list_snapshots(&*dir, &wal_name)?;
        let remove = |name: &str| {
            dir.remove(name).map_err(|e| {
                StoreError::Snapshot(super::snapshot::SnapshotError::Io {
                    op: "remove",
                    path: dir.path(name),
                    cause: crate::io_error::describe_io(&e),
                })
            })
        };
        let mut snapshots_removed = 0;
        for (_, name) in files.snapshots.iter().filter(|(older, _)| *older < cut) {
            remove(name)?;
            snapshots_removed += 1;
        }
        for name in &files.unfinished {
            remove(name)?;
        }
        if snapshots_removed + files.unfinished.len() > 0 {
            dir.sync().map_err(|e| {
                StoreError::Snapshot(super::snapshot::SnapshotError::Io {
                    op: "sync the directory of",
                    path: dir.path(&snapshot_name(&wal_name, cut)),
                    cause: crate::io_error::describe_io(&e),
                })
            })?;
        }
        let segments_removed = self.remove_log_through(cut)?;
        Ok(Compacted {
            snapshot,
            snapshots_removed,
            unfinished_removed: files.unfinished.len(),
            segments_removed,
        })
    }
}

/// A store's state being rebuilt from a snapshot's blocks.
#[derive(Default)]
pub(super) struct Image {
    pub(super) map: Map,
    pub(super) counters: LocalCounters,
}

impl Image {
    /// Takes one of the store's blocks. Returns false for a block of another layer (the
    /// caller hands it on).
    pub(super) fn take(&mut self, block_type: u8, payload: &[u8]) -> Result<bool, String> {
        match block_type {
            block::ENTRIES => {
                let mut result = Ok(());
                op::decode_ops(payload, |op| {
                    if result.is_ok() {
                        result = validate_entry(&op);
                    }
                    if result.is_ok() {
                        self.map.apply(&op);
                    }
                })?;
                result?;
            }
            block::CLOCK => {
                let mut r = Reader::new(payload, "clock block");
                let version = r.u8("payload version")?;
                if version != CLOCK_VERSION {
                    return Err(format!("unsupported clock block version {version}"));
                }
                self.counters.clock.observe(Version(r.u64("clock")?));
                let next_seq = r.u64("next sequence number")?;
                self.counters.next_seq = self.counters.next_seq.max(next_seq);
            }
            block::VECTOR => {
                let mut r = Reader::new(payload, "vector block");
                let version = r.u8("payload version")?;
                if version != VECTOR_VERSION {
                    return Err(format!("unsupported vector block version {version}"));
                }
                let vector = VersionVector::decode(&mut r)?;
                // Bounded like a vector that grew here (a damaged or forged file must not
                // make an unbounded one).
                if vector.origin_count() > MAX_ORIGINS || vector.range_count() > MAX_RANGES {
                    return Err(format!(
                        "a version vector of {} origins and {} ranges exceeds the limits \
                         ({MAX_ORIGINS} and {MAX_RANGES})",
                        vector.origin_count(),
                        vector.range_count()
                    ));
                }
                self.map.vector.merge(&vector);
            }
            block::COLLECTED => {
                let mut r = Reader::new(payload, "collected block");
                let version = r.u8("payload version")?;
                if version != COLLECTED_VERSION {
                    return Err(format!("unsupported collected block version {version}"));
                }
                let collected = Collected::decode(&mut r)?;
                if r.remaining() != 0 {
                    return Err(format!("{} bytes after the collected block", r.remaining()));
                }
                // decode keeps at most MAX_ORIGINS origins, so this fits.
                self.map.collected = collected;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The name of the snapshot of the WAL named `wal_name` that holds every record through
/// `covers_through`: `<wal name>.snap.<covers_through, 20 digits>`, so that names sort in
/// order. It is written as `<that>.tmp` first.
pub(crate) fn snapshot_name(wal_name: &str, covers_through: u64) -> String {
    format!("{wal_name}.snap.{covers_through:020}")
}

/// What file `name` is among the snapshots of the WAL named `wal_name`: `Some((cut,
/// false))` for a snapshot, `Some((cut, true))` for the temporary file of one being (or
/// left unfinished while being) written, `None` for anything else.
pub(crate) fn parse_snapshot_name(wal_name: &str, name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(wal_name)?.strip_prefix(".snap.")?;
    let (digits, tmp) = match rest.strip_suffix(".tmp") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Twenty digits can exceed u64: such a name was not written here.
    Some((digits.parse().ok()?, tmp))
}

/// The file name of the WAL at `wal_path`, which its snapshots' names start with.
pub(crate) fn wal_name(wal_path: &Path) -> String {
    wal_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The snapshot of the WAL at `wal_path` that holds every record through
/// `covers_through`, as a path: [`snapshot_name`] in the WAL's directory.
pub(crate) fn snapshot_path(wal_path: &Path, covers_through: u64) -> PathBuf {
    wal_path.with_file_name(snapshot_name(&wal_name(wal_path), covers_through))
}

/// The file a restore into the WAL at `wal_path` keeps while it works
/// (`<wal>.restoring`): a store does not open while it is there.
pub(crate) fn restore_marker_path(wal_path: &Path) -> PathBuf {
    let mut name = wal_path.as_os_str().to_owned();
    name.push(".restoring");
    PathBuf::from(name)
}

/// The next own sequence number a clock block holds.
pub(crate) fn clock_next_seq(payload: &[u8]) -> Result<u64, String> {
    let mut r = Reader::new(payload, "clock block");
    let version = r.u8("payload version")?;
    if version != CLOCK_VERSION {
        return Err(format!("unsupported clock block version {version}"));
    }
    r.u64("clock")?;
    let next_seq = r.u64("next sequence number")?;
    if r.remaining() != 0 {
        return Err(format!("{} bytes after the clock block's fields", r.remaining()));
    }
    Ok(next_seq)
}

/// A clock block like `payload` whose next own sequence number is at least `floor`: how
/// a restore makes the restored node number its operations past its earlier incarnation's
/// (docs/backup.md).
pub(crate) fn clock_with_next_seq_at_least(payload: &[u8], floor: u64) -> Result<Vec<u8>, String> {
    let next_seq = clock_next_seq(payload)?;
    let mut raised = payload.to_vec();
    raised[9..17].copy_from_slice(&next_seq.max(floor).to_le_bytes());
    Ok(raised)
}

/// The snapshot files of one WAL in its directory.
#[derive(Debug, Default)]
pub(crate) struct SnapshotFiles {
    /// Finished snapshots as (cut, name), newest (greatest cut) first.
    pub(crate) snapshots: Vec<(u64, String)>,
    /// Temporary files of snapshots never finished (a crash, or a failure whose cleanup
    /// failed too): not snapshots, never read.
    pub(crate) unfinished: Vec<String>,
}

/// The snapshot files of the WAL named `wal_name` in `dir`. A directory that does not
/// exist (or is not one) holds none: the WAL's open says what is wrong with it.
pub(crate) fn list_snapshots(
    dir: &dyn SnapshotDir,
    wal_name: &str,
) -> Result<SnapshotFiles, StoreError> {
    let names = match dir.list() {
        Ok(names) => names,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Ok(SnapshotFiles::default());
        }
        Err(e) => {
            return Err(StoreError::Snapshot(super::snapshot::SnapshotError::Io {
                op: "list the snapshots in",
                path: dir.path(""),
                cause: crate::io_error::describe_io(&e),
            }));
        }
    };
    let mut files = SnapshotFiles::default();
    for name in names {
        match parse_snapshot_name(wal_name, &name) {
            Some((cut, false)) => files.snapshots.push((cut, name)),
            Some((_, true)) => files.unfinished.push(name),
            None => {}
        }
    }
    files.snapshots.sort_by_key(|(cut, _)| std::cmp::Reverse(*cut));
    files.unfinished.sort();
    Ok(files)
}

/// A snapshot read whole: the store's state, the other layers' blocks, its header.
pub(super) struct Loaded {
    pub(super) image: Image,
    pub(super) others: Vec<(u8, Vec<u8>)>,
    pub(super) info: SnapshotInfo,
}

/// The state in the newest intact snapshot of the WAL at `wal_path` (its files in `dir`),
/// with the blocks of the other layers (handed to them only once the whole snapshot proved
/// intact). A damaged snapshot is logged with its file and offset and the next older one
/// is tried; whether the log still holds every record after an older cut is the WAL's
/// check. When there are snapshots and none is intact, the newest one's damage is the
/// error: the log alone no longer holds everything, and the open must not go on as if it
/// did.
pub(super) fn load_newest(
    dir: &dyn SnapshotDir,
    wal_path: &Path,
) -> Result<Option<Loaded>, StoreError> {
    let mut newest_damage = None;
    for (_, name) in list_snapshots(dir, &wal_name(wal_path))?.snapshots {
        let mut image = Image::default();
        let mut others = Vec::new();
        let read = super::snapshot::read(dir, &name, |t, payload| {
            if !image.take(t, payload)? {
                others.push((t, payload.to_vec()));
            }
            Ok(())
        });
        match read {
            Ok(info) => {
                log::info!(
                    "store {}: loaded snapshot {} (every record through {}, {} bytes)",
                    wal_path.display(),
                    dir.path(&name).display(),
                    info.covers_through,
                    info.bytes
                );
                return Ok(Some(Loaded {
                    image,
                    others,
                    info,
                }));
            }
            Err(e) => {
                log::error!("store {}: {e}; trying an older snapshot", wal_path.display());
                newest_damage.get_or_insert(e);
            }
        }
    }
    match newest_damage {
        Some(e) => Err(e.into()),
        None => Ok(None),
    }
}

/// An entry read from a snapshot follows the rules of a logged operation.
fn validate_entry(op: &Op<'_>) -> Result<(), String> {
    validate_key(op.key).map_err(|e| e.to_string())?;
    crate::id::validate_node_id(op.origin).map_err(|e| e.to_string())?;
    if op.value.is_some_and(|v| v.len() > MAX_VALUE_LEN) {
        return Err(format!("the value of {} is too large", shown_key(op.key)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::snapshot;

    fn op(key: &str, value: Option<&[u8]>, version: u64, origin: &str, seq: u64) -> Operation {
        Operation {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
            version: Version(version),
            origin: origin.into(),
            origin_seq: seq,
            base: None,
        }
    }

    fn image_of(path: &std::path::Path) -> Image {
        let mut image = Image::default();
        snapshot::read_file(path, |t, p| image.take(t, p).map(|_| ())).unwrap();
        image
    }

    #[test]
    fn a_store_rebuilt_from_its_snapshot_has_the_same_entries_vector_and_clock() {
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        for i in 0..10_000 {
            store.put(&format!("k{i:05}"), &[i as u8; 150]).unwrap();
        }
        store.remove("k00007").unwrap();
        store
            .apply_remote(&[op("r1", Some(b"remote"), 5, "node-b", 1)])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let mut w = SnapshotWriter::create_file(&path, 3, 0).unwrap();
        store.write_snapshot_blocks(&mut w).unwrap();
        let info = w.finish().unwrap();
        assert!(info.blocks > 3, "entries cut into several blocks: {info:?}");

        let image = image_of(&path);
        let map = store.map.read();
        assert_eq!(image.map.entries, map.entries);
        assert_eq!(image.map.live, map.live);
        assert_eq!(image.map.vector, map.vector);
        let counters = store.counters.lock();
        assert_eq!(image.counters.clock.last(), counters.clock.last());
        assert_eq!(image.counters.next_seq, counters.next_seq);
    }

    #[test]
    fn entries_copied_in_chunks_cut_by_bytes_are_each_written_once() {
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        // Values of 100 KiB end a chunk after one entry; small ones after 256 entries.
        for i in 0..700usize {
            let len = if i % 97 == 0 { 100 << 10 } else { 20 };
            store.put(&format!("k{i:04}"), &vec![i as u8; len]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let mut w = SnapshotWriter::create_file(&path, 0, 0).unwrap();
        store.write_snapshot_blocks(&mut w).unwrap();
        w.finish().unwrap();

        let mut keys = Vec::new();
        snapshot::read_file(&path, |block_type, payload| {
            if block_type == block::ENTRIES {
                op::decode_ops(payload, |o| keys.push(o.key.to_string())).unwrap();
            }
            Ok(())
        })
        .unwrap();
        let expected: Vec<String> = (0..700).map(|i| format!("k{i:04}")).collect();
        assert_eq!(keys, expected, "every entry once, in key order");
        assert_eq!(image_of(&path).map.entries, store.map.read().entries);
    }

    #[test]
    fn snapshot_names_are_told_apart_from_their_temporary_files_and_other_files() {
        let name = snapshot_name("node.wal", 5011);
        assert_eq!(name, "node.wal.snap.00000000000000005011");
        assert_eq!(parse_snapshot_name("node.wal", &name), Some((5011, false)));
        assert_eq!(
            parse_snapshot_name("node.wal", &format!("{name}.tmp")),
            Some((5011, true))
        );
        for other in [
            "node.wal",
            "node.wal.00000000000000005011",
            "node.wal.snap.5011",
            "node.wal.snap.0000000000000000501x",
            "node.wal.snap.99999999999999999999",
            "other.wal.snap.00000000000000005011",
            "node.wal.snap.00000000000000005011.tmp.tmp",
            "node.wal.key",
        ] {
            assert_eq!(parse_snapshot_name("node.wal", other), None, "{other}");
        }
        assert_eq!(
            snapshot_path(Path::new("/data/node.wal"), 7),
            Path::new("/data/node.wal.snap.00000000000000000007")
        );
    }

    #[test]
    fn an_entry_breaking_the_rules_is_refused_naming_it() {
        let mut payload = Vec::new();
        let bad = op("", Some(b"x"), 1, "node-a", 1);
        op::encode_ops(&mut payload, std::iter::once(bad.as_op()));
        let e = Image::default().take(block::ENTRIES, &payload).unwrap_err();
        assert!(e.contains("key"), "{e}");
    }
}
