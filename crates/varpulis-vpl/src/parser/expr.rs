//! The expression grammar: precedence climbing over explicit stacks, primaries, member
//! access (`a.field`), calls, and number literals.

use varpulis_core::{DurationError, Value, parse_duration_ms};

use super::{KEYWORDS, PResult, Parser, overflowing_duration};
use crate::MAX_NESTING;
use crate::diagnostic::{Diagnostic, Span};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::lexer::Tok;

/// Binding levels of operators, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Or,
    And,
    Not,
    Cmp,
    Add,
    Mul,
    Neg,
}

impl Level {
    fn of(op: BinaryOp) -> Self {
        match op {
            BinaryOp::Or => Self::Or,
            BinaryOp::And => Self::And,
            BinaryOp::Add | BinaryOp::Sub => Self::Add,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Self::Mul,
            _ => Self::Cmp,
        }
    }
}

/// An operator waiting for its right operand in [`Parser::expr`].
enum Pending {
    /// `(` at this span.
    Open(Span),
    /// `not` or `-` at this span.
    Prefix(UnaryOp, Span),
    Infix(BinaryOp),
}

impl Pending {
    fn level(&self) -> Level {
        match self {
            // Never reduced by an operator: only by its `)`.
            Self::Open(_) => Level::Or,
            Self::Prefix(UnaryOp::Not, _) => Level::Not,
            Self::Prefix(UnaryOp::Neg, _) => Level::Neg,
            Self::Infix(op) => Level::of(*op),
        }
    }

    /// Applies the operator to the operands on top of `operands`.
    fn reduce(self, operands: &mut Vec<Expr>) {
        let mut pop = || operands.pop().unwrap_or_else(|| unreachable!("an operand"));
        let e = match self {
            Self::Open(_) => unreachable!("reduced by `)`"),
            Self::Prefix(op, start) => {
                let operand = pop();
                let span = start.to(operand.span);
                Expr::new(
                    ExprKind::Unary {
                        op,
                        operand: Box::new(operand),
                    },
                    span,
                )
            }
            Self::Infix(op) => {
                let rhs = pop();
                let lhs = pop();
                let span = lhs.span.to(rhs.span);
                Expr::new(
                    ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                )
            }
        };
        operands.push(e);
    }
}

