//! Signals: SIGINT and SIGTERM stop a run with 130 at any instant (a read, the end-of-input
//! flush, a checkpoint), a second one at once, and the rerun completes the output exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::mistakes::{big_input, case, wait_for_lock};
use crate::{ok, run, write};

#[test]
fn a_sigterm_during_the_end_of_input_flush_stops_it_with_130_and_the_rerun_completes_it() {
    let c = case();
    let program = write(
        &c.dir,
        "slide.vpl",
        "stream W = T\n    .window(5m, sliding: 1ms)\n    .aggregate(n: count())\n",
    );
    let events = write(&c.dir, "one.evt", "@1s T { x: 1 }\n");
    let cmd = |state: &Path, output: &Path| {
        let mut cmd = run(&program, &events);
        cmd.arg("--state-dir")
            .arg(state)
            .arg("--output")
            .arg(output)
            .arg("--flush-at-end");
        cmd
    };
    let reference = c.dir.join("reference.jsonl");
    ok(&mut cmd(&c.dir.join("ref-state"), &reference));
    let expected = std::fs::read(&reference).unwrap();
    assert_eq!(expected.iter().filter(|&&b| b == b'\n').count(), 300_000);

    let child = cmd(&c.state, &c.output)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Outputs come only from the flush: once the file grows, the flush is running.
    while std::fs::metadata(&c.output).map_or(0, |m| m.len()) == 0
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    if out.status.success() {
        eprintln!("the flush finished before the signal; nothing to stop");
    } else {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("stopped by signal during the end-of-input flush"),
            "{stderr}"
        );
        assert!(
            stderr.contains("no checkpoint of the partial flush"),
            "{stderr}"
        );
        let partial = std::fs::read(&c.output).unwrap();
        assert!(partial.len() < expected.len(), "the flush was cut short");
    }
    ok(&mut cmd(&c.state, &c.output));
    assert!(
        std::fs::read(&c.output).unwrap() == expected,
        "the rerun completes the flush exactly once"
    );
}

/// Sends SIGTERM twice to a run over a large input; whatever instant the signals land on, the
/// run ends with 130 (never an abort), and a rerun completes the output exactly once.
fn two_signals_end_the_run_with_130_and_lose_nothing(store: &[&str]) {
    let c = case();
    let big = big_input(&c.dir, 100_000);
    let reference = c.dir.join("reference.jsonl");
    ok(run(&c.program, &big).arg("--output").arg(&reference));
    let cmd = || {
        let mut cmd = run(&c.program, &big);
        cmd.arg("--state-dir")
            .arg(&c.state)
            .args(store)
            .args(["--checkpoint-every", "2000"])
            .arg("--output")
            .arg(&c.output);
        cmd
    };
    let mut child = cmd().stderr(Stdio::piped()).spawn().unwrap();
    if wait_for_lock(&mut child, &c.state.join("varpulis.lock")) {
        for _ in 0..2 {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || out.status.code() == Some(130),
        "{:?}: {stderr}",
        out.status
    );
    ok(&mut cmd());
    assert!(std::fs::read(&c.output).unwrap() == std::fs::read(&reference).unwrap());
}

#[test]
fn two_signals_end_a_file_store_run_with_130() {
    two_signals_end_the_run_with_130_and_lose_nothing(&[]);
}

#[cfg(feature = "persistence")]
#[test]
fn two_signals_end_a_rocksdb_run_with_130() {
    two_signals_end_the_run_with_130_and_lose_nothing(&["--store", "rocksdb"]);
}
