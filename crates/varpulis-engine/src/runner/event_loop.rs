//! The event loop: read, process, write, checkpoint when the schedule says so, and end with a
//! final checkpoint.
//!
//! A scheduled checkpoint stalls the loop only for its snapshot: the output's buffered bytes
//! go to the OS, the engine state is copied, the input position and output length recorded,
//! and the rest (output `fsync`, encoding, store commit) is handed to the background
//! (`background.rs`) while the loop goes on. At most one checkpoint is in flight: the next one
//! first waits for it. The first checkpoint of a new output and the last one of a run are
//! waited for (the first must own the output before anything is written to it), and every
//! way out of the run waits for the one in flight, whose failure fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use varpulis_checkpoint::{
    CLOCK_STRIDE, Checkpoint, CheckpointManager, CheckpointSchedule, CommitReport,
};
use varpulis_core::Event;
use varpulis_store::StateStore;

use super::background::{InFlight, Job};
use super::output::Sink;
use super::position::{INPUT_PREFIX_BYTES, Input, InputIdentity, InputRecord, meta};
use super::recover::Recovered;
use super::{CheckpointTaken, RunConfig, RunError, RunObserver, RunReport};
use crate::clock::Clock;
use crate::engine::{CONTEXT, Engine};
use crate::output::write_json_line;
use crate::source::{EventFileReader, SourcePosition};

mod parallel;

/// Results flushed between two looks at the shutdown flag (and at most held in memory).
const FLUSH_STEP: usize = 4096;
/// Events between two progress callbacks.
const PROGRESS_EVERY: u64 = 4096;

/// How the loop over the input ended.
enum End {
    /// End of input, read up to `.0`.
    Input(SourcePosition),
    /// A shutdown request, with the input read up to `.0`.
    Shutdown(SourcePosition),
    /// A malformed line or an event the engine refused: everything before it is processed;
    /// the checkpoint is taken at `at` (the position before the bad event).
    Error { error: RunError, at: SourcePosition },
}

/// Whether a checkpoint returns once handed to the background or once committed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The loop goes on while it commits (scheduled checkpoints).
    HandOff,
    /// The loop waits for the commit (a new output's first checkpoint, the final one).
    Commit,
}

/// The running state of a run.
pub(super) struct Loop<'a> {
    engine: &'a mut Engine,
    config: &'a RunConfig,
    clock: &'a dyn Clock,
    manager: Option<Arc<CheckpointManager<Arc<dyn StateStore>>>>,
    schedule: CheckpointSchedule,
    /// The checkpoint handed to the background and not yet seen to end (at most one).
    in_flight: Option<InFlight>,
    sink: Sink,
    /// Bytes in the output file (what the next checkpoint records).
    output_len: u64,
    input: Input,
    reader: EventFileReader,
    file_len: u64,
    /// The input's identity once its whole prefix has been consumed (it no longer changes).
    input_identity: Option<InputIdentity>,
    /// No checkpoint knew the output: one is taken before anything is written.
    output_is_new: bool,
    report: RunReport,
    line: Vec<u8>,
    /// A parallel run's keyed contexts, until the run starts their threads (empty: one
    /// context).
    contexts: Vec<Engine>,
    /// Its declared contexts, likewise.
    declared: Vec<super::recover::Declared>,
    /// What the next snapshot of a parallel run records besides the tail: the contexts'
    /// states (from their barrier) and the barrier's figures for the metadata.
    barrier: Option<parallel::BarrierSnapshot>,
    /// Late events the parallel contexts' windows dropped, all runs together (at the end).
    contexts_late: u64,
    /// Scheduled checkpoints that failed since the last one committed.
    failures_in_a_row: u32,
}

impl<'a> Loop<'a> {
    pub(super) fn new(
        engine: &'a mut Engine,
        config: &'a RunConfig,
        clock: &'a dyn Clock,
        input: Input,
        sink: Sink,
        recovered: Recovered,
    ) -> Result<Self, RunError> {
        let file_len = input.file.metadata().map_or(0, |m| m.len());
        let handle = input.file.try_clone().map_err(|e| input.io_error(e))?;
        let reader =
            EventFileReader::from_file(&input.path, handle, input.format, recovered.resume)?;
        Ok(Self {
            engine,
            config,
            clock,
            schedule: CheckpointSchedule::new(config.checkpoint.every(), clock.monotonic()),
            output_is_new: matches!(sink, Sink::File { .. }) && recovered.output_at.is_none(),
            output_len: recovered.info.output_truncated_to.unwrap_or(0),
            manager: recovered.manager.map(Arc::new),
            in_flight: None,
            sink,
            input,
            reader,
            file_len,
            input_identity: None,
            report: RunReport {
                recovery: recovered.info,
                ..RunReport::default()
            },
            line: Vec::with_capacity(256),
            contexts: recovered.contexts,
            declared: recovered.declared,
            barrier: None,
            contexts_late: 0,
            failures_in_a_row: 0,
        })
    }

