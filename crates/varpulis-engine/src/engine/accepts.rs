//! The event times each stream accepts: what its window, and every window downstream of it,
//! can represent for the event and the results it leads to. Checked before an event changes
//! anything, and again when a checkpoint is restored.

use varpulis_core::EventTime;

use super::compile::CompiledStream;

/// The input event times a stream (or a source type) accepts: the times its window and every
/// window downstream can represent, for the event and for every result it leads to. `low_by`
/// and `high_by` name the stream whose window sets each bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Accepts {
    range: Option<(EventTime, EventTime)>,
    low_by: usize,
    high_by: usize,
}

impl Accepts {
    pub(super) fn everything(by: usize) -> Self {
        Self {
            range: Some((EventTime::MIN, EventTime::MAX)),
            low_by: by,
            high_by: by,
        }
    }

    fn nothing(by: usize) -> Self {
        Self {
            range: None,
            low_by: by,
            high_by: by,
        }
    }

    pub(super) fn intersect(self, other: Self) -> Self {
        match (self.range, other.range) {
            (None, _) => self,
            (_, None) => other,
            (Some((a, b)), Some((c, d))) => {
                let (lo, low_by) = if c > a {
                    (c, other.low_by)
                } else {
                    (a, self.low_by)
                };
                let (hi, high_by) = if d < b {
                    (d, other.high_by)
                } else {
                    (b, self.high_by)
                };
                Self {
                    range: (lo <= hi).then_some((lo, hi)),
                    low_by,
                    high_by,
                }
            }
        }
    }

    /// The stream that rejects `t`, if one does.
    pub(super) fn rejected_by(&self, t: EventTime) -> Option<usize> {
        match self.range {
            None => Some(self.low_by),
            Some((lo, _)) if t < lo => Some(self.low_by),
            Some((_, hi)) if t > hi => Some(self.high_by),
            Some(_) => None,
        }
    }
}

/// What each stream accepts (see [`Accepts`]), computed from the last stream back: a stream
/// accepts the times its window accepts whose results every stream reading it accepts.
pub(super) fn stream_accepts(streams: &[CompiledStream]) -> Vec<Accepts> {
    let mut acc: Vec<Accepts> = (0..streams.len()).map(Accepts::everything).collect();
    for i in (0..streams.len()).rev() {
        let outputs = streams[i + 1..]
            .iter()
            .zip(&acc[i + 1..])
            .filter(|(s, _)| s.reads_stream(i))
            .fold(Accepts::everything(i), |a, (_, b)| a.intersect(*b));
        acc[i] = match &streams[i].window {
            // Without a window an output keeps its input's time (a pattern's or join's output
            // carries the time of one of its events, or a deadline the watermark passed).
            None => outputs,
            Some(op) => match op.accepted_event_times() {
                None => Accepts::nothing(i),
                Some(own) => match outputs
                    .range
                    .and_then(|(c, d)| op.event_times_with_outputs_in(c..=d))
                {
                    None => Accepts::nothing(outputs.low_by),
                    Some(r) => Accepts {
                        range: Some((*r.start(), *r.end())),
                        low_by: if r.start() > own.start() {
                            outputs.low_by
                        } else {
                            i
                        },
                        high_by: if r.end() < own.end() {
                            outputs.high_by
                        } else {
                            i
                        },
                    },
                },
            },
        };
    }
    acc
}
