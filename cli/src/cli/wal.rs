//! `softadastra wal inspect` and `softadastra wal salvage DIR`: run here, on the data
//! directory's files, never by a node. The library does the work
//! (`softadastra::inspect_wal`, `softadastra::salvage_wal`); this prints it.

use std::path::Path;

use serde_json::{Value, json};
use softadastra::Damage;

use super::config::Settings;
use super::{CliError, data_dir};

fn damage_json(d: &[Damage]) -> Vec<Value> {
    d.iter()
        .map(
            |d| json!({ "path": d.path.display().to_string(), "offset": d.offset, "what": d.what }),
        )
        .collect()
}

/// `wal inspect`: the data directory's snapshots, log files (with each record when
/// `records`) and damage.
pub(crate) fn inspect(settings: &Settings, records: bool) -> Result<Value, CliError> {
    let r = softadastra::inspect_wal(&settings.wal_path(), records)?;
    let snapshots: Vec<Value> = r
        .snapshots
        .iter()
        .map(|s| {
            json!({
                "path": s.path.display().to_string(),
                "covers_through": s.covers_through,
                "bytes": s.bytes,
                "intact": s.intact,
                "blocks": s.blocks,
                "written_at_ms": s.written_at_ms,
            })
        })
        .collect();
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| {
            let mut v = json!({
                "path": f.path.display().to_string(),
                "first_sequence": f.first_sequence,
                "legacy": f.legacy,
                "bytes": f.bytes,
                "records": f.records,
                "first_record": f.first_record,
                "last_record": f.last_record,
                "end_offset": f.end_offset,
                "torn_tail_bytes": f.torn_tail_bytes,
            });
            if records {
                v["record_list"] = f
                    .record_list
                    .iter()
                    .map(|r| {
                        json!({
                            "offset": r.offset,
                            "sequence": r.sequence,
                            "type": r.record_type,
                            "payload_bytes": r.payload_bytes,
                        })
                    })
                    .collect();
            }
            v
        })
        .collect();
    Ok(json!({
        "wal": r.wal_path.display().to_string(),
        "healthy": r.healthy(),
        "snapshot_cut": r.snapshot_cut,
        "good_through": r.good_through,
        "last_sequence": r.last_sequence,
        "records": r.records,
        "snapshots": snapshots,
        "unfinished_snapshots": r
            .unfinished_snapshots
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
        "files": files,
        "damage": damage_json(&r.damage),
    }))
}

/// `wal salvage DIR`: the good part of the data directory's WAL, its key, trusted peers
/// and node id, copied into the data directory `dir`.
pub(crate) fn salvage(settings: &Settings, dir: &Path, force: bool) -> Result<Value, CliError> {
    let to = data_dir::wal_path(dir);
    let report = softadastra::salvage_wal(&settings.wal_path(), &to, force)?;
    // The node id bound to the source is the salvaged node's (its key is bound to it).
    let node_id = data_dir::read_stored_node_id(&settings.data_dir)?;
    if let Some(id) = &node_id {
        data_dir::store_node_id(dir, id)?;
    }
    Ok(json!({
        "from": settings.data_dir.display().to_string(),
        "data_dir": dir.display().to_string(),
        "node_id": node_id,
        "snapshot_cut": report.snapshot_cut,
        "records": report.records,
        "good_through": report.good_through,
        "source_last_sequence": report.source_last_sequence,
        "next_own_seq": report.next_own_seq,
        "key_copied": report.key_copied,
        "damage": damage_json(&report.damage),
        "removed": report.removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "written": report.written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    }))
}
