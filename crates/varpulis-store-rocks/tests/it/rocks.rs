//! RocksDB-specific behaviour: segment order on disk, atomic batches, durability, reopening.

use std::sync::Arc;

use varpulis_store::testing::{Harness, block_on};
use varpulis_store::{Capabilities, Key, StateStore, StoreError, WriteBatch};
use varpulis_store_rocks::{Compression, RocksDbOptions, RocksDbStore};

use crate::RocksHarness;

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[test]
fn lists_in_segment_order_not_byte_order() {
    block_on(async {
        let h = RocksHarness::new();
        let s = h.open().await;
        // In plain bytes ':' (0x3a) sorts after '-', '.', '0'-'9'; by segments `a:z` comes first.
        let keys = [
            "a-b", "a.b", "a0", "a9:x", "a:z", "a:z:0", "a:z-", "a", "b", "a:y",
        ];
        for key in keys {
            s.put(&k(key), key.as_bytes()).await.unwrap();
        }
        let want: Vec<Key> = [
            "a", "a:y", "a:z", "a:z:0", "a:z-", "a-b", "a.b", "a0", "a9:x", "b",
        ]
        .iter()
        .map(|x| k(x))
        .collect();
        let mut sorted = want.clone();
        sorted.sort();
        assert_eq!(want, sorted, "test expectation is Key's order");
        assert_eq!(s.list(&Key::root()).await.unwrap(), want);
        assert_eq!(s.list(&k("a:z")).await.unwrap(), vec![k("a:z"), k("a:z:0")]);
        drop(s);
        // Order comes from the on-disk encoding, so it holds after reopening too.
        let s = h.open().await;
        assert_eq!(s.list(&Key::root()).await.unwrap(), want);
    });
}

#[test]
fn failed_batch_writes_nothing() {
    block_on(async {
        let h = RocksHarness::new();
        let s = h.open().await;
        s.put(&k("acct:a"), b"100").await.unwrap();
        let mut batch = WriteBatch::new();
        batch
            .put(k("acct:a"), b"50".to_vec())
            .put(k("acct:b"), b"50".to_vec())
            .delete(Key::root());
        assert!(matches!(
            s.write_batch(batch).await,
            Err(StoreError::InvalidKey { .. })
        ));
        assert_eq!(
            s.get(&k("acct:a")).await.unwrap().as_deref(),
            Some(&b"100"[..])
        );
        assert_eq!(s.get(&k("acct:b")).await.unwrap(), None);
    });
}

#[test]
fn batch_is_visible_all_at_once_to_concurrent_listings() {
    block_on(async {
        let h = RocksHarness::new();
        let s = Arc::new(h.open().await);
        let writer = {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for round in 0..200_u32 {
                    let mut batch = WriteBatch::new();
                    for i in 0..10 {
                        batch.put(
                            k(&format!("batch:{round}:{i}")),
                            round.to_le_bytes().to_vec(),
                        );
                    }
                    if round > 0 {
                        for i in 0..10 {
                            batch.delete(k(&format!("batch:{}:{i}", round - 1)));
                        }
                    }
                    s.write_batch(batch).await.unwrap();
                }
            })
        };
        while !writer.is_finished() {
            let seen = s.list(&k("batch")).await.unwrap();
            assert!(
                seen.is_empty() || seen.len() == 10,
                "listing saw part of a batch: {seen:?}"
            );
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert_eq!(s.list(&k("batch")).await.unwrap().len(), 10);
        assert_eq!(s.list(&k("batch:199")).await.unwrap().len(), 10);
    });
}

#[test]
fn unflushed_writes_survive_reopen() {
    block_on(async {
        let h = RocksHarness::new();
        let s = h.open().await;
        s.put(&k("wal:1"), b"one").await.unwrap();
        let mut batch = WriteBatch::new();
        batch.put(k("wal:2"), b"two".to_vec());
        s.write_batch(batch).await.unwrap();
        // No flush: the write-ahead log alone carries the writes across a close.
        drop(s);
        let s = h.open().await;
        assert_eq!(
            s.list(&k("wal")).await.unwrap(),
            vec![k("wal:1"), k("wal:2")]
        );
    });
}

