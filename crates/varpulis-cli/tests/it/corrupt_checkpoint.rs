//! A damaged newest checkpoint makes the next run resume from the previous one, and say so.

use crate::{ok, run, varpulis, write};

#[test]
fn resumes_from_previous_checkpoint_when_the_newest_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(
        tmp.path(),
        "p.vpl",
        "stream Stats = Reading .partition_by(zone) .window(1s) .aggregate(n: count(), s: sum(v))",
    );
    let mut events = String::new();
    for i in 0..2_000_i64 {
        events.push_str(&format!(
            "{{\"event_type\":\"Reading\",\"timestamp\":{},\"zone\":\"z{}\",\"v\":{i}}}\n",
            i * 37,
            i % 5
        ));
    }
    let events = write(tmp.path(), "events.jsonl", &events);
    let expected = ok(&mut run(&program, &events)).stdout;
    let state = tmp.path().join("state");
    let output = tmp.path().join("out.jsonl");
    let mut cmd = run(&program, &events);
    cmd.arg("--state-dir")
        .arg(&state)
        .arg("--checkpoint-every")
        .arg("150")
        .arg("--output")
        .arg(&output);
    ok(&mut cmd);
    assert_eq!(std::fs::read(&output).unwrap(), expected);

    // Flip bytes in the middle of the newest manifest.
    let manifests = state.join("varpulis/ckpt/manifest");
    let mut files: Vec<_> = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let newest = files.last().unwrap().clone();
    let newest_id: u64 = newest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xff;
    }
    std::fs::write(&newest, bytes).unwrap();

    let listed = String::from_utf8(
        ok(varpulis()
            .args(["checkpoint", "list", "--state-dir"])
            .arg(&state))
        .stdout,
    )
    .unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.trim_start().starts_with(&newest_id.to_string()) && l.contains("INVALID")),
        "{listed}"
    );
    let inspected = String::from_utf8(
        ok(varpulis()
            .args(["checkpoint", "inspect", "--state-dir"])
            .arg(&state))
        .stdout,
    )
    .unwrap();
    assert!(inspected.contains("invalid checkpoints:"), "{inspected}");
    assert!(
        inspected.contains(&format!("checkpoint {}", newest_id - 1)),
        "{inspected}"
    );
    assert!(
        inspected.contains("Stats: tumbling 1s partition_by zone"),
        "{inspected}"
    );

    let rerun = ok(&mut cmd);
    let stderr = String::from_utf8(rerun.stderr).unwrap();
    assert!(
        stderr.contains(&format!("warning: skipped checkpoint {newest_id} (")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("resuming from checkpoint {}", newest_id - 1)),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&output).unwrap(),
        expected,
        "the events after the previous checkpoint are replayed exactly once"
    );
}
