//! The cxx bridge behind the C++ SDK (`include/softadastra/sdk.hpp`, implemented in
//! `cpp/src/`). Only `cpp/src/*.cpp` include the generated header; the public SDK header
//! shows no `rust::` type.
//!
//! The bridge is thin: every function forwards to [`crate::Client`] or [`ClientOptions`].
//! Errors cross as an [`api::FfiStatus`] value (code, message, context), never as a C++
//! exception; keys cross as bytes and are checked here with
//! [`crate::store::key_from_bytes`], so a non-UTF-8 key is an `InvalidArgument`. cxx
//! aborts the process when a bridge function panics, so every function runs its body
//! through [`boundary::catch`].

use crate::error::ErrorCode;
use crate::ffi::boundary::{self, FfiError};
use crate::metadata::NodeInfo;
use crate::node::options::DEFAULT_WAL_PATH;
use crate::node::{Client, ClientOptions, Peer};
use crate::sync::{KeyStatus, SyncState, TickResult};

#[cxx::bridge(namespace = "softadastra::ffi")]
pub mod api {
    /// The outcome of a call: `code` 0 is success, otherwise a value of the shared error
    /// code table, a message naming the key, path or field, and that key, path or field.
    #[derive(Debug)]
    struct FfiStatus {
        code: u32,
        message: String,
        context: String,
    }

    /// Every field of `ClientOptions`, with the same names.
    #[derive(Debug)]
    struct FfiOptions {
        node_id: String,
        wal_path: String,
        enable_wal: bool,
        auto_flush: bool,
        sync_batch_size: usize,
        max_sync_retries: u32,
        ack_timeout_ms: u32,
        retry_interval_ms: u32,
        require_ack: bool,
        auto_queue: bool,
        enable_transport: bool,
        transport_host: String,
        transport_port: u16,
        enable_discovery: bool,
        discovery_host: String,
        discovery_port: u16,
        discovery_broadcast_host: String,
        discovery_broadcast_port: u16,
        display_name: String,
        version: String,
        discovery_interval_ms: u32,
        discovery_ttl_ms: u32,
        auto_connect_discovered: bool,
    }

    /// A peer (`crate::Peer`); `state` is `PeerState::as_str()`.
    #[derive(Debug, Default)]
    struct FfiPeer {
        node_id: String,
        host: String,
        port: u16,
        state: String,
        last_seen_ms: u64,
    }

    /// A node description.
    #[derive(Debug, Default)]
    struct FfiNodeInfo {
        node_id: String,
        display_name: String,
        hostname: String,
        os_name: String,
        version: String,
        started_at_ms: i64,
        uptime_ms: i64,
        capabilities: Vec<String>,
    }

    /// The counters of the sync engine (`crate::sync::SyncState`), same names.
    #[derive(Debug, Default)]
    struct FfiSyncState {
        outbox_size: usize,
        pending_count: usize,
        queued_count: usize,
        in_flight_count: usize,
        acknowledged_count: usize,
        failed_count: usize,
        last_submitted_version: u64,
        last_applied_remote_version: u64,
        total_retries: u64,
        conflict_count: u64,
    }

    /// What one sync tick did (`crate::sync::TickResult`), same names.
    #[derive(Debug, Default)]
    struct FfiTickResult {
        retried_count: usize,
        pruned_count: usize,
        batch_size: usize,
    }

    /// `crate::sync::KeyStatus`, with the numbers of the C ABI's `sa_key_status_t` and
    /// the SDK's `SyncStatus`.
    #[derive(Debug)]
    #[repr(u8)]
    enum FfiKeyStatus {
        SavedLocally = 0,
        WaitingToSync = 1,
        Syncing = 2,
        Synced = 3,
        Retrying = 4,
        SyncFailed = 5,
        ConflictDetected = 6,
    }

    /// The option presets whose flags and numbers Rust defines.
    enum FfiPreset {
        Persistent,
        Fast,
        MemoryOnly,
    }

