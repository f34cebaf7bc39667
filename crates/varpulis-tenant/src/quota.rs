//! Quota tiers, usage, and the per-tenant rate limiter.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A named quota tier. No tier (`None`) is the "default" tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaTier {
    /// 2 pipelines, 100 events/s, 5 streams per pipeline, 16 MiB of state.
    Free,
    /// 20 pipelines, 50,000 events/s, 100 streams per pipeline, 1 GiB of state.
    Pro,
    /// 1,000 pipelines, 500,000 events/s, 500 streams per pipeline, 16 GiB of state.
    Enterprise,
}

impl QuotaTier {
    /// The tier's name: `free`, `pro`, `enterprise`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for QuotaTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuotaTier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "free" => Ok(Self::Free),
            "pro" => Ok(Self::Pro),
            "enterprise" => Ok(Self::Enterprise),
            other => Err(format!(
                "unknown quota tier {other:?} (free, pro, enterprise, or null for the default)"
            )),
        }
    }
}

const MIB: u64 = 1 << 20;

/// What a tenant may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Pipelines at once.
    pub max_pipelines: u32,
    /// Events accepted per second (a token bucket holding one second's worth).
    pub max_events_per_second: u64,
    /// Streams in one pipeline's program.
    pub max_streams_per_pipeline: u32,
    /// Engine state over all the tenant's pipelines (their windows, partitions, variables).
    pub max_state_bytes: u64,
}

impl Quota {
    /// The quota of `tier` (`None`: the default tier, 10 / 10,000 / 50 / 256 MiB).
    #[must_use]
    pub fn for_tier(tier: Option<QuotaTier>) -> Self {
        let (max_pipelines, max_events_per_second, max_streams_per_pipeline, max_state_bytes) =
            match tier {
                Some(QuotaTier::Free) => (2, 100, 5, 16 * MIB),
                None => (10, 10_000, 50, 256 * MIB),
                Some(QuotaTier::Pro) => (20, 50_000, 100, 1024 * MIB),
                Some(QuotaTier::Enterprise) => (1000, 500_000, 500, 16 * 1024 * MIB),
            };
        Self {
            max_pipelines,
            max_events_per_second,
            max_streams_per_pipeline,
            max_state_bytes,
        }
    }
}

/// What a tenant (or a pipeline) has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Events accepted.
    pub events_in: u64,
    /// Output events produced.
    pub output_events: u64,
    /// Pipelines running (not in error).
    pub active_pipelines: u32,
    /// Engine state now, in bytes (approximate).
    pub state_bytes: u64,
}

/// A token bucket over monotonic time: `rate` tokens a second, at most one second's worth
/// held. A batch larger than the bucket is let through when the bucket is full and leaves it
/// in debt, so the long-run rate stays at most `rate` whatever the batch size.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Option<Duration>,
}

impl RateLimiter {
    pub(crate) fn new(rate: u64) -> Self {
        #[allow(clippy::cast_precision_loss)] // rates are far below 2^52
        let rate = rate.max(1) as f64;
        Self {
            rate,
            tokens: rate,
            last: None,
        }
    }

    fn refill(&mut self, now: Duration) {
        if let Some(last) = self.last {
            let dt = now.saturating_sub(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        }
        self.last = Some(now);
    }

    /// Takes `n` tokens at `now`, or says in how many milliseconds it could.
    pub(crate) fn take(&mut self, n: u64, now: Duration) -> Result<(), u64> {
        self.refill(now);
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        let needed = n.min(self.rate);
        if self.tokens >= needed {
            self.tokens -= n;
            Ok(())
        } else {
            let wait = (needed - self.tokens) / self.rate;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Err(((wait * 1000.0).ceil() as u64).max(1))
        }
    }

    /// Gives back `n` tokens taken for a batch that was then refused.
    pub(crate) fn give_back(&mut self, n: u64) {
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        self.tokens = (self.tokens + n).min(self.rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_second_and_refills_at_the_rate() {
        let mut r = RateLimiter::new(100);
        let t = Duration::from_secs(5);
        assert_eq!(r.take(60, t), Ok(()));
        assert_eq!(r.take(40, t), Ok(()));
        assert_eq!(r.take(10, t), Err(100));
        assert_eq!(r.take(10, t + Duration::from_millis(100)), Ok(()));
        // Never more than a second's worth, however long it waited.
        assert_eq!(r.take(100, t + Duration::from_secs(60)), Ok(()));
        assert!(r.take(1, t + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_batch_larger_than_the_bucket_passes_when_it_is_full_and_leaves_a_debt() {
        let mut r = RateLimiter::new(100);
        let t = Duration::from_secs(1);
        assert_eq!(r.take(250, t), Ok(()));
        // 150 in debt, then 100 needed for the next large batch: 2.5 s.
        assert_eq!(r.take(250, t), Err(2500));
        assert_eq!(r.take(250, t + Duration::from_millis(2500)), Ok(()));
    }

    #[test]
    fn tiers_have_the_documented_quotas() {
        let q = |t| Quota::for_tier(t);
        let row = |q: Quota| {
            (
                q.max_pipelines,
                q.max_events_per_second,
                q.max_streams_per_pipeline,
            )
        };
        assert_eq!(row(q(Some(QuotaTier::Free))), (2, 100, 5));
        assert_eq!(row(q(None)), (10, 10_000, 50));
        assert_eq!(row(q(Some(QuotaTier::Pro))), (20, 50_000, 100));
        assert_eq!(row(q(Some(QuotaTier::Enterprise))), (1000, 500_000, 500));
        for t in [QuotaTier::Free, QuotaTier::Pro, QuotaTier::Enterprise] {
            assert_eq!(t.as_str().parse::<QuotaTier>(), Ok(t));
        }
        assert!("gold".parse::<QuotaTier>().is_err());
    }
}
