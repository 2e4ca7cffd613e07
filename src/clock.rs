//! The two clocks a node reads: the wall clock (versions of the hybrid logical clock, times
//! shown to people) and a monotonic clock (every timer: ACK timeouts, retries, keepalive,
//! dead connections, redial backoff, discovery ageing). A wall-clock jump, forward or back,
//! moves no timer. [`Clock`] is the seam tests use to make the wall clock jump, and
//! [`ManualClock`] the clock of a client opened with the test-only option `manual_clock`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A clock that stands still until [`ManualClock::advance`] moves it (the test-only option
/// `manual_clock`): both clocks move together, by exactly what the test says, so that
/// timeouts, retries, backoff and ageing are tested without sleeping. The wall clock
/// starts at the system's time when the clock is made (versions look like real ones), the
/// monotonic clock at 1.
#[derive(Debug)]
pub struct ManualClock {
    wall_start_ms: u64,
    elapsed_ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the system's wall time.
    pub fn new() -> ManualClock {
        ManualClock {
            wall_start_ms: wall_now_ms(),
            elapsed_ms: AtomicU64::new(0),
        }
    }

    /// Moves both clocks `ms` milliseconds forward (saturating: it never wraps).
    pub fn advance(&self, ms: u64) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .elapsed_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
                Some(e.saturating_add(ms))
            });
    }

    fn elapsed(&self) -> u64 {
        self.elapsed_ms.load(Ordering::SeqCst)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> u64 {
        self.wall_start_ms.saturating_add(self.elapsed())
    }

    fn mono_ms(&self) -> u64 {
        self.elapsed().saturating_add(1)
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
    fn a_manual_clock_moves_only_when_advanced_and_both_clocks_together() {
        let clock = ManualClock::new();
        let (wall, mono) = (clock.wall_ms(), clock.mono_ms());
        assert_eq!(mono, 1);
        assert!(wall.abs_diff(wall_now_ms()) < 1_000);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!((clock.wall_ms(), clock.mono_ms()), (wall, mono));
        clock.advance(30_000);
        assert_eq!((clock.wall_ms(), clock.mono_ms()), (wall + 30_000, 30_001));
        clock.advance(u64::MAX);
        assert_eq!(clock.mono_ms(), u64::MAX, "saturates, never wraps");
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
