//! TCP transport on mio: framed messages (see `docs/protocol.md`), a Hello handshake,
//! bounded send buffers, keepalive, and reconnection with backoff.
//!
//! Synchronous and single-threaded: the owner calls [`Transport::poll`], which waits at
//! most the given timeout, does all pending I/O and returns what happened. Other threads
//! can interrupt a waiting poll through [`Transport::waker`]. No input from the network
//! can panic: every malformed frame or message closes its connection with a logged reason.
//!
//! This file holds the types and the owner's API; `config.rs` the settings, errors and
//! address resolution; `conn.rs` the connections' I/O within their budgets, through TLS
//! when the transport is secure; `tls.rs` the TLS settings
//! and `algorithms.rs` the cryptography they use; `trust.rs` the trusted keys;
//! `handshake.rs` the trust checks and the Hello exchange; `dial.rs` redials and timers.

mod algorithms;
mod config;
mod conn;
mod dial;
pub mod frame;
mod handshake;
pub mod message;
pub mod tls;
pub mod trust;

use config::connection_limit;
pub use config::{Security, TransportConfig, TransportError, resolve};

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use frame::FrameDecoder;
pub use message::{Hello, Message, PROTOCOL_VERSION};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Tokens below this are reserved for the owner (e.g. a discovery socket on the same poll).
const FIRST_CONNECTION: usize = 16;

/// Identifies one connection.
pub type ConnId = usize;

/// What a poll observed.
#[derive(Debug)]
pub enum TransportEvent {
    /// The handshake with `node_id` completed.
    Ready { conn: ConnId, node_id: String },
    Message {
        conn: ConnId,
        node_id: String,
        message: Message,
    },
    /// A connection closed. `node_id` is known when the handshake had completed.
    Closed {
        conn: ConnId,
        node_id: Option<String>,
        addr: SocketAddr,
        reason: String,
    },
    /// An outgoing connection attempt failed (refused, unreachable, ...).
    ConnectFailed { addr: SocketAddr, reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Outgoing, TCP connect in progress.
    Connecting,
    /// TLS handshake (secure transport), then Hello sent, waiting for the peer's.
    Handshaking,
    Ready,
}

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    /// The address we dialled (outgoing connections).
    dialled: Option<SocketAddr>,
    state: ConnState,
    decoder: FrameDecoder,
    out: Vec<u8>,
    out_pos: usize,
    peer: Option<Hello>,
    opened_ms: u64,
    last_recv_ms: u64,
    last_send_ms: u64,
    /// When the frame being received began (`None` between frames).
    frame_started_ms: Option<u64>,
    /// When the peer last took bytes from us (or when output began to wait).
    last_write_progress_ms: u64,
    /// Set to close after the pending output is written (a Reject).
    closing: Option<String>,
    /// The TLS session (secure transport); `out` holds plaintext waiting to enter it.
    tls: Option<rustls::Connection>,
    /// The fingerprint of the key the peer proved it holds, once the TLS handshake is done.
    fingerprint: Option<String>,
}

impl Conn {
    /// Plaintext bytes queued and not yet handed to the socket (or to TLS).
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Whether anything waits to be written: queued plaintext or TLS records.
    fn has_output(&self) -> bool {
        self.pending_out() > 0 || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether the connection can carry messages: plaintext, or TLS past its handshake.
    fn secured(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }
}

/// A peer address to keep connected to.
struct Dial {
    attempts: u32,
    next_at_ms: u64,
    /// A live connection to it, if any.
    conn: Option<ConnId>,
    /// The node met at this address (from its Hello). While that node is connected through
    /// another connection (it dialled this node too, and the tie-break kept its
    /// connection), the address is not redialled: a redial would only be closed again as a
    /// duplicate.
    node_id: Option<String>,
}

/// A connection as shown to users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub conn: ConnId,
    pub addr: SocketAddr,
    pub node_id: Option<String>,
    pub ready: bool,
    pub outgoing: bool,
    pub last_recv_ms: u64,
    /// The fingerprint of the peer's key (secure transport, once its TLS handshake is done).
    pub fingerprint: Option<String>,
}

