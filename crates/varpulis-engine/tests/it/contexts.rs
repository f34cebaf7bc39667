//! Parallel contexts (`RunConfig::workers`): random partitioned, out-of-order streams through
//! every window kind, partitioned patterns of every shape, downstream streams and an
//! unpartitioned pattern give with 2, 3 and 7 contexts the bytes
//! of the one-context run (outputs and late events, in order), with and without the
//! end-of-input flush; a run checkpointed with N contexts resumes with M (rescaling); a store
//! that fails and a barrier that times out abort one checkpoint and not the next.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use varpulis_checkpoint::{CheckpointEvery, CheckpointManager};
use varpulis_engine::clock::ManualClock;
use varpulis_engine::{Engine, LateEvent, NoObserver, RunConfig, RunError, RunObserver, RunReport};
use varpulis_store::faults::{FailMode, FailPlan, FailingStore};
use varpulis_store::{MemoryStore, StateStore};

/// Every window kind, partitioned (parallel), with a `.where` before the window, a stream
/// over a parallel stream (parallel too), a window over a parallel stream and an unpartitioned
/// window (the tail), and a pattern over the input (the tail).
const PROGRAM: &str = "event Reading: zone: str, v: int
event Alarm: zone: str, level: int
stream Tumbling = Reading .watermark(out_of_order: 3s) .partition_by(zone) .window(10s)
    .aggregate(n: count(), total: sum(v), first_v: first(v), last_v: last(v))
stream Sliding = Reading .where(v % 3 != 0) .partition_by(zone) .window(10s, sliding: 5s)
    .aggregate(n: count(), hi: max(v))
stream Sessions = Reading .partition_by(zone) .allowed_lateness(2s) .window(session: 4s)
    .aggregate(n: count(), lo: min(v))
stream Counts = Reading .partition_by(zone) .window(5) .aggregate(n: count(), total: sum(v))
stream Busy = Tumbling .where(n >= 3) .emit(zone, n, total)
stream Global = Reading .window(20s) .aggregate(n: count(), zones: count_distinct(zone))
stream Busiest = Busy .window(30s) .aggregate(windows: count(), most: max(n))
stream Escalation = Alarm where level == 1 as a -> Alarm where level == 2 and zone == a.zone as b
    .within(20s)
    .emit(zone: a.zone, first: a.level, second: b.level)
";

/// A seeded xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` events over `zones` zones, one about every 300 ms, up to 4 s out of order (so some
/// are late for the 3 s bound), with an alarm now and then.
fn events(seed: u64, n: usize, zones: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut text = String::new();
    for i in 0..n {
        let t = (i as i64) * 300 - rng.below(4_000) as i64 + 4_000;
        let zone = rng.below(zones);
        if rng.below(20) == 0 {
            let level = 1 + rng.below(2);
            text.push_str(&format!(
                "{{\"event_type\":\"Alarm\",\"timestamp\":{t},\"fields\":{{\"zone\":\"z{zone}\",\"level\":{level}}}}}\n"
            ));
        } else {
            let v = rng.below(100);
            text.push_str(&format!(
                "{{\"event_type\":\"Reading\",\"timestamp\":{t},\"fields\":{{\"zone\":\"z{zone}\",\"v\":{v}}}}}\n"
            ));
        }
    }
    text
}

/// Only parallel streams: the tail passes the contexts' merged outputs on.
const PARALLEL_PROGRAM: &str = "event Reading: zone: str, v: int
stream Tumbling = Reading .watermark(out_of_order: 3s) .partition_by(zone) .window(10s)
    .aggregate(n: count(), total: sum(v))
stream Sessions = Reading .partition_by(zone) .window(session: 2s) .aggregate(n: count())
stream Busy = Tumbling .where(n >= 3) .emit(zone, n)
";

/// Partitioned patterns of every shape and joins on one and two key fields (parallel: keyed
/// contexts share out their partitions and join keys), over out-of-order input with late
/// events, bounded by `max_runs` and `max_kleene`; window-less streams over a pattern and a
/// join (parallel too), a window over a pattern (the tail) and a keyed window beside them.
const PATTERN_PROGRAM: &str = "event Reading: zone: str, v: int
event Alarm: zone: str, level: int
stream Escalation = Alarm where level == 1 as a -> Alarm where level == 2 as b
    .within(20s)
    .partition_by(zone)
    .watermark(out_of_order: 3s)
    .emit(zone: a.zone, first: a.level, second: b.level)
