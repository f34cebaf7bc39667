//! The definition of a window operator: the [`WindowSpec`] builder over a [`WindowKind`].

use std::sync::Arc;

pub use varpulis_core::WindowKind;
use varpulis_core::format_duration_ms;

use crate::agg::Aggregate;

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
        let mut s = self.kind.to_string();
        if self.allowed_lateness_ms != 0 {
            s.push_str(" with allowed lateness ");
            s.push_str(&format_duration_ms(self.allowed_lateness_ms));
        }
        s
    }
}
