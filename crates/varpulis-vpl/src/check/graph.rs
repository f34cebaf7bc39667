//! The program's streams as a graph: each stream name defined once, each source resolved to an
//! event type or a stream, and an order in which every stream comes after the one it reads
//! (cycles reported). `streams` checks the streams in that order.

use std::collections::HashMap;

use super::stream::StreamInput;
use super::types::{Schema, Ty};
use super::{Checker, list};
use crate::diagnostic::{Span, suggest};
use crate::parser::{Ident, Op, Stmt};
use crate::plan::{EventDecl, Source, StreamPlan};

/// A stream definition whose name is not taken.
struct Def<'a> {
    name: &'a Ident,
    source: &'a Ident,
    ops: &'a [Op],
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
            let Some(source) = &sources[i] else {
                schemas.insert(d.name.text.clone(), None);
                continue;
            };
            let (input, source_desc) = match source {
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
            let (plan, out) = self.stream(StreamInput {
                name: d.name,
                source,
                input: input.as_ref(),
                source_desc: &source_desc,
                ops: d.ops,
                watermarks: &mut watermarks,
            });
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
        (defs, index)
    }

    /// The source of each definition: the stream of that name, else the event type (any name
    /// when no event type is declared); `None` when unknown.
    fn sources(
        &mut self,
        defs: &[Def<'_>],
        index: &HashMap<&str, usize>,
        events: &[EventDecl],
    ) -> Vec<Option<Source>> {
        let mut sources: Vec<Option<Source>> = Vec::with_capacity(defs.len());
        for d in defs {
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
        sources
    }

    /// The indexes of `defs`, each stream after the stream it reads. A stream on a cycle loses
    /// its source (the cycle is reported), so it is not checked further.
    fn dependency_order(
        &mut self,
        defs: &[Def<'_>],
        index: &HashMap<&str, usize>,
        sources: &mut [Option<Source>],
    ) -> Vec<usize> {
        // Each stream reads at most one stream, so chains and cycles only.
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
        order
    }
}
