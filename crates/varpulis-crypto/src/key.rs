//! Encryption keys, their ids, and keyrings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aes::Aes256;
use aes::cipher::{BlockEncrypt, KeyInit as _};
use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;
use crate::cipher::{Aead as _, Backend};

/// Length of an [`EncryptionKey`] in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Environment variable read by [`EncryptionKey::from_env`]: 64 hex characters.
pub const KEY_ENV_VAR: &str = "VARPULIS_ENCRYPTION_KEY";

/// The fixed block whose AES-256 encryption under a key gives that key's [`KeyId`].
const KEY_ID_BLOCK: [u8; 16] = *b"varpulis-key-id1";

/// Identifies an [`EncryptionKey`] without revealing it: stored in every envelope so a reader
/// knows which key of its [`Keyring`] decrypts a value.
///
/// Derived, not chosen: the first 4 bytes (big endian) of the AES-256 encryption of the fixed
/// block `"varpulis-key-id1"` under the key. AES is a pseudorandom permutation, so the id says
/// nothing about the key beyond letting a holder of the key recompute it; the same key always
/// has the same id, in every process. Displayed as 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u32);

impl KeyId {
    /// Wraps a raw id (as read from an envelope header).
    #[must_use]
    pub const fn from_u32(id: u32) -> Self {
        Self(id)
    }

    /// The raw id.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The id as stored in an envelope header (big endian).
    #[must_use]
    pub const fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit AES-GCM key.
///
/// Zeroized on drop (clones too); `Debug` prints `EncryptionKey(<redacted>)`. There is no
/// `Display`; [`EncryptionKey::to_hex`] is the one way to see the key, for handing a freshly
/// generated key to an operator.
///
/// ```
/// use varpulis_crypto::EncryptionKey;
/// let key = EncryptionKey::from_hex(&"00".repeat(32))?;
/// assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
/// assert!(EncryptionKey::from_hex("abc").is_err());
/// # Ok::<_, varpulis_crypto::CryptoError>(())
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionKey {
    bytes: [u8; KEY_LEN],
}

impl EncryptionKey {
    /// Wraps raw key bytes. The caller's array is a copy this type cannot zeroize; prefer
    /// [`EncryptionKey::from_hex`], a passphrase, or [`EncryptionKey::generate`].
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// A fresh random key from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        OsRng.fill_bytes(&mut key.bytes);
        key
    }

