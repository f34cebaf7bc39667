//! Contexts: `context NAME (cores: [..])` declarations, `.context(NAME)` on a stream (it runs in
//! that context's thread) and `.emit(context: NAME, ...)` (its outputs are handed to that
//! context). Placement is taken out of the statements before the streams are checked, and put
//! into their plans after, with the rules that keep the contexts a pipeline: a stream of a
//! declared context reads event types, streams of its own context, or streams of other
//! declared contexts that hand their outputs to it (or to no one in particular); the contexts'
//! reads form no cycle; the default context reads anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Checker;
use crate::diagnostic::{Span, suggest};
use crate::expr::ExprKind;
use crate::parser::{OpKind, Stmt};
use crate::plan::{ContextDecl, Source, StreamPlan};

/// Where a stream runs and where its outputs go, as written.
#[derive(Debug, Default)]
pub(super) struct Placement {
    context: Option<(String, Span)>,
    emit_to: Option<(String, Span)>,
}

/// The name a checkpoint gives the default context of a run: not a context's name.
const RESERVED: &str = "main";
/// More cores than any machine this runs on: a number past it is a typo.
const MAX_CORE: u64 = 4096;

impl Checker<'_> {
    /// The declared contexts, and per stream its placement, taken out of `stmts` (the
    /// `.context` operations and `context:` items of `.emit`).
    pub(super) fn contexts(
        &mut self,
        stmts: &mut [Stmt],
    ) -> (Vec<ContextDecl>, HashMap<String, Placement>) {
        let mut decls: Vec<ContextDecl> = Vec::new();
        let mut spans: BTreeMap<String, Span> = BTreeMap::new();
        for s in stmts.iter() {
            let Stmt::Context { name, cores } = s else {
                continue;
            };
            if let Some(first) = spans.get(&name.text) {
                let at = self.at(*first);
                self.err(
                    name.span,
                    format!("context {} is declared twice", name.text),
                )
                .help = Some(format!("the first declaration is at {at}"));
                continue;
            }
            if name.text == RESERVED {
                self.err(
                    name.span,
                    format!(
                        "context {RESERVED} is the name of a run's default context in its \
                         checkpoints; choose another name"
                    ),
                );
                continue;
            }
            let mut seen = HashSet::new();
            let mut list = Vec::new();
            for &(core, span) in cores {
                if core >= MAX_CORE {
                    self.err(
                        span,
                        format!("core {core}: cores are numbered from 0, below {MAX_CORE}"),
                    );
                } else if !seen.insert(core) {
                    self.err(span, format!("core {core} is listed twice"));
                } else {
                    list.push(core as usize);
                }
            }
            spans.insert(name.text.clone(), name.span);
            decls.push(ContextDecl {
                name: name.text.clone(),
                cores: list,
            });
        }
        let names: Vec<String> = decls.iter().map(|d| d.name.clone()).collect();
        let mut placements = HashMap::new();
        for s in stmts.iter_mut() {
            let Stmt::Stream { name, ops, .. } = s else {
                continue;
            };
            let mut placement = Placement::default();
            let mut kept = Vec::with_capacity(ops.len());
            for mut op in std::mem::take(ops) {
                match &mut op.kind {
                    OpKind::Context(ctx) => {
                        if let Some((_, first)) = &placement.context {
                            let at = self.at(*first);
                            self.err(
                                op.name.span,
                                "duplicate .context: a stream runs in one context",
                            )
                            .help = Some(format!("the first .context is at {at}"));
                        } else if self.known_context(&ctx.text, ctx.span, &names) {
                            placement.context = Some((ctx.text.clone(), ctx.span));
                        }
                        continue;
                    }
                    OpKind::Emit(items) if !names.is_empty() => {
                        let mut rest = Vec::with_capacity(items.len());
                        for (item, expr) in std::mem::take(items) {
                            if item.text == "context"
                                && let ExprKind::Name(target) = &expr.kind
                            {
                                if self.known_context(target, expr.span, &names) {
                                    placement.emit_to = Some((target.clone(), expr.span));
                                }
                                continue;
                            }
                            rest.push((item, expr));
                        }
                        if rest.is_empty() {
                            // `.emit(context: X)` alone hands the events on as they are.
                            continue;
                        }
                        *items = rest;
                    }
                    _ => {}
                }
                kept.push(op);
            }
            *ops = kept;
            placements.insert(name.text.clone(), placement);
        }
        (decls, placements)
    }

    /// Whether `name` is a declared context (else an error at `span`, with a suggestion).
    fn known_context(&mut self, name: &str, span: Span, names: &[String]) -> bool {
        if names.iter().any(|n| n == name) {
            return true;
        }
        let d = self.err(span, format!("unknown context {name}"));
        d.expected = Some(format!(
            "a context declared with `context NAME` ({})",
            super::list(names)
        ));
        d.help = suggest(name, names.iter().map(String::as_str));
        false
    }

    /// Puts each stream's placement into its plan and checks who may read whom.
    pub(super) fn place(
        &mut self,
        plans: &mut [StreamPlan],
        placements: &HashMap<String, Placement>,
    ) {
        for plan in plans.iter_mut() {
            if let Some(p) = placements.get(&plan.name) {
                plan.context = p.context.as_ref().map(|(c, _)| c.clone());
                plan.emit_context = p.emit_to.as_ref().map(|(c, _)| c.clone());
            }
        }
        let by_name: HashMap<&str, &StreamPlan> =
            plans.iter().map(|p| (p.name.as_str(), p)).collect();
        // Edges between declared contexts: upstream -> downstream.
        let mut edges: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
        let mut errors = Vec::new();
        for plan in plans.iter() {
            for input in plan.inputs() {
                let Source::Stream(up) = input else {
                    continue;
                };
                let Some(upstream) = by_name.get(up.as_str()) else {
                    continue;
                };
                let here = plan.context.as_deref();
                let there = upstream.context.as_deref();
                match (here, there) {
                    (Some(h), None) => errors.push((
                        plan.span,
                        format!(
                            "stream {} runs in context {h} but reads {up}, which runs in the \
                             default context",
                            plan.name
                        ),
                        format!(
                            "put {up} in a context too (`.context(...)`), or {} in none",
                            plan.name
                        ),
                    )),
                    (Some(h), Some(t)) if h != t => {
                        edges.entry(t).or_default().insert(h);
                    }
                    _ => {}
                }
                if let Some(to) = upstream.emit_context.as_deref()
                    && here != Some(to)
                    && here != there
                {
                    let placed = here.map_or_else(
                        || "the default context".to_owned(),
                        |h| format!("context {h}"),
                    );
                    errors.push((
                        plan.span,
                        format!(
                            "stream {} ({placed}) reads {up}, whose outputs are handed to \
                             context {to} (`.emit(context: {to})`)",
                            plan.name
                        ),
                        format!("read {up} in context {to}, or hand it to where it is read"),
                    ));
                }
            }
        }
        for (span, message, help) in errors {
            self.err(span, message).help = Some(help);
        }
        if let Some(cycle) = find_cycle(&edges) {
            let first = plans
                .iter()
                .find(|p| p.context.as_deref() == Some(cycle[0].as_str()))
                .map_or(Span::new(0, 0), |p| p.span);
            self.err(
                first,
                format!(
                    "the contexts read each other in a cycle ({}): contexts must form a \
                     pipeline",
                    cycle.join(" -> ")
                ),
            )
            .help = Some("move the streams of the cycle into one context".to_owned());
        }
    }
}

/// A cycle of `edges`, as the names along it (the first repeated at the end).
fn find_cycle(edges: &BTreeMap<&str, HashSet<&str>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, HashSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        let mut next: Vec<&str> = edges.get(node).into_iter().flatten().copied().collect();
        next.sort_unstable();
        for n in next {
            if let Some(c) = visit(n, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = HashSet::new();
    for &node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}
