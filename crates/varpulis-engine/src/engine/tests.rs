//! Unit tests of the engine: restore anywhere, flush in steps, unrepresentable times.

use super::*;

const PROGRAM: &str = "\
var limit: float = 10.0
stream Stats = Reading
.where(v < 1000)
.partition_by(zone)
.watermark(out_of_order: 20ms)
.allowed_lateness(10ms)
.window(100ms, sliding: 50ms)
.aggregate(n: count(), s: sum(v * 2), first_v: first(v))
stream Big = Stats
.where(s > limit)
.window(500ms)
.aggregate(k: count(), top: max(s))
.having(k >= 1)
.emit(top: top, k: k, limit: limit)
stream Raw = Reading .where(v >= 1000) .emit(z: zone, big: v)
";

fn events() -> Vec<Event> {
    let mut x: u64 = 7;
    (0..3_000_i64)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let jitter = i64::try_from((x >> 33) % 20).unwrap();
            Event::new("Reading", i * 7 - jitter)
                .with_field("zone", i64::try_from((x >> 20) % 4).unwrap())
                .with_field("v", i64::try_from((x >> 40) % 1_100).unwrap())
        })
        .collect()
}

fn engine() -> Engine {
    Engine::new(varpulis_vpl::parse_program(PROGRAM).unwrap()).unwrap()
}

#[test]
fn restoring_a_checkpoint_anywhere_is_invisible_in_the_output() {
    let events = events();
    let mut full = Vec::new();
    let mut e = engine();
    for ev in &events {
        e.process(ev, &mut full).unwrap();
    }
    assert!(full.iter().any(|o| o.event_type() == "Big"));
    assert!(full.iter().any(|o| o.event_type() == "Raw"));
    for cut in [0, 1, 17, 500, 1_499, 2_999] {
        let mut out = Vec::new();
        let mut a = engine();
        for ev in &events[..cut] {
            a.process(ev, &mut out).unwrap();
        }
        let cp = a.create_checkpoint();
        let mut b = engine();
        b.restore_checkpoint(&cp).unwrap();
        assert_eq!(b.create_checkpoint(), cp, "restore then snapshot at {cut}");
        for ev in &events[cut..] {
            b.process(ev, &mut out).unwrap();
        }
        assert_eq!(out, full, "cut at {cut}");
        assert_eq!(b.events_processed(), 3_000);
        assert_eq!(b.output_events_emitted(), full.len() as u64);
    }
}

#[test]
fn a_checkpoint_of_another_program_is_refused_with_the_stream_named() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&Event::new("Reading", 1).with_field("v", 1), &mut out)
        .unwrap();
    let cp = e.create_checkpoint();
    let other = varpulis_vpl::parse_program(
        "stream Stats = Reading .partition_by(zone) .window(1s) .aggregate(n: count())",
    )
    .unwrap();
    let err = Engine::new(other)
        .unwrap()
        .restore_checkpoint(&cp)
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownStream { ref stream } if stream == "Big"));
    let changed = varpulis_vpl::parse_program(&PROGRAM.replace("100ms", "200ms")).unwrap();
    let err = Engine::new(changed)
        .unwrap()
        .restore_checkpoint(&cp)
        .unwrap_err();
    assert!(matches!(err, EngineError::Window { ref stream, .. } if stream == "Stats"));
}

#[test]
fn flush_emits_open_windows_and_feeds_them_downstream() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(
        &Event::new("Reading", 5)
            .with_field("zone", 1)
            .with_field("v", 9),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    e.flush(&mut out);
    let types: Vec<&str> = out.iter().map(Event::event_type).collect();
    assert_eq!(types, ["Stats", "Stats", "Big"]);
    assert_eq!(out[2].get("top"), Some(&Value::Int(18)));
    assert_eq!(out[2].get("limit"), Some(&Value::Float(10.0)));
}

