//! The error type shared by every store.

use std::io;
use std::path::PathBuf;

use crate::KeyProblem;

/// Errors returned by [`StateStore`](crate::StateStore) operations.
///
/// Variants are split where a caller reacts differently: fix the key ([`InvalidKey`]), treat the
/// value as lost ([`Corrupt`]), supply another key ([`WrongKey`]), retry or alert ([`Io`],
/// [`Backend`]).
///
/// [`InvalidKey`]: StoreError::InvalidKey
/// [`Corrupt`]: StoreError::Corrupt
/// [`WrongKey`]: StoreError::WrongKey
/// [`Io`]: StoreError::Io
/// [`Backend`]: StoreError::Backend
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key breaks the key rules; nothing was read or written.
    #[error("invalid key {key:?}: {problem}")]
    InvalidKey {
        /// The rejected key, escaped for display.
        key: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// A value that had to exist does not.
    #[error("key not found: {key}")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// Stored bytes are damaged, truncated, tampered with, or of an unknown format.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt {
        /// The key (or path) whose bytes are damaged.
        key: String,
        /// What check failed.
        reason: String,
    },
    /// The encryption key or passphrase does not match the one the store was written with.
    #[error("wrong encryption key: {detail}")]
    WrongKey {
        /// Where the mismatch was detected.
        detail: String,
    },
    /// An operating-system I/O error, with the path it concerned.
    #[error("i/o error at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A value could not be encoded or decoded by the typed helpers.
    #[error("cannot {op} typed value at {key}")]
    Codec {
        /// `encode` or `decode`.
        op: &'static str,
        /// The key concerned.
        key: String,
        /// The serializer's error.
        #[source]
        source: TypedValueError,
    },
    /// An error reported by a storage engine (RocksDB, ...).
    #[error("{backend} error: {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Its message.
        message: String,
    },
    /// The store is in a state where the operation cannot be served (closed, poisoned, ...).
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// Builds [`StoreError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds [`StoreError::Corrupt`].
    pub fn corrupt(key: impl ToString, reason: impl ToString) -> Self {
        Self::Corrupt {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Why a typed value did not encode or decode: the source of [`StoreError::Codec`]. Opaque, so
/// that the encoding library is not part of this crate's API; it displays (and debug-prints)
/// as the library's own message.
pub struct TypedValueError(pub(crate) postcard::Error);

impl std::fmt::Debug for TypedValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for TypedValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for TypedValueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