/// The transport. Owned by one thread at a time.
pub struct Transport {
    config: TransportConfig,
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    listener: TcpListener,
    local_addr: SocketAddr,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    dials: HashMap<SocketAddr, Dial>,
    ping_nonce: u64,
    /// Readiness events received but not handled yet (beyond a call's `max_events`).
    backlog: VecDeque<(Token, bool, bool)>,
    /// The time of the current poll, for timers set while handling it.
    now_ms: u64,
    /// Frames received that could not be decoded, for diagnostics.
    pub garbage_frames: u64,
    /// Connections with unread input, not read while the receive budget is spent.
    paused: Vec<ConnId>,
    /// `max_connections`, lowered to fit the descriptor limit.
    connection_limit: usize,
    /// Incoming connections closed at once because of the connection limits.
    pub refused_connections: u64,
    last_refusal_log_ms: Option<u64>,
    /// Bytes waiting to be written, over all connections.
    send_buffered: usize,
    /// Peers refused for their key: not trusted, or trusted for another node id.
    untrusted_peers: u64,
    /// TLS handshakes (or sessions) that failed: no or bad certificate, not TLS, ...
    tls_failures: u64,
    last_security_log_ms: Option<u64>,
    /// Bytes and frames in and out, since the transport started.
    traffic: TrafficStats,
}

/// Bytes and frames a transport moved since it started, for the node's metrics. Bytes are
/// counted at the socket (TLS records included); frames when they are queued (out) or
/// decoded (in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Bytes read from peers' connections.
    pub bytes_received: u64,
    /// Bytes written to peers' connections.
    pub bytes_sent: u64,
    /// Frames received whole (ones that do not decode included).
    pub frames_received: u64,
    /// Frames queued for peers.
    pub frames_sent: u64,
}

/// Counters and gauges of a transport, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Open connections, handshaking ones included.
    pub connections: usize,
    /// The connection limit in force: the configured `max_connections`, lowered when the
    /// open-files limit leaves less room.
    pub connection_limit: usize,
    /// Incoming connections closed at once because of the connection limits.
    pub refused_connections: u64,
    /// Frames or messages that did not decode; each closed its connection.
    pub garbage_frames: u64,
    /// Bytes of incomplete frames buffered.
    pub receive_buffered: usize,
    /// Bytes waiting to be written.
    pub send_buffered: usize,
    /// Addresses kept connected (redialled).
    pub dialled: usize,
    /// Peers refused for their key: not trusted, or trusted for another node id.
    pub untrusted_peers: u64,
    /// TLS handshakes (or sessions) that failed: no or bad certificate, not TLS, ...
    pub tls_failures: u64,
}

