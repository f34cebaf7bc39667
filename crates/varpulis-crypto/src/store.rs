//! [`EncryptedStateStore`]: the encrypting [`StateStore`] wrapper.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore as _;
use async_trait::async_trait;
use varpulis_store::{BatchOp, Capabilities, Key, KeyProblem, StateStore, StoreError, WriteBatch};
use zeroize::Zeroizing;

use crate::envelope::{self, OpenError};
use crate::kdf::{self, KdfRecord};
use crate::{CryptoError, EncryptionKey, KdfParams, KeyId, Keyring};

/// First segment of the keys the wrapper keeps its own records under. Hidden from `list` and
/// refused by `get`/`put`/`delete`/`write_batch` of the wrapper.
pub const RESERVED_SEGMENT: &str = "__varpulis-crypto";
/// The key-check record: the encryption of the constant `varpulis-crypto key check v1` under the
/// active key.
pub const CHECK_KEY: &str = "__varpulis-crypto:check";
/// The plaintext Argon2 record (salt and parameters) of a passphrase store.
pub const KDF_KEY: &str = "__varpulis-crypto:kdf";
/// What the key-check record decrypts to.
pub(crate) const CHECK_PLAINTEXT: &[u8] = b"varpulis-crypto key check v1";
/// Values larger than this are encrypted and decrypted on tokio's blocking pool (when called
/// inside a tokio runtime) so a large value does not stall an executor thread (16 MiB: about
/// 2.5 ms with `ring` on an AVX2 + VAES core, about 14 ms with the portable `aes-gcm`).
pub(crate) const BLOCKING_THRESHOLD: usize = 1024 * 1024;

/// What [`EncryptedStateStore::rotate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RotationReport {
    /// Values re-encrypted under the new key (the key-check record included).
    pub rewritten: usize,
    /// Values already under the new key (from an earlier, interrupted rotation or a concurrent
    /// write), left alone.
    pub unchanged: usize,
}

/// A [`StateStore`] that encrypts every value with AES-256-GCM before handing it to `S`.
///
/// **Only values are encrypted.** Keys are stored as given, so listing and prefix scans work;
/// key names, the number of values and their lengths (plaintext length + 33 bytes) are visible to
/// anyone who can read the inner store. Each value is an envelope
/// `version | key_id | nonce | ciphertext+tag` (see `docs/design/encryption.md`) bound to its
/// storage key: a value copied to another key, truncated, or edited reads as
/// [`StoreError::Corrupt`], never as other plaintext and never as a panic.
///
/// # Reserved records
/// Keys whose first segment is [`RESERVED_SEGMENT`] (`__varpulis-crypto`) belong to the wrapper:
/// a key-check record ([`CHECK_KEY`]) and, for passphrase stores, the Argon2 salt and parameters
/// ([`KDF_KEY`]). They never appear in [`list`](StateStore::list) results, and `get`, `put`,
/// `delete` and `write_batch` on them fail with [`StoreError::InvalidKey`]
/// ([`KeyProblem::Reserved`]) before any I/O.
///
/// # Constructors
/// - [`new`](Self::new) / [`with_keyring`](Self::with_keyring): plain, no I/O, no check; a
///   wrong key shows up later as `Corrupt` reads.
/// - [`open`](Self::open) / [`open_with_keyring`](Self::open_with_keyring): validate the key
///   against the key-check record (writing it on first use) and fail with
///   [`StoreError::WrongKey`] if it does not match.
/// - [`open_with_passphrase`](Self::open_with_passphrase): Argon2id with a random salt kept in
///   the store.
///
/// # Concurrency
/// Reads and writes run concurrently; [`rotate`](Self::rotate) holds off writes (not reads)
/// while it rewrites, so no write is lost to it.
pub struct EncryptedStateStore<S> {
    inner: S,
    keyring: RwLock<Arc<Keyring>>,
    write_gate: tokio::sync::RwLock<()>,
}

