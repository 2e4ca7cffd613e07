//! The node's network side: drives the transport, answers its messages with the sync
//! engine, streams catch-ups, and pushes the outbox to connected peers.
//!
//! Everything a peer sends is checked against the conversation: catch-up parts and their
//! end are taken only in answer to a vector this node sent, a vector is answered by one
//! catch-up at a time per peer (at most [`MAX_SERVING`] at once, one per peer node every
//! [`CATCH_UP_MIN_INTERVAL_MS`]), and a catch-up is read from the store a part at a time
//! within [`CATCH_UP_SCAN_PER_SECOND`], so its memory, its CPU and the time it holds the
//! store stay small. Peer and dial records are bounded and expire.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::{Peer, PeerState};
use crate::logsafe::shown;
use crate::store::{Operation, Store, VersionVector};
use crate::sync::{SyncBatch, SyncEngine};
use crate::transport::message::{Message, kind};
use crate::transport::{ConnId, Transport, TransportEvent};

/// Catch-up parts are cut at about this many encoded bytes.
const CATCH_UP_PART_BYTES: usize = 1024 * 1024;
/// Store entries visited per catch-up step, so that one step holds the store briefly.
const CATCH_UP_SCAN_PER_STEP: usize = 16 * 1024;
/// Store entries visited by all catch-ups in one pass of the loop, at most.
const CATCH_UP_SCAN_PER_PASS: usize = 64 * 1024;
/// Store entries visited by all catch-ups per second, at most: however many peers ask,
/// serving them costs a bounded share of a core (a million entries take about 4 s).
pub(super) const CATCH_UP_SCAN_PER_SECOND: usize = 256 * 1024;
/// Catch-ups served at once; a vector beyond them is answered at once with an empty end
/// (the peer asks again at its next periodic catch-up).
pub const MAX_SERVING: usize = 16;
/// A peer node is served a new catch-up no sooner than this after its last one began
/// (counted by node id, so reconnecting does not reset it). Honest peers ask every 30 s,
/// on connecting and after missed batches.
pub(super) const CATCH_UP_MIN_INTERVAL_MS: u64 = 5_000;
/// Largest vector taken or sent: a vector within the store's own bounds (origins and
/// ranges) is far smaller; a bigger one from a peer is a protocol error, and ours is sent
/// in part when it exceeds it (claiming less is always safe).
pub const MAX_VECTOR_BYTES: usize = 4 * 1024 * 1024;
/// Batches pushed per call, so that one busy writer cannot keep a poll busy forever.
const MAX_BATCHES_PER_FLUSH: usize = 256;
/// Connected peers are asked for a catch-up this often, to repair anything missed.
pub(super) const CATCH_UP_INTERVAL_MS: u64 = 30_000;
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

/// The catch-up conversation with one connected peer.
#[derive(Default)]
struct Link {
    /// This node sent its vector and waits for the peer's parts and their end.
    awaiting: bool,
    /// The peer asked for our vector while we were waiting: sent after the end.
    vector_wanted: bool,
    /// A part failed to apply: the end must not be merged.
    broken: bool,
    /// When this node last asked the peer for a catch-up.
    last_requested_ms: u64,
    /// The peer missed a batch (full send buffer): ask it for a catch-up once it drains.
    missed_batches: bool,
    /// Whether the peer's claim about this node's own operations was checked.
    own_origin_checked: bool,
}

/// A catch-up being served to a peer, a part at a time as its send buffer allows.
struct Serving {
    /// What the peer has seen.
    peer: VersionVector,
    /// This node's vector when the catch-up began: every operation it claims is sent, or
    /// superseded by an entry sent, or seen by the peer (keys are visited after it was
    /// taken).
    vector: VersionVector,
    /// Resume after this key; `None` before the first part.
    cursor: Option<String>,
    scanned_all: bool,
    not_before_ms: u64,
}

