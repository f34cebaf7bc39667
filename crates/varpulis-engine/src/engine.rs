//! The engine: a compiled VPL program, its operators, watermarks, variables and counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_checkpoint::EngineCheckpoint;
use varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION;
use varpulis_core::{Event, EventTime, Value};
use varpulis_vpl::{Program, Scope, Source, StreamPlan, WindowKind};
use varpulis_windows::{
    Aggregate, Outcome, WatermarkTracker, WindowError, WindowOperator, WindowResult, WindowSpec,
};

/// The name of the engine's context in a [`Checkpoint`](varpulis_checkpoint::Checkpoint).
pub const CONTEXT: &str = "main";

/// Errors of building or restoring an [`Engine`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A stream's window could not be built or its state restored.
    #[error("stream {stream}")]
    Window {
        /// The stream.
        stream: String,
        /// What the window operator said.
        #[source]
        source: WindowError,
    },
    /// The checkpoint holds window state for a stream the program does not define.
    #[error(
        "the checkpoint holds window state for stream {stream}, which the program does not \
         define; use the program the checkpoint was taken with, or start from an empty state \
         directory"
    )]
    UnknownStream {
        /// The stream named by the checkpoint.
        stream: String,
    },
    /// An input event's time cannot be represented by a window it would reach: the stream's own
    /// window (or, for a stream fed by another, the window of a stream downstream that would
    /// receive a result carrying a later time) would start before `i64::MIN` or close after
    /// `i64::MAX`. Nothing was changed by the event.
    #[error(
        "event time {event_time_ms} (stream {stream}): its {window} window cannot be represented"
    )]
    UnrepresentableTime {
        /// The stream whose window cannot represent it.
        stream: String,
        /// The input event's time.
        event_time_ms: EventTime,
        /// That stream's window, e.g. `tumbling 1d`.
        window: String,
    },
    /// The checkpoint was written by a newer engine.
    #[error(
        "engine checkpoint version {found} is newer than this release reads ({ENGINE_CHECKPOINT_VERSION})"
    )]
    UnsupportedVersion {
        /// Version found.
        found: u32,
    },
}

/// A VPL expression as a window aggregate input: evaluated against the event and the program
/// variables.
#[derive(Debug)]
struct VplExpr {
    expr: varpulis_vpl::Expr,
    variables: Arc<BTreeMap<String, Value>>,
}

impl varpulis_windows::Expr for VplExpr {
    fn eval(&self, event: &Event) -> Value {
        self.expr.eval(
            &Scope::empty()
                .with_event(event)
                .with_variables(&self.variables),
        )
    }
    fn signature(&self) -> String {
        self.expr.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Events of this type from the input (index into `Engine::source_types`).
    Event,
    /// Outputs of the stream at this index (an earlier one: streams are in dependency order).
    Stream(usize),
}

#[derive(Debug, Clone)]
struct CompiledStream {
    plan: StreamPlan,
    input: Input,
    window: Option<WindowOperator>,
    /// How far behind the effective watermark this stream's operator watermark is: the
    /// allowed lateness of every windowed stream upstream, so that an upstream window emitted
    /// late is never late here.
    watermark_lag_ms: i64,
}

/// The input event times a stream (or a source type) accepts: the times its window and every
/// window downstream can represent, for the event and for every result it leads to. `low_by`
/// and `high_by` name the stream whose window sets each bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accepts {
    range: Option<(EventTime, EventTime)>,
    low_by: usize,
    high_by: usize,
}

impl Accepts {
    fn everything(by: usize) -> Self {
        Self {
            range: Some((EventTime::MIN, EventTime::MAX)),
            low_by: by,
            high_by: by,
        }
    }

    fn nothing(by: usize) -> Self {
        Self {
            range: None,
            low_by: by,
            high_by: by,
        }
    }

    fn intersect(self, other: Self) -> Self {
        match (self.range, other.range) {
            (None, _) => self,
            (_, None) => other,
            (Some((a, b)), Some((c, d))) => {
                let (lo, low_by) = if c > a {
                    (c, other.low_by)
                } else {
                    (a, self.low_by)
                };
                let (hi, high_by) = if d < b {
                    (d, other.high_by)
                } else {
                    (b, self.high_by)
                };
                Self {
                    range: (lo <= hi).then_some((lo, hi)),
                    low_by,
                    high_by,
                }
            }
        }
    }

    /// The stream that rejects `t`, if one does.
    fn rejected_by(&self, t: EventTime) -> Option<usize> {
        match self.range {
            None => Some(self.low_by),
            Some((lo, _)) if t < lo => Some(self.low_by),
            Some((_, hi)) if t > hi => Some(self.high_by),
            Some(_) => None,
        }
    }
}

