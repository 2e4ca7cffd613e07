//! The CLI's data directory: where a node keeps its WAL and its generated node id.

use std::io;
use std::path::{Path, PathBuf};

use softadastra::id::validate_node_id;
use softadastra::{Error, Result};

/// File inside the data directory that holds the generated node id.
pub const NODE_ID_FILE: &str = "node-id";
/// The node's WAL inside the data directory.
pub const WAL_FILE: &str = "node.wal";

/// The WAL path for a data directory.
pub fn wal_path(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_FILE)
}

fn io_error(path: &Path, what: &str, e: &io::Error) -> Error {
    Error::InvalidOptions {
        field: "data_dir",
        reason: format!(
            "cannot {what} {}: {}",
            path.display(),
            softadastra::io_error::describe_io(e)
        ),
    }
}

/// Creates the data directory (and its parents) when missing.
pub fn ensure(data_dir: &Path) -> Result<()> {
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
pub fn stored_node_id(data_dir: &Path) -> Result<String> {
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
            let id = generate_node_id(&softadastra::metadata::hostname());
            std::fs::write(&path, format!("{id}\n")).map_err(|e| io_error(&path, "write", &e))?;
            Ok(id)
        }
        Err(e) => Err(io_error(&path, "read", &e)),
    }
}

/// "node-<host>-<8 hex digits>", with the host name reduced to allowed characters.
pub fn generate_node_id(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let suffix = softadastra::id::new_instance_id() as u32;
    let host = host.trim_matches('-');
    if host.is_empty() {
        format!("node-{suffix:08x}")
    } else {
        format!("node-{host}-{suffix:08x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_node_ids_are_valid_and_distinct() {
        let a = generate_node_id("Till 3.shop.local");
        let b = generate_node_id("Till 3.shop.local");
        assert!(a.starts_with("node-till-3-shop-local-"), "{a}");
        assert!(validate_node_id(&a).is_ok() && validate_node_id(&generate_node_id("")).is_ok());
        assert_ne!(a, b);
    }

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
