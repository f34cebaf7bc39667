//! Per-source watermark tracking.

use std::collections::BTreeMap;

use varpulis_core::{Event, EventTime};
use varpulis_state::{SourceWatermark, WatermarkCheckpoint};

/// Tracks event-time progress per source (event type) and the effective watermark.
///
/// A source's watermark is `max_timestamp - out_of_order` (the bound declared with
/// [`declare_source`](Self::declare_source), 0 otherwise). The effective watermark is the minimum
/// over the sources that have produced events and are not idle, and never moves backwards.
///
/// A source that falls silent holds the effective watermark back. Unblock it with
/// [`mark_idle`](Self::mark_idle) (the source stops counting until its next event; the engine can
/// call this from a processing-time idle timeout, which this crate never reads) or force progress
/// with [`advance_to`](Self::advance_to).
#[derive(Debug, Clone, Default)]
pub struct WatermarkTracker {
    declared: BTreeMap<String, i64>,
    sources: BTreeMap<String, SourceWatermark>,
    effective: Option<EventTime>,
    /// `effective` reflects every source's current position (set by `recompute`, cleared by
    /// anything that changes a source without recomputing).
    settled: bool,
}

impl WatermarkTracker {
    /// A tracker with no sources.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `source`'s out-of-order bound (milliseconds, `>= 0`).
    pub fn declare_source(&mut self, source: &str, out_of_order_ms: i64) {
        let bound = out_of_order_ms.max(0);
        self.declared.insert(source.to_owned(), bound);
        if let Some(s) = self.sources.get_mut(source) {
            s.out_of_order_ms = bound;
            self.settled = false;
        }
    }

    /// Observes an event of source `event.event_type()`; returns the effective watermark.
    pub fn observe(&mut self, event: &Event) -> Option<EventTime> {
        self.observe_at(event.event_type(), event.timestamp_ms())
    }

    /// Observes event time `ts` from `source`; returns the effective watermark.
    pub fn observe_at(&mut self, source: &str, ts: EventTime) -> Option<EventTime> {
        if let Some(s) = self.sources.get_mut(source) {
            if !s.idle && ts <= s.max_timestamp_ms && self.settled {
                // Nothing changed since the last recompute: the effective watermark stands.
                return self.effective;
            }
            s.max_timestamp_ms = s.max_timestamp_ms.max(ts);
            s.idle = false;
        } else {
            let out_of_order_ms = self.declared.get(source).copied().unwrap_or(0);
            self.sources.insert(
                source.to_owned(),
                SourceWatermark {
                    max_timestamp_ms: ts,
                    out_of_order_ms,
                    idle: false,
                },
            );
        }
        self.recompute()
    }

    /// Marks `source` idle: it no longer holds the effective watermark back until it produces
    /// an event again. Returns the effective watermark.
    pub fn mark_idle(&mut self, source: &str) -> Option<EventTime> {
        if let Some(s) = self.sources.get_mut(source) {
            s.idle = true;
        }
        self.recompute()
    }

    /// Marks idle every source whose newest event is older than `before`: an idle timeout
    /// measured in the input's event time (the caller passes the time of the event it just
    /// observed minus the timeout). Returns the effective watermark.
    pub fn mark_idle_before(&mut self, before: EventTime) -> Option<EventTime> {
        let mut changed = false;
        for s in self.sources.values_mut() {
            if !s.idle && s.max_timestamp_ms < before {
                s.idle = true;
                changed = true;
            }
        }
        if changed {
            self.recompute()
        } else {
            self.effective
        }
    }

    /// Forces the effective watermark to at least `ts` (it never moves backwards).
    pub fn advance_to(&mut self, ts: EventTime) -> Option<EventTime> {
        self.effective = Some(self.effective.map_or(ts, |w| w.max(ts)));
        self.effective
    }

    /// The effective watermark; `None` before any event.
    #[must_use]
    pub fn effective(&self) -> Option<EventTime> {
        self.effective
    }

    /// `source`'s own watermark, if it has produced events.
    #[must_use]
    pub fn source_watermark(&self, source: &str) -> Option<EventTime> {
        self.sources
            .get(source)
            .map(|s| s.max_timestamp_ms.saturating_sub(s.out_of_order_ms))
    }

    fn recompute(&mut self) -> Option<EventTime> {
        let min = self
            .sources
            .values()
            .filter(|s| !s.idle)
            .map(|s| s.max_timestamp_ms.saturating_sub(s.out_of_order_ms))
            .min();
        if let Some(m) = min {
            self.effective = Some(self.effective.map_or(m, |w| w.max(m)));
        }
        self.settled = true;
        self.effective
    }

    /// The checkpoint form.
    #[must_use]
    pub fn snapshot(&self) -> WatermarkCheckpoint {
        WatermarkCheckpoint {
            sources: self.sources.clone(),
            effective_ms: self.effective,
        }
    }

    /// Restores positions from a checkpoint. Out-of-order bounds are configuration: a source
    /// declared on this tracker keeps its declared bound; the effective watermark never goes
    /// below the checkpointed one.
    pub fn restore(&mut self, state: &WatermarkCheckpoint) {
        self.sources = state.sources.clone();
        for (name, s) in &mut self.sources {
            if let Some(&bound) = self.declared.get(name) {
                s.out_of_order_ms = bound;
            }
        }
        self.effective = state.effective_ms;
        self.recompute();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_watermark_is_the_minimum_over_sources_and_monotonic() {
        let mut t = WatermarkTracker::new();
        t.declare_source("A", 10);
        assert_eq!(t.effective(), None);
        assert_eq!(t.observe_at("A", 100), Some(90));
        assert_eq!(t.observe_at("B", 50), Some(90));
        assert_eq!(t.observe_at("B", 95), Some(90));
        assert_eq!(t.observe_at("A", 200), Some(95));
        assert_eq!(t.observe_at("A", 20), Some(95));
        assert_eq!(t.source_watermark("A"), Some(190));
    }

    #[test]
    fn sources_silent_for_longer_than_a_timeout_of_event_time_are_marked_idle() {
        let mut t = WatermarkTracker::new();
        t.observe_at("A", 1_000);
        t.observe_at("B", 1_500);
        assert_eq!(t.observe_at("A", 9_000), Some(1_500), "B holds it back");
        assert_eq!(
            t.mark_idle_before(9_000 - 5_000),
            Some(9_000),
            "B silent for 7.5 s > 5 s"
        );
        assert_eq!(
            t.mark_idle_before(9_000 - 8_000),
            Some(9_000),
            "nothing more to mark"
        );
        assert_eq!(t.observe_at("B", 9_500), Some(9_000), "B counts again");
    }

    #[test]
    fn a_silent_source_holds_the_watermark_until_marked_idle() {
        let mut t = WatermarkTracker::new();
        t.observe_at("A", 10);
        t.observe_at("B", 10);
        assert_eq!(t.observe_at("A", 1000), Some(10));
        assert_eq!(t.mark_idle("B"), Some(1000));
        // B comes back behind: the watermark does not move backwards.
        assert_eq!(t.observe_at("B", 20), Some(1000));
        assert_eq!(t.observe_at("A", 2000), Some(1000));
        assert_eq!(t.observe_at("B", 1500), Some(1500));
        assert_eq!(t.advance_to(5000), Some(5000));
        let mut r = WatermarkTracker::new();
        r.restore(&t.snapshot());
        assert_eq!(r.effective(), Some(5000));
        assert_eq!(r.snapshot(), t.snapshot());
    }
}
