//! Version vectors: per origin node, which of its operations this store has seen. Pure logic.
//!
//! Operations of one origin are numbered 1, 2, 3, ... (the origin sequence number). For each
//! origin the vector keeps the longest prefix seen without a gap (`contiguous`), the ranges
//! seen beyond it (operations can arrive out of order), and the greatest version seen. The
//! catch-up between two nodes sends exactly the operations the other's vector lacks.

use std::collections::BTreeMap;

use super::hlc::Version;

/// Most origins a vector takes from other nodes: operations of further origins are refused,
/// so that forged origins cannot grow the vector (and every message carrying it) without
/// bound. A vector read back from the log may hold more.
pub const MAX_ORIGINS: usize = 4096;

/// Of [`MAX_ORIGINS`], how many origins may arrive second-hand (relayed, or in a
/// catch-up): the rest is kept for nodes that send their own operations first-hand, so
/// that forged origins relayed by some node cannot keep real peers out.
pub const MAX_RELAYED_ORIGINS: usize = MAX_ORIGINS / 4 * 3;

/// Most ranges beyond the contiguous prefixes, over all origins, that remote input may
/// create: an operation that would open a new gap beyond it is refused until the gaps
/// close (it comes again by retry or catch-up).
pub const MAX_RANGES: usize = 65_536;

/// Bytes of one origin in an encoded vector, without its id and ranges.
const ORIGIN_WIRE_BYTES: usize = 4 + 8 + 8 + 4;
/// Bytes of one range in an encoded vector.
const RANGE_WIRE_BYTES: usize = 16;

/// Sorted, merged inclusive ranges of sequence numbers (empty ones dropped).
pub fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|&(f, l)| f <= l);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (f, l) in ranges {
        match out.last_mut() {
            Some((_, last)) if last.saturating_add(1) >= f => *last = (*last).max(l),
            _ => out.push((f, l)),
        }
    }
    out
}

/// Operations `first..=last` of one origin that their origin reports superseded (a newer
/// operation carries their keys' state): sent by number only, recorded as seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superseded {
    /// The first operation number of the range.
    pub first: u64,
    /// The last operation number of the range (inclusive).
    pub last: u64,
    /// The greatest version among them.
    pub version: Version,
}

