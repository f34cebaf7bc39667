//! Expressions and their pure evaluator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use varpulis_core::{Event, Value, format_duration_ms};

use crate::capture::CaptureFunc;
use crate::diagnostic::Span;

/// An expression with the byte span it was parsed from.
///
/// Equality compares spans too; compare the `Display` forms (`expr.to_string()`) to compare
/// meaning.
///
/// A chain `a or b or c ...` is a left-leaning tree as deep as the chain is long, so every
/// operation on an `Expr` (evaluation, `Display`, `Debug`, `Clone`, equality, drop, checking)
/// walks the left spine of a chain in a loop rather than one recursion per term: a chain of
/// any length is safe. Other nesting (parentheses, `not`, `-`, call arguments) recurses and
/// is bounded by [`MAX_NESTING`](crate::MAX_NESTING) at parse time.
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// A chain longer than this is evaluated and printed with an explicit stack instead of
/// recursion (shorter ones recurse: no allocation on the hot path).
const SHORT_CHAIN: usize = 16;

/// The number of [`ExprKind::Binary`] nodes on the left spine of `e`, counted up to `limit`.
fn spine_len(e: &Expr, limit: usize) -> usize {
    let mut n = 0;
    let mut cur = e;
    while let ExprKind::Binary { lhs, .. } = &cur.kind {
        n += 1;
        if n > limit {
            break;
        }
        cur = lhs;
    }
    n
}

/// The left spine of `e`: its leftmost operand (not a binary operation) and the binary
/// nodes from the bottom up, as `(node, op, rhs)`.
pub(crate) fn spine(e: &Expr) -> (&Expr, Vec<(&Expr, BinaryOp, &Expr)>) {
    let mut nodes = Vec::new();
    let mut cur = e;
    while let ExprKind::Binary { op, lhs, rhs } = &cur.kind {
        nodes.push((cur, *op, &**rhs));
        cur = lhs;
    }
    nodes.reverse();
    (cur, nodes)
}

impl Drop for Expr {
    fn drop(&mut self) {
        // Moves every grandchild onto a heap stack so that no drop recurses more than one
        // level, whatever the shape of the tree. Leaves and nodes whose children are leaves
        // (the usual case) return at once and drop normally.
        fn has_children(e: &Expr) -> bool {
            match &e.kind {
                ExprKind::Binary { .. } | ExprKind::Unary { .. } => true,
                ExprKind::Call { args, .. } => !args.is_empty(),
                _ => false,
            }
        }
        fn detach(kind: &mut ExprKind, out: &mut Vec<Expr>) {
            match kind {
                ExprKind::Binary { lhs, rhs, .. } => {
                    out.push(std::mem::replace(&mut **lhs, Expr::placeholder()));
                    out.push(std::mem::replace(&mut **rhs, Expr::placeholder()));
                }
                ExprKind::Unary { operand, .. } => {
                    out.push(std::mem::replace(&mut **operand, Expr::placeholder()));
                }
                ExprKind::Call { args, .. } => out.append(args),
                _ => {}
            }
        }
        let deep = match &self.kind {
            ExprKind::Binary { lhs, rhs, .. } => has_children(lhs) || has_children(rhs),
            ExprKind::Unary { operand, .. } => has_children(operand),
            ExprKind::Call { args, .. } => args.iter().any(has_children),
            _ => false,
        };
        if !deep {
            return;
        }
        let mut stack = Vec::new();
        detach(&mut self.kind, &mut stack);
        while let Some(mut e) = stack.pop() {
            detach(&mut e.kind, &mut stack);
        }
    }
}

impl Clone for Expr {
    fn clone(&self) -> Self {
        let (leftmost, nodes) = spine(self);
        let mut acc = Expr::new(leftmost.kind.clone(), leftmost.span);
        for (node, op, rhs) in nodes {
            acc = Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(acc),
                    rhs: Box::new(rhs.clone()),
                },
                node.span,
            );
        }
        acc
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self, other);
        loop {
            if a.span != b.span {
                return false;
            }
            match (&a.kind, &b.kind) {
                (
                    ExprKind::Binary {
                        op: op_a,
                        lhs: lhs_a,
                        rhs: rhs_a,
                    },
                    ExprKind::Binary {
                        op: op_b,
                        lhs: lhs_b,
                        rhs: rhs_b,
                    },
                ) => {
                    if op_a != op_b || rhs_a != rhs_b {
                        return false;
                    }
                    (a, b) = (lhs_a, lhs_b);
                }
                (x, y) => return x == y,
            }
        }
    }
}

