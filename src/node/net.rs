//! The node's network side: drives the transport, hands the sync conversation to
//! [`Sessions`] (sans-I/O, `src/sync/session.rs`) over the transport, and keeps the records
//! of peers and dials. Peer and dial records are bounded and expire.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::{Peer, PeerState};
use crate::store::Store;
use crate::sync::session::{Conn, SessionMessage, Sessions, Wire};
use crate::sync::{SyncBatch, SyncEngine};
use crate::transport::message::{Message, kind};
use crate::transport::{Transport, TransportEvent};

pub use crate::sync::session::CatchUpStats;
#[cfg(feature = "internals")]
pub use crate::sync::session::{MAX_SERVING, MAX_VECTOR_BYTES};

/// Peer records kept (connected and dialled peers always are; others are dropped oldest
/// first beyond this).
pub const MAX_PEER_RECORDS: usize = 1024;
/// A record of a peer that is neither connected nor dialled is dropped after this long.
pub(super) const PEER_RECORD_TTL_MS: u64 = 10 * 60 * 1000;
/// Peers found by discovery that are dialled at once; more are not dialled until some
/// expire.
pub const MAX_DISCOVERED_DIALS: usize = 64;

/// What we know of a peer that is not (or no longer) connected.
#[derive(Clone, Debug)]
pub(super) struct PeerRecord {
    pub node_id: String,
    pub addr: SocketAddr,
    pub faulted: bool,
    pub last_seen_ms: u64,
    pub last_error: Option<String>,
}

pub(super) struct Net {
    pub transport: Transport,
    /// The sync conversations with the connected peers.
    sessions: Sessions,
    /// When peer records were last expired.
    records_expired_ms: Option<u64>,
    /// Peers by address: dialled ones, and every peer seen connected.
    pub known: HashMap<SocketAddr, PeerRecord>,
    /// The node id expected at a dialled address (from `Client::connect` or discovery).
    pub expected: HashMap<SocketAddr, String>,
    /// Addresses dialled because discovery found them (not configured): dropped when
    /// discovery expires their node.
    pub discovered: HashMap<SocketAddr, String>,
}

impl Net {
    pub(super) fn new(transport: Transport) -> Net {
        let sessions = Sessions::new(&transport.config().node_id);
        Net {
            transport,
            sessions,
            records_expired_ms: None,
            known: HashMap::new(),
            expected: HashMap::new(),
            discovered: HashMap::new(),
        }
    }

    /// Handles what a poll returned, streams catch-ups, pushes the outbox, and writes
    /// what that queued.
    pub(super) fn process(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        events: Vec<TransportEvent>,
        now_ms: u64,
    ) {
        self.handle_all(store, sync, events, now_ms);
        self.in_sessions(store, sync, now_ms, |sessions, wire, sync| {
            sessions.poll(wire, store, sync, now_ms)
        });
        self.expire_records(now_ms);
        let flushed = self.transport.flush_pending(now_ms);
        self.handle_all(store, sync, flushed, now_ms);
    }

    /// Pushes the outbox's next batches (for `Client::tick`); returns how many operations
    /// went out.
    pub(super) fn push_outbox(&mut self, store: &Store, sync: &mut SyncEngine, now_ms: u64) -> usize {
        self.in_sessions(store, sync, now_ms, |sessions, wire, sync| {
            sessions.push_outbox(wire, store, sync, now_ms)
        })
    }

    /// Runs `f` on the sessions over the transport, then handles the closings its
    /// refusals caused (as the transport reports them: peer records).
    fn in_sessions<T>(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        now_ms: u64,
        f: impl FnOnce(&mut Sessions, &mut dyn Wire, &mut SyncEngine) -> T,
    ) -> T {
        let mut wire = TransportWire::new(&mut self.transport);
        let out = f(&mut self.sessions, &mut wire, sync);
        let events = wire.into_events();
        self.handle_all(store, sync, events, now_ms);
        out
    }

    fn handle_all(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        events: Vec<TransportEvent>,
        now_ms: u64,
    ) {
        for event in events {
            self.handle(store, sync, event, now_ms);
        }
    }

    /// The catch-up service's counters.
    pub(super) fn catch_up_stats(&self) -> CatchUpStats {
        self.sessions.stats()
    }

