//! The event loop: read, process, write, checkpoint when the schedule says so, and end with a
//! final checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use varpulis_checkpoint::{Checkpoint, CheckpointManager, CheckpointSchedule};
use varpulis_core::Event;
use varpulis_store::StateStore;

use super::output::Sink;
use super::position::{INPUT_PREFIX_BYTES, Input, InputIdentity, InputRecord, meta};
use super::recover::Recovered;
use super::{CheckpointTaken, RunConfig, RunError, RunObserver, RunReport};
use crate::clock::Clock;
use crate::engine::{CONTEXT, Engine};
use crate::output::write_json_line;
use crate::source::{EventFileReader, SourcePosition};

/// Results flushed between two looks at the shutdown flag (and at most held in memory).
const FLUSH_STEP: usize = 4096;
/// Events between two progress callbacks.
const PROGRESS_EVERY: u64 = 4096;

/// How the loop over the input ended.
enum End {
    /// End of input.
    Input,
    /// A shutdown request.
    Shutdown,
    /// A malformed line or an event the engine refused: everything before it is processed;
    /// the checkpoint is taken at `at` (the position before the bad event).
    Error { error: RunError, at: SourcePosition },
}

/// The running state of a run.
pub(super) struct Loop<'a> {
    engine: &'a mut Engine,
    config: &'a RunConfig,
    clock: &'a dyn Clock,
    manager: Option<CheckpointManager<Arc<dyn StateStore>>>,
    schedule: CheckpointSchedule,
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
            manager: recovered.manager,
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
        if self.output_is_new {
            // The output starts (over) now: make the store know it before anything is
            // written, so a crash before the first scheduled checkpoint leaves a checkpoint
            // that owns the output, and the next run resumes instead of refusing an unknown
            // non-empty output.
            self.checkpoint(self.reader.position(), observer).await?;
        }
        let end = self.events(shutdown, observer).await?;
        observer.progress(self.reader.position(), self.file_len);
        let (error, at) = match end {
            End::Input if self.config.flush_at_end => {
                if !self.flush(shutdown)? {
                    // Stopped in the middle of the end-of-input flush: a checkpoint now would
                    // record windows as emitted that the next run could not tell from the
                    // rest. Keep the last checkpoint; the next run cuts the output back to it
                    // and flushes again.
                    self.report.interrupted = true;
                    self.report.flush_interrupted = true;
                    self.sink.sync().map_err(|e| self.sink.error(e))?;
                    return Ok(self.finish(started));
                }
                (None, self.reader.position())
            }
            End::Input => (None, self.reader.position()),
            End::Shutdown => {
                self.report.interrupted = true;
                if !self.config.checkpoint.checkpoint_on_shutdown {
                    // Asked not to: the last checkpoint stands, as after a crash.
                    self.sink.sync().map_err(|e| self.sink.error(e))?;
                    return Ok(self.finish(started));
                }
                (None, self.reader.position())
            }
            End::Error { error, at } => (Some(error), at),
        };
        let recovery = &self.report.recovery;
        let changed = self.schedule.pending() > 0
            || (error.is_none() && !self.report.interrupted && self.config.flush_at_end)
            || recovery.resumed_from.is_none()
            || recovery.previous_input.is_some();
        if changed {
            self.checkpoint(at, observer).await?;
        }
        self.sink.sync().map_err(|e| self.sink.error(e))?;
        match error {
            Some(e) => Err(e),
            None => Ok(self.finish(started)),
        }
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
                return Ok(End::Shutdown);
            }
            let before = self.reader.position();
            let event = match self.reader.next_event() {
                Ok(Some(e)) => e,
                // A signal that arrived while the last line was read still ends the run as
                // interrupted.
                Ok(None) if shutdown.load(Ordering::Relaxed) => return Ok(End::Shutdown),
                Ok(None) => return Ok(End::Input),
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
                self.checkpoint(self.reader.position(), observer).await?;
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
    fn finish(self, started: Duration) -> RunReport {
        let mut report = self.report;
        report.events_processed = self.engine.events_processed();
        report.output_events_emitted = self.engine.output_events_emitted();
        report.late_events_dropped = self.engine.late_events_dropped();
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

    /// Takes a checkpoint at `position` (nothing without a store).
    async fn checkpoint(
        &mut self,
        position: SourcePosition,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        let Some(manager) = &self.manager else {
            return Ok(());
        };
        let started = self.clock.monotonic();
        // The output must be on disk up to the recorded length before the checkpoint commits.
        self.sink.sync().map_err(|e| self.sink.error(e))?;
        let mut cp = Checkpoint::new(self.clock.now_ms())
            .with_context(CONTEXT, self.engine.create_checkpoint());
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
        if let Sink::File { path, key, .. } = &self.sink {
            cp.source_offsets.insert(key.clone(), self.output_len);
            cp.metadata
                .insert(meta::OUTPUT.to_owned(), path.display().to_string());
        }
        let commit = manager.checkpoint(&cp).await?;
        let now = self.clock.monotonic();
        let took = now.saturating_sub(started);
        self.schedule.taken(now);
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
