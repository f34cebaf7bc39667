//! Bounds: runs per partition and Kleene captures stay capped, and every drop is counted.

use varpulis_core::Event;
use varpulis_patterns::{Atom, PatternError, PatternOperator, PatternSpec, Step, StepSpec};

fn ev(ty: &str, ts: i64, k: i64) -> Event {
    Event::new(ty, ts).with_field("k", k).with_field("v", 1)
}

#[test]
fn a_million_starts_keep_the_runs_capped_and_count_the_evictions() {
    let mut spec = PatternSpec::new(
        "P",
        vec![
            StepSpec::new(Step::Any(vec![Atom::new("A").alias("a")])),
            StepSpec::new(Step::Any(vec![Atom::new("B").alias("b")])),
        ],
    );
    spec.partition_by = Some("k".to_owned());
    spec.max_runs = 100;
    let mut op = PatternOperator::new(spec).expect("valid");
    let mut out = Vec::new();
    let mut peak = 0;
    for i in 0..1_000_000i64 {
        op.process(&ev("A", i, i % 10));
        if i % 10_000 == 9_999 {
            op.advance_watermark(i, &mut out);
            peak = peak.max(op.approximate_state_bytes());
        }
    }
    op.flush(&mut out);
    assert!(out.is_empty());
    assert_eq!(op.open_runs(), 1_000, "100 per partition, 10 partitions");
    let c = op.counters();
    assert_eq!(c.runs_started, 1_000_000);
    assert_eq!(c.runs_evicted, 1_000_000 - 1_000);
    assert!(peak < 4 << 20, "state stays small: {peak} bytes at most");
}

#[test]
fn a_kleene_capture_past_its_cap_drops_the_run_and_counts_it() {
    let mut spec = PatternSpec::new(
        "P",
        vec![
            StepSpec::new(Step::Any(vec![Atom::new("A").alias("a")])),
            StepSpec::new(Step::Kleene(Atom::new("B").alias("b"))),
            StepSpec::new(Step::Any(vec![Atom::new("C").alias("c")])),
        ],
    );
    spec.max_kleene = 3;
    let mut op = PatternOperator::new(spec).expect("valid");
    let mut out = Vec::new();
    for (i, ty) in ["A", "B", "B", "B", "B", "C"].iter().enumerate() {
        op.process(&ev(ty, i as i64, 0));
    }
    op.flush(&mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(op.counters().kleene_overflows, 1);
    assert_eq!(
        op.open_runs(),
        0,
        "the run is gone, and its partition with it"
    );
    assert_eq!(op.partition_count(), 0);
}

#[test]
fn expired_and_late_are_counted_and_empty_partitions_leave() {
    let mut spec = PatternSpec::new(
        "P",
        vec![
            StepSpec::new(Step::Any(vec![Atom::new("A")])),
            StepSpec::new(Step::Any(vec![Atom::new("B")])),
        ],
    );
    spec.partition_by = Some("k".to_owned());
    spec.within_ms = Some(10);
    let mut op = PatternOperator::new(spec).expect("valid");
    let mut out = Vec::new();
    for k in 0..50 {
        op.process(&ev("A", k, k));
    }
    op.advance_watermark(100, &mut out);
    assert_eq!(op.partition_count(), 0);
    assert_eq!(op.counters().runs_expired, 50);
    op.process(&ev("B", 5, 1));
    assert_eq!(op.counters().late_events_dropped, 1);
    op.process(&Event::new("A", 200));
    op.advance_watermark(300, &mut out);
    assert_eq!(op.counters().events_without_key, 1);
}

#[test]
fn patterns_that_cannot_run_are_refused_with_the_reason() {
    let kleene = || StepSpec::new(Step::Kleene(Atom::new("B")));
    let one = || StepSpec::new(Step::Any(vec![Atom::new("A").alias("a")]));
    let cases: Vec<(PatternSpec, &str)> = vec![
        (PatternSpec::new("P", vec![]), "at least one step"),
        (PatternSpec::new("P", vec![kleene()]), "first step"),
        (
            PatternSpec::new("P", vec![one(), kleene()]),
            "needs `.within`",
        ),
        (
            PatternSpec::new("P", vec![one(), one()]),
            "alias `a` is used by two steps",
        ),
        (
            {
                let mut s = PatternSpec::new("P", vec![one()]);
                s.absence = vec![Atom::new("X")];
                s
            },
            "trailing `NOT` needs `.within`",
        ),
    ];
    for (spec, why) in cases {
        let err = PatternOperator::new(spec).expect_err(why);
        assert!(matches!(err, PatternError::Invalid { .. }));
        assert!(err.to_string().contains(why), "{err} should say {why}");
    }
}
