//! Looking at a damaged log, and saving what can be saved, as `redis-check-aof` and
//! sqlite's `.recover` do: [`inspect`] lists a WAL's snapshots and segments, their records,
//! and every place that is damaged (file, byte offset, what); [`salvage`] copies the
//! newest intact snapshot and the unbroken run of good records after it into a new data
//! directory. Neither ever writes to the source: inspect takes no lock and opens every file
//! read-only; salvage only reads it, under a shared lock that a running node's exclusive
//! one refuses.
//!
//! The salvaged node starts a new incarnation, as a restored one does (module docs of
//! `backup`): the records after the damage are lost here but may be held by peers, and the
//! node must never number a new operation as one of those.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{BackupError, RestoreTarget, incarnation_floor, io_error, node_files, some_names};
use crate::store::checkpoint::{
    clock_next_seq, clock_with_next_seq_at_least, parse_snapshot_name, restore_marker_path,
    snapshot_path,
};
use crate::store::snapshot::{self, SnapshotError, SnapshotWriter, block};
use crate::wal::format::{self, FileHeader, LogEnd, ScanError};
use crate::wal::{FileDir, RecordType, Wal, WalError, WalOptions, segment_path};

/// A damaged place of a WAL or snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The file.
    pub path: PathBuf,
    /// The byte offset where the damage starts.
    pub offset: u64,
    /// What is wrong, in words.
    pub what: String,
}

/// One snapshot file of the WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// The cut its name gives: it holds every record through this one.
    pub covers_through: u64,
    /// Its size.
    pub bytes: u64,
    /// Every check passed (header, blocks, footer, whole-file checksum).
    pub intact: bool,
    /// Blocks read (0 when not intact).
    pub blocks: u64,
    /// When it was written, milliseconds since the Unix epoch (0 when not intact).
    pub written_at_ms: u64,
}

/// One record of a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectedRecord {
    /// Byte offset of its header in the file.
    pub offset: u64,
    /// Its sequence number.
    pub sequence: u64,
    /// `store_ops` or `sync_marks`.
    pub record_type: &'static str,
    /// Its payload's size.
    pub payload_bytes: u64,
}

/// One file of the log: a segment, or the single-file log of format version 1 at the WAL
/// path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectedFile {
    /// The file.
    pub path: PathBuf,
    /// The first record number its name gives (`None` for the version 1 file).
    pub first_sequence: Option<u64>,
    /// The single-file log of format version 1 at the WAL path.
    pub legacy: bool,
    /// Its size, preallocated zeros included.
    pub bytes: u64,
    /// Valid records read before the end or the first damage.
    pub records: u64,
    /// The first valid record's number.
    pub first_record: Option<u64>,
    /// The last valid record's number.
    pub last_record: Option<u64>,
    /// Where its valid records end.
    pub end_offset: u64,
    /// Bytes of a record never finished at its end (a node cuts them at its next start);
    /// 0 when none.
    pub torn_tail_bytes: u64,
    /// Its records, when asked for.
    pub record_list: Vec<InspectedRecord>,
}

/// What [`inspect`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalInspection {
    /// The WAL inspected.
    pub wal_path: PathBuf,
    /// Newest (greatest cut) first.
    pub snapshots: Vec<InspectedSnapshot>,
    /// Temporary files of snapshots never finished (never read by a node).
    pub unfinished_snapshots: Vec<PathBuf>,
    /// In log order.
    pub files: Vec<InspectedFile>,
    /// Every damaged place found, in the order met.
    pub damage: Vec<Damage>,
    /// The newest intact snapshot's cut (0: no intact snapshot).
    pub snapshot_cut: u64,
    /// Records `snapshot_cut + 1 ..= good_through` are all there and intact, one after the
    /// other: with the snapshot, what a salvage keeps (`snapshot_cut` when none is).
    pub good_through: u64,
    /// The greatest record number read anywhere (0: none).
    pub last_sequence: u64,
    /// Valid records read, over every file.
    pub records: u64,
}

impl WalInspection {
    /// Whether nothing is damaged: a node opens this WAL and loses nothing.
    pub fn healthy(&self) -> bool {
        self.damage.is_empty()
    }
}

fn record_type_name(t: RecordType) -> &'static str {
    match t {
        RecordType::StoreOps => "store_ops",
        RecordType::SyncMarks => "sync_marks",
        RecordType::StoreForget => "store_forget",
    }
}

