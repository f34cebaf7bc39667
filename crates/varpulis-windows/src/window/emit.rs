//! Emission: building output events, closing windows as the watermark advances, and the
//! flush (all at once or in bounded steps), in order of window end then partition key.

use std::cmp::Reverse;

use varpulis_core::{Event, EventTime, Value};

use super::assign::{Mode, close_time, floor_to, next_close, next_window};
use super::pane::Partition;
use super::{WindowOperator, WindowResult};
use crate::agg::Acc;

impl WindowOperator {
    pub(super) fn result(&self, start: i64, end: i64, key: Value, accs: &[Acc]) -> WindowResult {
        self.result_of(start, end, key, accs.iter().map(Acc::result))
    }

    fn result_of(
        &self,
        start: i64,
        end: i64,
        key: Value,
        values: impl IntoIterator<Item = Value>,
    ) -> WindowResult {
        // The partition key, then each aggregate (one that shares the key's name replaces its
        // value, as setting the fields one by one would): one allocation for the fields.
        let aggregates = &self.spec.aggregates;
        let mut fields = Vec::with_capacity(aggregates.len() + 1);
        if let Some(f) = &self.spec.partition_by {
            fields.push((f.clone(), key.clone()));
        }
        for (agg, v) in aggregates.iter().zip(values) {
            match self.spec.partition_by.as_ref() {
                Some(f) if *f == agg.alias => fields[0].1 = v,
                _ => fields.push((agg.alias.clone(), v)),
            }
        }
        let event = Event::from_unique_iter(self.spec.name.clone(), end, fields);
        WindowResult {
            start_ms: start,
            end_ms: end,
            key,
            event,
        }
    }

