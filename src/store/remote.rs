//! Operations from other nodes: what is refused (own origin, clock ahead, full tables,
//! second-hand claims), last-writer-wins with conflict detection, superseded numbers,
//! catch-up claims, and reading what a peer lacks.

use super::*;

/// An operation's identity and version, as shown in conflict reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpId {
    /// The node id of the node that made the operation.
    pub origin: String,
    /// That node's number for it.
    pub seq: u64,
    /// Its version.
    pub version: Version,
}

/// Two writes to one key made without knowledge of each other; last-writer-wins kept one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The key both writes changed.
    pub key: String,
    /// The entry the store held when the remote operation arrived.
    pub local: OpId,
    /// The remote operation.
    pub remote: OpId,
    /// Whether the remote operation won (and replaced the local entry).
    pub remote_won: bool,
}

/// What [`Store::apply_remote`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteApply {
    /// Operations that changed the store (and were logged).
    pub applied: usize,
    /// Operations older than the entry they met: nothing written.
    pub ignored: usize,
    /// Operations seen before: nothing written.
    pub duplicates: usize,
    pub conflicts: Vec<Conflict>,
    /// Positions (in the call's slice) of the operations that changed the store: new to
    /// this node, and possibly to its other peers.
    pub applied_indices: Vec<usize>,
    /// Positions of the operations refused, in order, with why (see [`Refusal`]): not
    /// applied, not recorded as seen, not to be acknowledged. The rest of the call was
    /// applied.
    pub refused: Vec<(usize, Refusal)>,
    /// Operations written again as local writes (their values, versions just above the
    /// removals in question): writes never seen here, for keys without a value, of a node
    /// that was away past the horizon when removals newer than them were collected (see
    /// [`Collected::away`]). The stamp of that write, and the positions of the operations,
    /// in the write's order. The caller puts the write in the outbox.
    pub rewritten: Option<(WriteStamp, Vec<usize>)>,
    /// Numbers of this node's own operations that left the store because an operation of
    /// this call replaced them (the sync engine stops waiting for a catch-up to carry
    /// them: see `Outbox::left_the_store`).
    pub own_left: Vec<u64>,
}

/// Why a well-formed remote operation was refused. The operation is neither applied nor
/// recorded as seen, so a later delivery (retry or catch-up) can still bring it once it is
/// acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// It claims this node's own origin, but this node never wrote it (or it has it
    /// already). Only a number below the next one this node gives that it has never seen
    /// is taken: one an earlier incarnation of this node wrote after the backup it was
    /// restored from (docs/backup.md).
    OwnOrigin,
    /// Its version is further ahead of this node's clock than the allowed drift.
    ClockAhead,
    /// Its origin is new and the vector already holds [`MAX_ORIGINS`] origins
    /// ([`MAX_RELAYED_ORIGINS`] for an operation that did not come from its origin itself).
    TooManyOrigins,
    /// It would open a gap in the vector beyond [`MAX_RANGES`].
    TooManyRanges,
    /// A number reported superseded by a node that is not its origin: only the origin
    /// knows which of its operations it superseded (others could silence its future ones).
    SecondHand,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::OwnOrigin => "claims this node's own origin but was never written here",
            Refusal::ClockAhead => "stamped further ahead of this node's clock than allowed",
            Refusal::TooManyOrigins => "from a new origin while the origin table is full",
            Refusal::TooManyRanges => "would open a gap while the version vector is full",
            Refusal::SecondHand => "reported superseded by a node that is not its origin",
        }
    }
}

/// Remote operations refused since the store was opened, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusedCounts {
    /// Claimed this node's own origin, but this node never wrote them.
    pub own_origin: u64,
    /// Stamped further ahead of this node's clock than `max_clock_drift_ms` allows.
    pub clock_ahead: u64,
    /// From a new origin when the version vector was full.
    pub too_many_origins: u64,
    /// Would have opened too many gaps in an origin's numbers.
    pub too_many_ranges: u64,
    /// Numbers reported superseded by a node that is not their origin.
    pub second_hand: u64,
}

