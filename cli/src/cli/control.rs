//! The commands as requests on a `Client`, and the local control socket that lets them reach
//! a running node. Protocol: one JSON request line, one JSON response line
//! (`{"ok":true,"data":{..}}` or `{"ok":false,"error":{"code":..,"message":..,"exit":..}}`).
//! The same [`execute`] serves a command run on the data directory directly and one sent
//! to a running node, so both print the same thing.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use softadastra::{Client, Error, PeerState};

use super::CliError;

/// The control socket's file name inside the data directory.
pub(crate) const SOCKET_FILE: &str = "control.sock";
/// A request line larger than this is refused (values are at most 16 MiB, escaped in JSON).
pub(crate) const MAX_REQUEST_BYTES: u64 = 128 * 1024 * 1024;

/// One command, as sent on the control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Request {
    Status,
    NodeInfo,
    StorePut {
        key: String,
        value: String,
    },
    StoreGet {
        key: String,
    },
    StoreRemove {
        key: String,
    },
    StoreList {
        prefix: String,
    },
    SyncStatus,
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
}

impl Request {
    /// Whether the request changes stored data (and so must not be run twice).
    pub(crate) fn changes_data(&self) -> bool {
        matches!(self, Request::StorePut { .. } | Request::StoreRemove { .. })
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
            Request::SyncStatus => "sync status",
            Request::SyncTick { .. } => "sync tick",
            Request::Peers => "peers",
            Request::PeersTrust { .. } => "peers trust",
            Request::PeersUntrust { .. } => "peers untrust",
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

fn discovery_state(state: PeerState) -> bool {
    matches!(
        state,
        PeerState::Available | PeerState::Stale | PeerState::Expired | PeerState::Unknown
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
        Request::StorePut { key, value } => {
            let existed = client.contains(key)?;
            let version = client.put(key, value.as_bytes()).inspect_err(|e| {
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
        Request::StoreGet { key } => {
            let value = client.get(key)?;
            let entry = client
                .entry(key)?
                .ok_or_else(|| Error::NotFound { key: key.clone() })?;
            json!({
                "key": key,
                "value": text(&value),
                "version": entry.version.0,
                "timestamp_ms": entry.version.millis(),
                "origin": entry.origin.to_string(),
            })
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
    })
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
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(failed)?;
    let mut line = serde_json::to_string(request).map_err(|e| CliError::failure(e.to_string()))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(failed)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut reply)
        .map_err(failed)?;
    if reply.is_empty() {
        // The node closed the connection without answering. A stopping node does that
        // with requests it never read, but a node killed after applying the request does
        // too: a read can safely be done again locally, a change cannot (it would be
        // applied twice).
        if request.changes_data() {
            return Err(CliError::failure(format!(
                "the node at {} closed the connection without answering: {} may or may \
                 not have been applied; check before trying again",
                socket.display(),
                request.name()
            )));
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

/// Serves one connection on the node: reads one request line, answers it.
pub(crate) fn serve(client: &Client, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let read = BufReader::new(&stream)
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line);
    let reply = match read {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                log::debug!("control request: {}", request.name());
                response(execute(client, &request, true))
            }
            Err(e) => response(Err(CliError::usage(format!("bad control request: {e}")))),
        },
        Err(e) => {
            log::warn!("control socket read failed: {e}");
            return;
        }
    };
    let mut out = reply.to_string();
    out.push('\n');
    if let Err(e) = (&stream).write_all(out.as_bytes()) {
        log::warn!("control socket write failed: {e}");
    }
}
