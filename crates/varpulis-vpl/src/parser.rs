//! Recursive-descent parser: tokens -> syntax tree (names unresolved, nothing checked but
//! syntax and literals).

use varpulis_core::{Value, parse_duration_ms};

use crate::diagnostic::{Diagnostic, Span, suggest};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::lexer::{Tok, Token, lex};
use crate::plan::{Type, WindowPlan};

pub(crate) const KEYWORDS: &[&str] = &[
    "event", "var", "let", "stream", "and", "or", "not", "true", "false", "null",
];

const OPS: &[&str] = &[
    "where",
    "partition_by",
    "watermark",
    "allowed_lateness",
    "window",
    "aggregate",
    "having",
    "emit",
];

pub(crate) const DURATION_EXAMPLE: &str = "a duration like 10s";

#[derive(Debug, Clone)]
pub(crate) struct Ident {
    pub(crate) text: String,
    pub(crate) span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Event {
        name: Ident,
        fields: Vec<(Ident, Type)>,
    },
    Var {
        mutable: bool,
        name: Ident,
        ty: Option<(Type, Span)>,
        init: Expr,
    },
    Assign {
        name: Ident,
        expr: Expr,
    },
    Stream {
        name: Ident,
        source: Ident,
        ops: Vec<Op>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// The operation name (`where`, ...), with its span.
    pub(crate) name: Ident,
    pub(crate) kind: OpKind,
}

#[derive(Debug, Clone)]
pub(crate) enum OpKind {
    Where(Expr),
    PartitionBy(Ident),
    Watermark(i64, Span),
    AllowedLateness(i64),
    /// The window and the spans of its size and slide arguments.
    Window(WindowPlan, Span, Span),
    Aggregate(Vec<(Ident, Expr)>),
    Having(Expr),
    Emit(Vec<(Ident, Expr)>),
}

pub(crate) struct Parser<'s> {
    pub(crate) src: &'s str,
    toks: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole program; on any syntax error returns every syntax error found (one per
/// statement, recovering at the next statement).
pub(crate) fn parse(src: &str) -> Result<Vec<Stmt>, Vec<Diagnostic>> {
    let (toks, lex_errors) = lex(src);
    if !lex_errors.is_empty() {
        return Err(lex_errors);
    }
    let mut p = Parser::new(src, toks);
    let mut stmts = Vec::new();
    let mut errors = Vec::new();
    while !p.at(&Tok::Eof) {
        match p.statement() {
            Ok(s) => stmts.push(s),
            Err(d) => {
                errors.push(d);
                p.recover();
            }
        }
    }
    if errors.is_empty() {
        Ok(stmts)
    } else {
        Err(errors)
    }
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str, toks: Vec<Token>) -> Self {
        Self { src, toks, pos: 0 }
    }

    pub(crate) fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    pub(crate) fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    pub(crate) fn at(&self, tok: &Tok) -> bool {
        &self.peek().tok == tok
    }

    fn at_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == kw)
    }

    pub(crate) fn eat(&mut self, tok: &Tok) -> bool {
        if self.at(tok) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn error(&self, expected: impl Into<String>) -> Diagnostic {
        Diagnostic::expected(self.src, self.peek().span, expected)
    }

    pub(crate) fn expect(&mut self, tok: &Tok, what: &str) -> PResult<Span> {
        if self.at(tok) {
            Ok(self.bump().span)
        } else {
            Err(self.error(what))
        }
    }

    /// A name that is not a keyword.
    pub(crate) fn ident(&mut self, what: &str) -> PResult<Ident> {
        match &self.peek().tok {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => {
                let text = s.clone();
                let span = self.bump().span;
                Ok(Ident { text, span })
            }
            Tok::Ident(_) => Err(self
                .error(what)
                .with_help("this is a keyword; choose another name")),
            _ => Err(self.error(what)),
        }
    }

    fn at_statement_start(&self) -> bool {
        match &self.peek().tok {
            Tok::Ident(s) => {
                matches!(s.as_str(), "event" | "var" | "let" | "stream")
                    || *self.peek_at(1) == Tok::Walrus
            }
            Tok::Eof => true,
            _ => false,
        }
    }

    fn recover(&mut self) {
        self.bump();
        while !self.at_statement_start() {
            self.bump();
        }
    }

    fn statement(&mut self) -> PResult<Stmt> {
        let stmt = if self.at_keyword("event") {
            self.bump();
            self.event_decl()?
        } else if self.at_keyword("var") || self.at_keyword("let") {
            let mutable = self.at_keyword("var");
            self.bump();
            self.var_decl(mutable)?
        } else if self.at_keyword("stream") {
            self.bump();
            self.stream()?
        } else if matches!(self.peek().tok, Tok::Ident(_)) && *self.peek_at(1) == Tok::Walrus {
            let name = self.ident("a variable name")?;
            self.bump();
            let expr = self.expr()?;
            Stmt::Assign { name, expr }
        } else {
            return Err(self.error("a statement (event, var, let, stream or `name := expr`)"));
        };
        if !self.at_statement_start() {
            let what = if matches!(stmt, Stmt::Stream { .. }) {
                "`.` and an operation (.where, .window, ...) or a new statement"
            } else {
                "a new statement (event, var, let, stream or `name := expr`)"
            };
            return Err(self.error(what));
        }
        Ok(stmt)
    }

    fn event_decl(&mut self) -> PResult<Stmt> {
        let name = self.ident("an event type name")?;
        let mut fields = Vec::new();
        if self.eat(&Tok::Colon) {
            loop {
                let field = self.ident("a field declaration like value: float")?;
                self.expect(&Tok::Colon, "`:` and a type after the field name")?;
                let (ty, _) = self.type_name()?;
                fields.push((field, ty));
                self.eat(&Tok::Comma);
                let more = matches!(&self.peek().tok, Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()))
                    && *self.peek_at(1) == Tok::Colon;
                if !more {
                    break;
                }
            }
        }
        Ok(Stmt::Event { name, fields })
    }

    fn type_name(&mut self) -> PResult<(Type, Span)> {
        const EXPECTED: &str = "a type (int, float, bool, str, timestamp or duration)";
        let t = self.peek().clone();
        if let Tok::Ident(s) = &t.tok
            && let Some(ty) = Type::from_name(s)
        {
            self.bump();
            return Ok((ty, t.span));
        }
        let mut d = self.error(EXPECTED);
        if let Tok::Ident(s) = &t.tok
            && let Some(h) = suggest(
                s,
                [
                    "int",
                    "float",
                    "bool",
                    "str",
                    "string",
                    "timestamp",
                    "duration",
                ],
            )
        {
            d = d.with_help(h);
        }
        Err(d)
    }

    fn var_decl(&mut self, mutable: bool) -> PResult<Stmt> {
        let name = self.ident("a variable name")?;
        let ty = if self.eat(&Tok::Colon) {
            Some(self.type_name()?)
        } else {
            None
        };
        self.expect(&Tok::Assign, "`=` and an initial value")?;
        let init = self.expr()?;
        Ok(Stmt::Var {
            mutable,
            name,
            ty,
            init,
        })
    }

    fn stream(&mut self) -> PResult<Stmt> {
        let name = self.ident("a stream name")?;
        self.expect(&Tok::Assign, "`=` and a source (an event type or a stream)")?;
        let source = self.ident("a source (an event type or a stream)")?;
        let mut ops = Vec::new();
        while self.eat(&Tok::Dot) {
            ops.push(self.op()?);
        }
        Ok(Stmt::Stream { name, source, ops })
    }

    fn op(&mut self) -> PResult<Op> {
        let t = self.peek().clone();
        let name = match &t.tok {
            Tok::Ident(s) if OPS.contains(&s.as_str()) => Ident {
                text: s.clone(),
                span: self.bump().span,
            },
            Tok::Ident(s) => {
                let mut d = Diagnostic::expected(
                    self.src,
                    t.span,
                    "an operation (.where, .partition_by, .watermark, .allowed_lateness, \
                     .window, .aggregate, .having or .emit)",
                );
                d.message = format!("unknown operation .{s}: {}", d.message);
                if let Some(h) = suggest(s, OPS.iter().copied()) {
                    d = d.with_help(h);
                }
                return Err(d);
            }
            _ => {
                return Err(self.error("an operation name after `.` (where, window, ...)"));
            }
        };
        let open_msg = format!("`(` after .{}", name.text);
        self.expect(&Tok::LParen, &open_msg)?;
        let kind = match name.text.as_str() {
            "where" => OpKind::Where(self.expr()?),
            "having" => OpKind::Having(self.expr()?),
            "partition_by" => OpKind::PartitionBy(self.ident("a field name to partition by")?),
            "watermark" => {
                let key = self.peek().clone();
                if !matches!(&key.tok, Tok::Ident(s) if s == "out_of_order") {
                    return Err(self.error("`out_of_order:` and a duration like 10s"));
                }
                self.bump();
                self.expect(&Tok::Colon, "`:` after out_of_order")?;
                let (ms, span) = self.duration()?;
                OpKind::Watermark(ms, span)
            }
            "allowed_lateness" => OpKind::AllowedLateness(self.duration()?.0),
            "window" => self.window()?,
            "aggregate" => {
                OpKind::Aggregate(self.items("an aggregate like total: sum(amount)", false)?)
            }
            _ => OpKind::Emit(self.items("an output field like name: expr", true)?),
        };
        let close_msg = format!("`)` to close .{}(", name.text);
        self.expect(&Tok::RParen, &close_msg)?;
        Ok(Op { name, kind })
    }

    /// `name: expr, ...` (with `name` alone allowed when `shorthand`); trailing comma ok.
    fn items(&mut self, what: &str, shorthand: bool) -> PResult<Vec<(Ident, Expr)>> {
        let mut items = Vec::new();
        loop {
            if self.at(&Tok::RParen) && !items.is_empty() {
                break;
            }
            let name = self.ident(what)?;
            let expr = if self.eat(&Tok::Colon) {
                self.expr()?
            } else if shorthand {
                Expr::new(ExprKind::Name(name.text.clone()), name.span)
            } else {
                return Err(self.error("`:` and an aggregate function call like sum(amount)"));
            };
            items.push((name, expr));
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Ok(items)
    }

    pub(crate) fn duration(&mut self) -> PResult<(i64, Span)> {
        let t = self.peek().clone();
        if let Tok::Number(text) = &t.tok {
            if let Ok(ms) = parse_duration_ms(text) {
                self.bump();
                return Ok((ms, t.span));
            }
            let d = self.error(DURATION_EXAMPLE);
            if text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(d.with_help(format!(
                    "add a unit: {text}ms, {text}s, {text}m, {text}h or {text}d"
                )));
            }
            return Err(d.with_help("units are ms, s, m, h and d"));
        }
        Err(self.error(DURATION_EXAMPLE))
    }

    fn window(&mut self) -> PResult<OpKind> {
        const EXPECTED: &str = "a window size like 5m, an event count like 100, or session: 5s";
        let t = self.peek().clone();
        match &t.tok {
            Tok::Ident(s) if s == "session" => {
                self.bump();
                self.expect(&Tok::Colon, "`:` after session")?;
                let (gap_ms, span) = self.duration()?;
                Ok(OpKind::Window(WindowPlan::Session { gap_ms }, span, span))
            }
            Tok::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                self.bump();
                let Ok(n) = text.parse::<u64>() else {
                    return Err(Diagnostic::expected(
                        self.src,
                        t.span,
                        "an event count at most 18446744073709551615",
                    ));
                };
                if self.at(&Tok::Comma) {
                    return Err(self.error("`)`: count windows do not slide"));
                }
                Ok(OpKind::Window(WindowPlan::Count { n }, t.span, t.span))
            }
            Tok::Number(text) => {
                let Ok(size_ms) = parse_duration_ms(text) else {
                    return Err(self
                        .error(EXPECTED)
                        .with_help("units are ms, s, m, h and d"));
                };
                self.bump();
                if self.eat(&Tok::Comma) {
                    let key = self.peek().clone();
                    if !matches!(&key.tok, Tok::Ident(s) if s == "sliding") {
                        return Err(self.error("`sliding:` and a duration like 1m"));
                    }
                    self.bump();
                    self.expect(&Tok::Colon, "`:` after sliding")?;
                    let (slide_ms, span) = self.duration()?;
                    return Ok(OpKind::Window(
                        WindowPlan::Sliding { size_ms, slide_ms },
                        t.span,
                        span,
                    ));
                }
                Ok(OpKind::Window(
                    WindowPlan::Tumbling { size_ms },
                    t.span,
                    t.span,
                ))
            }
            _ => Err(self.error(EXPECTED)),
        }
    }

    // ---- expressions ----

    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.or_expr()
    }

    fn binary(lhs: Expr, op: BinaryOp, rhs: Expr) -> Expr {
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

    fn or_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.and_expr()?;
        while self.at_keyword("or") {
            self.bump();
            let rhs = self.and_expr()?;
            lhs = Self::binary(lhs, BinaryOp::Or, rhs);
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.not_expr()?;
        while self.at_keyword("and") {
            self.bump();
            let rhs = self.not_expr()?;
            lhs = Self::binary(lhs, BinaryOp::And, rhs);
        }
        Ok(lhs)
    }

    fn not_expr(&mut self) -> PResult<Expr> {
        if self.at_keyword("not") {
            let start = self.bump().span;
            let operand = self.not_expr()?;
            let span = start.to(operand.span);
            return Ok(Expr::new(
                ExprKind::Unary {
                    op: UnaryOp::Not,
                    operand: Box::new(operand),
                },
                span,
            ));
        }
        self.cmp_expr()
    }

    fn cmp_op(&self) -> Option<BinaryOp> {
        Some(match self.peek().tok {
            Tok::Eq => BinaryOp::Eq,
            Tok::Ne => BinaryOp::Ne,
            Tok::Lt => BinaryOp::Lt,
            Tok::Le => BinaryOp::Le,
            Tok::Gt => BinaryOp::Gt,
            Tok::Ge => BinaryOp::Ge,
            _ => return None,
        })
    }

    fn cmp_expr(&mut self) -> PResult<Expr> {
        let lhs = self.add_expr()?;
        let Some(op) = self.cmp_op() else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.add_expr()?;
        if self.cmp_op().is_some() {
            return Err(self
                .error("`and`, `or` or the end of the expression")
                .with_help("comparisons do not chain; write `a < b and b < c`"));
        }
        Ok(Self::binary(lhs, op, rhs))
    }

    fn add_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.mul_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinaryOp::Add,
                Tok::Minus => BinaryOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul_expr()?;
            lhs = Self::binary(lhs, op, rhs);
        }
    }

    fn mul_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinaryOp::Mul,
                Tok::Slash => BinaryOp::Div,
                Tok::Percent => BinaryOp::Rem,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary_expr()?;
            lhs = Self::binary(lhs, op, rhs);
        }
    }

    fn unary_expr(&mut self) -> PResult<Expr> {
        if self.at(&Tok::Minus) {
            let start = self.bump().span;
            let operand = self.unary_expr()?;
            let span = start.to(operand.span);
            return Ok(Expr::new(
                ExprKind::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(operand),
                },
                span,
            ));
        }
        self.primary()
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
            Tok::LParen => {
                self.bump();
                let mut e = self.expr()?;
                let close = self.expect(&Tok::RParen, "`)` to close `(`")?;
                e.span = t.span.to(close);
                Ok(e)
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
                if !self.at(&Tok::LParen) {
                    return Ok(Expr::new(ExprKind::Name(name), t.span));
                }
                self.bump();
                let mut args = Vec::new();
                if !self.at(&Tok::RParen) {
                    loop {
                        args.push(self.expr()?);
                        if !self.eat(&Tok::Comma) {
                            break;
                        }
                    }
                }
                let close = self.expect(&Tok::RParen, "`,` or `)` to close the call")?;
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

/// Interprets a number token in an expression: `10` Int, `2.5`/`1e3` Float, `10s` Duration.
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
    if let Ok(ms) = parse_duration_ms(text) {
        return Ok(Value::Duration(ms));
    }
    let is_float = {
        let rest = &text[digits_end..];
        rest.starts_with('.') || rest.starts_with('e') || rest.starts_with('E')
    };
    if is_float && let Ok(f) = text.parse::<f64>() {
        return Ok(Value::Float(f));
    }
    Err(
        Diagnostic::expected(src, span, "a number or a duration like 10s")
            .with_help("duration units are ms, s, m, h and d"),
    )
}