/// The flush as it was before `flush_step`: every stream in turn takes all its source
/// flushed, then flushes its window at once. The reference for the incremental flush.
fn one_shot_flush(e: &mut Engine, out: &mut Vec<Event>) {
    let before = out.len();
    let mut step = Step {
        variables: &e.variables,
        results: &mut e.results,
        late: &mut e.late,
    };
    for i in 0..e.streams.len() {
        let (done, rest) = e.produced.split_at_mut(i);
        let mine = &mut rest[0];
        mine.clear();
        let stream = &mut e.streams[i];
        if let Input::Stream(up) = stream.input {
            for ev in &done[up] {
                step.handle(stream, ev, mine, None);
            }
        }
        if let Some(op) = stream.window.as_mut() {
            op.flush(step.results);
            step.finish(stream, mine, None);
        }
        out.extend(mine.iter().cloned());
    }
    e.output_events_emitted += (out.len() - before) as u64;
}

/// Programs whose flush feeds streams downstream: windows into windows of every kind,
/// projections, count windows, two readers of one stream, a chain of three.
const CHAINS: &str = "\
stream Stats = Reading
.partition_by(zone)
.watermark(out_of_order: 20ms)
.window(100ms, sliding: 30ms)
.aggregate(n: count(), s: sum(v), first_v: first(v))
stream Proj = Stats .where(n > 1) .emit(zone: zone, n: n, s: s)
stream Every3 = Stats .window(3) .aggregate(k: count(), top: max(s))
stream Sess = Proj .partition_by(zone) .window(session: 50ms) .aggregate(c: count(), hi: max(n))
stream Tumble = Every3 .window(200ms) .aggregate(m: count(), t: max(top))
stream Zones = Reading .where(v > 900) .partition_by(zone) .window(session: 500ms) .aggregate(z: count())
";

#[test]
fn flushing_in_steps_emits_exactly_what_the_one_shot_flush_emitted() {
    for program in [PROGRAM, CHAINS] {
        let program = varpulis_vpl::parse_program(program).unwrap();
        let events = events();
        for cut in [0, 1, 40, 700, 3_000] {
            let mut reference = Engine::new(program.clone()).unwrap();
            let mut out = Vec::new();
            for ev in &events[..cut] {
                reference.process(ev, &mut out).unwrap();
            }
            let fed = reference.create_checkpoint();
            let late = reference.take_late_events();
            let mut expected = Vec::new();
            one_shot_flush(&mut reference, &mut expected);
            if cut == 3_000 {
                // Every windowed stream and the projection flush something.
                for name in program.streams.iter().map(|s| s.name.as_str()) {
                    let flushed = expected.iter().any(|o| o.event_type() == name);
                    assert!(flushed || name == "Raw", "{name} flushed nothing");
                }
            }
            for step in [1, 2, 3, 7, 64, usize::MAX] {
                let mut e = Engine::new(program.clone()).unwrap();
                e.restore_checkpoint(&fed).unwrap();
                let mut got = Vec::new();
                loop {
                    let len = got.len();
                    let more = e.flush_step(&mut got, step);
                    assert!(
                        got.len() - len <= step,
                        "step {step} gave {}",
                        got.len() - len
                    );
                    if !more {
                        break;
                    }
                }
                assert_eq!(got, expected, "cut {cut}, steps of {step}");
                assert_eq!(e.create_checkpoint(), reference.create_checkpoint());
                assert_eq!(e.take_late_events(), reference.late, "cut {cut}");
            }
            reference.late = late;
        }
    }
}

#[test]
fn a_flush_of_86_million_pending_results_is_emitted_a_bounded_step_at_a_time() {
    let program = varpulis_vpl::parse_program(
        "stream Day = Reading .window(1d, sliding: 1ms) .aggregate(n: count())\n\
         stream Tally = Day .window(1000) .aggregate(k: count())",
    )
    .unwrap();
    let mut e = Engine::new(program).unwrap();
    let mut out = Vec::new();
    e.process(&Event::new("Reading", 0).with_field("v", 1), &mut out)
        .unwrap();
    assert!(out.is_empty());
    for step in 0..3_u64 {
        assert!(e.flush_step(&mut out, 4096));
        assert_eq!(out.len(), 4096);
        assert_eq!(
            out[0].timestamp_ms(),
            1 + 4096 * i64::try_from(step).unwrap()
        );
        assert!(out.iter().all(|o| o.event_type() == "Day"));
        out.clear();
    }
    assert_eq!(e.output_events_emitted(), 3 * 4096);
    // An event abandons the flush; the windows left stay and are flushed later.
    e.process(&Event::new("Reading", 5).with_field("v", 1), &mut out)
        .unwrap();
    assert!(e.flush.is_none());
}

