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

    /// The first version of millisecond `ms`.
    pub fn from_millis(ms: u64) -> Version {
        Version(ms << Self::COUNTER_BITS)
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
    /// millisecond part, which stays correct (only ordering matters).
    pub fn tick(&mut self, now_ms: u64) -> Version {
        let next = Version::from_millis(now_ms).max(Version(self.last.0 + 1));
        self.last = next;
        next
    }

    /// The first of `n` consecutive new versions (`n` >= 1), as one atomic step.
    pub fn tick_n(&mut self, now_ms: u64, n: u64) -> Version {
        let first = self.tick(now_ms);
        self.last = Version(first.0 + n - 1);
        first
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
        let v = c.tick(1_000);
        assert_eq!((v.millis(), v.counter()), (1_000, 0));
        let v = c.tick(2_000);
        assert_eq!((v.millis(), v.counter()), (2_000, 0));
    }

    #[test]
    fn versions_never_go_backwards_when_the_clock_does() {
        let mut c = HybridClock::default();
        let a = c.tick(5_000);
        let b = c.tick(4_000);
        let d = c.tick(5_000);
        assert!(a < b && b < d);
        assert_eq!(b.millis(), 5_000);
        assert_eq!(b.counter(), 1);
    }

    #[test]
    fn observed_versions_raise_the_clock() {
        let mut c = HybridClock::default();
        c.observe(Version::from_millis(9_000));
        assert!(c.tick(1_000) > Version::from_millis(9_000));
    }

    #[test]
    fn counter_overflow_carries_into_milliseconds() {
        let mut c = HybridClock::default();
        c.observe(Version(Version::from_millis(7).0 | 0xffff));
        let v = c.tick(7);
        assert_eq!((v.millis(), v.counter()), (8, 0));
    }
}
