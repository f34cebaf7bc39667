//! The incremental flush (`--flush-at-end`): every open window emitted a bounded number of
//! results at a time, upstream streams first, in the order a one-shot flush gives.

use varpulis_core::Event;

use super::compile::{CompiledStream, Input};
use super::step::Step;

/// Where a flush stands (see [`Engine::flush_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Taking what the source stream flushes.
    Feeding,
    /// Flushing the stream's own window.
    Flushing,
    Done,
}

/// A copy of an upstream stream as it was before the flush, replayed so that a downstream
/// stream takes what it flushes without every result being held.
#[derive(Debug)]
pub(super) struct Replay {
    stream: CompiledStream,
    phase: Phase,
}

/// An incremental flush in progress.
///
/// A flush emits every stream's outputs in stream order, and a stream fed by another takes
/// what that one flushed before flushing itself. Stream `i`'s outputs are produced at stage
/// `i`, after every earlier stream's were emitted, so its source's flush, already emitted at an
/// earlier stage, is replayed from a copy taken before the flush: the output order of a
/// one-shot flush with the memory of the state (one copy of each stream read by another), not
/// of the results.
#[derive(Debug)]
pub(super) struct Flush {
    pub(super) stage: usize,
    pub(super) phase: Phase,
    /// Copies of the stage's upstream streams, its root source first.
    pub(super) chain: Vec<Replay>,
    /// Pre-flush copies of the streams that a later stage replays.
    pristine: Vec<Option<CompiledStream>>,
    /// Per stream, the last stage that replays it.
    last_use: Vec<Option<usize>>,
}

/// The streams `i` reads from, directly or not, its root source first.
fn ancestors(streams: &[CompiledStream], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = i;
    while let Input::Stream(up) = streams[cur].input {
        out.push(up);
        cur = up;
    }
    out.reverse();
    out
}

impl Flush {
    pub(super) fn new(streams: &[CompiledStream]) -> Self {
        let mut last_use = vec![None; streams.len()];
        for i in 0..streams.len() {
            for k in ancestors(streams, i) {
                last_use[k] = Some(i);
            }
        }
        let pristine = streams
            .iter()
            .zip(&last_use)
            .map(|(s, used)| used.map(|_| s.clone()))
            .collect();
        let mut flush = Self {
            stage: 0,
            phase: Phase::Feeding,
            chain: Vec::new(),
            pristine,
            last_use,
        };
        flush.enter(0, streams);
        flush
    }

    /// Moves to stage `stage`: builds its replay chain.
    pub(super) fn enter(&mut self, stage: usize, streams: &[CompiledStream]) {
        self.stage = stage;
        self.phase = Phase::Feeding;
        self.chain.clear();
        if stage >= streams.len() {
            return;
        }
        for k in ancestors(streams, stage) {
            let copy = if self.last_use[k] == Some(stage) {
                self.pristine[k].take()
            } else {
                self.pristine[k].clone()
            };
            let stream = copy.expect("a stream read by a later one has a pre-flush copy");
            self.chain.push(Replay {
                stream,
                phase: Phase::Feeding,
            });
        }
    }
}

/// Appends to `out` at most `max` more of what `stream` emits at a flush: what it makes of its
/// source's flush (replayed by `up`, the source last), then its own window's results. Returns
/// whether it may have more. Late events go to the step's side output.
pub(super) fn pull(
    stream: &mut CompiledStream,
    phase: &mut Phase,
    up: &mut [Replay],
    max: usize,
    step: &mut Step<'_>,
    out: &mut Vec<Event>,
) -> bool {
    let before = out.len();
    let mut fed = Vec::new();
    loop {
        // Each event fed gives at most one output (a projection, or a count window that
        // fills), so `room` bounds both what is pulled and what is emitted.
        let room = max.saturating_sub(out.len() - before);
        if room == 0 || *phase == Phase::Done {
            return *phase != Phase::Done;
        }
        match *phase {
            Phase::Feeding => match up.split_last_mut() {
                None => *phase = Phase::Flushing,
                Some((source, rest)) => {
                    // The source's own late events were recorded at its stage.
                    let mut replayed_late = Vec::new();
                    let mut replayed_results = Vec::new();
                    let mut replay = Step {
                        variables: step.variables,
                        results: &mut replayed_results,
                        late: &mut replayed_late,
                    };
                    fed.clear();
                    let more = pull(
                        &mut source.stream,
                        &mut source.phase,
                        rest,
                        room,
                        &mut replay,
                        &mut fed,
                    );
                    for e in &fed {
                        step.handle(stream, e, out, None);
                    }
                    if !more {
                        *phase = Phase::Flushing;
                    }
                }
            },
            Phase::Flushing => match stream.window.as_mut() {
                Some(op) => {
                    let more = op.flush_step(step.results, room);
                    step.finish(stream, out, None);
                    if !more {
                        *phase = Phase::Done;
                    }
                }
                None => *phase = Phase::Done,
            },
            Phase::Done => {}
        }
    }
}