#[test]
fn an_event_at_i64_max_is_refused_with_the_stream_named_and_nothing_changed() {
    let mut e = engine();
    let mut out = Vec::new();
    for ev in &events()[..100] {
        e.process(ev, &mut out).unwrap();
    }
    let before = e.create_checkpoint();
    let emitted = out.len();
    let err = e
        .process(
            &Event::new("Reading", i64::MAX)
                .with_field("zone", 1)
                .with_field("v", 1),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::UnrepresentableTime { stream, event_time_ms, window }
                if stream == "Stats" && *event_time_ms == i64::MAX
                    && window == "sliding 100ms every 50ms with allowed lateness 10ms"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "event time 9223372036854775807 (stream Stats): its sliding 100ms every 50ms with \
         allowed lateness 10ms window cannot be represented"
    );
    assert_eq!(out.len(), emitted);
    assert_eq!(e.create_checkpoint(), before);
    assert!(e.take_late_events().is_empty());
    // A stream without a window takes any time: an unwindowed type is not refused.
    let raw = varpulis_vpl::parse_program("stream Raw = Reading .emit(v: v)").unwrap();
    let mut raw = Engine::new(raw).unwrap();
    raw.process(
        &Event::new("Reading", i64::MAX).with_field("v", 1),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.last().unwrap().timestamp_ms(), i64::MAX);
}

#[test]
fn an_event_whose_result_a_downstream_window_cannot_represent_is_refused_before_anything_changes() {
    let program = varpulis_vpl::parse_program(
        "stream Fine = Reading .window(1ms) .aggregate(n: count())\n\
         stream Day = Fine .window(1d) .aggregate(k: count())",
    )
    .unwrap();
    let mut e = Engine::new(program).unwrap();
    let mut out = Vec::new();
    // `Fine` alone could take it (its window [t, t + 1) closes at t + 1 <= i64::MAX), but
    // the result it emits at t + 1 falls in a day `Day` cannot represent.
    let t = i64::MAX - 10;
    e.process(&Event::new("Reading", 0), &mut out).unwrap();
    let before = e.create_checkpoint();
    let err = e.process(&Event::new("Reading", t), &mut out).unwrap_err();
    assert!(
        matches!(&err, EngineError::UnrepresentableTime { stream, event_time_ms, .. }
            if stream == "Day" && *event_time_ms == t),
        "{err:?}"
    );
    assert_eq!(e.create_checkpoint(), before);
    // The last time whose day fits is accepted, and flushed through both windows.
    let day = 86_400_000_i64;
    let last = (i64::MAX / day - 1) * day + day - 2;
    e.process(&Event::new("Reading", last), &mut out).unwrap();
    e.flush(&mut out);
    assert_eq!(out.last().unwrap().timestamp_ms(), last + 2);
}

