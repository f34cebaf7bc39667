//! The program's streams as a graph: each stream (and named pattern) name defined once, each
//! input resolved to an event type or a stream (a stream naming a pattern reads the pattern's
//! inputs), and an order in which every stream comes after the streams it reads (cycles
//! reported). `streams` checks the streams in that order.

use std::collections::HashMap;

use super::stream::StreamInput;
use super::types::{Schema, Ty};
use super::{Checker, list};
use crate::diagnostic::{Span, suggest};
use crate::parser::{Body, Ident, Op, PatternSyntax, Stmt};
use crate::plan::{EventDecl, Source, StreamPlan};

/// A stream definition whose name is not taken.
pub(super) struct Def<'a> {
    pub(super) name: &'a Ident,
    pub(super) body: DefBody<'a>,
    pub(super) ops: &'a [Op],
}

/// What a definition reads.
pub(super) enum DefBody<'a> {
    Source(&'a Ident),
    /// A followed-by pattern, or a named pattern (with its `within` and `partition by`).
    Pattern {
        syntax: &'a PatternSyntax,
        within: Option<(i64, crate::diagnostic::Span)>,
        partition_by: Option<&'a Ident>,
    },
    Join(&'a [Ident]),
}

impl Def<'_> {
    /// The names it reads, in order.
    fn inputs(&self) -> Vec<&Ident> {
        match &self.body {
            DefBody::Source(s) => vec![*s],
            DefBody::Pattern { syntax, .. } => {
                let mut out = syntax.inputs();
                for op in self.ops {
                    if let crate::parser::OpKind::Not(a) = &op.kind
                        && !out.iter().any(|i| i.text == a.ty.text)
                    {
                        out.push(&a.ty);
                    }
                }
                out
            }
            DefBody::Join(inputs) => inputs.iter().collect(),
        }
    }
}

