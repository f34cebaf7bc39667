//! Events, values, event time and durations: the vocabulary every other Varpulis crate speaks.
//!
//! This crate does no I/O and never reads a clock: event time is data (`i64` milliseconds since
//! the Unix epoch, [`EventTime`]). It must never depend on another Varpulis crate.
//!
//! ```
//! use varpulis_core::{Event, Value, parse_duration_ms};
//!
//! let event = Event::new("SensorEvent", 9_000)
//!     .with_field("zone", "north")
//!     .with_field("value", 21.5);
//! assert_eq!(event.get("zone"), Some(&Value::from("north")));
//! assert_eq!(parse_duration_ms("5m")?, 300_000);
//! # Ok::<_, varpulis_core::DurationError>(())
//! ```

mod agg;
mod decimal;
mod duration;
mod event;
mod intern;
mod value;
mod window;

pub use agg::AggFunc;
pub use decimal::exact_decimal;
pub use duration::{DurationError, format_duration_ms, parse_duration, parse_duration_ms};
pub use event::{Event, FieldRef, same_name};
pub use intern::Interner;
pub use value::Value;
pub use window::WindowKind;

/// Event time: milliseconds since the Unix epoch.
pub type EventTime = i64;
