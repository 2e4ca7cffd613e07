//! The network layer through the C ABI: the transport (`sa_client_start_transport`, ...,
//! `sa_client_process_transport_events`), connections to peers (`sa_client_connect`,
//! `sa_client_disconnect`), discovery (`sa_client_start_discovery`, ...) and the peer list
//! (`sa_client_peers`, a `sa_peers_t` freed by `sa_peers_free`).
//!
//! A peer is given to `sa_client_connect` and `sa_client_disconnect` as a node id, a host
//! and a port, all borrowed for the call. Nothing here runs in the background: the
//! application calls `sa_client_process_transport_events` in a loop (or from a thread of
//! its own) while the transport or discovery runs.
//!
//! Thread safety: every function here may be called from several threads at once on the
//! same client, like the other `sa_client_*` functions. Transport calls on one client are
//! serialised inside the library (one waits for the other).

use std::ffi::{CString, c_char};

use crate::node::{Client, NetworkStats, Peer, PeerState};

use super::SaStatus;
use super::boundary::{self, FfiError, PointerArray, Returned, to_c_string};
use super::client::{self, SaClient};

/// The state of a peer in `sa_peer_t`. The values are never renumbered; their names
/// (`sa_peer_state_string`) are the strings of `softadastra::sdk::Peer::state` in the
/// C++ SDK.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaPeerState {
    /// Known and reachable as far as we know (announced recently, or being connected).
    SaPeerStateAvailable = 0,
    /// Handshake done: operations flow.
    SaPeerStateConnected = 1,
    /// Not announced for half the discovery TTL.
    SaPeerStateStale = 2,
    /// Not announced for a full TTL (reported once, then dropped).
    SaPeerStateExpired = 3,
    /// The last connection failed or broke; the node retries with backoff.
    SaPeerStateFaulted = 4,
    /// Nothing is known about it.
    SaPeerStateUnknown = 5,
}

impl From<PeerState> for SaPeerState {
    fn from(s: PeerState) -> Self {
        match s {
            PeerState::Available => SaPeerState::SaPeerStateAvailable,
            PeerState::Connected => SaPeerState::SaPeerStateConnected,
            PeerState::Stale => SaPeerState::SaPeerStateStale,
            PeerState::Expired => SaPeerState::SaPeerStateExpired,
            PeerState::Faulted => SaPeerState::SaPeerStateFaulted,
            PeerState::Unknown => SaPeerState::SaPeerStateUnknown,
        }
    }
}

/// A static C string for each peer state, in numeric order.
const PEER_STATE_NAMES: [&std::ffi::CStr; 6] = [
    c"available",
    c"connected",
    c"stale",
    c"expired",
    c"faulted",
    c"unknown",
];

/// The name of a peer state: "available", "connected", "stale", "expired", "faulted" or
/// "unknown" (also for a number that is no `sa_peer_state_t`).
///
/// Ownership: the returned string is static; never free it.
/// Thread safety: may be called from any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub extern "C" fn sa_peer_state_string(state: u32) -> *const c_char {
    PEER_STATE_NAMES
        .get(state as usize)
        .map_or(c"unknown".as_ptr(), |s| s.as_ptr())
}

/// A peer node, an element of `sa_peers_t`. Its strings belong to the list and stay valid
/// until `sa_peers_free`; do not modify or free them.
#[repr(C)]
#[derive(Debug)]
pub struct SaPeer {
    /// The peer's node id: from its handshake or announcement, else as given to
    /// `sa_client_connect`.
    pub node_id: *const c_char,
    /// The host it is reached at ("" for an expired peer).
    pub host: *const c_char,
    /// Its transport port (0 for an expired peer).
    pub port: u16,
    pub state: SaPeerState,
    /// When it was last heard from, in milliseconds since the Unix epoch (0: never).
    pub last_seen_ms: u64,
}

