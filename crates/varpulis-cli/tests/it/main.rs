//! End-to-end tests of the `varpulis` binary.

#![allow(clippy::disallowed_methods)] // process-level tests time real processes (timeouts, waits)

mod cli_errors;
mod corrupt_checkpoint;
mod crash_loop;
mod examples;
mod mistakes;
mod phases;
mod server;
mod signals;
mod streams;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub(crate) fn varpulis() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
    cmd.env_remove("VARPULIS_ENCRYPTION_KEY")
        .env_remove("RUST_LOG");
    cmd
}

/// `varpulis run PROGRAM --events EVENTS`, ready for more flags.
pub(crate) fn run(program: impl AsRef<Path>, events: impl AsRef<Path>) -> Command {
    let mut cmd = varpulis();
    cmd.arg("run")
        .arg(program.as_ref())
        .arg("--events")
        .arg(events.as_ref());
    cmd
}

/// The workspace's `examples/` directory.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `cmd`, asserting success, and returns its output.
pub(crate) fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("varpulis runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, asserting failure, and returns its stderr.
pub(crate) fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("varpulis runs");
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// Writes `text` to `dir/name` and returns the path.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}