impl RefusedCounts {
    fn add(&mut self, refusal: Refusal, count: u64) {
        let slot = match refusal {
            Refusal::OwnOrigin => &mut self.own_origin,
            Refusal::ClockAhead => &mut self.clock_ahead,
            Refusal::TooManyOrigins => &mut self.too_many_origins,
            Refusal::TooManyRanges => &mut self.too_many_ranges,
            Refusal::SecondHand => &mut self.second_hand,
        };
        *slot = slot.saturating_add(count);
    }

    /// Every refusal, whatever the reason.
    pub fn total(&self) -> u64 {
        self.own_origin
            .saturating_add(self.clock_ahead)
            .saturating_add(self.too_many_origins)
            .saturating_add(self.too_many_ranges)
            .saturating_add(self.second_hand)
    }
}

/// Decides which remote operations of one call this store takes: checks run against the
/// vector as it was, plus what the call itself adds.
struct Admission<'a> {
    vector: &'a VersionVector,
    node_id: &'a str,
    /// The number this node gives its next own operation.
    next_own_seq: u64,
    /// The node the operations came from, when known: its own operations are first-hand.
    sender: Option<&'a str>,
    /// The greatest version accepted: the local clock plus the allowed drift.
    horizon: Version,
    new_origins: HashSet<&'a str>,
    new_ranges: usize,
    /// The origin admitted last, its progress, and the number admitted: operations of a
    /// batch mostly come from one origin in order, and each then extends the one before.
    last: Option<(&'a str, Option<&'a OriginProgress>, u64)>,
}

impl<'a> Admission<'a> {
    fn new(
        map: &'a Map,
        node_id: &'a str,
        next_own_seq: u64,
        sender: Option<&'a str>,
        horizon: Version,
    ) -> Self {
        Admission {
            vector: &map.vector,
            node_id,
            next_own_seq,
            sender,
            horizon,
            new_origins: HashSet::new(),
            new_ranges: 0,
            last: None,
        }
    }

    /// Whether operation `seq` of `origin` stamped `version` may be taken in. Call only for
    /// operations not seen before.
    fn admit(&mut self, origin: &'a str, seq: u64, version: Version) -> Result<(), Refusal> {
        self.admit_range(origin, seq, seq, version)
    }

    /// Whether operations `first..=last` of `origin`, none seen before, the greatest
    /// stamped `version`, may be taken in (all or none).
    fn admit_range(
        &mut self,
        origin: &'a str,
        first: u64,
        last: u64,
        version: Version,
    ) -> Result<(), Refusal> {
        let seq = first;
        // This node's own numbers come from its counter, never from outside, with one
        // exception: a node restored from a backup skipped a block of numbers (see
        // `backup::incarnation_floor`), and the operations its earlier incarnation wrote
        // with the skipped numbers after the backup come back from the peers that have
        // them. Such a number is below the next own number and was never seen here. On a
        // node never restored every number below it has been seen (a write is recorded as
        // it is numbered; only a write that failed leaves one unseen, and no peer has that
        // one unless it forged it, which a trusted peer can do for any other origin too).
        if origin == self.node_id
            && (last >= self.next_own_seq || self.vector.contains(origin, seq))
        {
            return Err(Refusal::OwnOrigin);
        }
        if version > self.horizon {
            return Err(Refusal::ClockAhead);
        }
        let (progress, previous) = match self.last {
            Some((o, p, s)) if o == origin => (p, Some(s)),
            _ => {
                let progress = self.vector.get(origin);
                if progress.is_none() && !self.new_origins.contains(origin) {
                    let limit = if self.sender == Some(origin) {
                        MAX_ORIGINS
                    } else {
                        MAX_RELAYED_ORIGINS
                    };
                    if self.vector.origin_count() + self.new_origins.len() >= limit {
                        return Err(Refusal::TooManyOrigins);
                    }
                    self.new_origins.insert(origin);
                }
                (progress, None)
            }
        };
        // A number right after the one admitted before it extends it. Otherwise counted
        // conservatively: operations of one call that touch each other out of order count
        // as new gaps.
        let extends = previous.is_some_and(|p| p.checked_add(1) == Some(seq));
        if !extends && seq > 1 && progress.is_none_or(|p| p.opens_range_span(seq, last)) {
            if self.vector.range_count() + self.new_ranges >= MAX_RANGES {
                return Err(Refusal::TooManyRanges);
            }
            self.new_ranges += 1;
        }
        self.last = Some((origin, progress, last));
        Ok(())
    }
}

