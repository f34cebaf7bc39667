//! `varpulis`: runs VPL pipelines over event files, exactly once across crashes.
//!
//! - `varpulis run PROGRAM.vpl --events FILE [--output FILE] [--state-dir DIR] ...` runs a
//!   program; with a state directory it checkpoints and resumes after a crash or a stop.
//! - `varpulis check PROGRAM.vpl` parses and checks a program.
//! - `varpulis server [--port P] [--api-key KEY] [--state-dir DIR] ...` serves the multi-tenant
//!   HTTP API (`docs/server.md`).
//! - `varpulis checkpoint list|inspect --state-dir DIR` shows the checkpoints in a store.
//!
//! Commands, flags and the exactly-once contract are documented in `docs/cli.md`. Features:
//! `encryption` (default: `--encrypt`), `persistence` (`--store rocksdb`).

/// mimalloc: events are allocated on the reading thread and freed after other threads read
/// them (`--workers`), which glibc's allocator serves badly (arena contention and
/// consolidation); one process-wide allocator for the server and the CLI alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod inspect;
mod server;
mod store;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use varpulis_checkpoint::CheckpointConfig;
use varpulis_engine::DEFAULT_CHECKPOINT_EVERY;
use varpulis_engine::clock::SystemClock;
use varpulis_engine::{
    CheckpointEvery, CheckpointTaken, Engine, LateEvent, RecoveryInfo, RunConfig, RunObserver,
    SourcePosition,
};

use crate::store::{Purpose, StoreArgs};

#[derive(Debug, Parser)]
#[command(
    name = "varpulis",
    version,
    about = "Run VPL pipelines over event files, exactly once across crashes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a VPL program over an event file; outputs are JSON lines.
    Run(RunArgs),
    /// Parse and check a VPL program.
    Check {
        /// The program (.vpl).
        program: PathBuf,
    },
    /// Serve the multi-tenant HTTP API (tenants, pipelines, events) over a state directory.
    Server(server::ServerArgs),
    /// Inspect the checkpoints in a state directory.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The program (.vpl).
    program: PathBuf,
    /// The input event file (.evt or .jsonl).
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    /// Write outputs to FILE (exactly once across restarts) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Checkpoint every N input events (`500`) or every DURATION (`10s`). Default with a
    /// state directory: every 10s.
    #[arg(long, value_name = "N|DURATION", value_parser = parse_every)]
    checkpoint_every: Option<CheckpointEvery>,
    /// Checkpoints kept in the store (older ones are pruned).
    #[arg(long, value_name = "N", default_value_t = 3)]
    keep_checkpoints: usize,
    /// At end of input, emit every window still open (by default they stay in state and
    /// continue with the next run).
    #[arg(long)]
    flush_at_end: bool,
    /// Do not show a progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Start the output file over even though it is not empty and no checkpoint knows it
    /// (without this, such a run is refused so nothing is lost by mistake).
    #[arg(long)]
    overwrite_output: bool,
    /// Read the input from its beginning, with the restored state, when it was replaced since
    /// the checkpoint (log rotation); without this, a replaced input is refused.
    #[arg(long)]
    restart_input: bool,
    /// Run the partitioned streams on N parallel contexts (threads), by key group; the output
    /// is the same as with 1, and a checkpoint of any N resumes with any other.
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: usize,
    /// With --workers above 1: abort a checkpoint whose barrier takes longer than DURATION to
    /// pass every context (the previous one stays the recovery point). Default: never.
    #[arg(long, value_name = "DURATION", value_parser = server::parse_interval)]
    checkpoint_timeout: Option<std::time::Duration>,
    /// Scheduled checkpoints whose store commit may fail in a row without stopping the run
    /// (each is skipped; the previous one stays the recovery point). Default 0: the first
    /// failure stops the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    tolerable_checkpoint_failures: u32,
    /// An event type with no event while the input's event time moved on by DURATION is
    /// idle: it stops holding the watermark back until its next event. Measured in event
    /// time, so a rerun marks the same types at the same events. Default: never idle.
    #[arg(long, value_name = "DURATION", value_parser = server::parse_interval)]
    idle_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// List checkpoints: ids, times, sizes, and which are invalid and why.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one checkpoint in detail (the newest valid one by default): offsets, counters,
    /// watermarks and per-stream window state; then every invalid checkpoint and why.
    Inspect {
        #[command(flatten)]
        store: StoreArgs,
        /// The checkpoint to show.
        #[arg(long)]
        id: Option<u64>,
    },
}

