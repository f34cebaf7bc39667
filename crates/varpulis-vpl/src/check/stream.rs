//! One stream: the rules of its operations (each once, in order; `.window` with `.aggregate`;
//! what needs a window), the input side (`.where`, `.partition_by`, `.watermark`,
//! `.allowed_lateness`, `.window`), the aggregated row (`.aggregate`, `.having`), the output
//! (`.emit`) and the schema that downstream streams read.

use std::collections::HashMap;

use varpulis_core::format_duration_ms;

use super::types::{Names, Schema, Ty};
use super::{Checker, list};
use crate::diagnostic::{Span, suggest};
use crate::expr::Expr;
use crate::parser::{Ident, Op, OpKind};
use crate::plan::{AggregatePlan, EmitField, Source, StreamPlan, WindowKind};

/// What checking one stream reads: the definition, its resolved source and what the source
/// provides.
pub(super) struct StreamInput<'a> {
    pub(super) name: &'a Ident,
    pub(super) source: &'a Source,
    /// The source's fields and their types; `None` when unknown (an undeclared event type, or
    /// a stream whose output is unknown).
    pub(super) input: Option<&'a Schema>,
    /// The source as messages name it: `event T` or `stream S`.
    pub(super) source_desc: &'a str,
    /// The operations as written.
    pub(super) ops: &'a [Op],
    /// The first watermark declared for each event type, and where: shared by all streams,
    /// since the watermark belongs to the event type.
    pub(super) watermarks: &'a mut HashMap<String, (i64, Span)>,
}

impl<'a> StreamInput<'a> {
    /// How names resolve on the input side: the source's fields and the variables.
    fn event_names(&self) -> Names<'a> {
        Names::Event {
            fields: self.input,
            source: self.source_desc,
        }
    }

    /// How names resolve after `.aggregate` in `clause`: the row's columns and the variables.
    fn row_names<'c>(&self, columns: &'c Schema, clause: &'c str) -> Names<'c>
    where
        'a: 'c,
    {
        Names::Row {
            columns,
            input: self.input,
            clause,
        }
    }
}

/// The first of `ops` that `f` picks: the accepted operations have each kind at most once.
pub(super) fn pick<'o, T>(ops: &[&'o Op], f: impl FnMut(&'o Op) -> Option<T>) -> Option<T> {
    ops.iter().copied().find_map(f)
}

