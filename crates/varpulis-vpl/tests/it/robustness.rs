//! Arbitrary input never panics, and every diagnostic points inside the source.

use proptest::prelude::*;
use varpulis_vpl::{parse_evt_line, parse_program};

const SEED: &str = "event SensorEvent: value: float, zone: str
var threshold: float = 10.0
let max_n: int = 5
threshold := 12.5
stream Hot = SensorEvent
    .where(value > threshold and not (zone == \"x\"))
    .partition_by(zone)
    .watermark(out_of_order: 10s)
    .allowed_lateness(30s)
    .window(5m, sliding: 1m)
    .aggregate(n: count(), avg_v: avg(value * 2), hi: max(value))
    .having(n >= max_n)
    .emit(zone, avg_v, spread: hi - avg_v)
";

fn check_program(src: &str) {
    if let Err(e) = parse_program(src) {
        for d in e.items() {
            assert!(
                d.span.start <= d.span.end && d.span.end <= src.len(),
                "{d:?}"
            );
            assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
            assert!(d.line >= 1 && d.column >= 1);
        }
        let _ = e.render(src, "p.vpl");
    }
}

#[test]
fn the_seed_program_is_valid() {
    parse_program(SEED).unwrap();
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        check_program(&src);
        if let Err(d) = parse_evt_line(&src) {
            let _ = d.render(&src, "e.evt");
        }
    }

    #[test]
    fn truncated_and_spliced_programs_never_panic(
        cut in 0..SEED.len(),
        insert in "[ -~\\n]{0,8}",
        at in 0..SEED.len(),
    ) {
        let mut s: String = SEED.chars().take(cut).collect();
        check_program(&s);
        s = SEED.to_owned();
        let at = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.insert_str(at, &insert);
        check_program(&s);
    }

    #[test]
    fn evt_lines_from_tokens_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("@"), Just("9s"), Just("T"), Just("{"), Just("}"), Just("["), Just("]"),
                Just(":"), Just(","), Just("-"), Just("1"), Just("2.5"), Just("\"s\""),
                Just("a"), Just("null"), Just("#"), Just(" "),
            ],
            0..16,
        )
    ) {
        let line = parts.concat();
        if let Err(d) = parse_evt_line(&line) {
            prop_assert!(d.span.end <= line.len());
            prop_assert_eq!(d.line, 1);
        }
    }
}
