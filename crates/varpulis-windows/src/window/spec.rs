//! The definition of a window operator: [`WindowKind`] and the [`WindowSpec`] builder.

use std::sync::Arc;

use varpulis_core::format_duration_ms;
use varpulis_state::WindowKindState;

use crate::agg::Aggregate;

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowKind {
    /// `[k*size, (k+1)*size)`, aligned to the epoch.
    Tumbling {
        /// Window size in milliseconds.
        size_ms: i64,
    },
    /// Windows of `size` starting at every multiple of `slide` (aligned to the epoch).
    Sliding {
        /// Window size in milliseconds.
        size_ms: i64,
        /// Slide in milliseconds (`<= size`).
        slide_ms: i64,
    },
    /// Sessions: an event at most `gap` after a session's last event (or before its first)
    /// joins it.
    Session {
        /// Inactivity gap in milliseconds.
        gap_ms: i64,
    },
    /// Every `size` events (per partition), in arrival order.
    Count {
        /// Events per window.
        size: u64,
    },
}

/// The definition of a window operator.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub(super) name: Arc<str>,
    pub(super) kind: WindowKind,
    pub(super) partition_by: Option<Arc<str>>,
    pub(super) aggregates: Vec<Aggregate>,
    pub(super) allowed_lateness_ms: i64,
}

impl WindowSpec {
    /// A window operator for stream `name` (the output event type).
    pub fn new(name: impl Into<Arc<str>>, kind: WindowKind) -> Self {
        Self {
            name: name.into(),
            kind,
            partition_by: None,
            aggregates: Vec::new(),
            allowed_lateness_ms: 0,
        }
    }

    /// Tumbling windows of `size_ms`.
    pub fn tumbling(name: impl Into<Arc<str>>, size_ms: i64) -> Self {
        Self::new(name, WindowKind::Tumbling { size_ms })
    }

    /// Sliding windows of `size_ms` every `slide_ms`.
    pub fn sliding(name: impl Into<Arc<str>>, size_ms: i64, slide_ms: i64) -> Self {
        Self::new(name, WindowKind::Sliding { size_ms, slide_ms })
    }

    /// Session windows with inactivity gap `gap_ms`.
    pub fn session(name: impl Into<Arc<str>>, gap_ms: i64) -> Self {
        Self::new(name, WindowKind::Session { gap_ms })
    }

    /// Count windows of `size` events.
    pub fn count(name: impl Into<Arc<str>>, size: u64) -> Self {
        Self::new(name, WindowKind::Count { size })
    }

    /// Partitions by `field` (a missing field is the `Null` partition).
    #[must_use]
    pub fn partition_by(mut self, field: impl Into<Arc<str>>) -> Self {
        self.partition_by = Some(field.into());
        self
    }

    /// Adds an output aggregate.
    #[must_use]
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregates.push(aggregate);
        self
    }

    /// Keeps time windows open `ms` past their end (default 0).
    #[must_use]
    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.allowed_lateness_ms = ms;
        self
    }

    /// The window kind and size, and the allowed lateness when there is one, for messages:
    /// `tumbling 1d`, `sliding 1d every 1ms`, `session gap 5s with allowed lateness 1s`,
    /// `count 100`.
    #[must_use]
    pub fn describe_window(&self) -> String {
        let state = self.state();
        let mut s = describe_kind(&state.kind);
        if state.allowed_lateness_ms != 0 {
            s.push_str(" with allowed lateness ");
            s.push_str(&format_duration_ms(state.allowed_lateness_ms));
        }
        s
    }
}

pub(super) fn describe_kind(kind: &WindowKindState) -> String {
    let d = |ms: i64| format_duration_ms(ms);
    match *kind {
        WindowKindState::Tumbling { size_ms } => format!("tumbling {}", d(size_ms)),
        WindowKindState::Sliding { size_ms, slide_ms } => {
            format!("sliding {} every {}", d(size_ms), d(slide_ms))
        }
        WindowKindState::Session { gap_ms } => format!("session gap {}", d(gap_ms)),
        WindowKindState::Count { size } => format!("count {size}"),
    }
}
