//! The manifest (commit record) and the key layout of checkpoints in a store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use varpulis_core::Value;
use varpulis_store::{Key, StoreError};

use crate::WatermarkCheckpoint;

/// Segment under the key prefix that holds every checkpoint key.
pub(crate) const ROOT_SEGMENT: &str = "ckpt";
/// Segment under the root that holds manifests, one per checkpoint id.
pub(crate) const MANIFEST_SEGMENT: &str = "manifest";
/// Segment under the root that holds content-addressed parts.
pub(crate) const PART_SEGMENT: &str = "part";

/// A 128-bit content hash (XXH3-128 of the part's complete envelope bytes, little-endian).
pub(crate) type PartHash = [u8; 16];

/// Hashes an encoded part.
pub(crate) fn part_hash(blob: &[u8]) -> PartHash {
    twox_hash::XxHash3_128::oneshot(blob).to_le_bytes()
}

/// Where a part lives and what it must contain: its key is derived from `hash`, and the bytes
/// read back must have exactly `len` bytes and hash to `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PartRef {
    pub(crate) hash: PartHash,
    pub(crate) len: u64,
}

/// The parts of one engine context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContextEntry {
    pub(crate) name: String,
    /// `EngineCore`: version, variables, watermark and counters.
    pub(crate) core: PartRef,
    pub(crate) windows: Vec<(String, PartRef)>,
    pub(crate) sase: Vec<(String, PartRef)>,
    pub(crate) joins: Vec<(String, PartRef)>,
}

impl ContextEntry {
    pub(crate) fn refs(&self) -> impl Iterator<Item = &PartRef> + '_ {
        std::iter::once(&self.core)
            .chain(self.windows.iter().map(|(_, r)| r))
            .chain(self.sase.iter().map(|(_, r)| r))
            .chain(self.joins.iter().map(|(_, r)| r))
    }
}

/// The commit record of a checkpoint. Written last: a checkpoint exists once its manifest does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) id: u64,
    pub(crate) timestamp_ms: i64,
    /// Sorted by context name.
    pub(crate) contexts: Vec<ContextEntry>,
    pub(crate) source_offsets: BTreeMap<String, u64>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Manifest {
    pub(crate) fn refs(&self) -> impl Iterator<Item = &PartRef> + '_ {
        self.contexts.iter().flat_map(ContextEntry::refs)
    }
}

/// The engine-level remainder of an [`EngineCheckpoint`](crate::EngineCheckpoint), stored as one
/// part per context (the operator maps are parts of their own).
#[derive(Debug, Serialize)]
pub(crate) struct EngineCoreRef<'a> {
    pub(crate) version: u32,
    pub(crate) variables: &'a BTreeMap<String, Value>,
    pub(crate) watermark_state: &'a Option<WatermarkCheckpoint>,
    pub(crate) events_processed: u64,
    pub(crate) output_events_emitted: u64,
}

/// Owned form of [`EngineCoreRef`], same encoding.
#[derive(Debug, Deserialize)]
pub(crate) struct EngineCore {
    pub(crate) version: u32,
    pub(crate) variables: BTreeMap<String, Value>,
    pub(crate) watermark_state: Option<WatermarkCheckpoint>,
    pub(crate) events_processed: u64,
    pub(crate) output_events_emitted: u64,
}

/// Checkpoint keys under one prefix:
/// `{prefix}:ckpt:manifest:{id, 20 digits}` and `{prefix}:ckpt:part:{hash, 32 hex digits}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    manifests: Key,
    parts: Key,
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Result<Self, StoreError> {
        let root = Key::new(prefix)?.child(ROOT_SEGMENT)?;
        Ok(Self {
            manifests: root.child(MANIFEST_SEGMENT)?,
            parts: root.child(PART_SEGMENT)?,
        })
    }

    pub(crate) fn manifests(&self) -> &Key {
        &self.manifests
    }

    pub(crate) fn parts(&self) -> &Key {
        &self.parts
    }

    /// Zero-padded so that the store's key order is the numeric order of ids.
    pub(crate) fn manifest_key(&self, id: u64) -> Key {
        self.manifests
            .child(format!("{id:020}"))
            .expect("a 20-digit segment is a valid key segment")
    }

    /// The id of a manifest key, `None` for a key that is not one.
    pub(crate) fn manifest_id(&self, key: &Key) -> Option<u64> {
        if key.len() != self.manifests.len() + 1 || !key.starts_with(&self.manifests) {
            return None;
        }
        let seg = key.last_segment()?;
        if seg.len() != 20 || !seg.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        seg.parse().ok()
    }

    pub(crate) fn part_key(&self, hash: &PartHash) -> Key {
        let mut hex = String::with_capacity(32);
        for b in hash {
            hex.push_str(&format!("{b:02x}"));
        }
        self.parts
            .child(hex)
            .expect("32 hex digits are a valid key segment")
    }
}
