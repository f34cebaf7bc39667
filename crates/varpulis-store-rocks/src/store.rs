//! [`RocksDbStore`]: the [`StateStore`] over a RocksDB database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rocksdb::{DB, ReadOptions, WriteOptions};
use varpulis_store::{BatchOp, Capabilities, Key, StateStore, StoreError, WriteBatch};

use crate::RocksDbOptions;
use crate::codec;

/// Name used in [`StoreError::Backend`].
const BACKEND: &str = "rocksdb";

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: e.into_string(),
    }
}

/// A [`StateStore`] backed by RocksDB: persistent, atomic batches, sorted prefix scans.
///
/// Clones share one open database. The database (and its `LOCK` file) is closed when the last
/// clone is dropped and every operation in flight has finished: operations run on Tokio's
/// blocking pool, and one whose future was dropped mid-way still completes there first.
///
/// Every [`StateStore`] method must be called from within a Tokio runtime.
///
/// # Durability
/// Writes go through RocksDB's write-ahead log, so a returned `put`, `delete` or `write_batch`
/// survives a crash of the process; [`flush`](StateStore::flush) syncs the log to stable storage
/// so acknowledged writes also survive power loss. With [`RocksDbOptions::sync_writes`] every
/// write is synced before it returns.
#[derive(Clone)]
pub struct RocksDbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    write_options: WriteOptions,
    /// Every write is synced before it returns (`RocksDbOptions::sync_writes`).
    sync_writes: bool,
    path: PathBuf,
}

impl RocksDbStore {
    /// Opens (creating if needed) the database at `path` with the seed configuration
    /// ([`RocksDbOptions::default`]).
    ///
    /// This blocks while RocksDB opens and replays its log; from async code, call it inside
    /// [`tokio::task::spawn_blocking`] if that matters.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the directory cannot be created, [`StoreError::Backend`] if RocksDB
    /// refuses to open it (held by another process, damaged, ...), [`StoreError::Corrupt`] if it
    /// was written in an on-disk format this build does not know.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &RocksDbOptions::default())
    }

    /// Opens the database at `path` with explicit options.
    ///
    /// # Errors
    /// As [`RocksDbStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: &RocksDbOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if options.create_if_missing {
            std::fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        let db = DB::open(&options.to_rocksdb(), &path).map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("cannot open {}: {}", path.display(), e.into_string()),
        })?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.sync_writes);
        match db.get(codec::FORMAT_KEY).map_err(backend)? {
            None => db
                .put_opt(codec::FORMAT_KEY, [codec::FORMAT_VERSION], &write_options)
                .map_err(backend)?,
            Some(v) if v == [codec::FORMAT_VERSION] => {}
            Some(v) => {
                return Err(StoreError::corrupt(
                    path.display(),
                    format!(
                        "unknown varpulis-store-rocks format {}; this build reads version {}",
                        v.escape_ascii(),
                        codec::FORMAT_VERSION
                    ),
                ));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                write_options,
                sync_writes: options.sync_writes,
                path,
            }),
        })
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool with the open database.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("blocking task failed: {e}"),
            })?
    }
}

impl fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl StateStore for RocksDbStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        key.require_value_key()?;
        let key = codec::encode(key);
        self.blocking(move |i| i.db.get(key).map_err(backend)).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        key.require_value_key()?;
        let (key, value) = (codec::encode(key), value.to_vec());
        self.blocking(move |i| i.db.put_opt(key, value, &i.write_options).map_err(backend))
            .await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        key.require_value_key()?;
        let key = codec::encode(key);
        self.blocking(move |i| i.db.delete_opt(key, &i.write_options).map_err(backend))
            .await
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let (lower, upper) = codec::prefix_bounds(prefix);
        self.blocking(move |i| {
            let mut read_options = ReadOptions::default();
            read_options.set_iterate_lower_bound(lower.clone());
            if let Some(upper) = upper {
                read_options.set_iterate_upper_bound(upper);
            }
            // One iterator reads one implicit snapshot: the listing is consistent.
            let mut iter = i.db.raw_iterator_opt(read_options);
            iter.seek(&lower);
            let mut keys = Vec::new();
            while let Some(raw) = iter.key() {
                keys.push(codec::decode(raw)?);
                iter.next();
            }
            iter.status().map_err(backend)?;
            Ok(keys)
        })
        .await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.blocking(move |i| {
            let mut wb = rocksdb::WriteBatch::default();
            for op in batch.into_ops() {
                match op {
                    BatchOp::Put(k, v) => wb.put(codec::encode(&k), v),
                    BatchOp::Delete(k) => wb.delete(codec::encode(&k)),
                }
            }
            i.db.write_opt(wb, &i.write_options).map_err(backend)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|i| i.db.flush_wal(true).map_err(backend))
            .await
    }

    fn capabilities(&self) -> Capabilities {
        // Only synced writes are durable in order. Unsynced log writes reach the disk in
        // whatever order the kernel writes pages back, and RocksDB's log reader skips a
        // zero-filled hole, so after power loss a later write may survive an earlier one.
        Capabilities::new(true, true).with_ordered_durability(self.inner.sync_writes)
    }
}
