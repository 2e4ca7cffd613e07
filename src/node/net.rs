//! The node's network side: drives the transport, answers its messages with the sync
//! engine, streams catch-ups, and pushes the outbox to connected peers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use super::{Peer, PeerState};
use crate::store::{Operation, Store};
use crate::sync::{SyncBatch, SyncEngine};
use crate::transport::message::{Message, kind};
use crate::transport::{ConnId, Transport, TransportEvent};

/// Catch-up parts are cut at about this many encoded bytes.
const CATCH_UP_PART_BYTES: usize = 1024 * 1024;
/// Batches pushed per call, so that one busy writer cannot keep a poll busy forever.
const MAX_BATCHES_PER_FLUSH: usize = 256;
/// Connected peers are asked for a catch-up this often, to repair anything missed.
pub const CATCH_UP_INTERVAL_MS: u64 = 30_000;

/// What we know of a peer that is not (or no longer) connected.
#[derive(Clone, Debug)]
pub struct PeerRecord {
    pub node_id: String,
    pub addr: SocketAddr,
    pub faulted: bool,
    pub last_seen_ms: u64,
    pub last_error: Option<String>,
}

/// A catch-up being streamed to a peer as its send buffer allows.
struct OutgoingCatchUp {
    ops: VecDeque<Operation>,
    vector: crate::store::VersionVector,
}

pub struct Net {
    pub transport: Transport,
    outgoing_catch_ups: HashMap<ConnId, OutgoingCatchUp>,
    /// Connections whose catch-up from the peer failed to apply: their CatchUpDone must
    /// not be merged.
    broken_catch_ups: HashSet<ConnId>,
    /// Connections that missed a batch (full send buffer): they get a catch-up once their
    /// buffer drains.
    missed_batches: HashSet<ConnId>,
    last_catch_up_ms: HashMap<ConnId, u64>,
    /// Peers by address: dialled ones, and every peer seen connected.
    pub known: HashMap<SocketAddr, PeerRecord>,
    /// The node id expected at a dialled address (from `Client::connect`).
    pub expected: HashMap<SocketAddr, String>,
}

impl Net {
    pub fn new(transport: Transport) -> Net {
        Net {
            transport,
            outgoing_catch_ups: HashMap::new(),
            broken_catch_ups: HashSet::new(),
            missed_batches: HashSet::new(),
            last_catch_up_ms: HashMap::new(),
            known: HashMap::new(),
            expected: HashMap::new(),
        }
    }

    /// Handles what a poll returned, streams catch-ups, pushes the outbox, and writes
    /// what that queued.
    pub fn process(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        events: Vec<TransportEvent>,
        now_ms: u64,
    ) {
        for event in events {
            self.handle(store, sync, event, now_ms);
        }
        self.stream_catch_ups();
        self.periodic_catch_ups(now_ms);
        self.push_outbox(store, sync, now_ms);
        for event in self.transport.flush_pending(now_ms) {
            self.handle(store, sync, event, now_ms);
        }
    }

