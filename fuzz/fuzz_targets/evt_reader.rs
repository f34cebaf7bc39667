//! The `.evt` reader: `EventFileReader` over a file of fuzzed bytes (its line scanner,
//! `varpulis_vpl::EvtScanner`) against the VPL crate's line parser
//! (`varpulis_engine::source::parse_evt`, over `varpulis_vpl::parse_evt_line`).
//!
//! Asserts: never panics; reading the file gives exactly the events, resumable positions and
//! first error (line and column) that `parse_evt` gives line by line (so the scanner's fast
//! path is checked against the parser); resuming at the position
//! after an event gives exactly the remaining events; a line's diagnostic lies inside the line
//! (`1 <= column <= chars + 1`, span within the line and on character boundaries); a line
//! starting with a byte-order mark is an error at column 1 (only the reader skips one, at the
//! start of the file, and the model in `expected_steps` does so too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_engine::{EventFormat, parse_evt};
use varpulis_fuzz::check_event_file;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.trim_end_matches('\r');
        let parsed = varpulis_vpl::parse_evt_line(line);
        // Only the file reader skips a byte-order mark, once, at the start of the file; to the
        // line parser it is an unexpected character, as it is to the JSON parser.
        if line.starts_with('\u{feff}') {
            assert!(
                matches!(&parsed, Err(d) if d.column == 1 && d.span.start == 0),
                "{parsed:?} for {line:?}"
            );
        }
        if let Err(d) = parsed {
            assert!(
                d.span.start <= d.span.end && d.span.end <= line.len(),
                "{d:?} in {line:?}"
            );
            assert!(line.is_char_boundary(d.span.start) && line.is_char_boundary(d.span.end));
            assert!(d.line == 1 && d.column >= 1, "{d:?}");
            assert!(
                d.column as usize <= line.chars().count() + 1,
                "{d:?} in {line:?}"
            );
            let _ = d.render(line, "fuzz.evt");
        }
    }
    check_event_file(data, EventFormat::Evt, parse_evt, true);
});
