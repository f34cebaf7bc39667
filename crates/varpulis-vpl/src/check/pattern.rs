//! Pattern and join streams: their steps (or inputs), what each condition may read (the
//! event's fields, earlier aliases as `a.field`, variables), the operations they take
//! (`.within`, `.not`, `.partition_by`, `.watermark`, `.max_runs`, `.max_kleene`, `.emit`; for
//! a join `.on`, `.window`, `.where`, `.watermark`, `.emit`), and the canonical text that a
//! checkpoint's shape is checked against.

use std::collections::HashMap;
use std::fmt::Write as _;

use varpulis_core::format_duration_ms;

use super::graph::Def;
use super::stream::pick;
use super::types::{AliasInfo, Names, Schema, Ty};
use super::{Checker, list};
use crate::diagnostic::Span;
use crate::expr::{BinaryOp, Expr, ExprKind};
use crate::parser::{AtomSyntax, Ident, Op, OpKind, PatternSyntax};
use crate::plan::{
    EmitField, JoinPlan, PatternAtom, PatternPlan, PatternStep, Source, StepKind, StreamPlan,
    WindowKind,
};

/// One resolved input: its name as written, the source, its fields (`None`: unknown) and how
/// messages name it.
pub(super) type Input = (String, Source, Option<Schema>, String);

/// The most events an `AND` step may combine (the operator keeps one bit per event).
const MAX_AND_ATOMS: usize = 64;

/// The operations a pattern stream takes.
const PATTERN_OPS: &[&str] = &[
    "within",
    "not",
    "partition_by",
    "watermark",
    "max_runs",
    "max_kleene",
    "emit",
];

/// The operations a join stream takes.
const JOIN_OPS: &[&str] = &["on", "window", "where", "watermark", "max_keys", "emit"];

/// The operations only pattern and join streams take.
const ONLY_PATTERN_OR_JOIN: &[&str] =
    &["within", "not", "on", "max_runs", "max_kleene", "max_keys"];