impl Store {
    /// Applies operations received from peers, last-writer-wins. Operations seen before, or
    /// older than the entry they meet, write nothing. Operations this node must not take
    /// ([`Refusal`]) are refused one by one and counted. The others are logged as one
    /// record and applied. Invalid operations fail the whole call before anything is
    /// written.
    #[cfg(any(test, feature = "internals"))]
    pub fn apply_remote(&self, ops: &[Operation]) -> Result<RemoteApply, StoreError> {
        self.apply_remote_from(ops, None)
    }

    /// [`Store::apply_remote`] for operations received from node `sender`: those it wrote
    /// itself are first-hand (see [`MAX_RELAYED_ORIGINS`]).
    pub fn apply_remote_from(
        &self,
        ops: &[Operation],
        sender: Option<&str>,
    ) -> Result<RemoteApply, StoreError> {
        let mut checked_origin: Option<&str> = None;
        for o in ops {
            // A batch mostly comes from one origin: check each origin id once.
            let check_origin = checked_origin != Some(o.origin.as_str());
            validate_remote(o, check_origin)?;
            checked_origin = Some(&o.origin);
        }
        let mut report = RemoteApply::default();
        let mut winners: Vec<(usize, &Operation)> = Vec::new();
        // Every operation not refused: recorded as seen, and its version observed.
        let mut taken: Vec<&Operation> = Vec::with_capacity(ops.len());
        // Winners to write again once applied, with the version to go above (see
        // `RemoteApply::rewritten`).
        let mut rewrite: Vec<(usize, Version)> = Vec::new();
        {
            let map = self.map.read();
            // Lock order: the map before the counters.
            let next_own_seq = self.counters.lock().next_seq;
            let mut admission =
                Admission::new(&map, &self.node_id, next_own_seq, sender, self.horizon());
            for (i, o) in ops.iter().enumerate() {
                let existing = map.entries.get(&o.key);
                let wins = existing.is_none_or(|e| !e.wins_over(o.version, &o.origin));
                let seen = map.vector.contains(&o.origin, o.origin_seq);
                // Seen before and not newer than what the key holds: a duplicate. Recorded as
                // seen but newer: a peer's claim covered it before it arrived (a claim can
                // be wrong); applying it is still right, last-writer-wins is idempotent.
                // Unless it is no newer than the removals collected here (or learned
                // collected): then what this node saw of it may be that one of them
                // superseded it (the peer that claimed it held a removal that is gone), and
                // applying it would bring the value back: a duplicate too.
                let collected_over = o.version <= map.collected.watermark;
                if seen && (!wins || collected_over) {
                    report.duplicates += 1;
                    taken.push(o);
                    continue;
                }
                if let Err(refusal) = admission.admit(&o.origin, o.origin_seq, o.version) {
                    report.refused.push((i, refusal));
                    continue;
                }
                taken.push(o);
                if let Some(c) = existing.and_then(|e| conflict(&o.key, e, o, wins)) {
                    report.conflicts.push(c);
                }
                if wins {
                    winners.push((i, o));
                    // News for a key with no value (no entry, or an older tombstone), from a
                    // node that was away past the horizon when removals newer than it were
                    // collected: it may have been made there without knowledge of one of
                    // them, which nodes that still hold the removal would keep over it, and
                    // nodes that collected it would not. Written again, just above those
                    // removals, so that every node ends with it.
                    let away = map.collected.away(&o.origin).filter(|&v| o.version <= v);
                    let no_value = existing.is_none_or(|e| e.value.is_none());
                    if let (true, false, Some(_), Some(v)) =
                        (no_value, seen, o.value.as_ref(), away)
                    {
                        rewrite.push((i, v));
                    }
                } else {
                    report.ignored += 1;
                }
            }
        }
        if let Some(wal) = self.wal.as_ref().filter(|_| !winners.is_empty()) {
            wal.append(RecordType::StoreOps, self.durable, |_, payload| {
                op::encode_ops(payload, winners.iter().map(|(_, o)| o.as_op()));
            })?;
        }
        let mut map = self.map.write();
        for &(_, r) in &report.refused {
            map.refused.add(r, 1);
        }
        let mut counters = self.counters.lock();
        for o in &taken {
            counters.clock.observe(o.version);
        }
        drop(counters);
        for (i, o) in winners {
            if let Some(own_replaced) = map.apply_replacing(&o.as_op(), Some(&self.node_id)) {
                report.applied += 1;
                report.applied_indices.push(i);
                report.own_left.extend(own_replaced);
            } else {
                report.ignored += 1;
            }
        }
        for o in taken {
            map.vector.observe(&o.origin, o.origin_seq, o.version);
        }
        // The rewrites, of winners that are still their key's entry (one per key).
        rewrite.retain(|&(i, _)| {
            let o = &ops[i];
            map.entries
                .get(&o.key)
                .is_some_and(|e| **e.origin == *o.origin && e.origin_seq == o.origin_seq)
        });
        let mut keys = HashSet::new();
        rewrite.retain(|&(i, _)| keys.insert(ops[i].key.as_str()));
        drop(map);
        if let Some(listener) = self.remote_listener() {
            let applied: Vec<&Operation> = report.applied_indices.iter().map(|&i| &ops[i]).collect();
            listener.applied(&applied);
        }
        if !rewrite.is_empty() {
            let changes: Vec<(&str, Option<&[u8]>)> = rewrite
                .iter()
                .map(|&(i, _)| (ops[i].key.as_str(), ops[i].value.as_deref()))
                .collect();
            let above = rewrite.iter().map(|&(_, v)| v).max();
            let stamp = self.write_above(&changes, above)?;
            log::info!(
                "store {}: {} writes older than removals collected past the horizon kept by \
                 writing them again",
                self.node_id,
                rewrite.len()
            );
            report.rewritten = Some((stamp, rewrite.into_iter().map(|(i, _)| i).collect()));
        }
        Ok(report)
    }

