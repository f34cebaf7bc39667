//! The pattern operator: events held until the watermark passes them, then processed in
//! event-time order against each open run of their partition (skip-till-next-match).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use varpulis_core::{Event, EventTime, Value};
use varpulis_state::{PatternCheckpoint, PatternCounters, PatternPartitionState, PatternRunState};

use crate::Admission;
use crate::error::PatternError;
use crate::held::Held;

/// Partition keys hash with foldhash (as the windows' do): fast, seeded per process; the
/// order of partitions never reaches an output (snapshots sort them).
type KeyHasher = foldhash::fast::RandomState;
use crate::spec::{Atom, Bindings, PatternSpec, Step};

/// A complete match (or an absence), with what each alias captured.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The match's time: its last event's, or for an absence the deadline the watermark
    /// passed.
    pub time: EventTime,
    /// The time of its first event.
    pub started_ms: EventTime,
    /// The partition key (`None` when the pattern is not partitioned).
    pub partition: Option<Value>,
    /// Every alias, in pattern order, with its captured events (empty for an alternative of
    /// an `OR` that was not taken).
    pub captures: Vec<(Arc<str>, Vec<Event>)>,
    /// `true` for a trailing-`NOT` pattern emitted because nothing cancelled it in time.
    pub absence: bool,
}

impl Match {
    /// The events captured under `alias`.
    #[must_use]
    pub fn all(&self, alias: &str) -> &[Event] {
        self.captures
            .iter()
            .find(|(n, _)| varpulis_core::same_name(n, alias))
            .map_or(&[], |(_, e)| e.as_slice())
    }
}

/// What made a match: the processing of a held event, or a run's deadline, in the order the
/// operator takes them (by time; at one time an event before a deadline; then by the event's
/// arrival number or the run's id). The matches of several operators that share out one
/// pattern's partitions, ordered by decision, come in the order one operator emits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decision {
    /// The event's time, or the deadline.
    pub time: EventTime,
    /// `false` for an event, `true` for a deadline.
    pub deadline: bool,
    /// The event's arrival number, or the run's id.
    pub number: u64,
}

impl Decision {
    fn event((time, number): (EventTime, u64)) -> Self {
        Self {
            time,
            deadline: false,
            number,
        }
    }

    fn deadline((time, number): (EventTime, u64)) -> Self {
        Self {
            time,
            deadline: true,
            number,
        }
    }
}

#[derive(Debug, Clone)]
struct Run {
    id: u64,
    step: usize,
    matched: u64,
    started_ms: EventTime,
    last_ms: EventTime,
    kleene_len: usize,
    captures: Vec<Vec<Event>>,
}

/// What processing one event did to a run.
enum Outcome {
    Keep,
    Cancel,
    Overflow,
    Complete,
}

/// A sequence-pattern operator (see the crate docs for the semantics).
#[derive(Debug)]
pub struct PatternOperator {
    spec: PatternSpec,
    /// Alias slots, in pattern order.
    slots: Vec<Arc<str>>,
    /// Per step, per atom: its slot.
    atom_slots: Vec<Vec<Option<usize>>>,
    shape: String,
    /// Open runs per partition (snapshots sort them by key).
    partitions: HashMap<Option<Value>, Vec<Run>, KeyHasher>,
    /// Held events by (time, arrival).
    pending: Held<Event>,
    /// Deadlines of runs: (deadline, run id) -> partition.
    timers: BTreeMap<(EventTime, u64), Option<Value>>,
    next_arrival: u64,
    next_run: u64,
    watermark: Option<EventTime>,
    counters: PatternCounters,
    /// An empty buffer of runs, kept for its allocation.
    scratch: Vec<Run>,
}