impl Checker<'_> {
    /// Reports the operations of `ops` that a stream of kind `what` does not take.
    fn foreign_ops<'o>(&mut self, ops: &'o [Op], allowed: &[&str], what: &str) -> Vec<&'o Op> {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut out = Vec::new();
        for op in ops {
            let n = op.name.text.as_str();
            if !allowed.contains(&n) {
                self.err(op.name.span, format!(".{n} is not available on {what}"))
                    .help = Some(format!(
                    "{what} takes {}",
                    list(allowed.iter().map(|a| format!(".{a}")))
                ));
                continue;
            }
            if let Some(first) = seen.get(n) {
                let at = self.at(*first);
                self.err(
                    op.name.span,
                    format!("duplicate .{n}: each operation may appear once per stream"),
                )
                .help = Some(format!("the first .{n} is at {at}"));
                continue;
            }
            seen.insert(n, op.name.span);
            out.push(op);
        }
        out
    }

    /// An operation of a plain stream that only a pattern or a join takes.
    pub(super) fn pattern_ops_on_plain_stream(&mut self, ops: &[Op]) {
        for op in ops {
            let n = op.name.text.as_str();
            if ONLY_PATTERN_OR_JOIN.contains(&n) {
                let what = if matches!(n, "on" | "max_keys") {
                    "a join"
                } else {
                    "a pattern"
                };
                self.err(
                    op.name.span,
                    format!(".{n} is only available on {what} stream"),
                )
                .help = Some(
                    "a pattern stream reads steps, `stream S = A as a -> B where x == a.x`; \
                     a join `stream J = join(A, B) .on(A.id == B.id) .window(5m)`"
                        .into(),
                );
            }
        }
    }

    /// The watermark bound declared on a pattern or join stream: for every event type it
    /// reads, one value per event type across the program.
    fn multi_watermark(
        &mut self,
        ops: &[&Op],
        inputs: &[Input],
        watermarks: &mut HashMap<String, (i64, Span)>,
    ) -> Option<i64> {
        let (ms, span) = pick(ops, |o| match o.kind {
            OpKind::Watermark(ms, span) => Some((ms, span)),
            _ => None,
        })?;
        for (_, source, _, _) in inputs {
            if let Source::Event(ev) = source {
                self.record_watermark(ev, ms, span, watermarks);
            }
        }
        Some(ms)
    }

    /// One atom: its input, its condition checked against the event's fields, `aliases` and
    /// the variables.
    fn atom(
        &mut self,
        a: &AtomSyntax,
        inputs: &[Input],
        aliases: &[AliasInfo],
        clause: &str,
    ) -> PatternAtom {
        let (_, source, fields, desc) = inputs
            .iter()
            .find(|(n, ..)| *n == a.ty.text)
            .unwrap_or_else(|| unreachable!("every atom's input is resolved"));
        let filter = a.filter.as_ref().map(|f| {
            let mut f = f.clone();
            let names = Names::Pattern {
                event: Some((fields.as_ref(), desc)),
                aliases,
                key: None,
                captures: false,
                clause,
            };
            let t = self.infer(&mut f, &names);
            self.condition(clause, t, &f);
            f
        });
        PatternAtom {
            source: source.clone(),
            filter,
            alias: a.alias.as_ref().map(|a| a.text.clone()),
        }
    }

    /// The plan of a pattern stream and its output schema.
    pub(super) fn pattern_stream(
        &mut self,
        d: &Def<'_>,
        syntax: &PatternSyntax,
        decl_within: Option<(i64, Span)>,
        decl_partition: Option<&Ident>,
        inputs: &[Input],
        watermarks: &mut HashMap<String, (i64, Span)>,
    ) -> (StreamPlan, Option<Schema>) {
        let ops = self.foreign_ops(d.ops, PATTERN_OPS, "a pattern stream");
        let within_op = pick(&ops, |o| match o.kind {
            OpKind::Within(ms, span) => Some((ms, span)),
            _ => None,
        });
        for (ms, span) in within_op.iter().chain(decl_within.iter()) {
            if *ms <= 0 {
                self.err(
                    *span,
                    "`within` must be positive: a match's events lie within it of its first",
                );
            }
        }
        let within = match (within_op, decl_within) {
            (Some((_, span)), Some(_)) => {
                self.err(
                    span,
                    "the pattern already has `within`: say it once, in the pattern or here",
                );
                decl_within
            }
            (a, b) => a.or(b),
        };
        let partition_op = pick(&ops, |o| match &o.kind {
            OpKind::PartitionBy(f) => Some(f),
            _ => None,
        });
        let partition = match (partition_op, decl_partition) {
            (Some(f), Some(_)) => {
                self.err(
                    f.span,
                    "the pattern already has `partition by`: say it once, in the pattern or here",
                );
                decl_partition
            }
            (a, b) => a.or(b),
        };
        let key = partition.map(|f| {
            // The key's type, when every input that has the field agrees on it.
            let types: Vec<Ty> = inputs
                .iter()
                .filter_map(|(_, _, fs, _)| fs.as_ref())
                .filter_map(|fs| fs.iter().find(|(n, _)| *n == f.text).map(|(_, t)| *t))
                .collect();
            let ty = match types.first() {
                Some(t) if types.iter().all(|u| u == t) => *t,
                _ => Ty::Any,
            };
            (f.text.clone(), ty)
        });
        let watermark = self.multi_watermark(&ops, inputs, watermarks);

        let mut aliases: Vec<AliasInfo> = Vec::new();
        let mut steps: Vec<PatternStep> = Vec::new();
        let mut pending_not: Vec<PatternAtom> = Vec::new();
        let mut text = String::new();
        for (i, step) in syntax.steps.iter().enumerate() {
            if i > 0 {
                text.push_str(" -> ");
            }
            if step.negated {
                if i == 0 {
                    self.err(
                        step.span,
                        "a pattern cannot start with NOT: nothing comes before it",
                    );
                }
                for a in &step.atoms {
                    if let Some(alias) = &a.alias {
                        self.err(alias.span, "a NOT step captures nothing: remove `as`");
                    }
                    pending_not.push(self.atom(a, inputs, &aliases, "NOT"));
                }
                text.push_str("NOT ");
                atoms_text(&mut text, &step.atoms, " OR ");
                continue;
            }
            if step.all_of && step.atoms.len() > MAX_AND_ATOMS {
                self.err(
                    step.span,
                    format!(
                        "an AND step of {} events: at most {MAX_AND_ATOMS}",
                        step.atoms.len()
                    ),
                );
            }
            if step.kleene {
                if i == 0 {
                    self.err(
                        step.span,
                        "a pattern cannot start with a Kleene step: a run starts with one event",
                    )
                    .help = Some("put a single event first: A as a -> all B as b".into());
                }
                if step.atoms.len() > 1 {
                    self.err(step.span, "a Kleene step has one event type, not OR/AND");
                }
            }
            // The step's own aliases: visible to its conditions only for a Kleene step (the
            // capture so far), and to every later step.
            let mut own: Vec<AliasInfo> = Vec::new();
            for a in &step.atoms {
                let Some(alias) = &a.alias else { continue };
                if aliases.iter().any(|x| x.name == alias.text) {
                    self.err(
                        alias.span,
                        format!("alias {:?} is already taken by an earlier step", alias.text),
                    );
                    continue;
                }
                if own.iter().any(|x| x.name == alias.text) && step.all_of {
                    self.err(
                        alias.span,
                        format!(
                            "alias {:?} is taken by another event of this AND step",
                            alias.text
                        ),
                    );
                    continue;
                }
                let (_, _, fields, desc) = inputs
                    .iter()
                    .find(|(n, ..)| *n == a.ty.text)
                    .unwrap_or_else(|| unreachable!("resolved"));
                if !own.iter().any(|x| x.name == alias.text) {
                    own.push(AliasInfo {
                        name: alias.text.clone(),
                        fields: fields.clone(),
                        desc: desc.clone(),
                    });
                }
            }
            let visible: Vec<AliasInfo> = if step.kleene {
                aliases.iter().chain(&own).cloned().collect()
            } else {
                aliases.clone()
            };
            let atoms: Vec<PatternAtom> = step
                .atoms
                .iter()
                .map(|a| self.atom(a, inputs, &visible, "where"))
                .collect();
            let kind = if step.kleene {
                text.push_str("all ");
                StepKind::Kleene
            } else if step.all_of {
                StepKind::All
            } else {
                StepKind::Any
            };
            atoms_text(
                &mut text,
                &step.atoms,
                if step.all_of { " AND " } else { " OR " },
            );
            aliases.extend(own);
            steps.push(PatternStep {
                kind,
                atoms,
                not_before: std::mem::take(&mut pending_not),
            });
        }
        let absence = pending_not;
        if !absence.is_empty() && within.is_none() {
            self.err(
                syntax.span,
                "a pattern that ends with NOT needs `within`: the deadline by which the \
                 absence is decided",
            )
            .help = Some("add .within(5m)".into());
        }
        if steps.last().is_some_and(|s| s.kind == StepKind::Kleene) && !absence.is_empty() {
            self.err(
                syntax.span,
                "a trailing NOT cannot follow a Kleene step: the capture never ends before the \
                 deadline",
            )
            .help = Some("put a step between them: A -> all B as b -> C -> NOT X".into());
        }
        if steps.last().is_some_and(|s| s.kind == StepKind::Kleene)
            && absence.is_empty()
            && within.is_none()
        {
            self.err(
                syntax.span,
                "a pattern that ends with a Kleene step needs `within`: its capture is \
                 complete when the deadline passes",
            )
            .help = Some("add .within(5m), or a step after it".into());
        }
        let mut not = Vec::new();
        for op in &ops {
            if let OpKind::Not(a) = &op.kind {
                text.push_str("; not ");
                atoms_text(&mut text, std::slice::from_ref(a), "");
                not.push(self.atom(a, inputs, &aliases, ".not"));
            }
        }
        if let Some((ms, _)) = within {
            let _ = write!(text, "; within {}", format_duration_ms(ms));
        }
        if let Some((k, _)) = &key {
            let _ = write!(text, "; partition by {k}");
        }
        let max_runs = pick(&ops, |o| match o.kind {
            OpKind::MaxRuns(n) => Some(n),
            _ => None,
        });
        let max_kleene = pick(&ops, |o| match o.kind {
            OpKind::MaxKleene(n) => Some(n),
            _ => None,
        });
        let emit_names = Names::Pattern {
            event: None,
            aliases: &aliases,
            key: key.as_ref(),
            captures: true,
            clause: "emit",
        };
        let (emit, schema) = self.required_emit(d, &ops, &emit_names, "a pattern stream");
        let source = steps
            .first()
            .and_then(|s| s.atoms.first())
            .map_or_else(|| inputs[0].1.clone(), |a| a.source.clone());
        let mut plan = operator_plan(d, source, watermark, emit);
        plan.partition_by = key.map(|(k, _)| k);
        plan.pattern = Some(PatternPlan {
            steps,
            absence,
            not,
            within_ms: within.map(|(ms, _)| ms),
            max_runs,
            max_kleene,
            text,
        });
        (plan, Some(schema))
    }

    /// `.emit(...)`, which pattern and join streams need (they have no default output): the
    /// fields and the output schema.
    fn required_emit(
        &mut self,
        d: &Def<'_>,
        ops: &[&Op],
        names: &Names<'_>,
        what: &str,
    ) -> (Vec<EmitField>, Schema) {
        let mut out = Vec::new();
        let mut schema = Schema::new();
        let Some(items) = pick(ops, |o| match &o.kind {
            OpKind::Emit(items) => Some(items),
            _ => None,
        }) else {
            self.err(
                d.name.span,
                format!("{what} needs .emit(...): it says which fields each output event has"),
            )
            .help = Some("for example .emit(user: a.user_id, n: len(b))".into());
            return (out, schema);
        };
        for (n, e) in items {
            if out.iter().any(|f: &EmitField| f.name == n.text) {
                self.err(n.span, format!("duplicate output field {:?}", n.text));
                continue;
            }
            let mut e = e.clone();
            let t = self.infer(&mut e, names);
            schema.push((n.text.clone(), t));
            out.push(EmitField {
                name: n.text.clone(),
                expr: e,
                span: n.span,
            });
        }
        (out, schema)
    }

    /// The plan of a join stream and its output schema.
    pub(super) fn join_stream(
        &mut self,
        d: &Def<'_>,
        inputs: &[Input],
        watermarks: &mut HashMap<String, (i64, Span)>,
    ) -> (StreamPlan, Option<Schema>) {
        let ops = self.foreign_ops(d.ops, JOIN_OPS, "a join stream");
        if inputs.len() < 2 {
            self.err(d.name.span, "a join needs two or more inputs: join(A, B)");
        }
        for (i, (n, ..)) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|(m, ..)| m == n) {
                self.err(
                    d.name.span,
                    format!("{n} is joined with itself: each input of join(...) once"),
                );
            }
        }
        let aliases: Vec<AliasInfo> = inputs
            .iter()
            .map(|(n, _, fields, desc)| AliasInfo {
                name: n.clone(),
                fields: fields.clone(),
                desc: desc.clone(),
            })
            .collect();
        let keys = self.join_keys(d, &ops, inputs, &aliases);
        let window_ms = match pick(&ops, |o| match o.kind {
            OpKind::Window(w, span, _) => Some((w, span)),
            _ => None,
        }) {
            Some((WindowKind::Tumbling { size_ms }, _)) if size_ms > 0 => size_ms,
            Some((_, span)) => {
                self.err(
                    span,
                    "a join's window is a duration like 5m: how much older a partner may be",
                );
                0
            }
            None => {
                self.err(
                    d.name.span,
                    "a join needs .window(d): how much older than an event its partners may be",
                )
                .help = Some("add e.g. .window(5m)".into());
                0
            }
        };
        let watermark = self.multi_watermark(&ops, inputs, watermarks);
        let names = |clause| Names::Pattern {
            event: None,
            aliases: &aliases,
            key: None,
            captures: false,
            clause,
        };
        let filter = pick(&ops, |o| match &o.kind {
            OpKind::Where(e) => Some(e),
            _ => None,
        })
        .map(|e| {
            let mut e = e.clone();
            let t = self.infer(&mut e, &names("where"));
            self.condition(".where", t, &e);
            e
        });
        let (emit, schema) = self.required_emit(d, &ops, &names("emit"), "a join stream");
        let mut text = format!(
            "join({})",
            inputs
                .iter()
                .map(|(n, ..)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (input, fields) in inputs.iter().zip(&keys) {
            let _ = write!(text, " {}[{}]", input.0, fields.join(", "));
        }
        let _ = write!(text, " window {}", format_duration_ms(window_ms));
        let mut plan = operator_plan(d, inputs[0].1.clone(), watermark, emit);
        plan.filter = filter;
        plan.join = Some(JoinPlan {
            inputs: inputs.iter().map(|(_, s, ..)| s.clone()).collect(),
            keys,
            window_ms,
            max_keys: pick(&ops, |o| match o.kind {
                OpKind::MaxKeys(n) => Some(n),
                _ => None,
            }),
            text,
        });
        (plan, Some(schema))
    }

    /// The key fields of each input, from `.on(A.x == B.y and ...)`: the pairs are grouped
    /// into key positions (`A.x == B.y and B.y == C.z` is one), and every input has one field
    /// at each position.
    fn join_keys(
        &mut self,
        d: &Def<'_>,
        ops: &[&Op],
        inputs: &[Input],
        aliases: &[AliasInfo],
    ) -> Vec<Vec<String>> {
        let mut keys = vec![Vec::new(); inputs.len()];
        let Some(on) = pick(ops, |o| match &o.kind {
            OpKind::On(e) => Some(e),
            _ => None,
        }) else {
            self.err(
                d.name.span,
                "a join needs .on(A.key == B.key): the fields its inputs join on",
            );
            return keys;
        };
        let mut conjuncts = Vec::new();
        split_and(on, &mut conjuncts);
        // Key positions: per position, the (input, field) pairs equated.
        let mut classes: Vec<Vec<(usize, String)>> = Vec::new();
        let names = Names::Pattern {
            event: None,
            aliases,
            key: None,
            captures: false,
            clause: "on",
        };
        for c in conjuncts {
            let pair = match &c.kind {
                ExprKind::Binary {
                    op: BinaryOp::Eq,
                    lhs,
                    rhs,
                } => match (&lhs.kind, &rhs.kind) {
                    (
                        ExprKind::Member { alias: a, field: f },
                        ExprKind::Member { alias: b, field: g },
                    ) => Some(((a, f, lhs.span), (b, g, rhs.span))),
                    _ => None,
                },
                _ => None,
            };
            let Some(((a, f, a_span), (b, g, b_span))) = pair else {
                let found = self.found(c.span);
                let d = self.err(
                    c.span,
                    "expected Input.field == Other.field (pairs joined with `and`)",
                );
                d.found = Some(found);
                continue;
            };
            let mut e = c.clone();
            self.infer(&mut e, &names);
            let ia = inputs.iter().position(|(n, ..)| n == a);
            let ib = inputs.iter().position(|(n, ..)| n == b);
            let (Some(ia), Some(ib)) = (ia, ib) else {
                continue; // reported by `infer`
            };
            if ia == ib {
                self.err(
                    a_span.to(b_span),
                    format!("both sides name {a}: a key pair equates fields of two inputs"),
                );
                continue;
            }
            let x = (ia, f.clone());
            let y = (ib, g.clone());
            let found: Vec<usize> = classes
                .iter()
                .enumerate()
                .filter(|(_, cl)| cl.contains(&x) || cl.contains(&y))
                .map(|(i, _)| i)
                .collect();
            let mut merged: Vec<(usize, String)> = vec![x, y];
            for &i in found.iter().rev() {
                merged.extend(classes.remove(i));
            }
            merged.sort();
            merged.dedup();
            classes.push(merged);
        }
        for cl in &classes {
            for (i, (name, ..)) in inputs.iter().enumerate() {
                let fields: Vec<&String> =
                    cl.iter().filter(|(j, _)| *j == i).map(|(_, f)| f).collect();
                match fields.as_slice() {
                    [f] => keys[i].push((*f).clone()),
                    [] => {
                        let pair = describe_class(cl, inputs);
                        self.err(on.span, format!("{name} has no field in the key {pair}"))
                            .help =
                            Some(format!("equate a field of {name} with it: {name}.x == ..."));
                    }
                    _ => {
                        let pair = describe_class(cl, inputs);
                        self.err(on.span, format!("{name} has two fields in the key {pair}"));
                    }
                }
            }
        }
        keys
    }
}

