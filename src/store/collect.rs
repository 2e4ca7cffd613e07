//! Collecting tombstones, and what keeps a removal removed once its tombstone is gone
//! (docs/sync.md, "Collecting removals"). Pure logic over the map, and the store's log.
//!
//! - A tombstone is dropped when the caller's policy says every peer has seen it (or is
//!   away past the horizon). What was collected is summed up in [`Collected`]: per origin
//!   the greatest sequence number of a collected removal (the *frontier*), the greatest
//!   version collected (the *watermark*), and per peer that was away past the horizon
//!   the greatest version collected meanwhile. Collecting is not logged: a tombstone
//!   that comes back from the log after a restart is collected again; the snapshot keeps
//!   [`Collected`] so that it never shrinks once the tombstone is gone for good.
//! - A peer whose vector does not cover the frontier may still hold values those
//!   removals superseded: it is sent a *full state* ([`FullPart`]s covering every key),
//!   and it forgets its values in the covered ranges that this store has seen but no
//!   longer holds a value for. Forgetting is logged (record type `StoreForget`), with the [`Collected`]
//!   learned from the peer: a node that forgot because of a peer's collections serves full
//!   states in turn.

use super::*;
use crate::codec::Reader;

/// Tombstones visited by one collection at most (it resumes where it stopped).
const COLLECT_VISIT: usize = 64 * 1024;
/// Entries compared under one read lock when a full-state part is checked.
const FORGET_SCAN_CHUNK: usize = 16 * 1024;
/// Bytes of forgotten entries per log record, about.
const FORGET_RECORD_BYTES: usize = 1 << 20;
/// Payload version of the `StoreForget` record.
const FORGET_PAYLOAD_VERSION: u8 = 1;

/// What a collection policy says of one tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TombstoneFate {
    /// Some peer may still need it.
    Keep,
    /// Every peer has seen its operation: it can go.
    SeenByAll,
    /// Every peer has seen it, except peers not heard from for longer than the horizon:
    /// it can go, and a write made there without knowledge of it may come back from them.
    PastHorizon,
}

/// The removals a store collected, or learned that a peer collected: per origin the
/// greatest sequence number of such a removal (the frontier), the greatest version, and
/// per node that was away past the horizon when removals were collected, the greatest
/// version collected meanwhile. Only grows. At most [`MAX_ORIGINS`] origins and nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    frontier: BTreeMap<String, u64>,
    /// The greatest version of a removal collected. An operation seen before, not newer
    /// than this, whose key has no entry, was superseded by a collected removal.
    pub watermark: Version,
    /// Per node away past the horizon when removals were collected, the greatest version
    /// of those removals. A write of that node never seen here, not newer than this, for a
    /// key with no entry, may have been made without knowledge of such a removal.
    away: BTreeMap<String, Version>,
}

impl Collected {
    /// Collected removals as parts: `(origin, greatest sequence number)`, the watermark,
    /// and `(node, greatest version collected while it was away)` (tests, tools).
    #[cfg(any(test, feature = "internals"))]
    pub fn from_parts(
        frontier: impl IntoIterator<Item = (String, u64)>,
        watermark: Version,
        away: impl IntoIterator<Item = (String, Version)>,
    ) -> Collected {
        Collected {
            frontier: frontier.into_iter().filter(|&(_, s)| s > 0).collect(),
            watermark,
            away: away.into_iter().collect(),
        }
    }

    /// Per origin, the greatest sequence number of a collected removal, in node-id order.
    #[cfg(any(test, feature = "internals"))]
    pub fn frontier(&self) -> impl Iterator<Item = (&str, u64)> {
        self.frontier.iter().map(|(o, &s)| (o.as_str(), s))
    }

    /// The frontier of `origin` (0: nothing of it collected).
    pub fn get(&self, origin: &str) -> u64 {
        self.frontier.get(origin).copied().unwrap_or(0)
    }

    /// The greatest version of a removal collected while node `node_id` was away past
    /// the horizon (`None`: it never was).
    pub fn away(&self, node_id: &str) -> Option<Version> {
        self.away.get(node_id).copied()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.frontier.is_empty() && self.watermark == Version::default() && self.away.is_empty()
    }