    extern "Rust" {
        /// A client (wraps `softadastra::Client`).
        type RustClient;

        /// The library version.
        fn sdk_version() -> &'static str;
        /// The snake_case name of an error code ("not_found"), "unknown" for no code.
        fn error_code_name(code: u32) -> &'static str;

        /// The default options.
        fn options_default() -> FfiOptions;
        /// A preset, with node_id and wal_path left at their defaults for C++ to set.
        fn options_preset(preset: FfiPreset) -> FfiOptions;
        /// The options' validity: code 0, or InvalidArgument naming the first bad field.
        fn options_validate(options: &FfiOptions) -> FfiStatus;

        /// A closed client with these options. Errs (a C++ exception the SDK catches)
        /// only on an internal error.
        fn client_new(options: &FfiOptions) -> Result<Box<RustClient>>;

        fn open(self: &RustClient) -> FfiStatus;
        fn close(self: &RustClient) -> FfiStatus;
        fn is_open(self: &RustClient) -> bool;
        fn put(self: &RustClient, key: &[u8], value: &[u8]) -> FfiStatus;
        /// On success, `value` holds the value (replacing its contents).
        fn get(self: &RustClient, key: &[u8], value: &mut Vec<u8>) -> FfiStatus;
        fn remove(self: &RustClient, key: &[u8]) -> FfiStatus;
        /// Change i: a removal when removes[i] != 0, else a put; its key is the next
        /// key_lengths[i] bytes of `data`, its value (puts only) the next value_lengths[i].
        fn write_batch(
            self: &RustClient,
            removes: &[u8],
            key_lengths: &[usize],
            value_lengths: &[usize],
            data: &[u8],
        ) -> FfiStatus;
        /// Keys starting with `prefix`, in order: entry i is key_lengths[i] bytes of key
        /// then value_lengths[i] bytes of value, one after another in `data`.
        fn list(
            self: &RustClient,
            prefix: &[u8],
            key_lengths: &mut Vec<usize>,
            value_lengths: &mut Vec<usize>,
            data: &mut Vec<u8>,
        ) -> FfiStatus;
        fn contains(self: &RustClient, key: &[u8], contains: &mut bool) -> FfiStatus;
        fn size(self: &RustClient, size: &mut usize) -> FfiStatus;
        fn flush(self: &RustClient) -> FfiStatus;
        fn node_info(self: &RustClient, info: &mut FfiNodeInfo) -> FfiStatus;
        fn refresh_node_info(self: &RustClient, info: &mut FfiNodeInfo) -> FfiStatus;

        fn tick(self: &RustClient, prune_completed: bool, result: &mut FfiTickResult) -> FfiStatus;
        fn sync_state(self: &RustClient, state: &mut FfiSyncState) -> FfiStatus;
        fn retry_expired(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn prune_completed(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn prune_failed(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn queue_pending(self: &RustClient, count: &mut usize) -> FfiStatus;
        /// On success, `status` is where the key's latest change is.
        fn sync_status(self: &RustClient, key: &[u8], status: &mut FfiKeyStatus) -> FfiStatus;

        /// Whether `node_id` follows the node id rules (1 to 128 of [A-Za-z0-9._-]).
        fn node_id_is_valid(node_id: &[u8]) -> bool;

        fn start_transport(self: &RustClient) -> FfiStatus;
        fn stop_transport(self: &RustClient) -> FfiStatus;
        fn transport_running(self: &RustClient) -> bool;
        /// On success, `handled` is how many transport events were handled (0 max: no limit).
        fn process_transport_events(
            self: &RustClient,
            max_events: usize,
            handled: &mut usize,
        ) -> FfiStatus;
        /// The peer's strings cross as bytes; non-UTF-8 is an InvalidArgument.
        fn connect(self: &RustClient, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus;
        fn disconnect(self: &RustClient, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus;
        fn start_discovery(self: &RustClient) -> FfiStatus;
        fn stop_discovery(self: &RustClient) -> FfiStatus;
        fn discovery_running(self: &RustClient) -> bool;
        /// On success, `peers` holds the known peers (replacing its contents).
        fn peers(self: &RustClient, peers: &mut Vec<FfiPeer>) -> FfiStatus;
    }
}

use api::{
    FfiKeyStatus, FfiNodeInfo, FfiOptions, FfiPeer, FfiPreset, FfiStatus, FfiSyncState,
    FfiTickResult,
};

impl From<Result<(), FfiError>> for FfiStatus {
    fn from(result: Result<(), FfiError>) -> Self {
        match result {
            Ok(()) => FfiStatus {
                code: ErrorCode::None as u32,
                message: String::new(),
                context: String::new(),
            },
            Err(e) => FfiStatus {
                code: e.code as u32,
                message: e.message,
                context: e.context,
            },
        }
    }
}

/// Runs `body` behind the panic boundary and reports its outcome as a status.
fn status(function: &'static str, body: impl FnOnce() -> Result<(), FfiError>) -> FfiStatus {
    boundary::catch(function, body).into()
}

fn sdk_version() -> &'static str {
    crate::DEFAULT_VERSION
}

fn error_code_name(code: u32) -> &'static str {
    crate::ffi::code_from_u32(code).map_or("unknown", ErrorCode::as_str)
}

fn to_ffi(o: ClientOptions) -> FfiOptions {
    FfiOptions {
        node_id: o.node_id,
        wal_path: o.wal_path,
        enable_wal: o.enable_wal,
        auto_flush: o.auto_flush,
        sync_batch_size: o.sync_batch_size,
        max_sync_retries: o.max_sync_retries,
        ack_timeout_ms: o.ack_timeout_ms,
        retry_interval_ms: o.retry_interval_ms,
        require_ack: o.require_ack,
        auto_queue: o.auto_queue,
        enable_transport: o.enable_transport,
        transport_host: o.transport_host,
        transport_port: o.transport_port,
        enable_discovery: o.enable_discovery,
        discovery_host: o.discovery_host,
        discovery_port: o.discovery_port,
        discovery_broadcast_host: o.discovery_broadcast_host,
        discovery_broadcast_port: o.discovery_broadcast_port,
        display_name: o.display_name,
        version: o.version,
        discovery_interval_ms: o.discovery_interval_ms,
        discovery_ttl_ms: o.discovery_ttl_ms,
        auto_connect_discovered: o.auto_connect_discovered,
    }
}

fn from_ffi(o: &FfiOptions) -> ClientOptions {
    ClientOptions {
        // Not on the C and C++ option structs yet (they cannot grow without breaking
        // the ABI until the options handle of issue 10): the default.
        max_clock_drift_ms: crate::store::DEFAULT_MAX_CLOCK_DRIFT_MS,
        node_id: o.node_id.clone(),
        wal_path: o.wal_path.clone(),
        enable_wal: o.enable_wal,
        auto_flush: o.auto_flush,
        sync_batch_size: o.sync_batch_size,
        max_sync_retries: o.max_sync_retries,
        ack_timeout_ms: o.ack_timeout_ms,
        retry_interval_ms: o.retry_interval_ms,
        require_ack: o.require_ack,
        auto_queue: o.auto_queue,
        enable_transport: o.enable_transport,
        transport_host: o.transport_host.clone(),
        transport_port: o.transport_port,
        enable_discovery: o.enable_discovery,
        discovery_host: o.discovery_host.clone(),
        discovery_port: o.discovery_port,
        discovery_broadcast_host: o.discovery_broadcast_host.clone(),
        discovery_broadcast_port: o.discovery_broadcast_port,
        discovery_interval_ms: o.discovery_interval_ms,
        discovery_ttl_ms: o.discovery_ttl_ms,
        auto_connect_discovered: o.auto_connect_discovered,
        display_name: o.display_name.clone(),
        version: o.version.clone(),
    }
}

fn options_default() -> FfiOptions {
    // Building default options allocates a few strings and cannot panic short of an
    // allocation failure, which aborts anyway; the catch keeps the rule uniform.
    boundary::catch("options_default", || Ok(ClientOptions::default()))
        .map(to_ffi)
        .unwrap_or_else(|_| to_ffi(ClientOptions::default()))
}

fn options_preset(preset: FfiPreset) -> FfiOptions {
    let defaults = ClientOptions::default();
    let options = boundary::catch("options_preset", || {
        Ok(match preset {
            FfiPreset::Fast => ClientOptions::fast(&defaults.node_id, DEFAULT_WAL_PATH),
            FfiPreset::MemoryOnly => ClientOptions::memory_only(&defaults.node_id),
            _ => ClientOptions::persistent(&defaults.node_id, DEFAULT_WAL_PATH),
        })
    });
    to_ffi(options.unwrap_or(defaults))
}

fn options_validate(options: &FfiOptions) -> FfiStatus {
    status("options_validate", || Ok(from_ffi(options).validate()?))
}

/// The Rust side of `softadastra::sdk::Client`.
pub struct RustClient {
    client: Client,
}

fn client_new(options: &FfiOptions) -> Result<Box<RustClient>, String> {
    boundary::catch("client_new", || {
        Ok(Box::new(RustClient {
            client: Client::new(from_ffi(options)),
        }))
    })
    .map_err(|e| e.message)
}

fn key(bytes: &[u8]) -> Result<&str, FfiError> {
    Ok(crate::store::key_from_bytes(bytes)?)
}

fn node_id_is_valid(node_id: &[u8]) -> bool {
    boundary::catch("node_id_is_valid", || {
        Ok(std::str::from_utf8(node_id)
            .is_ok_and(|id| crate::metadata::validate_node_id(id).is_ok()))
    })
    .unwrap_or(false)
}

/// A peer from the bridge's bytes; a field that is not UTF-8 is an `InvalidArgument`
/// naming it.
fn peer(node_id: &[u8], host: &[u8], port: u16) -> Result<Peer, FfiError> {
    fn text<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, FfiError> {
        std::str::from_utf8(bytes).map_err(|e| {
            FfiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "invalid peer: {field} is not valid UTF-8 (invalid byte at index {})",
                    e.valid_up_to()
                ),
                field,
            )
        })
    }
    Ok(Peer::new(
        text(node_id, "node_id")?,
        text(host, "host")?,
        port,
    ))
}

impl From<Peer> for FfiPeer {
    fn from(p: Peer) -> Self {
        FfiPeer {
            state: p.state.as_str().to_string(),
            node_id: p.node_id,
            host: p.host,
            port: p.port,
            last_seen_ms: p.last_seen_ms,
        }
    }
}

fn fill_node_info(out: &mut FfiNodeInfo, info: NodeInfo) {
    *out = FfiNodeInfo {
        display_name: info.label().to_string(),
        node_id: info.node_id,
        hostname: info.hostname,
        os_name: info.os_name,
        version: info.version,
        started_at_ms: info.started_at_ms,
        uptime_ms: info.uptime_ms,
        capabilities: info.capabilities,
    };
}

impl From<SyncState> for FfiSyncState {
    fn from(s: SyncState) -> Self {
        FfiSyncState {
            outbox_size: s.outbox_size,
            pending_count: s.pending_count,
            queued_count: s.queued_count,
            in_flight_count: s.in_flight_count,
            acknowledged_count: s.acknowledged_count,
            failed_count: s.failed_count,
            last_submitted_version: s.last_submitted_version,
            last_applied_remote_version: s.last_applied_remote_version,
            total_retries: s.total_retries,
            conflict_count: s.conflict_count,
        }
    }
}

impl From<TickResult> for FfiTickResult {
    fn from(t: TickResult) -> Self {
        FfiTickResult {
            retried_count: t.retried_count,
            pruned_count: t.pruned_count,
            batch_size: t.batch_size,
        }
    }
}

impl From<KeyStatus> for FfiKeyStatus {
    fn from(s: KeyStatus) -> Self {
        match s {
            KeyStatus::SavedLocally => FfiKeyStatus::SavedLocally,
            KeyStatus::WaitingToSync => FfiKeyStatus::WaitingToSync,
            KeyStatus::Syncing => FfiKeyStatus::Syncing,
            KeyStatus::Synced => FfiKeyStatus::Synced,
            KeyStatus::Retrying => FfiKeyStatus::Retrying,
            KeyStatus::SyncFailed => FfiKeyStatus::SyncFailed,
            KeyStatus::ConflictDetected => FfiKeyStatus::ConflictDetected,
        }
    }
}

impl RustClient {
    fn open(&self) -> FfiStatus {
        status("Client::open", || Ok(self.client.open()?))
    }

