//! When a tombstone may go: what this node knows of each peer it syncs with (the last
//! vector received from it, and when it was last heard from), and the rule. Pure logic:
//! the caller passes the time in, and says which peers this node syncs with.
//!
//! A tombstone goes when, for every peer, either the peer's last vector contains its
//! operation (the peer has seen the removal, so holds it or something newer), or the peer
//! has not been heard from for longer than the horizon. A peer never heard from since this
//! node started counts as heard from at the start. With no peer at all, it goes at once.

use std::collections::HashMap;

use crate::store::{Store, TombstoneFate, VersionVector};

/// Bytes of a peer's vector kept (its origins in order, as far as they fit: a vector that
/// claims less keeps tombstones longer, never shorter).
pub const PEER_VECTOR_BYTES: usize = 256 * 1024;
/// Peers remembered at most; beyond, the one heard from longest ago is forgotten (it then
/// counts as heard from at the start, and its tombstones wait for its next vector or the
/// horizon).
pub const MAX_KNOWN_PEERS: usize = 1024;

/// What this node knows of one peer.
#[derive(Debug, Default)]
struct PeerView {
    /// The last vector received from it, within [`PEER_VECTOR_BYTES`].
    vector: Option<VersionVector>,
    /// When it was last heard from (the caller's clock).
    heard_ms: u64,
}

/// What this node knows of its peers, for collecting tombstones.
#[derive(Debug, Default)]
pub struct PeerKnowledge {
    peers: HashMap<String, PeerView>,
}

/// How a collection judges tombstones.
#[derive(Clone, Copy, Debug)]
pub struct CollectPolicy<'a> {
    /// The peers this node syncs with: the trusted ones and any connected one.
    pub peers: &'a [String],
    /// Now, on the clock the peers were heard by.
    pub now_ms: u64,
    /// When this node started, on that clock.
    pub started_ms: u64,
    /// A peer not heard from for longer than this is not waited for; 0 never collects.
    pub horizon_ms: u64,
}

impl PeerKnowledge {
    /// Something was received from `peer` at `now_ms`.
    pub fn heard(&mut self, peer: &str, now_ms: u64) {
        self.view(peer).heard_ms = now_ms;
    }

    /// `peer` sent its vector at `now_ms`.
    pub fn vector(&mut self, peer: &str, vector: &VersionVector, now_ms: u64) {
        let kept = vector.within_wire_budget(PEER_VECTOR_BYTES);
        let view = self.view(peer);
        view.heard_ms = now_ms;
        view.vector = Some(kept);
    }

