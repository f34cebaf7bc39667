//! Project automation: `cargo xtask ci` runs every check CI runs, in order.
//!
//! Steps: fmt check -> clippy (all features, then none) -> layering checks -> tests (all
//! features, doc tests included) -> rustdoc with warnings denied -> benches compiled -> fuzz
//! smoke (each cargo-fuzz target in `fuzz/` for 20 s).
//! `cargo xtask ci --skip-slow` skips nothing today but is reserved; individual steps can be
//! run as `cargo xtask fmt|clippy|layering|test|fuzz [SECONDS [TARGET...]]|doc|bench-build`.

#![allow(clippy::disallowed_methods)] // a build tool: it times its steps

use std::env;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod fuzz;
mod preflight;

/// A layering rule: with `features`, `krate` must not link any of `never` (anywhere in its
/// normal dependency tree) nor depend directly on any of `not_directly`.
struct Rule {
    krate: &'static str,
    features: &'static str,
    never: &'static [&'static str],
    not_directly: &'static [&'static str],
}

const NATIVE: &[&str] = &[
    "librocksdb-sys",
    "rocksdb",
    "aes-gcm",
    "ring",
    "argon2",
    "aes",
];

const LAYERING: &[Rule] = &[
    Rule {
        krate: "varpulis-runtime",
        features: "--no-default-features",
        never: &["librocksdb-sys", "aes-gcm", "ring", "argon2"],
        not_directly: &[],
    },
    Rule {
        krate: "varpulis-store",
        features: "--all-features",
        never: NATIVE,
        not_directly: &[],
    },
    Rule {
        krate: "varpulis-core",
        features: "--all-features",
        never: &[
            "tokio",
            "varpulis-store",
            "librocksdb-sys",
            "aes-gcm",
            "ring",
        ],
        not_directly: &[],
    },
    // The checkpoint data model: serde types over `varpulis-core`, no I/O and no encoding (the
    // codec, postcard included, is `varpulis-checkpoint`'s), so operator crates can use it.
    Rule {
        krate: "varpulis-state",
        features: "--all-features",
        never: &[
            "tokio",
            "futures",
            "varpulis-store",
            "varpulis-checkpoint",
            "postcard",
            "librocksdb-sys",
            "rocksdb",
            "aes-gcm",
            "ring",
            "argon2",
            "aes",
        ],
        not_directly: &[],
    },
    Rule {
        krate: "varpulis-checkpoint",
        features: "--all-features",
        never: NATIVE,
        not_directly: &[],
    },
    // An operator crate does no I/O: its state types come from `varpulis-state`, so nothing in
    // its tree may bring in an async runtime, a store or the checkpoint codec and protocol.
    Rule {
        krate: "varpulis-windows",
        features: "--all-features",
        never: &[
            "tokio",
            "futures",
            "varpulis-store",
            "varpulis-checkpoint",
            "librocksdb-sys",
            "rocksdb",
            "aes-gcm",
            "ring",
            "argon2",
            "aes",
        ],
        not_directly: &["varpulis-vpl", "varpulis-engine"],
    },
    // Sequence patterns: an operator crate like the windows, no I/O and no expression
    // language (conditions are closures the engine compiles from VPL).
    Rule {
        krate: "varpulis-patterns",
        features: "--all-features",
        never: &[
            "tokio",
            "futures",
            "varpulis-store",
            "varpulis-checkpoint",
            "librocksdb-sys",
            "rocksdb",
            "aes-gcm",
            "ring",
            "argon2",
            "aes",
        ],
        not_directly: &["varpulis-vpl", "varpulis-engine", "varpulis-windows"],
    },
    // Tenants and pipelines over any store: no HTTP, and no native store or cipher of its own
    // (the binary picks those).
    Rule {
        krate: "varpulis-tenant",
        features: "--all-features",
        never: &[
            "axum",
            "hyper",
            "tower",
            "librocksdb-sys",
            "aes-gcm",
            "ring",
        ],
        not_directly: &["varpulis-store-rocks", "varpulis-crypto"],
    },
    // The HTTP layer links no store backend or cipher: it works over the registry it is given.
    Rule {
        krate: "varpulis-server",
        features: "--all-features",
        never: &["librocksdb-sys", "aes-gcm", "ring", "argon2"],
        not_directly: &["varpulis-store", "varpulis-checkpoint"],
    },
    Rule {
        krate: "varpulis-vpl",
        features: "--all-features",
        never: &[
            "tokio",
            "varpulis-store",
            "varpulis-checkpoint",
            "varpulis-windows",
            "librocksdb-sys",
            "aes-gcm",
            "ring",
        ],
        not_directly: &[],
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map_or("ci", String::as_str);
    match task {
        "ci" => ci(),
        "fmt" => fmt(),
        "clippy" => clippy(),
        "layering" => layering(),
        "test" => test(),
        "client" => client(),
        "ui" => ui(),
        "fuzz" => {
            let seconds = match args.get(1) {
                Some(s) => s
                    .parse()
                    .with_context(|| format!("`cargo xtask fuzz SECONDS`: bad number {s:?}"))?,
                None => fuzz::CI_SECONDS,
            };
            fuzz::fuzz(seconds, args.get(2..).unwrap_or_default())
        }
        "doc" => doc(),
        "bench-build" => bench_build(),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask [ci|fmt|clippy|layering|test|client|ui|fuzz [SECONDS [TARGET...]]|doc|bench-build]"
            );
            Ok(())
        }
        other => bail!("unknown task {other:?}; try `cargo xtask help`"),
    }
}

