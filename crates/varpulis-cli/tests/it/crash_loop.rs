//! Kill -9 at seeded random moments, restart with the same arguments, repeat: the final output
//! is byte-identical to an uninterrupted run (no event lost, none duplicated), on every store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{ok, run, varpulis, write};

const EVENTS: usize = 100_000;
const KILLS: usize = 20;

/// Tumbling, session and count windows, partitioned, with a chained stream.
const PROGRAM: &str = "\
event SensorReading: zone: str, temperature: float
var hot: float = 20.0
stream ZoneStats = SensorReading
    .partition_by(zone)
    .watermark(out_of_order: 50ms)
    .window(1s)
    .aggregate(n: count(), avg_t: avg(temperature), first_t: first(temperature), last_t: last(temperature))
stream Bursts = SensorReading
    .partition_by(zone)
    .window(session: 300ms)
    .aggregate(n: count(), max_t: max(temperature))
    .having(n > 3)
stream HotStreak = ZoneStats
    .where(avg_t > hot)
    .window(5)
    .aggregate(windows: count(), hottest: max(avg_t))
";

/// Sequence patterns (followed-by with a cross-event condition and `.not`, a Kleene capture,
/// an absence) and a join, partitioned, over one input of several event types.
const PATTERN_PROGRAM: &str = "\
event Login: user: str, ip: int
event Txn: user: str, amount: int
event Lost: user: str
event Pay: user: str, amount: int
stream Fraud = Login as l -> Txn where amount > 900 as t
    .within(2s)
    .not(Lost)
    .partition_by(user)
    .emit(user: l.user, ip: l.ip, amount: t.amount)
stream Bursts = Login as l -> all Txn where amount > 500 as t -> Lost as x
    .within(3s)
    .partition_by(user)
    .max_runs(50)
    .emit(user: l.user, n: len(t), total: sum(t.amount), top: max(t.amount))
stream Silent = Login as l -> NOT Txn where user == l.user
    .within(1s)
    .emit(user: l.user, at: l.ip)
stream Paid = join(Txn, Pay)
    .on(Txn.user == Pay.user and Txn.amount == Pay.amount)
    .window(500ms)
    .emit(user: Txn.user, amount: Pay.amount)
";

fn generate_patterns(path: &Path, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut t: i64 = 1_700_000_000_000;
    let mut last_amount = 0;
    for _ in 0..EVENTS {
        t += rng.gen_range(0..20);
        let user = rng.gen_range(0..30);
        let line = match rng.gen_range(0..100) {
            0..20 => format!(
                "{{\"event_type\":\"Login\",\"timestamp\":{t},\"user\":\"u{user}\",\"ip\":{}}}",
                rng.gen_range(0..1000)
            ),
            20..75 => {
                last_amount = rng.gen_range(0..1000);
                format!(
                    "{{\"event_type\":\"Txn\",\"timestamp\":{t},\"user\":\"u{user}\",\"amount\":{last_amount}}}"
                )
            }
            75..80 => format!("{{\"event_type\":\"Lost\",\"timestamp\":{t},\"user\":\"u{user}\"}}"),
            // A payment, often of the last transaction's amount.
            _ => format!(
                "{{\"event_type\":\"Pay\",\"timestamp\":{t},\"user\":\"u{user}\",\"amount\":{}}}",
                if rng.gen_bool(0.7) {
                    last_amount
                } else {
                    rng.gen_range(0..1000)
                }
            ),
        };
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();
}

fn generate(path: &Path, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut t: i64 = 1_700_000_000_000;
    for _ in 0..EVENTS {
        t += rng.gen_range(0..40);
        // A little disorder, within the declared out-of-order bound.
        let ts = t - rng.gen_range(0..30);
        let zone = rng.gen_range(0..10);
        let temp = f64::from(rng.gen_range(-1000..4000_i32)) / 100.0;
        writeln!(
            f,
            "{{\"event_type\":\"SensorReading\",\"timestamp\":{ts},\"fields\":{{\"zone\":\"z{zone}\",\"temperature\":{temp:?}}}}}"
        )
        .unwrap();
    }
    f.flush().unwrap();
}

struct Setup {
    _tmp: tempfile::TempDir,
    program: PathBuf,
    events: PathBuf,
    expected: Vec<u8>,
    /// `--workers` of each run, in turn (empty: not given).
    workers: Vec<usize>,
}

fn setup(seed: u64) -> Setup {
    setup_with(seed, PROGRAM, generate)
}

fn setup_with(seed: u64, text: &str, generate: fn(&Path, u64)) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(tmp.path(), "crash.vpl", text);
    let events = tmp.path().join("events.jsonl");
    generate(&events, seed);
    let expected = ok(&mut run(&program, &events)).stdout;
    assert!(
        expected.iter().filter(|&&b| b == b'\n').count() > 1_000,
        "the program produces plenty of output"
    );
    Setup {
        _tmp: tmp,
        program,
        events,
        expected,
        workers: Vec::new(),
    }
}

