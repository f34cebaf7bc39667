//! Window operators: tumbling, sliding, session and count windows, optionally partitioned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;

use varpulis_core::{Event, EventTime, Value, format_duration_ms};
use varpulis_state::{
    PaneState, PartitionState, WindowCheckpoint, WindowKindState, WindowSpecState,
};

use crate::expr::Expr;

use crate::WindowError;
use crate::agg::{Acc, Aggregate};
/// Partition keys are hashed on every event; SipHash cost about a quarter of the per-event time
/// of a partitioned tumbling window. foldhash is a fast keyed hash with a random seed per map.
/// It is not a PRF, so it trades SipHash's hash-flooding resistance for speed: the seed never
/// leaves the process, so collisions cannot be precomputed offline, and output never depends on
/// the hash (results are sorted by key).
type KeyHasher = foldhash::fast::RandomState;
use crate::running::Running;

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowKind {
    /// `[k*size, (k+1)*size)`, aligned to the epoch.
    Tumbling {
        /// Window size in milliseconds.
        size_ms: i64,
    },
    /// Windows of `size` starting at every multiple of `slide` (aligned to the epoch).
    Sliding {
        /// Window size in milliseconds.
        size_ms: i64,
        /// Slide in milliseconds (`<= size`).
        slide_ms: i64,
    },
    /// Sessions: an event at most `gap` after a session's last event (or before its first)
    /// joins it.
    Session {
        /// Inactivity gap in milliseconds.
        gap_ms: i64,
    },
    /// Every `size` events (per partition), in arrival order.
    Count {
        /// Events per window.
        size: u64,
    },
}

/// The definition of a window operator.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    name: Arc<str>,
    kind: WindowKind,
    partition_by: Option<Arc<str>>,
    aggregates: Vec<Aggregate>,
    allowed_lateness_ms: i64,
}

impl WindowSpec {
    /// A window operator for stream `name` (the output event type).
    pub fn new(name: impl Into<Arc<str>>, kind: WindowKind) -> Self {
        Self {
            name: name.into(),
            kind,
            partition_by: None,
            aggregates: Vec::new(),
            allowed_lateness_ms: 0,
        }
    }

    /// Tumbling windows of `size_ms`.
    pub fn tumbling(name: impl Into<Arc<str>>, size_ms: i64) -> Self {
        Self::new(name, WindowKind::Tumbling { size_ms })
    }

    /// Sliding windows of `size_ms` every `slide_ms`.
    pub fn sliding(name: impl Into<Arc<str>>, size_ms: i64, slide_ms: i64) -> Self {
        Self::new(name, WindowKind::Sliding { size_ms, slide_ms })
    }

    /// Session windows with inactivity gap `gap_ms`.
    pub fn session(name: impl Into<Arc<str>>, gap_ms: i64) -> Self {
        Self::new(name, WindowKind::Session { gap_ms })
    }

    /// Count windows of `size` events.
    pub fn count(name: impl Into<Arc<str>>, size: u64) -> Self {
        Self::new(name, WindowKind::Count { size })
    }

    /// Partitions by `field` (a missing field is the `Null` partition).
    #[must_use]
    pub fn partition_by(mut self, field: impl Into<Arc<str>>) -> Self {
        self.partition_by = Some(field.into());
        self
    }

    /// Adds an output aggregate.
    #[must_use]
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregates.push(aggregate);
        self
    }

    /// Keeps time windows open `ms` past their end (default 0).
    #[must_use]
    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.allowed_lateness_ms = ms;
        self
    }

    /// The window kind and size, and the allowed lateness when there is one, for messages:
    /// `tumbling 1d`, `sliding 1d every 1ms`, `session gap 5s with allowed lateness 1s`,
    /// `count 100`.
    #[must_use]
    pub fn describe_window(&self) -> String {
        let state = self.state();
        let mut s = describe_kind(&state.kind);
        if state.allowed_lateness_ms != 0 {
            s.push_str(" with allowed lateness ");
            s.push_str(&format_duration_ms(state.allowed_lateness_ms));
        }
        s
    }

    /// The definition as recorded in checkpoints.
    #[must_use]
    pub fn state(&self) -> WindowSpecState {
        WindowSpecState {
            kind: match self.kind {
                WindowKind::Tumbling { size_ms } => WindowKindState::Tumbling { size_ms },
                WindowKind::Sliding { size_ms, slide_ms } => {
                    WindowKindState::Sliding { size_ms, slide_ms }
                }
                WindowKind::Session { gap_ms } => WindowKindState::Session { gap_ms },
                WindowKind::Count { size } => WindowKindState::Count { size },
            },
            partition_by: self.partition_by.as_deref().map(str::to_owned),
            aggregates: self.aggregates.iter().map(Aggregate::signature).collect(),
            allowed_lateness_ms: self.allowed_lateness_ms,
        }
    }
}

