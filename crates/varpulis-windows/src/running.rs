//! Sliding-window aggregation whose cost per emitted window does not depend on the number of
//! slices in a window.
//!
//! A sliding partition keeps one pane (partial aggregate) per slice, sorted by start. The
//! [`Running`] state folds the *prefix* of panes, those starting before `frontier`, which is the
//! end of the last window computed. Emitting window `[s, e)` advances the frontier to `e` (each
//! pane is folded in once in its life), reads the result, and evicts the panes no later window
//! contains (each pane is removed once). Per aggregate:
//!
//! - `count`, `sum`, `avg`, `stddev` are invertible (integer counts, `i128` sums, exact float sums
//!   whose NaN/infinity flags are kept as counts): **subtract on evict**.
//! - `count_distinct` keeps, per value, the number of prefix panes containing it: add the pane's
//!   set on fold-in, decrement on evict, the result is the map's size. Cost per pane is its number
//!   of distinct values, not the slice count.
//! - `min`, `max` use **two stacks**: panes before `boundary` (the "front stack") each carry the
//!   fold of themselves and every front pane after them, panes in `[boundary, frontier)` are
//!   folded into one `back` value. A window is `fold(front pane) ⊕ back`. When the front stack
//!   runs empty, a flip recomputes the folds over the whole prefix and resets `back` (amortised
//!   once per pane). An out-of-order event into a front pane updates the folds of that pane and
//!   the ones before it, stopping at the first fold that already beats it (folds only grow
//!   towards the front).
//! - `first`, `last`: slices cover disjoint, ordered time ranges, so the window's first (last)
//!   input is the first (last) non-null one of the first (last) pane holding one: a scan from
//!   the relevant end that stops at the first pane with an input.
//!
//! Events for panes at or after the frontier only touch their pane. Events behind the frontier
//! (out of order, within the allowed lateness) update the pane and the running state. Nothing
//! here is checkpointed: after a restore the state starts empty (`frontier = i64::MIN`) and the
//! first window folds in its panes.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use varpulis_core::Value;

use crate::agg::{Acc, AggFn, Aggregate};
use crate::exact::RunningSum;
use crate::window::Pane;

/// Running state of one aggregate over the prefix.
#[derive(Debug, Clone)]
enum Run {
    Count(u64),
    Sum {
        int: i128,
        exact: RunningSum,
        floats: u64,
        n: u64,
    },
    Avg {
        sum: RunningSum,
        n: u64,
    },
    StdDev {
        n: u64,
        sum: RunningSum,
        sum_sq: RunningSum,
    },
    Distinct(BTreeMap<Value, u64>),
    /// `min`/`max`: the fold of the back stack.
    Extreme(Option<Value>),
    /// `first`/`last`: computed by a scan.
    Edge,
}

/// `a` beats `b` for `min` (smaller) or `max` (larger).
fn beats(f: AggFn, a: &Value, b: &Value) -> bool {
    if f == AggFn::Min { a < b } else { a > b }
}

fn extreme_of(acc: &Acc) -> Option<&Value> {
    match acc {
        Acc::Min(v) | Acc::Max(v) => v.as_ref(),
        _ => None,
    }
}

fn combine(f: AggFn, into: &mut Option<Value>, v: &Value) {
    if into.as_ref().is_none_or(|cur| beats(f, v, cur)) {
        *into = Some(v.clone());
    }
}

impl Run {
    fn new(f: AggFn) -> Self {
        match f {
            AggFn::Count => Self::Count(0),
            AggFn::Sum => Self::Sum {
                int: 0,
                exact: RunningSum::default(),
                floats: 0,
                n: 0,
            },
            AggFn::Avg => Self::Avg {
                sum: RunningSum::default(),
                n: 0,
            },
            AggFn::StdDev => Self::StdDev {
                n: 0,
                sum: RunningSum::default(),
                sum_sq: RunningSum::default(),
            },
            AggFn::CountDistinct => Self::Distinct(BTreeMap::new()),
            AggFn::Min | AggFn::Max => Self::Extreme(None),
            AggFn::First | AggFn::Last => Self::Edge,
        }
    }