    /// Every peer this node knows of, one entry per node.
    pub fn peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for c in self.transport.connections().into_iter().filter(|c| c.ready) {
            let node_id = c.node_id.unwrap_or_default();
            // Show the address the peer listens on when we dialled it.
            let addr = self
                .known
                .values()
                .find(|r| r.node_id == node_id && self.expected.contains_key(&r.addr))
                .map_or(c.addr, |r| r.addr);
            seen.insert(node_id.clone());
            peers.push(Peer {
                node_id,
                host: addr.ip().to_string(),
                port: addr.port(),
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
            peers.push(Peer {
                node_id: r.node_id.clone(),
                host: r.addr.ip().to_string(),
                port: r.addr.port(),
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

    fn handle(&mut self, store: &Store, sync: &mut SyncEngine, event: TransportEvent, now_ms: u64) {
        match event {
            TransportEvent::Ready { conn, node_id } => {
                // Ask the peer for everything we lack: the catch-up.
                self.transport
                    .send(conn, &Message::Vector(store.version_vector()));
                self.last_catch_up_ms.insert(conn, now_ms);
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
                    self.known.insert(
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
                self.on_message(store, sync, conn, &node_id, message);
            }
            TransportEvent::Closed {
                conn,
                node_id,
                addr,
                reason,
            } => {
                self.outgoing_catch_ups.remove(&conn);
                self.broken_catch_ups.remove(&conn);
                self.missed_batches.remove(&conn);
                self.last_catch_up_ms.remove(&conn);
                let record = self.known.entry(addr).or_insert_with(|| PeerRecord {
                    node_id: node_id.clone().unwrap_or_default(),
                    addr,
                    faulted: true,
                    last_seen_ms: now_ms,
                    last_error: None,
                });
                record.faulted = true;
                record.last_error = Some(reason.clone());
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
            }
        }
    }

    fn on_message(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        conn: ConnId,
        from: &str,
        message: Message,
    ) {
        match message {
            Message::Batch(batch) => match sync.receive_batch_report(store, &batch) {
                Ok((ack, report)) => {
                    self.transport.send(conn, &Message::Ack(ack));
                    self.relay(conn, &batch.origin, &batch.ops, &report.applied_indices);
                }
                Err(e) => log::warn!("node {}: batch from {from} refused: {e}", self.node_id()),
            },
            Message::Ack(ack) => {
                if let Err(e) = sync.receive_ack(store, &ack) {
                    log::warn!("node {}: ACK from {from} not recorded: {e}", self.node_id());
                }
            }
            Message::Vector(vector) => {
                let (ops, vector) = store.catch_up_for(&vector);
                let ops: VecDeque<Operation> = ops.into();
                log::debug!(
                    "node {}: catch-up for {from}: {} operations",
                    self.node_id(),
                    ops.len()
                );
                self.outgoing_catch_ups
                    .insert(conn, OutgoingCatchUp { ops, vector });
            }
            Message::VectorRequest => {
                self.transport
                    .send(conn, &Message::Vector(store.version_vector()));
            }
            Message::CatchUp(ops) => match sync.receive_catch_up_part(store, &ops) {
                Ok(report) => {
                    let origin = ops.first().map(|o| o.origin.clone()).unwrap_or_default();
                    self.relay(conn, &origin, &ops, &report.applied_indices);
                }
                Err(e) => {
                    log::warn!("node {}: catch-up from {from} refused: {e}", self.node_id());
                    self.broken_catch_ups.insert(conn);
                }
            },
            Message::CatchUpDone(vector) => {
                if !self.broken_catch_ups.remove(&conn) {
                    sync.finish_catch_up(store, &vector);
                }
            }
            // Handled by the transport itself.
            Message::Hello(_) | Message::Reject(_) | Message::Ping(_) | Message::Pong(_) => {}
        }
    }

    /// Forwards operations that were new to this node to its other connected peers, so that
    /// they travel across nodes that are not directly connected. A node forwards an
    /// operation only when it first applies it, so forwarding ends; receivers that have
    /// it already ignore it. A peer without room misses it and gets it by catch-up.
    fn relay(&mut self, from: ConnId, origin: &str, ops: &[Operation], applied: &[usize]) {
        if applied.is_empty() {
            return;
        }
        let batch = SyncBatch {
            origin: origin.to_string(),
            ops: applied.iter().map(|&i| ops[i].clone()).collect(),
            superseded: Vec::new(),
        };
        let frames = encode_batch(&batch, self.transport.config().max_frame / 2);
        let bytes: usize = frames.iter().map(Vec::len).sum();
        for (conn, _) in self.transport.ready() {
            if conn == from {
                continue;
            }
            if self.transport.has_room(conn, bytes) {
                for payload in &frames {
                    self.transport.send_encoded(conn, kind::BATCH, payload);
                }
            } else {
                self.missed_batches.insert(conn);
            }
        }
    }

    /// Sends catch-up parts while the peers' send buffers have room.
    fn stream_catch_ups(&mut self) {
        let conns: Vec<ConnId> = self.outgoing_catch_ups.keys().copied().collect();
        for conn in conns {
            while let Some(pending) = self.outgoing_catch_ups.get_mut(&conn) {
                if pending.ops.is_empty() {
                    let done = Message::CatchUpDone(pending.vector.clone());
                    if self.transport.send(conn, &done) {
                        self.outgoing_catch_ups.remove(&conn);
                    }
                    break;
                }
                let mut part = Vec::new();
                let mut bytes = 0;
                while let Some(op) = pending.ops.front() {
                    let size = 64 + op.key.len() + op.value.as_ref().map_or(0, Vec::len);
                    if !part.is_empty() && bytes + size > CATCH_UP_PART_BYTES {
                        break;
                    }
                    bytes += size;
                    part.push(pending.ops.pop_front().expect("front exists"));
                }
                if !self.transport.has_room(conn, bytes) {
                    // Full: put the part back and try on a later poll.
                    for op in part.into_iter().rev() {
                        pending.ops.push_front(op);
                    }
                    break;
                }
                self.transport.send(conn, &Message::CatchUp(part));
            }
        }
    }

    fn periodic_catch_ups(&mut self, now_ms: u64) {
        for (conn, _) in self.transport.ready() {
            let last = *self.last_catch_up_ms.entry(conn).or_insert(now_ms);
            let missed = self.missed_batches.contains(&conn) && self.transport.has_room(conn, 0);
            if missed {
                // The peer missed batches while its buffer was full: it asks us for them.
                self.missed_batches.remove(&conn);
                self.transport.send(conn, &Message::VectorRequest);
            } else if now_ms.saturating_sub(last) >= CATCH_UP_INTERVAL_MS {
                self.last_catch_up_ms.insert(conn, now_ms);
                self.transport.send(conn, &Message::VectorRequest);
            }
        }
    }

    /// Sends the outbox's next batches to every connected peer with room.
    pub fn push_outbox(&mut self, store: &Store, sync: &mut SyncEngine, now_ms: u64) -> usize {
        let mut sent_ops = 0;
        for _ in 0..MAX_BATCHES_PER_FLUSH {
            let ready = self.transport.ready();
            if ready.is_empty()
                || !ready
                    .iter()
                    .any(|(c, _)| self.transport.has_room(*c, 64 * 1024))
            {
                break;
            }
            let Some(batch) = sync.next_batch(store, now_ms) else {
                break;
            };
            let frames = encode_batch(&batch, self.transport.config().max_frame / 2);
            let mut written = false;
            for (conn, _) in &ready {
                let bytes: usize = frames.iter().map(Vec::len).sum();
                if self.transport.has_room(*conn, bytes) {
                    for payload in &frames {
                        self.transport.send_encoded(*conn, kind::BATCH, payload);
                    }
                    written = true;
                } else {
                    self.missed_batches.insert(*conn);
                }
            }
            if written {
                sent_ops += batch.len();
                if let Err(e) = sync.batch_written(store, &batch) {
                    log::warn!("node {}: {e}", self.node_id());
                }
            } else {
                sync.batch_unsent(&batch);
                break;
            }
        }
        sent_ops
    }
}

/// Encodes a batch as one or more Batch payloads of at most about `max_bytes` each (a
/// single large value may make a payload bigger, up to the frame limit).
fn encode_batch(batch: &SyncBatch, max_bytes: usize) -> Vec<Vec<u8>> {
    let encode = |b: &SyncBatch| {
        let mut payload = Vec::new();
        Message::Batch(b.clone()).encode(&mut payload);
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