    pub(super) fn dial_discovered(&mut self, node_id: &str, addr: SocketAddr, now_ms: u64) -> bool {
        let connected = self.transport.ready().iter().any(|(_, id)| id == node_id);
        if connected || self.transport.dialled().contains(&addr) {
            return false;
        }
        if self.discovered.len() >= MAX_DISCOVERED_DIALS {
            log::debug!(
                "node {}: not dialling discovered peer {node_id}: {MAX_DISCOVERED_DIALS} \
                 discovered peers are dialled already",
                self.node_id()
            );
            return false;
        }
        self.discovered.insert(addr, node_id.to_string());
        self.expected.insert(addr, node_id.to_string());
        self.transport.connect(addr, now_ms);
        true
    }

    /// Discovery expired `node_id`: stop redialling the addresses it found for it (peers
    /// configured with `connect` are kept).
    pub(super) fn forget_discovered(&mut self, node_id: &str) {
        let addrs: Vec<SocketAddr> = self
            .discovered
            .iter()
            .filter(|(_, id)| *id == node_id)
            .map(|(&addr, _)| addr)
            .collect();
        for addr in addrs {
            self.discovered.remove(&addr);
            let still_connected = self.transport.ready().iter().any(|(_, id)| id == node_id);
            if still_connected {
                continue;
            }
            let mut events = Vec::new();
            self.transport.disconnect(addr, &mut events);
            self.expected.remove(&addr);
            self.known.remove(&addr);
        }
    }