fn parse_every(s: &str) -> Result<CheckpointEvery, String> {
    s.parse()
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { program } => check(&program),
        Command::Run(args) => runtime()?.block_on(run(args)),
        Command::Server(args) => runtime()?.block_on(server::serve(args)),
        Command::Checkpoint { command } => runtime()?.block_on(async {
            let (store, text) = match command {
                CheckpointCommand::List { store } => {
                    let opened = open_for_inspection(&store).await?;
                    let s = opened.store.clone().expect("checked persistent");
                    (opened, inspect::list(s).await?)
                }
                CheckpointCommand::Inspect { store, id } => {
                    let opened = open_for_inspection(&store).await?;
                    let s = opened.store.clone().expect("checked persistent");
                    (opened, inspect::inspect(s, id).await?)
                }
            };
            drop(store);
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }),
    }
}

async fn open_for_inspection(args: &StoreArgs) -> Result<store::OpenedStore> {
    if args.state_dir.is_none() {
        bail!("checkpoint commands need --state-dir DIR");
    }
    let opened = args.open(Purpose::Inspect).await?;
    if opened.store.is_none() {
        bail!("checkpoint commands need a persistent store (--store file or rocksdb)");
    }
    Ok(opened)
}

/// Largest program accepted (programs are a few kilobytes; this bounds `check /dev/zero`).
const MAX_PROGRAM_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a program: a regular file of at most [`MAX_PROGRAM_BYTES`], in UTF-8.
fn read_program(path: &Path) -> Result<String> {
    use std::io::Read;
    let d = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read program {d}"))?;
    if meta.is_dir() {
        bail!("program {d} is a directory");
    }
    if !meta.is_file() {
        bail!("program {d} must be a regular file");
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read program {d}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_PROGRAM_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read program {d}"))?;
    if bytes.len() as u64 > MAX_PROGRAM_BYTES {
        bail!(
            "program {d} is larger than {} MiB; a VPL program is text of a few kilobytes",
            MAX_PROGRAM_BYTES >> 20
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("program {d}:{line}: not valid UTF-8 (byte {at})")
    })
}

/// Reads and checks a program; its warnings go to stderr, its errors come back rendered.
fn load_program(path: &Path) -> Result<Result<varpulis_vpl::Program, String>> {
    let source = read_program(path)?;
    let name = path.display().to_string();
    let program = varpulis_vpl::parse_program(&source).map_err(|d| d.render(&source, &name));
    if let Ok(program) = &program {
        for warning in &program.warnings {
            eprint!("{}", warning.render_warning(&source, &name));
        }
    }
    Ok(program)
}

fn check(path: &Path) -> Result<ExitCode> {
    match load_program(path)? {
        Ok(program) => {
            // What `run` would refuse when it builds the operators, `check` refuses too.
            if let Err(e) = Engine::new(program.clone()) {
                eprintln!(
                    "{}: error: cannot compile the program: {}",
                    path.display(),
                    varpulis_checkpoint::error_chain(&e)
                );
                return Ok(ExitCode::FAILURE);
            }
            let names: Vec<&str> = program.streams.iter().map(|s| s.name.as_str()).collect();
            println!(
                "{}: ok: {} stream(s) [{}], {} variable(s), {} event declaration(s)",
                path.display(),
                names.len(),
                names.join(", "),
                program.variables.len(),
                program.events.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(rendered) => {
            eprint!("{rendered}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints recovery and checkpoint news on stderr, and a progress bar on a terminal.
struct Observer {
    bar: Option<ProgressBar>,
    show_bar: bool,
    /// Checkpoints committed by this run.
    checkpoints: u64,
}

impl RunObserver for Observer {
    fn recovered(&mut self, info: &RecoveryInfo) {
        let target = info.resumed_from.map_or_else(
            || "no valid checkpoint left; starting from the beginning".to_owned(),
            |id| format!("resuming from checkpoint {id}"),
        );
        for s in &info.skipped {
            eprintln!(
                "warning: skipped checkpoint {} ({}: {}); {target}",
                s.id, s.key, s.reason
            );
        }
        if let Some(id) = info.resumed_from {
            match (&info.input_resumed_at, &info.previous_input) {
                (Some(p), _) => eprintln!(
                    "varpulis: resumed from checkpoint {id}: input continues after line {} (byte {})",
                    p.line, p.offset
                ),
                (None, Some(prev)) => eprintln!(
                    "varpulis: resumed state from checkpoint {id} (taken on {prev}); this input starts at its beginning"
                ),
                (None, None) => {
                    eprintln!("varpulis: resumed from checkpoint {id}");
                }
            }
        }
        if let Some(why) = &info.input_replaced {
            eprintln!(
                "varpulis: the input was replaced since the checkpoint ({why}); reading it from its beginning (--restart-input)"
            );
        }
        if info.output_bytes_cut > 0 {
            eprintln!(
                "varpulis: output cut back to {} bytes: {} bytes written after the checkpoint are written again",
                info.output_truncated_to.unwrap_or(0),
                info.output_bytes_cut
            );
        }
        if info.output_overwritten > 0 {
            eprintln!(
                "varpulis: output started over: {} bytes no checkpoint knew were discarded (--overwrite-output)",
                info.output_overwritten
            );
        }
    }

    fn progress(&mut self, position: SourcePosition, file_len: u64) {
        if !self.show_bar {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(file_len);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        bar.set_position(position.offset);
        bar.set_message(format!("line {}", position.line));
    }

    fn late_event(&mut self, late: &LateEvent) {
        // The side output of late events: never dropped silently. It goes to stderr, so it is
        // not part of the exactly-once output file (docs/cli.md).
        let mut line = Vec::new();
        if varpulis_engine::output::write_json_line(&mut line, &late.event).is_ok() {
            eprintln!(
                "warning: late event dropped by stream {}: {}",
                late.stream,
                String::from_utf8_lossy(&line).trim_end()
            );
        }
    }

    fn checkpointed(&mut self, taken: &CheckpointTaken) {
        self.checkpoints += 1;
        tracing::info!(
            id = taken.id,
            stall_us = taken.took.as_micros() as u64,
            total_ms = taken.total.as_millis() as u64,
            bytes = taken.bytes_written,
            events = taken.events_processed,
            "checkpoint"
        );
    }
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    // First of all, so a signal that arrives while the program loads or the state directory
    // opens is handled (a stop request), not the default action (killed, exit status 143).
    let mut signals = Signals::new();
    let program = match load_program(&args.program)? {
        Ok(p) => p,
        Err(rendered) => {
            eprint!("{rendered}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut engine = Engine::new(program).context("cannot compile the program")?;
    engine.set_idle_timeout(args.idle_timeout);
    check_paths(&args)?;
    let opened = args.store.open(Purpose::Run).await?;
    let store = opened.store.clone();
    if store.is_none() && args.checkpoint_every.is_some() {
        eprintln!("warning: --checkpoint-every without --state-dir: nothing is checkpointed");
    }
    let config = RunConfig {
        events: args.events.clone(),
        output: args.output.clone(),
        checkpoint: CheckpointConfig {
            max_checkpoints: args.keep_checkpoints.max(1),
            ..CheckpointConfig::default()
        }
        .with_every(args.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY)),
        flush_at_end: args.flush_at_end,
        overwrite_output: args.overwrite_output,
        restart_input: args.restart_input,
        workers: args.workers,
        checkpoint_timeout: args.checkpoint_timeout,
        tolerable_checkpoint_failures: args.tolerable_checkpoint_failures,
        ..RunConfig::new(&args.events)
    };
    if args.workers > 1 && !engine.has_parallel_streams() {
        eprintln!(
            "warning: --workers {}: no stream is a partitioned window, partitioned pattern \
             or join over events, so every stream runs in one context (docs/design/contexts.md)",
            args.workers
        );
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    tokio::spawn(async move {
        signals.next().await;
        flag.store(true, Ordering::Relaxed);
        // A second signal does not wait for the event loop (a long read, flush or
        // checkpoint): exit at once. Nothing is lost: the last committed checkpoint stands,
        // and the next run cuts the output back to it, as after a crash.
        signals.next().await;
        eprintln!(
            "varpulis: second signal: exiting now; run again to continue from the last checkpoint"
        );
        exit_now(130);
    });
    let file_len = std::fs::metadata(&args.events).map_or(0, |m| m.len());
    let mut observer = Observer {
        bar: None,
        show_bar: !args.no_progress && std::io::stderr().is_terminal() && file_len >= 1 << 20,
        checkpoints: 0,
    };
    let result = varpulis_engine::run(
        &mut engine,
        &config,
        store,
        &shutdown,
        &SystemClock,
        &mut observer,
    )
    .await;
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if observer.checkpoints == 0 {
                // Refused or failed before it committed anything: a directory this run
                // created (or found empty) is left as it was, not pinned to these flags.
                if let Err(cleanup) = opened.discard_if_new() {
                    eprintln!("warning: {cleanup:#}");
                }
            }
            return Err(e.into());
        }
    };
    drop(opened);
    tracing::info!(
        events_read = report.events_read,
        outputs = report.outputs_written,
        checkpoints = report.checkpoints,
        late = report.late_events_dropped,
        elapsed_ms = report.elapsed.as_millis() as u64,
        checkpoint_ms = report.checkpoint_time.as_millis() as u64,
        max_checkpoint_us = report.max_checkpoint_time.as_micros() as u64,
        checkpoints_waited = report.checkpoints_waited,
        checkpoints_failed = report.checkpoints_failed,
        checkpoints_aborted = report.checkpoints_aborted,
        "run finished"
    );
    if report.interrupted {
        let n = report.events_read;
        if report.flush_interrupted {
            eprintln!(
                "varpulis: stopped by signal during the end-of-input flush, after {n} event(s); \
                 no checkpoint of the partial flush was taken: run again to flush from the last \
                 checkpoint"
            );
        } else if args.store.state_dir.is_none() {
            eprintln!(
                "varpulis: stopped by signal after {n} event(s); nothing was checkpointed (no \
                 --state-dir): a new run starts from the beginning"
            );
        } else {
            eprintln!(
                "varpulis: stopped by signal after {n} event(s); state checkpointed, run again \
                 to continue"
            );
        }
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses outputs that would destroy data before anything is opened: the output may not be
/// the input or the program (the run would empty them before reading them), nor lie inside
/// the state directory (it would overwrite the store's files).
fn check_paths(args: &RunArgs) -> Result<()> {
    let Some(output) = &args.output else {
        return Ok(());
    };
    let out = output.display();
    for (what, path) in [("input", &args.events), ("program", &args.program)] {
        if varpulis_engine::same_file(output, path) {
            bail!(
                "--output {out} is the {what} {}: writing it would destroy it; choose another \
                 output file",
                path.display()
            );
        }
    }
    if let Some(dir) = &args.store.state_dir
        && let (Some(dir), Some(out_abs)) = (absolute(dir), absolute(output))
        && out_abs.starts_with(&dir)
    {
        bail!(
            "--output {out} is inside the state directory {}: it could overwrite the store's \
             files; write the output elsewhere",
            dir.display()
        );
    }
    Ok(())
}

/// The absolute, symlink-resolved form of a path that may not exist yet: its longest existing
/// ancestor resolved, and the rest appended (`None` if no ancestor resolves, or the path has
/// `..` past the part that exists).
fn absolute(path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    let mut missing = Vec::new();
    let mut base = path.as_path();
    loop {
        if let Ok(resolved) = std::fs::canonicalize(base) {
            let mut out = resolved;
            for part in missing.iter().rev() {
                out.push(part);
            }
            return Some(out);
        }
        let name = base.file_name()?;
        missing.push(name.to_owned());
        base = base.parent()?;
    }
}

/// SIGINT and SIGTERM, listened to from the start, so a second signal that arrives while the
/// first is handled is not missed.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.int) => {}
                () = recv(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Ends the process at once with `code`, without running exit handlers: C++ static
/// destructors (RocksDB's) racing its background threads abort the process from
/// `std::process::exit` (status 134 instead of `code`). Nothing needs flushing: the state on
/// disk is the last committed checkpoint, as after a crash.
fn exit_now(code: i32) -> ! {
    #[cfg(unix)]
    {
        let _ = std::io::Write::flush(&mut std::io::stderr());
        #[allow(unsafe_code)]
        // SAFETY: `_exit` only ends the process; it touches no memory of this program.
        unsafe {
            libc::_exit(code)
        }
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}
