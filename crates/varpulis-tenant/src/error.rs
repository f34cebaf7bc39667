//! Errors of the tenant layer.

use varpulis_checkpoint::CheckpointError;
use varpulis_store::StoreError;

/// Why a tenant or pipeline operation failed. Callers map them to answers: not found, over
/// quota, rate limited, bad input (compile, event, checkpoint, name), not running, storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// No such tenant.
    #[error("tenant not found")]
    TenantNotFound,
    /// No such pipeline for this tenant (another tenant's pipeline is not found either).
    #[error("pipeline not found")]
    PipelineNotFound,
    /// Over a quota: nothing was changed.
    #[error("{message}")]
    QuotaExceeded {
        /// Which quota: `pipelines`, `streams`, `state_bytes`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// What was asked and what is allowed.
        message: String,
    },
    /// Over the events-per-second quota: retry after this long.
    #[error("rate limit exceeded: retry in {retry_after_ms} ms")]
    RateLimited {
        /// When the batch would fit.
        retry_after_ms: u64,
    },
    /// The VPL source does not compile.
    #[error("{diagnostics}")]
    Compile {
        /// The diagnostics, with line:column, as `varpulis check` prints them.
        diagnostics: String,
    },
    /// The engine refuses an event of a batch; nothing of the batch was applied.
    #[error("events[{index}]: {message}")]
    InvalidEvent {
        /// The bad event's position in the batch, from 0.
        index: usize,
        /// Why.
        message: String,
    },
    /// A checkpoint given to `restore` does not decode or does not fit the program.
    #[error("invalid checkpoint: {message}")]
    InvalidCheckpoint {
        /// Why.
        message: String,
    },
    /// The pipeline is in error (it does not compile, or is over a quota) and does not run.
    #[error("pipeline is not running: {message}")]
    NotRunning {
        /// Its error.
        message: String,
    },
    /// A tenant or pipeline name is empty, too long or has control characters.
    #[error("{message}")]
    InvalidName {
        /// Why.
        message: String,
    },
    /// An idempotency key that is empty, too long or not visible ASCII.
    #[error("{message}")]
    InvalidIdempotencyKey {
        /// Why.
        message: String,
    },
    /// An idempotency key already used for other events.
    #[error("idempotency key {key:?} was already used for a different batch")]
    IdempotencyConflict {
        /// The key.
        key: String,
    },
    /// The ingest log could not be written: the batch was not acknowledged and not applied
    /// (the requests committed in the same group all get this answer).
    #[error("the ingest log append failed, nothing was applied: {message}")]
    LogAppend {
        /// The store's error, with its causes.
        message: String,
    },
    /// The store failed; what was asked may not have happened.
    #[error("state store error")]
    Store(#[source] StoreError),
    /// A checkpoint could not be written or read.
    #[error("checkpoint error")]
    Checkpoint(#[source] CheckpointError),
    /// A stored record does not decode.
    #[error("record {key} is damaged: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl From<StoreError> for TenantError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<CheckpointError> for TenantError {
    fn from(e: CheckpointError) -> Self {
        Self::Checkpoint(e)
    }
}