/// The directory and file name of a WAL path.
fn split(wal: &Path) -> Result<(PathBuf, String), BackupError> {
    let dir = match wal.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = wal
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError::Io {
            op: "use",
            path: wal.to_path_buf(),
            cause: "the WAL path has no file name in UTF-8".into(),
        })?
        .to_string();
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok((dir, name)),
        Ok(_) => Err(WalError::NotADirectory {
            path: wal.to_path_buf(),
            dir,
        }
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(WalError::MissingDirectory {
            path: wal.to_path_buf(),
            dir,
        }
        .into()),
        Err(e) => Err(io_error("read", &dir)(e)),
    }
}

/// The log files of the WAL at `wal`: the version 1 file when the file at the WAL path
/// holds bytes, then the segments by first number.
fn log_files(wal: &Path, dir: &Path, name: &str) -> Result<Vec<(Option<u64>, PathBuf)>, BackupError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error("read the directory", dir))? {
        let entry = entry.map_err(io_error("read the directory", dir))?;
        let file_name = entry.file_name();
        let Some(digits) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(name))
            .and_then(|n| n.strip_prefix('.'))
        else {
            continue;
        };
        if digits.len() == 20
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(first) = digits.parse::<u64>()
        {
            segments.push(first);
        }
    }
    segments.sort_unstable();
    let mut files = Vec::new();
    if std::fs::metadata(wal).is_ok_and(|m| m.len() > 0) {
        files.push((None, wal.to_path_buf()));
    }
    files.extend(segments.into_iter().map(|f| (Some(f), segment_path(wal, f))));
    Ok(files)
}

/// Reads a whole file (read-only).
fn read_whole(path: &Path) -> Result<Vec<u8>, BackupError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_error("read", path))?;
    Ok(bytes)
}

/// Where a file's records start and what number the first must have, or why its header
/// is refused. `None`: the version 1 file holds no log (it is only the lock).
fn header_of(first: Option<u64>, bytes: &[u8]) -> Result<Option<Option<u64>>, String> {
    match first {
        Some(first) => match format::check_header(bytes, &format::encode_segment_header(first)) {
            Ok(FileHeader::Segment { first_sequence }) if first_sequence == first => {
                Ok(Some(Some(first)))
            }
            Ok(_) => Err(format!("its header is not that of the segment from record {first}")),
            Err(format::HeaderProblem::Incomplete)
                if bytes.iter().skip(format::FILE_HEADER_LEN).all(|&b| b == 0) =>
            {
                // A creation cut short: no record, and the node initialises it again.
                Ok(None)
            }
            Err(problem) => Err(problem.describe()),
        },
        None => match format::check_file_header(bytes) {
            Ok(FileHeader::Legacy) => Ok(Some(None)),
            Ok(FileHeader::Segment { .. }) => {
                Err("the file at the WAL path holds a segment's header".into())
            }
            Err(format::HeaderProblem::Incomplete) => Ok(None),
            Err(problem) => Err(problem.describe()),
        },
    }
}

