//! Sequence-pattern and join operator throughput (events/s on one core, pre-built events),
//! against a baseline that only evaluates a filter on the same events, and the state of open
//! runs (bytes per run, snapshot size and encode time as the number of runs grows).
//!
//! The `engine` group runs the same workloads end to end through the engine (VPL parsed and
//! compiled, conditions as compiled expressions, matches projected through `.emit`, the
//! watermark from the events), against the same events through a plain `.where` stream.
//!
//! Run: `cargo bench -p varpulis-benches --bench patterns -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use varpulis_benches::Rng;
use varpulis_core::{Event, Value};
use varpulis_patterns::{
    Atom, JoinInput, JoinOperator, JoinSpec, PatternOperator, PatternSpec, Step, StepSpec,
};

const EVENTS: usize = 200_000;
const KEYS: i64 = 1_000;
/// The watermark trails the newest event by this much (the events are in order).
const LAG_MS: i64 = 1_000;

/// One event per ms over `KEYS` users: `types[i]` picked at random, a value 0..100. Type and
/// field names are shared, as the engine's readers intern them.
fn events(types: &[&str]) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let types: Vec<Arc<str>> = types.iter().map(|t| Arc::from(*t)).collect();
    let (user, value): (Arc<str>, Arc<str>) = ("user".into(), "value".into());
    (0..EVENTS)
        .map(|i| {
            let ty = &types[(rng.next_u64() % types.len() as u64) as usize];
            Event::new(Arc::clone(ty), i as i64)
                .with_field(Arc::clone(&user), (rng.next_u64() % KEYS as u64) as i64)
                .with_field(Arc::clone(&value), (rng.next_u64() % 100) as i64)
        })
        .collect()
}

fn int(e: &Event, f: &str) -> i64 {
    match e.get(f) {
        Some(Value::Int(i)) => *i,
        _ => 0,
    }
}

/// `A as a -> B where value > a.value as b .within(60s) .partition_by(user)`.
fn sequence() -> PatternSpec {
    let mut s = PatternSpec::new(
        "Seq",
        vec![
            StepSpec::new(Step::Any(vec![Atom::new("A").alias("a")])),
            StepSpec::new(Step::Any(vec![Atom::new("B").alias("b").when(|e, b| {
                b.last("a")
                    .is_some_and(|a| int(e, "value") > int(a, "value"))
            })])),
        ],
    );
    s.within_ms = Some(60_000);
    s.partition_by = Some("user".to_owned());
    s
}

/// `A as a -> all B where value > 50 as b -> C as c .within(60s) .partition_by(user)`.
fn kleene() -> PatternSpec {
    let mut s = PatternSpec::new(
        "Kleene",
        vec![
            StepSpec::new(Step::Any(vec![Atom::new("A").alias("a")])),
            StepSpec::new(Step::Kleene(
                Atom::new("B").alias("b").when(|e, _| int(e, "value") > 50),
            )),
            StepSpec::new(Step::Any(vec![Atom::new("C").alias("c")])),
        ],
    );
    s.within_ms = Some(60_000);
    s.partition_by = Some("user".to_owned());
    s.max_runs = 100;
    s
}

fn run_pattern(spec: &PatternSpec, events: &[Event]) -> usize {
    let mut op = PatternOperator::new(spec.clone()).expect("valid");
    let mut out = Vec::new();
    let mut n = 0;
    for e in events {
        op.process(e);
        op.advance_watermark(e.timestamp_ms() - LAG_MS, &mut out);
        n += out.len();
        out.clear();
    }
    op.flush(&mut out);
    n + out.len()
}

fn join() -> JoinSpec {
    JoinSpec {
        name: "J".to_owned(),
        inputs: ["A", "B"]
            .iter()
            .map(|n| JoinInput {
                name: (*n).to_owned(),
                key_fields: vec!["user".to_owned()],
            })
            .collect(),
        window_ms: 5_000,
        max_keys: 100_000,
        text: String::new(),
    }
}

fn run_join(events: &[Event]) -> usize {
    let mut op = JoinOperator::new(join()).expect("valid");
    let mut out = Vec::new();
    let mut n = 0;
    for e in events {
        if let Some(input) = op.input_of(e.event_type()) {
            op.process(input, e);
        }
        op.advance_watermark(e.timestamp_ms() - LAG_MS, &mut out);
        n += out.len();
        out.clear();
    }
    op.flush(&mut out);
    n + out.len()
}

/// The baseline: the same events through a `.where(value > 50)` filter.
fn run_filter(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| e.event_type() == "B" && int(e, "value") > 50)
        .fold(0, |n, e| {
            black_box(e.clone());
            n + 1
        })
}