    /// The greatest version a remote operation may carry now.
    pub(crate) fn horizon(&self) -> Version {
        horizon_at((self.time)(), self.max_clock_drift_ms)
    }

    /// Records operations as seen without applying them: operations their origin reported
    /// as superseded by a newer change to the same key. The same rules as for
    /// [`Store::apply_remote`] apply, and when the `sender` is known it must be the origin
    /// itself; returns the ranges taken (seen before, or admitted now; the others were
    /// refused). Visits the ranges given and the vector's gaps within them, never each
    /// number.
    pub fn mark_seen(
        &self,
        origin: &str,
        superseded: &[Superseded],
        sender: Option<&str>,
    ) -> Vec<(u64, u64)> {
        if superseded.is_empty() {
            return Vec::new();
        }
        let mut map = self.map.write();
        if sender.is_some_and(|s| s != origin) {
            let n = superseded.iter().fold(0u64, |n, r| n.saturating_add(r.count()));
            map.refused.add(Refusal::SecondHand, n);
            return Vec::new();
        }
        let ranges = merged(superseded);
        let mut taken = Vec::new();
        let mut refusals = Vec::new();
        let mut admitted = Vec::new();
        {
            let next_own_seq = self.counters.lock().next_seq;
            let mut admission =
                Admission::new(&map, &self.node_id, next_own_seq, sender, self.horizon());
            for &(first, last, version) in &ranges {
                let gaps = match map.vector.get(origin) {
                    Some(p) => p.unseen_within(first, last),
                    None => vec![(first, last)],
                };
                // What lies between the gaps was seen before: taken as it is.
                let mut at = Some(first);
                for (a, b) in gaps {
                    if let Some(from) = at.filter(|&f| f < a) {
                        taken.push((from, a - 1));
                    }
                    match admission.admit_range(origin, a, b, version) {
                        Ok(()) => admitted.push((a, b, version)),
                        Err(r) => refusals.push((r, (b - a).saturating_add(1))),
                    }
                    at = b.checked_add(1);
                }
                if let Some(from) = at.filter(|&f| f <= last) {
                    taken.push((from, last));
                }
            }
        }
        for (r, n) in refusals {
            map.refused.add(r, n);
        }
        for (a, b, version) in admitted {
            map.vector.observe_range(origin, a, b, version);
            taken.push((a, b));
        }
        merge_ranges(taken)
    }

