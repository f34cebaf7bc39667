//! The serde data model of operator state inside a Varpulis checkpoint.
//!
//! What it is: what a checkpoint holds, as plain `Serialize`/`Deserialize` types. One
//! [`EngineCheckpoint`] per engine context, made of per-operator states: [`WindowCheckpoint`]
//! (with its [`WindowSpecState`], [`PartitionState`]s, [`PaneState`]s and
//! [`AccumulatorState`]s), [`SaseCheckpoint`], [`JoinCheckpoint`] and the
//! [`WatermarkCheckpoint`]. Operators convert their state to and from these types
//! (`varpulis-windows`: `WindowOperator::snapshot` / `restore`). Maps are `BTreeMap` so that equal
//! states encode to equal bytes (which incremental, content-addressed checkpoints rely on).
//!
//! What it is not: it does no I/O and no encoding. The versioned, checksummed envelope, the
//! postcard payload, the split into content-addressed parts, the commit protocol and recovery
//! live in `varpulis-checkpoint`, which re-exports this crate as `varpulis_checkpoint::state`.
//! The field order and variant order of these types are part of the persisted format
//! (`docs/design/state-format.md`): changing them changes checkpoint bytes.
//!
//! It depends only on `varpulis-core` and `serde`, and must never depend on tokio, futures, a
//! store, the checkpoint crate, an encoding (postcard) or a native library, so that operator
//! crates can depend on it and stay free of I/O (`cargo xtask layering` checks this).
//!
//! ```
//! use varpulis_core::Value;
//! use varpulis_state::{ENGINE_CHECKPOINT_VERSION, EngineCheckpoint, WatermarkCheckpoint};
//!
//! let mut state = EngineCheckpoint { events_processed: 3, ..EngineCheckpoint::default() };
//! state.variables.insert("threshold".to_owned(), Value::Int(10));
//! state.watermark_state = Some(WatermarkCheckpoint { effective_ms: Some(1_000), ..Default::default() });
//! assert_eq!(state.version, ENGINE_CHECKPOINT_VERSION);
//! ```

mod pattern;
mod window;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use varpulis_core::{Event, Value};

pub use pattern::{
    JoinCounters, JoinOperatorCheckpoint, PatternCheckpoint, PatternCounters,
    PatternPartitionState, PatternRunState,
};
pub use varpulis_core::WindowKind;
pub use window::{
    AccumulatorState, ExactSumState, PaneState, PartitionState, WindowCheckpoint, WindowSpecState,
};

mod engine_serde;

/// Version of the [`EngineCheckpoint`] structure written by this release.
///
/// - 1: the seed's structure; `sase_states` and `join_states` hold the seed's
///   [`SaseCheckpoint`] and [`JoinCheckpoint`] (which no operator of this engine writes).
/// - 2: adds `pattern_states` ([`PatternCheckpoint`]) and `join_operator_states`
///   ([`JoinOperatorCheckpoint`]), the state of the sequence and join operators; the seed maps
///   stay readable from version 1 and are empty in version 2.
pub const ENGINE_CHECKPOINT_VERSION: u32 = 2;

/// The state of one engine context (seed name and fields).
///
/// Serialized as the fields in declaration order; a version-1 value (`version < 2`) is
/// exactly the seed's eight fields, without `pattern_states` and `join_operator_states`, so
/// version-1 bytes still read and are written back unchanged (`docs/design/state-format.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineCheckpoint {
    /// Structure version ([`ENGINE_CHECKPOINT_VERSION`] when written by this release).
    pub version: u32,
    /// Window operator states by stream name.
    pub window_states: BTreeMap<String, WindowCheckpoint>,
    /// The seed's SASE+ pattern-matcher states by stream name (version 1 only).
    pub sase_states: BTreeMap<String, SaseCheckpoint>,
    /// The seed's join buffer states by stream name (version 1 only).
    pub join_states: BTreeMap<String, JoinCheckpoint>,
    /// Engine-level variables (`var`, `let`, `:=`).
    pub variables: BTreeMap<String, Value>,
    /// Per-source watermark positions and the effective watermark.
    pub watermark_state: Option<WatermarkCheckpoint>,
    /// Events processed so far.
    pub events_processed: u64,
    /// Output events emitted so far.
    pub output_events_emitted: u64,
    /// Sequence-pattern operator states by stream name (version 2).
    pub pattern_states: BTreeMap<String, PatternCheckpoint>,
    /// Join operator states by stream name (version 2).
    pub join_operator_states: BTreeMap<String, JoinOperatorCheckpoint>,
}

impl Default for EngineCheckpoint {
    fn default() -> Self {
        Self {
            version: ENGINE_CHECKPOINT_VERSION,
            window_states: BTreeMap::new(),
            sase_states: BTreeMap::new(),
            join_states: BTreeMap::new(),
            variables: BTreeMap::new(),
            watermark_state: None,
            events_processed: 0,
            output_events_emitted: 0,
            pattern_states: BTreeMap::new(),
            join_operator_states: BTreeMap::new(),
        }
    }
}

/// Active runs of a SASE+ pattern matcher.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaseCheckpoint {
    /// Partial matches in progress, oldest first.
    pub runs: Vec<SaseRunState>,
}

/// One partial match of a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaseRunState {
    /// NFA state the run is in.
    pub nfa_state: u32,
    /// Event time of the run's first event.
    pub started_ms: i64,
    /// Events captured so far, by pattern variable.
    pub captured: BTreeMap<String, Vec<Event>>,
}

/// Buffered sides of a join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinCheckpoint {
    /// Buffered events per join side (source name).
    pub buffers: BTreeMap<String, Vec<Event>>,
    /// Expiry queue: (expiry event time, source, index into that source's buffer).
    pub expiry: Vec<(i64, String, u64)>,
}

/// Watermark tracking state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatermarkCheckpoint {
    /// Per-source positions, by source (event type) name.
    pub sources: BTreeMap<String, SourceWatermark>,
    /// The effective watermark (monotonic); `None` before any event.
    pub effective_ms: Option<i64>,
}

/// One source's watermark position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceWatermark {
    /// Largest event time seen from the source.
    pub max_timestamp_ms: i64,
    /// Declared out-of-order bound (watermark = max - bound).
    pub out_of_order_ms: i64,
    /// Marked idle: ignored by the effective watermark until it produces an event again.
    pub idle: bool,
}