#[test]
fn the_runner_reports_an_unrepresentable_event_time_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"event_type\":\"Reading\",\"timestamp\":1,\"v\":1}\n\
         \n\
         {\"event_type\":\"Reading\",\"timestamp\":9223372036854775807,\"v\":2}\n",
    )
    .unwrap();
    let program =
        varpulis_vpl::parse_program("stream Stats = Reading .window(1s) .aggregate(n: count())")
            .unwrap();
    let mut engine = Engine::new(program).unwrap();
    let mut config = crate::RunConfig::new(&input);
    config.output = Some(dir.path().join("out.jsonl"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt
        .block_on(crate::run(
            &mut engine,
            &config,
            None,
            &std::sync::atomic::AtomicBool::new(false),
            &crate::clock::SystemClock,
            &mut crate::NoObserver,
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: event time 9223372036854775807 (stream Stats): its tumbling 1s window \
             cannot be represented",
            input.display()
        )
    );
    assert_eq!(engine.events_processed(), 1);
}

#[test]
fn a_checkpoint_holding_a_time_a_downstream_window_cannot_represent_is_refused() {
    let alone = "stream Fine = Reading .window(1ms) .aggregate(n: count())";
    let mut e = Engine::new(varpulis_vpl::parse_program(alone).unwrap()).unwrap();
    let t = i64::MAX - 10;
    e.process(&Event::new("Reading", t), &mut Vec::new())
        .unwrap();
    let cp = e.create_checkpoint();
    let chained = format!("{alone}\nstream Day = Fine .window(1d) .aggregate(k: count())");
    let mut e = Engine::new(varpulis_vpl::parse_program(&chained).unwrap()).unwrap();
    let err = e.restore_checkpoint(&cp).unwrap_err();
    assert!(
        matches!(&err, EngineError::UnrepresentableTime { stream, event_time_ms, .. }
            if stream == "Day" && *event_time_ms == t),
        "{err:?}"
    );
}

const PATTERNS: &str = "\
stream Seq = A as a -> B where v > a.v as b .within(50ms) .partition_by(k) .emit(k: k, d: b.v - a.v)
stream Runs = A as a -> all B where v > a.v as b -> C .within(80ms) .partition_by(k) .emit(n: len(b), s: sum(b.v))
stream J = join(A, C) .on(A.k == C.k) .window(30ms) .emit(k: A.k, x: C.v)
";

fn pattern_events() -> Vec<Event> {
    let mut x: u64 = 11;
    (0..2_000_i64)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let ty = ["A", "B", "B", "C"][usize::try_from((x >> 33) % 4).unwrap()];
            Event::new(ty, i * 3)
                .with_field("k", i64::try_from((x >> 20) % 3).unwrap())
                .with_field("v", i64::try_from((x >> 40) % 10).unwrap())
        })
        .collect()
}

fn pattern_engine(src: &str) -> Engine {
    Engine::new(varpulis_vpl::parse_program(src).unwrap()).unwrap()
}

#[test]
fn a_pattern_program_restored_at_any_position_gives_the_uninterrupted_output() {
    let events = pattern_events();
    let mut whole = pattern_engine(PATTERNS);
    let mut expected = Vec::new();
    for e in &events {
        whole.process(e, &mut expected).unwrap();
    }
    whole.flush(&mut expected);
    let streams: std::collections::BTreeSet<&str> =
        expected.iter().map(Event::event_type).collect();
    assert_eq!(streams.len(), 3, "every stream matches: {streams:?}");
    for cut in [0, 1, 7, 500, 1_333, 1_999] {
        let mut first = pattern_engine(PATTERNS);
        let mut got = Vec::new();
        for e in &events[..cut] {
            first.process(e, &mut got).unwrap();
        }
        let cp = first.create_checkpoint();
        assert!(cut == 0 || !cp.pattern_states.is_empty());
        let mut second = pattern_engine(PATTERNS);
        second.restore_checkpoint(&cp).unwrap();
        for e in &events[cut..] {
            second.process(e, &mut got).unwrap();
        }
        second.flush(&mut got);
        assert_eq!(got, expected, "restored after {cut} events");
    }
}

#[test]
fn a_checkpoint_of_another_pattern_is_refused_as_incompatible_with_the_stream_named() {
    let mut e = pattern_engine(PATTERNS);
    let mut out = Vec::new();
    for ev in &pattern_events()[..100] {
        e.process(ev, &mut out).unwrap();
    }
    let cp = e.create_checkpoint();
    let changed = PATTERNS.replace("v > a.v as b .within(50ms)", "v >= a.v as b .within(50ms)");
    let err = pattern_engine(&changed)
        .restore_checkpoint(&cp)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::Pattern { stream, source: varpulis_patterns::PatternError::IncompatibleState { .. } }
                if stream == "Seq"
        ),
        "{err:?}"
    );
    let mut v1 = cp.clone();
    v1.version = 1;
    v1.pattern_states.clear();
    v1.join_operator_states.clear();
    v1.sase_states.insert(
        "Old".to_owned(),
        varpulis_checkpoint::SaseCheckpoint::default(),
    );
    let err = pattern_engine(PATTERNS)
        .restore_checkpoint(&v1)
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::SeedState { stream, .. } if stream == "Old"),
        "{err:?}"
    );
}

