//! Restore is invisible: a snapshot at any position, restored into a fresh operator, continues
//! exactly as the uninterrupted run.

use proptest::prelude::*;
use varpulis_patterns::{PatternError, PatternOperator};

use crate::{constructs, feed, run, spec, stream};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_snapshot_at_any_position_restores_into_the_same_continuation(
        (events, order) in stream(),
        cut in any::<prop::sample::Index>(),
    ) {
        for (name, p) in constructs() {
            let expected = run(&p, &events, &order);
            let at = if order.is_empty() { 0 } else { cut.index(order.len() + 1) };
            let mut first = PatternOperator::new(spec("P", &p)).expect("valid");
            let mut out = Vec::new();
            let mut max_seen = i64::MIN / 2;
            feed(&mut first, &events, &order[..at], &mut max_seen, &mut out);
            let state = first.snapshot();
            drop(first);
            let mut second = PatternOperator::new(spec("P", &p)).expect("valid");
            second.restore(&state).expect("restores");
            prop_assert_eq!(second.snapshot(), state.clone(), "construct {}: restore is lossless", name);
            feed(&mut second, &events, &order[at..], &mut max_seen, &mut out);
            second.flush(&mut out);
            prop_assert_eq!(out, expected, "construct {} cut at {}", name, at);
        }
    }
}

#[test]
fn a_state_of_another_pattern_is_refused_by_name_not_by_a_panic() {
    let all = constructs();
    let (_, kleene) = &all[1];
    let (_, seq) = &all[0];
    let mut op = PatternOperator::new(spec("P", kleene)).expect("valid");
    let e = |ty: &str, ts: i64| {
        varpulis_core::Event::new(ty, ts)
            .with_field("k", 0)
            .with_field("v", 5)
    };
    op.process(&e("A", 1));
    op.process(&e("B", 2));
    op.process(&e("B", 3));
    let mut out = Vec::new();
    op.advance_watermark(10, &mut out);
    let state = op.snapshot();
    let mut other = PatternOperator::new(spec("P", seq)).expect("valid");
    let err = other.restore(&state).expect_err("another shape");
    assert!(
        matches!(err, PatternError::IncompatibleState { .. }),
        "{err}"
    );
    // The same shape with a damaged run: a step past the end, too many slots, bad bits.
    let mut same = PatternOperator::new(spec("P", kleene)).expect("valid");
    for damage in 0..4 {
        let mut bad = state.clone();
        let run = &mut bad.partitions[0].runs[0];
        match damage {
            0 => run.step = 99,
            1 => run.captures.push(Vec::new()),
            2 => run.matched = 1 << 40,
            _ => run.id = bad.next_run + 5,
        }
        let err = same.restore(&bad).expect_err("damaged");
        assert!(
            matches!(err, PatternError::IncompatibleState { .. }),
            "{damage}: {err}"
        );
    }
    same.restore(&state).expect("the undamaged state");
}
