//! The store contract of the Varpulis state layer.
//!
//! This crate is the bottom of the storage stack: the [`StateStore`] trait every backend
//! implements, the validated [`Key`], the [`StoreError`] type, typed helpers in
//! [`StateStoreExt`], and the two dependency-free backends: [`MemoryStore`] (the default) and
//! [`FileStore`] (one file per key, durable atomic writes), and [`StateDir`], the lock and
//! identity record of a state directory.
//!
//! It is **not** a storage engine and never links one: `varpulis-store` must never depend on
//! RocksDB or on a cipher. Those live in `varpulis-store-rocks` and `varpulis-crypto`, which
//! implement or wrap this trait.
//!
//! # Features
//! - `testing`: exports [`testing`], the conformance suite every backend and wrapper runs, and
//!   the [`conformance_tests!`] macro that turns it into named tests.
//!
//! # Example
//! ```
//! use varpulis_store::{Key, MemoryStore, StateStore, StateStoreExt, StoreError};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let key = Key::new("tenants:acme:quota")?;
//! store.put_typed(&key, &1_000_u64).await?;
//! assert_eq!(store.get_typed::<u64>(&key).await?, Some(1_000));
//! assert_eq!(store.list(&Key::new("tenants")?).await?, vec![key]);
//! # Ok::<_, StoreError>(())
//! # }).unwrap();
//! ```

mod dir;
mod error;
mod ext;
#[cfg(feature = "testing")]
pub mod faults;
mod file;
mod key;
mod memory;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;

pub use dir::{
    Contents, DIR_FORMAT, DirError, DirIdentity, Encryption, IDENTITY_FILE, LOCK_FILE, StateDir,
};
pub use error::{StoreError, TypedValueError};
pub use ext::StateStoreExt;
pub use file::FileStore;
pub use key::{Key, KeyProblem, MAX_SEGMENT_LEN, MAX_SEGMENTS, SEPARATOR};
pub use memory::MemoryStore;

/// What a backend can promise beyond the base contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `write_batch` applies all operations or none, and readers never see part of a batch;
    /// also across a crash or power loss, a batch survives whole or not at all.
    pub atomic_batch: bool,
    /// Data survives dropping the store and opening it again.
    pub persistent: bool,
    /// Writes become durable in the order they were acknowledged: whatever survives a power
    /// loss also includes every write acknowledged before it (a write-ahead log replayed up to
    /// a point, or a store whose every write is durable when it returns). A caller that needs
    /// write A durable before write B can then skip the `flush` between them.
    pub ordered_durability: bool,
}

impl Capabilities {
    /// Builds a capability set (without ordered durability; see
    /// [`with_ordered_durability`](Self::with_ordered_durability)).
    #[must_use]
    pub const fn new(atomic_batch: bool, persistent: bool) -> Self {
        Self {
            atomic_batch,
            persistent,
            ordered_durability: false,
        }
    }

    /// The same set with [`ordered_durability`](Self::ordered_durability) set to `ordered`.
    #[must_use]
    pub const fn with_ordered_durability(mut self, ordered: bool) -> Self {
        self.ordered_durability = ordered;
        self
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key`.
    Put(Key, Vec<u8>),
    /// Remove `key` (absent keys are fine).
    Delete(Key),
}

impl BatchOp {
    /// The key the operation concerns.
    #[must_use]
    pub fn key(&self) -> &Key {
        match self {
            Self::Put(k, _) | Self::Delete(k) => k,
        }
    }
}

/// An ordered group of writes, applied by [`StateStore::write_batch`].
///
/// Operations apply in order, so a later operation on the same key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: Key, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Put(key, value.into()));
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: Key) -> &mut Self {
        self.ops.push(BatchOp::Delete(key));
        self
    }

    /// The operations, in order.
    #[must_use]
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Takes the operations out.
    #[must_use]
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Number of operations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks that every key can hold a value (none is the root).
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for the first offending key.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.ops
            .iter()
            .try_for_each(|op| op.key().require_value_key())
    }
}

impl FromIterator<BatchOp> for WriteBatch {
    fn from_iter<T: IntoIterator<Item = BatchOp>>(iter: T) -> Self {
        Self {
            ops: iter.into_iter().collect(),
        }
    }
}

/// A key-value store for engine and server state.
///
/// Only the primitives live here; typed and checkpoint helpers come from extension traits with
/// blanket impls ([`StateStoreExt`], `CheckpointStore` in `varpulis-checkpoint`), so every
/// backend and wrapper gets them. The trait is object safe: `Arc<dyn StateStore>` is a store.
///
/// # Contract
/// - **Keys** are validated [`Key`]s; the root key ([`Key::root`]) is accepted only by `list`.
///   Value operations on it fail with [`StoreError::InvalidKey`] before any I/O.
/// - **`put`** is atomic: a reader sees the old value or the new one, never a mix, also after a
///   crash. When `put` returns, the value survives a crash of the process; after `flush` returns
///   it also survives power loss.
/// - **`get`** returns exactly the bytes last put, or `None`.
/// - **`delete`** of an absent key succeeds.
/// - **`list(prefix)`** returns every key whose segments start with the prefix's segments (the
///   prefix itself included if it holds a value), complete and sorted by [`Key`]'s order.
///   `a:b` does not match `a:bc`.
/// - **`write_batch`** applies operations in order. If [`Capabilities::atomic_batch`] is set, it
///   applies all or none and readers never observe a partial batch; otherwise a failure may
///   leave a prefix of the batch applied, and callers must not rely on atomicity.
/// - Stores are safe to use from many tasks at once; concurrent writers to one key never produce
///   a mix of their values.
///
/// # Errors
/// Every method returns [`StoreError`]: `InvalidKey` for the root key, `Io`/`Backend` for failures
/// of the medium, `Corrupt`/`WrongKey` from wrappers that verify what they read.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Reads the value under `key`.
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, replacing any previous value atomically.
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;
    /// Lists the keys under `prefix`, sorted.
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError>;
    /// Applies a batch of writes (atomically if [`Capabilities::atomic_batch`]).
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Makes every acknowledged write survive power loss.
    async fn flush(&self) -> Result<(), StoreError>;
    /// What this store promises beyond the base contract.
    fn capabilities(&self) -> Capabilities;
}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<S: StateStore + ?Sized> StateStore for $ty {
            async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).get(key).await
            }
            async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
                (**self).put(key, value).await
            }
            async fn delete(&self, key: &Key) -> Result<(), StoreError> {
                (**self).delete(key).await
            }
            async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
                (**self).list(prefix).await
            }
            async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
                (**self).write_batch(batch).await
            }
            async fn flush(&self) -> Result<(), StoreError> {
                (**self).flush().await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    };
}

forward_store!(Arc<S>);
forward_store!(Box<S>);
