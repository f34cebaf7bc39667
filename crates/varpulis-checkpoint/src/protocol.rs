//! The commit protocol, loading, recovery and retention, on any [`StateStore`].
//!
//! Commit: encode every part -> write the parts the store does not hold yet -> `flush` ->
//! write the manifest (the commit point) -> `flush`. Retention then deletes the oldest manifests
//! and every part no remaining manifest references. See `docs/design/state-format.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use varpulis_store::{Key, StateStore, StoreError, WriteBatch};

use crate::codec::{self, BlobKind};
use crate::manifest::{
    ContextEntry, EngineCore, EngineCoreRef, Layout, Manifest, PartHash, PartRef, part_hash,
};
use crate::{Checkpoint, CheckpointError, EngineCheckpoint};

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

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn failing_key(err: &CheckpointError, manifest_key: &Key) -> String {
    match err {
        CheckpointError::Corrupt { key, .. }
        | CheckpointError::UnsupportedVersion { key, .. }
        | CheckpointError::PartMismatch { key, .. } => key.clone(),
        CheckpointError::Store(varpulis_store::StoreError::Corrupt { key, .. }) => key.clone(),
        _ => manifest_key.to_string(),
    }
}

/// New parts are written in batches of about this many bytes: few enough store operations to
/// share fsyncs, small enough that a store copying a batch (RocksDB) does not double a large
/// checkpoint's memory.
const PART_BATCH_BYTES: usize = 64 << 20;

struct EncodedParts {
    blobs: HashMap<PartHash, Vec<u8>>,
    manifest: Manifest,
}

fn encode_part<T: Serialize + ?Sized>(
    blobs: &mut HashMap<PartHash, Vec<u8>>,
    value: &T,
) -> Result<PartRef, CheckpointError> {
    let blob = codec::encode(BlobKind::Part, value)
        .map_err(|source| CheckpointError::codec("<new part>", source))?;
    let part = PartRef {
        hash: part_hash(&blob),
        len: blob.len() as u64,
    };
    blobs.entry(part.hash).or_insert(blob);
    Ok(part)
}

fn encode_map<T: Serialize>(
    blobs: &mut HashMap<PartHash, Vec<u8>>,
    map: &BTreeMap<String, T>,
) -> Result<Vec<(String, PartRef)>, CheckpointError> {
    map.iter()
        .map(|(name, value)| Ok((name.clone(), encode_part(blobs, value)?)))
        .collect()
}

fn encode_checkpoint(cp: &Checkpoint, id: u64) -> Result<EncodedParts, CheckpointError> {
    let mut blobs = HashMap::new();
    let mut names: Vec<&String> = cp.context_states.keys().collect();
    names.sort();
    let mut contexts = Vec::with_capacity(names.len());
    for name in names {
        let engine = &cp.context_states[name];
        let core = EngineCoreRef {
            version: engine.version,
            variables: &engine.variables,
            watermark_state: &engine.watermark_state,
            events_processed: engine.events_processed,
            output_events_emitted: engine.output_events_emitted,
        };
        contexts.push(ContextEntry {
            name: name.clone(),
            core: encode_part(&mut blobs, &core)?,
            windows: encode_map(&mut blobs, &engine.window_states)?,
            sase: encode_map(&mut blobs, &engine.sase_states)?,
            joins: encode_map(&mut blobs, &engine.join_states)?,
        });
    }
    Ok(EncodedParts {
        blobs,
        manifest: Manifest {
            id,
            timestamp_ms: cp.timestamp_ms,
            contexts,
            source_offsets: cp.source_offsets.clone(),
            metadata: cp.metadata.clone(),
        },
    })
}

/// Bytes of `cp` as the protocol would store it: every distinct part plus the manifest.
///
/// # Errors
/// [`CheckpointError::Corrupt`] if a value cannot be encoded.
pub fn encoded_size(cp: &Checkpoint) -> Result<u64, CheckpointError> {
    let encoded = encode_checkpoint(cp, cp.id)?;
    let manifest = codec::encode(BlobKind::Manifest, &encoded.manifest)
        .map_err(|source| CheckpointError::codec("<manifest>", source))?;
    Ok(encoded.blobs.values().map(|b| b.len() as u64).sum::<u64>() + manifest.len() as u64)
}

