//! The event loop: reader -> engine -> output file -> checkpoints, exactly once for files.
//!
//! # The exactly-once contract for files
//! A checkpoint records how far the input file was consumed (canonical path and byte offset,
//! plus line and last event time in the metadata) and how long the output file was. Before a
//! checkpoint is committed, the output is flushed and `fsync`ed, so the recorded length is on
//! disk. On restart, the newest valid checkpoint is restored, the output is cut back to the
//! recorded length (an output shorter than recorded is an error: it was changed by someone
//! else), and the input resumes after the recorded offset. Processing is deterministic, so what
//! is written after that is byte for byte what the interrupted run wrote (or would have
//! written) after the checkpoint. A checkpoint that names another input file does not move the
//! new input: it starts at its beginning (phase 1 file, then phase 2 file, windows continue),
//! unless the new file starts with the bytes the recorded input started with (the old input
//! moved or copied: [`RunError::InputMoved`]). The input is opened once; its identity (a hash
//! of its first bytes, recorded in each checkpoint) and the reader use that one handle.
//!
//! Without an output file (stdout) outputs after the last checkpoint are written again after a
//! restart: at least once, not exactly once. The same holds for an output that is not a regular
//! file (`/dev/null`, a FIFO, a terminal, `/dev/stdout` on a pipe): it cannot be cut back, so it
//! is never truncated, locked or `fsync`ed, and checkpoints record its path but no length; each
//! checkpoint still hands the bytes before it to the OS before committing (so nothing before a
//! checkpoint is lost), and a resumed run simply writes on, repeating what came after the last
//! checkpoint. Exactly once needs a regular file.
//!
//! # Checkpoints off the event loop
//! A checkpoint stalls the loop only while it snapshots: the output's buffered bytes are
//! written to the OS (not synced), the engine state is copied (what
//! [`Engine::create_checkpoint`] returns, but not yet sorted), the input position and identity
//! and the output length recorded. The sort, the output's `fsync`, the encoding and hashing of
//! the state and the store commit
//! (through [`CheckpointManager`](varpulis_checkpoint::CheckpointManager), parts then manifest)
//! run in the background while the loop goes on; the order inside (output durable, then the
//! manifest) keeps the contract above, and output written after the snapshot is cut back at
//! recovery as any output after a checkpoint is. At most one checkpoint is in flight: the next
//! one waits for it ([`CheckpointTaken::waited`], [`RunReport::checkpoints_waited`]). A failed
//! background commit fails the run with the error a synchronous one had, at the next checkpoint,
//! within [`CLOCK_STRIDE`](varpulis_checkpoint::CLOCK_STRIDE) events, or at the end. The first
//! checkpoint of a new output (it must own the output before anything is written to it) and the
//! final one are waited for, and no way out of [`run`] leaves a commit running. On a
//! multi-thread tokio runtime the commit runs on a blocking-pool thread; on a current-thread
//! runtime it is a task that runs when the loop yields (once after each hand-off, so a store
//! that never blocks commits there, deterministically); without a runtime, at the hand-off. See
//! `docs/design/hot-path.md`.
//!
//! # Phases of a run
//! [`run`] is four steps, each in its own module:
//! 1. `position`: open the input once and read what a checkpoint recorded of it (typed, and
//!    refused when malformed: [`RunError::BadCheckpoint`]);
//! 2. `recover`: restore the newest valid checkpoint and decide where the input resumes;
//! 3. `output`: resolve the output, then cut it back, refuse it or start it over;
//! 4. `event_loop`: read, process, write, checkpoint on the
//!    [`CheckpointSchedule`](varpulis_checkpoint::CheckpointSchedule), and end with a final
//!    checkpoint; `background` commits each checkpoint beside the loop.

mod background;
mod event_loop;
mod output;
mod position;
mod recover;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use varpulis_checkpoint::CheckpointEvery;
use varpulis_checkpoint::{CheckpointConfig, CheckpointError, SkippedCheckpoint};
use varpulis_store::StateStore;

pub use self::output::same_file;
use crate::clock::Clock;
use crate::engine::{Engine, EngineError, LateEvent};
use crate::source::{ReadError, SourcePosition};