/// Counters of the catch-up service, for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatchUpStats {
    /// Catch-ups being served now.
    pub serving: usize,
    /// Catch-ups begun since the transport started.
    pub started: u64,
    /// Vectors answered at once with an empty end (busy).
    pub busy: u64,
    /// Connections closed for breaking the conversation.
    pub protocol_errors: u64,
}

pub(super) struct Net {
    pub transport: Transport,
    links: HashMap<ConnId, Link>,
    serving: HashMap<ConnId, Serving>,
    stats: CatchUpStats,
    /// When a catch-up for each peer node last began (entries older than the interval are
    /// dropped, so this holds at most the nodes served in the last interval).
    last_served_ms: HashMap<String, u64>,
    /// When peer records were last expired.
    records_expired_ms: Option<u64>,
    /// Store entries catch-ups may still visit (a bucket refilled at
    /// [`CATCH_UP_SCAN_PER_SECOND`]), and when it was last refilled.
    scan_tokens: usize,
    scan_refilled_ms: u64,
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
        Net {
            transport,
            links: HashMap::new(),
            serving: HashMap::new(),
            stats: CatchUpStats::default(),
            last_served_ms: HashMap::new(),
            records_expired_ms: None,
            scan_tokens: CATCH_UP_SCAN_PER_PASS,
            scan_refilled_ms: 0,
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
        for event in events {
            self.handle(store, sync, event, now_ms);
        }
        self.stream_catch_ups(store, now_ms);
        self.periodic_catch_ups(now_ms);
        self.push_outbox(store, sync, now_ms);
        self.expire_records(now_ms);
        for event in self.transport.flush_pending(now_ms) {
            self.handle(store, sync, event, now_ms);
        }
    }

    /// The catch-up service's counters.
    pub(super) fn catch_up_stats(&self) -> CatchUpStats {
        CatchUpStats {
            serving: self.serving.len(),
            ..self.stats
        }
    }