    /// Every peer this node knows of, one entry per node.
    pub(super) fn peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for c in self.transport.connections().into_iter().filter(|c| c.ready) {
            let node_id = c.node_id.unwrap_or_default();
            // The address the peer listens on: the one dialled (by this connection, or by
            // another of this node's dials to the same node). A peer that dialled us shows
            // its host with port 0, unknown: its source port is not where it listens (the
            // caller may know the port from discovery).
            let listening = if c.outgoing {
                Some(c.addr)
            } else {
                self.listening_addr(&node_id)
            };
            let (host, port) = match listening {
                Some(addr) => (addr.ip().to_string(), addr.port()),
                None => (c.addr.ip().to_string(), 0),
            };
            seen.insert(node_id.clone());
            peers.push(Peer {
                node_id,
                host,
                port,
                state: PeerState::Connected,
                last_seen_ms: c.last_recv_ms,
            });
        }
        for addr in self.transport.dialled() {
            let record = self.known.get(&addr);
            let node_id = record
                .map(|r| r.node_id.clone())
                .filter(|id| !id.is_empty())
                .or_else(|| self.expected.get(&addr).cloned())
                .unwrap_or_default();
            if !seen.insert(node_id.clone()) {
                continue;
            }
            let faulted = record.is_some_and(|r| r.faulted);
            peers.push(Peer {
                node_id,
                host: addr.ip().to_string(),
                port: addr.port(),
                state: if faulted {
                    PeerState::Faulted
                } else {
                    PeerState::Available
                },
                last_seen_ms: record.map_or(0, |r| r.last_seen_ms),
            });
        }
        for r in self.known.values() {
            if r.node_id.is_empty() || !seen.insert(r.node_id.clone()) {
                continue;
            }
            // A record of a peer that dialled us holds its source address: port unknown.
            let port = if self.expected.contains_key(&r.addr) {
                r.addr.port()
            } else {
                0
            };
            peers.push(Peer {
                node_id: r.node_id.clone(),
                host: r.addr.ip().to_string(),
                port,
                state: if r.faulted {
                    PeerState::Faulted
                } else {
                    PeerState::Available
                },
                last_seen_ms: r.last_seen_ms,
            });
        }
        peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        peers
    }

    fn node_id(&self) -> &str {
        &self.transport.config().node_id
    }

    /// An address this node dials `node_id` at (configured, or found by discovery): where
    /// that node listens.
    fn listening_addr(&self, node_id: &str) -> Option<SocketAddr> {
        self.expected
            .iter()
            .filter(|(_, id)| *id == node_id)
            .map(|(&addr, _)| addr)
            .min()
    }

    fn handle(&mut self, store: &Store, sync: &mut SyncEngine, event: TransportEvent, now_ms: u64) {
        match event {
            TransportEvent::Ready { conn, node_id } => {
                // Ask the peer for everything we lack: the catch-up.
                self.in_sessions(store, sync, now_ms, |sessions, wire, _| {
                    sessions.connected(wire, store, conn, now_ms);
                });
                if let Some(info) = self
                    .transport
                    .connections()
                    .into_iter()
                    .find(|c| c.conn == conn)
                {
                    if let Some(expected) = self.expected.get(&info.addr).filter(|e| **e != node_id)
                    {
                        log::warn!(
                            "node {}: expected node {expected} at {}, found {node_id}",
                            self.node_id(),
                            info.addr
                        );
                    }
                    // One record per node for peers that dialled us (their source port
                    // changes with every connection).
                    let dialled = self.transport.dialled();
                    self.known
                        .retain(|addr, r| r.node_id != node_id || dialled.contains(addr));
                    self.record(
                        info.addr,
                        PeerRecord {
                            node_id,
                            addr: info.addr,
                            faulted: false,
                            last_seen_ms: now_ms,
                            last_error: None,
                        },
                    );
                }
            }
            TransportEvent::Message {
                conn,
                node_id,
                message,
            } => {
                // Hello, Reject, Ping and Pong are the transport's own business.
                if let Ok(message) = message.into_session() {
                    self.in_sessions(store, sync, now_ms, |sessions, wire, sync| {
                        sessions.received(wire, store, sync, (conn, &node_id), message, now_ms);
                    });
                }
            }
            TransportEvent::Closed {
                conn,
                node_id,
                addr,
                reason,
            } => {
                self.sessions.closed(conn);
                let dialled = self.transport.dialled().contains(&addr);
                if node_id.is_none() && !dialled {
                    // Nobody we know of: a stranger that never completed a handshake.
                    return;
                }
                let who = node_id.clone().or_else(|| self.expected.get(&addr).cloned());
                // Connected to the node, or dialling it, through another connection.
                let other = |w: &String| {
                    self.transport.connections().into_iter().any(|c| {
                        c.node_id.as_ref() == Some(w)
                            || (c.outgoing && self.expected.get(&c.addr) == Some(w))
                    })
                };
                if let Some(who) = who.filter(other) {
                    // A duplicate closed (both nodes dialled each other, and the tie-break
                    // of docs/protocol.md kept the other connection): nothing is at fault.
                    log::debug!(
                        "node {}: second connection to {who} at {addr} closed ({reason}); \
                         connected through the other",
                        self.node_id()
                    );
                    return;
                }
                let record = self.known.entry(addr).or_insert_with(|| PeerRecord {
                    node_id: node_id.clone().unwrap_or_default(),
                    addr,
                    faulted: true,
                    last_seen_ms: now_ms,
                    last_error: None,
                });
                record.faulted = true;
                record.last_seen_ms = now_ms;
                record.last_error = Some(reason.clone());
                self.bound_records();
                log::warn!(
                    "node {}: peer {} at {addr} faulted: {reason}; its sync work stays tracked",
                    self.node_id(),
                    node_id.as_deref().unwrap_or("(before handshake)")
                );
            }
            TransportEvent::ConnectFailed { addr, reason } => {
                let node_id = self.expected.get(&addr).cloned().unwrap_or_default();
                let record = self.known.entry(addr).or_insert_with(|| PeerRecord {
                    node_id,
                    addr,
                    faulted: true,
                    last_seen_ms: 0,
                    last_error: None,
                });
                record.faulted = true;
                record.last_error = Some(reason);
                self.bound_records();
            }
        }
    }

    fn record(&mut self, addr: SocketAddr, record: PeerRecord) {
        self.known.insert(addr, record);
        self.bound_records();
    }

    /// Beyond [`MAX_PEER_RECORDS`], drops the oldest records of peers neither connected
    /// nor dialled.
    fn bound_records(&mut self) {
        if self.known.len() <= MAX_PEER_RECORDS {
            return;
        }
        let keep = self.kept_addrs();
        let mut droppable: Vec<(u64, SocketAddr)> = self
            .known
            .iter()
            .filter(|(addr, _)| !keep.contains(addr))
            .map(|(&addr, r)| (r.last_seen_ms, addr))
            .collect();
        droppable.sort_unstable();
        let excess = self.known.len() - MAX_PEER_RECORDS;
        for (_, addr) in droppable.into_iter().take(excess) {
            self.known.remove(&addr);
        }
    }

    /// Drops records of peers neither connected nor dialled, not seen for
    /// [`PEER_RECORD_TTL_MS`]. Runs at most once a second: the loop calls it on every pass.
    fn expire_records(&mut self, now_ms: u64) {
        if self
            .records_expired_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < 1_000)
        {
            return;
        }
        self.records_expired_ms = Some(now_ms);
        let keep = self.kept_addrs();
        self.known.retain(|addr, r| {
            keep.contains(addr) || now_ms.saturating_sub(r.last_seen_ms) < PEER_RECORD_TTL_MS
        });
    }

    /// Addresses whose records are kept whatever their age: dialled or connected.
    fn kept_addrs(&self) -> HashSet<SocketAddr> {
        let mut keep: HashSet<SocketAddr> = self.transport.dialled().into_iter().collect();
        keep.extend(
            self.transport
                .connections()
                .into_iter()
                .filter(|c| c.ready)
                .map(|c| c.addr),
        );
        keep
    }
}