    /// Remote operations refused since the store was opened, by reason.
    pub fn refused_counts(&self) -> RefusedCounts {
        self.map.read().refused
    }

    /// Takes in a peer's vector once everything it lacked from that peer has been applied,
    /// trusting it entirely (tests and tools; the network uses [`Store::merge_seen`]).
    #[cfg(any(test, feature = "internals"))]
    pub fn merge_vector(&self, other: &VersionVector) {
        self.map.write().vector.merge(other);
    }

    /// The greatest operation number of `origin` a peer's claim is taken up to: the
    /// greatest this store received (its own origin: the greatest it wrote).
    pub(crate) fn claim_cap(&self, origin: &str) -> u64 {
        if origin == &*self.node_id {
            return self.next_seq().saturating_sub(1);
        }
        self.map.read().vector.get(origin).map_or(0, |p| p.max_seq())
    }

    /// Takes in a peer's catch-up claim only up to what this store has itself received
    /// (see [`VersionVector::merge_seen`]).
    pub fn merge_seen(&self, other: &VersionVector) {
        self.map.write().vector.merge_seen(other, &self.node_id);
    }

    /// What a peer with vector `peer` lacks, and this store's vector, read together: the
    /// vector claims exactly what the operations (and earlier knowledge) cover, even while
    /// other threads write.
    pub fn catch_up_for(&self, peer: &VersionVector) -> (Vec<Operation>, VersionVector) {
        let map = self.map.read();
        (map.missing_for(peer), map.vector.clone())
    }

    /// Every entry (tombstones included) whose operation `peer` has not seen: what a peer
    /// with that vector lacks.
    #[cfg(any(test, feature = "internals"))]
    pub fn missing_for(&self, peer: &VersionVector) -> Vec<Operation> {
        self.map.read().missing_for(peer)
    }

