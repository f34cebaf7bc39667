//! The `.jsonl` reader: `EventFileReader` over a file of fuzzed bytes (its line scanner), and
//! `varpulis_engine::source::parse_json_line`, the reference it falls back to.
//!
//! Asserts: never panics; reading the file gives exactly the events, resumable positions and
//! first error (line and column) that `parse_json_line` gives line by line (so the scanner's
//! fast path is checked against it); resuming at the
//! position after an event gives exactly the remaining events; an error's column lies inside
//! its line (`column <= bytes + 1`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_engine::EventFormat;
use varpulis_engine::source::parse_json_line;
use varpulis_fuzz::check_event_file;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if let Err((column, _)) = parse_json_line(line, 0) {
            assert!(
                column as usize <= line.len() + 1,
                "column {column} in {line:?}"
            );
        }
    }
    check_event_file(data, EventFormat::Jsonl, parse_json_line, false);
});
