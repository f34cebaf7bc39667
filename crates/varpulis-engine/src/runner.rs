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
//! restart: at least once, not exactly once.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use varpulis_checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointError, CheckpointManager, SkippedCheckpoint,
};
use varpulis_core::{Event, EventTime};
use varpulis_store::StateStore;

use crate::clock::Clock;
use crate::engine::{CONTEXT, Engine, EngineError, LateEvent};
use crate::output::write_json_line;
use crate::source::{EventFileReader, EventFormat, ReadError, SourcePosition, parse_evt};

/// Checkpoint interval used when a store is given and nothing else is asked for.
pub const DEFAULT_CHECKPOINT_EVERY: CheckpointEvery = CheckpointEvery::Events(10_000);

/// Metadata keys written into every checkpoint by the runner.
pub mod meta {
    /// Canonical path of the input file.
    pub const INPUT: &str = "input";
    /// Lines of the input consumed.
    pub const INPUT_LINE: &str = "input_line";
    /// Event time of the last input event read (`.evt` lines without `@` inherit it).
    pub const INPUT_LAST_TIME_MS: &str = "input_last_time_ms";
    /// Absolute path of the output file, if any.
    pub const OUTPUT: &str = "output";
    /// Version of the engine that wrote the checkpoint.
    pub const ENGINE_VERSION: &str = "engine_version";
    /// Device of the input file (identity, for the message when it was replaced).
    pub const INPUT_DEV: &str = "input_dev";
    /// Inode of the input file (identity, for the message when it was replaced).
    pub const INPUT_INO: &str = "input_ino";
    /// Length of the input prefix hashed into [`INPUT_PREFIX_HASH`].
    pub const INPUT_PREFIX_LEN: &str = "input_prefix_len";
    /// XXH3-128 (hex) of the input's first [`INPUT_PREFIX_LEN`] bytes: the input's identity.
    pub const INPUT_PREFIX_HASH: &str = "input_prefix_hash";
}

/// Bytes of the input hashed into its identity (at most; less when less was consumed).
pub const INPUT_PREFIX_BYTES: u64 = 64 * 1024;

/// The `source_offsets` key of an input file.
#[must_use]
pub fn input_offset_key(canonical: &Path) -> String {
    format!("input:{}", canonical.display())
}

/// The `source_offsets` key of an output file.
#[must_use]
pub fn output_offset_key(absolute: &Path) -> String {
    format!("output:{}", absolute.display())
}

/// How often to checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// After this many input events.
    Events(u64),
    /// After this much wall-clock time (checked between events).
    Interval(Duration),
}

impl FromStr for CheckpointEvery {
    type Err = String;
    /// `500` (events) or a duration such as `10s`, `500ms`, `1m`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return if n == 0 {
                Err("the checkpoint interval must be at least 1 event".to_owned())
            } else {
                Ok(Self::Events(n))
            };
        }
        match varpulis_core::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(Self::Interval(d)),
            _ => Err(format!(
                "expected a number of events (500) or a duration (10s, 500ms, 1m), found {s:?}"
            )),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input event file (`.evt` or `.jsonl`).
    pub events: PathBuf,
    /// The output file (JSON lines); `None` writes to stdout.
    pub output: Option<PathBuf>,
    /// Checkpoint interval (when a store is given).
    pub checkpoint_every: CheckpointEvery,
    /// Emit every open window at end of input.
    pub flush_at_end: bool,
    /// Checkpoints kept (at least 1).
    pub max_checkpoints: usize,
    /// Start a non-empty output file over although no checkpoint knows it (otherwise refused).
    pub overwrite_output: bool,
    /// Read a replaced input from its beginning (with the restored state) instead of refusing.
    pub restart_input: bool,
}

