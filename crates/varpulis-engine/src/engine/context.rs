//! An engine as one of several contexts of a parallel run (`varpulis run --workers N`).
//!
//! The program's streams are placed once: a **parallel** stream is a partitioned window over
//! an event type, or a window-less, operator-less stream reading a parallel stream (it sees
//! the outputs of the keys its context owns); every other stream runs in the **tail**. Each of
//! the N parallel contexts runs the parallel streams for the key groups it owns
//! ([`crate::key_group`]); the tail runs the rest with the parallel streams' outputs injected,
//! merged from the contexts in the one-context order. Every context sees every input event,
//! so their watermarks are the one-context engine's, and windows close at the same input
//! positions. See `docs/design/contexts.md`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::Arc;
use varpulis_checkpoint::{
    EngineCheckpoint, JoinCounters, JoinOperatorCheckpoint, PatternCheckpoint, PatternCounters,
    WindowCheckpoint,
};

use varpulis_core::{Event, EventTime, FieldRef, Value};
use varpulis_patterns::Decision;

use super::compile::{CompiledStream, Input};
use super::operators::Operator;
use super::step::Step;
use super::{Engine, EngineError};
use crate::key_group::{key_group, owner};

/// What an engine does with one of its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Runs it on every event (one context, or the tail's own streams, or a parallel context's
    /// window-less streams over parallel outputs).
    Run,
    /// A parallel context's partitioned window: takes only the events of its key groups.
    Owned,
    /// Another context runs it.
    Skip,
    /// The tail: its outputs are injected (merged from the parallel contexts).
    Injected,
}

/// An output's place among the outputs of one stream at one input position: a closed
/// window's end, then its partition key (the order a window emits in); a pattern match's
/// decision (time, an event before a deadline, the event's arrival number or the run's id:
/// the order a pattern operator emits in); for a projection of a window's or pattern's
/// outputs, the rank of the output it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rank {
    time: i64,
    kind: u8,
    number: u64,
    key: Value,
}

impl Rank {
    pub(super) fn window(end_ms: i64, key: Value) -> Self {
        Self {
            time: end_ms,
            kind: 0,
            number: 0,
            key,
        }
    }

    pub(super) fn decision(d: Decision) -> Self {
        Self {
            time: d.time,
            kind: u8::from(d.deadline),
            number: d.number,
            key: Value::Null,
        }
    }
}

impl Eq for Rank {}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.kind, self.number)
            .cmp(&(other.time, other.kind, other.number))
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// An output of a parallel context with its order key: the input event's sequence number
/// ([`FLUSH_SEQ`] for the end-of-input flush), the stream's index, its rank.
#[derive(Debug, Clone)]
pub(crate) struct Tagged {
    pub(crate) seq: u64,
    pub(crate) stream: usize,
    pub(crate) rank: Rank,
    pub(crate) event: Event,
}

impl Tagged {
    /// The order the sink merges the contexts' outputs in.
    pub(crate) fn order(&self, other: &Self) -> Ordering {
        (self.seq, self.stream)
            .cmp(&(other.seq, other.stream))
            .then_with(|| self.rank.cmp(&other.rank))
    }
}

/// Which contexts an input event goes to (see [`Engine::router`]).
#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// Per parallel window, per event type a parallel pattern reads and per input of a
    /// parallel join: the event type, the key fields (the partition field, the join key).
    windows: Vec<(FieldRef, Vec<FieldRef>)>,
    contexts: usize,
}

impl Router {
    /// Calls `to` with each context `event` goes to (at most once per window reading it).
    pub(crate) fn route(&self, event: &Event, mut to: impl FnMut(usize)) {
        static NULL: Value = Value::Null;
        for (t, fields) in &self.windows {
            if t.is(event.event_type_arc()) {
                let kg = match fields.as_slice() {
                    [field] => key_group(field.get(event).unwrap_or(&NULL)),
                    _ => key_group_of(event, fields.iter().map(FieldRef::name)),
                };
                to(owner(kg, self.contexts));
            }
        }
    }
}

/// What one step of a parallel context does to its owned windows and patterns.
#[derive(Clone, Copy)]
enum Action<'a> {
    /// Takes an input event.
    Event(&'a Event),
    /// Advances the windows to the effective watermark and each pattern to its own (by its
    /// place among the parallel patterns, [`Engine::parallel_operators`]), as the one-context
    /// engine after an event.
    Advance {
        effective: Option<EventTime>,
        operators: &'a [Option<EventTime>],
    },
    /// Flushes (end of input).
    Flush,
}

/// A parallel context's view of one batch of input (see [`Engine::process_routed`]).
pub(crate) struct Routed<'a> {
    /// The input sequence number of `events[0]`.
    pub(crate) first_seq: u64,
    pub(crate) events: &'a [Event],
    /// The effective watermark after each event (the source's, as the one-context engine's).
    pub(crate) watermarks: &'a [Option<EventTime>],
    /// Per parallel pattern ([`Engine::parallel_operators`]), its operator watermark after each
    /// event.
    pub(crate) operator_watermarks: &'a [Vec<Option<EventTime>>],
    /// Indices into `events` of those routed to this context, ascending.
    pub(crate) mine: &'a [u32],
}

