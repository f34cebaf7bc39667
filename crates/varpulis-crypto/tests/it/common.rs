//! Shared helpers: the conformance harness over an encrypted store, fixed keys, a runtime.

use std::future::Future;
use std::path::Path;

use async_trait::async_trait;
use varpulis_crypto::{EncryptedStateStore, EncryptionKey, KdfParams};
use varpulis_store::Key;
use varpulis_store::testing::Harness;

/// A fixed test key (`seed` repeated).
pub(crate) fn key(seed: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([seed; 32])
}

/// The cheapest Argon2id parameters, so passphrase tests stay fast.
pub(crate) fn fast_kdf() -> KdfParams {
    KdfParams::new(8, 1, 1).unwrap()
}

pub(crate) fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

pub(crate) fn run<F: Future>(f: F) -> F::Output {
    varpulis_store::testing::block_on(f)
}

/// Opens `EncryptedStateStore<H::Store>` over the inner harness's store, with a fixed key and the
/// key check (`open`), so every reopen validates the key.
pub(crate) struct EncryptedHarness<H> {
    inner: H,
    key: EncryptionKey,
}

impl<H: Harness> EncryptedHarness<H> {
    pub(crate) fn new(inner: H) -> Self {
        Self { inner, key: key(7) }
    }
}

#[async_trait]
impl<H: Harness> Harness for EncryptedHarness<H> {
    type Store = EncryptedStateStore<H::Store>;

    async fn open(&self) -> Self::Store {
        EncryptedStateStore::open(self.inner.open().await, self.key.clone())
            .await
            .expect("open encrypted store")
    }

    fn sandbox(&self) -> Option<&Path> {
        self.inner.sandbox()
    }
}
