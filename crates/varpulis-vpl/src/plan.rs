//! The typed plan produced by [`parse_program`](crate::parse_program).

use std::collections::BTreeMap;
use std::fmt;

use varpulis_core::Value;

use crate::diagnostic::Span;
use crate::expr::{Expr, Scope};

/// A checked VPL program.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Declared event types, in source order (empty when the program declares none).
    pub events: Vec<EventDecl>,
    /// `var` and `let` declarations, in source order.
    pub variables: Vec<VarDecl>,
    /// Top-level `name := expr` assignments, in source order.
    pub assignments: Vec<Assignment>,
    /// Streams in dependency order: a stream comes after every stream it reads from (ties
    /// keep source order).
    pub streams: Vec<StreamPlan>,
    /// `context` declarations, in source order.
    pub contexts: Vec<ContextDecl>,
    /// Load-time warnings, in source order: the program is valid but probably not what was
    /// meant (e.g. a sliding window that puts each event in 86,400,000 windows). Print them
    /// with [`Diagnostic::render_warning`](crate::Diagnostic::render_warning).
    pub warnings: Vec<crate::Diagnostic>,
}

/// `context NAME (cores: [..])`: a context of its own thread, for the streams placed in it
/// with `.context(NAME)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDecl {
    /// Its name (also its name in a checkpoint's `context_states`).
    pub name: String,
    /// The CPU cores its thread is pinned to (empty: any).
    pub cores: Vec<usize>,
}

impl Program {
    /// The declared event type `name`.
    #[must_use]
    pub fn event(&self, name: &str) -> Option<&EventDecl> {
        self.events.iter().find(|e| e.name == name)
    }

    /// The stream `name`.
    #[must_use]
    pub fn stream(&self, name: &str) -> Option<&StreamPlan> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The variable `name`.
    #[must_use]
    pub fn variable(&self, name: &str) -> Option<&VarDecl> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Variable values at start: every declaration's value, then every assignment applied in
    /// source order (what the engine starts with, before any checkpoint is restored).
    #[must_use]
    pub fn initial_variables(&self) -> BTreeMap<String, Value> {
        let mut vars: BTreeMap<String, Value> = self
            .variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        for a in &self.assignments {
            vars.insert(a.name.clone(), a.value.clone());
        }
        vars
    }

    /// The event types read directly by some stream (its source, or an input of its pattern
    /// or join), sorted and deduplicated (the sources the engine tracks watermarks for).
    #[must_use]
    pub fn source_event_types(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .streams
            .iter()
            .flat_map(StreamPlan::inputs)
            .filter_map(|input| match input {
                Source::Event(n) => Some(n.as_str()),
                Source::Stream(_) => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The types a declaration can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    /// `int`: [`Value::Int`].
    Int,
    /// `float`: [`Value::Float`] (an `Int` is widened).
    Float,
    /// `bool`: [`Value::Bool`].
    Bool,
    /// `str` (also `string`): [`Value::Str`].
    Str,
    /// `timestamp`: [`Value::Timestamp`] (an `Int` is taken as epoch milliseconds).
    Timestamp,
    /// `duration`: [`Value::Duration`] (an `Int` is taken as milliseconds).
    Duration,
}

impl Type {
    /// Parses a type name: `int`, `float`, `bool`, `str`/`string`, `timestamp`, `duration`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "str" | "string" => Self::Str,
            "timestamp" => Self::Timestamp,
            "duration" => Self::Duration,
            _ => return None,
        })
    }