/// Lists the ids of the manifests present (valid or not), ascending.
pub(crate) async fn list_ids<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
) -> Result<Vec<u64>, CheckpointError> {
    let mut ids: Vec<u64> = store
        .list(layout.manifests())
        .await?
        .iter()
        .filter_map(|k| layout.manifest_id(k))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Writes `cp` as checkpoint `id` (its own `id` field is ignored): parts first, manifest last.
///
/// `verified` holds the hashes of parts known to be intact in the store (written or read back
/// by this process). A part that is present but not in `verified` is read back once and
/// rewritten if its bytes differ, so a part damaged at rest is never silently referenced by a
/// new checkpoint.
pub(crate) async fn commit<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    cp: &Checkpoint,
    id: u64,
    verified: &mut HashSet<PartHash>,
) -> Result<CommitReport, CheckpointError> {
    let encoded = encode_checkpoint(cp, id)?;
    let manifest_blob = codec::encode(BlobKind::Manifest, &encoded.manifest)
        .map_err(|source| CheckpointError::codec(layout.manifest_key(id), source))?;

    // Content addressing: a part already in the store has exactly these bytes (its key is their
    // hash), so it is referenced, not rewritten.
    let existing: HashSet<Key> = store.list(layout.parts()).await?.into_iter().collect();
    let mut report = CommitReport {
        id,
        parts_total: encoded.blobs.len(),
        manifest_bytes: manifest_blob.len() as u64,
        ..CommitReport::default()
    };
    // Deterministic write order (by hash), so fault-injection tests are reproducible.
    let mut blobs: Vec<(PartHash, Vec<u8>)> = encoded.blobs.into_iter().collect();
    blobs.sort_unstable_by_key(|(hash, _)| *hash);
    // New parts go to the store in batches (one fsync per directory on a file store, one WAL
    // write on RocksDB); a batch need not be atomic, the manifest is the commit point.
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0;
    for (hash, blob) in blobs {
        report.part_bytes_total += blob.len() as u64;
        let key = layout.part_key(&hash);
        if existing.contains(&key)
            && (verified.contains(&hash) || intact(store, &key, &blob).await?)
        {
            verified.insert(hash);
            continue;
        }
        if batch_bytes > 0 && batch_bytes + blob.len() > PART_BATCH_BYTES {
            store.write_batch(std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        report.parts_written += 1;
        report.part_bytes_written += blob.len() as u64;
        batch_bytes += blob.len();
        batch.put(key, blob);
        verified.insert(hash);
    }
    if !batch.is_empty() {
        store.write_batch(batch).await?;
    }
    // Parts are durable before the manifest that references them can be.
    store.flush().await?;
    store.put(&layout.manifest_key(id), &manifest_blob).await?;
    store.flush().await?;
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

async fn read_manifest<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    id: u64,
) -> Result<Option<Manifest>, CheckpointError> {
    let key = layout.manifest_key(id);
    let Some(blob) = store.get(&key).await? else {
        return Ok(None);
    };
    let manifest: Manifest =
        codec::decode(BlobKind::Manifest, &blob).map_err(|e| CheckpointError::codec(&key, e))?;
    if manifest.id != id {
        return Err(CheckpointError::PartMismatch {
            key: key.to_string(),
            problem: format!("holds checkpoint id {}", manifest.id),
        });
    }
    Ok(Some(manifest))
}

struct PartReader<'a, S: ?Sized> {
    store: &'a S,
    layout: &'a Layout,
}

impl<S: StateStore + ?Sized> PartReader<'_, S> {
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        part: &PartRef,
    ) -> Result<T, CheckpointError> {
        let key = self.layout.part_key(&part.hash);
        let mismatch = |problem: String| CheckpointError::PartMismatch {
            key: key.to_string(),
            problem,
        };
        let blob = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| mismatch("is missing".to_owned()))?;
        if blob.len() as u64 != part.len {
            return Err(mismatch(format!(
                "has {} bytes, the manifest recorded {}",
                blob.len(),
                part.len
            )));
        }
        if part_hash(&blob) != part.hash {
            return Err(mismatch("does not match its content hash".to_owned()));
        }
        codec::decode(BlobKind::Part, &blob).map_err(|e| CheckpointError::codec(&key, e))
    }

    async fn read_map<T: serde::de::DeserializeOwned>(
        &self,
        refs: &[(String, PartRef)],
    ) -> Result<BTreeMap<String, T>, CheckpointError> {
        let mut out = BTreeMap::new();
        for (name, part) in refs {
            out.insert(name.clone(), self.read(part).await?);
        }
        Ok(out)
    }
}