/// Checkpoint interval used when a store is given and nothing else is asked for: every 10 s
/// of the run's monotonic clock, as a time-based interval (Flink's practice): a count of events
/// would mean hundreds of commits a second at millions of events per second, and a handful an
/// hour on a slow input. 10 s bounds the input replayed after a crash to about 10 s of work.
pub const DEFAULT_CHECKPOINT_EVERY: CheckpointEvery =
    CheckpointEvery::Interval(Duration::from_secs(10));

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input event file (`.evt` or `.jsonl`).
    pub events: PathBuf,
    /// The output file (JSON lines); `None` writes to stdout.
    pub output: Option<PathBuf>,
    /// When checkpoints are taken and kept (with a store): every field is honoured,
    /// `interval`/`every_events` by the schedule, `max_checkpoints` and `key_prefix` by the manager, and
    /// `checkpoint_on_shutdown` when a shutdown request stops the run.
    pub checkpoint: CheckpointConfig,
    /// Emit every open window at end of input.
    pub flush_at_end: bool,
    /// Start a non-empty output file over although no checkpoint knows it (otherwise refused).
    pub overwrite_output: bool,
    /// Read a replaced input from its beginning (with the restored state) instead of refusing.
    pub restart_input: bool,
    /// Parallel contexts for the partitioned streams (`--workers`; 1: the one-context loop).
    /// At most [`KEY_GROUPS`](crate::key_group::KEY_GROUPS). See `docs/design/contexts.md`.
    pub workers: usize,
    /// A parallel run aborts a checkpoint whose barrier took longer than this to reach the
    /// sink from every context (`--checkpoint-timeout`; `None`: never).
    pub checkpoint_timeout: Option<Duration>,
    /// Scheduled checkpoints whose store commit may fail in a row without failing the run
    /// (`--tolerable-checkpoint-failures`, Flink's `tolerable-failed-checkpoints`): a failed
    /// one is reported and skipped, the previous one stays the recovery point, and the next
    /// is taken on schedule. 0 (the default): the first failure fails the run. The final
    /// checkpoint, a new output's first, and an output that cannot be made durable always
    /// fail the run.
    pub tolerable_checkpoint_failures: u32,
    /// Fault injection for tests: parallel context `.0` panics when it reaches input event
    /// `.1` of the run (counted from 0). Not for production use.
    #[doc(hidden)]
    pub inject_context_panic: Option<(usize, u64)>,
}

impl RunConfig {
    /// A run over `events` writing to stdout, checkpointing every
    /// [`DEFAULT_CHECKPOINT_EVERY`] with the other checkpoint defaults.
    pub fn new(events: impl Into<PathBuf>) -> Self {
        Self {
            events: events.into(),
            output: None,
            checkpoint: CheckpointConfig::default().with_every(DEFAULT_CHECKPOINT_EVERY),
            flush_at_end: false,
            overwrite_output: false,
            restart_input: false,
            workers: 1,
            checkpoint_timeout: None,
            tolerable_checkpoint_failures: 0,
            inject_context_panic: None,
        }
    }
}

/// What recovery found at start.
#[derive(Debug, Clone, Default)]
pub struct RecoveryInfo {
    /// The checkpoint restored, if any.
    pub resumed_from: Option<u64>,
    /// Newer checkpoints that were invalid and skipped, newest first.
    pub skipped: Vec<SkippedCheckpoint>,
    /// Where the input resumes (`None`: at its beginning).
    pub input_resumed_at: Option<SourcePosition>,
    /// The input file the checkpoint was taken on, when it is not this run's input.
    pub previous_input: Option<String>,
    /// Length the output was cut back to (`None`: the output starts empty).
    pub output_truncated_to: Option<u64>,
    /// Bytes the output had beyond the checkpoint's length, cut at start (they were written
    /// after the checkpoint and are written again).
    pub output_bytes_cut: u64,
    /// Bytes of a non-empty output that no checkpoint knew, discarded on request
    /// ([`RunConfig::overwrite_output`]).
    pub output_overwritten: u64,
    /// The input was replaced since the checkpoint (why), and is read from its beginning on
    /// request ([`RunConfig::restart_input`]).
    pub input_replaced: Option<String>,
}

/// One checkpoint taken during the run, reported once committed.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointTaken {
    /// Its id.
    pub id: u64,
    /// Time the event loop was stalled by it, its *stall*: waiting for the previous checkpoint
    /// if it was still in flight ([`waited`](Self::waited)), handing the output's buffered
    /// bytes to the OS, and the snapshot (engine state, input position, output length). For a
    /// checkpoint the loop waits for (a new output's first, the final one) also the output
    /// sync and the commit.
    pub took: Duration,
    /// Of [`took`](Self::took), the time spent waiting for the previous checkpoint's commit.
    pub waited: Duration,
    /// From the start of the stall until the loop saw the commit done (output `fsync`,
    /// encoding, store commit and retention ran in the background meanwhile): an upper bound
    /// of the checkpoint's whole time, as exact as how often the loop looks (every
    /// [`CLOCK_STRIDE`](varpulis_checkpoint::CLOCK_STRIDE) events, at the next checkpoint, at
    /// the end). At least `took`.
    pub total: Duration,
    /// Bytes written to the store.
    pub bytes_written: u64,
    /// Input events processed when it was taken (snapshotted).
    pub events_processed: u64,
}

