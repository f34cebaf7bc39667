//! The Varpulis state layer behind one dependency.
//!
//! `varpulis-runtime` is a thin facade: it owns no logic and only re-exports the state-layer
//! crates under stable paths, chiefly [`persistence`]. Depend on it to get the [`StateStore`]
//! contract and its stores, and switch heavy backends on with features; depend on the
//! individual crates (`varpulis-store`, `varpulis-store-rocks`, `varpulis-crypto`, ...) instead
//! if you need only one of them.
//!
//! It is **not** the engine or the server and adds no behaviour of its own: a type reached
//! through this crate is the same type as in the crate that defines it.
//!
//! # Features
//! - *(none, the default)*: [`StateStore`], [`MemoryStore`], [`FileStore`] and friends. Built
//!   with `--no-default-features`, this crate must link neither `librocksdb-sys` nor `aes-gcm`
//!   (checked by `cargo xtask ci` with `cargo tree -e normal`).
//! - `persistence`: `RocksDbStore` from `varpulis-store-rocks` (links RocksDB).
//! - `encryption`: `EncryptedStateStore` and its keys from `varpulis-crypto` (links `aes-gcm`,
//!   `argon2`, `zeroize`).
//!
//! # Example
//! ```
//! use varpulis_runtime::persistence::{Key, MemoryStore, StateStore, StateStoreExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let key = Key::new("tenants:acme:events-processed")?;
//! store.put_typed(&key, &42_u64).await?;
//! assert_eq!(store.get_typed::<u64>(&key).await?, Some(42));
//! # Ok::<_, varpulis_runtime::persistence::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! [`StateStore`]: persistence::StateStore
//! [`MemoryStore`]: persistence::MemoryStore
//! [`FileStore`]: persistence::FileStore

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod persistence;
