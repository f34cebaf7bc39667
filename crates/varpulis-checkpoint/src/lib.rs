//! Engine checkpoints: the versioned and checksummed encoding of the checkpoint data model, the
//! crash-safe commit protocol over any `StateStore`, and recovery from the newest valid
//! checkpoint.
//!
//! The data model itself (what a checkpoint holds: [`EngineCheckpoint`] and the per-operator
//! states) is the `varpulis-state` crate, which does no I/O and no encoding; this crate encodes
//! it, and re-exports it as [`state`] (and its types at the root), so
//! `varpulis_checkpoint::state::WindowCheckpoint` and `varpulis_checkpoint::WindowCheckpoint`
//! name the same type. Operator crates depend on `varpulis-state`, not on this crate.
//!
//! This crate knows nothing of storage engines or ciphers (it works on any
//! [`StateStore`](varpulis_store::StateStore), including `dyn` ones and encrypted wrappers), and
//! nothing of how operators compute. It depends only on `varpulis-core`, `varpulis-state` and
//! `varpulis-store`, and must never link RocksDB or a cipher.
//!
//! # Format and protocol
//! - Every stored blob is a [`codec`] envelope `magic | format version | codec | kind | length |
//!   crc32c | postcard payload`. Floats round-trip bit-exactly (NaN and infinities included).
//! - A checkpoint is stored as **parts** (per context: one for the engine core, one per window,
//!   SASE and join operator) and a **manifest** listing them. Parts are content-addressed: the
//!   key of a part is the XXH3-128 hash of its bytes, so an unchanged operator state is
//!   referenced again, not rewritten.
//! - Commit: write missing parts, flush, write the manifest (the commit point), flush. Retention
//!   keeps the newest `max_checkpoints` manifests and deletes parts nothing references.
//! - Recovery tries manifests newest first and skips (with a `tracing` warning, and in
//!   [`Recovery::skipped`]) any whose manifest or parts are missing, truncated, fail a checksum,
//!   fail to decrypt or are of a newer format version.
//!
//! The byte layout and rules are specified in `docs/design/state-format.md`.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use varpulis_checkpoint::{
//!     Checkpoint, CheckpointConfig, CheckpointError, CheckpointEvery, CheckpointManager,
//!     CheckpointStore, EngineCheckpoint,
//! };
//! use varpulis_store::MemoryStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//!
//! // The seed API, on any store: save the state of context "ctx", load the latest checkpoint.
//! let engine = EngineCheckpoint { events_processed: 42, ..EngineCheckpoint::default() };
//! let id = store.save_checkpoint("ctx", &engine).await?;
//! let latest = store.load_latest_checkpoint().await?.expect("just saved");
//! assert_eq!((latest.id, latest.context_states["ctx"].events_processed), (id, 42));
//!
//! // A manager adds a schedule (on injected time), retention and a recovery report.
//! let config = CheckpointConfig::default().with_every(CheckpointEvery::Events(2));
//! let manager = CheckpointManager::new(store.clone(), config)?;
//! let mut schedule = manager.schedule(Duration::ZERO);
//! assert!(!schedule.event(|| Duration::ZERO)); // one event: not due
//! assert!(schedule.event(|| Duration::ZERO)); // two: due
//! let now_ms = 1_700_000_000_000;
//! let report = manager.checkpoint(&Checkpoint::new(now_ms).with_context("ctx", engine)).await?;
//! schedule.taken(Duration::ZERO);
//! let recovery = manager.recover().await?;
//! assert_eq!(recovery.checkpoint.map(|c| c.id), Some(report.id));
//! assert!(recovery.skipped.is_empty());
//! # Ok::<_, CheckpointError>(())
//! # }).unwrap();
//! ```

pub mod codec;
mod error;
mod ext;
#[doc(hidden)]
pub mod fuzzing;
mod manager;
mod manifest;
mod model;
mod protocol;
mod schedule;

pub use error::{CheckpointError, error_chain};
pub use ext::CheckpointStore;
pub use manager::CheckpointManager;
pub use model::{Checkpoint, CheckpointConfig};
pub use protocol::{
    CommitReport, PruneReport, Recovery, RecoveryMode, SkippedCheckpoint, encoded_size,
};
pub use schedule::{CLOCK_STRIDE, CheckpointEvery, CheckpointSchedule};

/// The checkpoint data model (the `varpulis-state` crate): what this crate encodes.
#[doc(inline)]
pub use varpulis_state as state;

pub use state::{
    AccumulatorState, EngineCheckpoint, ExactSumState, JoinCheckpoint, JoinCounters,
    JoinOperatorCheckpoint, PaneState, PartitionState, PatternCheckpoint, PatternCounters,
    PatternPartitionState, PatternRunState, SaseCheckpoint, SaseRunState, SourceWatermark,
    WatermarkCheckpoint, WindowCheckpoint, WindowKind, WindowSpecState,
};
