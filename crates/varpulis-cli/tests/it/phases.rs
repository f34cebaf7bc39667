//! A stream fed in phases (phase 1 file, stop, phase 2 file) gives what one run over both
//! files gives: state, windows and the output file continue across the phases.

use std::path::Path;

use crate::{ok, varpulis, write};

const COUNT_PROGRAM: &str = "\
stream Batches = Reading
    .partition_by(zone)
    .window(3)
    .aggregate(n: count(), total: sum(value), first_v: first(value), last_v: last(value))
";

const SESSION_PROGRAM: &str = "\
stream Sessions = Click
    .partition_by(user)
    .window(session: 5s)
    .aggregate(clicks: count(), first_page: first(page), last_page: last(page))
";

fn reading(ts: i64, zone: &str, value: i64) -> String {
    format!(
        "{{\"event_type\":\"Reading\",\"timestamp\":{ts},\"fields\":{{\"zone\":\"{zone}\",\"value\":{value}}}}}\n"
    )
}

fn run_phases(program: &Path, dir: &Path, phases: &[&Path], output: &Path) {
    for events in phases {
        ok(varpulis()
            .arg("run")
            .arg(program)
            .arg("--events")
            .arg(events)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--output")
            .arg(output));
    }
}

fn run_once(program: &Path, events: &Path) -> String {
    let out = ok(varpulis()
        .arg("run")
        .arg(program)
        .arg("--events")
        .arg(events));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn count_window_fed_in_two_phases_equals_one_run_over_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(tmp.path(), "count.vpl", COUNT_PROGRAM);
    let mut phase1 = String::new();
    let mut phase2 = String::new();
    for i in 0..20_i64 {
        let zone = ["a", "b", "c"][(i * 7 % 3) as usize];
        phase1.push_str(&reading(i * 10, zone, i));
        phase2.push_str(&reading(1_000 + i * 10, zone, 100 + i));
    }
    let p1 = write(tmp.path(), "phase1.jsonl", &phase1);
    let p2 = write(tmp.path(), "phase2.jsonl", &phase2);
    let both = write(tmp.path(), "both.jsonl", &(phase1 + &phase2));
    let output = tmp.path().join("out.jsonl");
    run_phases(&program, tmp.path(), &[&p1, &p2], &output);
    let phased = std::fs::read_to_string(&output).unwrap();
    let once = run_once(&program, &both);
    assert_eq!(phased, once);
    // A count window spanning the two files exists: 20 events per file, windows of 3.
    assert!(once.lines().count() >= 12, "{once}");
    let spans = once.lines().any(|l| {
        let j: serde_json::Value = serde_json::from_str(l).unwrap();
        j["fields"]["first_v"].as_i64() < Some(20) && j["fields"]["last_v"].as_i64() >= Some(100)
    });
    assert!(spans, "a batch spans the phases: {once}");
}

#[test]
fn session_window_fed_in_two_phases_equals_one_run_over_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(tmp.path(), "sessions.vpl", SESSION_PROGRAM);
    // Sessions open at the end of phase 1 continue in phase 2 (bob at 7s, then 12s: a gap of
    // exactly 5s joins).
    let phase1 = "\
@1s Click { user: \"alice\", page: \"home\" }
@3s Click { user: \"bob\", page: \"home\" }
@4s Click { user: \"alice\", page: \"item\" }
@7s Click { user: \"bob\", page: \"cart\" }
";
    let phase2 = "\
@12s Click { user: \"bob\", page: \"pay\" }
Click { user: \"alice\", page: \"home\" }
@20s Click { user: \"carol\", page: \"home\" }
@40s Click { user: \"alice\", page: \"home\" }
";
    let p1 = write(tmp.path(), "phase1.evt", phase1);
    let p2 = write(tmp.path(), "phase2.evt", phase2);
    let both = write(tmp.path(), "both.evt", &format!("{phase1}{phase2}"));
    let output = tmp.path().join("out.jsonl");
    run_phases(&program, tmp.path(), &[&p1, &p2], &output);
    let phased = std::fs::read_to_string(&output).unwrap();
    let once = run_once(&program, &both);
    assert_eq!(phased, once);
    assert!(
        once.contains(
            "\"user\":\"bob\",\"clicks\":3,\"first_page\":\"home\",\"last_page\":\"pay\""
        ),
        "bob's session spans both files: {once}"
    );
}
