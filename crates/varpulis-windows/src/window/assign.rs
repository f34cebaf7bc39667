//! Window assignment: the operator's [`Mode`] per window kind, event-time arithmetic (accepted
//! times, next window, close time), the lateness test, and folding an event into the pane(s)
//! of its partition.

use std::cmp::Reverse;

use varpulis_core::Value;

use super::pane::{Pane, Partition};
use super::{WindowKind, WindowOperator};
use crate::WindowError;
use crate::agg::Aggregate;
use crate::running::Running;

/// The window kind as the operator computes with it: tumbling windows are sliding windows of
/// one slice.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    Sliced { size: i64, slide: i64, slice: i64 },
    Session { gap: i64 },
    Count { n: u64 },
}

impl Mode {
    /// The mode of `kind`.
    ///
    /// # Errors
    /// [`WindowError::InvalidSpec`] for a non-positive size, gap below 0, or a slide that is
    /// not in `1..=size`.
    pub(super) fn of(kind: WindowKind) -> Result<Self, WindowError> {
        Ok(match kind {
            WindowKind::Tumbling { size_ms } if size_ms > 0 => Self::Sliced {
                size: size_ms,
                slide: size_ms,
                slice: size_ms,
            },
            WindowKind::Sliding { size_ms, slide_ms }
                if size_ms > 0 && slide_ms > 0 && slide_ms <= size_ms =>
            {
                Self::Sliced {
                    size: size_ms,
                    slide: slide_ms,
                    slice: gcd(size_ms, slide_ms),
                }
            }
            WindowKind::Session { gap_ms } if gap_ms >= 0 => Self::Session { gap: gap_ms },
            WindowKind::Count { size } if size > 0 => Self::Count { n: size },
            other => {
                return Err(WindowError::InvalidSpec {
                    reason: format!("{other:?}: sizes must be positive and slide <= size"),
                });
            }
        })
    }
}

// Event-time arithmetic. Window bounds are computed in `i128`, where `i64` times, sizes and
// lateness cannot overflow, and brought back to `i64` only where the accepted range (see
// `accepted_times`) guarantees that they fit; `narrow` saturates instead of wrapping should an
// impossible state ever reach it.

/// `t` rounded down to a multiple of `m > 0`.
pub(super) fn floor_wide(t: i128, m: i64) -> i128 {
    match i64::try_from(t) {
        Ok(t64) => t - i128::from(t64.rem_euclid(m)),
        Err(_) => t - t.rem_euclid(i128::from(m)),
    }
}

/// `t` rounded up to a multiple of `m > 0`.
fn ceil_wide(t: i128, m: i64) -> i128 {
    -floor_wide(-t, m)
}

/// An `i128` that the accepted range keeps within `i64`; saturates, never wraps.
fn narrow(t: i128) -> i64 {
    i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
}

/// `t` rounded down to a multiple of `m > 0` (saturating at `i64::MIN`).
pub(super) fn floor_to(t: i64, m: i64) -> i64 {
    narrow(floor_wide(i128::from(t), m))
}

/// The event times, within `outputs`, that a window operator of this mode accepts and whose
/// every output timestamp lies in `outputs`: `(lo, hi)`, `None` when there is none.
///
/// An event time is accepted when every window it can belong to starts at or after `i64::MIN`
/// and closes, at a watermark that fits in `i64`. A tumbling/sliding window `[s, s + size)`
/// closes at `s + size + L`; a session whose last event is at `t` at `t + gap + L + 1` (strictly
/// past its end). Output timestamps are window ends (count windows: an event's time).
pub(super) fn accepted_times(mode: Mode, lat: i64, outputs: (i64, i64)) -> Option<(i64, i64)> {
    let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    let (c, d) = (i128::from(outputs.0), i128::from(outputs.1));
    let l = i128::from(lat);
    let (lo, hi) = match mode {
        Mode::Sliced { size, slide, .. } => {
            let (sz, sl) = (i128::from(size), i128::from(slide));
            // The windows containing t start from floor(t - size, slide) + slide (the earliest,
            // ending first) to floor(t, slide) (the latest, closing last).
            //   earliest start >= MIN   <=>  t >= ceil(MIN - slide, slide) + size
            //   earliest end >= c       <=>  t >= ceil(c - slide - size, slide) + size
            //   latest close <= MAX     <=>  t <= floor(MAX - size - L, slide) + slide - 1
            //   latest end <= d         <=>  t <= floor(d - size, slide) + slide - 1
            let lo = ceil_wide(min - sl, slide).max(ceil_wide(c - sl - sz, slide)) + sz;
            let hi = floor_wide(max - sz - l, slide).min(floor_wide(d - sz, slide)) + sl - 1;
            (lo, hi)
        }
        Mode::Session { gap } => {
            let g = i128::from(gap);
            // Closes at t + gap + L + 1 <= MAX; the session's end t + gap is its output time.
            (c - g, (max - g - l - 1).min(d - g))
        }
        Mode::Count { .. } => (c, d),
    };
    let (lo, hi) = (lo.max(min), hi.min(max));
    (lo <= hi).then(|| (narrow(lo), narrow(hi)))
}