fn reserved(key: &Key) -> bool {
    key.segments().next() == Some(RESERVED_SEGMENT)
}

fn reserved_key(raw: &str) -> Key {
    // Both constants are valid keys: segments of [A-Za-z0-9._-].
    Key::new(raw).unwrap_or_else(|_| Key::root())
}

fn refuse_reserved(key: &Key) -> Result<(), StoreError> {
    if reserved(key) {
        // Keys under `RESERVED_SEGMENT` hold the encryption wrapper's own records.
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            problem: KeyProblem::Reserved,
        })
    } else {
        Ok(())
    }
}

fn check_value_key(key: &Key) -> Result<(), StoreError> {
    key.require_value_key()?;
    refuse_reserved(key)
}

fn too_large(key: &Key) -> StoreError {
    StoreError::Backend {
        backend: "encryption",
        message: format!("value at {key} is too large for AES-GCM (64 GiB limit)"),
    }
}

fn task_failed() -> StoreError {
    StoreError::Backend {
        backend: "encryption",
        message: "encryption task did not complete".to_owned(),
    }
}

fn wrong_key(detail: impl Into<String>) -> StoreError {
    StoreError::WrongKey {
        detail: detail.into(),
    }
}

fn id_list(ids: &[KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `f` on tokio's blocking pool when `big` and a runtime is available, inline otherwise.
async fn maybe_blocking<T, F>(big: bool, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if big && let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle.spawn_blocking(f).await.map_err(|_| task_failed());
    }
    Ok(f())
}

/// Seals a borrowed plaintext. Above [`BLOCKING_THRESHOLD`] the envelope is framed here (the one
/// copy of the plaintext) and encrypted in place on the blocking pool.
async fn seal(keyring: Arc<Keyring>, key: &Key, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    if plaintext.len() <= BLOCKING_THRESHOLD {
        return envelope::seal(&keyring, key, plaintext).map_err(|()| too_large(key));
    }
    // Zeroized if the task is dropped before it runs; empty (nothing to zeroize) once sealed.
    let mut framed = Zeroizing::new(envelope::frame(&keyring, plaintext));
    let k = key.clone();
    maybe_blocking(true, move || {
        envelope::seal_framed(&keyring, &k, &mut framed).map(|()| std::mem::take(&mut *framed))
    })
    .await?
    .map_err(|()| too_large(key))
}

/// Seals an owned plaintext (a batch value, a value being rotated) in place, so no copy of it is
/// left to zeroize.
async fn seal_owned(
    keyring: Arc<Keyring>,
    key: &Key,
    plaintext: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if plaintext.len() <= BLOCKING_THRESHOLD {
        return envelope::seal_owned(&keyring, key, plaintext).map_err(|()| too_large(key));
    }
    // Zeroized if the task is dropped before it runs.
    let mut plaintext = Zeroizing::new(plaintext);
    let k = key.clone();
    maybe_blocking(true, move || {
        envelope::seal_owned(&keyring, &k, std::mem::take(&mut *plaintext))
    })
    .await?
    .map_err(|()| too_large(key))
}

async fn unseal(
    keyring: Arc<Keyring>,
    key: &Key,
    value: Vec<u8>,
) -> Result<Result<Vec<u8>, OpenError>, StoreError> {
    if value.len() > BLOCKING_THRESHOLD {
        let k = key.clone();
        maybe_blocking(true, move || envelope::open(&keyring, &k, value)).await
    } else {
        Ok(envelope::open(&keyring, key, value))
    }
}

impl<S: StateStore> EncryptedStateStore<S> {
    /// Parses a 64-hex-character key, as found in `VARPULIS_ENCRYPTION_KEY`.
    ///
    /// ```no_run
    /// use varpulis_crypto::EncryptedStateStore;
    /// use varpulis_store::MemoryStore;
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let key = EncryptedStateStore::<MemoryStore>::key_from_hex(
    ///         &std::env::var("VARPULIS_ENCRYPTION_KEY")?,
    ///     )?;
    ///     let _store = EncryptedStateStore::new(MemoryStore::new(), key);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] or [`CryptoError::KeyNotHex`]; the key is never echoed.
    pub fn key_from_hex(hex: &str) -> Result<EncryptionKey, CryptoError> {
        EncryptionKey::from_hex(hex)
    }

    /// Reads the key from `VARPULIS_ENCRYPTION_KEY` (64 hex characters).
    ///
    /// # Errors
    /// See [`EncryptionKey::from_env`].
    pub fn key_from_env() -> Result<EncryptionKey, CryptoError> {
        EncryptionKey::from_env()
    }

    /// Derives a key from a passphrase with Argon2id and [`KdfParams::default`]. The salt must
    /// be at least 8 bytes; keep it with the data (or use
    /// [`open_with_passphrase`](Self::open_with_passphrase), which does). Runs inline; this takes
    /// tens of milliseconds by design.
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] for a salt shorter than 8 bytes.
    pub fn key_from_passphrase(
        passphrase: &str,
        salt: &[u8],
    ) -> Result<EncryptionKey, CryptoError> {
        kdf::derive_key(passphrase.as_bytes(), salt, KdfParams::default())
    }

    /// [`key_from_passphrase`](Self::key_from_passphrase) with explicit Argon2id parameters.
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] for a short salt.
    pub fn key_from_passphrase_with(
        passphrase: &str,
        salt: &[u8],
        params: KdfParams,
    ) -> Result<EncryptionKey, CryptoError> {
        kdf::derive_key(passphrase.as_bytes(), salt, params)
    }

    /// Wraps `store`, encrypting with `key`. No I/O and no check: prefer [`open`](Self::open)
    /// to detect a wrong key at start.
    pub fn new(store: S, key: EncryptionKey) -> Self {
        Self::with_keyring(store, Keyring::new(key))
    }

    /// Wraps `store` with a keyring: encrypts with its active key, decrypts with any of its keys.
    /// No I/O and no check.
    pub fn with_keyring(store: S, keyring: Keyring) -> Self {
        Self {
            inner: store,
            keyring: RwLock::new(Arc::new(keyring)),
            write_gate: tokio::sync::RwLock::new(()),
        }
    }

    /// Wraps `store` and checks `key` against the store's key-check record, writing the record
    /// on first use. When there is no check record but the store holds values (written through
    /// [`new`](Self::new)), the first value must decrypt; finding it lists the whole store once.
    ///
    /// # Errors
    /// [`StoreError::WrongKey`] if the store was written with another key, or (when it has no
    /// check record yet) if its first value does not decrypt with `key`; the inner store's
    /// errors.
    pub async fn open(store: S, key: EncryptionKey) -> Result<Self, StoreError> {
        Self::open_with_keyring(store, Keyring::new(key)).await
    }

    /// [`open`](Self::open) with a keyring: the check passes if any key of the keyring opens
    /// the check record.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with_keyring(store: S, keyring: Keyring) -> Result<Self, StoreError> {
        let this = Self::with_keyring(store, keyring);
        this.verify_key().await?;
        Ok(this)
    }

    /// Opens a store whose key is derived from `passphrase` with Argon2id.
    ///
    /// On first use a random 16-byte salt is drawn and stored with `params` in a plaintext
    /// record ([`KDF_KEY`]); later opens use the stored salt and parameters (`params` is then
    /// ignored). The derivation runs on tokio's blocking pool when inside a runtime.
    ///
    /// # Errors
    /// [`StoreError::WrongKey`] for a wrong passphrase, or a store created with a raw key;
    /// [`StoreError::Corrupt`] if the stored salt record is damaged; the inner store's errors.
    pub async fn open_with_passphrase(
        store: S,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        let kdf_key = reserved_key(KDF_KEY);
        let derive = |record: KdfRecord| {
            let passphrase = Zeroizing::new(passphrase.as_bytes().to_vec());
            maybe_blocking(true, move || {
                kdf::derive_key(&passphrase, &record.salt, record.params)
            })
        };
        if let Some(bytes) = store.get(&kdf_key).await? {
            let record =
                KdfRecord::decode(&bytes).map_err(|reason| StoreError::corrupt(KDF_KEY, reason))?;
            let key = derive(record).await??;
            return Self::open(store, key).await;
        }
        if store.get(&reserved_key(CHECK_KEY)).await?.is_some() {
            return Err(wrong_key(
                "the store was created with a raw key, not a passphrase",
            ));
        }
        // First use: refuse existing values the new key cannot read before writing anything,
        // then record salt and parameters before the key check, so a crash in between leaves a
        // store the passphrase still opens.
        let mut salt = vec![0; kdf::SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let record = KdfRecord { params, salt };
        let encoded = record.encode();
        let key = derive(record).await??;
        let this = Self::new(store, key);
        this.probe_existing_values().await?;
        this.inner.put(&kdf_key, &encoded).await?;
        this.write_check(this.keyring()).await?;
        Ok(this)
    }

    /// The wrapped store (its values are envelopes).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The id of the key new values are encrypted with.
    pub fn active_key_id(&self) -> KeyId {
        self.keyring().active_key_id()
    }

    /// Ids of every key this store can decrypt with.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keyring().key_ids()
    }

    fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.keyring.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn write_check(&self, keyring: Arc<Keyring>) -> Result<(), StoreError> {
        let check = reserved_key(CHECK_KEY);
        let sealed = seal(keyring, &check, CHECK_PLAINTEXT).await?;
        self.inner.put(&check, &sealed).await
    }

    /// Validates the key-check record, or (when there is none) the first existing value, and
    /// writes the check record if it was missing.
    async fn verify_key(&self) -> Result<(), StoreError> {
        let keyring = self.keyring();
        let check = reserved_key(CHECK_KEY);
        let Some(raw) = self.inner.get(&check).await? else {
            self.probe_existing_values().await?;
            return self.write_check(keyring).await;
        };
        let ids = || id_list(&keyring.key_ids());
        match envelope::open(&keyring, &check, raw) {
            Ok(plain) if plain == CHECK_PLAINTEXT => Ok(()),
            Ok(_) => Err(StoreError::corrupt(
                CHECK_KEY,
                "unexpected key-check contents",
            )),
            Err(OpenError::UnknownKeyId(id)) => Err(wrong_key(format!(
                "the store's key check was written with key id {id}; this keyring holds {}",
                ids()
            ))),
            Err(OpenError::Authentication) => Err(wrong_key(format!(
                "the store's key check does not decrypt with key id(s) {}",
                ids()
            ))),
            Err(e) => Err(StoreError::corrupt(CHECK_KEY, e.reason())),
        }
    }

    /// For a store without a check record (new, or written through `new`): fails with
    /// `WrongKey` if its first value does not open with this keyring. Lists the whole store.
    async fn probe_existing_values(&self) -> Result<(), StoreError> {
        let keyring = self.keyring();
        let existing = self.inner.list(&Key::root()).await?;
        let Some(first) = existing.iter().find(|k| !reserved(k)) else {
            return Ok(());
        };
        let Some(raw) = self.inner.get(first).await? else {
            return Ok(());
        };
        let ids = || id_list(&keyring.key_ids());
        match unseal(Arc::clone(&keyring), first, raw).await? {
            Ok(_) => Ok(()),
            Err(OpenError::UnknownKeyId(id)) => Err(wrong_key(format!(
                "existing value at {first} was written with key id {id}; this keyring holds {}",
                ids()
            ))),
            Err(OpenError::Authentication) => Err(wrong_key(format!(
                "existing value at {first} does not decrypt with key id(s) {}",
                ids()
            ))),
            Err(OpenError::Truncated | OpenError::Version(_)) => Err(wrong_key(format!(
                "existing value at {first} is not an encrypted envelope (was the store written \
                 without encryption?)"
            ))),
        }
    }

    /// Makes `new_key` the active key and re-encrypts every value under it, then the key-check
    /// record. The previous keys stay in the keyring (so a concurrent reader never fails), but
    /// afterwards no stored value names them.
    ///
    /// Writes through this wrapper wait while the rotation runs; reads do not. Rotation is
    /// resumable: if it fails part-way (an I/O error, a `Corrupt` value), values already
    /// rewritten stay readable, the new key stays active, and calling `rotate` again with the
    /// same key finishes the job. After rotating a passphrase store, open it with the new key
    /// (`open`/`open_with_keyring`), not the passphrase.
    ///
    /// # Errors
    /// [`StoreError::WrongKey`] if `new_key`'s id collides with a different key in the keyring;
    /// [`StoreError::Corrupt`] for a value that cannot be decrypted (rotation stops there); the
    /// inner store's errors.
    pub async fn rotate(&self, new_key: EncryptionKey) -> Result<RotationReport, StoreError> {
        let _writes = self.write_gate.write().await;
        let mut ring = (*self.keyring()).clone();
        let new_id = ring.add(new_key)?;
        ring.set_active(new_id)?;
        let ring = Arc::new(ring);
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&ring);

        let kdf_key = reserved_key(KDF_KEY);
        let check = reserved_key(CHECK_KEY);
        let mut report = RotationReport::default();
        let mut saw_check = false;
        for key in self.inner.list(&Key::root()).await? {
            if key == kdf_key {
                continue;
            }
            saw_check |= key == check;
            let Some(raw) = self.inner.get(&key).await? else {
                continue;
            };
            if envelope::envelope_key_id(&raw) == Some(new_id) {
                report.unchanged += 1;
                continue;
            }
            let plain = unseal(Arc::clone(&ring), &key, raw)
                .await?
                .map_err(|e| StoreError::corrupt(&key, e.reason()))?;
            let sealed = seal_owned(Arc::clone(&ring), &key, plain).await?;
            self.inner.put(&key, &sealed).await?;
            report.rewritten += 1;
        }
        if !saw_check {
            self.write_check(ring).await?;
        }
        Ok(report)
    }
}