    fn close(&self) -> FfiStatus {
        status("Client::close", || Ok(self.client.close()?))
    }

    fn is_open(&self) -> bool {
        boundary::catch("Client::is_open", || Ok(self.client.is_open())).unwrap_or(false)
    }

    fn put(&self, k: &[u8], value: &[u8]) -> FfiStatus {
        status("Client::put", || {
            self.client.put(key(k)?, value)?;
            Ok(())
        })
    }

    fn get(&self, k: &[u8], value: &mut Vec<u8>) -> FfiStatus {
        status("Client::get", || {
            *value = self.client.get(key(k)?)?;
            Ok(())
        })
    }

    fn remove(&self, k: &[u8]) -> FfiStatus {
        status("Client::remove", || {
            self.client.remove(key(k)?)?;
            Ok(())
        })
    }

    fn write_batch(
        &self,
        removes: &[u8],
        key_lengths: &[usize],
        value_lengths: &[usize],
        data: &[u8],
    ) -> FfiStatus {
        status("Client::write_batch", || {
            let invalid = |reason: &str| {
                FfiError::new(
                    crate::ErrorCode::InvalidArgument,
                    format!("Client::write_batch: {reason}"),
                    "batch",
                )
            };
            if removes.len() != key_lengths.len() || removes.len() != value_lengths.len() {
                return Err(invalid("the change lists differ in length"));
            }
            let mut batch = crate::WriteBatch::new();
            let mut rest = data;
            let mut take = |n: usize| -> Result<&[u8], FfiError> {
                if n > rest.len() {
                    return Err(invalid("the lengths exceed the data"));
                }
                let (head, tail) = rest.split_at(n);
                rest = tail;
                Ok(head)
            };
            for ((&remove, &key_len), &value_len) in
                removes.iter().zip(key_lengths).zip(value_lengths)
            {
                let k = key(take(key_len)?)?.to_string();
                if remove != 0 {
                    batch.remove(k);
                } else {
                    batch.put(k, take(value_len)?.to_vec());
                }
            }
            self.client.write_batch(&batch)?;
            Ok(())
        })
    }