/// The peers of a client (returned by `sa_client_peers`): `items[i]` points to peer i, for
/// i below `len`. Everything belongs to the list until `sa_peers_free`; do not change it.
#[repr(C)]
#[derive(Debug)]
pub struct SaPeers {
    pub items: *const *const SaPeer,
    pub len: usize,
}

/// The storage behind a [`SaPeers`]: the strings, and the peers pointing into them.
type PeersKeep = (Vec<CString>, PointerArray<SaPeer>);

impl SaPeers {
    pub(crate) fn into_raw(peers: &[Peer]) -> *mut SaPeers {
        let mut strings = Vec::with_capacity(peers.len() * 2);
        let mut items = Vec::with_capacity(peers.len());
        for peer in peers {
            let Peer {
                node_id,
                host,
                port,
                state,
                last_seen_ms,
            } = peer;
            let (node_id, host) = (to_c_string(node_id), to_c_string(host));
            items.push(SaPeer {
                node_id: node_id.as_ptr(),
                host: host.as_ptr(),
                port: *port,
                state: (*state).into(),
                last_seen_ms: *last_seen_ms,
            });
            strings.extend([node_id, host]);
        }
        let items = PointerArray::new(items);
        let (pointers, len) = items.raw();
        Returned::into_raw(
            SaPeers {
                items: pointers,
                len,
            },
            (strings, items),
        )
    }
}

/// Frees a list from `sa_client_peers` and every string in it. NULL is a no-op.
///
/// Ownership: `peers` must not be used afterwards. Thread safety: any thread, once.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_peers_free(peers: *mut SaPeers) {
    let _ = boundary::catch("sa_peers_free", || {
        // SAFETY: the caller passes NULL or a list from SaPeers::into_raw, used no more.
        unsafe { Returned::<SaPeers, PeersKeep>::free(peers) };
        Ok(())
    });
}

/// The network's figures (returned by `sa_client_network_stats`): connections, buffers,
/// catch-ups and refused input, for monitoring. Counters count since the transport started
/// (`refused_*`: since the client was opened); without a transport they are 0. Free with `sa_network_stats_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaNetworkStats {
    /// Open connections, handshaking ones included.
    pub connections: usize,
    /// The connection limit in force.
    pub connection_limit: usize,
    /// Connections refused at the limit.
    pub refused_connections: u64,
    /// Frames that could not be read (the connection was closed).
    pub garbage_frames: u64,
    /// Bytes of incomplete frames buffered.
    pub receive_buffered: usize,
    /// Bytes waiting to be written.
    pub send_buffered: usize,
    /// Addresses kept connected (redialled).
    pub dialled: usize,
    /// Catch-ups being served now.
    pub catch_up_serving: usize,
    /// Catch-ups begun.
    pub catch_up_started: u64,
    /// Catch-up requests answered at once with an empty end (busy).
    pub catch_up_busy: u64,
    /// Connections closed for breaking the catch-up conversation.
    pub catch_up_protocol_errors: u64,
    /// Records of peers that are not connected (dialled, or seen recently).
    pub peer_records: usize,
    /// Addresses dialled because discovery found them.
    pub discovered_dials: usize,
    /// Remote operations refused: claiming this node's origin.
    pub refused_own_origin: u64,
    /// ... stamped further ahead than `max_clock_drift_ms`.
    pub refused_clock_ahead: u64,
    /// ... from a new origin when the origin table is full.
    pub refused_too_many_origins: u64,
    /// ... widening a sync mark beyond its range limit.
    pub refused_too_many_ranges: u64,
    /// ... relayed for an origin the sender may not speak for.
    pub refused_second_hand: u64,
    /// Peers refused for their key: not trusted, or trusted for another node id.
    pub untrusted_peers: u64,
    /// TLS handshakes or sessions that failed (no or bad certificate, not TLS, ...).
    pub tls_failures: u64,
    /// Discovery datagrams ignored as forged (bad signature, or a known node id with
    /// another key).
    pub forged_announcements: u64,
    /// Discovery datagrams ignored as replayed (not newer, or outside the clock window).
    pub replayed_announcements: u64,
}

