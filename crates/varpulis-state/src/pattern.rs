//! The state of a sequence-pattern operator (`varpulis-patterns`): open runs with their
//! captures and deadlines, events held until the watermark passes them, and the counters of
//! what was dropped. Field order is persisted bytes.

use serde::{Deserialize, Serialize};
use varpulis_core::{Event, Value};

/// Everything a pattern operator holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternCheckpoint {
    /// The shape of the pattern that wrote it (steps, aliases, bounds and the caller's text of
    /// the pattern); a restore into another shape is refused.
    pub shape: String,
    /// Partitions with open runs, in key order (`None`: the pattern is not partitioned).
    pub partitions: Vec<PatternPartitionState>,
    /// Events received but not yet processed (the watermark has not passed them), in
    /// processing order: `(arrival number, event)`.
    pub pending: Vec<(u64, Event)>,
    /// The next arrival number.
    pub next_arrival: u64,
    /// Above every run id.
    pub next_run: u64,
    /// The operator's watermark.
    pub watermark_ms: Option<i64>,
    /// What happened so far.
    pub counters: PatternCounters,
}

/// The open runs of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternPartitionState {
    /// The partition key (`None` when the pattern is not partitioned).
    pub key: Option<Value>,
    /// Open runs, oldest first.
    pub runs: Vec<PatternRunState>,
}

/// One partial match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternRunState {
    /// Unique: the arrival number of the event that started it (an event starts at most one
    /// run; at one start time, ids are in creation order).
    pub id: u64,
    /// The step the run waits for (the number of steps: it waits for its deadline, in an
    /// absence pattern).
    pub step: u32,
    /// For an `AND` step: the bit of each of its alternatives already matched.
    pub matched: u64,
    /// Event time of the run's first event.
    pub started_ms: i64,
    /// Event time of the run's last event.
    pub last_ms: i64,
    /// Events taken by the Kleene step the run is in (0 outside one).
    pub kleene_len: u64,
    /// Captured events per alias slot, in the pattern's alias order.
    pub captures: Vec<Vec<Event>>,
}

/// What a pattern operator counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternCounters {
    /// Runs started.
    pub runs_started: u64,
    /// Matches emitted (absences included).
    pub matches: u64,
    /// Runs whose `within` deadline passed before they completed.
    pub runs_expired: u64,
    /// Runs cancelled by a negation.
    pub runs_cancelled: u64,
    /// Oldest runs evicted because a partition reached `max_runs`.
    pub runs_evicted: u64,
    /// Runs dropped because a Kleene capture reached `max_kleene`.
    pub kleene_overflows: u64,
    /// Events dropped because the watermark had passed them.
    pub late_events_dropped: u64,
    /// Events of the pattern's types without the partition field (not processed).
    pub events_without_key: u64,
}

/// Everything a windowed-join operator holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinOperatorCheckpoint {
    /// The shape of the join that wrote it (inputs, keys, window, bounds, the caller's text).
    pub shape: String,
    /// Per input (in the join's input order): the latest event of each key, oldest update
    /// first.
    pub buffers: Vec<Vec<Event>>,
    /// Events received but not yet processed: `(arrival number, input, event)`, in processing
    /// order.
    pub pending: Vec<(u64, u32, Event)>,
    /// The next arrival number.
    pub next_arrival: u64,
    /// The operator's watermark.
    pub watermark_ms: Option<i64>,
    /// What happened so far.
    pub counters: JoinCounters,
}

/// What a join operator counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinCounters {
    /// Combinations emitted.
    pub matches: u64,
    /// Buffered events dropped because the watermark left them out of every future window.
    pub expired: u64,
    /// Keys evicted because an input's buffer reached `max_keys`.
    pub keys_evicted: u64,
    /// Events dropped because the watermark had passed them.
    pub late_events_dropped: u64,
    /// Events without one of their input's key fields (not processed).
    pub events_without_key: u64,
}
