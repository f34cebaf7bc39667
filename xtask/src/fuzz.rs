//! `cargo xtask fuzz [SECONDS]`: builds the cargo-fuzz targets in `fuzz/` with the nightly
//! toolchain and runs each for `SECONDS` (default [`CI_SECONDS`]), one after the other.
//!
//! Each run starts from `fuzz/corpus/<target>/` (kept between runs, not committed), into which
//! the seeds below are written first: the golden checkpoint files, the example event files and
//! programs, and a few hand-made records, each prefixed with the mode byte its target reads
//! (see the targets' headers). A run's libFuzzer output goes to `fuzz/artifacts/<target>.log`;
//! a crash leaves its input under `fuzz/artifacts/<target>/` and fails the task, which names
//! the file and how to reproduce it.

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Seconds per target in `cargo xtask ci`.
pub(crate) const CI_SECONDS: u64 = 20;

/// The cargo-fuzz version `.ci/run` installs (builds with Rust 1.95 stable).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Named seed inputs.
type Seeds = Vec<(String, Vec<u8>)>;

/// A fuzz target, the longest input it is given, and its seeds.
struct Target {
    name: &'static str,
    /// `-max_len`. The VPL and `.evt` targets stay below the nesting depth (about 5,000
    /// parentheses) at which their recursive-descent parsers are known to overflow the stack.
    max_len: usize,
    seeds: fn(&Path) -> Result<Seeds>,
}

const TARGETS: &[Target] = &[
    Target {
        name: "checkpoint_envelope",
        max_len: 8192,
        seeds: checkpoint_envelope_seeds,
    },
    Target {
        name: "checkpoint_manifest",
        max_len: 8192,
        seeds: checkpoint_manifest_seeds,
    },
    Target {
        name: "crypto_envelope",
        max_len: 4096,
        seeds: crypto_envelope_seeds,
    },
    Target {
        name: "crypto_key",
        max_len: 1024,
        seeds: crypto_key_seeds,
    },
    Target {
        name: "crypto_kdf",
        max_len: 512,
        seeds: crypto_kdf_seeds,
    },
    Target {
        name: "evt_reader",
        max_len: 2048,
        seeds: |root| example_seeds(root, ".evt"),
    },
    Target {
        name: "jsonl_reader",
        max_len: 4096,
        seeds: |root| example_seeds(root, ".jsonl"),
    },
    Target {
        name: "vpl_parser",
        max_len: 2048,
        seeds: |root| example_seeds(root, ".vpl"),
    },
];

