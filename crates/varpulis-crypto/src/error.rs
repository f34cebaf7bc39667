//! Errors of key handling (parsing, derivation, keyrings).

use varpulis_store::StoreError;

use crate::KeyId;

/// Errors from building keys and keyrings.
///
/// Messages say what is wrong and never contain key material: a malformed hex key is reported by
/// its length or by the *position* of the first bad character, never by its contents.
///
/// Converts into [`StoreError::WrongKey`] so `?` works in functions returning [`StoreError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A hex key does not have exactly 64 characters.
    #[error("encryption key must be 64 hex characters (32 bytes), got {found} characters")]
    KeyLength {
        /// How many characters were given (after trimming surrounding whitespace).
        found: usize,
    },
    /// A hex key contains a character outside `[0-9a-fA-F]`.
    #[error("encryption key is not hex: invalid character at position {position}")]
    KeyNotHex {
        /// Zero-based byte position of the first invalid character.
        position: usize,
    },
    /// The environment variable that should hold the key is not set.
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// The variable's name.
        var: &'static str,
    },
    /// The environment variable that should hold the key is not valid Unicode.
    #[error("environment variable {var} is not valid unicode")]
    EnvNotUnicode {
        /// The variable's name.
        var: &'static str,
    },
    /// Argon2 rejected the parameters or the salt.
    #[error("key derivation failed: {reason}")]
    Kdf {
        /// What Argon2 (or the parameter check) reported.
        reason: String,
    },
    /// A different key with the same [`KeyId`] is already in the keyring.
    #[error("a different key with key id {key_id} is already in the keyring")]
    KeyIdCollision {
        /// The colliding id.
        key_id: KeyId,
    },
    /// The key id is not in the keyring.
    #[error("key id {key_id} is not in the keyring")]
    UnknownKeyId {
        /// The missing id.
        key_id: KeyId,
    },
    /// The active key cannot be removed from its keyring.
    #[error("key id {key_id} is the active key and cannot be removed")]
    ActiveKey {
        /// The active key's id.
        key_id: KeyId,
    },
}

impl From<CryptoError> for StoreError {
    fn from(e: CryptoError) -> Self {
        StoreError::WrongKey {
            detail: e.to_string(),
        }
    }
}
