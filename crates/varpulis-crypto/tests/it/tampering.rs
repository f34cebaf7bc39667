//! Damaged, truncated, moved or foreign values are `Corrupt`: never a panic, never plaintext.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::runtime::Runtime;
use varpulis_crypto::EncryptedStateStore;
use varpulis_crypto::envelope::OVERHEAD;
use varpulis_store::{MemoryStore, StateStore, StoreError};

use crate::common::{k, key, run};

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x7661_7270),
        ..Config::default()
    }
}

/// Stores `plaintext` at `t:v` and returns the store with the raw envelope.
async fn stored(plaintext: &[u8]) -> (EncryptedStateStore<MemoryStore>, Vec<u8>) {
    let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
    store.put(&k("t:v"), plaintext).await.unwrap();
    let raw = store.inner().get(&k("t:v")).await.unwrap().unwrap();
    (store, raw)
}

fn assert_corrupt_at(
    r: Result<Option<Vec<u8>>, StoreError>,
    at: &str,
) -> Result<(), TestCaseError> {
    match r {
        Err(StoreError::Corrupt { key, .. }) if key == at => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "expected Corrupt at {at}, got {other:?}"
        ))),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn flipping_any_single_byte_of_a_stored_value_is_corrupt(
        plaintext in prop::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        mask in 1..=255_u8,
    ) {
        rt().block_on(async {
            let (store, mut raw) = stored(&plaintext).await;
            let i = at.index(raw.len());
            raw[i] ^= mask;
            store.inner().put(&k("t:v"), &raw).await.unwrap();
            assert_corrupt_at(store.get(&k("t:v")).await, "t:v")
        })?;
    }

    #[test]
    fn truncating_or_extending_a_stored_value_is_corrupt(
        plaintext in prop::collection::vec(any::<u8>(), 0..200),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..40),
    ) {
        rt().block_on(async {
            let (store, raw) = stored(&plaintext).await;
            let len = cut.index(raw.len());
            store.inner().put(&k("t:v"), &raw[..len]).await.unwrap();
            assert_corrupt_at(store.get(&k("t:v")).await, "t:v")?;
            let mut longer = raw.clone();
            longer.extend_from_slice(&extra);
            store.inner().put(&k("t:v"), &longer).await.unwrap();
            assert_corrupt_at(store.get(&k("t:v")).await, "t:v")
        })?;
    }

    #[test]
    fn moving_a_stored_value_to_another_key_is_corrupt(
        plaintext in prop::collection::vec(any::<u8>(), 0..200),
        target in prop::sample::select(vec!["t:w", "t", "t:v:x", "u:v", "t:V", "tv"]),
    ) {
        rt().block_on(async {
            let (store, raw) = stored(&plaintext).await;
            store.inner().put(&k(target), &raw).await.unwrap();
            assert_corrupt_at(store.get(&k(target)).await, target)?;
            // The original stays readable.
            prop_assert_eq!(store.get(&k("t:v")).await.unwrap(), Some(plaintext.clone()));
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_under_a_key_are_corrupt(
        bytes in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        rt().block_on(async {
            let store = EncryptedStateStore::new(MemoryStore::new(), key(1));
            store.inner().put(&k("junk"), &bytes).await.unwrap();
            assert_corrupt_at(store.get(&k("junk")).await, "junk")
        })?;
    }
}

#[test]
fn a_value_under_an_unknown_key_id_is_corrupt_naming_the_id() {
    run(async {
        let (_, raw) = stored(b"secret").await;
        let other = EncryptedStateStore::new(MemoryStore::new(), key(2));
        other.inner().put(&k("t:v"), &raw).await.unwrap();
        match other.get(&k("t:v")).await {
            Err(StoreError::Corrupt { key: at, reason }) => {
                assert_eq!(at, "t:v");
                assert!(reason.contains(&key(1).key_id().to_string()), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_value_decrypted_with_the_wrong_key_of_the_same_id_fails_authentication() {
    run(async {
        let (_, mut raw) = stored(b"secret").await;
        // Relabel the envelope with key 2's id: the id is known, the tag does not verify.
        raw[1..5].copy_from_slice(&key(2).key_id().to_be_bytes());
        let other = EncryptedStateStore::new(MemoryStore::new(), key(2));
        other.inner().put(&k("t:v"), &raw).await.unwrap();
        match other.get(&k("t:v")).await {
            Err(StoreError::Corrupt { reason, .. }) => assert_eq!(reason, "authentication failed"),
            other => panic!("{other:?}"),
        }
        assert!(raw.len() >= OVERHEAD);
    });
}
