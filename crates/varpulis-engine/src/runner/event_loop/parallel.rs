//! The event loop of a parallel run (`--workers N`): a source thread, N context threads, and
//! this loop as the sink.
//!
//! ```text
//!  source thread ──batches, barrier n──> context 0..N-1 (threads) ──tagged outputs, state n──┐
//!  (reads, checks,  └───────────batches, barrier n (position)──────────> sink (this loop) <───┘
//!   batches)                                            merge, tail, write, checkpoint n
//! ```
//!
//! - The **source** reads and checks each event (as the one-context loop does), and sends
//!   batches of [`BATCH`] events, shared, to every context and to the sink over bounded
//!   channels: a full channel blocks it (backpressure; nothing is dropped). When the sink asks
//!   for a checkpoint it injects **barrier n** after the event it is at, on every channel,
//!   with the input position.
//! - Each **context** runs the parallel streams for its key groups over every event (so its
//!   watermark is the one-context engine's) and sends, per batch, its outputs tagged with their
//!   order key; at barrier n it copies its state (only that, on its own thread) and sends it.
//! - The **sink** takes, per batch, the batch from the source and the tagged outputs of every
//!   context, merges them in order key order, runs the tail (the streams no context runs) with
//!   the merged outputs injected, and writes: the output is the one-context run's, byte for
//!   byte. Channels are FIFO, so barrier n reaches the sink from every context after exactly
//!   the batches before it (the alignment); then the sink records the contexts' states, the
//!   tail's, the position and the output length, and hands the commit to the background as a
//!   one-context checkpoint. A checkpoint whose barrier took longer than
//!   [`RunConfig::checkpoint_timeout`](crate::RunConfig::checkpoint_timeout) is aborted (the
//!   previous one stays the recovery point) and the next one is taken on schedule.
//! - A context that panics fails the run with its message ([`RunError::Context`]); the last
//!   committed checkpoint stands.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use varpulis_checkpoint::{CLOCK_STRIDE, Checkpoint, CheckpointEvery, EngineCheckpoint};
use varpulis_core::{Event, EventTime};

use super::{End, Loop, PROGRESS_EVERY, Wait};
use crate::clock::Clock;
use crate::engine::context::{FLUSH_SEQ, Routed, Router, Tagged, TaggedLate};
use crate::engine::{CONTEXT, Engine, LateEvent};
use crate::runner::{RunError, RunObserver};
use crate::source::{EventFileReader, SourcePosition};

/// Events per message from the source.
const BATCH: usize = 4096;
/// Messages a channel holds before its sender waits.
const CHANNEL_CAPACITY: usize = 16;

/// The name of parallel context `i` in a checkpoint's `context_states` (the tail is
/// [`CONTEXT`]).
pub(crate) fn context_name(i: usize) -> String {
    format!("worker-{i}")
}

/// Metadata keys of a parallel checkpoint.
mod meta {
    /// Number of parallel contexts.
    pub(super) const WORKERS: &str = "contexts.workers";
    /// Number of key groups.
    pub(super) const KEY_GROUPS: &str = "contexts.key_groups";
    /// Microseconds from the first context's barrier reaching the sink to the last's.
    pub(super) const ALIGNMENT_US: &str = "barrier.alignment_us";
    /// Microseconds from the sink's request to every context's barrier at the sink.
    pub(super) const LATENCY_US: &str = "barrier.latency_us";
    /// Per context, microseconds its state copy stalled it: `barrier.snapshot_us.<context>`.
    pub(super) const SNAPSHOT_US: &str = "barrier.snapshot_us.";
}

/// What the next snapshot of a parallel run records besides the tail's state.
pub(in crate::runner) struct BarrierSnapshot {
    /// Each context's state, by its name in the checkpoint.
    states: Vec<(String, EngineCheckpoint)>,
    /// The source's counters and watermark at the barrier (`None` before the threads start:
    /// the tail's own are right then).
    source: Option<EngineCheckpoint>,
    metadata: BTreeMap<String, String>,
}

impl BarrierSnapshot {
    /// Puts the contexts' states, the tail's and the barrier's figures into `cp`.
    pub(super) fn record(self, cp: &mut Checkpoint, mut tail: EngineCheckpoint) {
        if let Some(source) = self.source {
            tail.watermark_state = source.watermark_state;
            tail.events_processed = source.events_processed;
        }
        let workers = self
            .states
            .iter()
            .filter(|(n, _)| n.starts_with("worker-"))
            .count();
        cp.metadata
            .insert(meta::WORKERS.to_owned(), workers.to_string());
        cp.metadata.insert(
            meta::KEY_GROUPS.to_owned(),
            crate::key_group::KEY_GROUPS.to_string(),
        );
        for (name, state) in self.states {
            cp.context_states.insert(name, state);
        }
        cp.context_states.insert(CONTEXT.to_owned(), tail);
        cp.metadata.extend(self.metadata);
    }
}

