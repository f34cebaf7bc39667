//! Recursive-descent parser: tokens -> syntax tree (names unresolved, nothing checked but
//! syntax and literals).

use varpulis_core::{DurationError, Value, parse_duration_ms};

use crate::MAX_NESTING;
use crate::diagnostic::{Diagnostic, Span, suggest};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::lexer::{Tok, Token, lex};
use crate::plan::{Type, WindowKind};

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

/// A sequence of pattern steps as written.
#[derive(Debug, Clone)]
pub(crate) struct PatternSyntax {
    pub(crate) steps: Vec<StepSyntax>,
    pub(crate) span: Span,
}

impl PatternSyntax {
    pub(crate) fn inputs(&self) -> Vec<&Ident> {
        let mut out: Vec<&Ident> = Vec::new();
        for a in self.steps.iter().flat_map(|s| &s.atoms) {
            if !out.iter().any(|i| i.text == a.ty.text) {
                out.push(&a.ty);
            }
        }
        out
    }
}

/// One step: `NOT X`, `all B`/`B+`, `A OR B`, `A AND B`, or one atom.
#[derive(Debug, Clone)]
pub(crate) struct StepSyntax {
    pub(crate) negated: bool,
    pub(crate) kleene: bool,
    /// `AND` between the atoms (else `OR`, or a single atom).
    pub(crate) all_of: bool,
    pub(crate) atoms: Vec<AtomSyntax>,
    pub(crate) span: Span,
}

/// `Type [where expr] [as alias]`.
#[derive(Debug, Clone)]
pub(crate) struct AtomSyntax {
    pub(crate) ty: Ident,
    pub(crate) filter: Option<Expr>,
    pub(crate) alias: Option<Ident>,
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
}

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
        } else if matches!(self.peek().tok, Tok::Ident(_)) && *self.peek_at(1) == Tok::Walrus {
            let name = self.ident("a variable name")?;
            self.bump();
            let expr = self.expr()?;
            Stmt::Assign { name, expr }
        } else {
            return Err(
                self.error("a statement (event, var, let, stream, pattern or `name := expr`)")
            );
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

    /// After a stream's first name: does a pattern step go on (`as`, `where`, `+`, `OR`,
    /// `AND`) or follow (`->`)?
    fn at_step_continuation(&self) -> bool {
        match &self.peek().tok {
            Tok::Arrow | Tok::Plus => true,
            Tok::Ident(s) => matches!(s.as_str(), "as" | "where" | "OR" | "AND"),
            _ => false,
        }
    }

    /// `pattern P = SEQ(step, ...) [within d] [partition by field]`.
    fn pattern_decl(&mut self) -> PResult<Stmt> {
        let name = self.ident("a pattern name")?;
        self.expect(&Tok::Assign, "`=` and SEQ(...)")?;
        let seq = self.peek().clone();
        if !matches!(&seq.tok, Tok::Ident(s) if s == "SEQ") {
            return Err(self.error("SEQ( and the pattern's steps"));
        }
        self.bump();
        self.expect(&Tok::LParen, "`(` after SEQ")?;
        let mut steps = Vec::new();
        loop {
            steps.push(self.nested(Self::step)?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        let close = self.expect(&Tok::RParen, "`,` and a step, or `)` to close SEQ(")?;
        let mut within = None;
        let mut partition_by = None;
        loop {
            if self.at_keyword("within") && within.is_none() {
                self.bump();
                within = Some(self.duration("within")?);
            } else if self.at_keyword("partition") && partition_by.is_none() {
                self.bump();
                if !self.at_keyword("by") {
                    return Err(self.error("`by` and a field name after partition"));
                }
                self.bump();
                partition_by = Some(self.ident("a field name to partition by")?);
            } else {
                break;
            }
        }
        Ok(Stmt::Pattern {
            name,
            pattern: PatternSyntax {
                steps,
                span: seq.span.to(close),
            },
            within,
            partition_by,
        })
    }

    /// One step: `[NOT] [all] atom [(OR|AND) atom]...`.
    fn step(&mut self) -> PResult<StepSyntax> {
        let start = self.peek().span;
        let negated = if self.at_keyword("NOT") || self.at_keyword("not") {
            self.bump();
            true
        } else {
            false
        };
        let kleene = if self.at_keyword("all") && matches!(self.peek_at(1), Tok::Ident(_)) {
            self.bump();
            true
        } else {
            false
        };
        let ty = self.ident("an event type or a stream (a pattern step)")?;
        let mut step = self.step_after(ty, kleene)?;
        step.negated = negated;
        step.span = start.to(step.span);
        Ok(step)
    }

    /// The rest of a step whose first atom's type `ty` was read.
    fn step_after(&mut self, ty: Ident, kleene: bool) -> PResult<StepSyntax> {
        let start = ty.span;
        let mut kleene = kleene;
        let first = self.atom_after(ty, &mut kleene)?;
        let mut atoms = vec![first];
        let mut all_of = None;
        while self.at_keyword("OR") || self.at_keyword("AND") {
            let and = self.at_keyword("AND");
            if all_of.is_some_and(|a| a != and) {
                return Err(self
                    .error("the same operator between a step's events")
                    .with_help("a step is `A OR B OR ...` or `A AND B AND ...`, not both"));
            }
            all_of = Some(and);
            self.bump();
            let ty = self.ident("an event type after OR/AND")?;
            let mut plus = false;
            atoms.push(self.atom_after(ty, &mut plus)?);
            if plus {
                return Err(self.error("no `+` inside OR/AND: a Kleene step has one event type"));
            }
        }
        let end = self.toks[self.pos.saturating_sub(1)].span;
        Ok(StepSyntax {
            negated: false,
            kleene,
            all_of: all_of.unwrap_or(false),
            atoms,
            span: start.to(end),
        })
    }

    /// `[+] [where expr] [as alias]` after an atom's type; `+` sets `kleene`.
    fn atom_after(&mut self, ty: Ident, kleene: &mut bool) -> PResult<AtomSyntax> {
        if self.eat(&Tok::Plus) {
            *kleene = true;
        }
        let filter = if self.at_keyword("where") {
            self.bump();
            Some(self.expr()?)
        } else {
            None
        };
        let alias = if self.at_keyword("as") {
            self.bump();
            Some(self.ident("an alias after `as`")?)
        } else {
            None
        };
        Ok(AtomSyntax { ty, filter, alias })
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
                     .max_kleene or .max_keys)",
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

    // ---- expressions ----

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

    fn too_deep(&self) -> Diagnostic {
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