impl Transport {
    /// Binds the listener and prepares the poll.
    pub fn start(config: TransportConfig) -> Result<Transport, TransportError> {
        let addr = resolve(&config.bind_host, config.bind_port)?;
        let bind_err = |source| TransportError::Bind {
            addr: format!("{}:{}", config.bind_host, config.bind_port),
            source,
        };
        let mut listener = TcpListener::bind(addr).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let poll = Poll::new().map_err(|source| TransportError::Io { source })?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|source| TransportError::Io { source })?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER).map_err(|source| TransportError::Io { source })?,
        );
        let connection_limit = connection_limit(config.max_connections);
        if connection_limit < config.max_connections {
            log::warn!(
                "node {}: at most {connection_limit} connections (not {}): the open-files \
                 limit leaves no more room; raise it (LimitNOFILE) for more",
                config.node_id,
                config.max_connections
            );
        }
        match &config.security {
            Some(_) => log::info!(
                "node {}: transport listening on {local_addr} (TLS 1.3, trusted peers only)",
                config.node_id
            ),
            None => log::warn!(
                "node {}: transport listening on {local_addr} WITHOUT TLS: insecure mode, \
                 any host that reaches this port can read and write this node's data; \
                 for tests only",
                config.node_id
            ),
        }
        Ok(Transport {
            config,
            poll,
            events: Events::with_capacity(256),
            waker,
            listener,
            local_addr,
            conns: HashMap::new(),
            next_conn: FIRST_CONNECTION,
            dials: HashMap::new(),
            ping_nonce: 0,
            backlog: VecDeque::new(),
            now_ms: 0,
            garbage_frames: 0,
            paused: Vec::new(),
            connection_limit,
            refused_connections: 0,
            last_refusal_log_ms: None,
            send_buffered: 0,
            untrusted_peers: 0,
            tls_failures: 0,
            last_security_log_ms: None,
            traffic: TrafficStats::default(),
        })
    }

    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Wakes a thread waiting in [`Transport::poll`].
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// The poll's registry, to register other sources under tokens 2..16.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Keeps a connection to `addr`: dials now, and again with backoff whenever it drops.
    pub fn connect(&mut self, addr: SocketAddr, now_ms: u64) {
        self.now_ms = now_ms;
        let dial = self.dials.entry(addr).or_insert(Dial {
            attempts: 0,
            next_at_ms: now_ms,
            conn: None,
            node_id: None,
        });
        dial.next_at_ms = now_ms;
        dial.attempts = 0;
    }

    /// Stops keeping a connection to `addr` and closes it. Returns whether it was known.
    pub fn disconnect(&mut self, addr: SocketAddr, events: &mut Vec<TransportEvent>) -> bool {
        let known = self.dials.remove(&addr);
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.dialled == Some(addr) || c.addr == addr)
            .map(|(&id, _)| id)
            .collect();
        for id in &conns {
            self.close(*id, "disconnected by this node".into(), events);
        }
        known.is_some() || !conns.is_empty()
    }

    /// Closes every connection to `node_id` and forgets the addresses dialled for it.
    pub fn disconnect_node(&mut self, node_id: &str, events: &mut Vec<TransportEvent>) -> bool {
        let conns: Vec<(ConnId, Option<SocketAddr>)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer.as_ref().is_some_and(|h| h.node_id == node_id))
            .map(|(&id, c)| (id, c.dialled))
            .collect();
        for (id, dialled) in &conns {
            if let Some(addr) = dialled {
                self.dials.remove(addr);
            }
            self.close(*id, "disconnected by this node".into(), events);
        }
        !conns.is_empty()
    }

    /// Closes `conn` for breaking the protocol: the peer is told why (a Reject), then the
    /// connection closes. Returns what that caused (a Closed event).
    pub fn refuse(&mut self, conn: ConnId, reason: String) -> Vec<TransportEvent> {
        let mut out = Vec::new();
        self.reject(conn, reason, &mut out);
        out
    }

    /// Connections whose handshake completed: (connection, node id).
    pub fn ready(&self) -> Vec<(ConnId, String)> {
        let mut ready: Vec<(ConnId, String)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == ConnState::Ready)
            .filter_map(|(&id, c)| c.peer.as_ref().map(|h| (id, h.node_id.clone())))
            .collect();
        ready.sort();
        ready
    }

    /// Every connection, for status displays.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = self
            .conns
            .iter()
            .map(|(&id, c)| ConnInfo {
                conn: id,
                addr: c.dialled.unwrap_or(c.addr),
                node_id: c.peer.as_ref().map(|h| h.node_id.clone()),
                ready: c.state == ConnState::Ready,
                outgoing: c.dialled.is_some(),
                last_recv_ms: c.last_recv_ms,
                fingerprint: c.fingerprint.clone(),
            })
            .collect();
        v.sort_by_key(|c| c.conn);
        v
    }

    /// Addresses this transport keeps connections to.
    pub fn dialled(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.dials.keys().copied().collect();
        v.sort();
        v
    }

    /// Whether `conn` can take `bytes` more without exceeding its send buffer or the
    /// node's.
    pub fn has_room(&self, conn: ConnId, bytes: usize) -> bool {
        self.send_buffered.saturating_add(bytes) <= self.config.max_send_buffered_total
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.pending_out() + bytes <= self.config.max_send_buffer)
    }

    /// Counters and gauges, for diagnostics.
    pub fn stats(&self) -> TransportStats {
        TransportStats {
            connections: self.conns.len(),
            connection_limit: self.connection_limit,
            refused_connections: self.refused_connections,
            garbage_frames: self.garbage_frames,
            receive_buffered: self.receive_buffered(),
            send_buffered: self.send_buffered,
            dialled: self.dials.len(),
            untrusted_peers: self.untrusted_peers,
            tls_failures: self.tls_failures,
        }
    }

    /// Bytes and frames moved since the transport started.
    pub fn traffic(&self) -> TrafficStats {
        self.traffic
    }

    /// Queues a message on a connection. Returns false (and queues nothing) when the
    /// connection is gone or its send buffer is full: backpressure.
    pub fn send(&mut self, conn: ConnId, message: &Message) -> bool {
        let mut payload = Vec::new();
        message.encode(&mut payload);
        self.send_encoded(conn, message.kind(), &payload)
    }

    /// [`Transport::send`] for a payload encoded once and sent to several peers.
    pub fn send_encoded(&mut self, conn: ConnId, kind: u8, payload: &[u8]) -> bool {
        if payload.len() > self.config.max_frame || !self.has_room(conn, payload.len()) {
            return false;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
            // The peer has had nothing to read until now: its silence counts from here.
            c.last_write_progress_ms = self.now_ms;
        }
        let before = c.out.len();
        frame::encode(&mut c.out, kind, payload);
        self.send_buffered += c.out.len() - before;
        self.traffic.frames_sent = self.traffic.frames_sent.saturating_add(1);
        true
    }

    /// Writes what the send buffers hold, without waiting. Returns connections that closed
    /// on a write error.
    pub fn flush_pending(&mut self, now_ms: u64) -> Vec<TransportEvent> {
        let mut out = Vec::new();
        self.now_ms = now_ms;
        self.flush_all(&mut out, now_ms);
        out
    }

    /// Waits up to `timeout` for I/O, performs it, runs timers (keepalive, dead peers,
    /// reconnections) and returns what happened. Handles at most `max_events` readiness
    /// events (0: no limit).
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        max_events: usize,
        now_ms: u64,
    ) -> Vec<TransportEvent> {
        let mut out = Vec::new();
        self.now_ms = now_ms;
        self.flush_all(&mut out, now_ms);
        // Readiness is edge-triggered: an event not handled now would not be reported
        // again, so events beyond `max_events` wait in the backlog for the next call
        // (which then does not wait).
        let timeout = if self.backlog.is_empty() {
            // Never past the next timer: a redial, a time-out or a keepalive is due then.
            // (At least 1 ms: a timer that stays due, such as a keepalive that cannot be
            // queued yet, must not turn the loop into a spin.)
            let until_timer = self
                .next_deadline_ms()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms).max(1)));
            match (timeout, until_timer) {
                (Some(t), Some(u)) => Some(t.min(u)),
                (None, u) => u,
                (t, None) => t,
            }
        } else {
            Some(Duration::ZERO)
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::warn!("node {}: transport poll failed: {e}", self.config.node_id);
        }
        for e in self.events.iter() {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            self.backlog
                .push_back((e.token(), readable, e.is_writable()));
        }
        let take = if max_events == 0 {
            self.backlog.len()
        } else {
            max_events.min(self.backlog.len())
        };
        let ready: Vec<(Token, bool, bool)> = self.backlog.drain(..take).collect();
        for (token, readable, writable) in ready {
            match token {
                LISTENER => self.accept(now_ms),
                WAKER => {}
                Token(id) => {
                    if writable {
                        self.on_writable(id, &mut out, now_ms);
                    }
                    if readable {
                        self.on_readable(id, &mut out, now_ms);
                    }
                }
            }
        }
        self.resume_paused(&mut out, now_ms);
        self.timers(&mut out, now_ms);
        self.flush_all(&mut out, now_ms);
        out
    }
}
