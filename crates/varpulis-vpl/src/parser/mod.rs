//! Recursive-descent parser: tokens -> syntax tree (names unresolved, nothing checked but
//! syntax and literals).

use varpulis_core::{DurationError, parse_duration_ms};

use crate::MAX_NESTING;
use crate::diagnostic::{Diagnostic, Span, suggest};
use crate::expr::{Expr, ExprKind};
use crate::lexer::{Tok, Token, lex};
use crate::plan::{Type, WindowKind};

mod expr;
mod pattern;

pub(crate) use expr::{FLOAT_RANGE, number_literal};
pub(crate) use pattern::{AtomSyntax, PatternSyntax};

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
    "within",
    "not",
    "on",
    "max_runs",
    "max_kleene",
    "max_keys",
    "context",
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
        body: Body,
        ops: Vec<Op>,
    },
    /// `context NAME` or `context NAME (cores: [1, 2])`.
    Context {
        name: Ident,
        /// The CPU cores asked for, each with its span.
        cores: Vec<(u64, Span)>,
    },
    /// `pattern P = SEQ(...) within d partition by f`.
    Pattern {
        name: Ident,
        pattern: PatternSyntax,
        within: Option<(i64, Span)>,
        partition_by: Option<Ident>,
    },
}

/// What a stream reads.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// One event type, stream or named pattern.
    Source(Ident),
    /// A followed-by pattern: `A as a -> B where ... as b`.
    Pattern(PatternSyntax),
    /// `join(A, B, ...)`.
    Join(Vec<Ident>),
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
    Window(WindowKind, Span, Span),
    Aggregate(Vec<(Ident, Expr)>),
    Having(Expr),
    Emit(Vec<(Ident, Expr)>),
    /// `.within(d)`, with the duration's span.
    Within(i64, Span),
    /// `.not(X where ...)`.
    Not(AtomSyntax),
    /// `.on(A.x == B.y and ...)`.
    On(Expr),
    /// `.max_runs(n)` / `.max_kleene(n)` (patterns), `.max_keys(n)` (joins).
    MaxRuns(u64),
    MaxKleene(u64),
    MaxKeys(u64),
    /// `.context(NAME)`: the stream runs in that declared context.
    Context(Ident),
}

pub(crate) struct Parser<'s> {
    pub(crate) src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    /// Open nesting levels (see [`Parser::nested`]).
    depth: usize,
}

type PResult<T> = Result<T, Diagnostic>;

