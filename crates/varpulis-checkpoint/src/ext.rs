//! The seed's checkpoint API on every store, through an extension trait.

use std::collections::HashSet;

use async_trait::async_trait;
use varpulis_store::StateStore;

use crate::manifest::{Layout, PartHash};
use crate::protocol::{self, Manifests, RecoveryMode};
use crate::{Checkpoint, CheckpointConfig, CheckpointError, CommitReport, EngineCheckpoint};

/// Commits `checkpoint` under the next id after every manifest in the store (default prefix).
async fn commit_next<S: StateStore + ?Sized>(
    store: &S,
    checkpoint: &Checkpoint,
    verified: &mut HashSet<PartHash>,
) -> Result<CommitReport, CheckpointError> {
    let layout = default_layout();
    let mut manifests = Manifests::read(store, &layout).await?;
    let next = manifests.last_id().map_or(1, |id| id + 1);
    // Nothing is known of earlier writes: reused parts are flushed before the manifest.
    protocol::commit(
        store,
        &layout,
        checkpoint,
        next,
        verified,
        &mut manifests,
        false,
    )
    .await
}

fn default_layout() -> Layout {
    Layout::new(&CheckpointConfig::default().key_prefix).expect("the default prefix is a valid key")
}

/// Checkpoint helpers for every [`StateStore`] (blanket impl), under the default key prefix
/// `varpulis` (use [`CheckpointManager`](crate::CheckpointManager) for another prefix,
/// retention and timing).
///
/// Every method follows the commit protocol and recovery rules of the crate docs, whatever the
/// store: memory, file, RocksDB, or an encrypted wrapper of any of them.
///
/// # Meaning of `save_checkpoint(ctx, &cp)`
/// `cp` is the [`EngineCheckpoint`] of engine context `ctx`. Saving commits a **new**
/// [`Checkpoint`] with the next id, in which context `ctx` holds `cp` and every other context,
/// the source offsets, the metadata and the timestamp are carried over from the latest valid
/// checkpoint (so several contexts can checkpoint one after the other; unchanged contexts are
/// referenced, not rewritten). It does not prune.
#[async_trait]
pub trait CheckpointStore: StateStore {
    /// Commits a new checkpoint in which context `ctx` holds `cp` (see the trait docs) and returns
    /// its id.
    ///
    /// # Errors
    /// The store's errors; a failed save leaves the previous checkpoints intact.
    async fn save_checkpoint(
        &self,
        ctx: &str,
        cp: &EngineCheckpoint,
    ) -> Result<u64, CheckpointError> {
        let layout = default_layout();
        // The carried-over contexts' parts were just read and verified: not read again.
        let mut verified = HashSet::new();
        let latest =
            protocol::recover_verified(self, &layout, RecoveryMode::Lenient, &mut verified).await?;
        let mut checkpoint = latest.checkpoint.unwrap_or_default();
        checkpoint.context_states.insert(ctx.to_owned(), cp.clone());
        let report = commit_next(self, &checkpoint, &mut verified).await?;
        Ok(report.id)
    }

    /// Commits `checkpoint` as a whole under the next id (its `id` field is ignored).
    ///
    /// # Errors
    /// The store's errors; a failed commit leaves the previous checkpoints intact.
    async fn commit_checkpoint(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<CommitReport, CheckpointError> {
        commit_next(self, checkpoint, &mut HashSet::new()).await
    }

    /// The newest valid checkpoint (invalid newer ones are skipped with a warning).
    ///
    /// # Errors
    /// The store's errors (damaged checkpoints are skipped, not errors).
    async fn load_latest_checkpoint(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(
            protocol::recover(self, &default_layout(), RecoveryMode::Lenient)
                .await?
                .checkpoint,
        )
    }

    /// Checkpoint `id`, `None` if there is no such checkpoint.
    ///
    /// # Errors
    /// [`CheckpointError::Corrupt`], [`CheckpointError::PartMismatch`] or
    /// [`CheckpointError::UnsupportedVersion`] if it is damaged or too new; the store's errors.
    async fn load_checkpoint(&self, id: u64) -> Result<Option<Checkpoint>, CheckpointError> {
        protocol::load(self, &default_layout(), id).await
    }

    /// Ids of the checkpoints present (committed manifests, valid or not), ascending.
    ///
    /// # Errors
    /// The store's errors.
    async fn list_checkpoints(&self) -> Result<Vec<u64>, CheckpointError> {
        protocol::list_ids(self, &default_layout()).await
    }

    /// Keeps the newest `keep` checkpoints (at least one), deletes the others and every part no
    /// remaining checkpoint references. Returns the number of checkpoints deleted.
    ///
    /// # Errors
    /// The store's errors.
    async fn prune_checkpoints(&self, keep: usize) -> Result<usize, CheckpointError> {
        let layout = default_layout();
        let mut manifests = Manifests::read(self, &layout).await?;
        Ok(protocol::prune(
            self,
            &layout,
            keep,
            protocol::Sweep::Full,
            &mut HashSet::new(),
            &mut manifests,
        )
        .await?
        .0
        .manifests_deleted)
    }
}

impl<S: StateStore + ?Sized> CheckpointStore for S {}
