//! One stream's step: an event through the stream's filter into its window or projection, and
//! closed windows through `.having` and `.emit` into output events.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, Value};
use varpulis_vpl::Scope;
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
                self.finish(stream, out);
            }
            None => {
                let ts = event.timestamp_ms();
                let output_type = Arc::clone(&stream.output_type);
                out.push(match &stream.plan.emit {
                    Some(emit) => {
                        let scope = Scope::empty().with_event(event).with_variables(variables);
                        Event::from_fields(
                            output_type,
                            ts,
                            emit.iter()
                                .zip(&stream.emit_names)
                                .map(|(f, name)| (Arc::clone(name), f.expr.eval(&scope))),
                        )
                    }
                    None => event.with_event_type(output_type),
                });
            }
        }
    }

    /// Turns the closed windows in the results buffer into output events of `stream`:
    /// `.having`, then `.emit`.
    pub(super) fn finish(&mut self, stream: &CompiledStream, out: &mut Vec<Event>) {
        let (plan, variables) = (&stream.plan, self.variables);
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
                Some(emit) => out.push(Event::from_fields(
                    Arc::clone(&stream.output_type),
                    r.end_ms,
                    emit.iter()
                        .zip(&stream.emit_names)
                        .map(|(f, name)| (Arc::clone(name), f.expr.eval(&scope))),
                )),
            }
        }
    }
}