/// The sequence number the outputs of the end-of-input flush carry: after every input.
pub(crate) const FLUSH_SEQ: u64 = u64::MAX;

/// A late event of a parallel context: its input position and stream (the one-context order
/// of the side output).
#[derive(Debug, Clone)]
pub(crate) struct TaggedLate {
    pub(crate) seq: u64,
    pub(crate) stream: usize,
    pub(crate) late: super::LateEvent,
}

/// Which streams of `streams` are parallel (see the module docs).
pub(super) fn parallel_streams(streams: &[CompiledStream]) -> Vec<bool> {
    let mut parallel: Vec<bool> = Vec::with_capacity(streams.len());
    for s in streams {
        let p = if s.plan.context.is_some() {
            false
        } else if let Some(op) = &s.operator {
            keyed_operator(s, op)
        } else if s.window.is_some() {
            s.input == Input::Event && s.plan.partition_by.is_some()
        } else {
            matches!(s.input, Input::Stream(up) if parallel[up])
        };
        parallel.push(p);
    }
    parallel
}

/// Whether `s` is a partitioned pattern or a join over input events only (which keyed
/// contexts can share out by key group: the partition key, the join key).
fn keyed_operator(s: &CompiledStream, op: &Operator) -> bool {
    let keyed = match op {
        Operator::Pattern(_) => s.plan.partition_by.is_some(),
        Operator::Join(_) => true,
    };
    keyed && s.feeds.iter().all(|f| f.input == Input::Event)
}

/// How a parallel pattern or join's state is split by key group.
#[derive(Debug, Clone)]
pub(crate) enum KeyedBy {
    /// A pattern: its partition field, on events of every type.
    Pattern(String),
    /// A join: each input's key fields, in input order.
    Join(Vec<Vec<String>>),
}

/// The key group of `event` by the values of `fields` (one field: its value; several: the
/// array of their values; a missing field reads as null), as the source routes it.
fn key_group_of<'a>(event: &Event, fields: impl ExactSizeIterator<Item = &'a str>) -> u16 {
    if fields.len() == 1 {
        let mut fields = fields;
        let f = fields.next().expect("one field");
        return key_group(event.get(f).unwrap_or(&Value::Null));
    }
    let key: Vec<Value> = fields
        .map(|f| event.get(f).cloned().unwrap_or(Value::Null))
        .collect();
    key_group(&Value::Array(key.into()))
}