impl fmt::Debug for Expr {
    /// The derived form (`Expr { kind: .., span: .. }`); a long chain is printed without
    /// recursion, and then without `{:#?}` indentation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if spine_len(self, SHORT_CHAIN) <= SHORT_CHAIN {
            return f
                .debug_struct("Expr")
                .field("kind", &self.kind)
                .field("span", &self.span)
                .finish();
        }
        let (leftmost, nodes) = spine(self);
        for (_, op, _) in nodes.iter().rev() {
            write!(f, "Expr {{ kind: Binary {{ op: {op:?}, lhs: ")?;
        }
        write!(f, "{leftmost:?}")?;
        for (node, _, rhs) in nodes {
            write!(f, ", rhs: {rhs:?} }}, span: {:?} }}", node.span)?;
        }
        Ok(())
    }
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
    /// `alias.field`: a field of the last event captured under a pattern alias, or of a join
    /// input's event (`Orders.order_id`).
    Member {
        /// The alias or join input.
        alias: String,
        /// The field.
        field: String,
    },
    /// `len(b)`, `sum(b.value)`, `first(b.value)`, ...: a function over every event captured
    /// under a pattern alias (a Kleene capture), in `.emit` of a pattern stream.
    Capture {
        /// The function.
        func: CaptureFunc,
        /// The alias.
        alias: String,
        /// The field it reads (`None` for `len` and `count`).
        field: Option<String>,
    },
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
    /// `alias.field`: a field of the last event captured under a pattern alias (or of a join
    /// input's event). None outside patterns and joins.
    fn member(&self, _alias: &str, _field: &str) -> Option<Value> {
        None
    }
    /// Every event captured under a pattern alias, oldest first. None outside patterns.
    fn captured(&self, _alias: &str) -> &[Event] {
        &[]
    }
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
        if spine_len(self, SHORT_CHAIN) <= SHORT_CHAIN {
            return self.eval_node(ctx);
        }
        let (leftmost, nodes) = spine(self);
        let mut acc = leftmost.eval(ctx);
        for (_, op, rhs) in nodes {
            acc = apply(op, acc, || rhs.eval(ctx));
        }
        acc
    }

    /// One node; its left operand, on the same spine, is evaluated by recursion (the spine is
    /// short), every other operand through [`Expr::eval`].
    fn eval_node<C: EvalContext + ?Sized>(&self, ctx: &C) -> Value {
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
            ExprKind::Member { alias, field } => ctx.member(alias, field).unwrap_or(Value::Null),
            ExprKind::Capture { func, alias, field } => {
                func.apply(ctx.captured(alias), field.as_deref())
            }
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
            ExprKind::Binary { op, lhs, rhs } => apply(*op, lhs.eval_node(ctx), || rhs.eval(ctx)),
        }
    }

    /// Evaluates a condition (`.where`, `.having`): `true` only when the value is
    /// `Bool(true)`; `false`, `null` and non-bools reject.
    pub fn matches<C: EvalContext + ?Sized>(&self, ctx: &C) -> bool {
        matches!(self.eval(ctx), Value::Bool(true))
    }

    /// Calls `f` on this expression and every sub-expression, parents first (then left to
    /// right). Iterative: any depth is safe.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            f(e);
            match &e.kind {
                ExprKind::Call { args, .. } => stack.extend(args.iter().rev()),
                ExprKind::Unary { operand, .. } => stack.push(operand),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                _ => {}
            }
        }
    }

    /// Like [`Expr::walk`], with mutable access: `f` sees a node before its children (which
    /// are those it leaves in place).
    pub(crate) fn walk_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            f(&mut *e);
            match &mut e.kind {
                ExprKind::Call { args, .. } => stack.extend(args.iter_mut().rev()),
                ExprKind::Unary { operand, .. } => stack.push(operand),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                _ => {}
            }
        }
    }

    /// A leaf that owns nothing, to stand in for a moved-out operand.
    pub(crate) fn placeholder() -> Self {
        Self::new(ExprKind::Literal(Value::Null), Span::default())
    }

    /// Detaches the left spine: `self` becomes its leftmost operand and the binary nodes are
    /// returned from the bottom up as `(op, rhs, span of the node)`. [`Expr::attach_spine`]
    /// puts them back.
    pub(crate) fn detach_spine(&mut self) -> Vec<(BinaryOp, Expr, Span)> {
        let mut nodes = Vec::new();
        loop {
            let span = self.span;
            let ExprKind::Binary { op, lhs, rhs } = &mut self.kind else {
                break;
            };
            let (op, lhs, rhs) = (
                *op,
                std::mem::replace(&mut **lhs, Self::placeholder()),
                std::mem::replace(&mut **rhs, Self::placeholder()),
            );
            nodes.push((op, rhs, span));
            *self = lhs;
        }
        nodes.reverse();
        nodes
    }

    /// Rebuilds the chain taken by [`Expr::detach_spine`].
    pub(crate) fn attach_spine(&mut self, nodes: Vec<(BinaryOp, Expr, Span)>) {
        for (op, rhs, span) in nodes {
            let lhs = std::mem::replace(self, Self::placeholder());
            *self = Self::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            );
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

/// `lhs op rhs`, evaluating `rhs` only when `and`/`or` need it.
pub(crate) fn apply(op: BinaryOp, lhs: Value, rhs: impl FnOnce() -> Value) -> Value {
    match op {
        BinaryOp::And => match lhs {
            Value::Bool(false) => Value::Bool(false),
            l => match (l, rhs()) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        BinaryOp::Or => match lhs {
            Value::Bool(true) => Value::Bool(true),
            l => match (l, rhs()) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        op => binary(op, &lhs, &rhs()),
    }
}

pub(crate) fn negate(v: &Value) -> Value {
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

pub(crate) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
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
            ExprKind::Member { alias, field } => write!(f, "{alias}.{field}"),
            ExprKind::Capture { func, alias, field } => match field {
                Some(field) => write!(f, "{}({alias}.{field})", func.name()),
                None => write!(f, "{}({alias})", func.name()),
            },
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
            ExprKind::Binary { .. } => {
                let (leftmost, nodes) = spine(self);
                for _ in &nodes {
                    f.write_str("(")?;
                }
                write!(f, "{leftmost}")?;
                for (_, op, rhs) in nodes {
                    write!(f, " {} {rhs})", op.symbol())?;
                }
                Ok(())
            }
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