/// Lists the snapshots and log files of the WAL at `wal` with their records, and every
/// damaged place. Reads only; takes no lock (a node running meanwhile may make the end of
/// the log look torn).
pub fn inspect(wal: &Path, list_records: bool) -> Result<WalInspection, BackupError> {
    let (dir, name) = split(wal)?;
    let mut report = WalInspection {
        wal_path: wal.to_path_buf(),
        snapshots: Vec::new(),
        unfinished_snapshots: Vec::new(),
        files: Vec::new(),
        damage: Vec::new(),
        snapshot_cut: 0,
        good_through: 0,
        last_sequence: 0,
        records: 0,
    };
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_error("read the directory", &dir))? {
        let entry = entry.map_err(io_error("read the directory", &dir))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match parse_snapshot_name(&name, &file_name) {
            Some((cut, false)) => snapshots.push((cut, entry.path())),
            Some((_, true)) => report.unfinished_snapshots.push(entry.path()),
            None => {}
        }
    }
    snapshots.sort_by_key(|(cut, _)| std::cmp::Reverse(*cut));
    report.unfinished_snapshots.sort();
    for (cut, path) in snapshots {
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut s = InspectedSnapshot {
            path: path.clone(),
            covers_through: cut,
            bytes,
            intact: false,
            blocks: 0,
            written_at_ms: 0,
        };
        match snapshot::read_file(&path, |_, _| Ok(())) {
            Ok(info) if info.covers_through == cut => {
                s.intact = true;
                s.blocks = info.blocks;
                s.written_at_ms = info.written_at_ms;
                if report.snapshot_cut == 0 {
                    report.snapshot_cut = cut;
                }
            }
            Ok(info) => report.damage.push(Damage {
                path: path.clone(),
                offset: 16,
                what: format!(
                    "its header says it holds records through {}, its name says {cut}",
                    info.covers_through
                ),
            }),
            Err(e) => {
                let (offset, what) = match &e {
                    SnapshotError::Damaged { offset, reason, .. }
                    | SnapshotError::BadBlock { offset, reason, .. } => (*offset, reason.clone()),
                    SnapshotError::Io { op, cause, .. } => (0, format!("cannot {op} it: {cause}")),
                };
                report.damage.push(Damage { path, offset, what });
            }
        }
        report.snapshots.push(s);
    }

    // The unbroken run of records after the snapshot's cut: where it ends, and whether
    // it was broken (damage, or a gap in the numbers).
    let mut run_end = report.snapshot_cut;
    let mut broken = false;
    let files = log_files(wal, &dir, &name)?;
    let count = files.len();
    for (i, (first, path)) in files.into_iter().enumerate() {
        let bytes = read_whole(&path)?;
        let mut file = InspectedFile {
            path: path.clone(),
            first_sequence: first,
            legacy: first.is_none(),
            bytes: bytes.len() as u64,
            records: 0,
            first_record: None,
            last_record: None,
            end_offset: format::FILE_HEADER_LEN.min(bytes.len()) as u64,
            torn_tail_bytes: 0,
            record_list: Vec::new(),
        };
        let required = match header_of(first, &bytes) {
            Ok(Some(required)) => required,
            Ok(None) => {
                report.files.push(file);
                continue;
            }
            Err(what) => {
                report.damage.push(Damage {
                    path,
                    offset: 0,
                    what: format!("not a Softadastra WAL file: {what}"),
                });
                broken = true;
                report.files.push(file);
                continue;
            }
        };
        let scanned = format::scan_from(&bytes, required, |r| {
            file.records += 1;
            file.first_record.get_or_insert(r.sequence);
            file.last_record = Some(r.sequence);
            if list_records {
                file.record_list.push(InspectedRecord {
                    offset: r.offset,
                    sequence: r.sequence,
                    record_type: record_type_name(r.record_type),
                    payload_bytes: r.payload.len() as u64,
                });
            }
            Ok::<(), ()>(())
        });
        // The file's records as far as they are good, and where they stop.
        let mut stopped = None;
        match scanned {
            Ok(summary) => match summary.end {
                LogEnd::Clean { end } => file.end_offset = end,
                LogEnd::TornTail { end, dropped_end } => {
                    file.end_offset = end;
                    file.torn_tail_bytes = dropped_end - end;
                    if i + 1 < count {
                        stopped = Some(Damage {
                            path: path.clone(),
                            offset: end,
                            what: "a damaged record at the end of a segment that is not the \
                                   last (segments are synced before the next one starts)"
                                .into(),
                        });
                    }
                }
            },
            Err(ScanError::Corrupt(c)) => {
                stopped = Some(Damage {
                    path: path.clone(),
                    offset: c.offset,
                    what: format!("{}; valid records follow it", c.reason),
                });
            }
            Err(ScanError::Callback(())) => {}
        }
        report.records += file.records;
        if let Some(last) = file.last_record {
            report.last_sequence = report.last_sequence.max(last);
        }
        // Does this file carry the run on?
        let starts = file.first_record.or(required);
        match (starts, file.last_record) {
            (Some(a), last) if !broken => {
                if a > run_end + 1 {
                    report.damage.push(Damage {
                        path: path.clone(),
                        offset: format::FILE_HEADER_LEN as u64,
                        what: format!(
                            "records {} to {} are missing before this file (it starts at {a})",
                            run_end + 1,
                            a - 1
                        ),
                    });
                    broken = true;
                } else if let Some(last) = last {
                    run_end = run_end.max(last);
                }
            }
            _ => {}
        }
        if let Some(d) = stopped {
            report.damage.push(d);
            broken = true;
        }
        report.files.push(file);
    }
    report.good_through = run_end;
    Ok(report)
}

