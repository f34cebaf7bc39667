//! The in-memory store.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use crate::{BatchOp, Capabilities, Key, StateStore, StoreError, WriteBatch};

/// The default store: a sorted map in memory. Zero configuration, zero latency, lost on restart.
///
/// Clones share the same data, so a `MemoryStore` can be handed to several components.
/// Batches are atomic: readers see all of a batch or none of it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: Arc<RwLock<BTreeMap<Key, Box<[u8]>>>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Total bytes of keys and values held (for metrics).
    #[must_use]
    pub fn approximate_size(&self) -> usize {
        self.read()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum()
    }

    // A panic while holding the lock cannot leave the map half-updated (every mutation is a
    // single insert/remove, or a batch built before the lock is taken), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Key, Box<[u8]>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Key, Box<[u8]>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        key.require_value_key()?;
        Ok(self.read().get(key).map(|v| v.to_vec()))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        key.require_value_key()?;
        let value: Box<[u8]> = Box::from(value);
        self.write().insert(key.clone(), value);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        key.require_value_key()?;
        self.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        // Keys order by segments and a key sorts directly before everything it prefixes, so the
        // matches form one contiguous run starting at `prefix`.
        Ok(self
            .read()
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        // Values move in without a copy (a vector with spare capacity is shrunk first).
        let ops: Vec<(Key, Option<Box<[u8]>>)> = batch
            .into_ops()
            .into_iter()
            .map(|op| match op {
                BatchOp::Put(k, v) => (k, Some(v.into_boxed_slice())),
                BatchOp::Delete(k) => (k, None),
            })
            .collect();
        let mut map = self.write();
        for (k, v) in ops {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, false)
    }
}
