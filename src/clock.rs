//! The two clocks a node reads: the wall clock (versions of the hybrid logical clock, times
//! shown to people) and a monotonic clock (every timer: ACK timeouts, retries, keepalive,
//! dead connections, redial backoff, discovery ageing). A wall-clock jump, forward or back,
//! moves no timer. [`Clock`] is the seam tests use to make the wall clock jump.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where a node reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch (may jump either way when the system clock is
    /// set).
    fn wall_ms(&self) -> u64;
    /// Milliseconds since an arbitrary start, never decreasing, unaffected by the system
    /// clock being set. At least 1.
    fn mono_ms(&self) -> u64;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> u64 {
        wall_now_ms()
    }

    fn mono_ms(&self) -> u64 {
        mono_now_ms()
    }
}

/// Milliseconds since the Unix epoch from the system clock (0 before 1970).
pub fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since this process first asked, plus one (so 0 can mean "never").
pub fn mono_now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// A monotonic time `mono` (from `clock`) as wall-clock time, for showing it: the wall
/// clock now, less the time elapsed since. 0 stays 0 ("never").
pub fn mono_to_wall(clock: &dyn Clock, mono: u64) -> u64 {
    if mono == 0 {
        return 0;
    }
    clock
        .wall_ms()
        .saturating_sub(clock.mono_ms().saturating_sub(mono))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_starts_above_zero_and_never_goes_back() {
        let a = mono_now_ms();
        let b = mono_now_ms();
        assert!(a >= 1 && b >= a);
    }

    #[test]
    fn a_monotonic_time_shows_as_the_wall_time_it_happened() {
        let clock = SystemClock;
        let now = clock.mono_ms();
        let shown = mono_to_wall(&clock, now);
        assert!(shown.abs_diff(wall_now_ms()) < 1_000);
        assert_eq!(mono_to_wall(&clock, 0), 0);
    }
}