impl RunConfig {
    /// A run over `events` writing to stdout, with the default interval.
    pub fn new(events: impl Into<PathBuf>) -> Self {
        Self {
            events: events.into(),
            output: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            flush_at_end: false,
            max_checkpoints: CheckpointConfig::default().max_checkpoints,
            overwrite_output: false,
            restart_input: false,
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

/// One checkpoint taken during the run.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointTaken {
    /// Its id.
    pub id: u64,
    /// Time the event loop was stalled by it (output sync + snapshot + commit).
    pub took: Duration,
    /// Bytes written to the store.
    pub bytes_written: u64,
    /// Input events processed when it was taken.
    pub events_processed: u64,
}

/// Callbacks from the event loop (progress bars, logs). Every method has an empty default.
pub trait RunObserver {
    /// Called once after recovery, before the first event.
    fn recovered(&mut self, _info: &RecoveryInfo) {}
    /// Called every few thousand events with the input position and the file's length.
    fn progress(&mut self, _position: SourcePosition, _file_len: u64) {}
    /// Called after each checkpoint.
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
    /// Checkpoints taken by this run.
    pub checkpoints: u64,
    /// Total time the event loop spent in checkpoints.
    pub checkpoint_time: Duration,
    /// Longest single checkpoint.
    pub max_checkpoint_time: Duration,
    /// What recovery found.
    pub recovery: RecoveryInfo,
    /// The run stopped on a shutdown request (SIGINT/SIGTERM), not at end of input.
    pub interrupted: bool,
    /// The shutdown request came during the end-of-input flush (`--flush-at-end`): the flush
    /// was left half done and no checkpoint was taken of it; the next run flushes again from
    /// the last checkpoint.
    pub flush_interrupted: bool,
    /// Wall-clock time of the run.
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
    /// The store failed while recovering or checkpointing.
    #[error("checkpoint store")]
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

enum Sink {
    File {
        w: BufWriter<File>,
        path: PathBuf,
        key: String,
    },
    /// A file that is not a regular file (`/dev/null`, a FIFO): written, never cut or synced,
    /// and like stdout not part of the exactly-once contract.
    Stream {
        w: BufWriter<File>,
        path: PathBuf,
    },
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    fn path(&self) -> PathBuf {
        match self {
            Self::File { path, .. } | Self::Stream { path, .. } => path.clone(),
            Self::Stdout(_) => PathBuf::from("-"),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::File { w, .. } | Self::Stream { w, .. } => w.write_all(bytes),
            Self::Stdout(w) => w.write_all(bytes),
        }
    }

    /// Flushes, and for a regular file makes the bytes durable.
    fn sync(&mut self) -> io::Result<()> {
        match self {
            Self::File { w, .. } => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            Self::Stream { w, .. } => w.flush(),
            Self::Stdout(w) => w.flush(),
        }
    }
}

/// Whether `a` and `b` are the same existing file (also through symbolic or hard links).
#[must_use]
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.dev() == y.dev() && x.ino() == y.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok(),
        _ => false,
    }
}

/// The identity of an input file: its first bytes' hash, plus device and inode for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InputIdentity {
    dev: u64,
    ino: u64,
    prefix_len: u64,
    prefix_hash: String,
}

impl InputIdentity {
    /// Reads the identity of `file` over its first `prefix_len` bytes (`None` if shorter).
    fn of(file: &File, prefix_len: u64) -> io::Result<Option<Self>> {
        let meta = file.metadata()?;
        if meta.len() < prefix_len {
            return Ok(None);
        }
        let mut buf = vec![0; usize::try_from(prefix_len).unwrap_or(usize::MAX)];
        read_exact_at(file, &mut buf, 0)?;
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Ok(Some(Self {
            dev,
            ino,
            prefix_len,
            prefix_hash: format!("{:032x}", twox_hash::XxHash3_128::oneshot(&buf)),
        }))
    }

    fn record(&self, cp: &mut Checkpoint) {
        for (k, v) in [
            (meta::INPUT_DEV, self.dev.to_string()),
            (meta::INPUT_INO, self.ino.to_string()),
            (meta::INPUT_PREFIX_LEN, self.prefix_len.to_string()),
            (meta::INPUT_PREFIX_HASH, self.prefix_hash.clone()),
        ] {
            cp.metadata.insert(k.to_owned(), v);
        }
    }