    fn list(
        &self,
        prefix: &[u8],
        key_lengths: &mut Vec<usize>,
        value_lengths: &mut Vec<usize>,
        data: &mut Vec<u8>,
    ) -> FfiStatus {
        status("Client::list", || {
            let prefix = std::str::from_utf8(prefix).map_err(|_| {
                FfiError::new(
                    crate::ErrorCode::InvalidArgument,
                    "Client::list: prefix is not UTF-8",
                    "prefix",
                )
            })?;
            let entries = self.client.list(prefix)?;
            key_lengths.clear();
            value_lengths.clear();
            data.clear();
            for (k, v) in entries {
                key_lengths.push(k.len());
                value_lengths.push(v.len());
                data.extend_from_slice(k.as_bytes());
                data.extend_from_slice(&v);
            }
            Ok(())
        })
    }

    fn contains(&self, k: &[u8], contains: &mut bool) -> FfiStatus {
        status("Client::contains", || {
            *contains = self.client.contains(key(k)?)?;
            Ok(())
        })
    }

    fn size(&self, size: &mut usize) -> FfiStatus {
        status("Client::size", || {
            *size = self.client.size()?;
            Ok(())
        })
    }

    fn flush(&self) -> FfiStatus {
        status("Client::flush", || Ok(self.client.flush()?))
    }

