//! The envelope on disk: layout, fresh nonces, large values, and golden bytes.

use varpulis_crypto::envelope::{ENVELOPE_VERSION, HEADER_LEN, OVERHEAD};
use varpulis_crypto::{EncryptedStateStore, envelope_key_id};
use varpulis_store::{MemoryStore, StateStore, StoreError, WriteBatch};

use crate::common::{k, key, run};

#[test]
fn stored_value_is_version_key_id_nonce_then_ciphertext_and_tag() {
    run(async {
        let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
        store.put(&k("a:b"), b"plaintext value").await.unwrap();
        let raw = store.inner().get(&k("a:b")).await.unwrap().unwrap();
        assert_eq!(raw.len(), b"plaintext value".len() + OVERHEAD);
        assert_eq!(raw[0], ENVELOPE_VERSION);
        assert_eq!(raw[1..5], key(1).key_id().to_be_bytes());
        assert_eq!(envelope_key_id(&raw), Some(key(1).key_id()));
        assert!(!raw.windows(9).any(|w| w == b"plaintext"));
    });
}

#[test]
fn two_encryptions_of_one_value_differ() {
    run(async {
        let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
        store.put(&k("x"), b"same").await.unwrap();
        let first = store.inner().get(&k("x")).await.unwrap().unwrap();
        store.put(&k("x"), b"same").await.unwrap();
        let second = store.inner().get(&k("x")).await.unwrap().unwrap();
        assert_ne!(first[5..HEADER_LEN], second[5..HEADER_LEN], "nonce reused");
        assert_ne!(first, second);
        store.put(&k("y"), b"same").await.unwrap();
        let third = store.inner().get(&k("y")).await.unwrap().unwrap();
        assert_ne!(first[HEADER_LEN..], third[HEADER_LEN..]);
    });
}

#[test]
fn batch_values_are_encrypted_too() {
    run(async {
        let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
        let mut batch = WriteBatch::new();
        batch
            .put(k("b:1"), b"batch secret".to_vec())
            .put(k("b:2"), Vec::new());
        store.write_batch(batch).await.unwrap();
        for key_name in ["b:1", "b:2"] {
            let raw = store.inner().get(&k(key_name)).await.unwrap().unwrap();
            assert_eq!(envelope_key_id(&raw), Some(key(1).key_id()));
        }
        assert_eq!(
            store.get(&k("b:1")).await.unwrap().as_deref(),
            Some(&b"batch secret"[..])
        );
    });
}

#[test]
fn large_values_round_trip_outside_a_runtime_and_inside_one() {
    let value: Vec<u8> = (0..3 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
    let store = EncryptedStateStore::new(MemoryStore::new(), key(3));
    // No runtime at all: the wrapper encrypts inline instead of using spawn_blocking.
    let mut ctx = std::task::Context::from_waker(std::task::Waker::noop());
    let big = k("big");
    let mut put = Box::pin(store.put(&big, &value));
    assert!(put.as_mut().poll(&mut ctx).is_ready());
    drop(put);
    run(async {
        assert_eq!(
            store.get(&k("big")).await.unwrap().as_deref(),
            Some(&value[..])
        );
    });
}

#[test]
fn large_batch_values_round_trip_and_are_rotated() {
    // Above the 1 MiB threshold, batch values and rotated values are sealed in place on the
    // blocking pool: same envelope, same bytes out.
    let value: Vec<u8> = (0..3 * 1024 * 1024_u32).map(|i| (i % 253) as u8).collect();
    run(async {
        let store = EncryptedStateStore::new(MemoryStore::new(), key(3));
        let mut batch = WriteBatch::new();
        batch
            .put(k("big:1"), value.clone())
            .put(k("big:2"), b"small".to_vec());
        store.write_batch(batch).await.unwrap();
        let raw = store.inner().get(&k("big:1")).await.unwrap().unwrap();
        assert_eq!(raw.len(), value.len() + OVERHEAD);
        assert_eq!(envelope_key_id(&raw), Some(key(3).key_id()));
        assert_eq!(
            store.get(&k("big:1")).await.unwrap().as_deref(),
            Some(&value[..])
        );

        store.rotate(key(4)).await.unwrap();
        let raw = store.inner().get(&k("big:1")).await.unwrap().unwrap();
        assert_eq!(envelope_key_id(&raw), Some(key(4).key_id()));
        assert_eq!(
            store.get(&k("big:1")).await.unwrap().as_deref(),
            Some(&value[..])
        );
        assert_eq!(
            store.get(&k("big:2")).await.unwrap().as_deref(),
            Some(&b"small"[..])
        );
    });
}

/// Bytes written by version 1 of the envelope (key = 0x01 * 32, storage key `golden:v1`,
/// plaintext `varpulis`). Today's code must keep reading them.
const GOLDEN_V1: &str =
    "013ccd7e7df61dce364e6ca97f599a162162c7527a7df8bf5633fb050762531e62fd569615ecc87c1c";

#[test]
fn version_1_envelopes_stay_readable() {
    run(async {
        let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
        let raw = hex_decode(GOLDEN_V1);
        store.inner().put(&k("golden:v1"), &raw).await.unwrap();
        assert_eq!(
            store.get(&k("golden:v1")).await.unwrap().as_deref(),
            Some(&b"varpulis"[..])
        );
        store.inner().put(&k("golden:moved"), &raw).await.unwrap();
        assert!(matches!(
            store.get(&k("golden:moved")).await,
            Err(StoreError::Corrupt { .. })
        ));
    });
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
