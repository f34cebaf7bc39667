//! Periodic checkpoints with retention, and recovery at start.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use varpulis_store::StateStore;

use crate::manifest::{Layout, PartHash};
use crate::protocol::{self, Collected, CommitCtx, Manifests, RecoveryMode, Stored};
use crate::{
    Checkpoint, CheckpointConfig, CheckpointError, CheckpointSchedule, CommitReport, PruneReport,
    Recovery,
};

/// What the manager knows about the parts in its store.
#[derive(Debug)]
struct CommitState {
    /// Parts this manager wrote or read back intact (see `protocol::commit`).
    verified: HashSet<PartHash>,
    /// Whether retention must list every part (at the first retention after open, which may
    /// find parts an earlier process left behind, and after a commit or retention that failed
    /// or was cancelled) instead of deleting only the parts of the manifests it deletes.
    /// Cleared once a full sweep ran.
    sweep_pending: bool,
    /// Whether everything this manager's commits wrote is durable: its last commit ended with a
    /// successful flush. False at first (an earlier process may have crashed before flushing)
    /// and after a commit that failed or was cancelled.
    stored_durable: bool,
}

impl CommitState {
    /// Marks the store as possibly holding unflushed writes and unreferenced parts, as a
    /// commit or retention that fails or is cancelled (its future dropped) midway leaves it.
    /// Returns what was known before; the caller restores it once the operation succeeded.
    fn begin(&mut self) -> (bool, bool) {
        let durable = std::mem::replace(&mut self.stored_durable, false);
        let pending = std::mem::replace(&mut self.sweep_pending, true);
        (durable, pending)
    }

    /// `sweep_pending` after a successful retention, given its value before.
    fn after_retention(&mut self, collected: Collected, pending_before: bool) {
        self.sweep_pending = match collected {
            Collected::All => false,
            Collected::OfDeletedManifests => pending_before,
            Collected::Nothing => true,
        };
    }
}

/// Whether a commit applies retention after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retention {
    /// Keep the newest [`max_checkpoints`](CheckpointConfig::max_checkpoints) (what
    /// [`CheckpointManager::checkpoint`] does).
    Apply,
    /// Keep every checkpoint (what [`CheckpointStore`](crate::CheckpointStore) does):
    /// `pruned` is `None` in the report.
    Skip,
}

#[derive(Debug, Default)]
struct Progress {
    /// Lower bound for the next id: above every id this manager attempted.
    next_id: u64,
}

/// Takes checkpoints of an engine into a store, keeps the newest
/// [`max_checkpoints`](CheckpointConfig::max_checkpoints), and recovers the newest valid one.
///
/// One manager is the single writer of its key prefix. It never reads a clock: checkpoints
/// carry the caller's `timestamp_ms`, and when to take one is decided by a
/// [`CheckpointSchedule`](crate::CheckpointSchedule) over
/// [`CheckpointConfig::every`](CheckpointConfig::every) (see [`schedule`](Self::schedule)).
#[derive(Debug)]
pub struct CheckpointManager<S> {
    store: S,
    config: CheckpointConfig,
    layout: Layout,
    /// Serializes commits, retention and recovery of this manager, and holds what it knows of
    /// the parts in the store.
    commit_lock: tokio::sync::Mutex<CommitState>,
    progress: Mutex<Progress>,
}

