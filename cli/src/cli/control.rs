//! The commands as requests on a `Client`, and the local control socket that lets them reach
//! a running node. Protocol: one JSON request line, one JSON response line
//! (`{"ok":true,"data":{..}}` or `{"ok":false,"error":{"code":..,"message":..,"exit":..}}`).
//! The same [`execute`] serves a command run on the data directory directly and one sent
//! to a running node, so both print the same thing.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use softadastra::{Client, Error, Health, MAX_KEY_LEN, MAX_VALUE_LEN, PeerState};

use super::CliError;

/// The control socket's file name inside the data directory.
pub(crate) const SOCKET_FILE: &str = "control.sock";

/// The longest path a Unix socket can be bound or reached at (`sun_path` holds 108 bytes
/// on Linux, its terminating NUL included).
const MAX_SOCKET_PATH: usize = 107;

/// Where the control socket of the node on `data_dir` is: `<data_dir>/control.sock`, or,
/// when that path is too long for a Unix socket, `<runtime dir>/<hash>.sock`, where the
/// runtime dir is `$XDG_RUNTIME_DIR` (the user's own, mode 0700) when it is set and short
/// enough, else `/tmp/softadastra-<uid>` (made mode 0700 by the node, and used only while
/// it is the user's own and no one else's), and `<hash>` 16 hex digits of FNV-1a over the
/// data directory's canonical path: the node and every command on the same directory find
/// the same socket, wherever they were started from.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    let inside = data_dir.join(SOCKET_FILE);
    if inside.as_os_str().len() <= MAX_SOCKET_PATH {
        return inside;
    }
    let absolute = data_dir
        .canonicalize()
        .or_else(|_| std::env::current_dir().map(|cwd| cwd.join(data_dir)))
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in absolute.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let name = format!("{hash:016x}.sock");
    runtime_dir().join(name)
}

/// The directory for control sockets whose data directory's path is too long (see
/// [`socket_path`]).
fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && dir.is_absolute()
        && dir.as_os_str().len() + 22 <= MAX_SOCKET_PATH
        && dir.is_dir()
    {
        return dir;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/tmp/softadastra-{uid}"))
}

/// Checks that the directory holding `socket` (outside the data directory) is this user's
/// own and no one else's: a directory in /tmp another user made could hold a socket of
/// theirs, which would receive our requests. `create`: make it (mode 0700) when missing.
pub(crate) fn check_socket_dir(socket: &Path, create: bool) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let Some(dir) = socket.parent() else {
        return Ok(());
    };
    if socket.file_name().is_some_and(|n| n == SOCKET_FILE) {
        return Ok(()); // in the data directory, which the node owns
    }
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(CliError::failure(format!(
                    "cannot make the control socket's directory {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(()),
        Err(e) => {
            return Err(CliError::failure(format!(
                "control socket directory {}: {e}",
                dir.display()
            )));
        }
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(CliError::failure(format!(
            "control socket directory {} is not this user's own (uid {uid}, mode 0700): \
             refusing to use it; remove it, or give the data directory a shorter path",
            dir.display()
        )));
    }
    Ok(())
}

/// The longest request line the node reads, newline included. The largest legitimate
/// request is a `store put` of a key and a value at the store's limits (`MAX_KEY_LEN`,
/// `MAX_VALUE_LEN`: 1 KiB and 16 MiB). A value that is UTF-8 text is sent as a JSON
/// string, where serde_json writes a control character as a six-byte `\u00XX` escape, so
/// each byte can grow six times (any other value is sent in base64: 4 bytes for 3); 4 KiB
/// covers the rest of the line (field names, quotes, braces). So every request the store
/// would accept is read whole (about 96 MiB), and a longer line is refused after reading
/// one byte more than this.
pub(crate) const MAX_REQUEST_BYTES: u64 = 6 * (MAX_KEY_LEN + MAX_VALUE_LEN) as u64 + 4096;

/// The longest response line a command reads from the node. A `store get` of the largest
/// value fits (escaped as above); a longer one (a `store list` of a very large store) is
/// reported as too large rather than read without end.
const MAX_RESPONSE_BYTES: u64 = 128 * 1024 * 1024;

/// How long a client has to send its whole request, and then again to take its whole
/// response. A command sends its request as soon as it connects, so this is only reached
/// by a client that stalls; the node then answers it with an error and closes, so it
/// never holds a connection longer than this. The bound is on the whole request, not on
/// each read: a client sending a byte every few seconds is cut off too.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests the node refused since it started: a caller of another user, a request over
/// [`MAX_REQUEST_BYTES`], or one not sent within [`IO_TIMEOUT`] (`status`'s
/// `control.refused_requests`).
static REFUSED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The credential rule of the control socket: the node's own user or root may send
/// requests, no one else. The socket's mode (0600) already keeps other users out; this
/// holds even if the mode or the directory's permissions were loosened.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn caller_allowed(node_uid: u32, caller_uid: u32) -> bool {
    caller_uid == node_uid || caller_uid == 0
}