fn throughput(c: &mut Criterion) {
    let abc = events(&["A", "B", "C"]);
    let ab = events(&["A", "B"]);
    let mut g = c.benchmark_group("patterns");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("baseline filter", |b| {
        b.iter(|| run_filter(black_box(&abc)))
    });
    g.bench_function("A -> B within 60s, 1000 keys", |b| {
        b.iter(|| run_pattern(&sequence(), black_box(&ab)));
    });
    g.bench_function("A -> all B -> C within 60s, 1000 keys", |b| {
        b.iter(|| run_pattern(&kleene(), black_box(&abc)));
    });
    g.bench_function("join A, B on user window 5s", |b| {
        b.iter(|| run_join(black_box(&ab)));
    });
    g.finish();
}

fn engine(src: &str) -> varpulis_engine::Engine {
    let program = varpulis_vpl::parse_program(src).expect("valid VPL");
    varpulis_engine::Engine::new(program).expect("compiles")
}

/// The events through a fresh engine of `src`; the number of outputs (flushed at the end).
fn run_engine(src: &str, events: &[Event]) -> usize {
    let mut e = engine(src);
    let mut out = Vec::new();
    let mut n = 0;
    for ev in events {
        e.process(ev, &mut out).expect("accepted");
        n += out.len();
        out.clear();
    }
    e.flush(&mut out);
    n + out.len()
}

const VPL_WHERE: &str = "stream W = B .where(value > 50)";
const VPL_SEQUENCE: &str = "stream S = A as a -> B where value > a.value as b .within(60s) \
                            .partition_by(user) .emit(user: a.user, d: b.value - a.value)";
const VPL_KLEENE: &str = "stream K = A as a -> all B where value > 50 as b -> C as c \
                          .within(60s) .partition_by(user) .max_runs(100) \
                          .emit(user: a.user, n: len(b), total: sum(b.value))";
const VPL_JOIN: &str = "stream J = join(A, B) .on(A.user == B.user) .window(5s) \
                        .emit(user: A.user, a: A.value, b: B.value)";

fn end_to_end(c: &mut Criterion) {
    let abc = events(&["A", "B", "C"]);
    let ab = events(&["A", "B"]);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("baseline .where(value > 50)", |b| {
        b.iter(|| run_engine(VPL_WHERE, black_box(&abc)));
    });
    g.bench_function("A -> B within 60s, 1000 keys", |b| {
        b.iter(|| run_engine(VPL_SEQUENCE, black_box(&ab)));
    });
    g.bench_function("A -> all B -> C within 60s, 1000 keys", |b| {
        b.iter(|| run_engine(VPL_KLEENE, black_box(&abc)));
    });
    g.bench_function("join(A, B) on user window 5s", |b| {
        b.iter(|| run_engine(VPL_JOIN, black_box(&ab)));
    });
    g.finish();
    // What the workloads produce, for the matches/s figures.
    for (name, src, evs) in [
        ("sequence", VPL_SEQUENCE, &ab),
        ("kleene", VPL_KLEENE, &abc),
        ("join", VPL_JOIN, &ab),
    ] {
        println!(
            "{name}: {} outputs per {EVENTS} events",
            run_engine(src, evs)
        );
    }
}

/// `runs` open runs of `A -> B` (no `within`) over `KEYS` partitions.
fn with_runs(runs: usize) -> PatternOperator {
    let mut spec = sequence();
    spec.within_ms = None;
    spec.max_runs = usize::MAX;
    let mut op = PatternOperator::new(spec).expect("valid");
    let mut out = Vec::new();
    for i in 0..runs {
        op.process(
            &Event::new("A", i as i64)
                .with_field("user", (i as i64) % KEYS)
                .with_field("value", 1),
        );
    }
    op.advance_watermark(runs as i64 + 1, &mut out);
    assert_eq!(op.open_runs(), runs);
    op
}

/// State bytes per open run and snapshot size (printed), and the time of a snapshot encoded
/// with postcard as the number of open runs grows.
fn state_size(c: &mut Criterion) {
    println!("| open runs | state bytes | bytes per run | snapshot bytes (postcard) |");
    println!("|---|---|---|---|");
    let mut g = c.benchmark_group("pattern snapshot");
    for runs in [1_000usize, 10_000, 100_000] {
        let op = with_runs(runs);
        let bytes = postcard::to_allocvec(&op.snapshot())
            .expect("encodes")
            .len();
        let state = op.approximate_state_bytes();
        println!("| {runs} | {state} | {} | {bytes} |", state / runs);
        g.throughput(Throughput::Elements(runs as u64));
        g.bench_function(format!("snapshot + encode, {runs} runs"), |b| {
            b.iter(|| {
                postcard::to_allocvec(&op.snapshot())
                    .expect("encodes")
                    .len()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, throughput, end_to_end, state_size);
criterion_main!(benches);
