//! snapshot -> postcard encode -> decode -> restore -> continue gives exactly the output of an
//! uninterrupted run.

use proptest::prelude::*;
use varpulis_state::{WatermarkCheckpoint, WindowCheckpoint};
use varpulis_windows::{
    AggFn, Aggregate, WatermarkTracker, WindowError, WindowOperator, WindowSpec,
};

use crate::oracle::{Case, Run, case, feed, run_operator, spec, tracker};

fn interrupted(c: &Case, split: usize) -> Run {
    let split = split.min(c.events.len());
    let mut op = WindowOperator::new(spec(c)).expect("valid spec");
    let mut t = tracker(c);
    let mut run = Run::default();
    feed(&mut op, &mut t, &c.events[..split], 0, &mut run);
    let window_bytes = postcard::to_stdvec(&op.snapshot()).expect("encode");
    let wm_bytes = postcard::to_stdvec(&t.snapshot()).expect("encode");
    drop((op, t));
    let cp: WindowCheckpoint = postcard::from_bytes(&window_bytes).expect("decode");
    let wcp: WatermarkCheckpoint = postcard::from_bytes(&wm_bytes).expect("decode");
    let mut op = WindowOperator::new(spec(c)).expect("valid spec");
    op.restore(&cp).expect("same definition");
    let mut t = tracker(c);
    t.restore(&wcp);
    feed(&mut op, &mut t, &c.events[split..], split, &mut run);
    op.flush(&mut run.windows);
    assert_eq!(op.late_events_dropped(), run.late.len() as u64);
    run
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn restore_is_invisible_for_every_window_kind(
        c in (0u8..4).prop_flat_map(|w| case(w, 50)),
        split in 0usize..50,
    ) {
        let whole = run_operator(&c);
        let resumed = interrupted(&c, split);
        prop_assert_eq!(whole, resumed);
    }
}

#[test]
fn restoring_into_another_definition_is_a_clear_error() {
    let base = WindowSpec::tumbling("S", 1000).aggregate(Aggregate::field("a", AggFn::Avg, "v"));
    let op = WindowOperator::new(base.clone()).unwrap();
    let cp = op.snapshot();
    let others = [
        WindowSpec::tumbling("S", 2000).aggregate(Aggregate::field("a", AggFn::Avg, "v")),
        WindowSpec::sliding("S", 1000, 500).aggregate(Aggregate::field("a", AggFn::Avg, "v")),
        WindowSpec::session("S", 1000).aggregate(Aggregate::field("a", AggFn::Avg, "v")),
        WindowSpec::count("S", 1000).aggregate(Aggregate::field("a", AggFn::Avg, "v")),
        WindowSpec::tumbling("S", 1000).aggregate(Aggregate::field("a", AggFn::Max, "v")),
        base.clone().partition_by("zone"),
        base.clone().allowed_lateness(5),
    ];
    for other in others {
        let mut target = WindowOperator::new(other).unwrap();
        let err = target.restore(&cp).unwrap_err();
        assert!(
            matches!(err, WindowError::IncompatibleState { .. }),
            "{err}"
        );
    }
    let err = WindowOperator::new(WindowSpec::tumbling("S", 2000).aggregate(Aggregate::field(
        "a",
        AggFn::Avg,
        "v",
    )))
    .unwrap()
    .restore(&cp)
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint state does not match this operator: expected tumbling 2s [a=avg(v)] \
         lateness 0ms, found tumbling 1s [a=avg(v)] lateness 0ms"
    );
}

#[test]
fn restoring_impossible_contents_is_a_corrupt_state_error() {
    let spec = WindowSpec::tumbling("S", 1000).aggregate(Aggregate::field("a", AggFn::Avg, "v"));
    let mut op = WindowOperator::new(spec.clone()).unwrap();
    let mut out = Vec::new();
    let _ = op
        .process(
            &varpulis_core::Event::new("E", 10).with_field("v", 1),
            &mut out,
        )
        .unwrap();
    let mut cp = op.snapshot();
    cp.partitions[0].panes[0].start_ms = 7; // not aligned
    let mut fresh = WindowOperator::new(spec).unwrap();
    assert!(matches!(
        fresh.restore(&cp),
        Err(WindowError::CorruptState { .. })
    ));
    assert_eq!(fresh.partition_count(), 0);
}

#[test]
fn tracker_restore_keeps_the_effective_watermark() {
    let mut t = WatermarkTracker::new();
    t.observe_at("A", 100);
    let bytes = postcard::to_stdvec(&t.snapshot()).unwrap();
    let mut r = WatermarkTracker::new();
    r.restore(&postcard::from_bytes(&bytes).unwrap());
    assert_eq!(r.effective(), Some(100));
    assert_eq!(r.observe_at("A", 50), Some(100));
}
