//! Hostile sizes and shapes: deep nesting, long chains, wide lines, overflowing literals. Each
//! is either accepted and handled without recursion per term, or an error naming line, column
//! and the limit; never a stack overflow. Deep work runs on a 2 MiB thread (the default for
//! spawned threads) so that a debug build of these tests proves the margin.

use std::collections::BTreeMap;

use varpulis_core::{Event, Value};
use varpulis_vpl::{EvtLine, MAX_NESTING, Scope, parse_evt_line, parse_program};

use crate::{error, plan};

/// Runs `f` on a thread with a 2 MiB stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn chain(terms: usize, term: impl Fn(usize) -> String, op: &str) -> String {
    (0..terms).map(term).collect::<Vec<_>>().join(op)
}

#[test]
fn a_100_000_term_or_chain_parses_checks_evaluates_prints_clones_and_drops() {
    on_small_stack(|| {
        let cond = chain(100_000, |i| format!("v == {i}"), " or ");
        let src = format!("stream S = T\n    .where({cond})");
        let program = plan(&src);
        let filter = program.streams[0].filter.clone().unwrap();
        let hit = Event::new("T", 0).with_field("v", 99_999);
        let miss = Event::new("T", 0).with_field("v", -1);
        let vars = BTreeMap::new();
        assert!(program.streams[0].accepts(&hit, &vars));
        assert!(!program.streams[0].accepts(&miss, &vars));
        let shown = filter.to_string();
        assert!(
            shown.starts_with(&"(".repeat(99_999)),
            "fully parenthesised"
        );
        assert!(
            shown.ends_with(" or (v == 99999))"),
            "{}",
            &shown[shown.len() - 40..]
        );
        assert!(format!("{filter:?}").starts_with("Expr { kind: Binary { op: Or, lhs: "));
        assert_eq!(filter, program.streams[0].filter.clone().unwrap());
        let mut other = filter.clone();
        other.span.end += 1;
        assert_ne!(filter, other);
        drop(other);
        drop(filter);
        drop(program);
    });
}

#[test]
fn a_100_000_term_sum_and_and_chain_evaluate_left_to_right() {
    on_small_stack(|| {
        let sum = chain(100_000, |_| "1".to_owned(), " + ");
        let all = chain(100_000, |i| format!("v > {}", -(i as i64)), " and ");
        let src = format!("var total: int = {sum}\nstream S = T .where({all}) .emit(n: {sum} - 1)");
        let program = plan(&src);
        assert_eq!(program.initial_variables()["total"], Value::Int(100_000));
        let stream = &program.streams[0];
        let event = Event::new("T", 0).with_field("v", 1);
        assert!(stream.accepts(&event, &BTreeMap::new()));
        let emit = &stream.emit.as_ref().unwrap()[0].expr;
        assert_eq!(
            emit.eval(&Scope::empty().with_event(&event)),
            Value::Int(99_999)
        );
    });
}

#[test]
fn a_long_chain_of_mismatched_types_is_checked_without_recursion() {
    on_small_stack(|| {
        let cond = format!("{} or \"x\"", chain(50_000, |_| "true".to_owned(), " or "));
        let errors = parse_program(&format!("stream S = T .where({cond})")).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(
            errors
                .first()
                .message
                .starts_with("\"or\" needs a bool operand, found str"),
            "{}",
            errors.first().message
        );
    });
}