/// The golden checkpoint files of every format version, named `v<N>-<file>`.
fn golden(root: &Path) -> Result<Seeds> {
    let mut files = Vec::new();
    for version in ["v1", "v2"] {
        let dir = root
            .join("crates/varpulis-checkpoint/tests/golden")
            .join(version);
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((format!("{version}-{name}"), fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

fn prefixed(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(mode);
    out.extend_from_slice(bytes);
    out
}

/// Payload of a checkpoint envelope (the bytes after its 20-byte header).
fn payload(blob: &[u8]) -> &[u8] {
    blob.get(20..).unwrap_or_default()
}

/// Mode bits: 0 kind (1 = manifest), 1 payload framed by the target, 2-3 part type.
fn checkpoint_envelope_seeds(root: &Path) -> Result<Seeds> {
    let mut seeds = Vec::new();
    for (name, bytes) in golden(root)? {
        let kind = u8::from(name.contains("-manifest-"));
        let types = if name.contains("-part-") { 0..4 } else { 0..1 };
        for ty in types {
            let mode = kind | ty << 2;
            seeds.push((format!("{name}-raw-{ty}"), prefixed(mode, &bytes)));
            seeds.push((
                format!("{name}-payload-{ty}"),
                prefixed(mode | 2, payload(&bytes)),
            ));
        }
    }
    Ok(seeds)
}

/// Modes: 0 manifest payload, 1 engine-core payload, 2 raw manifest, 3 | i << 2 part i
/// replaced (parts in file-name order). The target embeds the version-1 files, so the seeds
/// are those.
fn checkpoint_manifest_seeds(root: &Path) -> Result<Seeds> {
    let mut seeds = Vec::new();
    let files: Seeds = golden(root)?
        .into_iter()
        .filter(|(n, _)| n.starts_with("v1-"))
        .collect();
    let parts = files.iter().filter(|(n, _)| n.contains("-part-"));
    for (i, (name, bytes)) in parts.enumerate() {
        seeds.push((format!("{name}-core"), prefixed(1, payload(bytes))));
        let index = u8::try_from(i).context("part index")?;
        seeds.push((
            format!("{name}-replaced"),
            prefixed(3 | index << 2, payload(bytes)),
        ));
    }
    for (name, bytes) in files.iter().filter(|(n, _)| n.contains("-manifest-")) {
        seeds.push((format!("{name}-payload"), prefixed(0, payload(bytes))));
        seeds.push((format!("{name}-raw"), prefixed(2, bytes)));
    }
    Ok(seeds)
}

/// Modes (mod 3): 0 raw bytes, 1 bytes with the store's key id, 2 sealed then damaged.
fn crypto_envelope_seeds(_: &Path) -> Result<Seeds> {
    let plain = b"varpulis state value";
    let mut seeds: Seeds = [2_u8, 5, 8, 14]
        .iter()
        .map(|&m| (format!("seal-{m}"), prefixed(m, plain)))
        .collect();
    let mut header = vec![1_u8, 0, 0, 0, 0];
    header.resize(5 + 12 + 16 + plain.len(), 0x5c);
    seeds.push(("raw".to_owned(), prefixed(0, &header)));
    seeds.push(("keyed".to_owned(), prefixed(1, &header)));
    Ok(seeds)
}

/// Modes: even a hex key text, odd a key-check record (bit 1: with the key's id).
fn crypto_key_seeds(_: &Path) -> Result<Seeds> {
    let mut record = vec![1_u8, 0, 0, 0, 0];
    record.resize(5 + 12 + 16 + 28, 0x33);
    Ok(vec![
        (
            "hex".to_owned(),
            prefixed(0, format!("{}\n", "2a".repeat(32)).as_bytes()),
        ),
        (
            "hex-upper".to_owned(),
            prefixed(0, "Ab".repeat(32).as_bytes()),
        ),
        ("check".to_owned(), prefixed(1, &record)),
        ("check-keyed".to_owned(), prefixed(3, &record)),
    ])
}

/// Key-derivation records: the cheapest parameters and the default ones.
fn crypto_kdf_seeds(_: &Path) -> Result<Seeds> {
    let record = |m: u32, t: u32, p: u32| {
        let mut r = vec![1_u8, 2, 0x13];
        for word in [m, t, p] {
            r.extend_from_slice(&word.to_be_bytes());
        }
        r.push(16);
        r.extend_from_slice(&[7; 16]);
        r
    };
    Ok(vec![
        ("min".to_owned(), record(8, 1, 1)),
        ("default".to_owned(), record(19 * 1024, 2, 1)),
    ])
}

fn example_seeds(root: &Path, suffix: &str) -> Result<Seeds> {
    let mut seeds = Vec::new();
    for entry in fs::read_dir(root.join("examples"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) {
            seeds.push((name, fs::read(entry.path())?));
        }
    }
    seeds.sort();
    Ok(seeds)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// `cargo +nightly ...` in `fuzz/`, through rustup's proxy and without the toolchain that runs
/// xtask leaking into it (`cargo xtask` sets `CARGO` and `RUSTUP_TOOLCHAIN` to 1.95).
fn nightly_cargo(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(fuzz_dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    cmd
}

/// What one run printed that the summary reports.
#[derive(Default)]
struct Outcome {
    executions: Option<String>,
    coverage: Option<String>,
    features: Option<String>,
    corpus: Option<String>,
    artifacts: Vec<String>,
    success: bool,
}

/// Reads `token` followed by a number in a libFuzzer status line (`cov: 123`).
fn field(line: &str, token: &str) -> Option<String> {
    let rest = line.split(token).nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

fn run_target(fuzz_dir: &Path, target: &Target, seconds: u64) -> Result<Outcome> {
    let corpus = fuzz_dir.join("corpus").join(target.name);
    fs::create_dir_all(&corpus)?;
    for (name, bytes) in (target.seeds)(&workspace_root())? {
        fs::write(corpus.join(format!("seed-{name}")), bytes)?;
    }
    let artifacts = fuzz_dir.join("artifacts").join(target.name);
    fs::create_dir_all(&artifacts)?;
    let log_path = fuzz_dir
        .join("artifacts")
        .join(format!("{}.log", target.name));
    let mut log = fs::File::create(&log_path)?;
    let max_len = target.max_len.to_string();
    let args = [
        "fuzz",
        "run",
        target.name,
        &corpus.to_string_lossy(),
        "--",
        &format!("-max_total_time={seconds}"),
        &format!("-max_len={max_len}"),
        "-timeout=60",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    .map(|s| s.to_owned());
    eprintln!(
        "\n==> cargo +nightly fuzz run {} ({seconds} s)",
        args[2..].join(" ")
    );
    let mut child = nightly_cargo(fuzz_dir)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo +nightly fuzz run")?;
    let stdout = child.stdout.take().expect("piped");
    let echo_stdout = std::thread::spawn(move || {
        // Targets print nothing on success; relay whatever they do print.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
        }
    });
    let mut outcome = Outcome::default();
    for line in BufReader::new(child.stderr.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        writeln!(log, "{line}")?;
        if line.starts_with('#') && line.contains("cov: ") {
            outcome.coverage = field(&line, "cov: ").or(outcome.coverage);
            outcome.features = field(&line, "ft: ").or(outcome.features);
            outcome.corpus = field(&line, "corp: ").or(outcome.corpus);
            // Progress lines are in the log; show the milestones only.
            if !(line.contains("INITED") || line.contains("DONE")) {
                continue;
            }
        }
        // The recommended dictionary is in the log too.
        if line.starts_with('"') || line.starts_with("######") {
            continue;
        }
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units: ") {
            outcome.executions = Some(n.trim().to_owned());
        }
        if let Some(path) = line.split("Test unit written to ").nth(1) {
            outcome.artifacts.push(path.trim().to_owned());
        }
        eprintln!("{line}");
    }
    let status = child.wait()?;
    let _ = echo_stdout.join();
    outcome.success = status.success();
    Ok(outcome)
}

fn check_cargo_fuzz(fuzz_dir: &Path) -> Result<()> {
    let found = nightly_cargo(fuzz_dir)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        bail!(
            "`cargo +nightly fuzz` is not available: install it with \
             `cargo install cargo-fuzz --locked --version {CARGO_FUZZ_VERSION}` \
             (needs the nightly toolchain; `.ci/run` does this on a fresh machine)"
        );
    }
    Ok(())
}

/// Builds every target, runs each of `only` (every target if empty) for `seconds`, prints a
/// summary, and fails if any target found a crash (naming the input it wrote).
pub(crate) fn fuzz(seconds: u64, only: &[String]) -> Result<()> {
    if let Some(unknown) = only.iter().find(|n| !TARGETS.iter().any(|t| t.name == *n)) {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        bail!("unknown fuzz target {unknown:?}; the targets are {names:?}");
    }
    let fuzz_dir = workspace_root().join("fuzz");
    check_cargo_fuzz(&fuzz_dir)?;
    eprintln!("\n==> cargo +nightly fuzz build (in fuzz/)");
    let started = Instant::now();
    let status = nightly_cargo(&fuzz_dir)
        .args(["fuzz", "build"])
        .status()
        .context("running cargo +nightly fuzz build")?;
    if !status.success() {
        bail!("`cargo +nightly fuzz build` failed ({status})");
    }
    eprintln!("    built in {:.0?}", started.elapsed());

    let mut rows = Vec::new();
    // In the order asked for.
    let chosen: Vec<&Target> = if only.is_empty() {
        TARGETS.iter().collect()
    } else {
        only.iter()
            .filter_map(|n| TARGETS.iter().find(|t| t.name == *n))
            .collect()
    };
    for target in chosen {
        let outcome = run_target(&fuzz_dir, target, seconds)?;
        rows.push((target.name, outcome));
    }

    eprintln!("\nfuzz summary ({seconds} s a target; logs in fuzz/artifacts/<target>.log):");
    eprintln!(
        "  {:<22} {:>12} {:>7} {:>8} {:>14}  result",
        "target", "executions", "cov", "ft", "corpus"
    );
    let unknown = || "?".to_owned();
    let mut failed = Vec::new();
    for (name, o) in &rows {
        eprintln!(
            "  {:<22} {:>12} {:>7} {:>8} {:>14}  {}",
            name,
            o.executions.clone().unwrap_or_else(unknown),
            o.coverage.clone().unwrap_or_else(unknown),
            o.features.clone().unwrap_or_else(unknown),
            o.corpus.clone().unwrap_or_else(unknown),
            if o.success { "ok" } else { "FAILED" }
        );
        if !o.success {
            failed.push(*name);
            for path in &o.artifacts {
                eprintln!(
                    "    crash input: {path}\n    reproduce: cd fuzz && cargo +nightly fuzz run {name} {path}"
                );
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (inputs under fuzz/artifacts/<target>/)",
            failed.join(", ")
        );
    }
    eprintln!("    fuzzing done in {:.0?}", started.elapsed());
    Ok(())
}
