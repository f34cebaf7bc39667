//! Windowed inner equi-joins in event time: each processed event is combined with the latest
//! event of the same key of every other input within the window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use varpulis_core::{Event, EventTime, Value};
use varpulis_state::{JoinCounters, JoinOperatorCheckpoint};

use crate::Admission;
use crate::error::PatternError;
use crate::held::Held;

/// Keys kept per input by default; the least recently updated is evicted (and counted) past
/// it.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One input of a join: its name and its key fields (aligned across inputs: the `.on` pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInput {
    /// The input's name (an event type or a stream).
    pub name: String,
    /// The fields whose values form the join key, in key order.
    pub key_fields: Vec<String>,
}

/// A windowed join.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// The stream's name.
    pub name: String,
    /// Two or more inputs, with key lists of one length.
    pub inputs: Vec<JoinInput>,
    /// An event joins the latest event of each other input at most this many ms older.
    pub window_ms: i64,
    /// Keys per input, at most.
    pub max_keys: usize,
    /// The join's source text (part of the checkpointed shape).
    pub text: String,
}

/// A combination: one event per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinMatch {
    /// The time of the event that made it (the latest of its events).
    pub time: EventTime,
    /// The input of that event.
    pub trigger: usize,
    /// One event per input.
    pub events: Vec<Event>,
}

type JoinKey = Vec<Value>;

#[derive(Debug, Default)]
struct Buffer {
    /// Key -> (latest event, its update number).
    latest: HashMap<JoinKey, (Event, u64), foldhash::fast::RandomState>,
    /// (update number) -> key: least recently updated first.
    order: BTreeMap<u64, JoinKey>,
}

/// The join operator (see `docs/design/patterns.md`, "Joins").
#[derive(Debug)]
pub struct JoinOperator {
    spec: JoinSpec,
    shape: String,
    buffers: Vec<Buffer>,
    /// (time, key-independent expiry): (event time, input, update number).
    expiry: BTreeSet<(EventTime, usize, u64)>,
    pending: Held<(usize, Event)>,
    next_arrival: u64,
    next_update: u64,
    watermark: Option<EventTime>,
    counters: JoinCounters,
}

impl JoinOperator {
    /// Checks `spec` and builds its operator.
    ///
    /// # Errors
    /// [`PatternError::Invalid`]: fewer than two inputs, key lists of different lengths or
    /// empty, a window that is not positive, `max_keys` 0.
    pub fn new(spec: JoinSpec) -> Result<Self, PatternError> {
        let invalid = |message: String| {
            Err(PatternError::Invalid {
                pattern: spec.name.clone(),
                message,
            })
        };
        if spec.inputs.len() < 2 {
            return invalid("a join needs at least two inputs".to_owned());
        }
        let width = spec.inputs[0].key_fields.len();
        if width == 0 || spec.inputs.iter().any(|i| i.key_fields.len() != width) {
            return invalid(
                "every input needs the same number of key fields (at least one)".to_owned(),
            );
        }
        if spec.window_ms <= 0 {
            return invalid("the join window must be positive".to_owned());
        }
        if spec.max_keys == 0 {
            return invalid("max_keys must be at least 1".to_owned());
        }
        let mut shape = String::new();
        for i in &spec.inputs {
            let _ = write!(shape, "{}({}) ", i.name, i.key_fields.join(","));
        }
        let _ = write!(
            shape,
            "window {}; max_keys {}; {}",
            spec.window_ms, spec.max_keys, spec.text
        );
        let buffers = spec.inputs.iter().map(|_| Buffer::default()).collect();
        Ok(Self {
            spec,
            shape,
            buffers,
            expiry: BTreeSet::new(),
            pending: Held::default(),
            next_arrival: 0,
            next_update: 0,
            watermark: None,
            counters: JoinCounters::default(),
        })
    }

    /// What was counted so far.
    #[must_use]
    pub fn counters(&self) -> JoinCounters {
        self.counters
    }

    /// The join it runs.
    #[must_use]
    pub fn spec(&self) -> &JoinSpec {
        &self.spec
    }

    /// Approximate bytes held: buffered and held events, and the expiry index.
    #[must_use]
    pub fn approximate_state_bytes(&self) -> usize {
        let event = |e: &Event| {
            48 + e.event_type().len() + e.fields().map(|(n, _)| n.len() + 24).sum::<usize>()
        };
        let buffered: usize = self
            .buffers
            .iter()
            .flat_map(|b| b.latest.iter())
            .map(|(k, (e, _))| 32 + k.len() * 24 + event(e))
            .sum();
        buffered
            + self.pending.values().map(|(_, e)| event(e)).sum::<usize>()
            + self.expiry.len() * 32
    }