    /// Advances the operator's watermark to `wm` (ignored unless it moves forward) and emits, in
    /// order of window end then partition key, every window it closes. Time windows close when
    /// `wm >= end + allowed_lateness`; sessions when `wm > last event + gap + allowed_lateness`.
    pub fn advance_watermark(&mut self, wm: EventTime, out: &mut Vec<WindowResult>) {
        if self.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.flushing = None;
        let prev = self.watermark;
        self.watermark = Some(wm);
        if matches!(self.mode, Mode::Count { .. }) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > wm {
                break;
            }
            let Some(Reverse((t, key))) = self.timers.pop() else {
                break;
            };
            let Some(slot) = self.partitions.get_mut(&key) else {
                continue;
            };
            if slot.timer != Some(t) {
                continue;
            }
            let mut part = std::mem::take(slot);
            self.close_partition(&mut part, &key, Some(wm), prev, &mut scratch);
            // Terminates: every window whose close time is at most `wm` was just emitted, so a
            // timer pushed here is past `wm` (close times are exact, never saturated).
            if let Some(t) = next_close(self.mode, self.lateness, &part, self.watermark) {
                part.timer = Some(t);
                self.timers.push(Reverse((t, key.clone())));
                *self.partitions.get_mut(&key).expect("partition exists") = part;
            } else if part.panes.is_empty() {
                self.partitions.remove(&key);
            } else {
                part.timer = None;
                *self.partitions.get_mut(&key).expect("partition exists") = part;
            }
        }
        sort_results(&mut scratch);
        out.append(&mut scratch);
        self.scratch = scratch;
    }

    /// Emits every open window (end of input, `--flush-at-end`), in order of window end then
    /// partition key, and drops all window state. The watermark is unchanged.
    ///
    /// This holds every result in `out` at once; [`flush_step`](Self::flush_step) emits them a
    /// bounded number at a time, in the same order.
    pub fn flush(&mut self, out: &mut Vec<WindowResult>) {
        while self.flush_step(out, usize::MAX) {}
    }

    /// Emits at most `max_results` more of the windows [`flush`](Self::flush) emits, in the same
    /// order (window end, then partition key), without computing the others; returns whether
    /// windows remain (then call it again). The windows still to emit are computed one at a time
    /// from the open panes: memory stays that of the state, whatever the number of results.
    ///
    /// Emitted windows leave the state as they go. A flush interrupted by
    /// [`process`](Self::process) or [`advance_watermark`](Self::advance_watermark) starts again
    /// from the windows left; a snapshot taken before the last step holds the rest only.
    pub fn flush_step(&mut self, out: &mut Vec<WindowResult>, max_results: usize) -> bool {
        let (mode, lat, wm) = (self.mode, self.lateness, self.watermark);
        let mut queue = match self.flushing.take() {
            Some(queue) => queue,
            None => self
                .partitions
                .iter()
                .filter_map(|(key, part)| {
                    let (_, end) = next_window(mode, lat, part, wm)?;
                    Some(Reverse((end, key.clone())))
                })
                .collect(),
        };
        let mut emitted = 0;
        while emitted < max_results {
            let Some(Reverse((_, key))) = queue.pop() else {
                break;
            };
            let Some(slot) = self.partitions.get_mut(&key) else {
                continue;
            };
            let mut part = std::mem::take(slot);
            if let Some((start, end)) = next_window(mode, lat, &part, wm) {
                self.emit_window(&mut part, &key, start, end, out);
                emitted += 1;
            }
            match next_window(mode, lat, &part, wm) {
                Some((_, end)) => {
                    queue.push(Reverse((end, key.clone())));
                    *self.partitions.get_mut(&key).expect("partition exists") = part;
                }
                None => {
                    self.partitions.remove(&key);
                }
            }
        }
        if queue.is_empty() {
            self.timers.clear();
            return false;
        }
        self.flushing = Some(queue);
        true
    }

    /// Emits the partition's windows closed at `wm` (all of them when `wm` is `None`). `prev` is
    /// the watermark before this advance: windows it closed were already emitted.
    fn close_partition(
        &self,
        part: &mut Partition,
        key: &Value,
        wm: Option<i64>,
        prev: Option<i64>,
        out: &mut Vec<WindowResult>,
    ) {
        let (mode, lat) = (self.mode, self.lateness);
        while let Some((start, end)) = next_window(mode, lat, part, prev) {
            if let Some(w) = wm
                && close_time(mode, lat, end).is_none_or(|t| t > w)
            {
                break;
            }
            self.emit_window(part, key, start, end, out);
        }
    }

    /// Emits `[start, end)`, the next window of `part` (from [`next_window`]), and drops the
    /// panes no later window contains.
    fn emit_window(
        &self,
        part: &mut Partition,
        key: &Value,
        start: i64,
        end: i64,
        out: &mut Vec<WindowResult>,
    ) {
        let aggs = &self.spec.aggregates;
        match self.mode {
            Mode::Sliced { slide, .. } => {
                match part.run.as_deref_mut() {
                    None => {
                        let pane = part.panes.pop_front().expect("front exists");
                        out.push(self.result(start, end, key.clone(), &pane.accs));
                    }
                    Some(run) => {
                        run.advance(&part.panes, end, aggs);
                        let values = run.results(&mut part.panes, aggs);
                        out.push(self.result_of(start, end, key.clone(), values.drain(..)));
                    }
                }
                part.next_start = Some(start.saturating_add(slide));
                while part
                    .panes
                    .front()
                    .is_some_and(|f| floor_to(f.start, slide) <= start)
                {
                    let pane = part.panes.pop_front().expect("front exists");
                    if let Some(run) = part.run.as_deref_mut() {
                        run.evict(&pane, aggs);
                        run.keep_spare(pane);
                    }
                }
            }
            Mode::Session { .. } | Mode::Count { .. } => {
                let pane = part.panes.pop_front().expect("front exists");
                out.push(self.result(pane.start, end, key.clone(), &pane.accs));
            }
        }
    }

    /// The flush before `flush_step`: every window of every partition, then one sort. The
    /// reference the incremental flush is tested against.
    #[cfg(test)]
    fn flush_all_then_sort(&mut self, out: &mut Vec<WindowResult>) {
        let mut scratch = Vec::new();
        let parts: Vec<(Value, Partition)> = self.partitions.drain().collect();
        for (key, mut part) in parts {
            self.close_partition(&mut part, &key, None, self.watermark, &mut scratch);
        }
        self.timers.clear();
        sort_results(&mut scratch);
        out.append(&mut scratch);
    }
}