/// The credentials of the process that connected `stream` (taken by the kernel at its
/// `connect`).
#[cfg(target_os = "linux")]
fn peer_credentials(stream: &UnixStream) -> std::io::Result<libc::ucred> {
    use std::os::fd::AsRawFd;
    // An impossible uid until the kernel fills it in: a short answer must not read as root.
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let size = std::mem::size_of::<libc::ucred>();
    let mut len = libc::socklen_t::try_from(size).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `cred` is a valid, writable ucred of `len` bytes for the duration of the
    // call, and the descriptor is open (borrowed from `stream`).
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if usize::try_from(len).ok() != Some(size) {
        return Err(std::io::Error::other(format!(
            "SO_PEERCRED returned {len} bytes, not {size}"
        )));
    }
    Ok(cred)
}

/// Whether the process that connected `stream` may send requests ([`caller_allowed`]).
#[cfg(target_os = "linux")]
fn check_caller(stream: &UnixStream) -> Result<(), CliError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let node_uid = unsafe { libc::geteuid() };
    match peer_credentials(stream) {
        Ok(c) if caller_allowed(node_uid, c.uid) => Ok(()),
        Ok(c) => Err(CliError::permission_denied(format!(
            "control socket: uid {} (pid {}) refused: only the same user as the node \
             (uid {node_uid}) or root may send requests",
            c.uid, c.pid
        ))),
        // Who is calling is unknown: refused, as one of another user would be.
        Err(e) => Err(CliError::permission_denied(format!(
            "control socket: caller refused, its credentials cannot be read ({e}): only \
             the same user as the node (uid {node_uid}) or root may send requests"
        ))),
    }
}

/// Without SO_PEERCRED (not Linux) every caller is accepted: the socket's mode 0600 is
/// then the only guard.
#[cfg(not(target_os = "linux"))]
fn check_caller(_stream: &UnixStream) -> Result<(), CliError> {
    Ok(())
}

/// How many requests the node refused since it started (0 in a command that runs on the
/// data directory itself).
pub(crate) fn refused_requests() -> u64 {
    REFUSED_REQUESTS.load(Ordering::Relaxed)
}

/// One command, as sent on the control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Request {
    Status,
    NodeInfo,
    /// Built by [`Request::store_put`]: the value as text when it is UTF-8 (the form
    /// nodes of earlier versions read), else in base64.
    StorePut {
        key: String,
        #[serde(default)]
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_base64: Option<String>,
    },
    /// `raw`: the answer carries the value's bytes in base64 (`value_base64`) instead of
    /// its text (`store get --raw`).
    StoreGet {
        key: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        raw: bool,
    },
    StoreRemove {
        key: String,
    },
    StoreList {
        prefix: String,
    },
    StoreCompact,
    /// A backup into `dir`, an absolute path (the node's working directory is not the
    /// caller's).
    Backup {
        dir: String,
    },
    SyncStatus,
    /// `sync status KEY`.
    SyncKeyStatus {
        key: String,
    },
    SyncRetry,
    SyncTick {
        prune: bool,
    },
    Peers,
    PeersTrust {
        node_id: String,
        fingerprint: String,
    },
    PeersUntrust {
        peer: String,
    },
    /// The node's metrics text (`softadastra metrics`).
    Metrics,
}

