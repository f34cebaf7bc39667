//! The window kinds of VPL, shared by the parser's plans, the window operator and the persisted
//! operator state (one type, so a new kind is added in one place and every `match` on it fails to
//! compile until it is handled).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::format_duration_ms;

/// A window kind and its parameters (all times in milliseconds of event time).
///
/// Checkpoints persist this type: the order of the variants and the types of their fields are
/// part of the state format (postcard encodes the variant index and the fields in order), so
/// new kinds go at the end. Validity (positive sizes, `slide <= size`) is checked by the VPL
/// checker and again by the window operator, not by this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowKind {
    /// `.window(5m)`: epoch-aligned `[k*size, (k+1)*size)`.
    Tumbling {
        /// Window size.
        size_ms: i64,
    },
    /// `.window(5m, sliding: 1m)`: windows of `size` starting at every multiple of `slide`
    /// (aligned to the epoch), `1 <= slide <= size`.
    Sliding {
        /// Window size.
        size_ms: i64,
        /// Slide.
        slide_ms: i64,
    },
    /// `.window(session: 5s)`: an event at most `gap` after a session's last event (or before
    /// its first) joins it.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
    /// `.window(100)`: every `size` events (per partition), in arrival order.
    Count {
        /// Events per window.
        size: u64,
    },
}

impl WindowKind {
    /// Whether the window is driven by event time (every kind but `Count`).
    #[must_use]
    pub fn is_time_based(&self) -> bool {
        !matches!(self, Self::Count { .. })
    }
}

impl fmt::Display for WindowKind {
    /// The kind and its sizes, for messages and `inspect`: `tumbling 1d`,
    /// `sliding 1d every 1ms`, `session gap 5s`, `count 100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = format_duration_ms;
        match *self {
            Self::Tumbling { size_ms } => write!(f, "tumbling {}", d(size_ms)),
            Self::Sliding { size_ms, slide_ms } => {
                write!(f, "sliding {} every {}", d(size_ms), d(slide_ms))
            }
            Self::Session { gap_ms } => write!(f, "session gap {}", d(gap_ms)),
            Self::Count { size } => write!(f, "count {size}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WindowKind;

    #[test]
    fn display_names_the_kind_and_its_sizes() {
        assert_eq!(
            WindowKind::Tumbling {
                size_ms: 86_400_000
            }
            .to_string(),
            "tumbling 1d"
        );
        assert_eq!(
            WindowKind::Sliding {
                size_ms: 86_400_000,
                slide_ms: 1
            }
            .to_string(),
            "sliding 1d every 1ms"
        );
        assert_eq!(
            WindowKind::Session { gap_ms: 5_000 }.to_string(),
            "session gap 5s"
        );
        assert_eq!(WindowKind::Count { size: 100 }.to_string(), "count 100");
    }

    /// The persisted encoding: variant index, then the fields in order (the golden checkpoint
    /// files hold these bytes too).
    #[test]
    fn encoding_is_variant_index_then_fields() {
        let enc = |k: WindowKind| postcard::to_stdvec(&k).unwrap();
        assert_eq!(enc(WindowKind::Tumbling { size_ms: 1 }), [0, 2]);
        assert_eq!(
            enc(WindowKind::Sliding {
                size_ms: 2,
                slide_ms: 1
            }),
            [1, 4, 2]
        );
        assert_eq!(enc(WindowKind::Session { gap_ms: 1 }), [2, 2]);
        assert_eq!(enc(WindowKind::Count { size: 3 }), [3, 3]);
    }
}
