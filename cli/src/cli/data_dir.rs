//! The CLI's data directory: where a node keeps its WAL and its generated node id.

use std::io;
use std::path::{Path, PathBuf};

use softadastra::{Error, Result, describe_io, generate_node_id, hostname, validate_node_id};

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

/// The node id stored in the data directory, generated and stored on first use so that it
/// is stable across runs and different on every machine ("node-<host>-<random>").
pub(crate) fn stored_node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            validate_node_id(&id).map_err(|e| Error::InvalidOptions {
                field: "node_id",
                reason: format!("{}: {e}", path.display()),
            })?;
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = generate_node_id(&hostname());
            std::fs::write(&path, format!("{id}\n")).map_err(|e| io_error(&path, "write", &e))?;
            Ok(id)
        }
        Err(e) => Err(io_error(&path, "read", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_generated_once_and_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = stored_node_id(dir.path()).unwrap();
        assert_eq!(stored_node_id(dir.path()).unwrap(), first);
    }

    #[test]
    fn a_broken_stored_node_id_is_reported_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id\n").unwrap();
        let msg = stored_node_id(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("node-id") && msg.contains("not allowed"),
            "{msg}"
        );
    }
}
