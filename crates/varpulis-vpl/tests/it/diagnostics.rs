//! Malformed programs: exact line, column and message of every diagnostic.

use varpulis_vpl::parse_program;

use crate::{error, errors};

/// `(program, line, column, message)`: programs with exactly one error.
const CASES: &[(&str, u32, u32, &str)] = &[
    // --- syntax ---
    (
        "stream S = T\n  .window(5m)\n  .watermark(out_of_order: 10x)\n",
        3,
        28,
        "expected a duration like 10s, found \"10x\"",
    ),
    (
        "stream S = A .window(5m, sliding: 10) .aggregate(n: count())",
        1,
        35,
        "expected a duration like 10s, found \"10\"",
    ),
    (
        "stream S = A .window(5x) .aggregate(n: count())",
        1,
        22,
        "expected a window size like 5m, an event count like 100, or session: 5s, found \"5x\"",
    ),
    (
        "stream S = A .watermark(10s)",
        1,
        25,
        "expected `out_of_order:` and a duration like 10s, found \"10s\"",
    ),
    (
        "event A: x: tex",
        1,
        13,
        "expected a type (int, float, bool, str, timestamp or duration), found \"tex\"",
    ),
    (
        "stream S = A .wher(x > 1)",
        1,
        15,
        "unknown operation .wher: expected an operation (.where, .partition_by, .watermark, \
         .allowed_lateness, .window, .aggregate, .having, .emit, .within, .not, .on, .max_runs, \
         .max_kleene, .max_keys or .context), found \"wher\"",
    ),
    (
        "stream S = A .where(x > )",
        1,
        25,
        "expected an expression, found \")\"",
    ),
    (
        "stream S = A\n  .where(x > 1",
        2,
        15,
        "expected `)` to close .where(, found end of input",
    ),
    (
        "stream S = A .where(x && y)",
        1,
        23,
        "unexpected character \"&&\"",
    ),
    (
        "stream S = A .where(\"abc)",
        1,
        21,
        "unterminated string: expected a closing \" on the same line",
    ),
    (
        "stream S = A .where(1 < x < 3)",
        1,
        27,
        "expected `and`, `or` or the end of the expression, found \"<\"",
    ),
    (
        "stream 1S = A",
        1,
        8,
        "expected a stream name, found \"1S\"",
    ),
    (
        "stream S = A .where(x > 99999999999999999999)",
        1,
        25,
        "expected an integer at most 9223372036854775807, found \"99999999999999999999\"",
    ),
    (
        "stream S = A .where(x > 3q)",
        1,
        25,
        "expected a number or a duration like 10s, found \"3q\"",
    ),
    (
        "var x: int = 1 2",
        1,
        16,
        "expected a new statement (event, var, let, stream or `name := expr`), found \"2\"",
    ),
    (
        "stream S = A .where(x > 1) where(y)",
        1,
        28,
        "expected `.` and an operation (.where, .window, ...) or a new statement, found \"where\"",
    ),
    (
        "stream S = A .window(100, sliding: 10) .aggregate(n: count())",
        1,
        25,
        "expected `)`: count windows do not slide, found \",\"",
    ),
    // --- sources, names, functions ---
    (
        "event A: x: int\nstream S = B",
        2,
        12,
        "unknown source \"B\": expected a declared event type (A) or a stream (S)",
    ),
    (
        "event A: x: int\nstream S = A .where(y > 1)",
        2,
        21,
        "unknown field \"y\": expected a field of event A (x) or a variable",
    ),
    (
        "event A: x: int\nstream S = A .partition_by(y) .window(1m) .aggregate(n: count())",
        2,
        28,
        "unknown field \"y\": expected a field of event A (x)",
    ),
    (
        "stream S = A\n  .where(x > 1)\n  .emit(y: x * 2)\nstream T = S .where(z > 1)",
        4,
        21,
        "unknown field \"z\": expected a field of stream S (y) or a variable",
    ),
    (
        "stream S = A .window(1m) .aggregate(s: foo(x))",
        1,
        40,
        "unknown function \"foo\": expected one of count, sum, avg, min, max, first, last, \
         stddev, count_distinct",
    ),
    (
        "stream S = A .where(sum(x) > 1)",
        1,
        21,
        "aggregate function sum is only allowed inside .aggregate(...)",
    ),
    (
        "stream S = A .window(1m) .aggregate(n: sum(max(x)))",
        1,
        44,
        "aggregate functions cannot be nested: max(...) inside an aggregate",
    ),
    (
        "stream S = A .window(1m) .aggregate(n: x + 1)",
        1,
        40,
        "expected an aggregate function call like avg(value), found \"x + 1\"",
    ),
    (
        "stream S = A .window(1m) .aggregate(s: count(x, y))",
        1,
        40,
        "count takes count() or count(expr), found 2 arguments",
    ),
    (
        "stream S = A .window(1m) .aggregate(s: sum(x)) .having(t > 1)",
        1,
        56,
        "unknown name \"t\" in .having: expected an aggregate alias or the partition key (s) \
         or a variable",
    ),
    (
        "stream S = A .window(5m) .aggregate(n: count()) .emit(m: x)",
        1,
        58,
        "unknown name \"x\" in .emit: expected an aggregate alias or the partition key (n) or \
         a variable",
    ),
    (
        "var limit: int = missing + 1",
        1,
        18,
        "unknown variable \"missing\": expected a variable declared before this point",
    ),
    (
        "event E: limit: int\nvar limit: int = 3\nstream S = E .where(limit > 1)",
        3,
        21,
        "\"limit\" is both a variable and a field of event E",
    ),
    // --- variables ---
    (
        "let k: int = 1\nk := 2",
        2,
        1,
        "cannot assign to \"k\": it is declared with let (immutable)",
    ),
    ("x := 2", 1, 1, "assignment to undeclared variable \"x\""),
    (
        "var t: float = \"hi\"",
        1,
        16,
        "type mismatch: \"t\" is float but the value is str",
    ),
    (
        "var t: int = 1\nt := 2.5",
        2,
        6,
        "type mismatch: \"t\" is int but the value is float",
    ),
    (
        "var x = null",
        1,
        9,
        "cannot infer the type of \"x\" from null",
    ),
    (
        "var x: int = 1\nvar x: int = 2",
        2,
        5,
        "variable \"x\" is declared twice",
    ),
    // --- types ---
    (
        "event A: x: int, z: str\nstream S = A .window(1m) .aggregate(s: sum(z))",
        2,
        44,
        "sum needs an int or float input, found str \"z\"",
    ),
    (
        "event A: x: int, z: str\nstream S = A .where(z > 3)",
        2,
        21,
        "cannot compare str with int using \">\"",
    ),
    (
        "event A: x: int, z: str\nstream S = A .where(z * 2 > 1)",
        2,
        21,
        "cannot apply \"*\" to str and int",
    ),
    (
        "event A: x: int\nstream S = A .where(x)",
        2,
        21,
        ".where needs a bool condition, found int expression \"x\"",
    ),
    (
        "stream S = A .where(x + 1)",
        1,
        21,
        ".where needs a bool condition, found arithmetic expression \"x + 1\"",
    ),
    (
        "event A: x: int\nstream S = A .where(x > 1 and x)",
        2,
        31,
        "\"and\" needs a bool operand, found int \"x\"",
    ),
    // --- windows and clause order ---
    (
        "stream S = A .window(0s) .aggregate(n: count())",
        1,
        22,
        "window size must be positive, found \"0s\"",
    ),
    (
        "stream S = A .window(0) .aggregate(n: count())",
        1,
        22,
        "event count must be positive, found \"0\"",
    ),
    (
        "stream S = A .window(1m, sliding: 2m) .aggregate(n: count())",
        1,
        35,
        "slide 2m is longer than the window size 1m",
    ),
    (
        "stream S = A .window(session: 0s) .aggregate(n: count())",
        1,
        31,
        "session gap must be positive, found \"0s\"",
    ),
    (
        "stream S = A .aggregate(n: count())",
        1,
        15,
        ".aggregate needs a .window(...) before it",
    ),
    (
        "stream S = A .window(1m)",
        1,
        15,
        ".window needs an .aggregate(...) to say what each window outputs",
    ),
    (
        "stream S = A .where(x > 1) .having(x > 2)",
        1,
        29,
        ".having filters aggregated rows and needs an .aggregate(...) before it",
    ),
    (
        "stream S = A .window(1m) .aggregate(n: count()) .where(x > 1)",
        1,
        50,
        ".where must come before .aggregate: it filters input events (use .having to filter \
         aggregated rows)",
    ),
    (
        "stream S = A .emit(x) .where(x > 1)",
        1,
        24,
        ".where must come before .emit",
    ),
    (
        "stream S = A .window(100) .allowed_lateness(5s) .aggregate(n: count())",
        1,
        28,
        ".allowed_lateness needs a time window, but this stream has a count window",
    ),
    (
        "stream S = A .partition_by(zone) .where(x > 1)",
        1,
        15,
        ".partition_by needs a .window(...): partitions only group windowed aggregates",
    ),
    (
        "stream S = A .where(x > 1) .where(x < 5)",
        1,
        29,
        "duplicate .where: each operation may appear once per stream",
    ),
    (
        "stream S = A .window(1m) .window(2m) .aggregate(n: count())",
        1,
        27,
        "duplicate .window: each operation may appear once per stream",
    ),
    // --- duplicates and conflicts ---
    (
        "stream S = A\nstream S = A",
        2,
        8,
        "stream \"S\" is defined twice",
    ),
    (
        "event A: x: int\nstream A = A",
        2,
        8,
        "stream \"A\" has the name of the event type declared at 1:7",
    ),
    (
        "event A: x: int\nevent A: y: int",
        2,
        7,
        "event type \"A\" is declared twice",
    ),
    (
        "event A: x: int, x: str",
        1,
        18,
        "field \"x\" of event A is declared twice",
    ),
    (
        "stream S = A .window(1m) .aggregate(n: count(), n: sum(x))",
        1,
        49,
        "duplicate aggregate alias \"n\"",
    ),
    (
        "stream S = A .window(1m) .aggregate(a: avg(x)) .emit(a: a, a: a)",
        1,
        60,
        "duplicate output field \"a\"",
    ),
    (
        "stream S = S2\nstream S2 = S",
        2,
        13,
        "stream \"S2\" reads from itself: S -> S2 -> S",
    ),
    (
        "stream S = A .watermark(out_of_order: 10s)\nstream T = A .watermark(out_of_order: 5s)",
        2,
        39,
        "conflicting watermark for A: out_of_order 5s here but 10s at 1:39",
    ),
];

