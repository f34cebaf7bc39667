//! `.evt` lines, good and bad.

use varpulis_core::Value;
use varpulis_vpl::{EvtLine, parse_evt_line};

fn event(line: &str) -> (Option<i64>, String, Vec<(String, Value)>) {
    match parse_evt_line(line) {
        Ok(EvtLine::Event {
            time,
            event_type,
            fields,
        }) => (time, event_type, fields),
        other => panic!("{line:?}: {other:?}"),
    }
}

fn f(name: &str, v: impl Into<Value>) -> (String, Value) {
    (name.to_owned(), v.into())
}

#[test]
fn parses_an_event_with_a_time_prefix() {
    assert_eq!(
        event("@9s SensorEvent { value: 999 }"),
        (Some(9_000), "SensorEvent".into(), vec![f("value", 999)])
    );
    assert_eq!(event("@1500ms T {}").0, Some(1_500));
    assert_eq!(event("@ 2m T {}").0, Some(120_000));
}

#[test]
fn a_line_without_a_prefix_has_no_time_of_its_own() {
    let line = parse_evt_line("T { a: 1 }").unwrap();
    assert!(matches!(line, EvtLine::Event { time: None, .. }));
    let e = line.to_event(7_000).unwrap();
    assert_eq!(e.timestamp_ms(), 7_000);
    assert_eq!(e.get("a"), Some(&Value::Int(1)));
}

#[test]
fn parses_every_value_kind() {
    let (_, _, fields) = event(
        r#"T { i: -5, fl: 2.5, e: 1e3, neg: -0.5, s: "a \"q\"\n", s2: 'x', t: true, fa: false, n: null, d: 10s, arr: [1, "two", [3]], m: { k: 1, "sp ace": 2 }, "quoted": 1, big: -9223372036854775808, }"#,
    );
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "i", "fl", "e", "neg", "s", "s2", "t", "fa", "n", "d", "arr", "m", "quoted", "big"
        ]
    );
    assert_eq!(fields[0].1, Value::Int(-5));
    assert_eq!(fields[1].1, Value::Float(2.5));
    assert_eq!(fields[2].1, Value::Float(1000.0));
    assert_eq!(fields[3].1, Value::Float(-0.5));
    assert_eq!(fields[4].1, Value::from("a \"q\"\n"));
    assert_eq!(fields[5].1, Value::from("x"));
    assert_eq!(fields[6].1, Value::Bool(true));
    assert_eq!(fields[7].1, Value::Bool(false));
    assert_eq!(fields[8].1, Value::Null);
    assert_eq!(fields[9].1, Value::Duration(10_000));
    assert_eq!(
        fields[10].1,
        Value::from(vec![
            Value::Int(1),
            Value::from("two"),
            Value::from(vec![Value::Int(3)])
        ])
    );
    assert_eq!(fields[11].1.to_string(), "{k: 1, sp ace: 2}");
    assert_eq!(fields[13].1, Value::Int(i64::MIN));
}

#[test]
fn comments_and_blank_lines_are_blank() {
    for line in ["", "   ", "# comment", "// comment", "  \t# indented"] {
        assert_eq!(parse_evt_line(line), Ok(EvtLine::Blank), "{line:?}");
    }
    assert_eq!(
        event("T { a: 1 } # trailing comment"),
        (None, "T".into(), vec![f("a", 1)])
    );
    assert_eq!(event("T { a: 1 } // trailing").2.len(), 1);
}

#[test]
fn bad_lines_report_column_expected_and_found() {
    let cases: &[(&str, u32, &str)] = &[
        ("@9x T {}", 2, "expected a duration like 10s, found \"9x\""),
        ("@9 T {}", 2, "expected a duration like 10s, found \"9\""),
        ("@ T {}", 3, "expected a duration like 10s, found \"T\""),
        (
            "T",
            2,
            "expected `{` after the event type, found end of input",
        ),
        (
            "{ a: 1 }",
            1,
            "expected an event like Type { field: value } or @10s Type { ... }, found \"{\"",
        ),
        (
            "T { a 1 }",
            7,
            "expected `:` after the field name, found \"1\"",
        ),
        ("T { a: 1 b: 2 }", 10, "expected `,` or `}`, found \"b\""),
        (
            "T { a: 1, }  x",
            14,
            "expected the end of the line after `}`, found \"x\"",
        ),
        (
            "T { a: }",
            8,
            "expected a value (number, string, true, false, null, [...] or {...}), found \"}\"",
        ),
        (
            "T { a: yes }",
            8,
            "expected a value (number, string, true, false, null, [...] or {...}), found \"yes\"",
        ),
        (
            "T { a: 1x }",
            8,
            "expected a number or a duration like 10s, found \"1x\"",
        ),
        (
            "T { a: \"open }",
            8,
            "unterminated string: expected a closing \" on the same line",
        ),
        (
            "T { a: 1, a: 2 }",
            11,
            "field \"a\" appears twice (first at column 5)",
        ),
        ("T { a: [1, 2 }", 14, "expected `,` or `]`, found \"}\""),
        ("T { a: 1", 9, "expected `,` or `}`, found end of input"),
        ("T { a: -x }", 9, "expected a number after `-`, found \"x\""),
    ];
    let mut failures = Vec::new();
    for &(line, column, message) in cases {
        match parse_evt_line(line) {
            Ok(v) => failures.push(format!("{line:?}: accepted as {v:?}")),
            Err(d) if (d.line, d.column, d.message.as_str()) == (1, column, message) => {}
            Err(d) => failures.push(format!(
                "{line:?}\n  expected {:?}\n  got      {:?}",
                (1, column, message),
                (d.line, d.column, d.message)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_diagnostic_can_be_moved_to_its_file_line_and_rendered() {
    let line = "@9x SensorEvent { value: 1 }";
    let d = parse_evt_line(line).unwrap_err().at_line(42);
    assert_eq!(
        d.to_string(),
        "42:2: expected a duration like 10s, found \"9x\""
    );
    assert_eq!(
        d.render(line, "events.evt"),
        "error: expected a duration like 10s, found \"9x\"
  --> events.evt:42:2
   |
42 | @9x SensorEvent { value: 1 }
   |  ^^
   = help: units are ms, s, m, h and d
"
    );
}
