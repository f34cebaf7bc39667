//! Every construct of the subset parses to the expected plan.

use varpulis_core::Value;
use varpulis_vpl::{AggFunc, ExprKind, Source, Type, WindowKind};

use crate::plan;

#[test]
fn zone_stats_seed_example_is_a_partitioned_tumbling_aggregate() {
    let p = plan(
        "stream ZoneStats = Temperatures
    .partition_by(zone)
    .window(5m)
    .aggregate(
        zone: last(zone),
        avg_temp: avg(value),
        max_temp: max(value)
    )",
    );
    assert!(p.events.is_empty());
    let s = &p.streams[0];
    assert_eq!(s.name, "ZoneStats");
    assert_eq!(s.source, Source::Event("Temperatures".into()));
    assert_eq!(s.partition_by.as_deref(), Some("zone"));
    assert_eq!(s.window, Some(WindowKind::Tumbling { size_ms: 300_000 }));
    let aggs: Vec<(&str, AggFunc, String)> = s
        .aggregates
        .iter()
        .map(|a| (a.alias.as_str(), a.func, a.to_string()))
        .collect();
    assert_eq!(
        aggs,
        [
            ("zone", AggFunc::Last, "last(zone)".to_owned()),
            ("avg_temp", AggFunc::Avg, "avg(value)".to_owned()),
            ("max_temp", AggFunc::Max, "max(value)".to_owned()),
        ]
    );
    assert_eq!(s.filter, None);
    assert_eq!(s.having, None);
    assert_eq!(s.emit, None);
    assert_eq!(
        s.output_fields(),
        Some(vec!["zone".into(), "avg_temp".into(), "max_temp".into()])
    );
}

#[test]
fn orders_seed_example_has_watermark_lateness_window_and_emit() {
    let p = plan(
        "stream Orders = OrderEvent
    .watermark(out_of_order: 10s)
    .allowed_lateness(30s)
    .window(1m)
    .aggregate(total: sum(amount))
    .emit(total_amount: total)",
    );
    let s = p.stream("Orders").unwrap();
    assert_eq!(s.source, Source::Event("OrderEvent".into()));
    assert_eq!(s.watermark_out_of_order_ms, Some(10_000));
    assert_eq!(s.allowed_lateness_ms, Some(30_000));
    assert_eq!(s.window, Some(WindowKind::Tumbling { size_ms: 60_000 }));
    assert_eq!(s.aggregates[0].func, AggFunc::Sum);
    let emit = s.emit.as_ref().unwrap();
    assert_eq!(emit.len(), 1);
    assert_eq!(emit[0].name, "total_amount");
    assert_eq!(emit[0].expr.kind, ExprKind::Alias("total".into()));
    assert_eq!(s.output_fields(), Some(vec!["total_amount".into()]));
    assert_eq!(p.source_event_types(), ["OrderEvent"]);
}

#[test]
fn reference_window_examples_parse_including_an_alias_named_count() {
    let p = plan(
        "# Tumbling window (non-overlapping)
stream Metrics = Events
    .window(5m)
    .aggregate(count: count())

# Sliding window (overlapping)
stream Metrics2 = Events
    .window(5m, sliding: 1m)
    .aggregate(avg_val: avg(value))",
    );
    let m = p.stream("Metrics").unwrap();
    assert_eq!(m.aggregates[0].alias, "count");
    assert_eq!(m.aggregates[0].func, AggFunc::Count);
    assert_eq!(m.aggregates[0].arg, None);
    assert_eq!(
        p.stream("Metrics2").unwrap().window,
        Some(WindowKind::Sliding {
            size_ms: 300_000,
            slide_ms: 60_000
        })
    );
}

#[test]
fn every_window_kind_parses() {
    let cases = [
        ("5m", WindowKind::Tumbling { size_ms: 300_000 }),
        ("500ms", WindowKind::Tumbling { size_ms: 500 }),
        (
            "1d",
            WindowKind::Tumbling {
                size_ms: 86_400_000,
            },
        ),
        (
            "1h, sliding: 15m",
            WindowKind::Sliding {
                size_ms: 3_600_000,
                slide_ms: 900_000,
            },
        ),
        (
            "1m, sliding: 1m",
            WindowKind::Sliding {
                size_ms: 60_000,
                slide_ms: 60_000,
            },
        ),
        ("session: 5s", WindowKind::Session { gap_ms: 5_000 }),
        ("100", WindowKind::Count { size: 100 }),
    ];
    for (args, expected) in cases {
        let src = format!("stream S = E .window({args}) .aggregate(n: count())");
        assert_eq!(plan(&src).streams[0].window, Some(expected), "{src}");
    }
}