#[test]
fn a_join_reads_a_windowed_streams_results_and_or_and_steps_match_through_the_engine() {
    // Per account and second, the total; joined with the account's latest limit.
    let src = "\
stream Totals = Txn .partition_by(account) .window(1s) .aggregate(total: sum(amount))
stream Over = join(Totals, Limit) .on(Totals.account == Limit.account) .window(10s)
    .where(Totals.total > Limit.max) .emit(account: Totals.account, total: Totals.total)
stream Either = Open as o -> Alert OR Alarm as x -> Ack AND Close .within(10s)
    .emit(first: o.id, second: x.id)
";
    let mut e = pattern_engine(src);
    let mut out = Vec::new();
    let events = [
        Event::new("Limit", 0)
            .with_field("account", "a")
            .with_field("max", 15),
        Event::new("Txn", 100)
            .with_field("account", "a")
            .with_field("amount", 10),
        Event::new("Txn", 200)
            .with_field("account", "a")
            .with_field("amount", 10),
        Event::new("Open", 300).with_field("id", 1),
        Event::new("Alarm", 400).with_field("id", 2),
        Event::new("Close", 500).with_field("id", 3),
        Event::new("Ack", 600).with_field("id", 4),
        Event::new("Txn", 1_100)
            .with_field("account", "a")
            .with_field("amount", 5),
        Event::new("Txn", 2_500)
            .with_field("account", "a")
            .with_field("amount", 1),
    ];
    for ev in &events {
        e.process(ev, &mut out).unwrap();
    }
    e.flush(&mut out);
    let got: Vec<String> = out
        .iter()
        .map(|ev| {
            let fields: Vec<String> = ev.fields().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{}@{} {}",
                ev.event_type(),
                ev.timestamp_ms(),
                fields.join(",")
            )
        })
        .collect();
    // [0, 1s) totals 20 > 15: joined when the window's result reaches the join; [1s, 2s)
    // totals 5, [2s, 3s) 1 (flushed): not over. The sequence takes Alarm (OR) and then Ack and
    // Close in either order (AND).
    assert!(
        got.contains(&"Over@1000 account=\"a\",total=20".to_owned()),
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|g| g.starts_with("Over")).count(),
        1,
        "{got:?}"
    );
    assert!(
        got.contains(&"Either@600 first=1,second=2".to_owned()),
        "{got:?}"
    );
}

#[test]
fn a_late_event_of_a_pattern_or_join_goes_to_the_side_output_and_is_counted() {
    let mut e = pattern_engine(PATTERNS);
    let mut out = Vec::new();
    for ev in [
        Event::new("A", 100).with_field("k", 1).with_field("v", 1),
        Event::new("C", 200).with_field("k", 1).with_field("v", 1),
        // Behind the watermark of A and C (200): late for Seq, Runs and J.
        Event::new("A", 50).with_field("k", 1).with_field("v", 1),
    ] {
        e.process(&ev, &mut out).unwrap();
    }
    let late = e.take_late_events();
    let streams: Vec<&str> = late.iter().map(|l| l.stream.as_str()).collect();
    assert_eq!(streams, ["Seq", "Runs", "J"], "{late:?}");
    assert!(late.iter().all(|l| l.event.timestamp_ms() == 50));
    assert_eq!(e.late_events_dropped(), 3);
}

#[test]
fn a_joins_max_keys_bounds_each_input_and_counts_the_evictions() {
    let mut e = pattern_engine(
        "stream J = join(A, C) .on(A.k == C.k) .window(1s) .max_keys(2) .emit(k: A.k)",
    );
    let mut out = Vec::new();
    for (i, k) in [1, 2, 3, 4].into_iter().enumerate() {
        let ev = Event::new("A", i64::try_from(i).unwrap()).with_field("k", k);
        e.process(&ev, &mut out).unwrap();
    }
    e.flush(&mut out);
    let cp = e.create_checkpoint();
    let j = &cp.join_operator_states["J"];
    assert_eq!(j.buffers[0].len(), 2, "two keys kept: {j:?}");
    assert_eq!(j.counters.keys_evicted, 2);
}