fn ci() -> Result<()> {
    let started = Instant::now();
    preflight::libclang()?;
    fmt()?;
    clippy()?;
    layering()?;
    test()?;
    client()?;
    ui()?;
    doc()?;
    bench_build()?;
    fuzz::fuzz(fuzz::CI_SECONDS, &[])?;
    eprintln!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn fmt() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"], &[])
}

fn clippy() -> Result<()> {
    preflight::libclang()?;
    let deny = ["--", "-D", "warnings"];
    cargo_with(
        &["clippy", "--workspace", "--all-targets", "--all-features"],
        &deny,
    )?;
    cargo_with(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--no-default-features",
        ],
        &deny,
    )
}

fn cargo_with(args: &[&str], tail: &[&str]) -> Result<()> {
    let all: Vec<&str> = args.iter().chain(tail).copied().collect();
    cargo(&all, &[])
}

fn dependency_names(krate: &str, features: &str, depth: Option<&str>) -> Result<Vec<String>> {
    let mut args = vec![
        "tree", "-p", krate, features, "-e", "normal", "--prefix", "none", "--format", "{p}",
    ];
    if let Some(depth) = depth {
        args.extend(["--depth", depth]);
    }
    let out = Command::new(cargo_bin())
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo tree for {krate}"))?;
    if !out.status.success() {
        bail!("cargo tree -p {krate} failed");
    }
    // The first line is the crate itself.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

fn layering() -> Result<()> {
    step("layering checks");
    for rule in LAYERING {
        let all = dependency_names(rule.krate, rule.features, None)?;
        if let Some(ban) = rule.never.iter().find(|b| all.iter().any(|n| n == *b)) {
            bail!(
                "layering violation: {} ({}) links {ban}",
                rule.krate,
                rule.features
            );
        }
        if !rule.not_directly.is_empty() {
            let direct = dependency_names(rule.krate, rule.features, Some("1"))?;
            if let Some(ban) = rule
                .not_directly
                .iter()
                .find(|b| direct.iter().any(|n| n == *b))
            {
                bail!(
                    "layering violation: {} ({}) depends directly on {ban}",
                    rule.krate,
                    rule.features
                );
            }
        }
        eprintln!(
            "  ok: {} {} links none of {:?}, depends directly on none of {:?}",
            rule.krate, rule.features, rule.never, rule.not_directly
        );
    }
    Ok(())
}

fn test() -> Result<()> {
    preflight::libclang()?;
    cargo(
        &["test", "--workspace", "--all-features", "--no-fail-fast"],
        &[],
    )
}

/// The server's Python client (`tests/server/client_flows.py`, standard library only) against
/// the binary the test step built, over the file store, encrypted, and RocksDB.
fn client() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let binary = target.join("debug").join("varpulis");
    let script = root.join("tests/server/client_flows.py");
    for flags in [&[][..], &["--encrypt"], &["--store", "rocksdb"]] {
        step(&format!(
            "python3 tests/server/client_flows.py {}",
            flags.join(" ")
        ));
        let status = Command::new("python3")
            .arg(&script)
            .arg("--binary")
            .arg(&binary)
            .args(flags)
            .status()
            .context("running python3 (apt-get install python3)")?;
        if !status.success() {
            bail!("the server's Python client failed with {}", flags.join(" "));
        }
    }
    Ok(())
}

/// The status page (`GET /ui`) in headless Chromium (`tests/ui/status_page.py`, standard
/// library only, DevTools protocol over a pipe) against the binary the test step built, as the
/// client step runs it. Saves a screenshot to `$CARGO_TARGET_DIR/ui/status.png`.
fn ui() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let binary = target.join("debug").join("varpulis");
    let script = root.join("tests/ui/status_page.py");
    step("python3 tests/ui/status_page.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--binary")
        .arg(&binary)
        .arg("--screenshot")
        .arg(target.join("ui").join("status.png"))
        .status()
        .context("running python3 (apt-get install python3)")?;
    if !status.success() {
        bail!(
            "the status page's browser test failed (it needs chromium: apt-get install chromium)"
        );
    }
    Ok(())
}

fn doc() -> Result<()> {
    preflight::libclang()?;
    cargo(
        &["doc", "--workspace", "--all-features", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

fn bench_build() -> Result<()> {
    preflight::libclang()?;
    // The dev profile keeps the (slow to build) RocksDB objects shared with the test build;
    // `cargo bench` itself builds optimized.
    cargo(
        &[
            "build",
            "-p",
            "varpulis-benches",
            "--benches",
            "--all-features",
        ],
        &[],
    )
}

fn cargo_bin() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn step(name: &str) {
    eprintln!("\n==> {name}");
}

fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    step(&format!("cargo {}", args.join(" ")));
    let started = Instant::now();
    let status = Command::new(cargo_bin())
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    eprintln!("    done in {:.0?}", started.elapsed());
    Ok(())
}
