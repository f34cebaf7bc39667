//! The engine: a compiled VPL program, its operators, watermarks, variables and counters.
//!
//! `mod.rs` holds [`Engine`] and its public API (process, flush, checkpoint, restore);
//! `compile.rs` builds its streams, `accepts.rs` the event times they can represent,
//! `step.rs` one stream's step (filter, window or projection, having, emit), `flush.rs` the
//! incremental end-of-input flush.

mod accepts;
mod compile;
pub(crate) mod context;
mod error;
mod flush;
mod operators;
mod step;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use varpulis_checkpoint::EngineCheckpoint;
use varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION;
use varpulis_core::{Event, EventTime, FieldRef, Value};
use varpulis_vpl::{Program, Source};
use varpulis_windows::{WatermarkTracker, WindowOperator, WindowResult};

use accepts::{Accepts, stream_accepts};
use compile::{CompiledStream, Input};
pub use error::EngineError;
use flush::{Flush, pull};
use step::Step;

/// The name of the engine's context in a [`Checkpoint`](varpulis_checkpoint::Checkpoint).
pub const CONTEXT: &str = "main";

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
    /// The event types some stream reads (matched by address once learned: see [`FieldRef`]).
    source_types: Vec<FieldRef>,
    /// Per entry of `source_types`: the event times its events may have.
    source_accepts: Vec<Accepts>,
    watermarks: WatermarkTracker,
    events_processed: u64,
    output_events_emitted: u64,
    produced: Vec<Vec<Event>>,
    results: Vec<WindowResult>,
    late: Vec<LateEvent>,
    flush: Option<Box<Flush>>,
    /// A flush of a program with pattern or join streams: computed at its first step, then
    /// handed out (see [`Engine::flush_step`]).
    flushed: Option<VecDeque<Event>>,
    /// Per stream, what this engine does with it as one context of a parallel run (empty:
    /// it is the only context and runs every stream).
    roles: Vec<context::Role>,
    /// The key groups a parallel context owns.
    owned: std::ops::Range<u16>,
    /// A parallel context: the parallel pattern streams, in the order of the operator
    /// watermarks the source sends ([`Engine::parallel_operators`]).
    operator_slots: Vec<usize>,
    /// Per stream, the order keys of `produced` (a parallel context).
    ranks: Vec<Vec<context::Rank>>,
    /// Per stream, outputs injected into the tail of a parallel run for the next step.
    injected: Vec<Vec<Event>>,
    /// A declared context: [`process`](Self::process) records the stream of each output in
    /// `emitted_by`.
    track_streams: bool,
    emitted_by: Vec<usize>,
    /// A declared context's outputs of one step, before they are tagged.
    scratch: Vec<Event>,
    /// `--idle-timeout` in milliseconds (see [`Engine::set_idle_timeout`]).
    idle_timeout_ms: Option<i64>,
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
        let mut bounds: BTreeMap<String, i64> = BTreeMap::new();
        for s in &program.streams {
            let Some(ooo) = s.watermark_out_of_order_ms else {
                continue;
            };
            for input in s.inputs() {
                if let Source::Event(t) = input {
                    let b = bounds.entry(t.clone()).or_insert(0);
                    *b = (*b).max(ooo);
                }
            }
        }
        for (source, bound) in bounds {
            watermarks.declare_source(&source, bound);
        }
        let source_types = program
            .source_event_types()
            .into_iter()
            .map(FieldRef::new)
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
            flushed: None,
            roles: Vec::new(),
            owned: 0..crate::key_group::KEY_GROUPS,
            operator_slots: Vec::new(),
            ranks: Vec::new(),
            injected: Vec::new(),
            track_streams: false,
            emitted_by: Vec::new(),
            scratch: Vec::new(),
            idle_timeout_ms: None,
            program,
        };
        engine.compile()?;
        Ok(engine)
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

    /// Late events dropped by every window, pattern and join, in total.
    #[must_use]
    pub fn late_events_dropped(&self) -> u64 {
        let windows: u64 = self
            .streams
            .iter()
            .filter_map(|s| s.window.as_ref())
            .map(WindowOperator::late_events_dropped)
            .sum();
        let operators: u64 = self
            .streams
            .iter()
            .filter_map(|s| s.operator.as_ref())
            .map(operators::Operator::late_events_dropped)
            .sum();
        windows + operators
    }

    /// The effective watermark.
    #[must_use]
    pub fn watermark(&self) -> Option<EventTime> {
        self.watermarks.effective()
    }

    /// Approximate bytes of window, pattern and join state held.
    #[must_use]
    pub fn approximate_state_bytes(&self) -> usize {
        let windows: usize = self
            .streams
            .iter()
            .filter_map(|s| s.window.as_ref())
            .map(WindowOperator::approximate_state_bytes)
            .sum();
        let operators: usize = self
            .streams
            .iter()
            .filter_map(|s| s.operator.as_ref())
            .map(operators::Operator::approximate_state_bytes)
            .sum();
        windows + operators
    }

    /// Late events dropped since the last call, in the order they arrived (the side output).
    ///
    /// The engine keeps them until taken; a caller that processes many events should take them
    /// regularly (the runner does after every event).
    pub fn take_late_events(&mut self) -> Vec<LateEvent> {
        std::mem::take(&mut self.late)
    }

    /// Marks an event type idle once the input's event time is more than `timeout` past its
    /// newest event (`--idle-timeout`): it then no longer holds the effective watermark back,
    /// until its next event. Measured in event time, not on a clock, so a rerun over the same
    /// input marks the same types at the same events (exactly once). `None` (the default): a
    /// silent type holds the watermark back for good.
    pub fn set_idle_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.idle_timeout_ms =
            timeout.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1));
    }

    /// Observes `event`'s time, then marks the types silent for longer than the idle timeout.
    fn observe_time(&mut self, event: &Event) -> Option<EventTime> {
        let wm = self.watermarks.observe(event);
        match self.idle_timeout_ms {
            Some(limit) => self
                .watermarks
                .mark_idle_before(event.timestamp_ms().saturating_sub(limit)),
            None => wm,
        }
    }

    /// Whether [`process`](Self::process) would take `event`: `Err` exactly when it would
    /// refuse it ([`EngineError::UnrepresentableTime`]), with nothing changed. A caller that
    /// checks every event of a batch first can then apply the batch all or nothing.
    ///
    /// # Errors
    /// [`EngineError::UnrepresentableTime`], as [`process`](Self::process).
    pub fn check_event(&self, event: &Event) -> Result<(), EngineError> {
        self.source_of(event).map(|_| ())
    }

    /// The index of `event`'s type among the source types (`None`: no stream reads it), or
    /// the error [`process`](Self::process) refuses it with.
    fn source_of(&self, event: &Event) -> Result<Option<usize>, EngineError> {
        let ts = event.timestamp_ms();
        let source = self
            .source_types
            .iter()
            .position(|t| t.is(event.event_type_arc()));
        if let Some(k) = source
            && let Some(by) = self.source_accepts[k].rejected_by(ts)
        {
            // Name a stream the event reaches directly when its own window cannot take the
            // time, else the one downstream.
            let direct = self.streams.iter().position(|s| {
                s.reads_event_type(event.event_type())
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
        Ok(source)
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
        let source = self.source_of(event)?;
        self.flush = None;
        self.flushed = None;
        self.events_processed += 1;
        let wm = if source.is_some() {
            self.observe_time(event)
        } else {
            self.watermarks.effective()
        };
        let before = out.len();
        let mut step = Step {
            variables: &self.variables,
            results: &mut self.results,
            late: &mut self.late,
        };
        for i in 0..self.streams.len() {
            let (done, rest) = self.produced.split_at_mut(i);
            let mine = &mut rest[0];
            mine.clear();
            let role = self.roles.get(i).copied().unwrap_or(context::Role::Run);
            if role == context::Role::Injected {
                mine.append(&mut self.injected[i]);
            } else if role == context::Role::Skip {
                // Another context runs it.
            } else if self.streams[i].operator.is_some() {
                let op_wm = operator_watermark(&self.streams[i], &self.watermarks, wm);
                let stream = &mut self.streams[i];
                step.feed_operator(stream, Some(event), done);
                if let Some(wm) = op_wm {
                    stream.drain_operator(&self.variables, Some(wm), mine);
                }
            } else {
                let stream = &mut self.streams[i];
                match stream.input {
                    Input::Event => {
                        if stream.source_name.is(event.event_type_arc()) {
                            step.handle(stream, event, mine, None);
                        }
                    }
                    Input::Stream(up) => {
                        for e in &done[up] {
                            step.handle(stream, e, mine, None);
                        }
                    }
                }
                if let (Some(wm), Some(op)) = (wm, stream.window.as_mut()) {
                    op.advance_watermark(wm.saturating_sub(stream.watermark_lag_ms), step.results);
                    step.finish(stream, mine, None);
                }
            }
            if self.track_streams {
                self.emitted_by.extend(std::iter::repeat_n(i, mine.len()));
            }
            if self.streams[i].has_readers {
                out.extend(mine.iter().cloned());
            } else {
                out.append(mine);
            }
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
        if !self.roles.is_empty() || self.streams.iter().any(|s| s.operator.is_some()) {
            return self.flush_step_with_operators(out, max_outputs);
        }
        let mut flush = match self.flush.take() {
            Some(flush) => flush,
            None => Box::new(Flush::new(&self.streams)),
        };
        let before = out.len();
        let mut step = Step {
            variables: &self.variables,
            results: &mut self.results,
            late: &mut self.late,
        };
        let more = loop {
            let Some(stream) = self.streams.get_mut(flush.stage) else {
                break false;
            };
            let room = max_outputs.saturating_sub(out.len() - before);
            if room == 0 {
                break true;
            }
            let Flush { phase, chain, .. } = &mut *flush;
            if !pull(stream, phase, chain, room, &mut step, out) {
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

    /// [`flush_step`](Self::flush_step) of a program with pattern or join streams: the whole
    /// flush is computed at the first step (stream by stream in dependency order, each taking
    /// what its inputs flushed, then flushing its own operator) and handed out `max_outputs`
    /// at a time. It holds the flush's outputs at once, where a program of windows alone is
    /// flushed incrementally.
    fn flush_step_with_operators(&mut self, out: &mut Vec<Event>, max_outputs: usize) -> bool {
        if self.flushed.is_none() {
            let all = self.flush_all().into_iter().map(|(_, e)| e).collect();
            self.flushed = Some(all);
        }
        let buffer = self.flushed.as_mut().expect("computed above");
        let n = max_outputs.min(buffer.len());
        out.extend(buffer.drain(..n));
        self.output_events_emitted += n as u64;
        let more = !buffer.is_empty();
        if !more {
            self.flushed = None;
        }
        more
    }

    /// The whole end-of-input flush, stream by stream in dependency order, each taking what its
    /// inputs flushed, then flushing its own window or operator; each output with its stream.
    fn flush_all(&mut self) -> Vec<(usize, Event)> {
        let mut all = Vec::new();
        let mut produced: Vec<Vec<Event>> = vec![Vec::new(); self.streams.len()];
        let mut step = Step {
            variables: &self.variables,
            results: &mut self.results,
            late: &mut self.late,
        };
        for i in 0..self.streams.len() {
            let (done, rest) = produced.split_at_mut(i);
            let mine = &mut rest[0];
            let stream = &mut self.streams[i];
            let role = self.roles.get(i).copied().unwrap_or(context::Role::Run);
            if role == context::Role::Injected {
                mine.append(&mut self.injected[i]);
            } else if role == context::Role::Skip {
                // Another context runs it.
            } else if stream.operator.is_some() {
                step.feed_operator(stream, None, done);
                stream.drain_operator(step.variables, None, mine);
            } else {
                if let Input::Stream(up) = stream.input {
                    for e in &done[up] {
                        step.handle(stream, e, mine, None);
                    }
                }
                if let Some(op) = stream.window.as_mut() {
                    while op.flush_step(step.results, usize::MAX) {}
                    step.finish(stream, mine, None);
                }
            }
            all.extend(mine.iter().cloned().map(|e| (i, e)));
        }
        all
    }

    /// The engine's state: every window operator, the watermark tracker, variables and
    /// counters.
    #[must_use]
    pub fn create_checkpoint(&self) -> EngineCheckpoint {
        let mut cp = self.create_checkpoint_unsorted();
        sort_checkpoint(&mut cp);
        cp
    }

    /// [`create_checkpoint`](Self::create_checkpoint) without sorting what the operators keep
    /// in their own order (window partitions, by hash): the runner's snapshot on the event
    /// loop, put in order by [`sort_checkpoint`] in the background, before it is encoded.
    pub(crate) fn create_checkpoint_unsorted(&self) -> EngineCheckpoint {
        EngineCheckpoint {
            window_states: self
                .streams
                .iter()
                .filter_map(|s| Some((s.plan.name.clone(), s.window.as_ref()?.snapshot_unsorted())))
                .collect(),
            variables: (*self.variables).clone(),
            watermark_state: Some(self.watermarks.snapshot()),
            events_processed: self.events_processed,
            output_events_emitted: self.output_events_emitted,
            pattern_states: self
                .streams
                .iter()
                .filter_map(|s| match s.operator.as_ref()? {
                    operators::Operator::Pattern(op) => Some((s.plan.name.clone(), op.snapshot())),
                    operators::Operator::Join(_) => None,
                })
                .collect(),
            join_operator_states: self
                .streams
                .iter()
                .filter_map(|s| match s.operator.as_ref()? {
                    operators::Operator::Join(op) => Some((s.plan.name.clone(), op.snapshot())),
                    operators::Operator::Pattern(_) => None,
                })
                .collect(),
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
        if let Some(name) = cp.sase_states.keys().next() {
            return Err(EngineError::SeedState {
                stream: name.clone(),
                what: "SASE",
            });
        }
        if let Some(name) = cp.join_states.keys().next() {
            return Err(EngineError::SeedState {
                stream: name.clone(),
                what: "join",
            });
        }
        let has = |name: &str, kind: fn(&CompiledStream) -> bool| {
            self.streams.iter().any(|s| kind(s) && s.plan.name == name)
        };
        let unknown = cp
            .window_states
            .keys()
            .find(|n| !has(n, |s| s.window.is_some()))
            .or_else(|| {
                cp.pattern_states.keys().find(|n| {
                    !has(n, |s| {
                        matches!(s.operator, Some(operators::Operator::Pattern(_)))
                    })
                })
            })
            .or_else(|| {
                cp.join_operator_states.keys().find(|n| {
                    !has(n, |s| {
                        matches!(s.operator, Some(operators::Operator::Join(_)))
                    })
                })
            });
        if let Some(name) = unknown {
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
        self.flushed = None;
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
        for stream in &mut self.streams {
            let name = &stream.plan.name;
            let restored = match stream.operator.as_mut() {
                Some(operators::Operator::Pattern(op)) => cp
                    .pattern_states
                    .get(name)
                    .map_or(Ok(()), |state| op.restore(state)),
                Some(operators::Operator::Join(op)) => cp
                    .join_operator_states
                    .get(name)
                    .map_or(Ok(()), |state| op.restore(state)),
                None => Ok(()),
            };
            restored.map_err(|source| EngineError::Pattern {
                stream: name.clone(),
                source,
            })?;
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

/// The watermark of a pattern or join stream, given the effective one.
///
/// A pipeline's input is one stream of events of every type, in time order up to the declared
/// bounds; a pattern or a join reads several of its types as that one stream. So an operator
/// fed only by event types follows the most advanced of their watermarks (each type's largest
/// time minus its out-of-order bound): a type that is rare, or has stopped, does not hold the
/// pattern back, and an event of any of its types older than that is late. One fed (also) by
/// another stream follows the effective watermark, lagged like a window's, since that
/// stream's outputs come as the effective watermark passes.
fn operator_watermark(
    stream: &CompiledStream,
    watermarks: &WatermarkTracker,
    effective: Option<EventTime>,
) -> Option<EventTime> {
    if stream.feeds.iter().any(|f| f.input != Input::Event) {
        return effective.map(|wm| wm.saturating_sub(stream.watermark_lag_ms));
    }
    stream
        .feeds
        .iter()
        .filter_map(|f| watermarks.source_watermark(&f.name))
        .max()
}

/// Puts a checkpoint of [`Engine::create_checkpoint_unsorted`] in the order
/// [`Engine::create_checkpoint`] returns (the bytes encoded are those of a sorted one).
pub(crate) fn sort_checkpoint(cp: &mut EngineCheckpoint) {
    cp.window_states
        .values_mut()
        .for_each(varpulis_checkpoint::WindowCheckpoint::sort_partitions);
}
