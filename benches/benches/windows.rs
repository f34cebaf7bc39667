//! Window operator throughput (events/s on one core, pre-built events) and state per partition.
//!
//! Run: `cargo bench -p varpulis-benches --bench windows -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use varpulis_benches::Rng;
use varpulis_core::Event;
use varpulis_windows::{AggFn, Aggregate, WatermarkTracker, WindowOperator, WindowSpec};

const EVENTS: usize = 200_000;
/// Out-of-order bound declared for the source.
const OUT_OF_ORDER_MS: i64 = 5_000;

/// `n` events, one every `tenths_of_ms / 10` ms; `disorder` percent of them moved back by up to
/// 2 s (inside the declared 5 s bound, so none is late). `key_of(i, ts)` picks the key.
fn events(
    n: usize,
    tenths_of_ms: i64,
    disorder: u64,
    key_of: impl Fn(usize, i64, &mut Rng) -> i64,
) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let mut ts = i as i64 * tenths_of_ms / 10;
            let key = key_of(i, ts, &mut rng);
            if rng.next_u64() % 100 < disorder {
                ts -= (rng.next_u64() % 2_000) as i64;
            }
            Event::new("Reading", ts)
                .with_field("sensor", key)
                .with_field("value", (rng.next_u64() % 10_000) as f64 / 8.0)
        })
        .collect()
}

fn spec(base: WindowSpec) -> WindowSpec {
    base.partition_by("sensor")
        .aggregate(Aggregate::field("avg", AggFn::Avg, "value"))
        .aggregate(Aggregate::field("max", AggFn::Max, "value"))
        .aggregate(Aggregate::field("last", AggFn::Last, "value"))
}

/// Processes all events; returns (windows emitted, state bytes per partition at the end).
fn run(spec: &WindowSpec, events: &[Event]) -> (usize, usize) {
    let mut op = WindowOperator::new(spec.clone()).expect("valid spec");
    let mut tracker = WatermarkTracker::new();
    tracker.declare_source("Reading", OUT_OF_ORDER_MS);
    let mut out = Vec::new();
    let mut emitted = 0;
    for e in events {
        let _ = op.process(e, &mut out).expect("accepted time");
        if let Some(wm) = tracker.observe(e) {
            op.advance_watermark(wm, &mut out);
        }
        emitted += out.len();
        out.clear();
    }
    assert_eq!(op.late_events_dropped(), 0);
    let per_partition = op.approximate_state_bytes() / op.partition_count().max(1);
    (emitted, per_partition)
}

fn bench_case(c: &mut Criterion, group: &str, name: &str, spec: &WindowSpec, events: &[Event]) {
    let (emitted, per_partition) = run(spec, events);
    eprintln!(
        "{group}/{name}: {emitted} windows emitted, ~{per_partition} bytes of state per partition"
    );
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| run(spec, events))
    });
    g.finish();
}

fn windows(c: &mut Criterion) {
    let thousand_keys = |_: usize, _: i64, rng: &mut Rng| (rng.next_u64() % 1_000) as i64;
    for (label, disorder) in [("in_order", 0), ("ooo_20pct", 20)] {
        // 10 events per ms: 20 s of event time.
        let evs = events(EVENTS, 1, disorder, thousand_keys);
        bench_case(
            c,
            "tumbling_10s_1000_keys_avg_max_last",
            label,
            &spec(WindowSpec::tumbling("T", 10_000)),
            &evs,
        );
        // One event per 10 ms: 2,000 s of event time, so 5-minute windows do close.
        let ten_keys = events(EVENTS, 100, disorder, |_, _, rng| {
            (rng.next_u64() % 10) as i64
        });
        for slide in [60_000, 10_000, 1_000] {
            bench_case(
                c,
                "sliding_5m_10_keys_avg_max_last",
                &format!("{label}_slide_{}s", slide / 1000),
                &spec(WindowSpec::sliding("S", 300_000, slide)),
                &ten_keys,
            );
        }
        // The same number of windows emitted as 5 m every 1 s, but 10 slices per window instead
        // of 300: separates the cost of the slice count from the cost of emitting windows.
        bench_case(
            c,
            "sliding_10s_10_keys_avg_max_last",
            &format!("{label}_slide_1s"),
            &spec(WindowSpec::sliding("S", 10_000, 1_000)),
            &ten_keys,
        );
        // 1,000 keys in ten groups of 100; a group is active for 2 s every 4 s, so sessions
        // (gap 1 s) open and close all the time.
        let bursts = events(EVENTS, 1, disorder, |_, ts, rng| {
            (rng.next_u64() % 100) as i64 + 100 * ((ts / 2_000) % 2) + 200 * ((ts / 4_000) % 5)
        });
        bench_case(
            c,
            "session_1s_1000_keys_avg_max_last",
            label,
            &spec(WindowSpec::session("S", 1_000)),
            &bursts,
        );
    }
}

criterion_group!(benches, windows);
criterion_main!(benches);