/// One batch of input events, shared by the contexts and the sink.
struct Batch {
    /// Input sequence number of `events[0]` (events of this run, from 0).
    first_seq: u64,
    events: Vec<Event>,
    /// The effective watermark after each event.
    watermarks: Vec<Option<EventTime>>,
    /// Per parallel pattern, its operator watermark after each event.
    operator_watermarks: Vec<Vec<Option<EventTime>>>,
    /// The input position after the last event.
    end: SourcePosition,
}

enum ToContext {
    /// A batch, and the indices of the events routed to the context.
    Batch(Arc<Batch>, Vec<u32>),
    Barrier(u64),
    /// The input ended; flush first (end of input with `--flush-at-end`).
    End {
        flush: bool,
    },
}

enum FromSource {
    Batch(Arc<Batch>),
    Barrier {
        id: u64,
        at: SourcePosition,
        /// When the source injected it (the shared clock's monotonic time).
        injected: Duration,
        /// The source's counters and watermark.
        source: EngineCheckpoint,
    },
    End(End, EngineCheckpoint),
}

enum FromContext {
    Batch {
        outputs: Vec<Tagged>,
        late: Vec<TaggedLate>,
    },
    Barrier {
        id: u64,
        state: EngineCheckpoint,
        took: Duration,
    },
    End {
        outputs: Vec<Tagged>,
        late: Vec<TaggedLate>,
        state: EngineCheckpoint,
    },
}

/// What the sink tells the source.
#[derive(Default)]
struct Control {
    /// Stop reading (a shutdown request).
    stop: AtomicBool,
    /// A checkpoint is due (a time-based schedule, which the sink keeps): inject a barrier
    /// after the current event.
    barrier: AtomicBool,
}

/// The threads of a parallel run.
struct Threads {
    control: Arc<Control>,
    source: Receiver<FromSource>,
    /// Batches the sink is done with, back to the source: their events are freed on the thread
    /// that allocated them (freeing on another thread made the allocator the bottleneck).
    recycle: Sender<Arc<Batch>>,
    /// The keyed contexts', then the declared contexts' outputs.
    contexts: Vec<Receiver<FromContext>>,
    /// Their names, in the same order.
    names: Vec<String>,
    handles: Vec<(String, JoinHandle<()>)>,
}

impl Threads {
    /// The next message of context `i`; its failure if it stopped.
    fn recv(&mut self, i: usize) -> Result<FromContext, RunError> {
        match self.contexts[i].recv() {
            Ok(m) => Ok(m),
            Err(_) => {
                let name = self.names[i].clone();
                Err(self.failed(&name))
            }
        }
    }

    /// The error of thread `name`, which stopped (joined for its panic message).
    fn failed(&mut self, name: &str) -> RunError {
        let message = match self.handles.iter().position(|(n, _)| n == name) {
            Some(k) => {
                let (_, handle) = self.handles.swap_remove(k);
                match handle.join() {
                    Err(payload) => panic_message(payload.as_ref()),
                    Ok(()) => "it stopped without a reason".to_owned(),
                }
            }
            None => "it stopped".to_owned(),
        };
        RunError::Context {
            context: name.to_owned(),
            message,
        }
    }