impl Engine {
    /// The parallel pattern streams (indices, in stream order): the source computes their
    /// operator watermarks for the keyed contexts ([`Engine::operator_watermark_of`]).
    pub(crate) fn parallel_operators(&self) -> Vec<usize> {
        parallel_streams(&self.streams)
            .into_iter()
            .enumerate()
            .filter(|&(i, p)| p && self.streams[i].operator.is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// The operator watermark of pattern stream `stream` given the effective one, as
    /// [`process`](Self::process) advances it.
    pub(crate) fn operator_watermark_of(
        &self,
        stream: usize,
        effective: Option<EventTime>,
    ) -> Option<EventTime> {
        super::operator_watermark(&self.streams[stream], &self.watermarks, effective)
    }

    /// The parallel pattern and join streams a parallel run splits by key group, with their
    /// keys.
    #[must_use]
    pub(crate) fn parallel_operator_streams(&self) -> HashMap<String, KeyedBy> {
        self.parallel_operators()
            .into_iter()
            .filter_map(|i| {
                let s = &self.streams[i];
                let keyed = match s.operator.as_ref()? {
                    Operator::Pattern(_) => KeyedBy::Pattern(s.plan.partition_by.clone()?),
                    Operator::Join(op) => KeyedBy::Join(
                        op.spec()
                            .inputs
                            .iter()
                            .map(|i| i.key_fields.clone())
                            .collect(),
                    ),
                };
                Some((s.plan.name.clone(), keyed))
            })
            .collect()
    }

    /// The names of the window streams a parallel run splits by key group.
    #[must_use]
    pub(crate) fn parallel_window_streams(&self) -> HashSet<String> {
        parallel_streams(&self.streams)
            .into_iter()
            .zip(&self.streams)
            .filter(|(p, s)| *p && s.window.is_some())
            .map(|(_, s)| s.plan.name.clone())
            .collect()
    }

    /// Whether `--workers` above 1 runs any stream in parallel contexts (a partitioned window
    /// over events; see `docs/design/contexts.md`).
    #[must_use]
    pub fn has_parallel_streams(&self) -> bool {
        parallel_streams(&self.streams).into_iter().any(|p| p)
    }

    /// Makes this engine parallel context `index` of `contexts`: it runs the parallel streams
    /// for the key groups it owns, and skips the others.
    pub(crate) fn into_context(mut self, index: usize, contexts: usize) -> Self {
        let parallel = parallel_streams(&self.streams);
        self.roles = parallel
            .iter()
            .zip(&self.streams)
            .map(
                |(&p, s)| match (p, s.window.is_some() || s.operator.is_some()) {
                    (true, true) => Role::Owned,
                    (true, false) => Role::Run,
                    (false, _) => Role::Skip,
                },
            )
            .collect();
        self.owned = crate::key_group::owned(index, contexts);
        self.operator_slots = self.parallel_operators();
        self
    }

    /// Makes this engine the tail of a parallel run: it runs the streams no parallel or
    /// declared context runs, and takes the others' outputs from [`Engine::inject`].
    pub(crate) fn into_tail(mut self) -> Self {
        self.roles = parallel_streams(&self.streams)
            .into_iter()
            .zip(&self.streams)
            .map(|(p, s)| {
                if p || s.plan.context.is_some() {
                    Role::Injected
                } else {
                    Role::Run
                }
            })
            .collect();
        self
    }

    /// Makes this engine declared context `name` (`context name`): it runs the streams placed
    /// in it (`.context(name)`) over every event, takes what they read from other contexts
    /// from [`Engine::inject`], and skips the rest.
    pub(crate) fn into_declared(mut self, name: &str) -> Self {
        let mine: Vec<bool> = self
            .streams
            .iter()
            .map(|s| s.plan.context.as_deref() == Some(name))
            .collect();
        let mut roles: Vec<Role> = mine
            .iter()
            .map(|&m| if m { Role::Run } else { Role::Skip })
            .collect();
        for (i, s) in self.streams.iter().enumerate() {
            if !mine[i] {
                continue;
            }
            for up in 0..i {
                if !mine[up] && s.reads_stream(up) {
                    roles[up] = Role::Injected;
                }
            }
        }
        self.roles = roles;
        self.track_streams = true;
        self
    }

    /// The streams this engine runs itself (a declared context's).
    pub(crate) fn own_streams(&self) -> HashSet<usize> {
        (0..self.streams.len())
            .filter(|&i| self.roles.get(i).is_none_or(|r| *r == Role::Run))
            .collect()
    }

    /// The streams this engine takes from other contexts.
    pub(crate) fn injected_streams(&self) -> HashSet<usize> {
        (0..self.streams.len())
            .filter(|&i| self.roles.get(i) == Some(&Role::Injected))
            .collect()
    }

    /// A declared context's [`process`](Self::process): the outputs of its own streams at input
    /// position `seq`, tagged (a stream is only ever in one context, so within one position
    /// and stream they keep this engine's order), and its late events.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub(crate) fn process_tagged(
        &mut self,
        event: &Event,
        seq: u64,
        out: &mut Vec<Tagged>,
        late: &mut Vec<TaggedLate>,
    ) -> Result<(), EngineError> {
        let mut outputs = std::mem::take(&mut self.scratch);
        outputs.clear();
        self.emitted_by.clear();
        let result = self.process(event, &mut outputs);
        let by = std::mem::take(&mut self.emitted_by);
        for (event, &stream) in outputs.drain(..).zip(&by) {
            if self.roles[stream] == Role::Run {
                out.push(Tagged {
                    seq,
                    stream,
                    rank: NO_RANK.clone(),
                    event,
                });
            }
        }
        self.emitted_by = by;
        self.scratch = outputs;
        self.tag_late(seq, late);
        result
    }

    /// A declared context's end-of-input flush, its own streams' outputs tagged.
    pub(crate) fn flush_tagged(&mut self, out: &mut Vec<Tagged>, late: &mut Vec<TaggedLate>) {
        for (stream, event) in self.flush_all() {
            if self.roles[stream] == Role::Run {
                out.push(Tagged {
                    seq: FLUSH_SEQ,
                    stream,
                    rank: NO_RANK.clone(),
                    event,
                });
            }
        }
        self.tag_late(FLUSH_SEQ, late);
    }

    /// Gives the tail the outputs of parallel stream `stream` for the next
    /// [`process`](Self::process) (or the flush), in order.
    pub(crate) fn inject(&mut self, stream: usize, event: Event) {
        self.injected[stream].push(event);
    }

    /// The source's part of a parallel run, on the reading thread: checks `event` as
    /// [`process`](Self::process) would, counts it and observes its time; returns the effective
    /// watermark after it (what every context and the tail see at its position).
    ///
    /// # Errors
    /// As [`process`](Self::process), before anything changes.
    pub(crate) fn observe_source(
        &mut self,
        event: &Event,
    ) -> Result<Option<EventTime>, EngineError> {
        let source = self.source_of(event)?;
        self.events_processed += 1;
        Ok(if source.is_some() {
            self.observe_time(event)
        } else {
            self.watermarks.effective()
        })
    }

    /// What the source of a parallel run records in a checkpoint: the input's counters and
    /// watermark (the tail's state takes them).
    pub(crate) fn source_checkpoint(&self) -> EngineCheckpoint {
        EngineCheckpoint {
            watermark_state: Some(self.watermarks.snapshot()),
            events_processed: self.events_processed,
            ..EngineCheckpoint::default()
        }
    }

    /// How the source routes events to `contexts` contexts: by the key group of each
    /// parallel window's partition key.
    pub(crate) fn router(&self, contexts: usize) -> Router {
        let mut windows = Vec::new();
        for (p, s) in parallel_streams(&self.streams)
            .into_iter()
            .zip(&self.streams)
        {
            if !p || (s.window.is_none() && s.operator.is_none()) {
                continue;
            }
            let field = || {
                let f = s
                    .plan
                    .partition_by
                    .as_deref()
                    .expect("a parallel window is keyed");
                vec![FieldRef::new(Arc::<str>::from(f))]
            };
            match &s.operator {
                None => windows.push((FieldRef::new(s.plan.source.name()), field())),
                Some(Operator::Pattern(_)) => {
                    for f in &s.feeds {
                        windows.push((FieldRef::new(f.name.as_str()), field()));
                    }
                }
                Some(Operator::Join(op)) => {
                    for f in &s.feeds {
                        let input = op.input_of(&f.name).expect("a join reads its feeds");
                        let keys = op.spec().inputs[input]
                            .key_fields
                            .iter()
                            .map(|k| FieldRef::new(Arc::<str>::from(k.as_str())))
                            .collect();
                        windows.push((FieldRef::new(f.name.as_str()), keys));
                    }
                }
            }
        }
        Router { windows, contexts }
    }

    /// Whether the tail of a parallel run runs streams of its own (else it only passes the
    /// contexts' outputs on).
    pub(crate) fn tail_runs_streams(&self) -> bool {
        self.roles.contains(&Role::Run)
    }

    /// Counts outputs the tail passed on without processing (it runs no stream of its own).
    pub(crate) fn count_passed_on(&mut self, outputs: u64) {
        self.output_events_emitted += outputs;
    }

    /// A new engine of the same program and settings (the idle timeout), without state: the
    /// other contexts of a parallel run.
    ///
    /// # Errors
    /// As [`Engine::new`] (not for a program this engine compiled).
    pub(crate) fn sibling(&self) -> Result<Self, EngineError> {
        let mut e = Engine::new(self.program.clone())?;
        e.idle_timeout_ms = self.idle_timeout_ms;
        Ok(e)
    }

    /// The index of stream `name` (`usize::MAX` if the program has none: sorted last).
    pub(crate) fn stream_index(&self, name: &str) -> usize {
        self.streams
            .iter()
            .position(|s| s.plan.name == name)
            .unwrap_or(usize::MAX)
    }

    /// A parallel context's share of one batch of input: the events routed to it (`batch.mine`)
    /// taken at their positions, and every window its streams close in the batch closed at the
    /// input position where the one-context engine closes it: the source's watermark after each
    /// event (`batch.watermarks`) tells the first position at which a window's close time is
    /// reached, so a context advances only to the watermarks that close something, and to the
    /// one before each of its events (what its windows see when they take it). Outputs carry
    /// their order keys.
    pub(crate) fn process_routed(
        &mut self,
        batch: &Routed<'_>,
        out: &mut Vec<Tagged>,
        late: &mut Vec<TaggedLate>,
    ) {
        for &k in batch.mine {
            let k = k as usize;
            if k > 0 {
                self.close_until(batch, k - 1, out);
            }
            let seq = batch.first_seq + k as u64;
            self.routed_step(seq, Action::Event(&batch.events[k]), out);
            self.tag_late(seq, late);
        }
        if !batch.events.is_empty() {
            self.close_until(batch, batch.events.len() - 1, out);
        }
    }

    /// Advances the owned windows and patterns to the watermarks after event `upto` of the
    /// batch, taking each step where the one-context engine takes it: a window is emitted at
    /// the first position where the effective watermark reaches its close time, a pattern
    /// decides (releases a held event, fires a deadline) at the first position where its
    /// operator watermark passes the decision's time.
    fn close_until(&mut self, batch: &Routed<'_>, upto: usize, out: &mut Vec<Tagged>) {
        loop {
            let mut first: Option<usize> = None;
            for (i, (s, r)) in self.streams.iter().zip(&self.roles).enumerate() {
                if *r != Role::Owned {
                    continue;
                }
                // Watermarks only grow: the first position at which the step is due.
                let j = if let Some(w) = &s.window {
                    let Some(t) = w.next_timer() else { continue };
                    batch.watermarks[..=upto].partition_point(|w| w.is_none_or(|w| w < t))
                } else if let Some(op) = &s.operator {
                    let Some(t) = op.next_decision() else {
                        continue;
                    };
                    let slot = slot_of(&self.operator_slots, i);
                    batch.operator_watermarks[slot][..=upto]
                        .partition_point(|w| w.is_none_or(|w| w <= t))
                } else {
                    continue;
                };
                if j <= upto {
                    first = Some(first.map_or(j, |f| f.min(j)));
                }
            }
            let Some(j) = first else { break };
            self.advance_at(batch, j, out);
        }
        self.advance_at(batch, upto, out);
    }

    /// Advances to the watermarks after event `j` of the batch.
    fn advance_at(&mut self, batch: &Routed<'_>, j: usize, out: &mut Vec<Tagged>) {
        let operators: Vec<Option<EventTime>> =
            batch.operator_watermarks.iter().map(|w| w[j]).collect();
        let action = Action::Advance {
            effective: batch.watermarks[j],
            operators: &operators,
        };
        self.routed_step(batch.first_seq + j as u64, action, out);
    }

    /// One step of the streams a parallel context runs, at input position `seq`: an event into
    /// the owned windows and patterns that read its type and own its key, the owned windows
    /// and patterns advanced to their watermarks, or flushed; then the window-less streams
    /// over what they emitted.
    fn routed_step(&mut self, seq: u64, action: Action<'_>, out: &mut Vec<Tagged>) {
        // A pattern numbers its events by their absolute input position.
        let arrival = self.events_processed.saturating_add(seq);
        let mut step = Step {
            variables: &self.variables,
            results: &mut self.results,
            late: &mut self.late,
        };
        for i in 0..self.streams.len() {
            let (done, rest) = self.produced.split_at_mut(i);
            let (done_ranks, rest_ranks) = self.ranks.split_at_mut(i);
            let (mine, my_ranks) = (&mut rest[0], &mut rest_ranks[0]);
            mine.clear();
            my_ranks.clear();
            let stream = &mut self.streams[i];
            match self.roles[i] {
                Role::Skip | Role::Injected => continue,
                Role::Owned if stream.operator.is_some() => match action {
                    Action::Advance { operators, .. } => {
                        if let Some(wm) = operators[slot_of(&self.operator_slots, i)] {
                            stream.drain_operator_ranked(step.variables, Some(wm), mine, my_ranks);
                        }
                    }
                    Action::Flush => {
                        stream.drain_operator_ranked(step.variables, None, mine, my_ranks);
                    }
                    Action::Event(event) => {
                        let reads = stream.feeds.iter().any(|f| f.name == event.event_type());
                        if reads
                            && let Some(op) = stream.operator.as_mut()
                            && self.owned.contains(&op_key_group(op, &stream.plan, event))
                            && op.process_at(event, arrival)
                        {
                            step.dropped_late(&stream.plan.name, event);
                        }
                    }
                },
                Role::Owned => {
                    let Some(op) = stream.window.as_mut() else {
                        continue;
                    };
                    match action {
                        Action::Advance { effective, .. } => {
                            if let Some(wm) = effective {
                                op.advance_watermark(
                                    wm.saturating_sub(stream.watermark_lag_ms),
                                    step.results,
                                );
                                step.finish(stream, mine, Some(my_ranks));
                            }
                        }
                        Action::Flush => {
                            while op.flush_step(step.results, usize::MAX) {}
                            step.finish(stream, mine, Some(my_ranks));
                        }
                        Action::Event(event) => {
                            if stream.source_name.is(event.event_type_arc())
                                && self.owned.contains(&key_group(op.partition_key(event)))
                            {
                                step.handle(stream, event, mine, Some((my_ranks, &NO_RANK)));
                            }
                        }
                    }
                }
                Role::Run => {
                    let Input::Stream(up) = stream.input else {
                        unreachable!("a parallel window-less stream reads a parallel stream")
                    };
                    for (e, r) in done[up].iter().zip(&done_ranks[up]) {
                        step.handle(stream, e, mine, Some((my_ranks, r)));
                    }
                }
            }
            let moved = !stream.has_readers;
            push_tagged(seq, i, mine, my_ranks, moved, out);
        }
    }

    /// The end-of-input flush of a parallel context: every open window of the streams it runs,
    /// with order keys ([`FLUSH_SEQ`], stream, rank), stream by stream.
    pub(crate) fn flush_context(&mut self, out: &mut Vec<Tagged>, late: &mut Vec<TaggedLate>) {
        self.routed_step(FLUSH_SEQ, Action::Flush, out);
        self.tag_late(FLUSH_SEQ, late);
    }

    fn tag_late(&mut self, seq: u64, late: &mut Vec<TaggedLate>) {
        let taken = std::mem::take(&mut self.late);
        for l in taken {
            let stream = self.stream_index(&l.stream);
            late.push(TaggedLate {
                seq,
                stream,
                late: l,
            });
        }
    }

    /// The state a parallel context or the tail checkpoints: its own streams only, and (a
    /// parallel context) no output count: the tail counts every output.
    pub(crate) fn context_checkpoint(&self) -> EngineCheckpoint {
        let mut cp = self.create_checkpoint_unsorted();
        let theirs: Vec<&str> = self
            .streams
            .iter()
            .zip(&self.roles)
            .filter(|(_, r)| matches!(r, Role::Skip | Role::Injected))
            .map(|(s, _)| s.plan.name.as_str())
            .collect();
        for name in theirs {
            cp.window_states.remove(name);
            cp.pattern_states.remove(name);
            cp.join_operator_states.remove(name);
        }
        if self.roles.contains(&Role::Owned) {
            // The input's counters and watermark are the source's, kept by the tail.
            cp.output_events_emitted = 0;
            cp.events_processed = 0;
            cp.watermark_state = None;
        }
        cp
    }
}

/// The key group of an input event of a parallel pattern (its partition field) or join (its
/// input's key fields).
fn op_key_group(op: &Operator, plan: &varpulis_vpl::StreamPlan, event: &Event) -> u16 {
    match op {
        Operator::Pattern(_) => {
            let field = plan.partition_by.as_deref().unwrap_or_default();
            key_group(event.get(field).unwrap_or(&Value::Null))
        }
        Operator::Join(op) => {
            let input = op
                .input_of(event.event_type())
                .expect("a join reads its feeds");
            let fields = &op.spec().inputs[input].key_fields;
            key_group_of(event, fields.iter().map(String::as_str))
        }
    }
}

/// The place of stream `stream` among the parallel patterns and joins.
fn slot_of(slots: &[usize], stream: usize) -> usize {
    slots
        .iter()
        .position(|&s| s == stream)
        .expect("an owned pattern is a parallel operator")
}

/// The rank a window-fed output does not use (a window's outputs carry their own).
static NO_RANK: Rank = Rank {
    time: 0,
    kind: 0,
    number: 0,
    key: Value::Null,
};

fn push_tagged(
    seq: u64,
    stream: usize,
    mine: &mut Vec<Event>,
    ranks: &mut Vec<Rank>,
    moved: bool,
    out: &mut Vec<Tagged>,
) {
    debug_assert_eq!(mine.len(), ranks.len());
    if moved {
        out.extend(
            mine.drain(..)
                .zip(ranks.drain(..))
                .map(|(event, rank)| Tagged {
                    seq,
                    stream,
                    rank,
                    event,
                }),
        );
    } else {
        out.extend(mine.iter().zip(ranks.iter()).map(|(event, rank)| Tagged {
            seq,
            stream,
            rank: rank.clone(),
            event: event.clone(),
        }));
    }
}

/// Merges the states of every context of a checkpoint into the state of one engine (the
/// inverse of the split a restore with several contexts makes): window partitions of a stream
/// several contexts ran are united, their late-event counts summed; the output counts are
/// summed; everything else each context holds a copy of, or only one context holds.
///
/// # Errors
/// [`EngineError::Rescale`] when the contexts disagree: one stream's windows under two
/// definitions, one partition key in two contexts, one pattern or join in two contexts.
pub fn merge_contexts(
    states: impl IntoIterator<Item = EngineCheckpoint>,
) -> Result<EngineCheckpoint, EngineError> {
    let mut merged: Option<EngineCheckpoint> = None;
    for cp in states {
        let Some(into) = merged.as_mut() else {
            merged = Some(cp);
            continue;
        };
        into.version = into.version.max(cp.version);
        for (name, state) in cp.window_states {
            match into.window_states.get_mut(&name) {
                Some(have) => merge_window(&name, have, state)?,
                None => {
                    into.window_states.insert(name, state);
                }
            }
        }
        for (name, state) in cp.pattern_states {
            match into.pattern_states.get_mut(&name) {
                Some(have) => merge_pattern(&name, have, state)?,
                None => {
                    into.pattern_states.insert(name, state);
                }
            }
        }
        for (name, state) in cp.join_operator_states {
            match into.join_operator_states.get_mut(&name) {
                Some(have) => merge_join(&name, have, state)?,
                None => {
                    into.join_operator_states.insert(name, state);
                }
            }
        }
        unite(&mut into.sase_states, cp.sase_states)?;
        unite(&mut into.join_states, cp.join_states)?;
        for (name, value) in cp.variables {
            into.variables.entry(name).or_insert(value);
        }
        if into.watermark_state.is_none() {
            into.watermark_state = cp.watermark_state;
        }
        into.events_processed = into.events_processed.max(cp.events_processed);
        into.output_events_emitted += cp.output_events_emitted;
    }
    Ok(merged.unwrap_or_default())
}

fn unite<T>(into: &mut BTreeMap<String, T>, from: BTreeMap<String, T>) -> Result<(), EngineError> {
    for (name, state) in from {
        if into.contains_key(&name) {
            return Err(EngineError::Rescale {
                stream: name,
                what: "its operator state is in two contexts".to_owned(),
            });
        }
        into.insert(name, state);
    }
    Ok(())
}

/// Unites the states of one pattern that several keyed contexts ran: their partitions (one
/// key in one context only) and held events, counters summed; the arrival and run numbers
/// continue after the largest.
fn merge_pattern(
    name: &str,
    into: &mut PatternCheckpoint,
    from: PatternCheckpoint,
) -> Result<(), EngineError> {
    let rescale = |what: String| EngineError::Rescale {
        stream: name.to_owned(),
        what,
    };
    if into.shape != from.shape {
        return Err(rescale(
            "two contexts hold its pattern under different definitions".to_owned(),
        ));
    }
    if !from.partitions.is_empty() {
        let keys: HashSet<&Option<Value>> = into.partitions.iter().map(|p| &p.key).collect();
        if let Some(p) = from.partitions.iter().find(|p| keys.contains(&p.key)) {
            let key = p
                .key
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), Value::to_string);
            return Err(rescale(format!("partition {key} is in two contexts")));
        }
    }
    into.partitions.extend(from.partitions);
    into.partitions.sort_by(|a, b| a.key.cmp(&b.key));
    into.pending.extend(from.pending);
    into.pending
        .sort_by_key(|(arrival, e)| (e.timestamp_ms(), *arrival));
    into.next_arrival = into.next_arrival.max(from.next_arrival);
    into.next_run = into.next_run.max(from.next_run);
    into.watermark_ms = into.watermark_ms.max(from.watermark_ms);
    add_counters(&mut into.counters, &from.counters);
    Ok(())
}