impl Request {
    /// A `store put` of `value`.
    pub(crate) fn store_put(key: String, value: Vec<u8>) -> Request {
        match String::from_utf8(value) {
            Ok(value) => Request::StorePut {
                key,
                value,
                value_base64: None,
            },
            Err(e) => Request::StorePut {
                key,
                value: String::new(),
                value_base64: Some(BASE64.encode(e.as_bytes())),
            },
        }
    }

    /// Whether the request only reads: run again, it changes nothing.
    pub(crate) fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Status
                | Request::NodeInfo
                | Request::StoreGet { .. }
                | Request::StoreList { .. }
                | Request::SyncStatus
                | Request::SyncKeyStatus { .. }
                | Request::Peers
        )
    }

    /// Whether the request changes stored data (and so must not be run twice).
    pub(crate) fn changes_data(&self) -> bool {
        matches!(self, Request::StorePut { .. } | Request::StoreRemove { .. })
    }

    /// How long a command waits for the node's answer: a compaction or a backup of a large
    /// store takes minutes, the rest is quick.
    pub(crate) fn reply_timeout(&self) -> Duration {
        match self {
            Request::StoreCompact | Request::Backup { .. } => Duration::from_secs(3600),
            _ => Duration::from_secs(30),
        }
    }

    /// The command's name in JSON output (`"command"`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::NodeInfo => "node info",
            Request::StorePut { .. } => "store put",
            Request::StoreGet { .. } => "store get",
            Request::StoreRemove { .. } => "store remove",
            Request::StoreList { .. } => "store list",
            Request::StoreCompact => "store compact",
            Request::Backup { .. } => "backup",
            Request::SyncStatus | Request::SyncKeyStatus { .. } => "sync status",
            Request::SyncRetry => "sync retry",
            Request::SyncTick { .. } => "sync tick",
            Request::Peers => "peers",
            Request::PeersTrust { .. } => "peers trust",
            Request::PeersUntrust { .. } => "peers untrust",
            Request::Metrics => "metrics",
        }
    }
}

