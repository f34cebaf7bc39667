//! [`EngineError`]: what building, restoring or feeding an engine can fail with.

use varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION;
use varpulis_core::EventTime;
use varpulis_patterns::PatternError;
use varpulis_windows::WindowError;

/// Errors of building or restoring an [`Engine`](super::Engine).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A stream's window could not be built or its state restored.
    #[error("stream {stream}")]
    Window {
        /// The stream.
        stream: String,
        /// What the window operator said.
        #[source]
        source: WindowError,
    },
    /// A stream's pattern or join could not be built or its state restored (for example a
    /// checkpoint taken under another pattern: `IncompatibleState`).
    #[error("stream {stream}")]
    Pattern {
        /// The stream.
        stream: String,
        /// What the operator said.
        #[source]
        source: PatternError,
    },
    /// The checkpoint holds the seed format's SASE or join state (engine checkpoint version
    /// 1), which no operator of this engine can resume.
    #[error(
        "the checkpoint holds {what} state of the seed format for stream {stream}, which this \
         engine cannot resume; start from an empty state directory"
    )]
    SeedState {
        /// The stream named by the checkpoint.
        stream: String,
        /// `SASE` or `join`.
        what: &'static str,
    },
    /// The contexts of a checkpoint cannot be merged into one state (to restore it with another
    /// number of contexts): they disagree about a stream.
    #[error(
        "the checkpoint's contexts cannot be merged: stream {stream}: {what}; the checkpoint \
         was not written by this varpulis, or is damaged"
    )]
    Rescale {
        /// The stream.
        stream: String,
        /// What is wrong.
        what: String,
    },
    /// The checkpoint holds operator state for a stream the program does not define (or that
    /// has no operator of that kind).
    #[error(
        "the checkpoint holds window, pattern or join state for stream {stream}, which the \
         program does not define; use the program the checkpoint was taken with, or start from \
         an empty state directory"
    )]
    UnknownStream {
        /// The stream named by the checkpoint.
        stream: String,
    },
    /// An input event's time cannot be represented by a window it would reach: the stream's own
    /// window (or, for a stream fed by another, the window of a stream downstream that would
    /// receive a result carrying a later time) would start before `i64::MIN` or close after
    /// `i64::MAX`. Nothing was changed by the event.
    #[error(
        "event time {event_time_ms} (stream {stream}): its {window} window cannot be represented"
    )]
    UnrepresentableTime {
        /// The stream whose window cannot represent it.
        stream: String,
        /// The input event's time.
        event_time_ms: EventTime,
        /// That stream's window, e.g. `tumbling 1d`.
        window: String,
    },
    /// The checkpoint was written by a newer engine.
    #[error(
        "engine checkpoint version {found} is newer than this release reads ({ENGINE_CHECKPOINT_VERSION})"
    )]
    UnsupportedVersion {
        /// Version found.
        found: u32,
    },
}
