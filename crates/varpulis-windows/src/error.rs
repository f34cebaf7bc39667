//! Errors.

use std::ops::RangeInclusive;

use varpulis_core::EventTime;

/// Why a window definition or a restore was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The window definition is not valid (zero size, slide larger than the size, ...).
    #[error("invalid window definition: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint was taken under another definition (window kind, size, partitioning,
    /// aggregates or lateness).
    #[error("checkpoint state does not match this operator: expected {expected}, found {found}")]
    IncompatibleState {
        /// This operator's definition.
        expected: String,
        /// The definition recorded in the checkpoint.
        found: String,
    },
    /// The checkpoint matches the definition but its contents are impossible.
    #[error("corrupt window state: {reason}")]
    CorruptState {
        /// What is wrong.
        reason: String,
    },
    /// The event's time is outside what this window can represent: one of its windows would
    /// start before `i64::MIN` or close (end plus allowed lateness; sessions: last event plus gap
    /// plus lateness, plus 1 ms) after `i64::MAX`. The operator is unchanged.
    #[error(
        "event time {event_time_ms}: its {window} window cannot be represented ({})",
        accepted_times(accepted)
    )]
    UnrepresentableTime {
        /// The rejected event time.
        event_time_ms: EventTime,
        /// The window kind and size, e.g. `tumbling 1d` or `session gap 5s with allowed lateness 1s`.
        window: String,
        /// The event times this window accepts (`None`: none).
        accepted: Option<RangeInclusive<EventTime>>,
    },
}

fn accepted_times(accepted: &Option<RangeInclusive<EventTime>>) -> String {
    match accepted {
        Some(r) => format!("it accepts event times {}..={}", r.start(), r.end()),
        None => "it accepts no event time".to_owned(),
    }
}
