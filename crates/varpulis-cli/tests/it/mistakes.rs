//! Ordinary mistakes (a wrong flag, a typo, two runs at once) are refused with a message that
//! says what to do, and destroy nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{examples_dir, fails, ok, run, varpulis, write};

const KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

pub(crate) struct Case {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) program: PathBuf,
    pub(crate) events: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) output: PathBuf,
}

pub(crate) fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ex = examples_dir();
    let program = dir.join("zone_stats.vpl");
    let events = dir.join("zone_stats.jsonl");
    std::fs::copy(ex.join("zone_stats.vpl"), &program).unwrap();
    std::fs::copy(ex.join("zone_stats.jsonl"), &events).unwrap();
    Case {
        state: dir.join("state"),
        output: dir.join("out.jsonl"),
        _tmp: tmp,
        dir,
        program,
        events,
    }
}

impl Case {
    /// `varpulis run` of the case, with its state directory and output.
    pub(crate) fn run(&self) -> Command {
        self.run_with(&self.events, &self.state)
    }

    /// Like [`Case::run`] over another input.
    fn run_on(&self, events: &Path) -> Command {
        self.run_with(events, &self.state)
    }

    /// `varpulis run` of the case's program over `events` with `state` and the case's output.
    fn run_with(&self, events: &Path, state: &Path) -> Command {
        let mut cmd = run(&self.program, events);
        cmd.arg("--state-dir")
            .arg(state)
            .arg("--output")
            .arg(&self.output);
        cmd
    }

    /// Like [`Case::run`] with another state directory.
    fn run_in(&self, state: &Path) -> Command {
        self.run_with(&self.events, state)
    }

    /// A run over 200,000 events with a checkpoint after each (seconds long), in the background.
    fn spawn_slow_run(&self) -> std::process::Child {
        let big = big_input(&self.dir, 200_000);
        run(&self.program, &big)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--checkpoint-every", "1"])
            .arg("--output")
            .arg(&self.output)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub(crate) fn expected(&self) -> Vec<u8> {
        std::fs::read(examples_dir().join("zone_stats.expected.jsonl")).unwrap()
    }
}

/// `dir/big.jsonl`: `n` readings for the case's program, 100 ms apart over 7 zones.
pub(crate) fn big_input(dir: &Path, n: u64) -> PathBuf {
    let big = dir.join("big.jsonl");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "{{\"event_type\":\"SensorReading\",\"timestamp\":{},\"fields\":{{\"zone\":\"z{}\",\"temperature\":{i}.5}}}}\n",
            i * 100,
            i % 7
        ));
    }
    std::fs::write(&big, text).unwrap();
    big
}