/// Parses a whole program; on any syntax error returns every syntax error found (one per
/// statement, recovering at the next statement).
pub(crate) fn parse(src: &str) -> Result<Vec<Stmt>, Vec<Diagnostic>> {
    let (toks, lex_errors) = lex(src, true);
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
        Self {
            src,
            toks,
            pos: 0,
            depth: 0,
        }
    }

    /// Runs `f` one nesting level deeper: a parenthesis, a call's arguments, `not`, `-`, or an
    /// `.evt` list or map. Beyond [`MAX_NESTING`] levels it is an error at the current token,
    /// so recursion (here, in the checker and in evaluation) stays far from the stack limit.
    pub(crate) fn nested<T, E: From<Diagnostic>>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.depth >= MAX_NESTING {
            return Err(E::from(self.too_deep()));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
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
                    || self.at_pattern_decl()
                    || self.at_context_decl()
            }
            Tok::Eof => true,
            _ => false,
        }
    }

    /// `pattern Name =`: a named pattern (`pattern` is not a keyword elsewhere).
    fn at_pattern_decl(&self) -> bool {
        self.at_keyword("pattern")
            && matches!(self.peek_at(1), Tok::Ident(_))
            && *self.peek_at(2) == Tok::Assign
    }

    /// `context Name`: a context declaration (`context` is not a keyword elsewhere).
    fn at_context_decl(&self) -> bool {
        self.at_keyword("context") && matches!(self.peek_at(1), Tok::Ident(_))
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
        } else if self.at_pattern_decl() {
            self.bump();
            self.pattern_decl()?
        } else if self.at_context_decl() {
            self.bump();
            self.context_decl()?
        } else if matches!(self.peek().tok, Tok::Ident(_)) && *self.peek_at(1) == Tok::Walrus {
            let name = self.ident("a variable name")?;
            self.bump();
            let expr = self.expr()?;
            Stmt::Assign { name, expr }
        } else {
            return Err(self.error(
                "a statement (event, var, let, stream, pattern, context or `name := expr`)",
            ));
        };
        if !self.at_statement_start() {
            let what = if let Stmt::Stream {
                body: Body::Pattern(_),
                ops,
                ..
            } = &stmt
                && ops.is_empty()
            {
                "`->` and the next step, `.` and an operation (.within, .emit, ...), or a new \
                 statement"
            } else if matches!(stmt, Stmt::Stream { .. }) {
                "`.` and an operation (.where, .window, ...) or a new statement"
            } else {
                "a new statement (event, var, let, stream or `name := expr`)"
            };
            return Err(self.error(what));
        }
        Ok(stmt)
    }

    /// After `context`: `NAME` and optionally `(cores: [INT, ...])`.
    fn context_decl(&mut self) -> PResult<Stmt> {
        let name = self.ident("a context name")?;
        let mut cores = Vec::new();
        if self.eat(&Tok::LParen) {
            let key = self.peek().clone();
            if !matches!(&key.tok, Tok::Ident(s) if s == "cores") {
                return Err(self.error("`cores:` and a list of CPU cores like [0, 1]"));
            }
            self.bump();
            self.expect(&Tok::Colon, "`:` after cores")?;
            self.expect(&Tok::LBracket, "`[` and a list of CPU cores like [0, 1]")?;
            loop {
                let t = self.peek().clone();
                let core = match &t.tok {
                    Tok::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                        text.parse::<u64>().ok()
                    }
                    _ => None,
                };
                let Some(core) = core else {
                    return Err(self.error("a CPU core number (0, 1, ...)"));
                };
                cores.push((core, self.bump().span));
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
            self.expect(&Tok::RBracket, "`,` or `]` to close the list of cores")?;
            self.expect(&Tok::RParen, "`)` to close context(")?;
        }
        Ok(Stmt::Context { name, cores })
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
        self.expect(
            &Tok::Assign,
            "`=` and a source (an event type, a stream, a pattern or join(...))",
        )?;
        let source = self.ident("a source (an event type, a stream, a pattern or join(...))")?;
        let body = if source.text == "join" && self.at(&Tok::LParen) {
            self.bump();
            let mut inputs = Vec::new();
            loop {
                inputs.push(self.ident("a join input (an event type or a stream)")?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
            self.expect(&Tok::RParen, "`,` or `)` to close join(")?;
            Body::Join(inputs)
        } else if self.at_step_continuation()
            || (matches!(source.text.as_str(), "all" | "NOT" | "not")
                && matches!(self.peek().tok, Tok::Ident(_)))
        {
            let start = source.span;
            let first = if matches!(source.text.as_str(), "all" | "NOT" | "not") {
                // A first step that starts with a keyword: read it again as a step (the
                // checker says why it cannot come first).
                self.pos -= 1;
                self.step()?
            } else {
                self.step_after(source, false)?
            };
            let mut steps = vec![first];
            while self.eat(&Tok::Arrow) {
                steps.push(self.step()?);
            }
            let end = steps.last().map_or(start, |s| s.span);
            Body::Pattern(PatternSyntax {
                steps,
                span: start.to(end),
            })
        } else {
            Body::Source(source)
        };
        let mut ops = Vec::new();
        while self.eat(&Tok::Dot) {
            ops.push(self.op()?);
        }
        Ok(Stmt::Stream { name, body, ops })
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
                     .window, .aggregate, .having, .emit, .within, .not, .on, .max_runs, \
                     .max_kleene, .max_keys or .context)",
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
                let (ms, span) = self.duration("out_of_order duration")?;
                OpKind::Watermark(ms, span)
            }
            "allowed_lateness" => OpKind::AllowedLateness(self.duration("allowed lateness")?.0),
            "within" => {
                let (ms, span) = self.duration("within")?;
                OpKind::Within(ms, span)
            }
            "not" => {
                let ty = self.ident("an event type or a stream that cancels the pattern's runs")?;
                let mut kleene = false;
                let atom = self.atom_after(ty, &mut kleene)?;
                if kleene || atom.alias.is_some() {
                    return Err(Diagnostic::expected(
                        self.src,
                        atom.alias.as_ref().map_or(name.span, |a| a.span),
                        "X or X where condition (no alias, no `+`)",
                    ));
                }
                OpKind::Not(atom)
            }
            "on" => OpKind::On(self.expr()?),
            "context" => OpKind::Context(self.ident("a context name")?),
            "max_runs" | "max_kleene" | "max_keys" => {
                let t = self.peek().clone();
                let n = match &t.tok {
                    Tok::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
                        text.parse::<u64>().ok().filter(|n| *n > 0)
                    }
                    _ => None,
                };
                let Some(n) = n else {
                    return Err(self.error("a positive whole number"));
                };
                self.bump();
                match name.text.as_str() {
                    "max_runs" => OpKind::MaxRuns(n),
                    "max_kleene" => OpKind::MaxKleene(n),
                    _ => OpKind::MaxKeys(n),
                }
            }
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

    /// A duration literal; `what` names it in an overflow error (`slide`, `session gap`...).
    pub(crate) fn duration(&mut self, what: &str) -> PResult<(i64, Span)> {
        let t = self.peek().clone();
        if let Tok::Number(text) = &t.tok {
            match parse_duration_ms(text) {
                Ok(ms) => {
                    self.bump();
                    return Ok((ms, t.span));
                }
                Err(DurationError::Overflow { max, .. }) => {
                    return Err(overflowing_duration(self.src, t.span, what, &max));
                }
                Err(_) => {}
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
                let (gap_ms, span) = self.duration("session gap")?;
                Ok(OpKind::Window(WindowKind::Session { gap_ms }, span, span))
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
                Ok(OpKind::Window(
                    WindowKind::Count { size: n },
                    t.span,
                    t.span,
                ))
            }
            Tok::Number(text) => {
                let size_ms = match parse_duration_ms(text) {
                    Ok(ms) => ms,
                    Err(DurationError::Overflow { max, .. }) => {
                        return Err(overflowing_duration(self.src, t.span, "window size", &max));
                    }
                    Err(_) => {
                        return Err(self
                            .error(EXPECTED)
                            .with_help("units are ms, s, m, h and d"));
                    }
                };
                self.bump();
                if self.eat(&Tok::Comma) {
                    let key = self.peek().clone();
                    if !matches!(&key.tok, Tok::Ident(s) if s == "sliding") {
                        return Err(self.error("`sliding:` and a duration like 1m"));
                    }
                    self.bump();
                    self.expect(&Tok::Colon, "`:` after sliding")?;
                    let (slide_ms, span) = self.duration("slide")?;
                    return Ok(OpKind::Window(
                        WindowKind::Sliding { size_ms, slide_ms },
                        t.span,
                        span,
                    ));
                }
                Ok(OpKind::Window(
                    WindowKind::Tumbling { size_ms },
                    t.span,
                    t.span,
                ))
            }
            _ => Err(self.error(EXPECTED)),
        }
    }
}

/// `{what} "999999999999d" overflows: the maximum is 106751991167d`.
pub(crate) fn overflowing_duration(src: &str, span: Span, what: &str, max: &str) -> Diagnostic {
    let text = &src[span.start..span.end];
    Diagnostic::new(
        src,
        span,
        format!("{what} {text:?} overflows: the maximum is {max}"),
    )
    .with_expected(format!("a {what} of at most {max}"))
    .with_found(text)
}