    /// One part of what a peer with vector `peer` lacks, in key order after `after`: entries
    /// (tombstones included) whose operation it has not seen, until about `max_bytes` are
    /// collected or `max_scan` entries visited, whichever comes first. Returns the part and
    /// where to resume (`None`: the end was reached). Holds the store's read lock for one
    /// part only, so local writes never wait for a whole catch-up.
    pub fn missing_part(
        &self,
        peer: &VersionVector,
        after: Option<&str>,
        max_bytes: usize,
        max_scan: usize,
    ) -> (Vec<Operation>, Option<String>) {
        let map = self.map.read();
        let range = match after {
            Some(key) => (std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut part = Vec::new();
        let mut bytes = 0usize;
        let mut last_visited: Option<&str> = None;
        for (scanned, (key, e)) in map.entries.range(range).enumerate() {
            if scanned >= max_scan.max(1) || (!part.is_empty() && bytes >= max_bytes) {
                return (part, last_visited.map(str::to_string));
            }
            last_visited = Some(key);
            if !peer.contains(e.origin, e.origin_seq) {
                // About its encoded size: a fixed part, the key and the value.
                bytes += 64 + key.len() + e.value.map_or(0, <[u8]>::len);
                part.push(e.to_operation(key));
            }
        }
        (part, None)
    }
}

fn validate_remote(o: &Operation, check_origin: bool) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidRemoteOp {
        origin: crate::logsafe::shown(&o.origin),
        seq: o.origin_seq,
        reason,
    };
    if check_origin {
        crate::id::validate_node_id(&o.origin).map_err(|e| invalid(e.to_string()))?;
    }
    if o.origin_seq == 0 {
        return Err(invalid("origin sequence number 0".into()));
    }
    if let Some((base, _)) = &o.base {
        crate::id::validate_node_id(base).map_err(|e| invalid(format!("base: {e}")))?;
    }
    let change = match &o.value {
        Some(v) if v.len() > MAX_VALUE_LEN => {
            return Err(invalid(format!(
                "value of {} bytes exceeds the limit of {MAX_VALUE_LEN} bytes",
                v.len()
            )));
        }
        _ => validate_key(&o.key),
    };
    change.map_err(|e| invalid(e.to_string()))
}

/// Whether a remote operation and the entry it meets were written without knowledge of
/// each other: different origins, and neither overwrote the other.
fn conflict(
    key: &str,
    local: EntryRef<'_>,
    remote: &Operation,
    remote_won: bool,
) -> Option<Conflict> {
    let same_origin = **local.origin == *remote.origin;
    let remote_follows_local = remote
        .base
        .as_ref()
        .is_some_and(|(o, s)| **o == **local.origin && *s == local.origin_seq);
    let local_follows_remote = local
        .base
        .is_some_and(|(o, s)| **o == *remote.origin && s == remote.origin_seq);
    if same_origin || remote_follows_local || local_follows_remote {
        return None;
    }
    Some(Conflict {
        key: key.to_string(),
        local: OpId {
            origin: local.origin.to_string(),
            seq: local.origin_seq,
            version: local.version,
        },
        remote: OpId {
            origin: remote.origin.clone(),
            seq: remote.origin_seq,
            version: remote.version,
        },
        remote_won,
    })
}

/// Superseded ranges as sorted, disjoint (first, last, greatest version) triples: ranges
/// that overlap or touch become one, so that no number is visited twice. A first number
/// of 0 (never an operation's) is left out.
fn merged(superseded: &[Superseded]) -> Vec<(u64, u64, Version)> {
    let mut ranges: Vec<(u64, u64, Version)> = superseded
        .iter()
        .map(|s| (s.first.max(1), s.last, s.version))
        .filter(|&(f, l, _)| f <= l)
        .collect();
    ranges.sort_unstable_by_key(|&(f, l, _)| (f, l));
    let mut out: Vec<(u64, u64, Version)> = Vec::with_capacity(ranges.len());
    for (f, l, v) in ranges {
        match out.last_mut() {
            Some((_, last, version)) if last.saturating_add(1) >= f => {
                *last = (*last).max(l);
                *version = (*version).max(v);
            }
            _ => out.push((f, l, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(origin: &str, seq: u64, version: u64, key: &str, value: &[u8]) -> Operation {
        Operation {
            key: key.into(),
            value: Some(value.to_vec()),
            version: Version(version),
            origin: origin.into(),
            origin_seq: seq,
            base: None,
        }
    }

    #[test]
    fn an_operation_seen_before_does_not_bring_back_a_key_whose_removal_was_collected() {
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        let now = Version::from_millis(hlc::now_millis()).0;
        let old = op("node-b", 1, now, "k", b"old");
        store.apply_remote(std::slice::from_ref(&old)).unwrap();
        store.remove("k").unwrap();
        assert_eq!(store.collect_tombstones(&[], |_, _| TombstoneFate::SeenByAll), 1);
        // The old value arrives again (a retry, a duplicate): it stays gone.
        let again = store.apply_remote(std::slice::from_ref(&old)).unwrap();
        assert_eq!((again.applied, again.duplicates), (0, 1));
        assert!(store.entry("k").is_none());
        // Nor when an older removal, news here, came back meanwhile.
        let older_removal = Operation {
            value: None,
            ..op("node-c", 1, now - 1, "k", b"")
        };
        store.apply_remote(&[older_removal]).unwrap();
        let again = store.apply_remote(std::slice::from_ref(&old)).unwrap();
        assert_eq!((again.applied, again.duplicates), (0, 1));
        assert!(!store.contains("k"));
        // A write never seen here, newer than the removal, is news.
        let newer = op("node-b", 2, now + (10 << 16), "k", b"new");
        assert_eq!(store.apply_remote(&[newer]).unwrap().applied, 1);
        assert_eq!(store.get("k").unwrap(), b"new");
        assert_eq!(store.next_seq(), 2, "nothing written again: no horizon was passed");
    }

    #[test]
    fn a_write_of_a_node_away_past_the_horizon_older_than_a_removal_collected_meanwhile_is_written_again()
     {
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        store.put("gone", b"v").unwrap();
        let removal = store.remove("gone").unwrap();
        let away = ["node-c".to_string()];
        assert_eq!(store.collect_tombstones(&away, |_, _| TombstoneFate::PastHorizon), 1);
        let before = removal.first_version.0 - 1;
        // From the node that was away: made without knowledge of the removal, older than
        // it. The same from a node that was not away is news, taken as it is.
        let from = |origin: &str, key: &str| Operation {
            value: Some(b"offline edit".to_vec()),
            ..op(origin, 1, before, key, b"")
        };
        let report = store
            .apply_remote(&[from("node-c", "gone"), from("node-b", "new")])
            .unwrap();
        let (stamp, positions) = report.rewritten.expect("written again");
        assert_eq!(positions, vec![0]);
        let entry = store.entry("gone").unwrap();
        assert_eq!(entry.value.as_deref(), Some(&b"offline edit"[..]));
        assert_eq!((&*entry.origin, entry.origin_seq), ("node-a", stamp.first_seq));
        assert_eq!(
            entry.version,
            removal.first_version.next().unwrap(),
            "just above the removal: a newer write still wins over it"
        );
        assert_eq!(entry.base, Some((Arc::from("node-c"), 1)));
        assert_eq!(store.entry("new").unwrap().origin.as_ref(), "node-b");
    }

    #[test]
    fn own_numbers_skipped_by_a_restore_are_taken_back_once_and_no_others() {
        let store = Store::open(&StoreOptions::new("node-a", None, false)).unwrap();
        let newer = store.put("k1", b"1").unwrap().first_version.0 + 1;
        // What a restore does (backup::incarnation_floor): numbers 2..100 skipped.
        store.counters.lock().next_seq = 100;
        let report = store
            .apply_remote_from(
                &[
                    // Written by the earlier incarnation after the backup: taken back.
                    op("node-a", 5, 5, "lost", b"from the peer"),
                    // Already here, claiming newer content: refused.
                    op("node-a", 1, newer, "k1", b"forged"),
                    // Not yet issued: refused.
                    op("node-a", 100, 100, "future", b"x"),
                ],
                Some("node-b"),
            )
            .unwrap();
        assert_eq!(report.applied, 1, "{report:?}");
        assert_eq!(
            report.refused,
            vec![(1, Refusal::OwnOrigin), (2, Refusal::OwnOrigin)]
        );
        assert_eq!(store.get("lost").unwrap(), b"from the peer");
        assert_eq!(store.get("k1").unwrap(), b"1");
        let again = store
            .apply_remote_from(&[op("node-a", 5, 6, "lost", b"other")], Some("node-b"))
            .unwrap();
        assert_eq!(again.refused, vec![(0, Refusal::OwnOrigin)], "taken once");
        assert_eq!(store.put("k2", b"2").unwrap().first_seq, 100);
    }
}

