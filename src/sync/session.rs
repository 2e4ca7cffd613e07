//! The sync conversation with connected peers, without I/O: the catch-up (this node's
//! vector out, the peer's parts and end in, checked against the conversation), serving
//! catch-ups a part at a time within a scan budget, relaying operations new to this node,
//! asking for catch-ups periodically and after missed batches, and pushing the outbox.
//!
//! [`Sessions`] reads and writes the store and the sync engine, and talks to peers only
//! through a [`Wire`]: the node's transport over real sockets (`node/net.rs`), or a
//! simulated network in the tests. Everything a peer sends is checked against the
//! conversation: catch-up parts and their end are taken only in answer to a vector this
//! node sent, a vector is answered by one catch-up at a time per peer (at most
//! [`MAX_SERVING`] at once, one per peer node every [`CATCH_UP_MIN_INTERVAL_MS`]), and a
//! catch-up is read from the store a part at a time within [`CATCH_UP_SCAN_PER_SECOND`],
//! so its memory, its CPU and the time it holds the store stay small.
//!
//! A peer whose vector does not cover the removals this node collected is answered with
//! the full state instead (FullCatchUp parts covering every key, then FullCatchUpDone;
//! docs/sync.md, "Collecting removals"), at most one every [`FULL_STATE_MIN_INTERVAL_MS`]
//! per peer node. Its parts must follow each other, and the two kinds of answer do not
//! mix. Every message received counts as hearing from its peer, and every Vector is kept
//! as what the peer has seen: the engine collects tombstones by them.

use std::collections::HashMap;

use crate::logsafe::shown;
use crate::store::{Collected, FullPart, Operation, Store, VersionVector};

use super::{Ack, FullStateReceiver, SyncBatch, SyncEngine};

/// A connection, as the wire numbers it.
pub type Conn = usize;

/// Catch-up parts are cut at about this many encoded bytes.
pub const CATCH_UP_PART_BYTES: usize = 1024 * 1024;
/// Store entries visited per catch-up step, so that one step holds the store briefly.
const CATCH_UP_SCAN_PER_STEP: usize = 16 * 1024;
/// Store entries visited by all catch-ups in one pass of the loop, at most.
const CATCH_UP_SCAN_PER_PASS: usize = 64 * 1024;
/// Store entries visited by all catch-ups per second, at most: however many peers ask,
/// serving them costs a bounded share of a core (a million entries take about 4 s).
pub const CATCH_UP_SCAN_PER_SECOND: usize = 256 * 1024;
/// Catch-ups served at once; a vector beyond them is answered at once with an empty end
/// (the peer asks again at its next periodic catch-up).
pub const MAX_SERVING: usize = 16;
/// A peer node is served a new catch-up no sooner than this after its last one began
/// (counted by node id, so reconnecting does not reset it). Honest peers ask every 30 s,
/// on connecting and after missed batches.
pub const CATCH_UP_MIN_INTERVAL_MS: u64 = 5_000;
/// Largest vector taken or sent: a vector within the store's own bounds (origins and
/// ranges) is far smaller; a bigger one from a peer is a protocol error, and ours is sent
/// in part when it exceeds it (claiming less is always safe).
pub const MAX_VECTOR_BYTES: usize = 4 * 1024 * 1024;
/// Batches pushed per call, so that one busy writer cannot keep a poll busy forever.
const MAX_BATCHES_PER_FLUSH: usize = 256;
/// Connected peers are asked for a catch-up this often, to repair anything missed.
pub const CATCH_UP_INTERVAL_MS: u64 = 30_000;
/// Room a connection must have before the outbox's next batch is taken for it.
const PUSH_ROOM_BYTES: usize = 64 * 1024;
/// A peer node behind this node's collected removals is sent the full state no more often
/// than this (by node id); its catch-ups in between are the usual ones. A peer that never
/// sees an origin's last operations (collected removals of an origin that wrote nothing
/// since) stays behind: this bounds what that costs.
pub const FULL_STATE_MIN_INTERVAL_MS: u64 = 10 * 60 * 1000;
/// Peer nodes remembered for [`FULL_STATE_MIN_INTERVAL_MS`] at most (beyond, the oldest
/// is forgotten: it may get a full state sooner).
const MAX_FULL_STATE_RECORDS: usize = 1024;

