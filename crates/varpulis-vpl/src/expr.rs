//! Expressions and their pure evaluator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use varpulis_core::{Event, Value, format_duration_ms};

use crate::diagnostic::Span;

/// An expression with the byte span it was parsed from.
///
/// Equality compares spans too; compare the `Display` forms (`expr.to_string()`) to compare
/// meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of expressions.
///
/// After [`parse_program`](crate::parse_program) every name is resolved: plans contain
/// [`ExprKind::Field`], [`ExprKind::Variable`] and [`ExprKind::Alias`], never
/// [`ExprKind::Name`] or [`ExprKind::Call`] (aggregate calls become
/// [`AggregatePlan`](crate::AggregatePlan)s).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExprKind {
    /// A literal: `Int`, `Float`, `Str`, `Bool`, `Null` or `Duration` (`10s`).
    Literal(Value),
    /// A field of the input event.
    Field(String),
    /// A program variable (`var` / `let`).
    Variable(String),
    /// A column of the aggregated row (in `.having` and `.emit` after `.aggregate`): an
    /// aggregate alias or the partition key.
    Alias(String),
    /// An unresolved name (only in unchecked syntax trees).
    Name(String),
    /// A function call (only in unchecked syntax trees).
    Call {
        /// Function name.
        func: String,
        /// Span of the function name.
        func_span: Span,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `op operand`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinaryOp {
    /// The operator as written in VPL.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::And => "and",
            Self::Or => "or",
        }
    }

    /// Whether this is `+ - * / %`.
    #[must_use]
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            Self::Add | Self::Sub | Self::Mul | Self::Div | Self::Rem
        )
    }

    /// Whether this is `== != < <= > >=`.
    #[must_use]
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge
        )
    }
}

/// What an expression can read while it is evaluated.
///
/// Missing names evaluate to [`Value::Null`]; the checker has already rejected names that
/// cannot exist, so a miss at run time means an event without that field.
pub trait EvalContext {
    /// A field of the current input event.
    fn field(&self, name: &str) -> Option<Value>;
    /// A program variable.
    fn variable(&self, name: &str) -> Option<Value>;
    /// A column of the aggregated row (an aggregate alias or the partition key).
    fn alias(&self, name: &str) -> Option<Value>;
}

/// The ready-made [`EvalContext`]: optional event, variables and aggregated row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Fields come from this event.
    pub event: Option<&'a Event>,
    /// Variables.
    pub variables: Option<&'a BTreeMap<String, Value>>,
    /// The aggregated row, for `.having` and `.emit` after `.aggregate`.
    pub aliases: Option<&'a BTreeMap<String, Value>>,
}

impl<'a> Scope<'a> {
    /// A scope with nothing in it (literals and operators only).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads fields from `event`.
    #[must_use]
    pub fn with_event(mut self, event: &'a Event) -> Self {
        self.event = Some(event);
        self
    }

    /// Reads variables from `variables`.
    #[must_use]
    pub fn with_variables(mut self, variables: &'a BTreeMap<String, Value>) -> Self {
        self.variables = Some(variables);
        self
    }

    /// Reads aggregate aliases (and the partition key) from `row`.
    #[must_use]
    pub fn with_aliases(mut self, row: &'a BTreeMap<String, Value>) -> Self {
        self.aliases = Some(row);
        self
    }
}

impl EvalContext for Scope<'_> {
    fn field(&self, name: &str) -> Option<Value> {
        self.event.and_then(|e| e.get(name)).cloned()
    }
    fn variable(&self, name: &str) -> Option<Value> {
        self.variables.and_then(|v| v.get(name)).cloned()
    }
    fn alias(&self, name: &str) -> Option<Value> {
        self.aliases.and_then(|v| v.get(name)).cloned()
    }
}

impl EvalContext for Event {
    fn field(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
    fn variable(&self, _name: &str) -> Option<Value> {
        None
    }
    fn alias(&self, _name: &str) -> Option<Value> {
        None
    }
}

impl Expr {
    pub(crate) fn new(kind: ExprKind, span: Span) -> Self {
        Self { kind, span }
    }