/// Callbacks from the event loop (progress bars, logs). Every method has an empty default.
pub trait RunObserver {
    /// Called once after recovery, before the first event.
    fn recovered(&mut self, _info: &RecoveryInfo) {}
    /// Called every few thousand events with the input position and the file's length.
    fn progress(&mut self, _position: SourcePosition, _file_len: u64) {}
    /// Called after each checkpoint has committed (from the loop, soon after the background
    /// commit ended).
    fn checkpointed(&mut self, _taken: &CheckpointTaken) {}
    /// Called for each event a window dropped as late (the engine's side output).
    fn late_event(&mut self, _late: &LateEvent) {}
}

/// An observer that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl RunObserver for NoObserver {}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Input events read by this run.
    pub events_read: u64,
    /// Output events written by this run.
    pub outputs_written: u64,
    /// Input events processed, all runs together.
    pub events_processed: u64,
    /// Output events emitted, all runs together.
    pub output_events_emitted: u64,
    /// Late events dropped, all runs together.
    pub late_events_dropped: u64,
    /// Checkpoints committed by this run.
    pub checkpoints: u64,
    /// Total time the event loop was stalled by checkpoints (the sum of
    /// [`CheckpointTaken::took`]; the commits of scheduled checkpoints are not in it: they ran
    /// beside the loop).
    pub checkpoint_time: Duration,
    /// Longest single stall.
    pub max_checkpoint_time: Duration,
    /// Checkpoints that found the previous one still committing and waited for it: when this
    /// grows, the interval is shorter than a commit takes.
    pub checkpoints_waited: u64,
    /// Scheduled checkpoints whose commit failed and were skipped
    /// ([`RunConfig::tolerable_checkpoint_failures`]).
    pub checkpoints_failed: u64,
    /// Checkpoints of a parallel run aborted because their barrier took longer than the
    /// checkpoint timeout (the previous one stayed the recovery point).
    pub checkpoints_aborted: u64,
    /// What recovery found.
    pub recovery: RecoveryInfo,
    /// The run stopped on a shutdown request (SIGINT/SIGTERM), not at end of input.
    pub interrupted: bool,
    /// The shutdown request came during the end-of-input flush (`--flush-at-end`): the flush
    /// was left half done and no checkpoint was taken of it; the next run flushes again from
    /// the last checkpoint.
    pub flush_interrupted: bool,
    /// Time of the run, on the run's clock.
    pub elapsed: Duration,
}

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The input could not be read or has a malformed line.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The checkpoint could not be restored into this program.
    #[error("cannot restore checkpoint {id}")]
    Restore {
        /// The checkpoint.
        id: u64,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// A checkpoint's record of the input or output is malformed: a value is missing or does
    /// not parse. The checkpoint passed its checksum, so it was written this way; resuming
    /// from a guessed position would lose or repeat events.
    #[error(
        "checkpoint {id}: {what}; the checkpoint's record of the input is damaged or was not \
         written by varpulis: resume from an older checkpoint (delete this one's manifest) or \
         start over with an empty state directory"
    )]
    BadCheckpoint {
        /// The checkpoint.
        id: u64,
        /// What is wrong, naming the key (`metadata "input_line" is "x", not a line number`).
        what: String,
    },
    /// Checkpointing failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The output could not be opened, written or synced.
    #[error("output {}", path.display())]
    Output {
        /// The output file (`-` for stdout).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The output is shorter than the checkpoint recorded: it was truncated or replaced since.
    #[error(
        "output {} has {len} bytes but checkpoint {id} recorded {recorded}: it was truncated or \
         replaced since; restore it, or start over with an empty state directory",
        path.display()
    )]
    OutputShorter {
        /// The output file.
        path: PathBuf,
        /// Its length now.
        len: u64,
        /// The length the checkpoint recorded.
        recorded: u64,
        /// The checkpoint.
        id: u64,
    },
    /// Another process holds the output file's lock: it is the output of another run.
    #[error(
        "output {} is being written by another process (another varpulis run holds its lock); \
         wait for it, or choose another output file",
        path.display()
    )]
    OutputInUse {
        /// The output file.
        path: PathBuf,
    },
    /// The output file is the input file: writing it would destroy the input.
    #[error(
        "output {} is the input file: writing it would destroy the input; choose another output",
        path.display()
    )]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
    },
    /// The output file is not empty and no checkpoint knows it: starting it over would lose it.
    #[error(
        "output {} already holds {len} bytes that {known}; refusing to empty it: pass \
         --overwrite-output to start it over, or choose another output file",
        path.display()
    )]
    OutputNotEmpty {
        /// The output file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// What the state knows, as a phrase ("no checkpoint knows (there is no state
        /// directory)", ...).
        known: String,
    },
    /// The input was replaced since the checkpoint (same path, other content).
    #[error(
        "input {} was replaced since checkpoint {id} ({why}); its recorded position (byte \
         {offset}) does not apply to this file: pass --restart-input to read it from its \
         beginning with the restored state, or restore the original file",
        path.display()
    )]
    InputReplaced {
        /// The input file.
        path: PathBuf,
        /// The checkpoint.
        id: u64,
        /// The recorded offset.
        offset: u64,
        /// What differs.
        why: String,
    },
    /// The input has the first bytes of the input a checkpoint of another path consumed: it
    /// was moved or copied, and reading it from its beginning would process them again.
    #[error(
        "input {} starts with the same {prefix_len} bytes as {previous}, the input of \
         checkpoint {id}: a moved or copied input (or the old one with lines appended) would be \
         processed twice from its beginning; run it under its old path to resume it, or pass \
         --restart-input to read it from its beginning anyway",
        path.display()
    )]
    InputMoved {
        /// The input file.
        path: PathBuf,
        /// The checkpoint.
        id: u64,
        /// The input path the checkpoint recorded.
        previous: String,
        /// Bytes compared.
        prefix_len: u64,
    },
    /// The input file cannot be found.
    #[error("input {}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A parallel context stopped: its thread panicked (the message) or vanished. The run
    /// fails; the last committed checkpoint stands, and a rerun resumes from it.
    #[error("parallel context {context} failed: {message}")]
    Context {
        /// The context (`worker-<n>`; `source` for the reading thread).
        context: String,
        /// The panic's message.
        message: String,
    },
    /// `RunConfig::workers` is 0 or above the number of key groups.
    #[error("--workers {workers}: must be between 1 and {max} (the number of key groups)")]
    Workers {
        /// What was asked.
        workers: usize,
        /// [`KEY_GROUPS`](crate::key_group::KEY_GROUPS).
        max: u16,
    },
    /// The engine refused an input event (its time cannot be represented by a window it
    /// reaches); nothing of it was applied. Prints as `FILE:LINE: event time T (stream S): its
    /// tumbling 1d window cannot be represented`.
    #[error("{}:{line}: {error}", file.display())]
    Event {
        /// The input file.
        file: PathBuf,
        /// The event's 1-based line.
        line: u64,
        /// What the engine said (part of this message, not a separate source).
        error: EngineError,
    },
}

