//! Load-time checks: syntax tree -> typed [`Program`], or every semantic error found.

use std::collections::{BTreeMap, HashMap};

use varpulis_core::{Value, format_duration_ms};

use crate::diagnostic::{Diagnostic, Span, line_column, suggest};
use crate::expr::{BinaryOp, Expr, ExprKind, Scope, UnaryOp};
use crate::parser::{Ident, Op, OpKind, Stmt};
use crate::plan::{
    AggFunc, AggregatePlan, Assignment, EmitField, EventDecl, FieldDecl, Program, Source,
    StreamPlan, Type, VarDecl, WindowKind,
};

/// A static type: known, the null literal, or unknown (undeclared event fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Known(Type),
    Null,
    Any,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Known(t) => t.name(),
            Ty::Null => "null",
            Ty::Any => "unknown",
        }
    }
    fn of_value(v: &Value) -> Ty {
        match v {
            Value::Int(_) => Ty::Known(Type::Int),
            Value::Float(_) => Ty::Known(Type::Float),
            Value::Bool(_) => Ty::Known(Type::Bool),
            Value::Str(_) => Ty::Known(Type::Str),
            Value::Timestamp(_) => Ty::Known(Type::Timestamp),
            Value::Duration(_) => Ty::Known(Type::Duration),
            Value::Null => Ty::Null,
            _ => Ty::Any,
        }
    }
    fn is_number(self) -> bool {
        matches!(self, Ty::Known(Type::Int | Type::Float))
    }
    /// Known and not `t`-compatible for conditions.
    fn is_bool_like(self) -> bool {
        matches!(self, Ty::Known(Type::Bool) | Ty::Null | Ty::Any)
    }
}

type Schema = Vec<(String, Ty)>;

#[derive(Debug, Clone)]
struct VarInfo {
    ty: Type,
    mutable: bool,
    span: Span,
}

/// How bare names resolve.
enum Names<'a> {
    /// Variable initializers and assignments: variables declared so far.
    Const,
    /// Per input event: fields of the source (unknown when `None`) and variables.
    Event {
        fields: Option<&'a Schema>,
        source: &'a str,
    },
    /// After `.aggregate`: aliases and partition key, and variables.
    Row {
        columns: &'a Schema,
        input: Option<&'a Schema>,
        clause: &'a str,
    },
}

/// A sliding window that puts each event in more windows than this draws a warning.
pub(crate) const MAX_SLIDING_OVERLAP: i64 = 10_000;

struct Checker<'s> {
    src: &'s str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    vars: BTreeMap<String, VarInfo>,
    /// Every declared variable (also those declared later), for "declared later" hints.
    all_vars: BTreeMap<String, Span>,
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

pub(crate) fn check(src: &str, stmts: Vec<Stmt>) -> Result<Program, Vec<Diagnostic>> {
    let mut c = Checker {
        src,
        errors: Vec::new(),
        warnings: Vec::new(),
        vars: BTreeMap::new(),
        all_vars: BTreeMap::new(),
    };
    let events = c.events(&stmts);
    for s in &stmts {
        if let Stmt::Var { name, .. } = s {
            c.all_vars.entry(name.text.clone()).or_insert(name.span);
        }
    }
    let (variables, assignments) = c.variables(&stmts);
    let streams = c.streams(&stmts, &events);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|d| (d.span.start, d.span.end));
        Ok(Program {
            events,
            variables,
            assignments,
            streams,
            warnings: c.warnings,
        })
    } else {
        c.errors.sort_by_key(|d| (d.span.start, d.span.end));
        Err(c.errors)
    }
}

