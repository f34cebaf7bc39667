//! The wrapper's own records are invisible and untouchable through it.

use varpulis_crypto::{CHECK_KEY, EncryptedStateStore, KDF_KEY, RESERVED_SEGMENT};
use varpulis_store::{Key, KeyProblem, MemoryStore, StateStore, StoreError, WriteBatch};

use crate::common::{fast_kdf, k, run};

#[test]
fn reserved_records_are_hidden_from_list() {
    run(async {
        let inner = MemoryStore::new();
        let store = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf())
            .await
            .unwrap();
        assert_eq!(
            inner.list(&Key::root()).await.unwrap(),
            vec![k(CHECK_KEY), k(KDF_KEY)]
        );
        assert_eq!(store.list(&Key::root()).await.unwrap(), Vec::<Key>::new());
        assert_eq!(
            store.list(&k(RESERVED_SEGMENT)).await.unwrap(),
            Vec::<Key>::new()
        );
        store.put(&k("user"), b"v").await.unwrap();
        assert_eq!(store.list(&Key::root()).await.unwrap(), vec![k("user")]);
    });
}

#[test]
fn reserved_keys_are_refused_through_the_wrapper() {
    run(async {
        let inner = MemoryStore::new();
        let store = EncryptedStateStore::open(inner.clone(), crate::common::key(1))
            .await
            .unwrap();
        let check_before = inner.get(&k(CHECK_KEY)).await.unwrap();
        let refused = |r: &Result<_, StoreError>| {
            matches!(
                r,
                Err(StoreError::InvalidKey {
                    problem: KeyProblem::Reserved,
                    ..
                })
            )
        };
        for name in [
            CHECK_KEY,
            KDF_KEY,
            RESERVED_SEGMENT,
            "__varpulis-crypto:anything:else",
        ] {
            let key = k(name);
            assert!(refused(&store.get(&key).await.map(drop)), "get {name}");
            assert!(refused(&store.put(&key, b"x").await), "put {name}");
            assert!(refused(&store.delete(&key).await), "delete {name}");
            let mut batch = WriteBatch::new();
            batch.put(k("ok"), b"1".to_vec()).delete(key);
            assert!(refused(&store.write_batch(batch).await), "batch {name}");
        }
        assert_eq!(
            store.get(&k("ok")).await.unwrap(),
            None,
            "refused batch wrote nothing"
        );
        assert_eq!(inner.get(&k(CHECK_KEY)).await.unwrap(), check_before);
        // Look-alike keys are ordinary keys.
        store
            .put(&k("__varpulis-crypto2:x"), b"fine")
            .await
            .unwrap();
        store.put(&k("a:__varpulis-crypto"), b"fine").await.unwrap();
    });
}

#[test]
fn the_passphrase_record_is_plaintext_salt_and_params() {
    run(async {
        let inner = MemoryStore::new();
        EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf())
            .await
            .unwrap();
        let record = inner.get(&k(KDF_KEY)).await.unwrap().unwrap();
        // version 1, Argon2id, argon2 0x13, m=8, t=1, p=1, 16-byte salt
        assert_eq!(record[..3], [1, 2, 0x13]);
        assert_eq!(record[3..15], [0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(record[15], 16);
        assert_eq!(record.len(), 16 + 16);
    });
}

#[test]
fn a_damaged_passphrase_record_is_corrupt_not_a_panic() {
    run(async {
        let inner = MemoryStore::new();
        EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf())
            .await
            .unwrap();
        let mut record = inner.get(&k(KDF_KEY)).await.unwrap().unwrap();
        record[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        inner.put(&k(KDF_KEY), &record).await.unwrap();
        let r = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf()).await;
        assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{r:?}");
        inner.put(&k(KDF_KEY), &record[..5]).await.unwrap();
        let r = EncryptedStateStore::open_with_passphrase(inner, "pw", fast_kdf()).await;
        assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{r:?}");
    });
}
