//! The commit protocol, loading, recovery and retention, on any [`StateStore`].
//!
//! Commit: encode every part -> write the parts the store does not hold yet -> write the
//! manifest (the commit point) so that it cannot be durable without them (in the parts' last
//! batch on a store with atomic batches, else after a `flush` unless the store makes writes
//! durable in order) -> `flush`. Retention then deletes the oldest manifests and every part no
//! remaining manifest references. See `docs/design/state-format.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::pin::Pin;

use futures::stream::{self, Stream, StreamExt};

use serde::Serialize;
use varpulis_store::{Key, StateStore, StoreError, WriteBatch};

use crate::codec::{self, BlobKind};
use crate::manifest::{
    ContextEntry, EngineCore, EngineCoreRef, Layout, Manifest, PartHash, PartRef, part_hash,
};
use crate::{
    Checkpoint, CheckpointError, EngineCheckpoint, JoinCheckpoint, SaseCheckpoint, WindowCheckpoint,
};

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
}

impl Serialize for PartValue<'_> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        match self {
            Self::Core(v) => v.serialize(s),
            Self::Window(v) => v.serialize(s),
            Self::Sase(v) => v.serialize(s),
            Self::Join(v) => v.serialize(s),
        }
    }
}

/// Contexts in manifest order (sorted by name).
fn contexts_of(cp: &Checkpoint) -> Vec<(&String, &EngineCheckpoint)> {
    let mut contexts: Vec<_> = cp.context_states.iter().collect();
    contexts.sort_unstable_by_key(|(name, _)| *name);
    contexts
}