impl From<&NetworkStats> for SaNetworkStats {
    fn from(stats: &NetworkStats) -> Self {
        let NetworkStats {
            transport,
            catch_ups,
            peer_records,
            discovered_dials,
            refused_operations: refused,
            forged_announcements,
            replayed_announcements,
        } = stats;
        SaNetworkStats {
            connections: transport.connections,
            connection_limit: transport.connection_limit,
            refused_connections: transport.refused_connections,
            garbage_frames: transport.garbage_frames,
            receive_buffered: transport.receive_buffered,
            send_buffered: transport.send_buffered,
            dialled: transport.dialled,
            catch_up_serving: catch_ups.serving,
            catch_up_started: catch_ups.started,
            catch_up_busy: catch_ups.busy,
            catch_up_protocol_errors: catch_ups.protocol_errors,
            peer_records: *peer_records,
            discovered_dials: *discovered_dials,
            refused_own_origin: refused.own_origin,
            refused_clock_ahead: refused.clock_ahead,
            refused_too_many_origins: refused.too_many_origins,
            refused_too_many_ranges: refused.too_many_ranges,
            refused_second_hand: refused.second_hand,
            untrusted_peers: transport.untrusted_peers,
            tls_failures: transport.tls_failures,
            forged_announcements: *forged_announcements,
            replayed_announcements: *replayed_announcements,
        }
    }
}

/// Writes the network's figures to `*out_stats`.
///
/// Ownership: the caller frees `*out_stats` with `sa_network_stats_free`.
/// Without a running transport the transport figures are 0 (the refused counts still
/// count). Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL argument). `*out_stats` is written only on
/// success. Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_network_stats(
    client: *const SaClient,
    out_stats: *mut *mut SaNetworkStats,
) -> SaStatus {
    const F: &str = "sa_client_network_stats";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_stats, F, "out_stats") }?;
        let stats = SaNetworkStats::from(&c.network_stats()?);
        out.write(Returned::into_raw(stats, ()));
        Ok(())
    })
}

/// Frees figures from `sa_client_network_stats`. NULL is a no-op.
/// Ownership: `stats` must not be used afterwards. Thread safety: any thread, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_network_stats_free(stats: *mut SaNetworkStats) {
    let _ = boundary::catch("sa_network_stats_free", || {
        // SAFETY: the caller passes NULL or figures from sa_client_network_stats.
        unsafe { Returned::<SaNetworkStats, ()>::free(stats) };
        Ok(())
    });
}

/// Runs `call` on the client and reports its outcome as a status.
///
/// # Safety
/// `client` is NULL or a live handle from `sa_client_new`.
unsafe fn client_call(
    function: &'static str,
    client: *const SaClient,
    call: impl FnOnce(&Client) -> crate::Result<()>,
) -> SaStatus {
    boundary::status(function, || {
        // SAFETY: forwarded from this function's contract.
        let c = unsafe { client::client(client, function) }?;
        Ok(call(c)?)
    })
}

/// Whether `call` holds for the client; false for NULL. Does not touch the last error.
///
/// # Safety
/// `client` is NULL or a live handle from `sa_client_new`.
unsafe fn client_flag(
    function: &'static str,
    client: *const SaClient,
    call: impl FnOnce(&Client) -> bool,
) -> bool {
    boundary::catch(function, || {
        // SAFETY: forwarded from this function's contract.
        Ok(call(unsafe { client::client(client, function) }?))
    })
    .unwrap_or(false)
}

/// A peer from C arguments. NULL strings are rejected (naming the parameter); the peer
/// itself is checked by the core (`Peer::address`).
///
/// # Safety
/// `node_id` and `host` are NULL or NUL-terminated strings valid during the call.
unsafe fn peer_arg(
    function: &str,
    node_id: *const c_char,
    host: *const c_char,
    port: u16,
) -> Result<Peer, FfiError> {
    if node_id.is_null() {
        return Err(FfiError::null(function, "node_id"));
    }
    if host.is_null() {
        return Err(FfiError::null(function, "host"));
    }
    // SAFETY: both are non-NULL and, per the caller, NUL-terminated.
    let (node_id, host) = unsafe {
        (
            boundary::c_str_arg(node_id, function, "node_id")?,
            boundary::c_str_arg(host, function, "host")?,
        )
    };
    Ok(Peer::new(node_id, host, port))
}

