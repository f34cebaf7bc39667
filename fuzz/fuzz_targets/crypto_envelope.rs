//! The encrypted value envelope, opened through `EncryptedStateStore::get` with a fixed key.
//!
//! Asserts: bytes placed in the inner store never decrypt (`get` is an error, never `Ok`, never
//! a panic), also when their header names the store's key id so that AES-GCM authentication
//! runs; `envelope_key_id` reads the header exactly as documented; a value sealed by `put`
//! reads back equal, has the documented length, and any change to it (one byte flipped,
//! truncated, extended, or moved to another key) makes `get` fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_crypto::envelope::{ENVELOPE_VERSION, OVERHEAD};
use varpulis_crypto::{EncryptedStateStore, EncryptionKey, KeyId, envelope_key_id};
use varpulis_fuzz::block_on;
use varpulis_store::{Key, MemoryStore, StateStore};

fn store() -> EncryptedStateStore<MemoryStore> {
    EncryptedStateStore::new(MemoryStore::new(), EncryptionKey::from_bytes([0x2a; 32]))
}

fn must_not_open(store: &EncryptedStateStore<MemoryStore>, key: &Key, raw: &[u8]) {
    block_on(async {
        store.inner().put(key, raw).await.unwrap();
        match store.get(key).await {
            Err(_) => {}
            Ok(v) => panic!("bytes not produced by seal opened to {v:?}"),
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let store = store();
    let key = Key::new("fuzz:value").unwrap();
    let expected_id = (rest.len() >= OVERHEAD && rest[0] == ENVELOPE_VERSION)
        .then(|| KeyId::from_u32(u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]])));
    assert_eq!(envelope_key_id(rest), expected_id);
    match mode % 3 {
        // Arbitrary bytes.
        0 => must_not_open(&store, &key, rest),
        // Arbitrary bytes with a valid header for the store's key: authentication must fail.
        1 => {
            let mut raw = rest.to_vec();
            if raw.len() >= 5 {
                raw[0] = ENVELOPE_VERSION;
                raw[1..5].copy_from_slice(&store.active_key_id().to_be_bytes());
            }
            must_not_open(&store, &key, &raw);
        }
        // A real seal of `rest`, then damaged as the high bits of `mode` say.
        _ => block_on(async {
            store.put(&key, rest).await.unwrap();
            let sealed = store.inner().get(&key).await.unwrap().unwrap();
            assert_eq!(sealed.len(), rest.len() + OVERHEAD);
            assert_eq!(envelope_key_id(&sealed), Some(store.active_key_id()));
            assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(rest));
            let at = usize::from(mode >> 2).wrapping_mul(31) % sealed.len();
            let mut damaged = sealed.clone();
            match (mode >> 2) % 4 {
                0 => damaged[at] ^= 1 << (mode % 8),
                1 => damaged.truncate(at),
                2 => damaged.push(mode),
                _ => {
                    // Moved to another key: same bytes, other associated data.
                    must_not_open(&store, &Key::new("fuzz:other").unwrap(), &sealed);
                    return;
                }
            }
            must_not_open(&store, &key, &damaged);
        }),
    }
});
