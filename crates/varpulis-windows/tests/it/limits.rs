//! Event times at the edges of `i64`: processing never panics, wraps or loops; a time whose
//! window cannot be represented is refused with the operator unchanged; the watermark saturates.
//!
//! Run in debug, where an arithmetic overflow panics.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use varpulis_core::{Event, Value};
use varpulis_windows::{
    Aggregate, Outcome, WatermarkTracker, WindowError, WindowKind, WindowOperator, WindowResult,
    WindowSpec,
};

const MIN: i128 = i64::MIN as i128;
const MAX: i128 = i64::MAX as i128;

fn spec(kind: WindowKind, lateness: i64, partitioned: bool) -> WindowSpec {
    let mut s = WindowSpec::new("W", kind)
        .allowed_lateness(lateness)
        .aggregate(Aggregate::count("n"));
    if partitioned {
        s = s.partition_by("k");
    }
    s
}

fn floor(t: i128, m: i64) -> i128 {
    t.div_euclid(i128::from(m)) * i128::from(m)
}

/// The definition, computed directly: every window containing `ts` starts at or after
/// `i64::MIN` and closes at a watermark that fits in `i64`.
fn representable(kind: WindowKind, lateness: i64, ts: i64) -> bool {
    let (t, l) = (i128::from(ts), i128::from(lateness));
    match kind {
        WindowKind::Tumbling { size_ms } => {
            let s = floor(t, size_ms);
            s >= MIN && s + i128::from(size_ms) + l <= MAX
        }
        WindowKind::Sliding { size_ms, slide_ms } => {
            let earliest = floor(t - i128::from(size_ms), slide_ms) + i128::from(slide_ms);
            let latest = floor(t, slide_ms);
            earliest >= MIN && latest + i128::from(size_ms) + l <= MAX
        }
        WindowKind::Session { gap_ms } => t + i128::from(gap_ms) + l < MAX,
        _ => true,
    }
}

fn count(r: &WindowResult) -> i64 {
    match r.event.get("n") {
        Some(Value::Int(n)) => *n,
        other => panic!("count is {other:?}"),
    }
}

