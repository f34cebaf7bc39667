//! Errors of the checkpoint layer.

use varpulis_store::StoreError;

use crate::codec::CodecError;

/// Errors returned by checkpoint operations.
///
/// Callers react differently to: a store that fails ([`Store`](Self::Store): retry or alert),
/// bytes that are damaged ([`Corrupt`](Self::Corrupt): fall back to an older checkpoint), bytes
/// from a newer release ([`UnsupportedVersion`](Self::UnsupportedVersion): upgrade), and strict
/// recovery refusing to fall back ([`RecoveryRefused`](Self::RecoveryRefused)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The underlying store failed.
    #[error("state store error")]
    Store(#[from] StoreError),
    /// A blob was written by a newer format version than this release reads.
    #[error(
        "{key}: unsupported checkpoint format version {found}, this release reads up to {supported}"
    )]
    UnsupportedVersion {
        /// The key of the blob.
        key: String,
        /// Version found.
        found: u16,
        /// Newest version supported.
        supported: u16,
    },
    /// A manifest or part is damaged, truncated, of the wrong kind or undecodable.
    #[error("corrupt checkpoint blob at {key}")]
    Corrupt {
        /// The key of the blob.
        key: String,
        /// What check failed.
        #[source]
        source: CodecError,
    },
    /// A part does not match what its manifest recorded (missing, other length or hash), or a
    /// manifest is inconsistent with its key.
    #[error("checkpoint part {key} {problem}")]
    PartMismatch {
        /// The part's key.
        key: String,
        /// What differs.
        problem: String,
    },
    /// Strict recovery found a checkpoint it would have had to skip.
    #[error("strict recovery refused to skip {} checkpoint(s); newest problem: {}", skipped.len(), skipped.first().map_or("none".to_owned(), |s| s.to_string()))]
    RecoveryRefused {
        /// Every checkpoint that was invalid, newest first.
        skipped: Vec<crate::SkippedCheckpoint>,
    },
    /// A state that cannot be written as it is (operator maps of another format version than
    /// its own `version`).
    #[error("checkpoint state cannot be written: {reason}")]
    InvalidState {
        /// What is wrong.
        reason: String,
    },
    /// The configuration is unusable (for example a key prefix that is not a valid key).
    #[error("invalid checkpoint configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}

impl CheckpointError {
    /// Maps a codec failure for the blob at `key`.
    pub(crate) fn codec(key: impl ToString, source: CodecError) -> Self {
        match source {
            CodecError::UnsupportedVersion { found, supported } => Self::UnsupportedVersion {
                key: key.to_string(),
                found,
                supported,
            },
            source => Self::Corrupt {
                key: key.to_string(),
                source,
            },
        }
    }

    /// Whether the error concerns the stored bytes of one checkpoint (so recovery may skip it
    /// and try an older one), as opposed to a failing store (which recovery reports).
    #[must_use]
    pub fn is_invalid_checkpoint(&self) -> bool {
        match self {
            Self::UnsupportedVersion { .. } | Self::Corrupt { .. } | Self::PartMismatch { .. } => {
                true
            }
            // A wrapper that verifies what it reads (encryption) reports damaged values this way.
            Self::Store(StoreError::Corrupt { .. } | StoreError::WrongKey { .. }) => true,
            _ => false,
        }
    }
}

/// `err` and every error in its [`source`](std::error::Error::source) chain, joined by `": "`
/// (`"corrupt checkpoint blob at k: checksum mismatch: ..."`): the full reason in one line, as
/// [`SkippedCheckpoint::reason`](crate::SkippedCheckpoint::reason) reports it.
///
/// ```
/// use varpulis_checkpoint::error_chain;
///
/// let err = std::io::Error::other("disk on fire");
/// assert_eq!(error_chain(&err), "disk on fire");
/// ```
#[must_use]
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
