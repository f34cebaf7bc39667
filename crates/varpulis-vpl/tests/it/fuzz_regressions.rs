//! Inputs the cargo-fuzz targets (`fuzz/`, `cargo xtask fuzz`) failed on, minimised with
//! `cargo +nightly fuzz tmin`, and what the parser must do with them. See docs/ci.md,
//! "Fuzzing", for the story of each.

use varpulis_vpl::{EvtLine, parse_evt_line, parse_program};

use crate::error;

/// `vpl_parser`: `EF BB BF 69` (a byte-order mark, then `i`). The diagnostic was right (1:1,
/// the mark is not a column, as `docs/vpl.md` says); the target's model of line:column still
/// counted the mark and was corrected. The first 20 s run reported this as a column disagreeing
/// with its span "for input containing `\0`": the same mark before a NUL.
#[test]
fn a_byte_order_mark_before_a_program_is_not_counted_in_the_column_of_its_first_error() {
    let d = error("\u{feff}i");
    assert_eq!((d.line, d.column), (1, 1), "{d:?}");
    assert_eq!((d.span.start, d.span.end), (3, 4));
    let d = error("\u{feff}\0");
    assert_eq!((d.line, d.column), (1, 1), "{d:?}");
    assert_eq!(d.span.start, 3);
    assert_eq!(d.message, r#"unexpected character "\0""#);
    let d = error("\u{feff}stream S = T\n\0");
    assert_eq!(
        (d.line, d.column),
        (2, 1),
        "only line 1 starts after the mark"
    );
    // The original input: the first of its diagnostics is at the word after the mark.
    let e = parse_program("\u{feff}ser sessions: clicks separated by").unwrap_err();
    assert_eq!((e.first().line, e.first().column), (1, 1));
    assert_eq!(e.first().found.as_deref(), Some("ser"));
}

/// `evt_reader`: `EF BB BF` as a line. The line parser skipped a byte-order mark at the start
/// of every line, and the file reader skipped one at the start of the file too: an `.evt` file
/// could start with two marks, or have one at the start of any line, where `.jsonl` refused
/// both. Now only the reader skips the mark, once; to the line parser it is an error.
#[test]
fn a_byte_order_mark_before_an_evt_line_is_an_unexpected_character_at_column_1() {
    for line in ["\u{feff}", "\u{feff}T { a: 1 }", "\u{feff}# comment"] {
        let d = parse_evt_line(line).unwrap_err();
        assert_eq!(
            (d.line, d.column, d.span.start),
            (1, 1, 0),
            "{line:?}: {d:?}"
        );
        assert_eq!(d.message, r#"unexpected character "\u{feff}""#);
        assert_eq!(
            d.help.as_deref(),
            Some("a byte-order mark is skipped only at the very start of a file")
        );
    }
    assert_eq!(parse_evt_line("  # comment"), Ok(EvtLine::Blank));
    // A program still skips the mark at its very start.
    assert!(parse_program("\u{feff}").is_ok());
}