    fn node_info(&self, info: &mut FfiNodeInfo) -> FfiStatus {
        status("Client::node_info", || {
            fill_node_info(info, self.client.node_info()?);
            Ok(())
        })
    }

    fn refresh_node_info(&self, info: &mut FfiNodeInfo) -> FfiStatus {
        status("Client::refresh_node_info", || {
            fill_node_info(info, self.client.refresh_node_info()?);
            Ok(())
        })
    }

    fn tick(&self, prune_completed: bool, result: &mut FfiTickResult) -> FfiStatus {
        status("Client::tick", || {
            *result = self.client.tick(prune_completed)?.into();
            Ok(())
        })
    }

    fn sync_state(&self, state: &mut FfiSyncState) -> FfiStatus {
        status("Client::sync_state", || {
            *state = self.client.sync_state()?.into();
            Ok(())
        })
    }

    fn retry_expired(&self, count: &mut usize) -> FfiStatus {
        status("Client::retry_expired", || {
            *count = self.client.retry_expired()?;
            Ok(())
        })
    }

    fn prune_completed(&self, count: &mut usize) -> FfiStatus {
        status("Client::prune_completed", || {
            *count = self.client.prune_completed()?;
            Ok(())
        })
    }

    fn prune_failed(&self, count: &mut usize) -> FfiStatus {
        status("Client::prune_failed", || {
            *count = self.client.prune_failed()?;
            Ok(())
        })
    }