    /// The canonical name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Str => "str",
            Self::Timestamp => "timestamp",
            Self::Duration => "duration",
        }
    }

    /// Converts `value` to this type where the conversion is lossless by definition: `Null`
    /// stays `Null`, `Int` widens to `Float`, `Int` milliseconds become a `Timestamp` or a
    /// `Duration`. Anything else is returned unchanged as the error.
    ///
    /// # Errors
    /// The value, when it does not fit the type.
    pub fn coerce(self, value: Value) -> Result<Value, Value> {
        match (self, value) {
            (_, Value::Null) => Ok(Value::Null),
            (Self::Int, v @ Value::Int(_))
            | (Self::Float, v @ Value::Float(_))
            | (Self::Bool, v @ Value::Bool(_))
            | (Self::Str, v @ Value::Str(_))
            | (Self::Timestamp, v @ Value::Timestamp(_))
            | (Self::Duration, v @ Value::Duration(_)) => Ok(v),
            #[allow(clippy::cast_precision_loss)]
            (Self::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
            (Self::Timestamp, Value::Int(i)) => Ok(Value::Timestamp(i)),
            (Self::Duration, Value::Int(i)) => Ok(Value::Duration(i)),
            (_, v) => Err(v),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `event Name: field: type, ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDecl {
    /// The event type.
    pub name: String,
    /// Declared fields, in order.
    pub fields: Vec<FieldDecl>,
    /// Span of the name.
    pub span: Span,
}

impl EventDecl {
    /// The declared field `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&FieldDecl> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDecl {
    /// Field name.
    pub name: String,
    /// Field type.
    pub ty: Type,
    /// Span of the name.
    pub span: Span,
}

/// `var name: type = expr` (mutable) or `let name: type = expr` (immutable).
#[derive(Debug, Clone, PartialEq)]
pub struct VarDecl {
    /// Variable name.
    pub name: String,
    /// Declared type, or the type of the initial value when none is written.
    pub ty: Type,
    /// `var` (true) or `let` (false).
    pub mutable: bool,
    /// The initializer as written.
    pub init: Expr,
    /// The initializer's value, coerced to `ty` (initializers are constant: literals and
    /// earlier variables).
    pub value: Value,
    /// Span of the name.
    pub span: Span,
}

/// Top-level `name := expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The `var` assigned.
    pub name: String,
    /// The expression as written.
    pub expr: Expr,
    /// Its value (constant, coerced to the variable's type), evaluated with the variables as
    /// they are at this point of the program.
    pub value: Value,
    /// Span of the name.
    pub span: Span,
}

/// Where a stream reads from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// Events of this type from the input.
    Event(String),
    /// The output of another stream.
    Stream(String),
}

impl Source {
    /// The event type or stream name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Event(n) | Self::Stream(n) => n,
        }
    }
}

pub use varpulis_core::AggFunc;
pub use varpulis_core::WindowKind;

/// `alias: func(arg)` in `.aggregate(...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePlan {
    /// Output name.
    pub alias: String,
    /// The function.
    pub func: AggFunc,
    /// The input, evaluated per event; `None` only for `count()`.
    pub arg: Option<Expr>,
    /// Span of the alias.
    pub span: Span,
}

impl fmt::Display for AggregatePlan {
    /// `func(arg)` in canonical form, e.g. `sum((price * qty))`: a stable signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(a) => write!(f, "{}({a})", self.func),
            None => write!(f, "{}()", self.func),
        }
    }
}

/// `name: expr` in `.emit(...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmitField {
    /// Output field name.
    pub name: String,
    /// Its value.
    pub expr: Expr,
    /// Span of the name.
    pub span: Span,
}

/// One `stream Name = Source ...` definition.
///
/// What the engine does per input event: drop it unless `filter` matches, then either
/// (no window) project it through `emit`, or feed the window of its partition. When a window
/// closes, the aggregated row (aliases and partition key) is filtered by `having` and
/// projected through `emit` (or emitted whole).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    /// Stream name; also the type of the events it outputs.
    pub name: String,
    /// Input.
    pub source: Source,
    /// `.where(expr)`: over input event fields and variables.
    pub filter: Option<Expr>,
    /// `.partition_by(field)`.
    pub partition_by: Option<String>,
    /// `.watermark(out_of_order: d)` in milliseconds.
    pub watermark_out_of_order_ms: Option<i64>,
    /// `.allowed_lateness(d)` in milliseconds.
    pub allowed_lateness_ms: Option<i64>,
    /// `.window(...)`; `Some` exactly when `aggregates` is not empty.
    pub window: Option<WindowKind>,
    /// `.aggregate(...)` items, in order.
    pub aggregates: Vec<AggregatePlan>,
    /// `.having(expr)`: over aggregate aliases, the partition key and variables.
    pub having: Option<Expr>,
    /// `.emit(...)`: the output projection. After `.aggregate` it reads aliases, the partition
    /// key and variables; without a window it reads input fields and variables; after a
    /// pattern or a join it reads `alias.field`, capture functions (`len(b)`), the partition
    /// key and variables.
    pub emit: Option<Vec<EmitField>>,
    /// A sequence pattern (`A as a -> B ...`, or a named `pattern`): the stream outputs one
    /// event per match (`source` is then the first step's input).
    pub pattern: Option<PatternPlan>,
    /// A windowed join (`join(A, B) .on(...) .window(d)`): the stream outputs one event per
    /// combination that passes `.where` (`source` is then the first input).
    pub join: Option<JoinPlan>,
    /// `.context(NAME)`: the declared context the stream runs in (`None`: the default one).
    pub context: Option<String>,
    /// `.emit(context: NAME, ...)`: the context its outputs are handed to (only streams of
    /// that context, and of the stream's own, may read them).
    pub emit_context: Option<String>,
    /// Span of the name.
    pub span: Span,
}