/// What each stream accepts (see [`Accepts`]), computed from the last stream back: a stream
/// accepts the times its window accepts whose results every stream reading it accepts.
fn stream_accepts(streams: &[CompiledStream]) -> Vec<Accepts> {
    let mut acc: Vec<Accepts> = (0..streams.len()).map(Accepts::everything).collect();
    for i in (0..streams.len()).rev() {
        let outputs = streams[i + 1..]
            .iter()
            .zip(&acc[i + 1..])
            .filter(|(s, _)| s.input == Input::Stream(i))
            .fold(Accepts::everything(i), |a, (_, b)| a.intersect(*b));
        acc[i] = match &streams[i].window {
            // Without a window an output keeps its input's time.
            None => outputs,
            Some(op) => match op.accepted_event_times() {
                None => Accepts::nothing(i),
                Some(own) => match outputs
                    .range
                    .and_then(|(c, d)| op.event_times_with_outputs_in(c..=d))
                {
                    None => Accepts::nothing(outputs.low_by),
                    Some(r) => Accepts {
                        range: Some((*r.start(), *r.end())),
                        low_by: if r.start() > own.start() {
                            outputs.low_by
                        } else {
                            i
                        },
                        high_by: if r.end() < own.end() {
                            outputs.high_by
                        } else {
                            i
                        },
                    },
                },
            },
        };
    }
    acc
}

/// Where a flush stands (see [`Engine::flush_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Taking what the source stream flushes.
    Feeding,
    /// Flushing the stream's own window.
    Flushing,
    Done,
}

/// A copy of an upstream stream as it was before the flush, replayed so that a downstream
/// stream takes what it flushes without every result being held.
#[derive(Debug)]
struct Replay {
    stream: CompiledStream,
    phase: Phase,
}

/// An incremental flush in progress.
///
/// A flush emits every stream's outputs in stream order, and a stream fed by another takes
/// what that one flushed before flushing itself. Stream `i`'s outputs are produced at stage
/// `i`, after every earlier stream's were emitted, so its source's flush, already emitted at an
/// earlier stage, is replayed from a copy taken before the flush: the output order of a
/// one-shot flush with the memory of the state (one copy of each stream read by another), not
/// of the results.
#[derive(Debug)]
struct Flush {
    stage: usize,
    phase: Phase,
    /// Copies of the stage's upstream streams, its root source first.
    chain: Vec<Replay>,
    /// Pre-flush copies of the streams that a later stage replays.
    pristine: Vec<Option<CompiledStream>>,
    /// Per stream, the last stage that replays it.
    last_use: Vec<Option<usize>>,
}

/// The streams `i` reads from, directly or not, its root source first.
fn ancestors(streams: &[CompiledStream], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = i;
    while let Input::Stream(up) = streams[cur].input {
        out.push(up);
        cur = up;
    }
    out.reverse();
    out
}

impl Flush {
    fn new(streams: &[CompiledStream]) -> Self {
        let mut last_use = vec![None; streams.len()];
        for i in 0..streams.len() {
            for k in ancestors(streams, i) {
                last_use[k] = Some(i);
            }
        }
        let pristine = streams
            .iter()
            .zip(&last_use)
            .map(|(s, used)| used.map(|_| s.clone()))
            .collect();
        let mut flush = Self {
            stage: 0,
            phase: Phase::Feeding,
            chain: Vec::new(),
            pristine,
            last_use,
        };
        flush.enter(0, streams);
        flush
    }

    /// Moves to stage `stage`: builds its replay chain.
    fn enter(&mut self, stage: usize, streams: &[CompiledStream]) {
        self.stage = stage;
        self.phase = Phase::Feeding;
        self.chain.clear();
        if stage >= streams.len() {
            return;
        }
        for k in ancestors(streams, stage) {
            let copy = if self.last_use[k] == Some(stage) {
                self.pristine[k].take()
            } else {
                self.pristine[k].clone()
            };
            let stream = copy.expect("a stream read by a later one has a pre-flush copy");
            self.chain.push(Replay {
                stream,
                phase: Phase::Feeding,
            });
        }
    }
}

/// Appends to `out` at most `max` more of what `stream` emits at a flush: what it makes of its
/// source's flush (replayed by `up`, the source last), then its own window's results. Returns
/// whether it may have more. Late events go to `late`.
fn pull(
    stream: &mut CompiledStream,
    phase: &mut Phase,
    up: &mut [Replay],
    max: usize,
    variables: &BTreeMap<String, Value>,
    late: &mut Vec<LateEvent>,
    out: &mut Vec<Event>,
) -> bool {
    let before = out.len();
    let mut results = Vec::new();
    let mut fed = Vec::new();
    loop {
        // Each event fed gives at most one output (a projection, or a count window that
        // fills), so `room` bounds both what is pulled and what is emitted.
        let room = max.saturating_sub(out.len() - before);
        if room == 0 || *phase == Phase::Done {
            return *phase != Phase::Done;
        }
        match *phase {
            Phase::Feeding => match up.split_last_mut() {
                None => *phase = Phase::Flushing,
                Some((source, rest)) => {
                    // The source's own late events were recorded at its stage.
                    let mut replayed_late = Vec::new();
                    fed.clear();
                    let more = pull(
                        &mut source.stream,
                        &mut source.phase,
                        rest,
                        room,
                        variables,
                        &mut replayed_late,
                        &mut fed,
                    );
                    for e in &fed {
                        handle(stream, e, variables, &mut results, out, late);
                    }
                    if !more {
                        *phase = Phase::Flushing;
                    }
                }
            },
            Phase::Flushing => match stream.window.as_mut() {
                Some(op) => {
                    let more = op.flush_step(&mut results, room);
                    finish(&stream.plan, variables, &mut results, out);
                    if !more {
                        *phase = Phase::Done;
                    }
                }
                None => *phase = Phase::Done,
            },
            Phase::Done => {}
        }
    }
}

