//! The store's entries, each key with its state in one allocation (issue 16: memory per
//! key). A `BTreeMap<String, Entry>` cost about 225 bytes per key beyond the key and value
//! bytes (a 104-byte slot in tree nodes that sequential inserts leave about half full, and
//! two allocations); here a key costs an 8-byte slot and one allocation of the key, the
//! value and a header of a few bytes (about 50 bytes in all for 16-byte keys and 100-byte
//! values; benches/memory.rs).
//!
//! An allocation holds, in order (unsigned LEB128 varints, `version` little-endian):
//! `key length, key, total length, value tag (0: tombstone, n + 1: a value of n bytes),
//! version (8 bytes), origin (index into the origin table), origin sequence number,
//! base (0: none, i + 1: origin i), base sequence number (only with a base), value`.
//! Origins are interned: a million entries share a handful of strings.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{Entry, Op, Operation, Version};

/// One entry's bytes, owned through a thin pointer (8 bytes in the tree's nodes, where a
/// `Box<[u8]>` would take 16): the length follows the key, which comes first so that the
/// tree's comparisons read one varint and the key.
struct Packed(NonNull<u8>);

// SAFETY: `Packed` owns its allocation alone (like a `Box<[u8]>`) and never changes it
// after creation: moving it to, or reading it from, another thread is safe.
unsafe impl Send for Packed {}
// SAFETY: as above; `&Packed` only reads immutable bytes.
unsafe impl Sync for Packed {}

impl Packed {
    /// Takes `bytes`: the key's length and the key, then the whole length (see the module).
    fn new(bytes: Vec<u8>) -> Packed {
        // What `bytes()` and `key()` will read without bounds checks, checked once here.
        let mut at = 0;
        let key_len = read_varint(&bytes, &mut at) as usize;
        at += key_len;
        assert_eq!(
            read_varint(&bytes, &mut at),
            bytes.len() as u64,
            "a packed entry holds its own length after its key"
        );
        let raw = Box::into_raw(bytes.into_boxed_slice());
        // A boxed slice is never null (an empty one is dangling, not null; ours hold at
        // least their lengths).
        Packed(NonNull::new(raw.cast::<u8>()).expect("a box is not null"))
    }

    /// Reads the varint at `at`: each byte read is part of it, so within the allocation
    /// (written whole by `new`, which checked it).
    fn varint_at(&self, at: &mut usize) -> u64 {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            // SAFETY: `at` stays within a varint that `new` checked lies in the allocation.
            let byte = unsafe { *self.0.as_ptr().add(*at) };
            *at += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }

    /// The key's bytes (the allocation's start: comparisons in the tree read only this).
    fn key(&self) -> &[u8] {
        let mut at = 0;
        let len = self.varint_at(&mut at) as usize;
        // SAFETY: the key's `len` bytes follow its length in the allocation (checked by
        // `new`), initialised and immutable for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(at), len) }
    }

