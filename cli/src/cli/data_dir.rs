//! The CLI's data directory: where a node keeps its WAL, its identity key and the node id
//! bound to them (`node-id`), and how a command finds the node there.
//!
//! The node id is bound to the data directory on first use, whatever gave it (flag,
//! environment, config file, or generated when none did): `node-id` is written then, and
//! from then on it is the node's id. A command that configures another id is refused
//! (exit 2) unless it asks for the change with `--change-node-id`. The library binds the
//! same id to the identity key (`<wal>.key`), so a node id never changes under its data.
//!
//! Commands that only read ([`Access::Read`]) never create anything: in a directory that
//! holds no node they say so and fail (exit 1).

use std::io;
use std::path::{Path, PathBuf};

use softadastra::{
    Client, Error, IdentityError, Result, StoreError, describe_io, generate_node_id, hostname,
};

use super::CliError;
use super::config::{Settings, Source};

/// File inside the data directory that holds the node id bound to it.
pub(crate) const NODE_ID_FILE: &str = "node-id";
/// The node's WAL inside the data directory.
pub(crate) const WAL_FILE: &str = "node.wal";

/// What a command does with the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only reads: needs a node there, and creates or changes nothing.
    Read,
    /// Writes: creates the directory (mode 0700) and the node when missing, and binds the
    /// node id.
    Write,
}

/// The WAL path for a data directory.
pub(crate) fn wal_path(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_FILE)
}

/// A file system error on the data directory: exit 1, not 2. It is no configuration
/// mistake (a disk full or failing, a mount not there yet, permissions), and exit 2 would
/// keep the service manager from restarting the node once it is fixed
/// (`RestartPreventExitStatus=2` in contrib/softadastra.service).
fn io_error(path: &Path, what: &str, e: &io::Error) -> CliError {
    CliError {
        exit: 1,
        code: "io_error".into(),
        message: format!(
            "data directory: cannot {what} {}: {}",
            path.display(),
            describe_io(e)
        ),
    }
}

fn not_a_directory(data_dir: &Path) -> Error {
    Error::InvalidOptions {
        field: "data_dir",
        reason: format!("{} is not a directory", data_dir.display()),
    }
}

/// Creates the data directory (and its missing parents) with mode 0700: it holds the
/// node's key and data, for its owner only. An existing directory is left as it is.
pub(crate) fn ensure(data_dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(not_a_directory(data_dir).into());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| io_error(data_dir, "create", &e))
}

/// The node id stored in the data directory, if one is.
pub(crate) fn read_stored_node_id(data_dir: &Path) -> Result<Option<String>, CliError> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            softadastra::validate_node_id(&id).map_err(|e| {
                CliError::from(Error::InvalidOptions {
                    field: "node_id",
                    reason: format!("{}: {e}", path.display()),
                })
            })?;
            Ok(Some(id))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path, "read", &e)),
    }
}

/// Writes `id` into `tmp` (mode 0600) and syncs it.
fn write_tmp(tmp: &Path, id: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(format!("{id}\n").as_bytes())?;
    file.sync_all()
}

/// Stores `id` as the data directory's node id, durably, replacing the one there.
pub(crate) fn store_node_id(data_dir: &Path, id: &str) -> Result<(), CliError> {
    let path = data_dir.join(NODE_ID_FILE);
    let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
    let write = || -> io::Result<()> {
        write_tmp(&tmp, id)?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| io_error(&path, "write", &e))
}

/// Binds `id` to a data directory that has no node id yet, durably. Two commands binding
/// at once cannot both win: the file is linked into place only if it is still missing,
/// and the id already there (the other command's) is returned instead.
fn bind_node_id(data_dir: &Path, id: &str) -> Result<String, CliError> {
    let path = data_dir.join(NODE_ID_FILE);
    let tmp = data_dir.join(format!("{NODE_ID_FILE}.{}.tmp", std::process::id()));
    let linked = (|| -> io::Result<bool> {
        write_tmp(&tmp, id)?;
        let linked = match std::fs::hard_link(&tmp, &path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&tmp)?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(linked)
    })()
    .map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(&path, "write", &e)
    })?;
    if linked {
        return Ok(id.to_string());
    }
    read_stored_node_id(data_dir)?.ok_or_else(|| {
        Error::InvalidOptions {
            field: "node_id",
            reason: format!("{} disappeared while it was written", path.display()),
        }
        .into()
    })
}

/// Where the configured node id came from, as the user gave it.
fn origin(settings: &Settings) -> String {
    match settings.source("node_id") {
        Source::Flag => "--node-id".into(),
        Source::Env => "SOFTADASTRA_NODE_ID".into(),
        Source::File => match &settings.config_file {
            Some(p) => format!("node_id in {}", p.display()),
            None => "the config file".into(),
        },
        Source::Default | Source::DataDir => "the data directory".into(),
    }
}