#[test]
fn parentheses_nested_5000_deep_are_an_error_naming_line_column_and_the_limit() {
    let src = format!(
        "stream S = T\n  .where({}v > 1{})",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let d = error(&src);
    assert_eq!(d.message, "nesting deeper than 100 levels");
    // The 101st `(`: `  .where(` is 9 characters, then 100 accepted.
    assert_eq!((d.line, d.column), (2, 110));
    assert_eq!(d.expected.as_deref(), Some("at most 100 levels of nesting"));
}

#[test]
fn not_and_minus_count_as_nesting() {
    let nots = error(&format!("stream S = T .where({}v)", "not ".repeat(30_000)));
    assert_eq!(nots.message, "nesting deeper than 100 levels");
    let negs = error(&format!("stream S = T .where({}v > 1)", "-".repeat(30_000)));
    assert_eq!(negs.message, "nesting deeper than 100 levels");
    let calls = error(&format!(
        "stream S = T .window(1m) .aggregate(n: sum({}v{}))",
        "f(".repeat(200),
        ")".repeat(200)
    ));
    assert_eq!(calls.message, "nesting deeper than 100 levels");
}

/// An expression nested exactly `levels` deep, with every precedence level at each depth.
fn nested_expression(levels: usize) -> String {
    let mut e = String::from("v");
    // The `-` of the innermost parenthesis is the last level.
    for i in 0..levels - 1 {
        e = if i % 2 == 0 {
            format!("(v > 1 and {e} or v * -2 + 1 < 3)")
        } else {
            format!("not {e}")
        };
    }
    e
}

#[test]
fn nesting_at_the_limit_parses_checks_evaluates_and_prints_on_a_2_mib_stack() {
    on_small_stack(|| {
        let e = nested_expression(MAX_NESTING);
        let program = plan(&format!("stream S = T .where({e})"));
        let filter = program.streams[0].filter.clone().unwrap();
        let event = Event::new("T", 0).with_field("v", 2);
        assert_eq!(filter.eval(&event), Value::Bool(true));
        assert!(filter.to_string().len() > e.len());
        assert!(!format!("{filter:#?}").is_empty());
        assert_eq!(filter.clone(), filter);
        let deeper = nested_expression(MAX_NESTING + 1);
        let d = error(&format!("stream S = T .where({deeper})"));
        assert_eq!(d.message, "nesting deeper than 100 levels");
    });
}

#[test]
fn an_overflowing_window_size_is_named_with_the_maximum() {
    let d = error("stream S = T .window(999999999999d) .aggregate(n: count())");
    assert_eq!(
        d.message,
        "window size \"999999999999d\" overflows: the maximum is 106751991167d"
    );
    assert_eq!((d.line, d.column), (1, 22));
    let d =
        error("stream S = T .window(1m, sliding: 99999999999999999999ms) .aggregate(n: count())");
    assert_eq!(
        d.message,
        "slide \"99999999999999999999ms\" overflows: the maximum is 9223372036854775807ms"
    );
    let d = error("var d: duration = 999999999999d");
    assert_eq!(
        d.message,
        "duration \"999999999999d\" overflows: the maximum is 106751991167d"
    );
}

#[test]
fn a_float_literal_beyond_f64_is_an_error_not_infinity() {
    let d = error("stream S = T .where(v > 1e400)");
    assert_eq!(d.message, "number 1e400 is out of range for a float");
    assert_eq!((d.line, d.column), (1, 25));
}

#[test]
fn an_invalid_code_point_escape_is_named() {
    let d = error("var s: str = \"a\\u{110000}\"");
    assert_eq!(
        d.message,
        "invalid code point \\u{110000}: expected a Unicode scalar value, at most 10FFFF and \
         not a surrogate (D800 to DFFF)"
    );
    assert_eq!((d.line, d.column), (1, 16));
    assert_eq!(d.found.as_deref(), Some("\\u{110000}"));
    let d = error("var s: str = \"\\u{d800}\"");
    assert!(
        d.message.starts_with("invalid code point \\u{d800}"),
        "{}",
        d.message
    );
}

#[test]
fn a_byte_order_mark_before_a_program_is_skipped_and_not_counted_as_a_column() {
    let program = plan("\u{feff}stream S = T .where(v > 1)");
    assert_eq!(program.streams[0].name, "S");
    let src = "\u{feff}stream S = T .watermark(out_of_order: 10x)";
    let d = error(src);
    assert_eq!((d.line, d.column), (1, 39), "as without the mark");
    let shown = d.render(src, "p.vpl");
    assert!(!shown.contains('\u{feff}'), "{shown}");
    let caret = shown.lines().nth(4).unwrap();
    assert_eq!(caret.find('^'), Some(4 + 38), "{shown}");
}

#[test]
fn a_sliding_window_of_more_than_10_000_windows_per_event_is_a_warning_with_line_and_column() {
    let src = "stream S = T\n    .window(1d, sliding: 1ms)\n    .aggregate(n: count())";
    let program = plan(src);
    assert_eq!(program.warnings.len(), 1);
    let w = &program.warnings[0];
    assert_eq!(
        w.to_string(),
        "2:26: sliding window of 1d every 1ms puts each event in 86400000 windows: every event \
         updates them all and each partition keeps them all open"
    );
    assert_eq!(
        w.help.as_deref(),
        Some("use a slide of at least 8640ms, or a tumbling window .window(1d)")
    );
    let shown = w.render_warning(src, "p.vpl");
    assert!(
        shown.starts_with("warning: sliding window of 1d every 1ms"),
        "{shown}"
    );
    assert!(shown.contains(" --> p.vpl:2:26\n"), "{shown}");
}

#[test]
fn a_sliding_window_of_10_000_windows_per_event_draws_no_warning() {
    let program = plan("stream S = T .window(10s, sliding: 1ms) .aggregate(n: count())");
    assert!(program.warnings.is_empty(), "{:?}", program.warnings);
    assert!(
        plan("stream S = T .window(5m, sliding: 1m) .aggregate(n: count())")
            .warnings
            .is_empty()
    );
}

// ---- .evt lines ----

fn evt_fields(line: &str) -> Vec<(String, Value)> {
    match parse_evt_line(line) {
        Ok(EvtLine::Event { fields, .. }) => fields,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_evt_value_nested_20_000_deep_is_an_error_naming_the_column_and_the_limit() {
    let line = format!("T {{ a: {}1{} }}", "[".repeat(20_000), "]".repeat(20_000));
    let d = parse_evt_line(&line).unwrap_err();
    assert_eq!(d.message, "nesting deeper than 100 levels");
    // The event's braces are level 1, so the 100th `[` is one too many.
    assert_eq!((d.line, d.column), (1, 7 + 99 + 1));
    let maps = format!("T {{ {} 1 {} }}", "a: {".repeat(20_000), "}".repeat(20_000));
    assert_eq!(
        parse_evt_line(&maps).unwrap_err().message,
        "nesting deeper than 100 levels"
    );
}

#[test]
fn evt_values_nested_to_the_limit_parse_and_drop_on_a_2_mib_stack() {
    on_small_stack(|| {
        let depth = MAX_NESTING - 1;
        let line = format!(
            "T {{ a: {}1{} }}",
            "[{ b: ".repeat(depth / 2),
            " }]".repeat(depth / 2)
        );
        let event = parse_evt_line(&line).unwrap().to_event(0).unwrap();
        assert!(matches!(event.get("a"), Some(Value::Array(_))));
        drop(event);
    });
}

#[test]
fn an_evt_line_with_100_000_fields_becomes_an_event_with_every_field() {
    let body = chain(100_000, |i| format!("f{i}: {i}"), ", ");
    let line = format!("Wide {{ {body} }}");
    let fields = evt_fields(&line);
    assert_eq!(fields.len(), 100_000);
    let event = parse_evt_line(&line).unwrap().to_event(0).unwrap();
    assert_eq!(event.fields().len(), 100_000);
    assert_eq!(event.fields().last(), Some(("f99999", &Value::Int(99_999))));
    assert_eq!(event.get("f31"), Some(&Value::Int(31)));
}

#[test]
fn a_repeated_field_among_100_000_is_an_error_naming_it_and_its_first_column() {
    let body = chain(100_000, |i| format!("f{i}: {i}"), ", ");
    let line = format!("Wide {{ {body}, f17: 0 }}");
    let d = parse_evt_line(&line).unwrap_err();
    let first = line.find("f17:").unwrap() + 1;
    assert_eq!(
        d.message,
        format!("field \"f17\" appears twice (first at column {first})")
    );
}

#[test]
fn a_float_beyond_f64_in_an_evt_line_is_an_error_naming_the_field() {
    let d = parse_evt_line("T { x: 1e400 }").unwrap_err();
    assert_eq!(
        d.message,
        "field \"x\": number 1e400 is out of range for a float"
    );
    assert_eq!(d.column, 8);
    let d = parse_evt_line("T { a: { b: [1, -1e400] } }").unwrap_err();
    assert_eq!(
        d.message,
        "field \"a.b[1]\": number -1e400 is out of range for a float"
    );
    assert_eq!(evt_fields("T { x: 1e-400 }")[0].1, Value::Float(0.0));
}

#[test]
fn an_overflowing_evt_time_is_named_with_the_maximum() {
    let d = parse_evt_line("@999999999999d T {}").unwrap_err();
    assert_eq!(
        d.message,
        "time \"999999999999d\" overflows: the maximum is 106751991167d"
    );
}

// A byte-order mark before an `.evt` line is an error, not skipped: the file reader skips the
// one at the start of its file (fuzz_regressions.rs).