    /// Whether a node with vector `peer` has seen every operation of each origin up to
    /// the frontier: then it has seen every removal collected here, and holds nothing they
    /// superseded.
    pub fn covered_by(&self, peer: &VersionVector) -> bool {
        self.frontier
            .iter()
            .all(|(o, &s)| peer.get(o).map_or(0, |p| p.contiguous) >= s)
    }

    /// Records the collection of removal `(origin, seq)` stamped `version`, while the
    /// nodes `away` were away past the horizon. False (nothing recorded) when it would
    /// take the origins or the nodes beyond [`MAX_ORIGINS`].
    fn note(&mut self, origin: &str, seq: u64, version: Version, away: &[String]) -> bool {
        let new_origin = usize::from(!self.frontier.contains_key(origin));
        let new_away = away.iter().filter(|p| !self.away.contains_key(*p)).count();
        if self.frontier.len() + new_origin > MAX_ORIGINS
            || self.away.len().saturating_add(new_away) > MAX_ORIGINS
        {
            return false;
        }
        let slot = self.frontier.entry(origin.to_string()).or_default();
        *slot = (*slot).max(seq);
        self.watermark = self.watermark.max(version);
        for node in away {
            let slot = self.away.entry(node.clone()).or_default();
            *slot = (*slot).max(version);
        }
        true
    }

    /// Whether taking in `other` would leave at most [`MAX_ORIGINS`] origins and nodes.
    fn fits(&self, other: &Collected) -> bool {
        let new_origins = other
            .frontier
            .keys()
            .filter(|o| !self.frontier.contains_key(*o))
            .count();
        let new_away = other
            .away
            .keys()
            .filter(|o| !self.away.contains_key(*o))
            .count();
        self.frontier.len().saturating_add(new_origins) <= MAX_ORIGINS
            && self.away.len().saturating_add(new_away) <= MAX_ORIGINS
    }

    /// Whether taking in `other` would change anything.
    fn adds(&self, other: &Collected) -> bool {
        other.watermark > self.watermark
            || other.frontier.iter().any(|(o, &s)| self.get(o) < s)
            || other.away.iter().any(|(o, &v)| self.away(o) < Some(v))
    }

    /// Takes in `other` (the caller checked [`Collected::fits`]).
    fn absorb(&mut self, other: &Collected) {
        for (o, &s) in &other.frontier {
            let mine = self.frontier.entry(o.clone()).or_default();
            *mine = (*mine).max(s);
        }
        self.watermark = self.watermark.max(other.watermark);
        for (o, &v) in &other.away {
            let mine = self.away.entry(o.clone()).or_default();
            *mine = (*mine).max(v);
        }
    }

    /// This with its versions lowered to `cap` (a peer's claim is taken no further ahead
    /// than this node's clock allows a remote version).
    pub(crate) fn capped(&self, cap: Version) -> Collected {
        Collected {
            frontier: self.frontier.clone(),
            watermark: self.watermark.min(cap),
            away: self.away.iter().map(|(o, &v)| (o.clone(), v.min(cap))).collect(),
        }
    }

    /// Appends the encoding, the same on the wire (docs/protocol.md), in a snapshot and in
    /// the log: u32 origin count, per origin u32 id length and the id, u64 greatest
    /// sequence number; u64 watermark; u32 node count, per node u32 id length and the id,
    /// u64 greatest version collected while it was away.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn put_len(out: &mut Vec<u8>, n: usize) {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        put_len(out, self.frontier.len());
        for (origin, seq) in &self.frontier {
            put_len(out, origin.len());
            out.extend_from_slice(origin.as_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
        }
        out.extend_from_slice(&self.watermark.0.to_le_bytes());
        put_len(out, self.away.len());
        for (node, version) in &self.away {
            put_len(out, node.len());
            out.extend_from_slice(node.as_bytes());
            out.extend_from_slice(&version.0.to_le_bytes());
        }
    }