/// A node id configured (flag, environment or config file) other than the one bound to
/// the data directory: exit 2, naming both.
pub(crate) fn mismatch(settings: &Settings, bound: &str, configured: &str) -> CliError {
    let dir = settings.data_dir.display();
    CliError::usage(format!(
        "node id {configured} (from {}) is not this node's: data directory {dir} belongs to \
         node {bound} ({}). Leave the node id out, or give {bound}, to use this node; to \
         change its id to {configured}, add --change-node-id (a new identity key is made, \
         which the peers must trust again)",
        origin(settings),
        settings.data_dir.join(NODE_ID_FILE).display()
    ))
}

/// A node made by an earlier version with a configured node id, or a restore cut short
/// before it stored the backup's id: its WAL (or key) is there but not `node-id`, and no
/// id is configured now.
fn unbound_node(settings: &Settings) -> CliError {
    let dir = settings.data_dir.display();
    CliError::usage(format!(
        "data directory {dir} holds a node (WAL {}) but not its node id ({} is missing: \
         the node was made by an earlier version with --node-id, SOFTADASTRA_NODE_ID or \
         node_id in a config file). Give that id once to a command that writes, such as \
         softadastra --data-dir {dir} --node-id ID node init; it is stored then. If a \
         restore into it was cut short, run the restore again (with --force)",
        settings.wal_path().display(),
        settings.data_dir.join(NODE_ID_FILE).display()
    ))
}

/// No node in the data directory: exit 1.
fn no_node(settings: &Settings, why: String) -> CliError {
    CliError {
        exit: 1,
        code: "not_found".into(),
        message: format!(
            "no node in data directory {}: {why}. Start one with softadastra node start \
             (or make one with softadastra node init), or name the data directory of an \
             existing node with --data-dir or SOFTADASTRA_DATA_DIR",
            settings.data_dir.display()
        ),
    }
}

/// Opens the node and closes it again: the library checks the node id against the one
/// its identity key is bound to.
fn open_and_close(settings: &Settings) -> Result<()> {
    let client = Client::new(settings.client_options(false));
    client.open()?;
    client.close()
}

/// File in the data directory by which a `node start` that is starting announces itself
/// (its process id), from before it takes the WAL's lock until its control socket listens.
/// Commands that find it wait for the node instead of opening the WAL themselves, so that
/// a monitor running `status` in a loop never keeps a node from starting.
pub(crate) const STARTING_FILE: &str = "node.starting";

/// The announcement of a starting node ([`STARTING_FILE`]), removed when dropped.
pub(crate) struct Starting {
    path: PathBuf,
    pid: u32,
}

