//! A brute-force oracle: recomputes every window from all events, and the random streams fed
//! to both it and the operator.
//!
//! Floats in generated streams are multiples of 1/4 with small magnitude, so a naive f64 sum in
//! arrival order is exact and equals the operator's exact sum (whose order independence is
//! proven in its own unit tests). `stddev` is compared with a relative tolerance of 1e-9: the
//! oracle uses the textbook two-pass formula, the operator exact moments, and the two round
//! differently in the last bits (the operator's bits are order-independent by construction).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use varpulis_core::{Event, Value};
use varpulis_windows::{
    AggFn, Aggregate, BinOp, Binary, Field, Outcome, WatermarkTracker, WindowKind, WindowOperator,
    WindowResult, WindowSpec,
};

/// A generated test case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) kind: WindowKind,
    pub(crate) partitioned: bool,
    pub(crate) lateness: i64,
    pub(crate) ooo_a: i64,
    pub(crate) ooo_b: i64,
    pub(crate) events: Vec<Event>,
}

fn key_value(k: u8) -> Option<Value> {
    match k % 5 {
        0 => Some(Value::Int(1)),
        1 => Some(Value::from("1")),
        2 => Some(Value::Float(1.0)),
        3 => Some(Value::Int(2)),
        _ => None,
    }
}

fn field_value(kind: u8, n: i16) -> Option<Value> {
    match kind % 12 {
        0..=3 => Some(Value::Int(i64::from(n))),
        4..=7 => Some(Value::Float(f64::from(n) / 4.0)),
        8 => None,
        9 => Some(Value::Null),
        10 => Some(Value::Float(if n % 3 == 0 {
            f64::INFINITY
        } else {
            f64::NAN
        })),
        _ => Some(Value::from(format!("s{}", n % 3))),
    }
}

prop_compose! {
    fn raw_event()(src in 0u8..2, key in 0u8..5, step in prop_oneof![8 => 0i64..6, 1 => 20i64..60],
                   jitter in prop_oneof![6 => Just(0i64), 3 => 0i64..12, 1 => 0i64..40],
                   vk in 0u8..12, vn in -40i16..40, q in 0u8..4) -> (u8, u8, i64, i64, u8, i16, u8) {
        (src, key, step, jitter, vk, vn, q)
    }
}

/// Events with several sources and partitions, out-of-order within and beyond the bounds,
/// duplicate timestamps, gaps, NaN, infinities, strings and missing fields.
pub(crate) fn events(max_len: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(raw_event(), 0..max_len).prop_map(|raw| {
        let mut base = -40_i64;
        raw.into_iter()
            .map(|(src, key, step, jitter, vk, vn, q)| {
                base += step;
                let mut e = Event::new(if src == 0 { "A" } else { "B" }, base - jitter);
                if let Some(k) = key_value(key) {
                    e.set("k", k);
                }
                if let Some(v) = field_value(vk, vn) {
                    e.set("v", v);
                }
                if q > 0 {
                    e.set("q", i64::from(q));
                }
                e
            })
            .collect()
    })
}

pub(crate) fn kind(which: u8) -> BoxedStrategy<WindowKind> {
    match which {
        0 => (1i64..30)
            .prop_map(|size_ms| WindowKind::Tumbling { size_ms })
            .boxed(),
        1 => (1i64..30, 1i64..30)
            .prop_map(|(a, b)| WindowKind::Sliding {
                size_ms: a.max(b),
                slide_ms: a.min(b),
            })
            .boxed(),
        2 => (0i64..15)
            .prop_map(|gap_ms| WindowKind::Session { gap_ms })
            .boxed(),
        _ => (1u64..6)
            .prop_map(|size| WindowKind::Count { size })
            .boxed(),
    }
}

pub(crate) fn case(which: u8, max_len: usize) -> impl Strategy<Value = Case> {
    (
        kind(which),
        any::<bool>(),
        prop_oneof![Just(0i64), 0i64..20],
        0i64..15,
        0i64..15,
        events(max_len),
    )
        .prop_map(|(kind, partitioned, lateness, ooo_a, ooo_b, events)| Case {
            kind,
            partitioned,
            lateness,
            ooo_a,
            ooo_b,
            events,
        })
}