    /// Adds (or removes) an invertible pane accumulator. `Extreme` and `Edge` are handled by the
    /// caller.
    fn apply(&mut self, f: AggFn, acc: &Acc, remove: bool) {
        let step = |c: &mut u64, by: u64| {
            if remove {
                *c -= by;
            } else {
                *c += by;
            }
        };
        match (self, acc) {
            (Self::Count(c), Acc::Count(b)) => step(c, *b),
            (
                Self::Sum {
                    int,
                    exact,
                    floats,
                    n,
                },
                Acc::Sum {
                    int: i2,
                    exact: e2,
                    saw_float,
                    n: n2,
                },
            ) => {
                if remove {
                    *int -= i2;
                } else {
                    *int += i2;
                }
                exact.apply(e2, remove);
                step(floats, u64::from(*saw_float));
                step(n, *n2);
            }
            (Self::Avg { sum, n }, Acc::Avg { sum: s2, n: n2 }) => {
                sum.apply(s2, remove);
                step(n, *n2);
            }
            (
                Self::StdDev { n, sum, sum_sq },
                Acc::StdDev {
                    n: n2,
                    sum: s2,
                    sum_sq: q2,
                },
            ) => {
                step(n, *n2);
                sum.apply(s2, remove);
                sum_sq.apply(q2, remove);
            }
            (Self::Distinct(map), Acc::CountDistinct(set)) => {
                for v in set {
                    if remove {
                        if let Some(c) = map.get_mut(v) {
                            *c -= 1;
                            if *c == 0 {
                                map.remove(v);
                            }
                        }
                    } else {
                        *map.entry(v.clone()).or_insert(0) += 1;
                    }
                }
            }
            (Self::Extreme(back), acc) => {
                if !remove && let Some(v) = extreme_of(acc) {
                    combine(f, back, v);
                }
            }
            (Self::Edge, _) => {}
            _ => unreachable!("running state and accumulator of one aggregate match"),
        }
    }

    fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Self::Sum { exact, .. } => exact.approximate_size(),
                Self::Avg { sum, .. } => sum.approximate_size(),
                Self::StdDev { sum, sum_sq, .. } => {
                    sum.approximate_size() + sum_sq.approximate_size()
                }
                Self::Distinct(m) => m.keys().map(|v| v.approximate_size() + 24).sum(),
                Self::Extreme(Some(v)) => v.approximate_size(),
                _ => 0,
            }
    }
}

/// The running (prefix) state of one sliding partition.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// Panes starting before this are folded into `runs`.
    frontier: i64,
    /// Panes starting before this form the front stack (their `fold` is valid).
    boundary: i64,
    runs: Vec<Run>,
    has_extreme: bool,
    /// The last results, reused between windows.
    values: Vec<Value>,
    /// The last evicted pane, recycled for the next new slice.
    spare: Option<Pane>,
}

impl Running {
    pub(crate) fn new(aggs: &[Aggregate]) -> Self {
        Self {
            frontier: i64::MIN,
            boundary: i64::MIN,
            runs: aggs.iter().map(|a| Run::new(a.func)).collect(),
            has_extreme: aggs
                .iter()
                .any(|a| matches!(a.func, AggFn::Min | AggFn::Max)),
            values: Vec::with_capacity(aggs.len()),
            spare: None,
        }
    }

    /// Whether an event for a pane starting at `start` must go through [`Self::update`].
    #[inline]
    pub(crate) fn covers(&self, start: i64) -> bool {
        start < self.frontier
    }

    /// Applies one event (inputs `vals(j)` per aggregate) to pane `idx`, which is in the prefix
    /// (`covers(panes[idx].start)`), keeping the running state in step.
    pub(crate) fn update(
        &mut self,
        panes: &mut VecDeque<Pane>,
        idx: usize,
        aggs: &[Aggregate],
        vals: impl Fn(usize) -> Value,
        ts: i64,
        seq: u64,
    ) {
        let in_front = panes[idx].start < self.boundary;
        if in_front && self.has_extreme && panes[idx].fold.is_empty() {
            // A new pane inside the front stack: its fold starts as the next front pane's.
            let next = panes
                .get(idx + 1)
                .filter(|p| p.start < self.boundary && !p.fold.is_empty())
                .map(|p| p.fold.clone());
            panes[idx].fold = next.unwrap_or_else(|| vec![None; aggs.len()]);
        }
        panes[idx].count += 1;
        for (j, agg) in aggs.iter().enumerate() {
            let v = vals(j);
            let f = agg.func;
            match &mut self.runs[j] {
                Run::Extreme(back) => {
                    if !v.is_null() {
                        if in_front {
                            for p in panes.range_mut(..=idx).rev() {
                                let slot = &mut p.fold[j];
                                if slot.as_ref().is_none_or(|cur| beats(f, &v, cur)) {
                                    *slot = Some(v.clone());
                                } else {
                                    break;
                                }
                            }
                        } else {
                            combine(f, back, &v);
                        }
                    }
                    panes[idx].accs[j].update(v, ts, seq);
                }
                Run::Edge => panes[idx].accs[j].update(v, ts, seq),
                Run::Distinct(map) => {
                    if !v.is_null()
                        && let Acc::CountDistinct(set) = &panes[idx].accs[j]
                        && !set.contains(&v)
                    {
                        *map.entry(v.clone()).or_insert(0) += 1;
                    }
                    panes[idx].accs[j].update(v, ts, seq);
                }
                run => {
                    let acc = &mut panes[idx].accs[j];
                    run.apply(f, acc, true);
                    acc.update(v, ts, seq);
                    run.apply(f, acc, false);
                }
            }
        }
    }