impl Starting {
    /// Announces this process as the node starting on `data_dir` (an existing directory).
    pub(crate) fn announce(data_dir: &Path) -> Result<Starting, CliError> {
        let pid = std::process::id();
        let path = data_dir.join(STARTING_FILE);
        let tmp = data_dir.join(format!("{STARTING_FILE}.{pid}.tmp"));
        let write = || -> io::Result<()> {
            write_tmp(&tmp, &pid.to_string())?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::failure(format!(
                "node cannot start: cannot write {}: {}",
                path.display(),
                describe_io(&e)
            ))
        })?;
        Ok(Starting { path, pid })
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        // Only our own: another start may have announced itself since.
        if starting_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn starting_pid(path: &Path) -> Option<u32> {
    // A few digits: anything longer is not ours to read.
    let mut text = String::new();
    use std::io::Read;
    std::fs::File::open(path)
        .ok()?
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// Whether another process announced itself as the node starting on `data_dir` and still
/// runs ([`STARTING_FILE`]). A file left by a start that died is ignored.
pub(crate) fn start_announced(data_dir: &Path) -> bool {
    let Some(pid) = starting_pid(&data_dir.join(STARTING_FILE)) else {
        return false;
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 || pid == libc::pid_t::try_from(std::process::id()).unwrap_or(0) {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether a node answers on the data directory's control socket.
pub(crate) fn node_answers(settings: &Settings) -> bool {
    std::os::unix::net::UnixStream::connect(settings.socket_path()).is_ok()
}

/// The marker of a restore into the data directory that did not finish, if any.
fn restore_marker(settings: &Settings) -> Option<PathBuf> {
    let wal = settings.wal_path();
    [
        with_suffix(&wal, ".restoring"),
        with_suffix(&wal, ".restoring.tmp"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Settles the node id of the command's node: the one bound to the data directory, checked
/// against the configured one; for [`Access::Write`], the directory and the binding are
/// made on first use. `change`: `--change-node-id`, bind the configured id instead of the
/// one bound now (see [`change_node_id`]).
pub(crate) fn resolve(
    settings: &mut Settings,
    access: Access,
    change: bool,
) -> Result<(), CliError> {
    let data_dir = settings.data_dir.clone();
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(not_a_directory(&data_dir).into());
    }
    if change {
        if access == Access::Read {
            return Err(CliError::usage(
                "--change-node-id changes the data directory: give it to a command that \
                 writes (such as node init or node start), not to one that only reads",
            ));
        }
        return change_node_id(settings);
    }
    let has_wal = settings.wal_path().exists();
    if access == Access::Read {
        if !data_dir.exists() && !has_wal {
            return Err(no_node(settings, "the directory does not exist".into()));
        }
        if !has_wal {
            let why = format!("it has no WAL ({})", settings.wal_path().display());
            return Err(no_node(settings, why));
        }
    } else {
        ensure(&data_dir)?;
    }
    let configured = settings.node_id.clone();
    match (read_stored_node_id(&data_dir)?, configured) {
        (Some(bound), Some(c)) if bound != c => return Err(mismatch(settings, &bound, &c)),
        (Some(_), Some(_)) => {}
        (Some(bound), None) => settings.adopt_node_id(bound),
        // A node made before the id was stored: the library checks the configured id
        // against its key. It is stored once a command that writes opened the node with it.
        (None, Some(c)) if has_wal => {
            if access == Access::Write {
                match open_and_close(settings) {
                    Ok(()) => {
                        bind_node_id(&data_dir, &c)?;
                    }
                    // A node running on it (or a command holding it): bound next time.
                    Err(e) if super::wal_locked(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        (None, None) if has_wal => return Err(unbound_node(settings)),
        // A restore cut short, or a key without its WAL: the node has an id already (the
        // backup's, the key's). One made up now would be stored for good, the node would
        // refuse to open and `restore --force` to finish (docs/backup.md).
        (None, None) if restore_marker(settings).is_some() => {
            let marker = restore_marker(settings).unwrap_or_default();
            return Err(Error::from(StoreError::RestoreUnfinished { marker }).into());
        }
        (None, None) if with_suffix(&settings.wal_path(), ".key").exists() => {
            return Err(unbound_node(settings));
        }
        // A new node: bound now, before its WAL is made.
        (None, configured) => {
            let id = configured.unwrap_or_else(|| generate_node_id(&hostname()));
            let bound = bind_node_id(&data_dir, &id)?;
            match &settings.node_id {
                Some(c) if *c != bound => return Err(mismatch(settings, &bound, c)),
                Some(_) => {}
                None => settings.adopt_node_id(bound),
            }
        }
    }
    Ok(())
}

/// `--change-node-id`: binds the configured node id to the data directory in place of the
/// one bound there. The identity key belongs to the old id (peers trust the pair), so it
/// is set aside as `<key>.<old id>.retired` and the next open makes a new one. Refused
/// while a node runs on the directory. Run again after a crash, it finishes the change.
fn change_node_id(settings: &mut Settings) -> Result<(), CliError> {
    let Some(new_id) = settings.node_id.clone() else {
        return Err(CliError::usage(
            "--change-node-id needs the new node id: give it with --node-id ID (or \
             SOFTADASTRA_NODE_ID, or node_id in the config file)",
        ));
    };
    if node_answers(settings) {
        return Err(CliError::failure(format!(
            "a node is running on {}: stop it before changing its node id",
            settings.data_dir.display()
        )));
    }
    let data_dir = settings.data_dir.clone();
    ensure(&data_dir)?;
    let old = read_stored_node_id(&data_dir)?;
    if old.as_deref() != Some(new_id.as_str()) {
        store_node_id(&data_dir, &new_id)?;
    }
    if !settings.wal_path().exists() {
        return Ok(());
    }
    match open_and_close(settings) {
        Ok(()) => {}
        Err(Error::Identity(IdentityError::OtherNodeId { path, bound, .. })) => {
            let mut retired = path.clone().into_os_string();
            retired.push(format!(".{bound}.retired"));
            let retired = PathBuf::from(retired);
            std::fs::rename(&path, &retired)
                .and_then(|()| std::fs::File::open(&data_dir)?.sync_all())
                .map_err(|e| io_error(&path, "set aside", &e))?;
            eprintln!(
                "node id changed from {bound} to {new_id}: its old identity key is kept as \
                 {}; a new one is made, which the peers must trust (peers trust {new_id} \
                 with the fingerprint node info shows)",
                retired.display()
            );
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_binding_wins_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(bind_node_id(dir.path(), "till-01").unwrap(), "till-01");
        assert_eq!(bind_node_id(dir.path(), "till-02").unwrap(), "till-01");
        assert_eq!(
            read_stored_node_id(dir.path()).unwrap().as_deref(),
            Some("till-01")
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [NODE_ID_FILE], "no temporary file is left");
    }

    #[test]
    fn a_broken_stored_node_id_is_reported_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id\n").unwrap();
        let msg = read_stored_node_id(dir.path()).unwrap_err().message;
        assert!(
            msg.contains("node-id") && msg.contains("not allowed"),
            "{msg}"
        );
    }
}