    /// Reads what [`Collected::encode`] wrote. Counts are checked against the bytes left
    /// (no allocation sized by the input) and against [`MAX_ORIGINS`], ids against the
    /// node id rules.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Collected, String> {
        fn ids(r: &mut Reader<'_>, what: &str) -> Result<BTreeMap<String, u64>, String> {
            let n = r.u32(what)? as usize;
            // One takes at least 13 bytes: its length, one byte of id, its number.
            if n.saturating_mul(13) > r.remaining() {
                return Err(format!("{what} {n} exceeds the data"));
            }
            if n > MAX_ORIGINS {
                return Err(format!("{what} {n} exceeds the limit of {MAX_ORIGINS}"));
            }
            let mut out = BTreeMap::new();
            for _ in 0..n {
                let len = r.u32(what)? as usize;
                let id = r.str(len, what)?;
                crate::id::validate_node_id(id).map_err(|e| format!("{what}: {e}"))?;
                let number = r.u64(what)?;
                if number > 0 {
                    let slot: &mut u64 = out.entry(id.to_string()).or_default();
                    *slot = (*slot).max(number);
                }
            }
            Ok(out)
        }
        let frontier = ids(r, "frontier count")?;
        let watermark = Version(r.u64("watermark")?);
        let away = ids(r, "away count")?
            .into_iter()
            .map(|(id, v)| (id, Version(v)))
            .collect();
        Ok(Collected {
            frontier,
            watermark,
            away,
        })
    }
}

/// One part of a full state: the entries of the sender's store whose key is in
/// `(after, through]`: those the receiver lacks in full, the other values by key (the
/// other tombstones are left out: they hold no value to keep).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullPart {
    /// The part covers the keys after this one (`None`: from the first key).
    pub after: Option<String>,
    /// ... up to and including this one (`None`: to the last key).
    pub through: Option<String>,
    /// Entries (tombstones included) whose operation the receiver has not seen.
    pub ops: Vec<Operation>,
    /// The keys of the other values in the range: the receiver has seen their operations.
    pub held: Vec<String>,
}

impl FullPart {
    #[cfg(any(test, feature = "internals"))]
    /// Whether `key` is in the part's range.
    pub fn covers(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|a| key > a)
            && self.through.as_deref().is_none_or(|t| key <= t)
    }

    /// The part's range as bounds for a map of keys (`None`: an empty range).
    fn bounds(&self) -> Option<(std::ops::Bound<&str>, std::ops::Bound<&str>)> {
        use std::ops::Bound;
        if let (Some(a), Some(t)) = (&self.after, &self.through)
            && t.as_str() <= a.as_str()
        {
            return None;
        }
        let start = self.after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let end = self.through.as_deref().map_or(Bound::Unbounded, Bound::Included);
        Some((start, end))
    }
}

/// An entry a full state showed the sender no longer holds: its key and identity, and
/// its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) origin: Arc<str>,
    pub(crate) seq: u64,
    pub(crate) version: Version,
}

impl Store {
    /// Tombstones held now.
    pub fn tombstone_count(&self) -> usize {
        self.map.read().tombstones.len()
    }

    /// The removals collected here, or learned that a peer collected.
    pub fn collected(&self) -> Collected {
        self.map.read().collected.clone()
    }

    /// This store's vector and [`Collected`], read together.
    pub fn vector_and_collected(&self) -> (VersionVector, Collected) {
        let map = self.map.read();
        (map.vector.clone(), map.collected.clone())
    }

    #[cfg(any(test, feature = "internals"))]
    /// Whether a peer with vector `peer` must be sent the full state: it has not seen
    /// every removal collected here, so it may hold values they superseded.
    pub fn needs_full_state(&self, peer: &VersionVector) -> bool {
        !self.map.read().collected.covered_by(peer)
    }

    /// Drops the tombstones that `fate` lets go, visiting at most 65,536 of them (the
    /// next call goes on from there); returns how many were dropped. Records each in
    /// [`Collected`], one dropped past the horizon against each of the nodes `away` (the
    /// peers not heard from for longer than it); a tombstone that would take the origins or
    /// the nodes recorded beyond [`MAX_ORIGINS`] is kept. Costs nothing on a store without
    /// tombstones. `fate` is called under the store's read lock; the tombstones go under
    /// its write lock, each only if it is still the same operation.
    #[cfg(any(test, feature = "internals"))]
    pub fn collect_tombstones(
        &self,
        away: &[String],
        fate: impl Fn(&str, u64) -> TombstoneFate,
    ) -> usize {
        self.collect_tombstones_noting(away, fate, &mut Vec::new())
    }