#[test]
fn both_comment_styles_and_blank_lines_are_ignored() {
    let p = plan(
        "// header comment
# another

event E: x: int  # trailing
stream S = E // trailing
    # between ops
    .where(x > 1) // after an op
",
    );
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.streams[0].filter.as_ref().unwrap().to_string(), "(x > 1)");
}

#[test]
fn chains_work_on_one_line_and_across_lines() {
    let one = plan("stream S = E.where(x > 1).window(10).aggregate(n: count())");
    let many =
        plan("stream S = E\n.where(x > 1)\n\n   .window(10)\n\t.aggregate(\n n: count(),\n)");
    let a = &one.streams[0];
    let b = &many.streams[0];
    assert_eq!(a.window, b.window);
    assert_eq!(
        a.filter.as_ref().map(ToString::to_string),
        b.filter.as_ref().map(ToString::to_string)
    );
    assert_eq!(a.aggregates.len(), 1);
    assert_eq!(b.aggregates.len(), 1);
}

#[test]
fn event_declarations_accept_every_type_with_commas_or_newlines() {
    let p = plan(
        "event SensorEvent: value: float, zone: str, ok: bool, n: int, at: timestamp, d: duration, s: string
event Other:
    a: int
    b: float
stream S = SensorEvent .where(ok and n > 1 and d > 5s)",
    );
    let e = p.event("SensorEvent").unwrap();
    let types: Vec<(&str, Type)> = e.fields.iter().map(|f| (f.name.as_str(), f.ty)).collect();
    assert_eq!(
        types,
        [
            ("value", Type::Float),
            ("zone", Type::Str),
            ("ok", Type::Bool),
            ("n", Type::Int),
            ("at", Type::Timestamp),
            ("d", Type::Duration),
            ("s", Type::Str),
        ]
    );
    let o = p.event("Other").unwrap();
    assert_eq!(o.fields.len(), 2);
    assert_eq!(o.field("b").unwrap().ty, Type::Float);
}

#[test]
fn undeclared_event_types_are_sources_when_nothing_is_declared() {
    let p = plan("stream S = Anything .where(whatever > 1)");
    assert_eq!(p.streams[0].source, Source::Event("Anything".into()));
    let f = p.streams[0].filter.as_ref().unwrap();
    assert_eq!(f.fields(), ["whatever"]);
}

#[test]
fn var_let_and_assignment_give_typed_initial_values() {
    let p = plan(
        "var threshold: float = 10
let max_n: int = 5
var label = \"hot\"
var window_len: duration = 5s
var limit: float = threshold * 2
threshold := 12.5
threshold := threshold + 1",
    );
    let t = p.variable("threshold").unwrap();
    assert!(t.mutable);
    assert_eq!(t.ty, Type::Float);
    assert_eq!(t.value, Value::Float(10.0));
    let m = p.variable("max_n").unwrap();
    assert!(!m.mutable);
    assert_eq!((m.ty, &m.value), (Type::Int, &Value::Int(5)));
    assert_eq!(p.variable("label").unwrap().ty, Type::Str);
    assert_eq!(
        p.variable("window_len").unwrap().value,
        Value::Duration(5_000)
    );
    assert_eq!(p.variable("limit").unwrap().value, Value::Float(20.0));
    assert_eq!(p.assignments.len(), 2);
    assert_eq!(p.assignments[0].value, Value::Float(12.5));
    assert_eq!(p.assignments[1].value, Value::Float(13.5));
    let vars = p.initial_variables();
    assert_eq!(vars["threshold"], Value::Float(13.5));
    assert_eq!(vars["max_n"], Value::Int(5));
}