    fn queue_pending(&self, count: &mut usize) -> FfiStatus {
        status("Client::queue_pending", || {
            *count = self.client.queue_pending()?;
            Ok(())
        })
    }

    fn sync_status(&self, k: &[u8], out: &mut FfiKeyStatus) -> FfiStatus {
        status("Client::sync_status", || {
            *out = self.client.sync_status(key(k)?)?.into();
            Ok(())
        })
    }

    fn start_transport(&self) -> FfiStatus {
        status("Client::start_transport", || {
            Ok(self.client.start_transport()?)
        })
    }

    fn stop_transport(&self) -> FfiStatus {
        status("Client::stop_transport", || {
            Ok(self.client.stop_transport()?)
        })
    }

    fn transport_running(&self) -> bool {
        boundary::catch("Client::transport_running", || {
            Ok(self.client.transport_running())
        })
        .unwrap_or(false)
    }

    fn process_transport_events(&self, max_events: usize, handled: &mut usize) -> FfiStatus {
        status("Client::process_transport_events", || {
            *handled = self.client.process_transport_events(max_events)?;
            Ok(())
        })
    }

    fn connect(&self, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus {
        status("Client::connect", || {
            Ok(self.client.connect(&peer(node_id, host, port)?)?)
        })
    }

    fn disconnect(&self, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus {
        status("Client::disconnect", || {
            Ok(self.client.disconnect(&peer(node_id, host, port)?)?)
        })
    }

    fn start_discovery(&self) -> FfiStatus {
        status("Client::start_discovery", || {
            Ok(self.client.start_discovery()?)
        })
    }

    fn stop_discovery(&self) -> FfiStatus {
        status("Client::stop_discovery", || {
            Ok(self.client.stop_discovery()?)
        })
    }

    fn discovery_running(&self) -> bool {
        boundary::catch("Client::discovery_running", || {
            Ok(self.client.discovery_running())
        })
        .unwrap_or(false)
    }

    fn peers(&self, out: &mut Vec<FfiPeer>) -> FfiStatus {
        status("Client::peers", || {
            *out = self
                .client
                .peers()?
                .into_iter()
                .map(FfiPeer::from)
                .collect();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_the_bridge_unchanged() {
        let o = ClientOptions::fast("n1", "/tmp/a.wal");
        assert_eq!(from_ffi(&to_ffi(o.clone())), o);
    }

    #[test]
    fn non_utf8_key_is_invalid_argument_not_a_crash() {
        let c = client_new(&to_ffi(ClientOptions::memory_only("n1"))).unwrap();
        assert_eq!(c.open().code, 0);
        let s = c.put(b"a\xff", b"v");
        assert_eq!(s.code, ErrorCode::InvalidArgument as u32);
        assert!(s.message.contains("not valid UTF-8"), "{}", s.message);
        let mut v = Vec::new();
        let s = c.get(b"missing", &mut v);
        assert_eq!(
            (s.code, s.context.as_str()),
            (ErrorCode::NotFound as u32, "missing")
        );
    }

    #[test]
    fn sync_calls_report_state_and_key_status() {
        let c = client_new(&to_ffi(ClientOptions::memory_only("n1"))).unwrap();
        let mut state = FfiSyncState::default();
        assert_eq!(
            c.sync_state(&mut state).code,
            ErrorCode::InvalidState as u32
        );
        assert_eq!(c.open().code, 0);
        assert_eq!(c.put(b"k", b"v").code, 0);
        assert_eq!(c.sync_state(&mut state).code, 0);
        assert_eq!((state.outbox_size, state.queued_count), (1, 1));
        let mut tick = FfiTickResult::default();
        assert_eq!(c.tick(true, &mut tick).code, 0);
        assert_eq!(
            (tick.retried_count, tick.pruned_count, tick.batch_size),
            (0, 0, 0)
        );
        let mut key_status = FfiKeyStatus::Synced;
        assert_eq!(c.sync_status(b"k", &mut key_status).code, 0);
        assert_eq!(key_status, FfiKeyStatus::WaitingToSync);
        let s = c.sync_status(b"missing", &mut key_status);
        assert_eq!(
            (s.code, s.context.as_str()),
            (ErrorCode::NotFound as u32, "missing")
        );
        assert_eq!(key_status, FfiKeyStatus::WaitingToSync);
    }

    #[test]
    fn options_with_discovery_settings_survive_the_bridge() {
        let o = ClientOptions {
            discovery_interval_ms: 100,
            discovery_ttl_ms: 400,
            auto_connect_discovered: false,
            ..ClientOptions::persistent("n1", "/tmp/a.wal")
        };
        assert_eq!(from_ffi(&to_ffi(o.clone())), o);
    }

    #[test]
    fn network_calls_report_disabled_and_invalid_peers() {
        let c = client_new(&to_ffi(ClientOptions::memory_only("n1"))).unwrap();
        assert_eq!(c.start_transport().code, ErrorCode::InvalidState as u32);
        assert!(!c.transport_running() && !c.discovery_running());
        assert_eq!(c.open().code, 0);
        let s = c.start_transport();
        assert_eq!(s.code, ErrorCode::TransportError as u32);
        assert!(s.message.contains("transport is disabled"), "{}", s.message);
        assert_eq!(c.stop_transport().code, 0);
        assert_eq!(c.start_discovery().code, ErrorCode::DiscoveryError as u32);
        assert_eq!(c.stop_discovery().code, 0);
        let s = c.connect(b"b\xff", b"127.0.0.1", 1);
        assert_eq!(
            (s.code, s.context.as_str()),
            (ErrorCode::InvalidArgument as u32, "node_id")
        );
        let s = c.connect(b"b", b"127.0.0.1", 0);
        assert_eq!(s.code, ErrorCode::InvalidArgument as u32);
        let mut peers = vec![FfiPeer::default()];
        assert_eq!(c.peers(&mut peers).code, ErrorCode::TransportError as u32);
        assert_eq!(peers.len(), 1);
        assert!(node_id_is_valid(b"edge-01") && !node_id_is_valid(b"a b"));
        assert!(!node_id_is_valid(b"") && !node_id_is_valid(b"\xff"));
    }

    #[test]
    fn peers_cross_with_their_state_name() {
        let mut p = Peer::local("node-b", 4041);
        p.state = crate::PeerState::Faulted;
        let f = FfiPeer::from(p);
        assert_eq!(
            (
                f.node_id.as_str(),
                f.host.as_str(),
                f.port,
                f.state.as_str()
            ),
            ("node-b", "127.0.0.1", 4041, "faulted")
        );
    }

    #[test]
    fn error_code_names_follow_the_table() {
        assert_eq!(error_code_name(4), "not_found");
        assert_eq!(error_code_name(99), "unknown");
    }
}