fn describe_kind(kind: &WindowKindState) -> String {
    let d = |ms: i64| format_duration_ms(ms);
    match *kind {
        WindowKindState::Tumbling { size_ms } => format!("tumbling {}", d(size_ms)),
        WindowKindState::Sliding { size_ms, slide_ms } => {
            format!("sliding {} every {}", d(size_ms), d(slide_ms))
        }
        WindowKindState::Session { gap_ms } => format!("session gap {}", d(gap_ms)),
        WindowKindState::Count { size } => format!("count {size}"),
    }
}

fn describe(s: &WindowSpecState) -> String {
    let d = |ms: i64| format_duration_ms(ms);
    let kind = describe_kind(&s.kind);
    let part = s
        .partition_by
        .as_ref()
        .map(|p| format!(" partition_by {p}"))
        .unwrap_or_default();
    format!(
        "{kind}{part} [{}] lateness {}",
        s.aggregates.join(", "),
        d(s.allowed_lateness_ms)
    )
}

/// What happened to a processed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Added to its open window(s).
    Accepted,
    /// Every window it belongs to was already emitted: dropped and counted. The caller routes
    /// the event to the late side output.
    Late,
}

/// One emitted window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    /// Window start (sessions and count windows: first event's time).
    pub start_ms: EventTime,
    /// Window end: exclusive end for tumbling/sliding, last event + gap for sessions, last
    /// event's time for count windows. Also the output event's timestamp.
    pub end_ms: EventTime,
    /// Partition key (`Null` when unpartitioned).
    pub key: Value,
    /// The output event: type = stream name, fields = partition field (if any) then every
    /// aggregate alias in definition order.
    pub event: Event,
}

#[derive(Debug, Clone)]
pub(crate) struct Pane {
    pub(crate) start: i64,
    end: i64,
    pub(crate) count: u64,
    pub(crate) accs: Vec<Acc>,
    /// Sliding windows, `min`/`max`: the two-stacks fold (see `running.rs`). Runtime only.
    pub(crate) fold: Vec<Option<Value>>,
}

impl Pane {
    fn new(start: i64, end: i64, aggs: &[Aggregate]) -> Self {
        Self {
            start,
            end,
            count: 0,
            accs: aggs.iter().map(|a| Acc::new(a.func)).collect(),
            fold: Vec::new(),
        }
    }

