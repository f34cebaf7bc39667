//! State stays small: accumulators, not events; nothing left behind.

use varpulis_core::{Event, Value};
use varpulis_windows::{AggFn, Aggregate, WatermarkTracker, WindowOperator, WindowSpec};

#[test]
fn checkpoint_of_a_tumbling_avg_over_a_million_events_in_100_partitions_is_under_64_kib() {
    let spec = WindowSpec::tumbling("Avg", 60_000)
        .partition_by("sensor")
        .aggregate(Aggregate::field("avg", AggFn::Avg, "value"));
    let mut op = WindowOperator::new(spec).unwrap();
    let mut t = WatermarkTracker::new();
    t.declare_source("Reading", 1_000);
    let keys: Vec<Value> = (0..100).map(Value::Int).collect();
    let mut out = Vec::new();
    for i in 0..1_000_000_i64 {
        let e = Event::new("Reading", i / 4)
            .with_field("sensor", keys[(i % 100) as usize].clone())
            .with_field("value", (i % 1000) as f64 * 0.1);
        let _ = op.process(&e, &mut out).unwrap();
        if let Some(wm) = t.observe(&e) {
            op.advance_watermark(wm, &mut out);
        }
    }
    assert_eq!(out.len(), 4 * 100); // 250 s of event time: four closed minutes per sensor
    let bytes = postcard::to_stdvec(&op.snapshot()).unwrap();
    assert!(
        bytes.len() < 64 * 1024,
        "checkpoint is {} bytes",
        bytes.len()
    );
    assert!(op.partition_count() <= 100);
    let per_partition = op.approximate_state_bytes() / op.partition_count();
    assert!(per_partition < 1024, "{per_partition} bytes per partition");
}

#[test]
fn closed_windows_and_empty_partitions_leave_no_state() {
    let spec = WindowSpec::session("S", 10)
        .partition_by("k")
        .aggregate(Aggregate::field("d", AggFn::CountDistinct, "v"));
    let mut op = WindowOperator::new(spec).unwrap();
    let empty = op.approximate_state_bytes();
    let mut out = Vec::new();
    for i in 0..1000 {
        let _ = op
            .process(
                &Event::new("E", i / 50)
                    .with_field("k", i % 50)
                    .with_field("v", i),
                &mut out,
            )
            .unwrap();
    }
    assert_eq!(op.partition_count(), 50);
    assert!(op.approximate_state_bytes() > empty + 50 * 1000);
    op.advance_watermark(2000, &mut out);
    assert_eq!(out.len(), 50);
    assert_eq!(op.partition_count(), 0);
    assert_eq!(op.approximate_state_bytes(), empty);
    assert!(op.snapshot().partitions.is_empty());
}