/// Every part of `cp`, in manifest order: per context, the engine core, then the window, SASE
/// and join states in key order. [`manifest_of`] consumes part references in this order.
fn parts_of(cp: &Checkpoint) -> Vec<PartValue<'_>> {
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
        parts.extend(engine.sase_states.values().map(PartValue::Sase));
        parts.extend(engine.join_states.values().map(PartValue::Join));
    }
    parts
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
        .map(|(name, engine)| ContextEntry {
            name: name.clone(),
            core: refs.next().expect("one reference per part"),
            windows: named(&mut refs, engine.window_states.keys()),
            sase: named(&mut refs, engine.sase_states.keys()),
            joins: named(&mut refs, engine.join_states.keys()),
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
    for value in parts_of(cp) {
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
/// `manifests` is the store's manifests as read before; the new one is added once committed.
///
/// Content addressing: a part already in the store has exactly these bytes (its key is their
/// hash), so it is referenced, not rewritten. The parts known to be there are the ones the
/// manifests reference (retention never deletes those); the manifests are small, where listing
/// the parts can mean reading all of them (RocksDB iterates values with keys).
///
/// `verified` holds the hashes of parts known to be intact in the store (written or read back
/// by this process). A part that a manifest references but that is not in `verified` is read
/// back once and rewritten if its bytes differ, so a part damaged at rest is never silently
/// referenced by a new checkpoint; a part no manifest references is written (again, if a failed
/// commit left it behind: same key, same bytes).
///
/// `stored_durable` says that everything already in the store is durable (the caller's last
/// commit ended with a successful `flush`). Otherwise a reused part may be there but not yet
/// durable (a commit whose final flush failed, a crash before it), and the manifest that now
/// references it must wait for a `flush`.
pub(crate) async fn commit<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    cp: &Checkpoint,
    id: u64,
    verified: &mut HashSet<PartHash>,
    manifests: &mut Manifests,
    stored_durable: bool,
) -> Result<CommitReport, CheckpointError> {
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
    for value in parts_of(cp) {
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
        let unsynced = earlier_batches || (reused && !stored_durable);
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

/// Parts fetched ahead of the one being verified and decoded, so the store's reads (on a
/// blocking thread for files and RocksDB) overlap the decoding.
const READ_AHEAD: usize = 3;

type Fetches<'a> = Pin<Box<dyn Stream<Item = Result<Option<Vec<u8>>, StoreError>> + Send + 'a>>;

/// Reads the parts of one manifest in manifest order (the order of [`Manifest::refs`]).
struct PartReader<'a> {
    layout: &'a Layout,
    fetches: Fetches<'a>,
    /// Hashes of the parts read and verified so far.
    verified: Vec<PartHash>,
}

impl<'a> PartReader<'a> {
    fn new<S: StateStore + ?Sized>(store: &'a S, layout: &'a Layout, manifest: &Manifest) -> Self {
        let keys: Vec<Key> = manifest.refs().map(|r| layout.part_key(&r.hash)).collect();
        let fetches = stream::iter(keys)
            .map(move |key| async move { store.get(&key).await })
            .buffered(READ_AHEAD);
        Self {
            layout,
            fetches: Box::pin(fetches),
            verified: Vec::new(),
        }
    }

    /// Reads `part`, which must be the next reference in manifest order.
    async fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        part: &PartRef,
    ) -> Result<T, CheckpointError> {
        let key = self.layout.part_key(&part.hash);
        let mismatch = |problem: String| CheckpointError::PartMismatch {
            key: key.to_string(),
            problem,
        };
        let blob = self
            .fetches
            .next()
            .await
            .expect("one fetch per part reference")?
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
        // The 128-bit hash covered every byte, the header and its crc32c included, so the
        // crc is not computed again; the header fields are still checked.
        let value = codec::open_unchecked_crc(BlobKind::Part, &blob)
            .and_then(codec::decode_payload)
            .map_err(|e| CheckpointError::codec(&key, e))?;
        self.verified.push(part.hash);
        Ok(value)
    }

    async fn read_map<T: serde::de::DeserializeOwned>(
        &mut self,
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
    Ok(load_verified(store, layout, id)
        .await?
        .map(|(checkpoint, _)| checkpoint))
}

/// [`load`], also returning the hashes of the parts it verified.
async fn load_verified<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    id: u64,
) -> Result<Option<(Checkpoint, Vec<PartHash>)>, CheckpointError> {
    let Some(manifest) = read_manifest(store, layout, id).await? else {
        return Ok(None);
    };
    let mut reader = PartReader::new(store, layout, &manifest);
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
    let checkpoint = Checkpoint {
        id: manifest.id,
        timestamp_ms: manifest.timestamp_ms,
        context_states,
        source_offsets: manifest.source_offsets,
        metadata: manifest.metadata,
    };
    Ok(Some((checkpoint, reader.verified)))
}

/// Newest valid checkpoint first; invalid ones are skipped (lenient) or refused (strict).
pub(crate) async fn recover<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    mode: RecoveryMode,
) -> Result<Recovery, CheckpointError> {
    recover_verified(store, layout, mode, &mut HashSet::new()).await
}

/// [`recover`], adding the hashes of the recovered checkpoint's parts (all read back and
/// verified) to `verified`.
pub(crate) async fn recover_verified<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    mode: RecoveryMode,
    verified: &mut HashSet<PartHash>,
) -> Result<Recovery, CheckpointError> {
    let ids = list_ids(store, layout).await?;
    let mut skipped = Vec::new();
    for &id in ids.iter().rev() {
        let manifest_key = layout.manifest_key(id);
        let err = match load_verified(store, layout, id).await {
            Ok(Some((checkpoint, hashes))) => {
                verified.extend(hashes);
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
/// references, found as `sweep` says. Works from `manifests` (the store's, as read before) and
/// updates it; `verified` keeps only hashes of parts still referenced.
///
/// No manifest that survives a crash can reference a deleted part: on a store with atomic
/// batches the manifests and their parts go in one batch; otherwise the manifests go first,
/// durably (a `flush` follows unless the store has ordered durability). While a
/// kept manifest's references are unknown ([`ManifestRefs::Unknown`]), no part is deleted. The
/// second value says what happened to the parts (see [`Collected`]).
pub(crate) async fn prune<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    keep: usize,
    sweep: Sweep,
    verified: &mut HashSet<PartHash>,
    manifests: &mut Manifests,
) -> Result<(PruneReport, Collected), CheckpointError> {
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
