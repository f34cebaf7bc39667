//! Sequence patterns and joins: the syntax of the reference grammar, what the plan holds, and
//! the errors for patterns that cannot work.

use varpulis_core::{Event, Value};
use varpulis_vpl::{CaptureFunc, ExprKind, Scope, Source, StepKind};

use crate::{errors, plan};

const FRAUD: &str = "\
event Login: user_id: str, ip: str
event Transaction: user_id: str, amount: float
event Cancel: user_id: str
stream Suspicious = Login as a -> Transaction where user_id == a.user_id and amount > 100 as b
    .within(5m)
    .not(Cancel where user_id == a.user_id)
    .partition_by(user_id)
    .emit(user: a.user_id, amount: b.amount)";

#[test]
fn a_followed_by_stream_plans_its_steps_aliases_negation_within_and_emit() {
    let p = plan(FRAUD);
    let s = p.stream("Suspicious").expect("stream");
    let pat = s.pattern.as_ref().expect("a pattern");
    assert_eq!(pat.steps.len(), 2);
    assert_eq!(pat.steps[0].atoms[0].source, Source::Event("Login".into()));
    assert_eq!(pat.steps[0].atoms[0].alias.as_deref(), Some("a"));
    assert_eq!(pat.steps[1].atoms[0].alias.as_deref(), Some("b"));
    assert_eq!(pat.within_ms, Some(300_000));
    assert_eq!(pat.not.len(), 1);
    assert_eq!(s.partition_by.as_deref(), Some("user_id"));
    let cond = pat.steps[1].atoms[0].filter.as_ref().expect("condition");
    let mut members = Vec::new();
    cond.walk(&mut |e| {
        if let ExprKind::Member { alias, field } = &e.kind {
            members.push(format!("{alias}.{field}"));
        }
    });
    assert_eq!(members, ["a.user_id"]);
    let emit = s.emit.as_ref().expect("emit");
    assert_eq!(emit[0].name, "user");
    assert!(
        matches!(&emit[0].expr.kind, ExprKind::Member { alias, field } if alias == "a" && field == "user_id")
    );
    assert!(
        pat.text.contains("Login as a -> Transaction where"),
        "{}",
        pat.text
    );
    let mut types = p.source_event_types();
    types.sort_unstable();
    assert_eq!(types, ["Cancel", "Login", "Transaction"]);
}

#[test]
fn kleene_steps_and_capture_functions_in_emit() {
    let p = plan(
        "stream Rising = Tick as first -> all Tick where price > first.price as up -> Drop as d
            .within(1m)
            .emit(n: len(up), total: sum(up.price), top: max(up.price), last_up: last(up.price))",
    );
    let pat = p.stream("Rising").unwrap().pattern.as_ref().unwrap();
    assert_eq!(pat.steps[1].kind, StepKind::Kleene);
    let emit = p.stream("Rising").unwrap().emit.as_ref().unwrap();
    let funcs: Vec<CaptureFunc> = emit
        .iter()
        .filter_map(|f| match &f.expr.kind {
            ExprKind::Capture { func, .. } => Some(*func),
            _ => None,
        })
        .collect();
    assert_eq!(
        funcs,
        [
            CaptureFunc::Len,
            CaptureFunc::Sum,
            CaptureFunc::Max,
            CaptureFunc::Last
        ]
    );
    // `first(up).price` is `first(up.price)`.
    let p2 = plan(
        "stream R = Tick as s -> all Tick as up -> Drop .within(1m) \
         .emit(a: first(up).price, b: last(up).price)",
    );
    let emit = p2.stream("R").unwrap().emit.as_ref().unwrap();
    assert!(matches!(
        &emit[0].expr.kind,
        ExprKind::Capture { func: CaptureFunc::First, alias, field: Some(f) } if alias == "up" && f == "price"
    ));
    // `B+` is the same step as `all B`.
    let plus = plan("stream R = A as a -> B+ as b -> C .emit(n: len(b))");
    let pat = plus.stream("R").unwrap().pattern.as_ref().unwrap();
    assert_eq!(pat.steps[1].kind, StepKind::Kleene);
}

#[test]
fn a_named_seq_pattern_with_not_kleene_or_and_is_used_by_a_stream() {
    let p = plan(
        "pattern P = SEQ(Login as l, NOT Logout, Transaction+ where amount > 100 as t, \
                         Alert OR Alarm as x, Ack AND Close) within 1h partition by user_id
         stream X = P .emit(user: user_id, n: len(t), total: sum(t.amount))",
    );
    let s = p.stream("X").unwrap();
    let pat = s.pattern.as_ref().unwrap();
    assert_eq!(pat.within_ms, Some(3_600_000));
    assert_eq!(s.partition_by.as_deref(), Some("user_id"));
    assert_eq!(pat.steps.len(), 4);
    assert_eq!(
        pat.steps[1].not_before.len(),
        1,
        "NOT Logout before the Kleene step"
    );
    assert_eq!(pat.steps[1].kind, StepKind::Kleene);
    assert_eq!(pat.steps[2].kind, StepKind::Any);
    assert_eq!(pat.steps[2].atoms.len(), 2);
    assert_eq!(pat.steps[3].kind, StepKind::All);
    // The partition key reads in `.emit` as the key column.
    assert!(matches!(&s.emit.as_ref().unwrap()[0].expr.kind, ExprKind::Alias(k) if k == "user_id"));
}

#[test]
fn a_trailing_not_is_an_absence() {
    let p = plan(
        "stream NoPay = Order as o -> NOT Payment where id == o.id .within(10m) .emit(id: o.id)",
    );
    let pat = p.stream("NoPay").unwrap().pattern.as_ref().unwrap();
    assert_eq!(pat.steps.len(), 1);
    assert_eq!(pat.absence.len(), 1);
}

