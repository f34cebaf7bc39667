//! Retention: delete the oldest manifests, then the parts no kept manifest references.

use std::collections::HashSet;

use varpulis_store::{Key, StateStore, WriteBatch};

use super::{CommitCtx, ManifestRefs, PruneReport};
use crate::CheckpointError;

/// What retention did with the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collected {
    /// Every part no kept manifest references is gone, also those earlier failures left.
    All,
    /// The parts of the manifests deleted now are gone (earlier leftovers may remain).
    OfDeletedManifests,
    /// Nothing was collected (a kept manifest's references are unknown): the parts of the
    /// manifests deleted now remain until a full sweep.
    Nothing,
}

/// How retention finds the parts to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// List every part in the store and delete the ones no kept manifest references: also
    /// removes parts a failed or crashed commit left without a manifest.
    Full,
    /// Delete only the parts the deleted manifests referenced and no kept manifest does; no
    /// listing. Falls back to [`Sweep::Full`] when a deleted manifest could not be read.
    Referenced,
}

/// Keeps the newest `keep` manifests (at least one), then deletes the parts no kept manifest
/// references, found as `sweep` says. Works from `ctx.manifests` (the store's, as read before)
/// and updates it; `ctx.verified` keeps only hashes of parts still referenced.
///
/// No manifest that survives a crash can reference a deleted part: on a store with atomic
/// batches the manifests and their parts go in one batch; otherwise the manifests go first,
/// durably (a `flush` follows unless the store has ordered durability). While a
/// kept manifest's references are unknown ([`ManifestRefs::Unknown`]), no part is deleted. The
/// second value says what happened to the parts (see [`Collected`]).
pub(crate) async fn prune<S: StateStore + ?Sized>(
    ctx: &mut CommitCtx<'_, S>,
    keep: usize,
    sweep: Sweep,
) -> Result<(PruneReport, Collected), CheckpointError> {
    let (store, layout) = (ctx.store, ctx.layout);
    let verified = &mut *ctx.verified;
    let manifests = &mut *ctx.manifests;
    let ids = manifests.ids();
    let (doomed, kept) = ids.split_at(ids.len().saturating_sub(keep.max(1)));
    let mut sweep = sweep;
    if doomed
        .iter()
        .any(|id| !matches!(manifests.entries[id], ManifestRefs::Parts(_)))
    {
        sweep = Sweep::Full;
    }
    let doomed_refs = manifests.referenced(doomed.iter().copied());
    let live = manifests.referenced(kept.iter().copied());
    let unknown = kept.iter().find_map(|id| match &manifests.entries[id] {
        ManifestRefs::Unknown { key, reason } => Some(format!("{key}: {reason}")),
        _ => None,
    });
    let mut manifest_deletes = WriteBatch::new();
    for &id in doomed {
        manifest_deletes.delete(layout.manifest_key(id));
    }
    let mut part_deletes = WriteBatch::new();
    if unknown.is_none() {
        let candidates: Vec<Key> = match sweep {
            Sweep::Full => store.list(layout.parts()).await?,
            Sweep::Referenced => doomed_refs.iter().map(|h| layout.part_key(h)).collect(),
        };
        let live_keys: HashSet<Key> = live.iter().map(|h| layout.part_key(h)).collect();
        for key in candidates {
            if !live_keys.contains(&key) {
                part_deletes.delete(key);
            }
        }
    }
    let report = PruneReport {
        manifests_deleted: manifest_deletes.len(),
        parts_deleted: part_deletes.len(),
    };
    // A manifest must never outlive a part it references, also across a power loss.
    let caps = store.capabilities();
    if caps.atomic_batch {
        // One batch: manifests and their parts go together or not at all.
        let mut batch = manifest_deletes;
        for op in part_deletes.into_ops() {
            batch.delete(op.key().clone());
        }
        if !batch.is_empty() {
            store.write_batch(batch).await?;
        }
    } else {
        if !manifest_deletes.is_empty() {
            store.write_batch(manifest_deletes).await?;
        }
        if !part_deletes.is_empty() {
            // The manifest deletions are durable before a part they referenced goes.
            if report.manifests_deleted > 0 && !caps.ordered_durability {
                store.flush().await?;
            }
            store.write_batch(part_deletes).await?;
        }
    }
    for id in doomed {
        manifests.entries.remove(id);
    }
    if let Some(unknown) = unknown {
        tracing::warn!("not collecting checkpoint parts while {unknown} is kept");
        return Ok((report, Collected::Nothing));
    }
    verified.retain(|hash| live.contains(hash));
    let collected = match sweep {
        Sweep::Full => Collected::All,
        Sweep::Referenced => Collected::OfDeletedManifests,
    };
    Ok((report, collected))
}