    /// [`Store::collect_tombstones`], adding to `own_left` the numbers of this node's own
    /// removals that went.
    pub fn collect_tombstones_noting(
        &self,
        away: &[String],
        fate: impl Fn(&str, u64) -> TombstoneFate,
        own_left: &mut Vec<u64>,
    ) -> usize {
        let (picks, cursor) = {
            let map = self.map.read();
            if map.tombstones.is_empty() {
                return 0;
            }
            // All of them, or a bounded number from where the last call stopped (wrapping
            // around to the start): each tombstone at most once per call.
            let (visit, cursor): (Vec<&String>, Option<String>) =
                if map.tombstones.len() <= COLLECT_VISIT {
                    (map.tombstones.iter().collect(), None)
                } else {
                    let from = match &map.collect_cursor {
                        Some(k) => std::ops::Bound::Excluded(k.as_str()),
                        None => std::ops::Bound::Unbounded,
                    };
                    let visit: Vec<&String> = map
                        .tombstones
                        .range::<str, _>((from, std::ops::Bound::Unbounded))
                        .chain(map.tombstones.iter())
                        .take(COLLECT_VISIT)
                        .collect();
                    let cursor = visit.last().map(|k| (*k).clone());
                    (visit, cursor)
                };
            let mut picks = Vec::new();
            for key in visit {
                let Some(e) = map.entries.get(key.as_str()) else {
                    continue;
                };
                let past_horizon = match fate(e.origin, e.origin_seq) {
                    TombstoneFate::Keep => continue,
                    TombstoneFate::SeenByAll => false,
                    TombstoneFate::PastHorizon => true,
                };
                picks.push((key.clone(), e.origin.clone(), e.origin_seq, e.version, past_horizon));
            }
            (picks, cursor)
        };
        let mut map = self.map.write();
        map.collect_cursor = cursor;
        let mut dropped = 0;
        for (key, origin, seq, version, past_horizon) in picks {
            let still = map
                .entries
                .get(&key)
                .is_some_and(|e| e.value.is_none() && *e.origin == origin && e.origin_seq == seq);
            let skipped = if past_horizon { away } else { &[] };
            if still && map.collected.note(&origin, seq, version, skipped) {
                map.forget(&key, &origin, seq);
                dropped += 1;
                if *origin == *self.node_id {
                    own_left.push(seq);
                }
            }
        }
        dropped
    }