/// The trusted peers as JSON: `[{"node_id", "fingerprint"}]`.
fn trusted_list(client: &Client) -> Result<Vec<Value>, Error> {
    Ok(client
        .trusted_peers()?
        .into_iter()
        .map(|t| json!({ "node_id": t.node_id, "fingerprint": t.fingerprint }))
        .collect())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A peer known from discovery and not connected (an expired one, still listed by
/// `peers`, is no longer known).
fn discovery_state(state: PeerState) -> bool {
    matches!(
        state,
        PeerState::Available | PeerState::Stale | PeerState::Unknown
    )
}

/// The peers of a running node; none when transport and discovery are off.
fn peer_list(client: &Client) -> Result<Vec<softadastra::Peer>, Error> {
    let o = client.options();
    if !o.enable_transport && !o.enable_discovery {
        return Ok(Vec::new());
    }
    client.peers()
}

/// Runs `request` on `client`. `running`: the client is a running node's (`node start`).
pub(crate) fn execute(
    client: &Client,
    request: &Request,
    running: bool,
) -> Result<Value, CliError> {
    Ok(match request {
        Request::Status => {
            let info = client.node_info()?;
            let state = client.sync_state()?;
            let peers = peer_list(client)?;
            let connected = peers
                .iter()
                .filter(|p| p.state == PeerState::Connected)
                .count();
            let discovered = peers.iter().filter(|p| discovery_state(p.state)).count();
            json!({
                "node": {
                    "id": info.node_id,
                    "running": running,
                    "fingerprint": info.fingerprint,
                },
                "store": { "entries": client.size()?, "wal": client.options().wal_path },
                "sync": {
                    "outbox": state.outbox_size,
                    "pending": state.pending_count,
                    "queued": state.queued_count,
                    "in_flight": state.in_flight_count,
                    "acknowledged": state.acknowledged_count,
                    "failed": state.failed_count,
                },
                "transport": { "running": client.transport_running(), "peers": connected },
                "discovery": { "running": client.discovery_running(), "peers": discovered },
                "metadata": {
                    "running": running,
                    "hostname": info.hostname,
                    "os": info.os_name,
                    "version": info.version,
                    "uptime_ms": info.uptime_ms,
                },
                "control": { "refused_requests": refused_requests() },
                "health": match client.health() {
                    Health::Healthy => json!({ "status": "healthy", "reason": null }),
                    Health::WritesRefused(reason) => {
                        json!({ "status": "writes_refused", "reason": reason })
                    }
                },
                "metrics": { "addr": client.metrics_address().map(|a| a.to_string()) },
            })
        }
        Request::NodeInfo => {
            let info = client.refresh_node_info()?;
            json!({
                "node_id": info.node_id,
                "display_name": info.display_name,
                "hostname": info.hostname,
                "os": info.os_name,
                "version": info.version,
                "started_at_ms": info.started_at_ms,
                "uptime_ms": info.uptime_ms,
                "capabilities": info.capabilities,
                "fingerprint": info.fingerprint,
                "node_running": running,
            })
        }
        Request::StorePut {
            key,
            value,
            value_base64,
        } => {
            let decoded = match value_base64 {
                Some(b) => Some(BASE64.decode(b).map_err(|e| {
                    CliError::usage(format!("bad control request: value_base64: {e}"))
                })?),
                None => None,
            };
            let bytes = decoded.as_deref().unwrap_or(value.as_bytes());
            let existed = client.contains(key)?;
            let version = client.put(key, bytes).inspect_err(|e| {
                if running {
                    log::error!("store put {key} failed: {e}");
                }
            })?;
            json!({
                "key": key,
                "version": version.0,
                "status": if existed { "updated" } else { "created" },
            })
        }
        Request::StoreGet { key, raw } => {
            let value = client.get(key)?;
            let entry = client
                .entry(key)?
                .ok_or_else(|| Error::NotFound { key: key.clone() })?;
            let mut data = json!({
                "key": key,
                "version": entry.version.0,
                "timestamp_ms": entry.version.millis(),
                "origin": entry.origin.to_string(),
            });
            if *raw {
                data["value_base64"] = json!(BASE64.encode(&value));
            } else {
                data["value"] = json!(text(&value));
            }
            data
        }
        Request::StoreRemove { key } => {
            let existed = client.contains(key)?;
            let version = client.remove(key).inspect_err(|e| {
                if running {
                    log::error!("store remove {key} failed: {e}");
                }
            })?;
            json!({ "key": key, "version": version.0, "removed": existed })
        }
        Request::StoreList { prefix } => {
            let entries: Vec<Value> = client
                .list(prefix)?
                .into_iter()
                .map(|(k, v)| json!({ "key": k, "value": text(&v) }))
                .collect();
            json!({ "prefix": prefix, "count": entries.len(), "entries": entries })
        }
        Request::StoreCompact => {
            let report = client.compact()?;
            json!({
                "node_running": running,
                "covers_through": report.covers_through,
                "snapshot_bytes": report.snapshot_bytes,
                "snapshots_removed": report.snapshots_removed,
                "segments_removed": report.segments_removed,
            })
        }
        Request::Backup { dir } => {
            let report = client.backup(Path::new(dir)).inspect_err(|e| {
                if running {
                    log::error!("backup to {dir} failed: {e}");
                }
            })?;
            json!({
                "node_running": running,
                "dir": report.dir.display().to_string(),
                "node_id": report.node_id,
                "covers_through": report.covers_through,
                "files": report.files,
                "bytes": report.bytes,
            })
        }
        Request::SyncStatus => {
            let s = client.sync_state()?;
            json!({
                "node_id": client.options().node_id,
                "outbox_size": s.outbox_size,
                "pending_count": s.pending_count,
                "queued_count": s.queued_count,
                "in_flight_count": s.in_flight_count,
                "acknowledged_count": s.acknowledged_count,
                "failed_count": s.failed_count,
                "last_submitted_version": s.last_submitted_version,
                "last_applied_remote_version": s.last_applied_remote_version,
                "total_retries": s.total_retries,
                "conflict_count": s.conflict_count,
                "refused_count": client.network_stats()?.refused_operations.total(),
            })
        }
        Request::SyncKeyStatus { key } => {
            let status = client.sync_status(key)?;
            json!({ "key": key, "status": status.as_str(), "label": status.label() })
        }
        Request::SyncRetry => {
            let pending = client.queue_pending()?;
            let failed = client.retry_failed()?;
            if running {
                log::info!(
                    "sync retry (requested): {failed} failed and {pending} pending operations \
                     queued again"
                );
            }
            json!({
                "node_running": running,
                "failed_requeued": failed,
                "pending_queued": pending,
                "queued_count": client.sync_state()?.queued_count,
            })
        }
        Request::SyncTick { prune } => {
            let tick = client.tick(*prune)?;
            let connected = peer_list(client)?
                .iter()
                .filter(|p| p.state == PeerState::Connected)
                .count();
            let state = client.sync_state()?;
            let sent = if connected > 0 { tick.batch_size } else { 0 };
            let outcome = if tick.batch_size > 0 && sent > 0 {
                "attempted"
            } else if connected == 0 && state.queued_count > 0 {
                "no_peers"
            } else if tick.batch_size > 0 {
                "not_sent"
            } else {
                "none_ready"
            };
            if running {
                log::info!(
                    "sync tick (requested): retried {}, batch {}, pruned {}, {outcome}",
                    tick.retried_count,
                    tick.batch_size,
                    tick.pruned_count
                );
            }
            json!({
                "retried_count": tick.retried_count,
                "batch_size": tick.batch_size,
                "connected_peers": connected,
                "sent_count": sent,
                "pruned_count": tick.pruned_count,
                "outcome": outcome,
            })
        }
        Request::Peers => {
            let peers: Vec<Value> = peer_list(client)?
                .into_iter()
                .map(|p| {
                    json!({
                        "node_id": p.node_id,
                        "host": p.host,
                        "port": p.port,
                        "state": p.state.as_str(),
                        "last_seen_ms": p.last_seen_ms,
                    })
                })
                .collect();
            json!({
                "node_running": running,
                "transport": client.transport_running(),
                "discovery": client.discovery_running(),
                "peers": peers,
                "trusted": trusted_list(client)?,
            })
        }
        Request::PeersTrust {
            node_id,
            fingerprint,
        } => {
            client.trust_peer(node_id, fingerprint)?;
            json!({ "node_running": running, "trusted": trusted_list(client)? })
        }
        Request::PeersUntrust { peer } => {
            client.untrust_peer(peer)?;
            json!({ "node_running": running, "trusted": trusted_list(client)? })
        }
        Request::Metrics => json!({ "text": client.metrics_text()? }),
    })
}

/// The value's bytes in the answer to a `store get` with `raw`.
pub(crate) fn raw_value(data: &Value) -> Result<Vec<u8>, CliError> {
    let Some(b) = data["value_base64"].as_str() else {
        return Err(CliError::failure(
            "the running node did not send the value's bytes (it runs an earlier version \
             without store get --raw): restart it",
        ));
    };
    BASE64
        .decode(b)
        .map_err(|e| CliError::failure(format!("bad response: value_base64: {e}")))
}

/// A response line for `result`.
pub(crate) fn response(result: Result<Value, CliError>) -> Value {
    match result {
        Ok(data) => json!({ "ok": true, "data": data }),
        Err(e) => json!({
            "ok": false,
            "error": { "code": e.code, "message": e.message, "exit": e.exit },
        }),
    }
}

/// Sends `request` to the node listening on `socket`. `Ok(None)`: no node answers there
/// (no socket file, a stale one, or a node that is stopping), so the caller opens the data
/// directory itself.
pub(crate) fn send(socket: &Path, request: &Request) -> Result<Option<Value>, CliError> {
    // Made before connecting: the node gives a request IO_TIMEOUT from the connection on
    // to arrive, and a large value takes a moment to encode.
    let mut line = serde_json::to_string(request).map_err(|e| CliError::failure(e.to_string()))?;
    line.push('\n');
    check_socket_dir(socket, false)?;
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(CliError::failure(format!(
                "cannot reach the running node at {}: {e}",
                socket.display()
            )));
        }
    };
    let failed =
        |e: std::io::Error| CliError::failure(format!("control socket {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(request.reply_timeout()))
        .map_err(failed)?;
    // A node that refuses a request (a caller it does not accept, a request over its
    // limit) answers why and closes without reading the rest, so the write can fail
    // while the answer waits to be read: it is read all the same.
    let written = (&stream).write_all(line.as_bytes());
    let mut reply = String::new();
    let read = BufReader::new(&stream)
        .take(MAX_RESPONSE_BYTES)
        .read_line(&mut reply);
    // A node closing a connection whose request it never read (it is stopping) resets
    // it: the same as closing it unanswered.
    let read = match read {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && reply.is_empty() => Ok(0),
        other => other,
    };
    match (written, read) {
        // The whole line was never taken (the node closed first: it is stopping), so the
        // node did not run it: the caller tries again, or opens the data directory.
        (Err(_), _) if reply.is_empty() => return Ok(None),
        // Sent, and no whole answer: the node may be running it still, or have run it.
        (_, Err(e)) => {
            let what = if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                format!(
                    "did not answer within {} s",
                    request.reply_timeout().as_secs()
                )
            } else {
                format!("broke the connection before answering ({e})")
            };
            return Err(unanswered(socket, request, &what));
        }
        _ => {}
    }
    if reply.len() as u64 >= MAX_RESPONSE_BYTES && !reply.ends_with('\n') {
        return Err(CliError::failure(format!(
            "control socket {}: the node's response is larger than the limit of \
             {MAX_RESPONSE_BYTES} bytes",
            socket.display()
        )));
    }
    if reply.is_empty() {
        // The node closed the connection without answering. A stopping node does that
        // with requests it never read, but a node killed after applying the request does
        // too: a read can safely be done again locally, a change cannot (it would be
        // applied twice).
        if request.changes_data() {
            return Err(unanswered(
                socket,
                request,
                "closed the connection without answering",
            ));
        }
        return Ok(None);
    }
    let value: Value = serde_json::from_str(&reply).map_err(|e| {
        CliError::failure(format!(
            "control socket {}: bad response: {e}",
            socket.display()
        ))
    })?;
    if value["ok"].as_bool() == Some(true) {
        return Ok(Some(value["data"].clone()));
    }
    let err = &value["error"];
    Err(CliError {
        exit: err["exit"].as_u64().unwrap_or(1) as u8,
        code: err["code"].as_str().unwrap_or("unknown").to_string(),
        message: err["message"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string(),
    })
}

/// The error of a request the node received and did not answer: one that changes
/// anything says it may or may not have been applied (a second try could apply it twice).
fn unanswered(socket: &Path, request: &Request, what: &str) -> CliError {
    let base = format!("the node at {} {what}", socket.display());
    if request.is_read() {
        CliError::failure(base)
    } else {
        CliError::failure(format!(
            "{base}: {} may or may not have been applied; check before trying again",
            request.name()
        ))
    }
}

/// A stream whose reads, or writes, all end by one deadline: a timeout on each call alone
/// would let a client that sends a byte every few seconds hold its connection for ever.
struct Timed<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl<'a> Timed<'a> {
    fn new(stream: &'a UnixStream, limit: Duration) -> Self {
        Timed {
            stream,
            deadline: Instant::now() + limit,
        }
    }

    /// The time left, or `TimedOut` once the deadline has passed.
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

/// A socket timeout reports `WouldBlock`: said as what it is.
fn timed_out<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    result.map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            std::io::ErrorKind::TimedOut.into()
        } else {
            e
        }
    })
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        timed_out(self.stream.read(buf))
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        timed_out(self.stream.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a connection gets no answer from [`execute`].
enum NotRun {
    /// The client closed without sending anything (`node start` checks for a running
    /// node this way) or the connection broke: nothing to answer.
    Gone,
    /// Refused by a bound or the credential rule: answered with the error, counted, logged.
    Refused(CliError),
    /// Not a request: answered with the error.
    Bad(CliError),
}

/// Checks the caller, then reads one request line within [`MAX_REQUEST_BYTES`] and
/// [`IO_TIMEOUT`].
fn receive(stream: &UnixStream) -> Result<Request, NotRun> {
    check_caller(stream).map_err(NotRun::Refused)?;
    let mut line = Vec::new();
    // One byte over the limit is enough to know the line is too long: no more is read,
    // so the buffer never holds more than MAX_REQUEST_BYTES + 1 bytes.
    let read = BufReader::new(Timed::new(stream, IO_TIMEOUT))
        .take(MAX_REQUEST_BYTES + 1)
        .read_until(b'\n', &mut line);
    match read {
        Ok(0) => Err(NotRun::Gone),
        Ok(n) if n as u64 > MAX_REQUEST_BYTES => Err(NotRun::Refused(CliError::usage(format!(
            "control request refused: longer than the limit of {MAX_REQUEST_BYTES} bytes"
        )))),
        // A line without its newline: the client closed its side after it, which ends a
        // request as well.
        Ok(_) => serde_json::from_slice(&line)
            .map_err(|e| NotRun::Bad(CliError::usage(format!("bad control request: {e}")))),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(NotRun::Refused(CliError::failure(format!(
                "control request refused: not received within {} s ({} bytes arrived)",
                IO_TIMEOUT.as_secs(),
                line.len()
            ))))
        }
        Err(e) => {
            log::warn!("control socket read failed: {e}");
            Err(NotRun::Gone)
        }
    }
}

