//! End to end: `varpulis run` over 1,000,000 JSONL events of the zone-stats example, without a
//! store, with checkpoints to a file store every 10,000 events, and to RocksDB; and the stall a
//! checkpoint causes in the event loop.
//!
//! It drives the same `varpulis_engine::run` the binary runs (reader -> engine -> output file ->
//! checkpoint manager), in process, so it measures the pipeline and not process start.
//! A full criterion sampling of a multi-second run would take minutes, so this is a plain
//! `harness = false` target: one warm-up run, then `VARPULIS_BENCH_RUNS` (default 3) timed runs
//! per configuration, reporting the median.
//!
//! ```sh
//! cargo bench -p varpulis-benches --bench engine
//! VARPULIS_BENCH_EVENTS=100000 cargo bench -p varpulis-benches --bench engine   # quicker
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use varpulis_engine::clock::SystemClock;
use varpulis_engine::{CheckpointEvery, Engine, NoObserver, RunConfig, RunReport};
use varpulis_store::{FileStore, StateStore};
use varpulis_store_rocks::RocksDbStore;

const PROGRAM: &str = include_str!("../../examples/zone_stats.vpl");

fn generate(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create events"));
    // A small LCG: deterministic, no dependency.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut t: i64 = 1_700_000_000_000;
    for _ in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        t += i64::try_from((x >> 33) % 40).expect("small");
        let zone = (x >> 20) % 10;
        let temp = f64::from(u32::try_from((x >> 40) % 5_000).expect("small")) / 100.0 - 10.0;
        writeln!(
            f,
            "{{\"event_type\":\"SensorReading\",\"timestamp\":{t},\"fields\":{{\"zone\":\"z{zone}\",\"temperature\":{temp:?}}}}}"
        )
        .expect("write events");
    }
    f.flush().expect("flush events");
}

fn once(
    rt: &tokio::runtime::Runtime,
    events: &Path,
    out_dir: &Path,
    store: Option<Arc<dyn StateStore>>,
) -> RunReport {
    let program = varpulis_vpl::parse_program(PROGRAM).expect("example parses");
    let mut engine = Engine::new(program).expect("compiles");
    // Each iteration starts the same output over with a fresh store.
    let mut config = RunConfig {
        output: Some(out_dir.join("out.jsonl")),
        overwrite_output: true,
        ..RunConfig::new(events)
    };
    // The figures in docs/benchmarks.md are for a checkpoint every 10,000 events (the runner's
    // default until it became every 10 s).
    config.checkpoint = config
        .checkpoint
        .clone()
        .with_every(CheckpointEvery::Events(10_000));
    assert_eq!(config.checkpoint.max_checkpoints, 3);
    let stop = AtomicBool::new(false);
    rt.block_on(varpulis_engine::run(
        &mut engine,
        &config,
        store,
        &stop,
        &SystemClock,
        &mut NoObserver,
    ))
    .expect("run succeeds")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    let is_bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("VARPULIS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if is_bench { 1_000_000 } else { 20_000 });
    let runs: usize = std::env::var("VARPULIS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if is_bench { 3 } else { 1 })
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let events = tmp.path().join("events.jsonl");
    generate(&events, n);
    let size = std::fs::metadata(&events).expect("events").len();
    println!(
        "end to end: zone_stats over {n} events ({:.1} MiB), median of {runs} run(s)",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "{:<26} {:>12} {:>10} {:>12} {:>14} {:>14} {:>10}",
        "store", "events/s", "vs none", "checkpoints", "ckpt mean ms", "ckpt max ms", "stall %"
    );
    let mut baseline = None;
    for name in ["none", "file every 10000", "rocksdb every 10000"] {
        let mut times = Vec::new();
        let mut last = RunReport::default();
        for i in 0..=runs {
            let dir = tempfile::tempdir().expect("tempdir");
            let store: Option<Arc<dyn StateStore>> = match name {
                "none" => None,
                "file every 10000" => Some(Arc::new(
                    FileStore::open(dir.path().join("state")).expect("file store"),
                )),
                _ => Some(Arc::new(
                    RocksDbStore::open(dir.path().join("state")).expect("rocksdb"),
                )),
            };
            let report = once(&rt, &events, dir.path(), store);
            assert_eq!(report.events_read, n as u64);
            if i > 0 {
                times.push(report.elapsed);
                last = report;
            }
        }
        let t = median(times);
        let eps = n as f64 / t.as_secs_f64();
        let base = *baseline.get_or_insert(eps);
        let (mean_ms, max_ms) = if last.checkpoints == 0 {
            (0.0, 0.0)
        } else {
            (
                last.checkpoint_time.as_secs_f64() * 1e3 / last.checkpoints as f64,
                last.max_checkpoint_time.as_secs_f64() * 1e3,
            )
        };
        let stall = last.checkpoint_time.as_secs_f64() / last.elapsed.as_secs_f64() * 100.0;
        println!(
            "{name:<26} {eps:>12.0} {:>9.2}x {:>12} {mean_ms:>14.2} {max_ms:>14.2} {stall:>9.1}%",
            eps / base,
            last.checkpoints,
        );
        if name == "none" {
            println!(
                "{:<26} time per 10,000 events without checkpoints: {:.2} ms",
                "",
                t.as_secs_f64() * 1e3 * 10_000.0 / n as f64
            );
        }
    }
}