/// Binds the transport on the options' `transport_host:transport_port` and accepts
/// connections from peers. Starting a running transport does nothing.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` ("transport is disabled"
/// when `enable_transport` is off; the address cannot be bound, e.g. "address already in
/// use"), `SA_INVALID_ARGUMENT` (NULL `client`).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_start_transport(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller's contract is client_call's.
    unsafe { client_call("sa_client_start_transport", client, Client::start_transport) }
}

/// Closes every connection and the listener. Stopping a stopped transport, or one that
/// is disabled, does nothing. Sync work stays tracked and is sent once a peer is
/// connected again. `sa_client_close` stops the transport too.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client`).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_stop_transport(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller's contract is client_call's.
    unsafe { client_call("sa_client_stop_transport", client, Client::stop_transport) }
}

/// Whether the transport runs. False when the client is NULL, closed, or the transport
/// was never started or was stopped.
/// Thread safety: any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_transport_running(client: *const SaClient) -> bool {
    // SAFETY: the caller's contract is client_flag's.
    unsafe {
        client_flag(
            "sa_client_transport_running",
            client,
            Client::transport_running,
        )
    }
}

/// Writes the port the transport is bound to to `*out_port` (for tools and tests that
/// want to confirm the listener runs, or tell a peer where to connect).
///
/// Ownership: `*out_port` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` (disabled, or not running),
/// `SA_INVALID_ARGUMENT` (NULL `client` or `out_port`). `*out_port` is written only on
/// success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_transport_port(
    client: *const SaClient,
    out_port: *mut u16,
) -> SaStatus {
    const F: &str = "sa_client_transport_port";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_port, F, "out_port") }?;
        out.write(c.transport_port()?);
        Ok(())
    })
}

/// Writes the port discovery is bound to to `*out_port`.
///
/// Ownership: `*out_port` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_DISCOVERY_ERROR` (disabled, or not running),
/// `SA_INVALID_ARGUMENT` (NULL `client` or `out_port`). `*out_port` is written only on
/// success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_discovery_port(
    client: *const SaClient,
    out_port: *mut u16,
) -> SaStatus {
    const F: &str = "sa_client_discovery_port";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_port, F, "out_port") }?;
        out.write(c.discovery_port()?);
        Ok(())
    })
}

/// Does the pending network work without waiting: accepts connections, completes
/// handshakes, reads and answers messages, applies and acknowledges peers' operations,
/// pushes the outbox, redials dropped peers, and handles discovery datagrams. Writes how
/// many transport events it handled to `*out_handled` (at most `max_events`; 0 means no
/// limit). Call it in a loop while the transport or discovery runs.
///
/// Ownership: `*out_handled` is caller-owned.
/// Errors: `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` (neither the transport nor
/// discovery runs: "transport is disabled" or "transport is not running"),
/// `SA_INVALID_ARGUMENT` (NULL `client` or `out_handled`). `*out_handled` is written only
/// on success.
/// Thread safety: any thread, concurrently with other calls on the same client (they wait
/// for each other).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_process_transport_events(
    client: *mut SaClient,
    max_events: usize,
    out_handled: *mut usize,
) -> SaStatus {
    const F: &str = "sa_client_process_transport_events";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_handled, F, "out_handled") }?;
        out.write(c.process_transport_events(max_events)?);
        Ok(())
    })
}

