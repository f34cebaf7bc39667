//! The VPL subset of Varpulis: parser, load-time checks and typed stream plans, with
//! line:column diagnostics.
//!
//! [`parse_program`] turns VPL source into a [`Program`]: declared events, variables,
//! assignments and [`StreamPlan`]s in dependency order, every name resolved and every
//! expression type-checked where the types are known. Anything wrong is reported as
//! [`Diagnostics`] — line, column, the offending text and what was expected — never replaced
//! by a default. [`Expr::eval`] is the pure evaluator for the plan's expressions, and
//! [`parse_evt_line`] parses one line of an `.evt` event file ([`EvtScanner`] gives the same
//! result faster, for readers).
//!
//! What this crate is not: it does no I/O (sources come in as `&str`, files are read by the
//! engine), never reads a clock, and runs nothing — the engine compiles plans to operators.
//! It depends only on `varpulis-core` and must never depend on the store, checkpoint, crypto
//! or windows crates. The grammar, typing rules and decisions are in `docs/vpl.md`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use varpulis_core::{Event, Value};
//! use varpulis_vpl::{Scope, Source, WindowKind, parse_program};
//!
//! let program = parse_program(
//!     "event SensorEvent: zone: str, value: float\n\
//!      var threshold: float = 10\n\
//!      stream Hot = SensorEvent\n\
//!          .where(value > threshold)\n\
//!          .partition_by(zone)\n\
//!          .window(5m)\n\
//!          .aggregate(avg_temp: avg(value), n: count())\n\
//!          .having(n >= 2)",
//! )?;
//! let hot = program.stream("Hot").unwrap();
//! assert_eq!(hot.source, Source::Event("SensorEvent".into()));
//! assert_eq!(hot.window, Some(WindowKind::Tumbling { size_ms: 300_000 }));
//!
//! let vars = program.initial_variables();
//! assert_eq!(vars["threshold"], Value::Float(10.0));
//! let event = Event::new("SensorEvent", 0).with_field("value", 12.5);
//! assert!(hot.accepts(&event, &vars));
//!
//! let row = BTreeMap::from([("n".to_owned(), Value::Int(3))]);
//! let having = hot.having.as_ref().unwrap();
//! assert!(having.matches(&Scope::empty().with_aliases(&row)));
//!
//! let err = parse_program("stream S = T .watermark(out_of_order: 10x)").unwrap_err();
//! assert_eq!(err.first().to_string(), "1:39: expected a duration like 10s, found \"10x\"");
//! # Ok::<_, varpulis_vpl::Diagnostics>(())
//! ```

mod capture;
mod check;
mod compiled;
mod diagnostic;
mod evt;
mod evt_scan;
mod expr;
mod lexer;
mod parser;
mod plan;

pub use capture::{CaptureFunc, ReadField};
pub use compiled::{Bindings, CompiledExpr, Row};
pub use diagnostic::{Diagnostic, Diagnostics, Span};
pub use evt::{EvtLine, parse_evt_line};
pub use evt_scan::EvtScanner;
pub use expr::{BinaryOp, EvalContext, Expr, ExprKind, Scope, UnaryOp};
pub use plan::{
    AggFunc, AggregatePlan, Assignment, ContextDecl, EmitField, EventDecl, FieldDecl, JoinPlan,
    PatternAtom, PatternPlan, PatternStep, Program, Source, StepKind, StreamPlan, Type, VarDecl,
    WindowKind,
};

/// The deepest nesting a program expression or an event line may have: parentheses, call
/// arguments, `not` and unary `-` in a program; brackets and braces in an `.evt` or `.jsonl`
/// line, the event's own braces included. Deeper input is an error (`nesting deeper than 100
/// levels`), not a stack overflow: a debug build overflows a 2 MiB thread stack at about 400
/// levels of `.evt` values and 700 of expressions, and `serde_json` stops at 127. Flat chains
/// (`a or b or c ...`) are not nesting and have no limit.
pub const MAX_NESTING: usize = 100;

/// Parses and checks a VPL program.
///
/// Syntax errors are collected per statement (the parser resumes at the next `event`, `var`,
/// `let`, `stream` or `name :=`); when there are none, every semantic error is collected.
///
/// # Errors
/// [`Diagnostics`] with every error found, in source order (at least one).
pub fn parse_program(source: &str) -> Result<Program, Diagnostics> {
    let stmts = parser::parse(source).map_err(Diagnostics)?;
    check::check(source, stmts).map_err(Diagnostics)
}
