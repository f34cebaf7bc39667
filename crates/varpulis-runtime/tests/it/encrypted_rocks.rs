//! `EncryptedStateStore<RocksDbStore>`, the production stack, runs the conformance suite.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use varpulis_runtime::persistence::{EncryptedRocksDbStore, EncryptedStateStore, RocksDbStore};
use varpulis_store::testing::Harness;

struct EncryptedRocksHarness {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl EncryptedRocksHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("db");
        Self { dir, path }
    }
}

#[async_trait]
impl Harness for EncryptedRocksHarness {
    type Store = EncryptedRocksDbStore;

    async fn open(&self) -> EncryptedRocksDbStore {
        // A blocking task of the dropped handle may hold the LOCK file for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match RocksDbStore::open(&self.path) {
                Ok(store) => break store,
                Err(e) if e.to_string().contains("lock") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("open rocksdb at {}: {e}", self.path.display()),
            }
        };
        let key = EncryptedStateStore::<RocksDbStore>::key_from_hex(&"5c".repeat(32))
            .expect("valid hex key");
        EncryptedStateStore::open(store, key)
            .await
            .expect("open encrypted store")
    }

    fn sandbox(&self) -> Option<&Path> {
        Some(self.dir.path())
    }
}

varpulis_store::conformance_tests!(EncryptedRocksHarness::new(), 16);
