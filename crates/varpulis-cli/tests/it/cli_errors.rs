//! Mistakes are reported clearly, naming what is wrong and where.

use crate::{examples_dir, fails, ok, varpulis, write};

#[test]
fn a_program_error_is_rendered_with_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(
        tmp.path(),
        "bad.vpl",
        "stream S = T\n    .watermark(out_of_order: 10x)\n",
    );
    for cmd in ["check", "run"] {
        let mut c = varpulis();
        c.arg(cmd).arg(&program);
        if cmd == "run" {
            c.arg("--events")
                .arg(examples_dir().join("zone_stats.jsonl"));
        }
        let err = fails(&mut c);
        assert!(err.contains("bad.vpl:2:30"), "{err}");
        assert!(err.contains("expected a duration like 10s"), "{err}");
    }
}

#[test]
fn a_malformed_event_line_names_file_line_and_column_after_processing_what_came_before() {
    let tmp = tempfile::tempdir().unwrap();
    let program = write(tmp.path(), "p.vpl", "stream P = T .emit(x: x)");
    let events = write(
        tmp.path(),
        "e.evt",
        "@1s T { x: 1 }\n@2s T { x: 2 }\n@3s T { x: }\n",
    );
    let out = varpulis()
        .arg("run")
        .arg(&program)
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("e.evt:3:"), "{err}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
}

#[cfg(not(feature = "persistence"))]
#[test]
fn rocksdb_without_the_persistence_feature_names_the_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(
        varpulis()
            .arg("run")
            .arg(examples_dir().join("zone_stats.vpl"))
            .arg("--events")
            .arg(examples_dir().join("zone_stats.jsonl"))
            .arg("--state-dir")
            .arg(tmp.path())
            .args(["--store", "rocksdb"]),
    );
    assert!(err.contains("`persistence` feature"), "{err}");
}

#[test]
fn store_flags_that_do_not_fit_together_are_refused() {
    let ex = examples_dir();
    let base = |c: &mut std::process::Command| {
        c.arg("run")
            .arg(ex.join("zone_stats.vpl"))
            .arg("--events")
            .arg(ex.join("zone_stats.jsonl"));
    };
    let mut c = varpulis();
    base(&mut c);
    c.args(["--store", "file"]);
    assert!(fails(&mut c).contains("--store file needs --state-dir"));

    let tmp = tempfile::tempdir().unwrap();
    let mut c = varpulis();
    base(&mut c);
    c.arg("--state-dir").arg(tmp.path()).arg("--encrypt");
    let err = fails(&mut c);
    assert!(err.contains("VARPULIS_ENCRYPTION_KEY"), "{err}");

    let mut c = varpulis();
    base(&mut c);
    c.arg("--checkpoint-every").arg("soon");
    let err = fails(&mut c);
    assert!(err.contains("expected a number of events"), "{err}");
}

#[test]
fn a_wrong_encryption_key_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = examples_dir();
    let run = |key: &str| {
        let mut c = varpulis();
        c.arg("run")
            .arg(ex.join("zone_stats.vpl"))
            .arg("--events")
            .arg(ex.join("zone_stats.jsonl"))
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            .arg("--encrypt")
            .arg("--output")
            .arg(tmp.path().join("out.jsonl"))
            .env("VARPULIS_ENCRYPTION_KEY", key);
        c
    };
    ok(&mut run(&"11".repeat(32)));
    let err = fails(&mut run(&"22".repeat(32)));
    assert!(err.contains("encrypted with the key of key id"), "{err}");
    assert!(err.contains("VARPULIS_ENCRYPTION_KEY has key id"), "{err}");
}

#[test]
fn a_passphrase_comes_from_the_named_environment_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = examples_dir();
    let out = ok(varpulis()
        .arg("run")
        .arg(ex.join("zone_stats.vpl"))
        .arg("--events")
        .arg(ex.join("zone_stats.jsonl"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .args(["--encrypt", "--passphrase-env", "MY_PASS"])
        .env("MY_PASS", "correct horse battery staple"));
    assert!(!out.stdout.is_empty());
    let listed = ok(varpulis()
        .args(["checkpoint", "list", "--state-dir"])
        .arg(tmp.path().join("state"))
        .args(["--encrypt", "--passphrase-env", "MY_PASS"])
        .env("MY_PASS", "correct horse battery staple"));
    assert!(String::from_utf8(listed.stdout).unwrap().contains("valid"));
}

#[test]
fn an_output_shorter_than_the_checkpoint_recorded_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = examples_dir();
    let output = tmp.path().join("out.jsonl");
    let mut cmd = varpulis();
    cmd.arg("run")
        .arg(ex.join("zone_stats.vpl"))
        .arg("--events")
        .arg(ex.join("zone_stats.jsonl"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .arg("--output")
        .arg(&output);
    ok(&mut cmd);
    std::fs::write(&output, b"").unwrap();
    let err = fails(&mut cmd);
    assert!(err.contains("truncated or replaced"), "{err}");
}

#[test]
fn workers_outside_one_to_the_key_groups_are_refused_and_a_program_without_parallel_streams_warns()
{
    let program = examples_dir().join("zone_stats.vpl");
    let events = examples_dir().join("zone_stats.jsonl");
    for n in ["0", "129"] {
        let err = fails(crate::run(&program, &events).args(["--workers", n]));
        assert!(
            err.contains(&format!(
                "--workers {n}: must be between 1 and 128 (the number of key groups)"
            )),
            "{err}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let filter = write(
        tmp.path(),
        "filter.vpl",
        "event SensorReading: zone: str, temperature: float\n\
         stream Hot = SensorReading .where(temperature > 20.0)\n",
    );
    let out = ok(crate::run(&filter, &events).args(["--workers", "2"]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "warning: --workers 2: no stream is a partitioned window, partitioned pattern or join \
             over events"
        ),
        "{stderr}"
    );
    let one = ok(&mut crate::run(&filter, &events)).stdout;
    assert_eq!(out.stdout, one, "the same output in one context");
}