impl Superseded {
    /// How many operations the range holds (saturating: the numbers may come from the
    /// network); a range ending before it starts holds none.
    pub fn count(&self) -> u64 {
        if self.last < self.first {
            return 0;
        }
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

/// What has been seen of one origin's operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginProgress {
    /// Every sequence number in `1..=contiguous` has been seen.
    pub contiguous: u64,
    /// Disjoint ranges `start..=end` seen beyond `contiguous + 1`, keyed by start.
    above: BTreeMap<u64, u64>,
    /// The greatest version seen from this origin.
    pub max_version: Version,
}

impl OriginProgress {
    /// Whether operation `seq` of this origin has been seen.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.contiguous
            || self
                .above
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, &end)| seq <= end)
    }

    /// The greatest sequence number seen.
    pub fn max_seq(&self) -> u64 {
        self.above
            .values()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.contiguous)
    }

    /// The ranges seen beyond the contiguous prefix.
    pub(crate) fn ranges_above(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.above.iter().map(|(&s, &e)| (s, e))
    }

    /// Whether seeing `seq` would open a new range (it neither is seen nor touches the
    /// prefix or a range).
    pub(crate) fn opens_range(&self, seq: u64) -> bool {
        if seq <= self.contiguous.saturating_add(1) || self.contains(seq) {
            return false;
        }
        let touches_below = self
            .above
            .range(..seq)
            .next_back()
            .is_some_and(|(_, &end)| end.saturating_add(1) == seq);
        let touches_above = self.above.contains_key(&seq.saturating_add(1));
        !(touches_below || touches_above)
    }

    /// Whether seeing all of `first..=last`, none of which is seen yet, would open a new
    /// range (it touches neither the prefix nor a range).
    pub(crate) fn opens_range_span(&self, first: u64, last: u64) -> bool {
        if first <= self.contiguous.saturating_add(1) {
            return false;
        }
        let touches_below = self
            .above
            .range(..first)
            .next_back()
            .is_some_and(|(_, &end)| end.saturating_add(1) == first);
        let touches_above = last
            .checked_add(1)
            .is_some_and(|next| self.above.contains_key(&next));
        !(touches_below || touches_above)
    }

    /// The parts of `first..=last` not seen yet, in order. Visits only the ranges within.
    pub(crate) fn unseen_within(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let Some(mut at) = self.contiguous.checked_add(1).map(|c| c.max(first)) else {
            return gaps; // every number is seen
        };
        if at > last {
            return gaps;
        }
        let from = self
            .above
            .range(..=at)
            .next_back()
            .map_or(at, |(&s, _)| s);
        for (&s, &e) in self.above.range(from..=last) {
            if e < at {
                continue;
            }
            if s > at {
                gaps.push((at, s - 1));
            }
            match e.checked_add(1) {
                Some(next) if next <= last => at = next,
                _ => return gaps,
            }
        }
        gaps.push((at, last));
        gaps
    }

    /// Adds `start..=end` and returns how the number of ranges changed.
    fn insert_range(&mut self, start: u64, end: u64) -> isize {
        let before = self.above.len() as isize;
        self.insert_range_inner(start, end);
        self.above.len() as isize - before
    }

    fn insert_range_inner(&mut self, start: u64, end: u64) {
        if end <= self.contiguous || start > end {
            return;
        }
        let mut start = start.max(self.contiguous + 1);
        let mut end = end;
        let touching: Vec<(u64, u64)> = self
            .above
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|&(_, &e)| e.saturating_add(1) >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.above.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        if start == self.contiguous + 1 {
            self.contiguous = end;
        } else {
            self.above.insert(start, end);
        }
    }
}

/// Per-origin progress for every origin seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector {
    origins: BTreeMap<String, OriginProgress>,
    /// Ranges beyond the contiguous prefixes, over all origins.
    ranges: usize,
}

impl VersionVector {
    /// An empty vector: nothing seen of any origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether operation `seq` of `origin` has been seen.
    pub fn contains(&self, origin: &str, seq: u64) -> bool {
        self.origins.get(origin).is_some_and(|p| p.contains(seq))
    }

    /// Records operation `seq` of `origin`, with its version.
    pub fn observe(&mut self, origin: &str, seq: u64, version: Version) {
        if seq == 0 {
            return;
        }
        let progress = match self.origins.get_mut(origin) {
            Some(p) => p,
            None => self.origins.entry(origin.to_string()).or_default(),
        };
        let delta = progress.insert_range(seq, seq);
        progress.max_version = progress.max_version.max(version);
        self.ranges = self.ranges.saturating_add_signed(delta);
    }

    /// Records operations `first..=last` of `origin`, the greatest of them stamped
    /// `version`.
    pub fn observe_range(&mut self, origin: &str, first: u64, last: u64, version: Version) {
        let first = first.max(1);
        if first > last {
            return;
        }
        let progress = match self.origins.get_mut(origin) {
            Some(p) => p,
            None => self.origins.entry(origin.to_string()).or_default(),
        };
        let delta = progress.insert_range(first, last);
        progress.max_version = progress.max_version.max(version);
        self.ranges = self.ranges.saturating_add_signed(delta);
    }

    /// Takes in everything `other` has seen: used once this node holds the effect of all of
    /// it (its own snapshot; after a complete catch-up from the node that sent `other`, in
    /// tests and tools that trust it; the network uses [`VersionVector::merge_seen`]).
    pub(crate) fn merge(&mut self, other: &VersionVector) {
        for (origin, theirs) in &other.origins {
            let mine = self.origins.entry(origin.clone()).or_default();
            let mut delta = mine.insert_range(1, theirs.contiguous);
            for (s, e) in theirs.ranges_above() {
                delta += mine.insert_range(s, e);
            }
            mine.max_version = mine.max_version.max(theirs.max_version);
            self.ranges = self.ranges.saturating_add_signed(delta);
        }
    }

