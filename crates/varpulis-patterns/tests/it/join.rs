//! The join against brute force, restore at any position, and its bounds.

use proptest::prelude::*;
use varpulis_core::Event;
use varpulis_patterns::{JoinInput, JoinMatch, JoinOperator, JoinSpec, PatternError};

const LATENESS: i64 = 15;
const WINDOW: i64 = 20;
const INPUTS: [&str; 3] = ["Orders", "Payments", "Shipments"];

fn spec(inputs: usize) -> JoinSpec {
    JoinSpec {
        name: "J".to_owned(),
        inputs: INPUTS[..inputs]
            .iter()
            .map(|n| JoinInput {
                name: (*n).to_owned(),
                key_fields: vec!["id".to_owned(), "region".to_owned()],
            })
            .collect(),
        window_ms: WINDOW,
        max_keys: 1_000_000,
        text: "J".to_owned(),
    }
}

/// Events of the inputs at distinct times, and an arrival order at most `LATENESS` late.
fn stream() -> impl Strategy<Value = (Vec<(usize, Event)>, Vec<usize>)> {
    prop::collection::vec((0..3usize, 0..4i64, 0..2i64, 1..6i64, 0..=LATENESS), 0..80).prop_map(
        |rows| {
            let mut ts = 0;
            let mut events = Vec::new();
            let mut arrival = Vec::new();
            for (i, (input, id, region, gap, jitter)) in rows.into_iter().enumerate() {
                ts += gap;
                let e = Event::new(INPUTS[input], ts)
                    .with_field("id", id)
                    .with_field("region", region)
                    .with_field("n", i64::try_from(i).expect("small"));
                events.push((input, e));
                arrival.push((ts + jitter, i));
            }
            arrival.sort_unstable();
            (events, arrival.into_iter().map(|(_, i)| i).collect())
        },
    )
}

/// Brute force: for each event in time order, the latest earlier event of each other input
/// with the same key, if every one exists and is at most `WINDOW` older.
fn oracle(inputs: usize, events: &[(usize, Event)]) -> Vec<JoinMatch> {
    let key = |e: &Event| (e.get("id").cloned(), e.get("region").cloned());
    let mut out = Vec::new();
    for (i, (input, e)) in events.iter().enumerate() {
        if *input >= inputs {
            continue;
        }
        let mut combo = Vec::new();
        for j in 0..inputs {
            if j == *input {
                combo.push(Some(e.clone()));
                continue;
            }
            let latest = events[..i]
                .iter()
                .rev()
                .find(|(k, o)| *k == j && key(o) == key(e))
                .map(|(_, o)| o.clone())
                .filter(|o| o.timestamp_ms() >= e.timestamp_ms() - WINDOW);
            combo.push(latest);
        }
        if let Some(events) = combo.into_iter().collect::<Option<Vec<_>>>() {
            out.push(JoinMatch {
                time: e.timestamp_ms(),
                trigger: *input,
                events,
            });
        }
    }
    out
}