impl Parser<'_> {
    /// An expression, by precedence climbing over explicit stacks: parentheses, `not`, `-`
    /// and chains of binary operators cost no recursion (only call arguments recurse), so
    /// neither a 100,000-term chain nor deep parentheses can overflow the stack. Levels, from
    /// loosest: `or`, `and`, prefix `not`, comparisons (which do not chain), `+ -`, `* / %`,
    /// prefix `-`. Parentheses and prefix operators count toward [`MAX_NESTING`].
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        let mut operands: Vec<Expr> = Vec::new();
        let mut ops: Vec<Pending> = Vec::new();
        // Open parentheses and prefix operators on `ops`.
        let mut nesting = 0;
        loop {
            // An operand, after any prefix operators and open parentheses.
            loop {
                let t = self.peek().clone();
                let pending = match &t.tok {
                    Tok::LParen => Pending::Open(t.span),
                    Tok::Minus => Pending::Prefix(UnaryOp::Neg, t.span),
                    // `not` binds looser than comparisons and arithmetic: it cannot be their
                    // operand (`a == not b`); `primary` reports the keyword.
                    Tok::Ident(s)
                        if s == "not" && ops.last().is_none_or(|o| o.level() < Level::Cmp) =>
                    {
                        Pending::Prefix(UnaryOp::Not, t.span)
                    }
                    _ => break,
                };
                if self.depth + nesting >= MAX_NESTING {
                    return Err(self.too_deep());
                }
                nesting += 1;
                self.bump();
                ops.push(pending);
            }
            operands.push(self.primary()?);
            // Operators, and closing parentheses.
            loop {
                if self.at(&Tok::RParen) && ops.iter().any(|o| matches!(o, Pending::Open(_))) {
                    let close = self.bump().span;
                    while let Some(op) = ops.pop() {
                        if let Pending::Open(open) = op {
                            nesting -= 1;
                            let e = operands.last_mut().unwrap_or_else(|| unreachable!());
                            e.span = open.to(close);
                            break;
                        }
                        nesting -= usize::from(matches!(op, Pending::Prefix(..)));
                        op.reduce(&mut operands);
                    }
                    continue;
                }
                break;
            }
            let Some(op) = self.binary_op() else {
                break;
            };
            let level = Level::of(op);
            while let Some(top) = ops.last()
                && !matches!(top, Pending::Open(_))
                && top.level() > level
            {
                let top = ops.pop().unwrap_or_else(|| unreachable!());
                nesting -= usize::from(matches!(top, Pending::Prefix(..)));
                top.reduce(&mut operands);
            }
            if level == Level::Cmp && ops.last().is_some_and(|o| o.level() == Level::Cmp) {
                return Err(self
                    .error("`and`, `or` or the end of the expression")
                    .with_help("comparisons do not chain; write `a < b and b < c`"));
            }
            while let Some(top) = ops.last()
                && !matches!(top, Pending::Open(_))
                && top.level() >= level
            {
                let top = ops.pop().unwrap_or_else(|| unreachable!());
                nesting -= usize::from(matches!(top, Pending::Prefix(..)));
                top.reduce(&mut operands);
            }
            self.bump();
            ops.push(Pending::Infix(op));
        }
        if ops.iter().any(|o| matches!(o, Pending::Open(_))) {
            return Err(self.error("`)` to close `(`"));
        }
        while let Some(op) = ops.pop() {
            op.reduce(&mut operands);
        }
        Ok(operands.pop().unwrap_or_else(|| unreachable!()))
    }

    /// The binary operator at the current token, if any.
    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match &self.peek().tok {
            Tok::Ident(s) if s == "or" => BinaryOp::Or,
            Tok::Ident(s) if s == "and" => BinaryOp::And,
            Tok::Eq => BinaryOp::Eq,
            Tok::Ne => BinaryOp::Ne,
            Tok::Lt => BinaryOp::Lt,
            Tok::Le => BinaryOp::Le,
            Tok::Gt => BinaryOp::Gt,
            Tok::Ge => BinaryOp::Ge,
            Tok::Plus => BinaryOp::Add,
            Tok::Minus => BinaryOp::Sub,
            Tok::Star => BinaryOp::Mul,
            Tok::Slash => BinaryOp::Div,
            Tok::Percent => BinaryOp::Rem,
            _ => return None,
        })
    }

    pub(super) fn too_deep(&self) -> Diagnostic {
        let span = self.peek().span;
        Diagnostic::new(
            self.src,
            span,
            format!("nesting deeper than {MAX_NESTING} levels"),
        )
        .with_expected(format!("at most {MAX_NESTING} levels of nesting"))
        .with_found(&self.src[span.start..span.end])
        .with_help("remove redundant parentheses, `not` or `-`, or split the value")
    }

    fn primary(&mut self) -> PResult<Expr> {
        const EXPECTED: &str = "an expression";
        let t = self.peek().clone();
        match &t.tok {
            Tok::Number(text) => {
                let v = number_literal(self.src, text, t.span)?;
                self.bump();
                Ok(Expr::new(ExprKind::Literal(v), t.span))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::new(
                    ExprKind::Literal(Value::from(s.as_str())),
                    t.span,
                ))
            }
            Tok::Ident(s) => {
                let lit = match s.as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    _ => None,
                };
                if let Some(v) = lit {
                    self.bump();
                    return Ok(Expr::new(ExprKind::Literal(v), t.span));
                }
                if KEYWORDS.contains(&s.as_str()) {
                    return Err(self.error(EXPECTED));
                }
                let name = s.clone();
                self.bump();
                // `alias.field` (a pattern alias, a join input); `.op(` after a name is the
                // stream's next operation.
                if self.at(&Tok::Dot)
                    && let Tok::Ident(field) = self.peek_at(1)
                    && *self.peek_at(2) != Tok::LParen
                {
                    let field = field.clone();
                    self.bump();
                    let end = self.bump().span;
                    return Ok(Expr::new(
                        ExprKind::Member { alias: name, field },
                        t.span.to(end),
                    ));
                }
                if !self.at(&Tok::LParen) {
                    return Ok(Expr::new(ExprKind::Name(name), t.span));
                }
                self.bump();
                let mut args = Vec::new();
                if !self.at(&Tok::RParen) {
                    loop {
                        args.push(self.nested(Self::expr)?);
                        if !self.eat(&Tok::Comma) {
                            break;
                        }
                    }
                }
                let mut close = self.expect(&Tok::RParen, "`,` or `)` to close the call")?;
                // `first(b).value` is `first(b.value)`: a field of a capture function's event.
                if let [arg] = args.as_mut_slice()
                    && let ExprKind::Name(alias) = &arg.kind
                    && self.at(&Tok::Dot)
                    && let Tok::Ident(field) = self.peek_at(1)
                    && *self.peek_at(2) != Tok::LParen
                {
                    let member = ExprKind::Member {
                        alias: alias.clone(),
                        field: field.clone(),
                    };
                    self.bump();
                    close = self.bump().span;
                    arg.kind = member;
                }
                Ok(Expr::new(
                    ExprKind::Call {
                        func: name,
                        func_span: t.span,
                        args,
                    },
                    t.span.to(close),
                ))
            }
            _ => Err(self.error(EXPECTED)),
        }
    }
}

/// What a float literal beyond `f64` is expected to be (also marks that diagnostic).
pub(crate) const FLOAT_RANGE: &str = "a float of magnitude at most 1.7976931348623157e308";

/// Interprets a number token in an expression: `10` Int, `2.5`/`1e3` Float, `10s` Duration.
/// A float beyond `f64` (`1e400`) is an error, not infinity.
pub(crate) fn number_literal(src: &str, text: &str, span: Span) -> PResult<Value> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == text.len() {
        return text.parse::<i64>().map(Value::Int).map_err(|_| {
            Diagnostic::expected(src, span, "an integer at most 9223372036854775807")
                .with_help("write it as a float, e.g. 1e19")
        });
    }
    match parse_duration_ms(text) {
        Ok(ms) => return Ok(Value::Duration(ms)),
        Err(DurationError::Overflow { max, .. }) => {
            return Err(overflowing_duration(src, span, "duration", &max));
        }
        Err(_) => {}
    }
    let is_float = {
        let rest = &text[digits_end..];
        rest.starts_with('.') || rest.starts_with('e') || rest.starts_with('E')
    };
    if is_float && let Ok(f) = text.parse::<f64>() {
        if f.is_infinite() {
            return Err(Diagnostic::new(
                src,
                span,
                format!("number {text} is out of range for a float"),
            )
            .with_expected(FLOAT_RANGE)
            .with_found(text));
        }
        return Ok(Value::Float(f));
    }
    Err(
        Diagnostic::expected(src, span, "a number or a duration like 10s")
            .with_help("duration units are ms, s, m, h and d"),
    )
}
