//! Window operators: tumbling, sliding, session and count windows, optionally partitioned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use varpulis_checkpoint::state::{
    PaneState, PartitionState, WindowCheckpoint, WindowKindState, WindowSpecState,
};
use varpulis_core::{Event, EventTime, Value, format_duration_ms};

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

fn describe(s: &WindowSpecState) -> String {
    let d = |ms: i64| format_duration_ms(ms);
    let kind = match s.kind {
        WindowKindState::Tumbling { size_ms } => format!("tumbling {}", d(size_ms)),
        WindowKindState::Sliding { size_ms, slide_ms } => {
            format!("sliding {} every {}", d(size_ms), d(slide_ms))
        }
        WindowKindState::Session { gap_ms } => format!("session gap {}", d(gap_ms)),
        WindowKindState::Count { size } => format!("count {size}"),
    };
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

#[derive(Debug, Default)]
struct Partition {
    panes: VecDeque<Pane>,
    /// Close time of this partition's live timer entry.
    timer: Option<i64>,
    /// Sliding windows with more than one slice per window: the running aggregate.
    run: Option<Box<Running>>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Sliced { size: i64, slide: i64, slice: i64 },
    Session { gap: i64 },
    Count { n: u64 },
}

fn floor_to(t: i64, m: i64) -> i64 {
    t.div_euclid(m) * m
}

fn ceil_to(t: i64, m: i64) -> i64 {
    -floor_to(-t, m)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A window operator: assigns events to windows, keeps accumulators, emits each window once.
///
/// Feed events with [`process`](Self::process) and event-time progress with
/// [`advance_watermark`](Self::advance_watermark) (usually [`crate::WatermarkTracker`]'s
/// effective watermark after each event). No I/O, no clock.
#[derive(Debug)]
pub struct WindowOperator {
    spec: WindowSpec,
    spec_state: WindowSpecState,
    mode: Mode,
    lateness: i64,
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
        Ok(Self {
            spec_state: spec.state(),
            lateness: spec.allowed_lateness_ms,
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

    /// Processes one event. Count windows that fill up are pushed to `out` immediately; time
    /// windows are emitted by [`advance_watermark`](Self::advance_watermark).
    pub fn process(&mut self, event: &Event, out: &mut Vec<WindowResult>) -> Outcome {
        let ts = event.timestamp_ms();
        let seq = self.next_seq;
        self.next_seq += 1;
        let lat = self.lateness;
        if let Some(wm) = self.watermark
            // An event at or after the watermark is never late (its last window ends after it).
            && ts < wm
        {
            let late = match self.mode {
                Mode::Sliced { size, slide, .. } => {
                    wm >= floor_to(ts, slide).saturating_add(size).saturating_add(lat)
                }
                Mode::Session { .. } => ts.saturating_add(lat) < wm,
                Mode::Count { .. } => false,
            };
            if late {
                self.late += 1;
                return Outcome::Late;
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
        let close = match self.mode {
            Mode::Sliced { size, slide, slice } => {
                let panes = &mut part.panes;
                // Most events fall in the newest slice: no division then.
                let start = match panes.back() {
                    Some(b) if b.start <= ts && ts - b.start < slice => b.start,
                    _ => floor_to(ts, slice),
                };
                let run = &mut part.run;
                let mut new_pane = || {
                    let spare = run.as_deref_mut().and_then(Running::take_spare);
                    Pane::recycled(spare, start, start + slice, aggs)
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
                    return Outcome::Accepted;
                }
                Some(sliced_close_time(
                    panes[0].start,
                    size,
                    slide,
                    slice,
                    lat,
                    self.watermark,
                ))
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
                Some(session_close_time(panes[0].end, gap, lat))
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
                    return Outcome::Accepted;
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
        Outcome::Accepted
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
            if let Some(t) = self.next_close_time(&part) {
                part.timer = Some(t);
                self.timers.push(Reverse((t, key.clone())));
                *self.partitions.get_mut(&key).expect("partition exists") = part;
            } else {
                self.partitions.remove(&key);
            }
        }
        sort_results(&mut scratch);
        out.append(&mut scratch);
        self.scratch = scratch;
    }

    /// Emits every open window (end of input, `--flush-at-end`), in order of window end then
    /// partition key, and drops all window state. The watermark is unchanged.
    pub fn flush(&mut self, out: &mut Vec<WindowResult>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let parts: Vec<(Value, Partition)> = self.partitions.drain().collect();
        for (key, mut part) in parts {
            self.close_partition(&mut part, &key, None, self.watermark, &mut scratch);
        }
        self.timers.clear();
        sort_results(&mut scratch);
        out.append(&mut scratch);
        self.scratch = scratch;
    }

    fn next_close_time(&self, part: &Partition) -> Option<i64> {
        let first = part.panes.front()?;
        match self.mode {
            Mode::Sliced { size, slide, slice } => Some(sliced_close_time(
                first.start,
                size,
                slide,
                slice,
                self.lateness,
                self.watermark,
            )),
            Mode::Session { gap } => Some(session_close_time(first.end, gap, self.lateness)),
            Mode::Count { .. } => None,
        }
    }

    /// Closes the partition's windows due at `wm` (all of them when `wm` is `None`). `prev` is
    /// the watermark before this advance: windows it closed were already handled.
    fn close_partition(
        &self,
        part: &mut Partition,
        key: &Value,
        wm: Option<i64>,
        prev: Option<i64>,
        out: &mut Vec<WindowResult>,
    ) {
        let lat = self.lateness;
        match self.mode {
            Mode::Sliced { size, slide, slice } => {
                let limit = wm.map(|w| w.saturating_sub(size).saturating_sub(lat));
                let mut lb = prev
                    .map(|p| floor_to(p.saturating_sub(size).saturating_sub(lat), slide) + slide);
                while let Some(first) = part.panes.front() {
                    let mut s = ceil_to(first.start + slice - size, slide);
                    if let Some(lb) = lb {
                        s = s.max(lb);
                    }
                    if limit.is_some_and(|l| s > l) {
                        break;
                    }
                    let end = s + size;
                    let aggs = &self.spec.aggregates;
                    match part.run.as_deref_mut() {
                        None => {
                            let pane = part.panes.pop_front().expect("front exists");
                            out.push(self.result(s, end, key.clone(), &pane.accs));
                        }
                        Some(run) => {
                            run.advance(&part.panes, end, aggs);
                            let values = run.results(&mut part.panes, aggs);
                            out.push(self.result_of(s, end, key.clone(), values.drain(..)));
                        }
                    }
                    lb = Some(s + slide);
                    while part
                        .panes
                        .front()
                        .is_some_and(|f| floor_to(f.start, slide) <= s)
                    {
                        let pane = part.panes.pop_front().expect("front exists");
                        if let Some(run) = part.run.as_deref_mut() {
                            run.evict(&pane, aggs);
                            run.keep_spare(pane);
                        }
                    }
                }
            }
            Mode::Session { gap } => {
                while let Some(first) = part.panes.front() {
                    let close = first.end.saturating_add(gap);
                    if wm.is_some_and(|w| close.saturating_add(lat) >= w) {
                        break;
                    }
                    let pane = part.panes.pop_front().expect("front exists");
                    out.push(self.result(pane.start, close, key.clone(), &pane.accs));
                }
            }
            Mode::Count { .. } => {
                if wm.is_none()
                    && let Some(pane) = part.panes.pop_front()
                {
                    out.push(self.result(pane.start, pane.end, key.clone(), &pane.accs));
                }
            }
        }
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
                        p.start_ms.rem_euclid(slice) == 0 && p.end_ms == p.start_ms + slice
                    }
                    Mode::Session { .. } => p.start_ms <= p.end_ms,
                    Mode::Count { n } => p.count < n && ps.panes.len() == 1,
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
        let keys: Vec<Value> = self.partitions.keys().cloned().collect();
        for key in keys {
            let t = self.next_close_time(&self.partitions[&key]);
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

/// Watermark at which the next window of a sliced partition (first slice at `first`) closes.
fn sliced_close_time(
    first: i64,
    size: i64,
    slide: i64,
    slice: i64,
    lat: i64,
    wm: Option<i64>,
) -> i64 {
    let mut s = ceil_to(first + slice - size, slide);
    if let Some(w) = wm {
        s = s.max(floor_to(w.saturating_sub(size).saturating_sub(lat), slide) + slide);
    }
    s.saturating_add(size).saturating_add(lat)
}

/// Watermark at which a session whose last event is at `last` closes (strictly past the gap).
fn session_close_time(last: i64, gap: i64, lat: i64) -> i64 {
    last.saturating_add(gap)
        .saturating_add(lat)
        .saturating_add(1)
}