    /// Takes in a peer's claim, but only up to what this vector has itself seen: for each
    /// origin already known (other than `skip`, this node's own), the claimed sequence
    /// numbers up to the greatest one seen here; versions are not taken. Numbers below
    /// the greatest seen that are still missing here are operations the peer saw superseded
    /// (it sent their keys' newer state), so they are recorded as seen; a claim beyond what
    /// arrived cannot silence operations that are still to come. Stops adding gaps at
    /// `MAX_RANGES` (claiming less is always safe).
    pub fn merge_seen(&mut self, other: &VersionVector, skip: &str) {
        for (origin, theirs) in &other.origins {
            if origin == skip {
                continue;
            }
            let Some(mine) = self.origins.get_mut(origin) else {
                continue;
            };
            let cap = mine.max_seq();
            let claimed = std::iter::once((1, theirs.contiguous)).chain(theirs.ranges_above());
            let mut delta = 0isize;
            for (s, e) in claimed {
                if s > cap {
                    break;
                }
                let room = self.ranges.saturating_add_signed(delta) < MAX_RANGES;
                if room || !mine.opens_range(s) {
                    delta += mine.insert_range(s, e.min(cap));
                }
            }
            self.ranges = self.ranges.saturating_add_signed(delta);
        }
    }

    /// Number of origins.
    pub fn origin_count(&self) -> usize {
        self.origins.len()
    }

    /// Ranges beyond the contiguous prefixes, over all origins.
    pub fn range_count(&self) -> usize {
        self.ranges
    }

    /// This vector, or as much of it as fits in `max_bytes` once encoded: origins and
    /// ranges beyond the budget are left out. A vector that claims less than was seen is
    /// always safe to send (the peer sends a little more, or merges a little less), so
    /// vector exchange works whatever the size of the vector stored.
    pub(crate) fn within_wire_budget(&self, max_bytes: usize) -> VersionVector {
        let mut used = 4;
        let mut out = VersionVector::new();
        for (origin, p) in &self.origins {
            let base = ORIGIN_WIRE_BYTES + origin.len();
            if used + base > max_bytes {
                break;
            }
            used += base;
            let mut kept = OriginProgress {
                contiguous: p.contiguous,
                above: BTreeMap::new(),
                max_version: p.max_version,
            };
            for (s, e) in p.ranges_above() {
                if used + RANGE_WIRE_BYTES > max_bytes {
                    break;
                }
                used += RANGE_WIRE_BYTES;
                kept.above.insert(s, e);
            }
            out.ranges += kept.above.len();
            out.origins.insert(origin.clone(), kept);
        }
        out
    }

    /// Bytes of this vector once encoded in a message.
    pub fn wire_len(&self) -> usize {
        4 + self
            .origins
            .iter()
            .map(|(o, p)| ORIGIN_WIRE_BYTES + o.len() + RANGE_WIRE_BYTES * p.above.len())
            .sum::<usize>()
    }

    /// What has been seen of `origin`'s operations; `None` for an origin never seen.
    pub fn get(&self, origin: &str) -> Option<&OriginProgress> {
        self.origins.get(origin)
    }