fn window_operator(
    plan: &StreamPlan,
    window: WindowKind,
    variables: &Arc<BTreeMap<String, Value>>,
) -> Result<WindowOperator, EngineError> {
    let name = plan.name.as_str();
    let mut spec = WindowSpec::new(name, window);
    if let Some(field) = &plan.partition_by {
        spec = spec.partition_by(field.as_str());
    }
    if let Some(lateness) = plan.allowed_lateness_ms {
        spec = spec.allowed_lateness(lateness);
    }
    for agg in &plan.aggregates {
        let a = match &agg.arg {
            None => Aggregate::count(agg.alias.as_str()),
            Some(arg) => Aggregate::new(
                agg.alias.as_str(),
                agg.func,
                VplExpr {
                    expr: arg.clone(),
                    variables: Arc::clone(variables),
                },
            ),
        };
        spec = spec.aggregate(a);
    }
    WindowOperator::new(spec).map_err(|source| EngineError::Window {
        stream: plan.name.clone(),
        source,
    })
}

/// Runs a compiled VPL [`Program`] over events, one at a time.
///
/// Per input event: the watermark tracker observes it (when some stream reads its type), then
/// every stream, in dependency order, takes the events meant for it (input events of its
/// source type, or what its source stream produced for this event), filters them, feeds its
/// window (or projects them, without a window), and advances its window to the effective
/// watermark. Outputs come back in that order, which is deterministic: the same events after
/// the same state always give the same outputs, which is what makes a resumed run
/// byte-identical to an uninterrupted one.
#[derive(Debug)]
pub struct Engine {
    program: Program,
    variables: Arc<BTreeMap<String, Value>>,
    streams: Vec<CompiledStream>,
    source_types: Vec<String>,
    /// Per entry of `source_types`: the event times its events may have.
    source_accepts: Vec<Accepts>,
    watermarks: WatermarkTracker,
    events_processed: u64,
    output_events_emitted: u64,
    produced: Vec<Vec<Event>>,
    results: Vec<WindowResult>,
    late: Vec<LateEvent>,
    flush: Option<Box<Flush>>,
}

/// An event a window dropped as late (every window it belonged to was already emitted): the
/// engine's side output, so no late event is silently lost. Drain it with
/// [`Engine::take_late_events`].
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent {
    /// The stream whose window dropped it.
    pub stream: String,
    /// The event as the stream received it.
    pub event: Event,
}

impl Engine {
    /// Compiles `program`.
    ///
    /// # Errors
    /// [`EngineError::Window`] if a window definition is impossible (the VPL checker rejects
    /// those already, so this means a program built by hand).
    pub fn new(program: Program) -> Result<Self, EngineError> {
        let variables = Arc::new(program.initial_variables());
        let mut watermarks = WatermarkTracker::new();
        let mut bounds: BTreeMap<&str, i64> = BTreeMap::new();
        for s in &program.streams {
            if let (Source::Event(t), Some(ooo)) = (&s.source, s.watermark_out_of_order_ms) {
                let b = bounds.entry(t.as_str()).or_insert(0);
                *b = (*b).max(ooo);
            }
        }
        for (source, bound) in bounds {
            watermarks.declare_source(source, bound);
        }
        let source_types = program
            .source_event_types()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut engine = Self {
            streams: Vec::new(),
            variables,
            source_types,
            source_accepts: Vec::new(),
            watermarks,
            events_processed: 0,
            output_events_emitted: 0,
            produced: Vec::new(),
            results: Vec::new(),
            late: Vec::new(),
            flush: None,
            program,
        };
        engine.compile()?;
        Ok(engine)
    }

    fn compile(&mut self) -> Result<(), EngineError> {
        let mut streams: Vec<CompiledStream> = Vec::with_capacity(self.program.streams.len());
        for plan in &self.program.streams {
            let (input, lag) = match &plan.source {
                Source::Event(_) => (Input::Event, 0),
                Source::Stream(name) => {
                    let idx = streams
                        .iter()
                        .position(|s| s.plan.name == *name)
                        .expect("streams are in dependency order");
                    let up = &streams[idx];
                    let up_lateness = if up.window.is_some() {
                        up.plan.allowed_lateness_ms.unwrap_or(0)
                    } else {
                        0
                    };
                    (
                        Input::Stream(idx),
                        up.watermark_lag_ms.saturating_add(up_lateness),
                    )
                }
            };
            let window = match plan.window {
                Some(w) => Some(window_operator(plan, w, &self.variables)?),
                None => None,
            };
            streams.push(CompiledStream {
                plan: plan.clone(),
                input,
                window,
                watermark_lag_ms: lag,
            });
        }
        self.produced = vec![Vec::new(); streams.len()];
        let accepts = stream_accepts(&streams);
        self.source_accepts = self
            .source_types
            .iter()
            .map(|t| {
                streams
                    .iter()
                    .zip(&accepts)
                    .filter(|(s, _)| s.input == Input::Event && s.plan.source.name() == t)
                    .map(|(_, a)| *a)
                    .reduce(Accepts::intersect)
                    .unwrap_or(Accepts::everything(0))
            })
            .collect();
        self.streams = streams;
        self.flush = None;
        Ok(())
    }

