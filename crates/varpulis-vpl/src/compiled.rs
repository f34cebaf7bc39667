//! Expressions compiled for the hot path: names resolved once, fields read by position.
//!
//! [`Expr::eval`] looks every field up by name through [`EvalContext`], which returns an owned
//! [`Value`]. A [`CompiledExpr`] is the same expression lowered once, at load time, into nodes
//! that read a field through a [`FieldRef`] (one comparison at the position where the field was
//! last found) and operands by reference, so `value > 100.0` clones nothing and compares one
//! name. The result is always what [`Expr::eval`] gives for the same inputs: the same operator
//! functions are applied in the same order, with the same short-circuit of `and`/`or`.
//!
//! A left-leaning chain (`a or b or c ...`, any length) is flattened into one node with a list
//! of `(operator, operand)`, so evaluating or dropping it never recurses along the chain; all
//! other nesting is bounded by [`MAX_NESTING`](crate::MAX_NESTING) at parse time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, FieldRef, Value};

use crate::capture::CaptureFunc;
use crate::expr::{self, BinaryOp, Expr, ExprKind, UnaryOp};

/// What a [`CompiledExpr`] reads: the input event's fields, the program variables, and the
/// aggregated row (`.having` and `.emit` after `.aggregate`). Missing names read as `null`.
pub trait Row {
    /// A field of the current input event.
    fn field(&self, field: &FieldRef) -> Option<&Value>;
    /// A program variable.
    fn variable(&self, name: &str) -> Option<&Value>;
    /// A column of the aggregated row (an aggregate alias or the partition key).
    fn alias(&self, column: &FieldRef) -> Option<&Value>;
    /// `alias.field`: a field of the last event captured under a pattern alias, or of a join
    /// input's event. None outside patterns and joins.
    fn member(&self, _alias: &str, _field: &FieldRef) -> Option<&Value> {
        None
    }
    /// Every event captured under a pattern alias, oldest first. None outside patterns.
    fn captured(&self, _alias: &str) -> &[Event] {
        &[]
    }
}

/// The ready-made [`Row`]: an optional input event, variables, and an aggregated row given as
/// the window result event whose fields are its columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bindings<'a> {
    /// Fields come from this event.
    pub event: Option<&'a Event>,
    /// Variables.
    pub variables: Option<&'a BTreeMap<String, Value>>,
    /// The aggregated row: its fields are the columns.
    pub row: Option<&'a Event>,
}

impl<'a> Bindings<'a> {
    /// Fields from `event` and the given variables.
    #[must_use]
    pub fn event(event: &'a Event, variables: &'a BTreeMap<String, Value>) -> Self {
        Self {
            event: Some(event),
            variables: Some(variables),
            row: None,
        }
    }

    /// Columns from the window result `row` and the given variables.
    #[must_use]
    pub fn row(row: &'a Event, variables: &'a BTreeMap<String, Value>) -> Self {
        Self {
            event: None,
            variables: Some(variables),
            row: Some(row),
        }
    }
}

impl Row for Bindings<'_> {
    #[inline]
    fn field(&self, field: &FieldRef) -> Option<&Value> {
        self.event.and_then(|e| field.get(e))
    }
    #[inline]
    fn variable(&self, name: &str) -> Option<&Value> {
        self.variables.and_then(|v| v.get(name))
    }
    #[inline]
    fn alias(&self, column: &FieldRef) -> Option<&Value> {
        self.row.and_then(|e| column.get(e))
    }
}

/// An [`Expr`] lowered once, at load time, for the hot path: fields are read through a
/// [`FieldRef`] (one comparison at the position where the field was last found), operands by
/// reference, and a left-leaning chain (`a or b or c ...`, any length) is one node evaluated in
/// a loop. [`eval`](Self::eval) always gives what [`Expr::eval`] gives for the same inputs.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    node: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Value),
    Field(FieldRef),
    Variable(Arc<str>),
    Alias(FieldRef),
    /// An unresolved name: alias, then variable, then field (as [`Expr::eval`]).
    Name(FieldRef),
    /// `alias.field`.
    Member(Arc<str>, FieldRef),
    /// `func(alias.field)` over a pattern capture.
    Capture(CaptureFunc, Arc<str>, Option<FieldRef>),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    /// `first op1 r1 op2 r2 ...`, evaluated left to right.
    Chain(Box<Node>, Vec<(BinaryOp, Node)>),
}

static NULL: Value = Value::Null;

impl CompiledExpr {
    /// Lowers `expr`.
    #[must_use]
    pub fn new(expr: &Expr) -> Self {
        Self {
            node: Node::lower(expr),
        }
    }

