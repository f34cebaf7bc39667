//! Window operator state (owned by `varpulis-windows`, which converts to and from these types).

use serde::{Deserialize, Serialize};
use varpulis_core::{Event, Value, WindowKind};

/// The state of one window operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowCheckpoint {
    /// The definition the state was taken under; restoring into another definition is an error.
    pub spec: WindowSpecState,
    /// Open state per partition, sorted by key (one entry, key `Null`, when unpartitioned);
    /// an unsorted snapshot is sorted by [`sort_partitions`](Self::sort_partitions) before it is
    /// compared or encoded.
    pub partitions: Vec<PartitionState>,
    /// Late events dropped so far.
    pub late_events_dropped: u64,
    /// The operator's own watermark (monotonic); `None` before the first advance.
    pub watermark_ms: Option<i64>,
    /// Arrival sequence number the next event will get (orders `first`/`last` ties).
    pub next_seq: u64,
}

impl WindowCheckpoint {
    /// Sorts the partitions by key, the order a checkpoint is compared and encoded in. (A
    /// snapshot can be taken unsorted and sorted later, off the event loop; the sort is
    /// stable, so keys that compare equal but differ, `Int(1)` and `Float(1.0)`, keep the
    /// order they were taken in.)
    pub fn sort_partitions(&mut self) {
        self.partitions.sort_by(|a, b| a.key.cmp(&b.key));
    }
}

/// The definition of a window operator, as recorded in its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpecState {
    /// Window kind and sizes.
    pub kind: WindowKind,
    /// Partition field, if partitioned.
    pub partition_by: Option<String>,
    /// Aggregate signatures in order (`avg_temp=avg(value)`).
    pub aggregates: Vec<String>,
    /// Allowed lateness in milliseconds.
    pub allowed_lateness_ms: i64,
}

/// Open state of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Partition key (`Null` when unpartitioned).
    pub key: Value,
    /// Open panes, ordered by start: windows (tumbling), slices (sliding), sessions (session:
    /// start = first event time, end = last event time) or the open batch (count: start = first,
    /// end = last event time).
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
///
/// Float sums are kept exactly ([`ExactSumState`]), so results do not depend on the order in
/// which events arrived or partial aggregates were combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccumulatorState {
    /// `count()` (every event) or `count(expr)` (non-null inputs).
    Count(u64),
    /// `sum`: an Int while every input is an Int (and the sum fits), Float otherwise.
    Sum {
        /// Exact sum of the Int inputs.
        int: i128,
        /// Exact sum of every numeric input (Ints included).
        exact: ExactSumState,
        /// Whether a float input was seen.
        saw_float: bool,
        /// Inputs summed.
        n: u64,
    },
    /// `avg`.
    Avg {
        /// Exact sum of inputs.
        sum: ExactSumState,
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
    /// `stddev` (sample): exact first and second moments.
    StdDev {
        /// Inputs.
        n: u64,
        /// Exact sum of inputs.
        sum: ExactSumState,
        /// Exact sum of squared inputs (each square kept exactly as two floats).
        sum_sq: ExactSumState,
    },
    /// `count_distinct`: the distinct values seen, sorted.
    CountDistinct(Vec<Value>),
}

/// An exact sum of floats: a fixed-point big integer in base 2^32 limbs plus flags for the
/// non-finite inputs. Value = sum of `limbs[i] * 2^(32 * (lowest_limb + i))`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactSumState {
    /// Index of `limbs[0]` (power of 2^32, may be negative).
    pub lowest_limb: i32,
    /// Limbs, least significant first (normalised: all but the last in `0..2^32`).
    pub limbs: Vec<i64>,
    /// A NaN was added.
    pub nan: bool,
    /// +infinity was added.
    pub pos_inf: bool,
    /// -infinity was added.
    pub neg_inf: bool,
}
