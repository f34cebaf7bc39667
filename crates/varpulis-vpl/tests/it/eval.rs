//! The evaluator's typing rules.

use std::collections::BTreeMap;

use varpulis_core::{Event, Value};
use varpulis_vpl::{Expr, Scope, parse_program};

/// Parses `expr` as a `.where` over an undeclared event type (every name is a field) and
/// evaluates it against `event`.
fn eval_on(expr: &str, event: &Event) -> Value {
    let src = format!("stream S = E .where(({expr}) == ({expr}) or true)");
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{}", e.render(&src, "t.vpl")));
    // Take the left operand of `==`: the expression itself.
    let f = p.streams[0].filter.clone().unwrap();
    let inner = left(&left(&f));
    inner.eval(event)
}

fn left(e: &Expr) -> Expr {
    match &e.kind {
        varpulis_vpl::ExprKind::Binary { lhs, .. } => (**lhs).clone(),
        _ => panic!("not binary: {e}"),
    }
}

fn eval(expr: &str) -> Value {
    eval_on(expr, &Event::new("E", 0))
}

#[test]
fn int_arithmetic_stays_int_and_division_is_float() {
    assert_eq!(eval("7 + 2"), Value::Int(9));
    assert_eq!(eval("7 - 9"), Value::Int(-2));
    assert_eq!(eval("7 * 3"), Value::Int(21));
    assert_eq!(eval("7 % 3"), Value::Int(1));
    assert_eq!(eval("-7 % 3"), Value::Int(-1));
    assert_eq!(eval("7 / 2"), Value::Float(3.5));
    assert_eq!(eval("6 / 3"), Value::Float(2.0));
    assert_eq!(eval("-(3)"), Value::Int(-3));
}

#[test]
fn any_float_operand_makes_a_float() {
    assert_eq!(eval("1 + 0.5"), Value::Float(1.5));
    assert_eq!(eval("2.5 * 2"), Value::Float(5.0));
    assert_eq!(eval("7.5 % 2"), Value::Float(1.5));
    assert_eq!(eval("-2.5"), Value::Float(-2.5));
}

#[test]
fn int_overflow_and_remainder_by_zero_fall_back_to_float() {
    assert_eq!(
        eval("9223372036854775807 + 1"),
        Value::Float(9_223_372_036_854_775_808.0)
    );
    assert_eq!(
        eval("-9223372036854775807 - 2"),
        Value::Float(-9_223_372_036_854_775_809.0)
    );
    assert!(matches!(eval("5 % 0"), Value::Float(f) if f.is_nan()));
    assert_eq!(eval("1 / 0"), Value::Float(f64::INFINITY));
}

#[test]
fn strings_concatenate_and_durations_do_time_arithmetic() {
    assert_eq!(eval("\"ab\" + \"cd\""), Value::from("abcd"));
    assert_eq!(eval("1m + 30s"), Value::Duration(90_000));
    assert_eq!(eval("1m - 2m"), Value::Duration(-60_000));
    assert_eq!(eval("2 * 5s"), Value::Duration(10_000));
    let e = Event::new("E", 0)
        .with_field("t", Value::Timestamp(1_000))
        .with_field("u", Value::Timestamp(400));
    assert_eq!(eval_on("t + 1s", &e), Value::Timestamp(2_000));
    assert_eq!(eval_on("t - u", &e), Value::Duration(600));
}

#[test]
fn null_and_missing_fields_propagate_through_arithmetic() {
    let e = Event::new("E", 0)
        .with_field("s", "x")
        .with_field("n", Value::Null);
    assert_eq!(eval_on("missing + 1", &e), Value::Null);
    assert_eq!(eval_on("n * 2", &e), Value::Null);
    assert_eq!(eval_on("-missing", &e), Value::Null);
    assert_eq!(eval_on("s - 1", &e), Value::Null);
    assert_eq!(eval("null + 1"), Value::Null);
}

#[test]
fn comparisons_compare_numbers_numerically() {
    assert_eq!(eval("1 == 1.0"), Value::Bool(true));
    assert_eq!(eval("1 < 1.5"), Value::Bool(true));
    assert_eq!(eval("2 >= 2.0"), Value::Bool(true));
    assert_eq!(
        eval("9007199254740993 > 9007199254740992.0"),
        Value::Bool(true)
    );
    assert_eq!(eval("\"a\" < \"b\""), Value::Bool(true));
    assert_eq!(eval("false < true"), Value::Bool(true));
    assert_eq!(eval("5s < 1m"), Value::Bool(true));
    assert_eq!(eval("(0.0 / 0.0) == (0.0 / 0.0)"), Value::Bool(false));
    assert_eq!(eval("(0.0 / 0.0) != 1"), Value::Bool(true));
}