    /// One part of the full state for a peer with vector `peer`, in key order after
    /// `after`: every entry visited, in full when the peer has not seen its operation, by
    /// key otherwise, until about `max_bytes` are collected or `max_scan` entries visited.
    /// Its `through` says where it stopped (`None`: the end was reached). Holds the
    /// store's read lock for one part only.
    pub fn full_part(
        &self,
        peer: &VersionVector,
        after: Option<&str>,
        max_bytes: usize,
        max_scan: usize,
    ) -> FullPart {
        let map = self.map.read();
        let range = match after {
            Some(key) => (std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut part = FullPart {
            after: after.map(str::to_string),
            ..FullPart::default()
        };
        let mut bytes = 0usize;
        let mut last_visited: Option<&str> = None;
        for (scanned, (key, e)) in map.entries.range(range).enumerate() {
            if scanned >= max_scan.max(1) || (scanned > 0 && bytes >= max_bytes) {
                part.through = last_visited.map(str::to_string);
                return part;
            }
            last_visited = Some(key);
            if peer.contains(e.origin, e.origin_seq) {
                // A tombstone the peer has seen is not named: it holds no value, and it may
                // be older than a removal collected here (taken as news after it), which
                // superseded a value the peer still holds.
                if e.value.is_some() {
                    bytes += 8 + key.len();
                    part.held.push(key.to_string());
                }
            } else {
                // About its encoded size: a fixed part, the key and the value.
                bytes += 64 + key.len() + e.value.map_or(0, <[u8]>::len);
                part.ops.push(e.to_operation(key));
            }
        }
        part
    }

    /// The values of this store in `part`'s range whose key the part does not name as a
    /// value: the sender holds no value for them. Compared a chunk at a time, each under a
    /// short read lock; `found` gets each (key, identity and version).
    pub(crate) fn absent_from(&self, part: &FullPart, mut found: impl FnMut(&str, Candidate)) {
        let Some((start, end)) = part.bounds() else {
            return;
        };
        // The keys the sender holds a value for: tombstones name nothing.
        let named: HashSet<&str> = part
            .ops
            .iter()
            .filter(|o| o.value.is_some())
            .map(|o| o.key.as_str())
            .chain(part.held.iter().map(String::as_str))
            .collect();
        let mut from = start.map(str::to_string);
        loop {
            let map = self.map.read();
            let bounds = (from.as_ref().map(String::as_str), end);
            let mut visited = 0;
            let mut last = None;
            for (key, e) in map.entries.range(bounds).take(FORGET_SCAN_CHUNK) {
                visited += 1;
                last = Some(key);
                // Only values: a tombstone here goes when this node collects it.
                if e.value.is_some() && !named.contains(key) {
                    let candidate = Candidate {
                        origin: e.origin.clone(),
                        seq: e.origin_seq,
                        version: e.version,
                    };
                    found(key, candidate);
                }
            }
            match last {
                Some(key) if visited == FORGET_SCAN_CHUNK => {
                    from = std::ops::Bound::Excluded(key.to_string());
                }
                _ => return,
            }
        }
    }

    /// Forgets the entries `forget` names (each only if it is still that operation) and
    /// takes in `learned` (a peer's collected removals): logged first as `StoreForget`
    /// records, then applied. Returns how many entries went. When `learned` would take the
    /// frontier beyond [`MAX_ORIGINS`] origins nothing is done (a peer's own frontier is
    /// never that large). Adds to `own_left` the numbers of this node's own operations
    /// that went.
    pub(crate) fn forget(
        &self,
        forget: &[(String, Candidate)],
        learned: &Collected,
        own_left: &mut Vec<u64>,
    ) -> Result<usize, StoreError> {
        {
            let map = self.map.read();
            if !map.collected.fits(learned) {
                log::warn!(
                    "store {}: a peer's collected removals name too many origins; nothing \
                     forgotten",
                    self.node_id
                );
                return Ok(0);
            }
            if forget.is_empty() && !map.collected.adds(learned) {
                return Ok(0);
            }
        }
        if let Some(wal) = &self.wal {
            let mut at = 0;
            loop {
                let mut end = at;
                let mut bytes = 0;
                while end < forget.len() && (end == at || bytes < FORGET_RECORD_BYTES) {
                    bytes += forget[end].0.len() + forget[end].1.origin.len() + 16;
                    end += 1;
                }
                let entries = forget[at..end]
                    .iter()
                    .map(|(k, c)| (k.as_str(), &*c.origin, c.seq));
                wal.append(RecordType::StoreForget, self.durable, |_, payload| {
                    encode_forget(payload, learned, entries);
                })?;
                at = end;
                if at >= forget.len() {
                    break;
                }
            }
        }
        let mut map = self.map.write();
        map.collected.absorb(learned);
        let mut gone = 0;
        let listener = self.remote_listener();
        let mut forgotten = Vec::new();
        for (key, c) in forget {
            if map.forget(key, &c.origin, c.seq) {
                gone += 1;
                if *c.origin == *self.node_id {
                    own_left.push(c.seq);
                }
                if listener.is_some() {
                    forgotten.push(Operation {
                        key: key.clone(),
                        value: None,
                        version: c.version,
                        origin: c.origin.to_string(),
                        origin_seq: c.seq,
                        base: None,
                    });
                }
            }
        }
        drop(map);
        if let Some(listener) = listener.filter(|_| !forgotten.is_empty()) {
            listener.applied(&forgotten.iter().collect::<Vec<_>>());
        }
        Ok(gone)
    }
}

/// The payload of a `StoreForget` record:
///
/// ```text
/// u8  payload version = 1
/// collected removals learned (Collected::encode)
/// u32 entry count
/// per entry: u16 key length and the key, u8 origin length and the origin, u64 sequence
/// ```
/// Keys and origins are within their limits (1,024 and 128 bytes: store rules).
pub fn encode_forget<'a>(
    out: &mut Vec<u8>,
    learned: &Collected,
    forget: impl ExactSizeIterator<Item = (&'a str, &'a str, u64)>,
) {
    out.push(FORGET_PAYLOAD_VERSION);
    learned.encode(out);
    out.extend_from_slice(&(forget.len() as u32).to_le_bytes());
    for (key, origin, seq) in forget {
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.push(origin.len() as u8);
        out.extend_from_slice(origin.as_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
}

/// Reads a `StoreForget` payload: the collected removals learned, and each forgotten
/// entry's key, origin and sequence number, given to `forget` in order. The error
/// describes what is malformed.
pub fn decode_forget(
    payload: &[u8],
    mut forget: impl FnMut(&str, &str, u64),
) -> Result<Collected, String> {
    let mut r = Reader::new(payload, "forget payload");
    let version = r.u8("payload version")?;
    if version != FORGET_PAYLOAD_VERSION {
        return Err(format!("unsupported forget payload version {version}"));
    }
    let learned = Collected::decode(&mut r)?;
    let count = r.u32("entry count")?;
    for _ in 0..count {
        let key_len = usize::from(r.u16("key length")?);
        let key = r.str(key_len, "key")?;
        let origin_len = usize::from(r.u8("origin length")?);
        let origin = r.str(origin_len, "origin")?;
        let seq = r.u64("sequence number")?;
        forget(key, origin, seq);
    }
    if r.remaining() > 0 {
        return Err(format!("{} unexpected bytes after the entries", r.remaining()));
    }
    Ok(learned)
}

/// Replays a `StoreForget` record onto `map`: the collected removals are taken in (as far
/// as [`MAX_ORIGINS`] allows), and each entry removed if it is still that operation.
/// Returns the numbers of `own`'s operations it removed.
pub(super) fn replay_forget(payload: &[u8], map: &mut Map, own: &str) -> Result<Vec<u64>, String> {
    let mut named = Vec::new();
    let learned = decode_forget(payload, |key, origin, seq| {
        named.push((key.to_string(), origin.to_string(), seq));
    })?;
    if map.collected.fits(&learned) {
        map.collected.absorb(&learned);
    }
    let mut own_left = Vec::new();
    for (key, origin, seq) in named {
        if map.forget(&key, &origin, seq) && origin == own {
            own_left.push(seq);
        }
    }
    Ok(own_left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: &str) -> Store {
        Store::open(&StoreOptions::new(id, None, false)).unwrap()
    }

    #[test]
    fn collecting_drops_only_what_the_policy_lets_go_and_records_the_frontier() {
        let s = store("node-a");
        s.put("a", b"1").unwrap();
        let gone = s.remove("a").unwrap(); // node-a #2
        s.put("b", b"1").unwrap();
        let kept = s.remove("b").unwrap(); // node-a #4
        assert_eq!((s.tombstone_count(), s.len()), (2, 0));
        let dropped = s.collect_tombstones(&[], |origin, seq| {
            assert_eq!(origin, "node-a");
            if seq == gone.first_seq {
                TombstoneFate::SeenByAll
            } else {
                TombstoneFate::Keep
            }
        });
        assert_eq!(dropped, 1);
        assert!(s.entry("a").is_none(), "the tombstone is gone");
        assert!(s.entry("b").is_some_and(|e| e.value.is_none()));
        let c = s.collected();
        assert_eq!(c.get("node-a"), gone.first_seq);
        assert_eq!(c.watermark, gone.first_version);
        assert_eq!(c.away("node-b"), None);
        // Past the horizon: recorded against the nodes that were away.
        let away = ["node-b".to_string()];
        assert_eq!(s.collect_tombstones(&away, |_, _| TombstoneFate::PastHorizon), 1);
        let c = s.collected();
        assert_eq!(c.get("node-a"), kept.first_seq);
        assert_eq!(c.away("node-b"), Some(kept.first_version));
        assert_eq!(c.away("node-c"), None);
        assert_eq!(s.tombstone_count(), 0);
        // Nothing left: the policy is not even asked.
        assert_eq!(s.collect_tombstones(&[], |_, _| panic!("no tombstone to judge")), 0);
        // A live value is never collected.
        s.put("c", b"live").unwrap();
        assert_eq!(s.collect_tombstones(&[], |_, _| TombstoneFate::SeenByAll), 0);
        assert_eq!(s.get("c").unwrap(), b"live");
    }

    #[test]
    fn a_tombstone_overwritten_by_a_value_is_no_longer_one() {
        let s = store("node-a");
        s.remove("k").unwrap();
        assert_eq!(s.tombstone_count(), 1);
        s.put("k", b"back").unwrap();
        assert_eq!(s.tombstone_count(), 0);
        s.remove("k").unwrap();
        s.remove("k").unwrap();
        assert_eq!(s.tombstone_count(), 1);
    }

    #[test]
    fn a_peer_is_sent_the_full_state_until_it_has_seen_the_frontier() {
        let s = store("node-a");
        for i in 0..3 {
            s.put(&format!("k{i}"), b"v").unwrap();
        }
        let removal = s.remove("k1").unwrap();
        s.collect_tombstones(&[], |_, _| TombstoneFate::SeenByAll);
        let mut peer = VersionVector::new();
        assert!(s.needs_full_state(&peer));
        peer.observe_range("node-a", 1, removal.first_seq - 1, Version(1));
        assert!(s.needs_full_state(&peer), "a gap below the frontier is not enough");
        peer.observe("node-a", removal.first_seq, Version(1));
        assert!(!s.needs_full_state(&peer));

        // Parts cover every key: ops for what the peer lacks, keys for the rest.
        let mut lacks = VersionVector::new();
        lacks.observe("node-a", 1, Version(1));
        let first = s.full_part(&lacks, None, usize::MAX, 1);
        assert_eq!(first.after, None);
        assert_eq!(first.through.as_deref(), Some("k0"));
        assert_eq!(first.held, vec!["k0".to_string()]);
        let rest = s.full_part(&lacks, first.through.as_deref(), usize::MAX, 100);
        assert_eq!(rest.through, None, "the end was reached");
        assert_eq!(rest.ops.len(), 1);
        assert_eq!(rest.ops[0].key, "k2");
        // A tombstone the peer has seen is not named (it holds no value to keep).
        s.remove("k0").unwrap();
        let all = s.version_vector();
        let part = s.full_part(&all, None, usize::MAX, 100);
        assert!(part.ops.is_empty());
        assert_eq!(part.held, vec!["k2".to_string()]);
        assert!(rest.covers("k9") && !rest.covers("k0"));
    }

    #[test]
    fn forgetting_is_logged_exact_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("b.wal");
        let options = StoreOptions::new("node-b", Some(wal.clone()), true);
        let s = Store::open(&options).unwrap();
        s.put("old", b"x").unwrap();
        s.put("keep", b"y").unwrap();
        s.put("moved", b"1").unwrap();
        let part = FullPart {
            held: vec!["keep".into()],
            ..FullPart::default()
        };
        let mut found = Vec::new();
        s.absent_from(&part, |k, c| found.push((k.to_string(), c)));
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["moved", "old"]);
        // "moved" changes before the end: it is not that operation any more.
        s.put("moved", b"2").unwrap();
        let learned = Collected::from_parts(
            [("node-a".to_string(), 7)],
            Version(100),
            [],
        );
        assert_eq!(s.forget(&found, &learned, &mut Vec::new()).unwrap(), 1);
        assert!(s.entry("old").is_none());
        assert_eq!(s.get("moved").unwrap(), b"2");
        assert_eq!(s.collected().get("node-a"), 7);
        s.close().unwrap();
        drop(s);
        let s = Store::open(&options).unwrap();
        assert!(s.entry("old").is_none(), "the forget record replays");
        assert_eq!(s.get("moved").unwrap(), b"2");
        assert_eq!(s.get("keep").unwrap(), b"y");
        assert_eq!(s.collected().get("node-a"), 7, "the frontier learned is durable");
        assert_eq!(s.collected().watermark, Version(100));
    }

    #[test]
    fn a_forgotten_value_is_told_to_the_observer_as_a_removal_with_its_identity() {
        struct Seen(parking_lot::Mutex<Vec<Operation>>);
        impl RemoteObserver for Seen {
            fn listening(&self) -> bool {
                true
            }
            fn applied(&self, ops: &[&Operation]) {
                self.0.lock().extend(ops.iter().map(|o| (*o).clone()));
            }
        }
        let s = Store::open(&StoreOptions::new("node-b", None, false)).unwrap();
        let seen = Arc::new(Seen(parking_lot::Mutex::new(Vec::new())));
        s.observe_remote(seen.clone());
        let old = s.put("old", b"x").unwrap();
        s.put("moved", b"1").unwrap();
        let mut found = Vec::new();
        s.absent_from(&FullPart::default(), |k, c| found.push((k.to_string(), c)));
        // "moved" changes before the end: it is not forgotten, and not told.
        s.put("moved", b"2").unwrap();
        assert!(seen.0.lock().is_empty(), "local writes are not remote changes");
        assert_eq!(s.forget(&found, &Collected::default(), &mut Vec::new()).unwrap(), 1);
        let told = seen.0.lock().clone();
        assert_eq!(told.len(), 1, "{told:?}");
        let o = &told[0];
        assert_eq!((o.key.as_str(), o.value.as_deref()), ("old", None));
        assert_eq!((o.origin.as_str(), o.origin_seq, o.version), ("node-b", old.first_seq, old.first_version));
    }

    #[test]
    fn the_collected_frontier_survives_a_compaction_and_a_reopen_without_the_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("a.wal");
        let options = StoreOptions::new("node-a", Some(wal.clone()), true);
        let s = Store::open(&options).unwrap();
        s.put("k", b"v").unwrap();
        let removal = s.remove("k").unwrap();
        s.put("other", b"v").unwrap();
        let away = ["node-b".to_string()];
        assert_eq!(s.collect_tombstones(&away, |_, _| TombstoneFate::PastHorizon), 1);
        // A compaction: the cut, the snapshot (which no longer has the tombstone), the log
        // it covers deleted.
        let cut = s.cut_log().unwrap();
        let done = s.compact_through(cut, 0, &[]).unwrap();
        assert!(done.segments_removed > 0);
        let before = s.collected();
        s.close().unwrap();
        drop(s);

        let s = Store::open(&options).unwrap();
        assert!(s.entry("k").is_none(), "the tombstone does not come back");
        assert_eq!(s.collected(), before, "the frontier never shrinks");
        assert_eq!(s.collected().get("node-a"), removal.first_seq);
        assert_eq!(s.collected().away("node-b"), Some(removal.first_version));
        let mut peer = VersionVector::new();
        peer.observe("node-a", 1, Version(1));
        assert!(s.needs_full_state(&peer), "a peer that never saw the removal still needs it");
        assert_eq!(s.tombstone_count(), 0);
        assert_eq!(s.get("other").unwrap(), b"v");
    }