    /// Dials a peer found by discovery, unless it is dialled already or too many are.
    /// Returns whether it was dialled.
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
                self.links.insert(
                    conn,
                    Link {
                        last_requested_ms: now_ms,
                        ..Link::default()
                    },
                );
                // Ask the peer for everything we lack: the catch-up.
                self.send_vector(store, conn);
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
                self.on_message(store, sync, conn, &node_id, message, now_ms);
            }
            TransportEvent::Closed {
                conn,
                node_id,
                addr,
                reason,
            } => {
                self.links.remove(&conn);
                self.serving.remove(&conn);
                let dialled = self.transport.dialled().contains(&addr);
                if node_id.is_none() && !dialled {
                    // Nobody we know of: a stranger that never completed a handshake.
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

    /// Sends this node's vector to `conn` (within [`MAX_VECTOR_BYTES`]): a request for a
    /// catch-up, whose parts and end are then expected.
    fn send_vector(&mut self, store: &Store, conn: ConnId) {
        let vector = store.version_vector().within_wire_budget(MAX_VECTOR_BYTES);
        if self.transport.send(conn, &Message::Vector(vector))
            && let Some(link) = self.links.get_mut(&conn)
        {
            link.awaiting = true;
            link.vector_wanted = false;
        }
    }

    /// Closes `conn` for breaking the conversation.
    fn refuse(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        conn: ConnId,
        reason: String,
        now_ms: u64,
    ) {
        log::warn!("node {}: protocol error: {reason}", self.node_id());
        self.stats.protocol_errors += 1;
        for event in self
            .transport
            .refuse(conn, format!("protocol error: {reason}"))
        {
            self.handle(store, sync, event, now_ms);
        }
    }

    fn on_message(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        conn: ConnId,
        from: &str,
        message: Message,
        now_ms: u64,
    ) {
        match message {
            Message::Batch(batch) => match sync.receive_batch_report(store, &batch, Some(from)) {
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
            Message::Vector(vector) => self.on_vector(store, sync, conn, from, vector, now_ms),
            Message::VectorRequest => {
                let awaiting = self.links.get(&conn).is_some_and(|l| l.awaiting);
                if awaiting {
                    // One catch-up from a peer at a time: ask again once it ends.
                    if let Some(link) = self.links.get_mut(&conn) {
                        link.vector_wanted = true;
                    }
                } else {
                    self.send_vector(store, conn);
                }
            }
            Message::CatchUp(ops) => {
                let Some(link) = self.links.get(&conn).filter(|l| l.awaiting) else {
                    let reason = "a catch-up part that no vector of this node asked for".into();
                    return self.refuse(store, sync, conn, reason, now_ms);
                };
                if link.broken {
                    return; // The rest of a catch-up that failed: its end is not merged.
                }
                match sync.receive_catch_up_part(store, &ops, Some(from)) {
                    Ok(report) => {
                        let origin = ops.first().map(|o| o.origin.clone()).unwrap_or_default();
                        self.relay(conn, &origin, &ops, &report.applied_indices);
                    }
                    Err(e) => {
                        log::warn!("node {}: catch-up from {from} refused: {e}", self.node_id());
                        if let Some(link) = self.links.get_mut(&conn) {
                            link.broken = true;
                        }
                    }
                }
            }
            Message::CatchUpDone(vector) => {
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.awaiting) else {
                    let reason = "a catch-up end that no vector of this node asked for".into();
                    return self.refuse(store, sync, conn, reason, now_ms);
                };
                let merge = !std::mem::take(&mut link.broken);
                let again = std::mem::take(&mut link.vector_wanted);
                link.awaiting = false;
                if vector.wire_len() > MAX_VECTOR_BYTES {
                    let reason = format!("a vector of more than {MAX_VECTOR_BYTES} bytes");
                    return self.refuse(store, sync, conn, reason, now_ms);
                }
                if merge {
                    sync.finish_catch_up(store, &vector);
                }
                if again {
                    self.send_vector(store, conn);
                }
            }
            // Handled by the transport itself.
            Message::Hello(_) | Message::Reject(_) | Message::Ping(_) | Message::Pong(_) => {}
        }
    }

    /// A peer's vector: serve it a catch-up of what it lacks, if this node has room.
    fn on_vector(
        &mut self,
        store: &Store,
        sync: &mut SyncEngine,
        conn: ConnId,
        from: &str,
        vector: VersionVector,
        now_ms: u64,
    ) {
        if vector.wire_len() > MAX_VECTOR_BYTES {
            let reason = format!("a vector of more than {MAX_VECTOR_BYTES} bytes");
            return self.refuse(store, sync, conn, reason, now_ms);
        }
        self.check_own_origin_claim(store, conn, from, &vector);
        if self.serving.contains_key(&conn) || self.serving.len() >= MAX_SERVING {
            // Busy (an honest peer waits for the end before asking again): an empty end
            // answers it at once and costs nothing; its next periodic request tries again.
            log::debug!(
                "node {}: catch-up for {from} deferred: busy",
                self.node_id()
            );
            self.transport
                .send(conn, &Message::CatchUpDone(VersionVector::new()));
            self.stats.busy += 1;
            return;
        }
        self.stats.started += 1;
        self.last_served_ms
            .retain(|_, t| now_ms.saturating_sub(*t) < CATCH_UP_MIN_INTERVAL_MS);
        let not_before_ms = self
            .last_served_ms
            .get(from)
            .map_or(now_ms, |t| t.saturating_add(CATCH_UP_MIN_INTERVAL_MS));
        self.last_served_ms.insert(from.to_string(), not_before_ms);
        self.serving.insert(
            conn,
            Serving {
                peer: vector,
                vector: store.version_vector().within_wire_budget(MAX_VECTOR_BYTES),
                cursor: None,
                scanned_all: false,
                not_before_ms,
            },
        );
    }

    /// A peer that has seen more of this node's own operations than this node wrote: its
    /// data was lost (or another node uses its id). New writes would reuse numbers the
    /// peers have seen and be dropped as duplicates: say so loudly, once per connection.
    fn check_own_origin_claim(
        &mut self,
        store: &Store,
        conn: ConnId,
        from: &str,
        v: &VersionVector,
    ) {
        let link = self.links.entry(conn).or_default();
        if std::mem::replace(&mut link.own_origin_checked, true) {
            return;
        }
        let written = store.next_seq().saturating_sub(1);
        if let Some(seen) = v
            .get(store.node_id())
            .map(|p| p.max_seq())
            .filter(|&s| s > written)
        {
            log::error!(
                "node {}: peer {} has seen operations up to #{seen} of this node's id, but \
                 this node has written only {written}: its data was lost or another node uses \
                 the same id; writes under this id may be dropped by peers as duplicates: \
                 give this node a new node id",
                self.node_id(),
                shown(from)
            );
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
                self.links.entry(conn).or_default().missed_batches = true;
            }
        }
    }

    /// Serves catch-ups a part at a time while the peers' send buffers have room, within a
    /// scan budget per pass.
    fn stream_catch_ups(&mut self, store: &Store, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.scan_refilled_ms);
        let refill = (elapsed as usize).saturating_mul(CATCH_UP_SCAN_PER_SECOND) / 1_000;
        if refill > 0 {
            self.scan_tokens = self
                .scan_tokens
                .saturating_add(refill)
                .min(CATCH_UP_SCAN_PER_PASS);
            self.scan_refilled_ms = now_ms;
        }
        let mut budget = self.scan_tokens;
        let conns: Vec<ConnId> = self.serving.keys().copied().collect();
        for conn in conns {
            while budget > 0 {
                let Some(serving) = self.serving.get_mut(&conn) else {
                    break;
                };
                if serving.not_before_ms > now_ms {
                    break;
                }
                if serving.scanned_all {
                    let done = Message::CatchUpDone(std::mem::take(&mut serving.vector));
                    if self.transport.send(conn, &done) {
                        self.serving.remove(&conn);
                    } else if let (Message::CatchUpDone(v), Some(s)) =
                        (done, self.serving.get_mut(&conn))
                    {
                        s.vector = v; // No room yet: try on a later pass.
                    }
                    break;
                }
                if !self.transport.has_room(conn, CATCH_UP_PART_BYTES) {
                    break;
                }
                let scan = budget.min(CATCH_UP_SCAN_PER_STEP);
                let (part, next) = store.missing_part(
                    &serving.peer,
                    serving.cursor.as_deref(),
                    CATCH_UP_PART_BYTES,
                    scan,
                );
                budget -= scan;
                if !part.is_empty() && !self.transport.send(conn, &Message::CatchUp(part)) {
                    break; // One large value beyond the room: the same part again later.
                }
                match next {
                    Some(key) => serving.cursor = Some(key),
                    None => serving.scanned_all = true,
                }
            }
        }
        self.scan_tokens = budget;
    }

    fn periodic_catch_ups(&mut self, now_ms: u64) {
        for (conn, _) in self.transport.ready() {
            let room = self.transport.has_room(conn, 0);
            let link = self.links.entry(conn).or_insert_with(|| Link {
                last_requested_ms: now_ms,
                ..Link::default()
            });
            let missed = link.missed_batches && room;
            let due = now_ms.saturating_sub(link.last_requested_ms) >= CATCH_UP_INTERVAL_MS;
            if missed {
                // The peer missed batches while its buffer was full: it asks us for them.
                link.missed_batches = false;
                self.transport.send(conn, &Message::VectorRequest);
            } else if due {
                link.last_requested_ms = now_ms;
                self.transport.send(conn, &Message::VectorRequest);
            }
        }
    }

    /// Sends the outbox's next batches to every connected peer with room.
    pub(super) fn push_outbox(&mut self, store: &Store, sync: &mut SyncEngine, now_ms: u64) -> usize {
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
                    self.links.entry(*conn).or_default().missed_batches = true;
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