    /// Runs to the end of input, a shutdown request or an error, then takes the final
    /// checkpoint.
    pub(super) async fn run(
        mut self,
        started: Duration,
        shutdown: &AtomicBool,
        observer: &mut dyn RunObserver,
    ) -> Result<RunReport, RunError> {
        let ended = self.drive(shutdown, observer).await;
        // However the run ended, the checkpoint still in flight is waited for: nothing writes
        // to the store once the run has returned, and its failure fails the run (it came
        // first: a synchronous checkpoint would have stopped the run there).
        let settled = self.settle(observer).await;
        match (ended, settled) {
            (_, Err(e)) | (Err(e), Ok(())) => Err(e),
            (Ok(()), Ok(())) => Ok(self.finish(started)),
        }
    }

    /// [`run`](Self::run) up to the end of the final checkpoint; the error of an input that
    /// ended in error comes after that checkpoint.
    async fn drive(
        &mut self,
        shutdown: &AtomicBool,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        if self.output_is_new {
            // The output starts (over) now: make the store know it before anything is
            // written, so a crash before the first scheduled checkpoint leaves a checkpoint
            // that owns the output, and the next run resumes instead of refusing an unknown
            // non-empty output.
            self.barrier = self.initial_barrier();
            self.checkpoint(self.reader.position(), Wait::Commit, observer)
                .await?;
        }
        let end = if self.contexts.is_empty() {
            self.events(shutdown, observer).await?
        } else {
            self.events_parallel(shutdown, observer).await?
        };
        let (End::Input(reached) | End::Shutdown(reached) | End::Error { at: reached, .. }) = end;
        observer.progress(reached, self.file_len);
        let (error, at) = match end {
            End::Input(at) if self.config.flush_at_end => {
                if !self.flush(shutdown)? {
                    // Stopped in the middle of the end-of-input flush: a checkpoint now would
                    // record windows as emitted that the next run could not tell from the
                    // rest. Keep the last checkpoint; the next run cuts the output back to it
                    // and flushes again.
                    self.report.interrupted = true;
                    self.report.flush_interrupted = true;
                    self.sink.sync().map_err(|e| self.sink.error(e))?;
                    return Ok(());
                }
                (None, at)
            }
            End::Input(at) => (None, at),
            End::Shutdown(at) => {
                self.report.interrupted = true;
                if !self.config.checkpoint.checkpoint_on_shutdown {
                    // Asked not to: the last checkpoint stands, as after a crash (the one in
                    // flight, if any, is a scheduled one: it commits).
                    self.sink.sync().map_err(|e| self.sink.error(e))?;
                    return Ok(());
                }
                (None, at)
            }
            End::Error { error, at } => (Some(error), at),
        };
        let recovery = &self.report.recovery;
        let changed = self.schedule.pending() > 0
            || (error.is_none() && !self.report.interrupted && self.config.flush_at_end)
            || recovery.resumed_from.is_none()
            || recovery.previous_input.is_some();
        if changed {
            self.checkpoint(at, Wait::Commit, observer).await?;
        }
        self.sink.sync().map_err(|e| self.sink.error(e))?;
        error.map_or(Ok(()), Err)
    }