    /// Evaluates the expression. Pure: no I/O, no clock, the same inputs give the same value.
    ///
    /// Typing rules (see `docs/vpl.md`):
    /// - `Int op Int` is `Int` for `+ - * %`; when the exact integer result does not exist
    ///   (overflow, `% 0`) the operation is done in `Float` instead. `/` always gives `Float`
    ///   (`7 / 2 == 3.5`). Any `Float` operand makes the result `Float` (IEEE 754: `1 / 0` is
    ///   infinity).
    /// - `Str + Str` concatenates; `Duration ± Duration`, `Timestamp ± Duration`,
    ///   `Timestamp - Timestamp`, `Duration * Int` work on milliseconds.
    /// - `Null`, or operands without a rule, give `Null`.
    /// - `==`/`!=` never fail: numbers compare numerically (`1 == 1.0`), `null == null`, values
    ///   of different types are unequal. `< <= > >=` compare numbers numerically and strings,
    ///   bools, timestamps and durations within their type; with `Null` or mixed types they are
    ///   `false`.
    /// - `and`, `or`, `not` use three-valued logic: `Null` (or a non-bool) is unknown;
    ///   `false and x` is `false`, `true or x` is `true`, otherwise unknown gives `Null`.
    /// - [`ExprKind::Name`] reads an alias, then a variable, then a field; [`ExprKind::Call`]
    ///   gives `Null` (neither survives checking).
    pub fn eval<C: EvalContext + ?Sized>(&self, ctx: &C) -> Value {
        match &self.kind {
            ExprKind::Literal(v) => v.clone(),
            ExprKind::Field(n) => ctx.field(n).unwrap_or(Value::Null),
            ExprKind::Variable(n) => ctx.variable(n).unwrap_or(Value::Null),
            ExprKind::Alias(n) => ctx.alias(n).unwrap_or(Value::Null),
            ExprKind::Name(n) => ctx
                .alias(n)
                .or_else(|| ctx.variable(n))
                .or_else(|| ctx.field(n))
                .unwrap_or(Value::Null),
            ExprKind::Call { .. } => Value::Null,
            ExprKind::Unary { op, operand } => {
                let v = operand.eval(ctx);
                match op {
                    UnaryOp::Neg => negate(&v),
                    UnaryOp::Not => match v {
                        Value::Bool(b) => Value::Bool(!b),
                        _ => Value::Null,
                    },
                }
            }
            ExprKind::Binary { op, lhs, rhs } => match op {
                BinaryOp::And => match lhs.eval(ctx) {
                    Value::Bool(false) => Value::Bool(false),
                    l => match (l, rhs.eval(ctx)) {
                        (_, Value::Bool(false)) => Value::Bool(false),
                        (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                        _ => Value::Null,
                    },
                },
                BinaryOp::Or => match lhs.eval(ctx) {
                    Value::Bool(true) => Value::Bool(true),
                    l => match (l, rhs.eval(ctx)) {
                        (_, Value::Bool(true)) => Value::Bool(true),
                        (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                        _ => Value::Null,
                    },
                },
                op => binary(*op, &lhs.eval(ctx), &rhs.eval(ctx)),
            },
        }
    }

    /// Evaluates a condition (`.where`, `.having`): `true` only when the value is
    /// `Bool(true)`; `false`, `null` and non-bools reject.
    pub fn matches<C: EvalContext + ?Sized>(&self, ctx: &C) -> bool {
        matches!(self.eval(ctx), Value::Bool(true))
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Call { args, .. } => args.iter().for_each(|a| a.walk(f)),
            ExprKind::Unary { operand, .. } => operand.walk(f),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            _ => {}
        }
    }

    /// Names of the input-event fields the expression reads, sorted and deduplicated.
    #[must_use]
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let ExprKind::Field(n) = &e.kind {
                out.push(n.clone());
            }
        });
        out.sort();
        out.dedup();
        out
    }
}

fn negate(v: &Value) -> Value {
    match *v {
        Value::Int(i) => i
            .checked_neg()
            .map_or_else(|| Value::Float(-int_as_f64(i)), Value::Int),
        Value::Float(f) => Value::Float(-f),
        Value::Duration(d) => d.checked_neg().map_or(Value::Null, Value::Duration),
        _ => Value::Null,
    }
}