impl PatternOperator {
    /// Checks `spec` and builds its operator.
    ///
    /// # Errors
    /// [`PatternError::Invalid`]: no step, a first step that is a Kleene step, an alias used
    /// by two steps, a trailing Kleene step or a trailing `NOT` without `within`, an absence
    /// after a Kleene step, an `AND` of more than 64 atoms, a `within` that is not positive,
    /// zero bounds.
    pub fn new(spec: PatternSpec) -> Result<Self, PatternError> {
        let invalid = |message: String| {
            Err(PatternError::Invalid {
                pattern: spec.name.clone(),
                message,
            })
        };
        let Some(last) = spec.steps.last() else {
            return invalid("a pattern needs at least one step".to_owned());
        };
        if matches!(spec.steps[0].step, Step::Kleene(_)) {
            return invalid(
                "the first step cannot be a Kleene step (`all`): a run starts with one event"
                    .to_owned(),
            );
        }
        if spec.within_ms.is_some_and(|w| w <= 0) {
            return invalid("`within` must be positive".to_owned());
        }
        if spec.max_runs == 0 || spec.max_kleene == 0 {
            return invalid("max_runs and max_kleene must be at least 1".to_owned());
        }
        let trailing_kleene = matches!(last.step, Step::Kleene(_));
        if trailing_kleene && spec.within_ms.is_none() {
            return invalid("a pattern that ends with a Kleene step (`all`) needs `.within`: it is emitted when its deadline passes".to_owned());
        }
        if !spec.absence.is_empty() {
            if spec.within_ms.is_none() {
                return invalid("a trailing `NOT` needs `.within`: the absence is emitted when its deadline passes".to_owned());
            }
            if trailing_kleene {
                return invalid("a trailing `NOT` cannot follow a Kleene step".to_owned());
            }
        }
        let mut slots: Vec<Arc<str>> = Vec::new();
        let mut atom_slots = Vec::new();
        for (i, s) in spec.steps.iter().enumerate() {
            if let Step::All(atoms) = &s.step
                && atoms.len() > 64
            {
                return invalid(format!("step {}: an AND of more than 64 events", i + 1));
            }
            if s.step.atoms().is_empty() {
                return invalid(format!("step {} has no event", i + 1));
            }
            let mut here = Vec::new();
            let mut step_aliases: Vec<&str> = Vec::new();
            for atom in s.step.atoms() {
                let slot = match &atom.alias {
                    None => None,
                    Some(alias) => {
                        if let Some(pos) = slots.iter().position(|n| **n == **alias) {
                            // The alternatives of one OR may share an alias; steps may not.
                            let shared = matches!(s.step, Step::Any(_))
                                && step_aliases.contains(&alias.as_str());
                            if !shared {
                                return invalid(format!("alias `{alias}` is used by two steps"));
                            }
                            Some(pos)
                        } else {
                            slots.push(Arc::from(alias.as_str()));
                            Some(slots.len() - 1)
                        }
                    }
                };
                if let Some(alias) = &atom.alias {
                    step_aliases.push(alias);
                }
                here.push(slot);
            }
            atom_slots.push(here);
        }
        let shape = shape_of(&spec);
        Ok(Self {
            spec,
            slots,
            atom_slots,
            shape,
            partitions: HashMap::with_hasher(KeyHasher::default()),
            pending: Held::default(),
            timers: BTreeMap::new(),
            next_arrival: 0,
            next_run: 0,
            watermark: None,
            counters: PatternCounters::default(),
            scratch: Vec::new(),
        })
    }

    /// The pattern.
    #[must_use]
    pub fn spec(&self) -> &PatternSpec {
        &self.spec
    }

    /// What was counted so far.
    #[must_use]
    pub fn counters(&self) -> PatternCounters {
        self.counters
    }

    /// The operator's watermark.
    #[must_use]
    pub fn watermark(&self) -> Option<EventTime> {
        self.watermark
    }

    /// Open runs, over all partitions.
    #[must_use]
    pub fn open_runs(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }

    /// Partitions with open runs.
    #[must_use]
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Events held until the watermark passes them.
    #[must_use]
    pub fn pending_events(&self) -> usize {
        self.pending.len()
    }

