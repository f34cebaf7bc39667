//! Pattern and join streams: their operators built from the plans (VPL conditions compiled
//! into the operators' predicates), the events they take, and their matches projected through
//! `.where` and `.emit` into output events.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, EventTime, FieldRef, Value};
use varpulis_patterns::{
    Admission, Atom, Bindings as Captures, DEFAULT_MAX_KEYS, Decision, JoinInput, JoinMatch,
    JoinOperator, JoinSpec, Match, PatternOperator, PatternSpec, Step, StepSpec,
};
use varpulis_vpl::{CompiledExpr, JoinPlan, PatternAtom, PatternPlan, Row, StepKind, StreamPlan};

use super::EngineError;
use super::context::Rank;

/// A stream's pattern or join operator.
#[derive(Debug)]
pub(super) enum Operator {
    Pattern(Box<PatternOperator>),
    Join(Box<JoinOperator>),
}

impl Clone for Operator {
    /// A copy of the same operator in the same state (through its snapshot).
    fn clone(&self) -> Self {
        match self {
            Self::Pattern(op) => {
                let mut copy = PatternOperator::new(op.spec().clone())
                    .expect("a running operator's spec is valid");
                copy.restore(&op.snapshot())
                    .expect("an operator restores its own snapshot");
                Self::Pattern(Box::new(copy))
            }
            Self::Join(op) => {
                let mut copy =
                    JoinOperator::new(op.spec().clone()).expect("a running join's spec is valid");
                copy.restore(&op.snapshot())
                    .expect("a join restores its own snapshot");
                Self::Join(Box::new(copy))
            }
        }
    }
}

/// What a step's condition reads: the event's fields, the run's captures (`a.field`, the last
/// event captured under `a`) and the variables.
struct AtomRow<'a> {
    event: &'a Event,
    captures: &'a Captures<'a>,
    variables: &'a BTreeMap<String, Value>,
}

impl Row for AtomRow<'_> {
    fn field(&self, field: &FieldRef) -> Option<&Value> {
        field.get(self.event)
    }
    fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }
    fn alias(&self, _: &FieldRef) -> Option<&Value> {
        None
    }
    fn member(&self, alias: &str, field: &FieldRef) -> Option<&Value> {
        field.get(self.captures.last(alias)?)
    }
    fn captured(&self, alias: &str) -> &[Event] {
        self.captures.all(alias)
    }
}

/// What `.emit` of a pattern reads: the match's captures, its partition key and the variables.
struct MatchRow<'a> {
    m: &'a Match,
    key: Option<&'a str>,
    variables: &'a BTreeMap<String, Value>,
}

impl Row for MatchRow<'_> {
    fn field(&self, _: &FieldRef) -> Option<&Value> {
        None
    }
    fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }
    fn alias(&self, column: &FieldRef) -> Option<&Value> {
        if self.key == Some(column.name()) {
            self.m.partition.as_ref()
        } else {
            None
        }
    }
    fn member(&self, alias: &str, field: &FieldRef) -> Option<&Value> {
        field.get(self.m.all(alias).last()?)
    }
    fn captured(&self, alias: &str) -> &[Event] {
        self.m.all(alias)
    }
}

/// What `.where` and `.emit` of a join read: each input's event by the input's name.
struct JoinRow<'a> {
    m: &'a JoinMatch,
    inputs: &'a [JoinInput],
    variables: &'a BTreeMap<String, Value>,
}

impl Row for JoinRow<'_> {
    fn field(&self, _: &FieldRef) -> Option<&Value> {
        None
    }
    fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }
    fn alias(&self, _: &FieldRef) -> Option<&Value> {
        None
    }
    fn member(&self, alias: &str, field: &FieldRef) -> Option<&Value> {
        let i = self
            .inputs
            .iter()
            .position(|n| varpulis_core::same_name(&n.name, alias))?;
        field.get(self.m.events.get(i)?)
    }
}

fn atom(a: &PatternAtom, variables: &Arc<BTreeMap<String, Value>>) -> Atom {
    let mut atom = Atom::new(a.source.name());
    if let Some(alias) = &a.alias {
        atom = atom.alias(alias.as_str());
    }
    if let Some(filter) = &a.filter {
        let cond = CompiledExpr::new(filter);
        let variables = Arc::clone(variables);
        atom = atom.when(move |event: &Event, captures: &Captures<'_>| {
            cond.matches(&AtomRow {
                event,
                captures,
                variables: &variables,
            })
        });
    }
    atom
}