    /// Parses 64 hex characters (either case; surrounding whitespace such as a trailing newline
    /// is ignored).
    ///
    /// # Errors
    /// [`CryptoError::KeyLength`] or [`CryptoError::KeyNotHex`]; neither echoes the input.
    pub fn from_hex(hex: &str) -> Result<Self, CryptoError> {
        let hex = hex.trim();
        if hex.len() != 2 * KEY_LEN {
            return Err(CryptoError::KeyLength {
                found: hex.chars().count(),
            });
        }
        if let Some(position) = hex.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(CryptoError::KeyNotHex { position });
        }
        let mut key = Self {
            bytes: [0; KEY_LEN],
        };
        hex::decode_to_slice(hex, &mut key.bytes).map_err(|e| match e {
            hex::FromHexError::InvalidHexCharacter { index, .. } => {
                CryptoError::KeyNotHex { position: index }
            }
            hex::FromHexError::OddLength | hex::FromHexError::InvalidStringLength => {
                CryptoError::KeyLength {
                    found: hex.chars().count(),
                }
            }
        })?;
        Ok(key)
    }

    /// Reads the key from the `VARPULIS_ENCRYPTION_KEY` environment variable (64 hex chars).
    ///
    /// # Errors
    /// [`CryptoError::EnvMissing`], [`CryptoError::EnvNotUnicode`], or a parse error.
    pub fn from_env() -> Result<Self, CryptoError> {
        match std::env::var(KEY_ENV_VAR) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                Self::from_hex(&value)
            }
            Err(std::env::VarError::NotPresent) => {
                Err(CryptoError::EnvMissing { var: KEY_ENV_VAR })
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(CryptoError::EnvNotUnicode { var: KEY_ENV_VAR })
            }
        }
    }

    /// The key's id (see [`KeyId`]).
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        let cipher = Aes256::new(&self.bytes.into());
        let mut block = KEY_ID_BLOCK.into();
        cipher.encrypt_block(&mut block);
        KeyId(u32::from_be_bytes([block[0], block[1], block[2], block[3]]))
    }

    /// The key as 64 lowercase hex characters, in a buffer zeroized on drop.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.bytes
    }

    /// Compares without early exit.
    fn same_as(&self, other: &Self) -> bool {
        self.bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn cipher(&self) -> Backend {
        Backend::new(&self.bytes)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// A key and its expanded cipher (see `cipher.rs` for what each backend clears on drop).
pub(crate) struct KeyEntry {
    key: EncryptionKey,
    cipher: Backend,
}

impl KeyEntry {
    pub(crate) fn cipher(&self) -> &Backend {
        &self.cipher
    }
}

/// Several keys by [`KeyId`], one of them active.
///
/// Values are encrypted with the active key and decrypted with whichever key their envelope
/// names, so a keyring holding the old and the new key reads a store in the middle of a
/// rotation. `Debug` shows the ids only.
///
/// ```
/// use varpulis_crypto::{EncryptionKey, Keyring};
/// let old = EncryptionKey::from_hex(&"11".repeat(32))?;
/// let new = EncryptionKey::from_hex(&"22".repeat(32))?;
/// let (old_id, new_id) = (old.key_id(), new.key_id());
/// let mut ring = Keyring::new(new);
/// ring.add(old)?;
/// assert_eq!(ring.active_key_id(), new_id);
/// assert!(ring.contains(old_id));
/// # Ok::<_, varpulis_crypto::CryptoError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<KeyId, Arc<KeyEntry>>,
    active: KeyId,
    active_entry: Arc<KeyEntry>,
}

impl Keyring {
    /// A keyring holding `active` only.
    #[must_use]
    pub fn new(active: EncryptionKey) -> Self {
        let id = active.key_id();
        let entry = Self::entry(active);
        let mut keys = BTreeMap::new();
        keys.insert(id, Arc::clone(&entry));
        Self {
            keys,
            active: id,
            active_entry: entry,
        }
    }

    fn entry(key: EncryptionKey) -> Arc<KeyEntry> {
        let cipher = key.cipher();
        Arc::new(KeyEntry { key, cipher })
    }

    /// Adds a key for decryption (it does not become active) and returns its id. Adding a key
    /// that is already present is a no-op.
    ///
    /// # Errors
    /// [`CryptoError::KeyIdCollision`] if a *different* key has the same id (a 1 in 2^32
    /// chance for random keys).
    pub fn add(&mut self, key: EncryptionKey) -> Result<KeyId, CryptoError> {
        let id = key.key_id();
        match self.keys.get(&id) {
            Some(existing) if existing.key.same_as(&key) => Ok(id),
            Some(_) => Err(CryptoError::KeyIdCollision { key_id: id }),
            None => {
                self.keys.insert(id, Self::entry(key));
                Ok(id)
            }
        }
    }

    /// Makes the key with `key_id` the one new values are encrypted with.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKeyId`] if the keyring does not hold it.
    pub fn set_active(&mut self, key_id: KeyId) -> Result<(), CryptoError> {
        let entry = self
            .keys
            .get(&key_id)
            .ok_or(CryptoError::UnknownKeyId { key_id })?;
        self.active_entry = Arc::clone(entry);
        self.active = key_id;
        Ok(())
    }

    /// Removes a retired key; values still encrypted with it become unreadable.
    ///
    /// # Errors
    /// [`CryptoError::ActiveKey`] for the active key, [`CryptoError::UnknownKeyId`] if absent.
    pub fn remove(&mut self, key_id: KeyId) -> Result<(), CryptoError> {
        if key_id == self.active {
            return Err(CryptoError::ActiveKey { key_id });
        }
        self.keys
            .remove(&key_id)
            .map(drop)
            .ok_or(CryptoError::UnknownKeyId { key_id })
    }

    /// The id of the key new values are encrypted with.
    #[must_use]
    pub fn active_key_id(&self) -> KeyId {
        self.active
    }

    /// Every id in the keyring, sorted.
    #[must_use]
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys.keys().copied().collect()
    }

    /// Whether the keyring holds `key_id`.
    #[must_use]
    pub fn contains(&self, key_id: KeyId) -> bool {
        self.keys.contains_key(&key_id)
    }

    pub(crate) fn get(&self, key_id: KeyId) -> Option<&KeyEntry> {
        self.keys.get(&key_id).map(|e| &**e)
    }

    pub(crate) fn active_entry(&self) -> (KeyId, &KeyEntry) {
        (self.active, &self.active_entry)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}