    /// Whether the pattern reads events of this type.
    #[must_use]
    pub fn reads(&self, event_type: &str) -> bool {
        let of = |atoms: &[Atom]| {
            atoms
                .iter()
                .any(|a| varpulis_core::same_name(&a.event_type, event_type))
        };
        self.spec
            .steps
            .iter()
            .any(|s| of(s.step.atoms()) || of(&s.not_before))
            || of(&self.spec.absence)
            || of(&self.spec.not)
    }

    /// Takes an event: held until the watermark passes it ([`advance_watermark`]), or
    /// dropped and counted if the watermark already has. Events of types the pattern does not
    /// read are ignored.
    ///
    /// [`advance_watermark`]: Self::advance_watermark
    pub fn process(&mut self, event: &Event) -> Admission {
        self.process_with_arrival(event, self.next_arrival)
    }

    /// [`process`](Self::process) with the event's arrival number given: the caller's
    /// numbering (an input position, say) rather than the operator's count, so that the
    /// operators of several parallel contexts, each taking part of one input, order their
    /// events and runs as one operator taking all of it would. Numbers must grow from call to
    /// call; one below the operator's next number is raised to it.
    pub fn process_with_arrival(&mut self, event: &Event, arrival: u64) -> Admission {
        if !self.reads(event.event_type()) {
            return Admission::NotRead;
        }
        let ts = event.timestamp_ms();
        if self.watermark.is_some_and(|w| ts < w) {
            self.counters.late_events_dropped += 1;
            return Admission::Late;
        }
        let arrival = arrival.max(self.next_arrival);
        self.pending.insert((ts, arrival), event.clone());
        self.next_arrival = arrival + 1;
        Admission::Held
    }