/// Runs `engine` over `config.events`.
///
/// With a `store`, the newest valid checkpoint is restored first (invalid newer ones are
/// skipped and reported through [`RunObserver::recovered`]), checkpoints are taken as
/// `config.checkpoint.every()` says (on `clock`'s monotonic time), and a final one at end of
/// input, or when `shutdown` becomes true if `config.checkpoint.checkpoint_on_shutdown` (the
/// loop checks it between events). See the module docs for the exactly-once contract.
///
/// # Errors
/// [`RunError`]: a malformed input line (everything before it is processed, written and, with
/// a store, checkpointed), an output or store failure, or a checkpoint that does not fit the
/// program.
pub async fn run(
    engine: &mut Engine,
    config: &RunConfig,
    store: Option<Arc<dyn StateStore>>,
    shutdown: &AtomicBool,
    clock: &dyn Clock,
    observer: &mut dyn RunObserver,
) -> Result<RunReport, RunError> {
    let started = clock.monotonic();
    if config.workers == 0 || config.workers > usize::from(crate::key_group::KEY_GROUPS) {
        return Err(RunError::Workers {
            workers: config.workers,
            max: crate::key_group::KEY_GROUPS,
        });
    }
    let input = position::Input::open(&config.events)?;
    let output = output::resolve(config.output.as_deref(), &input)?;
    let mut recovered = recover::recover(engine, store, config, &input, output.as_deref()).await?;
    let sink = output::open(config, output, &mut recovered)?;
    observer.recovered(&recovered.info);
    event_loop::Loop::new(engine, config, clock, input, sink, recovered)?
        .run(started, shutdown, observer)
        .await
}