stream Rally = Reading as s -> all Reading where v > s.v as up -> Reading where v < s.v as back
    .within(5s)
    .partition_by(zone)
    .watermark(out_of_order: 2s)
    .max_kleene(4)
    .emit(zone: s.zone, from: s.v, ticks: len(up), back: back.v)
stream Quiet = Alarm where level == 2 as a -> NOT Reading where v > 90
    .within(3s)
    .partition_by(zone)
    .emit(zone: a.zone, level: a.level)
stream Pair = Reading where v > 50 as x -> Reading where v < 10 OR Alarm as y
    .within(2s)
    .not(Alarm where level == 2)
    .partition_by(zone)
    .max_runs(3)
    .emit(zone: x.zone, hi: x.v)
stream Both = Reading where v > 90 as p -> Alarm as q AND Reading where v < 5 as r
    .within(10s)
    .partition_by(zone)
    .emit(zone: p.zone, lo: r.v)
stream Loud = Escalation .where(second == 2) .emit(zone, first)
stream Summary = Rally .window(30s) .aggregate(n: count(), longest: max(ticks))
stream Plain = Reading .partition_by(zone) .window(10s) .aggregate(n: count())
stream Joined = join(Reading, Alarm)
    .on(Reading.zone == Alarm.zone)
    .window(2s)
    .where(Reading.v > 40)
    .emit(zone: Reading.zone, v: Reading.v, level: Alarm.level)
stream Twice = join(Alarm, Reading)
    .on(Alarm.zone == Reading.zone and Alarm.level == Reading.v)
    .window(30s)
    .emit(zone: Alarm.zone, level: Alarm.level)
stream Noted = Joined .where(level == 2) .emit(zone, v)
";

/// Declared contexts: `ingest` cleans the input and hands it to `analyze`, which windows it
/// and runs a pattern; the default context runs a keyed window and reads `analyze`'s output.
const DECLARED_PROGRAM: &str = "event Reading: zone: str, v: int
event Alarm: zone: str, level: int
context ingest
context analyze (cores: [0])
stream Clean = Reading .where(v % 5 != 0) .context(ingest) .emit(context: analyze, zone, v)
stream Stats = Clean .partition_by(zone) .window(10s) .aggregate(n: count(), top: max(v))
    .context(analyze)
stream Escalation = Alarm where level == 1 as a -> Alarm where level == 2 and zone == a.zone as b
    .within(20s)
    .context(analyze)
    .emit(zone: a.zone, second: b.level)
stream Keyed = Reading .watermark(out_of_order: 3s) .partition_by(zone) .window(5s)
    .aggregate(n: count())
stream Summary = Stats .where(n > 2) .window(30s) .aggregate(windows: count(), best: max(top))
";

fn engine() -> Engine {
    engine_of(PROGRAM)
}