    /// Stops the threads (a run that ends early, in error) and waits for them.
    fn stop(mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers unblocks senders waiting on full channels.
        drop(std::mem::replace(&mut self.source, sync_channel(1).1));
        self.contexts.clear();
        for (_, h) in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

impl Loop<'_> {
    /// The contexts' states before their threads start: what the first checkpoint of a new
    /// output records.
    pub(super) fn initial_barrier(&self) -> Option<BarrierSnapshot> {
        if self.contexts.is_empty() {
            return None;
        }
        Some(BarrierSnapshot {
            states: self
                .contexts
                .iter()
                .enumerate()
                .map(|(i, e)| (context_name(i), e.context_checkpoint()))
                .chain(
                    self.declared
                        .iter()
                        .map(|d| (d.name.clone(), d.engine.context_checkpoint())),
                )
                .collect(),
            source: None,
            metadata: BTreeMap::new(),
        })
    }

    /// The loop over input events of a parallel run (see the module docs): the counterpart of
    /// `events`, ending with the contexts' final states in `self.barrier` and, at end of
    /// input with `--flush-at-end`, their flushed outputs injected into the tail.
    pub(super) async fn events_parallel(
        &mut self,
        shutdown: &AtomicBool,
        observer: &mut dyn RunObserver,
    ) -> Result<End, RunError> {
        let mut threads = self.start_threads()?;
        let result = self.sink(&mut threads, shutdown, observer).await;
        match result {
            Ok(end) => {
                for (_, h) in threads.handles.drain(..) {
                    let _ = h.join();
                }
                Ok(end)
            }
            Err(e) => {
                threads.stop();
                Err(e)
            }
        }
    }

    fn start_threads(&mut self) -> Result<Threads, RunError> {
        let contexts = std::mem::take(&mut self.contexts);
        let n = contexts.len();
        let control = Arc::new(Control::default());
        let (recycle, recycled) = channel();
        let (to_sink, source_rx) = sync_channel(CHANNEL_CAPACITY);
        let mut to_contexts = Vec::with_capacity(contexts.len());
        let mut from_contexts = Vec::with_capacity(contexts.len());
        let mut handles = Vec::with_capacity(contexts.len() + 1);
        for (i, engine) in contexts.into_iter().enumerate() {
            let (tx, rx) = sync_channel::<ToContext>(CHANNEL_CAPACITY);
            let (out_tx, out_rx) = sync_channel::<FromContext>(CHANNEL_CAPACITY);
            let name = context_name(i);
            let panic_at = self
                .config
                .inject_context_panic
                .and_then(|(c, at)| (c == i).then_some(at));
            let handle = std::thread::Builder::new()
                .name(format!("varpulis-{name}"))
                .spawn({
                    let timer = self.clock.share();
                    move || context_thread(engine, &rx, &out_tx, panic_at, timer)
                })
                .map_err(|e| RunError::Context {
                    context: name.clone(),
                    message: format!("cannot start its thread: {e}"),
                })?;
            handles.push((name, handle));
            to_contexts.push(tx);
            from_contexts.push(out_rx);
        }
        let declared_names =
            self.start_declared(&mut to_contexts, &mut from_contexts, &mut handles)?;
        // The source reads through its own reader over the one input handle, from where this
        // loop's reader stands (the resume position; that reader is not read in this mode).
        let handle = self
            .input
            .file
            .try_clone()
            .map_err(|e| self.input.io_error(e))?;
        let reader = EventFileReader::from_file(
            &self.input.path,
            handle,
            self.input.format,
            Some(self.reader.position()),
        )?;
        // The source's engine checks, counts and observes every event: it continues the tail's
        // counters and watermark.
        let mut checker = self
            .engine
            .sibling()
            .expect("the program compiled for this run already");
        checker
            .restore_checkpoint(&self.engine.source_checkpoint())
            .expect("counters and a watermark restore into any engine of the program");
        let operators = checker.parallel_operators();
        let source = Source {
            router: checker.router(n),
            operator_watermarks: vec![Vec::with_capacity(BATCH); operators.len()],
            operators,
            routes: vec![Vec::new(); n],
            recycled,
            watermarks: Vec::with_capacity(BATCH),
            reader,
            checker,
            path: self.input.path.clone(),
            to_contexts,
            to_sink,
            control: Arc::clone(&control),
            flush_at_end: self.config.flush_at_end,
            timer: self.clock.share(),
            every_events: match self.schedule.every() {
                CheckpointEvery::Events(n) if self.manager.is_some() => Some(n.max(1)),
                _ => None,
            },
        };
        let handle = std::thread::Builder::new()
            .name("varpulis-source".to_owned())
            .spawn(move || source.run())
            .map_err(|e| RunError::Context {
                context: "source".to_owned(),
                message: format!("cannot start its thread: {e}"),
            })?;
        handles.push(("source".to_owned(), handle));
        let mut names: Vec<String> = (0..n).map(context_name).collect();
        names.extend(declared_names);
        Ok(Threads {
            control,
            source: source_rx,
            recycle,
            contexts: from_contexts,
            names,
            handles,
        })
    }

    /// Starts the declared contexts' threads: each reads the source and the declared contexts
    /// whose streams it reads (in lockstep, batch by batch), and sends its outputs to the sink
    /// and to the declared contexts that read them. Returns their names.
    fn start_declared(
        &mut self,
        to_contexts: &mut Vec<SyncSender<ToContext>>,
        from_contexts: &mut Vec<Receiver<FromContext>>,
        handles: &mut Vec<(String, JoinHandle<()>)>,
    ) -> Result<Vec<String>, RunError> {
        let declared = std::mem::take(&mut self.declared);
        let own: Vec<HashSet<usize>> = declared.iter().map(|d| d.engine.own_streams()).collect();
        let wants: Vec<HashSet<usize>> = declared
            .iter()
            .map(|d| d.engine.injected_streams())
            .collect();
        // Per context, what it receives from each producer, and what it sends to each consumer.
        let mut inputs: Vec<Vec<Receiver<FromContext>>> =
            (0..declared.len()).map(|_| Vec::new()).collect();
        let mut consumers: Vec<Vec<Consumer>> = (0..declared.len()).map(|_| Vec::new()).collect();
        for (p, produced) in own.iter().enumerate() {
            for (c, wanted) in wants.iter().enumerate() {
                let streams: HashSet<usize> = produced.intersection(wanted).copied().collect();
                if c == p || streams.is_empty() {
                    continue;
                }
                let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
                inputs[c].push(rx);
                consumers[p].push(Consumer {
                    tx,
                    streams: Some(streams),
                });
            }
        }
        let mut names = Vec::with_capacity(declared.len());
        for ((d, inputs), mut consumers) in declared.into_iter().zip(inputs).zip(consumers) {
            let (tx, rx) = sync_channel::<ToContext>(CHANNEL_CAPACITY);
            let (out_tx, out_rx) = sync_channel::<FromContext>(CHANNEL_CAPACITY);
            consumers.insert(
                0,
                Consumer {
                    tx: out_tx,
                    streams: None,
                },
            );
            let name = d.name.clone();
            let (engine, cores) = (d.engine, d.cores);
            let thread = DeclaredThread {
                name: name.clone(),
                timer: self.clock.share(),
                engine,
                source: rx,
                inputs,
                consumers,
            };
            let handle = std::thread::Builder::new()
                .name(format!("varpulis-{name}"))
                .spawn(move || {
                    pin_to(&thread.name, &cores);
                    thread.run();
                })
                .map_err(|e| RunError::Context {
                    context: name.clone(),
                    message: format!("cannot start its thread: {e}"),
                })?;
            handles.push((name.clone(), handle));
            to_contexts.push(tx);
            from_contexts.push(out_rx);
            names.push(name);
        }
        Ok(names)
    }

    async fn sink(
        &mut self,
        threads: &mut Threads,
        shutdown: &AtomicBool,
        observer: &mut dyn RunObserver,
    ) -> Result<End, RunError> {
        let n = threads.contexts.len();
        let timer = self.clock.share();
        let mut outputs: Vec<Event> = Vec::new();
        // A barrier asked for and not yet at the sink (a time-based schedule; a count of
        // events is the source's to keep).
        let mut asked = false;
        let by_time = matches!(self.schedule.every(), CheckpointEvery::Interval(_));
        loop {
            if shutdown.load(Ordering::Relaxed) {
                threads.control.stop.store(true, Ordering::Relaxed);
            }
            let Ok(message) = threads.source.recv() else {
                return Err(threads.failed("source"));
            };
            match message {
                FromSource::Batch(batch) => {
                    let mut tagged = Vec::new();
                    let mut late = Vec::new();
                    for i in 0..n {
                        let FromContext::Batch {
                            outputs: o,
                            late: l,
                        } = threads.recv(i)?
                        else {
                            unreachable!("contexts answer the source's messages in order")
                        };
                        tagged.extend(o);
                        late.extend(l);
                    }
                    self.tail_batch(&batch, tagged, late, &mut outputs, observer)?;
                    let (events, end) = (batch.events.len() as u64, batch.end);
                    // The source may have stopped: then the batch is simply dropped here.
                    let _ = threads.recycle.send(batch);
                    for k in 0..events {
                        self.report.events_read += 1;
                        if self.report.events_read.is_multiple_of(PROGRESS_EVERY) {
                            observer.progress(end, self.file_len);
                        }
                        let clock = self.clock;
                        if self.schedule.event(|| clock.monotonic())
                            && by_time
                            && self.manager.is_some()
                            && !asked
                        {
                            asked = true;
                            threads.control.barrier.store(true, Ordering::Relaxed);
                        } else if self.in_flight.is_some()
                            && (self.report.events_read - k).is_multiple_of(CLOCK_STRIDE)
                        {
                            self.poll_in_flight(observer).await?;
                        }
                    }
                }
                FromSource::Barrier {
                    id,
                    at,
                    injected,
                    source,
                } => {
                    let mut states = Vec::with_capacity(n);
                    let mut metadata = BTreeMap::new();
                    let mut first = None;
                    let mut snapshot_max = Duration::ZERO;
                    for i in 0..n {
                        let FromContext::Barrier {
                            id: got,
                            state,
                            took,
                        } = threads.recv(i)?
                        else {
                            unreachable!("contexts answer the source's messages in order")
                        };
                        debug_assert_eq!(got, id);
                        first.get_or_insert_with(|| now(timer.as_ref()));
                        snapshot_max = snapshot_max.max(took);
                        let name = threads.names[i].clone();
                        metadata.insert(
                            format!("{}{name}", meta::SNAPSHOT_US),
                            took.as_micros().to_string(),
                        );
                        states.push((name, state));
                    }
                    asked = false;
                    let at_sink = now(timer.as_ref());
                    let latency = at_sink.saturating_sub(injected);
                    let alignment = first.map_or(Duration::ZERO, |t| at_sink.saturating_sub(t));
                    tracing::info!(
                        barrier = id,
                        latency_us = latency.as_micros() as u64,
                        alignment_us = alignment.as_micros() as u64,
                        max_snapshot_us = snapshot_max.as_micros() as u64,
                        "barrier aligned"
                    );
                    metadata.insert(
                        meta::ALIGNMENT_US.to_owned(),
                        alignment.as_micros().to_string(),
                    );
                    metadata.insert(meta::LATENCY_US.to_owned(), latency.as_micros().to_string());
                    if let Some(limit) = self.config.checkpoint_timeout
                        && latency > limit
                    {
                        // Aborted: the previous checkpoint stays the recovery point; the next
                        // one is asked for on schedule.
                        tracing::warn!(
                            barrier = id,
                            latency_ms = latency.as_millis() as u64,
                            limit_ms = limit.as_millis() as u64,
                            "checkpoint aborted: its barrier took longer than the checkpoint \
                             timeout"
                        );
                        self.report.checkpoints_aborted += 1;
                        self.schedule.taken(self.clock.monotonic());
                        continue;
                    }
                    self.barrier = Some(BarrierSnapshot {
                        states,
                        source: Some(source),
                        metadata,
                    });
                    self.checkpoint(at, Wait::HandOff, observer).await?;
                }
                FromSource::End(end, source) => {
                    let mut tagged = Vec::new();
                    let mut late = Vec::new();
                    let mut states = Vec::with_capacity(n);
                    for i in 0..n {
                        let FromContext::End {
                            outputs: o,
                            late: l,
                            state,
                        } = threads.recv(i)?
                        else {
                            unreachable!("contexts answer the source's messages in order")
                        };
                        tagged.extend(o);
                        late.extend(l);
                        states.push((threads.names[i].clone(), state));
                    }
                    self.contexts_late = states
                        .iter()
                        .map(|(_, s)| {
                            let windows: u64 = s
                                .window_states
                                .values()
                                .map(|w| w.late_events_dropped)
                                .sum();
                            let patterns: u64 = s
                                .pattern_states
                                .values()
                                .map(|p| p.counters.late_events_dropped)
                                .sum();
                            let joins: u64 = s
                                .join_operator_states
                                .values()
                                .map(|j| j.counters.late_events_dropped)
                                .sum();
                            windows + patterns + joins
                        })
                        .sum();
                    // The flushed outputs of the parallel streams, for the tail's flush.
                    sort_tagged(&mut tagged);
                    for t in tagged {
                        self.engine.inject(t.stream, t.event);
                    }
                    let mut late = sort_late(late);
                    for l in late.drain(..) {
                        observer.late_event(&l.late);
                    }
                    self.barrier = Some(BarrierSnapshot {
                        states,
                        source: Some(source),
                        metadata: BTreeMap::new(),
                    });
                    return Ok(end);
                }
            }
        }
    }

    /// The sink's work for one batch: the tail over each event with the parallel streams'
    /// outputs at that position injected, then the outputs written in order and the late
    /// events reported in the one-context order.
    fn tail_batch(
        &mut self,
        batch: &Batch,
        mut tagged: Vec<Tagged>,
        late: Vec<TaggedLate>,
        outputs: &mut Vec<Event>,
        observer: &mut dyn RunObserver,
    ) -> Result<(), RunError> {
        sort_tagged(&mut tagged);
        if !self.engine.tail_runs_streams() {
            // Nothing runs in the tail: the merged outputs are the output.
            self.engine.count_passed_on(tagged.len() as u64);
            outputs.extend(tagged.into_iter().map(|t| t.event));
            self.write_outputs(outputs)?;
            for l in sort_late(late) {
                observer.late_event(&l.late);
            }
            return Ok(());
        }
        let mut tagged = tagged.into_iter().peekable();
        let mut late = sort_late(late).into_iter().peekable();
        let mut here: Vec<(usize, LateEvent)> = Vec::new();
        for (k, event) in batch.events.iter().enumerate() {
            let seq = batch.first_seq + k as u64;
            while let Some(t) = tagged.next_if(|t| t.seq == seq) {
                self.engine.inject(t.stream, t.event);
            }
            self.engine
                .process(event, outputs)
                .map_err(|error| RunError::Event {
                    file: self.input.path.clone(),
                    line: 0,
                    error,
                })?;
            self.write_outputs(outputs)?;
            here.clear();
            while let Some(l) = late.next_if(|l| l.seq == seq) {
                here.push((l.stream, l.late));
            }
            for l in self.engine.take_late_events() {
                here.push((self.engine.stream_index(&l.stream), l));
            }
            here.sort_by_key(|(stream, _)| *stream);
            for (_, l) in &here {
                observer.late_event(l);
            }
        }
        Ok(())
    }
}

/// The contexts' outputs in the one-context order: by order key, ties (keys equal as values
/// but not alike, `Int(1)` and `Float(1.0)`) in context order (the sort is stable).
fn sort_tagged(tagged: &mut [Tagged]) {
    tagged.sort_by(Tagged::order);
}

/// The shared clock's monotonic time (zero without one: see [`Clock::share`]).
fn now(timer: Option<&Arc<dyn Clock>>) -> Duration {
    timer.map_or(Duration::ZERO, |c| c.monotonic())
}

fn sort_late(mut late: Vec<TaggedLate>) -> Vec<TaggedLate> {
    late.sort_by_key(|l| (l.seq, l.stream));
    late
}

/// The reading thread.
struct Source {
    reader: EventFileReader,
    checker: Engine,
    router: Router,
    /// Per context, the indices of the current batch's events routed to it.
    routes: Vec<Vec<u32>>,
    /// Batches back from the sink, to free (and reuse) here.
    recycled: Receiver<Arc<Batch>>,
    watermarks: Vec<Option<EventTime>>,
    /// The parallel pattern streams, and per pattern its operator watermark after each event
    /// of the current batch.
    operators: Vec<usize>,
    operator_watermarks: Vec<Vec<Option<EventTime>>>,
    path: PathBuf,
    to_contexts: Vec<SyncSender<ToContext>>,
    to_sink: SyncSender<FromSource>,
    control: Arc<Control>,
    flush_at_end: bool,
    /// A barrier after every this many events (a count-based schedule).
    every_events: Option<u64>,
    timer: Option<Arc<dyn Clock>>,
}

impl Source {
    fn run(mut self) {
        let mut events = Vec::with_capacity(BATCH);
        let mut seq = 0_u64;
        let mut barriers = 0_u64;
        let mut since_barrier = 0_u64;
        let end = loop {
            if self.control.stop.load(Ordering::Relaxed) {
                break End::Shutdown(self.reader.position());
            }
            let before = self.reader.position();
            match self.reader.next_event() {
                Ok(Some(e)) => match self.checker.observe_source(&e) {
                    Ok(wm) => {
                        let k = events.len() as u32;
                        let routes = &mut self.routes;
                        self.router.route(&e, |c| {
                            if routes[c].last() != Some(&k) {
                                routes[c].push(k);
                            }
                        });
                        self.watermarks.push(wm);
                        for (w, &i) in self.operator_watermarks.iter_mut().zip(&self.operators) {
                            w.push(self.checker.operator_watermark_of(i, wm));
                        }
                        events.push(e);
                    }
                    Err(error) => {
                        break End::Error {
                            error: RunError::Event {
                                file: self.path.clone(),
                                line: self.reader.position().line,
                                error,
                            },
                            at: before,
                        };
                    }
                },
                Ok(None) if self.control.stop.load(Ordering::Relaxed) => {
                    break End::Shutdown(self.reader.position());
                }
                Ok(None) => break End::Input(self.reader.position()),
                Err(e) => {
                    break End::Error {
                        error: e.into(),
                        at: before,
                    };
                }
            }
            since_barrier += 1;
            let due = self.every_events.is_some_and(|n| since_barrier >= n)
                || (self.control.barrier.load(Ordering::Relaxed)
                    && self.control.barrier.swap(false, Ordering::Relaxed));
            if (events.len() == BATCH || due) && !self.send_batch(&mut events, &mut seq) {
                return;
            }
            if due {
                barriers += 1;
                since_barrier = 0;
                let barrier = FromSource::Barrier {
                    id: barriers,
                    at: self.reader.position(),
                    injected: now(self.timer.as_ref()),
                    source: self.checker.source_checkpoint(),
                };
                if !self.send(ToContext::Barrier(barriers), barrier) {
                    return;
                }
            }
        };
        if !self.send_batch(&mut events, &mut seq) {
            return;
        }
        let flush = self.flush_at_end && matches!(end, End::Input(_));
        let source = self.checker.source_checkpoint();
        self.send(ToContext::End { flush }, FromSource::End(end, source));
    }