/// A sequence pattern, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternPlan {
    /// The steps, in order (a `NOT X` between two steps is the `not_before` of the next).
    pub steps: Vec<PatternStep>,
    /// A trailing `NOT X`: the pattern is an absence (needs `within`).
    pub absence: Vec<PatternAtom>,
    /// `.not(X where ...)`: cancels any open run.
    pub not: Vec<PatternAtom>,
    /// `.within(d)` (or `within d` of a named pattern), in ms.
    pub within_ms: Option<i64>,
    /// `.max_runs(n)`: open runs per partition (the operator's default without it).
    pub max_runs: Option<u64>,
    /// `.max_kleene(n)`: events per Kleene capture (the operator's default without it).
    pub max_kleene: Option<u64>,
    /// Canonical text of the pattern (steps, conditions, negations, `within`, partitioning):
    /// the shape a checkpoint is checked against.
    pub text: String,
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternStep {
    /// How its atoms combine.
    pub kind: StepKind,
    /// Its atoms (one for `Single` and `Kleene`).
    pub atoms: Vec<PatternAtom>,
    /// `NOT X` before it: one of these while a run waits for the step cancels the run.
    pub not_before: Vec<PatternAtom>,
}

/// How a step's atoms combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// One event of the first atom it matches (`A`, `A OR B`).
    Any,
    /// One event of each atom, in any order (`A AND B`).
    All,
    /// One or more events of its atom (`all B`, `B+`).
    Kleene,
}

/// `Type [where condition] [as alias]` in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternAtom {
    /// What it reads: an event type or a stream's output.
    pub source: Source,
    /// The condition, over the event's fields, earlier aliases (`a.field`) and variables.
    pub filter: Option<Expr>,
    /// The alias its events are captured under.
    pub alias: Option<String>,
}

/// A windowed inner equi-join, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinPlan {
    /// The inputs (two or more), in `join(...)` order; each input's name is its alias in
    /// `.on`, `.where` and `.emit`.
    pub inputs: Vec<Source>,
    /// Per input, its key fields in key order (the `.on` pairs).
    pub keys: Vec<Vec<String>>,
    /// `.window(d)`: an event joins the latest event of each other input at most `d` older.
    pub window_ms: i64,
    /// `.max_keys(n)`: keys kept per input (the operator's default without it).
    pub max_keys: Option<u64>,
    /// Canonical text (inputs, keys, window): the shape a checkpoint is checked against.
    pub text: String,
}

impl StreamPlan {
    /// Everything the stream reads, in order, each once: its source, or every input of its
    /// pattern or join.
    #[must_use]
    pub fn inputs(&self) -> Vec<&Source> {
        let all: Vec<&Source> = if let Some(p) = &self.pattern {
            p.steps
                .iter()
                .flat_map(|step| step.atoms.iter().chain(&step.not_before))
                .chain(p.absence.iter().chain(&p.not))
                .map(|a| &a.source)
                .collect()
        } else if let Some(j) = &self.join {
            j.inputs.iter().collect()
        } else {
            vec![&self.source]
        };
        let mut out: Vec<&Source> = Vec::with_capacity(all.len());
        for s in all {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Names of the output event's fields when they are known without looking at the input:
    /// the `.emit` names, or (after `.aggregate` without `.emit`) the partition key followed
    /// by every alias. `None` for a pass-through stream (its events keep their fields).
    #[must_use]
    pub fn output_fields(&self) -> Option<Vec<String>> {
        if let Some(emit) = &self.emit {
            return Some(emit.iter().map(|e| e.name.clone()).collect());
        }
        if self.aggregates.is_empty() {
            return None;
        }
        let mut out: Vec<String> = self.partition_by.iter().cloned().collect();
        for a in &self.aggregates {
            if !out.contains(&a.alias) {
                out.push(a.alias.clone());
            }
        }
        Some(out)
    }

    /// Applies `.where` to an input event with the given variables.
    #[must_use]
    pub fn accepts(
        &self,
        event: &varpulis_core::Event,
        variables: &BTreeMap<String, Value>,
    ) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.matches(&Scope::empty().with_event(event).with_variables(variables)))
    }
}