#[allow(clippy::cast_precision_loss)]
fn int_as_f64(i: i64) -> f64 {
    i as f64
}

fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use BinaryOp as B;
    use Value as V;
    if op.is_comparison() {
        return V::Bool(compare(op, a, b));
    }
    match (a, b) {
        (V::Int(x), V::Int(y)) if op != B::Div => {
            let exact = match op {
                B::Add => x.checked_add(*y),
                B::Sub => x.checked_sub(*y),
                B::Mul => x.checked_mul(*y),
                _ => x.checked_rem(*y),
            };
            exact.map_or_else(|| float_op(op, int_as_f64(*x), int_as_f64(*y)), V::Int)
        }
        (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => float_op(op, x, y),
            _ => V::Null,
        },
        (V::Str(x), V::Str(y)) if op == B::Add => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            V::Str(Arc::from(s))
        }
        (V::Duration(x), V::Duration(y)) => match op {
            B::Add => x.checked_add(*y).map_or(V::Null, V::Duration),
            B::Sub => x.checked_sub(*y).map_or(V::Null, V::Duration),
            _ => V::Null,
        },
        (V::Timestamp(t), V::Duration(d)) => match op {
            B::Add => t.checked_add(*d).map_or(V::Null, V::Timestamp),
            B::Sub => t.checked_sub(*d).map_or(V::Null, V::Timestamp),
            _ => V::Null,
        },
        (V::Duration(d), V::Timestamp(t)) if op == B::Add => {
            t.checked_add(*d).map_or(V::Null, V::Timestamp)
        }
        (V::Timestamp(x), V::Timestamp(y)) if op == B::Sub => {
            x.checked_sub(*y).map_or(V::Null, V::Duration)
        }
        (V::Duration(d), V::Int(n)) | (V::Int(n), V::Duration(d)) if op == B::Mul => {
            d.checked_mul(*n).map_or(V::Null, V::Duration)
        }
        _ => V::Null,
    }
}

fn float_op(op: BinaryOp, x: f64, y: f64) -> Value {
    Value::Float(match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        _ => x % y,
    })
}

fn compare(op: BinaryOp, a: &Value, b: &Value) -> bool {
    use Value as V;
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::Int(i), V::Float(f)) => cmp_int_float(*i, *f),
        (V::Float(f), V::Int(i)) => cmp_int_float(*i, *f).map(Ordering::reverse),
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) | (V::Duration(x), V::Duration(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let numbers = a.as_f64().is_some() && b.as_f64().is_some();
    let equal = match ord {
        Some(o) => o == Ordering::Equal,
        // NaN equals nothing; other values of different types are unequal.
        None => !numbers && a == b,
    };
    match op {
        BinaryOp::Eq => equal,
        BinaryOp::Ne => !equal,
        BinaryOp::Lt => ord == Some(Ordering::Less),
        BinaryOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        BinaryOp::Gt => ord == Some(Ordering::Greater),
        BinaryOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

/// Compares an integer with a float exactly (no rounding of large integers); NaN is unordered.
fn cmp_int_float(i: i64, f: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    #[allow(clippy::cast_possible_truncation)]
    let ti = t as i64; // exact: t is integral and in range
    Some(i.cmp(&ti).then_with(|| {
        if f > t {
            Ordering::Less
        } else if f < t {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

impl fmt::Display for Expr {
    /// A canonical text form: binary operations fully parenthesised, names as written,
    /// floats always with a fraction (`1.0`), durations in their largest exact unit. Stable,
    /// so it can serve as an expression signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(v) => write_literal(f, v),
            ExprKind::Field(n) | ExprKind::Variable(n) | ExprKind::Alias(n) | ExprKind::Name(n) => {
                f.write_str(n)
            }
            ExprKind::Call { func, args, .. } => {
                write!(f, "{func}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Unary { op, operand } => match op {
                UnaryOp::Neg => write!(f, "(-{operand})"),
                UnaryOp::Not => write!(f, "(not {operand})"),
            },
            ExprKind::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.symbol()),
        }
    }
}

fn write_literal(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Duration(d) => f.write_str(&format_duration_ms(*d)),
        Value::Str(s) => write!(f, "{:?}", &**s),
        other => write!(f, "{other}"),
    }
}
