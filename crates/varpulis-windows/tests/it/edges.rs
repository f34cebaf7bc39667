//! Named cases for the edges of the semantics.

use varpulis_core::{Event, Value};
use varpulis_windows::{
    AggFn, Aggregate, Outcome, WatermarkTracker, WindowError, WindowOperator, WindowResult,
    WindowSpec,
};

fn ev(ts: i64, v: impl Into<Value>) -> Event {
    Event::new("E", ts).with_field("v", v)
}

fn op(spec: WindowSpec) -> WindowOperator {
    WindowOperator::new(
        spec.aggregate(Aggregate::count("n"))
            .aggregate(Aggregate::field("sum", AggFn::Sum, "v")),
    )
    .unwrap()
}

/// Feeds events, advancing the watermark to each event's time (no out-of-order bound).
fn drive(op: &mut WindowOperator, events: &[Event]) -> (Vec<WindowResult>, Vec<Outcome>) {
    let mut t = WatermarkTracker::new();
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    for e in events {
        outcomes.push(op.process(e, &mut out).unwrap());
        if let Some(wm) = t.observe(e) {
            op.advance_watermark(wm, &mut out);
        }
    }
    (out, outcomes)
}

fn summary(out: &[WindowResult]) -> Vec<(i64, i64, Value, Value)> {
    out.iter()
        .map(|w| {
            (
                w.start_ms,
                w.end_ms,
                w.event.get("n").cloned().unwrap(),
                w.event.get("sum").cloned().unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_event_exactly_on_a_window_boundary_opens_the_next_window() {
    let mut o = op(WindowSpec::tumbling("T", 10));
    let (out, _) = drive(&mut o, &[ev(0, 1), ev(9, 2), ev(10, 4)]);
    // The event at 10 moves the watermark to 10 = end of [0, 10): closed at once, not on the
    // next event.
    assert_eq!(summary(&out), [(0, 10, Value::Int(2), Value::Int(3))]);
    let mut rest = Vec::new();
    o.flush(&mut rest);
    assert_eq!(summary(&rest), [(10, 20, Value::Int(1), Value::Int(4))]);
}

#[test]
fn windows_are_aligned_to_the_epoch_including_negative_times() {
    let mut o = op(WindowSpec::sliding("S", 10, 5));
    let (mut out, _) = drive(&mut o, &[ev(-3, 1), ev(7, 2)]);
    o.flush(&mut out);
    assert_eq!(
        summary(&out),
        [
            (-10, 0, Value::Int(1), Value::Int(1)),
            (-5, 5, Value::Int(1), Value::Int(1)),
            (0, 10, Value::Int(1), Value::Int(2)),
            (5, 15, Value::Int(1), Value::Int(2)),
        ]
    );
}

#[test]
fn a_session_gap_exactly_equal_to_the_gap_joins_the_session() {
    let mut o = op(WindowSpec::session("S", 5));
    let (out, _) = drive(&mut o, &[ev(0, 1), ev(5, 2), ev(10, 4), ev(16, 8)]);
    // 0, 5, 10 are one session (gaps of exactly 5); 16 is 6 after 10: a new session. The first
    // closes once the watermark is strictly past 10 + 5.
    assert_eq!(summary(&out), [(0, 15, Value::Int(3), Value::Int(7))]);
    let mut o = op(WindowSpec::session("S", 5));
    let (out, _) = drive(&mut o, &[ev(0, 1), ev(5, 2), ev(10, 4), ev(15, 8)]);
    assert!(out.is_empty(), "watermark 15 is not strictly past 10 + 5");
}

#[test]
fn an_out_of_order_event_bridges_two_sessions_into_one() {
    let mut o = op(WindowSpec::session("S", 5));
    let mut t = WatermarkTracker::new();
    t.declare_source("E", 100);
    let mut out = Vec::new();
    for e in [ev(0, 1), ev(8, 2), ev(4, 4)] {
        assert_eq!(o.process(&e, &mut out), Ok(Outcome::Accepted));
        if let Some(w) = t.observe(&e) {
            o.advance_watermark(w, &mut out);
        }
    }
    assert_eq!(o.snapshot().partitions[0].panes.len(), 1);
    o.flush(&mut out);
    assert_eq!(summary(&out), [(0, 13, Value::Int(3), Value::Int(7))]);
}

#[test]
fn a_late_event_one_millisecond_inside_the_allowed_lateness_is_accepted() {
    let mut o = op(WindowSpec::tumbling("T", 10).allowed_lateness(5));
    let (out, outcomes) = drive(&mut o, &[ev(0, 1), ev(14, 2), ev(9, 4)]);
    assert_eq!(outcomes, [Outcome::Accepted; 3]);
    assert!(out.is_empty(), "watermark 14 < end 10 + lateness 5");
    let (out, _) = drive(&mut o, &[ev(15, 8)]);
    assert_eq!(summary(&out), [(0, 10, Value::Int(2), Value::Int(5))]);
    assert_eq!(o.late_events_dropped(), 0);
}

#[test]
fn a_late_event_one_millisecond_outside_the_allowed_lateness_is_dropped_and_counted() {
    let mut o = op(WindowSpec::tumbling("T", 10).allowed_lateness(5));
    let (out, outcomes) = drive(&mut o, &[ev(0, 1), ev(15, 2), ev(9, 4)]);
    assert_eq!(
        outcomes,
        [Outcome::Accepted, Outcome::Accepted, Outcome::Late]
    );
    assert_eq!(summary(&out), [(0, 10, Value::Int(1), Value::Int(1))]);
    assert_eq!(o.late_events_dropped(), 1);
    assert_eq!(o.snapshot().late_events_dropped, 1);
}

#[test]
fn session_lateness_is_measured_from_the_watermark() {
    let mut o = op(WindowSpec::session("S", 3).allowed_lateness(5));
    let (_, outcomes) = drive(&mut o, &[ev(100, 1), ev(95, 1), ev(94, 1)]);
    assert_eq!(
        outcomes,
        [Outcome::Accepted, Outcome::Accepted, Outcome::Late]
    );
}

#[test]
fn an_event_late_for_one_sliding_window_still_counts_in_the_later_ones() {
    let mut o = op(WindowSpec::sliding("S", 10, 5));
    let (out, outcomes) = drive(&mut o, &[ev(0, 1), ev(10, 2), ev(7, 4)]);
    assert_eq!(outcomes, [Outcome::Accepted; 3]);
    // [0, 10) closed at watermark 10 without the event at 7; [5, 15) will include it.
    assert_eq!(
        summary(&out),
        [
            (-5, 5, Value::Int(1), Value::Int(1)),
            (0, 10, Value::Int(1), Value::Int(1))
        ]
    );
    let mut rest = Vec::new();
    o.flush(&mut rest);
    assert_eq!(
        summary(&rest),
        [
            (5, 15, Value::Int(2), Value::Int(6)),
            (10, 20, Value::Int(1), Value::Int(2))
        ]
    );
}

#[test]
fn a_silent_source_holds_the_watermark_until_it_is_marked_idle() {
    let mut o = op(WindowSpec::tumbling("T", 10));
    let mut t = WatermarkTracker::new();
    let mut out = Vec::new();
    let a = |ts| Event::new("A", ts).with_field("v", 1);
    for e in [a(1), Event::new("B", 2).with_field("v", 1), a(30), a(50)] {
        let _ = o.process(&e, &mut out).unwrap();
        if let Some(w) = t.observe(&e) {
            o.advance_watermark(w, &mut out);
        }
    }
    assert!(
        out.is_empty(),
        "B is silent at 2: the effective watermark waits for it"
    );
    let w = t.mark_idle("B").unwrap();
    assert_eq!(w, 50);
    o.advance_watermark(w, &mut out);
    assert_eq!(
        summary(&out),
        [
            (0, 10, Value::Int(2), Value::Int(2)),
            (30, 40, Value::Int(1), Value::Int(1))
        ]
    );
    // Or force progress explicitly.
    let w = t.advance_to(60).unwrap();
    o.advance_watermark(w, &mut out);
    assert_eq!(out.len(), 3);
}

#[test]
fn partitions_keep_value_types_and_are_emitted_in_value_order() {
    let mut o = op(WindowSpec::tumbling("T", 10).partition_by("k"));
    let mut out = Vec::new();
    for k in [
        Value::from("1"),
        Value::Float(1.0),
        Value::Int(1),
        Value::Null,
    ] {
        let e = Event::new("E", 3).with_field("k", k).with_field("v", 1);
        let _ = o.process(&e, &mut out).unwrap();
    }
    let _ = o
        .process(&Event::new("E", 4).with_field("v", 1), &mut out)
        .unwrap(); // missing key -> Null
    o.advance_watermark(10, &mut out);
    let keys: Vec<Value> = out.iter().map(|w| w.key.clone()).collect();
    assert_eq!(
        keys,
        [
            Value::Null,
            Value::Int(1),
            Value::Float(1.0),
            Value::from("1")
        ]
    );
    assert_eq!(out[0].event.get("n"), Some(&Value::Int(2)));
    let names: Vec<&str> = out[1].event.fields().map(|(n, _)| n).collect();
    assert_eq!(names, ["k", "n", "sum"]);
}

#[test]
fn windows_closed_by_one_advance_are_ordered_by_end_then_key() {
    let mut o = op(WindowSpec::tumbling("T", 10).partition_by("k"));
    let mut out = Vec::new();
    for (ts, k) in [(25, 1), (5, 2), (15, 1), (5, 1)] {
        let _ = o
            .process(
                &Event::new("E", ts).with_field("k", k).with_field("v", 1),
                &mut out,
            )
            .unwrap();
    }
    o.advance_watermark(100, &mut out);
    let order: Vec<(i64, Value)> = out.iter().map(|w| (w.end_ms, w.key.clone())).collect();
    assert_eq!(
        order,
        [
            (10, Value::Int(1)),
            (10, Value::Int(2)),
            (20, Value::Int(1)),
            (30, Value::Int(1))
        ]
    );
    // Each window is emitted once: advancing again (or backwards) emits nothing.
    o.advance_watermark(200, &mut out);
    o.advance_watermark(50, &mut out);
    assert_eq!(out.len(), 4);
    assert_eq!(o.watermark(), Some(200));
}

#[test]
fn count_windows_emit_every_n_events_per_partition_stamped_with_the_last_event() {
    let mut o = op(WindowSpec::count("C", 2).partition_by("k"));
    let mut out = Vec::new();
    for (ts, k) in [(5, 1), (1, 2), (3, 1), (9, 2), (2, 1)] {
        let _ = o
            .process(
                &Event::new("E", ts).with_field("k", k).with_field("v", ts),
                &mut out,
            )
            .unwrap();
    }
    let got: Vec<(i64, i64, Value, Value)> = summary(&out);
    assert_eq!(
        got,
        [
            (5, 3, Value::Int(2), Value::Int(8)),
            (1, 9, Value::Int(2), Value::Int(10))
        ]
    );
    assert_eq!(out[0].event.timestamp_ms(), 3);
    assert_eq!(o.partition_count(), 1);
}

#[test]
fn nulls_are_ignored_and_nan_is_a_value() {
    let spec = WindowSpec::tumbling("T", 10)
        .aggregate(Aggregate::count("n"))
        .aggregate(Aggregate::field("n_v", AggFn::Count, "v"))
        .aggregate(Aggregate::field("avg", AggFn::Avg, "v"))
        .aggregate(Aggregate::field("max", AggFn::Max, "v"))
        .aggregate(Aggregate::field("min", AggFn::Min, "v"));
    let mut o = WindowOperator::new(spec).unwrap();
    let mut out = Vec::new();
    for e in [
        ev(1, 2.0),
        Event::new("E", 2),
        ev(3, f64::NAN),
        ev(4, Value::Null),
    ] {
        let _ = o.process(&e, &mut out).unwrap();
    }
    o.flush(&mut out);
    let w = &out[0].event;
    assert_eq!(w.get("n"), Some(&Value::Int(4)));
    assert_eq!(w.get("n_v"), Some(&Value::Int(2)));
    assert!(matches!(w.get("avg"), Some(Value::Float(x)) if x.is_nan()));
    assert_eq!(w.get("max"), Some(&Value::Float(f64::NAN)));
    assert_eq!(w.get("min"), Some(&Value::Float(2.0)));
}

#[test]
fn invalid_definitions_are_rejected() {
    for spec in [
        WindowSpec::tumbling("T", 0),
        WindowSpec::sliding("T", 10, 20),
        WindowSpec::sliding("T", 10, 0),
        WindowSpec::session("T", -1),
        WindowSpec::count("T", 0),
        WindowSpec::tumbling("T", 10).allowed_lateness(-1),
        WindowSpec::tumbling("T", 10)
            .aggregate(Aggregate::count("n"))
            .aggregate(Aggregate::count("n")),
    ] {
        assert!(matches!(
            WindowOperator::new(spec),
            Err(WindowError::InvalidSpec { .. })
        ));
    }
}

#[test]
fn float_sums_do_not_depend_on_arrival_order() {
    let spec =
        || WindowSpec::sliding("S", 30, 10).aggregate(Aggregate::field("sum", AggFn::Sum, "v"));
    let values = [0.1, 1e16, 0.2, -1e16, 0.3, 1.0 / 3.0];
    let run = |order: &[usize]| {
        let mut o = WindowOperator::new(spec()).unwrap();
        let mut out = Vec::new();
        for &i in order {
            let _ = o.process(&ev(i as i64 * 5, values[i]), &mut out).unwrap();
        }
        o.flush(&mut out);
        out
    };
    let forward = run(&[0, 1, 2, 3, 4, 5]);
    let shuffled = run(&[3, 5, 0, 4, 1, 2]);
    assert_eq!(forward, shuffled);
    assert_eq!(
        forward[2].event.get("sum"),
        Some(&Value::Float(0.1 + 0.2 + 0.3 + 1.0 / 3.0))
    );
}