/// The plan of a pattern or join stream before its pattern or join is set: no window,
/// aggregates or having.
fn operator_plan(
    d: &Def<'_>,
    source: Source,
    watermark: Option<i64>,
    emit: Vec<EmitField>,
) -> StreamPlan {
    StreamPlan {
        name: d.name.text.clone(),
        source,
        filter: None,
        partition_by: None,
        watermark_out_of_order_ms: watermark,
        allowed_lateness_ms: None,
        window: None,
        aggregates: Vec::new(),
        having: None,
        emit: Some(emit),
        pattern: None,
        join: None,
        context: None,
        emit_context: None,
        span: d.name.span,
    }
}

/// `A.x == B.y == ...` for messages.
fn describe_class(cl: &[(usize, String)], inputs: &[Input]) -> String {
    cl.iter()
        .map(|(i, f)| format!("{}.{f}", inputs[*i].0))
        .collect::<Vec<_>>()
        .join(" == ")
}

/// The operands of a chain of `and`.
fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Binary {
                op: BinaryOp::And,
                lhs,
                rhs,
            } => {
                stack.push(rhs);
                stack.push(lhs);
            }
            _ => out.push(e),
        }
    }
}

/// The canonical text of `atoms`, joined by `sep`.
fn atoms_text(text: &mut String, atoms: &[AtomSyntax], sep: &str) {
    for (i, a) in atoms.iter().enumerate() {
        if i > 0 {
            text.push_str(sep);
        }
        text.push_str(&a.ty.text);
        if let Some(f) = &a.filter {
            let _ = write!(text, " where {f}");
        }
        if let Some(alias) = &a.alias {
            let _ = write!(text, " as {}", alias.text);
        }
    }
}
