//! The seed's snippet, `encrypted_store.save_checkpoint("ctx", &checkpoint).await?`, on an
//! encrypted RocksDB store through the facade, and recovery after reopening.

use varpulis_runtime::persistence::{
    CheckpointConfig, CheckpointError, CheckpointManager, CheckpointStore, EncryptedStateStore,
    EngineCheckpoint, RocksDbStore,
};

#[test]
fn seed_snippet_saves_a_checkpoint_on_an_encrypted_rocksdb_store() -> Result<(), CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let hex = "7e".repeat(32);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let checkpoint = EngineCheckpoint {
        events_processed: 1_234,
        ..EngineCheckpoint::default()
    };
    let id = rt.block_on(async {
        let key = EncryptedStateStore::<RocksDbStore>::key_from_hex(&hex).unwrap();
        let encrypted_store = EncryptedStateStore::new(RocksDbStore::open(&path)?, key);
        let id = encrypted_store.save_checkpoint("ctx", &checkpoint).await?;
        Ok::<_, CheckpointError>(id)
    })?;
    // Let the dropped store's blocking tasks release the database lock.
    drop(rt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let key = EncryptedStateStore::<RocksDbStore>::key_from_hex(&hex).unwrap();
        let store = EncryptedStateStore::new(RocksDbStore::open(&path)?, key);
        let manager = CheckpointManager::new(store, CheckpointConfig::default())?;
        let recovery = manager.recover().await?;
        let cp = recovery.checkpoint.expect("the saved checkpoint");
        assert_eq!(cp.id, id);
        assert_eq!(cp.context_states["ctx"], checkpoint);
        Ok(())
    })
}