/// The messages of the sync conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionMessage {
    /// Operations of one origin (new, relayed, or retried).
    Batch(SyncBatch),
    /// The numbers of a batch's operations the receiver took.
    Ack(Ack),
    /// "This is what I have seen; send me what I lack."
    Vector(VersionVector),
    /// Part of the answer to a Vector: operations the receiver lacks.
    CatchUp(Vec<Operation>),
    /// End of the answer: the sender's vector, to merge once every part is applied.
    CatchUpDone(VersionVector),
    /// "Send me your Vector" (the sender has operations you may lack).
    VectorRequest,
    /// Part of a full-state answer to a Vector (the receiver has not seen every removal
    /// the sender collected): the entries of a key range the receiver lacks in full, the
    /// other values by key.
    FullCatchUp(FullPart),
    /// End of a full-state answer: the sender's vector and its collected removals.
    FullCatchUpDone(VersionVector, Collected),
}

/// How [`Sessions`] reaches its peers.
pub trait Wire {
    /// Connections whose handshake completed, with the peer's node id, in a stable order.
    fn ready(&self) -> Vec<(Conn, String)>;
    /// Whether `conn` can take `bytes` more now (backpressure).
    fn has_room(&self, conn: Conn, bytes: usize) -> bool;
    /// Queues `message` on `conn`; false (and nothing queued) when it has no room or is
    /// gone.
    fn send(&mut self, conn: Conn, message: &SessionMessage) -> bool;
    /// Queues `batch` on each of `conns` that has room for all of it (encoded once);
    /// returns those that took it.
    fn send_batch(&mut self, conns: &[Conn], batch: &SyncBatch) -> Vec<Conn>;
    /// Closes `conn` for breaking the conversation.
    fn refuse(&mut self, conn: Conn, reason: String);
}

/// What kind of answer the parts received so far make.
#[derive(Default)]
enum Answer {
    /// No part yet.
    #[default]
    Unknown,
    /// CatchUp parts.
    Missing,
    /// FullCatchUp parts, and what they showed the peer does not hold.
    Full(Box<FullStateReceiver>),
}

/// The catch-up conversation with one connected peer.
#[derive(Default)]
struct Link {
    /// This node sent its vector and waits for the peer's parts and their end.
    awaiting: bool,
    /// The answer's parts so far.
    answer: Answer,
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

impl Link {
    /// The answer ended: returns whether its end is to be taken in (no part failed) and
    /// whether the peer asked for this node's vector meanwhile.
    fn end(&mut self) -> (bool, bool) {
        let merge = !std::mem::take(&mut self.broken);
        let again = std::mem::take(&mut self.vector_wanted);
        self.awaiting = false;
        self.answer = Answer::Unknown;
        (merge, again)
    }
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
    /// The full state (the peer has not seen every removal this node collected): this
    /// node's collected removals when it began.
    full: Option<Collected>,
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

/// The sync conversations of one node with its connected peers.
pub struct Sessions {
    node_id: String,
    links: HashMap<Conn, Link>,
    serving: HashMap<Conn, Serving>,
    stats: CatchUpStats,
    /// When a catch-up for each peer node last began (entries older than the interval are
    /// dropped, so this holds at most the nodes served in the last interval).
    last_served_ms: HashMap<String, u64>,
    /// When a full state for each peer node last began (likewise, and bounded).
    last_full_ms: HashMap<String, u64>,
    /// Store entries catch-ups may still visit (a bucket refilled at
    /// [`CATCH_UP_SCAN_PER_SECOND`]), and when it was last refilled.
    scan_tokens: usize,
    scan_refilled_ms: u64,
}

impl Sessions {
    /// No conversation yet, for node `node_id`.
    pub fn new(node_id: &str) -> Sessions {
        Sessions {
            node_id: node_id.to_string(),
            links: HashMap::new(),
            serving: HashMap::new(),
            stats: CatchUpStats::default(),
            last_served_ms: HashMap::new(),
            last_full_ms: HashMap::new(),
            scan_tokens: CATCH_UP_SCAN_PER_PASS,
            scan_refilled_ms: 0,
        }
    }

    /// The catch-up service's counters.
    pub fn stats(&self) -> CatchUpStats {
        CatchUpStats {
            serving: self.serving.len(),
            ..self.stats
        }
    }