fn add_counters(into: &mut PatternCounters, from: &PatternCounters) {
    let PatternCounters {
        runs_started,
        matches,
        runs_expired,
        runs_cancelled,
        runs_evicted,
        kleene_overflows,
        late_events_dropped,
        events_without_key,
    } = *from;
    into.runs_started += runs_started;
    into.matches += matches;
    into.runs_expired += runs_expired;
    into.runs_cancelled += runs_cancelled;
    into.runs_evicted += runs_evicted;
    into.kleene_overflows += kleene_overflows;
    into.late_events_dropped += late_events_dropped;
    into.events_without_key += events_without_key;
}

/// Splits one pattern's state over `contexts` keyed contexts by the key group of each
/// partition and of each held event's partition field (`field`; an event without it goes
/// where the source routes it, with the null key); the counters go to context 0.
fn split_pattern(state: PatternCheckpoint, field: &str, contexts: usize) -> Vec<PatternCheckpoint> {
    let empty = PatternCheckpoint {
        shape: state.shape.clone(),
        partitions: Vec::new(),
        pending: Vec::new(),
        next_arrival: state.next_arrival,
        next_run: state.next_run,
        watermark_ms: state.watermark_ms,
        counters: PatternCounters::default(),
    };
    let mut pieces = vec![empty; contexts];
    pieces[0].counters = state.counters;
    for p in state.partitions {
        let kg = key_group(p.key.as_ref().unwrap_or(&Value::Null));
        pieces[owner(kg, contexts)].partitions.push(p);
    }
    for (arrival, e) in state.pending {
        let kg = key_group(e.get(field).unwrap_or(&Value::Null));
        pieces[owner(kg, contexts)].pending.push((arrival, e));
    }
    pieces
}