/// The aggregates every differential case computes.
pub(crate) fn aggregates() -> Vec<Aggregate> {
    vec![
        Aggregate::count("n"),
        Aggregate::field("n_v", AggFn::Count, "v"),
        Aggregate::field("sum", AggFn::Sum, "v"),
        Aggregate::field("avg", AggFn::Avg, "v"),
        Aggregate::field("min", AggFn::Min, "v"),
        Aggregate::field("max", AggFn::Max, "v"),
        Aggregate::field("first", AggFn::First, "v"),
        Aggregate::field("last", AggFn::Last, "v"),
        Aggregate::field("sd", AggFn::StdDev, "v"),
        Aggregate::field("distinct", AggFn::CountDistinct, "v"),
        Aggregate::new(
            "sum_vq",
            AggFn::Sum,
            Binary::new(BinOp::Mul, Field::new("v"), Field::new("q")),
        ),
    ]
}

pub(crate) fn spec(c: &Case) -> WindowSpec {
    let mut s = WindowSpec::new("Out", c.kind).allowed_lateness(c.lateness);
    if c.partitioned {
        s = s.partition_by("k");
    }
    for a in aggregates() {
        s = s.aggregate(a);
    }
    s
}

pub(crate) fn tracker(c: &Case) -> WatermarkTracker {
    let mut t = WatermarkTracker::new();
    t.declare_source("A", c.ooo_a);
    t.declare_source("B", c.ooo_b);
    t
}

/// What a run produced: emitted windows in order, and the indices of late events.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Run {
    pub(crate) windows: Vec<WindowResult>,
    pub(crate) late: Vec<usize>,
}

/// Feeds `events[range]` (indices offset by `offset`) through tracker and operator.
pub(crate) fn feed(
    op: &mut WindowOperator,
    t: &mut WatermarkTracker,
    events: &[Event],
    offset: usize,
    run: &mut Run,
) {
    for (i, e) in events.iter().enumerate() {
        if op.process(e, &mut run.windows).expect("accepted time") == Outcome::Late {
            run.late.push(offset + i);
        }
        if let Some(wm) = t.observe(e) {
            op.advance_watermark(wm, &mut run.windows);
        }
    }
}

/// An uninterrupted run, flushed at the end.
pub(crate) fn run_operator(c: &Case) -> Run {
    let mut op = WindowOperator::new(spec(c)).expect("valid spec");
    let mut t = tracker(c);
    let mut run = Run::default();
    feed(&mut op, &mut t, &c.events, 0, &mut run);
    op.flush(&mut run.windows);
    assert_eq!(op.partition_count(), 0);
    assert_eq!(op.late_events_dropped(), run.late.len() as u64);
    run
}

/// An expected window.
#[derive(Debug)]
pub(crate) struct Expected {
    pub(crate) close_idx: usize,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) key: Value,
    pub(crate) members: Vec<usize>,
}

fn watermarks(c: &Case) -> Vec<Option<i64>> {
    let mut max: BTreeMap<&str, i64> = BTreeMap::new();
    let mut eff: Option<i64> = None;
    c.events
        .iter()
        .map(|e| {
            let m = max.entry(e.event_type()).or_insert(i64::MIN);
            *m = (*m).max(e.timestamp_ms());
            let min = max
                .iter()
                .map(|(s, m)| m - if *s == "A" { c.ooo_a } else { c.ooo_b })
                .min()
                .expect("one source");
            eff = Some(eff.map_or(min, |w| w.max(min)));
            eff
        })
        .collect()
}

