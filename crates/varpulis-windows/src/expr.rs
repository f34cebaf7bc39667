//! Expressions evaluated per event (aggregate inputs, partition keys).

use std::fmt;
use std::sync::Arc;

use varpulis_core::{Event, Value};

/// An expression evaluated against one event.
///
/// The engine implements this for compiled VPL expressions; this crate provides [`Field`],
/// [`Const`], [`Binary`] arithmetic and [`FnExpr`] (a closure) for tests and embedders.
///
/// # Contract
/// `eval` is pure: the same event gives the same value (restore relies on it). `signature` is a
/// stable text form recorded in checkpoints; two expressions with the same signature must compute
/// the same thing.
pub trait Expr: Send + Sync + fmt::Debug {
    /// Evaluates the expression; missing inputs give [`Value::Null`].
    fn eval(&self, event: &Event) -> Value;
    /// A stable text form, e.g. `price * qty`.
    fn signature(&self) -> String;
}

/// A field reference; a missing field evaluates to [`Value::Null`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(pub Arc<str>);

impl Field {
    /// A reference to field `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }
}

impl Expr for Field {
    fn eval(&self, event: &Event) -> Value {
        event.get(&self.0).cloned().unwrap_or(Value::Null)
    }
    fn signature(&self) -> String {
        self.0.to_string()
    }
}

/// A constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Const(pub Value);

impl Expr for Const {
    fn eval(&self, _event: &Event) -> Value {
        self.0.clone()
    }
    fn signature(&self) -> String {
        self.0.to_string()
    }
}

/// Arithmetic operators for [`Binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (always a Float result).
    Div,
}

/// `lhs op rhs` over numbers: Int op Int is Int (Float on overflow), any Float makes a Float,
/// `/` always gives a Float, and a Null or non-numeric operand gives Null.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The operator.
    pub op: BinOp,
    /// Left operand.
    pub lhs: Arc<dyn Expr>,
    /// Right operand.
    pub rhs: Arc<dyn Expr>,
}

impl Binary {
    /// `lhs op rhs`.
    pub fn new(op: BinOp, lhs: impl Expr + 'static, rhs: impl Expr + 'static) -> Self {
        Self {
            op,
            lhs: Arc::new(lhs),
            rhs: Arc::new(rhs),
        }
    }
}

impl Expr for Binary {
    fn eval(&self, event: &Event) -> Value {
        let (a, b) = (self.lhs.eval(event), self.rhs.eval(event));
        if let (Value::Int(x), Value::Int(y), false) = (&a, &b, self.op == BinOp::Div) {
            let r = match self.op {
                BinOp::Add => x.checked_add(*y),
                BinOp::Sub => x.checked_sub(*y),
                _ => x.checked_mul(*y),
            };
            if let Some(r) = r {
                return Value::Int(r);
            }
        }
        let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
            return Value::Null;
        };
        Value::Float(match self.op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
        })
    }
    fn signature(&self) -> String {
        let op = match self.op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        };
        format!("({} {op} {})", self.lhs.signature(), self.rhs.signature())
    }
}

/// A closure with a given signature.
pub struct FnExpr<F> {
    signature: String,
    f: F,
}

impl<F: Fn(&Event) -> Value + Send + Sync> FnExpr<F> {
    /// An expression computing `f`, recorded in checkpoints as `signature`.
    pub fn new(signature: impl Into<String>, f: F) -> Self {
        Self {
            signature: signature.into(),
            f,
        }
    }
}

impl<F> fmt::Debug for FnExpr<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnExpr")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(&Event) -> Value + Send + Sync> Expr for FnExpr<F> {
    fn eval(&self, event: &Event) -> Value {
        (self.f)(event)
    }
    fn signature(&self) -> String {
        self.signature.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_keeps_ints_and_nulls_missing_operands() {
        let e = Event::new("T", 0)
            .with_field("price", 3)
            .with_field("qty", 4)
            .with_field("f", 0.5);
        let mul = Binary::new(BinOp::Mul, Field::new("price"), Field::new("qty"));
        assert_eq!(mul.eval(&e), Value::Int(12));
        assert_eq!(mul.signature(), "(price * qty)");
        let mixed = Binary::new(BinOp::Add, Field::new("price"), Field::new("f"));
        assert_eq!(mixed.eval(&e), Value::Float(3.5));
        let div = Binary::new(BinOp::Div, Field::new("price"), Field::new("qty"));
        assert_eq!(div.eval(&e), Value::Float(0.75));
        let missing = Binary::new(BinOp::Add, Field::new("price"), Field::new("nope"));
        assert_eq!(missing.eval(&e), Value::Null);
        let overflow = Binary::new(
            BinOp::Mul,
            Const(Value::Int(i64::MAX)),
            Const(Value::Int(2)),
        );
        assert!(matches!(overflow.eval(&e), Value::Float(_)));
    }
}
