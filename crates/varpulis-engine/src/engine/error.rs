//! [`EngineError`]: what building, restoring or feeding an engine can fail with.

use varpulis_checkpoint::state::ENGINE_CHECKPOINT_VERSION;
use varpulis_core::EventTime;
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
    /// The checkpoint holds window state for a stream the program does not define.
    #[error(
        "the checkpoint holds window state for stream {stream}, which the program does not \
         define; use the program the checkpoint was taken with, or start from an empty state \
         directory"
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
