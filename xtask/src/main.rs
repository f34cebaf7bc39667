//! Project automation: `cargo xtask ci` runs every check CI runs, in order.
//!
//! Steps: fmt check -> clippy (all features, then none) -> layering checks -> tests (all
//! features, doc tests included) -> rustdoc with warnings denied -> benches compiled.
//! `cargo xtask ci --skip-slow` skips nothing today but is reserved; individual steps can be
//! run as `cargo xtask fmt|clippy|layering|test|doc|bench-build`.

use std::env;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// (crate, features, edge kinds, crates that must not appear in its dependency tree)
const LAYERING: &[(&str, &str, &[&str])] = &[
    (
        "varpulis-runtime",
        "--no-default-features",
        &["librocksdb-sys", "aes-gcm", "argon2"],
    ),
    (
        "varpulis-store",
        "--all-features",
        &["librocksdb-sys", "rocksdb", "aes-gcm", "argon2", "aes"],
    ),
    (
        "varpulis-core",
        "--all-features",
        &["tokio", "varpulis-store", "librocksdb-sys", "aes-gcm"],
    ),
    (
        "varpulis-checkpoint",
        "--all-features",
        &["librocksdb-sys", "aes-gcm"],
    ),
    (
        "varpulis-windows",
        "--all-features",
        &["tokio", "varpulis-store", "librocksdb-sys", "aes-gcm"],
    ),
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
        "doc" => doc(),
        "bench-build" => bench_build(),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask [ci|fmt|clippy|layering|test|doc|bench-build]");
            Ok(())
        }
        other => bail!("unknown task {other:?}; try `cargo xtask help`"),
    }
}

fn ci() -> Result<()> {
    let started = Instant::now();
    fmt()?;
    clippy()?;
    layering()?;
    test()?;
    doc()?;
    bench_build()?;
    eprintln!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn fmt() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"], &[])
}

fn clippy() -> Result<()> {
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

fn layering() -> Result<()> {
    step("layering checks");
    for (krate, features, banned) in LAYERING {
        let out = Command::new(cargo_bin())
            .args([
                "tree", "-p", krate, features, "-e", "normal", "--prefix", "none", "--format",
                "{p}",
            ])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running cargo tree for {krate}"))?;
        if !out.status.success() {
            bail!("cargo tree -p {krate} failed");
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for ban in *banned {
            if names.iter().skip(1).any(|n| n == ban) {
                bail!("layering violation: {krate} ({features}) depends on {ban}");
            }
        }
        eprintln!("  ok: {krate} {features} links none of {banned:?}");
    }
    Ok(())
}

fn test() -> Result<()> {
    cargo(
        &["test", "--workspace", "--all-features", "--no-fail-fast"],
        &[],
    )
}

fn doc() -> Result<()> {
    cargo(
        &["doc", "--workspace", "--all-features", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

fn bench_build() -> Result<()> {
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