    /// The identity a checkpoint recorded (`None` for checkpoints older than the record).
    fn recorded(cp: &Checkpoint) -> Option<Self> {
        Some(Self {
            dev: parse_meta(cp, meta::INPUT_DEV)?,
            ino: parse_meta(cp, meta::INPUT_INO)?,
            prefix_len: parse_meta(cp, meta::INPUT_PREFIX_LEN)?,
            prefix_hash: cp.metadata.get(meta::INPUT_PREFIX_HASH)?.clone(),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::Read;
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// Why the input does not match the identity a checkpoint recorded, if it does not.
fn input_change(file: &File, recorded: &InputIdentity, offset: u64) -> io::Result<Option<String>> {
    let len = file.metadata()?.len();
    if len < offset {
        return Ok(Some(format!(
            "it has {len} bytes, fewer than the {offset} already consumed"
        )));
    }
    let Some(now) = InputIdentity::of(file, recorded.prefix_len)? else {
        return Ok(Some(format!(
            "it has fewer than {} bytes",
            recorded.prefix_len
        )));
    };
    if now.prefix_hash == recorded.prefix_hash {
        return Ok(None);
    }
    let inode = if (now.dev, now.ino) == (recorded.dev, recorded.ino) {
        "the same inode, rewritten in place".to_owned()
    } else {
        format!("inode {} replaced by {}", recorded.ino, now.ino)
    };
    Ok(Some(format!(
        "its first {} bytes differ: {inode}",
        recorded.prefix_len
    )))
}

fn absolute_output(path: &Path) -> io::Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => return std::fs::canonicalize(path),
        // `/dev/stdout` on a pipe resolves to `/proc/self/fd/pipe:[N]`, which cannot be
        // opened: a stream is opened by the name given.
        Ok(_) => return std::path::absolute(path),
        Err(_) => {}
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok(std::fs::canonicalize(parent)?.join(name))
}

struct Loop<'a> {
    engine: &'a mut Engine,
    manager: Option<CheckpointManager<Arc<dyn StateStore>>>,
    clock: &'a dyn Clock,
    sink: Sink,
    output_len: u64,
    input_key: String,
    input_path: String,
    /// The input, opened once, to hash its first bytes into each checkpoint.
    input_file: File,
    /// The input's identity once its whole prefix has been consumed (it no longer changes).
    input_identity: Option<InputIdentity>,
    report: RunReport,
    line: Vec<u8>,
}

impl Loop<'_> {
    /// The report of a run that ends now.
    fn finish(self, started: Instant) -> RunReport {
        let mut report = self.report;
        report.events_processed = self.engine.events_processed();
        report.output_events_emitted = self.engine.output_events_emitted();
        report.late_events_dropped = self.engine.late_events_dropped();
        report.elapsed = started.elapsed();
        report
    }

    fn write_outputs(&mut self, outputs: &mut Vec<Event>) -> Result<(), RunError> {
        for e in outputs.drain(..) {
            self.line.clear();
            write_json_line(&mut self.line, &e).expect("writing to a Vec cannot fail");
            self.sink
                .write(&self.line)
                .map_err(|source| RunError::Output {
                    path: self.sink.path(),
                    source,
                })?;
            self.output_len += self.line.len() as u64;
            self.report.outputs_written += 1;
        }
        Ok(())
    }

    async fn checkpoint(
        &mut self,
        position: SourcePosition,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        let Some(manager) = &self.manager else {
            return Ok(());
        };
        let started = Instant::now();
        // The output must be on disk up to the recorded length before the checkpoint commits.
        self.sink.sync().map_err(|source| RunError::Output {
            path: self.sink.path(),
            source,
        })?;
        let mut cp = Checkpoint::new(self.clock.now_ms())
            .with_context(CONTEXT, self.engine.create_checkpoint());
        cp.source_offsets
            .insert(self.input_key.clone(), position.offset);
        cp.metadata
            .insert(meta::INPUT.to_owned(), self.input_path.clone());
        cp.metadata
            .insert(meta::INPUT_LINE.to_owned(), position.line.to_string());
        cp.metadata.insert(
            meta::INPUT_LAST_TIME_MS.to_owned(),
            position.last_time_ms.to_string(),
        );
        cp.metadata.insert(
            meta::ENGINE_VERSION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        let prefix = position.offset.min(INPUT_PREFIX_BYTES);
        let identity = match &self.input_identity {
            Some(id) if id.prefix_len == prefix => id.clone(),
            _ => InputIdentity::of(&self.input_file, prefix)
                .and_then(|id| {
                    id.ok_or_else(|| {
                        io::Error::other(format!(
                            "it was truncated while being read: it has fewer than the {prefix} \
                             bytes already consumed"
                        ))
                    })
                })
                .map_err(|source| RunError::Input {
                    path: PathBuf::from(&self.input_path),
                    source,
                })?,
        };
        identity.record(&mut cp);
        if prefix == INPUT_PREFIX_BYTES {
            self.input_identity = Some(identity);
        }
        if let Sink::File { path, key, .. } = &self.sink {
            cp.source_offsets.insert(key.clone(), self.output_len);
            cp.metadata
                .insert(meta::OUTPUT.to_owned(), path.display().to_string());
        }
        let commit = manager.checkpoint(&cp).await?;
        let took = started.elapsed();
        self.report.checkpoints += 1;
        self.report.checkpoint_time += took;
        self.report.max_checkpoint_time = self.report.max_checkpoint_time.max(took);
        let taken = CheckpointTaken {
            id: commit.id,
            took,
            bytes_written: commit.bytes_written(),
            events_processed: self.engine.events_processed(),
        };
        tracing::debug!(
            id = taken.id,
            took_us = took.as_micros() as u64,
            bytes = taken.bytes_written,
            events = taken.events_processed,
            "checkpoint committed"
        );
        observer.checkpointed(&taken);
        Ok(())
    }
}

fn parse_meta<T: FromStr>(cp: &Checkpoint, key: &str) -> Option<T> {
    cp.metadata.get(key).and_then(|v| v.parse().ok())
}

/// Runs `engine` over `config.events`.
///
/// With a `store`, the newest valid checkpoint is restored first (invalid newer ones are
/// skipped and reported through [`RunObserver::recovered`]), checkpoints are taken every
/// `config.checkpoint_every`, and a final one at end of input or when `shutdown` becomes true
/// (the loop checks it between events). See the module docs for the exactly-once contract.
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
    let started = Instant::now();
    // Opened once, as a regular file (a FIFO or `/dev/stdin` cannot resume): the identity
    // checks below and the reader look at this one handle, so an input rotated while the run
    // starts cannot be hashed as one file and read as another.
    let input_file = crate::source::open_regular_file(&config.events)?;
    let format = EventFormat::from_path(&config.events)?;
    let input_canon = std::fs::canonicalize(&config.events).map_err(|source| RunError::Input {
        path: config.events.clone(),
        source,
    })?;
    let input_key = input_offset_key(&input_canon);
    let output_abs = match &config.output {
        Some(p) => Some(absolute_output(p).map_err(|source| RunError::Output {
            path: p.clone(),
            source,
        })?),
        None => None,
    };

    if let (Some(out), Some(abs)) = (&config.output, &output_abs)
        && (same_file(abs, &input_canon) || *abs == input_canon)
    {
        return Err(RunError::OutputIsInput { path: out.clone() });
    }

    let mut info = RecoveryInfo::default();
    let mut resume: Option<SourcePosition> = None;
    let mut output_resume: Option<(u64, u64)> = None;
    // What the state knows of outputs, for the message when the output is not empty.
    let mut output_known = if store.is_some() {
        "no checkpoint knows (the state directory has no valid checkpoint: a new or mistyped \
         state directory?)"
            .to_owned()
    } else {
        "no checkpoint knows (there is no state directory)".to_owned()
    };
    let manager = match store {
        Some(store) => {
            let cfg = CheckpointConfig {
                max_checkpoints: config.max_checkpoints.max(1),
                ..CheckpointConfig::default()
            };
            let manager = CheckpointManager::new(store, cfg)?;
            let recovery = manager.recover().await?;
            info.skipped = recovery.skipped;
            if let Some(cp) = recovery.checkpoint {
                info.resumed_from = Some(cp.id);
                if let Some(state) = cp.context_states.get(CONTEXT) {
                    engine
                        .restore_checkpoint(state)
                        .map_err(|source| RunError::Restore { id: cp.id, source })?;
                }
                let replaced = match (
                    cp.source_offsets.get(&input_key),
                    InputIdentity::recorded(&cp),
                ) {
                    (Some(&offset), Some(recorded)) => input_change(&input_file, &recorded, offset)
                        .map_err(|source| RunError::Input {
                            path: config.events.clone(),
                            source,
                        })?
                        .map(|why| (offset, why)),
                    _ => None,
                };
                if let Some((offset, why)) = replaced {
                    if !config.restart_input {
                        return Err(RunError::InputReplaced {
                            path: config.events.clone(),
                            id: cp.id,
                            offset,
                            why,
                        });
                    }
                    info.input_replaced = Some(why);
                    resume = Some(SourcePosition {
                        offset: 0,
                        line: 0,
                        last_time_ms: parse_meta::<EventTime>(&cp, meta::INPUT_LAST_TIME_MS)
                            .unwrap_or(0),
                    });
                } else if let Some(&offset) = cp.source_offsets.get(&input_key) {
                    resume = Some(SourcePosition {
                        offset,
                        line: parse_meta(&cp, meta::INPUT_LINE).unwrap_or(0),
                        last_time_ms: parse_meta::<EventTime>(&cp, meta::INPUT_LAST_TIME_MS)
                            .unwrap_or(0),
                    });
                } else {
                    let previous = cp.metadata.get(meta::INPUT).cloned();
                    // A checkpoint of another path whose input had the same first bytes: the
                    // input was moved or copied (or is the old one with more appended), and
                    // reading it from its beginning would process those events twice.
                    if let (Some(recorded), false) =
                        (InputIdentity::recorded(&cp), config.restart_input)
                        && recorded.prefix_len > 0
                        && InputIdentity::of(&input_file, recorded.prefix_len)
                            .map_err(|source| RunError::Input {
                                path: config.events.clone(),
                                source,
                            })?
                            .is_some_and(|now| now.prefix_hash == recorded.prefix_hash)
                    {
                        return Err(RunError::InputMoved {
                            path: config.events.clone(),
                            id: cp.id,
                            previous: previous.unwrap_or_default(),
                            prefix_len: recorded.prefix_len,
                        });
                    }
                    info.previous_input = previous;
                    // A new input file continues the event-time clock of `.evt` files.
                    if let Some(t) = parse_meta::<EventTime>(&cp, meta::INPUT_LAST_TIME_MS) {
                        resume = Some(SourcePosition {
                            offset: 0,
                            line: 0,
                            last_time_ms: t,
                        });
                    }
                }
                if let Some(out) = &output_abs
                    && let Some(&len) = cp.source_offsets.get(&output_offset_key(out))
                {
                    output_resume = Some((len, cp.id));
                }
                output_known = match cp.metadata.get(meta::OUTPUT) {
                    Some(other) => format!(
                        "no checkpoint knows (checkpoint {} recorded the output {other})",
                        cp.id
                    ),
                    None => format!(
                        "no checkpoint knows (checkpoint {} was taken writing to stdout)",
                        cp.id
                    ),
                };
            }
            Some(manager)
        }
        None => None,
    };
    info.input_resumed_at = resume.filter(|p| p.offset > 0);

    let sink =
        match (&config.output, &output_abs) {
            (Some(_), Some(abs)) if abs.exists() && !abs.is_file() => {
                // `/dev/null`, a FIFO, a terminal: nothing to cut back, nothing to sync.
                let file = OpenOptions::new().write(true).open(abs).map_err(|source| {
                    RunError::Output {
                        path: abs.clone(),
                        source,
                    }
                })?;
                Sink::Stream {
                    w: BufWriter::with_capacity(1 << 16, file),
                    path: abs.clone(),
                }
            }
            (Some(_), Some(abs)) => {
                let err = |source| RunError::Output {
                    path: abs.clone(),
                    source,
                };
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(abs)
                    .map_err(err)?;
                // One writer per output: a second run (with another state directory) would
                // interleave its lines and cut back the other's. Released at exit, as the
                // state directory's lock.
                match file.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(RunError::OutputInUse { path: abs.clone() });
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
                }
                let len = file.metadata().map_err(err)?.len();
                let keep = match output_resume {
                    Some((recorded, id)) => {
                        if len < recorded {
                            return Err(RunError::OutputShorter {
                                path: abs.clone(),
                                len,
                                recorded,
                                id,
                            });
                        }
                        info.output_truncated_to = Some(recorded);
                        info.output_bytes_cut = len - recorded;
                        recorded
                    }
                    None if len > 0 && !config.overwrite_output => {
                        return Err(RunError::OutputNotEmpty {
                            path: abs.clone(),
                            len,
                            known: output_known,
                        });
                    }
                    None => {
                        info.output_overwritten = len;
                        0
                    }
                };
                file.set_len(keep).map_err(err)?;
                file.seek(SeekFrom::Start(keep)).map_err(err)?;
                file.sync_data().map_err(err)?;
                Sink::File {
                    w: BufWriter::with_capacity(1 << 16, file),
                    key: output_offset_key(abs),
                    path: abs.clone(),
                }
            }
            _ => Sink::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
        };
    let output_len = info.output_truncated_to.unwrap_or(0);
    observer.recovered(&info);

