//! Outputs that are not regular files (`/dev/null`, a FIFO): checkpointed runs over them start,
//! resume after a stop or a `kill -9`, and run again, never cut back, locked or synced; the
//! output is at least once (docs/cli.md, "Exactly once for files").

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::mistakes::{big_input, case, wait_for_lock};
use crate::{fails, ok, run, varpulis};

/// `varpulis run` of the case's program over `events` into `output`, with `state`.
fn run_into(program: &Path, events: &Path, state: &Path, output: &Path) -> Command {
    let mut cmd = run(program, events);
    cmd.arg("--state-dir")
        .arg(state)
        .args(["--checkpoint-every", "1000"])
        .arg("--output")
        .arg(output);
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What `checkpoint inspect` says of the newest checkpoint.
fn inspect(state: &Path) -> String {
    let out = ok(varpulis()
        .args(["checkpoint", "inspect", "--state-dir"])
        .arg(state));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dev_null_with_a_state_dir_starts_resumes_after_kill_9_and_continues_an_appended_input() {
    let c = case();
    let null = Path::new("/dev/null");
    let events = big_input(&c.dir, 20_000);
    let all = std::fs::read_to_string(&events).unwrap();
    let half: String = all.lines().take(10_000).map(|l| format!("{l}\n")).collect();
    std::fs::write(&events, &half).unwrap();

    // A first run, killed wherever it is (or done), then resumed: no truncation, no lock error.
    let mut child = run_into(&c.program, &events, &c.state, null)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if wait_for_lock(&mut child, &c.state.join("varpulis.lock")) {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    ok(&mut run_into(&c.program, &events, &c.state, null));
    assert!(inspect(&c.state).contains("events processed: 10000"));

    // Run again over the same input: resumed at its end, nothing to do.
    let again = ok(&mut run_into(&c.program, &events, &c.state, null));
    assert!(
        stderr(&again).contains("input continues after line 10000"),
        "{}",
        stderr(&again)
    );

    // The input grows: the next run reads only the new lines.
    std::fs::write(&events, &all).unwrap();
    let more = ok(&mut run_into(&c.program, &events, &c.state, null));
    assert!(
        stderr(&more).contains("input continues after line 10000"),
        "{}",
        stderr(&more)
    );
    assert!(inspect(&c.state).contains("events processed: 20000"));
}

#[test]
fn a_state_that_wrote_a_file_continues_into_dev_null_and_then_refuses_the_file_it_no_longer_knows()
{
    let c = case();
    let events = big_input(&c.dir, 4_000);
    let all = std::fs::read_to_string(&events).unwrap();
    let half: String = all.lines().take(2_000).map(|l| format!("{l}\n")).collect();
    std::fs::write(&events, &half).unwrap();
    ok(&mut run_into(&c.program, &events, &c.state, &c.output));
    let file_before = std::fs::read(&c.output).unwrap();
    assert!(!file_before.is_empty());

    // The same state continues into /dev/null: the file's recorded length does not apply.
    std::fs::write(&events, &all).unwrap();
    let null = Path::new("/dev/null");
    let out = ok(&mut run_into(&c.program, &events, &c.state, null));
    assert!(
        stderr(&out).contains("input continues after line 2000"),
        "{}",
        stderr(&out)
    );
    assert!(inspect(&c.state).contains("events processed: 4000"));
    assert_eq!(std::fs::read(&c.output).unwrap(), file_before, "untouched");

    // Back to the file: the newest checkpoint was taken writing /dev/null, so it is refused.
    let err = fails(&mut run_into(&c.program, &events, &c.state, &c.output));
    assert!(err.contains("no checkpoint knows"), "{err}");
    assert!(err.contains("recorded the output /dev/null"), "{err}");
}

#[test]
fn a_fifo_output_with_a_state_dir_gets_the_whole_output_and_a_rerun_resumes() {
    let c = case();
    let fifo = c.dir.join("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let events = big_input(&c.dir, 5_000);
    let reference = c.dir.join("reference.jsonl");
    ok(run(&c.program, &events).arg("--output").arg(&reference));
    let read_all = |fifo: std::path::PathBuf| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    let reader = read_all(fifo.clone());
    ok(&mut run_into(&c.program, &events, &c.state, &fifo));
    assert!(reader.join().unwrap() == std::fs::read(&reference).unwrap());

    // The rerun resumes at the end of the input: it opens the FIFO and writes nothing.
    let reader = read_all(fifo.clone());
    let out = ok(&mut run_into(&c.program, &events, &c.state, &fifo));
    assert!(
        stderr(&out).contains("input continues after line 5000"),
        "{}",
        stderr(&out)
    );
    assert!(reader.join().unwrap().is_empty());
}
