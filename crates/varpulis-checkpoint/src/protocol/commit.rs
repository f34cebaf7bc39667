//! Commit: the parts and manifest of a checkpoint, and writing them (parts first, the manifest
//! last).

use std::collections::HashSet;

use serde::Serialize;
use varpulis_store::{Key, StateStore, StoreError, WriteBatch};

use super::{CommitCtx, CommitReport, ManifestRefs};
use crate::codec::{self, BlobKind};
use crate::manifest::{ContextEntry, EngineCoreRef, Manifest, PartRef, part_hash};
use crate::{
    Checkpoint, CheckpointError, EngineCheckpoint, JoinCheckpoint, JoinOperatorCheckpoint,
    PatternCheckpoint, SaseCheckpoint, WindowCheckpoint,
};

/// Whether everything already in the store is durable when a commit starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The caller's last commit ended with a successful `flush`.
    Durable,
    /// Writes may be unflushed (first commit of a process, or after a failed or cancelled one).
    MaybeUnflushed,
}

/// New parts are written in batches of about this many bytes: few store operations (a file
/// store fsyncs each directory once per batch, RocksDB writes its log once), while a large
/// checkpoint is encoded and written a batch at a time instead of being held encoded whole.
const PART_BATCH_BYTES: usize = 8 << 20;

/// One part's value, borrowed from the checkpoint.
enum PartValue<'a> {
    Core(EngineCoreRef<'a>),
    Window(&'a WindowCheckpoint),
    Sase(&'a SaseCheckpoint),
    Join(&'a JoinCheckpoint),
    Pattern(&'a PatternCheckpoint),
    JoinOperator(&'a JoinOperatorCheckpoint),
}

impl Serialize for PartValue<'_> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        match self {
            Self::Core(v) => v.serialize(s),
            Self::Window(v) => v.serialize(s),
            Self::Sase(v) => v.serialize(s),
            Self::Join(v) => v.serialize(s),
            Self::Pattern(v) => v.serialize(s),
            Self::JoinOperator(v) => v.serialize(s),
        }
    }
}

/// Contexts in manifest order (sorted by name).
fn contexts_of(cp: &Checkpoint) -> Vec<(&String, &EngineCheckpoint)> {
    let mut contexts: Vec<_> = cp.context_states.iter().collect();
    contexts.sort_unstable_by_key(|(name, _)| *name);
    contexts
}

/// Whether a context's engine state has the version-2 operator maps (`pattern_states`,
/// `join_operator_states`) in its manifest's `sase` and `joins` lists, rather than the seed's
/// (`sase_states`, `join_states`): decided by its version, as recovery decides from the core
/// part.
pub(crate) fn operator_maps_v2(version: u32) -> bool {
    version >= 2
}

/// Refuses a state whose operator maps do not fit its version: the maps of the other version
/// would not be written.
fn check_versions(cp: &Checkpoint) -> Result<(), CheckpointError> {
    for (name, engine) in contexts_of(cp) {
        let (unwritten, what) = if operator_maps_v2(engine.version) {
            (
                !engine.sase_states.is_empty() || !engine.join_states.is_empty(),
                "the seed's sase_states or join_states (format 1 only)",
            )
        } else {
            (
                !engine.pattern_states.is_empty() || !engine.join_operator_states.is_empty(),
                "pattern_states or join_operator_states (format 2 and later)",
            )
        };
        if unwritten {
            return Err(CheckpointError::InvalidState {
                reason: format!(
                    "context {name:?} of version {} holds {what}",
                    engine.version
                ),
            });
        }
    }
    Ok(())
}

/// Every part of `cp`, in manifest order: per context, the engine core, then the window,
/// pattern and join states in key order (version 1: the seed's SASE and join states).
/// [`manifest_of`] consumes part references in this order.
fn parts_of(cp: &Checkpoint) -> Result<Vec<PartValue<'_>>, CheckpointError> {
    check_versions(cp)?;
    let mut parts = Vec::new();
    for (_, engine) in contexts_of(cp) {
        parts.push(PartValue::Core(EngineCoreRef {
            version: engine.version,
            variables: &engine.variables,
            watermark_state: &engine.watermark_state,
            events_processed: engine.events_processed,
            output_events_emitted: engine.output_events_emitted,
        }));
        parts.extend(engine.window_states.values().map(PartValue::Window));
        if operator_maps_v2(engine.version) {
            parts.extend(engine.pattern_states.values().map(PartValue::Pattern));
            parts.extend(
                engine
                    .join_operator_states
                    .values()
                    .map(PartValue::JoinOperator),
            );
        } else {
            parts.extend(engine.sase_states.values().map(PartValue::Sase));
            parts.extend(engine.join_states.values().map(PartValue::Join));
        }
    }
    Ok(parts)
}

/// The manifest of `cp` as checkpoint `id`, given the references of [`parts_of`] in order.
fn manifest_of(cp: &Checkpoint, id: u64, refs: &[PartRef]) -> Manifest {
    fn named<'a>(
        refs: &mut impl Iterator<Item = PartRef>,
        names: impl Iterator<Item = &'a String>,
    ) -> Vec<(String, PartRef)> {
        names
            .map(|name| (name.clone(), refs.next().expect("one reference per part")))
            .collect()
    }
    let mut refs = refs.iter().copied();
    let contexts = contexts_of(cp)
        .into_iter()
        .map(|(name, engine)| {
            let core = refs.next().expect("one reference per part");
            let windows = named(&mut refs, engine.window_states.keys());
            let (sase, joins) = if operator_maps_v2(engine.version) {
                (
                    named(&mut refs, engine.pattern_states.keys()),
                    named(&mut refs, engine.join_operator_states.keys()),
                )
            } else {
                (
                    named(&mut refs, engine.sase_states.keys()),
                    named(&mut refs, engine.join_states.keys()),
                )
            };
            ContextEntry {
                name: name.clone(),
                core,
                windows,
                sase,
                joins,
            }
        })
        .collect();
    Manifest {
        id,
        timestamp_ms: cp.timestamp_ms,
        contexts,
        source_offsets: cp.source_offsets.clone(),
        metadata: cp.metadata.clone(),
    }
}