    /// A new empty pane, reusing `spare`'s allocations when there is one.
    fn recycled(spare: Option<Self>, start: i64, end: i64, aggs: &[Aggregate]) -> Self {
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
    fn update(&mut self, vals: impl Fn(usize) -> Value, ts: i64, seq: u64) {
        self.count += 1;
        for (j, acc) in self.accs.iter_mut().enumerate() {
            acc.update(vals(j), ts, seq);
        }
    }

    fn merge(&mut self, other: &Self) {
        self.count += other.count;
        for (a, b) in self.accs.iter_mut().zip(&other.accs) {
            a.merge(b);
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Partition {
    panes: VecDeque<Pane>,
    /// Close time of this partition's live timer entry.
    timer: Option<i64>,
    /// Sliding and tumbling windows: no window starting before this was emitted yet, it was
    /// already emitted (set by every emission; a flush emits windows the watermark has not
    /// closed). Runtime only: after a restore the watermark gives the same bound.
    next_start: Option<i64>,
    /// Sliding windows with more than one slice per window: the running aggregate.
    run: Option<Box<Running>>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Sliced { size: i64, slide: i64, slice: i64 },
    Session { gap: i64 },
    Count { n: u64 },
}

// Event-time arithmetic. Window bounds are computed in `i128`, where `i64` times, sizes and
// lateness cannot overflow, and brought back to `i64` only where the accepted range (see
// `accepted_times`) guarantees that they fit; `narrow` saturates instead of wrapping should an
// impossible state ever reach it.

/// `t` rounded down to a multiple of `m > 0`.
fn floor_wide(t: i128, m: i64) -> i128 {
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
fn floor_to(t: i64, m: i64) -> i64 {
    narrow(floor_wide(i128::from(t), m))
}

/// The event times, within `outputs`, that a window operator of this mode accepts and whose
/// every output timestamp lies in `outputs`: `(lo, hi)`, `None` when there is none.
///
/// An event time is accepted when every window it can belong to starts at or after `i64::MIN`
/// and closes, at a watermark that fits in `i64`. A tumbling/sliding window `[s, s + size)`
/// closes at `s + size + L`; a session whose last event is at `t` at `t + gap + L + 1` (strictly
/// past its end). Output timestamps are window ends (count windows: an event's time).
fn accepted_times(mode: Mode, lat: i64, outputs: (i64, i64)) -> Option<(i64, i64)> {
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
fn next_window(mode: Mode, lat: i64, part: &Partition, wm: Option<i64>) -> Option<(i64, i64)> {
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
fn close_time(mode: Mode, lat: i64, end: i64) -> Option<i64> {
    match mode {
        Mode::Sliced { .. } => end.checked_add(lat),
        Mode::Session { .. } => end.checked_add(lat)?.checked_add(1),
        Mode::Count { .. } => None,
    }
}

/// The watermark at which `part`'s next window closes.
fn next_close(mode: Mode, lat: i64, part: &Partition, wm: Option<i64>) -> Option<i64> {
    let (_, end) = next_window(mode, lat, part, wm)?;
    close_time(mode, lat, end)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A window operator: assigns events to windows, keeps accumulators, emits each window once.
///
/// Feed events with [`process`](Self::process) and event-time progress with
/// [`advance_watermark`](Self::advance_watermark) (usually [`crate::WatermarkTracker`]'s
/// effective watermark after each event). No I/O, no clock.
#[derive(Debug, Clone)]
pub struct WindowOperator {
    spec: WindowSpec,
    spec_state: WindowSpecState,
    mode: Mode,
    lateness: i64,
    /// The accepted event times `lo..=hi` (empty when `lo > hi`); see `accepted_times`.
    lo: i64,
    hi: i64,
    /// A flush in progress: the next window end of every partition with windows left, with its
    /// key (smallest first).
    flushing: Option<BinaryHeap<Reverse<(i64, Value)>>>,
    partitions: HashMap<Value, Partition, KeyHasher>,
    timers: BinaryHeap<Reverse<(i64, Value)>>,
    watermark: Option<i64>,
    late: u64,
    next_seq: u64,
    scratch: Vec<WindowResult>,
    /// Distinct aggregate inputs (by signature), evaluated once per event into `vals`.
    inputs: Vec<Arc<dyn Expr>>,
    /// Per aggregate: index into `inputs`, or `None` for `count()`.
    input_of: Vec<Option<usize>>,
    vals: Vec<Value>,
    /// Sliding windows of more than one slice keep a [`Running`] aggregate per partition.
    running: bool,
}

impl WindowOperator {
    /// Builds an operator.
    ///
    /// # Errors
    /// [`WindowError::InvalidSpec`] for a non-positive size, gap below 0, a slide that is not in
    /// `1..=size`, negative lateness, or duplicate output names.
    pub fn new(spec: WindowSpec) -> Result<Self, WindowError> {
        let invalid = |reason: String| Err(WindowError::InvalidSpec { reason });
        let mode = match spec.kind {
            WindowKind::Tumbling { size_ms } if size_ms > 0 => Mode::Sliced {
                size: size_ms,
                slide: size_ms,
                slice: size_ms,
            },
            WindowKind::Sliding { size_ms, slide_ms }
                if size_ms > 0 && slide_ms > 0 && slide_ms <= size_ms =>
            {
                Mode::Sliced {
                    size: size_ms,
                    slide: slide_ms,
                    slice: gcd(size_ms, slide_ms),
                }
            }
            WindowKind::Session { gap_ms } if gap_ms >= 0 => Mode::Session { gap: gap_ms },
            WindowKind::Count { size } if size > 0 => Mode::Count { n: size },
            other => {
                return invalid(format!(
                    "{other:?}: sizes must be positive and slide <= size"
                ));
            }
        };
        if spec.allowed_lateness_ms < 0 {
            return invalid("allowed lateness must not be negative".into());
        }
        // An aggregate may reuse the partition field's name (`zone: last(zone)` in the seed's
        // examples): its result then takes the key's place in the output. Two aggregates may not
        // share a name.
        let mut names: Vec<&str> = spec.aggregates.iter().map(|a| &*a.alias).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return invalid(format!("output field {:?} defined twice", w[0]));
        }
        // Aggregates over the same input (same signature, hence the same computation by the
        // `Expr` contract) share one evaluation per event.
        let mut inputs: Vec<Arc<dyn Expr>> = Vec::new();
        let mut signatures: Vec<String> = Vec::new();
        let input_of = spec
            .aggregates
            .iter()
            .map(|a| {
                let e = a.input.as_ref()?;
                let sig = e.signature();
                Some(match signatures.iter().position(|s| *s == sig) {
                    Some(i) => i,
                    None => {
                        signatures.push(sig);
                        inputs.push(e.clone());
                        inputs.len() - 1
                    }
                })
            })
            .collect();
        let running = matches!(mode, Mode::Sliced { size, slide, .. } if slide != size);
        let (lo, hi) =
            accepted_times(mode, spec.allowed_lateness_ms, (i64::MIN, i64::MAX)).unwrap_or((1, 0));
        Ok(Self {
            spec_state: spec.state(),
            lateness: spec.allowed_lateness_ms,
            lo,
            hi,
            flushing: None,
            spec,
            mode,
            partitions: HashMap::with_hasher(KeyHasher::default()),
            timers: BinaryHeap::new(),
            watermark: None,
            late: 0,
            next_seq: 0,
            scratch: Vec::new(),
            inputs,
            input_of,
            vals: Vec::new(),
            running,
        })
    }

    /// The definition.
    #[must_use]
    pub fn spec(&self) -> &WindowSpec {
        &self.spec
    }

    /// The operator's watermark (the largest passed to `advance_watermark`).
    #[must_use]
    pub fn watermark(&self) -> Option<EventTime> {
        self.watermark
    }

    /// Late events dropped so far.
    #[must_use]
    pub fn late_events_dropped(&self) -> u64 {
        self.late
    }

    /// Partitions holding open state.
    #[must_use]
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// The event times [`process`](Self::process) accepts (`None`: none). A time is accepted
    /// when every window it can belong to starts at or after `i64::MIN` and is closed by a
    /// watermark that fits in `i64`: `end + allowed_lateness` for tumbling and sliding windows,
    /// `event + gap + allowed_lateness + 1` for sessions. Count windows accept every time.
    #[must_use]
    pub fn accepted_event_times(&self) -> Option<RangeInclusive<EventTime>> {
        (self.lo <= self.hi).then_some(self.lo..=self.hi)
    }

    /// The accepted event times whose every output timestamp (window end; count windows: an
    /// event's time) lies in `outputs`: what a caller feeding this operator's output to another
    /// operator may accept, so that an event is refused before it changes anything rather than
    /// downstream. `None` when there is no such time.
    #[must_use]
    pub fn event_times_with_outputs_in(
        &self,
        outputs: RangeInclusive<EventTime>,
    ) -> Option<RangeInclusive<EventTime>> {
        let (lo, hi) =
            accepted_times(self.mode, self.lateness, (*outputs.start(), *outputs.end()))?;
        Some(lo.max(self.lo)..=hi.min(self.hi)).filter(|r| r.start() <= r.end())
    }

    /// The earliest and latest event times held in open windows (time windows: of the slices
    /// held), `None` when no window is open. A restored state holds only
    /// [accepted](Self::accepted_event_times) times.
    #[must_use]
    pub fn held_event_times(&self) -> Option<RangeInclusive<EventTime>> {
        let sliced = matches!(self.mode, Mode::Sliced { .. });
        let panes = self.partitions.values().flat_map(|p| p.panes.iter());
        let lo = panes.clone().map(|p| p.start).min()?;
        let hi = panes
            .map(|p| {
                if sliced {
                    p.end.saturating_sub(1)
                } else {
                    p.end
                }
            })
            .max()?;
        Some(lo..=hi)
    }

    fn unrepresentable(&self, ts: EventTime) -> WindowError {
        WindowError::UnrepresentableTime {
            event_time_ms: ts,
            window: self.spec.describe_window(),
            accepted: self.accepted_event_times(),
        }
    }

    /// Processes one event. Count windows that fill up are pushed to `out` immediately; time
    /// windows are emitted by [`advance_watermark`](Self::advance_watermark).
    ///
    /// # Errors
    /// [`WindowError::UnrepresentableTime`] when the event's time is outside
    /// [`accepted_event_times`](Self::accepted_event_times); the operator is then unchanged.
    pub fn process(
        &mut self,
        event: &Event,
        out: &mut Vec<WindowResult>,
    ) -> Result<Outcome, WindowError> {
        let ts = event.timestamp_ms();
        if ts < self.lo || ts > self.hi {
            return Err(self.unrepresentable(ts));
        }
        self.flushing = None;
        let seq = self.next_seq;
        self.next_seq += 1;
        let lat = self.lateness;
        if let Some(wm) = self.watermark
            // An event at or after the watermark is never late (its last window ends after it).
            && ts < wm
        {
            let late = match self.mode {
                Mode::Sliced { size, slide, .. } => {
                    // The event's last window closes at floor(ts, slide) + size + lateness.
                    i128::from(wm)
                        >= floor_wide(i128::from(ts), slide) + i128::from(size) + i128::from(lat)
                }
                Mode::Session { .. } => ts.saturating_add(lat) < wm,
                Mode::Count { .. } => false,
            };
            if late {
                self.late += 1;
                return Ok(Outcome::Late);
            }
        }
        // Each distinct input once per event.
        self.vals.clear();
        for e in &self.inputs {
            self.vals.push(e.eval(event));
        }
        let (vals, input_of) = (&self.vals, &self.input_of);
        let val = |j: usize| match input_of[j] {
            Some(i) => vals[i].clone(),
            None => Value::Bool(true),
        };
        const NULL: Value = Value::Null;
        let key: &Value = match &self.spec.partition_by {
            Some(f) => event.get(f).unwrap_or(&NULL),
            None => &NULL,
        };
        let aggs = &self.spec.aggregates;
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
        let (mode, wm) = (self.mode, self.watermark);
        let close = match self.mode {
            Mode::Sliced { slice, .. } => {
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
                    Some(b) if b.start > start => {
                        match panes.binary_search_by(|p| p.start.cmp(&start)) {
                            Ok(i) => (i, false),
                            Err(i) => {
                                panes.insert(i, new_pane());
                                (i, i == 0)
                            }
                        }
                    }
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
                // The close time depends on the first pane only.
                if !new_front && part.timer.is_some() {
                    return Ok(Outcome::Accepted);
                }
                next_close(mode, lat, part, wm)
            }
            Mode::Session { gap } => {
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
                next_close(mode, lat, part, wm)
            }
            Mode::Count { n } => {
                if part.panes.is_empty() {
                    part.panes.push_back(Pane::new(ts, ts, aggs));
                }
                let pane = &mut part.panes[0];
                pane.end = ts;
                pane.update(val, ts, seq);
                if pane.count >= n {
                    let pane = part.panes.pop_front().expect("pane exists");
                    let key = key.clone();
                    self.partitions.remove(&key);
                    out.push(self.result(pane.start, pane.end, key, &pane.accs));
                    return Ok(Outcome::Accepted);
                }
                None
            }
        };
        if let Some(t) = close
            && part.timer.is_none_or(|cur| t < cur)
        {
            part.timer = Some(t);
            self.timers.push(Reverse((t, key.clone())));
        }
        Ok(Outcome::Accepted)
    }

    fn result(&self, start: i64, end: i64, key: Value, accs: &[Acc]) -> WindowResult {
        self.result_of(start, end, key, accs.iter().map(Acc::result))
    }

    fn result_of(
        &self,
        start: i64,
        end: i64,
        key: Value,
        values: impl IntoIterator<Item = Value>,
    ) -> WindowResult {
        let mut event = Event::new(self.spec.name.clone(), end);
        if let Some(f) = &self.spec.partition_by {
            event.set(f.clone(), key.clone());
        }
        for (agg, v) in self.spec.aggregates.iter().zip(values) {
            event.set(agg.alias.clone(), v);
        }
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

    /// Approximate bytes of state held (partitions, panes, accumulators, timers), for metrics
    /// and quotas.
    #[must_use]
    pub fn approximate_state_bytes(&self) -> usize {
        let panes: usize = self
            .partitions
            .iter()
            .map(|(k, p)| {
                k.approximate_size()
                    + std::mem::size_of::<Partition>()
                    + 8
                    + p.run.as_ref().map_or(0, |r| r.approximate_size())
                    + p.panes
                        .iter()
                        .map(|pane| {
                            std::mem::size_of::<Pane>()
                                + pane.accs.iter().map(Acc::approximate_size).sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + panes
            + self.timers.len() * std::mem::size_of::<(i64, Value)>()
    }

    /// The operator's state, in checkpoint form (partitions sorted by key).
    #[must_use]
    pub fn snapshot(&self) -> WindowCheckpoint {
        let mut partitions: Vec<PartitionState> = self
            .partitions
            .iter()
            .map(|(k, p)| PartitionState {
                key: k.clone(),
                panes: p
                    .panes
                    .iter()
                    .map(|pane| PaneState {
                        start_ms: pane.start,
                        end_ms: pane.end,
                        count: pane.count,
                        accumulators: pane.accs.iter().map(Acc::to_state).collect(),
                    })
                    .collect(),
                events: Vec::new(),
            })
            .collect();
        partitions.sort_by(|a, b| a.key.cmp(&b.key));
        WindowCheckpoint {
            spec: self.spec_state.clone(),
            partitions,
            late_events_dropped: self.late,
            watermark_ms: self.watermark,
            next_seq: self.next_seq,
        }
    }

    /// Replaces the operator's state with a checkpoint's.
    ///
    /// # Errors
    /// [`WindowError::IncompatibleState`] when the checkpoint was taken under another definition
    /// (kind, sizes, partitioning, aggregates, lateness); [`WindowError::CorruptState`] when its
    /// contents are impossible for this definition. On error the operator is unchanged.
    pub fn restore(&mut self, cp: &WindowCheckpoint) -> Result<(), WindowError> {
        if cp.spec != self.spec_state {
            return Err(WindowError::IncompatibleState {
                expected: describe(&self.spec_state),
                found: describe(&cp.spec),
            });
        }
        let corrupt = |reason: String| Err(WindowError::CorruptState { reason });
        let aggs = &self.spec.aggregates;
        let mut partitions =
            HashMap::with_capacity_and_hasher(cp.partitions.len(), KeyHasher::default());
        for ps in &cp.partitions {
            if ps.panes.is_empty() || !ps.events.is_empty() {
                return corrupt(format!("partition {} has no panes or raw events", ps.key));
            }
            let mut panes = VecDeque::with_capacity(ps.panes.len());
            for p in &ps.panes {
                if p.accumulators.len() != aggs.len() || p.count == 0 {
                    return corrupt(format!("pane at {} in partition {}", p.start_ms, ps.key));
                }
                let ok = match self.mode {
                    Mode::Sliced { slice, .. } => {
                        p.start_ms.rem_euclid(slice) == 0
                            && p.start_ms.checked_add(slice) == Some(p.end_ms)
                    }
                    Mode::Session { .. } => p.start_ms <= p.end_ms,
                    Mode::Count { n } => p.count < n && ps.panes.len() == 1,
                };
                // Accepted times only (the accepted range is a union of whole slices).
                let accepted = |t: i64| self.lo <= t && t <= self.hi;
                let ok = ok
                    && match self.mode {
                        Mode::Sliced { .. } => accepted(p.start_ms),
                        Mode::Session { .. } | Mode::Count { .. } => {
                            accepted(p.start_ms) && accepted(p.end_ms)
                        }
                    };
                if !ok || panes.back().is_some_and(|b: &Pane| b.start >= p.start_ms) {
                    return corrupt(format!("pane at {} in partition {}", p.start_ms, ps.key));
                }
                let accs = aggs
                    .iter()
                    .zip(&p.accumulators)
                    .map(|(a, s)| Acc::from_state(a.func, s))
                    .collect::<Result<Vec<_>, _>>()?;
                panes.push_back(Pane {
                    start: p.start_ms,
                    end: p.end_ms,
                    count: p.count,
                    accs,
                    fold: Vec::new(),
                });
            }
            let part = Partition {
                panes,
                timer: None,
                next_start: None,
                run: self.running.then(|| Box::new(Running::new(aggs))),
            };
            if partitions.insert(ps.key.clone(), part).is_some() {
                return corrupt(format!("partition {} appears twice", ps.key));
            }
        }
        self.partitions = partitions;
        self.watermark = cp.watermark_ms;
        self.late = cp.late_events_dropped;
        self.next_seq = cp.next_seq;
        self.timers.clear();
        self.flushing = None;
        let keys: Vec<Value> = self.partitions.keys().cloned().collect();
        for key in keys {
            let t = next_close(
                self.mode,
                self.lateness,
                &self.partitions[&key],
                self.watermark,
            );
            if let Some(t) = t {
                self.partitions.get_mut(&key).expect("key exists").timer = Some(t);
                self.timers.push(Reverse((t, key)));
            }
        }
        Ok(())
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
    use crate::AggFn;

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
