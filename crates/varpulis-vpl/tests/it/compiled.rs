//! `CompiledExpr` gives what `Expr::eval` gives: differential tests over generated
//! expressions and events of changing shapes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use varpulis_core::{Event, Value};
use varpulis_vpl::{Bindings, CompiledExpr, Expr, Scope, parse_program};

/// The `.emit(x: ...)` expression of `stream S = E .emit(x: EXPR)`, or `None` when the checker
/// refuses the text.
fn emitted(expr: &str) -> Option<Expr> {
    let src = format!("var limit = 7\nstream S = E .emit(x: {expr})");
    let p = parse_program(&src).ok()?;
    let emit = p.streams[0].emit.as_ref()?;
    Some(emit[0].expr.clone())
}

fn variables() -> BTreeMap<String, Value> {
    BTreeMap::from([("limit".to_owned(), Value::Int(7))])
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned()),
        Just("limit".to_owned()),
        (-5i64..100).prop_map(|i| i.to_string()),
        (-50.0f64..150.0).prop_map(|f| format!("{f:.2}")),
        Just("\"z1\"".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
        Just("10s".to_owned()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    const OPS: [&str; 13] = [
        "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or",
    ];
    atom().prop_recursive(4, 24, 3, move |inner| {
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(&OPS[..]),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("not ({e})")),
            inner.prop_map(|e| format!("-({e})")),
        ]
    })
}

fn value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (-5i64..100).prop_map(|i| Some(Value::Int(i))),
        (-50.0f64..150.0).prop_map(|f| Some(Value::Float(f))),
        Just(Some(Value::from("z1"))),
        any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        Just(Some(Value::Null)),
    ]
}

/// An event with fields `a`, `b`, `c` (each possibly missing), in a generated order, so that
/// consecutive events have different shapes and the compiled field positions must move.
fn event() -> impl Strategy<Value = Event> {
    (value(), value(), value(), 0..6usize).prop_map(|(a, b, c, order)| {
        let mut fields: Vec<(&str, Value)> = [("a", a), ("b", b), ("c", c)]
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .collect();
        let n = fields.len().max(1);
        fields.rotate_left(order % n);
        if order >= 3 {
            fields.reverse();
        }
        Event::from_fields("E", 0, fields)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_expressions_evaluate_as_the_tree_does(
        text in expression(),
        events in proptest::collection::vec(event(), 1..8),
    ) {
        let parsed = emitted(&text);
        // Rejections count against proptest's limit: a generator the checker mostly refuses fails.
        prop_assume!(parsed.is_some());
        let expr = parsed.unwrap();
        let compiled = CompiledExpr::new(&expr);
        let vars = variables();
        for e in &events {
            let want = expr.eval(&Scope::empty().with_event(e).with_variables(&vars));
            let got = compiled.eval(&Bindings::event(e, &vars));
            // NaN results are equal as values (`Value` has a total order).
            prop_assert_eq!(&got, &want, "{} on {:?}", text, e);
            prop_assert_eq!(
                compiled.matches(&Bindings::event(e, &vars)),
                matches!(want, Value::Bool(true))
            );
        }
    }
}

#[test]
fn aliases_read_the_aggregated_row() {
    let src = "stream S = E .window(3) .aggregate(n: count(), m: max(v)) \
               .having(n > 2 and m >= 1.5) .emit(ratio: m / n)";
    let p = parse_program(src).unwrap();
    let having = p.streams[0].having.clone().unwrap();
    let emit = p.streams[0].emit.as_ref().unwrap()[0].expr.clone();
    let row = Event::new("S", 0).with_field("n", 3).with_field("m", 4.5);
    let vars = BTreeMap::new();
    let map: BTreeMap<String, Value> = row
        .fields()
        .map(|(n, v)| (n.to_owned(), v.clone()))
        .collect();
    let scope = Scope::empty().with_aliases(&map).with_variables(&vars);
    assert!(CompiledExpr::new(&having).matches(&Bindings::row(&row, &vars)));
    assert!(having.matches(&scope));
    assert_eq!(
        CompiledExpr::new(&emit).eval(&Bindings::row(&row, &vars)),
        Value::Float(1.5)
    );
}

#[test]
fn a_chain_of_twenty_thousand_terms_compiles_evaluates_and_drops_without_recursing() {
    let terms = vec!["a == 1"; 20_000].join(" or ");
    let expr = emitted(&terms).expect("a long chain parses");
    let compiled = CompiledExpr::new(&expr);
    let vars = BTreeMap::new();
    let hit = Event::new("E", 0).with_field("a", 1);
    let miss = Event::new("E", 0).with_field("a", "x");
    assert_eq!(
        compiled.eval(&Bindings::event(&hit, &vars)),
        Value::Bool(true)
    );
    assert_eq!(
        compiled.eval(&Bindings::event(&miss, &vars)),
        Value::Bool(false)
    );
    drop(compiled);
}
