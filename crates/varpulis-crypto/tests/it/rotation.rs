//! Key rotation: every value moves to the new key, nothing is lost, interruptions resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use varpulis_crypto::{EncryptedStateStore, KDF_KEY, Keyring, envelope_key_id};
use varpulis_store::testing::{FileHarness, Harness};
use varpulis_store::{Capabilities, Key, MemoryStore, StateStore, StoreError, WriteBatch};

use crate::common::{fast_kdf, k, key, run};

async fn assert_all_under<S: StateStore>(inner: &S, id: varpulis_crypto::KeyId) {
    for name in inner.list(&Key::root()).await.unwrap() {
        if name == k(KDF_KEY) {
            continue;
        }
        let raw = inner.get(&name).await.unwrap().unwrap();
        assert_eq!(envelope_key_id(&raw), Some(id), "{name} not under {id}");
    }
}

fn value_of(i: usize) -> Vec<u8> {
    if i == 7 {
        vec![0x5a; 2 * 1024 * 1024]
    } else {
        format!("value {i}").repeat(i).into_bytes()
    }
}

#[test]
fn rotation_keeps_every_value_readable_and_leaves_none_under_the_old_key() {
    run(async {
        let h = FileHarness::new();
        let store = EncryptedStateStore::open(h.open().await, key(1))
            .await
            .unwrap();
        for i in 0..40 {
            store
                .put(&k(&format!("v:{i}")), &value_of(i))
                .await
                .unwrap();
        }
        let report = store.rotate(key(2)).await.unwrap();
        assert_eq!(report.rewritten, 41, "40 values and the key check");
        assert_eq!(report.unchanged, 0);
        assert_eq!(store.active_key_id(), key(2).key_id());
        assert_all_under(store.inner(), key(2).key_id()).await;
        for i in 0..40 {
            assert_eq!(
                store.get(&k(&format!("v:{i}"))).await.unwrap(),
                Some(value_of(i))
            );
        }
        // Reopened later: the new key opens it, the old key alone is refused.
        drop(store);
        let old = EncryptedStateStore::open(h.open().await, key(1)).await;
        assert!(matches!(old, Err(StoreError::WrongKey { .. })), "{old:?}");
        let store = EncryptedStateStore::open(h.open().await, key(2))
            .await
            .unwrap();
        assert_eq!(store.get(&k("v:3")).await.unwrap(), Some(value_of(3)));
        // Rotating to the active key again rewrites nothing.
        let again = store.rotate(key(2)).await.unwrap();
        assert_eq!((again.rewritten, again.unchanged), (0, 41));
    });
}

#[test]
fn a_rotated_passphrase_store_opens_with_the_new_key_only() {
    run(async {
        let inner = MemoryStore::new();
        let store = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf())
            .await
            .unwrap();
        store.put(&k("x"), b"v").await.unwrap();
        store.rotate(key(5)).await.unwrap();
        assert_all_under(&inner, key(5).key_id()).await;
        let by_pass =
            EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf()).await;
        assert!(matches!(by_pass, Err(StoreError::WrongKey { .. })));
        let by_key = EncryptedStateStore::open(inner, key(5)).await.unwrap();
        assert_eq!(
            by_key.get(&k("x")).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    });
}

/// Forwards to a `MemoryStore` but fails every `put` once `puts_left` reaches zero.
#[derive(Clone)]
struct FailingStore {
    inner: MemoryStore,
    puts_left: Arc<AtomicUsize>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl StateStore for FailingStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        let allowed = self
            .puts_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !allowed {
            return Err(StoreError::Unavailable {
                reason: "injected failure".to_owned(),
            });
        }
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.write_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[test]
fn an_interrupted_rotation_is_finished_by_rotating_again() {
    run(async {
        for fail_after in [0, 1, 5, 19] {
            let failing = FailingStore {
                inner: MemoryStore::new(),
                puts_left: Arc::new(AtomicUsize::new(usize::MAX)),
            };
            let store = EncryptedStateStore::open(failing.clone(), key(1))
                .await
                .unwrap();
            for i in 0..20 {
                store
                    .put(&k(&format!("v:{i}")), &value_of(i))
                    .await
                    .unwrap();
            }
            failing.puts_left.store(fail_after, Ordering::SeqCst);
            assert!(store.rotate(key(2)).await.is_err());
            // Half-rotated: everything still reads, and the new key is already active.
            for i in 0..20 {
                assert_eq!(
                    store.get(&k(&format!("v:{i}"))).await.unwrap(),
                    Some(value_of(i))
                );
            }
            // A process restarting mid-rotation opens with both keys.
            let mut ring = Keyring::new(key(2));
            ring.add(key(1)).unwrap();
            EncryptedStateStore::open_with_keyring(failing.clone(), ring)
                .await
                .unwrap();
            failing.puts_left.store(usize::MAX, Ordering::SeqCst);
            let report = store.rotate(key(2)).await.unwrap();
            assert_eq!(report.rewritten + report.unchanged, 21);
            assert_eq!(report.unchanged, fail_after);
            assert_all_under(&failing.inner, key(2).key_id()).await;
        }
    });
}

#[test]
fn writes_during_a_rotation_are_neither_lost_nor_left_under_the_old_key() {
    run(async {
        let inner = MemoryStore::new();
        let store = Arc::new(
            EncryptedStateStore::open(inner.clone(), key(1))
                .await
                .unwrap(),
        );
        for i in 0..200 {
            store.put(&k(&format!("old:{i}")), b"before").await.unwrap();
        }
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..50 {
                        store
                            .put(&k(&format!("new:{t}:{i}")), &[t, i])
                            .await
                            .unwrap();
                        store.put(&k(&format!("old:{i}")), b"after").await.unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        store.rotate(key(2)).await.unwrap();
        for w in writers {
            w.await.unwrap();
        }
        assert_all_under(&inner, key(2).key_id()).await;
        for t in 0..4_u8 {
            for i in 0..50_u8 {
                assert_eq!(
                    store.get(&k(&format!("new:{t}:{i}"))).await.unwrap(),
                    Some(vec![t, i])
                );
            }
        }
        for i in 0..50 {
            assert_eq!(
                store.get(&k(&format!("old:{i}"))).await.unwrap().as_deref(),
                Some(&b"after"[..])
            );
        }
    });
}