    /// A connection completed its handshake: ask the peer for everything we lack.
    pub fn connected(&mut self, wire: &mut dyn Wire, store: &Store, conn: Conn, now_ms: u64) {
        self.links.insert(
            conn,
            Link {
                last_requested_ms: now_ms,
                ..Link::default()
            },
        );
        self.send_vector(wire, store, conn);
    }

    /// A connection closed: its conversation ends.
    pub fn closed(&mut self, conn: Conn) {
        self.links.remove(&conn);
        self.serving.remove(&conn);
    }

    /// A message from the peer on `conn`, whose handshake named it `from`.
    pub fn received(
        &mut self,
        wire: &mut dyn Wire,
        store: &Store,
        sync: &mut SyncEngine,
        (conn, from): (Conn, &str),
        message: SessionMessage,
        now_ms: u64,
    ) {
        sync.note_heard(from, now_ms);
        match message {
            SessionMessage::Batch(batch) => {
                match sync.receive_batch_report(store, &batch, Some(from)) {
                    Ok((ack, report)) => {
                        wire.send(conn, &SessionMessage::Ack(ack));
                        self.relay(wire, conn, &batch.origin, &batch.ops, &report.applied_indices);
                    }
                    Err(e) => log::warn!("node {}: batch from {from} refused: {e}", self.node_id),
                }
            }
            SessionMessage::Ack(ack) => {
                if let Err(e) = sync.receive_ack(store, &ack) {
                    log::warn!("node {}: ACK from {from} not recorded: {e}", self.node_id);
                }
            }
            SessionMessage::Vector(vector) => {
                self.peer_holds(store, sync, from, &vector);
                self.on_vector(wire, store, sync, (conn, from), vector, now_ms);
            }
            SessionMessage::VectorRequest => {
                let awaiting = self.links.get(&conn).is_some_and(|l| l.awaiting);
                if awaiting {
                    // One catch-up from a peer at a time: ask again once it ends.
                    if let Some(link) = self.links.get_mut(&conn) {
                        link.vector_wanted = true;
                    }
                } else {
                    self.send_vector(wire, store, conn);
                }
            }
            SessionMessage::CatchUp(ops) => {
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.awaiting) else {
                    let reason = "a catch-up part that no vector of this node asked for".into();
                    return self.refuse(wire, conn, reason);
                };
                match link.answer {
                    Answer::Full(_) => {
                        let reason = "a catch-up part within a full state".into();
                        return self.refuse(wire, conn, reason);
                    }
                    Answer::Unknown => link.answer = Answer::Missing,
                    Answer::Missing => {}
                }
                if link.broken {
                    return; // The rest of a catch-up that failed: its end is not merged.
                }
                match sync.receive_catch_up_part(store, &ops, Some(from)) {
                    Ok(report) => {
                        let origin = ops.first().map(|o| o.origin.clone()).unwrap_or_default();
                        self.relay(wire, conn, &origin, &ops, &report.applied_indices);
                    }
                    Err(e) => {
                        log::warn!("node {}: catch-up from {from} refused: {e}", self.node_id);
                        if let Some(link) = self.links.get_mut(&conn) {
                            link.broken = true;
                        }
                    }
                }
            }
            SessionMessage::CatchUpDone(vector) => {
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.awaiting) else {
                    let reason = "a catch-up end that no vector of this node asked for".into();
                    return self.refuse(wire, conn, reason);
                };
                if matches!(link.answer, Answer::Full(_)) {
                    let reason = "a catch-up end after full-state parts".into();
                    return self.refuse(wire, conn, reason);
                }
                let (merge, again) = link.end();
                if vector.wire_len() > MAX_VECTOR_BYTES {
                    let reason = format!("a vector of more than {MAX_VECTOR_BYTES} bytes");
                    return self.refuse(wire, conn, reason);
                }
                self.peer_holds(store, sync, from, &vector);
                if merge {
                    sync.finish_catch_up(store, &vector);
                }
                if again {
                    self.send_vector(wire, store, conn);
                }
            }
            SessionMessage::FullCatchUp(part) => {
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.awaiting) else {
                    let reason = "a full-state part that no vector of this node asked for".into();
                    return self.refuse(wire, conn, reason);
                };
                if matches!(link.answer, Answer::Missing) {
                    let reason = "a full-state part within a catch-up".into();
                    return self.refuse(wire, conn, reason);
                }
                if link.broken {
                    return;
                }
                if matches!(link.answer, Answer::Unknown) {
                    link.answer = Answer::Full(Box::default());
                }
                let Answer::Full(receiver) = &mut link.answer else {
                    unreachable!("the answer was just made full");
                };
                if let Err(reason) = receiver.follows(&part) {
                    return self.refuse(wire, conn, reason);
                }
                let received = sync.receive_full_part(store, receiver, &part, Some(from));
                match received {
                    Ok(report) => {
                        let origin = part.ops.first().map(|o| o.origin.clone()).unwrap_or_default();
                        self.relay(wire, conn, &origin, &part.ops, &report.applied_indices);
                    }
                    Err(e) => {
                        log::warn!("node {}: full state from {from} refused: {e}", self.node_id);
                        link.broken = true;
                    }
                }
            }
            SessionMessage::FullCatchUpDone(vector, collected) => {
                let Some(link) = self.links.get_mut(&conn).filter(|l| l.awaiting) else {
                    let reason = "a full-state end that no vector of this node asked for".into();
                    return self.refuse(wire, conn, reason);
                };
                if matches!(link.answer, Answer::Missing) {
                    let reason = "a full-state end after catch-up parts".into();
                    return self.refuse(wire, conn, reason);
                }
                let receiver = match std::mem::take(&mut link.answer) {
                    Answer::Full(receiver) => *receiver,
                    _ => FullStateReceiver::default(),
                };
                let (merge, again) = link.end();
                if vector.wire_len() > MAX_VECTOR_BYTES {
                    let reason = format!("a vector of more than {MAX_VECTOR_BYTES} bytes");
                    return self.refuse(wire, conn, reason);
                }
                if merge
                    && let Err(e) = sync.finish_full_state(store, receiver, &vector, &collected)
                {
                    log::warn!("node {}: full state from {from} not finished: {e}", self.node_id);
                }
                if again {
                    self.send_vector(wire, store, conn);
                }
            }
        }
    }

    /// The periodic work: streams catch-ups, asks for catch-ups when due, and pushes the
    /// outbox. Returns how many operations were pushed.
    pub fn poll(
        &mut self,
        wire: &mut dyn Wire,
        store: &Store,
        sync: &mut SyncEngine,
        now_ms: u64,
    ) -> usize {
        self.stream_catch_ups(wire, store, now_ms);
        self.periodic_catch_ups(wire, now_ms);
        self.push_outbox(wire, store, sync, now_ms)
    }

    /// Sends this node's vector to `conn` (within [`MAX_VECTOR_BYTES`]): a request for a
    /// catch-up, whose parts and end are then expected.
    fn send_vector(&mut self, wire: &mut dyn Wire, store: &Store, conn: Conn) {
        let vector = store.version_vector().within_wire_budget(MAX_VECTOR_BYTES);
        if wire.send(conn, &SessionMessage::Vector(vector))
            && let Some(link) = self.links.get_mut(&conn)
        {
            link.awaiting = true;
            link.vector_wanted = false;
            link.answer = Answer::Unknown;
        }
    }

    /// Closes `conn` for breaking the conversation.
    fn refuse(&mut self, wire: &mut dyn Wire, conn: Conn, reason: String) {
        log::warn!("node {}: protocol error: {reason}", self.node_id);
        self.stats.protocol_errors += 1;
        self.closed(conn);
        wire.refuse(conn, format!("protocol error: {reason}"));
    }

    /// A peer's vector (a Vector, or a catch-up's end): what it shows the peer holds of
    /// this node's operations is acknowledged.
    fn peer_holds(&self, store: &Store, sync: &mut SyncEngine, from: &str, v: &VersionVector) {
        match sync.peer_holds(store, v) {
            Ok(0) => {}
            Ok(n) => log::debug!(
                "node {}: {n} operations acknowledged by {from}'s vector",
                self.node_id
            ),
            Err(e) => log::warn!(
                "node {}: operations {from}'s vector holds not recorded: {e}",
                self.node_id
            ),
        }
    }

    /// A peer's vector: serve it a catch-up of what it lacks, if this node has room (the
    /// full state when it has not seen every removal this node collected).
    fn on_vector(
        &mut self,
        wire: &mut dyn Wire,
        store: &Store,
        sync: &mut SyncEngine,
        (conn, from): (Conn, &str),
        vector: VersionVector,
        now_ms: u64,
    ) {
        if vector.wire_len() > MAX_VECTOR_BYTES {
            let reason = format!("a vector of more than {MAX_VECTOR_BYTES} bytes");
            return self.refuse(wire, conn, reason);
        }
        sync.note_vector(from, &vector, now_ms);
        self.check_own_origin_claim(store, conn, from, &vector);
        if self.serving.contains_key(&conn) || self.serving.len() >= MAX_SERVING {
            // Busy (an honest peer waits for the end before asking again): an empty end
            // answers it at once and costs nothing; its next periodic request tries again.
            log::debug!("node {}: catch-up for {from} deferred: busy", self.node_id);
            wire.send(conn, &SessionMessage::CatchUpDone(VersionVector::new()));
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
        let (mine, collected) = store.vector_and_collected();
        let full = (!collected.covered_by(&vector) && self.full_state_due(from, now_ms))
            .then_some(collected);
        if full.is_some() {
            log::info!(
                "node {}: {from} has not seen every removal this node collected: sending it \
                 the full state",
                self.node_id
            );
        }
        self.serving.insert(
            conn,
            Serving {
                peer: vector,
                vector: mine.within_wire_budget(MAX_VECTOR_BYTES),
                cursor: None,
                scanned_all: false,
                not_before_ms,
                full,
            },
        );
    }

    /// Whether peer node `from` may be sent a full state now (at most one every
    /// [`FULL_STATE_MIN_INTERVAL_MS`]); if so, records that it is.
    fn full_state_due(&mut self, from: &str, now_ms: u64) -> bool {
        self.last_full_ms
            .retain(|_, t| now_ms.saturating_sub(*t) < FULL_STATE_MIN_INTERVAL_MS);
        if self.last_full_ms.contains_key(from) {
            return false;
        }
        if self.last_full_ms.len() >= MAX_FULL_STATE_RECORDS {
            let oldest = self
                .last_full_ms
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.last_full_ms.remove(&oldest);
            }
        }
        self.last_full_ms.insert(from.to_string(), now_ms);
        true
    }

    /// A peer that has seen more of this node's own operations than this node wrote: its
    /// data was lost (or another node uses its id). New writes would reuse numbers the
    /// peers have seen and be dropped as duplicates: say so loudly, once per connection.
    fn check_own_origin_claim(&mut self, store: &Store, conn: Conn, from: &str, v: &VersionVector) {
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
                self.node_id,
                shown(from)
            );
        }
    }

    /// Forwards operations that were new to this node to its other connected peers, so that
    /// they travel across nodes that are not directly connected. A node forwards an
    /// operation only when it first applies it, so forwarding ends; receivers that have
    /// it already ignore it. A peer without room misses it and gets it by catch-up.
    fn relay(
        &mut self,
        wire: &mut dyn Wire,
        from: Conn,
        origin: &str,
        ops: &[Operation],
        applied: &[usize],
    ) {
        if applied.is_empty() {
            return;
        }
        let batch = SyncBatch {
            origin: origin.to_string(),
            ops: applied.iter().map(|&i| ops[i].clone()).collect(),
            superseded: Vec::new(),
        };
        let others: Vec<Conn> = wire
            .ready()
            .into_iter()
            .map(|(conn, _)| conn)
            .filter(|&conn| conn != from)
            .collect();
        let took = wire.send_batch(&others, &batch);
        self.note_missed(&others, &took);
    }

    /// The connections in `sent_to` that did not take a batch (no room) missed it: each
    /// asks for a catch-up once it drains.
    fn note_missed(&mut self, sent_to: &[Conn], took: &[Conn]) {
        for &conn in sent_to.iter().filter(|c| !took.contains(c)) {
            self.links.entry(conn).or_default().missed_batches = true;
        }
    }

    /// Serves catch-ups a part at a time while the peers' send buffers have room, within a
    /// scan budget per pass.
    fn stream_catch_ups(&mut self, wire: &mut dyn Wire, store: &Store, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.scan_refilled_ms);
        let refill = usize::try_from(elapsed)
            .unwrap_or(usize::MAX)
            .saturating_mul(CATCH_UP_SCAN_PER_SECOND)
            / 1_000;
        if refill > 0 {
            self.scan_tokens = self
                .scan_tokens
                .saturating_add(refill)
                .min(CATCH_UP_SCAN_PER_PASS);
            self.scan_refilled_ms = now_ms;
        }
        let mut budget = self.scan_tokens;
        let mut conns: Vec<Conn> = self.serving.keys().copied().collect();
        conns.sort_unstable();
        for conn in conns {
            while budget > 0 {
                let Some(serving) = self.serving.get_mut(&conn) else {
                    break;
                };
                if serving.not_before_ms > now_ms {
                    break;
                }
                if serving.scanned_all {
                    let vector = std::mem::take(&mut serving.vector);
                    let done = match serving.full.take() {
                        Some(collected) => SessionMessage::FullCatchUpDone(vector, collected),
                        None => SessionMessage::CatchUpDone(vector),
                    };
                    if wire.send(conn, &done) {
                        self.serving.remove(&conn);
                    } else {
                        // No room yet: try on a later pass.
                        match done {
                            SessionMessage::FullCatchUpDone(v, c) => {
                                serving.vector = v;
                                serving.full = Some(c);
                            }
                            SessionMessage::CatchUpDone(v) => serving.vector = v,
                            _ => {}
                        }
                    }
                    break;
                }
                if !wire.has_room(conn, CATCH_UP_PART_BYTES) {
                    break;
                }
                let scan = budget.min(CATCH_UP_SCAN_PER_STEP);
                if serving.full.is_some() {
                    // Every part is sent, empty ones too: each says what this node holds
                    // in its range.
                    let part = store.full_part(
                        &serving.peer,
                        serving.cursor.as_deref(),
                        CATCH_UP_PART_BYTES,
                        scan,
                    );
                    budget -= scan;
                    let next = part.through.clone();
                    if !wire.send(conn, &SessionMessage::FullCatchUp(part)) {
                        break;
                    }
                    match next {
                        Some(key) => serving.cursor = Some(key),
                        None => serving.scanned_all = true,
                    }
                    continue;
                }
                let (part, next) = store.missing_part(
                    &serving.peer,
                    serving.cursor.as_deref(),
                    CATCH_UP_PART_BYTES,
                    scan,
                );
                budget -= scan;
                if !part.is_empty() && !wire.send(conn, &SessionMessage::CatchUp(part)) {
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

    fn periodic_catch_ups(&mut self, wire: &mut dyn Wire, now_ms: u64) {
        for (conn, _) in wire.ready() {
            let room = wire.has_room(conn, 0);
            let link = self.links.entry(conn).or_insert_with(|| Link {
                last_requested_ms: now_ms,
                ..Link::default()
            });
            let missed = link.missed_batches && room;
            let due = now_ms.saturating_sub(link.last_requested_ms) >= CATCH_UP_INTERVAL_MS;
            if missed {
                // The peer missed batches while its buffer was full: it asks us for them.
                link.missed_batches = false;
                wire.send(conn, &SessionMessage::VectorRequest);
            } else if due {
                link.last_requested_ms = now_ms;
                wire.send(conn, &SessionMessage::VectorRequest);
            }
        }
    }

    /// Sends the outbox's next batches to every connected peer with room; returns how many
    /// operations went out.
    pub fn push_outbox(
        &mut self,
        wire: &mut dyn Wire,
        store: &Store,
        sync: &mut SyncEngine,
        now_ms: u64,
    ) -> usize {
        let mut sent_ops = 0;
        for _ in 0..MAX_BATCHES_PER_FLUSH {
            let ready: Vec<Conn> = wire.ready().into_iter().map(|(c, _)| c).collect();
            if !ready.iter().any(|&c| wire.has_room(c, PUSH_ROOM_BYTES)) {
                break;
            }
            let Some(batch) = sync.next_batch(store, now_ms) else {
                break;
            };
            let took = wire.send_batch(&ready, &batch);
            self.note_missed(&ready, &took);
            if took.is_empty() {
                sync.batch_unsent(&batch);
                break;
            }
            sent_ops += batch.len();
            if let Err(e) = sync.batch_written(store, &batch) {
                log::warn!("node {}: {e}", self.node_id);
            }
        }
        sent_ops
    }
}