fn engine_of(program: &str) -> Engine {
    Engine::new(varpulis_vpl::parse_program(program).unwrap()).unwrap()
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// The late events a run reported, as lines.
#[derive(Default)]
struct Lates(Vec<String>);

impl RunObserver for Lates {
    fn late_event(&mut self, late: &LateEvent) {
        self.0
            .push(format!("{} {:?}", late.stream, late.event.timestamp_ms()));
    }
}

struct Run {
    output: Vec<u8>,
    late: Vec<String>,
    report: RunReport,
}

fn run(
    input: &Path,
    output: &Path,
    workers: usize,
    flush: bool,
    store: Option<Arc<dyn StateStore>>,
    every: CheckpointEvery,
) -> Run {
    run_program(PROGRAM, input, output, workers, flush, store, every)
}

fn run_program(
    program: &str,
    input: &Path,
    output: &Path,
    workers: usize,
    flush: bool,
    store: Option<Arc<dyn StateStore>>,
    every: CheckpointEvery,
) -> Run {
    let mut config = RunConfig::new(input);
    config.output = Some(output.to_path_buf());
    config.flush_at_end = flush;
    config.workers = workers;
    config.checkpoint = config.checkpoint.with_every(every);
    let mut lates = Lates::default();
    let report = block_on(varpulis_engine::run(
        &mut engine_of(program),
        &config,
        store,
        &AtomicBool::new(false),
        &ManualClock::new(0),
        &mut lates,
    ))
    .unwrap_or_else(|e| panic!("workers {workers}: {e}"));
    Run {
        output: std::fs::read(output).unwrap(),
        late: lates.0,
        report,
    }
}

/// The program without its contexts: what one engine runs.
fn strip_contexts(program: &str) -> String {
    program
        .lines()
        .filter(|l| !l.starts_with("context "))
        .map(|l| {
            l.replace(" .context(ingest)", "")
                .replace("    .context(analyze)", "    ")
                .replace(" .context(analyze)", "")
                .replace(".emit(context: analyze, ", ".emit(")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_input(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn any_number_of_contexts_writes_the_one_context_output() {
    for seed in 1..=6_u64 {
        let dir = tempfile::tempdir().unwrap();
        let zones = [1, 3, 17, 200][seed as usize % 4];
        let input = write_input(dir.path(), &events(seed, 1_500, zones));
        let flush = seed % 2 == 0;
        let one = run(
            &input,
            &dir.path().join("out-1.jsonl"),
            1,
            flush,
            None,
            CheckpointEvery::Events(1),
        );
        let text = String::from_utf8_lossy(&one.output);
        for stream in [
            "Tumbling", "Sliding", "Sessions", "Counts", "Busy", "Global", "Busiest",
        ] {
            assert!(
                text.contains(&format!("\"event_type\":\"{stream}\"")),
                "seed {seed}: {stream} emits"
            );
        }
        for workers in [2, 3, 7] {
            let out = dir.path().join(format!("out-{workers}.jsonl"));
            let many = run(
                &input,
                &out,
                workers,
                flush,
                None,
                CheckpointEvery::Events(1),
            );
            assert!(
                one.output == many.output,
                "seed {seed} ({zones} zones, flush {flush}): {workers} contexts wrote another \
                 output"
            );
            assert_eq!(
                one.late, many.late,
                "seed {seed}: late events, {workers} contexts"
            );
            assert_eq!(
                (
                    one.report.events_processed,
                    one.report.output_events_emitted,
                    one.report.late_events_dropped
                ),
                (
                    many.report.events_processed,
                    many.report.output_events_emitted,
                    many.report.late_events_dropped
                ),
                "seed {seed}: counters, {workers} contexts"
            );
        }
        assert!(!one.late.is_empty(), "seed {seed}: some events are late");
        // Declared contexts, with keyed ones beside them.
        let every = CheckpointEvery::Events(1);
        let out = |w: usize| dir.path().join(format!("declared-{w}.jsonl"));
        let one = run_program(DECLARED_PROGRAM, &input, &out(1), 1, flush, None, every);
        let plain = strip_contexts(DECLARED_PROGRAM);
        let reference = run_program(
            &plain,
            &input,
            &dir.path().join("plain.jsonl"),
            1,
            flush,
            None,
            every,
        );
        assert!(
            one.output == reference.output,
            "seed {seed}: declared contexts"
        );
        assert_eq!(one.late, reference.late, "seed {seed}: declared contexts");
        for stream in ["Stats", "Escalation", "Keyed", "Summary"] {
            if stream == "Escalation" && zones > 20 {
                continue; // alarms of one zone rarely follow each other among 200 zones
            }
            assert!(
                String::from_utf8_lossy(&one.output)
                    .contains(&format!("\"event_type\":\"{stream}\"")),
                "seed {seed}: {stream} emits"
            );
        }
        for workers in [2, 3] {
            let many = run_program(
                DECLARED_PROGRAM,
                &input,
                &out(workers),
                workers,
                flush,
                None,
                every,
            );
            assert!(
                one.output == many.output,
                "seed {seed}: declared, {workers} keyed contexts"
            );
        }
        // Only parallel streams: the tail passes the merged outputs on.
        let every = CheckpointEvery::Events(1);
        let out = |w: usize| dir.path().join(format!("parallel-{w}.jsonl"));
        let one = run_program(PARALLEL_PROGRAM, &input, &out(1), 1, flush, None, every);
        assert!(one.output.len() > 1_000, "seed {seed}");
        for workers in [2, 3, 7] {
            let many = run_program(
                PARALLEL_PROGRAM,
                &input,
                &out(workers),
                workers,
                flush,
                None,
                every,
            );
            assert!(
                one.output == many.output,
                "seed {seed}: parallel only, {workers} contexts"
            );
            assert_eq!(
                one.late, many.late,
                "seed {seed}: parallel only, {workers} contexts"
            );
        }
    }
}

/// Partitioned patterns and joins on keyed contexts: the one-context output (matches,
/// absences, expiries, evictions, combinations, late events) with 2, 3 and 7 contexts, in the
/// one-context order.
#[test]
fn patterns_and_joins_on_any_number_of_contexts_write_the_one_context_output() {
    for seed in 1..=6_u64 {
        let dir = tempfile::tempdir().unwrap();
        let zones = [1, 3, 17, 200][seed as usize % 4];
        let input = write_input(dir.path(), &events(seed, 4_000, zones));
        let flush = seed % 2 == 1;
        let every = CheckpointEvery::Events(1);
        let out = |w: usize| dir.path().join(format!("patterns-{w}.jsonl"));
        let one = run_program(PATTERN_PROGRAM, &input, &out(1), 1, flush, None, every);
        let text = String::from_utf8_lossy(&one.output);
        for stream in [
            "Rally", "Quiet", "Pair", "Summary", "Plain", "Joined", "Noted",
        ] {
            assert!(
                text.contains(&format!("\"event_type\":\"{stream}\"")),
                "seed {seed}: {stream} emits"
            );
        }
        if zones < 20 {
            assert!(text.contains("\"event_type\":\"Loud\""), "seed {seed}");
        }
        assert!(!one.late.is_empty(), "seed {seed}: some events are late");
        for workers in [2, 3, 7] {
            let many = run_program(
                PATTERN_PROGRAM,
                &input,
                &out(workers),
                workers,
                flush,
                None,
                every,
            );
            assert!(
                one.output == many.output,
                "seed {seed} ({zones} zones, flush {flush}): patterns, {workers} contexts \
                 wrote another output"
            );
            assert_eq!(
                one.late, many.late,
                "seed {seed}: patterns, {workers} contexts"
            );
            assert_eq!(
                (
                    one.report.output_events_emitted,
                    one.report.late_events_dropped
                ),
                (
                    many.report.output_events_emitted,
                    many.report.late_events_dropped
                ),
                "seed {seed}: patterns, {workers} contexts"
            );
        }
    }
}

#[test]
fn checkpoints_of_n_contexts_resume_with_m_and_the_output_is_unchanged() {
    let text = events(42, 3_000, 23);
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let whole = write_input(dir.path(), &text);
    let declared_plain = strip_contexts(DECLARED_PROGRAM);
    for (case, (program, reference, phases, label)) in [
        (PROGRAM, PROGRAM, &[3_usize, 2, 5][..], "3 -> 2 -> 5"),
        (PROGRAM, PROGRAM, &[1, 4, 1][..], "1 -> 4 -> 1"),
        (
            PATTERN_PROGRAM,
            PATTERN_PROGRAM,
            &[3, 2, 5][..],
            "patterns, 3 -> 2 -> 5",
        ),
        (
            PATTERN_PROGRAM,
            PATTERN_PROGRAM,
            &[1, 3, 1][..],
            "patterns, 1 -> 3 -> 1",
        ),
        (
            DECLARED_PROGRAM,
            declared_plain.as_str(),
            &[2, 1, 3][..],
            "declared, 2 -> 1 -> 3",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let expected = run_program(
            reference,
            &whole,
            &dir.path().join(format!("expected-{case}.jsonl")),
            1,
            true,
            None,
            CheckpointEvery::Events(1),
        );
        let run_dir = tempfile::tempdir().unwrap();
        let input = run_dir.path().join("in.jsonl");
        let output = run_dir.path().join("out.jsonl");
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let cut = [lines.len() / 3, 2 * lines.len() / 3, lines.len()];
        for (k, &workers) in phases.iter().enumerate() {
            // The input grows between runs: each run resumes after what the last consumed.
            let mut part = lines[..cut[k]].join("\n");
            part.push('\n');
            std::fs::write(&input, part).unwrap();
            let last = k == phases.len() - 1;
            let r = run_program(
                program,
                &input,
                &output,
                workers,
                last,
                Some(Arc::clone(&store)),
                CheckpointEvery::Events(97),
            );
            assert!(r.report.checkpoints >= 2, "{label}: phase {k} checkpointed");
            if k > 0 {
                assert!(
                    r.report.recovery.resumed_from.is_some(),
                    "{label}: phase {k}"
                );
            }
        }
        let got = std::fs::read(&output).unwrap();
        assert!(
            got == expected.output,
            "{label}: the resumed runs wrote another output"
        );
        // The last checkpoint holds one state per context plus the tail.
        let manager = CheckpointManager::new(Arc::clone(&store), Default::default()).unwrap();
        let latest = block_on(manager.recover()).unwrap().checkpoint.unwrap();
        let workers = *phases.last().unwrap();
        let declared = engine_of(program).program().contexts.len();
        let expected_contexts = if workers > 1 || declared > 0 {
            workers + declared + 1
        } else {
            1
        };
        assert_eq!(latest.context_states.len(), expected_contexts, "{label}");
    }
}

/// The output of an uninterrupted one-context run of [`PROGRAM`] with the end-of-input flush.
fn one_context_output(dir: &Path, input: &Path) -> Vec<u8> {
    let output = dir.join("expected.jsonl");
    run(input, &output, 1, true, None, CheckpointEvery::Events(1)).output
}

fn config_for(input: &Path, output: &Path, workers: usize) -> RunConfig {
    let mut config = RunConfig::new(input);
    config.output = Some(output.to_path_buf());
    config.flush_at_end = true;
    config.workers = workers;
    config.checkpoint = config.checkpoint.with_every(CheckpointEvery::Events(150));
    config
}

fn run_with(config: &RunConfig, store: Arc<dyn StateStore>) -> Result<RunReport, RunError> {
    block_on(varpulis_engine::run(
        &mut engine(),
        config,
        Some(store),
        &AtomicBool::new(false),
        &ManualClock::new(0),
        &mut NoObserver,
    ))
}

/// A store failure at every operation in turn, tolerated once: a failed scheduled
/// checkpoint is skipped and the run goes on taking the next ones; a failure of the final
/// checkpoint fails the run, and the rerun recovers the last committed one. The output is the
/// one-context run's every time.
#[test]
fn a_failed_checkpoint_of_a_parallel_run_is_skipped_and_the_next_one_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &events(11, 2_000, 13));
    let expected = one_context_output(dir.path(), &input);
    let mut skipped_runs = 0;
    for n in (0..400).step_by(7) {
        let output = dir.path().join(format!("out-{n}.jsonl"));
        let mut config = config_for(&input, &output, 2);
        config.tolerable_checkpoint_failures = 1;
        let failing = Arc::new(FailingStore::new(MemoryStore::new()));
        failing.set_plan(FailPlan::Nth(n), FailMode::Before);
        let store: Arc<dyn StateStore> = failing.clone();
        match run_with(&config, Arc::clone(&store)) {
            Ok(report) => {
                if report.checkpoints_failed > 0 {
                    skipped_runs += 1;
                    assert_eq!(report.checkpoints_failed, 1, "op {n}");
                    assert!(
                        report.checkpoints >= 5,
                        "op {n}: later checkpoints were taken"
                    );
                }
            }
            Err(RunError::Checkpoint(_)) => {
                failing.set_plan(FailPlan::Never, FailMode::Before);
                let report = run_with(&config, store).unwrap();
                assert!(report.checkpoints >= 1, "op {n}: the rerun checkpoints");
            }
            Err(e) => panic!("op {n}: {e}"),
        }
        assert!(
            std::fs::read(&output).unwrap() == expected,
            "op {n}: output"
        );
    }
    assert!(
        skipped_runs >= 5,
        "{skipped_runs} runs skipped a failed checkpoint"
    );
}

/// A context that panics fails the run with its message; the last committed checkpoint is the
/// recovery point, the rerun takes the next checkpoints, and the output is complete.
#[test]
fn a_context_that_panics_fails_the_run_and_the_rerun_resumes_from_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &events(12, 2_000, 13));
    let expected = one_context_output(dir.path(), &input);
    let output = dir.path().join("out.jsonl");
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let mut config = config_for(&input, &output, 3);
    config.inject_context_panic = Some((1, 1_234));
    match run_with(&config, Arc::clone(&store)) {
        Err(RunError::Context { context, message }) => {
            assert_eq!(context, "worker-1");
            assert!(
                message.contains("injected panic at input event 1234"),
                "{message}"
            );
        }
        other => panic!("expected the context's failure, got {other:?}"),
    }
    let manager = CheckpointManager::new(Arc::clone(&store), Default::default()).unwrap();
    let last = block_on(manager.recover()).unwrap().checkpoint.unwrap();
    let processed = last.context_states["main"].events_processed;
    assert!(
        (150..=1_234).contains(&processed),
        "the last checkpoint is before the panic: {processed}"
    );
    config.inject_context_panic = None;
    let report = run_with(&config, store).unwrap();
    assert_eq!(report.recovery.resumed_from, Some(last.id));
    assert!(report.checkpoints >= 2, "the next checkpoints are taken");
    assert!(std::fs::read(&output).unwrap() == expected);
}

/// A barrier slower than the checkpoint timeout aborts its checkpoint (every one here: the
/// timeout is a nanosecond); the run goes on, its final checkpoint commits, the output is
/// unchanged.
#[test]
fn a_barrier_past_the_checkpoint_timeout_aborts_that_checkpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), &events(13, 2_000, 13));
    let expected = one_context_output(dir.path(), &input);
    let output = dir.path().join("out.jsonl");
    let mut config = config_for(&input, &output, 2);
    config.checkpoint_timeout = Some(std::time::Duration::from_nanos(1));
    // A clock that moves at every reading: every barrier takes some time.
    let clock = ManualClock::new(0).with_tick(std::time::Duration::from_micros(1));
    let report = block_on(varpulis_engine::run(
        &mut engine(),
        &config,
        Some(Arc::new(MemoryStore::new())),
        &AtomicBool::new(false),
        &clock,
        &mut NoObserver,
    ))
    .unwrap();
    assert!(report.checkpoints_aborted >= 10, "{report:?}");
    // The first (new output) and the final checkpoints are not barriers.
    assert_eq!(report.checkpoints, 2, "{report:?}");
    assert!(std::fs::read(&output).unwrap() == expected);
}

