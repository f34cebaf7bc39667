//! The pattern operator against a brute-force oracle, restore at every position, bounds, and
//! partitions shared out over several operators.

mod bounds;
mod join;
mod oracle;
mod restore;
mod shared;

use std::collections::BTreeMap;

use proptest::prelude::*;
use varpulis_core::{Event, Value};
use varpulis_patterns::{Atom, Match, PatternOperator, PatternSpec, Step, StepSpec};

/// Conditions both the operator (as closures) and the oracle evaluate.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond {
    None,
    /// `v > n`.
    VGt(i64),
    /// `v == alias.v` (the alias's last capture).
    VEq(&'static str),
    /// `v > last(alias).v`, or true while the alias has no capture (rising values).
    Rising(&'static str),
}

pub(crate) fn v(e: &Event) -> i64 {
    match e.get("v") {
        Some(Value::Int(i)) => *i,
        _ => i64::MIN,
    }
}

pub(crate) fn holds<'a>(c: Cond, e: &Event, last: impl Fn(&str) -> Option<&'a Event>) -> bool {
    match c {
        Cond::None => true,
        Cond::VGt(n) => v(e) > n,
        Cond::VEq(alias) => last(alias).is_some_and(|a| v(a) == v(e)),
        Cond::Rising(alias) => last(alias).is_none_or(|a| v(e) > v(a)),
    }
}

/// An atom as the tests describe it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct A {
    pub(crate) ty: &'static str,
    pub(crate) cond: Cond,
    pub(crate) alias: Option<&'static str>,
}

pub(crate) const fn a(ty: &'static str, cond: Cond, alias: Option<&'static str>) -> A {
    A { ty, cond, alias }
}

#[derive(Debug, Clone)]
pub(crate) enum S {
    Any(Vec<A>),
    All(Vec<A>),
    Kleene(A),
}

impl S {
    pub(crate) fn atoms(&self) -> &[A] {
        match self {
            Self::Any(x) | Self::All(x) => x,
            Self::Kleene(x) => std::slice::from_ref(x),
        }
    }
}

/// A pattern as the tests describe it.
#[derive(Debug, Clone)]
pub(crate) struct P {
    pub(crate) steps: Vec<(S, Vec<A>)>,
    pub(crate) absence: Vec<A>,
    pub(crate) not: Vec<A>,
    pub(crate) within: Option<i64>,
    pub(crate) partitioned: bool,
}

fn atom(x: &A) -> Atom {
    let cond = x.cond;
    let mut at = Atom::new(x.ty).when(move |e, b| holds(cond, e, |al| b.last(al)));
    if let Some(al) = x.alias {
        at = at.alias(al);
    }
    at
}

pub(crate) fn spec(name: &str, p: &P) -> PatternSpec {
    let steps = p
        .steps
        .iter()
        .map(|(s, not)| StepSpec {
            step: match s {
                S::Any(x) => Step::Any(x.iter().map(atom).collect()),
                S::All(x) => Step::All(x.iter().map(atom).collect()),
                S::Kleene(x) => Step::Kleene(atom(x)),
            },
            not_before: not.iter().map(atom).collect(),
        })
        .collect();
    let mut s = PatternSpec::new(name, steps);
    s.absence = p.absence.iter().map(atom).collect();
    s.not = p.not.iter().map(atom).collect();
    s.within_ms = p.within;
    s.partition_by = p.partitioned.then(|| "k".to_owned());
    s.text = name.to_owned();
    s
}

