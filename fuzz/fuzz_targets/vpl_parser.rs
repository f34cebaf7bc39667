//! The VPL parser and checker (`varpulis_vpl::parse_program`).
//!
//! Asserts: never panics (nor does rendering its diagnostics); returns a `Program` or at least
//! one diagnostic; every diagnostic's span lies inside the input on character boundaries, and
//! its line:column is the 1-based line and character column of the span's start (a byte-order
//! mark at the start of the source not counted); parsing is deterministic (the same input gives
//! the same diagnostics).
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_vpl::parse_program;

/// The 1-based line and character column of byte `offset`. A byte-order mark at the very start
/// of the source is skipped by the parser and is not a column (`docs/vpl.md`; the parser
/// learnt this after this model was first written): line 1's columns count from after it.
fn line_column(src: &str, offset: usize) -> (u32, u32) {
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let text = &before[start..];
    let text = if start == 0 {
        text.strip_prefix('\u{feff}').unwrap_or(text)
    } else {
        text
    };
    (line as u32, text.chars().count() as u32 + 1)
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Err(diagnostics) = parse_program(src) else {
        return;
    };
    assert!(!diagnostics.is_empty());
    for d in diagnostics.items() {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "{d:?}"
        );
        assert!(
            src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end),
            "{d:?}"
        );
        assert_eq!((d.line, d.column), line_column(src, d.span.start), "{d:?}");
    }
    let _ = diagnostics.render(src, "fuzz.vpl");
    let again = parse_program(src).expect_err("deterministic");
    assert_eq!(again.items(), diagnostics.items());
});
