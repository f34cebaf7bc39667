//! The documented strategy, restated by brute force: for every event that can start a run,
//! walk the rest of its partition's events in time order and decide that run alone; then
//! order the results by when they were decided. The operator (held events, watermark,
//! deadlines, interleaved runs, out-of-order arrival) must give exactly that, in that order.

use proptest::prelude::*;
use varpulis_core::{Event, Value};
use varpulis_patterns::Match;

use crate::{A, Captures, P, S, constructs, holds, run, stream};

fn aliases(p: &P) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (s, _) in &p.steps {
        for x in s.atoms() {
            if let Some(al) = x.alias
                && !out.contains(&al)
            {
                out.push(al);
            }
        }
    }
    out
}

fn matches(x: &A, e: &Event, caps: &Captures) -> bool {
    e.event_type() == x.ty && holds(x.cond, e, |al| caps.get(al).and_then(|v| v.last()))
}

fn any(xs: &[A], e: &Event, caps: &Captures) -> bool {
    xs.iter().any(|x| matches(x, e, caps))
}

/// One run, started by `events[start]`, decided alone: `(decided at, by a deadline, match)`.
fn one_run(p: &P, events: &[Event], start: usize) -> Option<(i64, u8, Match)> {
    let n = p.steps.len();
    let first = &events[start];
    let key = |e: &Event| {
        p.partitioned
            .then(|| e.get("k").cloned().unwrap_or(Value::Null))
    };
    let mut caps = Captures::new();
    let mut step = 0;
    let mut mask = 0u64;
    let mut kleene = 0usize;
    let mut last = first.timestamp_ms();
    // Takes `e` as atom `i` of step `s`; true when the step is done.
    let take =
        |caps: &mut Captures, mask: &mut u64, kleene: &mut usize, s: usize, i: usize, e: &Event| {
            let (step, _) = &p.steps[s];
            if let Some(al) = step.atoms()[i].alias {
                caps.entry(al).or_default().push(e.clone());
            }
            match step {
                S::Any(_) => true,
                S::All(xs) => {
                    *mask |= 1 << i;
                    mask.count_ones() as usize == xs.len()
                }
                S::Kleene(_) => {
                    *kleene += 1;
                    false
                }
            }
        };
    let atom_of = |caps: &Captures, mask: u64, s: usize, e: &Event| -> Option<usize> {
        match &p.steps[s].0 {
            S::Any(xs) => xs.iter().position(|x| matches(x, e, caps)),
            S::All(xs) => xs
                .iter()
                .enumerate()
                .position(|(i, x)| mask & (1 << i) == 0 && matches(x, e, caps)),
            S::Kleene(x) => matches(x, e, caps).then_some(0),
        }
    };
    let i0 = atom_of(&caps, 0, 0, first)?;
    if take(&mut caps, &mut mask, &mut kleene, 0, i0, first) {
        step = 1;
        mask = 0;
    }
    let done = |step: usize| step == n && p.absence.is_empty();
    let build = |caps: &Captures, time: i64, absence: bool| Match {
        time,
        started_ms: first.timestamp_ms(),
        partition: key(first),
        captures: aliases(p)
            .into_iter()
            .map(|al| {
                (
                    std::sync::Arc::from(al),
                    caps.get(al).cloned().unwrap_or_default(),
                )
            })
            .collect(),
        absence,
    };
    if done(step) {
        return Some((last, 0, build(&caps, last, false)));
    }
    let deadline = p.within.map(|w| first.timestamp_ms() + w);
    for e in events[start + 1..].iter().filter(|e| key(e) == key(first)) {
        if deadline.is_some_and(|d| e.timestamp_ms() > d) {
            break;
        }
        if any(&p.not, e, &caps) {
            return None;
        }
        if step == n {
            if any(&p.absence, e, &caps) {
                return None;
            }
            continue;
        }
        let in_kleene = matches!(p.steps[step].0, S::Kleene(_));
        let waiting = if in_kleene && kleene > 0 {
            step + 1
        } else {
            step
        };
        if waiting < n && any(&p.steps[waiting].1, e, &caps) {
            return None;
        }
        let mut took = false;
        if in_kleene
            && kleene > 0
            && step + 1 < n
            && let Some(i) = atom_of(&caps, mask, step + 1, e)
        {
            step += 1;
            kleene = 0;
            if take(&mut caps, &mut mask, &mut kleene, step, i, e) {
                step += 1;
                mask = 0;
            }
            took = true;
        }
        if !took && let Some(i) = atom_of(&caps, mask, step, e) {
            if take(&mut caps, &mut mask, &mut kleene, step, i, e) {
                step += 1;
                mask = 0;
                kleene = 0;
            }
            took = true;
        }
        if took {
            last = e.timestamp_ms();
            if done(step) {
                return Some((last, 0, build(&caps, last, false)));
            }
        }
    }
    let d = deadline?;
    if step == n {
        return Some((d, 1, build(&caps, d, true)));
    }
    let trailing_kleene = step == n - 1 && matches!(p.steps[n - 1].0, S::Kleene(_)) && kleene > 0;
    trailing_kleene.then(|| (d, 1, build(&caps, last, false)))
}

