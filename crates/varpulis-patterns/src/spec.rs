//! What a pattern is: steps of atoms, negations, `within`, partitioning and bounds.

use std::fmt;
use std::sync::Arc;

use varpulis_core::Event;

/// Runs kept per partition by default; the oldest is evicted (and counted) past it.
pub const DEFAULT_MAX_RUNS: usize = 10_000;
/// Events a Kleene step captures per run by default; a run that would take more is dropped
/// (and counted).
pub const DEFAULT_MAX_KLEENE: usize = 10_000;

/// What a predicate sees of a run: the events captured so far, by alias.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    pub(crate) names: &'a [Arc<str>],
    pub(crate) captures: &'a [Vec<Event>],
}

impl<'a> Bindings<'a> {
    /// No captures (what the first step's predicates see).
    pub(crate) const EMPTY: Bindings<'static> = Bindings {
        names: &[],
        captures: &[],
    };

    /// Every event captured under `alias` (several for a Kleene step), oldest first.
    #[must_use]
    pub fn all(&self, alias: &str) -> &'a [Event] {
        self.names
            .iter()
            .position(|n| varpulis_core::same_name(n, alias))
            .and_then(|i| self.captures.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// The last event captured under `alias` (`a.user_id` reads this one).
    #[must_use]
    pub fn last(&self, alias: &str) -> Option<&'a Event> {
        self.all(alias).last()
    }

    /// The first event captured under `alias`.
    #[must_use]
    pub fn first(&self, alias: &str) -> Option<&'a Event> {
        self.all(alias).first()
    }
}

/// A condition on an event and the run's captures (`where user_id == a.user_id`).
pub type Predicate = Arc<dyn Fn(&Event, &Bindings<'_>) -> bool + Send + Sync>;

/// One event of a step: its type, an optional condition, an optional alias.
#[derive(Clone)]
pub struct Atom {
    /// The event type it takes.
    pub event_type: String,
    /// The condition, if any.
    pub predicate: Option<Predicate>,
    /// The alias its events are captured under (none: not captured, only matched).
    pub alias: Option<String>,
}

impl Atom {
    /// An atom of `event_type`, no condition, no alias.
    #[must_use]
    pub fn new(event_type: impl Into<String>) -> Self {
        Self {
            event_type: event_type.into(),
            predicate: None,
            alias: None,
        }
    }

    /// With an alias.
    #[must_use]
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// With a condition.
    #[must_use]
    pub fn when(
        mut self,
        predicate: impl Fn(&Event, &Bindings<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self
    }

    pub(crate) fn matches(&self, event: &Event, bindings: &Bindings<'_>) -> bool {
        varpulis_core::same_name(event.event_type(), &self.event_type)
            && self.predicate.as_ref().is_none_or(|p| p(event, bindings))
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Atom")
            .field("event_type", &self.event_type)
            .field("predicate", &self.predicate.as_ref().map(|_| "<fn>"))
            .field("alias", &self.alias)
            .finish()
    }
}

/// A step of a sequence.
#[derive(Debug, Clone)]
pub enum Step {
    /// One event, of the first atom it matches (`A`, `A OR B`).
    Any(Vec<Atom>),
    /// One event of each atom, in any order (`A AND B`).
    All(Vec<Atom>),
    /// One or more events of the atom (`all B`, `B+`).
    Kleene(Atom),
}

impl Step {
    pub(crate) fn atoms(&self) -> &[Atom] {
        match self {
            Self::Any(a) | Self::All(a) => a,
            Self::Kleene(a) => std::slice::from_ref(a),
        }
    }
}

/// A step and the events that must not come between the step before it and it (`NOT X`).
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// The step.
    pub step: Step,
    /// `NOT X` before it: an event matching one of them while the run waits for this step
    /// cancels the run.
    pub not_before: Vec<Atom>,
}

impl StepSpec {
    /// A step with no negation before it.
    #[must_use]
    pub fn new(step: Step) -> Self {
        Self {
            step,
            not_before: Vec::new(),
        }
    }
}

/// A sequence pattern.
#[derive(Debug, Clone)]
pub struct PatternSpec {
    /// The stream's name (the output event type).
    pub name: String,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// A trailing `NOT X` (needs `within`): a run that completed its steps is emitted as an
    /// absence when the watermark passes its deadline with no such event; one cancels it.
    pub absence: Vec<Atom>,
    /// `.not(X where ...)`: an event matching one cancels any open run.
    pub not: Vec<Atom>,
    /// `.within(d)`: a match's last event is at most `d` ms after its first (event time).
    pub within_ms: Option<i64>,
    /// `.partition_by(field)`: runs are per value of this field.
    pub partition_by: Option<String>,
    /// Open runs per partition, at most.
    pub max_runs: usize,
    /// Events per Kleene capture, at most.
    pub max_kleene: usize,
    /// The pattern's source text (part of the checkpointed shape: a restore into a program
    /// whose pattern differs is refused).
    pub text: String,
}

impl PatternSpec {
    /// A pattern named `name` over `steps`, with default bounds and nothing else.
    #[must_use]
    pub fn new(name: impl Into<String>, steps: Vec<StepSpec>) -> Self {
        Self {
            name: name.into(),
            steps,
            absence: Vec::new(),
            not: Vec::new(),
            within_ms: None,
            partition_by: None,
            max_runs: DEFAULT_MAX_RUNS,
            max_kleene: DEFAULT_MAX_KLEENE,
            text: String::new(),
        }
    }
}