/// Two declared contexts, each reading its own event type: the effective watermark is the
/// minimum over the types, so when one type stops, the other context's windows wait for it,
/// unless the idle timeout marks the silent type idle; then they close exactly as in one
/// context with the same timeout.
#[test]
fn a_silent_input_holds_windows_back_until_the_idle_timeout_marks_it_idle() {
    const TWO: &str = "event A: k: str, v: int
event B: k: str
context left
context right
stream Counts = A .partition_by(k) .window(10s) .aggregate(n: count()) .context(left)
stream Seen = B .where(k == \"x\") .context(right)
";
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for s in 0..100 {
        text.push_str(&format!(
            "{{\"event_type\":\"A\",\"timestamp\":{},\"fields\":{{\"k\":\"k{}\",\"v\":{s}}}}}\n",
            s * 1_000,
            s % 3
        ));
        if s < 5 {
            text.push_str(&format!(
                "{{\"event_type\":\"B\",\"timestamp\":{},\"fields\":{{\"k\":\"x\"}}}}\n",
                s * 1_000
            ));
        }
    }
    let input = write_input(dir.path(), &text);
    let run_with_timeout = |program: &str, workers: usize, timeout: Option<u64>, out: &str| {
        let mut config = RunConfig::new(&input);
        config.output = Some(dir.path().join(out));
        config.workers = workers;
        let mut engine = engine_of(program);
        engine.set_idle_timeout(timeout.map(std::time::Duration::from_millis));
        block_on(varpulis_engine::run(
            &mut engine,
            &config,
            None,
            &AtomicBool::new(false),
            &ManualClock::new(0),
            &mut NoObserver,
        ))
        .unwrap();
        String::from_utf8(std::fs::read(dir.path().join(out)).unwrap()).unwrap()
    };
    let count = |text: &str| text.matches("\"event_type\":\"Counts\"").count();
    let waiting = run_with_timeout(TWO, 1, None, "waiting.jsonl");
    assert_eq!(
        count(&waiting),
        0,
        "B's watermark (4 s) holds every window back"
    );
    let idle = run_with_timeout(TWO, 2, Some(5_000), "idle.jsonl");
    // Windows [0, 10 s) .. [80 s, 90 s) of 3 keys close once B is idle (A reaches 99 s).
    assert_eq!(count(&idle), 27, "{idle}");
    let plain = strip_contexts(TWO)
        .replace(" .context(left)", "")
        .replace(" .context(right)", "");
    let one = run_with_timeout(&plain, 1, Some(5_000), "one.jsonl");
    assert_eq!(
        idle, one,
        "the same windows as one context with the same timeout"
    );
}