    let file_len = input_file.metadata().map_or(0, |m| m.len());
    let handle = input_file.try_clone().map_err(|source| RunError::Input {
        path: config.events.clone(),
        source,
    })?;
    let mut reader = EventFileReader::from_file(&config.events, handle, format, resume)?
        .with_evt_parser(parse_evt);

    let mut lp = Loop {
        engine,
        manager,
        clock,
        sink,
        output_len,
        input_key,
        input_path: input_canon.display().to_string(),
        input_file,
        input_identity: None,
        report: RunReport {
            recovery: info,
            ..RunReport::default()
        },
        line: Vec::with_capacity(256),
    };
    if matches!(lp.sink, Sink::File { .. }) && output_resume.is_none() {
        // The output starts (over) now: make the store know it before anything is written,
        // so a crash before the first interval's checkpoint leaves a checkpoint that owns the
        // output, and the next run resumes instead of refusing an unknown non-empty output.
        lp.checkpoint(reader.position(), observer).await?;
    }

    let mut outputs: Vec<Event> = Vec::new();
    let mut since_checkpoint: u64 = 0;
    let mut last_checkpoint = Instant::now();
    // An input error stops the loop like the end of input: everything before the bad line is
    // processed, written and checkpointed (at `consumed`, so a rerun stops at the same line),
    // and then the error is returned. (A malformed line does not advance the reader; an event
    // the engine rejects did, so the checkpoint is taken at the position before it.)
    let mut read_error: Option<RunError> = None;
    let mut stopped_at: Option<SourcePosition> = None;
    loop {
        if shutdown.load(Ordering::Relaxed) {
            lp.report.interrupted = true;
            break;
        }
        let before = reader.position();
        let event = match reader.next_event() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e.into());
                break;
            }
        };
        if let Err(error) = lp.engine.process(&event, &mut outputs) {
            // The engine left its state as it was before this event.
            read_error = Some(RunError::Event {
                file: config.events.clone(),
                line: reader.position().line,
                error,
            });
            stopped_at = Some(before);
            break;
        }
        lp.write_outputs(&mut outputs)?;
        for late in lp.engine.take_late_events() {
            observer.late_event(&late);
        }
        lp.report.events_read += 1;
        since_checkpoint += 1;
        if lp.report.events_read.is_multiple_of(4096) {
            observer.progress(reader.position(), file_len);
        }
        let due = match config.checkpoint_every {
            CheckpointEvery::Events(n) => since_checkpoint >= n,
            CheckpointEvery::Interval(d) => {
                since_checkpoint.is_multiple_of(64) && last_checkpoint.elapsed() >= d
            }
        };
        if due && lp.manager.is_some() {
            lp.checkpoint(reader.position(), observer).await?;
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
    }
    observer.progress(reader.position(), file_len);
    // A signal that arrived while the last line was read still ends the run as interrupted.
    if shutdown.load(Ordering::Relaxed) {
        lp.report.interrupted = true;
    }

    let end_of_input = !lp.report.interrupted && read_error.is_none();
    if end_of_input && config.flush_at_end {
        // Incremental: at most 4096 results in memory, however many windows are open.
        while lp.engine.flush_step(&mut outputs, 4096) {
            lp.write_outputs(&mut outputs)?;
            if shutdown.load(Ordering::Relaxed) {
                // The rest of the flush is skipped and the engine state is half flushed: no
                // checkpoint must be taken of it.
                lp.report.interrupted = true;
                lp.report.flush_interrupted = true;
                break;
            }
        }
        lp.write_outputs(&mut outputs)?;
    }
    if end_of_input && lp.report.interrupted {
        // Stopped in the middle of the end-of-input flush: a checkpoint now would record
        // windows as emitted that the next run could not tell from the rest. Keep the last
        // checkpoint; the next run cuts the output back to it and flushes again.
        lp.sink.sync().map_err(|source| RunError::Output {
            path: lp.sink.path(),
            source,
        })?;
        return Ok(lp.finish(started));
    }
    let changed = since_checkpoint > 0
        || (end_of_input && config.flush_at_end)
        || lp.report.recovery.resumed_from.is_none()
        || lp.report.recovery.previous_input.is_some();
    if changed {
        let at = stopped_at.unwrap_or_else(|| reader.position());
        lp.checkpoint(at, observer).await?;
    }
    lp.sink.sync().map_err(|source| RunError::Output {
        path: lp.sink.path(),
        source,
    })?;
    if let Some(e) = read_error {
        return Err(e);
    }
    Ok(lp.finish(started))
}