fn feed(
    op: &mut JoinOperator,
    inputs: usize,
    events: &[(usize, Event)],
    order: &[usize],
    max_seen: &mut i64,
    out: &mut Vec<JoinMatch>,
) {
    for &i in order {
        let (input, e) = &events[i];
        if *input < inputs {
            op.process(*input, e);
        }
        *max_seen = (*max_seen).max(e.timestamp_ms());
        op.advance_watermark(*max_seen - LATENESS, out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_join_gives_the_brute_force_combinations_whatever_the_arrival_order(
        (events, order) in stream()
    ) {
        for inputs in [2, 3] {
            let mut op = JoinOperator::new(spec(inputs)).expect("valid");
            let mut out = Vec::new();
            let mut max_seen = i64::MIN / 2;
            feed(&mut op, inputs, &events, &order, &mut max_seen, &mut out);
            op.flush(&mut out);
            prop_assert_eq!(out, oracle(inputs, &events), "{} inputs", inputs);
        }
    }

    #[test]
    fn a_join_snapshot_at_any_position_restores_into_the_same_continuation(
        (events, order) in stream(),
        cut in any::<prop::sample::Index>(),
    ) {
        let at = cut.index(order.len() + 1);
        let mut first = JoinOperator::new(spec(2)).expect("valid");
        let mut out = Vec::new();
        let mut max_seen = i64::MIN / 2;
        feed(&mut first, 2, &events, &order[..at], &mut max_seen, &mut out);
        let state = first.snapshot();
        let mut second = JoinOperator::new(spec(2)).expect("valid");
        second.restore(&state).expect("restores");
        prop_assert_eq!(second.snapshot(), state);
        feed(&mut second, 2, &events, &order[at..], &mut max_seen, &mut out);
        second.flush(&mut out);
        prop_assert_eq!(out, oracle(2, &events));
    }
}

#[test]
fn buffers_expire_by_watermark_and_are_capped_per_input() {
    let mut s = spec(2);
    s.max_keys = 10;
    let mut op = JoinOperator::new(s).expect("valid");
    let mut out = Vec::new();
    for id in 0..100i64 {
        op.process(
            0,
            &Event::new("Orders", id)
                .with_field("id", id)
                .with_field("region", 0),
        );
    }
    op.advance_watermark(100, &mut out);
    let c = op.counters();
    assert_eq!(c.keys_evicted, 90, "ten keys kept of a hundred");
    assert!(op.buffered() <= 10);
    op.advance_watermark(1_000, &mut out);
    assert_eq!(op.buffered(), 0, "everything is older than the window");
    assert_eq!(op.counters().expired, 10);
    op.process(
        1,
        &Event::new("Payments", 5)
            .with_field("id", 1)
            .with_field("region", 0),
    );
    assert_eq!(op.counters().late_events_dropped, 1);
    op.process(1, &Event::new("Payments", 2_000).with_field("id", 1));
    op.flush(&mut out);
    assert_eq!(op.counters().events_without_key, 1);
    assert!(out.is_empty());
    let other = JoinOperator::new(spec(3)).expect("valid").snapshot();
    let err = op.restore(&other).expect_err("another join");
    assert!(
        matches!(err, PatternError::IncompatibleState { .. }),
        "{err}"
    );
}

#[test]
fn a_restored_buffer_over_max_keys_keeps_the_most_recent_keys_and_counts_the_rest_evicted() {
    // Two operators, each within its bound of ten keys, whose united state holds twenty:
    // what a rescale from two contexts into one restores.
    let mut s = spec(2);
    s.max_keys = 10;
    let mut halves = [
        JoinOperator::new(s.clone()).expect("valid"),
        JoinOperator::new(s.clone()).expect("valid"),
    ];
    let mut out = Vec::new();
    for id in 0..20i64 {
        let e = Event::new("Orders", id)
            .with_field("id", id)
            .with_field("region", 0);
        halves[usize::try_from(id % 2).expect("small")].process(0, &e);
    }
    for h in &mut halves {
        h.advance_watermark(20, &mut out);
        assert_eq!(h.counters().keys_evicted, 0);
    }
    let mut united = halves[0].snapshot();
    let other = halves[1].snapshot();
    united.buffers[0].extend(other.buffers[0].iter().cloned());
    united.buffers[0].sort_by_key(Event::timestamp_ms);
    let mut one = JoinOperator::new(s).expect("valid");
    one.restore(&united).expect("restores");
    assert_eq!(one.buffered(), 10);
    assert_eq!(
        one.counters().keys_evicted,
        10,
        "the ten oldest keys are evicted"
    );
    // A payment of a kept key (the newest ten are 10..20) matches; one of an evicted key does not.
    for id in [15i64, 3] {
        one.process(
            1,
            &Event::new("Payments", 21)
                .with_field("id", id)
                .with_field("region", 0),
        );
    }
    one.flush(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].events[0].get("id"), Some(&15i64.into()));
}

#[test]
fn arrival_numbers_given_by_the_caller_order_events_of_one_time_and_tag_the_combinations() {
    let mut op = JoinOperator::new(spec(2)).expect("valid");
    let order = Event::new("Orders", 10)
        .with_field("id", 1)
        .with_field("region", 0);
    let pay = |n: i64| {
        Event::new("Payments", 10)
            .with_field("id", 1)
            .with_field("region", 0)
            .with_field("n", n)
    };
    // Numbers with gaps (another operator's events took the others) are kept.
    op.process_with_arrival(0, &order, 3);
    op.process_with_arrival(1, &pay(7), 7);
    assert_eq!(op.next_decision(), Some(10));
    // A number below the operator's next one is raised to it: it sorts after both.
    op.process_with_arrival(1, &pay(5), 5);
    let (mut out, mut arrivals) = (Vec::new(), Vec::new());
    op.advance_watermark_with_arrivals(11, &mut out, &mut arrivals);
    assert_eq!(op.next_decision(), None);
    let ns: Vec<_> = out.iter().map(|m| m.events[1].get("n").cloned()).collect();
    assert_eq!(ns, vec![Some(7i64.into()), Some(5i64.into())]);
    assert_eq!(
        arrivals,
        vec![7, 8],
        "each combination carries its trigger's number"
    );
}