    /// The program.
    #[must_use]
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Current variable values.
    #[must_use]
    pub fn variables(&self) -> &BTreeMap<String, Value> {
        &self.variables
    }

    /// Input events processed so far (all runs, when restored from a checkpoint).
    #[must_use]
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// Output events emitted so far (all runs, when restored from a checkpoint).
    #[must_use]
    pub fn output_events_emitted(&self) -> u64 {
        self.output_events_emitted
    }

    /// Late events dropped by every window, in total.
    #[must_use]
    pub fn late_events_dropped(&self) -> u64 {
        self.streams
            .iter()
            .filter_map(|s| s.window.as_ref())
            .map(WindowOperator::late_events_dropped)
            .sum()
    }

    /// The effective watermark.
    #[must_use]
    pub fn watermark(&self) -> Option<EventTime> {
        self.watermarks.effective()
    }

    /// Approximate bytes of window state held.
    #[must_use]
    pub fn approximate_state_bytes(&self) -> usize {
        self.streams
            .iter()
            .filter_map(|s| s.window.as_ref())
            .map(WindowOperator::approximate_state_bytes)
            .sum()
    }

    /// Late events dropped since the last call, in the order they arrived (the side output).
    ///
    /// The engine keeps them until taken; a caller that processes many events should take them
    /// regularly (the runner does after every event).
    pub fn take_late_events(&mut self) -> Vec<LateEvent> {
        std::mem::take(&mut self.late)
    }

    /// Processes one input event; appends the output events it causes to `out`, upstream
    /// streams before downstream ones. Late events go to [`Engine::take_late_events`].
    ///
    /// # Errors
    /// [`EngineError::UnrepresentableTime`] when the event's time cannot be represented by a
    /// window it would reach, directly or through the results it leads to (`.where` filters
    /// are not consulted: the check depends on the time alone). It is checked before anything
    /// changes: the engine is then exactly as before the call.
    pub fn process(&mut self, event: &Event, out: &mut Vec<Event>) -> Result<(), EngineError> {
        let ts = event.timestamp_ms();
        let source = self
            .source_types
            .iter()
            .position(|t| t.as_str() == event.event_type());
        if let Some(k) = source
            && let Some(by) = self.source_accepts[k].rejected_by(ts)
        {
            // Name a stream the event reaches directly when its own window cannot take the
            // time, else the one downstream.
            let direct = self.streams.iter().position(|s| {
                s.input == Input::Event
                    && s.plan.source.name() == event.event_type()
                    && s.window.as_ref().is_some_and(|op| {
                        op.accepted_event_times().is_none_or(|r| !r.contains(&ts))
                    })
            });
            let stream = &self.streams[direct.unwrap_or(by)];
            return Err(EngineError::UnrepresentableTime {
                stream: stream.plan.name.clone(),
                event_time_ms: ts,
                window: stream
                    .window
                    .as_ref()
                    .map_or_else(String::new, |op| op.spec().describe_window()),
            });
        }
        self.flush = None;
        self.events_processed += 1;
        let wm = if source.is_some() {
            self.watermarks.observe(event)
        } else {
            self.watermarks.effective()
        };
        let before = out.len();
        for i in 0..self.streams.len() {
            let (done, rest) = self.produced.split_at_mut(i);
            let mine = &mut rest[0];
            mine.clear();
            let stream = &mut self.streams[i];
            match stream.input {
                Input::Event => {
                    if stream.plan.source.name() == event.event_type() {
                        handle(
                            stream,
                            event,
                            &self.variables,
                            &mut self.results,
                            mine,
                            &mut self.late,
                        );
                    }
                }
                Input::Stream(up) => {
                    for e in &done[up] {
                        handle(
                            stream,
                            e,
                            &self.variables,
                            &mut self.results,
                            mine,
                            &mut self.late,
                        );
                    }
                }
            }
            if let (Some(wm), Some(op)) = (wm, stream.window.as_mut()) {
                op.advance_watermark(
                    wm.saturating_sub(stream.watermark_lag_ms),
                    &mut self.results,
                );
                finish(&stream.plan, &self.variables, &mut self.results, mine);
            }
            out.extend(mine.iter().cloned());
        }
        self.output_events_emitted += (out.len() - before) as u64;
        Ok(())
    }

