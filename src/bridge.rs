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
use crate::node::{Client, ClientOptions, NetworkStats, Peer};
use crate::surface::{self, OptionId, Value};
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
        fingerprint: String,
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

    /// The network's figures (`crate::surface`'s flat description of
    /// `crate::node::NetworkStats`), same names.
    #[derive(Debug, Default)]
    struct FfiNetworkStats {
        connections: usize,
        connection_limit: usize,
        refused_connections: u64,
        garbage_frames: u64,
        receive_buffered: usize,
        send_buffered: usize,
        dialled: usize,
        catch_up_serving: usize,
        catch_up_started: u64,
        catch_up_busy: u64,
        catch_up_protocol_errors: u64,
        peer_records: usize,
        discovered_dials: usize,
        refused_own_origin: u64,
        refused_clock_ahead: u64,
        refused_too_many_origins: u64,
        refused_too_many_ranges: u64,
        refused_second_hand: u64,
        untrusted_peers: u64,
        tls_failures: u64,
        forged_announcements: u64,
        replayed_announcements: u64,
    }

    /// A conflict (`crate::store::Conflict`, flattened as `crate::surface` describes it).
    #[derive(Debug, Default)]
    struct FfiConflict {
        key: String,
        local_origin: String,
        local_seq: u64,
        local_version: u64,
        remote_origin: String,
        remote_seq: u64,
        remote_version: u64,
        remote_won: bool,
    }

    /// The option presets whose flags and numbers Rust defines.
    enum FfiPreset {
        Default,
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

        /// Client options (wraps `softadastra::ClientOptions`), read and written one
        /// option at a time by its number (`sa_option_t`, `crate::surface::OptionId`).
        type RustOptions;

        /// A preset, with node_id and wal_path at their defaults for C++ to set.
        fn options_new(preset: FfiPreset) -> Box<RustOptions>;
        /// Sets a text option; non-UTF-8 text is an InvalidArgument naming the option.
        fn set_text(self: &mut RustOptions, option: u32, value: &[u8]) -> FfiStatus;
        fn set_bool(self: &mut RustOptions, option: u32, value: bool) -> FfiStatus;
        /// InvalidArgument when the number does not fit the option.
        fn set_uint(self: &mut RustOptions, option: u32, value: u64) -> FfiStatus;
        /// The value of a text option ("" for a number that is no text option).
        fn text(self: &RustOptions, option: u32) -> String;
        /// The value of a boolean option (false for a number that is no boolean option).
        fn flag(self: &RustOptions, option: u32) -> bool;
        /// The value of a number option (0 for a number that is no number option).
        fn number(self: &RustOptions, option: u32) -> u64;
        /// The options' validity: code 0, or InvalidArgument naming the first bad field.
        fn validate(self: &RustOptions) -> FfiStatus;
        /// `name=value` lines, one per option (`crate::surface::describe`).
        fn describe(self: &RustOptions) -> String;

        /// A closed client with these options. Errs (a C++ exception the SDK catches)
        /// only on an internal error.
        fn client_new(options: &RustOptions) -> Result<Box<RustClient>>;

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
        /// For tests: moves the manual clock (option manual_clock).
        fn advance_clock(self: &RustClient, ms: u64) -> FfiStatus;
        fn compact(self: &RustClient) -> FfiStatus;
        fn backup(self: &RustClient, dir: &[u8]) -> FfiStatus;
        fn node_info(self: &RustClient, info: &mut FfiNodeInfo) -> FfiStatus;
        fn refresh_node_info(self: &RustClient, info: &mut FfiNodeInfo) -> FfiStatus;

        fn tick(self: &RustClient, prune_completed: bool, result: &mut FfiTickResult) -> FfiStatus;
        fn sync_state(self: &RustClient, state: &mut FfiSyncState) -> FfiStatus;
        fn retry_expired(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn prune_completed(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn prune_failed(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn queue_pending(self: &RustClient, count: &mut usize) -> FfiStatus;
        fn retry_failed(self: &RustClient, count: &mut usize) -> FfiStatus;
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
        /// As process_transport_events, sleeping up to `timeout_ms` when there is no work.
        fn wait_transport_events(
            self: &RustClient,
            max_events: usize,
            timeout_ms: u32,
            handled: &mut usize,
        ) -> FfiStatus;
        fn start_background(self: &RustClient) -> FfiStatus;
        fn stop_background(self: &RustClient) -> FfiStatus;
        fn background_running(self: &RustClient) -> bool;
        /// The peer's strings cross as bytes; non-UTF-8 is an InvalidArgument.
        fn connect(self: &RustClient, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus;
        fn disconnect(self: &RustClient, node_id: &[u8], host: &[u8], port: u16) -> FfiStatus;
        /// Strings cross as bytes; non-UTF-8 is an InvalidArgument.
        fn trust_peer(self: &RustClient, node_id: &[u8], fingerprint: &[u8]) -> FfiStatus;
        fn untrust_peer(self: &RustClient, peer: &[u8]) -> FfiStatus;
        fn start_discovery(self: &RustClient) -> FfiStatus;
        fn stop_discovery(self: &RustClient) -> FfiStatus;
        fn discovery_running(self: &RustClient) -> bool;
        /// On success, `peers` holds the known peers (replacing its contents).
        fn peers(self: &RustClient, peers: &mut Vec<FfiPeer>) -> FfiStatus;
        fn network_stats(self: &RustClient, stats: &mut FfiNetworkStats) -> FfiStatus;
        /// On success, `conflicts` holds the most recent conflicts, oldest first.
        fn recent_conflicts(self: &RustClient, conflicts: &mut Vec<FfiConflict>) -> FfiStatus;
        /// On success, `port` is the port the transport is bound to.
        fn transport_port(self: &RustClient, port: &mut u16) -> FfiStatus;
        /// On success, `port` is the port discovery is bound to.
        fn discovery_port(self: &RustClient, port: &mut u16) -> FfiStatus;
        /// Announces to `host:port` too (`Client::add_discovery_target_at`).
        fn add_discovery_target(self: &RustClient, host: &[u8], port: u16) -> FfiStatus;
        /// On success, `text` is the client's description (`sa_client_describe`).
        fn describe(self: &RustClient, text: &mut String) -> FfiStatus;
    }
}

use api::{
    FfiConflict, FfiKeyStatus, FfiNetworkStats, FfiNodeInfo, FfiPeer, FfiPreset, FfiStatus,
    FfiSyncState, FfiTickResult,
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

/// The Rust side of `softadastra::sdk::ClientOptions`: every option goes through
/// `crate::surface`, by number, so nothing here names a field.
pub struct RustOptions {
    options: ClientOptions,
}

fn options_new(preset: FfiPreset) -> Box<RustOptions> {
    let defaults = ClientOptions::default();
    let (node, wal) = (defaults.node_id.as_str(), DEFAULT_WAL_PATH);
    let options = match preset {
        FfiPreset::Persistent => ClientOptions::persistent(node, wal),
        FfiPreset::Fast => ClientOptions::fast(node, wal),
        FfiPreset::MemoryOnly => ClientOptions::memory_only(node),
        _ => ClientOptions::default(),
    };
    Box::new(RustOptions { options })
}

impl RustOptions {
    fn set(&mut self, function: &'static str, option: u32, value: Value) -> FfiStatus {
        status(function, || {
            let id = option_id(function, option)?;
            Ok(surface::set_option(&mut self.options, id, value)?)
        })
    }

    fn set_text(&mut self, option: u32, value: &[u8]) -> FfiStatus {
        const F: &str = "ClientOptions::set_text";
        match std::str::from_utf8(value) {
            Ok(text) => self.set(F, option, Value::Text(text.to_string())),
            Err(_) => {
                let name = OptionId::from_number(option).map_or("option", OptionId::name);
                Err(FfiError::new(
                    ErrorCode::InvalidArgument,
                    format!("invalid client options: {name}: not valid UTF-8"),
                    name,
                ))
                .into()
            }
        }
    }

    fn set_bool(&mut self, option: u32, value: bool) -> FfiStatus {
        self.set("ClientOptions::set_bool", option, Value::Bool(value))
    }

    fn set_uint(&mut self, option: u32, value: u64) -> FfiStatus {
        self.set("ClientOptions::set_uint", option, Value::Uint(value))
    }

    fn get(&self, option: u32) -> Option<Value> {
        OptionId::from_number(option).map(|id| surface::get_option(&self.options, id))
    }

    fn text(&self, option: u32) -> String {
        match self.get(option) {
            Some(Value::Text(text)) => text,
            _ => String::new(),
        }
    }

    fn flag(&self, option: u32) -> bool {
        self.get(option) == Some(Value::Bool(true))
    }

    fn number(&self, option: u32) -> u64 {
        match self.get(option) {
            Some(Value::Uint(n)) => n,
            _ => 0,
        }
    }

    fn validate(&self) -> FfiStatus {
        status("ClientOptions::validate", || Ok(self.options.validate()?))
    }

    fn describe(&self) -> String {
        surface::describe(&self.options)
    }
}

/// The option numbered `option`, or an InvalidArgument naming the number.
fn option_id(function: &str, option: u32) -> Result<OptionId, FfiError> {
    OptionId::from_number(option).ok_or_else(|| {
        FfiError::new(
            ErrorCode::InvalidArgument,
            format!("{function}: {option} is not an option number"),
            "option",
        )
    })
}

/// The Rust side of `softadastra::sdk::Client`.
pub struct RustClient {
    client: Client,
}

fn client_new(options: &RustOptions) -> Result<Box<RustClient>, String> {
    boundary::catch("client_new", || {
        Ok(Box::new(RustClient {
            client: Client::new(options.options.clone()),
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
/// A peer's text field from bytes; non-UTF-8 is an InvalidArgument naming the field.
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

fn peer(node_id: &[u8], host: &[u8], port: u16) -> Result<Peer, FfiError> {
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
    let display_name = info.label().to_string();
    // Exhaustive: a new field of NodeInfo does not compile until it crosses.
    let NodeInfo {
        node_id,
        display_name: _,
        hostname,
        os_name,
        version,
        started_at_ms,
        uptime_ms,
        capabilities,
        fingerprint,
    } = info;
    *out = FfiNodeInfo {
        node_id,
        display_name,
        hostname,
        os_name,
        version,
        started_at_ms,
        uptime_ms,
        capabilities,
        fingerprint,
    };
}

// The value types cross by way of the C ABI's structs, whose conversions from the core
// destructure exhaustively: a new field fails to compile there, and here until carried.
impl From<SyncState> for FfiSyncState {
    fn from(s: SyncState) -> Self {
        let crate::ffi::sync::SaSyncState {
            outbox_size,
            pending_count,
            queued_count,
            in_flight_count,
            acknowledged_count,
            failed_count,
            last_submitted_version,
            last_applied_remote_version,
            total_retries,
            conflict_count,
        } = s.into();
        FfiSyncState {
            outbox_size,
            pending_count,
            queued_count,
            in_flight_count,
            acknowledged_count,
            failed_count,
            last_submitted_version,
            last_applied_remote_version,
            total_retries,
            conflict_count,
        }
    }
}

impl From<TickResult> for FfiTickResult {
    fn from(t: TickResult) -> Self {
        let crate::ffi::sync::SaTickResult {
            retried_count,
            pruned_count,
            batch_size,
        } = t.into();
        FfiTickResult {
            retried_count,
            pruned_count,
            batch_size,
        }
    }
}

impl From<&NetworkStats> for FfiNetworkStats {
    fn from(stats: &NetworkStats) -> Self {
        let crate::ffi::network::SaNetworkStats {
            connections,
            connection_limit,
            refused_connections,
            garbage_frames,
            receive_buffered,
            send_buffered,
            dialled,
            catch_up_serving,
            catch_up_started,
            catch_up_busy,
            catch_up_protocol_errors,
            peer_records,
            discovered_dials,
            refused_own_origin,
            refused_clock_ahead,
            refused_too_many_origins,
            refused_too_many_ranges,
            refused_second_hand,
            untrusted_peers,
            tls_failures,
            forged_announcements,
            replayed_announcements,
        } = stats.into();
        FfiNetworkStats {
            connections,
            connection_limit,
            refused_connections,
            garbage_frames,
            receive_buffered,
            send_buffered,
            dialled,
            catch_up_serving,
            catch_up_started,
            catch_up_busy,
            catch_up_protocol_errors,
            peer_records,
            discovered_dials,
            refused_own_origin,
            refused_clock_ahead,
            refused_too_many_origins,
            refused_too_many_ranges,
            refused_second_hand,
            untrusted_peers,
            tls_failures,
            forged_announcements,
            replayed_announcements,
        }
    }
}

impl From<crate::store::Conflict> for FfiConflict {
    fn from(c: crate::store::Conflict) -> Self {
        let crate::store::Conflict {
            key,
            local,
            remote,
            remote_won,
        } = c;
        FfiConflict {
            key,
            local_origin: local.origin,
            local_seq: local.seq,
            local_version: local.version.0,
            remote_origin: remote.origin,
            remote_seq: remote.seq,
            remote_version: remote.version.0,
            remote_won,
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

    fn advance_clock(&self, ms: u64) -> FfiStatus {
        status("Client::advance_clock", || {
            Ok(self.client.advance_clock(ms)?)
        })
    }

    fn compact(&self) -> FfiStatus {
        status("Client::compact", || {
            self.client.compact()?;
            Ok(())
        })
    }

    fn backup(&self, dir: &[u8]) -> FfiStatus {
        status("Client::backup", || {
            let dir = text(dir, "dir")?;
            if dir.is_empty() {
                return Err(FfiError::new(
                    ErrorCode::InvalidArgument,
                    "Client::backup: dir is empty",
                    "dir",
                ));
            }
            self.client.backup(std::path::Path::new(dir))?;
            Ok(())
        })
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

    fn retry_failed(&self, count: &mut usize) -> FfiStatus {
        status("Client::retry_failed", || {
            *count = self.client.retry_failed()?;
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

    fn wait_transport_events(
        &self,
        max_events: usize,
        timeout_ms: u32,
        handled: &mut usize,
    ) -> FfiStatus {
        status("Client::process_transport_events", || {
            let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
            *handled = self
                .client
                .process_transport_events_wait(max_events, timeout)?;
            Ok(())
        })
    }

    fn start_background(&self) -> FfiStatus {
        status("Client::start_background", || {
            Ok(self.client.start_background()?)
        })
    }

    fn stop_background(&self) -> FfiStatus {
        status("Client::stop_background", || {
            self.client.stop_background();
            Ok(())
        })
    }

    fn background_running(&self) -> bool {
        boundary::catch("Client::background_running", || {
            Ok(self.client.background_running())
        })
        .unwrap_or(false)
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

    fn trust_peer(&self, node_id: &[u8], fingerprint: &[u8]) -> FfiStatus {
        status("Client::trust_peer", || {
            let node_id = text(node_id, "node_id")?;
            let fingerprint = text(fingerprint, "fingerprint")?;
            Ok(self.client.trust_peer(node_id, fingerprint)?)
        })
    }

    fn untrust_peer(&self, peer: &[u8]) -> FfiStatus {
        status("Client::untrust_peer", || {
            Ok(self.client.untrust_peer(text(peer, "peer")?)?)
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

    fn network_stats(&self, out: &mut FfiNetworkStats) -> FfiStatus {
        status("Client::network_stats", || {
            *out = (&self.client.network_stats()?).into();
            Ok(())
        })
    }

    fn recent_conflicts(&self, out: &mut Vec<FfiConflict>) -> FfiStatus {
        status("Client::recent_conflicts", || {
            *out = self
                .client
                .recent_conflicts()?
                .into_iter()
                .map(FfiConflict::from)
                .collect();
            Ok(())
        })
    }

    fn transport_port(&self, port: &mut u16) -> FfiStatus {
        status("Client::transport_port", || {
            *port = self.client.transport_port()?;
            Ok(())
        })
    }

    fn discovery_port(&self, port: &mut u16) -> FfiStatus {
        status("Client::discovery_port", || {
            *port = self.client.discovery_port()?;
            Ok(())
        })
    }

    fn add_discovery_target(&self, host: &[u8], port: u16) -> FfiStatus {
        status("Client::add_discovery_target", || {
            Ok(self
                .client
                .add_discovery_target_at(text(host, "host")?, port)?)
        })
    }

    fn describe(&self, out: &mut String) -> FfiStatus {
        status("Client::describe", || {
            *out = surface::describe_client(&self.client)?;
            Ok(())
        })
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

    fn options(o: ClientOptions) -> RustOptions {
        RustOptions { options: o }
    }

    #[test]
    fn options_are_set_and_read_by_number_with_their_checks() {
        let mut o = *options_new(FfiPreset::Fast);
        assert_eq!(o.options, ClientOptions::fast("node-1", DEFAULT_WAL_PATH));
        let port = OptionId::SaOptionTransportPort as u32;
        assert_eq!(o.set_uint(port, 4041).code, 0);
        assert_eq!(o.number(port), 4041);
        let s = o.set_uint(port, 70_000);
        assert_eq!(s.code, ErrorCode::InvalidArgument as u32);
        assert_eq!(s.context, "transport_port");
        let node = OptionId::SaOptionNodeId as u32;
        let s = o.set_text(node, b"a\xff");
        assert_eq!((s.code, s.context.as_str()), (2, "node_id"));
        assert_eq!(o.set_text(node, b"till-1").code, 0);
        assert_eq!(o.text(node), "till-1");
        assert_eq!(
            o.set_bool(9999, true).code,
            ErrorCode::InvalidArgument as u32
        );
        assert!(o.describe().starts_with("node_id=till-1\n"));
    }

    #[test]
    fn non_utf8_key_is_invalid_argument_not_a_crash() {
        let c = client_new(&options(ClientOptions::memory_only("n1"))).unwrap();
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
        let c = client_new(&options(ClientOptions::memory_only("n1"))).unwrap();
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
    fn network_calls_report_disabled_and_invalid_peers() {
        let c = client_new(&options(ClientOptions::memory_only("n1"))).unwrap();
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
