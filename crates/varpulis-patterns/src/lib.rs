//! SASE+ sequence patterns and windowed joins in event time for the Varpulis engine.
//!
//! What it is: [`PatternOperator`] runs one [`PatternSpec`]: a sequence of steps (one event of
//! one of several types, `A OR B`; one of each, `A AND B`; one or more, the Kleene `all B`),
//! each atom with an optional condition over the event and the run's captures, `NOT X`
//! between steps, a trailing `NOT X` (an absence, emitted when the deadline passes),
//! `.not(X)` cancelling any open run, `.within(d)` in event time, `.partition_by(field)`, and
//! bounds on runs per partition and on a Kleene capture. The semantics are in
//! `docs/design/patterns.md`; in short:
//! - Events are held until the watermark passes them, then processed in event-time order
//!   (equal times: arrival order), so the result does not depend on the arrival order within
//!   the allowed lateness. An event already behind the watermark is dropped and counted.
//! - Skip-till-next-match: every event matching the first step starts a run; a run advances
//!   on the next event that matches the step it waits for, and ignores the others. A Kleene
//!   step takes every matching event until one matches the step after it.
//! - A run whose deadline (`first event + within`, inclusive) the watermark passes expires,
//!   unless it waited only for that deadline (an absence, a trailing Kleene capture): then it
//!   is emitted.
//! - Every drop is counted ([`PatternCounters`](varpulis_state::PatternCounters)); partitions
//!   without runs leave the state.
//!
//! [`JoinOperator`] runs a windowed inner equi-join of two or more inputs in event time: each
//! processed event is combined with the latest event of the same key of every other input at
//! most `window` older, once per event, in event-time order.
//!
//! What it is not: it has no clock, no I/O and no expression language. Conditions are
//! closures ([`Predicate`]) the engine compiles from VPL; output projection is the engine's
//! (a [`Match`] carries the captures by alias). State converts to and from
//! `varpulis_state::PatternCheckpoint`.
//!
//! ```
//! use varpulis_core::Event;
//! use varpulis_patterns::{Atom, PatternOperator, PatternSpec, Step, StepSpec};
//!
//! // Login as l -> Transaction where user == l.user as t, within 10 s, per user.
//! let mut spec = PatternSpec::new("Fraud", vec![
//!     StepSpec::new(Step::Any(vec![Atom::new("Login").alias("l")])),
//!     StepSpec::new(Step::Any(vec![Atom::new("Transaction").alias("t")])),
//! ]);
//! spec.within_ms = Some(10_000);
//! spec.partition_by = Some("user".to_owned());
//! let mut op = PatternOperator::new(spec).unwrap();
//! op.process(&Event::new("Login", 1_000).with_field("user", "ann"));
//! op.process(&Event::new("Transaction", 4_000).with_field("user", "ann"));
//! let mut out = Vec::new();
//! op.advance_watermark(5_000, &mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].all("t")[0].timestamp_ms(), 4_000);
//! ```

mod error;
mod held;
mod join;
mod operator;
mod spec;

pub use error::PatternError;

/// What an operator did with an event given to `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Held until the watermark passes it.
    Held,
    /// Dropped (and counted): the watermark had already passed its time. The caller may put
    /// it on a side output.
    Late,
    /// Not of a type the pattern reads: ignored.
    NotRead,
}
pub use join::{DEFAULT_MAX_KEYS, JoinInput, JoinMatch, JoinOperator, JoinSpec};
pub use operator::{Decision, Match, PatternOperator};
pub use spec::{
    Atom, Bindings, DEFAULT_MAX_KLEENE, DEFAULT_MAX_RUNS, PatternSpec, Predicate, Step, StepSpec,
};
