//! Static types and name resolution: `Ty`, how bare names resolve (`Names`), type inference
//! for expressions with its operand and function-call errors, and the bool rule of conditions.

use varpulis_core::Value;

use super::{Checker, list};
use crate::capture::CaptureFunc;
use crate::diagnostic::{Span, suggest};
use crate::expr::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::plan::{AggFunc, Type};

/// A static type: known, the null literal, or unknown (undeclared event fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Known(Type),
    Null,
    Any,
}

impl Ty {
    /// The type as messages name it: `int`, ..., `null` or `unknown`.
    pub(super) fn describe(self) -> &'static str {
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
    pub(super) fn is_number(self) -> bool {
        matches!(self, Ty::Known(Type::Int | Type::Float))
    }
    /// May be a bool (bool, null or unknown): what a condition and `and`/`or`/`not` accept.
    fn is_bool_like(self) -> bool {
        matches!(self, Ty::Known(Type::Bool) | Ty::Null | Ty::Any)
    }
}

/// Named fields with their static types: a source's fields, or an aggregated row's columns.
pub(super) type Schema = Vec<(String, Ty)>;

/// How bare names resolve.
pub(super) enum Names<'a> {
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
    /// A pattern's or a join's expressions: `alias.field` over `aliases`; bare names are the
    /// current event's fields and variables in a step's condition (`event`), else variables
    /// and the partition key; capture functions (`len(b)`) when `captures`.
    Pattern {
        event: Option<(Option<&'a Schema>, &'a str)>,
        aliases: &'a [AliasInfo],
        key: Option<&'a (String, Ty)>,
        captures: bool,
        clause: &'a str,
    },
}

/// A pattern alias (or a join input) and the fields its events have.
#[derive(Debug, Clone)]
pub(super) struct AliasInfo {
    pub(super) name: String,
    /// `None`: unknown (an undeclared event type).
    pub(super) fields: Option<Schema>,
    pub(super) desc: String,
}

