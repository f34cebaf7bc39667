//! When to checkpoint: the one place that decides it, from
//! [`CheckpointConfig::every`](crate::CheckpointConfig::every).
//!
//! Time is injected: the schedule never reads a clock, its caller passes the current time of a
//! monotonic clock (so a wall-clock jump neither triggers nor suppresses checkpoints).

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often to checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointEvery {
    /// After this many input events.
    Events(u64),
    /// After this much time, measured on the caller's monotonic clock and looked at every
    /// [`CLOCK_STRIDE`] events (so a checkpoint is due at most that many events late).
    Interval(Duration),
}

impl FromStr for CheckpointEvery {
    type Err = String;

    /// `500` (events) or a duration such as `10s`, `500ms`, `1m`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return if n == 0 {
                Err("the checkpoint interval must be at least 1 event".to_owned())
            } else {
                Ok(Self::Events(n))
            };
        }
        match varpulis_core::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(Self::Interval(d)),
            _ => Err(format!(
                "expected a number of events (500) or a duration (10s, 500ms, 1m), found {s:?}"
            )),
        }
    }
}

/// Events between two clock readings of an [`CheckpointEvery::Interval`] schedule: reading
/// the clock once per event would cost more than the event on the hot path.
pub const CLOCK_STRIDE: u64 = 64;

/// Decides, event by event, when a checkpoint is due.
///
/// ```
/// use std::time::Duration;
/// use varpulis_checkpoint::{CheckpointEvery, CheckpointSchedule};
///
/// let mut schedule = CheckpointSchedule::new(CheckpointEvery::Events(2), Duration::ZERO);
/// assert!(!schedule.event(|| Duration::ZERO));
/// assert!(schedule.event(|| Duration::ZERO));
/// schedule.taken(Duration::ZERO);
/// assert_eq!(schedule.pending(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointSchedule {
    every: CheckpointEvery,
    /// Events counted since the last checkpoint.
    pending: u64,
    /// Monotonic time of the last checkpoint (or of the start).
    last: Duration,
}

impl CheckpointSchedule {
    /// A schedule starting at `now` (monotonic) with nothing pending.
    #[must_use]
    pub fn new(every: CheckpointEvery, now: Duration) -> Self {
        Self {
            every,
            pending: 0,
            last: now,
        }
    }

    /// What the schedule follows.
    #[must_use]
    pub fn every(&self) -> CheckpointEvery {
        self.every
    }

    /// Counts one input event and says whether a checkpoint is due. `now` (the monotonic
    /// time) is called only by interval schedules, once every [`CLOCK_STRIDE`] events.
    pub fn event(&mut self, now: impl FnOnce() -> Duration) -> bool {
        self.pending += 1;
        match self.every {
            CheckpointEvery::Events(n) => self.pending >= n,
            CheckpointEvery::Interval(d) => {
                self.pending.is_multiple_of(CLOCK_STRIDE) && now().saturating_sub(self.last) >= d
            }
        }
    }

    /// Events counted since the last checkpoint (or the start).
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// A checkpoint was taken at `now`: the count and the interval start over.
    pub fn taken(&mut self, now: Duration) {
        self.pending = 0;
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_event_count_schedule_is_due_every_n_events() {
        let mut s = CheckpointSchedule::new(CheckpointEvery::Events(3), ms(0));
        let due: Vec<bool> = (0..7)
            .map(|_| {
                let d = s.event(|| panic!("an event schedule reads no clock"));
                if d {
                    s.taken(ms(0));
                }
                d
            })
            .collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn an_interval_schedule_follows_the_injected_clock_every_stride_events() {
        let mut s = CheckpointSchedule::new(CheckpointEvery::Interval(ms(10)), ms(1_000));
        let mut reads = 0;
        // 63 events: the clock is not read, whatever the time.
        for _ in 0..CLOCK_STRIDE - 1 {
            assert!(!s.event(|| {
                reads += 1;
                ms(5_000)
            }));
        }
        assert_eq!(reads, 0);
        // The 64th reads it: 9 ms after the start is not due ...
        assert!(!s.event(|| ms(1_009)));
        // ... 10 ms after it, 64 events later, is.
        for _ in 0..CLOCK_STRIDE - 1 {
            assert!(!s.event(|| ms(1_010)));
        }
        assert!(s.event(|| ms(1_010)));
        s.taken(ms(1_010));
        assert_eq!(s.pending(), 0);
        for _ in 0..CLOCK_STRIDE - 1 {
            s.event(|| ms(0));
        }
        assert!(
            !s.event(|| ms(1_019)),
            "the interval restarts at the checkpoint"
        );
    }

    #[test]
    fn a_clock_that_goes_back_never_makes_a_checkpoint_due() {
        let mut s = CheckpointSchedule::new(CheckpointEvery::Interval(ms(1)), ms(1_000));
        for _ in 0..CLOCK_STRIDE - 1 {
            s.event(|| ms(0));
        }
        assert!(!s.event(|| ms(0)));
    }

    #[test]
    fn every_parses_event_counts_and_durations_and_refuses_zero() {
        assert_eq!("500".parse(), Ok(CheckpointEvery::Events(500)));
        assert_eq!(
            " 10s ".parse(),
            Ok(CheckpointEvery::Interval(Duration::from_secs(10)))
        );
        assert!(
            "0".parse::<CheckpointEvery>()
                .unwrap_err()
                .contains("at least 1")
        );
        assert!("0s".parse::<CheckpointEvery>().is_err());
        assert!(
            "soon"
                .parse::<CheckpointEvery>()
                .unwrap_err()
                .contains("\"soon\"")
        );
    }
}