impl Checker<'_> {
    fn err(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.errors.push(Diagnostic::new(self.src, span, message));
        self.errors.last_mut().unwrap_or_else(|| unreachable!())
    }

    fn at(&self, span: Span) -> String {
        let (l, c) = line_column(self.src, span.start);
        format!("{l}:{c}")
    }

    fn found(&self, span: Span) -> String {
        self.src[span.start..span.end].to_owned()
    }

    // ---- events ----

    fn events(&mut self, stmts: &[Stmt]) -> Vec<EventDecl> {
        let mut out: Vec<EventDecl> = Vec::new();
        for s in stmts {
            let Stmt::Event { name, fields } = s else {
                continue;
            };
            if let Some(first) = out.iter().find(|e| e.name == name.text) {
                let at = self.at(first.span);
                self.err(
                    name.span,
                    format!("event type {:?} is declared twice", name.text),
                )
                .help = Some(format!("first declared at {at}"));
                continue;
            }
            let mut decl = EventDecl {
                name: name.text.clone(),
                fields: Vec::new(),
                span: name.span,
            };
            for (f, ty) in fields {
                if let Some(first) = decl.field(&f.text) {
                    let at = self.at(first.span);
                    self.err(
                        f.span,
                        format!(
                            "field {:?} of event {} is declared twice",
                            f.text, name.text
                        ),
                    )
                    .help = Some(format!("first declared at {at}"));
                    continue;
                }
                decl.fields.push(FieldDecl {
                    name: f.text.clone(),
                    ty: *ty,
                    span: f.span,
                });
            }
            out.push(decl);
        }
        out
    }

    // ---- variables ----

    fn variables(&mut self, stmts: &[Stmt]) -> (Vec<VarDecl>, Vec<Assignment>) {
        let mut decls = Vec::new();
        let mut assigns = Vec::new();
        let mut values: BTreeMap<String, Value> = BTreeMap::new();
        for s in stmts {
            match s {
                Stmt::Var {
                    mutable,
                    name,
                    ty,
                    init,
                } => {
                    if let Some(first) = self.vars.get(&name.text) {
                        let at = self.at(first.span);
                        self.err(
                            name.span,
                            format!("variable {:?} is declared twice", name.text),
                        )
                        .help = Some(format!("first declared at {at}; assign with `:=`"));
                        continue;
                    }
                    let mut init = init.clone();
                    let got = self.infer(&mut init, &Names::Const);
                    let ty = match (ty, got) {
                        (Some((t, _)), got) => {
                            if !self.check_assignable(*t, got, &init, &name.text) {
                                continue;
                            }
                            *t
                        }
                        (None, Ty::Known(t)) => t,
                        (None, _) => {
                            self.err(
                                init.span,
                                format!(
                                    "cannot infer the type of {:?} from {}",
                                    name.text,
                                    self.found(init.span)
                                ),
                            )
                            .help = Some(format!(
                                "write the type: {} {}: float = ...",
                                if *mutable { "var" } else { "let" },
                                name.text
                            ));
                            continue;
                        }
                    };
                    let value = self.constant(&init, ty, &values, &name.text);
                    values.insert(name.text.clone(), value.clone());
                    self.vars.insert(
                        name.text.clone(),
                        VarInfo {
                            ty,
                            mutable: *mutable,
                            span: name.span,
                        },
                    );
                    decls.push(VarDecl {
                        name: name.text.clone(),
                        ty,
                        mutable: *mutable,
                        init,
                        value,
                        span: name.span,
                    });
                }
                Stmt::Assign { name, expr } => {
                    let mut expr = expr.clone();
                    let got = self.infer(&mut expr, &Names::Const);
                    let Some(info) = self.vars.get(&name.text).cloned() else {
                        let msg = format!("assignment to undeclared variable {:?}", name.text);
                        let help = match self.all_vars.get(&name.text) {
                            Some(at) => format!(
                                "{} is declared later, at {}; declare it before assigning",
                                name.text,
                                self.at(*at)
                            ),
                            None => format!("declare it first: var {}: float = ...", name.text),
                        };
                        let d = self.err(name.span, msg);
                        d.expected = Some("a variable declared with var".into());
                        d.found = Some(name.text.clone());
                        d.help = Some(help);
                        continue;
                    };
                    if !info.mutable {
                        let at = self.at(info.span);
                        self.err(
                            name.span,
                            format!(
                                "cannot assign to {:?}: it is declared with let (immutable)",
                                name.text
                            ),
                        )
                        .help = Some(format!("declare it with var at {at} to make it assignable"));
                        continue;
                    }
                    if !self.check_assignable(info.ty, got, &expr, &name.text) {
                        continue;
                    }
                    let value = self.constant(&expr, info.ty, &values, &name.text);
                    values.insert(name.text.clone(), value.clone());
                    assigns.push(Assignment {
                        name: name.text.clone(),
                        expr,
                        value,
                        span: name.span,
                    });
                }
                _ => {}
            }
        }
        (decls, assigns)
    }

    fn check_assignable(&mut self, ty: Type, got: Ty, expr: &Expr, name: &str) -> bool {
        let ok = match got {
            Ty::Null | Ty::Any => true,
            Ty::Known(u) => {
                u == ty
                    || (u == Type::Int
                        && matches!(ty, Type::Float | Type::Timestamp | Type::Duration))
            }
        };
        if !ok {
            let d = self.err(
                expr.span,
                format!(
                    "type mismatch: {name:?} is {ty} but the value is {}",
                    got.describe()
                ),
            );
            d.expected = Some(format!("a {ty} value"));
            d.found = Some(got.describe().to_owned());
        }
        ok
    }

    fn constant(
        &mut self,
        expr: &Expr,
        ty: Type,
        values: &BTreeMap<String, Value>,
        name: &str,
    ) -> Value {
        let v = expr.eval(&Scope::empty().with_variables(values));
        match ty.coerce(v) {
            Ok(v) => v,
            Err(v) => {
                let shown = v.to_string();
                self.err(
                    expr.span,
                    format!("value {shown} does not fit {name:?} of type {ty}"),
                );
                Value::Null
            }
        }
    }

    // ---- name resolution and types ----

    fn infer(&mut self, e: &mut Expr, names: &Names<'_>) -> Ty {
        let span = e.span;
        match &mut e.kind {
            ExprKind::Literal(v) => Ty::of_value(v),
            ExprKind::Field(_) | ExprKind::Variable(_) | ExprKind::Alias(_) => Ty::Any,
            ExprKind::Name(n) => {
                let n = n.clone();
                let (kind, ty) = self.resolve(&n, span, names);
                e.kind = kind;
                ty
            }
            ExprKind::Call {
                func,
                func_span,
                args,
            } => {
                let (func, func_span) = (func.clone(), *func_span);
                for a in args.iter_mut() {
                    self.infer(a, names);
                }
                self.bad_call(&func, func_span, false);
                Ty::Any
            }
            ExprKind::Unary { op, operand } => {
                let op = *op;
                let t = self.infer(operand, names);
                match op {
                    UnaryOp::Not => {
                        if !t.is_bool_like() {
                            self.operand_error("not", "a bool", t, operand.span);
                        }
                        Ty::Known(Type::Bool)
                    }
                    UnaryOp::Neg => match t {
                        Ty::Known(Type::Int | Type::Float | Type::Duration)
                        | Ty::Null
                        | Ty::Any => t,
                        _ => {
                            self.operand_error("-", "a number or a duration", t, operand.span);
                            Ty::Any
                        }
                    },
                }
            }
            ExprKind::Binary { .. } => {
                // A chain is checked in a loop along its left spine, not by recursion.
                let mut nodes = e.detach_spine();
                let mut a = self.infer(e, names);
                let mut lhs_span = e.span;
                for (op, rhs, node_span) in &mut nodes {
                    let b = self.infer(rhs, names);
                    a = self.binary_type(*op, (a, lhs_span), (b, rhs.span), *node_span);
                    lhs_span = *node_span;
                }
                e.attach_spine(nodes);
                a
            }
        }
    }

    /// The static type of `lhs op rhs`, reporting operands that do not fit.
    fn binary_type(&mut self, op: BinaryOp, lhs: (Ty, Span), rhs: (Ty, Span), span: Span) -> Ty {
        let ((a, lhs_span), (b, rhs_span)) = (lhs, rhs);
        match op {
            BinaryOp::And | BinaryOp::Or => {
                for (t, s) in [(a, lhs_span), (b, rhs_span)] {
                    if !t.is_bool_like() {
                        self.operand_error(op.symbol(), "a bool", t, s);
                    }
                }
                Ty::Known(Type::Bool)
            }
            op if op.is_comparison() => {
                let class = |t: Ty| match t {
                    Ty::Known(Type::Int | Type::Float) => Some(Type::Float),
                    Ty::Known(t) => Some(t),
                    _ => None,
                };
                if let (Some(x), Some(y)) = (class(a), class(b))
                    && x != y
                {
                    let d = self.err(
                        span,
                        format!(
                            "cannot compare {} with {} using {:?}",
                            a.describe(),
                            b.describe(),
                            op.symbol()
                        ),
                    );
                    d.expected = Some(format!("a {} on the right", a.describe()));
                    d.found = Some(b.describe().to_owned());
                    d.help =
                        Some("values of different types are never equal and do not order".into());
                }
                Ty::Known(Type::Bool)
            }
            op => match arithmetic(op, a, b) {
                Some(t) => t,
                None => {
                    let d = self.err(
                        span,
                        format!(
                            "cannot apply {:?} to {} and {}",
                            op.symbol(),
                            a.describe(),
                            b.describe()
                        ),
                    );
                    d.expected = Some("numbers (or str + str, durations)".into());
                    d.found = Some(format!("{} and {}", a.describe(), b.describe()));
                    Ty::Any
                }
            },
        }
    }

    fn operand_error(&mut self, op: &str, expected: &str, t: Ty, span: Span) {
        let d = self.err(
            span,
            format!(
                "{op:?} needs {expected} operand, found {} {:?}",
                t.describe(),
                &self.src[span.start..span.end]
            ),
        );
        d.expected = Some(expected.to_owned());
        d.found = Some(t.describe().to_owned());
    }

    fn bad_call(&mut self, func: &str, span: Span, nested: bool) {
        if let Some(f) = AggFunc::from_name(func) {
            if nested {
                self.err(
                    span,
                    format!("aggregate functions cannot be nested: {f}(...) inside an aggregate"),
                );
            } else {
                self.err(
                    span,
                    format!("aggregate function {f} is only allowed inside .aggregate(...)"),
                )
                .help = Some(
                    "aggregate in .aggregate(alias: f(x)) and refer to the alias in .having or .emit"
                        .into(),
                );
            }
        } else {
            self.unknown_function(func, span);
        }
    }

    fn unknown_function(&mut self, func: &str, span: Span) {
        let names = AggFunc::ALL.map(AggFunc::name);
        let expected = format!("one of {}", names.join(", "));
        let help = suggest(func, names);
        let d = self.err(
            span,
            format!("unknown function {func:?}: expected {expected}"),
        );
        d.expected = Some(expected);
        d.found = Some(func.to_owned());
        d.help = help;
    }

    fn resolve(&mut self, n: &str, span: Span, names: &Names<'_>) -> (ExprKind, Ty) {
        let var = self.vars.get(n).map(|v| Ty::Known(v.ty));
        let unresolved = (ExprKind::Name(n.to_owned()), Ty::Any);
        match names {
            Names::Const => {
                if let Some(t) = var {
                    return (ExprKind::Variable(n.to_owned()), t);
                }
                let expected = "a variable declared before this point".to_owned();
                let help = match self.all_vars.get(n) {
                    Some(at) => Some(format!("{n} is declared later, at {}", self.at(*at))),
                    None => suggest(n, self.vars.keys().map(String::as_str)),
                };
                let d = self.err(span, format!("unknown variable {n:?}: expected {expected}"));
                d.expected = Some(expected);
                d.found = Some(n.to_owned());
                d.help = help;
                unresolved
            }
            Names::Event { fields, source } => {
                let field = fields.map(|fs| fs.iter().find(|(f, _)| f == n).map(|(_, t)| *t));
                match (var, field) {
                    (Some(_), Some(Some(_))) => {
                        self.err(
                            span,
                            format!("{n:?} is both a variable and a field of {source}"),
                        )
                        .help = Some("rename the variable".into());
                        unresolved
                    }
                    (Some(t), _) => (ExprKind::Variable(n.to_owned()), t),
                    (None, Some(Some(t))) => (ExprKind::Field(n.to_owned()), t),
                    (None, None) => (ExprKind::Field(n.to_owned()), Ty::Any),
                    (None, Some(None)) => {
                        let fs = fields.map(|f| f.as_slice()).unwrap_or_default();
                        let expected = format!(
                            "a field of {source} ({}) or a variable",
                            list(fs.iter().map(|(f, _)| f))
                        );
                        let help = suggest(
                            n,
                            fs.iter()
                                .map(|(f, _)| f.as_str())
                                .chain(self.vars.keys().map(String::as_str)),
                        );
                        let d = self.err(span, format!("unknown field {n:?}: expected {expected}"));
                        d.expected = Some(expected);
                        d.found = Some(n.to_owned());
                        d.help = help;
                        unresolved
                    }
                }
            }
            Names::Row {
                columns,
                input,
                clause,
            } => {
                if let Some((_, t)) = columns.iter().find(|(c, _)| c == n) {
                    return (ExprKind::Alias(n.to_owned()), *t);
                }
                if let Some(t) = var {
                    return (ExprKind::Variable(n.to_owned()), t);
                }
                let expected = format!(
                    "an aggregate alias or the partition key ({}) or a variable",
                    list(columns.iter().map(|(c, _)| c))
                );
                let is_input = input.is_none_or(|fs| fs.iter().any(|(f, _)| f == n));
                let help = if is_input {
                    Some(format!(
                        "input fields are not available after .aggregate; aggregate it, \
                         e.g. {n}: last({n})"
                    ))
                } else {
                    suggest(n, columns.iter().map(|(c, _)| c.as_str()))
                };
                let d = self.err(
                    span,
                    format!("unknown name {n:?} in .{clause}: expected {expected}"),
                );
                d.expected = Some(expected);
                d.found = Some(n.to_owned());
                d.help = help;
                unresolved
            }
        }
    }

    // ---- streams ----

    fn streams(&mut self, stmts: &[Stmt], events: &[EventDecl]) -> Vec<StreamPlan> {
        struct Def<'a> {
            name: &'a Ident,
            source: &'a Ident,
            ops: &'a [Op],
        }
        let mut defs: Vec<Def<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for s in stmts {
            let Stmt::Stream { name, source, ops } = s else {
                continue;
            };
            if let Some(&i) = index.get(name.text.as_str()) {
                let at = self.at(defs[i].name.span);
                self.err(
                    name.span,
                    format!("stream {:?} is defined twice", name.text),
                )
                .help = Some(format!("first defined at {at}"));
                continue;
            }
            if let Some(e) = events.iter().find(|e| e.name == name.text) {
                let at = self.at(e.span);
                self.err(
                    name.span,
                    format!(
                        "stream {:?} has the name of the event type declared at {at}",
                        name.text
                    ),
                )
                .help = Some("streams and event types share one namespace".into());
                continue;
            }
            index.insert(&name.text, defs.len());
            defs.push(Def {
                name,
                source,
                ops: ops.as_slice(),
            });
        }

        // Resolve sources.
        let mut sources: Vec<Option<Source>> = Vec::with_capacity(defs.len());
        for d in &defs {
            let src = &d.source.text;
            let resolved = if index.contains_key(src.as_str()) {
                Some(Source::Stream(src.clone()))
            } else if events.is_empty() || events.iter().any(|e| &e.name == src) {
                Some(Source::Event(src.clone()))
            } else {
                let expected = format!(
                    "a declared event type ({}) or a stream ({})",
                    list(events.iter().map(|e| &e.name)),
                    list(defs.iter().map(|d| &d.name.text))
                );
                let help = suggest(
                    src,
                    events
                        .iter()
                        .map(|e| e.name.as_str())
                        .chain(defs.iter().map(|d| d.name.text.as_str())),
                );
                let e = self.err(
                    d.source.span,
                    format!("unknown source {src:?}: expected {expected}"),
                );
                e.expected = Some(expected);
                e.found = Some(src.clone());
                e.help = help.or_else(|| {
                    Some("declare it (event Name: field: type) or define a stream".into())
                });
                None
            };
            sources.push(resolved);
        }

        // Dependency order (each stream reads at most one stream, so chains and cycles only).
        let mut order = Vec::with_capacity(defs.len());
        let mut state = vec![0u8; defs.len()]; // 0 new, 1 in progress, 2 done
        for start in 0..defs.len() {
            let mut chain = Vec::new();
            let mut i = start;
            loop {
                if state[i] == 2 {
                    break;
                }
                if state[i] == 1 {
                    // Cycle: report it on the stream that closes it.
                    let pos = chain.iter().position(|&c| c == i).unwrap_or(0);
                    let names: Vec<&str> = chain[pos..]
                        .iter()
                        .chain(std::iter::once(&i))
                        .map(|&c| defs[c].name.text.as_str())
                        .collect();
                    let last = chain.last().copied().unwrap_or(i);
                    self.err(
                        defs[last].source.span,
                        format!(
                            "stream {:?} reads from itself: {}",
                            defs[last].name.text,
                            names.join(" -> ")
                        ),
                    );
                    for &c in &chain[pos..] {
                        sources[c] = None;
                    }
                    break;
                }
                state[i] = 1;
                chain.push(i);
                match &sources[i] {
                    Some(Source::Stream(s)) => i = index[s.as_str()],
                    _ => break,
                }
            }
            for &c in chain.iter().rev() {
                if state[c] != 2 {
                    state[c] = 2;
                    order.push(c);
                }
            }
        }

        // Check each stream, upstream first, so downstream sees upstream output schemas.
        let mut schemas: HashMap<String, Option<Schema>> = HashMap::new();
        let mut watermarks: HashMap<String, (i64, Span)> = HashMap::new();
        let mut plans: Vec<StreamPlan> = Vec::new();
        for &i in &order {
            let d = &defs[i];
            let Some(source) = sources[i].clone() else {
                schemas.insert(d.name.text.clone(), None);
                continue;
            };
            let (input, source_desc) = match &source {
                Source::Event(n) => (
                    events.iter().find(|e| &e.name == n).map(|e| {
                        e.fields
                            .iter()
                            .map(|f| (f.name.clone(), Ty::Known(f.ty)))
                            .collect::<Schema>()
                    }),
                    format!("event {n}"),
                ),
                Source::Stream(n) => (schemas.get(n).cloned().flatten(), format!("stream {n}")),
            };
            let (plan, out) = self.stream(
                d.name,
                source,
                input.as_ref(),
                &source_desc,
                d.ops,
                &mut watermarks,
            );
            schemas.insert(d.name.text.clone(), out);
            plans.push(plan);
        }
        plans
    }

    #[allow(clippy::too_many_lines)]
    fn stream(
        &mut self,
        name: &Ident,
        source: Source,
        input: Option<&Schema>,
        source_desc: &str,
        ops: &[Op],
        watermarks: &mut HashMap<String, (i64, Span)>,
    ) -> (StreamPlan, Option<Schema>) {
        let mut plan = StreamPlan {
            name: name.text.clone(),
            source,
            filter: None,
            partition_by: None,
            watermark_out_of_order_ms: None,
            allowed_lateness_ms: None,
            window: None,
            aggregates: Vec::new(),
            having: None,
            emit: None,
            span: name.span,
        };

        // Order and duplicates.
        let rank = |k: &OpKind| match k {
            OpKind::Aggregate(_) => 1,
            OpKind::Having(_) => 2,
            OpKind::Emit(_) => 3,
            _ => 0,
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut latest: Option<(&Op, u8)> = None;
        let mut ok_ops: Vec<&Op> = Vec::new();
        for op in ops {
            let n = op.name.text.as_str();
            if let Some(first) = seen.get(n) {
                let at = self.at(*first);
                let help = match n {
                    "where" | "having" => "combine the conditions with `and`".to_owned(),
                    _ => format!("the first .{n} is at {at}"),
                };
                self.err(
                    op.name.span,
                    format!("duplicate .{n}: each operation may appear once per stream"),
                )
                .help = Some(help);
                continue;
            }
            seen.insert(n, op.name.span);
            let r = rank(&op.kind);
            if let Some((prev, pr)) = latest
                && r < pr
            {
                let p = prev.name.text.as_str();
                let msg = match (n, p) {
                    ("where", "aggregate" | "having") => format!(
                        ".where must come before .{p}: it filters input events \
                         (use .having to filter aggregated rows)"
                    ),
                    _ => format!(".{n} must come before .{p}"),
                };
                let d = self.err(op.name.span, msg);
                d.help = Some(
                    "order: .where/.partition_by/.watermark/.allowed_lateness/.window, then \
                     .aggregate, .having, .emit"
                        .into(),
                );
                continue;
            }
            if latest.is_none_or(|(_, pr)| r >= pr) {
                latest = Some((op, r));
            }
            ok_ops.push(op);
        }
        let window_op = ok_ops.iter().find(|o| matches!(o.kind, OpKind::Window(..)));
        let agg_op = ok_ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::Aggregate(_)));
        match (window_op, agg_op) {
            (Some(w), None) => {
                self.err(
                    w.name.span,
                    ".window needs an .aggregate(...) to say what each window outputs",
                )
                .help = Some("add e.g. .aggregate(n: count())".into());
            }
            (None, Some(a)) => {
                self.err(a.name.span, ".aggregate needs a .window(...) before it")
                    .help = Some("add e.g. .window(1m) or .window(100)".into());
            }
            _ => {}
        }

        let event_names = Names::Event {
            fields: input,
            source: source_desc,
        };
        let mut partition_ty = Ty::Any;
        // Input-side operations first.
        for op in &ok_ops {
            match &op.kind {
                OpKind::Where(e) => {
                    let mut e = e.clone();
                    let t = self.infer(&mut e, &event_names);
                    self.condition(".where", t, &e);
                    plan.filter = Some(e);
                }
                OpKind::PartitionBy(f) => {
                    match input.map(|fs| fs.iter().find(|(n, _)| *n == f.text)) {
                        Some(Some((_, t))) => partition_ty = *t,
                        None => {}
                        Some(None) => {
                            let fs = input.map(|f| f.as_slice()).unwrap_or_default();
                            let expected = format!(
                                "a field of {source_desc} ({})",
                                list(fs.iter().map(|(f, _)| f))
                            );
                            let help = suggest(&f.text, fs.iter().map(|(f, _)| f.as_str()));
                            let d = self.err(
                                f.span,
                                format!("unknown field {:?}: expected {expected}", f.text),
                            );
                            d.expected = Some(expected);
                            d.found = Some(f.text.clone());
                            d.help = help;
                        }
                    }
                    plan.partition_by = Some(f.text.clone());
                }
                OpKind::Watermark(ms, span) => {
                    plan.watermark_out_of_order_ms = Some(*ms);
                    if let Source::Event(ev) = &plan.source {
                        if let Some((other, at)) = watermarks.get(ev).copied() {
                            if other != *ms {
                                let at = self.at(at);
                                self.err(
                                    *span,
                                    format!(
                                        "conflicting watermark for {ev}: out_of_order {} here \
                                         but {} at {at}",
                                        format_duration_ms(*ms),
                                        format_duration_ms(other)
                                    ),
                                )
                                .help = Some(
                                    "the watermark belongs to the event type; declare one value"
                                        .into(),
                                );
                            }
                        } else {
                            watermarks.insert(ev.clone(), (*ms, *span));
                        }
                    }
                }
                OpKind::AllowedLateness(ms) => plan.allowed_lateness_ms = Some(*ms),
                OpKind::Window(w, size_span, slide_span) => {
                    self.window(*w, *size_span, *slide_span);
                    plan.window = Some(*w);
                }
                _ => {}
            }
        }
        if let Some(op) = ok_ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::PartitionBy(_)))
            && plan.window.is_none()
        {
            self.err(
                op.name.span,
                ".partition_by needs a .window(...): partitions only group windowed aggregates",
            );
        }
        if let Some(op) = ok_ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::AllowedLateness(..)))
            && !plan.window.is_some_and(|w| w.is_time_based())
        {
            let what = if plan.window.is_some() {
                "a count window"
            } else {
                "no window"
            };
            self.err(
                op.name.span,
                format!(".allowed_lateness needs a time window, but this stream has {what}"),
            );
        }

        // Aggregates.
        let mut columns: Schema = Vec::new();
        if let Some(p) = &plan.partition_by {
            columns.push((p.clone(), partition_ty));
        }
        for op in &ok_ops {
            let OpKind::Aggregate(items) = &op.kind else {
                continue;
            };
            for (alias, e) in items {
                if plan.aggregates.iter().any(|a| a.alias == alias.text) {
                    self.err(
                        alias.span,
                        format!("duplicate aggregate alias {:?}", alias.text),
                    )
                    .help = Some("each output field needs its own name".into());
                    continue;
                }
                if let Some((agg, t)) = self.aggregate(alias, e, &event_names) {
                    columns.retain(|(c, _)| *c != alias.text);
                    columns.push((alias.text.clone(), t));
                    plan.aggregates.push(agg);
                }
            }
        }

        // Output side.
        let row_input = input;
        for op in &ok_ops {
            match &op.kind {
                OpKind::Having(e) => {
                    if agg_op.is_none() {
                        self.err(
                            op.name.span,
                            ".having filters aggregated rows and needs an .aggregate(...) before it",
                        )
                        .help = Some("use .where to filter input events".into());
                        continue;
                    }
                    let mut e = e.clone();
                    let names = Names::Row {
                        columns: &columns,
                        input: row_input,
                        clause: "having",
                    };
                    let t = self.infer(&mut e, &names);
                    self.condition(".having", t, &e);
                    plan.having = Some(e);
                }
                OpKind::Emit(items) => {
                    let mut out = Vec::new();
                    for (n, e) in items {
                        if out.iter().any(|f: &EmitField| f.name == n.text) {
                            self.err(n.span, format!("duplicate output field {:?}", n.text));
                            continue;
                        }
                        let mut e = e.clone();
                        if plan.aggregates.is_empty() && agg_op.is_none() {
                            self.infer(&mut e, &event_names);
                        } else {
                            let names = Names::Row {
                                columns: &columns,
                                input: row_input,
                                clause: "emit",
                            };
                            self.infer(&mut e, &names);
                        }
                        out.push(EmitField {
                            name: n.text.clone(),
                            expr: e,
                            span: n.span,
                        });
                    }
                    plan.emit = Some(out);
                }
                _ => {}
            }
        }

        let schema = if let Some(emit) = &plan.emit {
            let mut s = Schema::new();
            for f in emit {
                s.push((f.name.clone(), self.static_type(&f.expr, input, &columns)));
            }
            Some(s)
        } else if agg_op.is_some() {
            Some(columns)
        } else {
            input.cloned()
        };
        (plan, schema)
    }

    /// Type of an already resolved expression (no diagnostics).
    fn static_type(&mut self, e: &Expr, input: Option<&Schema>, columns: &Schema) -> Ty {
        let saved = std::mem::take(&mut self.errors);
        let mut e = e.clone();
        // Resolved names carry no type; re-derive them from the schemas.
        e.walk_mut(&mut |e| {
            if let ExprKind::Field(n) | ExprKind::Alias(n) | ExprKind::Variable(n) = &mut e.kind {
                e.kind = ExprKind::Name(std::mem::take(n));
            }
        });
        let t = if columns.is_empty() {
            self.infer(
                &mut e,
                &Names::Event {
                    fields: input,
                    source: "",
                },
            )
        } else {
            self.infer(
                &mut e,
                &Names::Row {
                    columns,
                    input,
                    clause: "emit",
                },
            )
        };
        self.errors = saved;
        t
    }

    fn condition(&mut self, clause: &str, t: Ty, e: &Expr) {
        // Arithmetic never yields a bool, even over fields of unknown type.
        let arithmetic = match &e.kind {
            ExprKind::Binary { op, .. } => op.is_arithmetic(),
            ExprKind::Unary { op, .. } => *op == UnaryOp::Neg,
            _ => false,
        };
        let (bad, desc) = if arithmetic && t == Ty::Any {
            (true, "arithmetic")
        } else {
            (!t.is_bool_like(), t.describe())
        };
        if bad {
            let found = self.found(e.span);
            let d = self.err(
                e.span,
                format!(
                    "{clause} needs a bool condition, found {} expression {found:?}",
                    desc
                ),
            );
            d.expected = Some("a bool condition".into());
            d.found = Some(found);
            d.help = Some("compare it, e.g. value > 10".into());
        }
    }

    fn window(&mut self, w: WindowKind, size_span: Span, slide_span: Span) {
        let positive = |c: &mut Self, v: i64, span: Span, what: &str| {
            if v <= 0 {
                let found = c.found(span);
                let d = c.err(span, format!("{what} must be positive, found {found:?}"));
                d.expected = Some(format!("a positive {what}"));
                d.found = Some(found);
                false
            } else {
                true
            }
        };
        match w {
            WindowKind::Tumbling { size_ms } => {
                positive(self, size_ms, size_span, "window size");
            }
            WindowKind::Sliding { size_ms, slide_ms } => {
                let a = positive(self, size_ms, size_span, "window size");
                let b = positive(self, slide_ms, slide_span, "slide");
                if a && b && slide_ms > size_ms {
                    let found = self.found(slide_span);
                    let size = format_duration_ms(size_ms);
                    let d = self.err(
                        slide_span,
                        format!("slide {found} is longer than the window size {size}"),
                    );
                    d.expected = Some(format!("a slide of at most {size}"));
                    d.found = Some(found);
                    d.help = Some("events between windows would be skipped".into());
                } else if a && b && div_ceil(size_ms, slide_ms) > MAX_SLIDING_OVERLAP {
                    self.sliding_overlap_warning(size_ms, slide_ms, slide_span);
                }
            }
            WindowKind::Session { gap_ms } => {
                positive(self, gap_ms, size_span, "session gap");
            }
            WindowKind::Count { size } => {
                positive(self, i64::from(size != 0), size_span, "event count");
            }
        }
    }

    /// Each event of `.window(size, sliding: slide)` belongs to `ceil(size / slide)` windows:
    /// that many accumulator updates per event, and open windows per partition.
    fn sliding_overlap_warning(&mut self, size_ms: i64, slide_ms: i64, slide_span: Span) {
        let overlap = div_ceil(size_ms, slide_ms);
        let (size, slide) = (format_duration_ms(size_ms), format_duration_ms(slide_ms));
        let min_slide = format_duration_ms(div_ceil(size_ms, MAX_SLIDING_OVERLAP));
        let mut d = Diagnostic::new(
            self.src,
            slide_span,
            format!(
                "sliding window of {size} every {slide} puts each event in {overlap} windows: \
                 every event updates them all and each partition keeps them all open"
            ),
        );
        d.expected = Some(format!(
            "at most {MAX_SLIDING_OVERLAP} windows per event (a slide of at least {min_slide})"
        ));
        d.found = Some(self.found(slide_span));
        d.help = Some(format!(
            "use a slide of at least {min_slide}, or a tumbling window .window({size})"
        ));
        self.warnings.push(d);
    }

    fn aggregate(
        &mut self,
        alias: &Ident,
        e: &Expr,
        names: &Names<'_>,
    ) -> Option<(AggregatePlan, Ty)> {
        let ExprKind::Call {
            func,
            func_span,
            args,
        } = &e.kind
        else {
            let found = self.found(e.span);
            let d = self.err(
                e.span,
                format!("expected an aggregate function call like avg(value), found {found:?}"),
            );
            d.expected = Some("an aggregate function call like avg(value)".into());
            d.found = Some(found);
            d.help = Some("compute with aggregates in .emit(...) instead".into());
            return None;
        };
        let Some(f) = AggFunc::from_name(func) else {
            self.unknown_function(func, *func_span);
            return None;
        };
        let mut args = args.clone();
        let arity_ok = match f {
            AggFunc::Count => args.len() <= 1,
            _ => args.len() == 1,
        };
        if !arity_ok {
            let expected = if f == AggFunc::Count {
                "count() or count(expr)".to_owned()
            } else {
                format!("exactly one argument: {f}(expr)")
            };
            let d = self.err(
                e.span,
                format!("{f} takes {expected}, found {} arguments", args.len()),
            );
            d.expected = Some(expected);
            d.found = Some(args.len().to_string());
            return None;
        }
        let arg_ty = match args.first_mut() {
            Some(a) => {
                // Nested calls are reported as nested, then typed as unknown.
                let mut nested = Vec::new();
                a.walk(&mut |x| {
                    if let ExprKind::Call {
                        func, func_span, ..
                    } = &x.kind
                    {
                        nested.push((func.clone(), *func_span));
                    }
                });
                if !nested.is_empty() {
                    for (func, span) in nested {
                        self.bad_call(&func, span, true);
                    }
                    return None;
                }
                self.infer(a, names)
            }
            None => Ty::Any,
        };
        if f.needs_number() && !matches!(arg_ty, Ty::Any | Ty::Null) && !arg_ty.is_number() {
            let arg = &args[0];
            let found = self.found(arg.span);
            let d = self.err(
                arg.span,
                format!(
                    "{f} needs an int or float input, found {} {found:?}",
                    arg_ty.describe()
                ),
            );
            d.expected = Some("an int or float input".into());
            d.found = Some(arg_ty.describe().to_owned());
        }
        let out = match f {
            AggFunc::Count | AggFunc::CountDistinct => Ty::Known(Type::Int),
            AggFunc::Avg | AggFunc::StdDev => Ty::Known(Type::Float),
            AggFunc::Sum => match arg_ty {
                Ty::Known(Type::Int) => Ty::Known(Type::Int),
                Ty::Known(_) => Ty::Known(Type::Float),
                other => other,
            },
            _ => arg_ty,
        };
        Some((
            AggregatePlan {
                alias: alias.text.clone(),
                func: f,
                arg: args.into_iter().next(),
                span: alias.span,
            },
            out,
        ))
    }
}