#[test]
fn a_join_plans_inputs_keys_window_where_and_emit() {
    let p = plan(
        "event Orders: order_id: str, amount: float
         event Payments: order_id: str, paid: float
         stream Paid = join(Orders, Payments)
             .on(Orders.order_id == Payments.order_id)
             .window(5m)
             .where(Payments.paid >= Orders.amount)
             .emit(id: Orders.order_id, paid: Payments.paid)",
    );
    let s = p.stream("Paid").unwrap();
    let j = s.join.as_ref().unwrap();
    assert_eq!(
        j.inputs,
        [
            Source::Event("Orders".into()),
            Source::Event("Payments".into())
        ]
    );
    assert_eq!(
        j.keys,
        [vec!["order_id".to_owned()], vec!["order_id".to_owned()]]
    );
    assert_eq!(j.window_ms, 300_000);
    assert!(s.filter.is_some());
}

#[test]
fn a_join_of_a_windowed_stream_and_an_event_type_reads_the_streams_output() {
    let p = plan(
        "stream Totals = Txn .partition_by(account) .window(1m) .aggregate(total: sum(amount))
         stream Flagged = join(Totals, Limit) .on(Totals.account == Limit.account) .window(1m)
             .where(Totals.total > Limit.max) .emit(account: Totals.account)",
    );
    let names: Vec<&str> = p.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["Totals", "Flagged"],
        "the join comes after what it reads"
    );
    let j = p.stream("Flagged").unwrap().join.as_ref().unwrap();
    assert_eq!(j.inputs[0], Source::Stream("Totals".into()));
}

#[test]
fn member_access_reads_the_last_capture_through_the_evaluator() {
    struct Ctx(Vec<Event>);
    impl varpulis_vpl::EvalContext for Ctx {
        fn field(&self, _: &str) -> Option<Value> {
            None
        }
        fn variable(&self, _: &str) -> Option<Value> {
            None
        }
        fn alias(&self, _: &str) -> Option<Value> {
            None
        }
        fn member(&self, alias: &str, field: &str) -> Option<Value> {
            (alias == "b")
                .then(|| self.0.last()?.get(field).cloned())
                .flatten()
        }
        fn captured(&self, alias: &str) -> &[Event] {
            if alias == "b" { &self.0 } else { &[] }
        }
    }
    let p = plan(
        "stream R = A as a -> all B as b .within(1s) .emit(v: b.v, n: len(b), s: sum(b.v), m: avg(b.v))",
    );
    let emit = p.stream("R").unwrap().emit.clone().unwrap();
    let ctx = Ctx(vec![
        Event::new("B", 1).with_field("v", 2),
        Event::new("B", 2).with_field("v", 4),
    ]);
    let values: Vec<Value> = emit.iter().map(|f| f.expr.eval(&ctx)).collect();
    assert_eq!(
        values,
        [
            Value::Int(4),
            Value::Int(2),
            Value::Int(6),
            Value::Float(3.0)
        ]
    );
    // Outside a pattern there is nothing to read.
    assert_eq!(emit[0].expr.eval(&Scope::empty()), Value::Null);
}

#[test]
fn patterns_that_cannot_work_are_refused_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "stream S = A as a -> B where x == c.x as b .emit(x: a.x)",
            "unknown alias \"c\"",
        ),
        (
            "stream S = all A as a -> B .emit(n: len(a))",
            "cannot start with a Kleene step",
        ),
        (
            "stream S = A as a -> all B as b .emit(n: len(b))",
            "ends with a Kleene step needs `within`",
        ),
        (
            "stream S = A as a -> NOT B .emit(x: a.x)",
            "ends with NOT needs `within`",
        ),
        ("stream S = A as a -> B as b", "needs .emit(...)"),
        ("stream S = A as a -> B as a .emit(x: a.x)", "already taken"),
        (
            "stream S = A as a -> B as b .aggregate(n: count()) .emit(x: a.x)",
            ".aggregate is not available on a pattern stream",
        ),
        (
            "stream S = A .within(5m)",
            ".within is only available on a pattern stream",
        ),
        ("stream S = A .where(a.x > 1)", "this stream has neither"),
        (
            "stream S = join(A, B) .window(5m) .emit(x: A.x)",
            "needs .on(",
        ),
        (
            "stream S = join(A, B) .on(A.x == B.y) .emit(x: A.x)",
            "needs .window(d)",
        ),
        (
            "stream S = join(A, B) .on(A.x == A.y) .window(5m) .emit(x: A.x)",
            "both sides name A",
        ),
        (
            "stream S = join(A, B, C) .on(A.x == B.x) .window(5m) .emit(x: A.x)",
            "C has no field in the key",
        ),
        (
            "stream S = A as a -> B as b .emit(n: len(b.v))",
            "expected len(alias)",
        ),
        (
            "stream S = A as a -> B as b .emit(v: a)",
            "unknown name \"a\" in .emit",
        ),
    ];
    let wide = format!(
        "stream S = A as a -> {} .emit(x: a.x)",
        (0..65)
            .map(|i| format!("T{i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let errs = errors(&wide);
    assert!(
        errs.iter()
            .any(|(_, _, m)| m.contains("an AND step of 65 events: at most 64")),
        "{errs:?}"
    );
    for (src, want) in cases {
        let errs = errors(src);
        assert!(
            errs.iter().any(|(_, _, m)| m.contains(want)),
            "{src}\n  expected an error containing {want:?}\n  got {errs:?}"
        );
    }
}
