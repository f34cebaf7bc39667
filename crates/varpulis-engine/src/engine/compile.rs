//! Compiling a program's stream plans into [`CompiledStream`]s: each stream's input (or, for a
//! pattern or a join, inputs), its window, pattern or join operator (aggregate inputs and
//! conditions as VPL expressions over the program variables) and how far its operator
//! watermark lags the effective one.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, FieldRef, Value};
use varpulis_vpl::{Bindings, CompiledExpr, Source, StreamPlan, WindowKind};
use varpulis_windows::{Aggregate, WindowOperator, WindowSpec};

use super::accepts::{Accepts, stream_accepts};
use super::operators::Operator;
use super::{Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Events of this type from the input (index into `Engine::source_types`).
    Event,
    /// Outputs of the stream at this index (an earlier one: streams are in dependency order).
    Stream(usize),
}

/// One input of a pattern or join stream: where its events come from and the name they carry
/// (the event type, or the upstream stream's name).
#[derive(Debug, Clone)]
pub(super) struct Feed {
    pub(super) input: Input,
    pub(super) name: String,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledStream {
    pub(super) plan: StreamPlan,
    /// The source of a plain stream (a pattern's or join's first input: see `feeds`).
    pub(super) input: Input,
    pub(super) window: Option<WindowOperator>,
    /// A pattern or join stream's operator.
    pub(super) operator: Option<Operator>,
    /// A pattern or join stream's inputs (empty for a plain stream).
    pub(super) feeds: Vec<Feed>,
    /// How far behind the effective watermark this stream's operator watermark is: the
    /// allowed lateness of every windowed stream upstream, so that an upstream window emitted
    /// late is never late here.
    pub(super) watermark_lag_ms: i64,
    /// The stream's name, the type of its output events (shared, not allocated per event).
    pub(super) output_type: Arc<str>,
    /// The `.emit` field names, in order (empty without `.emit`).
    pub(super) emit_names: Vec<Arc<str>>,
    /// `.where`, `.having` and the `.emit` values, compiled once (fields read by position).
    pub(super) filter: Option<CompiledExpr>,
    pub(super) having: Option<CompiledExpr>,
    pub(super) emit: Vec<CompiledExpr>,
    /// Whether a later stream reads this one's outputs (else they are moved to the output,
    /// not copied).
    pub(super) has_readers: bool,
    /// The source's name, to compare with an event's type by address once learned (see
    /// [`FieldRef`]).
    pub(super) source_name: FieldRef,
}

impl CompiledStream {
    /// Advances a pattern or join stream's operator to `wm` (`None`: flushes it) and appends
    /// the output events of its matches to `out`.
    pub(super) fn drain_operator(
        &mut self,
        variables: &BTreeMap<String, Value>,
        wm: Option<varpulis_core::EventTime>,
        out: &mut Vec<Event>,
    ) {
        let Self {
            plan,
            operator,
            output_type,
            filter,
            emit,
            emit_names,
            ..
        } = self;
        let Some(op) = operator.as_mut() else {
            return;
        };
        super::operators::Projection {
            plan,
            output_type,
            filter: filter.as_ref(),
            emit,
            emit_names,
            variables,
        }
        .drain(op, wm, out, None);
    }

    /// [`drain_operator`](Self::drain_operator) in a keyed context: each output's rank (its
    /// match's decision) goes to `ranks`.
    pub(super) fn drain_operator_ranked(
        &mut self,
        variables: &BTreeMap<String, Value>,
        wm: Option<varpulis_core::EventTime>,
        out: &mut Vec<Event>,
        ranks: &mut Vec<super::context::Rank>,
    ) {
        let Self {
            plan,
            operator,
            output_type,
            filter,
            emit,
            emit_names,
            ..
        } = self;
        let Some(op) = operator.as_mut() else {
            return;
        };
        super::operators::Projection {
            plan,
            output_type,
            filter: filter.as_ref(),
            emit,
            emit_names,
            variables,
        }
        .drain(op, wm, out, Some(ranks));
    }

    /// Whether input events of type `t` reach this stream directly.
    pub(super) fn reads_event_type(&self, t: &str) -> bool {
        if self.feeds.is_empty() {
            self.input == Input::Event && self.plan.source.name() == t
        } else {
            self.feeds
                .iter()
                .any(|f| f.input == Input::Event && f.name == t)
        }
    }

