//! The CLI's data directory: where a node keeps its WAL and its generated node id.

use std::io;
use std::path::{Path, PathBuf};

use softadastra::{
    Error, Result, StoreError, describe_io, generate_node_id, hostname, validate_node_id,
};

/// File inside the data directory that holds the generated node id.
pub(crate) const NODE_ID_FILE: &str = "node-id";
/// The node's WAL inside the data directory.
pub(crate) const WAL_FILE: &str = "node.wal";

/// The WAL path for a data directory.
pub(crate) fn wal_path(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_FILE)
}

fn io_error(path: &Path, what: &str, e: &io::Error) -> Error {
    Error::InvalidOptions {
        field: "data_dir",
        reason: format!("cannot {what} {}: {}", path.display(), describe_io(e)),
    }
}

/// Creates the data directory (and its parents) when missing.
pub(crate) fn ensure(data_dir: &Path) -> Result<()> {
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(Error::InvalidOptions {
            field: "data_dir",
            reason: format!("{} is not a directory", data_dir.display()),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, "create", &e))
}

/// The node id stored in the data directory, if one is (none is generated).
pub(crate) fn read_stored_node_id(data_dir: &Path) -> Result<Option<String>> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            validate_node_id(&id).map_err(|e| Error::InvalidOptions {
                field: "node_id",
                reason: format!("{}: {e}", path.display()),
            })?;
            Ok(Some(id))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, "read", &e)),
    }
}

/// Stores `id` as the data directory's node id, durably.
pub(crate) fn store_node_id(data_dir: &Path, id: &str) -> Result<()> {
    let path = data_dir.join(NODE_ID_FILE);
    let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
    let write = || -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(format!("{id}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| io_error(&path, "write", &e))
}

/// The node id stored in the data directory, generated and stored (durably) on first use
/// so that it is stable across runs and different on every machine
/// ("node-<host>-<random>").
///
/// An id is made up only for a new node: not when its WAL (`wal`, created when a node
/// first opens, or locked by a restore), its key or a restore's marker (docs/backup.md)
/// is there. That node has an id already: its log is numbered under it and its key is
/// bound to it, and an id made up now would be stored for good, make the node refuse to
/// open, and make `restore --force` refuse to finish a restore cut short (the stored id
/// would not be the backup's).
pub(crate) fn stored_node_id(data_dir: &Path, wal: &Path) -> Result<String> {
    if let Some(id) = read_stored_node_id(data_dir)? {
        return Ok(id);
    }
    for marker in [
        with_suffix(wal, ".restoring"),
        with_suffix(wal, ".restoring.tmp"),
    ] {
        if marker.exists() {
            return Err(StoreError::RestoreUnfinished { marker }.into());
        }
    }
    if let Some(found) = [wal.to_path_buf(), with_suffix(wal, ".key")]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(Error::InvalidOptions {
            field: "node_id",
            reason: format!(
                "data directory {} holds a node ({}) but no node id ({}): give the node's \
                 id with --node-id (its key is bound to it), or, if a restore into it was \
                 cut short, run the restore again (with --force)",
                data_dir.display(),
                found.display(),
                data_dir.join(NODE_ID_FILE).display()
            ),
        });
    }
    let id = generate_node_id(&hostname());
    store_node_id(data_dir, &id)?;
    Ok(id)
}

/// `path` with `suffix` appended to its file name (`node.wal` -> `node.wal.key`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_generated_once_and_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_path(dir.path());
        let first = stored_node_id(dir.path(), &wal).unwrap();
        assert_eq!(stored_node_id(dir.path(), &wal).unwrap(), first);
    }

    #[test]
    fn no_node_id_is_made_up_beside_a_node_or_an_unfinished_restore() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_path(dir.path());
        std::fs::write(dir.path().join("node.wal.restoring"), "restoring\n").unwrap();
        let msg = stored_node_id(dir.path(), &wal).unwrap_err().to_string();
        assert!(msg.contains("did not finish"), "{msg}");
        std::fs::remove_file(dir.path().join("node.wal.restoring")).unwrap();
        std::fs::write(dir.path().join("node.wal.key"), "a key").unwrap();
        let msg = stored_node_id(dir.path(), &wal).unwrap_err().to_string();
        assert!(
            msg.contains("node.wal.key") && msg.contains("--force"),
            "{msg}"
        );
        assert!(!dir.path().join(NODE_ID_FILE).exists(), "nothing stored");
    }

    #[test]
    fn a_broken_stored_node_id_is_reported_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id\n").unwrap();
        let msg = stored_node_id(dir.path(), &wal_path(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("node-id") && msg.contains("not allowed"),
            "{msg}"
        );
    }
}
