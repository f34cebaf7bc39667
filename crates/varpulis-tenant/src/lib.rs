//! Tenants, pipelines, quotas and usage of the Varpulis server, persisted through any
//! [`StateStore`](varpulis_store::StateStore) (memory, file, RocksDB, encrypted).
//!
//! What it is: the [`Registry`] of every tenant (name, quota tier, key hash, usage) and
//! pipeline (name, VPL source, status), each pipeline with its own [`Engine`] whose state is
//! checkpointed through its own `CheckpointManager`, and an ingest log that makes every
//! accepted batch durable before it is acknowledged, replayed after the newest checkpoint at
//! the next start. Keys are 256 random bits, shown once, stored as SHA-256, compared in
//! constant time. Decisions: `docs/design/tenants.md`; bytes: `docs/design/state-format.md`.
//!
//! What it is not: no HTTP (that is `varpulis-server`), no store of its own (the caller opens
//! one), no wall clock (time comes from the [`Clock`](varpulis_engine::clock::Clock) it is
//! given). It must never depend on an HTTP crate, RocksDB or a cipher.
//!
//! [`Engine`]: varpulis_engine::Engine

mod error;
mod ids;
mod metrics;
mod pipeline;
mod quota;
mod record;
mod registry;

pub use error::TenantError;
pub use ids::{ApiKey, PipelineId, TenantId};
pub use pipeline::{
    IDEMPOTENCY_KEYS, IDEMPOTENCY_WINDOW_MS, OUTPUT_RETENTION_BYTES, OUTPUT_RETENTION_EVENTS,
};
pub use quota::{Quota, QuotaTier, Usage};
pub use registry::{
    Batch, CHECKPOINT_HISTORY, CheckpointSample, DEFAULT_TENANT, Gap, Idempotency,
    MAX_IDEMPOTENCY_KEY_BYTES, MAX_NAME_BYTES, OutputsPage, PipelineInfo, PipelineMetrics,
    PipelineStatus, PipelineStatusReport, Registry, RegistryConfig, Subscription, TenantInfo,
    TenantStatusReport,
};