/// Splits one join's state over `contexts` keyed contexts by the key group of each buffered
/// and held event's join key (`keys`: per input, its key fields); the counters go to context 0.
fn split_join(
    state: JoinOperatorCheckpoint,
    keys: &[Vec<String>],
    contexts: usize,
) -> Vec<JoinOperatorCheckpoint> {
    let empty = JoinOperatorCheckpoint {
        shape: state.shape.clone(),
        buffers: vec![Vec::new(); state.buffers.len()],
        pending: Vec::new(),
        next_arrival: state.next_arrival,
        watermark_ms: state.watermark_ms,
        counters: JoinCounters::default(),
    };
    let mut pieces = vec![empty; contexts];
    pieces[0].counters = state.counters;
    let fields = |input: usize| keys.get(input).map_or(&[][..], Vec::as_slice);
    let to = |e: &Event, input: usize| {
        owner(
            key_group_of(e, fields(input).iter().map(String::as_str)),
            contexts,
        )
    };
    for (input, events) in state.buffers.into_iter().enumerate() {
        for e in events {
            pieces[to(&e, input)].buffers[input].push(e);
        }
    }
    for (arrival, input, e) in state.pending {
        let c = to(&e, usize::try_from(input).unwrap_or(usize::MAX));
        pieces[c].pending.push((arrival, input, e));
    }
    pieces
}