/// As `sa_client_process_transport_events`, and when there is no work, sleeps until
/// there is some (a frame, a connection, a datagram, or a local write from another thread,
/// which wakes it at once) or `timeout_ms` passes. The call for an event loop on a thread
/// of the application's; timers (ACK timeouts, retries, redials) fire within `timeout_ms`,
/// so keep it moderate (100 ms is a good default).
///
/// Ownership, errors and thread safety: as `sa_client_process_transport_events` (other
/// network calls on the client wait while it sleeps).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_wait_transport_events(
    client: *mut SaClient,
    max_events: usize,
    timeout_ms: u32,
    out_handled: *mut usize,
) -> SaStatus {
    const F: &str = "sa_client_wait_transport_events";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_handled, F, "out_handled") }?;
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        out.write(c.process_transport_events_wait(max_events, timeout)?);
        Ok(())
    })
}

/// Runs the event loop on a thread of the client's (the background mode): network
/// events are handled as they come, timers fire within 100 ms, acknowledged operations
/// are pruned every second. The application still starts the transport and discovery.
/// Starting it twice does nothing; `sa_client_stop_background`, `sa_client_close` and
/// `sa_client_free` stop it. Without it nothing runs behind the application's back.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client`).
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_start_background(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe {
        client_call(
            "sa_client_start_background",
            client,
            Client::start_background,
        )
    }
}

/// Stops the background loop and waits for its thread (at most one 100 ms turn). Safe when
/// none runs. Errors: `SA_INVALID_ARGUMENT` (NULL `client`). Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_stop_background(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe {
        client_call("sa_client_stop_background", client, |c| {
            c.stop_background();
            Ok(())
        })
    }
}

/// Whether the background loop runs (false for NULL). Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_background_running(client: *const SaClient) -> bool {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe {
        client_flag(
            "sa_client_background_running",
            client,
            Client::background_running,
        )
    }
}

/// Connects to the peer `node_id` at `host:port` and keeps the connection: it is
/// redialled with backoff whenever it drops, until `sa_client_disconnect`. Returns once
/// the attempt has started; the handshake completes during
/// `sa_client_process_transport_events` (`sa_client_peers` then shows it connected).
///
/// Ownership: `node_id` and `host` (NUL-terminated UTF-8) are only read during the call.
/// Errors: `SA_INVALID_ARGUMENT` (NULL `client`, `node_id` or `host`; an invalid node id,
/// an empty or unresolvable host, port 0 — the context names the peer),
/// `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` (disabled, or not running).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_connect(
    client: *mut SaClient,
    node_id: *const c_char,
    host: *const c_char,
    port: u16,
) -> SaStatus {
    const F: &str = "sa_client_connect";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let peer = unsafe { peer_arg(F, node_id, host, port) }?;
        Ok(c.connect(&peer)?)
    })
}

/// Closes the connection to the peer `node_id` at `host:port` (matched by address or by
/// node id) and stops redialling it.
///
/// Ownership: `node_id` and `host` are only read during the call.
/// Errors: as `sa_client_connect`, and `SA_INVALID_ARGUMENT` when the peer is neither
/// connected nor being dialled ("not connected").
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_disconnect(
    client: *mut SaClient,
    node_id: *const c_char,
    host: *const c_char,
    port: u16,
) -> SaStatus {
    const F: &str = "sa_client_disconnect";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let peer = unsafe { peer_arg(F, node_id, host, port) }?;
        Ok(c.disconnect(&peer)?)
    })
}

/// Trusts the key `fingerprint` (64 hex digits: `sa_node_info_t.fingerprint` on that
/// node) as node `node_id`: connections from and to it are accepted from now on (peer
/// connections are TLS 1.3 between trusted keys, unless `insecure_transport` is set). A
/// node id has one key and a key one node id: an earlier entry of either is replaced.
/// Kept in the trust file (`trust_path`), written durably before this returns.
///
/// Ownership: `node_id` and `fingerprint` (NUL-terminated UTF-8) are only read during the
/// call. Errors: `SA_INVALID_ARGUMENT` (NULL `client`; an invalid node id or fingerprint,
/// the message says why), `SA_INVALID_STATE` (closed), `SA_IO_ERROR` (the trust file
/// cannot be written; nothing changed). Thread safety: any thread, concurrently with other
/// calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_trust_peer(
    client: *mut SaClient,
    node_id: *const c_char,
    fingerprint: *const c_char,
) -> SaStatus {
    const F: &str = "sa_client_trust_peer";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let (node_id, fingerprint) = unsafe {
            (
                boundary::c_str_arg(node_id, F, "node_id")?,
                boundary::c_str_arg(fingerprint, F, "fingerprint")?,
            )
        };
        Ok(c.trust_peer(node_id, fingerprint)?)
    })
}