/// Every construct the oracle checks, by name.
pub(crate) fn constructs() -> Vec<(&'static str, P)> {
    use Cond::{None as N, Rising, VEq, VGt};
    let step = |s: S| (s, Vec::new());
    vec![
        (
            "sequence",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Any(vec![a("B", VEq("a"), Some("b"))])),
                    step(S::Any(vec![a("C", N, Some("c"))])),
                ],
                absence: vec![],
                not: vec![],
                within: Some(50),
                partitioned: true,
            },
        ),
        (
            "kleene",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Kleene(a("B", VGt(2), Some("b")))),
                    step(S::Any(vec![a("C", N, Some("c"))])),
                ],
                absence: vec![],
                not: vec![],
                within: Some(60),
                partitioned: true,
            },
        ),
        (
            "trailing kleene",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Kleene(a("B", Rising("b"), Some("b")))),
                ],
                absence: vec![],
                not: vec![],
                within: Some(40),
                partitioned: true,
            },
        ),
        (
            "not between",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    (
                        S::Any(vec![a("B", N, Some("b"))]),
                        vec![a("X", VEq("a"), None)],
                    ),
                ],
                absence: vec![],
                not: vec![],
                within: Some(50),
                partitioned: true,
            },
        ),
        (
            "not anywhere",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Any(vec![a("B", N, Some("b"))])),
                    step(S::Any(vec![a("C", N, Some("c"))])),
                ],
                absence: vec![],
                not: vec![a("X", VEq("a"), None)],
                within: Some(80),
                partitioned: false,
            },
        ),
        (
            "absence",
            P {
                steps: vec![step(S::Any(vec![a("A", N, Some("a"))]))],
                absence: vec![a("X", VEq("a"), None)],
                not: vec![],
                within: Some(30),
                partitioned: true,
            },
        ),
        (
            "or",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Any(vec![
                        a("B", VGt(3), Some("x")),
                        a("C", N, Some("x")),
                    ])),
                ],
                absence: vec![],
                not: vec![],
                within: Some(40),
                partitioned: true,
            },
        ),
        (
            "and",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::All(vec![
                        a("B", N, Some("b")),
                        a("C", VEq("a"), Some("c")),
                    ])),
                ],
                absence: vec![],
                not: vec![],
                within: Some(60),
                partitioned: true,
            },
        ),
        (
            "unbounded",
            P {
                steps: vec![
                    step(S::Any(vec![a("A", N, Some("a"))])),
                    step(S::Any(vec![a("B", VEq("a"), Some("b"))])),
                ],
                absence: vec![],
                not: vec![],
                within: None,
                partitioned: true,
            },
        ),
    ]
}

/// The allowed disorder of the generated streams (and the watermark's bound).
pub(crate) const LATENESS: i64 = 15;

/// A stream: events at distinct, increasing times, and the order they arrive in (each at
/// most `LATENESS` late, so none is behind the watermark when it arrives).
pub(crate) fn stream() -> impl Strategy<Value = (Vec<Event>, Vec<usize>)> {
    prop::collection::vec((0..4usize, 0..3i64, 0..6i64, 1..8i64, 0..=LATENESS), 0..70).prop_map(
        |rows| {
            let mut ts = 0;
            let mut events = Vec::new();
            let mut arrival = Vec::new();
            for (i, (ty, k, val, gap, jitter)) in rows.into_iter().enumerate() {
                ts += gap;
                events.push(
                    Event::new(["A", "B", "C", "X"][ty], ts)
                        .with_field("k", k)
                        .with_field("v", val),
                );
                arrival.push((ts + jitter, i));
            }
            arrival.sort_unstable();
            (events, arrival.into_iter().map(|(_, i)| i).collect())
        },
    )
}

/// Feeds `order` of `events` to `op`, advancing the watermark to `max seen - LATENESS` after
/// each; from `from` on only. Returns the matches and the max time seen.
pub(crate) fn feed(
    op: &mut PatternOperator,
    events: &[Event],
    order: &[usize],
    max_seen: &mut i64,
    out: &mut Vec<Match>,
) {
    for &i in order {
        op.process(&events[i]);
        *max_seen = (*max_seen).max(events[i].timestamp_ms());
        op.advance_watermark(*max_seen - LATENESS, out);
    }
}

/// The whole stream through a fresh operator, then a flush.
pub(crate) fn run(p: &P, events: &[Event], order: &[usize]) -> Vec<Match> {
    let mut op = PatternOperator::new(spec("P", p)).expect("valid");
    let mut out = Vec::new();
    let mut max_seen = i64::MIN / 2;
    feed(&mut op, events, order, &mut max_seen, &mut out);
    op.flush(&mut out);
    out
}

/// Captures by alias, for building expected matches.
pub(crate) type Captures = BTreeMap<&'static str, Vec<Event>>;