    /// Emits every open window (end of input with `--flush-at-end`), upstream streams first;
    /// a downstream stream takes what its source flushed before flushing itself.
    ///
    /// This holds every result in `out` at once; [`Engine::flush_step`] emits them a bounded
    /// number at a time, in the same order.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        while self.flush_step(out, usize::MAX) {}
    }

    /// Appends at most `max_outputs` more of the output events [`Engine::flush`] emits, in the
    /// same order (stream by stream in dependency order; within a window, by window end then
    /// partition key); returns `false` once everything was emitted (`true`: call it again,
    /// there may be more). The results still to come are computed as they are emitted, so
    /// memory stays that of the state (plus a copy of each stream that another reads), however
    /// many windows are open.
    ///
    /// Flushed windows leave the state as they go: a checkpoint taken before the last step
    /// would hold a half-flushed state. [`Engine::process`] or a restore in the middle abandons
    /// the flush (a new one then starts from what is left).
    pub fn flush_step(&mut self, out: &mut Vec<Event>, max_outputs: usize) -> bool {
        let mut flush = match self.flush.take() {
            Some(flush) => flush,
            None => Box::new(Flush::new(&self.streams)),
        };
        let before = out.len();
        let more = loop {
            let Some(stream) = self.streams.get_mut(flush.stage) else {
                break false;
            };
            let room = max_outputs.saturating_sub(out.len() - before);
            if room == 0 {
                break true;
            }
            let Flush { phase, chain, .. } = &mut *flush;
            if !pull(
                stream,
                phase,
                chain,
                room,
                &self.variables,
                &mut self.late,
                out,
            ) {
                let next = flush.stage + 1;
                flush.enter(next, &self.streams);
            }
        };
        self.output_events_emitted += (out.len() - before) as u64;
        if more {
            self.flush = Some(flush);
        }
        more
    }

    /// The engine's state: every window operator, the watermark tracker, variables and
    /// counters.
    #[must_use]
    pub fn create_checkpoint(&self) -> EngineCheckpoint {
        EngineCheckpoint {
            window_states: self
                .streams
                .iter()
                .filter_map(|s| Some((s.plan.name.clone(), s.window.as_ref()?.snapshot())))
                .collect(),
            variables: (*self.variables).clone(),
            watermark_state: Some(self.watermarks.snapshot()),
            events_processed: self.events_processed,
            output_events_emitted: self.output_events_emitted,
            ..EngineCheckpoint::default()
        }
    }

    /// Replaces the engine's state with a checkpoint's.
    ///
    /// Variables declared `var` take their checkpointed values (they are state); `let`
    /// constants keep the program's. A stream the checkpoint does not mention starts empty.
    ///
    /// # Errors
    /// [`EngineError::UnsupportedVersion`], [`EngineError::UnknownStream`], or
    /// [`EngineError::Window`] when a window's state was taken under another definition. On
    /// error the engine may be partly restored: build a new one.
    pub fn restore_checkpoint(&mut self, cp: &EngineCheckpoint) -> Result<(), EngineError> {
        if cp.version > ENGINE_CHECKPOINT_VERSION {
            return Err(EngineError::UnsupportedVersion { found: cp.version });
        }
        if let Some(name) = cp.window_states.keys().find(|n| {
            !self
                .streams
                .iter()
                .any(|s| s.window.is_some() && s.plan.name == **n)
        }) {
            return Err(EngineError::UnknownStream {
                stream: name.clone(),
            });
        }
        let mut variables = self.program.initial_variables();
        for (name, value) in &cp.variables {
            if self.program.variable(name).is_some_and(|v| v.mutable) {
                variables.insert(name.clone(), value.clone());
            }
        }
        self.variables = Arc::new(variables);
        self.compile()?;
        for stream in &mut self.streams {
            if let (Some(op), Some(state)) = (
                stream.window.as_mut(),
                cp.window_states.get(&stream.plan.name),
            ) {
                op.restore(state).map_err(|source| EngineError::Window {
                    stream: stream.plan.name.clone(),
                    source,
                })?;
            }
        }
        // Window state holds only times the program accepts (what `process` checks), so what it
        // emits later is accepted downstream.
        let accepts = stream_accepts(&self.streams);
        for (i, stream) in self.streams.iter().enumerate() {
            let Some(held) = stream
                .window
                .as_ref()
                .and_then(WindowOperator::held_event_times)
            else {
                continue;
            };
            for t in [*held.start(), *held.end()] {
                if let Some(by) = accepts[i].rejected_by(t) {
                    let by = &self.streams[by];
                    return Err(EngineError::UnrepresentableTime {
                        stream: by.plan.name.clone(),
                        event_time_ms: t,
                        window: by
                            .window
                            .as_ref()
                            .map_or_else(String::new, |op| op.spec().describe_window()),
                    });
                }
            }
        }
        if let Some(wm) = &cp.watermark_state {
            self.watermarks.restore(wm);
        }
        self.events_processed = cp.events_processed;
        self.output_events_emitted = cp.output_events_emitted;
        Ok(())
    }
}