    #[test]
    fn without_a_snapshot_a_collected_tombstone_comes_back_from_the_log_and_goes_again() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new("node-a", Some(dir.path().join("a.wal")), true);
        let s = Store::open(&options).unwrap();
        s.put("k", b"v").unwrap();
        s.remove("k").unwrap();
        assert_eq!(s.collect_tombstones(&[], |_, _| TombstoneFate::SeenByAll), 1);
        s.close().unwrap();
        drop(s);
        let s = Store::open(&options).unwrap();
        assert!(s.entry("k").is_some_and(|e| e.value.is_none()), "the log holds it");
        assert!(!s.contains("k"));
        assert_eq!(s.collect_tombstones(&[], |_, _| TombstoneFate::SeenByAll), 1);
        assert!(s.entry("k").is_none());
    }

    #[test]
    fn a_reversed_or_empty_range_names_nothing() {
        let s = store("node-a");
        s.put("a", b"1").unwrap();
        s.put("b", b"1").unwrap();
        for (after, through) in [("b", "a"), ("a", "a")] {
            let part = FullPart {
                after: Some(after.into()),
                through: Some(through.into()),
                ..FullPart::default()
            };
            let mut found = 0;
            s.absent_from(&part, |_, _| found += 1);
            assert_eq!(found, 0, "{after}..={through}");
        }
    }

    #[test]
    fn collected_state_round_trips_and_forged_counts_are_refused() {
        let c = Collected::from_parts(
            [("node-a".to_string(), 3), ("node-b".to_string(), 9)],
            Version(5),
            [("node-c".to_string(), Version(4))],
        );
        let mut out = Vec::new();
        c.encode(&mut out);
        let mut r = Reader::new(&out, "test");
        assert_eq!(Collected::decode(&mut r).unwrap(), c);
        assert_eq!(r.remaining(), 0);
        let forged = u32::MAX.to_le_bytes();
        let e = Collected::decode(&mut Reader::new(&forged, "test")).unwrap_err();
        assert!(e.contains("exceeds"), "{e}");
        for cut in 0..out.len() {
            assert!(Collected::decode(&mut Reader::new(&out[..cut], "test")).is_err());
        }
    }
}