/// `ceil(a / b)` for positive `a` and `b`.
fn div_ceil(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// Static result type of `a op b` for arithmetic, `None` when no rule applies.
fn arithmetic(op: BinaryOp, a: Ty, b: Ty) -> Option<Ty> {
    use BinaryOp as B;
    use Type as T;
    let (x, y) = match (a, b) {
        (Ty::Any, _) | (_, Ty::Any) => return Some(Ty::Any),
        (Ty::Null, _) | (_, Ty::Null) => return Some(Ty::Null),
        (Ty::Known(x), Ty::Known(y)) => (x, y),
    };
    let t = match (x, y, op) {
        (T::Int, T::Int, B::Div) => T::Float,
        (T::Int, T::Int, _) => T::Int,
        (T::Int | T::Float, T::Int | T::Float, _) => T::Float,
        (T::Str, T::Str, B::Add) => T::Str,
        (T::Duration, T::Duration, B::Add | B::Sub)
        | (T::Timestamp, T::Timestamp, B::Sub)
        | (T::Duration, T::Int, B::Mul)
        | (T::Int, T::Duration, B::Mul) => T::Duration,
        (T::Timestamp, T::Duration, B::Add | B::Sub) | (T::Duration, T::Timestamp, B::Add) => {
            T::Timestamp
        }
        _ => return None,
    };
    Some(Ty::Known(t))
}
