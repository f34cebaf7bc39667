//! Event-time windows, aggregations and watermark tracking for Varpulis.
//!
//! What it is: [`WindowOperator`] assigns events to tumbling, sliding, session or count
//! windows (optionally partitioned by a field), keeps one accumulator per aggregate and open
//! window (sliding windows: per slice), and emits every window exactly once when the watermark
//! passes its end plus the allowed lateness. [`WatermarkTracker`] derives the effective
//! watermark from per-source progress. Both convert their state to and from the
//! `varpulis-state` types ([`WindowOperator::snapshot`] / [`WindowOperator::restore`]), which
//! `varpulis-checkpoint` encodes.
//!
//! What it is not: it does no I/O, never reads the wall clock (event time is data; idle sources
//! are marked by the caller), does not parse VPL (aggregate inputs are [`Expr`] trait objects)
//! and does not schedule anything. It must never depend on a store, a cipher, tokio, futures,
//! the checkpoint codec (`varpulis-checkpoint`) or the engine: only `varpulis-core` and
//! `varpulis-state` (`cargo xtask layering` checks its whole dependency tree).
//!
//! Semantics (alignment, closing rule, lateness, session merging, float summation, output
//! order) are in `docs/design/windows.md`.
//!
//! ```
//! use varpulis_core::{Event, Value};
//! use varpulis_windows::{AggFn, Aggregate, WatermarkTracker, WindowOperator, WindowSpec};
//!
//! let spec = WindowSpec::tumbling("Avg", 5_000)
//!     .partition_by("zone")
//!     .aggregate(Aggregate::field("avg_temp", AggFn::Avg, "value"))
//!     .aggregate(Aggregate::count("n"));
//! let mut op = WindowOperator::new(spec)?;
//! let mut watermarks = WatermarkTracker::new();
//! let mut out = Vec::new();
//! for (ts, v) in [(1_000, 20.0), (4_000, 22.0), (6_000, 30.0)] {
//!     let event = Event::new("Sensor", ts).with_field("zone", "n").with_field("value", v);
//!     let _ = op.process(&event, &mut out)?;
//!     if let Some(wm) = watermarks.observe(&event) {
//!         op.advance_watermark(wm, &mut out);
//!     }
//! }
//! assert_eq!(out.len(), 1); // [0s, 5s) closed when the watermark reached 6s
//! assert_eq!(out[0].event.get("avg_temp"), Some(&Value::Float(21.0)));
//! assert_eq!(out[0].event.timestamp_ms(), 5_000);
//!
//! let checkpoint = op.snapshot(); // [5s, 10s) is still open
//! let mut restored = WindowOperator::new(op.spec().clone())?;
//! restored.restore(&checkpoint)?;
//! # Ok::<_, varpulis_windows::WindowError>(())
//! ```

mod agg;
mod error;
mod exact;
mod expr;
mod running;
mod watermark;
mod window;

pub use agg::{AggFn, Aggregate};
pub use error::WindowError;
pub use exact::ExactSum;
pub use expr::{BinOp, Binary, Const, Expr, Field, FnExpr};
pub use watermark::WatermarkTracker;
pub use window::{Outcome, WindowKind, WindowOperator, WindowResult, WindowSpec};