/// Stops trusting the key of `peer` (a node id or a fingerprint) and closes the
/// connections it holds.
///
/// Ownership: `peer` is only read during the call. Errors: `SA_INVALID_ARGUMENT` (NULL
/// `client`; no such trusted peer), `SA_INVALID_STATE` (closed), `SA_IO_ERROR` (the trust
/// file cannot be written; nothing changed). Thread safety: any thread, concurrently with
/// other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_untrust_peer(
    client: *mut SaClient,
    peer: *const c_char,
) -> SaStatus {
    const F: &str = "sa_client_untrust_peer";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let peer = unsafe { boundary::c_str_arg(peer, F, "peer") }?;
        Ok(c.untrust_peer(peer)?)
    })
}

/// Starts UDP discovery on the options' `discovery_host:discovery_port`, announcing this
/// node every `discovery_interval_ms` to `discovery_broadcast_host` (port
/// `discovery_broadcast_port`, or the discovery port when 0). With
/// `auto_connect_discovered` and a running transport, found peers are connected to.
/// Starting it twice does nothing.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_DISCOVERY_ERROR` ("discovery is disabled"
/// when `enable_discovery` is off; the socket cannot be bound), `SA_INVALID_ARGUMENT`
/// (NULL `client`; a discovery setting the core refuses, e.g. a TTL under twice the
/// interval, or no transport port to announce — the context names the field).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_start_discovery(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller's contract is client_call's.
    unsafe { client_call("sa_client_start_discovery", client, Client::start_discovery) }
}

/// Stops discovery. Stopping it when it is disabled or not running does nothing.
///
/// Errors: `SA_INVALID_STATE` (closed), `SA_INVALID_ARGUMENT` (NULL `client`).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_stop_discovery(client: *mut SaClient) -> SaStatus {
    // SAFETY: the caller's contract is client_call's.
    unsafe { client_call("sa_client_stop_discovery", client, Client::stop_discovery) }
}

/// Whether discovery runs. False when the client is NULL, closed, or discovery was never
/// started or was stopped.
/// Thread safety: any thread. Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_discovery_running(client: *const SaClient) -> bool {
    // SAFETY: the caller's contract is client_flag's.
    unsafe {
        client_flag(
            "sa_client_discovery_running",
            client,
            Client::discovery_running,
        )
    }
}

/// Writes the known peers, sorted by node id, to `*out_peers`: connected ones, dialled
/// ones (faulted when their last connection failed), ones found by discovery (available
/// or stale), and ones that expired since the last call (reported once).
///
/// Ownership: the caller frees `*out_peers` with `sa_peers_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` (both the transport and
/// discovery are disabled), `SA_INVALID_ARGUMENT` (NULL `client` or `out_peers`).
/// `*out_peers` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_peers(
    client: *mut SaClient,
    out_peers: *mut *mut SaPeers,
) -> SaStatus {
    const F: &str = "sa_client_peers";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_peers, F, "out_peers") }?;
        let peers = c.peers()?;
        out.write(SaPeers::into_raw(&peers));
        Ok(())
    })
}