/// Takes one event into `stream`: filter, then window or projection.
fn handle(
    stream: &mut CompiledStream,
    event: &Event,
    variables: &BTreeMap<String, Value>,
    results: &mut Vec<WindowResult>,
    out: &mut Vec<Event>,
    late: &mut Vec<LateEvent>,
) {
    if !stream.plan.accepts(event, variables) {
        return;
    }
    match stream.window.as_mut() {
        Some(op) => {
            match op.process(event, results) {
                Ok(Outcome::Accepted) => {}
                Ok(Outcome::Late) => {
                    tracing::debug!(
                        stream = %stream.plan.name,
                        event_time = event.timestamp_ms(),
                        "late event dropped"
                    );
                    late.push(LateEvent {
                        stream: stream.plan.name.clone(),
                        event: event.clone(),
                    });
                }
                Err(error) => {
                    // Cannot happen: `Engine::process` checks an input event against every
                    // window it leads to, and a restore refuses window state holding other
                    // times. Should it happen, the event goes to the side output, not nowhere.
                    tracing::error!(
                        stream = %stream.plan.name,
                        %error,
                        "event refused by its window"
                    );
                    late.push(LateEvent {
                        stream: stream.plan.name.clone(),
                        event: event.clone(),
                    });
                }
            }
            finish(&stream.plan, variables, results, out);
        }
        None => {
            let mut e = Event::new(stream.plan.name.as_str(), event.timestamp_ms());
            match &stream.plan.emit {
                Some(emit) => {
                    let scope = Scope::empty().with_event(event).with_variables(variables);
                    for f in emit {
                        e.set(f.name.as_str(), f.expr.eval(&scope));
                    }
                }
                None => {
                    for (name, value) in event.fields() {
                        e.set(name, value.clone());
                    }
                }
            }
            out.push(e);
        }
    }
}

