//! A conformance harness over a RocksDB database in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use varpulis_store::testing::Harness;
use varpulis_store_rocks::RocksDbStore;

/// Opens `<tmp>/db`; the sandbox is `<tmp>`, so the database directory must be its only entry.
pub(crate) struct RocksHarness {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl RocksHarness {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("db");
        Self { dir, path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Harness for RocksHarness {
    type Store = RocksDbStore;

    /// Opens the database. The previous handle has been dropped by the caller, but a blocking
    /// task it started may still hold the database (and its `LOCK` file) for a moment, so a
    /// lock conflict is retried briefly rather than failing the test.
    async fn open(&self) -> RocksDbStore {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match RocksDbStore::open(&self.path) {
                Ok(store) => return store,
                Err(e) if e.to_string().contains("lock") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("open rocksdb at {}: {e}", self.path.display()),
            }
        }
    }

    fn sandbox(&self) -> Option<&Path> {
        Some(self.dir.path())
    }
}