#[test]
fn every_malformed_program_reports_line_column_and_message() {
    assert!(CASES.len() >= 20);
    let mut failures = Vec::new();
    for &(src, line, column, message) in CASES {
        let got = match parse_program(src) {
            Ok(_) => {
                failures.push(format!("{src:?}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let actual: Vec<(u32, u32, &str)> = got
            .items()
            .iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        if actual != [(line, column, message)] {
            failures.push(format!(
                "{src:?}\n  expected {:?}\n  got      {actual:?}",
                (line, column, message)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn diagnostics_carry_expected_found_and_span() {
    let src = "stream S = T\n  .watermark(out_of_order: 10x)";
    let d = error(src);
    assert_eq!(d.expected.as_deref(), Some("a duration like 10s"));
    assert_eq!(d.found.as_deref(), Some("10x"));
    assert_eq!(&src[d.span.start..d.span.end], "10x");

    let d = error("event A: value: int\nstream S = A .where(valu > 1)");
    assert_eq!(d.found.as_deref(), Some("valu"));
    assert_eq!(
        d.expected.as_deref(),
        Some("a field of event A (value) or a variable")
    );
    assert_eq!(d.help.as_deref(), Some("did you mean \"value\"?"));
}

#[test]
fn render_shows_file_position_snippet_and_caret() {
    let src = "event SensorEvent: value: float\nstream S = SensorEvent\n    .watermark(out_of_order: 10x)\n";
    let e = parse_program(src).unwrap_err();
    assert_eq!(
        e.render(src, "prog.vpl"),
        "error: expected a duration like 10s, found \"10x\"
 --> prog.vpl:3:30
  |
3 |     .watermark(out_of_order: 10x)
  |                              ^^^
  = help: units are ms, s, m, h and d
"
    );
    assert_eq!(
        e.to_string(),
        "3:30: expected a duration like 10s, found \"10x\""
    );
}

#[test]
fn render_keeps_tabs_so_the_caret_lines_up() {
    let src = "stream S = A\n\t.window(0s) .aggregate(n: count())";
    let d = error(src);
    assert_eq!((d.line, d.column), (2, 10));
    let r = d.render(src, "t.vpl");
    assert!(r.contains("2 | \t.window(0s)"), "{r}");
    assert!(r.contains("  | \t        ^^\n"), "{r}");
}

#[test]
fn syntax_errors_in_several_statements_are_all_reported() {
    let got = errors(
        "stream A = X .where(x >)
stream B = X .window(5q) .aggregate(n: count())
var ok: int = 1
stream C = X .frobnicate()",
    );
    let positions: Vec<(u32, u32)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(positions, [(1, 24), (2, 22), (4, 15)], "{got:?}");
}

#[test]
fn semantic_errors_in_several_streams_are_all_reported_in_source_order() {
    let got = errors(
        "event E: v: float, zone: str
stream A = E .where(missing > 1)
stream B = E .window(0s) .aggregate(n: count())
stream C = Nope
stream D = E .window(1m) .aggregate(s: sum(zone), s: avg(v))",
    );
    assert_eq!(
        got,
        [
            (
                2,
                21,
                "unknown field \"missing\": expected a field of event E (v, zone) or a variable"
                    .to_owned()
            ),
            (
                3,
                22,
                "window size must be positive, found \"0s\"".to_owned()
            ),
            (
                4,
                12,
                "unknown source \"Nope\": expected a declared event type (E) or a stream (A, B, \
                 C, D)"
                    .to_owned()
            ),
            (
                5,
                44,
                "sum needs an int or float input, found str \"zone\"".to_owned()
            ),
            (5, 51, "duplicate aggregate alias \"s\"".to_owned()),
        ]
    );
}

#[test]
fn a_broken_upstream_stream_does_not_cascade_into_its_readers() {
    let got = errors("event E: v: int\nstream A = Missing\nstream B = A .where(v > 1)");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (2, 12));
}

#[test]
fn columns_count_characters_not_bytes() {
    let d = error("stream S = A .where(\"é\" == 1 and x > 3q)");
    assert_eq!((d.line, d.column), (1, 38));
}

#[test]
fn diagnostics_render_the_error_summary_for_several_errors() {
    let src = "x := 1\ny := 2";
    let e = parse_program(src).unwrap_err();
    assert_eq!(e.len(), 2);
    assert!(
        e.render(src, "p.vpl")
            .ends_with("error: could not load p.vpl: 2 errors\n")
    );
}
