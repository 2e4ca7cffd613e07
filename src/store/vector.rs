//! Version vectors: per origin node, which of its operations this store has seen. Pure logic.
//!
//! Operations of one origin are numbered 1, 2, 3, ... (the origin sequence number). For each
//! origin the vector keeps the longest prefix seen without a gap (`contiguous`), the ranges
//! seen beyond it (operations can arrive out of order), and the greatest version seen. The
//! catch-up between two nodes sends exactly the operations the other's vector lacks.

use std::collections::BTreeMap;

use super::hlc::Version;

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
    pub fn ranges_above(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.above.iter().map(|(&s, &e)| (s, e))
    }

    fn insert_range(&mut self, start: u64, end: u64) {
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
}

impl VersionVector {
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
        progress.insert_range(seq, seq);
        progress.max_version = progress.max_version.max(version);
    }

    /// Takes in everything `other` has seen: used once this node holds the effect of all of
    /// it (after a complete catch-up from the node that sent `other`).
    pub fn merge(&mut self, other: &VersionVector) {
        for (origin, theirs) in &other.origins {
            let mine = self.origins.entry(origin.clone()).or_default();
            mine.insert_range(1, theirs.contiguous);
            for (s, e) in theirs.ranges_above() {
                mine.insert_range(s, e);
            }
            mine.max_version = mine.max_version.max(theirs.max_version);
        }
    }

    pub fn get(&self, origin: &str) -> Option<&OriginProgress> {
        self.origins.get(origin)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &OriginProgress)> {
        self.origins.iter().map(|(o, p)| (o.as_str(), p))
    }

    /// The greatest version seen from any origin other than `local`.
    pub fn max_remote_version(&self, local: &str) -> Version {
        self.origins
            .iter()
            .filter(|(o, _)| o.as_str() != local)
            .map(|(_, p)| p.max_version)
            .max()
            .unwrap_or_default()
    }

    /// Rebuilds a vector from its parts (a decoded message).
    pub fn from_parts(
        parts: impl IntoIterator<Item = (String, u64, Vec<(u64, u64)>, Version)>,
    ) -> Self {
        let mut v = VersionVector::new();
        for (origin, contiguous, ranges, max_version) in parts {
            let p = v.origins.entry(origin).or_default();
            p.insert_range(1, contiguous);
            for (s, e) in ranges {
                p.insert_range(s, e);
            }
            p.max_version = p.max_version.max(max_version);
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
}
