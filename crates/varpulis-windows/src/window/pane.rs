//! The state of one partition: its panes (one per open window, or per slice of sliding
//! windows), each with one accumulator per aggregate.

use std::collections::VecDeque;

use varpulis_core::Value;

use crate::agg::{Acc, Aggregate};
use crate::running::Running;

#[derive(Debug, Clone)]
pub(crate) struct Pane {
    pub(crate) start: i64,
    pub(super) end: i64,
    pub(crate) count: u64,
    pub(crate) accs: Vec<Acc>,
    /// Sliding windows, `min`/`max`: the two-stacks fold (see `running.rs`). Runtime only.
    pub(crate) fold: Vec<Option<Value>>,
}

impl Pane {
    pub(super) fn new(start: i64, end: i64, aggs: &[Aggregate]) -> Self {
        Self {
            start,
            end,
            count: 0,
            accs: aggs.iter().map(|a| Acc::new(a.func)).collect(),
            fold: Vec::new(),
        }
    }

    /// A new empty pane, reusing `spare`'s allocations when there is one.
    pub(super) fn recycled(spare: Option<Self>, start: i64, end: i64, aggs: &[Aggregate]) -> Self {
        match spare {
            Some(mut p) => {
                p.start = start;
                p.end = end;
                p.count = 0;
                p.accs.iter_mut().for_each(Acc::reset);
                p.fold.clear();
                p
            }
            None => Self::new(start, end, aggs),
        }
    }

    /// Adds one event whose aggregate inputs are `vals(j)`.
    #[inline]
    pub(super) fn update(&mut self, vals: impl Fn(usize) -> Value, ts: i64, seq: u64) {
        self.count += 1;
        for (j, acc) in self.accs.iter_mut().enumerate() {
            acc.update(vals(j), ts, seq);
        }
    }

    pub(super) fn merge(&mut self, other: &Self) {
        self.count += other.count;
        for (a, b) in self.accs.iter_mut().zip(&other.accs) {
            a.merge(b);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Partition {
    pub(super) panes: VecDeque<Pane>,
    /// Close time of this partition's live timer entry.
    pub(super) timer: Option<i64>,
    /// Sliding and tumbling windows: no window starting before this was emitted yet, it was
    /// already emitted (set by every emission; a flush emits windows the watermark has not
    /// closed). Runtime only: after a restore the watermark gives the same bound.
    pub(super) next_start: Option<i64>,
    /// Sliding windows with more than one slice per window: the running aggregate.
    pub(super) run: Option<Box<Running>>,
}
