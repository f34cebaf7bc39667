//! Reading checkpoints back: listing the manifests, loading one checkpoint with every part
//! verified, and recovery of the newest valid one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;

use futures::stream::{self, Stream, StreamExt};
use varpulis_store::{Key, StateStore, StoreError};

use super::commit::operator_maps_v2;
use super::{Recovery, RecoveryMode, SkippedCheckpoint};
use crate::codec::{self, BlobKind};
use crate::manifest::{EngineCore, Layout, Manifest, PartHash, PartRef, part_hash};
use crate::{Checkpoint, CheckpointError, EngineCheckpoint, error_chain};

/// The key a skipped checkpoint is reported under: the blob that failed, else its manifest.
fn failing_key(err: &CheckpointError, manifest_key: &Key) -> String {
    match err {
        CheckpointError::Corrupt { key, .. }
        | CheckpointError::UnsupportedVersion { key, .. }
        | CheckpointError::PartMismatch { key, .. } => key.clone(),
        CheckpointError::Store(varpulis_store::StoreError::Corrupt { key, .. }) => key.clone(),
        _ => manifest_key.to_string(),
    }
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

pub(crate) async fn read_manifest<S: StateStore + ?Sized>(
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
        let mut engine = EngineCheckpoint {
            version: core.version,
            window_states: reader.read_map(&ctx.windows).await?,
            variables: core.variables,
            watermark_state: core.watermark_state,
            events_processed: core.events_processed,
            output_events_emitted: core.output_events_emitted,
            ..EngineCheckpoint::default()
        };
        if operator_maps_v2(core.version) {
            engine.pattern_states = reader.read_map(&ctx.sase).await?;
            engine.join_operator_states = reader.read_map(&ctx.joins).await?;
        } else {
            engine.sase_states = reader.read_map(&ctx.sase).await?;
            engine.join_states = reader.read_map(&ctx.joins).await?;
        }
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

/// The newest valid checkpoint among `ids` (the manifests listed by [`list_ids`], ascending),
/// tried newest first; invalid ones are skipped (lenient) or refused (strict). Adds the hashes
/// of the recovered checkpoint's parts (all read back and verified) to `verified`.
pub(crate) async fn recover_from<S: StateStore + ?Sized>(
    store: &S,
    layout: &Layout,
    ids: &[u64],
    mode: RecoveryMode,
    verified: &mut HashSet<PartHash>,
) -> Result<Recovery, CheckpointError> {
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