impl<S: StateStore> CheckpointManager<S> {
    /// A manager over `store` with `config`.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidConfig`] if `config.key_prefix` is not a valid key.
    pub fn new(store: S, config: CheckpointConfig) -> Result<Self, CheckpointError> {
        let layout =
            Layout::new(&config.key_prefix).map_err(|e| CheckpointError::InvalidConfig {
                reason: format!("key_prefix {:?}: {e}", config.key_prefix),
            })?;
        Ok(Self {
            store,
            config,
            layout,
            commit_lock: tokio::sync::Mutex::new(CommitState {
                verified: HashSet::new(),
                sweep_pending: true,
                stored_durable: false,
            }),
            progress: Mutex::new(Progress::default()),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        // Progress is one plain number, updated in single assignments: never half-updated.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A schedule of this manager's [`CheckpointConfig::every`](CheckpointConfig::every), starting at `now` on the
    /// caller's monotonic clock.
    pub fn schedule(&self, now: std::time::Duration) -> CheckpointSchedule {
        CheckpointSchedule::new(self.config.every(), now)
    }

    /// Commits `checkpoint` under the next id, then applies retention.
    ///
    /// The id is assigned here (the `id` field is ignored; the report and a later load carry the
    /// assigned one): strictly greater than every id present in the store or attempted by this
    /// manager, so ids keep increasing across restarts and past corrupt or failed checkpoints.
    /// `timestamp_ms` is kept as given. The state is only borrowed: encoding it is the whole
    /// cost, nothing is cloned.
    ///
    /// # Errors
    /// The store's errors while committing; the previous checkpoints stay intact. A failure of
    /// retention after a successful commit is logged, reported as `pruned: None`, and retried by
    /// the next checkpoint.
    pub async fn checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<CommitReport, CheckpointError> {
        self.commit(checkpoint, Retention::Apply).await
    }

    /// [`checkpoint`](Self::checkpoint), with or without the retention after the commit.
    pub(crate) async fn commit(
        &self,
        checkpoint: &Checkpoint,
        retention: Retention,
    ) -> Result<CommitReport, CheckpointError> {
        let mut state = self.commit_lock.lock().await;
        // One view of the manifests serves the id, the commit and the retention after it.
        let mut manifests = Manifests::read(&self.store, &self.layout).await?;
        let id = {
            let mut progress = self.progress();
            let id = progress
                .next_id
                .max(manifests.last_id().map_or(1, |last| last + 1))
                .max(1);
            progress.next_id = id + 1;
            id
        };
        // Until this commit and its retention succeed, assume the worst (see `begin`).
        let (stored_durable, sweep_pending) = state.begin();
        let stored = if stored_durable {
            Stored::Durable
        } else {
            Stored::MaybeUnflushed
        };
        let state = &mut *state;
        let mut ctx = CommitCtx {
            store: &self.store,
            layout: &self.layout,
            verified: &mut state.verified,
            manifests: &mut manifests,
        };
        let mut report = protocol::commit(&mut ctx, checkpoint, id, stored).await?;
        // Everything written so far is flushed.
        state.stored_durable = true;
        if retention == Retention::Skip {
            // The commit left no unreferenced part behind: what was known of the store holds.
            state.sweep_pending = sweep_pending;
            return Ok(report);
        }
        let sweep = if sweep_pending {
            protocol::Sweep::Full
        } else {
            protocol::Sweep::Referenced
        };
        match protocol::prune(&mut ctx, self.config.max_checkpoints, sweep).await {
            Ok((pruned, collected)) => {
                report.pruned = Some(pruned);
                state.after_retention(collected, sweep_pending);
            }
            // `sweep_pending` stays set: the next retention lists every part.
            Err(err) => tracing::warn!("checkpoint {id} committed, retention failed: {err}"),
        }
        Ok(report)
    }

    /// Recovers the newest valid checkpoint, skipping (with a warning each) newer ones that are
    /// missing parts, truncated, fail a checksum, fail to decrypt or are of a newer format.
    ///
    /// # Errors
    /// Only the store's errors (I/O, backend, unavailable): damaged checkpoints are skipped and
    /// listed in [`Recovery::skipped`].
    pub async fn recover(&self) -> Result<Recovery, CheckpointError> {
        self.recover_with(RecoveryMode::Lenient).await
    }

    /// Like [`recover`](Self::recover), but fails with [`CheckpointError::RecoveryRefused`]
    /// instead of skipping any checkpoint.
    ///
    /// # Errors
    /// [`CheckpointError::RecoveryRefused`], or the store's errors.
    pub async fn recover_strict(&self) -> Result<Recovery, CheckpointError> {
        self.recover_with(RecoveryMode::Strict).await
    }

    async fn recover_with(&self, mode: RecoveryMode) -> Result<Recovery, CheckpointError> {
        let mut state = self.commit_lock.lock().await;
        // One listing serves the next id and the recovery.
        let listed = protocol::list_ids(&self.store, &self.layout).await?;
        {
            let mut progress = self.progress();
            progress.next_id = progress.next_id.max(listed.last().map_or(1, |l| l + 1));
        }
        // The recovered checkpoint's parts were read back and verified: the next commit
        // references the unchanged ones without reading them again.
        let recovery = protocol::recover_from(
            &self.store,
            &self.layout,
            &listed,
            mode,
            &mut state.verified,
        )
        .await?;
        Ok(recovery)
    }

    /// Checkpoint `id`, `None` if absent.
    ///
    /// # Errors
    /// Corruption, version or store errors.
    pub async fn load_checkpoint(&self, id: u64) -> Result<Option<Checkpoint>, CheckpointError> {
        protocol::load(&self.store, &self.layout, id).await
    }

    /// Ids of the checkpoints present, ascending.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn list_checkpoints(&self) -> Result<Vec<u64>, CheckpointError> {
        protocol::list_ids(&self.store, &self.layout).await
    }

    /// Applies retention now, keeping `keep` checkpoints (at least one).
    ///
    /// # Errors
    /// The store's errors.
    pub async fn prune(&self, keep: usize) -> Result<PruneReport, CheckpointError> {
        let mut state = self.commit_lock.lock().await;
        let state = &mut *state;
        let mut manifests = Manifests::read(&self.store, &self.layout).await?;
        // Until it succeeds, assume it left parts behind (also if cancelled).
        let sweep_pending = std::mem::replace(&mut state.sweep_pending, true);
        let mut ctx = CommitCtx {
            store: &self.store,
            layout: &self.layout,
            verified: &mut state.verified,
            manifests: &mut manifests,
        };
        let pruned = protocol::prune(&mut ctx, keep, protocol::Sweep::Full).await;
        let (report, collected) = pruned?;
        state.after_retention(collected, sweep_pending);
        Ok(report)
    }
}