    /// The loop over input events.
    async fn events(
        &mut self,
        shutdown: &AtomicBool,
        observer: &mut dyn RunObserver,
    ) -> Result<End, RunError> {
        let mut outputs: Vec<Event> = Vec::new();
        loop {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(End::Shutdown(self.reader.position()));
            }
            let before = self.reader.position();
            let event = match self.reader.next_event() {
                Ok(Some(e)) => e,
                // A signal that arrived while the last line was read still ends the run as
                // interrupted.
                Ok(None) if shutdown.load(Ordering::Relaxed) => {
                    return Ok(End::Shutdown(self.reader.position()));
                }
                Ok(None) => return Ok(End::Input(self.reader.position())),
                // A malformed line does not advance the reader: the checkpoint is taken where
                // it stands, so a rerun stops at the same line.
                Err(e) => {
                    return Ok(End::Error {
                        error: e.into(),
                        at: before,
                    });
                }
            };
            if let Err(error) = self.engine.process(&event, &mut outputs) {
                // The engine left its state as it was before this event.
                return Ok(End::Error {
                    error: RunError::Event {
                        file: self.input.path.clone(),
                        line: self.reader.position().line,
                        error,
                    },
                    at: before,
                });
            }
            self.write_outputs(&mut outputs)?;
            for late in self.engine.take_late_events() {
                observer.late_event(&late);
            }
            self.report.events_read += 1;
            if self.report.events_read.is_multiple_of(PROGRESS_EVERY) {
                observer.progress(self.reader.position(), self.file_len);
            }
            let clock = self.clock;
            if self.schedule.event(|| clock.monotonic()) && self.manager.is_some() {
                self.checkpoint(self.reader.position(), Wait::HandOff, observer)
                    .await?;
            } else if self.in_flight.is_some()
                && self.report.events_read.is_multiple_of(CLOCK_STRIDE)
            {
                self.poll_in_flight(observer).await?;
            }
        }
    }

    /// The end-of-input flush, [`FLUSH_STEP`] results at a time; `false` if a shutdown
    /// request stopped it.
    fn flush(&mut self, shutdown: &AtomicBool) -> Result<bool, RunError> {
        let mut outputs: Vec<Event> = Vec::new();
        while self.engine.flush_step(&mut outputs, FLUSH_STEP) {
            self.write_outputs(&mut outputs)?;
            if shutdown.load(Ordering::Relaxed) {
                return Ok(false);
            }
        }
        self.write_outputs(&mut outputs)?;
        Ok(true)
    }

    /// The report of a run that ends now.
    fn finish(&mut self, started: Duration) -> RunReport {
        let mut report = std::mem::take(&mut self.report);
        report.events_processed = self.engine.events_processed();
        report.output_events_emitted = self.engine.output_events_emitted();
        report.late_events_dropped = self.engine.late_events_dropped() + self.contexts_late;
        report.elapsed = self.clock.monotonic().saturating_sub(started);
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

    /// Takes a checkpoint at `position` (nothing without a store): waits for the one in flight,
    /// snapshots, hands the commit to the background, and with [`Wait::Commit`] waits for it.
    ///
    /// The clock is read twice (the stall's start and end), plus once after waiting for a
    /// previous checkpoint that was still in flight.
    async fn checkpoint(
        &mut self,
        position: SourcePosition,
        wait: Wait,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        let Some(manager) = &self.manager else {
            return Ok(());
        };
        let manager = Arc::clone(manager);
        let started = self.clock.monotonic();
        let mut waited = Duration::ZERO;
        if let Some(mut previous) = self.in_flight.take() {
            let finished = previous.is_finished();
            let outcome = previous.wait().await;
            let seen = if finished {
                started
            } else {
                // Still committing: at most one checkpoint is in flight.
                self.report.checkpoints_waited += 1;
                let now = self.clock.monotonic();
                waited = now.saturating_sub(started);
                now
            };
            self.completed(&previous, outcome, seen, observer)?;
        }
        // What the checkpoint records of the output is in the file (the background makes it
        // durable before the commit).
        let output = self.sink.hand_off().map_err(|e| self.sink.error(e))?;
        let job = Job {
            manager,
            checkpoint: self.snapshot(position)?,
            output,
        };
        let mut in_flight = InFlight::start(job, started, self.engine.events_processed()).await;
        let outcome = match wait {
            Wait::Commit => Some(in_flight.wait().await),
            Wait::HandOff if in_flight.is_finished() => Some(in_flight.wait().await),
            Wait::HandOff => None,
        };
        let now = self.clock.monotonic();
        let took = now.saturating_sub(started);
        self.schedule.taken(now);
        self.report.checkpoint_time += took;
        self.report.max_checkpoint_time = self.report.max_checkpoint_time.max(took);
        in_flight.took = took;
        in_flight.waited = waited;
        in_flight.scheduled = wait == Wait::HandOff;
        match outcome {
            Some(outcome) => self.completed(&in_flight, outcome, now, observer),
            None => {
                self.in_flight = Some(in_flight);
                Ok(())
            }
        }
    }

    /// Reports the checkpoint in flight if it has ended (looked at every [`CLOCK_STRIDE`]
    /// events, so its end is seen soon and a failure stops the run soon).
    async fn poll_in_flight(&mut self, observer: &mut dyn RunObserver) -> Result<(), RunError> {
        let Some(mut done) = self.in_flight.take_if(|f| f.is_finished()) else {
            return Ok(());
        };
        let outcome = done.wait().await;
        let now = self.clock.monotonic();
        self.completed(&done, outcome, now, observer)
    }

    /// Waits for the checkpoint in flight, if any.
    async fn settle(&mut self, observer: &mut dyn RunObserver) -> Result<(), RunError> {
        let Some(mut last) = self.in_flight.take() else {
            return Ok(());
        };
        let outcome = last.wait().await;
        let now = self.clock.monotonic();
        self.completed(&last, outcome, now, observer)
    }

    /// A checkpoint's commit ended, as the loop saw at `seen` (monotonic): counts and reports
    /// it, or returns its error.
    fn completed(
        &mut self,
        checkpoint: &InFlight,
        outcome: Result<CommitReport, RunError>,
        seen: Duration,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        let commit = match outcome {
            Ok(commit) => commit,
            Err(RunError::Checkpoint(error))
                if checkpoint.scheduled
                    && self.failures_in_a_row < self.config.tolerable_checkpoint_failures =>
            {
                self.failures_in_a_row += 1;
                self.report.checkpoints_failed += 1;
                tracing::warn!(
                    error = %varpulis_checkpoint::error_chain(&error),
                    in_a_row = self.failures_in_a_row,
                    tolerated = self.config.tolerable_checkpoint_failures,
                    "checkpoint failed and skipped: the previous one stays the recovery point, \
                     the next is taken on schedule"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.failures_in_a_row = 0;
        self.report.checkpoints += 1;
        let taken = CheckpointTaken {
            id: commit.id,
            took: checkpoint.took,
            waited: checkpoint.waited,
            total: seen.saturating_sub(checkpoint.started).max(checkpoint.took),
            bytes_written: commit.bytes_written(),
            events_processed: checkpoint.events_processed,
        };
        tracing::debug!(
            id = taken.id,
            took_us = taken.took.as_micros() as u64,
            waited_us = taken.waited.as_micros() as u64,
            total_us = taken.total.as_micros() as u64,
            bytes = taken.bytes_written,
            events = taken.events_processed,
            "checkpoint committed"
        );
        observer.checkpointed(&taken);
        Ok(())
    }

    /// What a checkpoint at `position` records: the engine state (a copy, not yet sorted:
    /// the job sorts it), the input's position and identity, and the output's length.
    fn snapshot(&mut self, position: SourcePosition) -> Result<Checkpoint, RunError> {
        let mut cp = Checkpoint::new(self.clock.now_ms());
        match self.barrier.take() {
            None => cp = cp.with_context(CONTEXT, self.engine.create_checkpoint_unsorted()),
            Some(barrier) => barrier.record(&mut cp, self.engine.context_checkpoint()),
        }
        cp.metadata.insert(
            meta::ENGINE_VERSION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        let prefix = position.offset.min(INPUT_PREFIX_BYTES);
        let identity = match &self.input_identity {
            Some(id) if id.prefix_len == prefix => id.clone(),
            _ => self
                .input
                .identity(prefix)
                .and_then(|id| {
                    id.ok_or_else(|| {
                        std::io::Error::other(format!(
                            "it was truncated while being read: it has fewer than the {prefix} \
                             bytes already consumed"
                        ))
                    })
                })
                .map_err(|e| self.input.io_error(e))?,
        };
        InputRecord::write(&mut cp, &self.input, position, &identity);
        if prefix == INPUT_PREFIX_BYTES {
            self.input_identity = Some(identity);
        }
        match &self.sink {
            Sink::File { path, key, .. } => {
                cp.source_offsets.insert(key.clone(), self.output_len);
                cp.metadata
                    .insert(meta::OUTPUT.to_owned(), path.display().to_string());
            }
            // Named (for the message when a file is used next), with no length: a stream is
            // never cut back.
            Sink::Stream { path, .. } => {
                cp.metadata
                    .insert(meta::OUTPUT.to_owned(), path.display().to_string());
            }
            Sink::Stdout(_) => {}
        }
        Ok(cp)
    }
}