    /// Folds in every pane starting before `end` (and after the current frontier).
    pub(crate) fn advance(&mut self, panes: &VecDeque<Pane>, end: i64, aggs: &[Aggregate]) {
        if end <= self.frontier {
            return;
        }
        let from = panes.partition_point(|p| p.start < self.frontier);
        for p in panes.range(from..).take_while(|p| p.start < end) {
            for ((run, agg), acc) in self.runs.iter_mut().zip(aggs).zip(&p.accs) {
                run.apply(agg.func, acc, false);
            }
        }
        self.frontier = end;
    }

    /// Removes an evicted pane (it was in the prefix).
    pub(crate) fn evict(&mut self, pane: &Pane, aggs: &[Aggregate]) {
        for ((run, agg), acc) in self.runs.iter_mut().zip(aggs).zip(&pane.accs) {
            run.apply(agg.func, acc, true);
        }
    }

    /// The results of the window made of every prefix pane (the caller has advanced the
    /// frontier to the window's end and evicted the panes before its start).
    pub(crate) fn results(
        &mut self,
        panes: &mut VecDeque<Pane>,
        aggs: &[Aggregate],
    ) -> &mut Vec<Value> {
        let frontier = self.frontier;
        let prefix_len = |panes: &VecDeque<Pane>| panes.partition_point(|p| p.start < frontier);
        if self.has_extreme && panes.front().is_none_or(|p| p.start >= self.boundary) {
            let m = prefix_len(panes);
            self.flip(panes, m, aggs);
        }
        self.values.clear();
        #[allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]
        let values = self
            .runs
            .iter()
            .zip(aggs)
            .enumerate()
            .map(|(j, (run, agg))| match run {
                // Same rules as `Acc::result`, without building an accumulator.
                Run::Count(c) => Value::Int(*c as i64),
                Run::Sum { n: 0, .. } | Run::Avg { n: 0, .. } => Value::Null,
                Run::Sum {
                    int, exact, floats, ..
                } => match (*floats, i64::try_from(*int)) {
                    (0, Ok(i)) => Value::Int(i),
                    _ => Value::Float(exact.value()),
                },
                Run::Avg { sum, n } => Value::Float(sum.value() / *n as f64),
                Run::StdDev { n, sum, sum_sq } => Acc::StdDev {
                    n: *n,
                    sum: sum.to_exact(),
                    sum_sq: sum_sq.to_exact(),
                }
                .result(),
                Run::Distinct(map) => Value::Int(map.len() as i64),
                Run::Extreme(back) => {
                    let mut best = panes
                        .front()
                        .filter(|p| p.start < self.boundary)
                        .and_then(|p| p.fold[j].clone());
                    if let Some(b) = back {
                        combine(agg.func, &mut best, b);
                    }
                    best.unwrap_or(Value::Null)
                }
                Run::Edge => {
                    let live = panes.range(..prefix_len(panes));
                    let found = if agg.func == AggFn::First {
                        live.map(|p| &p.accs[j]).find(|a| has_input(a))
                    } else {
                        live.rev().map(|p| &p.accs[j]).find(|a| has_input(a))
                    };
                    found.map_or(Value::Null, Acc::result)
                }
            });
        self.values.extend(values);
        &mut self.values
    }

    /// Makes every prefix pane part of the front stack: recomputes the folds back to front and
    /// empties the back stack.
    fn flip(&mut self, panes: &mut VecDeque<Pane>, m: usize, aggs: &[Aggregate]) {
        self.boundary = self.frontier;
        let mut acc: Vec<Option<Value>> = vec![None; aggs.len()];
        for p in panes.range_mut(..m).rev() {
            for (j, agg) in aggs.iter().enumerate() {
                if let Some(v) = extreme_of(&p.accs[j]) {
                    combine(agg.func, &mut acc[j], v);
                }
            }
            p.fold.clone_from(&acc);
        }
        for run in &mut self.runs {
            if let Run::Extreme(back) = run {
                *back = None;
            }
        }
    }

    /// Keeps an evicted pane for reuse.
    pub(crate) fn keep_spare(&mut self, pane: Pane) {
        self.spare = Some(pane);
    }

    /// The kept pane, if any.
    pub(crate) fn take_spare(&mut self) -> Option<Pane> {
        self.spare.take()
    }

    pub(crate) fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.runs.iter().map(Run::approximate_size).sum::<usize>()
            + self
                .spare
                .as_ref()
                .map_or(0, |p| p.accs.iter().map(Acc::approximate_size).sum())
    }
}

fn has_input(acc: &Acc) -> bool {
    matches!(acc, Acc::First(Some(_)) | Acc::Last(Some(_)))
}