fn sort_results(results: &mut [WindowResult]) {
    results.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.key.cmp(&b.key)));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    use super::*;
    use crate::{AggFn, Aggregate, WindowKind, WindowSpec};

    fn kind(which: u8, a: i64, b: i64) -> WindowKind {
        match which % 4 {
            0 => WindowKind::Tumbling { size_ms: a },
            1 => WindowKind::Sliding {
                size_ms: a.max(b),
                slide_ms: a.min(b),
            },
            2 => WindowKind::Session { gap_ms: a / 3 },
            _ => WindowKind::Count {
                size: a.unsigned_abs() % 4 + 1,
            },
        }
    }

    fn operator(kind: WindowKind, partitioned: bool, lateness: i64) -> WindowOperator {
        let mut spec = WindowSpec::new("W", kind)
            .allowed_lateness(lateness)
            .aggregate(Aggregate::count("n"))
            .aggregate(Aggregate::field("s", AggFn::Sum, "v"))
            .aggregate(Aggregate::field("lo", AggFn::Min, "v"))
            .aggregate(Aggregate::field("f", AggFn::First, "v"));
        if partitioned {
            spec = spec.partition_by("k");
        }
        WindowOperator::new(spec).expect("valid spec")
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 600,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0xf1a5_0010),
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Differential: the incremental flush against the one it replaced.
        #[test]
        fn flushing_in_steps_emits_exactly_what_flushing_all_then_sorting_emitted(
            which in 0_u8..4, a in 1_i64..25, b in 1_i64..25, partitioned in any::<bool>(),
            lateness in prop_oneof![Just(0_i64), 0_i64..20], ooo in 0_i64..30,
            events in prop::collection::vec((-60_i64..300, 0_u8..5, -9_i64..9), 0..80),
            steps in prop::collection::vec(1_usize..6, 1..8),
        ) {
            let mut op = operator(kind(which, a, b), partitioned, lateness);
            let mut before = Vec::new();
            let mut max = i64::MIN;
            for &(ts, k, v) in &events {
                let e = Event::new("E", ts).with_field("k", i64::from(k)).with_field("v", v);
                let _ = op.process(&e, &mut before).expect("accepted time");
                max = max.max(ts);
                op.advance_watermark(max - ooo, &mut before);
            }
            let mut reference = op.clone();
            let mut expected = Vec::new();
            reference.flush_all_then_sort(&mut expected);
            let mut got = Vec::new();
            let mut calls = 0;
            loop {
                let max_results = steps[calls % steps.len()];
                let len = got.len();
                let more = op.flush_step(&mut got, max_results);
                calls += 1;
                prop_assert!(got.len() - len <= max_results);
                // `more` is exact: false exactly when nothing is left.
                prop_assert_eq!(more, got.len() < expected.len());
                if !more {
                    break;
                }
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(op.partition_count(), 0);
            prop_assert_eq!(op.snapshot(), reference.snapshot());
            // The state after a flush takes new events like the old one did.
            let e = Event::new("E", max + 1).with_field("k", 1).with_field("v", 1);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            prop_assert_eq!(op.process(&e, &mut x), reference.process(&e, &mut y));
            op.flush(&mut x);
            reference.flush_all_then_sort(&mut y);
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn a_flush_interrupted_by_an_event_never_emits_a_window_twice() {
        let mut op = operator(kind(1, 10, 2), false, 0);
        let mut out = Vec::new();
        for ts in [0, 3, 7] {
            let _ = op
                .process(&Event::new("E", ts).with_field("v", 1), &mut out)
                .unwrap();
        }
        assert!(op.flush_step(&mut out, 2));
        let _ = op
            .process(&Event::new("E", 8).with_field("v", 1), &mut out)
            .unwrap();
        op.flush(&mut out);
        let starts: Vec<i64> = out.iter().map(|w| w.start_ms).collect();
        assert_eq!(starts, [-8, -6, -4, -2, 0, 2, 4, 6, 8]);
    }
}
