//! Errors of the pattern operator.

/// Why a pattern could not be built or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is not one this operator runs.
    #[error("pattern {pattern}: {message}")]
    Invalid {
        /// The stream's name.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint that another pattern wrote, or that does not fit this one.
    #[error("pattern {pattern}: incompatible checkpoint state: {message}")]
    IncompatibleState {
        /// The stream's name.
        pattern: String,
        /// What does not fit.
        message: String,
    },
}