    /// Sends the events read since the last batch; `false` if the sink stopped.
    fn send_batch(&mut self, events: &mut Vec<Event>, seq: &mut u64) -> bool {
        if events.is_empty() {
            return true;
        }
        // Free the batches the sink is done with, here, and reuse one's buffers.
        let mut spare = None;
        while let Ok(done) = self.recycled.try_recv() {
            if let Ok(mut done) = Arc::try_unwrap(done) {
                done.events.clear();
                done.watermarks.clear();
                done.operator_watermarks.iter_mut().for_each(Vec::clear);
                spare = Some(done);
            }
        }
        let p = self.operators.len();
        let (next_events, next_watermarks, next_operators) = match spare {
            Some(b) => (b.events, b.watermarks, b.operator_watermarks),
            None => (
                Vec::with_capacity(BATCH),
                Vec::with_capacity(BATCH),
                vec![Vec::with_capacity(BATCH); p],
            ),
        };
        let batch = Arc::new(Batch {
            first_seq: *seq,
            events: std::mem::replace(events, next_events),
            watermarks: std::mem::replace(&mut self.watermarks, next_watermarks),
            operator_watermarks: std::mem::replace(&mut self.operator_watermarks, next_operators),
            end: self.reader.position(),
        });
        *seq += batch.events.len() as u64;
        for (i, tx) in self.to_contexts.iter().enumerate() {
            // Declared contexts (after the keyed ones) take every event.
            let mine = self
                .routes
                .get_mut(i)
                .map(std::mem::take)
                .unwrap_or_default();
            if tx.send(ToContext::Batch(Arc::clone(&batch), mine)).is_err() {
                return false;
            }
        }
        self.to_sink.send(FromSource::Batch(batch)).is_ok()
    }