    /// Peers remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.len()
    }

    fn view(&mut self, peer: &str) -> &mut PeerView {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_KNOWN_PEERS {
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, v)| v.heard_ms)
                .map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                self.peers.remove(&oldest);
            }
        }
        self.peers.entry(peer.to_string()).or_default()
    }

    /// What becomes of the tombstone of operation `(origin, seq)` under `policy`.
    pub fn fate(&self, origin: &str, seq: u64, policy: &CollectPolicy<'_>) -> TombstoneFate {
        let mut past_horizon = false;
        for peer in policy.peers {
            let view = self.peers.get(peer);
            if view
                .and_then(|v| v.vector.as_ref())
                .is_some_and(|v| v.contains(origin, seq))
            {
                continue;
            }
            let heard = view.map_or(policy.started_ms, |v| v.heard_ms.max(policy.started_ms));
            if policy.now_ms.saturating_sub(heard) > policy.horizon_ms {
                past_horizon = true;
                continue;
            }
            return TombstoneFate::Keep;
        }
        if past_horizon {
            TombstoneFate::PastHorizon
        } else {
            TombstoneFate::SeenByAll
        }
    }

    /// Drops the tombstones of `store` that `policy` lets go (see the module's rule);
    /// returns how many, and adds the numbers of this node's own removals that went to
    /// `own_left`. Forgets what it knew of peers `policy` does not name.
    pub fn collect(
        &mut self,
        store: &Store,
        policy: &CollectPolicy<'_>,
        own_left: &mut Vec<u64>,
    ) -> usize {
        if policy.horizon_ms == 0 {
            return 0;
        }
        self.peers.retain(|p, _| policy.peers.contains(p));
        let away: Vec<String> = policy
            .peers
            .iter()
            .filter(|p| {
                let heard = self.peers.get(*p).map_or(0, |v| v.heard_ms);
                policy.now_ms.saturating_sub(heard.max(policy.started_ms)) > policy.horizon_ms
            })
            .cloned()
            .collect();
        store.collect_tombstones_noting(
            &away,
            |origin, seq| self.fate(origin, seq, policy),
            own_left,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Version;

    fn seen(origin: &str, seq: u64) -> VersionVector {
        let mut v = VersionVector::new();
        v.observe_range(origin, 1, seq, Version(1));
        v
    }

    #[test]
    fn a_tombstone_waits_for_every_peer_unless_it_is_away_past_the_horizon() {
        let peers = vec!["b".to_string(), "c".to_string()];
        let policy = |now_ms| CollectPolicy {
            peers: &peers,
            now_ms,
            started_ms: 1_000,
            horizon_ms: 500,
        };
        let mut k = PeerKnowledge::default();
        // Neither has been heard from: both count as heard at the start.
        assert_eq!(k.fate("a", 3, &policy(1_200)), TombstoneFate::Keep);
        assert_eq!(k.fate("a", 3, &policy(1_501)), TombstoneFate::PastHorizon);
        k.vector("b", &seen("a", 5), 1_400);
        k.vector("c", &seen("a", 2), 1_400);
        assert_eq!(k.fate("a", 3, &policy(1_500)), TombstoneFate::Keep, "c has not seen #3");
        k.vector("c", &seen("a", 3), 1_600);
        assert_eq!(k.fate("a", 3, &policy(1_600)), TombstoneFate::SeenByAll);
        assert_eq!(k.fate("a", 6, &policy(1_700)), TombstoneFate::Keep);
        k.heard("b", 2_000);
        assert_eq!(
            k.fate("a", 6, &policy(2_300)),
            TombstoneFate::Keep,
            "c is silent since 1,600, but b was heard at 2,000 and has not seen #6"
        );
        k.vector("b", &seen("a", 6), 2_100);
        assert_eq!(k.fate("a", 6, &policy(2_300)), TombstoneFate::PastHorizon);
    }

    #[test]
    fn with_no_peer_a_tombstone_goes_at_once_and_a_zero_horizon_never_collects() {
        let store = Store::open(&crate::store::StoreOptions::new("a", None, false)).unwrap();
        store.remove("k").unwrap();
        let mut k = PeerKnowledge::default();
        let never = CollectPolicy {
            peers: &[],
            now_ms: 10,
            started_ms: 0,
            horizon_ms: 0,
        };
        assert_eq!(k.collect(&store, &never, &mut Vec::new()), 0);
        let at_once = CollectPolicy {
            horizon_ms: 1,
            ..never
        };
        assert_eq!(k.collect(&store, &at_once, &mut Vec::new()), 1);
        assert_eq!(store.tombstone_count(), 0);
    }

    #[test]
    fn peers_no_longer_synced_with_are_forgotten_and_the_table_is_bounded() {
        let store = Store::open(&crate::store::StoreOptions::new("a", None, false)).unwrap();
        let mut k = PeerKnowledge::default();
        for i in 0..MAX_KNOWN_PEERS + 10 {
            k.heard(&format!("p{i}"), i as u64);
        }
        assert_eq!(k.len(), MAX_KNOWN_PEERS);
        let peers = vec!["p1020".to_string()];
        k.collect(
            &store,
            &CollectPolicy {
                peers: &peers,
                now_ms: 0,
                started_ms: 0,
                horizon_ms: 1,
            },
            &mut Vec::new(),
        );
        assert_eq!(k.len(), 1);
    }
}