/// Reads checkpoint `id` and every part it references, verifying each.
///
/// `Ok(None)` if there is no manifest for `id`.
pub(crate) async fn load<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    id: u64,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(manifest) = read_manifest(store, layout, id).await? else {
        return Ok(None);
    };
    let reader = PartReader { store, layout };
    let mut context_states = HashMap::with_capacity(manifest.contexts.len());
    for ctx in &manifest.contexts {
        let core: EngineCore = reader.read(&ctx.core).await?;
        let engine = EngineCheckpoint {
            version: core.version,
            window_states: reader.read_map(&ctx.windows).await?,
            sase_states: reader.read_map(&ctx.sase).await?,
            join_states: reader.read_map(&ctx.joins).await?,
            variables: core.variables,
            watermark_state: core.watermark_state,
            events_processed: core.events_processed,
            output_events_emitted: core.output_events_emitted,
        };
        context_states.insert(ctx.name.clone(), engine);
    }
    Ok(Some(Checkpoint {
        id: manifest.id,
        timestamp_ms: manifest.timestamp_ms,
        context_states,
        source_offsets: manifest.source_offsets,
        metadata: manifest.metadata,
    }))
}

/// Newest valid checkpoint first; invalid ones are skipped (lenient) or refused (strict).
pub(crate) async fn recover<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    mode: RecoveryMode,
) -> Result<Recovery, CheckpointError> {
    let ids = list_ids(store, layout).await?;
    let mut skipped = Vec::new();
    for &id in ids.iter().rev() {
        let manifest_key = layout.manifest_key(id);
        let err = match load(store, layout, id).await {
            Ok(Some(checkpoint)) => {
                return Ok(Recovery {
                    checkpoint: Some(checkpoint),
                    skipped,
                });
            }
            // Listed but gone: deleted by a concurrent prune. Not a checkpoint any more.
            Ok(None) => continue,
            Err(err) if err.is_invalid_checkpoint() => err,
            Err(err) => return Err(err),
        };
        let skip = SkippedCheckpoint {
            id,
            key: failing_key(&err, &manifest_key),
            reason: error_chain(&err),
        };
        tracing::warn!(
            checkpoint_id = id,
            key = %skip.key,
            "skipping invalid checkpoint {id}: {} ({})",
            skip.key,
            skip.reason
        );
        skipped.push(skip);
        if mode == RecoveryMode::Strict {
            return Err(CheckpointError::RecoveryRefused { skipped });
        }
    }
    Ok(Recovery {
        checkpoint: None,
        skipped,
    })
}

/// Keeps the newest `keep` manifests (at least one), then deletes unreferenced parts.
pub(crate) async fn prune<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    keep: usize,
) -> Result<PruneReport, CheckpointError> {
    let keep = keep.max(1);
    let ids = list_ids(store, layout).await?;
    let mut report = PruneReport::default();
    let cut = ids.len().saturating_sub(keep);
    if cut > 0 {
        // Manifests go first and on their own: a part is never deleted while a manifest that
        // references it could survive a crash.
        let mut batch = WriteBatch::new();
        for &id in &ids[..cut] {
            batch.delete(layout.manifest_key(id));
        }
        store.write_batch(batch).await?;
        report.manifests_deleted = cut;
    }
    report.parts_deleted = collect_garbage(store, layout).await?;
    Ok(report)
}

/// Deletes every part that no manifest in the store references.
///
/// Undecodable (corrupt) manifests reference nothing. A manifest from a newer format version
/// may reference anything, so then nothing is deleted; a failing store aborts collection.
pub(crate) async fn collect_garbage<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
) -> Result<usize, CheckpointError> {
    let mut live: HashSet<Key> = HashSet::new();
    for id in list_ids(store, layout).await? {
        match read_manifest(store, layout, id).await {
            Ok(Some(manifest)) => live.extend(manifest.refs().map(|r| layout.part_key(&r.hash))),
            Ok(None) => {}
            Err(CheckpointError::UnsupportedVersion { key, found, .. }) => {
                tracing::warn!(
                    "not collecting checkpoint parts: {key} has format version {found}, newer than this release"
                );
                return Ok(0);
            }
            Err(err) if err.is_invalid_checkpoint() => {}
            Err(err) => return Err(err),
        }
    }
    let mut batch = WriteBatch::new();
    for key in store.list(layout.parts()).await? {
        if !live.contains(&key) {
            batch.delete(key);
        }
    }
    let deleted = batch.len();
    if deleted > 0 {
        store.write_batch(batch).await?;
    }
    Ok(deleted)
}
