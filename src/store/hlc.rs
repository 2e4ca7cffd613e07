//! Hybrid logical clock: versions that follow wall-clock milliseconds but never go
//! backwards, even when the wall clock does or the process restarts (the store feeds every
//! replayed version back in with [`HybridClock::observe`]).

/// A version: milliseconds since the Unix epoch in the high 48 bits, a counter in the low 16.
/// Comparing two versions as integers orders them in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    const COUNTER_BITS: u32 = 16;

    /// The wall-clock part, in milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }

    /// The logical counter within one millisecond.
    pub fn counter(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// The greatest millisecond a version can hold.
    pub const MAX_MILLIS: u64 = u64::MAX >> Self::COUNTER_BITS;

    /// The first version of millisecond `ms` (`ms` is capped at [`Version::MAX_MILLIS`]).
    pub fn from_millis(ms: u64) -> Version {
        Version(ms.min(Self::MAX_MILLIS) << Self::COUNTER_BITS)
    }

    /// The last version of millisecond `ms` (`ms` is capped at [`Version::MAX_MILLIS`]).
    pub fn last_of_millis(ms: u64) -> Version {
        Version(Self::from_millis(ms).0 | 0xffff)
    }

    /// The version after this one, or `None` at the end of the version space.
    pub fn next(self) -> Option<Version> {
        self.0.checked_add(1).map(Version)
    }
}

/// Issues strictly increasing versions. Pure: the caller passes the current time in.
#[derive(Clone, Debug, Default)]
pub struct HybridClock {
    last: Version,
}

impl HybridClock {
    /// A new version, greater than every version issued or observed so far. When more than
    /// 65,536 versions are needed within one millisecond the counter carries into the
    /// millisecond part, which stays correct (only ordering matters). `None` when the
    /// version space is used up (nothing changes then).
    #[cfg(any(test, feature = "internals"))]
    pub fn tick(&mut self, now_ms: u64) -> Option<Version> {
        self.tick_n(now_ms, 1, Version::default())
    }

    /// The first of `n` consecutive new versions (`n` >= 1), all greater than `floor` too,
    /// as one atomic step. `None` (and nothing changes) when they would not fit in the
    /// version space.
    pub fn tick_n(&mut self, now_ms: u64, n: u64, floor: Version) -> Option<Version> {
        let first = Version::from_millis(now_ms)
            .max(self.last.next()?)
            .max(floor.next()?);
        let last = first.0.checked_add(n.checked_sub(1)?)?;
        self.last = Version(last);
        Some(first)
    }

    /// Takes a version seen elsewhere (a replayed record, a remote operation) into account.
    pub fn observe(&mut self, seen: Version) {
        self.last = self.last.max(seen);
    }

    /// The greatest version issued or observed.
    pub fn last(&self) -> Version {
        self.last
    }
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_wall_clock() {
        let mut c = HybridClock::default();
        let v = c.tick(1_000).unwrap();
        assert_eq!((v.millis(), v.counter()), (1_000, 0));
        let v = c.tick(2_000).unwrap();
        assert_eq!((v.millis(), v.counter()), (2_000, 0));
    }

    #[test]
    fn versions_never_go_backwards_when_the_clock_does() {
        let mut c = HybridClock::default();
        let a = c.tick(5_000).unwrap();
        let b = c.tick(4_000).unwrap();
        let d = c.tick(5_000).unwrap();
        assert!(a < b && b < d);
        assert_eq!(b.millis(), 5_000);
        assert_eq!(b.counter(), 1);
    }

    #[test]
    fn observed_versions_raise_the_clock() {
        let mut c = HybridClock::default();
        c.observe(Version::from_millis(9_000));
        assert!(c.tick(1_000).unwrap() > Version::from_millis(9_000));
    }

    #[test]
    fn counter_overflow_carries_into_milliseconds() {
        let mut c = HybridClock::default();
        c.observe(Version(Version::from_millis(7).0 | 0xffff));
        let v = c.tick(7).unwrap();
        assert_eq!((v.millis(), v.counter()), (8, 0));
    }

    #[test]
    fn the_end_of_the_version_space_is_refused_not_wrapped() {
        let mut c = HybridClock::default();
        c.observe(Version(u64::MAX - 1));
        assert_eq!(c.tick(7), Some(Version(u64::MAX)));
        assert_eq!(c.tick(7), None, "no version after u64::MAX");
        assert_eq!(c.last(), Version(u64::MAX));
        let mut c = HybridClock::default();
        assert_eq!(c.tick_n(7, 3, Version(u64::MAX - 2)), None);
        assert_eq!(c.last(), Version(0), "a refused tick changes nothing");
        assert_eq!(
            c.tick_n(7, 2, Version(u64::MAX - 2)),
            Some(Version(u64::MAX - 1))
        );
    }

    #[test]
    fn a_floor_puts_new_versions_above_a_stored_one() {
        let mut c = HybridClock::default();
        let floor = Version::from_millis(50_000);
        assert_eq!(c.tick_n(1_000, 1, floor), Some(Version(floor.0 + 1)));
        assert!(c.tick(1_000).unwrap() > floor);
    }

    #[test]
    fn millisecond_conversions_saturate() {
        assert_eq!(Version::from_millis(u64::MAX).millis(), Version::MAX_MILLIS);
        assert_eq!(Version::last_of_millis(u64::MAX), Version(u64::MAX));
        assert_eq!(Version::last_of_millis(1).0, (1 << 16) | 0xffff);
    }
}