    /// Sends `to_context` to every context, then `to_sink`; `false` if the sink stopped.
    fn send(&self, to_context: ToContext, to_sink: FromSource) -> bool {
        for tx in &self.to_contexts {
            let message = match &to_context {
                ToContext::Batch(..) => unreachable!("batches go through send_batch"),
                ToContext::Barrier(id) => ToContext::Barrier(*id),
                ToContext::End { flush } => ToContext::End { flush: *flush },
            };
            if tx.send(message).is_err() {
                return false;
            }
        }
        self.to_sink.send(to_sink).is_ok()
    }
}

/// Where a declared context sends its outputs: the sink (every stream, and its state at a
/// barrier) or a declared context that reads some of its streams.
struct Consumer {
    tx: SyncSender<FromContext>,
    /// The streams it reads (`None`: the sink, which takes all and the states).
    streams: Option<HashSet<usize>>,
}

impl Consumer {
    /// What of `message` this consumer gets; `false` if it stopped.
    fn send(&self, message: &FromContext) -> bool {
        let filter = |outputs: &[Tagged]| -> Vec<Tagged> {
            outputs
                .iter()
                .filter(|t| self.streams.as_ref().is_none_or(|s| s.contains(&t.stream)))
                .cloned()
                .collect()
        };
        let copy = match message {
            FromContext::Batch { outputs, late } => FromContext::Batch {
                outputs: filter(outputs),
                late: if self.streams.is_none() {
                    late.clone()
                } else {
                    Vec::new()
                },
            },
            FromContext::Barrier { id, state, took } => FromContext::Barrier {
                id: *id,
                state: if self.streams.is_none() {
                    state.clone()
                } else {
                    EngineCheckpoint::default()
                },
                took: *took,
            },
            FromContext::End {
                outputs,
                late,
                state,
            } => FromContext::End {
                outputs: filter(outputs),
                late: if self.streams.is_none() {
                    late.clone()
                } else {
                    Vec::new()
                },
                state: if self.streams.is_none() {
                    state.clone()
                } else {
                    EngineCheckpoint::default()
                },
            },
        };
        self.tx.send(copy).is_ok()
    }
}

/// A declared context's thread (`context NAME`): it runs its streams over every event, with
/// what they read from other declared contexts injected position by position.
struct DeclaredThread {
    name: String,
    timer: Option<Arc<dyn Clock>>,
    engine: Engine,
    source: Receiver<ToContext>,
    /// The declared contexts it reads from.
    inputs: Vec<Receiver<FromContext>>,
    /// The sink first, then the declared contexts that read from it.
    consumers: Vec<Consumer>,
}

impl DeclaredThread {
    fn run(mut self) {
        while let Ok(message) = self.source.recv() {
            let Some(answer) = self.answer(message) else {
                return;
            };
            let end = matches!(answer, FromContext::End { .. });
            if !self.consumers.iter().all(|c| c.send(&answer)) || end {
                return;
            }
        }
    }

