//! A transport's settings and errors, and resolving addresses.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The listening socket could not be bound (port in use, address not on this
    /// machine, ...).
    #[error(
        "cannot bind transport to {addr}: {}",
        crate::io_error::describe_io(source)
    )]
    Bind {
        /// The address, "host:port" as configured.
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An address (a peer's, or the one to bind) does not resolve to one the transport
    /// can use.
    #[error("invalid peer address {addr}: {reason}")]
    InvalidAddress {
        /// The address, "host:port" as given.
        addr: String,
        /// Why it cannot be used (empty host, no address found, ...).
        reason: String,
    },
    /// A trusted-peer entry (configuration, trust file, command) is not valid.
    #[error("invalid trusted peer {entry}: {reason}")]
    InvalidTrust {
        /// The entry, or where it was read.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node's TLS settings could not be made from its identity key.
    #[error("cannot set up TLS: {reason}")]
    Tls {
        /// What failed.
        reason: String,
    },
    /// Setting up the event loop failed (creating the poll, registering the listener or
    /// the waker).
    #[error("transport I/O error: {}", crate::io_error::describe_io(source))]
    Io {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// What the error is about: the address ("" for an I/O error).
    pub fn context(&self) -> String {
        match self {
            TransportError::Bind { addr, .. } | TransportError::InvalidAddress { addr, .. } => {
                addr.clone()
            }
            TransportError::InvalidTrust { entry, .. } => entry.clone(),
            TransportError::Io { .. } | TransportError::Tls { .. } => String::new(),
        }
    }
}

/// Settings of a transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub node_id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
    pub bind_host: String,
    pub bind_port: u16,
    /// Largest frame payload accepted; a bigger frame closes the connection.
    pub max_frame: usize,
    /// Bytes waiting to be written to one peer beyond which nothing more is queued to it.
    pub max_send_buffer: usize,
    /// Bytes waiting to be written over all peers beyond which nothing more is queued.
    /// A peer that reads nothing for `peer_timeout_ms` while data waits for it is closed,
    /// so peers that never read cannot hold this budget.
    pub max_send_buffered_total: usize,
    /// A Ping is sent after this long without sending anything.
    pub keepalive_ms: u64,
    /// A connection that received nothing for this long is closed as dead.
    pub peer_timeout_ms: u64,
    /// First reconnection delay; it doubles up to `reconnect_max_ms`.
    pub reconnect_base_ms: u64,
    pub reconnect_max_ms: u64,
    /// A handshake not finished after this long fails.
    pub handshake_timeout_ms: u64,
    /// Largest frame accepted before the handshake completes (a Hello is small).
    pub max_handshake_frame: usize,
    /// A frame begun but not complete after this long closes its connection (a peer
    /// trickling bytes cannot hold a buffer for ever).
    pub frame_timeout_ms: u64,
    /// Bytes of incomplete frames buffered over all connections. Beyond it, connections
    /// are not read (the kernel's buffers push back on their senders) except the one
    /// closest to completing a frame, so memory stays within this plus one frame.
    pub max_receive_buffered: usize,
    /// Most connections at once, both directions. Lowered at start to leave room under the
    /// process's descriptor limit (see [`RESERVED_DESCRIPTORS`]). Dialled addresses keep a
    /// place: incoming connections beyond `max_connections` minus the dialled addresses
    /// are closed at once.
    pub max_connections: usize,
    /// Most incoming connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Random per start; sent in the Hello (see [`Hello::instance_id`]).
    pub instance_id: u64,
    /// TLS and the trusted peers. `None` is the insecure mode: plaintext, and any peer
    /// that speaks the protocol is accepted (for tests only; the node warns at start).
    pub security: Option<Security>,
}

/// What a secure transport needs: its TLS settings and the peers it trusts.
#[derive(Clone, Debug)]
pub struct Security {
    /// This node's certificate and key.
    pub tls: std::sync::Arc<super::tls::TlsContext>,
    /// The keys accepted as peers; shared with the node, which changes it at run time.
    pub trusted: std::sync::Arc<parking_lot::RwLock<super::trust::TrustedPeers>>,
}

/// File descriptors kept free for everything else a node opens (WAL, control socket and
/// its clients, discovery, poll, standard streams, log files).
pub(super) const RESERVED_DESCRIPTORS: usize = 64;

impl TransportConfig {
    pub fn new(node_id: &str, bind_host: &str, bind_port: u16) -> Self {
        TransportConfig {
            node_id: node_id.to_string(),
            display_name: node_id.to_string(),
            capabilities: Vec::new(),
            bind_host: bind_host.to_string(),
            bind_port,
            max_frame: 24 * 1024 * 1024,
            max_send_buffer: 8 * 1024 * 1024,
            max_send_buffered_total: 64 * 1024 * 1024,
            keepalive_ms: 5_000,
            peer_timeout_ms: 20_000,
            reconnect_base_ms: 250,
            reconnect_max_ms: 30_000,
            handshake_timeout_ms: 10_000,
            max_handshake_frame: 64 * 1024,
            frame_timeout_ms: 60_000,
            max_receive_buffered: 64 * 1024 * 1024,
            max_connections: 256,
            max_connections_per_ip: 16,
            instance_id: crate::id::new_instance_id(),
            security: None,
        }
    }
}

/// Resolves "host:port" (IPv4, IPv6 or a name such as localhost) to one address.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, TransportError> {
    let invalid = |reason: String| TransportError::InvalidAddress {
        addr: format!("{host}:{port}"),
        reason,
    };
    if host.is_empty() {
        return Err(invalid("the host is empty".into()));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| invalid(crate::io_error::describe_io(&e)))?
        .next()
        .ok_or_else(|| invalid("the host has no address".into()))
}

/// `wanted` connections, or fewer when the process's open-files limit leaves less room
/// (after [`RESERVED_DESCRIPTORS`]), and at least one.
pub(super) fn connection_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted.max(1);
    }
    let room = usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_DESCRIPTORS);
    wanted.min(room).max(1)
}
