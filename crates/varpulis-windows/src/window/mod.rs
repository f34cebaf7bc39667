//! Window operators: tumbling, sliding, session and count windows, optionally partitioned.
//!
//! This module holds [`WindowOperator`] and its public API; the definition is in `spec.rs`,
//! per-partition state in `pane.rs`, window assignment and event-time arithmetic in
//! `assign.rs`, emission and the flush in `emit.rs`, and snapshot/restore to the
//! `varpulis-state` types in `snapshot.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use varpulis_core::{Event, EventTime, FieldRef, Value};
use varpulis_state::WindowSpecState;

use crate::WindowError;
use crate::agg::{Acc, Aggregate};
use crate::expr::Expr;

mod assign;
mod emit;
mod pane;
mod snapshot;
mod spec;

use assign::{Mode, accepted_times};
pub(crate) use pane::Pane;
use pane::Partition;
pub use spec::{WindowKind, WindowSpec};

/// Partition keys are hashed on every event; SipHash cost about a quarter of the per-event time
/// of a partitioned tumbling window. foldhash is a fast keyed hash with a random seed per map.
/// It is not a PRF, so it trades SipHash's hash-flooding resistance for speed: the seed never
/// leaves the process, so collisions cannot be precomputed offline, and output never depends on
/// the hash (results are sorted by key).
type KeyHasher = foldhash::fast::RandomState;

/// The open state of every partition, by key.
type Partitions = HashMap<Value, Partition, KeyHasher>;

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
    partitions: Partitions,
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
    /// Sliding windows of more than one slice keep a [`Running`](crate::running::Running) aggregate per partition.
    running: bool,
    /// The `partition_by` field, read by position (`spec.partition_by`'s name).
    partition_field: Option<FieldRef>,
}

impl WindowOperator {
    /// Builds an operator.
    ///
    /// # Errors
    /// [`WindowError::InvalidSpec`] for a non-positive size, gap below 0, a slide that is not in
    /// `1..=size`, negative lateness, or duplicate output names.
    pub fn new(spec: WindowSpec) -> Result<Self, WindowError> {
        let mode = Mode::of(spec.kind)?;
        if spec.allowed_lateness_ms < 0 {
            return Err(WindowError::InvalidSpec {
                reason: "allowed lateness must not be negative".into(),
            });
        }
        check_output_names(&spec.aggregates)?;
        let (inputs, input_of) = shared_inputs(&spec.aggregates);
        let running = matches!(mode, Mode::Sliced { size, slide, .. } if slide != size);
        let spec_partition_field = spec
            .partition_by
            .as_ref()
            .map(|f| FieldRef::new(Arc::clone(f)));
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
            partition_field: spec_partition_field,
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
        // An event interrupts a flush in progress: the next step starts from the windows left.
        self.flushing = None;
        // Every accepted time takes a sequence number, late events included.
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.is_late(ts) {
            self.late += 1;
            return Ok(Outcome::Late);
        }
        self.evaluate_inputs(event);
        let key = self.partition_key(event);
        if let Some(full) = self.assign_and_fold(key, ts, seq) {
            self.emit_count_window(key, &full, out);
        }
        Ok(Outcome::Accepted)
    }

    /// Evaluates each distinct aggregate input once for `event`, into `vals`.
    #[inline]
    fn evaluate_inputs(&mut self, event: &Event) {
        self.vals.clear();
        for e in &self.inputs {
            self.vals.push(e.eval(event));
        }
    }

    /// The partition `event` is routed to: its `partition_by` field, `Null` when missing or
    /// unpartitioned.
    #[inline]
    #[must_use]
    pub fn partition_key<'e>(&self, event: &'e Event) -> &'e Value {
        static NULL: Value = Value::Null;
        match &self.partition_field {
            Some(f) => f.get(event).unwrap_or(&NULL),
            None => &NULL,
        }
    }

    /// Emits the count window `pane` that the last event of partition `key` filled, and drops
    /// the partition (it holds nothing else).
    fn emit_count_window(&mut self, key: &Value, pane: &Pane, out: &mut Vec<WindowResult>) {
        let key = key.clone();
        self.partitions.remove(&key);
        out.push(self.result(pane.start, pane.end, key, &pane.accs));
    }

    /// The earliest watermark at which [`advance_watermark`](Self::advance_watermark) may emit
    /// a window (`None`: none is pending, or a count window). It may be earlier than needed (a
    /// timer of a partition that has since moved on): advancing to it then emits nothing. A
    /// caller that knows the watermark's future values can advance to exactly the ones that
    /// close windows.
    #[must_use]
    pub fn next_timer(&self) -> Option<EventTime> {
        self.timers.peek().map(|t| t.0.0)
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
}

/// Two aggregates may not share an output name. An aggregate may reuse the partition field's
/// name (`zone: last(zone)` in the seed's examples): its result then takes the key's place in
/// the output.
fn check_output_names(aggregates: &[Aggregate]) -> Result<(), WindowError> {
    let mut names: Vec<&str> = aggregates.iter().map(|a| &*a.alias).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(WindowError::InvalidSpec {
            reason: format!("output field {:?} defined twice", w[0]),
        }),
        None => Ok(()),
    }
}

/// The distinct aggregate inputs, and per aggregate the index of its input (`None` for
/// `count()`). Aggregates over the same input (same signature, hence the same computation by
/// the `Expr` contract) share one evaluation per event.
fn shared_inputs(aggregates: &[Aggregate]) -> (Vec<Arc<dyn Expr>>, Vec<Option<usize>>) {
    let mut inputs: Vec<Arc<dyn Expr>> = Vec::new();
    let mut signatures: Vec<String> = Vec::new();
    let input_of = aggregates
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
    (inputs, input_of)
}