impl Checker<'_> {
    /// The plans of the program's streams, upstream first.
    pub(super) fn streams(&mut self, stmts: &[Stmt], events: &[EventDecl]) -> Vec<StreamPlan> {
        let (defs, index) = self.definitions(stmts, events);
        let mut sources = self.sources(&defs, &index, events);
        let order = self.dependency_order(&defs, &index, &mut sources);

        // Check each stream, upstream first, so downstream sees upstream output schemas.
        let mut schemas: HashMap<String, Option<Schema>> = HashMap::new();
        let mut watermarks: HashMap<String, (i64, Span)> = HashMap::new();
        let mut plans: Vec<StreamPlan> = Vec::new();
        for &i in &order {
            let d = &defs[i];
            let Some(inputs) = &sources[i] else {
                schemas.insert(d.name.text.clone(), None);
                continue;
            };
            let (plan, out) = match &d.body {
                DefBody::Source(_) => {
                    let source = &inputs[0];
                    let (input, source_desc) = input_schema(source, events, &schemas);
                    self.stream(StreamInput {
                        name: d.name,
                        source,
                        input: input.as_ref(),
                        source_desc: &source_desc,
                        ops: d.ops,
                        watermarks: &mut watermarks,
                    })
                }
                DefBody::Pattern {
                    syntax,
                    within,
                    partition_by,
                } => {
                    let resolved = d.inputs().into_iter().map(|i| i.text.as_str()).zip(inputs);
                    let inputs: Vec<(String, Source, Option<Schema>, String)> = resolved
                        .map(|(name, source)| {
                            let (schema, desc) = input_schema(source, events, &schemas);
                            (name.to_owned(), source.clone(), schema, desc)
                        })
                        .collect();
                    self.pattern_stream(d, syntax, *within, *partition_by, &inputs, &mut watermarks)
                }
                DefBody::Join(_) => {
                    let inputs: Vec<(String, Source, Option<Schema>, String)> = inputs
                        .iter()
                        .map(|source| {
                            let (schema, desc) = input_schema(source, events, &schemas);
                            (source.name().to_owned(), source.clone(), schema, desc)
                        })
                        .collect();
                    self.join_stream(d, &inputs, &mut watermarks)
                }
            };
            schemas.insert(d.name.text.clone(), out);
            plans.push(plan);
        }
        plans
    }

    /// The stream definitions, each name once and none named like an event type, with the
    /// index of each by name.
    fn definitions<'a>(
        &mut self,
        stmts: &'a [Stmt],
        events: &[EventDecl],
    ) -> (Vec<Def<'a>>, HashMap<&'a str, usize>) {
        let mut defs: Vec<Def<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        // Named patterns, by name: their definitions are used by the streams that name them.
        let mut patterns: HashMap<&str, &Stmt> = HashMap::new();
        for s in stmts {
            let Stmt::Pattern { name, .. } = s else {
                continue;
            };
            if let Some(Stmt::Pattern { name: first, .. }) = patterns.get(name.text.as_str()) {
                let at = self.at(first.span);
                self.err(
                    name.span,
                    format!("pattern {:?} is defined twice", name.text),
                )
                .help = Some(format!("first defined at {at}"));
                continue;
            }
            patterns.insert(&name.text, s);
        }
        for s in stmts {
            let Stmt::Stream { name, body, ops } = s else {
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
            if let Some(Stmt::Pattern { name: p, .. }) = patterns.get(name.text.as_str()) {
                let at = self.at(p.span);
                self.err(
                    name.span,
                    format!(
                        "stream {:?} has the name of the pattern defined at {at}",
                        name.text
                    ),
                )
                .help = Some("streams and patterns share one namespace".into());
                continue;
            }
            let body = match body {
                Body::Source(src) => match patterns.get(src.text.as_str()) {
                    Some(Stmt::Pattern {
                        pattern,
                        within,
                        partition_by,
                        ..
                    }) => DefBody::Pattern {
                        syntax: pattern,
                        within: *within,
                        partition_by: partition_by.as_ref(),
                    },
                    _ => DefBody::Source(src),
                },
                Body::Pattern(syntax) => DefBody::Pattern {
                    syntax,
                    within: None,
                    partition_by: None,
                },
                Body::Join(inputs) => DefBody::Join(inputs),
            };
            index.insert(&name.text, defs.len());
            defs.push(Def {
                name,
                body,
                ops: ops.as_slice(),
            });
        }
        (defs, index)
    }

    /// The inputs of each definition, resolved: the stream of that name, else the event type
    /// (any name when no event type is declared); `None` when one is unknown.
    fn sources(
        &mut self,
        defs: &[Def<'_>],
        index: &HashMap<&str, usize>,
        events: &[EventDecl],
    ) -> Vec<Option<Vec<Source>>> {
        let mut sources: Vec<Option<Vec<Source>>> = Vec::with_capacity(defs.len());
        for d in defs {
            let mut resolved = Some(Vec::new());
            for input in d.inputs() {
                let src = &input.text;
                let one = if index.contains_key(src.as_str()) {
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
                        input.span,
                        format!("unknown source {src:?}: expected {expected}"),
                    );
                    e.expected = Some(expected);
                    e.found = Some(src.clone());
                    e.help = help.or_else(|| {
                        Some("declare it (event Name: field: type) or define a stream".into())
                    });
                    None
                };
                match (one, resolved.as_mut()) {
                    (Some(one), Some(all)) => all.push(one),
                    _ => resolved = None,
                }
            }
            sources.push(resolved);
        }
        sources
    }

    /// The indexes of `defs`, each stream after every stream it reads (ties keep source
    /// order: a depth-first walk from each definition in turn). A stream on a cycle loses its
    /// inputs (the cycle is reported), so it is not checked further.
    fn dependency_order(
        &mut self,
        defs: &[Def<'_>],
        index: &HashMap<&str, usize>,
        sources: &mut [Option<Vec<Source>>],
    ) -> Vec<usize> {
        let mut order = Vec::with_capacity(defs.len());
        let mut state = vec![0u8; defs.len()]; // 0 new, 1 on the path, 2 done
        for start in 0..defs.len() {
            if state[start] != 0 {
                continue;
            }
            // (definition, next input to visit); an explicit stack: chains may be long.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (i, ref mut next)) = path.last_mut() {
                let ups: Vec<usize> = sources[i]
                    .iter()
                    .flatten()
                    .filter_map(|s| match s {
                        Source::Stream(n) => Some(index[n.as_str()]),
                        Source::Event(_) => None,
                    })
                    .collect();
                let Some(&up) = ups.get(*next) else {
                    state[i] = 2;
                    order.push(i);
                    path.pop();
                    continue;
                };
                *next += 1;
                match state[up] {
                    0 => {
                        state[up] = 1;
                        path.push((up, 0));
                    }
                    1 => {
                        // Cycle: report it on the stream that closes it.
                        let pos = path.iter().position(|&(c, _)| c == up).unwrap_or(0);
                        let names: Vec<&str> = path[pos..]
                            .iter()
                            .map(|&(c, _)| c)
                            .chain(std::iter::once(up))
                            .map(|c| defs[c].name.text.as_str())
                            .collect();
                        let input = defs[i]
                            .inputs()
                            .into_iter()
                            .find(|n| n.text == defs[up].name.text)
                            .map_or(defs[i].name.span, |n| n.span);
                        self.err(
                            input,
                            format!(
                                "stream {:?} reads from itself: {}",
                                defs[i].name.text,
                                names.join(" -> ")
                            ),
                        );
                        for &(c, _) in &path[pos..] {
                            sources[c] = None;
                        }
                    }
                    _ => {}
                }
            }
        }
        order
    }
}

/// The fields an input provides (`None`: unknown) and how messages name it.
pub(super) fn input_schema(
    source: &Source,
    events: &[EventDecl],
    schemas: &HashMap<String, Option<Schema>>,
) -> (Option<Schema>, String) {
    match source {
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
    }
}
