//! The commit protocol, loading, recovery and retention, on any [`StateStore`].
//!
//! Commit ([`commit`](commit::commit)): encode every part -> write the parts the store does
//! not hold yet -> write the manifest (the commit point) so that it cannot be durable without
//! them (in the parts' last batch on a store with atomic batches, else after a `flush` unless
//! the store makes writes durable in order) -> `flush`. Retention ([`prune`](prune::prune))
//! then deletes the oldest manifests and every part no remaining manifest references. Recovery
//! ([`recover`]) tries manifests newest first. See `docs/design/state-format.md`.
//!
//! This module holds what the phases share: the reports, the recovery outcome, the view of the
//! store's manifests ([`Manifests`]) and the context a commit and its retention work in
//! ([`CommitCtx`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use varpulis_store::StateStore;

use crate::manifest::{Layout, PartHash};
use crate::{Checkpoint, CheckpointError, error_chain};

mod commit;
mod prune;
mod recover;

pub use commit::encoded_size;
pub(crate) use commit::{Stored, commit};
pub(crate) use prune::{Collected, Sweep, prune};
pub(crate) use recover::{list_ids, load, read_manifest, recover_from};

/// What a commit and the retention after it work on: the store, its layout, and what the
/// caller knows of the store's parts and manifests (both updated as they go).
pub(crate) struct CommitCtx<'a, S: ?Sized> {
    /// The store.
    pub(crate) store: &'a S,
    /// Where the checkpoint keys live.
    pub(crate) layout: &'a Layout,
    /// Hashes of the parts known to be intact in the store (written or read back by this
    /// process). Commit adds the parts it writes or verifies; retention keeps only the hashes
    /// of parts still referenced.
    pub(crate) verified: &'a mut HashSet<PartHash>,
    /// The store's manifests as read before; commit adds the new one, retention removes the
    /// ones it deletes.
    pub(crate) manifests: &'a mut Manifests,
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CommitReport {
    /// The id of the committed checkpoint.
    pub id: u64,
    /// Parts the checkpoint references (distinct).
    pub parts_total: usize,
    /// Parts written by this commit (the others were already in the store).
    pub parts_written: usize,
    /// Bytes of parts written by this commit.
    pub part_bytes_written: u64,
    /// Bytes of every part the checkpoint references (what a full checkpoint would write).
    pub part_bytes_total: u64,
    /// Bytes of the manifest.
    pub manifest_bytes: u64,
    /// What retention removed afterwards (`None` if retention did not run or failed; a failed
    /// retention does not undo the commit and is retried by the next one).
    pub pruned: Option<PruneReport>,
}

impl CommitReport {
    /// Bytes this commit wrote (new parts and the manifest).
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.part_bytes_written + self.manifest_bytes
    }

    /// Bytes a full, non-incremental write of the checkpoint takes (all parts and the manifest).
    #[must_use]
    pub fn bytes_total(&self) -> u64 {
        self.part_bytes_total + self.manifest_bytes
    }
}

/// What retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PruneReport {
    /// Manifests deleted (oldest first).
    pub manifests_deleted: usize,
    /// Parts deleted because no remaining manifest references them.
    pub parts_deleted: usize,
}

/// A checkpoint that recovery skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCheckpoint {
    /// Its id.
    pub id: u64,
    /// The key of the blob that failed (the manifest or one of its parts).
    pub key: String,
    /// What was wrong, with the full error chain.
    pub reason: String,
}

impl fmt::Display for SkippedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint {} ({}): {}", self.id, self.key, self.reason)
    }
}

/// The outcome of recovery: the newest valid checkpoint, and every newer one that was skipped.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// The newest valid checkpoint, `None` if the store holds none.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that were invalid, newest first.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// Whether recovery may fall back past invalid checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Skip invalid checkpoints (with a warning) and return the newest valid one.
    #[default]
    Lenient,
    /// Fail with [`CheckpointError::RecoveryRefused`] instead of skipping anything.
    Strict,
}

/// What one manifest references.
#[derive(Debug, Clone)]
pub(crate) enum ManifestRefs {
    /// The hashes of its parts.
    Parts(HashSet<PartHash>),
    /// It does not decode (damaged): it is not a checkpoint, and it protects nothing.
    Unreadable,
    /// It may reference anything: written by a newer format version, or the store failed to
    /// read it. While it is kept, retention deletes no part. Holds its key and why.
    Unknown {
        /// The manifest's key.
        key: String,
        /// Why its references are unknown.
        reason: String,
    },
}

/// The manifests in a store and what each references: the view that a commit and the retention
/// after it share, read once per checkpoint (a listing of the manifests and one small read each).
#[derive(Debug, Clone, Default)]
pub(crate) struct Manifests {
    entries: BTreeMap<u64, ManifestRefs>,
}

impl Manifests {
    /// Lists and reads the manifests. A manifest that does not decode is
    /// [`ManifestRefs::Unreadable`]; one from a newer format version, or one the store fails to
    /// read, is [`ManifestRefs::Unknown`] (a checkpoint still goes ahead: it just cannot reuse
    /// that manifest's parts, and retention keeps every part while it is there). Failing to
    /// list the manifests is an error.
    pub(crate) async fn read<S: StateStore + ?Sized>(
        store: &S,
        layout: &Layout,
    ) -> Result<Self, CheckpointError> {
        let mut entries = BTreeMap::new();
        for id in list_ids(store, layout).await? {
            let refs = match read_manifest(store, layout, id).await {
                Ok(Some(manifest)) => {
                    ManifestRefs::Parts(manifest.refs().map(|r| r.hash).collect())
                }
                // Listed but gone: deleted meanwhile.
                Ok(None) => continue,
                Err(CheckpointError::UnsupportedVersion { key, found, .. }) => {
                    ManifestRefs::Unknown {
                        key,
                        reason: format!("format version {found} is newer than this release"),
                    }
                }
                Err(err) if err.is_invalid_checkpoint() => ManifestRefs::Unreadable,
                Err(err) => {
                    let key = layout.manifest_key(id).to_string();
                    tracing::warn!("cannot read checkpoint manifest {key}: {err}");
                    ManifestRefs::Unknown {
                        key,
                        reason: error_chain(&err),
                    }
                }
            };
            entries.insert(id, refs);
        }
        Ok(Self { entries })
    }

    /// Ids present, ascending.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.entries.keys().copied().collect()
    }

    /// The newest id present.
    pub(crate) fn last_id(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    /// Hashes referenced by the readable manifests among `ids`.
    fn referenced(&self, ids: impl IntoIterator<Item = u64>) -> HashSet<PartHash> {
        let mut out = HashSet::new();
        for id in ids {
            if let Some(ManifestRefs::Parts(parts)) = self.entries.get(&id) {
                out.extend(parts.iter().copied());
            }
        }
        out
    }
}
