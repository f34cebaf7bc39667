//! One stream's step: an event through the stream's filter into its window or projection, and
//! closed windows through `.having` and `.emit` into output events.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, Value};
use varpulis_vpl::Bindings;
use varpulis_windows::{Outcome, WindowResult};

use super::LateEvent;
use super::compile::{CompiledStream, Input};
use super::context::Rank;

/// What the streams of one engine step share: the program variables, the buffer window
/// results pass through (empty between calls), and the late-event side output.
pub(super) struct Step<'a> {
    pub(super) variables: &'a BTreeMap<String, Value>,
    pub(super) results: &'a mut Vec<WindowResult>,
    pub(super) late: &'a mut Vec<LateEvent>,
}

impl Step<'_> {
    /// Puts `event`, which `stream` dropped as late, on the side output.
    pub(super) fn dropped_late(&mut self, stream: &str, event: &Event) {
        tracing::debug!(
            stream,
            event_time = event.timestamp_ms(),
            "late event dropped"
        );
        self.late.push(LateEvent {
            stream: stream.to_owned(),
            event: event.clone(),
        });
    }

    /// Feeds a pattern or join stream: the input `event` if the stream reads its type (`None`
    /// at a flush), and what the streams it reads produced (`done`, by stream index). Events
    /// it drops as late go to the side output.
    pub(super) fn feed_operator(
        &mut self,
        stream: &mut CompiledStream,
        event: Option<&Event>,
        done: &[Vec<Event>],
    ) {
        let Some(op) = stream.operator.as_mut() else {
            return;
        };
        for f in &stream.feeds {
            let events: &[Event] = match f.input {
                Input::Event => match event {
                    Some(e) if f.name == e.event_type() => std::slice::from_ref(e),
                    _ => &[],
                },
                Input::Stream(up) => &done[up],
            };
            for e in events {
                if op.process(&f.name, e) {
                    self.dropped_late(&stream.plan.name, e);
                }
            }
        }
    }

    /// Takes one event into `stream`: filter, then window or projection; appends what it
    /// emits to `out`. With `ranks` (a parallel context), each output's order key goes there:
    /// a closed window's (end, partition key), or for a projection the given input's rank.
    pub(super) fn handle(
        &mut self,
        stream: &mut CompiledStream,
        event: &Event,
        out: &mut Vec<Event>,
        ranks: Option<(&mut Vec<Rank>, &Rank)>,
    ) {
        let variables = self.variables;
        if stream
            .filter
            .as_ref()
            .is_some_and(|f| !f.matches(&Bindings::event(event, variables)))
        {
            return;
        }
        match stream.window.as_mut() {
            Some(op) => {
                match op.process(event, self.results) {
                    Ok(Outcome::Accepted) => {}
                    Ok(Outcome::Late) => self.dropped_late(&stream.plan.name, event),
                    Err(error) => {
                        // Cannot happen: `Engine::process` checks an input event against every
                        // window it leads to, and a restore refuses window state holding other
                        // times. Should it happen, the event goes to the side output, not nowhere.
                        tracing::error!(
                            stream = %stream.plan.name,
                            %error,
                            "event refused by its window"
                        );
                        self.late.push(LateEvent {
                            stream: stream.plan.name.clone(),
                            event: event.clone(),
                        });
                    }
                }
                self.finish(stream, out, ranks.map(|(r, _)| r));
            }
            None => {
                if let Some((ranks, rank)) = ranks {
                    ranks.push(rank.clone());
                }
                let ts = event.timestamp_ms();
                let output_type = Arc::clone(&stream.output_type);
                out.push(if stream.plan.emit.is_some() {
                    let row = Bindings::event(event, variables);
                    // `.emit` names are distinct (checked at load time).
                    Event::from_unique_iter(
                        output_type,
                        ts,
                        stream
                            .emit
                            .iter()
                            .zip(&stream.emit_names)
                            .map(|(f, name)| (Arc::clone(name), f.eval(&row))),
                    )
                } else {
                    event.with_event_type(output_type)
                });
            }
        }
    }

    /// Turns the closed windows in the results buffer into output events of `stream`:
    /// `.having`, then `.emit`; with `ranks`, each output's order key goes there too.
    pub(super) fn finish(
        &mut self,
        stream: &CompiledStream,
        out: &mut Vec<Event>,
        mut ranks: Option<&mut Vec<Rank>>,
    ) {
        let (plan, variables) = (&stream.plan, self.variables);
        for r in self.results.drain(..) {
            let event = if plan.having.is_none() && plan.emit.is_none() {
                r.event
            } else {
                // The row's columns are the result event's fields (distinct names).
                let row = Bindings::row(&r.event, variables);
                if stream.having.as_ref().is_some_and(|h| !h.matches(&row)) {
                    continue;
                }
                if plan.emit.is_none() {
                    r.event
                } else {
                    Event::from_unique_iter(
                        Arc::clone(&stream.output_type),
                        r.end_ms,
                        stream
                            .emit
                            .iter()
                            .zip(&stream.emit_names)
                            .map(|(f, name)| (Arc::clone(name), f.eval(&row))),
                    )
                }
            };
            if let Some(ranks) = ranks.as_deref_mut() {
                ranks.push(Rank::window(r.end_ms, r.key));
            }
            out.push(event);
        }
    }
}