/// The command of run number `n` of a loop.
fn run_cmd(s: &Setup, dir: &Path, store_args: &[&str], key: Option<&str>) -> Command {
    run_cmd_n(s, dir, store_args, key, 0)
}

fn run_cmd_n(s: &Setup, dir: &Path, store_args: &[&str], key: Option<&str>, n: usize) -> Command {
    let mut cmd = run(&s.program, &s.events);
    if !s.workers.is_empty() {
        cmd.arg("--workers")
            .arg(s.workers[n % s.workers.len()].to_string());
    }
    cmd.arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--checkpoint-every")
        .arg("300")
        .arg("--output")
        .arg(dir.join("out.jsonl"))
        .args(store_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(key) = key {
        cmd.env("VARPULIS_ENCRYPTION_KEY", key);
    }
    cmd
}

fn crash_loop(store_args: &[&str], key: Option<&str>, seed: u64) {
    crash_loop_over(&setup(seed), store_args, key, seed);
}

fn crash_loop_over(s: &Setup, store_args: &[&str], key: Option<&str>, seed: u64) {
    // Measure one uninterrupted checkpointed run, to spread the kills over the whole run.
    let probe = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let status = run_cmd(s, probe.path(), store_args, key).status().unwrap();
    assert!(status.success());
    let full_ms = u64::try_from(started.elapsed().as_millis())
        .unwrap()
        .max(50);
    assert_eq!(
        std::fs::read(probe.path().join("out.jsonl")).unwrap(),
        s.expected
    );

    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let max_delay = (full_ms / 12).max(20);
    let mut kills = 0;
    let mut completed = 0;
    let mut runs = 0;
    while kills < KILLS {
        let mut child = run_cmd_n(s, dir.path(), store_args, key, runs)
            .spawn()
            .unwrap();
        runs += 1;
        std::thread::sleep(Duration::from_millis(rng.gen_range(2..=max_delay)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        // It reached the end before the kill: the output must be complete. Start over from an
        // empty state directory so the remaining kills land all over the run again.
        assert!(child.wait().unwrap().success());
        assert!(
            std::fs::read(dir.path().join("out.jsonl")).unwrap() == s.expected,
            "output differs after {kills} kills"
        );
        completed += 1;
        assert!(completed < 10, "the runs keep finishing before the kill");
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        std::fs::remove_file(dir.path().join("out.jsonl")).unwrap();
    }
    let status = run_cmd_n(s, dir.path(), store_args, key, runs)
        .status()
        .unwrap();
    assert!(status.success());
    eprintln!(
        "crash loop {store_args:?}: {kills} kills (delays up to {max_delay} ms of a {full_ms} ms run), \
         {completed} complete run(s) before the last restart"
    );
    let got = std::fs::read(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(
        got.len(),
        s.expected.len(),
        "output length after {kills} kills"
    );
    assert!(got == s.expected, "output differs after {kills} kills");

    let mut inspect = varpulis();
    inspect
        .args(["checkpoint", "inspect", "--state-dir"])
        .arg(dir.path().join("state"))
        .args(store_args);
    if let Some(key) = key {
        inspect.env("VARPULIS_ENCRYPTION_KEY", key);
    }
    let text = String::from_utf8(ok(&mut inspect).stdout).unwrap();
    assert!(
        text.contains(&format!("events processed: {EVENTS}")),
        "{text}"
    );
}

#[test]
fn file_store_survives_repeated_kill_9_with_byte_identical_output() {
    crash_loop(&[], None, 1);
}

#[test]
fn encrypted_file_store_survives_repeated_kill_9_with_byte_identical_output() {
    crash_loop(&["--encrypt"], Some(&"5c".repeat(32)), 2);
}

#[cfg(feature = "persistence")]
#[test]
fn rocksdb_store_survives_repeated_kill_9_with_byte_identical_output() {
    crash_loop(&["--store", "rocksdb"], None, 3);
}

#[test]
fn pattern_and_join_streams_survive_repeated_kill_9_with_byte_identical_output() {
    let s = setup_with(5, PATTERN_PROGRAM, generate_patterns);
    let out = String::from_utf8(s.expected.clone()).unwrap();
    for stream in ["Fraud", "Bursts", "Silent", "Paid"] {
        assert!(
            out.contains(&format!("\"event_type\":\"{stream}\"")),
            "the input makes {stream} match"
        );
    }
    crash_loop_over(&s, &[], None, 5);
}

/// Partitioned patterns and the join on keyed contexts (the unpartitioned pattern in the tail),
/// killed with 2 workers and resumed with 2, 3 or 1: the one-context output.
#[test]
fn pattern_and_join_streams_on_workers_survive_repeated_kill_9_with_the_one_context_output() {
    let mut s = setup_with(11, PATTERN_PROGRAM, generate_patterns);
    s.workers = vec![2, 2, 3, 1];
    crash_loop_over(&s, &[], None, 11);
}

#[cfg(feature = "persistence")]
#[test]
fn pattern_and_join_streams_survive_repeated_kill_9_on_rocksdb() {
    let s = setup_with(6, PATTERN_PROGRAM, generate_patterns);
    crash_loop_over(&s, &["--store", "rocksdb"], None, 6);
}

#[test]
fn two_workers_survive_repeated_kill_9_with_byte_identical_output() {
    let mut s = setup(7);
    s.workers = vec![2];
    crash_loop_over(&s, &[], None, 7);
}

#[cfg(feature = "persistence")]
#[test]
fn two_workers_survive_repeated_kill_9_on_rocksdb() {
    let mut s = setup(8);
    s.workers = vec![2];
    crash_loop_over(&s, &["--store", "rocksdb"], None, 8);
}

/// Declared contexts (`ingest` hands cleaned readings to `analyze`, which windows them) beside
/// a keyed window on 2 workers.
const CONTEXT_PROGRAM: &str = "\
event SensorReading: zone: str, temperature: float
context ingest
context analyze
stream Clean = SensorReading
    .where(temperature > -5.0)
    .context(ingest)
    .emit(context: analyze, zone, temperature)
stream ZoneStats = Clean
    .partition_by(zone)
    .window(1s)
    .aggregate(n: count(), avg_t: avg(temperature))
    .context(analyze)
stream Bursts = SensorReading
    .partition_by(zone)
    .watermark(out_of_order: 50ms)
    .window(session: 300ms)
    .aggregate(n: count(), max_t: max(temperature))
";

/// [`CONTEXT_PROGRAM`] without its contexts: what one engine runs.
const CONTEXT_REFERENCE: &str = "\
event SensorReading: zone: str, temperature: float
stream Clean = SensorReading
    .where(temperature > -5.0)
    .emit(zone, temperature)
stream ZoneStats = Clean
    .partition_by(zone)
    .window(1s)
    .aggregate(n: count(), avg_t: avg(temperature))
stream Bursts = SensorReading
    .partition_by(zone)
    .watermark(out_of_order: 50ms)
    .window(session: 300ms)
    .aggregate(n: count(), max_t: max(temperature))
";

#[test]
fn declared_contexts_survive_repeated_kill_9_with_the_one_context_output() {
    let reference = setup_with(10, CONTEXT_REFERENCE, generate);
    let mut s = setup_with(10, CONTEXT_PROGRAM, generate);
    assert!(
        s.expected == reference.expected,
        "declared contexts, uninterrupted"
    );
    s.workers = vec![2, 1];
    crash_loop_over(&s, &[], None, 10);
}

/// Killed with 3 workers, resumed with 2, then 5, and so on: checkpoints of any number of
/// contexts restore into any other (key-group state redistributed), the output unchanged.
#[test]
fn runs_killed_and_resumed_with_3_then_2_then_5_workers_write_the_one_context_output() {
    let mut s = setup(9);
    s.workers = vec![3, 2, 5];
    crash_loop_over(&s, &[], None, 9);
}

#[test]
fn sigterm_stops_with_a_final_checkpoint_and_the_next_run_completes_the_output() {
    sigterm_then_rerun(&setup(4));
}

/// With 2 workers, stopped by SIGTERM; the rerun (with 3) completes the output.
#[test]
fn sigterm_stops_a_parallel_run_with_a_final_checkpoint_and_a_rerun_with_more_workers_completes_it()
{
    let mut s = setup(11);
    s.workers = vec![2, 3];
    sigterm_then_rerun(&s);
}

fn sigterm_then_rerun(s: &Setup) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = run_cmd_n(s, dir.path(), &[], None, 0)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it get going (well past signal handler installation), then ask it to stop.
    std::thread::sleep(Duration::from_millis(700));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    if out.status.success() {
        eprintln!(
            "the run finished within {:?}; nothing to stop",
            started.elapsed()
        );
    } else {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("stopped by signal"), "{stderr}");
        let partial = std::fs::read(dir.path().join("out.jsonl")).unwrap();
        assert!(
            s.expected.starts_with(&partial),
            "a prefix of the output was written"
        );
        assert!(partial.len() < s.expected.len());
    }
    let rerun = run_cmd_n(s, dir.path(), &[], None, 1)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(rerun.status.success());
    if !out.status.success() {
        let stderr = String::from_utf8(rerun.stderr).unwrap();
        assert!(stderr.contains("input continues after line"), "{stderr}");
    }
    assert!(std::fs::read(dir.path().join("out.jsonl")).unwrap() == s.expected);
}
