//! `softadastra backup verify DIR` and `softadastra restore DIR`: run here, without a node
//! (`softadastra backup DIR` is a request like the others, run by the node when one runs).

use std::path::Path;

use serde_json::{Value, json};
use softadastra::BackupManifest;

use super::config::Settings;
use super::{CliError, data_dir};

/// `dir` as an absolute path: a running node resolves paths against its own working
/// directory, not the caller's.
pub(crate) fn absolute(dir: &Path) -> Result<String, CliError> {
    let path = std::path::absolute(dir).map_err(|e| {
        CliError::usage(format!(
            "backup directory {}: {}",
            dir.display(),
            softadastra::describe_io(&e)
        ))
    })?;
    path.to_str().map(str::to_string).ok_or_else(|| {
        CliError::usage(format!(
            "backup directory {}: the path is not UTF-8",
            path.display()
        ))
    })
}

fn manifest_json(dir: &Path, m: &BackupManifest) -> Value {
    let files: Vec<Value> = m
        .files
        .iter()
        .map(|f| {
            json!({
                "kind": f.kind.as_str(),
                "name": f.kind.file_name(),
                "bytes": f.bytes,
                "crc32": format!("{:08x}", f.crc32),
            })
        })
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "node_id": m.node_id,
        "fingerprint": m.fingerprint,
        "library_version": m.library_version,
        "created_at_ms": m.created_at_ms,
        "snapshot_cut": m.snapshot_cut,
        "covers_through": m.covers_through,
        "next_own_seq": m.next_own_seq,
        "files": files,
    })
}

/// `backup verify DIR`: the backup checked whole.
pub(crate) fn verify(dir: &Path) -> Result<Value, CliError> {
    let manifest = softadastra::verify_backup(dir)?;
    let mut data = manifest_json(dir, &manifest);
    data["verified"] = json!(true);
    Ok(data)
}

/// `restore DIR --data-dir D [--force]`. The node id is the configured one, else the one
/// bound to D, else the backup's (then bound to D); a configured one other than D's is
/// refused unless `change` (`--change-node-id`). D must be empty (or missing) unless
/// `force`; a running node is refused either way.
pub(crate) fn restore(
    settings: &mut Settings,
    dir: &Path,
    force: bool,
    change: bool,
) -> Result<Value, CliError> {
    let data_dir = settings.data_dir.clone();
    if data_dir::node_answers(settings) {
        return Err(CliError {
            exit: 1,
            code: "io_error".into(),
            message: format!(
                "a node is running on {}: stop it before restoring into it",
                data_dir.display()
            ),
        });
    }
    let manifest = softadastra::read_backup_manifest(dir)?;
    if !force
        && let Ok(mut entries) = std::fs::read_dir(&data_dir)
        && let Some(first) = entries.next()
    {
        let first = first
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(CliError {
            exit: 1,
            code: "already_exists".into(),
            message: format!(
                "data directory {} is not empty ({first} is there): restore into an empty \
                 or new directory, or pass --force to replace the node's files there (its \
                 WAL, log segments, snapshots, key and trusted peers; nothing else is \
                 touched)",
                data_dir.display()
            ),
        });
    }
    data_dir::ensure(&data_dir)?;
    let stored = data_dir::read_stored_node_id(&data_dir)?;
    if let (Some(bound), Some(configured)) = (&stored, &settings.node_id)
        && bound != configured
        && !change
    {
        return Err(data_dir::mismatch(settings, bound, configured));
    }
    let node_id = settings
        .node_id
        .clone()
        .or_else(|| stored.clone())
        .unwrap_or_else(|| manifest.node_id.clone());
    settings.node_id = Some(node_id);
    let report = softadastra::restore_backup(dir, &settings.client_options(false), force)?;
    if stored.as_deref() != Some(report.node_id.as_str()) {
        data_dir::store_node_id(&data_dir, &report.node_id)?;
    }
    let paths = |v: &[std::path::PathBuf]| -> Vec<String> {
        v.iter().map(|p| p.display().to_string()).collect()
    };
    Ok(json!({
        "dir": dir.display().to_string(),
        "data_dir": data_dir.display().to_string(),
        "node_id": report.node_id,
        "covers_through": report.covers_through,
        "next_own_seq": report.next_own_seq,
        "key_restored": report.key_restored,
        "removed": paths(&report.removed),
        "written": paths(&report.written),
    }))
}
