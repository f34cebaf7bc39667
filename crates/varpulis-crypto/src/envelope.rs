//! The byte layout of an encrypted value.
//!
//! ```text
//! version (1 byte, = 1) | key_id (4 bytes, big endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! AES-256-GCM with associated data `header || len(storage key) as u32 big endian || storage key`,
//! where `header` is the first 17 bytes (version, key id, nonce). Editing the header or moving
//! the value to another key makes authentication fail.

use aes_gcm::aead::OsRng;
use aes_gcm::{AeadCore, AeadInPlace, Aes256Gcm, Nonce, Tag};
use varpulis_store::Key;

use crate::{KeyId, Keyring};

/// The envelope format version this crate writes (and the only one it reads).
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Length of the random AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag at the end of the envelope.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to the plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why an envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Shorter than header + tag.
    Truncated,
    /// A version byte this crate does not know.
    Version(u8),
    /// A key id the keyring does not hold.
    UnknownKeyId(KeyId),
    /// The tag did not verify: tampered bytes, wrong key, or a value moved between keys.
    Authentication,
}

impl OpenError {
    /// The reason stored in [`varpulis_store::StoreError::Corrupt`].
    pub(crate) fn reason(self) -> String {
        match self {
            Self::Truncated => "truncated encrypted value".to_owned(),
            Self::Version(v) => format!("unknown encryption envelope version {v}"),
            Self::UnknownKeyId(id) => format!("encrypted with unknown key id {id}"),
            Self::Authentication => "authentication failed".to_owned(),
        }
    }
}

/// Reads the key id from an envelope's header without decrypting it. `None` if the bytes are too
/// short or of an unknown version.
///
/// ```
/// use varpulis_crypto::{envelope_key_id, KeyId};
/// let mut value = vec![1, 0xde, 0xad, 0xbe, 0xef];
/// value.resize(33, 0);
/// assert_eq!(envelope_key_id(&value), Some(KeyId::from_u32(0xdead_beef)));
/// assert_eq!(envelope_key_id(b"plain"), None);
/// ```
#[must_use]
pub fn envelope_key_id(value: &[u8]) -> Option<KeyId> {
    if value.len() < OVERHEAD || value[0] != ENVELOPE_VERSION {
        return None;
    }
    Some(KeyId::from_u32(u32::from_be_bytes([
        value[1], value[2], value[3], value[4],
    ])))
}

fn associated_data(header: &[u8], storage_key: &Key) -> Vec<u8> {
    let key = storage_key.as_str().as_bytes();
    let mut ad = Vec::with_capacity(header.len() + 4 + key.len());
    ad.extend_from_slice(header);
    // Keys are at most 32 * 129 bytes, far below u32::MAX.
    ad.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    ad.extend_from_slice(key);
    ad
}

/// Encrypts `plaintext` for `storage_key` under the keyring's active key, with a fresh random
/// nonce. Fails only for plaintexts beyond AES-GCM's limit (64 GiB).
pub(crate) fn seal(keyring: &Keyring, storage_key: &Key, plaintext: &[u8]) -> Result<Vec<u8>, ()> {
    let (key_id, entry) = keyring.active_entry();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&nonce);
    let ad = associated_data(&out, storage_key);
    out.extend_from_slice(plaintext);
    let tag = entry
        .cipher()
        .encrypt_in_place_detached(&nonce, &ad, &mut out[HEADER_LEN..])
        .map_err(drop)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts an envelope read from `storage_key`, in place.
pub(crate) fn open(
    keyring: &Keyring,
    storage_key: &Key,
    mut value: Vec<u8>,
) -> Result<Vec<u8>, OpenError> {
    if value.len() < OVERHEAD {
        return Err(OpenError::Truncated);
    }
    if value[0] != ENVELOPE_VERSION {
        return Err(OpenError::Version(value[0]));
    }
    let key_id = KeyId::from_u32(u32::from_be_bytes([value[1], value[2], value[3], value[4]]));
    let entry = keyring.get(key_id).ok_or(OpenError::UnknownKeyId(key_id))?;
    let ad = associated_data(&value[..HEADER_LEN], storage_key);
    let nonce = *Nonce::from_slice(&value[5..HEADER_LEN]);
    let tag_at = value.len() - TAG_LEN;
    let tag = *Tag::from_slice(&value[tag_at..]);
    entry
        .cipher()
        .decrypt_in_place_detached(&nonce, &ad, &mut value[HEADER_LEN..tag_at], &tag)
        .map_err(|_| OpenError::Authentication)?;
    value.truncate(tag_at);
    value.drain(..HEADER_LEN);
    Ok(value)
}
