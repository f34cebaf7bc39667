//! The Varpulis engine: reads event files, runs compiled VPL pipelines over them, and wires
//! checkpoints in so a run survives a crash.
//!
//! It does I/O (event files, stores) but owns no storage format of its own: state goes through
//! `varpulis-checkpoint`, operators come from `varpulis-windows`.

pub mod source;

pub use source::{EventFileReader, EventFormat, ReadError, SourcePosition};