/// Sends discovery's announcements and probes to `host:port` too, besides the broadcast
/// address: for nodes on ephemeral discovery ports (`SA_OPTION_EPHEMERAL_DISCOVERY_PORT`),
/// several nodes on one host, or networks without broadcast. `host` is an address or a
/// name (resolved now).
///
/// Ownership: `host` is borrowed for the call.
/// Errors: `SA_INVALID_STATE` (closed), `SA_DISCOVERY_ERROR` (discovery not running),
/// `SA_INVALID_ARGUMENT` (NULL `client`, a NULL or empty host, port 0, a host that does
/// not resolve; the context names `host:port`).
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_add_discovery_target(
    client: *mut SaClient,
    host: *const c_char,
    port: u16,
) -> SaStatus {
    const F: &str = "sa_client_add_discovery_target";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL (read as "", refused) or a NUL-terminated string.
        let host = unsafe { boundary::c_str_arg(host, F, "host") }?;
        Ok(c.add_discovery_target_at(host, port)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use crate::error::ErrorCode;
    use crate::ffi::boundary::BoxHandle;
    use crate::ffi::client::sa_client_open;
    use std::ffi::CStr;

    use crate::surface::ALL_PEER_STATES;

    fn new_client(options: ClientOptions) -> *mut SaClient {
        SaClient {
            client: Client::new(options),
        }
        .into_raw()
    }

    #[test]
    fn peer_state_values_and_names_follow_the_core() {
        for (n, state) in ALL_PEER_STATES.iter().enumerate() {
            assert_eq!(SaPeerState::from(*state) as usize, n);
            // SAFETY: a static C string.
            let name = unsafe { CStr::from_ptr(sa_peer_state_string(n as u32)) };
            assert_eq!(name.to_str().unwrap(), state.as_str());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(sa_peer_state_string(99)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
    }

    #[test]
    fn peer_lists_carry_every_field() {
        let mut peer = Peer::local("node-b", 4041);
        peer.state = PeerState::Stale;
        peer.last_seen_ms = 1234;
        let list = SaPeers::into_raw(&[peer, Peer::new("node-c", "::1", 9)]);
        // SAFETY: list holds 2 peers with valid strings until it is freed.
        unsafe {
            assert_eq!((*list).len, 2);
            let b = &**(*list).items;
            assert_eq!(CStr::from_ptr(b.node_id).to_str().unwrap(), "node-b");
            assert_eq!(CStr::from_ptr(b.host).to_str().unwrap(), "127.0.0.1");
            assert_eq!(
                (b.port, b.state, b.last_seen_ms),
                (4041, SaPeerState::SaPeerStateStale, 1234)
            );
            let c = &**(*list).items.add(1);
            assert_eq!(c.state, SaPeerState::SaPeerStateUnknown);
            sa_peers_free(list);
            sa_peers_free(std::ptr::null_mut());
            let empty = SaPeers::into_raw(&[]);
            assert!(!(*empty).items.is_null() && (*empty).len == 0);
            sa_peers_free(empty);
        }
    }

    #[test]
    fn disabled_transport_and_discovery_are_reported_with_their_codes() {
        let c = new_client(ClientOptions::memory_only("n1"));
        // SAFETY: c is a live handle; every out pointer is valid.
        unsafe {
            assert_eq!(sa_client_start_transport(c), SaStatus::SaInvalidState);
            assert!(!sa_client_transport_running(c));
            assert_eq!(sa_client_open(c), SaStatus::SaOk);
            assert_eq!(sa_client_start_transport(c), SaStatus::SaTransportError);
            let message = CStr::from_ptr(crate::ffi::sa_last_error_message());
            assert!(message.to_str().unwrap().contains("transport is disabled"));
            assert_eq!(sa_client_stop_transport(c), SaStatus::SaOk);
            let mut handled = 77usize;
            assert_eq!(
                sa_client_process_transport_events(c, 8, &mut handled),
                SaStatus::SaTransportError
            );
            assert_eq!(handled, 77);
            assert_eq!(sa_client_start_discovery(c), SaStatus::SaDiscoveryError);
            assert_eq!(sa_client_stop_discovery(c), SaStatus::SaOk);
            assert!(!sa_client_discovery_running(c));
            let mut peers = std::ptr::null_mut();
            assert_eq!(sa_client_peers(c, &mut peers), SaStatus::SaTransportError);
            assert!(peers.is_null());
            let mut stats = std::ptr::null_mut();
            assert_eq!(sa_client_network_stats(c, &mut stats), SaStatus::SaOk);
            assert_eq!(*stats, SaNetworkStats::default());
            sa_network_stats_free(stats);
            SaClient::free(c);
        }
    }

    #[test]
    fn null_arguments_name_the_parameter() {
        let c = new_client(ClientOptions::memory_only("n1"));
        // SAFETY: c is live; NULL pointers are rejected before any use.
        unsafe {
            assert_eq!(
                sa_client_connect(c, std::ptr::null(), c"127.0.0.1".as_ptr(), 1),
                SaStatus::SaInvalidArgument
            );
            let context = CStr::from_ptr(crate::ffi::sa_last_error_context());
            assert_eq!(context.to_str().unwrap(), "node_id");
            assert_eq!(
                sa_client_disconnect(c, c"b".as_ptr(), std::ptr::null(), 1),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(
                sa_client_transport_port(c, std::ptr::null_mut()),
                SaStatus::SaInvalidArgument
            );
            assert_eq!(
                sa_client_start_transport(std::ptr::null_mut()),
                SaStatus::SaInvalidArgument
            );
            assert!(!sa_client_transport_running(std::ptr::null()));
            assert_eq!(boundary::last_error_code(), ErrorCode::InvalidArgument);
            SaClient::free(c);
        }
    }

    #[test]
    fn a_started_transport_reports_its_port_and_rejects_invalid_peers() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("n1.wal");
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut options = ClientOptions::persistent("n1", wal.to_str().unwrap());
            options.enable_transport = true;
            options.transport_host = "127.0.0.1".into();
            options.transport_port = port;
            let c = new_client(options);
            // SAFETY: c is a live handle; every pointer is valid.
            unsafe {
                assert_eq!(sa_client_open(c), SaStatus::SaOk);
                let status = sa_client_start_transport(c);
                if status == SaStatus::SaTransportError {
                    let message = CStr::from_ptr(crate::ffi::sa_last_error_message());
                    assert!(message.to_str().unwrap().contains("in use"), "{message:?}");
                    SaClient::free(c);
                    continue;
                }
                assert_eq!(status, SaStatus::SaOk);
                assert_eq!(sa_client_start_transport(c), SaStatus::SaOk);
                assert!(sa_client_transport_running(c));
                let mut bound = 0u16;
                assert_eq!(sa_client_transport_port(c, &mut bound), SaStatus::SaOk);
                assert_eq!(bound, port);
                for (id, host, p) in [
                    (c"", c"127.0.0.1", 1),
                    (c"has space", c"127.0.0.1", 1),
                    (c"b", c"", 1),
                    (c"b", c"127.0.0.1", 0),
                ] {
                    assert_eq!(
                        sa_client_connect(c, id.as_ptr(), host.as_ptr(), p),
                        SaStatus::SaInvalidArgument,
                        "{id:?} {host:?} {p}"
                    );
                }
                let mut peers = std::ptr::null_mut();
                assert_eq!(sa_client_peers(c, &mut peers), SaStatus::SaOk);
                assert_eq!((*peers).len, 0);
                sa_peers_free(peers);
                let mut stats = std::ptr::null_mut();
                assert_eq!(sa_client_network_stats(c, &mut stats), SaStatus::SaOk);
                assert_eq!((*stats).connections, 0);
                assert!((*stats).connection_limit > 0);
                sa_network_stats_free(stats);
                assert_eq!(sa_client_stop_transport(c), SaStatus::SaOk);
                assert_eq!(sa_client_stop_transport(c), SaStatus::SaOk);
                assert!(!sa_client_transport_running(c));
                let mut after = 0u16;
                assert_eq!(
                    sa_client_transport_port(c, &mut after),
                    SaStatus::SaTransportError
                );
                SaClient::free(c);
            }
            return;
        }
        panic!("no free port found");
    }
}