#[test]
fn names_resolve_to_variables_fields_and_aliases() {
    let p = plan(
        "event SensorEvent: value: float, zone: str
var threshold: float = 10.0
stream Hot = SensorEvent
    .where(value > threshold)
    .partition_by(zone)
    .window(1m)
    .aggregate(avg_v: avg(value))
    .having(avg_v > threshold)
    .emit(zone, level: avg_v - threshold)",
    );
    let s = &p.streams[0];
    let ExprKind::Binary { lhs, rhs, .. } = &s.filter.as_ref().unwrap().kind else {
        panic!()
    };
    assert_eq!(lhs.kind, ExprKind::Field("value".into()));
    assert_eq!(rhs.kind, ExprKind::Variable("threshold".into()));
    let ExprKind::Binary { lhs, .. } = &s.having.as_ref().unwrap().kind else {
        panic!()
    };
    assert_eq!(lhs.kind, ExprKind::Alias("avg_v".into()));
    let emit = s.emit.as_ref().unwrap();
    assert_eq!(emit[0].name, "zone");
    assert_eq!(emit[0].expr.kind, ExprKind::Alias("zone".into()));
    assert_eq!(emit[1].expr.to_string(), "(avg_v - threshold)");
}

#[test]
fn emit_without_a_window_projects_input_fields() {
    let p = plan(
        "event E: price: float, qty: int
stream Big = E .where(qty >= 10) .emit(value: price * qty, qty)",
    );
    let emit = p.streams[0].emit.as_ref().unwrap();
    assert_eq!(emit[0].expr.to_string(), "(price * qty)");
    assert_eq!(emit[1].expr.kind, ExprKind::Field("qty".into()));
    assert_eq!(p.streams[0].window, None);
}

#[test]
fn aggregates_take_any_expression_and_count_takes_zero_or_one() {
    let p = plan(
        "stream S = Trades .window(1m) .aggregate(
    n: count(), nn: count(price), v: sum(price * qty), sd: stddev(price),
    lo: min(price), hi: max(price), f: first(id), l: last(id), u: count_distinct(id))",
    );
    let funcs: Vec<String> = p.streams[0]
        .aggregates
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        funcs,
        [
            "count()",
            "count(price)",
            "sum((price * qty))",
            "stddev(price)",
            "min(price)",
            "max(price)",
            "first(id)",
            "last(id)",
            "count_distinct(id)"
        ]
    );
}

#[test]
fn streams_read_streams_and_come_in_dependency_order() {
    let p = plan(
        "event Reading: v: float, zone: str
stream Alerts = Hot .where(v > 50)
stream Hot = Reading .where(v > 30)
stream Stats = Alerts .partition_by(zone) .window(1m) .aggregate(n: count())
stream Summary = Stats .where(n > 2)",
    );
    let names: Vec<&str> = p.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Hot", "Alerts", "Stats", "Summary"]);
    assert_eq!(
        p.stream("Alerts").unwrap().source,
        Source::Stream("Hot".into())
    );
    assert_eq!(
        p.stream("Hot").unwrap().source,
        Source::Event("Reading".into())
    );
    // Downstream of an aggregate, the aliases are the fields.
    assert_eq!(
        p.stream("Summary")
            .unwrap()
            .filter
            .as_ref()
            .unwrap()
            .fields(),
        ["n"]
    );
}

#[test]
fn operators_have_the_usual_precedence() {
    let p =
        plan("stream S = E .where(a + b * c > 2 and not d or -e % 3 == 1 and (f - g) / h != 0.5)");
    assert_eq!(
        p.streams[0].filter.as_ref().unwrap().to_string(),
        "((((a + (b * c)) > 2) and (not d)) or ((((-e) % 3) == 1) and (((f - g) / h) != 0.5)))"
    );
}

#[test]
fn literals_of_every_kind_parse() {
    let p = plan(
        "stream S = E .where(a == 1 or b == 2.5 or c == \"x\\\"y\" or d == 'z' or e == true \
         or f == false or g == null or h > 10s or i < 1500ms or j == 1e3)",
    );
    assert_eq!(
        p.streams[0].filter.as_ref().unwrap().to_string(),
        "((((((((((a == 1) or (b == 2.5)) or (c == \"x\\\"y\")) or (d == \"z\")) or (e == true)) \
         or (f == false)) or (g == null)) or (h > 10s)) or (i < 1500ms)) or (j == 1000.0))"
    );
}

#[test]
fn spans_point_into_the_source() {
    let src = "stream S = E\n  .where(value > 10)";
    let p = plan(src);
    let f = p.streams[0].filter.as_ref().unwrap();
    assert_eq!(&src[f.span.start..f.span.end], "value > 10");
    assert_eq!(&src[p.streams[0].span.start..p.streams[0].span.end], "S");
}