    /// Evaluates the expression: exactly [`Expr::eval`] over the same event, variables and row.
    #[inline]
    pub fn eval<R: Row + ?Sized>(&self, row: &R) -> Value {
        self.node.value(row).into_owned()
    }

    /// A condition (`.where`, `.having`): `true` only for `Bool(true)`, as [`Expr::matches`].
    #[inline]
    pub fn matches<R: Row + ?Sized>(&self, row: &R) -> bool {
        matches!(*self.node.value(row), Value::Bool(true))
    }
}

impl Node {
    fn lower(e: &Expr) -> Self {
        let (leftmost, nodes) = expr::spine(e);
        let first = Self::leaf_or_unary(leftmost);
        match nodes.len() {
            0 => first,
            1 => {
                let (_, op, rhs) = nodes[0];
                Self::Binary(op, Box::new(first), Box::new(Self::lower(rhs)))
            }
            _ => Self::Chain(
                Box::new(first),
                nodes
                    .into_iter()
                    .map(|(_, op, rhs)| (op, Self::lower(rhs)))
                    .collect(),
            ),
        }
    }

    /// A node that is not a binary operation.
    fn leaf_or_unary(e: &Expr) -> Self {
        match &e.kind {
            ExprKind::Literal(v) => Self::Literal(v.clone()),
            ExprKind::Field(n) => Self::Field(FieldRef::new(n.as_str())),
            ExprKind::Variable(n) => Self::Variable(Arc::from(n.as_str())),
            ExprKind::Alias(n) => Self::Alias(FieldRef::new(n.as_str())),
            ExprKind::Name(n) => Self::Name(FieldRef::new(n.as_str())),
            ExprKind::Member { alias, field } => {
                Self::Member(Arc::from(alias.as_str()), FieldRef::new(field.as_str()))
            }
            ExprKind::Capture { func, alias, field } => Self::Capture(
                *func,
                Arc::from(alias.as_str()),
                field.as_deref().map(FieldRef::new),
            ),
            // `Expr::eval` gives `null` for a call (none survives checking).
            ExprKind::Call { .. } => Self::Literal(Value::Null),
            ExprKind::Unary { op, operand } => Self::Unary(*op, Box::new(Self::lower(operand))),
            ExprKind::Binary { .. } => unreachable!("the leftmost node of a spine is not binary"),
        }
    }

    /// The node's value, borrowed where it already exists (a literal, a field, a variable).
    fn value<'a, R: Row + ?Sized>(&'a self, row: &'a R) -> Cow<'a, Value> {
        match self {
            Self::Literal(v) => Cow::Borrowed(v),
            Self::Field(f) => Cow::Borrowed(row.field(f).unwrap_or(&NULL)),
            Self::Variable(n) => Cow::Borrowed(row.variable(n).unwrap_or(&NULL)),
            Self::Alias(f) => Cow::Borrowed(row.alias(f).unwrap_or(&NULL)),
            Self::Name(f) => Cow::Borrowed(
                row.alias(f)
                    .or_else(|| row.variable(f.name()))
                    .or_else(|| row.field(f))
                    .unwrap_or(&NULL),
            ),
            Self::Member(alias, f) => Cow::Borrowed(row.member(alias, f).unwrap_or(&NULL)),
            Self::Capture(func, alias, f) => {
                Cow::Owned(func.apply(row.captured(alias), f.as_ref()))
            }
            Self::Unary(op, operand) => {
                let v = operand.value(row);
                Cow::Owned(match op {
                    UnaryOp::Neg => expr::negate(&v),
                    UnaryOp::Not => match *v {
                        Value::Bool(b) => Value::Bool(!b),
                        _ => Value::Null,
                    },
                })
            }
            Self::Binary(op, lhs, rhs) => Cow::Owned(apply(*op, lhs, rhs, row)),
            Self::Chain(first, rest) => {
                let mut acc = first.value(row);
                for (op, rhs) in rest {
                    acc = Cow::Owned(match op {
                        BinaryOp::And | BinaryOp::Or => {
                            expr::apply(*op, acc.into_owned(), || rhs.value(row).into_owned())
                        }
                        op => expr::binary(*op, &acc, &rhs.value(row)),
                    });
                }
                acc
            }
        }
    }
}

/// `lhs op rhs` with the evaluator's rules (`and`/`or` evaluate `rhs` only when needed).
#[inline]
fn apply<R: Row + ?Sized>(op: BinaryOp, lhs: &Node, rhs: &Node, row: &R) -> Value {
    match op {
        BinaryOp::And | BinaryOp::Or => expr::apply(op, lhs.value(row).into_owned(), || {
            rhs.value(row).into_owned()
        }),
        op => expr::binary(op, &lhs.value(row), &rhs.value(row)),
    }
}