pub(crate) fn oracle(p: &P, events: &[Event]) -> Vec<Match> {
    let mut found: Vec<(i64, u8, usize, Match)> = (0..events.len())
        .filter_map(|i| one_run(p, events, i).map(|(t, k, m)| (t, k, i, m)))
        .collect();
    found.sort_by_key(|(t, k, i, _)| (*t, *k, *i));
    found.into_iter().map(|(_, _, _, m)| m).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_construct_gives_the_brute_force_result_whatever_the_arrival_order(
        (events, order) in stream()
    ) {
        for (name, p) in constructs() {
            let expected = oracle(&p, &events);
            let got = run(&p, &events, &order);
            prop_assert_eq!(got, expected, "construct {}", name);
        }
    }
}

#[test]
fn a1_b1_a2_b2_gives_two_matches_and_a1_a2_b1_gives_two_sharing_b1() {
    let p = &constructs()[0].1; // A as a -> B where v == a.v as b -> C as c
    let ev = |ty: &str, ts: i64| Event::new(ty, ts).with_field("k", 0).with_field("v", 1);
    let p2 = P {
        steps: p.steps[..2].to_vec(),
        ..p.clone()
    };
    // The (a, b) event times of each match.
    let pairs = |events: &[Event], order: &[usize]| -> Vec<(i64, i64)> {
        run(&p2, events, order)
            .iter()
            .map(|m| (m.all("a")[0].timestamp_ms(), m.all("b")[0].timestamp_ms()))
            .collect()
    };
    let a1b1a2b2 = [ev("A", 1), ev("B", 2), ev("A", 3), ev("B", 4)];
    assert_eq!(
        pairs(&a1b1a2b2, &[0, 1, 2, 3]),
        [(1, 2), (3, 4)],
        "skip-till-next-match: each A takes the next B"
    );
    let a1a2b1 = [ev("A", 1), ev("A", 2), ev("B", 3)];
    assert_eq!(
        pairs(&a1a2b1, &[0, 1, 2]),
        [(1, 3), (2, 3)],
        "both open runs take B1, oldest first"
    );
}

#[test]
fn an_absence_is_emitted_when_the_watermark_passes_its_deadline_and_not_before() {
    let (_, p) = constructs()
        .into_iter()
        .find(|(n, _)| *n == "absence")
        .expect("absence");
    let mut op = varpulis_patterns::PatternOperator::new(crate::spec("Alert", &p)).expect("ok");
    let ev =
        |ty: &str, ts: i64, val: i64| Event::new(ty, ts).with_field("k", 0).with_field("v", val);
    let mut out = Vec::new();
    op.process(&ev("A", 100, 1)); // deadline 130
    op.process(&ev("A", 110, 2)); // deadline 140, cancelled below
    op.process(&ev("X", 120, 2));
    op.advance_watermark(130, &mut out);
    assert!(out.is_empty(), "an X at 130 could still come: {out:?}");
    op.advance_watermark(131, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].absence);
    assert_eq!(out[0].time, 130);
    assert_eq!(out[0].all("a")[0].timestamp_ms(), 100);
    op.advance_watermark(1_000, &mut out);
    assert_eq!(out.len(), 1, "the second A saw its X");
    assert_eq!(op.counters().runs_cancelled, 1);
}
