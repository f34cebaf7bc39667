//! The facade re-exports types, it does not wrap them.

use varpulis_runtime::persistence::{Key, MemoryStore, StateStore, StoreError, WriteBatch};

fn same_type<T>(_: &T, _: &T) {}

#[test]
fn persistence_types_are_the_store_crates_types() {
    same_type(&MemoryStore::new(), &varpulis_store::MemoryStore::new());
    same_type(&Key::root(), &varpulis_store::Key::root());
    same_type(&WriteBatch::new(), &varpulis_store::WriteBatch::new());
    let store: Box<dyn varpulis_store::StateStore> = Box::new(MemoryStore::new());
    let _: &dyn StateStore = &store;
}

#[test]
fn memory_store_works_through_the_facade() {
    varpulis_store::testing::block_on(async {
        let store = MemoryStore::new();
        let key = Key::new("facade:k")?;
        store.put(&key, b"v").await?;
        assert_eq!(store.list(&Key::new("facade")?).await?, vec![key]);
        Ok::<_, StoreError>(())
    })
    .unwrap();
}

#[cfg(feature = "persistence")]
#[test]
fn rocksdb_store_is_reachable_with_persistence() {
    use varpulis_runtime::persistence::{RocksDbOptions, RocksDbStore};
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbStore::open(dir.path().join("db")).unwrap();
    let same: &varpulis_store_rocks::RocksDbStore = &store;
    assert!(same.capabilities().persistent);
    assert_eq!(RocksDbOptions::default().max_write_buffers, 3);
}
