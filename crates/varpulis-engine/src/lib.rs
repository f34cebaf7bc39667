//! The Varpulis engine: compiles VPL programs to operators, runs them over event files, and
//! wires checkpoints in so a run survives a crash with exactly-once output.
//!
//! - [`Engine`] compiles a [`varpulis_vpl::Program`]: one operator per stream (filter, window
//!   with aggregates, `having`, `emit`; streams read events or other streams), the watermark
//!   tracker, variables and the counters `events_processed` / `output_events_emitted`.
//!   [`Engine::create_checkpoint`] / [`Engine::restore_checkpoint`] cover all of it.
//! - [`source`] reads `.evt` and `.jsonl` files in constant memory with resumable positions.
//! - [`runner::run`] drives reader -> engine -> output file -> [`CheckpointManager`]
//!   (`varpulis_checkpoint`), and holds the exactly-once contract for files (see its docs).
//!
//! What it is not: it owns no storage format (state goes through `varpulis-checkpoint`), no
//! window logic (`varpulis-windows`) and no parser (`varpulis-vpl`); it opens no store itself
//! (the caller passes one in) and reads the wall clock only through [`clock`], for checkpoint
//! timestamps. It must never depend on RocksDB or a cipher directly.
//!
//! [`CheckpointManager`]: varpulis_checkpoint::CheckpointManager
//!
//! ```
//! use varpulis_core::{Event, Value};
//! use varpulis_engine::Engine;
//!
//! let program = varpulis_vpl::parse_program(
//!     "stream Avg = Sensor .partition_by(zone) .window(5s) .aggregate(avg: avg(value), n: count())",
//! )
//! .expect("valid program");
//! let mut engine = Engine::new(program)?;
//! let mut out = Vec::new();
//! for (ts, zone, v) in [(1_000, "a", 20.0), (2_000, "a", 22.0), (6_000, "a", 30.0)] {
//!     let e = Event::new("Sensor", ts).with_field("zone", zone).with_field("value", v);
//!     engine.process(&e, &mut out)?;
//! }
//! assert_eq!(out.len(), 1); // [0s, 5s) closed when the watermark reached 6s
//! assert_eq!(out[0].get("avg"), Some(&Value::Float(21.0)));
//!
//! let checkpoint = engine.create_checkpoint(); // [5s, 10s) is still open
//! let mut restored = Engine::new(engine.program().clone())?;
//! restored.restore_checkpoint(&checkpoint)?;
//! assert_eq!(restored.events_processed(), 3);
//! # Ok::<_, varpulis_engine::EngineError>(())
//! ```

pub mod clock;
mod engine;
pub mod key_group;
pub mod output;
mod runner;
pub mod source;

pub use engine::context::merge_contexts;
pub use engine::{CONTEXT, Engine, EngineError, LateEvent};
pub use runner::{
    CheckpointEvery, CheckpointTaken, DEFAULT_CHECKPOINT_EVERY, NoObserver, RecoveryInfo,
    RunConfig, RunError, RunObserver, RunReport, run, same_file,
};
pub use source::{EventFileReader, EventFormat, ReadError, SourcePosition, parse_evt};
