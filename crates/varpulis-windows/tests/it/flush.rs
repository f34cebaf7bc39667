//! The incremental flush: bounded steps, same windows in the same order.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use varpulis_core::{Event, Value};
use varpulis_windows::{AggFn, Aggregate, WindowOperator, WindowSpec};

use crate::oracle::{Run, case, check, feed, spec, tracker};

#[test]
fn a_flush_of_86_million_pending_sliding_windows_is_emitted_a_bounded_step_at_a_time() {
    const DAY: i64 = 86_400_000;
    let spec = WindowSpec::sliding("S", DAY, 1)
        .partition_by("k")
        .aggregate(Aggregate::count("n"))
        .aggregate(Aggregate::field("top", AggFn::Max, "v"));
    let mut op = WindowOperator::new(spec).unwrap();
    let mut out = Vec::new();
    for (ts, k) in [(0, 1), (5, 2), (DAY, 1)] {
        let _ = op
            .process(
                &Event::new("E", ts).with_field("k", k).with_field("v", ts),
                &mut out,
            )
            .unwrap();
    }
    assert!(out.is_empty());
    // About 3 * 86.4 million windows are pending; each step holds at most 4096 of them.
    let mut ends = Vec::new();
    for _ in 0..3 {
        assert!(op.flush_step(&mut out, 4096));
        assert_eq!(out.len(), 4096);
        ends.extend(out.drain(..).map(|w| (w.end_ms, w.key)));
    }
    // By window end, then key: partition 1 ends at 1, 2, ...; partition 2 joins at end 6.
    assert_eq!(ends[0], (1, Value::Int(1)));
    assert_eq!(ends[5], (6, Value::Int(1)));
    assert_eq!(ends[6], (6, Value::Int(2)));
    assert!(ends.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(op.partition_count(), 2);
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0xf1a5_0011),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Differential against the brute-force oracle (which models the one-shot flush), for
    /// every window kind, partitioned or not, with the flush cut in random small steps.
    #[test]
    fn a_flush_in_small_steps_matches_the_oracle_for_every_window_kind(
        c in (0_u8..4).prop_flat_map(|which| case(which, 60)),
        steps in prop::collection::vec(1_usize..4, 1..6),
    ) {
        let mut op = WindowOperator::new(spec(&c)).expect("valid spec");
        let mut t = tracker(&c);
        let mut run = Run::default();
        feed(&mut op, &mut t, &c.events, 0, &mut run);
        let mut i = 0;
        loop {
            let len = run.windows.len();
            let more = op.flush_step(&mut run.windows, steps[i % steps.len()]);
            prop_assert!(run.windows.len() - len <= steps[i % steps.len()]);
            i += 1;
            if !more {
                break;
            }
        }
        prop_assert_eq!(op.partition_count(), 0);
        prop_assert!(check(&c, &run).is_ok(), "{}", check(&c, &run).unwrap_err());
    }
}