/// Waits until `path` holds `pid` (the run has taken the lock), or the child has ended.
pub(crate) fn wait_for_lock(child: &mut std::process::Child, path: &Path) -> bool {
    let started = Instant::now();
    let pid = child.id().to_string();
    while std::fs::read_to_string(path).map_or(true, |s| s.trim() != pid) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Every file under `dir`, with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().unwrap() != "varpulis.lock" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

// 1. An output that is the input, the program, or inside the state directory.

#[test]
fn output_equal_to_the_input_is_refused_and_the_input_is_kept() {
    let c = case();
    let before = std::fs::read(&c.events).unwrap();
    let link = c.dir.join("link.jsonl");
    std::os::unix::fs::symlink(&c.events, &link).unwrap();
    let hard = c.dir.join("hard.jsonl");
    std::fs::hard_link(&c.events, &hard).unwrap();
    for output in [&c.events, &link, &hard] {
        let err = fails(run(&c.program, &c.events).arg("--output").arg(output));
        assert!(err.contains("is the input"), "{err}");
        assert_eq!(std::fs::read(&c.events).unwrap(), before, "input untouched");
    }
}

#[test]
fn output_equal_to_the_program_is_refused() {
    let c = case();
    let before = std::fs::read(&c.program).unwrap();
    let err = fails(run(&c.program, &c.events).arg("--output").arg(&c.program));
    assert!(err.contains("is the program"), "{err}");
    assert_eq!(std::fs::read(&c.program).unwrap(), before);
}

#[test]
fn output_inside_the_state_directory_is_refused() {
    let c = case();
    ok(&mut c.run());
    let before = snapshot(&c.state);
    let manifest = before
        .iter()
        .map(|(p, _)| p.clone())
        .find(|p| p.to_string_lossy().contains("manifest"))
        .expect("a manifest was written");
    for output in [manifest, c.state.join("new.jsonl")] {
        let err = fails(
            run(&c.program, &c.events)
                .arg("--state-dir")
                .arg(&c.state)
                .arg("--output")
                .arg(&output),
        );
        assert!(err.contains("inside the state directory"), "{err}");
    }
    assert_eq!(
        snapshot(&c.state),
        before,
        "the state directory is untouched"
    );
}

// 2. and 6. A state directory opened with other settings than it was created with.

#[test]
fn a_run_without_encrypt_on_an_encrypted_state_directory_is_refused_and_loses_nothing() {
    let c = case();
    ok(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    let state_before = snapshot(&c.state);
    let output_before = std::fs::read(&c.output).unwrap();
    let err = fails(&mut c.run());
    assert!(err.contains("is encrypted: add --encrypt"), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    assert_eq!(snapshot(&c.state), state_before, "checkpoints kept");
    assert_eq!(std::fs::read(&c.output).unwrap(), output_before);
    // The encrypted run still resumes where it was.
    let out = ok(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resumed from checkpoint"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
}

#[test]
fn a_run_with_encrypt_on_a_plaintext_state_directory_is_refused() {
    let c = case();
    ok(&mut c.run());
    let before = snapshot(&c.state);
    let err = fails(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    assert!(err.contains("is not encrypted: drop --encrypt"), "{err}");
    assert_eq!(snapshot(&c.state), before);
}

#[test]
fn a_passphrase_directory_needs_passphrase_env_and_a_key_directory_refuses_it() {
    let c = case();
    ok(c.run()
        .args(["--encrypt", "--passphrase-env", "PASS"])
        .env("PASS", "correct horse"));
    let err = fails(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    assert!(
        err.contains("with a passphrase: add --passphrase-env"),
        "{err}"
    );
    let err = fails(&mut c.run());
    assert!(err.contains("add --encrypt --passphrase-env"), "{err}");

    let d = case();
    ok(d.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    let err = fails(
        d.run()
            .args(["--encrypt", "--passphrase-env", "PASS"])
            .env("PASS", "correct horse"),
    );
    assert!(err.contains("drop --passphrase-env"), "{err}");
}

#[test]
fn switching_the_store_kind_on_one_directory_is_refused() {
    let c = case();
    ok(&mut c.run());
    let before = snapshot(&c.state);
    let err = fails(c.run().args(["--store", "rocksdb"]));
    assert!(err.contains("holds a file store"), "{err}");
    assert_eq!(snapshot(&c.state), before);
}

#[cfg(feature = "persistence")]
#[test]
fn a_rocksdb_directory_opened_as_a_file_store_is_refused() {
    let c = case();
    ok(c.run().args(["--store", "rocksdb"]));
    let err = fails(&mut c.run());
    assert!(
        err.contains("holds a rocksdb store: add --store rocksdb"),
        "{err}"
    );
    ok(c.run().args(["--store", "rocksdb"]));
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
}

#[test]
fn a_state_directory_written_before_identity_records_is_recognised() {
    let c = case();
    ok(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    std::fs::remove_file(c.state.join("varpulis-state.json")).unwrap();
    let err = fails(&mut c.run());
    assert!(err.contains("is encrypted: add --encrypt"), "{err}");
    ok(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    assert!(
        c.state.join("varpulis-state.json").is_file(),
        "recorded now"
    );
}

#[test]
fn a_directory_that_holds_other_files_is_refused_and_left_alone() {
    let c = case();
    let home = c.dir.join("home");
    std::fs::create_dir_all(home.join("projects")).unwrap();
    write(&home, "notes.txt", "keep me");
    write(
        &home.join("projects"),
        "draft~tmp-1-2-deadbeef",
        "keep me too",
    );
    write(&home.join("projects"), "a.val~tmp-1-2-deadbeef", "and me");
    let before = snapshot(&home);
    let err = fails(run(&c.program, &c.events).arg("--state-dir").arg(&home));
    assert!(err.contains("holds no varpulis state"), "{err}");
    assert_eq!(snapshot(&home), before);
}

#[test]
fn a_state_dir_that_is_a_file_is_not_a_directory() {
    let c = case();
    let err = fails(run(&c.program, &c.events).arg("--state-dir").arg(&c.events));
    assert!(err.contains("is not a directory"), "{err}");
    let err = fails(
        varpulis()
            .args(["checkpoint", "list", "--state-dir"])
            .arg(&c.events),
    );
    assert!(err.contains("is not a directory"), "{err}");
}

// 3. Two runs at once.

#[test]
fn a_second_run_on_a_state_directory_in_use_fails_at_once_naming_the_pid() {
    let c = case();
    let mut first = c.spawn_slow_run();
    let lock = c.state.join("varpulis.lock");
    let started = Instant::now();
    let pid = first.id().to_string();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim() != pid) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(&c.program, &c.events)
        .arg("--state-dir")
        .arg(&c.state)
        .arg("--output")
        .arg(c.dir.join("other.jsonl"))
        .output()
        .unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8(second.stderr).unwrap();
    if still_running {
        assert!(
            err.contains(&format!("in use by another process (pid {pid})")),
            "{err}"
        );
    }
    assert!(
        !c.dir.join("other.jsonl").exists(),
        "the second run wrote nothing"
    );
}

// 4. A non-empty output that no checkpoint knows.

#[test]
fn a_non_empty_output_no_checkpoint_knows_is_refused_unless_overwrite_output() {
    let c = case();
    std::fs::write(&c.output, b"precious results\n").unwrap();
    // No state directory at all.
    let err = fails(run(&c.program, &c.events).arg("--output").arg(&c.output));
    assert!(err.contains("already holds 17 bytes"), "{err}");
    assert!(err.contains("--overwrite-output"), "{err}");
    // A new (mistyped) state directory: refused, and not left behind.
    let err = fails(&mut c.run());
    assert!(err.contains("no valid checkpoint"), "{err}");
    assert_eq!(std::fs::read(&c.output).unwrap(), b"precious results\n");
    assert!(!c.state.exists(), "the refused run left no state directory");
    // On purpose.
    let out = ok(c.run().arg("--overwrite-output"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("17 bytes no checkpoint knew"));
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
}

#[test]
fn an_output_written_by_a_run_to_stdout_is_refused_naming_what_the_checkpoint_knows() {
    let c = case();
    let stdout = ok(run(&c.program, &c.events).arg("--state-dir").arg(&c.state)).stdout;
    std::fs::write(&c.output, &stdout).unwrap();
    let err = fails(&mut c.run());
    assert!(err.contains("taken writing to stdout"), "{err}");
    assert_eq!(std::fs::read(&c.output).unwrap(), stdout);
}

#[test]
fn a_restart_says_how_many_output_bytes_it_cut_back() {
    let c = case();
    ok(&mut c.run());
    let mut bytes = std::fs::read(&c.output).unwrap();
    bytes.extend_from_slice(b"{\"written\":\"after the checkpoint\"}\n");
    std::fs::write(&c.output, &bytes).unwrap();
    let out = ok(&mut c.run());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("35 bytes written after the checkpoint"),
        "{err}"
    );
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
}

// 5. An input replaced in place.

#[test]
fn an_input_replaced_since_the_checkpoint_is_refused_unless_restart_input() {
    let c = case();
    let half: String = std::fs::read_to_string(&c.events)
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&c.events, &half).unwrap();
    ok(&mut c.run());
    // Log rotation: a new file under the old name, with other events.
    let rotated = c.dir.join("new.jsonl");
    std::fs::write(
        &rotated,
        "{\"event_type\": \"SensorReading\", \"timestamp\": 900000, \"fields\": {\"zone\": \"east\", \"temperature\": 1.0}}\n\
         {\"event_type\": \"SensorReading\", \"timestamp\": 990000, \"fields\": {\"zone\": \"east\", \"temperature\": 2.0}}\n",
    )
    .unwrap();
    std::fs::rename(&rotated, &c.events).unwrap();
    let before = std::fs::read(&c.output).unwrap();
    let err = fails(&mut c.run());
    assert!(err.contains("was replaced since checkpoint"), "{err}");
    assert!(err.contains("--restart-input"), "{err}");
    assert_eq!(std::fs::read(&c.output).unwrap(), before);
    let out = ok(c.run().arg("--restart-input"));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("reading it from its beginning"), "{err}");
    let after = String::from_utf8(std::fs::read(&c.output).unwrap()).unwrap();
    assert!(
        after.contains("\"east\""),
        "the new file's events were read: {after}"
    );
}

#[test]
fn an_input_appended_to_since_the_checkpoint_resumes_after_the_recorded_offset() {
    let c = case();
    let all = std::fs::read_to_string(&c.events).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let first: String = lines[..4].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&c.events, &first).unwrap();
    ok(&mut c.run());
    std::fs::write(&c.events, &all).unwrap();
    let out = ok(&mut c.run());
    assert!(String::from_utf8_lossy(&out.stderr).contains("input continues after line 4"));
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
}

// Sinks and sources that are not regular files; programs that are not.

#[test]
fn dev_null_is_an_output_and_dev_full_reports_no_space() {
    let c = case();
    ok(run(&c.program, &c.events).args(["--output", "/dev/null"]));
    ok(run(&c.program, &c.events)
        .arg("--state-dir")
        .arg(&c.state)
        .args(["--output", "/dev/null"]));
    if Path::new("/dev/full").exists() {
        let err = fails(run(&c.program, &c.events).args(["--output", "/dev/full"]));
        assert!(err.contains("/dev/full"), "{err}");
        assert!(err.to_lowercase().contains("no space"), "{err}");
    }
}

#[test]
fn check_refuses_a_program_that_is_not_a_regular_file_or_too_large() {
    let c = case();
    let err = fails(varpulis().args(["check", "/dev/zero"]));
    assert!(err.contains("must be a regular file"), "{err}");
    let err = fails(varpulis().arg("check").arg(&c.dir));
    assert!(err.contains("is a directory"), "{err}");
    let huge = c.dir.join("huge.vpl");
    std::fs::write(&huge, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    let err = fails(varpulis().arg("check").arg(&huge));
    assert!(err.contains("larger than 4 MiB"), "{err}");
}

// 7. An event time whose window cannot be represented.

#[test]
fn an_event_at_i64_max_is_an_input_error_naming_the_line_and_keeps_what_came_before() {
    let c = case();
    let program = write(
        &c.dir,
        "t.vpl",
        "stream W = T\n    .window(1s)\n    .aggregate(n: count())\n",
    );
    let events = write(
        &c.dir,
        "edge.jsonl",
        &format!(
            "{{\"event_type\":\"T\",\"timestamp\":1000}}\n\
             {{\"event_type\":\"T\",\"timestamp\":5000}}\n\
             {{\"event_type\":\"T\",\"timestamp\":{}}}\n",
            i64::MAX
        ),
    );
    let mut cmd = run(&program, &events);
    cmd.arg("--state-dir")
        .arg(&c.state)
        .arg("--output")
        .arg(&c.output);
    let err = fails(&mut cmd);
    assert!(err.contains("edge.jsonl:3:"), "{err}");
    assert!(err.contains("cannot be represented"), "{err}");
    let first = std::fs::read_to_string(&c.output).unwrap();
    assert_eq!(
        first.lines().count(),
        1,
        "the window before was emitted: {first}"
    );
    // The rerun stops at the same line, and loses and repeats nothing.
    let err = fails(&mut cmd);
    assert!(err.contains("edge.jsonl:3:"), "{err}");
    assert_eq!(std::fs::read_to_string(&c.output).unwrap(), first);
}

// Inputs that are not regular files; program warnings.

#[test]
fn an_input_that_is_not_a_regular_file_is_refused_at_once() {
    let c = case();
    let fifo = c.dir.join("events.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (input, says) in [
        (Path::new("/dev/stdin"), "input must be a regular file"),
        (fifo.as_path(), "is a FIFO: input must be a regular file"),
        (c.dir.as_path(), "is a directory"),
    ] {
        let out = run(&c.program, input)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{err}");
        assert_eq!(err.matches(says).count(), 1, "said once: {err}");
        assert!(!err.contains("line 1"), "{err}");
    }
}

#[test]
fn a_sliding_window_with_millions_of_windows_per_event_is_a_warning_at_load_time() {
    let c = case();
    let program = write(
        &c.dir,
        "wide.vpl",
        "stream W = T\n    .window(1d, sliding: 1ms)\n    .aggregate(n: count())\n",
    );
    for cmd in ["check", "run"] {
        let mut v = varpulis();
        v.arg(cmd).arg(&program);
        if cmd == "run" {
            v.arg("--events").arg(write(&c.dir, "none.evt", ""));
        }
        let out = ok(&mut v);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("warning"), "{err}");
        assert!(err.contains("wide.vpl:2:"), "{err}");
        assert!(err.contains("86400000 windows"), "{err}");
    }
}

// The review's findings: refusals that left state behind, races, messages.

#[test]
fn a_refused_first_run_does_not_pin_a_new_state_directory_to_its_flags() {
    let c = case();
    std::fs::write(&c.output, b"precious results\n").unwrap();
    // Refused (the output is not empty) without --encrypt ...
    let err = fails(&mut c.run());
    assert!(err.contains("already holds 17 bytes"), "{err}");
    assert!(!c.state.exists());
    // ... so the intended encrypted run is not refused as "not encrypted".
    ok(c.run()
        .arg("--encrypt")
        .arg("--overwrite-output")
        .env("VARPULIS_ENCRYPTION_KEY", KEY));
    assert_eq!(std::fs::read(&c.output).unwrap(), c.expected());
    // An existing empty directory is emptied again, not removed.
    let empty = c.dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(
        run(&c.program, &c.events)
            .arg("--state-dir")
            .arg(&empty)
            .arg("--output")
            .arg(&c.output),
    );
    assert!(err.contains("no checkpoint knows"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "varpulis.lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A missing key fails before anything is created.
    let err = fails(c.run_in(&c.dir.join("st2")).arg("--encrypt"));
    assert!(err.contains("needs a key"), "{err}");
    assert!(!c.dir.join("st2").exists());
}

#[test]
fn an_output_inside_a_state_directory_that_does_not_exist_yet_is_refused() {
    let c = case();
    let err = fails(
        run(&c.program, &c.events)
            .arg("--state-dir")
            .arg(&c.state)
            .arg("--output")
            .arg(c.state.join("out.jsonl")),
    );
    assert!(err.contains("inside the state directory"), "{err}");
    assert!(!c.state.exists(), "nothing was created");
    let nested = c.state.join("deeper/still");
    let err = fails(
        run(&c.program, &c.events)
            .arg("--state-dir")
            .arg(&nested)
            .arg("--output")
            .arg(nested.join("out.jsonl")),
    );
    assert!(err.contains("inside the state directory"), "{err}");
}

#[test]
fn inspecting_an_empty_state_directory_creates_no_store() {
    let c = case();
    std::fs::create_dir(&c.state).unwrap();
    let out = ok(varpulis()
        .args(["checkpoint", "list", "--state-dir"])
        .arg(&c.state));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no checkpoints"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(&c.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "varpulis.lock")
        .collect();
    assert!(left.is_empty(), "inspection created {left:?}");
    // Then a run with either store kind can still create it.
    ok(&mut c.run());
}

#[test]
fn a_moved_or_copied_input_is_refused_instead_of_read_again_unless_restart_input() {
    let c = case();
    ok(&mut c.run());
    let moved = c.dir.join("moved.jsonl");
    std::fs::rename(&c.events, &moved).unwrap();
    let before = std::fs::read(&c.output).unwrap();
    let err = fails(&mut c.run_on(&moved));
    assert!(err.contains("a moved or copied input"), "{err}");
    assert!(
        err.contains("zone_stats.jsonl"),
        "names the old input: {err}"
    );
    assert!(err.contains("--restart-input"), "{err}");
    assert_eq!(std::fs::read(&c.output).unwrap(), before);
    // The same file with lines appended is the same input too.
    let mut longer = std::fs::read(&moved).unwrap();
    longer.extend_from_slice(b"{\"event_type\": \"SensorReading\", \"timestamp\": 990000, \"fields\": {\"zone\": \"east\", \"temperature\": 2.0}}\n");
    std::fs::write(&moved, &longer).unwrap();
    let err = fails(&mut c.run_on(&moved));
    assert!(err.contains("a moved or copied input"), "{err}");
    // On purpose: read from its beginning as a new input.
    ok(c.run_on(&moved).arg("--restart-input"));
    // A different file is the next phase, as before.
    let other = write(
        &c.dir,
        "other.jsonl",
        "{\"event_type\": \"SensorReading\", \"timestamp\": 2000000, \"fields\": {\"zone\": \"west\", \"temperature\": 3.0}}\n",
    );
    ok(&mut c.run_on(&other));
}

#[test]
fn a_second_run_writing_the_same_output_is_refused() {
    let c = case();
    let mut first = c.spawn_slow_run();
    let locked = wait_for_lock(&mut first, &c.state.join("varpulis.lock"));
    let second = run(&c.program, &c.events)
        .arg("--state-dir")
        .arg(c.dir.join("other-state"))
        .arg("--output")
        .arg(&c.output)
        .arg("--overwrite-output")
        .output()
        .unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    if locked && still_running {
        assert!(!second.status.success());
        let err = String::from_utf8(second.stderr).unwrap();
        assert!(err.contains("is being written by another process"), "{err}");
        assert!(
            !c.dir.join("other-state").exists(),
            "the refused run left no state directory"
        );
    } else {
        eprintln!("the first run ended before the second started; nothing to refuse");
    }
}

#[test]
fn a_key_other_than_the_directorys_is_refused_naming_both_key_ids() {
    let c = case();
    ok(c.run().arg("--encrypt").env("VARPULIS_ENCRYPTION_KEY", KEY));
    let record = std::fs::read_to_string(c.state.join("varpulis-state.json")).unwrap();
    let other = "2222222222222222222222222222222222222222222222222222222222222222";
    let err = fails(
        c.run()
            .arg("--encrypt")
            .env("VARPULIS_ENCRYPTION_KEY", other),
    );
    assert!(err.contains("encrypted with the key of key id"), "{err}");
    // The id printed is the one recorded, in the same hex form.
    let recorded = record
        .split("\"key_id\": \"")
        .nth(1)
        .and_then(|r| r.get(..8))
        .unwrap_or_else(|| panic!("a hex key id in {record}"));
    assert!(
        err.contains(&format!("key id {recorded}")),
        "{err}\n{record}"
    );
}

#[test]
fn dev_stdout_is_an_output_when_stdout_is_a_pipe() {
    let c = case();
    let out = ok(run(&c.program, &c.events).args(["--output", "/dev/stdout"]));
    assert_eq!(out.stdout, c.expected());
}
