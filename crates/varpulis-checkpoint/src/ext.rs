//! The seed's checkpoint API on every store, through an extension trait: a thin layer over
//! [`CheckpointManager`], as `ObjectStoreExt` is over `ObjectStore`.

use async_trait::async_trait;
use varpulis_store::{Capabilities, Key, StateStore, StoreError, WriteBatch};

use crate::manager::Retention;
use crate::{
    Checkpoint, CheckpointConfig, CheckpointError, CheckpointManager, CommitReport,
    EngineCheckpoint,
};

/// A borrowed store, as a store: what a [`CheckpointManager`] built for one call owns.
struct Borrowed<'a, S: ?Sized>(&'a S);

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: StateStore + ?Sized> StateStore for Borrowed<'_, S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.0.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.0.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.0.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// A manager over `store` with the default configuration (prefix `varpulis`), new for one call:
/// it knows nothing of earlier writes (reused parts are flushed before the manifest) and assigns
/// the next id after every manifest present.
fn manager<S: StateStore + ?Sized>(store: &S) -> CheckpointManager<Borrowed<'_, S>> {
    CheckpointManager::new(Borrowed(store), CheckpointConfig::default())
        .expect("the default prefix is a valid key")
}

/// Checkpoint helpers for every [`StateStore`] (blanket impl), under the default key prefix
/// `varpulis` (use [`CheckpointManager`](crate::CheckpointManager) for another prefix,
/// retention and timing).
///
/// Every method follows the commit protocol and recovery rules of the crate docs, whatever the
/// store: memory, file, RocksDB, or an encrypted wrapper of any of them. Each is a thin layer
/// over a [`CheckpointManager`] with the default configuration, built over the borrowed store
/// for the one call: there is one implementation of the protocol (the manager's), and this
/// trait only chooses the calls (no retention after a commit, ids after every manifest present).
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
        let manager = manager(self);
        // The carried-over contexts' parts were just read and verified: not read again.
        let mut checkpoint = manager.recover().await?.checkpoint.unwrap_or_default();
        checkpoint.context_states.insert(ctx.to_owned(), cp.clone());
        let report = manager.commit(&checkpoint, Retention::Skip).await?;
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
        manager(self).commit(checkpoint, Retention::Skip).await
    }

    /// The newest valid checkpoint (invalid newer ones are skipped with a warning).
    ///
    /// # Errors
    /// The store's errors (damaged checkpoints are skipped, not errors).
    async fn load_latest_checkpoint(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(manager(self).recover().await?.checkpoint)
    }

    /// Checkpoint `id`, `None` if there is no such checkpoint.
    ///
    /// # Errors
    /// [`CheckpointError::Corrupt`], [`CheckpointError::PartMismatch`] or
    /// [`CheckpointError::UnsupportedVersion`] if it is damaged or too new; the store's errors.
    async fn load_checkpoint(&self, id: u64) -> Result<Option<Checkpoint>, CheckpointError> {
        manager(self).load_checkpoint(id).await
    }

    /// Ids of the checkpoints present (committed manifests, valid or not), ascending.
    ///
    /// # Errors
    /// The store's errors.
    async fn list_checkpoints(&self) -> Result<Vec<u64>, CheckpointError> {
        manager(self).list_checkpoints().await
    }

    /// Keeps the newest `keep` checkpoints (at least one), deletes the others and every part no
    /// remaining checkpoint references. Returns the number of checkpoints deleted.
    ///
    /// # Errors
    /// The store's errors.
    async fn prune_checkpoints(&self, keep: usize) -> Result<usize, CheckpointError> {
        Ok(manager(self).prune(keep).await?.manifests_deleted)
    }
}

impl<S: StateStore + ?Sized> CheckpointStore for S {}
