//! Integration tests for varpulis-windows (one binary, a module per behaviour).

mod differential;
mod edges;
mod flush;
mod limits;
mod oracle;
mod restore;
mod state_size;

/// The seed's `.partition_by(zone) .aggregate(zone: last(zone), ...)`: the alias takes the
/// partition key's place in the output instead of being rejected as a duplicate field.
#[test]
fn an_aggregate_named_like_the_partition_field_replaces_the_key_column() {
    use varpulis_core::{Event, Value};
    use varpulis_windows::{AggFn, Aggregate, WindowOperator, WindowSpec};

    let spec = WindowSpec::tumbling("ZoneStats", 1_000)
        .partition_by("zone")
        .aggregate(Aggregate::field("zone", AggFn::Last, "zone"))
        .aggregate(Aggregate::field("max_temp", AggFn::Max, "value"));
    let mut op = WindowOperator::new(spec).unwrap();
    let mut out = Vec::new();
    for (ts, v) in [(100, 1.0), (200, 3.0)] {
        let e = Event::new("T", ts)
            .with_field("zone", "a")
            .with_field("value", v);
        let _ = op.process(&e, &mut out).unwrap();
    }
    op.advance_watermark(1_000, &mut out);
    assert_eq!(out.len(), 1);
    let fields: Vec<(&str, &Value)> = out[0].event.fields().collect();
    assert_eq!(
        fields,
        vec![
            ("zone", &Value::from("a")),
            ("max_temp", &Value::Float(3.0))
        ]
    );
    let twice = WindowSpec::tumbling("S", 1_000)
        .aggregate(Aggregate::count("n"))
        .aggregate(Aggregate::count("n"));
    assert!(WindowOperator::new(twice).is_err());
}
