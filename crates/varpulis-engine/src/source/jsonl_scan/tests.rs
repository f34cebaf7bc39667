//! Differential tests of the scanner against the reference parser: fixed cases, and
//! generated lines (valid, erroneous, mutated) on which fast and slow must agree.

use proptest::prelude::*;

use super::*;

/// The scanner agrees with `parse_json_line` on `line`, and when its fast path takes the
/// line it builds the same event. Returns whether the fast path took it.
fn agree(s: &mut JsonlScanner, line: &str) -> bool {
    let want = parse_json_line(line, 7);
    let fast = s.fast(line, 7);
    if let Some(event) = &fast {
        assert_eq!(
            Ok(Some(event)),
            want.as_ref().map(Option::as_ref),
            "the fast path accepted {line:?} differently"
        );
    }
    assert_eq!(s.parse(line, 7), want, "{line:?}");
    fast.is_some()
}

#[test]
fn the_fast_path_takes_the_common_lines() {
    let mut s = JsonlScanner::new();
    for line in [
        r#"{"event_type":"SensorEvent","timestamp":1700000000000,"fields":{"zone":"z07","value":12.5}}"#,
        r#"{"event_type":"SensorEvent","timestamp":1700000000001,"fields":{"zone":"z08","value":-3}}"#,
        r#"{"event_type":"A","timestamp":5,"fields":{"x":1,"y":2.5}}"#,
        r#"{"event_type":"B","timestamp":"1970-01-01T00:00:01.5+00:00","z":"s"}"#,
        r#"{"event_type":"C","n":null}"#,
        r#" { "event_type" : "C" , "timestamp" : null , "b" : true , "a" : false } "#,
        r#"{"event_type":"T","fields":{}}"#,
        r#"{"fields":{"event_type":"inner"},"event_type":"T"}"#,
        r#"{"event_type":"T","a":[1,[2,[]],{"k":"v"}],"m":{"b":1,"a":{}}}"#,
        r#"{"event_type":"T","x":-0,"y":-0.0,"z":0e5,"w":1E-3,"v":123456789012345678}"#,
        r#"{"event_type":"T","big":12345678901234567890,"long":0.30000000000000004}"#,
        r#"{"event_type":"T","e":1.5e300,"s":"tab\tq\"uote\\ \/ é"}"#,
    ] {
        assert!(agree(&mut s, line), "fell back on {line:?}");
    }
}

#[test]
fn the_fast_path_leaves_errors_and_rare_forms_to_the_parser() {
    let mut s = JsonlScanner::new();
    for line in [
        "",
        "   ",
        "[1]",
        r#"{"x":1}"#,
        "{}",
        r#"{"event_type": }"#,
        r#"{"event_type":""}"#,
        r#"{"event_type":1}"#,
        r#"{"event_type":"A","timestamp":"yesterday"}"#,
        r#"{"event_type":"A","timestamp":1.5}"#,
        r#"{"event_type":"A","timestamp":true}"#,
        r#"{"event_type":"A","timestamp":1,"timestamp":2}"#,
        r#"{"event_type":"A","event_type":"B"}"#,
        r#"{"event_type":"T","x":1,"x":2}"#,
        r#"{"event_type":"T","fields":{"m":{"k":1,"k":2}}}"#,
        r#"{"event_type":"T","fields":{"x":1},"y":2}"#,
        r#"{"event_type":"T","fields":5}"#,
        r#"{"event_type":"T","x":1e400}"#,
        r#"{"event_type":"T","x":01}"#,
        r#"{"event_type":"T","x":1.}"#,
        r#"{"event_type":"T","x":.5}"#,
        r#"{"event_type":"T","x":"\u00e9"}"#,
        r#"{"event_type":"T","x":1,}"#,
        r#"{"event_type":"T","x":[1,]}"#,
        r#"{"event_type":"T","x":tru}"#,
        r#"{"event_type":"T"} x"#,
        "{\"event_type\":\"T\",\"x\":\"a\u{1}b\"}",
        "\u{feff}{\"event_type\":\"T\"}",
    ] {
        assert!(!agree(&mut s, line), "the fast path took {line:?}");
    }
}

#[test]
fn find_special_finds_the_first_quote_backslash_or_control_character() {
    proptest!(|(bytes in prop::collection::vec(prop::sample::select(&[b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0][..]), 0..40))| {
        let want = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        prop_assert_eq!(find_special(&bytes), want);
    });
}

#[test]
fn sort_distinct_sorts_or_finds_a_repeated_name() {
    proptest!(|(names in prop::collection::vec(0u8..30, 0..40))| {
        let mut fields: Vec<(Arc<str>, Value)> =
            names.iter().map(|n| (Arc::from(format!("f{n}")), Value::Null)).collect();
        let mut want: Vec<Arc<str>> = fields.iter().map(|f| Arc::clone(&f.0)).collect();
        want.sort();
        let distinct = want.windows(2).all(|w| w[0] != w[1]);
        prop_assert_eq!(sort_distinct(&mut fields), distinct);
        if distinct {
            let got: Vec<Arc<str>> = fields.iter().map(|f| Arc::clone(&f.0)).collect();
            prop_assert_eq!(got, want);
        }
    });
}

#[test]
fn a_key_that_only_starts_like_the_last_lines_is_read_in_full() {
    let mut s = JsonlScanner::new();
    for line in [
        r#"{"event_type":"T","ab":1,"a\"b":2}"#,
        r#"{"event_type":"T","abc":1,"a":2}"#,
        r#"{"event_type":"T","ab":1,"a\"b":2}"#,
        r#"{"event_type":"Tx","fields":{"ab":1}}"#,
        r#"{"event_type":"T","fields":{"ab":1,"b":2}}"#,
        r#"{"event_type":"T","fields":{"b":1,"ab":2}}"#,
        r#"{"event_type":"T\"","x":1}"#,
        r#"{"event_type":"T\"","x":1}"#,
    ] {
        assert!(agree(&mut s, line), "{line}");
    }
}

