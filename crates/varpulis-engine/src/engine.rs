//! The engine: a compiled VPL program, its operators, watermarks, variables and counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_checkpoint::EngineCheckpoint;
use varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION;
use varpulis_core::{Event, EventTime, Value};
use varpulis_vpl::{Program, Scope, Source, StreamPlan, WindowPlan};
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

#[derive(Debug)]
struct CompiledStream {
    plan: StreamPlan,
    input: Input,
    window: Option<WindowOperator>,
    /// How far behind the effective watermark this stream's operator watermark is: the
    /// allowed lateness of every windowed stream upstream, so that an upstream window emitted
    /// late is never late here.
    watermark_lag_ms: i64,
}

fn window_operator(
    plan: &StreamPlan,
    window: WindowPlan,
    variables: &Arc<BTreeMap<String, Value>>,
) -> Result<WindowOperator, EngineError> {
    let name = plan.name.as_str();
    let mut spec = match window {
        WindowPlan::Tumbling { size_ms } => WindowSpec::tumbling(name, size_ms),
        WindowPlan::Sliding { size_ms, slide_ms } => WindowSpec::sliding(name, size_ms, slide_ms),
        WindowPlan::Session { gap_ms } => WindowSpec::session(name, gap_ms),
        WindowPlan::Count { n } => WindowSpec::count(name, n),
    };
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
    watermarks: WatermarkTracker,
    events_processed: u64,
    output_events_emitted: u64,
    produced: Vec<Vec<Event>>,
    results: Vec<WindowResult>,
    late: Vec<LateEvent>,
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
            watermarks,
            events_processed: 0,
            output_events_emitted: 0,
            produced: Vec::new(),
            results: Vec::new(),
            late: Vec::new(),
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
                    (Input::Stream(idx), up.watermark_lag_ms + up_lateness)
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
        self.streams = streams;
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
    pub fn process(&mut self, event: &Event, out: &mut Vec<Event>) {
        self.events_processed += 1;
        let tracked = self
            .source_types
            .iter()
            .any(|t| t.as_str() == event.event_type());
        let wm = if tracked {
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
    }

    /// Emits every open window (end of input with `--flush-at-end`), upstream streams first;
    /// a downstream stream takes what its source flushed before flushing itself.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        let before = out.len();
        for i in 0..self.streams.len() {
            let (done, rest) = self.produced.split_at_mut(i);
            let mine = &mut rest[0];
            mine.clear();
            let stream = &mut self.streams[i];
            if let Input::Stream(up) = stream.input {
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
            if let Some(op) = stream.window.as_mut() {
                op.flush(&mut self.results);
                finish(&stream.plan, &self.variables, &mut self.results, mine);
            }
            out.extend(mine.iter().cloned());
        }
        self.output_events_emitted += (out.len() - before) as u64;
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
            if op.process(event, results) == Outcome::Late {
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
            e.process(ev, &mut full);
        }
        assert!(full.iter().any(|o| o.event_type() == "Big"));
        assert!(full.iter().any(|o| o.event_type() == "Raw"));
        for cut in [0, 1, 17, 500, 1_499, 2_999] {
            let mut out = Vec::new();
            let mut a = engine();
            for ev in &events[..cut] {
                a.process(ev, &mut out);
            }
            let cp = a.create_checkpoint();
            let mut b = engine();
            b.restore_checkpoint(&cp).unwrap();
            assert_eq!(b.create_checkpoint(), cp, "restore then snapshot at {cut}");
            for ev in &events[cut..] {
                b.process(ev, &mut out);
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
        e.process(&Event::new("Reading", 1).with_field("v", 1), &mut out);
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
        );
        assert!(out.is_empty());
        e.flush(&mut out);
        let types: Vec<&str> = out.iter().map(Event::event_type).collect();
        assert_eq!(types, ["Stats", "Stats", "Big"]);
        assert_eq!(out[2].get("top"), Some(&Value::Int(18)));
        assert_eq!(out[2].get("limit"), Some(&Value::Float(10.0)));
    }
}
