//! One pattern's partitions shared out over several operators (keyed contexts): with every
//! event numbered by its input position (`process_with_arrival`) and every operator advanced
//! to the same watermark, the matches of all of them, ordered by decision at each step, are
//! those of one operator taking the whole input, in its order; ties of time (events of one
//! time in several partitions, deadlines of one time) included.

use proptest::prelude::*;
use varpulis_core::{Event, Value};
use varpulis_patterns::{Decision, Match, PatternOperator};

use crate::{LATENESS, constructs, spec};

/// Events whose times often tie (gaps of 0), over `keys` partition keys, in an arrival order
/// at most `LATENESS` out of time order.
fn tied_stream() -> impl Strategy<Value = (Vec<Event>, Vec<usize>)> {
    prop::collection::vec((0..4usize, 0..5i64, 0..6i64, 0..4i64, 0..=LATENESS), 0..90).prop_map(
        |rows| {
            let mut ts = 0;
            let mut events = Vec::new();
            let mut arrival = Vec::new();
            for (i, (ty, k, val, gap, jitter)) in rows.into_iter().enumerate() {
                ts += gap;
                events.push(
                    Event::new(["A", "B", "C", "X"][ty], ts)
                        .with_field("k", k)
                        .with_field("v", val),
                );
                arrival.push((ts + jitter, i));
            }
            arrival.sort_unstable();
            (events, arrival.into_iter().map(|(_, i)| i).collect())
        },
    )
}

/// The operator of `shares` that owns `e`'s partition.
fn owner(e: &Event, shares: usize) -> usize {
    match e.get("k") {
        Some(Value::Int(k)) => usize::try_from(*k).unwrap() % shares,
        _ => 0,
    }
}

/// Matches of `ops`, in decision order (stable: one decision's matches come from one operator,
/// in its order).
fn merged(parts: Vec<(Vec<Match>, Vec<Decision>)>) -> Vec<Match> {
    let mut all: Vec<(Decision, Match)> = parts
        .into_iter()
        .flat_map(|(m, d)| d.into_iter().zip(m))
        .collect();
    all.sort_by_key(|(d, _)| *d);
    all.into_iter().map(|(_, m)| m).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn partitions_shared_out_over_operators_match_one_operator(
        (events, order) in tied_stream(),
        shares in 2..4usize,
    ) {
        for (name, p) in constructs().into_iter().filter(|(_, p)| p.partitioned) {
            let mut one = PatternOperator::new(spec(name, &p)).expect("valid");
            let mut many: Vec<PatternOperator> = (0..shares)
                .map(|_| PatternOperator::new(spec(name, &p)).expect("valid"))
                .collect();
            let mut max_seen = i64::MIN / 2;
            let (mut expected, mut got) = (Vec::new(), Vec::new());
            for (position, &i) in order.iter().enumerate() {
                let e = &events[i];
                one.process(e);
                many[owner(e, shares)].process_with_arrival(e, position as u64);
                max_seen = max_seen.max(e.timestamp_ms());
                let wm = max_seen - LATENESS;
                one.advance_watermark(wm, &mut expected);
                let parts = many
                    .iter_mut()
                    .map(|op| {
                        let (mut m, mut d) = (Vec::new(), Vec::new());
                        op.advance_watermark_with_decisions(wm, &mut m, &mut d);
                        (m, d)
                    })
                    .collect();
                got.extend(merged(parts));
                prop_assert_eq!(&got, &expected, "{}: after event {}", name, position);
            }
            one.flush(&mut expected);
            let parts = many
                .iter_mut()
                .map(|op| {
                    let (mut m, mut d) = (Vec::new(), Vec::new());
                    op.flush_with_decisions(&mut m, &mut d);
                    (m, d)
                })
                .collect();
            got.extend(merged(parts));
            prop_assert_eq!(&got, &expected, "{}: after the flush", name);
            let total: u64 = many.iter().map(|op| op.counters().matches).sum();
            prop_assert_eq!(total, one.counters().matches, "{}", name);
        }
    }
}

/// A run's id is the arrival number of the event that started it, and one operator's next
/// decision is the earliest of its held events and deadlines.
#[test]
fn run_ids_are_arrival_numbers_and_the_next_decision_is_the_earliest() {
    let (_, p) = constructs()
        .into_iter()
        .find(|(n, _)| *n == "sequence")
        .unwrap();
    let mut op = PatternOperator::new(spec("P", &p)).expect("valid");
    assert_eq!(op.next_decision(), None);
    op.process_with_arrival(
        &Event::new("A", 10).with_field("k", 1).with_field("v", 1),
        40,
    );
    op.process_with_arrival(
        &Event::new("A", 7).with_field("k", 2).with_field("v", 1),
        41,
    );
    assert_eq!(op.next_decision(), Some(7));
    let (mut m, mut d) = (Vec::new(), Vec::new());
    op.advance_watermark_with_decisions(11, &mut m, &mut d);
    assert!(m.is_empty() && d.is_empty());
    // Both started runs; their deadlines (time + within 50) come next.
    assert_eq!(op.next_decision(), Some(57));
    let ids: Vec<u64> = op
        .snapshot()
        .partitions
        .iter()
        .flat_map(|p| p.runs.iter().map(|r| r.id))
        .collect();
    assert_eq!(ids, vec![40, 41]);
    assert_eq!(op.snapshot().next_run, 42);
}