/// Feeds `events` (time, key, source) through a tracker with bounds `ooo` and the operator,
/// then flushes; checks every outcome against [`representable`] and every emitted window's
/// bounds against the accepted events.
fn check(
    kind: WindowKind,
    lateness: i64,
    partitioned: bool,
    ooo: (i64, i64),
    events: &[(i64, u8, u8)],
) -> Result<(), TestCaseError> {
    let mut op = WindowOperator::new(spec(kind, lateness, partitioned)).expect("valid spec");
    let mut t = WatermarkTracker::new();
    t.declare_source("A", ooo.0);
    t.declare_source("B", ooo.1);
    let mut out = Vec::new();
    let mut accepted: Vec<(i64, Value)> = Vec::new();
    // The accepted range's edges, exactly, and their neighbours: fed after the others.
    let edges: Vec<i64> = match op.accepted_event_times() {
        Some(r) => [*r.start(), *r.end()]
            .iter()
            .flat_map(|&t| [t.checked_sub(1), Some(t), t.checked_add(1)])
            .flatten()
            .collect(),
        None => vec![i64::MIN, 0, i64::MAX],
    };
    let events = events
        .iter()
        .copied()
        .chain(edges.into_iter().map(|t| (t, 0, 0)));
    for (ts, k, src) in events {
        let e = Event::new(if src == 0 { "A" } else { "B" }, ts).with_field("k", i64::from(k));
        let key = if partitioned {
            Value::Int(i64::from(k))
        } else {
            Value::Null
        };
        let fits = representable(kind, lateness, ts);
        let range = op.accepted_event_times();
        prop_assert_eq!(range.as_ref().is_some_and(|r| r.contains(&ts)), fits);
        let before = op.snapshot();
        let emitted = out.len();
        match op.process(&e, &mut out) {
            Ok(outcome) => {
                prop_assert!(fits, "accepted {ts}");
                if outcome == Outcome::Accepted {
                    accepted.push((ts, key));
                }
            }
            Err(WindowError::UnrepresentableTime {
                event_time_ms,
                accepted: reported,
                ..
            }) => {
                prop_assert!(!fits, "refused {ts}");
                prop_assert_eq!(event_time_ms, ts);
                prop_assert_eq!(reported, range);
                prop_assert_eq!(op.snapshot(), before);
                prop_assert_eq!(out.len(), emitted);
                // A refused event is not an input: it does not move the watermark.
                continue;
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other}"))),
        }
        if let Some(wm) = t.observe(&e) {
            op.advance_watermark(wm, &mut out);
        }
    }
    op.flush(&mut out);
    prop_assert_eq!(op.partition_count(), 0);
    let is = |r: &WindowResult, ts: i64, key: &Value| {
        r.key == *key && i128::from(ts) >= i128::from(r.start_ms)
    };
    for r in &out {
        prop_assert_eq!(r.event.timestamp_ms(), r.end_ms);
        let (start, end) = (i128::from(r.start_ms), i128::from(r.end_ms));
        match kind {
            WindowKind::Tumbling { size_ms: size } | WindowKind::Sliding { size_ms: size, .. } => {
                let slide = match kind {
                    WindowKind::Sliding { slide_ms, .. } => slide_ms,
                    _ => size,
                };
                prop_assert_eq!(end - start, i128::from(size), "{:?}", r);
                prop_assert_eq!(start.rem_euclid(i128::from(slide)), 0);
                prop_assert!(
                    accepted
                        .iter()
                        .any(|(ts, k)| is(r, *ts, k) && i128::from(*ts) < end),
                    "window {r:?} holds no accepted event"
                );
            }
            WindowKind::Session { gap_ms } => {
                let last = end - i128::from(gap_ms);
                prop_assert!(last >= start);
                prop_assert!(
                    accepted
                        .iter()
                        .any(|(ts, k)| *k == r.key && *ts == r.start_ms)
                );
                prop_assert!(
                    accepted
                        .iter()
                        .any(|(ts, k)| *k == r.key && i128::from(*ts) == last)
                );
            }
            _ => {}
        }
    }
    match kind {
        WindowKind::Sliding { .. } => {
            for (ts, k) in &accepted {
                prop_assert!(
                    out.iter()
                        .any(|r| is(r, *ts, k) && i128::from(*ts) < i128::from(r.end_ms)),
                    "accepted event at {ts} in no window"
                );
            }
        }
        // Every accepted event is counted exactly once.
        _ => {
            let total: i64 = out.iter().map(count).sum();
            prop_assert_eq!(total, accepted.len() as i64);
        }
    }
    Ok(())
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        i64::MIN..=i64::MIN + 1_000_000,
        i64::MAX - 1_000_000..=i64::MAX,
        any::<i64>(),
        -1_000_000_i64..=1_000_000,
    ]
}

fn size() -> impl Strategy<Value = i64> {
    prop_oneof![1_i64..=1_000, 1_i64..=i64::MAX, i64::MAX - 1_000..=i64::MAX,]
}

fn bound() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0_i64), 0_i64..=1_000, 0_i64..=i64::MAX, Just(i64::MAX),]
}

