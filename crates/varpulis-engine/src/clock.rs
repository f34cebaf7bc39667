//! The wall clock, for checkpoint timestamps only (the one place allowed to read it).
//!
//! Event processing never reads the wall clock: event time is data. Checkpoints carry the
//! wall-clock time they were taken at, for people listing them; the runner takes it from a
//! [`Clock`] so tests can inject one.

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
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
}
