//! Criterion benchmarks of the Varpulis state layer; the benchmarks are the `benches/*.rs`
//! targets (`cargo bench -p varpulis-benches`). This library holds shared helpers.

#![allow(clippy::disallowed_methods)] // benchmarks measure wall-clock time

/// Deterministic, incompressible-looking bytes of length `len` (seeded by `seed`).
#[must_use]
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// xorshift64*: deterministic pseudo-random numbers for generating workloads.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The value sizes every store benchmark uses: 100 B, 4 KiB and 1 MiB.
pub const VALUE_SIZES: [(usize, &str); 3] = [(100, "100B"), (4096, "4KiB"), (1 << 20, "1MiB")];

/// A tokio runtime with one worker thread, for driving async stores from criterion
/// (`b.to_async(&rt)`); blocking-pool threads (FileStore, RocksDB) come on top.
///
/// # Panics
/// If the runtime cannot be built.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A fresh temporary directory under `VARPULIS_BENCH_DIR` if set, else the system temp directory.
/// Point `VARPULIS_BENCH_DIR` at the disk under test: on tmpfs an fsync costs nothing.
///
/// # Panics
/// If the directory cannot be created.
#[must_use]
pub fn bench_tempdir() -> tempfile::TempDir {
    match std::env::var_os("VARPULIS_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory")
}

/// How much CPU the calling thread got: a snapshot of `/proc/thread-self/schedstat` (Linux).
///
/// On a shared machine a wall-clock benchmark is only as good as its share of a core;
/// [`CpuShare::report`] prints that share for a stretch of benchmarks, so a reader can tell a
/// slow figure from a starved one.
#[derive(Debug, Clone, Copy)]
pub struct CpuShare {
    wall: std::time::Instant,
    /// Nanoseconds on a CPU and waiting on a run queue, if the kernel exposes them.
    sched: Option<(u64, u64)>,
}

impl CpuShare {
    /// Takes a snapshot now.
    #[must_use]
    pub fn start() -> Self {
        let sched = std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| {
                let mut fields = s.split_whitespace().map(str::parse::<u64>);
                Some((fields.next()?.ok()?, fields.next()?.ok()?))
            });
        Self {
            wall: std::time::Instant::now(),
            sched,
        }
    }

    /// Prints (to stderr) the share of wall time since `self` that this thread spent on a CPU,
    /// and how long it waited for one (nothing if less than a second passed).
    pub fn report(self, label: &str) {
        let now = Self::start();
        let wall = now.wall.duration_since(self.wall).as_secs_f64();
        if wall < 1.0 {
            return; // filtered out, or too short to say anything
        }
        if let (Some((run0, wait0)), Some((run1, wait1))) = (self.sched, now.sched) {
            let (run, wait) = (run1.saturating_sub(run0), wait1.saturating_sub(wait0));
            #[allow(clippy::cast_precision_loss, reason = "a percentage for humans")]
            let (run, wait) = (run as f64 / 1e9, wait as f64 / 1e9);
            eprintln!(
                "{label}: bench thread on a CPU {:.1}% of {wall:.1} s, waited {wait:.2} s for one",
                100.0 * run / wall,
            );
        }
    }
}

/// Times `variants` against each other on a noisy machine: each round runs every variant once,
/// starting at a different one each round, so drift (another process's disk flushes, a compile
/// next door) hits all of them alike. Returns the seconds each run took, `[variant][round]`.
///
/// Criterion measures one benchmark after another, so a ratio of two criterion medians can be
/// skewed by whatever the machine did in between; [`ratio_summary`] of interleaved rounds
/// cannot, which is why the headline ratios of `docs/benchmarks.md` come from here.
pub fn interleaved(rounds: usize, variants: &mut [&mut dyn FnMut()]) -> Vec<Vec<f64>> {
    let n = variants.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for i in 0..n {
            let v = (round + i) % n;
            let start = std::time::Instant::now();
            (variants[v])();
            times[v].push(start.elapsed().as_secs_f64());
        }
    }
    times
}

/// Median and quartiles of the per-round ratios `num[i] / den[i]`, formatted for a report
/// (`1.23x (IQR 1.10x..1.40x, 41 rounds)`).
///
/// # Panics
/// If the slices are empty or of different lengths.
#[must_use]
pub fn ratio_summary(num: &[f64], den: &[f64]) -> String {
    assert!(
        !num.is_empty() && num.len() == den.len(),
        "one time per round"
    );
    let mut ratios: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    format!(
        "{:.2}x (IQR {:.2}x..{:.2}x, {} rounds)",
        at(2),
        at(1),
        at(3),
        ratios.len()
    )
}

/// The median of `times` (seconds), formatted in milliseconds.
///
/// # Panics
/// If `times` is empty.
#[must_use]
pub fn median_ms(times: &[f64]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    format!("{:.2} ms", 1e3 * sorted[sorted.len() / 2])
}

/// Whether the hand-rolled (non-criterion) measurement `name` should run in this invocation:
/// not under `--test`/`--list` (smoke runs), and only if no name filter was given or the filter
/// is a substring of `name` (criterion's own filter is a regex; plain words behave the same).
#[must_use]
pub fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return false;
    }
    let mut filters = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .peekable();
    filters.peek().is_none() || filters.any(|f| name.contains(f.as_str()))
}
