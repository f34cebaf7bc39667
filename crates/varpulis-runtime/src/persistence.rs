//! State stores, persistence backends and encryption at rest, at one path.
//!
//! Always available: the [`StateStore`] contract, [`StateStoreExt`] helpers, [`Key`],
//! [`StoreError`], [`WriteBatch`], [`Capabilities`], and the dependency-free stores
//! [`MemoryStore`] (the default, lost on restart) and [`FileStore`] (one file per key).
//! Feature `persistence` adds `RocksDbStore`; feature `encryption` adds `EncryptedStateStore`
//! and its key types; with both, `EncryptedRocksDbStore` names the usual production stack.
//!
//! ```
//! use varpulis_runtime::persistence::{FileStore, Key, StateStore, StoreError};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let state_dir = dir.path().join("state");
//! let store = FileStore::open(&state_dir)?;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! store.put(&Key::new("pipelines:orders")?, b"v1").await?;
//! store.flush().await?;
//! assert_eq!(store.list(&Key::new("pipelines")?).await?.len(), 1);
//! # Ok::<_, StoreError>(())
//! # })?;
//! # Ok::<_, StoreError>(())
//! ```

// ---- The store contract and the built-in stores (always) -------------------------------------

pub use varpulis_store::{
    BatchOp, Capabilities, FileStore, Key, KeyProblem, MemoryStore, StateStore, StateStoreExt,
    StoreError, WriteBatch,
};

// ---- RocksDB (feature `persistence`) ---------------------------------------------------------

#[cfg(feature = "persistence")]
#[cfg_attr(docsrs, doc(cfg(feature = "persistence")))]
pub use varpulis_store_rocks::{Compression as RocksDbCompression, RocksDbOptions, RocksDbStore};

// ---- Encryption at rest (feature `encryption`) -----------------------------------------------

#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub use varpulis_crypto::{
    CryptoError, EncryptedStateStore, EncryptionKey, KEY_ENV_VAR, KdfParams, KeyId, Keyring,
    RotationReport,
};

/// An [`EncryptedStateStore`] over a [`RocksDbStore`]: values encrypted with AES-256-GCM, kept
/// in RocksDB. Key names stay readable, so listing and prefix scans work as usual.
///
/// The seed's snippet, as written (with a temporary directory for the state):
///
/// ```
/// use varpulis_runtime::persistence::{EncryptedStateStore, RocksDbStore, StateStore};
/// # use varpulis_runtime::persistence::{CheckpointStore, EngineCheckpoint, Key};
/// # let dir = tempfile::tempdir()?;
/// # let state_dir = dir.path().join("state");
/// # // SAFETY: single-threaded at this point of the doctest.
/// # unsafe { std::env::set_var("VARPULIS_ENCRYPTION_KEY", "2a".repeat(32)) };
///
/// let store = RocksDbStore::open(&state_dir)?;
/// let key = EncryptedStateStore::<RocksDbStore>::key_from_hex(&std::env::var("VARPULIS_ENCRYPTION_KEY")?)?;
/// let encrypted_store = EncryptedStateStore::new(store, key);
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let checkpoint = EngineCheckpoint { events_processed: 42, ..EngineCheckpoint::default() };
/// // Use encrypted_store exactly like any other StateStore
/// encrypted_store.save_checkpoint("ctx", &checkpoint).await?;
/// # let latest = encrypted_store.load_latest_checkpoint().await?.expect("saved");
/// # assert_eq!(latest.context_states["ctx"].events_processed, 42);
/// let secret = Key::new("tenants:acme:api-token")?;
/// encrypted_store.put(&secret, b"hunter2").await?;
/// assert_eq!(encrypted_store.get(&secret).await?.as_deref(), Some(&b"hunter2"[..]));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[cfg(all(feature = "persistence", feature = "encryption"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "persistence", feature = "encryption"))))]
pub type EncryptedRocksDbStore = EncryptedStateStore<RocksDbStore>;

// ---- Checkpoints (varpulis-checkpoint) -------------------------------------------------------
//
// CheckpointConfig, Checkpoint, CheckpointManager and the CheckpointStore extension trait
// (save_checkpoint, load_latest_checkpoint, ...), so that
// `encrypted_store.save_checkpoint("ctx", &checkpoint).await?` works through this module.

pub use varpulis_checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointError, CheckpointManager, CheckpointStore,
    CommitReport, EngineCheckpoint, PruneReport, Recovery, RecoveryMode, SkippedCheckpoint,
};

/// Checkpoint state types, codec and format constants (`varpulis_checkpoint`).
///
/// ```
/// use varpulis_runtime::persistence::{CheckpointStore, EngineCheckpoint, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let checkpoint = EngineCheckpoint { events_processed: 7, ..EngineCheckpoint::default() };
/// // Any store, wrapped or not (`encrypted_store.save_checkpoint("ctx", &checkpoint)` alike):
/// let id = store.save_checkpoint("ctx", &checkpoint).await?;
/// let latest = store.load_latest_checkpoint().await?.expect("saved");
/// assert_eq!((latest.id, latest.context_states["ctx"].events_processed), (id, 7));
/// # Ok::<_, varpulis_runtime::persistence::CheckpointError>(())
/// # }).unwrap();
/// ```
pub mod checkpoint {
    pub use varpulis_checkpoint::codec;
    pub use varpulis_checkpoint::encoded_size;
    pub use varpulis_checkpoint::state::*;
}