impl Checker<'_> {
    /// The plan of one stream and its output schema (`None` when unknown).
    pub(super) fn stream(&mut self, mut s: StreamInput<'_>) -> (StreamPlan, Option<Schema>) {
        // Each step reports on its own operation; `check` sorts the diagnostics by position, so
        // the steps need not follow the order the operations are written in.
        self.pattern_ops_on_plain_stream(s.ops);
        let ops = self.accepted_ops(s.ops);
        self.window_with_aggregate(&ops);
        let aggregated = ops.iter().any(|o| matches!(o.kind, OpKind::Aggregate(_)));
        let filter = self.filter(&s, &ops);
        let key = self.partition_key(&s, &ops);
        let watermark = self.watermark(&mut s, &ops);
        let lateness = pick(&ops, |o| match o.kind {
            OpKind::AllowedLateness(ms) => Some(ms),
            _ => None,
        });
        let window = self.window_kind(&ops);
        self.needs_window(&ops, window);
        let partition_by = key.as_ref().map(|(k, _)| k.clone());
        let (aggregates, columns) = self.aggregates(&s, &ops, key);
        let having = self.having(&s, &ops, aggregated, &columns);
        let emit = self.emit(&s, &ops, aggregated, &columns);
        let schema = self.output_schema(&s, emit.as_deref(), aggregated, columns);
        let plan = StreamPlan {
            name: s.name.text.clone(),
            source: s.source.clone(),
            filter,
            partition_by,
            watermark_out_of_order_ms: watermark,
            allowed_lateness_ms: lateness,
            window,
            aggregates,
            having,
            emit,
            pattern: None,
            join: None,
            context: None,
            emit_context: None,
            span: s.name.span,
        };
        (plan, schema)
    }

    /// Order and duplicates: the operations that are neither repeated nor out of order.
    fn accepted_ops<'o>(&mut self, ops: &'o [Op]) -> Vec<&'o Op> {
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
        ok_ops
    }

    /// `.window` and `.aggregate` go together: each without the other is an error.
    fn window_with_aggregate(&mut self, ops: &[&Op]) {
        let window_op = ops.iter().find(|o| matches!(o.kind, OpKind::Window(..)));
        let agg_op = ops.iter().find(|o| matches!(o.kind, OpKind::Aggregate(_)));
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
    }

    /// The `.where` filter: a bool condition on each input event.
    fn filter(&mut self, s: &StreamInput<'_>, ops: &[&Op]) -> Option<Expr> {
        let e = pick(ops, |o| match &o.kind {
            OpKind::Where(e) => Some(e),
            _ => None,
        })?;
        let mut e = e.clone();
        let t = self.infer(&mut e, &s.event_names());
        self.condition(".where", t, &e);
        Some(e)
    }

    /// The `.partition_by` key and its type (unknown unless the source's fields are known and
    /// the key is one of them).
    fn partition_key(&mut self, s: &StreamInput<'_>, ops: &[&Op]) -> Option<(String, Ty)> {
        let f = pick(ops, |o| match &o.kind {
            OpKind::PartitionBy(f) => Some(f),
            _ => None,
        })?;
        let ty = match s.input.map(|fs| fs.iter().find(|(n, _)| *n == f.text)) {
            Some(Some((_, t))) => *t,
            None => Ty::Any,
            Some(None) => {
                let fs = s.input.map(|f| f.as_slice()).unwrap_or_default();
                let expected = format!(
                    "a field of {} ({})",
                    s.source_desc,
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
                Ty::Any
            }
        };
        Some((f.text.clone(), ty))
    }

    /// The `.watermark` bound: one per event type, so another stream of the same event type
    /// may not declare a different one.
    fn watermark(&mut self, s: &mut StreamInput<'_>, ops: &[&Op]) -> Option<i64> {
        let (ms, span) = pick(ops, |o| match o.kind {
            OpKind::Watermark(ms, span) => Some((ms, span)),
            _ => None,
        })?;
        if let Source::Event(ev) = s.source {
            self.record_watermark(ev, ms, span, s.watermarks);
        }
        Some(ms)
    }

    /// Records the watermark bound `ms` declared at `span` for event type `ev`: the first
    /// declaration holds, another value is an error (the watermark belongs to the event type).
    pub(super) fn record_watermark(
        &mut self,
        ev: &str,
        ms: i64,
        span: Span,
        watermarks: &mut HashMap<String, (i64, Span)>,
    ) {
        match watermarks.get(ev).copied() {
            Some((other, at)) if other != ms => {
                let at = self.at(at);
                self.err(
                    span,
                    format!(
                        "conflicting watermark for {ev}: out_of_order {} here but {} at {at}",
                        format_duration_ms(ms),
                        format_duration_ms(other)
                    ),
                )
                .help = Some("the watermark belongs to the event type; declare one value".into());
            }
            Some(_) => {}
            None => {
                watermarks.insert(ev.to_owned(), (ms, span));
            }
        }
    }

    /// The `.window`, its sizes checked.
    fn window_kind(&mut self, ops: &[&Op]) -> Option<WindowKind> {
        let (w, size_span, slide_span) = pick(ops, |o| match o.kind {
            OpKind::Window(w, size_span, slide_span) => Some((w, size_span, slide_span)),
            _ => None,
        })?;
        self.window(w, size_span, slide_span);
        Some(w)
    }

    /// `.partition_by` needs a window, `.allowed_lateness` a time window.
    fn needs_window(&mut self, ops: &[&Op], window: Option<WindowKind>) {
        if let Some(op) = ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::PartitionBy(_)))
            && window.is_none()
        {
            self.err(
                op.name.span,
                ".partition_by needs a .window(...): partitions only group windowed aggregates",
            );
        }
        if let Some(op) = ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::AllowedLateness(..)))
            && !window.is_some_and(|w| w.is_time_based())
        {
            let what = if window.is_some() {
                "a count window"
            } else {
                "no window"
            };
            self.err(
                op.name.span,
                format!(".allowed_lateness needs a time window, but this stream has {what}"),
            );
        }
    }

    /// The `.aggregate` items over the input events, and the columns of the aggregated row:
    /// the partition key, then each alias (an alias named like the key replaces it).
    fn aggregates(
        &mut self,
        s: &StreamInput<'_>,
        ops: &[&Op],
        key: Option<(String, Ty)>,
    ) -> (Vec<AggregatePlan>, Schema) {
        let mut aggregates: Vec<AggregatePlan> = Vec::new();
        let mut columns: Schema = key.into_iter().collect();
        let Some(items) = pick(ops, |o| match &o.kind {
            OpKind::Aggregate(items) => Some(items),
            _ => None,
        }) else {
            return (aggregates, columns);
        };
        let names = s.event_names();
        for (alias, e) in items {
            if aggregates.iter().any(|a| a.alias == alias.text) {
                self.err(
                    alias.span,
                    format!("duplicate aggregate alias {:?}", alias.text),
                )
                .help = Some("each output field needs its own name".into());
                continue;
            }
            if let Some((agg, t)) = self.aggregate(alias, e, &names) {
                columns.retain(|(c, _)| *c != alias.text);
                columns.push((alias.text.clone(), t));
                aggregates.push(agg);
            }
        }
        (aggregates, columns)
    }

    /// The `.having` filter: a bool condition on each aggregated row, so only after an
    /// `.aggregate`.
    fn having(
        &mut self,
        s: &StreamInput<'_>,
        ops: &[&Op],
        aggregated: bool,
        columns: &Schema,
    ) -> Option<Expr> {
        let (op, e) = pick(ops, |o| match &o.kind {
            OpKind::Having(e) => Some((o, e)),
            _ => None,
        })?;
        if !aggregated {
            self.err(
                op.name.span,
                ".having filters aggregated rows and needs an .aggregate(...) before it",
            )
            .help = Some("use .where to filter input events".into());
            return None;
        }
        let mut e = e.clone();
        let t = self.infer(&mut e, &s.row_names(columns, "having"));
        self.condition(".having", t, &e);
        Some(e)
    }

    /// The `.emit` fields: computed from each input event, or from each aggregated row after
    /// an `.aggregate`.
    fn emit(
        &mut self,
        s: &StreamInput<'_>,
        ops: &[&Op],
        aggregated: bool,
        columns: &Schema,
    ) -> Option<Vec<EmitField>> {
        let items = pick(ops, |o| match &o.kind {
            OpKind::Emit(items) => Some(items),
            _ => None,
        })?;
        let names = if aggregated {
            s.row_names(columns, "emit")
        } else {
            s.event_names()
        };
        let mut out = Vec::new();
        for (n, e) in items {
            if out.iter().any(|f: &EmitField| f.name == n.text) {
                self.err(n.span, format!("duplicate output field {:?}", n.text));
                continue;
            }
            let mut e = e.clone();
            self.infer(&mut e, &names);
            out.push(EmitField {
                name: n.text.clone(),
                expr: e,
                span: n.span,
            });
        }
        Some(out)
    }

    /// What downstream streams read: the emitted fields, else the aggregated row, else the
    /// input unchanged.
    fn output_schema(
        &mut self,
        s: &StreamInput<'_>,
        emit: Option<&[EmitField]>,
        aggregated: bool,
        columns: Schema,
    ) -> Option<Schema> {
        if let Some(emit) = emit {
            let mut out = Schema::new();
            for f in emit {
                out.push((f.name.clone(), self.static_type(&f.expr, s.input, &columns)));
            }
            Some(out)
        } else if aggregated {
            Some(columns)
        } else {
            s.input.cloned()
        }
    }
}
