//! Time, injected: the one module allowed to read the system's clocks.
//!
//! Event processing never reads a clock: event time is data. The runner needs two kinds of
//! time, both taken from a [`Clock`] so tests can drive them: the wall-clock time a checkpoint
//! is stamped with (for people listing checkpoints), and a monotonic time that schedules
//! checkpoints and measures how long they and the run took. `SystemTime::now` and
//! `Instant::now` are banned everywhere else (`clippy.toml`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A source of time.
pub trait Clock: Send + Sync {
    /// Wall-clock time, in milliseconds since the Unix epoch (checkpoint timestamps).
    fn now_ms(&self) -> i64;

    /// Monotonic time since an origin fixed for the life of the clock: never goes back, and
    /// does not jump with the wall clock (checkpoint schedules, durations).
    fn monotonic(&self) -> Duration;

    /// The same clock for the other threads of a run (a parallel run's source and contexts,
    /// which time their barriers): `None` (the default) when it cannot be shared, and those
    /// threads then measure nothing (their figures read 0).
    fn share(&self) -> Option<Arc<dyn Clock>> {
        None
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock module is where the wall clock is read
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    #[allow(clippy::disallowed_methods)] // the clock module is where the monotonic clock is read
    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    fn share(&self) -> Option<Arc<dyn Clock>> {
        Some(Arc::new(SystemClock))
    }
}

/// A clock that moves only when told to, for tests: [`advance`](Self::advance) moves both
/// times, and with [`with_tick`](Self::with_tick) every reading of the monotonic time moves it
/// by a fixed step (so a loop that reads the clock sees time pass, deterministically).
///
/// Shared with the threads of a parallel run ([`Clock::share`]): they read and tick the same
/// time.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    time: Arc<ManualTime>,
    tick_ns: u64,
}

#[derive(Debug, Default)]
struct ManualTime {
    wall_ms: AtomicI64,
    monotonic_ns: AtomicU64,
}

impl ManualClock {
    /// A clock at `wall_ms` (milliseconds since the epoch), monotonic time zero.
    #[must_use]
    pub fn new(wall_ms: i64) -> Self {
        Self {
            time: Arc::new(ManualTime {
                wall_ms: AtomicI64::new(wall_ms),
                monotonic_ns: AtomicU64::new(0),
            }),
            tick_ns: 0,
        }
    }

    /// Every reading of [`Clock::monotonic`] first advances the clock by `tick`.
    #[must_use]
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick_ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// Moves both the wall clock and the monotonic clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.time.monotonic_ns.fetch_add(ns, Ordering::Relaxed);
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.time.wall_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets the wall clock (it may go back; the monotonic clock does not move).
    pub fn set_wall_ms(&self, wall_ms: i64) {
        self.time.wall_ms.store(wall_ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.time.wall_ms.load(Ordering::Relaxed)
    }

    fn monotonic(&self) -> Duration {
        let ns = self
            .time
            .monotonic_ns
            .fetch_add(self.tick_ns, Ordering::Relaxed)
            + self.tick_ns;
        Duration::from_nanos(ns)
    }

    fn share(&self) -> Option<Arc<dyn Clock>> {
        Some(Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!((c.now_ms(), c.monotonic()), (1_000, Duration::ZERO));
        c.advance(Duration::from_millis(250));
        assert_eq!(
            (c.now_ms(), c.monotonic()),
            (1_250, Duration::from_millis(250))
        );
        c.set_wall_ms(10);
        assert_eq!(
            (c.now_ms(), c.monotonic()),
            (10, Duration::from_millis(250))
        );
    }

    #[test]
    fn a_ticking_clock_moves_at_every_reading() {
        let c = ManualClock::new(0).with_tick(Duration::from_millis(1));
        assert_eq!(c.monotonic(), Duration::from_millis(1));
        assert_eq!(c.monotonic(), Duration::from_millis(2));
        assert_eq!(c.now_ms(), 0, "the wall clock does not tick");
    }

    #[test]
    fn the_system_clocks_monotonic_time_never_goes_back() {
        let a = SystemClock.monotonic();
        let b = SystemClock.monotonic();
        assert!(b >= a);
    }
}
