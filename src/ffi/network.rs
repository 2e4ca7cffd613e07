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

use std::ffi::c_char;

use crate::node::{Client, Peer, PeerState};

use super::SaStatus;
use super::boundary::{self, FfiError, free_owned, owned};
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

impl SaPeer {
    fn from_rust(p: &Peer) -> SaPeer {
        SaPeer {
            node_id: owned(&p.node_id),
            host: owned(&p.host),
            port: p.port,
            state: p.state.into(),
            last_seen_ms: p.last_seen_ms,
        }
    }
}

impl Drop for SaPeer {
    fn drop(&mut self) {
        // SAFETY: both strings were made by `owned` in from_rust and are freed only here.
        unsafe {
            free_owned(self.node_id);
            free_owned(self.host);
        }
    }
}

/// The peers of a client (written by `sa_client_peers`): `len` elements at `items`.
/// The caller owns the struct (usually on its stack); the library owns the array and its
/// strings until `sa_peers_free`. `items` is NULL when `len` is 0. Do not change `items`
/// or `len`.
#[repr(C)]
#[derive(Debug)]
pub struct SaPeers {
    pub items: *mut SaPeer,
    pub len: usize,
}

impl SaPeers {
    fn from_rust(peers: &[Peer]) -> SaPeers {
        let (items, len) = boundary::array_into_raw(peers.iter().map(SaPeer::from_rust).collect());
        SaPeers { items, len }
    }
}

/// Frees the array of `*peers` and every string in it, and resets `*peers` to
/// `{NULL, 0}`, so a second call is a no-op. NULL `peers`, or a `peers` whose `items` is
/// NULL, is a no-op.
///
/// Ownership: `peers->items` must come from `sa_client_peers` and must not be used
/// afterwards. Thread safety: do not free the same list from two threads.
/// Does not touch the last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_peers_free(peers: *mut SaPeers) {
    let _ = boundary::catch("sa_peers_free", || {
        // SAFETY: the caller passes NULL or a valid struct it owns.
        let Some(p) = (unsafe { peers.as_mut() }) else {
            return Ok(());
        };
        // SAFETY: items/len came from SaPeers::from_rust, per this function's contract.
        unsafe { boundary::free_array(&mut p.items, &mut p.len) };
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
        out.write(c.transport_address()?.port());
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
/// Ownership: the caller owns the struct `*out_peers` and frees what it holds with
/// `sa_peers_free`.
/// Errors: `SA_INVALID_STATE` (closed), `SA_TRANSPORT_ERROR` (both the transport and
/// discovery are disabled), `SA_INVALID_ARGUMENT` (NULL `client` or `out_peers`).
/// `*out_peers` is written only on success.
/// Thread safety: any thread, concurrently with other calls on the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_client_peers(
    client: *mut SaClient,
    out_peers: *mut SaPeers,
) -> SaStatus {
    const F: &str = "sa_client_peers";
    boundary::status(F, || {
        // SAFETY: the caller passes NULL or a live handle.
        let c = unsafe { client::client(client, F) }?;
        // SAFETY: the caller passes NULL or a pointer valid for writing the result.
        let out = unsafe { boundary::out_arg(out_peers, F, "out_peers") }?;
        let peers = c.peers()?;
        out.write(SaPeers::from_rust(&peers));
        Ok(())
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

    /// Every peer state, in numeric order (index = value).
    const ALL_PEER_STATES: [PeerState; 6] = [
        PeerState::Available,
        PeerState::Connected,
        PeerState::Stale,
        PeerState::Expired,
        PeerState::Faulted,
        PeerState::Unknown,
    ];

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
    fn peer_lists_carry_every_field_and_are_freed_once() {
        let mut peer = Peer::local("node-b", 4041);
        peer.state = PeerState::Stale;
        peer.last_seen_ms = 1234;
        let mut list = SaPeers::from_rust(&[peer, Peer::new("node-c", "::1", 9)]);
        assert_eq!(list.len, 2);
        // SAFETY: list holds 2 peers with valid strings.
        unsafe {
            let b = &*list.items;
            assert_eq!(CStr::from_ptr(b.node_id).to_str().unwrap(), "node-b");
            assert_eq!(CStr::from_ptr(b.host).to_str().unwrap(), "127.0.0.1");
            assert_eq!(
                (b.port, b.state, b.last_seen_ms),
                (4041, SaPeerState::SaPeerStateStale, 1234)
            );
            let c = &*list.items.add(1);
            assert_eq!(c.state, SaPeerState::SaPeerStateUnknown);
            sa_peers_free(&mut list);
            assert!(list.items.is_null() && list.len == 0);
            sa_peers_free(&mut list);
            sa_peers_free(std::ptr::null_mut());
        }
        let empty = SaPeers::from_rust(&[]);
        assert!(empty.items.is_null() && empty.len == 0);
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
            let mut peers = SaPeers {
                items: std::ptr::null_mut(),
                len: 5,
            };
            assert_eq!(sa_client_peers(c, &mut peers), SaStatus::SaTransportError);
            assert_eq!(peers.len, 5);
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
                let mut peers = SaPeers {
                    items: std::ptr::null_mut(),
                    len: 0,
                };
                assert_eq!(sa_client_peers(c, &mut peers), SaStatus::SaOk);
                assert_eq!(peers.len, 0);
                sa_peers_free(&mut peers);
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
