//! Errors.

/// Why a window definition or a restore was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The window definition is not valid (zero size, slide larger than the size, ...).
    #[error("invalid window definition: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint was taken under another definition (window kind, size, partitioning,
    /// aggregates or lateness).
    #[error("checkpoint state does not match this operator: expected {expected}, found {found}")]
    IncompatibleState {
        /// This operator's definition.
        expected: String,
        /// The definition recorded in the checkpoint.
        found: String,
    },
    /// The checkpoint matches the definition but its contents are impossible.
    #[error("corrupt window state: {reason}")]
    CorruptState {
        /// What is wrong.
        reason: String,
    },
}