fn pattern_spec(
    name: &str,
    partition_by: Option<&str>,
    plan: &PatternPlan,
    variables: &Arc<BTreeMap<String, Value>>,
) -> PatternSpec {
    let atoms =
        |xs: &[PatternAtom]| -> Vec<Atom> { xs.iter().map(|a| atom(a, variables)).collect() };
    let steps = plan
        .steps
        .iter()
        .map(|s| StepSpec {
            step: match s.kind {
                StepKind::Any => Step::Any(atoms(&s.atoms)),
                StepKind::All => Step::All(atoms(&s.atoms)),
                StepKind::Kleene => Step::Kleene(atom(&s.atoms[0], variables)),
            },
            not_before: atoms(&s.not_before),
        })
        .collect();
    let mut spec = PatternSpec::new(name, steps);
    spec.absence = atoms(&plan.absence);
    spec.not = atoms(&plan.not);
    spec.within_ms = plan.within_ms;
    spec.partition_by = partition_by.map(str::to_owned);
    if let Some(n) = plan.max_runs {
        spec.max_runs = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = plan.max_kleene {
        spec.max_kleene = usize::try_from(n).unwrap_or(usize::MAX);
    }
    spec.text.clone_from(&plan.text);
    spec
}

fn join_spec(name: &str, plan: &JoinPlan) -> JoinSpec {
    JoinSpec {
        name: name.to_owned(),
        inputs: plan
            .inputs
            .iter()
            .zip(&plan.keys)
            .map(|(s, keys)| JoinInput {
                name: s.name().to_owned(),
                key_fields: keys.clone(),
            })
            .collect(),
        window_ms: plan.window_ms,
        max_keys: plan.max_keys.map_or(DEFAULT_MAX_KEYS, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        text: plan.text.clone(),
    }
}

impl Operator {
    /// The operator of a pattern or join stream (`None` for any other stream).
    pub(super) fn build(
        plan: &StreamPlan,
        variables: &Arc<BTreeMap<String, Value>>,
    ) -> Result<Option<Self>, EngineError> {
        let err = |source| EngineError::Pattern {
            stream: plan.name.clone(),
            source,
        };
        if let Some(p) = &plan.pattern {
            let spec = pattern_spec(&plan.name, plan.partition_by.as_deref(), p, variables);
            return Ok(Some(Self::Pattern(Box::new(
                PatternOperator::new(spec).map_err(err)?,
            ))));
        }
        if let Some(j) = &plan.join {
            return Ok(Some(Self::Join(Box::new(
                JoinOperator::new(join_spec(&plan.name, j)).map_err(err)?,
            ))));
        }
        Ok(None)
    }

    /// Takes an event of type (or from the stream) `input`; `true` if it was dropped as late.
    pub(super) fn process(&mut self, input: &str, event: &Event) -> bool {
        let admission = match self {
            Self::Pattern(op) => op.process(event),
            Self::Join(op) => match op.input_of(input) {
                Some(i) => op.process(i, event),
                None => Admission::NotRead,
            },
        };
        admission == Admission::Late
    }

    /// A parallel context's [`process`](Self::process) of an input event, with its absolute
    /// input position as its arrival number; `true` if it was dropped as late.
    pub(super) fn process_at(&mut self, event: &Event, arrival: u64) -> bool {
        let admission = match self {
            Self::Pattern(op) => op.process_with_arrival(event, arrival),
            Self::Join(op) => match op.input_of(event.event_type()) {
                Some(i) => op.process_with_arrival(i, event, arrival),
                None => Admission::NotRead,
            },
        };
        admission == Admission::Late
    }

    /// The time of the operator's next decision (see `PatternOperator::next_decision`).
    pub(super) fn next_decision(&self) -> Option<EventTime> {
        match self {
            Self::Pattern(op) => op.next_decision(),
            Self::Join(op) => op.next_decision(),
        }
    }

    /// Late events dropped so far.
    pub(super) fn late_events_dropped(&self) -> u64 {
        match self {
            Self::Pattern(op) => op.counters().late_events_dropped,
            Self::Join(op) => op.counters().late_events_dropped,
        }
    }

    /// What the operator dropped to stay within its bounds: runs evicted and Kleene
    /// overflows of a pattern, keys evicted of a join.
    pub(super) fn bounded_drops(&self) -> u64 {
        match self {
            Self::Pattern(op) => {
                let c = op.counters();
                c.runs_evicted + c.kleene_overflows
            }
            Self::Join(op) => op.counters().keys_evicted,
        }
    }

    pub(super) fn approximate_state_bytes(&self) -> usize {
        match self {
            Self::Pattern(op) => op.approximate_state_bytes(),
            Self::Join(op) => op.approximate_state_bytes(),
        }
    }
}

/// A pattern or join stream's view for projecting its matches.
pub(super) struct Projection<'a> {
    pub(super) plan: &'a StreamPlan,
    pub(super) output_type: &'a Arc<str>,
    pub(super) filter: Option<&'a CompiledExpr>,
    pub(super) emit: &'a [CompiledExpr],
    pub(super) emit_names: &'a [Arc<str>],
    pub(super) variables: &'a BTreeMap<String, Value>,
}

impl Projection<'_> {
    fn event(&self, time: EventTime, row: &dyn Row) -> Event {
        Event::from_unique_iter(
            Arc::clone(self.output_type),
            time,
            self.emit
                .iter()
                .zip(self.emit_names)
                .map(|(f, name)| (Arc::clone(name), f.eval(row))),
        )
    }

    /// Advances `op` to `wm` (or, `None`, flushes it: end of input) and appends the output
    /// events of what it emits to `out`.
    ///
    /// With `ranks` (a pattern in a keyed context), each output's decision goes there too.
    pub(super) fn drain(
        &self,
        op: &mut Operator,
        wm: Option<EventTime>,
        out: &mut Vec<Event>,
        ranks: Option<&mut Vec<Rank>>,
    ) {
        let dropped = op.bounded_drops();
        self.drain_matches(op, wm, out, ranks);
        let now = op.bounded_drops();
        // Logged when the count reaches 1, 10, 100, ...: visible, without a line per drop
        // (every count is in the checkpoint, `checkpoint inspect` shows them).
        if now > dropped && (dropped == 0 || now.ilog10() > dropped.ilog10()) {
            tracing::warn!(
                stream = %self.plan.name,
                dropped = now,
                "the stream's bounds dropped state: runs evicted (max_runs), Kleene captures \
                 over max_kleene, or join keys evicted"
            );
        }
    }

    fn drain_matches(
        &self,
        op: &mut Operator,
        wm: Option<EventTime>,
        out: &mut Vec<Event>,
        ranks: Option<&mut Vec<Rank>>,
    ) {
        match op {
            Operator::Pattern(op) => {
                let mut matches = Vec::new();
                match (wm, ranks) {
                    (Some(wm), None) => op.advance_watermark(wm, &mut matches),
                    (None, None) => op.flush(&mut matches),
                    (wm, Some(ranks)) => {
                        let mut decisions = Vec::new();
                        match wm {
                            Some(wm) => op.advance_watermark_with_decisions(
                                wm,
                                &mut matches,
                                &mut decisions,
                            ),
                            None => op.flush_with_decisions(&mut matches, &mut decisions),
                        }
                        ranks.extend(decisions.into_iter().map(Rank::decision));
                    }
                }
                let key = self.plan.partition_by.as_deref();
                for m in &matches {
                    let row = MatchRow {
                        m,
                        key,
                        variables: self.variables,
                    };
                    out.push(self.event(m.time, &row));
                }
            }
            Operator::Join(op) => {
                let mut matches = Vec::new();
                let mut arrivals = Vec::new();
                match (wm, ranks.is_some()) {
                    (Some(wm), false) => op.advance_watermark(wm, &mut matches),
                    (None, false) => op.flush(&mut matches),
                    (Some(wm), true) => {
                        op.advance_watermark_with_arrivals(wm, &mut matches, &mut arrivals);
                    }
                    (None, true) => op.flush_with_arrivals(&mut matches, &mut arrivals),
                }
                let inputs = &op.spec().inputs;
                let mut ranks = ranks;
                for (k, m) in matches.iter().enumerate() {
                    let row = JoinRow {
                        m,
                        inputs,
                        variables: self.variables,
                    };
                    if self.filter.is_some_and(|f| !f.matches(&row)) {
                        continue;
                    }
                    out.push(self.event(m.time, &row));
                    if let Some(ranks) = ranks.as_deref_mut() {
                        ranks.push(Rank::decision(Decision {
                            time: m.time,
                            deadline: false,
                            number: arrivals[k],
                        }));
                    }
                }
            }
        }
    }
}
