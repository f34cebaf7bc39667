//! The background half of a checkpoint: the output's `fsync`, then the store commit (encoding,
//! hashing, parts, manifest, retention), run beside the event loop while it keeps processing.
//!
//! The loop snapshots what a checkpoint records (the engine state copied but not sorted, the
//! input position, the output length, with the output's bytes up to that length handed to the
//! OS) and passes it here as a [`Job`], which sorts the state into its canonical order (for
//! many partitions, the sort costs more than the copy), syncs and commits; [`InFlight`] is the
//! job until the loop has seen it end. The order inside
//! the job is the exactly-once rule: the output is durable up to the recorded length before the
//! manifest that records it can be (bytes written after the snapshot are cut at recovery).
//!
//! Where the job runs depends on the tokio runtime the run is driven by:
//! - **multi-thread** (the `varpulis` binary): on a thread of the blocking pool, which drives the
//!   commit future to its end. The loop's thread only pays for the snapshot, whether the loop
//!   runs in `block_on` or in a task on a worker.
//! - **current-thread** (the tests): as a task of that runtime. It can only run when the loop
//!   yields, so the loop yields once after the hand-off: a store that never blocks (the
//!   in-memory and fault-injecting stores) commits right there, before the next event, as a
//!   synchronous checkpoint would; a store that blocks (the file store's blocking-pool calls)
//!   goes on when the loop next waits for it. Both are deterministic: no second thread runs.
//! - **no runtime**: the job runs to its end at the hand-off.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;
use varpulis_checkpoint::{Checkpoint, CheckpointError, CheckpointManager, CommitReport};
use varpulis_store::{StateStore, StoreError};

use super::RunError;
use crate::engine::sort_checkpoint;

/// The output file a checkpoint covers, to make durable before the commit.
pub(super) struct DurableOutput {
    /// A second handle on the output's open file (`fsync` of any handle syncs the file).
    pub(super) file: Arc<File>,
    /// Its path, for the error.
    pub(super) path: PathBuf,
}

/// What the background does for one checkpoint.
pub(super) struct Job {
    pub(super) manager: Arc<CheckpointManager<Arc<dyn StateStore>>>,
    /// The snapshot (owned: the loop goes on changing its state), its engine states as
    /// `Engine::create_checkpoint_unsorted` leaves them.
    pub(super) checkpoint: Checkpoint,
    /// The output to sync first (`None`: stdout or a stream, at least once, nothing to sync).
    pub(super) output: Option<DurableOutput>,
}

type Outcome = Result<CommitReport, RunError>;

impl Job {
    /// Sorts the snapshot, syncs the output, then commits. The errors are the ones a
    /// synchronous checkpoint had.
    async fn run(mut self) -> Outcome {
        for state in self.checkpoint.context_states.values_mut() {
            sort_checkpoint(state);
        }
        if let Some(out) = &self.output {
            // The output must be on disk up to the recorded length before the checkpoint
            // commits.
            out.file.sync_data().map_err(|source| RunError::Output {
                path: out.path.clone(),
                source,
            })?;
        }
        // The snapshot (up to the whole state) is freed at the end of this, off the loop too.
        Ok(self.manager.checkpoint(&self.checkpoint).await?)
    }
}

enum Task {
    Spawned(JoinHandle<Outcome>),
    /// Ran to its end at the hand-off (no runtime); taken by [`InFlight::wait`].
    Done(Option<Outcome>),
}

/// A checkpoint handed to the background that the loop has not yet seen end.
///
/// Dropping it (the run's future dropped mid-way) aborts a job that has not started; a commit
/// under way finishes on its own, which the protocol allows (the manifest is the commit point).
pub(super) struct InFlight {
    task: Task,
    /// Monotonic time its stall began.
    pub(super) started: Duration,
    /// The loop's stall for it (set at the end of the hand-off).
    pub(super) took: Duration,
    /// Of `took`, the time spent waiting for the previous checkpoint.
    pub(super) waited: Duration,
    /// Input events processed when it was taken.
    pub(super) events_processed: u64,
    /// A scheduled checkpoint: its store failure may be tolerated
    /// (`RunConfig::tolerable_checkpoint_failures`).
    pub(super) scheduled: bool,
}

impl InFlight {
    /// Hands `job` to the background (see the module docs for where it runs).
    pub(super) async fn start(job: Job, started: Duration, events_processed: u64) -> Self {
        let task = match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                let task = handle.spawn(job.run());
                // Let the runtime's one thread run it as far as it goes without blocking.
                tokio::task::yield_now().await;
                Task::Spawned(task)
            }
            Ok(handle) => {
                let driver = handle.clone();
                Task::Spawned(handle.spawn_blocking(move || driver.block_on(job.run())))
            }
            Err(_) => Task::Done(Some(job.run().await)),
        };
        Self {
            task,
            started,
            took: Duration::ZERO,
            waited: Duration::ZERO,
            events_processed,
            scheduled: false,
        }
    }

    /// Whether the job has ended (then [`wait`](Self::wait) returns at once).
    pub(super) fn is_finished(&self) -> bool {
        match &self.task {
            Task::Spawned(task) => task.is_finished(),
            Task::Done(_) => true,
        }
    }

    /// Waits for the job's end and returns what it committed.
    ///
    /// # Panics
    /// If the job panicked (the panic is resumed here, on the loop's side), or if called twice.
    pub(super) async fn wait(&mut self) -> Outcome {
        match &mut self.task {
            Task::Spawned(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only a runtime shutting down cancels it.
                Err(_) => Err(RunError::Checkpoint(CheckpointError::Store(
                    StoreError::Unavailable {
                        reason: "the checkpoint was cancelled: the runtime is shutting down"
                            .to_owned(),
                    },
                ))),
            },
            Task::Done(outcome) => outcome.take().expect("waited for once"),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Task::Spawned(task) = &self.task {
            task.abort();
        }
    }
}
