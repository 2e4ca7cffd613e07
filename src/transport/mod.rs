//! TCP transport on mio: framed messages (see `docs/protocol.md`), a Hello handshake,
//! bounded send buffers, keepalive, and reconnection with backoff.
//!
//! Synchronous and single-threaded: the owner calls [`Transport::poll`], which waits at
//! most the given timeout, does all pending I/O and returns what happened. Other threads
//! can interrupt a waiting poll through [`Transport::waker`]. No input from the network
//! can panic: every malformed frame or message closes its connection with a logged reason.

pub mod frame;
pub mod message;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
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

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error(
        "cannot bind transport to {addr}: {}",
        crate::io_error::describe_io(source)
    )]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid peer address {addr}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("transport I/O error: {}", crate::io_error::describe_io(source))]
    Io {
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    pub fn context(&self) -> String {
        match self {
            TransportError::Bind { addr, .. } | TransportError::InvalidAddress { addr, .. } => {
                addr.clone()
            }
            TransportError::Io { .. } => String::new(),
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
}

/// File descriptors kept free for everything else a node opens (WAL, control socket and
/// its clients, discovery, poll, standard streams, log files).
pub const RESERVED_DESCRIPTORS: usize = 64;

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
    /// Hello sent, waiting for the peer's.
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
}

impl Conn {
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

/// A peer address to keep connected to.
struct Dial {
    attempts: u32,
    next_at_ms: u64,
    /// A live connection to it, if any.
    conn: Option<ConnId>,
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
    last_refusal_log_ms: u64,
    /// Bytes waiting to be written, over all connections.
    send_buffered: usize,
}

/// Counters and gauges of a transport, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Open connections, handshaking ones included.
    pub connections: usize,
    /// The connection limit in force (see [`TransportConfig::max_connections`]).
    pub connection_limit: usize,
    pub refused_connections: u64,
    pub garbage_frames: u64,
    /// Bytes of incomplete frames buffered.
    pub receive_buffered: usize,
    /// Bytes waiting to be written.
    pub send_buffered: usize,
    /// Addresses kept connected (redialled).
    pub dialled: usize,
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
        log::info!(
            "node {}: transport listening on {local_addr}",
            config.node_id
        );
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
            last_refusal_log_ms: 0,
            send_buffered: 0,
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
        }
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
            timeout
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

    /// Bytes of incomplete frames buffered over all connections.
    fn receive_buffered(&self) -> usize {
        self.conns.values().map(|c| c.decoder.buffered()).sum()
    }

    /// Whether `id` may read more now: the receive budget has room, or `id` holds the most
    /// buffered bytes (it finishes its frame first and frees the most).
    fn may_read(&self, id: ConnId) -> bool {
        if self.receive_buffered() < self.config.max_receive_buffered {
            return true;
        }
        let mine = self.conns.get(&id).map_or(0, |c| c.decoder.buffered());
        self.conns.iter().all(|(&other, c)| {
            other == id
                || c.decoder.buffered() < mine
                || (c.decoder.buffered() == mine && other > id)
        })
    }

    /// Reads connections paused by the receive budget, as far as it now allows.
    fn resume_paused(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        if self.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut self.paused);
        for id in paused {
            self.on_readable(id, out, now_ms);
        }
    }

    fn accept(&mut self, now_ms: u64) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if let Some(why) = self.incoming_refusal(addr.ip()) {
                        // Dropping the stream closes it: the descriptor is free at once.
                        self.refused_connections += 1;
                        if now_ms.saturating_sub(self.last_refusal_log_ms) >= 10_000 {
                            self.last_refusal_log_ms = now_ms;
                            log::warn!(
                                "node {}: incoming connection from {addr} closed: {why} \
                                 ({} refused so far)",
                                self.config.node_id,
                                self.refused_connections
                            );
                        }
                        continue;
                    }
                    let id = self.add_conn(stream, addr, None, ConnState::Handshaking, now_ms);
                    if let Some(id) = id {
                        self.send_hello(id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("node {}: accept failed: {e}", self.config.node_id);
                    break;
                }
            }
        }
    }

    /// Why an incoming connection from `ip` cannot be taken now, if it cannot.
    fn incoming_refusal(&self, ip: std::net::IpAddr) -> Option<String> {
        let incoming = self.conns.values().filter(|c| c.dialled.is_none());
        let (total, from_ip) = incoming.fold((0, 0), |(t, f), c| {
            (t + 1, f + usize::from(c.addr.ip() == ip))
        });
        // Dialled addresses keep their places, connected or not.
        let room = self.connection_limit.saturating_sub(self.dials.len());
        if total >= room {
            return Some(format!(
                "the node holds its limit of {} connections",
                self.connection_limit
            ));
        }
        if from_ip >= self.config.max_connections_per_ip {
            return Some(format!(
                "{ip} holds its limit of {} connections",
                self.config.max_connections_per_ip
            ));
        }
        None
    }

    fn add_conn(
        &mut self,
        mut stream: TcpStream,
        addr: SocketAddr,
        dialled: Option<SocketAddr>,
        state: ConnState,
        now_ms: u64,
    ) -> Option<ConnId> {
        let id = self.next_conn;
        self.next_conn += 1;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!(
                "node {}: cannot register connection {addr}: {e}",
                self.config.node_id
            );
            return None;
        }
        let _ = stream.set_nodelay(true);
        self.conns.insert(
            id,
            Conn {
                stream,
                addr,
                dialled,
                state,
                decoder: FrameDecoder::new(self.config.max_handshake_frame),
                out: Vec::new(),
                out_pos: 0,
                peer: None,
                opened_ms: now_ms,
                last_recv_ms: now_ms,
                last_send_ms: now_ms,
                frame_started_ms: None,
                last_write_progress_ms: now_ms,
                closing: None,
            },
        );
        Some(id)
    }

    fn hello(&self) -> Message {
        Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.config.node_id.clone(),
            display_name: self.config.display_name.clone(),
            capabilities: self.config.capabilities.clone(),
            auth_scheme: 0,
            auth_data: Vec::new(),
            instance_id: self.config.instance_id,
        })
    }

    fn send_hello(&mut self, id: ConnId) {
        let hello = self.hello();
        self.send(id, &hello);
    }

    fn on_writable(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state == ConnState::Connecting {
            // Writable after a non-blocking connect: it either succeeded or failed.
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    let reason = crate::io_error::describe_io(&e);
                    self.connect_failed(id, reason, out);
                    return;
                }
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.state = ConnState::Handshaking;
                    c.opened_ms = now_ms;
                    self.send_hello(id);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let reason = crate::io_error::describe_io(&e);
                    self.connect_failed(id, reason, out);
                    return;
                }
            }
        }
        self.flush(id, out, now_ms);
    }

    fn connect_failed(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        if let Some(mut c) = self.conns.remove(&id) {
            self.send_buffered = self.send_buffered.saturating_sub(c.pending_out());
            let _ = self.poll.registry().deregister(&mut c.stream);
            let addr = c.dialled.unwrap_or(c.addr);
            self.schedule_redial(addr, None);
            log::warn!(
                "node {}: peer connection to {addr} failed: {reason}",
                self.config.node_id
            );
            out.push(TransportEvent::ConnectFailed { addr, reason });
        }
    }

    fn flush_all(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pending_out() > 0 && c.state != ConnState::Connecting)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.flush(id, out, now_ms);
        }
    }

    /// Writes what the connection's buffer holds until the socket would block.
    fn flush(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.state == ConnState::Connecting {
            return;
        }
        while c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => {
                    self.close(id, "the peer stopped reading".into(), out);
                    return;
                }
                Ok(n) => {
                    c.out_pos += n;
                    c.last_send_ms = now_ms;
                    c.last_write_progress_ms = now_ms;
                    self.send_buffered = self.send_buffered.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let reason = format!("write failed: {}", crate::io_error::describe_io(&e));
                    self.close(id, reason, out);
                    return;
                }
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
            if let Some(reason) = c.closing.take() {
                self.close(id, reason, out);
            }
        } else if c.out_pos > 1024 * 1024 {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
    }

    fn on_readable(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if !self.conns.contains_key(&id) {
                return;
            }
            if !self.may_read(id) {
                if !self.paused.contains(&id) {
                    self.paused.push(id);
                }
                return;
            }
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.state == ConnState::Connecting {
                return;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    let reason = if c.decoder.buffered() > 0 {
                        "the peer closed the connection in the middle of a frame"
                    } else {
                        "the peer closed the connection"
                    };
                    self.close(id, reason.into(), out);
                    return;
                }
                Ok(n) => {
                    c.last_recv_ms = now_ms;
                    c.decoder.feed(&buf[..n]);
                    if !self.drain_frames(id, out, now_ms) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let mut reason = format!("read failed: {}", crate::io_error::describe_io(&e));
                    if c.decoder.buffered() > 0 {
                        reason.push_str(" in the middle of a frame");
                    }
                    self.close(id, reason, out);
                    return;
                }
            }
        }
    }

    /// Decodes and dispatches every complete frame. Returns false when the connection was
    /// closed.
    fn drain_frames(&mut self, id: ConnId, out: &mut Vec<TransportEvent>, now_ms: u64) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return false;
            };
            if c.closing.is_some() {
                return true;
            }
            let (kind, payload) = match c.decoder.next_frame() {
                Ok(Some(f)) => {
                    // A frame completed; what is left (if anything) is a new one.
                    c.frame_started_ms = None;
                    f
                }
                Ok(None) => {
                    if c.decoder.buffered() == 0 {
                        c.frame_started_ms = None;
                    } else if c.frame_started_ms.is_none() {
                        c.frame_started_ms = Some(now_ms);
                    }
                    return true;
                }
                Err(e) => {
                    self.garbage_frames += 1;
                    self.close(id, format!("protocol error: {e}"), out);
                    return false;
                }
            };
            let message = match Message::decode(kind, &payload) {
                Ok(m) => m,
                Err(e) => {
                    self.garbage_frames += 1;
                    self.close(id, format!("protocol error: {e}"), out);
                    return false;
                }
            };
            if !self.dispatch(id, message, out) {
                return false;
            }
        }
    }

    /// Handles the handshake and keepalive here; hands everything else to the owner.
    fn dispatch(&mut self, id: ConnId, message: Message, out: &mut Vec<TransportEvent>) -> bool {
        let c = self.conns.get_mut(&id).expect("connection exists");
        match (c.state, message) {
            (ConnState::Handshaking, Message::Hello(hello)) => self.on_hello(id, hello, out),
            (_, Message::Reject(reason)) => {
                let reason = crate::logsafe::shown(&reason);
                self.close(id, format!("rejected by the peer: {reason}"), out);
                false
            }
            (ConnState::Ready, Message::Ping(n)) => {
                self.send(id, &Message::Pong(n));
                true
            }
            (ConnState::Ready, Message::Pong(_)) => true,
            (ConnState::Ready, Message::Hello(_)) => {
                self.reject(id, "a second Hello on one connection".into(), out);
                false
            }
            (ConnState::Ready, message) => {
                let node_id = c
                    .peer
                    .as_ref()
                    .map(|h| h.node_id.clone())
                    .unwrap_or_default();
                out.push(TransportEvent::Message {
                    conn: id,
                    node_id,
                    message,
                });
                true
            }
            (_, other) => {
                self.reject(
                    id,
                    format!("message type {} before the handshake", other.kind()),
                    out,
                );
                false
            }
        }
    }

    fn on_hello(&mut self, id: ConnId, hello: Hello, out: &mut Vec<TransportEvent>) -> bool {
        if hello.protocol_version != PROTOCOL_VERSION {
            let reason = format!(
                "incompatible protocol version {} (this node speaks version {PROTOCOL_VERSION})",
                hello.protocol_version
            );
            self.reject(id, reason, out);
            return false;
        }
        if let Err(e) = crate::id::validate_node_id(&hello.node_id) {
            self.reject(id, e.to_string(), out);
            return false;
        }
        if hello.node_id == self.config.node_id {
            self.reject(
                id,
                format!("node id {} is this node's own id", hello.node_id),
                out,
            );
            return false;
        }
        if hello.auth_scheme != 0 {
            self.reject(
                id,
                format!(
                    "authentication scheme {} is not supported",
                    hello.auth_scheme
                ),
                out,
            );
            return false;
        }
        // One connection per node. When both nodes dial each other at once, both keep the
        // connection dialled by the node with the smaller id.
        let existing = self
            .conns
            .iter()
            .find(|&(&other, c)| {
                other != id
                    && c.state == ConnState::Ready
                    && c.peer.as_ref().is_some_and(|h| h.node_id == hello.node_id)
            })
            .map(|(&other, c)| {
                let instance = c.peer.as_ref().map_or(0, |h| h.instance_id);
                (other, c.dialled.is_some(), instance, c.last_recv_ms)
            });
        if let Some((other, _, other_instance, last_recv_ms)) = existing
            && other_instance != hello.instance_id
        {
            // Another instance claims the id. A live connection (it answers keepalives)
            // means two running nodes share one id: their writes would be acknowledged and
            // silently dropped as duplicates, so the newcomer is refused, loudly. A silent
            // one is the previous run of a restarted peer: replaced.
            let alive = self.now_ms.saturating_sub(last_recv_ms) <= 2 * self.config.keepalive_ms
                && self.still_open(other);
            if alive {
                let reason = format!(
                    "node id {} is already used by another running node (instance {:016x}, \
                     this one is {:016x}): every node needs its own id",
                    hello.node_id, other_instance, hello.instance_id
                );
                log::error!(
                    "node {}: two live nodes claim node id {} (from {} and {}): refusing the \
                     second; give one of them a new node id (a copied data directory?)",
                    self.config.node_id,
                    hello.node_id,
                    self.conns[&other].addr,
                    self.conns[&id].addr
                );
                self.reject(id, reason, out);
                return false;
            }
            self.close(other, "replaced by a new instance of the peer".into(), out);
        } else if let Some((other, other_outgoing, _, _)) = existing {
            let this_outgoing = self.conns[&id].dialled.is_some();
            let we_dial_first = self.config.node_id < hello.node_id;
            let keep_this = this_outgoing != other_outgoing && this_outgoing == we_dial_first;
            let reason = format!("node {} is already connected", hello.node_id);
            if keep_this {
                self.reject(other, reason, out);
            } else {
                self.reject(id, reason, out);
                return false;
            }
        }
        let c = self.conns.get_mut(&id).expect("connection exists");
        c.state = ConnState::Ready;
        c.decoder.set_max_payload(self.config.max_frame);
        let node_id = hello.node_id.clone();
        log::info!(
            "node {}: connected to {} ({}) at {}",
            self.config.node_id,
            node_id,
            crate::logsafe::shown(&hello.display_name),
            c.addr
        );
        c.peer = Some(hello);
        if let Some(d) = c.dialled.and_then(|addr| self.dials.get_mut(&addr)) {
            d.attempts = 0;
            d.conn = Some(id);
        }
        out.push(TransportEvent::Ready { conn: id, node_id });
        true
    }

    /// Whether connection `id`'s socket is still open: a process that exited had its
    /// connections closed by the kernel, even if this node has not read the end yet.
    fn still_open(&self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(&id) else {
            return false;
        };
        let mut byte = [0u8; 1];
        match c.stream.peek(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }

    /// Sends a Reject with the reason, then closes once it is written.
    fn reject(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        log::warn!("node {}: closing connection: {reason}", self.config.node_id);
        self.send(id, &Message::Reject(reason.clone()));
        if let Some(c) = self.conns.get_mut(&id) {
            c.closing = Some(reason);
        }
        self.flush(id, out, 0);
    }

    fn close(&mut self, id: ConnId, reason: String, out: &mut Vec<TransportEvent>) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        self.send_buffered = self.send_buffered.saturating_sub(c.pending_out());
        self.paused.retain(|&p| p != id);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let node_id = c.peer.map(|h| h.node_id);
        if let Some(addr) = c.dialled {
            self.schedule_redial(addr, Some(id));
        }
        log::info!(
            "node {}: connection to {} closed: {reason}",
            self.config.node_id,
            node_id.as_deref().unwrap_or(&c.addr.to_string())
        );
        out.push(TransportEvent::Closed {
            conn: id,
            node_id,
            addr: c.dialled.unwrap_or(c.addr),
            reason,
        });
    }

    /// After a failed or lost connection to a dialled address: try again after a delay
    /// that doubles with each failure (`reconnect_base_ms` up to `reconnect_max_ms`).
    fn schedule_redial(&mut self, addr: SocketAddr, conn: Option<ConnId>) {
        let (base, max, now) = (
            self.config.reconnect_base_ms,
            self.config.reconnect_max_ms,
            self.now_ms,
        );
        if let Some(d) = self
            .dials
            .get_mut(&addr)
            .filter(|d| conn.is_none() || d.conn == conn)
        {
            d.conn = None;
            d.attempts += 1;
            let delay = base
                .saturating_mul(1 << d.attempts.saturating_sub(1).min(16))
                .min(max);
            d.next_at_ms = now + delay;
        }
    }

    fn timers(&mut self, out: &mut Vec<TransportEvent>, now_ms: u64) {
        // Redials.
        let due: Vec<SocketAddr> = self
            .dials
            .iter()
            .filter(|(_, d)| d.conn.is_none() && d.next_at_ms <= now_ms)
            .map(|(addr, _)| *addr)
            .collect();
        for addr in due {
            self.dial(addr, now_ms, out);
        }
        // Handshake timeouts, keepalive and dead peers.
        let mut to_close = Vec::new();
        let mut to_ping = Vec::new();
        for (&id, c) in &self.conns {
            match c.state {
                ConnState::Connecting | ConnState::Handshaking => {
                    if now_ms.saturating_sub(c.opened_ms) > self.config.handshake_timeout_ms {
                        to_close.push((id, "the handshake timed out".to_string()));
                    }
                }
                _ if c
                    .frame_started_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) > self.config.frame_timeout_ms) =>
                {
                    to_close.push((
                        id,
                        format!(
                            "a frame did not complete within {} ms ({} bytes received)",
                            self.config.frame_timeout_ms,
                            c.decoder.buffered()
                        ),
                    ));
                }
                ConnState::Ready
                    if c.pending_out() > 0
                        && now_ms.saturating_sub(c.last_write_progress_ms)
                            > self.config.peer_timeout_ms =>
                {
                    to_close.push((
                        id,
                        format!(
                            "the peer read nothing for {} ms ({} bytes wait for it)",
                            self.config.peer_timeout_ms,
                            c.pending_out()
                        ),
                    ));
                }
                ConnState::Ready => {
                    if now_ms.saturating_sub(c.last_recv_ms) > self.config.peer_timeout_ms {
                        to_close.push((
                            id,
                            format!("nothing received for {} ms", self.config.peer_timeout_ms),
                        ));
                    } else if now_ms.saturating_sub(c.last_send_ms) >= self.config.keepalive_ms {
                        to_ping.push(id);
                    }
                }
            }
        }
        for (id, reason) in to_close {
            self.close(id, reason, out);
        }
        for id in to_ping {
            self.ping_nonce += 1;
            let nonce = self.ping_nonce;
            if self.send(id, &Message::Ping(nonce))
                && let Some(c) = self.conns.get_mut(&id)
            {
                c.last_send_ms = now_ms;
            }
        }
    }

    fn dial(&mut self, addr: SocketAddr, now_ms: u64, out: &mut Vec<TransportEvent>) {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                let id = self.add_conn(stream, addr, Some(addr), ConnState::Connecting, now_ms);
                if let Some(d) = self.dials.get_mut(&addr) {
                    d.conn = id;
                    if id.is_none() {
                        d.next_at_ms = now_ms + self.config.reconnect_max_ms;
                    }
                }
            }
            Err(e) => {
                let reason = crate::io_error::describe_io(&e);
                self.schedule_redial(addr, None);
                out.push(TransportEvent::ConnectFailed { addr, reason });
            }
        }
    }
}

/// `wanted` connections, or fewer when the process's open-files limit leaves less room
/// (after [`RESERVED_DESCRIPTORS`]), and at least one.
fn connection_limit(wanted: usize) -> usize {
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