/// Events in one region of the `i64` range (so they interact) or spread over all of it.
fn events() -> impl Strategy<Value = Vec<(i64, u8, u8)>> {
    let event = |t: BoxedStrategy<i64>| (t, 0_u8..3, 0_u8..2);
    prop_oneof![
        prop::collection::vec(event(time().boxed()), 1..16),
        prop::collection::vec(event((i64::MAX - 3_000..=i64::MAX).boxed()), 1..16),
        prop::collection::vec(event((i64::MIN..=i64::MIN + 3_000).boxed()), 1..16),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 400,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed_0009),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tumbling_windows_at_any_time_accept_with_exact_bounds_or_refuse_unchanged(
        size in size(), lateness in bound(), ooo in (bound(), bound()), events in events(),
    ) {
        check(WindowKind::Tumbling { size_ms: size }, lateness, false, ooo, &events)?;
    }

    #[test]
    fn sliding_windows_at_any_time_accept_with_exact_bounds_or_refuse_unchanged(
        size in size(), per in 1_i64..=8, lateness in bound(), ooo in (bound(), bound()),
        events in events(),
    ) {
        // At most 8 windows per event: a flush emits every window holding an event.
        let slide = (size / per).max(1);
        let kind = WindowKind::Sliding { size_ms: size, slide_ms: slide };
        prop_assume!(size / slide <= 16);
        check(kind, lateness, false, ooo, &events)?;
    }

    #[test]
    fn session_windows_at_any_time_accept_with_exact_bounds_or_refuse_unchanged(
        gap in prop_oneof![Just(0_i64), size()], lateness in bound(), ooo in (bound(), bound()),
        events in events(),
    ) {
        check(WindowKind::Session { gap_ms: gap }, lateness, false, ooo, &events)?;
    }

    #[test]
    fn count_windows_accept_every_time(
        n in 1_u64..5, ooo in (bound(), bound()), events in events(),
    ) {
        check(WindowKind::Count { size: n }, 0, false, ooo, &events)?;
    }

    #[test]
    fn partitioned_windows_at_any_time_accept_with_exact_bounds_or_refuse_unchanged(
        which in 0_u8..4, size in size(), per in 1_i64..=4, lateness in bound(),
        ooo in (bound(), bound()), events in events(),
    ) {
        let kind = match which {
            0 => WindowKind::Tumbling { size_ms: size },
            1 => WindowKind::Sliding { size_ms: size, slide_ms: (size / per).max(1) },
            2 => WindowKind::Session { gap_ms: size },
            _ => WindowKind::Count { size: 2 },
        };
        if let WindowKind::Sliding { size_ms, slide_ms } = kind {
            prop_assume!(size_ms / slide_ms <= 8);
        }
        check(kind, lateness, true, ooo, &events)?;
    }

    #[test]
    fn the_watermark_tracker_saturates_and_never_moves_back_over_the_whole_range(
        ooo in (bound(), bound()), events in events(), advance in time(),
    ) {
        let mut t = WatermarkTracker::new();
        t.declare_source("A", ooo.0);
        t.declare_source("B", ooo.1);
        let mut max = [None::<i64>; 2];
        let mut last = None;
        for &(ts, _, src) in &events {
            let s = usize::from(src);
            max[s] = Some(max[s].map_or(ts, |m: i64| m.max(ts)));
            let wm = t.observe_at(if src == 0 { "A" } else { "B" }, ts);
            // The minimum over sources of max - bound, clamped at i64::MIN, never backwards.
            let expected = max
                .iter()
                .zip([ooo.0, ooo.1])
                .filter_map(|(m, b)| Some((i128::from((*m)?) - i128::from(b)).max(MIN)))
                .min()
                .map(|m| i64::try_from(m).unwrap());
            let expected = expected.map(|e| last.map_or(e, |l: i64| l.max(e)));
            prop_assert_eq!(wm, expected);
            last = wm;
        }
        let forced = t.advance_to(advance);
        prop_assert_eq!(forced, Some(last.map_or(advance, |l| l.max(advance))));
    }
}

#[test]
fn an_event_at_i64_max_is_rejected_not_looped_forever() {
    for kind in [
        WindowKind::Tumbling { size_ms: 5_000 },
        WindowKind::Sliding {
            size_ms: 5_000,
            slide_ms: 1_000,
        },
        WindowKind::Session { gap_ms: 5_000 },
        WindowKind::Session { gap_ms: 0 },
    ] {
        let mut op = WindowOperator::new(spec(kind, 0, true)).unwrap();
        let mut out = Vec::new();
        let _ = op
            .process(&Event::new("E", 1_000).with_field("k", 1), &mut out)
            .unwrap();
        let before = op.snapshot();
        let err = op
            .process(&Event::new("E", i64::MAX).with_field("k", 1), &mut out)
            .unwrap_err();
        assert!(
            matches!(err, WindowError::UnrepresentableTime { event_time_ms, .. } if event_time_ms == i64::MAX),
            "{kind:?}: {err}"
        );
        assert_eq!(op.snapshot(), before, "{kind:?}");
        // The largest watermark closes what is open, and returns.
        op.advance_watermark(i64::MAX, &mut out);
        // The event at 1s is in five sliding windows (starting -3s to 1s), one otherwise.
        let windows = if matches!(kind, WindowKind::Sliding { .. }) {
            5
        } else {
            1
        };
        assert_eq!(out.len(), windows, "{kind:?}");
        assert_eq!(op.partition_count(), 0, "{kind:?}");
    }
}