#[test]
fn reports_capabilities_and_path() {
    let h = RocksHarness::new();
    let s = RocksDbStore::open(h.path()).unwrap();
    // Unsynced writes may reach the disk out of order: no ordered durability by default.
    assert_eq!(s.capabilities(), Capabilities::new(true, true));
    assert_eq!(s.path(), h.path());
    assert!(format!("{s:?}").contains("RocksDbStore"));
    drop(s);
    let mut options = RocksDbOptions::default();
    options.sync_writes = true;
    let synced = RocksDbStore::open_with(h.path(), &options).unwrap();
    assert_eq!(
        synced.capabilities(),
        Capabilities::new(true, true).with_ordered_durability(true)
    );
}

#[test]
fn second_open_of_a_locked_database_is_a_backend_error() {
    let h = RocksHarness::new();
    let _first = RocksDbStore::open(h.path()).unwrap();
    match RocksDbStore::open(h.path()) {
        Err(StoreError::Backend { backend, message }) => {
            assert_eq!(backend, "rocksdb");
            assert!(
                message.contains(&h.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[test]
fn open_reports_an_uncreatable_directory_as_io_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let path = file.join("db");
    match RocksDbStore::open(&path) {
        Err(StoreError::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an i/o error, got {other:?}"),
    }
}

#[test]
fn open_without_create_if_missing_fails_on_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = RocksDbOptions::default();
    options.create_if_missing = false;
    assert!(RocksDbStore::open_with(dir.path().join("absent"), &options).is_err());
}

#[test]
fn options_default_to_the_seed_configuration() {
    let o = RocksDbOptions::default();
    assert_eq!(o.compression, Compression::Lz4);
    assert_eq!(o.write_buffer_size, 64 * 1024 * 1024);
    assert_eq!(o.max_write_buffers, 3);
    assert_eq!(o.target_file_size, 64 * 1024 * 1024);
    assert!(o.create_if_missing);
    assert!(!o.sync_writes);
}

#[test]
fn synced_and_uncompressed_stores_work_too() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut options = RocksDbOptions::default();
        options.sync_writes = true;
        options.compression = Compression::None;
        let s = RocksDbStore::open_with(dir.path().join("db"), &options).unwrap();
        s.put(&k("s"), b"synced").await.unwrap();
        s.delete(&k("s")).await.unwrap();
        s.put(&k("s"), b"again").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(
            s.get(&k("s")).await.unwrap().as_deref(),
            Some(&b"again"[..])
        );
    });
}

#[test]
fn clones_share_the_database_and_the_last_drop_releases_it() {
    block_on(async {
        let h = RocksHarness::new();
        let a = h.open().await;
        let b = a.clone();
        a.put(&k("shared"), b"1").await.unwrap();
        assert_eq!(
            b.get(&k("shared")).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        drop(a);
        assert!(
            RocksDbStore::open(h.path()).is_err(),
            "still held by the clone"
        );
        drop(b);
        let c = RocksDbStore::open(h.path()).unwrap();
        assert_eq!(
            c.get(&k("shared")).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
    });
}

#[test]
fn refuses_a_database_written_in_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, &path).unwrap();
        db.put(b"\x00varpulis-format", [2]).unwrap();
    }
    match RocksDbStore::open(&path) {
        Err(StoreError::Corrupt { reason, .. }) => assert!(reason.contains("format"), "{reason}"),
        other => panic!("expected a corrupt error, got {other:?}"),
    }
}

#[test]
fn stores_keys_with_zero_byte_separators() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    block_on(async {
        let s = RocksDbStore::open(&path).unwrap();
        s.put(&k("tenants:acme:quota"), b"7").await.unwrap();
    });
    let db = rocksdb::DB::open_default(&path).unwrap();
    assert_eq!(
        db.get(b"tenants\0acme\0quota").unwrap().as_deref(),
        Some(&b"7"[..])
    );
    assert_eq!(
        db.get(b"\x00varpulis-format").unwrap().as_deref(),
        Some(&[1][..])
    );
}