/// What [`salvage`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// The cut of the snapshot copied (0: the source had no intact snapshot).
    pub snapshot_cut: u64,
    /// Records copied after it.
    pub records: u64,
    /// The last record kept: the salvaged node holds everything through it.
    pub good_through: u64,
    /// The greatest record number the source held (beyond `good_through`: lost here).
    pub source_last_sequence: u64,
    /// The damage the source has (what was left behind).
    pub damage: Vec<Damage>,
    /// The next own sequence number of the salvaged node: the start of its new
    /// incarnation.
    pub next_own_seq: u64,
    /// Files of a node that were in the target and were removed (`force`).
    pub removed: Vec<PathBuf>,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// The source's key (`<wal>.key`) was copied: peers know the salvaged node.
    pub key_copied: bool,
}

/// Copies the good part of the WAL at `source` (its newest intact snapshot, and the
/// unbroken run of intact records after it, [`inspect`]) into a new node at `target` (a
/// WAL path), with its key (`<wal>.key`) and trusted peers (`<wal>.trust`), at wall-clock
/// time `now_ms`. The source is only read, never changed; a node running on it is refused
/// (stop it first). The target must hold no file unless `force` (then the node's files
/// there are replaced, nothing else). The salvaged node starts a new incarnation (module
/// docs).
pub fn salvage(
    source: &Path,
    target: &Path,
    force: bool,
    now_ms: u64,
) -> Result<SalvageReport, BackupError> {
    let (source_dir, _) = split(source)?;
    // Held (shared) while the source is read: a node cannot start on it meanwhile, and one
    // running on it (exclusive) is refused.
    let _source_lock = match std::fs::File::open(source) {
        Ok(file) => match file.try_lock_shared() {
            Ok(()) => Some(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BackupError::SourceInUse {
                    wal: source.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock", source)(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("open", source)(e)),
    };
    let found = inspect(source, false)?;
    if found.files.iter().all(|f| f.records == 0) && found.snapshot_cut == 0 {
        return Err(BackupError::Damaged {
            path: source.to_path_buf(),
            reason: "it holds no intact snapshot and no intact record: nothing to salvage".into(),
        });
    }

    // The target: a new or empty directory, or (force) one whose node files go.
    let target_dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if same_dir(&source_dir, &target_dir) {
        return Err(BackupError::NotEmpty {
            dir: target_dir,
            found: "it is the source's directory".into(),
            hint: "salvage into another directory: the source is never changed",
        });
    }
    let mut others = Vec::new();
    match std::fs::read_dir(&target_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_error("read the directory", &target_dir))?;
                others.push(entry.path());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&target_dir)
                .map_err(io_error("create the directory", &target_dir))?;
            crate::io_error::sync_parent_dir(&target_dir)
                .map_err(io_error("sync the directory of", &target_dir))?;
        }
        Err(e) => return Err(io_error("read the directory", &target_dir)(e)),
    }
    if !others.is_empty() && !force {
        others.sort();
        return Err(BackupError::NotEmpty {
            dir: target_dir,
            found: format!("it holds {}", some_names(&others)),
            hint: "salvage into a new or empty directory, or replace the node there with \
                   force (--force)",
        });
    }
    let key_of = |wal: &Path| {
        let mut p = wal.as_os_str().to_owned();
        p.push(".key");
        PathBuf::from(p)
    };
    let trust_of = |wal: &Path| {
        let mut p = wal.as_os_str().to_owned();
        p.push(".trust");
        PathBuf::from(p)
    };
    let restore_target = RestoreTarget {
        node_id: String::new(),
        wal_path: target.to_path_buf(),
        key_path: Some(key_of(target)),
        trust_path: Some(trust_of(target)),
    };
    // The target's lock, held to the end (the WAL written below takes it over).
    let lock = match FileDir::open(target) {
        Ok(lock) => lock,
        Err(WalError::Locked { .. }) => {
            return Err(BackupError::NodeRunning {
                wal: target.to_path_buf(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let marker = restore_marker_path(target);
    super::write_file(
        &marker,
        format!("salvaging {} at {now_ms}\n", source.display()).as_bytes(),
    )?;
    let mut report = SalvageReport {
        snapshot_cut: found.snapshot_cut,
        good_through: found.good_through,
        source_last_sequence: found.last_sequence,
        damage: found.damage.clone(),
        ..SalvageReport::default()
    };
    report.removed = super::clear_node_files(&node_files(&restore_target)?, target, &marker)?;

    // The records after the snapshot's cut, read file by file and written by the WAL
    // itself, numbered as they were; and the greatest number any origin gave them (what
    // the node's own next number is at least).
    let options = WalOptions {
        skip_through: found.snapshot_cut,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open_with_dir(target, Box::new(lock), options, |_| Ok(()))?;
    let mut greatest_origin_seq = 0u64;
    for file in &found.files {
        if file.records == 0 || file.first_record.is_some_and(|a| a > found.good_through) {
            continue;
        }
        let bytes = read_whole(&file.path)?;
        let required = header_of(file.first_sequence, &bytes)
            .ok()
            .flatten()
            .flatten();
        let mut failed = None;
        let _ = format::scan_from(&bytes, required, |r| {
            if failed.is_some() || r.sequence <= found.snapshot_cut || r.sequence > found.good_through
            {
                return Ok::<(), ()>(());
            }
            if r.record_type == RecordType::StoreOps {
                let _ = crate::store::op::decode_ops(r.payload, |op| {
                    greatest_origin_seq = greatest_origin_seq.max(op.origin_seq);
                });
            }
            match wal.append(r.record_type, false, |_, out| out.extend_from_slice(r.payload)) {
                Ok(seq) if seq == r.sequence => report.records += 1,
                Ok(seq) => {
                    failed = Some(BackupError::Damaged {
                        path: file.path.clone(),
                        reason: format!("record {} was copied as record {seq}", r.sequence),
                    });
                }
                Err(e) => failed = Some(e.into()),
            }
            Ok(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    wal.flush()?;
    for s in wal.segments() {
        report.written.push(s.path);
    }
    wal.close()?;
    drop(wal);

    // The snapshot: the source's newest intact one with its clock raised to a new
    // incarnation, or one that holds only such a clock (at cut 0: the log is replayed
    // from its first record on top of it).
    let source_snapshot = found
        .snapshots
        .iter()
        .find(|s| s.intact && s.covers_through == found.snapshot_cut && found.snapshot_cut > 0);
    let to = snapshot_path(target, found.snapshot_cut);
    let mut writer = SnapshotWriter::create_file(&to, found.snapshot_cut, now_ms)?;
    let floor_from =
        |next_seq: u64| incarnation_floor(next_seq.max(greatest_origin_seq + 1), now_ms);
    let mut next_own_seq = 0;
    if let Some(s) = source_snapshot {
        let mut write_error = None;
        snapshot::read_file(&s.path, |block_type, payload| {
            let raised;
            let payload = if block_type == block::CLOCK {
                let floor = floor_from(clock_next_seq(payload)?);
                raised = clock_with_next_seq_at_least(payload, floor)?;
                next_own_seq = floor;
                &raised[..]
            } else {
                payload
            };
            writer.block(block_type, payload).map_err(|e| {
                let text = e.to_string();
                write_error = Some(e);
                text
            })
        })
        .map_err(|e| BackupError::Snapshot(write_error.take().unwrap_or(e)))?;
    }
    if next_own_seq == 0 {
        next_own_seq = floor_from(1);
        let mut clock = vec![1u8];
        clock.extend_from_slice(&0u64.to_le_bytes());
        clock.extend_from_slice(&next_own_seq.to_le_bytes());
        writer.block(block::CLOCK, &clock)?;
    }
    writer.finish()?;
    snapshot::read_file(&to, |_, _| Ok(()))?;
    report.written.push(to);
    report.next_own_seq = next_own_seq;

    for (from, to) in [
        (key_of(source), key_of(target)),
        (trust_of(source), trust_of(target)),
    ] {
        match std::fs::read(&from) {
            Ok(bytes) => {
                super::write_file(&to, &bytes)?;
                report.key_copied |= to == key_of(target);
                report.written.push(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("read", &from)(e)),
        }
    }
    std::fs::remove_file(&marker).map_err(io_error("remove", &marker))?;
    crate::io_error::sync_parent_dir(&marker).map_err(io_error("sync the directory of", &marker))?;
    log::info!(
        "salvaged {} into {}: snapshot through {}, {} records after it, through record {} \
         ({} damaged places left behind); own numbers from {} on",
        source.display(),
        target.display(),
        report.snapshot_cut,
        report.records,
        report.good_through,
        report.damage.len(),
        report.next_own_seq
    );
    Ok(report)
}

/// Whether two directories are the same one.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