#[test]
fn nesting_beyond_the_fast_depth_goes_to_the_parser_with_the_same_result() {
    let mut s = JsonlScanner::new();
    for levels in [FAST_DEPTH - 2, FAST_DEPTH - 1, 60, 99, 100] {
        let line = format!(
            "{{\"event_type\":\"T\",\"a\":{}1{}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        );
        assert_eq!(agree(&mut s, &line), levels < FAST_DEPTH - 1, "{levels}");
    }
}

/// Number texts: JSON numbers of every form, and some that are not JSON.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u32..1000).prop_map(|n| format!("-{n}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        (any::<u32>(), 0u32..10_000, -330i32..330).prop_map(|(a, b, e)| format!("{a}.{b}e{e}")),
        (0u64..1_000_000_000_000_000, 0usize..20)
            .prop_map(|(m, z)| format!("0.{}{m}", "0".repeat(z))),
        prop::sample::select(
            &[
                "-0",
                "-0.0",
                "0e5",
                "1E+2",
                "1e-2",
                "99999999999999999999",
                "1e400",
                "-1e400",
                "1e-400",
                "01",
                "1.",
                ".5",
                "-",
                "1e",
                "1e+",
                "+1",
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "a", "z07", " ", "é", "中", "\\n", "\\t", "\\\\", "\\\"", "\\/", "\\b", "\\u00e9",
                "\\ud800", "\\x", "\u{1}",
            ][..],
        ),
        0..4,
    )
    .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(&["zone", "value", "a", "b", "x"][..])
            .prop_map(|k| format!("\"{k}\"")),
        1 => prop::sample::select(&["event_type", "timestamp", "fields"][..])
            .prop_map(|k| format!("\"{k}\"")),
        1 => string(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => number(),
        2 => string(),
        1 => prop::sample::select(&["true", "false", "null", "tru"][..])
            .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|e| {
                let e: Vec<String> = e.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", e.join(","))
            }),
        ]
    })
}

/// Lines of both shapes, most of them valid.
fn line() -> impl Strategy<Value = String> {
    let ty = prop_oneof![
        8 => Just("\"SensorEvent\"".to_owned()),
        1 => Just("\"\"".to_owned()),
        1 => value(),
    ];
    let ts = prop_oneof![
        2 => Just(None),
        4 => (0i64..2_000_000_000_000).prop_map(|t| Some(t.to_string())),
        1 => Just(Some("\"1970-01-01T00:00:01.5+00:00\"".to_owned())),
        1 => value().prop_map(Some),
    ];
    let fields = prop::collection::vec((key(), value()), 0..5);
    let ws = prop::sample::select(&["", "", " ", "\t"][..]);
    (ty, ts, fields, prop::bool::ANY, ws, prop::bool::ANY).prop_map(
        |(ty, ts, fields, wrap, ws, ty_last)| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{ws}{v}")).collect();
            let mut top = Vec::new();
            if !ty_last {
                top.push(format!("\"event_type\":{ws}{ty}"));
            }
            if let Some(ts) = ts {
                top.push(format!("\"timestamp\":{ts}"));
            }
            if wrap {
                top.push(format!("\"fields\":{{{}}}", fields.join(",")));
            } else {
                top.extend(fields);
            }
            if ty_last {
                top.push(format!("\"event_type\":{ty}"));
            }
            format!("{ws}{{{}}}{ws}", top.join(&format!(",{ws}")))
        },
    )
}

fn mutated() -> impl Strategy<Value = String> {
    let ch = prop::sample::select(
        &[
            '{', '}', '[', ']', ',', ':', '-', '"', '\\', ' ', '.', 'e', '0', '1', 'x', '\n',
            '\u{feff}', 'é',
        ][..],
    );
    (line(), any::<prop::sample::Index>(), 0u8..3, ch).prop_map(|(line, at, op, ch)| {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        match op {
            0 => chars.insert(i, ch),
            1 if i < chars.len() => {
                chars.remove(i);
            }
            _ if i < chars.len() => chars[i] = ch,
            _ => chars.push(ch),
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn a_number_alone_reads_as_serde_json_reads_it(text in number()) {
        let line = format!("{{\"event_type\":\"T\",\"x\":{text}}}");
        agree(&mut JsonlScanner::new(), &line);
    }

    #[test]
    fn the_scanner_agrees_with_parse_json_line_on_generated_lines(lines in prop::collection::vec(line(), 1..8)) {
        let mut s = JsonlScanner::new();
        for l in &lines {
            agree(&mut s, l);
        }
    }

    #[test]
    fn the_scanner_agrees_with_parse_json_line_on_mutated_lines(lines in prop::collection::vec(mutated(), 1..8)) {
        let mut s = JsonlScanner::new();
        for l in &lines {
            agree(&mut s, l);
        }
    }
}

#[test]
fn most_valid_generated_lines_take_the_fast_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut s = JsonlScanner::new();
    let (mut fast, mut ok) = (0, 0);
    for _ in 0..2_000 {
        let l = line().new_tree(&mut runner).unwrap().current();
        if matches!(parse_json_line(&l, 0), Ok(Some(_))) {
            ok += 1;
            fast += usize::from(agree(&mut s, &l));
        }
    }
    assert!(
        ok > 200 && fast * 10 >= ok * 7,
        "{fast} of {ok} valid lines"
    );
}