    /// The time of the operator's next decision (its first held event or run deadline): the
    /// first [`advance_watermark`](Self::advance_watermark) to a watermark above it emits
    /// something or changes a run; none below it does.
    #[must_use]
    pub fn next_decision(&self) -> Option<EventTime> {
        let event = self.pending.first_key().map(|(t, _)| t);
        let timer = self.timers.first_key_value().map(|((t, _), _)| *t);
        match (event, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the watermark to `wm` (never backwards): processes, in event-time order, every
    /// held event older than `wm` and every run deadline older than `wm` (an event at a
    /// deadline's time goes first: it is still within), appending matches to `out`.
    pub fn advance_watermark(&mut self, wm: EventTime, out: &mut Vec<Match>) {
        if self.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.watermark = Some(wm);
        self.drain(Some(wm), out, None);
    }

    /// [`advance_watermark`](Self::advance_watermark), and for each match appended to `out`
    /// the decision that made it, appended to `decisions`.
    pub fn advance_watermark_with_decisions(
        &mut self,
        wm: EventTime,
        out: &mut Vec<Match>,
        decisions: &mut Vec<Decision>,
    ) {
        if self.watermark.is_some_and(|w| wm <= w) {
            return;
        }
        self.watermark = Some(wm);
        self.drain(Some(wm), out, Some(decisions));
    }

    /// [`flush`](Self::flush), with each match's decision (as
    /// [`advance_watermark_with_decisions`](Self::advance_watermark_with_decisions)).
    pub fn flush_with_decisions(&mut self, out: &mut Vec<Match>, decisions: &mut Vec<Decision>) {
        self.drain(None, out, Some(decisions));
    }

    /// End of input: processes every held event and fires every deadline, as if the
    /// watermark had gone past all of them. Runs that can only complete with more events stay
    /// open (and are kept in checkpoints).
    pub fn flush(&mut self, out: &mut Vec<Match>) {
        self.drain(None, out, None);
    }

    fn drain(
        &mut self,
        below: Option<EventTime>,
        out: &mut Vec<Match>,
        mut decisions: Option<&mut Vec<Decision>>,
    ) {
        loop {
            let before = out.len();
            let event = self
                .pending
                .first_key()
                .filter(|(t, _)| below.is_none_or(|w| *t < w));
            let timer = self
                .timers
                .first_key_value()
                .map(|(k, _)| *k)
                .filter(|(t, _)| below.is_none_or(|w| *t < w));
            let decision = match (event, timer) {
                (Some(e), Some(t)) if e.0 <= t.0 => {
                    self.release(out);
                    Decision::event(e)
                }
                (Some(e), None) => {
                    self.release(out);
                    Decision::event(e)
                }
                (_, Some(t)) => {
                    self.fire(t, out);
                    Decision::deadline(t)
                }
                (None, None) => return,
            };
            if let Some(d) = decisions.as_deref_mut() {
                d.resize(d.len() + (out.len() - before), decision);
            }
        }
    }

    /// Processes the first held event.
    fn release(&mut self, out: &mut Vec<Match>) {
        if let Some(((_, arrival), event)) = self.pending.pop_first() {
            self.step_event(&event, arrival, out);
        }
    }

    /// A run's deadline passed: an absence or a trailing Kleene capture is emitted, any
    /// other run expires.
    fn fire(&mut self, key: (EventTime, u64), out: &mut Vec<Match>) {
        let Some(partition) = self.timers.remove(&key) else {
            return;
        };
        let (deadline, id) = key;
        let Some(runs) = self.partitions.get_mut(&partition) else {
            return;
        };
        let Some(pos) = runs.iter().position(|r| r.id == id) else {
            return;
        };
        let run = runs.remove(pos);
        if runs.is_empty() {
            self.partitions.remove(&partition);
        }
        let n = self.spec.steps.len();
        let absence = run.step == n && !self.spec.absence.is_empty();
        let kleene_done = run.step == n - 1
            && matches!(self.spec.steps[n - 1].step, Step::Kleene(_))
            && run.kleene_len > 0;
        if absence || kleene_done {
            let time = if absence { deadline } else { run.last_ms };
            out.push(self.matched(run, partition, time, absence));
        } else {
            self.counters.runs_expired += 1;
        }
    }

    fn deadline(&self, started_ms: EventTime) -> Option<EventTime> {
        self.spec.within_ms.map(|w| started_ms.saturating_add(w))
    }

    fn matched(
        &mut self,
        run: Run,
        partition: Option<Value>,
        time: EventTime,
        absence: bool,
    ) -> Match {
        self.counters.matches += 1;
        Match {
            time,
            started_ms: run.started_ms,
            partition,
            captures: self.slots.iter().cloned().zip(run.captures).collect(),
            absence,
        }
    }

    fn step_event(&mut self, event: &Event, arrival: u64, out: &mut Vec<Match>) {
        let partition = match &self.spec.partition_by {
            None => None,
            Some(field) => match event.get(field) {
                Some(v) => Some(v.clone()),
                None => {
                    self.counters.events_without_key += 1;
                    return;
                }
            },
        };
        let mut runs = self.partitions.remove(&partition).unwrap_or_default();
        // The partition's runs move to `kept` (a buffer reused across events) as they are
        // judged; `runs`, emptied, becomes that buffer for the next event.
        let mut kept = std::mem::take(&mut self.scratch);
        for mut run in runs.drain(..) {
            match self.advance(&mut run, event) {
                Outcome::Keep => kept.push(run),
                Outcome::Cancel => {
                    self.counters.runs_cancelled += 1;
                    self.forget_timer(&run);
                }
                Outcome::Overflow => {
                    self.counters.kleene_overflows += 1;
                    self.forget_timer(&run);
                }
                Outcome::Complete => {
                    self.forget_timer(&run);
                    let time = run.last_ms;
                    out.push(self.matched(run, partition.clone(), time, false));
                }
            }
        }
        if let Some(run) = self.start(event, arrival) {
            let n = self.spec.steps.len();
            self.counters.runs_started += 1;
            if run.step == n && self.spec.absence.is_empty() {
                let time = run.last_ms;
                out.push(self.matched(run, partition.clone(), time, false));
            } else {
                if kept.len() >= self.spec.max_runs {
                    let oldest = kept.remove(0);
                    self.forget_timer(&oldest);
                    self.counters.runs_evicted += 1;
                }
                if let Some(deadline) = self.deadline(run.started_ms) {
                    self.timers.insert((deadline, run.id), partition.clone());
                }
                kept.push(run);
            }
        }
        self.scratch = runs;
        if !kept.is_empty() {
            self.partitions.insert(partition, kept);
        }
    }

    fn forget_timer(&mut self, run: &Run) {
        if let Some(deadline) = self.deadline(run.started_ms) {
            self.timers.remove(&(deadline, run.id));
        }
    }

    /// A new run, if `event` (arrival number `arrival`) matches the first step. Its id is the
    /// event's arrival number (an event starts at most one run), so that runs started by
    /// events of one time, whose deadlines tie, fire in the order of their events however the
    /// partitions are spread over operators.
    fn start(&mut self, event: &Event, arrival: u64) -> Option<Run> {
        let first = &self.spec.steps[0].step;
        let hit = first
            .atoms()
            .iter()
            .position(|a| a.matches(event, &Bindings::EMPTY))?;
        let id = arrival;
        self.next_run = self.next_run.max(arrival + 1);
        let mut run = Run {
            id,
            step: 0,
            matched: 0,
            started_ms: event.timestamp_ms(),
            last_ms: event.timestamp_ms(),
            kleene_len: 0,
            captures: vec![Vec::new(); self.slots.len()],
        };
        self.take(&mut run, 0, hit, event);
        Some(run)
    }

    /// Captures `event` as atom `atom` of step `step`, and moves past the step if it is done.
    fn take(&self, run: &mut Run, step: usize, atom: usize, event: &Event) {
        if let Some(slot) = self.atom_slots[step][atom] {
            run.captures[slot].push(event.clone());
        }
        run.last_ms = event.timestamp_ms();
        let done = match &self.spec.steps[step].step {
            Step::Any(_) => true,
            Step::All(atoms) => {
                run.matched |= 1 << atom;
                run.matched.count_ones() as usize == atoms.len()
            }
            Step::Kleene(_) => {
                run.kleene_len += 1;
                false
            }
        };
        if done {
            run.step = step + 1;
            run.matched = 0;
            run.kleene_len = 0;
        }
    }

    /// The atom of step `step` that `event` matches for `run`, if any.
    fn matching_atom(&self, run: &Run, step: usize, event: &Event) -> Option<usize> {
        let b = Bindings {
            names: &self.slots,
            captures: &run.captures,
        };
        match &self.spec.steps[step].step {
            Step::Any(atoms) => atoms.iter().position(|a| a.matches(event, &b)),
            Step::All(atoms) => atoms
                .iter()
                .enumerate()
                .position(|(i, a)| run.matched & (1 << i) == 0 && a.matches(event, &b)),
            Step::Kleene(a) => a.matches(event, &b).then_some(0),
        }
    }

    fn advance(&self, run: &mut Run, event: &Event) -> Outcome {
        let n = self.spec.steps.len();
        let b = Bindings {
            names: &self.slots,
            captures: &run.captures,
        };
        if self.spec.not.iter().any(|a| a.matches(event, &b)) {
            return Outcome::Cancel;
        }
        if run.step == n {
            return if self.spec.absence.iter().any(|a| a.matches(event, &b)) {
                Outcome::Cancel
            } else {
                Outcome::Keep
            };
        }
        let in_kleene = matches!(self.spec.steps[run.step].step, Step::Kleene(_));
        // The step the run waits for: past a Kleene step with captures, also the next one.
        let waiting = if in_kleene && run.kleene_len > 0 {
            run.step + 1
        } else {
            run.step
        };
        if waiting < n
            && self.spec.steps[waiting]
                .not_before
                .iter()
                .any(|a| a.matches(event, &b))
        {
            return Outcome::Cancel;
        }
        let step = run.step;
        if in_kleene {
            if run.kleene_len > 0
                && step + 1 < n
                && let Some(atom) = self.matching_atom(run, step + 1, event)
            {
                run.step = step + 1;
                run.kleene_len = 0;
                self.take(run, step + 1, atom, event);
            } else if self.matching_atom(run, step, event).is_some() {
                if run.kleene_len >= self.spec.max_kleene {
                    return Outcome::Overflow;
                }
                self.take(run, step, 0, event);
            } else {
                return Outcome::Keep;
            }
        } else if let Some(atom) = self.matching_atom(run, step, event) {
            self.take(run, step, atom, event);
        } else {
            return Outcome::Keep;
        }
        if run.step == n && self.spec.absence.is_empty() {
            Outcome::Complete
        } else {
            Outcome::Keep
        }
    }

    /// The operator's state.
    #[must_use]
    pub fn snapshot(&self) -> PatternCheckpoint {
        let mut partitions: Vec<_> = self.partitions.iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(b.0));
        PatternCheckpoint {
            shape: self.shape.clone(),
            partitions: partitions
                .into_iter()
                .map(|(key, runs)| PatternPartitionState {
                    key: key.clone(),
                    runs: runs
                        .iter()
                        .map(|r| PatternRunState {
                            id: r.id,
                            step: u32::try_from(r.step).unwrap_or(u32::MAX),
                            matched: r.matched,
                            started_ms: r.started_ms,
                            last_ms: r.last_ms,
                            kleene_len: r.kleene_len as u64,
                            captures: r.captures.clone(),
                        })
                        .collect(),
                })
                .collect(),
            pending: self
                .pending
                .sorted()
                .into_iter()
                .map(|((_, arrival), e)| (arrival, e.clone()))
                .collect(),
            next_arrival: self.next_arrival,
            next_run: self.next_run,
            watermark_ms: self.watermark,
            counters: self.counters,
        }
    }

    /// Replaces the operator's state with `state`.
    ///
    /// # Errors
    /// [`PatternError::IncompatibleState`] when `state` was written by another pattern (its
    /// shape differs) or does not fit this one (a step, an alias slot or an `AND` bit out of
    /// range, a run id or arrival number the counters have not reached, a partition key on an
    /// unpartitioned pattern). The operator is unchanged then.
    pub fn restore(&mut self, state: &PatternCheckpoint) -> Result<(), PatternError> {
        let bad = |message: String| PatternError::IncompatibleState {
            pattern: self.spec.name.clone(),
            message,
        };
        if state.shape != self.shape {
            return Err(bad(format!(
                "the checkpoint holds the pattern `{}`, the program has `{}`",
                state.shape, self.shape
            )));
        }
        let n = self.spec.steps.len();
        let mut partitions = HashMap::with_hasher(KeyHasher::default());
        let mut timers = BTreeMap::new();
        for p in &state.partitions {
            if p.key.is_some() != self.spec.partition_by.is_some() {
                return Err(bad(
                    "a partition key does not fit the pattern's partitioning".to_owned(),
                ));
            }
            if p.runs.is_empty() || partitions.contains_key(&p.key) {
                return Err(bad("an empty or repeated partition".to_owned()));
            }
            let mut runs = Vec::with_capacity(p.runs.len());
            for r in &p.runs {
                let step = usize::try_from(r.step).unwrap_or(usize::MAX);
                let at_absence = step == n && !self.spec.absence.is_empty();
                if step > n || (step == n && !at_absence) {
                    return Err(bad(format!(
                        "run {} is at step {step}, the pattern has {n}",
                        r.id
                    )));
                }
                if r.captures.len() != self.slots.len() {
                    return Err(bad(format!(
                        "run {} has {} capture slots, the pattern {}",
                        r.id,
                        r.captures.len(),
                        self.slots.len()
                    )));
                }
                let atoms = self
                    .spec
                    .steps
                    .get(step)
                    .map_or(0, |s| s.step.atoms().len());
                let all = matches!(
                    self.spec.steps.get(step).map(|s| &s.step),
                    Some(Step::All(_))
                );
                if (!all && r.matched != 0) || (all && atoms < 64 && r.matched >> atoms != 0) {
                    return Err(bad(format!(
                        "run {} has matched bits its step has not",
                        r.id
                    )));
                }
                let kleene = matches!(
                    self.spec.steps.get(step).map(|s| &s.step),
                    Some(Step::Kleene(_))
                );
                let kleene_len = usize::try_from(r.kleene_len).unwrap_or(usize::MAX);
                if (!kleene && kleene_len != 0) || kleene_len > self.spec.max_kleene {
                    return Err(bad(format!(
                        "run {} has a Kleene count its step cannot have",
                        r.id
                    )));
                }
                if r.id >= state.next_run {
                    return Err(bad(format!("run {} is not below the next run id", r.id)));
                }
                if let Some(w) = self.spec.within_ms {
                    timers.insert((r.started_ms.saturating_add(w), r.id), p.key.clone());
                }
                runs.push(Run {
                    id: r.id,
                    step,
                    matched: r.matched,
                    started_ms: r.started_ms,
                    last_ms: r.last_ms,
                    kleene_len,
                    captures: r.captures.clone(),
                });
            }
            partitions.insert(p.key.clone(), runs);
        }
        let mut pending = Held::default();
        for (arrival, e) in &state.pending {
            if *arrival >= state.next_arrival {
                return Err(bad(format!(
                    "held event {arrival} is not below the next arrival number"
                )));
            }
            pending.insert((e.timestamp_ms(), *arrival), e.clone());
        }
        self.partitions = partitions;
        self.timers = timers;
        self.pending = pending;
        self.next_arrival = state.next_arrival;
        self.next_run = state.next_run;
        self.watermark = state.watermark_ms;
        self.counters = state.counters;
        Ok(())
    }

    /// About the bytes the operator holds (runs, captures, held events).
    #[must_use]
    pub fn approximate_state_bytes(&self) -> usize {
        let event = |e: &Event| {
            48 + e.event_type().len() + e.fields().map(|(n, _)| n.len() + 24).sum::<usize>()
        };
        let runs: usize = self
            .partitions
            .values()
            .flatten()
            .map(|r| 64 + r.captures.iter().flatten().map(event).sum::<usize>())
            .sum();
        runs + self.pending.values().map(event).sum::<usize>() + self.timers.len() * 32
    }
}

/// A description of the pattern's structure (not of its predicates: the source text stands
/// for those).
fn shape_of(spec: &PatternSpec) -> String {
    let mut s = String::new();
    let atom = |s: &mut String, a: &Atom| {
        let _ = write!(
            s,
            "{}{}{}",
            a.event_type,
            if a.predicate.is_some() { "?" } else { "" },
            a.alias
                .as_ref()
                .map(|x| format!(" as {x}"))
                .unwrap_or_default()
        );
    };
    for (i, step) in spec.steps.iter().enumerate() {
        if i > 0 {
            s.push_str(" -> ");
        }
        for x in &step.not_before {
            s.push_str("NOT ");
            atom(&mut s, x);
            s.push_str(" -> ");
        }
        let (sep, prefix) = match &step.step {
            Step::Any(_) => (" OR ", ""),
            Step::All(_) => (" AND ", ""),
            Step::Kleene(_) => ("", "all "),
        };
        s.push_str(prefix);
        for (j, a) in step.step.atoms().iter().enumerate() {
            if j > 0 {
                s.push_str(sep);
            }
            atom(&mut s, a);
        }
    }
    for x in &spec.absence {
        s.push_str(" -> NOT ");
        atom(&mut s, x);
    }
    for x in &spec.not {
        s.push_str(" .not(");
        atom(&mut s, x);
        s.push(')');
    }
    let _ = write!(
        s,
        "; within {:?}; partition_by {:?}; max_runs {}; max_kleene {}; {}",
        spec.within_ms, spec.partition_by, spec.max_runs, spec.max_kleene, spec.text
    );
    s
}