    /// Every origin seen, with its progress, in node-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OriginProgress)> {
        self.origins.iter().map(|(o, p)| (o.as_str(), p))
    }

    /// The greatest version seen from any origin other than `local`.
    pub(crate) fn max_remote_version(&self, local: &str) -> Version {
        self.origins
            .iter()
            .filter(|(o, _)| o.as_str() != local)
            .map(|(_, p)| p.max_version)
            .max()
            .unwrap_or_default()
    }

    /// Appends the vector's encoding, the same on the wire (docs/protocol.md) and in a
    /// snapshot: u32 origin count; per origin: u32 id length and the id, u64 contiguous
    /// prefix, u64 greatest version, u32 range count, then per range u64 start, u64 end.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let put_u32 = |out: &mut Vec<u8>, n: usize| {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        };
        put_u32(out, self.origins.len());
        for (origin, p) in &self.origins {
            put_u32(out, origin.len());
            out.extend_from_slice(origin.as_bytes());
            out.extend_from_slice(&p.contiguous.to_le_bytes());
            out.extend_from_slice(&p.max_version.0.to_le_bytes());
            put_u32(out, p.above.len());
            for (s, e) in p.ranges_above() {
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&e.to_le_bytes());
            }
        }
    }

    /// Reads what [`VersionVector::encode`] wrote. Counts are checked against the bytes
    /// left, so a forged count cannot make it allocate.
    pub(crate) fn decode(r: &mut crate::codec::Reader<'_>) -> Result<VersionVector, String> {
        fn count(r: &mut crate::codec::Reader<'_>, what: &str, min: usize) -> Result<usize, String> {
            let n = r.u32(what)? as usize;
            if n.saturating_mul(min) > r.remaining() {
                return Err(format!("{what} {n} exceeds the data"));
            }
            Ok(n)
        }
        let n = count(r, "origin count", 24)?;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u32("origin")? as usize;
            let origin = r.str(len, "origin")?.to_string();
            let contiguous = r.u64("contiguous")?;
            let max_version = Version(r.u64("max version")?);
            let ranges_n = count(r, "range count", 16)?;
            let mut ranges = Vec::with_capacity(ranges_n);
            for _ in 0..ranges_n {
                let (s, e) = (r.u64("range start")?, r.u64("range end")?);
                if s > e {
                    return Err(format!("range {s}..{e} is reversed"));
                }
                ranges.push((s, e));
            }
            parts.push((origin, contiguous, ranges, max_version));
        }
        Ok(VersionVector::from_parts(parts))
    }

    /// Rebuilds a vector from its parts (a decoded message).
    pub fn from_parts(
        parts: impl IntoIterator<Item = (String, u64, Vec<(u64, u64)>, Version)>,
    ) -> Self {
        let mut v = VersionVector::new();
        for (origin, contiguous, ranges, max_version) in parts {
            let p = v.origins.entry(origin).or_default();
            let mut delta = p.insert_range(1, contiguous);
            for (s, e) in ranges {
                delta += p.insert_range(s, e);
            }
            p.max_version = p.max_version.max(max_version);
            v.ranges = v.ranges.saturating_add_signed(delta);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_operations_extend_the_contiguous_prefix() {
        let mut v = VersionVector::new();
        for seq in 1..=5 {
            v.observe("a", seq, Version(seq * 10));
        }
        let p = v.get("a").unwrap();
        assert_eq!(
            (p.contiguous, p.max_seq(), p.max_version),
            (5, 5, Version(50))
        );
        assert!(v.contains("a", 5) && !v.contains("a", 6) && !v.contains("b", 1));
    }

    #[test]
    fn gaps_are_remembered_and_closed_when_filled() {
        let mut v = VersionVector::new();
        for seq in [1, 2, 5, 6, 9, 4] {
            v.observe("a", seq, Version(seq));
        }
        let p = v.get("a").unwrap();
        assert_eq!(p.contiguous, 2);
        assert_eq!(p.ranges_above().collect::<Vec<_>>(), vec![(4, 6), (9, 9)]);
        assert!(!v.contains("a", 3) && v.contains("a", 5) && !v.contains("a", 7));
        v.observe("a", 3, Version(3));
        assert_eq!(v.get("a").unwrap().contiguous, 6);
        v.observe("a", 8, Version(8));
        v.observe("a", 7, Version(7));
        assert_eq!(v.get("a").unwrap().contiguous, 9);
        assert_eq!(v.get("a").unwrap().ranges_above().count(), 0);
    }

    #[test]
    fn merge_is_a_union() {
        let mut a = VersionVector::new();
        let mut b = VersionVector::new();
        for seq in [1, 2, 3, 7] {
            a.observe("x", seq, Version(seq));
        }
        for seq in [1, 2, 3, 4, 5] {
            b.observe("x", seq, Version(seq));
        }
        b.observe("y", 1, Version(100));
        a.merge(&b);
        assert_eq!(a.get("x").unwrap().contiguous, 5);
        assert!(a.contains("x", 7) && !a.contains("x", 6));
        assert_eq!(a.max_remote_version("x"), Version(100));
    }

    #[test]
    fn from_parts_round_trips() {
        let mut a = VersionVector::new();
        for seq in [1, 2, 5, 9] {
            a.observe("x", seq, Version(seq));
        }
        let parts: Vec<_> = a
            .iter()
            .map(|(o, p)| {
                (
                    o.to_string(),
                    p.contiguous,
                    p.ranges_above().collect(),
                    p.max_version,
                )
            })
            .collect();
        assert_eq!(VersionVector::from_parts(parts), a);
    }

    #[test]
    fn a_claim_is_merged_only_up_to_what_was_seen_here() {
        let mut mine = VersionVector::new();
        for seq in [1, 2, 10] {
            mine.observe("a", seq, Version(seq));
        }
        mine.observe("me", 3, Version(3));
        let mut claim = VersionVector::new();
        claim.observe("a", 1, Version(1));
        claim.merge(&VersionVector::from_parts([
            ("a".to_string(), 1_000_000_000, vec![], Version(u64::MAX)),
            ("me".to_string(), 1_000_000_000, vec![], Version(u64::MAX)),
            ("stranger".to_string(), 5, vec![], Version(5)),
        ]));
        mine.merge_seen(&claim, "me");
        let a = mine.get("a").unwrap();
        assert_eq!(
            (a.contiguous, a.max_seq()),
            (10, 10),
            "gaps below 10 filled, no further"
        );
        assert_eq!(
            a.max_version,
            Version(10),
            "versions are not taken from a claim"
        );
        assert!(!mine.contains("a", 11));
        assert_eq!(mine.get("me").unwrap().max_seq(), 3, "own origin untouched");
        assert!(
            mine.get("stranger").is_none(),
            "unknown origins are not taken"
        );
    }

    #[test]
    fn opening_a_range_is_told_apart_from_extending_one() {
        let mut v = VersionVector::new();
        for seq in [1, 2, 5, 6] {
            v.observe("a", seq, Version(seq));
        }
        let p = v.get("a").unwrap();
        assert!(!p.opens_range(3) && !p.opens_range(4) && !p.opens_range(7));
        assert!(p.opens_range(9) && !p.opens_range(5));
        assert_eq!(v.range_count(), 1);
        v.observe("a", 9, Version(9));
        v.observe("b", 4, Version(9));
        assert_eq!(v.range_count(), 3);
        v.observe("a", 3, Version(3));
        v.observe("a", 4, Version(4));
        assert_eq!(v.range_count(), 2);
    }

    #[test]
    fn a_vector_too_large_for_the_wire_is_sent_in_part() {
        let mut v = VersionVector::new();
        for o in 0..100 {
            for seq in (1..=40).step_by(2) {
                v.observe(&format!("origin-{o:03}"), seq, Version(seq));
            }
        }
        assert!(v.wire_len() > 10_000);
        let part = v.within_wire_budget(10_000);
        assert!(part.wire_len() <= 10_000 && part.origin_count() > 0);
        for (origin, p) in part.iter() {
            for seq in 1..=40 {
                if p.contains(seq) {
                    assert!(v.contains(origin, seq), "a part never claims more");
                }
            }
        }
        assert_eq!(v.within_wire_budget(usize::MAX), v);
    }
}