    /// Whether this stream reads the outputs of stream `up`.
    pub(super) fn reads_stream(&self, up: usize) -> bool {
        if self.feeds.is_empty() {
            self.input == Input::Stream(up)
        } else {
            self.feeds.iter().any(|f| f.input == Input::Stream(up))
        }
    }
}

/// A VPL expression as a window aggregate input: evaluated against the event and the program
/// variables.
#[derive(Debug)]
struct VplExpr {
    compiled: CompiledExpr,
    signature: String,
    variables: Arc<BTreeMap<String, Value>>,
}

impl varpulis_windows::Expr for VplExpr {
    fn eval(&self, event: &Event) -> Value {
        self.compiled.eval(&Bindings::event(event, &self.variables))
    }
    fn signature(&self) -> String {
        self.signature.clone()
    }
}

fn window_operator(
    plan: &StreamPlan,
    window: WindowKind,
    variables: &Arc<BTreeMap<String, Value>>,
) -> Result<WindowOperator, EngineError> {
    let name = plan.name.as_str();
    let mut spec = WindowSpec::new(name, window);
    if let Some(field) = &plan.partition_by {
        spec = spec.partition_by(field.as_str());
    }
    if let Some(lateness) = plan.allowed_lateness_ms {
        spec = spec.allowed_lateness(lateness);
    }
    for agg in &plan.aggregates {
        let a = match &agg.arg {
            None => Aggregate::count(agg.alias.as_str()),
            Some(arg) => Aggregate::new(
                agg.alias.as_str(),
                agg.func,
                VplExpr {
                    compiled: CompiledExpr::new(arg),
                    signature: arg.to_string(),
                    variables: Arc::clone(variables),
                },
            ),
        };
        spec = spec.aggregate(a);
    }
    WindowOperator::new(spec).map_err(|source| EngineError::Window {
        stream: plan.name.clone(),
        source,
    })
}

impl Engine {
    /// Builds every stream of the program, and what each source type accepts.
    pub(super) fn compile(&mut self) -> Result<(), EngineError> {
        let mut streams: Vec<CompiledStream> = Vec::with_capacity(self.program.streams.len());
        for plan in &self.program.streams {
            // The inputs: a plain stream's source, or every input of a pattern or join.
            let mut feeds = Vec::new();
            let mut lag = 0_i64;
            for source in plan.inputs() {
                let input = match source {
                    Source::Event(_) => Input::Event,
                    Source::Stream(name) => {
                        let idx = streams
                            .iter()
                            .position(|s| s.plan.name == *name)
                            .expect("streams are in dependency order");
                        let up = &streams[idx];
                        let up_lateness = if up.window.is_some() {
                            up.plan.allowed_lateness_ms.unwrap_or(0)
                        } else {
                            0
                        };
                        lag = lag.max(up.watermark_lag_ms.saturating_add(up_lateness));
                        Input::Stream(idx)
                    }
                };
                feeds.push(Feed {
                    input,
                    name: source.name().to_owned(),
                });
            }
            let input = feeds[0].input;
            let operator = Operator::build(plan, &self.variables)?;
            if operator.is_none() {
                feeds.clear();
            }
            let window = match plan.window {
                Some(w) => Some(window_operator(plan, w, &self.variables)?),
                None => None,
            };
            streams.push(CompiledStream {
                output_type: Arc::from(plan.name.as_str()),
                emit_names: plan
                    .emit
                    .iter()
                    .flatten()
                    .map(|f| Arc::from(f.name.as_str()))
                    .collect(),
                filter: plan.filter.as_ref().map(CompiledExpr::new),
                having: plan.having.as_ref().map(CompiledExpr::new),
                emit: plan
                    .emit
                    .iter()
                    .flatten()
                    .map(|f| CompiledExpr::new(&f.expr))
                    .collect(),
                plan: plan.clone(),
                input,
                window,
                operator,
                watermark_lag_ms: lag,
                has_readers: false,
                source_name: FieldRef::new(plan.source.name()),
                feeds,
            });
            let me = streams.len() - 1;
            let ups: Vec<usize> = if streams[me].feeds.is_empty() {
                vec![input]
            } else {
                streams[me].feeds.iter().map(|f| f.input).collect()
            }
            .into_iter()
            .filter_map(|i| match i {
                Input::Stream(up) => Some(up),
                Input::Event => None,
            })
            .collect();
            for up in ups {
                streams[up].has_readers = true;
            }
        }
        self.produced = vec![Vec::new(); streams.len()];
        self.ranks = vec![Vec::new(); streams.len()];
        self.injected = vec![Vec::new(); streams.len()];
        let accepts = stream_accepts(&streams);
        self.source_accepts = self
            .source_types
            .iter()
            .map(|t| {
                streams
                    .iter()
                    .zip(&accepts)
                    .filter(|(s, _)| s.reads_event_type(t.name()))
                    .map(|(_, a)| *a)
                    .reduce(Accepts::intersect)
                    .unwrap_or(Accepts::everything(0))
            })
            .collect();
        self.streams = streams;
        self.flush = None;
        Ok(())
    }
}