/// Unites the states of one join that several keyed contexts ran: each input's buffers (one
/// key in one context only), least recently updated first by event time; the held events; the
/// counters summed.
fn merge_join(
    name: &str,
    into: &mut JoinOperatorCheckpoint,
    from: JoinOperatorCheckpoint,
) -> Result<(), EngineError> {
    if into.shape != from.shape || into.buffers.len() != from.buffers.len() {
        return Err(EngineError::Rescale {
            stream: name.to_owned(),
            what: "two contexts hold its join under different definitions".to_owned(),
        });
    }
    for (have, more) in into.buffers.iter_mut().zip(from.buffers) {
        have.extend(more);
        // Within one context the order is the update order, which is the order of event
        // time (events are processed in time order); across contexts the stable sort keeps
        // each context's order for events of one time.
        have.sort_by_key(Event::timestamp_ms);
    }
    into.pending.extend(from.pending);
    into.pending
        .sort_by_key(|(arrival, _, e)| (e.timestamp_ms(), *arrival));
    into.next_arrival = into.next_arrival.max(from.next_arrival);
    into.watermark_ms = into.watermark_ms.max(from.watermark_ms);
    let JoinCounters {
        matches,
        expired,
        keys_evicted,
        late_events_dropped,
        events_without_key,
    } = from.counters;
    let c = &mut into.counters;
    c.matches += matches;
    c.expired += expired;
    c.keys_evicted += keys_evicted;
    c.late_events_dropped += late_events_dropped;
    c.events_without_key += events_without_key;
    Ok(())
}