#[test]
fn the_refusal_names_the_event_time_the_window_and_what_it_accepts() {
    let mut op = WindowOperator::new(spec(
        WindowKind::Tumbling {
            size_ms: 86_400_000,
        },
        0,
        false,
    ))
    .unwrap();
    let err = op
        .process(&Event::new("E", i64::MAX - 1), &mut Vec::new())
        .unwrap_err();
    let last_start = i64::MAX / 86_400_000 * 86_400_000 - 86_400_000;
    assert_eq!(
        err.to_string(),
        format!(
            "event time {}: its tumbling 1d window cannot be represented (it accepts event \
             times {}..={})",
            i64::MAX - 1,
            i64::MIN / 86_400_000 * 86_400_000,
            last_start + 86_400_000 - 1
        )
    );
    let late = WindowSpec::session("S", 5_000).allowed_lateness(1_000);
    assert_eq!(
        late.describe_window(),
        "session gap 5s with allowed lateness 1s"
    );
}

#[test]
fn the_last_representable_tumbling_window_is_accepted_and_closed_by_the_largest_watermark() {
    let size = 1_000_i64;
    let lateness = 7_i64;
    let mut op = WindowOperator::new(spec(
        WindowKind::Tumbling { size_ms: size },
        lateness,
        false,
    ))
    .unwrap();
    let range = op.accepted_event_times().unwrap();
    // The last window [s, s + size) with s + size + lateness <= i64::MAX.
    let s = (i64::MAX - size - lateness).div_euclid(size) * size;
    assert_eq!(*range.end(), s + size - 1);
    // The first window starts at the first multiple of the size at or after i64::MIN (integer
    // division truncates towards zero: this rounds up).
    assert_eq!(*range.start(), i64::MIN / size * size);
    let mut out = Vec::new();
    let _ = op
        .process(&Event::new("E", s + size - 1), &mut out)
        .unwrap();
    assert!(op.process(&Event::new("E", s + size), &mut out).is_err());
    op.advance_watermark(s + size + lateness - 1, &mut out);
    assert!(out.is_empty());
    op.advance_watermark(i64::MAX, &mut out);
    assert_eq!((out[0].start_ms, out[0].end_ms), (s, s + size));
}

#[test]
fn an_event_whose_first_sliding_window_would_start_before_i64_min_is_rejected() {
    let mut op = WindowOperator::new(spec(
        WindowKind::Sliding {
            size_ms: 10,
            slide_ms: 3,
        },
        0,
        false,
    ))
    .unwrap();
    let mut out = Vec::new();
    // i64::MIN + 2 is a multiple of 3: windows start at ..., MIN - 1, MIN + 2, ... The event
    // at MIN + 8 is in [MIN - 1, MIN + 9), which cannot be represented; MIN + 9 is not.
    assert!(op.process(&Event::new("E", i64::MIN), &mut out).is_err());
    assert!(
        op.process(&Event::new("E", i64::MIN + 8), &mut out)
            .is_err()
    );
    assert_eq!(*op.accepted_event_times().unwrap().start(), i64::MIN + 9);
    let _ = op
        .process(&Event::new("E", i64::MIN + 9), &mut out)
        .unwrap();
    op.flush(&mut out);
    assert!(out.iter().all(|w| w.end_ms - w.start_ms == 10));
    let starts: Vec<i64> = out.iter().map(|w| w.start_ms - i64::MIN).collect();
    assert_eq!(starts, [2, 5, 8]);
}

#[test]
fn a_huge_allowed_lateness_narrows_the_accepted_range_instead_of_wrapping() {
    let op = WindowOperator::new(spec(
        WindowKind::Tumbling { size_ms: 10 },
        i64::MAX - 5,
        false,
    ))
    .unwrap();
    // The first window [0, 10) would close at i64::MAX + 5.
    let range = op.accepted_event_times().unwrap();
    assert_eq!(*range.end(), -1);
    // MIN + gap + lateness + 1 = i64::MAX: only i64::MIN fits.
    let one = WindowOperator::new(spec(
        WindowKind::Session { gap_ms: i64::MAX },
        i64::MAX,
        false,
    ))
    .unwrap();
    assert_eq!(one.accepted_event_times(), Some(i64::MIN..=i64::MIN));
}

#[test]
fn a_huge_out_of_order_bound_saturates_the_watermark_at_i64_min() {
    let mut t = WatermarkTracker::new();
    t.declare_source("A", i64::MAX);
    assert_eq!(t.observe_at("A", -10), Some(i64::MIN));
    assert_eq!(t.observe_at("A", i64::MAX), Some(0));
    t.declare_source("B", i64::MAX);
    assert_eq!(t.observe_at("B", i64::MIN), Some(0)); // never backwards
    assert_eq!(t.source_watermark("B"), Some(i64::MIN));
}
