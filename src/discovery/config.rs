//! Discovery's settings and errors, and checking its addresses.

use super::*;

/// How discovery runs. [`DiscoveryConfig::new`] gives the LAN defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// This node's id; announcements carrying it are ignored.
    pub node_id: String,
    /// Shown to users; empty means the node id. Cut to 255 bytes.
    pub display_name: String,
    /// Address the discovery socket binds to. Default "0.0.0.0". An IP literal, or a name
    /// resolved once by `start` (preferring IPv4).
    pub bind_host: String,
    /// Default 9400. 0 picks a free port (tests).
    pub bind_port: u16,
    /// Where announcements and probes go. Default "255.255.255.255".
    pub broadcast_host: String,
    /// Default 9400. Must not be 0 when `broadcast` is on.
    pub broadcast_port: u16,
    /// Send announcements and probes to `broadcast_host:broadcast_port`. Off, they go to
    /// `extra_targets` and the targets added later only (nodes on ephemeral ports, which
    /// cannot share a broadcast port). Default on.
    pub broadcast: bool,
    /// More destinations for announcements and probes, besides the broadcast address (for
    /// networks without broadcast, or several nodes on one host). Default none.
    pub extra_targets: Vec<SocketAddr>,
    /// The transport's listening host, announced to peers. "", "0.0.0.0" or "::" (the
    /// default "0.0.0.0") announce "unspecified", and receivers use the source address of
    /// the datagram; a specific address is announced as is.
    pub transport_host: String,
    /// The transport's listening port, announced to peers. Must not be 0.
    pub transport_port: u16,
    /// The transport protocol version, announced to peers. Default 1.
    pub transport_version: u16,
    /// Time between announcements. Default 3000.
    pub announce_interval_ms: u64,
    /// A peer silent for half of it is stale, for all of it expired. Default 15000; at
    /// least twice `announce_interval_ms`.
    pub ttl_ms: u64,
    /// Most peers the table holds. Default [`DEFAULT_MAX_PEERS`] (1024); at least 1. When
    /// it is full, a new peer evicts the least recently heard entry that is neither trusted
    /// ([`Discovery::set_trusted`]) nor connected, or is ignored if there is none.
    pub max_peers: usize,
    /// A datagram whose timestamp is this many milliseconds or more from this node's wall
    /// clock is ignored: a replay, or a clock set wrong. `None` (the default) is half of
    /// `ttl_ms`, also the most allowed: a peer's old announcement replayed after it expired
    /// is then always outside the window (docs/discovery.md).
    pub clock_window_ms: Option<u64>,
}

impl DiscoveryConfig {
    /// LAN defaults for `node_id` whose transport listens on all addresses at
    /// `transport_port`: bind 0.0.0.0:9400, broadcast to 255.255.255.255:9400, announce
    /// every 3 s, TTL 15 s, at most 1024 peers, a clock window of 7.5 s.
    pub fn new(node_id: impl Into<String>, transport_port: u16) -> Self {
        DiscoveryConfig {
            node_id: node_id.into(),
            display_name: String::new(),
            bind_host: "0.0.0.0".into(),
            bind_port: DEFAULT_DISCOVERY_PORT,
            broadcast_host: "255.255.255.255".into(),
            broadcast_port: DEFAULT_DISCOVERY_PORT,
            broadcast: true,
            extra_targets: Vec::new(),
            transport_host: "0.0.0.0".into(),
            transport_port,
            transport_version: DEFAULT_TRANSPORT_VERSION,
            announce_interval_ms: DEFAULT_ANNOUNCE_INTERVAL_MS,
            ttl_ms: DEFAULT_TTL_MS,
            max_peers: DEFAULT_MAX_PEERS,
            clock_window_ms: None,
        }
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A configuration field is invalid; `field` names it.
    #[error("invalid discovery config: {field}: {reason}")]
    InvalidConfig {
        /// The `DiscoveryConfig` field, by name.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// A host name in the configuration could not be resolved.
    #[error("cannot resolve discovery {field} \"{host}\": {}", describe_io(source))]
    Resolve {
        /// The `DiscoveryConfig` field that holds the host name.
        field: &'static str,
        /// The host name as configured.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },

    /// The socket could not be bound (port in use, address not on this machine, ...).
    #[error("cannot bind discovery socket {addr}: {}", describe_io(source))]
    Bind {
        /// The address the socket was to be bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },

    /// A socket operation after binding failed (`op` says which).
    #[error("cannot {op} discovery socket {addr}: {}", describe_io(source))]
    Socket {
        /// The operation, in words ("enable broadcast on", "register", ...).
        op: &'static str,
        /// The address the socket is bound to.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
}

impl DiscoveryError {
    /// What the error is about: the config field, the host name or the socket address.
    pub fn context(&self) -> String {
        match self {
            DiscoveryError::InvalidConfig { field, .. } => (*field).to_string(),
            DiscoveryError::Resolve { host, .. } => host.clone(),
            DiscoveryError::Bind { addr, .. } | DiscoveryError::Socket { addr, .. } => {
                addr.to_string()
            }
        }
    }
}

/// A destination the socket bound to `bind_ip` can send to: port not 0, and an IPv4
/// address for an IPv4 socket (IPv4-mapped IPv6 addresses are reduced to IPv4).
pub(super) fn check_target(
    field: &'static str,
    bind_ip: IpAddr,
    target: SocketAddr,
) -> Result<SocketAddr, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidConfig { field, reason };
    if target.port() == 0 {
        return Err(invalid(format!("{target} has port 0")));
    }
    match (bind_ip, target.ip().to_canonical()) {
        (IpAddr::V4(_), IpAddr::V6(_)) => Err(invalid(format!(
            "{target} is IPv6 but the discovery socket ({bind_ip}) is IPv4"
        ))),
        (IpAddr::V4(_), ip) => Ok(SocketAddr::new(ip, target.port())),
        (IpAddr::V6(_), _) => Ok(target),
    }
}

/// An IP literal (IPv6 optionally in brackets), or a name resolved now, preferring IPv4.
pub(super) fn resolve_host(field: &'static str, host: &str) -> Result<IpAddr, DiscoveryError> {
    if host.is_empty() {
        return Err(DiscoveryError::InvalidConfig {
            field,
            reason: "must not be empty".into(),
        });
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|source| DiscoveryError::Resolve {
            field,
            host: host.to_string(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| DiscoveryError::InvalidConfig {
            field,
            reason: format!("\"{host}\" resolves to no address"),
        })
}