impl<S: fmt::Debug> fmt::Debug for EncryptedStateStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = Arc::clone(&self.keyring.read().unwrap_or_else(PoisonError::into_inner));
        f.debug_struct("EncryptedStateStore")
            .field("inner", &self.inner)
            .field("active_key_id", &ring.active_key_id())
            .field("key_ids", &ring.key_ids())
            .finish()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: StateStore> StateStore for EncryptedStateStore<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        check_value_key(key)?;
        let Some(raw) = self.inner.get(key).await? else {
            return Ok(None);
        };
        unseal(self.keyring(), key, raw)
            .await?
            .map(Some)
            .map_err(|e| StoreError::corrupt(key, e.reason()))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        check_value_key(key)?;
        let _writes = self.write_gate.read().await;
        let sealed = seal(self.keyring(), key, value).await?;
        self.inner.put(key, &sealed).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        check_value_key(key)?;
        let _writes = self.write_gate.read().await;
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let mut keys = self.inner.list(prefix).await?;
        keys.retain(|k| !reserved(k));
        Ok(keys)
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        batch
            .ops()
            .iter()
            .try_for_each(|op| refuse_reserved(op.key()))?;
        let _writes = self.write_gate.read().await;
        let keyring = self.keyring();
        let mut sealed = WriteBatch::new();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put(key, value) => {
                    let envelope = seal_owned(Arc::clone(&keyring), &key, value).await?;
                    sealed.put(key, envelope);
                }
                BatchOp::Delete(key) => {
                    sealed.delete(key);
                }
            }
        }
        self.inner.write_batch(sealed).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