/// The next window of `part` to emit, `(start, end)`, given that every window closed by
/// watermark `wm` was emitted. Count windows: the open pane's first and last event times.
pub(super) fn next_window(
    mode: Mode,
    lat: i64,
    part: &Partition,
    wm: Option<i64>,
) -> Option<(i64, i64)> {
    let first = part.panes.front()?;
    Some(match mode {
        Mode::Sliced { size, slide, slice } => {
            let (sz, sl) = (i128::from(size), i128::from(slide));
            // The earliest window containing the first slice...
            let mut s = ceil_wide(i128::from(first.start) + i128::from(slice) - sz, slide);
            // ...that a watermark did not close...
            if let Some(w) = wm {
                s = s.max(floor_wide(i128::from(w) - sz - i128::from(lat), slide) + sl);
            }
            // ...and that was not emitted already.
            if let Some(n) = part.next_start {
                s = s.max(i128::from(n));
            }
            (narrow(s), narrow(s + sz))
        }
        Mode::Session { gap } => (first.start, first.end.saturating_add(gap)),
        Mode::Count { .. } => (first.start, first.end),
    })
}

/// The watermark at which a window ending at `end` closes; `None` for count windows (they close
/// on their last event) and for a close time past `i64::MAX` (never reached: such windows are
/// not accepted).
pub(super) fn close_time(mode: Mode, lat: i64, end: i64) -> Option<i64> {
    match mode {
        Mode::Sliced { .. } => end.checked_add(lat),
        Mode::Session { .. } => end.checked_add(lat)?.checked_add(1),
        Mode::Count { .. } => None,
    }
}

/// The watermark at which `part`'s next window closes.
pub(super) fn next_close(mode: Mode, lat: i64, part: &Partition, wm: Option<i64>) -> Option<i64> {
    let (_, end) = next_window(mode, lat, part, wm)?;
    close_time(mode, lat, end)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WindowOperator {
    /// Whether every window the event at `ts` belongs to was already closed by the watermark.
    pub(super) fn is_late(&self, ts: i64) -> bool {
        let Some(wm) = self.watermark else {
            return false;
        };
        // An event at or after the watermark is never late (its last window ends after it).
        if ts >= wm {
            return false;
        }
        let lat = self.lateness;
        match self.mode {
            Mode::Sliced { size, slide, .. } => {
                // The event's last window closes at floor(ts, slide) + size + lateness.
                i128::from(wm)
                    >= floor_wide(i128::from(ts), slide) + i128::from(size) + i128::from(lat)
            }
            Mode::Session { .. } => ts.saturating_add(lat) < wm,
            Mode::Count { .. } => false,
        }
    }

    /// Folds the event at `ts`, whose aggregate inputs are in `vals`, into its window(s) in
    /// partition `key` (created when new), then arms the partition's timer if its close time
    /// moved earlier. Returns the count window the event filled, if any: its partition is left
    /// without panes, for the caller to emit and drop.
    #[inline]
    pub(super) fn assign_and_fold(&mut self, key: &Value, ts: i64, seq: u64) -> Option<Pane> {
        let (mode, lat, wm) = (self.mode, self.lateness, self.watermark);
        let aggs = &self.spec.aggregates;
        let val = input_values(&self.vals, &self.input_of);
        // Route to the partition of `key`, created empty if new (the key is cloned only then).
        // Inline rather than a function returning the borrow, which the borrow checker refuses.
        let part = match self.partitions.get_mut(key) {
            Some(p) => p,
            None => self
                .partitions
                .entry(key.clone())
                .or_insert_with(|| Partition {
                    run: self.running.then(|| Box::new(Running::new(aggs))),
                    ..Partition::default()
                }),
        };
        let close = match mode {
            Mode::Sliced { slice, .. } => {
                let new_front = fold_sliced(part, slice, aggs, val, ts, seq);
                // The close time depends on the first pane only.
                if !new_front && part.timer.is_some() {
                    return None;
                }
                next_close(mode, lat, part, wm)
            }
            Mode::Session { gap } => {
                fold_session(part, gap, aggs, val, ts, seq);
                next_close(mode, lat, part, wm)
            }
            // Count windows have no timer: they close on their last event.
            Mode::Count { n } => return fold_count(part, n, aggs, val, ts, seq),
        };
        if let Some(t) = close
            && part.timer.is_none_or(|cur| t < cur)
        {
            part.timer = Some(t);
            self.timers.push(Reverse((t, key.clone())));
        }
        None
    }
}

/// Aggregate `j`'s input for the current event: `vals[input_of[j]]`, or `true` for `count()`.
#[inline]
fn input_values<'a>(
    vals: &'a [Value],
    input_of: &'a [Option<usize>],
) -> impl Fn(usize) -> Value + Copy + 'a {
    move |j: usize| match input_of[j] {
        Some(i) => vals[i].clone(),
        None => Value::Bool(true),
    }
}

