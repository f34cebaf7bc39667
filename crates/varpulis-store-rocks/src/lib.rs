//! A RocksDB-backed [`StateStore`] for the Varpulis state layer.
//!
//! [`RocksDbStore`] keeps state in a local RocksDB database: it survives restarts, applies
//! [`WriteBatch`](varpulis_store::WriteBatch)es atomically as one RocksDB write batch, and serves
//! prefix listings from a sorted range scan. It passes the `varpulis-store` conformance suite.
//! Reach it through the facade's `persistence` feature (`varpulis_runtime::persistence`).
//!
//! It is **not** a general RocksDB binding: it exposes only the [`StateStore`] contract and a few
//! tuning knobs ([`RocksDbOptions`]). Encryption is a wrapper from `varpulis-crypto`, checkpoints
//! an extension trait from `varpulis-checkpoint`; this crate depends on neither, nor on anything
//! above `varpulis-store`.
//!
//! Every RocksDB call made by a [`StateStore`] method runs on Tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]), so the methods never block an async worker; they must be
//! called from within a Tokio runtime. [`RocksDbStore::open`] is synchronous.
//!
//! # Configuration
//! [`RocksDbStore::open`] uses the seed configuration: LZ4 compression, 64 MiB write buffer,
//! 3 write buffers, 64 MiB target file size, database created if missing.
//! [`RocksDbStore::open_with`] takes [`RocksDbOptions`].
//!
//! # On-disk key encoding (format version 1)
//! A key is stored as its string with each `:` separator replaced by the byte `0x00`
//! (`tenants:acme:quota` is stored as `tenants\0acme\0quota`). Segment bytes are
//! `[A-Za-z0-9._-]`, all above `0x00`, so RocksDB's bytewise order equals `Key`'s segment order
//! (`a:b` < `a:b:c` < `a-c`), and the keys under prefix `P` are exactly the byte range
//! `[enc(P), enc(P) ++ 0x01)`, which excludes a sibling like `a:bc`. Values are stored as given.
//! Keys starting with `0x00` are reserved for the store itself: `\0varpulis-format` holds the
//! format version as one byte (`0x01`); opening a database with another version fails with
//! [`StoreError::Corrupt`](varpulis_store::StoreError::Corrupt). Everything sits in RocksDB's
//! default column family.
//!
//! [`StateStore`]: varpulis_store::StateStore
//!
//! # Example
//! ```
//! use varpulis_store::{Key, StateStore, WriteBatch};
//! use varpulis_store_rocks::RocksDbStore;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("state");
//! let store = RocksDbStore::open(&path)?;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut batch = WriteBatch::new();
//! batch
//!     .put(Key::new("orders:2")?, b"two".to_vec())
//!     .put(Key::new("orders:10")?, b"ten".to_vec())
//!     .put(Key::new("orders-archive")?, b"x".to_vec());
//! store.write_batch(batch).await?; // all or nothing
//! store.flush().await?; // now durable against power loss
//!
//! let orders = store.list(&Key::new("orders")?).await?;
//! assert_eq!(orders, [Key::new("orders:10")?, Key::new("orders:2")?]);
//! assert_eq!(store.get(&orders[1]).await?.as_deref(), Some(&b"two"[..]));
//! # Ok::<_, varpulis_store::StoreError>(())
//! # })?;
//! # Ok::<_, varpulis_store::StoreError>(())
//! ```

mod codec;
mod options;
mod store;

pub use options::{Compression, RocksDbOptions};
pub use store::RocksDbStore;
