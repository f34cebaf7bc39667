//! Every example in `examples/` produces its expected output, on stdout and with --output.

use crate::{examples_dir, ok, run, varpulis};

const EXAMPLES: [(&str, &str); 8] = [
    ("zone_stats", "jsonl"),
    ("sliding_avg", "evt"),
    ("sessions", "evt"),
    ("orders_lateness", "jsonl"),
    // Sequence patterns and a join (the expected outputs are worked out by hand in
    // `docs/design/patterns.md`, "Examples").
    ("fraud", "jsonl"),
    ("rising", "jsonl"),
    ("payments", "jsonl"),
    ("unshipped", "jsonl"),
];

fn expected(name: &str) -> String {
    std::fs::read_to_string(examples_dir().join(format!("{name}.expected.jsonl")))
        .expect("expected output exists")
}

#[test]
fn every_example_prints_its_expected_output() {
    for (name, ext) in EXAMPLES {
        let dir = examples_dir();
        let out = ok(&mut run(
            dir.join(format!("{name}.vpl")),
            dir.join(format!("{name}.{ext}")),
        ));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            expected(name),
            "example {name}"
        );
    }
}

#[test]
fn every_example_writes_its_expected_output_file_and_a_rerun_adds_nothing() {
    for (name, ext) in EXAMPLES {
        let tmp = tempfile::tempdir().unwrap();
        let output = tmp.path().join("out.jsonl");
        let dir = examples_dir();
        let mut cmd = run(
            dir.join(format!("{name}.vpl")),
            dir.join(format!("{name}.{ext}")),
        );
        cmd.arg("--output")
            .arg(&output)
            .arg("--state-dir")
            .arg(tmp.path().join("state"));
        let first = ok(&mut cmd);
        assert!(first.stdout.is_empty(), "outputs go to the file");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), expected(name));
        // The final checkpoint recorded the end of the input: the same command again is a no-op.
        ok(&mut cmd);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), expected(name));
    }
}

#[test]
fn every_example_checks() {
    for (name, _) in EXAMPLES {
        let out = ok(varpulis()
            .arg("check")
            .arg(examples_dir().join(format!("{name}.vpl"))));
        assert!(String::from_utf8(out.stdout).unwrap().contains(": ok:"));
    }
}

#[test]
fn flush_at_end_emits_the_windows_still_open() {
    let dir = examples_dir();
    let out = ok(run(dir.join("sessions.vpl"), dir.join("sessions.evt")).arg("--flush-at-end"));
    let text = String::from_utf8(out.stdout).unwrap();
    let extra = text
        .strip_prefix(&expected("sessions"))
        .expect("same prefix");
    assert_eq!(
        extra,
        "{\"event_type\":\"Sessions\",\"timestamp\":35000,\"fields\":{\"user\":\"carol\",\"clicks\":1,\"pages\":1,\"first_page\":\"home\",\"last_page\":\"home\"}}\n"
    );
}

#[test]
fn a_late_event_is_reported_on_stderr_not_silently_dropped() {
    let dir = examples_dir();
    let out = ok(&mut run(
        dir.join("orders_lateness.vpl"),
        dir.join("orders_lateness.jsonl"),
    ));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let late: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: late event dropped by stream "))
        .collect();
    assert_eq!(late.len(), 1, "{stderr}");
    assert!(
        late[0].contains("\"timestamp\":58000") && late[0].contains("\"price\":1000.0"),
        "{}",
        late[0]
    );
}

#[test]
fn a_pattern_over_its_bounds_keeps_max_runs_and_inspect_counts_the_evictions() {
    let tmp = tempfile::tempdir().unwrap();
    let program = crate::write(
        tmp.path(),
        "bounded.vpl",
        "stream S = A as a -> B as b .partition_by(k) .max_runs(10) .emit(x: a.v)",
    );
    let lines: String = (0..1000)
        .map(|i| format!("{{\"event_type\":\"A\",\"timestamp\":{i},\"k\":1,\"v\":{i}}}\n"))
        .collect();
    let events = crate::write(tmp.path(), "a.jsonl", &lines);
    let state = tmp.path().join("state");
    let mut cmd = run(&program, &events);
    cmd.arg("--state-dir")
        .arg(&state)
        .arg("--output")
        .arg(tmp.path().join("out.jsonl"))
        .env("RUST_LOG", "warn");
    let out = ok(&mut cmd);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("bounds dropped state") && stderr.contains("stream=S"),
        "{stderr}"
    );
    let inspect = ok(varpulis()
        .args(["checkpoint", "inspect", "--state-dir"])
        .arg(&state));
    let text = String::from_utf8(inspect.stdout).unwrap();
    // 999 events processed (the last is held until the watermark passes it): 10 runs kept.
    assert!(
        text.contains("S: pattern; 1 partition(s), 10 open run(s)")
            && text.contains("runs started 999")
            && text.contains("evicted 989"),
        "{text}"
    );
}

#[test]
fn an_event_late_for_a_pattern_is_reported_on_stderr_not_lost_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let events = crate::write(
        tmp.path(),
        "late.jsonl",
        "{\"event_type\":\"Login\",\"timestamp\":1000,\"user_id\":\"u1\",\"ip\":\"x\"}\n\
         {\"event_type\":\"Login\",\"timestamp\":5000,\"user_id\":\"u2\",\"ip\":\"y\"}\n\
         {\"event_type\":\"Transaction\",\"timestamp\":2000,\"user_id\":\"u1\",\"amount\":5000.0}\n",
    );
    let out = ok(&mut run(examples_dir().join("fraud.vpl"), &events));
    assert!(
        out.stdout.is_empty(),
        "the transaction came after the watermark"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: late event dropped by stream Suspicious:")
            && stderr.contains("\"timestamp\":2000"),
        "{stderr}"
    );
}