    fn bytes(&self) -> &[u8] {
        let mut at = 0;
        at += self.varint_at(&mut at) as usize;
        let len = self.varint_at(&mut at) as usize;
        // SAFETY: the allocation holds exactly `len` bytes (checked by `new`), initialised
        // and immutable for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), len) }
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        let len = self.bytes().len();
        let slice = std::ptr::slice_from_raw_parts_mut(self.0.as_ptr(), len);
        // SAFETY: the pointer and length are those of the boxed slice `new` leaked, freed
        // once here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

impl Borrow<[u8]> for Packed {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

// Ordered, and equal, by key alone (as `Borrow` requires: the same order as `[u8]`'s, which
// is `str`'s).
impl PartialEq for Packed {
    fn eq(&self, other: &Packed) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Packed {}

impl PartialOrd for Packed {
    fn partial_cmp(&self, other: &Packed) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Packed {
    fn cmp(&self, other: &Packed) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint written by `write_varint` (the bytes are ours, never from outside).
fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut n: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return n;
        }
        shift += 7;
    }
}

fn varint_len(n: u64) -> usize {
    (64 - n.max(1).leading_zeros() as usize).div_ceil(7)
}

/// A key's state as stored, borrowed from the store's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// `None` for a tombstone (the key was removed).
    pub value: Option<&'a [u8]>,
    /// The version of the change that made it.
    pub version: Version,
    /// Node id of the node that made this change.
    pub origin: &'a Arc<str>,
    /// That node's number for this change.
    pub origin_seq: u64,
    /// The entry this change overwrote, as (origin, origin sequence number).
    pub base: Option<(&'a Arc<str>, u64)>,
}

/// The entry [`Entries::insert_if_newer`] replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Replaced {
    /// It held a value (it was not a tombstone).
    pub live: bool,
    /// Its operation's number, when the node asked about wrote it.
    pub own_seq: Option<u64>,
}

impl EntryRef<'_> {
    pub(super) fn wins_over(self, version: Version, origin: &str) -> bool {
        (self.version, &**self.origin) >= (version, origin)
    }

    /// This entry, owned.
    pub fn to_entry(self) -> Entry {
        Entry {
            value: self.value.map(<[u8]>::to_vec),
            version: self.version,
            origin: self.origin.clone(),
            origin_seq: self.origin_seq,
            base: self.base.map(|(o, s)| (o.clone(), s)),
        }
    }

    /// This entry as an operation that recreates it.
    pub fn to_operation(self, key: &str) -> Operation {
        Operation {
            key: key.to_string(),
            value: self.value.map(<[u8]>::to_vec),
            version: self.version,
            origin: self.origin.to_string(),
            origin_seq: self.origin_seq,
            base: self.base.map(|(o, s)| (o.to_string(), s)),
        }
    }
}

/// The store's entries, tombstones included, in key order.
#[derive(Default)]
pub(super) struct Entries {
    set: BTreeSet<Packed>,
    /// Interned origin ids (of entries and of their bases), by index.
    origins: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    /// The origin interned last: replayed records mostly come from one node.
    last_origin: Option<u32>,
}

impl Entries {
    /// How many entries, tombstones included.
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    fn intern(&mut self, origin: &str) -> u32 {
        if let Some(last) = self.last_origin
            && *self.origins[last as usize] == *origin
        {
            return last;
        }
        let i = match self.index.get(origin) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.origins.len()).expect("fewer than 2^32 origins");
                let o: Arc<str> = Arc::from(origin);
                self.origins.push(o.clone());
                self.index.insert(o, i);
                i
            }
        };
        self.last_origin = Some(i);
        i
    }

    fn view<'a>(&'a self, packed: &'a Packed) -> (&'a str, EntryRef<'a>) {
        let bytes = packed.bytes();
        let mut at = 0;
        let key_len = read_varint(bytes, &mut at) as usize;
        // Keys are checked to be UTF-8 before they are stored.
        let key = std::str::from_utf8(&bytes[at..at + key_len]).unwrap_or_default();
        at += key_len;
        read_varint(bytes, &mut at);
        let value_tag = read_varint(bytes, &mut at);
        let version = Version(u64::from_le_bytes(
            bytes[at..at + 8].try_into().expect("8 bytes"),
        ));
        at += 8;
        let origin = &self.origins[read_varint(bytes, &mut at) as usize];
        let origin_seq = read_varint(bytes, &mut at);
        let base = match read_varint(bytes, &mut at) {
            0 => None,
            i => Some((&self.origins[i as usize - 1], read_varint(bytes, &mut at))),
        };
        let value = match value_tag {
            0 => None,
            n => Some(&bytes[at..at + (n - 1) as usize]),
        };
        let entry = EntryRef {
            value,
            version,
            origin,
            origin_seq,
            base,
        };
        (key, entry)
    }

    /// `key`'s entry.
    pub(super) fn get(&self, key: &str) -> Option<EntryRef<'_>> {
        self.set.get(key.as_bytes()).map(|p| self.view(p).1)
    }

    /// Sets `op.key`'s entry to `op`; returns whether there was one before, and whether it
    /// was live.
    #[cfg(test)]
    fn insert(&mut self, op: &Op<'_>) -> Option<bool> {
        let packed = self.pack(op);
        self.set
            .replace(packed)
            .map(|old| self.view(&old).1.value.is_some())
    }

    /// Sets `op.key`'s entry to `op` unless the entry there wins over it (last writer wins:
    /// the greater version, then the greater origin). `None`: not set; else the entry it
    /// replaced, if there was one. One walk of the tree when it is set (a local write always
    /// is), two when it is not. With `own` (a node id), the replaced entry says whether that
    /// node wrote it.
    pub(super) fn insert_if_newer(
        &mut self,
        op: &Op<'_>,
        own: Option<&str>,
    ) -> Option<Option<Replaced>> {
        let packed = self.pack(op);
        let Some(old) = self.set.replace(packed) else {
            return Some(None);
        };
        let (_, before) = self.view(&old);
        if before.wins_over(op.version, op.origin) {
            self.set.replace(old);
            return None;
        }
        let own_seq = own
            .is_some_and(|own| **before.origin == *own)
            .then_some(before.origin_seq);
        Some(Some(Replaced {
            live: before.value.is_some(),
            own_seq,
        }))
    }

    fn pack(&mut self, op: &Op<'_>) -> Packed {
        let Op {
            key,
            value,
            version,
            origin,
            origin_seq,
            base,
        } = *op;
        let origin = u64::from(self.intern(origin));
        let base = base.map(|(o, s)| (u64::from(self.intern(o)) + 1, s));
        let value_tag = value.map_or(0, |v| v.len() as u64 + 1);
        let body_len = varint_len(key.len() as u64)
            + key.len()
            + varint_len(value_tag)
            + 8
            + varint_len(origin)
            + varint_len(origin_seq)
            + base.map_or(1, |(o, s)| varint_len(o) + varint_len(s))
            + value.map_or(0, <[u8]>::len);
        // The total counts its own varint.
        let mut total = body_len + 1;
        while varint_len(total as u64) + body_len != total {
            total = varint_len(total as u64) + body_len;
        }
        let mut bytes = Vec::with_capacity(total);
        write_varint(&mut bytes, key.len() as u64);
        bytes.extend_from_slice(key.as_bytes());
        write_varint(&mut bytes, total as u64);
        write_varint(&mut bytes, value_tag);
        bytes.extend_from_slice(&version.0.to_le_bytes());
        write_varint(&mut bytes, origin);
        write_varint(&mut bytes, origin_seq);
        match base {
            None => write_varint(&mut bytes, 0),
            Some((o, s)) => {
                write_varint(&mut bytes, o);
                write_varint(&mut bytes, s);
            }
        }
        bytes.extend_from_slice(value.unwrap_or_default());
        debug_assert_eq!(bytes.len(), total);
        Packed::new(bytes)
    }

    /// Removes `key`'s entry; returns whether there was one, and whether it was live.
    pub(super) fn remove(&mut self, key: &str) -> Option<bool> {
        let old = self.set.take(key.as_bytes())?;
        Some(self.view(&old).1.value.is_some())
    }

    /// The entries within the bounds, in key order.
    pub(super) fn range<'a>(
        &'a self,
        (lower, upper): (Bound<&str>, Bound<&str>),
    ) -> impl Iterator<Item = (&'a str, EntryRef<'a>)> + 'a {
        fn bytes(b: Bound<&str>) -> Bound<&[u8]> {
            b.map(str::as_bytes)
        }
        // An empty range where `BTreeSet::range` would panic (lower above upper).
        let empty = match (lower, upper) {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
                l > u || (l == u && !matches!((lower, upper), (Bound::Included(_), Bound::Included(_))))
            }
            _ => false,
        };
        let range = if empty {
            self.set.range::<[u8], _>((Bound::Unbounded, Bound::Excluded(&[][..])))
        } else {
            self.set.range::<[u8], _>((bytes(lower), bytes(upper)))
        };
        range.map(|p| self.view(p))
    }

    /// Every entry, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, EntryRef<'_>)> {
        self.set.iter().map(|p| self.view(p))
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<'a>(
        key: &'a str,
        value: Option<&'a [u8]>,
        version: u64,
        origin: &'a str,
        origin_seq: u64,
        base: Option<(&'a str, u64)>,
    ) -> Op<'a> {
        Op {
            key,
            value,
            version: Version(version),
            origin,
            origin_seq,
            base,
        }
    }

    #[test]
    fn an_entry_reads_back_as_it_was_set_whatever_the_sizes_of_its_parts() {
        let mut entries = Entries::default();
        let long_key = "k".repeat(300);
        // (key, value, version, origin, origin sequence number, base)
        type Case<'a> = (&'a str, Option<Vec<u8>>, u64, &'a str, u64, Option<(&'a str, u64)>);
        let cases: Vec<Case<'_>> = vec![
            ("", Some(vec![]), 0, "a", 0, None),
            ("a", None, u64::MAX, "node-1", u64::MAX, Some(("node-2", u64::MAX))),
            (&long_key, Some(vec![7; 200]), 1 << 60, "node-1", 127, Some(("node-1", 128))),
            ("big", Some(vec![1; 70_000]), 5, "x", 1 << 14, None),
        ];
        for (key, value, version, origin, seq, base) in &cases {
            entries.insert(&op(key, value.as_deref(), *version, origin, *seq, *base));
        }
        for (key, value, version, origin, seq, base) in &cases {
            let e = entries.get(key).unwrap();
            assert_eq!(e.value, value.as_deref(), "{key}");
            assert_eq!(
                (e.version, &**e.origin, e.origin_seq),
                (Version(*version), *origin, *seq)
            );
            assert_eq!(e.base.map(|(o, s)| (&**o, s)), *base);
        }
        assert_eq!(entries.len(), 4);
        assert!(entries.get("missing").is_none());
    }

    #[test]
    fn the_total_length_counts_its_own_bytes_at_every_varint_boundary() {
        let mut entries = Entries::default();
        // Totals around 127/128 and 16383/16384 bytes.
        for len in (100..140).chain(16_350..16_400) {
            let key = format!("k{len}");
            entries.insert(&op(&key, Some(&vec![3; len]), 1, "o", 1, None));
            assert_eq!(entries.get(&key).unwrap().value.unwrap().len(), len);
        }
    }

    #[test]
    fn replacing_and_removing_say_whether_the_key_was_there_and_live() {
        let mut entries = Entries::default();
        assert_eq!(entries.insert(&op("k", Some(b"v"), 1, "o", 1, None)), None);
        assert_eq!(entries.insert(&op("k", None, 2, "o", 2, Some(("o", 1)))), Some(true));
        assert_eq!(entries.insert(&op("k", Some(b"w"), 3, "o", 3, None)), Some(false));
        assert_eq!(entries.get("k").unwrap().value, Some(&b"w"[..]));
        assert_eq!(entries.remove("k"), Some(true));
        assert_eq!(entries.remove("k"), None);
        assert_eq!(entries.len(), 0);
    }

    #[test]
    fn only_a_newer_entry_replaces_the_one_there_and_a_refused_one_leaves_it_intact() {
        let mut entries = Entries::default();
        let put = |e: &mut Entries, v: &[u8], version, origin| {
            e.insert_if_newer(&op("k", Some(v), version, origin, version, None), Some("b"))
        };
        assert_eq!(put(&mut entries, b"first", 10, "b"), Some(None));
        assert_eq!(put(&mut entries, b"older", 9, "z"), None);
        assert_eq!(put(&mut entries, b"same", 10, "b"), None, "applying twice changes nothing");
        assert_eq!(put(&mut entries, b"lower origin", 10, "a"), None);
        let e = entries.get("k").unwrap();
        assert_eq!((e.value, e.version, &**e.origin), (Some(&b"first"[..]), Version(10), "b"));
        // It replaces a live entry of "b" (the node asked about), operation number 10.
        let replaced = Replaced {
            live: true,
            own_seq: Some(10),
        };
        assert_eq!(put(&mut entries, b"higher origin", 10, "c"), Some(Some(replaced)));
        assert_eq!(entries.get("k").unwrap().value, Some(&b"higher origin"[..]));
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn ranges_follow_string_order_and_an_inverted_range_is_empty() {
        let mut entries = Entries::default();
        for k in ["b", "a", "ab", "é", "c"] {
            entries.insert(&op(k, Some(k.as_bytes()), 1, "o", 1, None));
        }
        let keys = |lower, upper| -> Vec<&str> {
            entries.range((lower, upper)).map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(keys(Bound::Unbounded, Bound::Unbounded), ["a", "ab", "b", "c", "é"]);
        assert_eq!(keys(Bound::Excluded("a"), Bound::Included("c")), ["ab", "b", "c"]);
        assert_eq!(keys(Bound::Included("c"), Bound::Excluded("b")), Vec::<&str>::new());
        assert_eq!(keys(Bound::Excluded("b"), Bound::Excluded("b")), Vec::<&str>::new());
        assert_eq!(keys(Bound::Included("b"), Bound::Included("b")), ["b"]);
    }
}