    /// The answer to one message of the source, once every input sent its part; `None` if an
    /// input stopped (its failure is the sink's to report).
    fn answer(&mut self, message: ToContext) -> Option<FromContext> {
        let mut upstream = Vec::new();
        for input in &self.inputs {
            match input.recv().ok()? {
                FromContext::Batch { outputs, .. } | FromContext::End { outputs, .. } => {
                    upstream.extend(outputs);
                }
                FromContext::Barrier { .. } => {}
            }
        }
        sort_tagged(&mut upstream);
        Some(match message {
            ToContext::Batch(batch, _) => {
                let mut outputs = Vec::new();
                let mut late = Vec::new();
                let mut upstream = upstream.into_iter().peekable();
                for (k, event) in batch.events.iter().enumerate() {
                    let seq = batch.first_seq + k as u64;
                    while let Some(t) = upstream.next_if(|t| t.seq == seq) {
                        self.engine.inject(t.stream, t.event);
                    }
                    if let Err(e) = self
                        .engine
                        .process_tagged(event, seq, &mut outputs, &mut late)
                    {
                        panic!(
                            "context {}: an event the source accepted was refused: {e}",
                            self.name
                        );
                    }
                }
                FromContext::Batch { outputs, late }
            }
            ToContext::Barrier(id) => {
                let started = now(self.timer.as_ref());
                let state = self.engine.context_checkpoint();
                FromContext::Barrier {
                    id,
                    state,
                    took: now(self.timer.as_ref()).saturating_sub(started),
                }
            }
            ToContext::End { flush } => {
                let mut outputs = Vec::new();
                let mut late = Vec::new();
                if flush {
                    for t in upstream {
                        self.engine.inject(t.stream, t.event);
                    }
                    self.engine.flush_tagged(&mut outputs, &mut late);
                }
                FromContext::End {
                    outputs,
                    late,
                    state: self.engine.context_checkpoint(),
                }
            }
        })
    }
}

/// Pins the calling thread to `cores` (`context NAME (cores: [..])`); a warning if it cannot
/// (a core the machine does not have, or not Linux).
fn pin_to(context: &str, cores: &[usize]) {
    if cores.is_empty() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        #[allow(unsafe_code)]
        // SAFETY: `cpu_set_t` is plain data (zeroed is the empty set); `CPU_SET` writes within
        // it for a core below `CPU_SETSIZE` (checked), and `sched_setaffinity` reads it.
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &core in cores {
                if core < libc::CPU_SETSIZE as usize {
                    libc::CPU_SET(core, &mut set);
                }
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        };
        if !pinned {
            tracing::warn!(
                context,
                ?cores,
                error = %std::io::Error::last_os_error(),
                "cannot pin the context's thread to its cores; it runs on any"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(
        context,
        ?cores,
        "pinning threads to cores is not supported here; it runs on any"
    );
}

/// A parallel context's thread: every message of the source, answered in order.
fn context_thread(
    mut engine: Engine,
    rx: &Receiver<ToContext>,
    tx: &SyncSender<FromContext>,
    panic_at: Option<u64>,
    timer: Option<Arc<dyn Clock>>,
) {
    for message in rx {
        let answer = match message {
            ToContext::Batch(batch, mine) => {
                if let Some(at) = panic_at {
                    let seqs = batch.first_seq..batch.first_seq + batch.events.len() as u64;
                    assert!(!seqs.contains(&at), "injected panic at input event {at}");
                }
                let mut outputs = Vec::new();
                let mut late = Vec::new();
                let routed = Routed {
                    first_seq: batch.first_seq,
                    events: &batch.events,
                    watermarks: &batch.watermarks,
                    operator_watermarks: &batch.operator_watermarks,
                    mine: &mine,
                };
                engine.process_routed(&routed, &mut outputs, &mut late);
                FromContext::Batch { outputs, late }
            }
            ToContext::Barrier(id) => {
                let started = now(timer.as_ref());
                let state = engine.context_checkpoint();
                FromContext::Barrier {
                    id,
                    state,
                    took: now(timer.as_ref()).saturating_sub(started),
                }
            }
            ToContext::End { flush } => {
                let mut outputs = Vec::new();
                let mut late = Vec::new();
                if flush {
                    engine.flush_context(&mut outputs, &mut late);
                }
                debug_assert!(outputs.iter().all(|t| t.seq == FLUSH_SEQ));
                let state = engine.context_checkpoint();
                let _ = tx.send(FromContext::End {
                    outputs,
                    late,
                    state,
                });
                return;
            }
        };
        if tx.send(answer).is_err() {
            return;
        }
    }
}