/// Serves one connection on the node: checks the caller, reads one request line, answers
/// it, all within bounds (see [`receive`]). Never panics on what the client sends.
pub(crate) fn serve(client: &Client, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let reply = match receive(&stream) {
        Ok(request) => {
            log::debug!("control request: {}", request.name());
            response(execute(client, &request, true))
        }
        Err(NotRun::Gone) => return,
        Err(NotRun::Refused(e)) => {
            REFUSED_REQUESTS.fetch_add(1, Ordering::Relaxed);
            log::warn!("{}", e.message);
            response(Err(e))
        }
        Err(NotRun::Bad(e)) => response(Err(e)),
    };
    let mut out = reply.to_string();
    out.push('\n');
    if let Err(e) = Timed::new(&stream, IO_TIMEOUT).write_all(out.as_bytes()) {
        log::warn!("control socket write failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::caller_allowed;

    #[test]
    fn only_the_nodes_own_user_or_root_may_use_the_control_socket() {
        assert!(caller_allowed(1000, 1000), "the same user");
        assert!(caller_allowed(1000, 0), "root");
        assert!(caller_allowed(0, 0), "root running the node, root calling");
        assert!(!caller_allowed(1000, 1001), "another user");
        assert!(
            !caller_allowed(0, 1000),
            "a user calling a node run by root"
        );
        assert!(!caller_allowed(1000, u32::MAX), "an unknown uid");
    }
}