/// [`Wire`] over the transport: session messages are encoded straight into frames, a
/// batch once for all its receivers; what refusing a connection closes is kept for the
/// node to handle (its peer records) once the session is done.
struct TransportWire<'a> {
    transport: &'a mut Transport,
    events: Vec<TransportEvent>,
}

impl<'a> TransportWire<'a> {
    fn new(transport: &'a mut Transport) -> Self {
        TransportWire {
            transport,
            events: Vec::new(),
        }
    }

    fn into_events(self) -> Vec<TransportEvent> {
        self.events
    }
}

impl Wire for TransportWire<'_> {
    fn ready(&self) -> Vec<(Conn, String)> {
        self.transport.ready()
    }

    fn has_room(&self, conn: Conn, bytes: usize) -> bool {
        self.transport.has_room(conn, bytes)
    }

    fn send(&mut self, conn: Conn, message: &SessionMessage) -> bool {
        let mut payload = Vec::new();
        let kind = Message::encode_session(message, &mut payload);
        self.transport.send_encoded(conn, kind, &payload)
    }

    fn send_batch(&mut self, conns: &[Conn], batch: &SyncBatch) -> Vec<Conn> {
        let frames = encode_batch(batch, self.transport.config().max_frame / 2);
        let bytes: usize = frames.iter().map(Vec::len).sum();
        let mut took = Vec::with_capacity(conns.len());
        for &conn in conns {
            if self.transport.has_room(conn, bytes) {
                for payload in &frames {
                    self.transport.send_encoded(conn, kind::BATCH, payload);
                }
                took.push(conn);
            }
        }
        took
    }

    fn refuse(&mut self, conn: Conn, reason: String) {
        let events = self.transport.refuse(conn, reason);
        self.events.extend(events);
    }
}

/// Encodes a batch as one or more Batch payloads of at most about `max_bytes` each (a
/// single large value may make a payload bigger, up to the frame limit).
fn encode_batch(batch: &SyncBatch, max_bytes: usize) -> Vec<Vec<u8>> {
    let encode = |b: &SyncBatch| {
        let mut payload = Vec::new();
        Message::encode_session(&SessionMessage::Batch(b.clone()), &mut payload);
        payload
    };
    let whole = encode(batch);
    if whole.len() <= max_bytes || batch.ops.len() <= 1 {
        return vec![whole];
    }
    let mut payloads = Vec::new();
    let mut part = SyncBatch {
        origin: batch.origin.clone(),
        ops: Vec::new(),
        superseded: batch.superseded.clone(),
    };
    let mut bytes = 0;
    for op in &batch.ops {
        let size = 64 + op.key.len() + op.value.as_ref().map_or(0, Vec::len);
        if !part.ops.is_empty() && bytes + size > max_bytes {
            payloads.push(encode(&part));
            part.ops.clear();
            part.superseded.clear();
            bytes = 0;
        }
        bytes += size;
        part.ops.push(op.clone());
    }
    if !part.ops.is_empty() || !part.superseded.is_empty() {
        payloads.push(encode(&part));
    }
    payloads
}