fn key_of(c: &Case, e: &Event) -> Value {
    if c.partitioned {
        e.get("k").cloned().unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

/// The oracle: every window, in emission order, and the late event indices.
pub(crate) fn oracle(c: &Case) -> (Vec<Expected>, Vec<usize>) {
    let n = c.events.len();
    let wm_after = watermarks(c);
    let wm_before = |i: usize| if i == 0 { None } else { wm_after[i - 1] };
    let lat = c.lateness;
    let first_idx_where =
        |pred: &dyn Fn(i64) -> bool| (0..n).find(|&j| wm_after[j].is_some_and(pred)).unwrap_or(n);
    let ts = |i: usize| c.events[i].timestamp_ms();
    let mut out = Vec::new();
    let mut late = Vec::new();
    match c.kind {
        WindowKind::Tumbling { .. } | WindowKind::Sliding { .. } => {
            let (size, slide) = match c.kind {
                WindowKind::Tumbling { size_ms } => (size_ms, size_ms),
                WindowKind::Sliding { size_ms, slide_ms } => (size_ms, slide_ms),
                _ => unreachable!(),
            };
            let mut accepted = Vec::new();
            for i in 0..n {
                let latest_end = ts(i).div_euclid(slide) * slide + size;
                if wm_before(i).is_some_and(|w| w >= latest_end + lat) {
                    late.push(i);
                } else {
                    accepted.push(i);
                }
            }
            let mut windows = BTreeSet::new();
            for &i in &accepted {
                let mut s = ts(i).div_euclid(slide) * slide;
                while s > ts(i) - size {
                    windows.insert((key_of(c, &c.events[i]), s));
                    s -= slide;
                }
            }
            for (key, s) in windows {
                let end = s + size;
                let close_idx = first_idx_where(&|w| w >= end + lat);
                let members: Vec<usize> = accepted
                    .iter()
                    .copied()
                    .filter(|&i| {
                        i <= close_idx
                            && key_of(c, &c.events[i]) == key
                            && (s..end).contains(&ts(i))
                    })
                    .collect();
                if !members.is_empty() {
                    out.push(Expected {
                        close_idx,
                        start: s,
                        end,
                        key,
                        members,
                    });
                }
            }
        }
        WindowKind::Session { gap_ms: gap } => {
            let mut by_key: BTreeMap<Value, Vec<usize>> = BTreeMap::new();
            for i in 0..n {
                if wm_before(i).is_some_and(|w| ts(i) + lat < w) {
                    late.push(i);
                } else {
                    by_key.entry(key_of(c, &c.events[i])).or_default().push(i);
                }
            }
            for (key, mut idx) in by_key {
                idx.sort_by_key(|&i| (ts(i), i));
                let mut groups: Vec<Vec<usize>> = Vec::new();
                for i in idx {
                    match groups.last_mut() {
                        Some(g) if ts(i) - ts(*g.last().expect("non-empty")) <= gap => g.push(i),
                        _ => groups.push(vec![i]),
                    }
                }
                for mut g in groups {
                    let first = ts(g[0]);
                    let last = ts(*g.last().expect("non-empty"));
                    let close_idx = first_idx_where(&|w| w > last + gap + lat);
                    assert!(g.iter().all(|&i| i <= close_idx));
                    g.sort_unstable();
                    out.push(Expected {
                        close_idx,
                        start: first,
                        end: last + gap,
                        key: key.clone(),
                        members: g,
                    });
                }
            }
        }
        WindowKind::Count { size } => {
            let mut open: BTreeMap<Value, Vec<usize>> = BTreeMap::new();
            for i in 0..n {
                let key = key_of(c, &c.events[i]);
                let g = open.entry(key.clone()).or_default();
                g.push(i);
                if g.len() as u64 == size {
                    let members = std::mem::take(g);
                    open.remove(&key);
                    out.push(Expected {
                        close_idx: i,
                        start: ts(members[0]),
                        end: ts(i),
                        key,
                        members,
                    });
                }
            }
            for (key, members) in open {
                out.push(Expected {
                    close_idx: n,
                    start: ts(members[0]),
                    end: ts(*members.last().expect("non-empty")),
                    key,
                    members,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (a.close_idx, a.end)
            .cmp(&(b.close_idx, b.end))
            .then_with(|| a.key.cmp(&b.key))
    });
    (out, late)
}

/// Expected aggregate values over `members` (arrival order), by alias.
pub(crate) fn expected_fields(c: &Case, members: &[usize]) -> Vec<(&'static str, Value)> {
    let evs: Vec<(usize, &Event)> = members.iter().map(|&i| (i, &c.events[i])).collect();
    let v = |e: &Event| e.get("v").cloned().unwrap_or(Value::Null);
    let vq = |e: &Event| match (v(e), e.get("q").cloned().unwrap_or(Value::Null)) {
        (Value::Int(a), Value::Int(b)) => Value::Int(a * b),
        (Value::Float(a), Value::Int(b)) => Value::Float(a * b as f64),
        _ => Value::Null,
    };
    let non_null: Vec<(usize, i64, Value)> = evs
        .iter()
        .map(|(i, e)| (*i, e.timestamp_ms(), v(e)))
        .filter(|(_, _, x)| !x.is_null())
        .collect();
    let sum_of = |vals: Vec<Value>| {
        let nums: Vec<Value> = vals
            .into_iter()
            .filter(|x| matches!(x, Value::Int(_) | Value::Float(_)))
            .collect();
        if nums.is_empty() {
            return (Value::Null, Value::Null);
        }
        let f: f64 = nums.iter().map(|x| x.as_f64().expect("number")).sum();
        let avg = Value::Float(f / nums.len() as f64);
        if nums.iter().all(|x| matches!(x, Value::Int(_))) {
            (
                Value::Int(nums.iter().map(|x| x.as_i64().expect("int")).sum()),
                avg,
            )
        } else {
            (Value::Float(f), avg)
        }
    };
    let (sum, avg) = sum_of(non_null.iter().map(|x| x.2.clone()).collect());
    let (sum_vq, _) = sum_of(evs.iter().map(|(_, e)| vq(e)).collect());
    let nums: Vec<f64> = non_null.iter().filter_map(|x| x.2.as_f64()).collect();
    let sd = if nums.len() < 2 {
        Value::Null
    } else if nums.iter().any(|x| !x.is_finite()) {
        Value::Float(f64::NAN)
    } else {
        let mean = nums.iter().sum::<f64>() / nums.len() as f64;
        let m2: f64 = nums.iter().map(|x| (x - mean) * (x - mean)).sum();
        Value::Float((m2 / (nums.len() - 1) as f64).sqrt())
    };
    let pick = |best: Option<&(usize, i64, Value)>| best.map_or(Value::Null, |x| x.2.clone());
    vec![
        ("n", Value::Int(evs.len() as i64)),
        ("n_v", Value::Int(non_null.len() as i64)),
        ("sum", sum),
        ("avg", avg),
        (
            "min",
            non_null
                .iter()
                .map(|x| x.2.clone())
                .min()
                .unwrap_or(Value::Null),
        ),
        (
            "max",
            non_null
                .iter()
                .map(|x| x.2.clone())
                .max()
                .unwrap_or(Value::Null),
        ),
        ("first", pick(non_null.iter().min_by_key(|x| (x.1, x.0)))),
        ("last", pick(non_null.iter().max_by_key(|x| (x.1, x.0)))),
        ("sd", sd),
        (
            "distinct",
            Value::Int(non_null.iter().map(|x| &x.2).collect::<BTreeSet<_>>().len() as i64),
        ),
        ("sum_vq", sum_vq),
    ]
}

fn close_enough(alias: &str, got: &Value, want: &Value) -> bool {
    match (alias, got, want) {
        ("sd", Value::Float(a), Value::Float(b)) if a.is_finite() && b.is_finite() => {
            (a - b).abs() <= 1e-9 * b.abs().max(1e-9)
        }
        _ => got == want,
    }
}

/// Compares an operator run with the oracle; `Err` describes the first difference.
pub(crate) fn check(c: &Case, run: &Run) -> Result<(), String> {
    let (expected, late) = oracle(c);
    if run.late != late {
        return Err(format!("late events: got {:?}, want {late:?}", run.late));
    }
    if run.windows.len() != expected.len() {
        return Err(format!(
            "window count: got {} {:?}, want {} {:?}",
            run.windows.len(),
            run.windows
                .iter()
                .map(|w| (w.start_ms, w.end_ms, &w.key))
                .collect::<Vec<_>>(),
            expected.len(),
            expected
                .iter()
                .map(|w| (w.close_idx, w.start, w.end, &w.key))
                .collect::<Vec<_>>()
        ));
    }
    for (i, (got, want)) in run.windows.iter().zip(&expected).enumerate() {
        if (got.start_ms, got.end_ms, &got.key) != (want.start, want.end, &want.key)
            || got.event.timestamp_ms() != want.end
            || got.event.event_type() != "Out"
        {
            return Err(format!(
                "window {i}: got ({}, {}, {:?}), want ({}, {}, {:?})",
                got.start_ms, got.end_ms, got.key, want.start, want.end, want.key
            ));
        }
        let mut fields: Vec<(&str, &Value)> = got.event.fields().collect();
        if c.partitioned {
            let (name, key) = fields.remove(0);
            if name != "k" || *key != want.key {
                return Err(format!("window {i}: partition field {name}={key:?}"));
            }
        }
        let want_fields = expected_fields(c, &want.members);
        if fields.len() != want_fields.len() {
            return Err(format!("window {i}: fields {fields:?}"));
        }
        for ((name, value), (alias, want_value)) in fields.iter().zip(&want_fields) {
            if name != alias || !close_enough(alias, value, want_value) {
                return Err(format!(
                    "window {i} [{}, {}) key {:?}: {alias} = {value:?}, want {want_value:?} \
                     (members {:?})",
                    want.start, want.end, want.key, want.members
                ));
            }
        }
    }
    Ok(())
}
