//! The checkpoint as a whole, and its configuration.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{CheckpointEvery, EngineCheckpoint};

/// A consistent snapshot of every engine context of a pipeline (seed name and fields).
///
/// `context_states` is a `HashMap` as in the seed; the encoding sorts it by context name, so
/// equal checkpoints always encode to equal bytes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Checkpoint id, strictly increasing over the life of a store (assigned on commit by
    /// [`CheckpointManager`](crate::CheckpointManager) and [`CheckpointStore`](crate::CheckpointStore)).
    pub id: u64,
    /// When the checkpoint was taken, in milliseconds since the Unix epoch (injected by the
    /// caller, never read from the wall clock here).
    pub timestamp_ms: i64,
    /// One engine state per context, by context name.
    pub context_states: HashMap<String, EngineCheckpoint>,
    /// Input position per source (file, topic, ...): the engine resumes after this offset.
    pub source_offsets: BTreeMap<String, u64>,
    /// Free-form annotations (program hash, engine version, ...).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint taken at `timestamp_ms` (id 0 until committed).
    #[must_use]
    pub fn new(timestamp_ms: i64) -> Self {
        Self {
            timestamp_ms,
            ..Self::default()
        }
    }

    /// Builder: adds (or replaces) the state of context `name`.
    #[must_use]
    pub fn with_context(mut self, name: impl Into<String>, state: EngineCheckpoint) -> Self {
        self.context_states.insert(name.into(), state);
        self
    }
}

/// When and where checkpoints are taken (seed names and defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Time between checkpoints (default 60 s), unless [`every_events`](Self::every_events)
    /// is set. Measured on the caller's monotonic clock by a
    /// [`CheckpointSchedule`](crate::CheckpointSchedule).
    pub interval: Duration,
    /// Checkpoint after this many input events instead of by time (default `None`). See
    /// [`every`](Self::every).
    pub every_events: Option<u64>,
    /// Manifests kept by retention (default 3; 0 is treated as 1: the newest is never pruned).
    pub max_checkpoints: usize,
    /// Take a final checkpoint on graceful shutdown (default true).
    pub checkpoint_on_shutdown: bool,
    /// Key prefix under which every checkpoint key lives (default `"varpulis"`), so several
    /// engines can share one store. Must be a valid [`Key`](varpulis_store::Key).
    pub key_prefix: String,
}

impl CheckpointConfig {
    /// When checkpoints are taken: [`every_events`](Self::every_events) if set, otherwise
    /// [`interval`](Self::interval).
    #[must_use]
    pub fn every(&self) -> CheckpointEvery {
        match self.every_events {
            Some(n) => CheckpointEvery::Events(n),
            None => CheckpointEvery::Interval(self.interval),
        }
    }

    /// Builder: checkpoint as `every` says (sets `every_events`, or `interval` and clears
    /// `every_events`).
    #[must_use]
    pub fn with_every(mut self, every: CheckpointEvery) -> Self {
        match every {
            CheckpointEvery::Events(n) => self.every_events = Some(n),
            CheckpointEvery::Interval(d) => {
                self.interval = d;
                self.every_events = None;
            }
        }
        self
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            every_events: None,
            max_checkpoints: 3,
            checkpoint_on_shutdown: true,
            key_prefix: "varpulis".to_owned(),
        }
    }
}