fn encode_part(value: &PartValue<'_>) -> Result<(PartRef, Vec<u8>), CheckpointError> {
    let blob = codec::encode(BlobKind::Part, value)
        .map_err(|source| CheckpointError::codec("<new part>", source))?;
    let part = PartRef {
        hash: part_hash(&blob),
        len: blob.len() as u64,
    };
    Ok((part, blob))
}

/// Bytes of `cp` as the protocol would store it: every distinct part plus the manifest.
///
/// # Errors
/// [`CheckpointError::Corrupt`] if a value cannot be encoded.
pub fn encoded_size(cp: &Checkpoint) -> Result<u64, CheckpointError> {
    let mut seen = HashSet::new();
    let mut refs = Vec::new();
    let mut total = 0;
    for value in parts_of(cp)? {
        let (part, _) = encode_part(&value)?;
        if seen.insert(part.hash) {
            total += part.len;
        }
        refs.push(part);
    }
    let manifest = codec::encode(BlobKind::Manifest, &manifest_of(cp, cp.id, &refs))
        .map_err(|source| CheckpointError::codec("<manifest>", source))?;
    Ok(total + manifest.len() as u64)
}

/// Writes `cp` as checkpoint `id` (its own `id` field is ignored): parts first, manifest last.
/// `ctx.manifests` is the store's manifests as read before; the new one is added once
/// committed.
///
/// Content addressing: a part already in the store has exactly these bytes (its key is their
/// hash), so it is referenced, not rewritten. The parts known to be there are the ones the
/// manifests reference (retention never deletes those); the manifests are small, where listing
/// the parts can mean reading all of them (RocksDB iterates values with keys).
///
/// `ctx.verified` holds the hashes of parts known to be intact in the store (written or read back
/// by this process). A part that a manifest references but that is not in `verified` is read
/// back once and rewritten if its bytes differ, so a part damaged at rest is never silently
/// referenced by a new checkpoint; a part no manifest references is written (again, if a failed
/// commit left it behind: same key, same bytes).
///
/// `stored` says whether everything already in the store is durable ([`Stored::Durable`]: the
/// caller's last commit ended with a successful `flush`). Otherwise a reused part may be there
/// but not yet durable (a commit whose final flush failed, a crash before it), and the manifest
/// that now references it must wait for a `flush`.
pub(crate) async fn commit<S: StateStore + ?Sized>(
    ctx: &mut CommitCtx<'_, S>,
    cp: &Checkpoint,
    id: u64,
    stored: Stored,
) -> Result<CommitReport, CheckpointError> {
    let (store, layout) = (ctx.store, ctx.layout);
    let verified = &mut *ctx.verified;
    let manifests = &mut *ctx.manifests;
    let referenced = manifests.referenced(manifests.ids());
    let mut report = CommitReport {
        id,
        ..CommitReport::default()
    };
    let mut refs = Vec::new();
    let mut seen = HashSet::new();
    // Parts are encoded and written in order, a batch at a time (deterministic, so fault
    // injection is reproducible); a batch need not be atomic, the manifest is the commit point.
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0;
    // Hashes in `batch`: verified once the batch is written.
    let mut batched = Vec::new();
    let mut earlier_batches = false;
    let mut reused = false;
    for value in parts_of(cp)? {
        let (part, blob) = encode_part(&value)?;
        refs.push(part);
        if !seen.insert(part.hash) {
            continue;
        }
        report.parts_total += 1;
        report.part_bytes_total += part.len;
        let key = layout.part_key(&part.hash);
        if referenced.contains(&part.hash)
            && (verified.contains(&part.hash) || intact(store, &key, &blob).await?)
        {
            verified.insert(part.hash);
            reused = true;
            continue;
        }
        report.parts_written += 1;
        report.part_bytes_written += part.len;
        batch_bytes += blob.len();
        batch.put(key, blob);
        batched.push(part.hash);
        if batch_bytes >= PART_BATCH_BYTES {
            store.write_batch(std::mem::take(&mut batch)).await?;
            verified.extend(batched.drain(..));
            batch_bytes = 0;
            earlier_batches = true;
        }
    }
    let manifest_blob = codec::encode(BlobKind::Manifest, &manifest_of(cp, id, &refs))
        .map_err(|source| CheckpointError::codec(layout.manifest_key(id), source))?;
    report.manifest_bytes = manifest_blob.len() as u64;
    let manifest_key = layout.manifest_key(id);
    // Parts are durable before the manifest that references them can be. A store that makes
    // writes durable in order needs no flush for that; one that applies batches atomically
    // (also across a crash) gets the manifest in the same batch as the last parts, and needs a
    // flush only for earlier batches and for reused parts not known to be durable.
    let caps = store.capabilities();
    if caps.atomic_batch {
        let unsynced = earlier_batches || (reused && stored == Stored::MaybeUnflushed);
        if unsynced && !caps.ordered_durability {
            store.flush().await?;
        }
        batch.put(manifest_key, manifest_blob);
        store.write_batch(batch).await?;
        verified.extend(batched);
    } else {
        if !batch.is_empty() {
            store.write_batch(batch).await?;
            verified.extend(batched);
        }
        if !caps.ordered_durability {
            store.flush().await?;
        }
        store.put(&manifest_key, &manifest_blob).await?;
    }
    store.flush().await?;
    manifests
        .entries
        .insert(id, ManifestRefs::Parts(seen.into_iter().collect()));
    Ok(report)
}

/// Whether the part stored under `key` holds exactly `blob`. Damaged bytes (including a value
/// an encrypted store cannot authenticate) are "not intact"; failures of the store are errors.
async fn intact<S: StateStore + ?Sized>(
    store: &S,
    key: &Key,
    blob: &[u8],
) -> Result<bool, CheckpointError> {
    match store.get(key).await {
        Ok(stored) => Ok(stored.as_deref() == Some(blob)),
        Err(StoreError::Corrupt { .. } | StoreError::WrongKey { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
