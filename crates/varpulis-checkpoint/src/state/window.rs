//! Window operator state (owned by `varpulis-windows`, which converts to and from these types).

use serde::{Deserialize, Serialize};
use varpulis_core::{Event, Value};

/// The state of one window operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowCheckpoint {
    /// The definition the state was taken under; restoring into another definition is an error.
    pub spec: WindowSpecState,
    /// Open state per partition, sorted by key (one entry, key `Null`, when unpartitioned).
    pub partitions: Vec<PartitionState>,
    /// Late events dropped so far.
    pub late_events_dropped: u64,
}

/// The definition of a window operator, as recorded in its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpecState {
    /// Window kind and sizes.
    pub kind: WindowKindState,
    /// Partition field, if partitioned.
    pub partition_by: Option<String>,
    /// Aggregate signatures in order (`avg_temp=avg(value)`).
    pub aggregates: Vec<String>,
    /// Allowed lateness in milliseconds.
    pub allowed_lateness_ms: i64,
}

/// Window kinds and their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKindState {
    /// Epoch-aligned tumbling windows.
    Tumbling {
        /// Window size.
        size_ms: i64,
    },
    /// Epoch-aligned sliding windows.
    Sliding {
        /// Window size.
        size_ms: i64,
        /// Slide.
        slide_ms: i64,
    },
    /// Session windows.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
    /// Count windows.
    Count {
        /// Events per window.
        size: u64,
    },
}

/// Open state of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Partition key (`Null` when unpartitioned).
    pub key: Value,
    /// Open panes (windows, sessions or slices), ordered by start.
    pub panes: Vec<PaneState>,
    /// Raw events, only for aggregates that cannot be kept as accumulators.
    pub events: Vec<Event>,
}

/// Partial aggregates of one pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaneState {
    /// Inclusive start (event time, or first event's time for sessions).
    pub start_ms: i64,
    /// Exclusive end (or last event's time for sessions).
    pub end_ms: i64,
    /// Events in the pane.
    pub count: u64,
    /// One accumulator per aggregate, in definition order.
    pub accumulators: Vec<AccumulatorState>,
}

/// An aggregate's accumulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccumulatorState {
    /// `count()`.
    Count(u64),
    /// `sum`: integer sum while every input is an Int, float sum otherwise.
    Sum {
        /// Integer part (exact).
        int: i64,
        /// Float part.
        float: f64,
        /// Whether a float input was seen.
        saw_float: bool,
        /// Inputs summed.
        n: u64,
    },
    /// `avg`.
    Avg {
        /// Sum of inputs.
        sum: f64,
        /// Inputs.
        n: u64,
    },
    /// `min`.
    Min(Option<Value>),
    /// `max`.
    Max(Option<Value>),
    /// `first`: (event time, arrival sequence, value) of the earliest event.
    First(Option<(i64, u64, Value)>),
    /// `last`: (event time, arrival sequence, value) of the latest event.
    Last(Option<(i64, u64, Value)>),
    /// `stddev` (sample), Welford's running moments.
    StdDev {
        /// Inputs.
        n: u64,
        /// Running mean.
        mean: f64,
        /// Sum of squared deviations.
        m2: f64,
    },
    /// `count_distinct`: the distinct values seen, sorted.
    CountDistinct(Vec<Value>),
}