fn merge_window(
    name: &str,
    into: &mut WindowCheckpoint,
    from: WindowCheckpoint,
) -> Result<(), EngineError> {
    if into.spec != from.spec {
        return Err(EngineError::Rescale {
            stream: name.to_owned(),
            what: "two contexts hold its windows under different definitions".to_owned(),
        });
    }
    if !from.partitions.is_empty() {
        let keys: HashSet<&Value> = into.partitions.iter().map(|p| &p.key).collect();
        if let Some(p) = from.partitions.iter().find(|p| keys.contains(&p.key)) {
            return Err(EngineError::Rescale {
                stream: name.to_owned(),
                what: format!("partition {} is in two contexts", p.key),
            });
        }
    }
    into.partitions.extend(from.partitions);
    into.late_events_dropped += from.late_events_dropped;
    into.watermark_ms = into.watermark_ms.max(from.watermark_ms);
    into.next_seq = into.next_seq.max(from.next_seq);
    Ok(())
}

/// Splits one engine's state for a parallel run of `contexts` keyed contexts, the declared
/// contexts and a tail: the partitions of each window of `parallel` and of each pattern of
/// `patterns` (name to partition field) go to the keyed context that owns their key group
/// (its counts to context 0), the state of a stream placed
/// in a declared context (`declared`: stream name to the index of its context among
/// `declared_count`) to that context, everything else to the tail; the watermark, variables
/// and input count go to all, the output count to the tail.
pub(crate) fn split(
    cp: EngineCheckpoint,
    parallel: &HashSet<String>,
    operators: &HashMap<String, KeyedBy>,
    contexts: usize,
    declared: &HashMap<String, usize>,
    declared_count: usize,
) -> (
    Vec<EngineCheckpoint>,
    Vec<EngineCheckpoint>,
    EngineCheckpoint,
) {
    let shared = EngineCheckpoint {
        version: cp.version,
        variables: cp.variables.clone(),
        watermark_state: cp.watermark_state.clone(),
        events_processed: cp.events_processed,
        ..EngineCheckpoint::default()
    };
    let mut parts = vec![shared.clone(); contexts];
    let mut decl = vec![shared.clone(); declared_count];
    let mut tail = EngineCheckpoint {
        output_events_emitted: cp.output_events_emitted,
        sase_states: cp.sase_states,
        join_states: cp.join_states,
        ..shared
    };
    for (name, state) in cp.pattern_states {
        if let Some(KeyedBy::Pattern(field)) = operators.get(&name) {
            for (part, piece) in parts.iter_mut().zip(split_pattern(state, field, contexts)) {
                part.pattern_states.insert(name.clone(), piece);
            }
            continue;
        }
        match declared.get(&name) {
            Some(&d) => decl[d].pattern_states.insert(name, state),
            None => tail.pattern_states.insert(name, state),
        };
    }
    for (name, state) in cp.join_operator_states {
        if let Some(KeyedBy::Join(keys)) = operators.get(&name) {
            for (part, piece) in parts.iter_mut().zip(split_join(state, keys, contexts)) {
                part.join_operator_states.insert(name.clone(), piece);
            }
            continue;
        }
        match declared.get(&name) {
            Some(&d) => decl[d].join_operator_states.insert(name, state),
            None => tail.join_operator_states.insert(name, state),
        };
    }
    for (name, state) in cp.window_states {
        if let Some(&d) = declared.get(&name) {
            decl[d].window_states.insert(name, state);
            continue;
        }
        if !parallel.contains(&name) {
            tail.window_states.insert(name, state);
            continue;
        }
        let empty = WindowCheckpoint {
            partitions: Vec::new(),
            late_events_dropped: 0,
            ..state.clone()
        };
        let mut pieces = vec![empty; contexts];
        pieces[0].late_events_dropped = state.late_events_dropped;
        for p in state.partitions {
            pieces[owner(key_group(&p.key), contexts)]
                .partitions
                .push(p);
        }
        for (part, piece) in parts.iter_mut().zip(pieces) {
            part.window_states.insert(name.clone(), piece);
        }
    }
    (parts, decl, tail)
}
