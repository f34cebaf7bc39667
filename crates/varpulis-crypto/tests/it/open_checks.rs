//! Opening a store: the key check, passphrases, and stores written before the check existed.

use varpulis_crypto::{EncryptedStateStore, KdfParams, Keyring};
use varpulis_store::testing::{FileHarness, Harness};
use varpulis_store::{FileStore, MemoryStore, StateStore, StoreError};

use crate::common::{fast_kdf, k, key, run};

fn is_wrong_key<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::WrongKey { .. }))
}

#[test]
fn opening_with_the_wrong_key_is_wrong_key_at_open() {
    run(async {
        let inner = MemoryStore::new();
        let store = EncryptedStateStore::open(inner.clone(), key(1))
            .await
            .unwrap();
        store.put(&k("a"), b"1").await.unwrap();
        let wrong = EncryptedStateStore::open(inner.clone(), key(2)).await;
        assert!(is_wrong_key(&wrong), "{wrong:?}");
        let msg = wrong.unwrap_err().to_string();
        assert!(msg.contains(&key(1).key_id().to_string()), "{msg}");
        // A failed open writes nothing: the right key still opens and reads.
        let again = EncryptedStateStore::open(inner, key(1)).await.unwrap();
        assert_eq!(
            again.get(&k("a")).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
    });
}

#[test]
fn a_file_store_reopens_with_its_key_and_refuses_another() {
    run(async {
        let h = FileHarness::new();
        let store = EncryptedStateStore::open(h.open().await, key(1))
            .await
            .unwrap();
        store.put(&k("t:acme"), b"state").await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        let wrong = EncryptedStateStore::open(FileStore::open(h.root()).unwrap(), key(2)).await;
        assert!(is_wrong_key(&wrong));
        let store = EncryptedStateStore::open(h.open().await, key(1))
            .await
            .unwrap();
        assert_eq!(
            store.get(&k("t:acme")).await.unwrap().as_deref(),
            Some(&b"state"[..])
        );
    });
}

#[test]
fn wrong_passphrase_is_wrong_key_at_open() {
    run(async {
        let inner = MemoryStore::new();
        let store = EncryptedStateStore::open_with_passphrase(inner.clone(), "right", fast_kdf())
            .await
            .unwrap();
        store.put(&k("x"), b"v").await.unwrap();
        let wrong =
            EncryptedStateStore::open_with_passphrase(inner.clone(), "wrong", fast_kdf()).await;
        assert!(is_wrong_key(&wrong), "{wrong:?}");
        let wrong_raw = EncryptedStateStore::open(inner, key(1)).await;
        assert!(is_wrong_key(&wrong_raw));
    });
}

#[test]
fn passphrase_store_reopens_with_its_stored_salt_and_params() {
    run(async {
        let inner = MemoryStore::new();
        let first = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf())
            .await
            .unwrap();
        first.put(&k("x"), b"v").await.unwrap();
        // Different params at reopen are ignored: the stored ones derive the same key.
        let other_params = KdfParams::new(16, 2, 1).unwrap();
        let second = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", other_params)
            .await
            .unwrap();
        assert_eq!(second.active_key_id(), first.active_key_id());
        assert_eq!(
            second.get(&k("x")).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
        // Two stores with one passphrase get different salts, hence different keys.
        let elsewhere =
            EncryptedStateStore::open_with_passphrase(MemoryStore::new(), "pw", fast_kdf())
                .await
                .unwrap();
        assert_ne!(elsewhere.active_key_id(), first.active_key_id());
    });
}

#[test]
fn a_raw_key_store_opened_with_a_passphrase_is_wrong_key_and_left_unchanged() {
    run(async {
        let inner = MemoryStore::new();
        EncryptedStateStore::open(inner.clone(), key(1))
            .await
            .unwrap();
        let r = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf()).await;
        assert!(is_wrong_key(&r), "{r:?}");
        assert!(
            inner
                .get(&k(varpulis_crypto::KDF_KEY))
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn a_store_written_without_a_check_record_is_checked_against_its_values() {
    run(async {
        let inner = MemoryStore::new();
        let plain = EncryptedStateStore::new(inner.clone(), key(1));
        plain.put(&k("a"), b"1").await.unwrap();
        assert!(
            inner
                .get(&k(varpulis_crypto::CHECK_KEY))
                .await
                .unwrap()
                .is_none()
        );
        assert!(is_wrong_key(
            &EncryptedStateStore::open(inner.clone(), key(2)).await
        ));
        let mut ring = Keyring::new(key(2));
        ring.add(key(1)).unwrap();
        let ok = EncryptedStateStore::open_with_keyring(inner.clone(), ring)
            .await
            .unwrap();
        assert_eq!(ok.get(&k("a")).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(
            inner
                .get(&k(varpulis_crypto::CHECK_KEY))
                .await
                .unwrap()
                .is_some()
        );
    });
}

#[test]
fn an_unencrypted_store_is_refused_at_open() {
    run(async {
        let inner = MemoryStore::new();
        inner
            .put(&k("plain"), b"not encrypted at all, long enough to parse")
            .await
            .unwrap();
        let r = EncryptedStateStore::open(inner.clone(), key(1)).await;
        assert!(is_wrong_key(&r), "{r:?}");
        assert!(r.unwrap_err().to_string().contains("without encryption"));
    });
}

#[test]
fn a_keyring_holding_the_writing_key_opens_the_store() {
    run(async {
        let inner = MemoryStore::new();
        EncryptedStateStore::open(inner.clone(), key(1))
            .await
            .unwrap();
        let mut ring = Keyring::new(key(2));
        ring.add(key(1)).unwrap();
        let store = EncryptedStateStore::open_with_keyring(inner, ring)
            .await
            .unwrap();
        assert_eq!(store.active_key_id(), key(2).key_id());
    });
}

#[test]
fn a_passphrase_over_values_it_cannot_read_is_wrong_key_and_writes_nothing() {
    run(async {
        let inner = MemoryStore::new();
        EncryptedStateStore::new(inner.clone(), key(1))
            .put(&k("a"), b"1")
            .await
            .unwrap();
        let r = EncryptedStateStore::open_with_passphrase(inner.clone(), "pw", fast_kdf()).await;
        assert!(is_wrong_key(&r), "{r:?}");
        assert_eq!(
            inner.list(&varpulis_store::Key::root()).await.unwrap(),
            vec![k("a")]
        );
    });
}