impl Checker<'_> {
    /// The static type of `e`, resolving its bare names as `names` says and reporting every
    /// type error in it.
    pub(super) fn infer(&mut self, e: &mut Expr, names: &Names<'_>) -> Ty {
        let span = e.span;
        match &mut e.kind {
            ExprKind::Literal(v) => Ty::of_value(v),
            ExprKind::Field(_)
            | ExprKind::Variable(_)
            | ExprKind::Alias(_)
            | ExprKind::Capture { .. } => Ty::Any,
            ExprKind::Member { alias, field } => {
                let (alias, field) = (alias.clone(), field.clone());
                self.member(&alias, &field, span, names)
            }
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
                if let Names::Pattern { captures: true, .. } = names
                    && let Some(capture) = CaptureFunc::from_name(&func)
                {
                    let args = std::mem::take(args);
                    let (kind, ty) = self.capture(capture, &func, func_span, args, names);
                    e.kind = kind;
                    return ty;
                }
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

    /// `alias.field`: the field's type, or the error for an unknown alias or field.
    fn member(&mut self, alias: &str, field: &str, span: Span, names: &Names<'_>) -> Ty {
        let Names::Pattern {
            aliases, clause, ..
        } = names
        else {
            self.err(
                span,
                format!(
                    "{alias}.{field}: `.` reads a field of a pattern alias or a join input, \
                     and this stream has neither"
                ),
            )
            .help = Some("name the field alone: it is the input event's".into());
            return Ty::Any;
        };
        let Some(a) = aliases.iter().find(|a| a.name == alias) else {
            let expected = format!(
                "an alias defined by an earlier step, or a join input ({})",
                list(aliases.iter().map(|a| &a.name))
            );
            let help = suggest(alias, aliases.iter().map(|a| a.name.as_str())).or_else(|| {
                Some("give a step an alias with `as`: A as a -> B where x == a.x".into())
            });
            self.expected_err(
                span,
                format!("unknown alias {alias:?} in {clause}: expected {expected}"),
                expected,
                alias,
                help,
            );
            return Ty::Any;
        };
        match &a.fields {
            None => Ty::Any,
            Some(fs) => match fs.iter().find(|(f, _)| f == field) {
                Some((_, t)) => *t,
                None => {
                    let expected = format!(
                        "a field of {} ({})",
                        a.desc,
                        list(fs.iter().map(|(f, _)| f))
                    );
                    let help = suggest(field, fs.iter().map(|(f, _)| f.as_str()));
                    self.expected_err(
                        span,
                        format!("unknown field {field:?} of {alias}: expected {expected}"),
                        expected,
                        field,
                        help,
                    );
                    Ty::Any
                }
            },
        }
    }

    /// `len(b)`, `sum(b.v)`, ...: the checked [`ExprKind::Capture`] and its type.
    fn capture(
        &mut self,
        func: CaptureFunc,
        name: &str,
        span: Span,
        mut args: Vec<Expr>,
        names: &Names<'_>,
    ) -> (ExprKind, Ty) {
        let bad = (ExprKind::Literal(Value::Null), Ty::Any);
        let arg = match args.len() {
            1 => args.pop().unwrap_or_else(Expr::placeholder),
            _ => {
                let example = if func.reads_field() {
                    format!("{name}(b.value)")
                } else {
                    format!("{name}(b)")
                };
                self.err(span, format!("{name} takes one argument, like {example}"));
                return bad;
            }
        };
        let Names::Pattern { aliases, .. } = names else {
            return bad;
        };
        let known = |alias: &str| aliases.iter().any(|a| a.name == alias);
        match (&arg.kind, func.reads_field()) {
            (ExprKind::Name(alias), false) if known(alias) => (
                ExprKind::Capture {
                    func,
                    alias: alias.clone(),
                    field: None,
                },
                Ty::Known(Type::Int),
            ),
            (ExprKind::Member { alias, field }, true) if known(alias) => {
                let t = self.member(alias, field, arg.span, names);
                let ty = match func {
                    CaptureFunc::Len => Ty::Known(Type::Int),
                    CaptureFunc::Avg => Ty::Known(Type::Float),
                    CaptureFunc::Sum if !t.is_number() => Ty::Any,
                    _ => t,
                };
                (
                    ExprKind::Capture {
                        func,
                        alias: alias.clone(),
                        field: Some(field.clone()),
                    },
                    ty,
                )
            }
            _ => {
                let expected = if func.reads_field() {
                    format!("{name}(alias.field) over a pattern alias")
                } else {
                    format!("{name}(alias) over a pattern alias")
                };
                let found = self.found(arg.span);
                self.expected_err(
                    arg.span,
                    format!("expected {expected}"),
                    expected,
                    &found,
                    None,
                );
                bad
            }
        }
    }

    /// A call outside `.aggregate(alias: f(x))`: a misplaced or nested aggregate, or an unknown
    /// function.
    pub(super) fn bad_call(&mut self, func: &str, span: Span, nested: bool) {
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

    pub(super) fn unknown_function(&mut self, func: &str, span: Span) {
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
            Names::Pattern {
                event: Some((fields, source)),
                ..
            } => self.resolve(
                n,
                span,
                &Names::Event {
                    fields: *fields,
                    source,
                },
            ),
            Names::Pattern {
                event: None,
                aliases,
                key,
                clause,
                ..
            } => {
                if let Some(t) = var {
                    return (ExprKind::Variable(n.to_owned()), t);
                }
                if let Some((k, t)) = key
                    && k == n
                {
                    return (ExprKind::Alias(n.to_owned()), *t);
                }
                let expected = format!(
                    "a variable{}, alias.field or a function of a capture like len(b)",
                    key.map_or(String::new(), |(k, _)| format!(", the partition key {k}"))
                );
                let help = if aliases.iter().any(|a| a.name == n) {
                    Some(format!("{n} is an alias: read a field, {n}.field"))
                } else {
                    suggest(n, aliases.iter().map(|a| a.name.as_str()))
                };
                let message = format!("unknown name {n:?} in .{clause}: expected {expected}");
                self.expected_err(span, message, expected, n, help);
                unresolved
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
                let message = format!("unknown name {n:?} in .{clause}: expected {expected}");
                self.expected_err(span, message, expected, n, help);
                unresolved
            }
        }
    }

    /// Type of an already resolved expression (no diagnostics).
    pub(super) fn static_type(&mut self, e: &Expr, input: Option<&Schema>, columns: &Schema) -> Ty {
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

    /// Reports `e` (of type `t`) in `clause` if it cannot be a bool condition.
    pub(super) fn condition(&mut self, clause: &str, t: Ty, e: &Expr) {
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
