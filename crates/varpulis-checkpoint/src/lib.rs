//! Engine checkpoints: the data model, its versioned and checksummed encoding, the crash-safe
//! commit protocol over any `StateStore`, and recovery from the newest valid checkpoint.
//!
//! This crate knows nothing of storage engines or ciphers (it works on `dyn StateStore`), and
//! nothing of how operators compute: operators convert their state into the types of [`state`].

pub mod state;

pub use state::{
    AccumulatorState, EngineCheckpoint, ExactSumState, JoinCheckpoint, PaneState, PartitionState,
    SaseCheckpoint, SaseRunState, SourceWatermark, WatermarkCheckpoint, WindowCheckpoint,
    WindowKindState, WindowSpecState,
};