#[test]
fn comparisons_with_null_or_mixed_types_are_false_except_inequality() {
    let e = Event::new("E", 0).with_field("s", "1").with_field("i", 1);
    assert_eq!(eval_on("missing > 1", &e), Value::Bool(false));
    assert_eq!(eval_on("missing <= 1", &e), Value::Bool(false));
    assert_eq!(eval_on("missing == 1", &e), Value::Bool(false));
    assert_eq!(eval_on("missing != 1", &e), Value::Bool(true));
    assert_eq!(eval_on("missing == null", &e), Value::Bool(true));
    assert_eq!(eval_on("s == i", &e), Value::Bool(false));
    assert_eq!(eval_on("s < i", &e), Value::Bool(false));
    assert_eq!(eval_on("s != i", &e), Value::Bool(true));
}

#[test]
fn logic_is_three_valued_over_bools() {
    let e = Event::new("E", 0)
        .with_field("t", true)
        .with_field("f", false);
    assert_eq!(eval_on("t and f", &e), Value::Bool(false));
    assert_eq!(eval_on("t or f", &e), Value::Bool(true));
    assert_eq!(eval_on("not f", &e), Value::Bool(true));
    assert_eq!(eval_on("missing and f", &e), Value::Bool(false));
    assert_eq!(eval_on("missing or t", &e), Value::Bool(true));
    assert_eq!(eval_on("missing and t", &e), Value::Null);
    assert_eq!(eval_on("missing or f", &e), Value::Null);
    assert_eq!(eval_on("not missing", &e), Value::Null);
}

#[test]
fn where_accepts_only_true() {
    let p = parse_program(
        "event E: v: float, ok: bool
var limit: float = 10
stream S = E .where(v > limit and ok)",
    )
    .unwrap();
    let vars = p.initial_variables();
    let s = &p.streams[0];
    let ev = |v: Value, ok: Value| Event::new("E", 0).with_field("v", v).with_field("ok", ok);
    assert!(s.accepts(&ev(Value::Float(11.0), Value::Bool(true)), &vars));
    assert!(!s.accepts(&ev(Value::Float(9.0), Value::Bool(true)), &vars));
    assert!(!s.accepts(&ev(Value::Float(11.0), Value::Null), &vars));
    assert!(!s.accepts(&Event::new("E", 0), &vars));
}

#[test]
fn having_and_emit_read_aliases_and_variables() {
    let p = parse_program(
        "var scale: int = 100
stream S = E .partition_by(zone) .window(1m)
    .aggregate(total: sum(amount), n: count())
    .having(n > 1)
    .emit(zone, avg: total / n, pct: total * scale)",
    )
    .unwrap();
    let vars = p.initial_variables();
    let s = &p.streams[0];
    let row: BTreeMap<String, Value> = [
        ("zone".to_owned(), Value::from("north")),
        ("total".to_owned(), Value::Int(9)),
        ("n".to_owned(), Value::Int(2)),
    ]
    .into_iter()
    .collect();
    let scope = Scope::empty().with_aliases(&row).with_variables(&vars);
    assert!(s.having.as_ref().unwrap().matches(&scope));
    let out: Vec<(String, Value)> = s
        .emit
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| (f.name.clone(), f.expr.eval(&scope)))
        .collect();
    assert_eq!(
        out,
        [
            ("zone".to_owned(), Value::from("north")),
            ("avg".to_owned(), Value::Float(4.5)),
            ("pct".to_owned(), Value::Int(900)),
        ]
    );
}

#[test]
fn aggregate_arguments_evaluate_per_event() {
    let p = parse_program("stream S = T .window(1m) .aggregate(v: sum(price * qty))").unwrap();
    let arg = p.streams[0].aggregates[0].arg.as_ref().unwrap();
    let e = Event::new("T", 0)
        .with_field("price", 2.5)
        .with_field("qty", 4);
    assert_eq!(arg.eval(&e), Value::Float(10.0));
    assert_eq!(arg.to_string(), "(price * qty)");
}
