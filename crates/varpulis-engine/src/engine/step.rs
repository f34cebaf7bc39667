//! One stream's step: an event through the stream's filter into its window or projection, and
//! closed windows through `.having` and `.emit` into output events.

use std::collections::BTreeMap;

use varpulis_core::{Event, Value};
use varpulis_vpl::{Scope, StreamPlan};
use varpulis_windows::{Outcome, WindowResult};

use super::LateEvent;
use super::compile::CompiledStream;

/// What the streams of one engine step share: the program variables, the buffer window
/// results pass through (empty between calls), and the late-event side output.
pub(super) struct Step<'a> {
    pub(super) variables: &'a BTreeMap<String, Value>,
    pub(super) results: &'a mut Vec<WindowResult>,
    pub(super) late: &'a mut Vec<LateEvent>,
}

impl Step<'_> {
    /// Takes one event into `stream`: filter, then window or projection; appends what it
    /// emits to `out`.
    pub(super) fn handle(
        &mut self,
        stream: &mut CompiledStream,
        event: &Event,
        out: &mut Vec<Event>,
    ) {
        let variables = self.variables;
        if !stream.plan.accepts(event, variables) {
            return;
        }
        match stream.window.as_mut() {
            Some(op) => {
                match op.process(event, self.results) {
                    Ok(Outcome::Accepted) => {}
                    Ok(Outcome::Late) => {
                        tracing::debug!(
                            stream = %stream.plan.name,
                            event_time = event.timestamp_ms(),
                            "late event dropped"
                        );
                        self.late.push(LateEvent {
                            stream: stream.plan.name.clone(),
                            event: event.clone(),
                        });
                    }
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
                self.finish(&stream.plan, out);
            }
            None => {
                let mut e = Event::new(stream.plan.name.as_str(), event.timestamp_ms());
                match &stream.plan.emit {
                    Some(emit) => {
                        let scope = Scope::empty().with_event(event).with_variables(variables);
                        for f in emit {
                            e.set(f.name.as_str(), f.expr.eval(&scope));
                        }
                    }
                    None => {
                        for (name, value) in event.fields() {
                            e.set(name, value.clone());
                        }
                    }
                }
                out.push(e);
            }
        }
    }

    /// Turns the closed windows in the results buffer into output events of `plan`: `.having`,
    /// then `.emit`.
    pub(super) fn finish(&mut self, plan: &StreamPlan, out: &mut Vec<Event>) {
        let variables = self.variables;
        for r in self.results.drain(..) {
            if plan.having.is_none() && plan.emit.is_none() {
                out.push(r.event);
                continue;
            }
            let row: BTreeMap<String, Value> = r
                .event
                .fields()
                .map(|(n, v)| (n.to_owned(), v.clone()))
                .collect();
            let scope = Scope::empty().with_aliases(&row).with_variables(variables);
            if plan.having.as_ref().is_some_and(|h| !h.matches(&scope)) {
                continue;
            }
            match &plan.emit {
                None => out.push(r.event),
                Some(emit) => {
                    let mut e = Event::new(plan.name.as_str(), r.end_ms);
                    for f in emit {
                        e.set(f.name.as_str(), f.expr.eval(&scope));
                    }
                    out.push(e);
                }
            }
        }
    }
}