    /// Buffered events, over all inputs.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffers.iter().map(|b| b.latest.len()).sum()
    }

    /// The input an event type feeds, if any (the first input of that name).
    #[must_use]
    pub fn input_of(&self, name: &str) -> Option<usize> {
        self.spec.inputs.iter().position(|i| i.name == name)
    }

    /// Takes an event of input `input`: held until the watermark passes it, or dropped and
    /// counted if it already has.
    ///
    /// # Panics
    /// If `input` is not an input of the join.
    pub fn process(&mut self, input: usize, event: &Event) -> Admission {
        self.process_with_arrival(input, event, self.next_arrival)
    }

    /// [`process`](Self::process) with the event's arrival number given (as
    /// [`PatternOperator::process_with_arrival`](crate::PatternOperator::process_with_arrival):
    /// the numbering of one input shared by several operators). Numbers must grow from call
    /// to call; one below the operator's next number is raised to it.
    ///
    /// # Panics
    /// If `input` is not an input of the join.
    pub fn process_with_arrival(&mut self, input: usize, event: &Event, arrival: u64) -> Admission {
        assert!(
            input < self.spec.inputs.len(),
            "join input {input} out of range"
        );
        let ts = event.timestamp_ms();
        if self.watermark.is_some_and(|w| ts < w) {
            self.counters.late_events_dropped += 1;
            return Admission::Late;
        }
        let arrival = arrival.max(self.next_arrival);
        self.pending.insert((ts, arrival), (input, event.clone()));
        self.next_arrival = arrival + 1;
        Admission::Held
    }

    /// The time of the first held event: the first
    /// [`advance_watermark`](Self::advance_watermark) above it emits something (or buffers
    /// it); none below it emits anything.
    #[must_use]
    pub fn next_decision(&self) -> Option<EventTime> {
        self.pending.first_key().map(|(t, _)| t)
    }

    /// [`advance_watermark`](Self::advance_watermark), and for each combination appended to
    /// `out` the arrival number of the event that made it, appended to `arrivals` (with its
    /// time, the order one operator emits in).
    pub fn advance_watermark_with_arrivals(
        &mut self,
        wm: EventTime,
        out: &mut Vec<JoinMatch>,
        arrivals: &mut Vec<u64>,
    ) {
        if self.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.watermark = Some(wm);
        self.release(Some(wm), out, Some(arrivals));
        self.expire(wm);
    }

    /// [`flush`](Self::flush), with each combination's arrival number (as
    /// [`advance_watermark_with_arrivals`](Self::advance_watermark_with_arrivals)).
    pub fn flush_with_arrivals(&mut self, out: &mut Vec<JoinMatch>, arrivals: &mut Vec<u64>) {
        self.release(None, out, Some(arrivals));
    }

    /// Processes the held events below `wm` (`None`: all) in (time, arrival) order.
    fn release(
        &mut self,
        wm: Option<EventTime>,
        out: &mut Vec<JoinMatch>,
        mut arrivals: Option<&mut Vec<u64>>,
    ) {
        while self
            .pending
            .first_key()
            .is_some_and(|(t, _)| wm.is_none_or(|wm| t < wm))
        {
            let Some(((_, arrival), (input, event))) = self.pending.pop_first() else {
                break;
            };
            let before = out.len();
            self.step(input, &event, out);
            if let Some(a) = arrivals.as_deref_mut() {
                a.resize(a.len() + (out.len() - before), arrival);
            }
        }
    }

    /// Forgets buffered events older than `wm - window`.
    fn expire(&mut self, wm: EventTime) {
        let horizon = wm.saturating_sub(self.spec.window_ms);
        while let Some(&(ts, input, update)) = self.expiry.first() {
            if ts >= horizon {
                break;
            }
            self.expiry.pop_first();
            let buffer = &mut self.buffers[input];
            if let Some(key) = buffer.order.remove(&update) {
                buffer.latest.remove(&key);
                self.counters.expired += 1;
            }
        }
    }

    /// Moves the watermark to `wm` (never backwards): processes every held event older than
    /// `wm` in event-time order, then forgets buffered events older than `wm - window`.
    pub fn advance_watermark(&mut self, wm: EventTime, out: &mut Vec<JoinMatch>) {
        if self.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.watermark = Some(wm);
        self.release(Some(wm), out, None);
        self.expire(wm);
    }

    /// End of input: processes every held event.
    pub fn flush(&mut self, out: &mut Vec<JoinMatch>) {
        self.release(None, out, None);
    }

    fn key(&self, input: usize, event: &Event) -> Option<JoinKey> {
        self.spec.inputs[input]
            .key_fields
            .iter()
            .map(|f| event.get(f).cloned())
            .collect()
    }

    fn step(&mut self, input: usize, event: &Event, out: &mut Vec<JoinMatch>) {
        let Some(key) = self.key(input, event) else {
            self.counters.events_without_key += 1;
            return;
        };
        let ts = event.timestamp_ms();
        let oldest = ts.saturating_sub(self.spec.window_ms);
        let mut events = Vec::with_capacity(self.buffers.len());
        let mut complete = true;
        for (j, buffer) in self.buffers.iter().enumerate() {
            if j == input {
                events.push(event.clone());
                continue;
            }
            match buffer.latest.get(&key) {
                Some((e, _)) if e.timestamp_ms() >= oldest => events.push(e.clone()),
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            self.counters.matches += 1;
            out.push(JoinMatch {
                time: ts,
                trigger: input,
                events,
            });
        }
        self.remember(input, key, event.clone());
    }

    fn remember(&mut self, input: usize, key: JoinKey, event: Event) {
        let update = self.next_update;
        self.next_update += 1;
        let ts = event.timestamp_ms();
        let buffer = &mut self.buffers[input];
        if let Some((old, old_update)) = buffer.latest.insert(key.clone(), (event, update)) {
            buffer.order.remove(&old_update);
            self.expiry.remove(&(old.timestamp_ms(), input, old_update));
        } else if buffer.latest.len() > self.spec.max_keys
            && let Some((old_update, old_key)) = buffer.order.pop_first()
        {
            if let Some((old, _)) = buffer.latest.remove(&old_key) {
                self.expiry.remove(&(old.timestamp_ms(), input, old_update));
            }
            self.counters.keys_evicted += 1;
        }
        buffer.order.insert(update, key);
        self.expiry.insert((ts, input, update));
    }

    /// The operator's state.
    #[must_use]
    pub fn snapshot(&self) -> JoinOperatorCheckpoint {
        JoinOperatorCheckpoint {
            shape: self.shape.clone(),
            buffers: self
                .buffers
                .iter()
                .map(|b| {
                    b.order
                        .values()
                        .filter_map(|k| b.latest.get(k).map(|(e, _)| e.clone()))
                        .collect()
                })
                .collect(),
            pending: self
                .pending
                .sorted()
                .into_iter()
                .map(|((_, arrival), (input, e))| {
                    (
                        arrival,
                        u32::try_from(*input).unwrap_or(u32::MAX),
                        e.clone(),
                    )
                })
                .collect(),
            next_arrival: self.next_arrival,
            watermark_ms: self.watermark,
            counters: self.counters,
        }
    }

    /// Replaces the operator's state with `state`.
    ///
    /// # Errors
    /// [`PatternError::IncompatibleState`]: another join's state (its shape differs), a
    /// buffer or held event of an input the join does not have, a buffered event without its
    /// key or with a key seen twice, an arrival number not below the recorded next one. A
    /// buffer of more keys than `max_keys` keeps the most recently updated (the others are
    /// counted as evicted). The operator is unchanged then.
    pub fn restore(&mut self, state: &JoinOperatorCheckpoint) -> Result<(), PatternError> {
        let bad = |message: String| PatternError::IncompatibleState {
            pattern: self.spec.name.clone(),
            message,
        };
        if state.shape != self.shape {
            return Err(bad(format!(
                "the checkpoint holds the join `{}`, the program has `{}`",
                state.shape, self.shape
            )));
        }
        if state.buffers.len() != self.spec.inputs.len() {
            return Err(bad(format!(
                "{} buffers for {} inputs",
                state.buffers.len(),
                self.spec.inputs.len()
            )));
        }
        let mut buffers: Vec<Buffer> = Vec::with_capacity(state.buffers.len());
        let mut expiry = BTreeSet::new();
        let mut update = 0u64;
        let mut counters = state.counters;
        for (input, events) in state.buffers.iter().enumerate() {
            // More keys than `max_keys` (the state of several contexts united, each within
            // its bound): the least recently updated are evicted, as they would have been.
            let over = events.len().saturating_sub(self.spec.max_keys);
            counters.keys_evicted += over as u64;
            let mut b = Buffer::default();
            for e in &events[over..] {
                let key = self
                    .key(input, e)
                    .ok_or_else(|| bad(format!("a buffered event of input {input} has no key")))?;
                if b.latest.insert(key.clone(), (e.clone(), update)).is_some() {
                    return Err(bad(format!("input {input} buffers one key twice")));
                }
                b.order.insert(update, key);
                expiry.insert((e.timestamp_ms(), input, update));
                update += 1;
            }
            buffers.push(b);
        }
        let mut pending = Held::default();
        for (arrival, input, e) in &state.pending {
            let input = usize::try_from(*input).unwrap_or(usize::MAX);
            if input >= self.spec.inputs.len() || *arrival >= state.next_arrival {
                return Err(bad(format!("held event {arrival} does not fit")));
            }
            pending.insert((e.timestamp_ms(), *arrival), (input, e.clone()));
        }
        self.buffers = buffers;
        self.expiry = expiry;
        self.pending = pending;
        self.next_arrival = state.next_arrival;
        self.next_update = update;
        self.watermark = state.watermark_ms;
        self.counters = counters;
        Ok(())
    }
}