/// Sliding and tumbling windows: adds the event to its slice (created if new; most events fall
/// in the newest one) and to the running aggregate when it covers the slice. Returns whether the
/// slice is a new front pane (then the partition's close time changes).
#[inline]
fn fold_sliced(
    part: &mut Partition,
    slice: i64,
    aggs: &[Aggregate],
    val: impl Fn(usize) -> Value + Copy,
    ts: i64,
    seq: u64,
) -> bool {
    let panes = &mut part.panes;
    // Most events fall in the newest slice: no division then.
    let start = match panes.back() {
        Some(b) if b.start <= ts && ts < b.end => b.start,
        _ => floor_to(ts, slice),
    };
    let run = &mut part.run;
    // An accepted time's slice ends within its last window: no overflow.
    let end = start.saturating_add(slice);
    let mut new_pane = || {
        let spare = run.as_deref_mut().and_then(Running::take_spare);
        Pane::recycled(spare, start, end, aggs)
    };
    let (idx, new_front) = match panes.back() {
        Some(b) if b.start == start => (panes.len() - 1, false),
        Some(b) if b.start > start => match panes.binary_search_by(|p| p.start.cmp(&start)) {
            Ok(i) => (i, false),
            Err(i) => {
                panes.insert(i, new_pane());
                (i, i == 0)
            }
        },
        None => {
            panes.push_back(new_pane());
            (0, true)
        }
        _ => {
            panes.push_back(new_pane());
            (panes.len() - 1, false)
        }
    };
    match &mut part.run {
        Some(run) if run.covers(start) => run.update(panes, idx, aggs, val, ts, seq),
        _ => panes[idx].update(val, ts, seq),
    }
    new_front
}

/// Sessions: adds the event to the session it extends, a new one, or the merge of the two it
/// bridges.
#[inline]
fn fold_session(
    part: &mut Partition,
    gap: i64,
    aggs: &[Aggregate],
    val: impl Fn(usize) -> Value,
    ts: i64,
    seq: u64,
) {
    let panes = &mut part.panes;
    let pos = panes.partition_point(|p| p.start <= ts);
    let left = pos > 0 && panes[pos - 1].end.saturating_add(gap) >= ts;
    let right = pos < panes.len() && panes[pos].start.saturating_sub(gap) <= ts;
    let idx = match (left, right) {
        (false, false) => {
            panes.insert(pos, Pane::new(ts, ts, aggs));
            pos
        }
        (true, false) => pos - 1,
        (false, true) => pos,
        (true, true) => {
            let r = panes.remove(pos).expect("right session exists");
            let l = &mut panes[pos - 1];
            l.end = l.end.max(r.end);
            l.merge(&r);
            pos - 1
        }
    };
    let pane = &mut panes[idx];
    pane.start = pane.start.min(ts);
    pane.end = pane.end.max(ts);
    pane.update(val, ts, seq);
}

/// Count windows: adds the event to the partition's one open window; returns it, taken out of
/// the partition, when the event filled it.
#[inline]
fn fold_count(
    part: &mut Partition,
    n: u64,
    aggs: &[Aggregate],
    val: impl Fn(usize) -> Value,
    ts: i64,
    seq: u64,
) -> Option<Pane> {
    if part.panes.is_empty() {
        part.panes.push_back(Pane::new(ts, ts, aggs));
    }
    let pane = &mut part.panes[0];
    pane.end = ts;
    pane.update(val, ts, seq);
    if pane.count >= n {
        return Some(part.panes.pop_front().expect("pane exists"));
    }
    None
}
