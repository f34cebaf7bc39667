//! Inputs the cargo-fuzz targets `evt_reader` and `jsonl_reader` (`fuzz/`, `cargo xtask fuzz`)
//! failed on, minimised with `cargo +nightly fuzz tmin`, and what the event-file readers must
//! do with them. All are about the UTF-8 byte-order mark: the reader skips one at the start of
//! the file, before decoding line 1, and nowhere else (docs/ci.md, "Fuzzing").

use std::io::Write as _;

use varpulis_core::Event;
use varpulis_engine::{EventFileReader, EventFormat, SourcePosition};

/// Everything a reader gives for `bytes` in `format`: the events, the position after the last
/// line read, and the first error as `(line, column, message)`.
fn read(
    format: EventFormat,
    bytes: &[u8],
) -> (Vec<Event>, SourcePosition, Option<(u64, u64, String)>) {
    let suffix = match format {
        EventFormat::Evt => ".evt",
        EventFormat::Jsonl => ".jsonl",
    };
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    file.write_all(bytes).unwrap();
    let mut reader = EventFileReader::open(file.path(), None).unwrap();
    let mut events = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, reader.position(), None),
            Err(e) => {
                return (
                    events,
                    reader.position(),
                    Some((e.line, e.column, e.message)),
                );
            }
        }
    }
}

const BOTH: [EventFormat; 2] = [EventFormat::Evt, EventFormat::Jsonl];

/// `jsonl_reader`: `EF BB BF`. The reader was right (the mark is skipped, the line is blank);
/// the target's line-by-line model predated the mark and was corrected.
#[test]
fn a_file_holding_only_a_byte_order_mark_has_no_events_and_no_error() {
    for format in BOTH {
        let (events, at, error) = read(format, b"\xef\xbb\xbf");
        assert!(
            events.is_empty() && error.is_none(),
            "{format:?}: {error:?}"
        );
        assert_eq!(
            (at.offset, at.line),
            (3, 1),
            "{format:?}: the mark's bytes are read"
        );
    }
}

/// `jsonl_reader`, before minimising: an error on line 1 after the mark, at column 22 as the
/// reader said (the model, counting the mark, said 1).
#[test]
fn an_error_on_line_1_after_a_byte_order_mark_has_the_column_it_has_without_the_mark() {
    let line = "{\"event_type\":\"Revee\": 5.0, \"qty\": 1}\n";
    let (_, _, plain) = read(EventFormat::Jsonl, line.as_bytes());
    let (_, _, marked) = read(EventFormat::Jsonl, format!("\u{feff}{line}").as_bytes());
    assert_eq!(marked.as_ref().map(|e| (e.0, e.1)), Some((1, 22)));
    assert_eq!(marked, plain);
    let (_, _, marked) = read(EventFormat::Evt, "\u{feff}T { a: }\n".as_bytes());
    assert_eq!(marked.map(|e| (e.0, e.1)), Some((1, 8)));
}

/// Found by `evt_reader` and `jsonl_reader` once their model skipped the mark: the reader
/// decoded line 1 before dropping the mark, so an invalid byte right after it was reported at
/// column 4, counting the mark's three bytes, while every other column of line 1 does not.
#[test]
fn invalid_utf8_right_after_a_byte_order_mark_is_at_line_1_column_1() {
    for format in BOTH {
        let (_, at, error) = read(format, b"\xef\xbb\xbf\xff\n");
        assert_eq!(
            error,
            Some((1, 1, "invalid UTF-8".to_owned())),
            "{format:?}"
        );
        assert_eq!(at, SourcePosition::default(), "nothing accepted");
        // The second mark is text: three bytes before the invalid one (an invalid byte's
        // column counts bytes, as the reader documents).
        let (_, _, error) = read(format, b"\xef\xbb\xbf\xef\xbb\xbf\xff");
        assert_eq!(error.map(|e| (e.0, e.1)), Some((1, 4)), "{format:?}");
    }
}

/// `evt_reader`: `EF BB BF EF BB BF` + `T { a: 1 }`, and `EF BB BF` as a line of its own
/// (found as the line parser accepting it). The reader skipped the first mark and the `.evt`
/// line parser skipped another at the start of every line, so an `.evt` file could start with
/// two marks or have one at the start of any line, which `.jsonl` refused. Now both formats
/// refuse a mark that is not the first bytes of the file.
#[test]
fn a_byte_order_mark_anywhere_but_the_start_of_the_file_is_an_error_in_both_formats() {
    let evt = [
        "\u{feff}\u{feff}T { a: 1 }\n",
        "T { a: 1 }\n\u{feff}T { a: 2 }\n",
        "\n\u{feff}\n",
    ];
    let jsonl = [
        "\u{feff}\u{feff}{\"event_type\":\"T\"}\n",
        "{\"event_type\":\"T\"}\n\u{feff}{\"event_type\":\"T\"}\n",
        "\n\u{feff}\n",
    ];
    // (line of the error, events read before it)
    let want = [(1, 0), (2, 1), (2, 0)];
    for (format, inputs) in [(EventFormat::Evt, evt), (EventFormat::Jsonl, jsonl)] {
        for (input, (line, before)) in inputs.iter().zip(want) {
            let (events, _, error) = read(format, input.as_bytes());
            assert_eq!(events.len(), before, "{format:?} {input:?}");
            let (l, c, _) = error.unwrap_or_else(|| panic!("{format:?} {input:?} was accepted"));
            assert_eq!((l, c), (line, 1), "{format:?} {input:?}");
        }
    }
    let (_, _, error) = read(EventFormat::Evt, "\u{feff}\u{feff}T {}\n".as_bytes());
    let message = error.unwrap().2;
    assert!(
        message.starts_with(r#"unexpected character "\u{feff}""#),
        "{message}"
    );
}