/// Turns closed windows into output events: `.having`, then `.emit`.
fn finish(
    plan: &StreamPlan,
    variables: &BTreeMap<String, Value>,
    results: &mut Vec<WindowResult>,
    out: &mut Vec<Event>,
) {
    for r in results.drain(..) {
        if plan.having.is_none() && plan.emit.is_none() {
            out.push(r.event);
            continue;
        }
        let row: BTreeMap<String, Value> = r
            .event
            .fields()
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect();
        let scope = Scope::empty().with_aliases(&row).with_variables(variables);
        if plan.having.as_ref().is_some_and(|h| !h.matches(&scope)) {
            continue;
        }
        match &plan.emit {
            None => out.push(r.event),
            Some(emit) => {
                let mut e = Event::new(plan.name.as_str(), r.end_ms);
                for f in emit {
                    e.set(f.name.as_str(), f.expr.eval(&scope));
                }
                out.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "\
var limit: float = 10.0
stream Stats = Reading
    .where(v < 1000)
    .partition_by(zone)
    .watermark(out_of_order: 20ms)
    .allowed_lateness(10ms)
    .window(100ms, sliding: 50ms)
    .aggregate(n: count(), s: sum(v * 2), first_v: first(v))
stream Big = Stats
    .where(s > limit)
    .window(500ms)
    .aggregate(k: count(), top: max(s))
    .having(k >= 1)
    .emit(top: top, k: k, limit: limit)
stream Raw = Reading .where(v >= 1000) .emit(z: zone, big: v)
";

    fn events() -> Vec<Event> {
        let mut x: u64 = 7;
        (0..3_000_i64)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let jitter = i64::try_from((x >> 33) % 20).unwrap();
                Event::new("Reading", i * 7 - jitter)
                    .with_field("zone", i64::try_from((x >> 20) % 4).unwrap())
                    .with_field("v", i64::try_from((x >> 40) % 1_100).unwrap())
            })
            .collect()
    }

    fn engine() -> Engine {
        Engine::new(varpulis_vpl::parse_program(PROGRAM).unwrap()).unwrap()
    }

    #[test]
    fn restoring_a_checkpoint_anywhere_is_invisible_in_the_output() {
        let events = events();
        let mut full = Vec::new();
        let mut e = engine();
        for ev in &events {
            e.process(ev, &mut full).unwrap();
        }
        assert!(full.iter().any(|o| o.event_type() == "Big"));
        assert!(full.iter().any(|o| o.event_type() == "Raw"));
        for cut in [0, 1, 17, 500, 1_499, 2_999] {
            let mut out = Vec::new();
            let mut a = engine();
            for ev in &events[..cut] {
                a.process(ev, &mut out).unwrap();
            }
            let cp = a.create_checkpoint();
            let mut b = engine();
            b.restore_checkpoint(&cp).unwrap();
            assert_eq!(b.create_checkpoint(), cp, "restore then snapshot at {cut}");
            for ev in &events[cut..] {
                b.process(ev, &mut out).unwrap();
            }
            assert_eq!(out, full, "cut at {cut}");
            assert_eq!(b.events_processed(), 3_000);
            assert_eq!(b.output_events_emitted(), full.len() as u64);
        }
    }

    #[test]
    fn a_checkpoint_of_another_program_is_refused_with_the_stream_named() {
        let mut e = engine();
        let mut out = Vec::new();
        e.process(&Event::new("Reading", 1).with_field("v", 1), &mut out)
            .unwrap();
        let cp = e.create_checkpoint();
        let other = varpulis_vpl::parse_program(
            "stream Stats = Reading .partition_by(zone) .window(1s) .aggregate(n: count())",
        )
        .unwrap();
        let err = Engine::new(other)
            .unwrap()
            .restore_checkpoint(&cp)
            .unwrap_err();
        assert!(matches!(err, EngineError::UnknownStream { ref stream } if stream == "Big"));
        let changed = varpulis_vpl::parse_program(&PROGRAM.replace("100ms", "200ms")).unwrap();
        let err = Engine::new(changed)
            .unwrap()
            .restore_checkpoint(&cp)
            .unwrap_err();
        assert!(matches!(err, EngineError::Window { ref stream, .. } if stream == "Stats"));
    }

    #[test]
    fn flush_emits_open_windows_and_feeds_them_downstream() {
        let mut e = engine();
        let mut out = Vec::new();
        e.process(
            &Event::new("Reading", 5)
                .with_field("zone", 1)
                .with_field("v", 9),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
        e.flush(&mut out);
        let types: Vec<&str> = out.iter().map(Event::event_type).collect();
        assert_eq!(types, ["Stats", "Stats", "Big"]);
        assert_eq!(out[2].get("top"), Some(&Value::Int(18)));
        assert_eq!(out[2].get("limit"), Some(&Value::Float(10.0)));
    }

    /// The flush as it was before `flush_step`: every stream in turn takes all its source
    /// flushed, then flushes its window at once. The reference for the incremental flush.
    fn one_shot_flush(e: &mut Engine, out: &mut Vec<Event>) {
        let before = out.len();
        for i in 0..e.streams.len() {
            let (done, rest) = e.produced.split_at_mut(i);
            let mine = &mut rest[0];
            mine.clear();
            let stream = &mut e.streams[i];
            if let Input::Stream(up) = stream.input {
                for ev in &done[up] {
                    handle(stream, ev, &e.variables, &mut e.results, mine, &mut e.late);
                }
            }
            if let Some(op) = stream.window.as_mut() {
                op.flush(&mut e.results);
                finish(&stream.plan, &e.variables, &mut e.results, mine);
            }
            out.extend(mine.iter().cloned());
        }
        e.output_events_emitted += (out.len() - before) as u64;
    }

    /// Programs whose flush feeds streams downstream: windows into windows of every kind,
    /// projections, count windows, two readers of one stream, a chain of three.
    const CHAINS: &str = "\
stream Stats = Reading
    .partition_by(zone)
    .watermark(out_of_order: 20ms)
    .window(100ms, sliding: 30ms)
    .aggregate(n: count(), s: sum(v), first_v: first(v))
stream Proj = Stats .where(n > 1) .emit(zone: zone, n: n, s: s)
stream Every3 = Stats .window(3) .aggregate(k: count(), top: max(s))
stream Sess = Proj .partition_by(zone) .window(session: 50ms) .aggregate(c: count(), hi: max(n))
stream Tumble = Every3 .window(200ms) .aggregate(m: count(), t: max(top))
stream Zones = Reading .where(v > 900) .partition_by(zone) .window(session: 500ms) .aggregate(z: count())
";

    #[test]
    fn flushing_in_steps_emits_exactly_what_the_one_shot_flush_emitted() {
        for program in [PROGRAM, CHAINS] {
            let program = varpulis_vpl::parse_program(program).unwrap();
            let events = events();
            for cut in [0, 1, 40, 700, 3_000] {
                let mut reference = Engine::new(program.clone()).unwrap();
                let mut out = Vec::new();
                for ev in &events[..cut] {
                    reference.process(ev, &mut out).unwrap();
                }
                let fed = reference.create_checkpoint();
                let late = reference.take_late_events();
                let mut expected = Vec::new();
                one_shot_flush(&mut reference, &mut expected);
                if cut == 3_000 {
                    // Every windowed stream and the projection flush something.
                    for name in program.streams.iter().map(|s| s.name.as_str()) {
                        let flushed = expected.iter().any(|o| o.event_type() == name);
                        assert!(flushed || name == "Raw", "{name} flushed nothing");
                    }
                }
                for step in [1, 2, 3, 7, 64, usize::MAX] {
                    let mut e = Engine::new(program.clone()).unwrap();
                    e.restore_checkpoint(&fed).unwrap();
                    let mut got = Vec::new();
                    loop {
                        let len = got.len();
                        let more = e.flush_step(&mut got, step);
                        assert!(
                            got.len() - len <= step,
                            "step {step} gave {}",
                            got.len() - len
                        );
                        if !more {
                            break;
                        }
                    }
                    assert_eq!(got, expected, "cut {cut}, steps of {step}");
                    assert_eq!(e.create_checkpoint(), reference.create_checkpoint());
                    assert_eq!(e.take_late_events(), reference.late, "cut {cut}");
                }
                reference.late = late;
            }
        }
    }

    #[test]
    fn a_flush_of_86_million_pending_results_is_emitted_a_bounded_step_at_a_time() {
        let program = varpulis_vpl::parse_program(
            "stream Day = Reading .window(1d, sliding: 1ms) .aggregate(n: count())\n\
             stream Tally = Day .window(1000) .aggregate(k: count())",
        )
        .unwrap();
        let mut e = Engine::new(program).unwrap();
        let mut out = Vec::new();
        e.process(&Event::new("Reading", 0).with_field("v", 1), &mut out)
            .unwrap();
        assert!(out.is_empty());
        for step in 0..3_u64 {
            assert!(e.flush_step(&mut out, 4096));
            assert_eq!(out.len(), 4096);
            assert_eq!(
                out[0].timestamp_ms(),
                1 + 4096 * i64::try_from(step).unwrap()
            );
            assert!(out.iter().all(|o| o.event_type() == "Day"));
            out.clear();
        }
        assert_eq!(e.output_events_emitted(), 3 * 4096);
        // An event abandons the flush; the windows left stay and are flushed later.
        e.process(&Event::new("Reading", 5).with_field("v", 1), &mut out)
            .unwrap();
        assert!(e.flush.is_none());
    }

    #[test]
    fn an_event_at_i64_max_is_refused_with_the_stream_named_and_nothing_changed() {
        let mut e = engine();
        let mut out = Vec::new();
        for ev in &events()[..100] {
            e.process(ev, &mut out).unwrap();
        }
        let before = e.create_checkpoint();
        let emitted = out.len();
        let err = e
            .process(
                &Event::new("Reading", i64::MAX)
                    .with_field("zone", 1)
                    .with_field("v", 1),
                &mut out,
            )
            .unwrap_err();
        assert!(
            matches!(
                &err,
                EngineError::UnrepresentableTime { stream, event_time_ms, window }
                    if stream == "Stats" && *event_time_ms == i64::MAX
                        && window == "sliding 100ms every 50ms with allowed lateness 10ms"
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "event time 9223372036854775807 (stream Stats): its sliding 100ms every 50ms with \
             allowed lateness 10ms window cannot be represented"
        );
        assert_eq!(out.len(), emitted);
        assert_eq!(e.create_checkpoint(), before);
        assert!(e.take_late_events().is_empty());
        // A stream without a window takes any time: an unwindowed type is not refused.
        let raw = varpulis_vpl::parse_program("stream Raw = Reading .emit(v: v)").unwrap();
        let mut raw = Engine::new(raw).unwrap();
        raw.process(
            &Event::new("Reading", i64::MAX).with_field("v", 1),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.last().unwrap().timestamp_ms(), i64::MAX);
    }

    #[test]
    fn an_event_whose_result_a_downstream_window_cannot_represent_is_refused_before_anything_changes()
     {
        let program = varpulis_vpl::parse_program(
            "stream Fine = Reading .window(1ms) .aggregate(n: count())\n\
             stream Day = Fine .window(1d) .aggregate(k: count())",
        )
        .unwrap();
        let mut e = Engine::new(program).unwrap();
        let mut out = Vec::new();
        // `Fine` alone could take it (its window [t, t + 1) closes at t + 1 <= i64::MAX), but
        // the result it emits at t + 1 falls in a day `Day` cannot represent.
        let t = i64::MAX - 10;
        e.process(&Event::new("Reading", 0), &mut out).unwrap();
        let before = e.create_checkpoint();
        let err = e.process(&Event::new("Reading", t), &mut out).unwrap_err();
        assert!(
            matches!(&err, EngineError::UnrepresentableTime { stream, event_time_ms, .. }
                if stream == "Day" && *event_time_ms == t),
            "{err:?}"
        );
        assert_eq!(e.create_checkpoint(), before);
        // The last time whose day fits is accepted, and flushed through both windows.
        let day = 86_400_000_i64;
        let last = (i64::MAX / day - 1) * day + day - 2;
        e.process(&Event::new("Reading", last), &mut out).unwrap();
        e.flush(&mut out);
        assert_eq!(out.last().unwrap().timestamp_ms(), last + 2);
    }

    #[test]
    fn the_runner_reports_an_unrepresentable_event_time_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(
            &input,
            "{\"event_type\":\"Reading\",\"timestamp\":1,\"v\":1}\n\
             \n\
             {\"event_type\":\"Reading\",\"timestamp\":9223372036854775807,\"v\":2}\n",
        )
        .unwrap();
        let program = varpulis_vpl::parse_program(
            "stream Stats = Reading .window(1s) .aggregate(n: count())",
        )
        .unwrap();
        let mut engine = Engine::new(program).unwrap();
        let mut config = crate::RunConfig::new(&input);
        config.output = Some(dir.path().join("out.jsonl"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(crate::run(
                &mut engine,
                &config,
                None,
                &std::sync::atomic::AtomicBool::new(false),
                &crate::clock::SystemClock,
                &mut crate::NoObserver,
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:3: event time 9223372036854775807 (stream Stats): its tumbling 1s window \
                 cannot be represented",
                input.display()
            )
        );
        assert_eq!(engine.events_processed(), 1);
    }

    #[test]
    fn a_checkpoint_holding_a_time_a_downstream_window_cannot_represent_is_refused() {
        let alone = "stream Fine = Reading .window(1ms) .aggregate(n: count())";
        let mut e = Engine::new(varpulis_vpl::parse_program(alone).unwrap()).unwrap();
        let t = i64::MAX - 10;
        e.process(&Event::new("Reading", t), &mut Vec::new())
            .unwrap();
        let cp = e.create_checkpoint();
        let chained = format!("{alone}\nstream Day = Fine .window(1d) .aggregate(k: count())");
        let mut e = Engine::new(varpulis_vpl::parse_program(&chained).unwrap()).unwrap();
        let err = e.restore_checkpoint(&cp).unwrap_err();
        assert!(
            matches!(&err, EngineError::UnrepresentableTime { stream, event_time_ms, .. }
                if stream == "Day" && *event_time_ms == t),
            "{err:?}"
        );
    }
}
