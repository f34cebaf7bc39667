//! One pipeline: its record, its engine (or why it does not run), its ingest log position and
//! its checkpoints.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Mutex, broadcast};
use varpulis_checkpoint::codec::BlobKind;
use varpulis_checkpoint::{Checkpoint, CheckpointConfig, CheckpointManager};
use varpulis_core::Event;
use varpulis_engine::{CONTEXT, Engine};
use varpulis_store::StateStore;
use varpulis_vpl::Program;

use crate::error::TenantError;
use crate::record::{
    self, IdempotencyRecord, IdempotencyStamp, Layout, LogEntry, OutputChunk, PipelineRecord,
    RECORD_VERSION, Remembered,
};

/// The source offset that records the last ingest-log entry a checkpoint includes.
pub(crate) const LOG_OFFSET: &str = "ingest-log";
const META_EVENTS_IN: &str = "events_in";
const META_OUTPUTS: &str = "output_events";

/// Idempotency keys remembered per pipeline, at most (the oldest are forgotten first).
pub const IDEMPOTENCY_KEYS: usize = 1000;
/// How long an idempotency key is remembered: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The remembered requests of a pipeline, oldest first, bounded by count and age.
#[derive(Debug, Default)]
pub(crate) struct Window {
    order: VecDeque<String>,
    map: HashMap<String, Remembered>,
    /// Changed since it was last written.
    dirty: bool,
}

impl Window {
    pub(crate) fn get(&self, key: &str) -> Option<&Remembered> {
        self.map.get(key)
    }

    pub(crate) fn insert(&mut self, r: Remembered, now_ms: i64) {
        let key = r.stamp.key.clone();
        if self.map.insert(key.clone(), r).is_some() {
            self.order.retain(|k| *k != key);
        }
        self.order.push_back(key);
        while let Some(oldest) = self.order.front() {
            let expired = self
                .map
                .get(oldest)
                .is_none_or(|r| r.stamp.at_ms < now_ms.saturating_sub(IDEMPOTENCY_WINDOW_MS));
            if self.order.len() <= IDEMPOTENCY_KEYS && !expired {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.map.remove(&k);
            }
        }
        self.dirty = true;
    }

    fn record(&self) -> IdempotencyRecord {
        IdempotencyRecord {
            version: RECORD_VERSION,
            remembered: self
                .order
                .iter()
                .filter_map(|k| self.map.get(k).cloned())
                .collect(),
        }
    }

    fn load(&mut self, rec: IdempotencyRecord) {
        for r in rec.remembered {
            if self.map.contains_key(&r.stamp.key) {
                continue;
            }
            self.order.push_back(r.stamp.key.clone());
            self.map.insert(r.stamp.key.clone(), r);
        }
    }
}

/// Output events kept per pipeline for clients that resume (`logs` after `Last-Event-ID`,
/// `outputs?from=`), at most this many ...
pub const OUTPUT_RETENTION_EVENTS: usize = 10_000;
/// ... and at most about this many bytes (JSON size, estimated).
pub const OUTPUT_RETENTION_BYTES: usize = 8 << 20;

/// The retained output events of a pipeline, by sequence number (1 = its first output ever).
#[derive(Debug, Default)]
pub(crate) struct OutputLog {
    ring: VecDeque<(u64, Event, usize)>,
    bytes: usize,
    /// The last seq written to the store.
    persisted_through: u64,
}

/// About the JSON size of an output event.
fn estimated_bytes(e: &Event) -> usize {
    fn value(v: &varpulis_core::Value) -> usize {
        use varpulis_core::Value as V;
        match v {
            V::Str(s) => s.len() + 2,
            V::Array(items) => 2 + items.iter().map(|i| value(i) + 1).sum::<usize>(),
            V::Map(m) => 2 + m.iter().map(|(k, v)| k.len() + 4 + value(v)).sum::<usize>(),
            _ => 20,
        }
    }
    48 + e.event_type().len()
        + e.fields()
            .map(|(n, v)| n.len() + 4 + value(v))
            .sum::<usize>()
}

impl OutputLog {
    fn push(&mut self, seq: u64, e: Event) {
        let size = estimated_bytes(&e);
        self.ring.push_back((seq, e, size));
        self.bytes += size;
        while self.ring.len() > OUTPUT_RETENTION_EVENTS
            || (self.bytes > OUTPUT_RETENTION_BYTES && self.ring.len() > 1)
        {
            if let Some((_, _, size)) = self.ring.pop_front() {
                self.bytes -= size;
            }
        }
    }

    /// The first seq still retained (`next` when none is).
    pub(crate) fn first(&self, next: u64) -> u64 {
        self.ring.front().map_or(next, |(s, _, _)| *s)
    }

    /// Up to `limit` retained outputs from `from` on.
    pub(crate) fn from(&self, from: u64, limit: usize) -> Vec<(u64, Event)> {
        let first = self.ring.front().map_or(u64::MAX, |(s, _, _)| *s);
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        self.ring
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(s, e, _)| (*s, e.clone()))
            .collect()
    }
}

/// Output events kept for slow `logs` readers before they are told they lagged.
const BROADCAST_CAPACITY: usize = 1024;

/// Counters read without the pipeline's lock (listing, metrics, usage).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) events_in: AtomicU64,
    pub(crate) output_events: AtomicU64,
    pub(crate) state_bytes: AtomicU64,
    pub(crate) late_events_dropped: AtomicU64,
    /// Watermark + 1 (0: none).
    pub(crate) watermark: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    /// Last checkpoint id + 1 (0: none).
    pub(crate) last_checkpoint: AtomicU64,
}

/// What listing shows of a pipeline, kept beside its lock.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub(crate) record: PipelineRecord,
    pub(crate) error: Option<String>,
    pub(crate) started_ms: i64,
}

/// A pipeline as the registry holds it.
pub(crate) struct Entry {
    pub(crate) shown: RwLock<Shown>,
    pub(crate) stats: Stats,
    pub(crate) outputs: broadcast::Sender<(u64, Event)>,
    pub(crate) runtime: Mutex<Runtime>,
    /// Event requests waiting for the lock: whoever takes it commits all of them as one group
    /// (one log write) and answers each.
    pub(crate) queue: std::sync::Mutex<VecDeque<crate::registry::Pending>>,
    /// The labels of its metrics (made once, not per batch).
    pub(crate) labels: crate::metrics::PipelineLabels,
    /// Set, under the lock, when the pipeline is deleted: whoever takes the lock after that
    /// writes nothing for it.
    pub(crate) deleted: std::sync::atomic::AtomicBool,
    /// Its recent checkpoints, for the status page.
    pub(crate) checkpoints: crate::registry::CheckpointHistory,
}

impl Entry {
    pub(crate) fn shown(&self) -> Shown {
        self.shown.read().expect("not poisoned").clone()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.shown.read().expect("not poisoned").error.is_none()
    }
}

/// The part of a pipeline behind its lock.
pub(crate) struct Runtime {
    /// The engine, or the error that keeps the pipeline from running.
    pub(crate) engine: Result<Engine, String>,
    pub(crate) manager: CheckpointManager<Arc<dyn StateStore>>,
    /// Counters of accepted events and their outputs (kept in checkpoints).
    pub(crate) events_in: u64,
    pub(crate) output_events: u64,
    /// Seq of the next ingest-log entry.
    pub(crate) next_seq: u64,
    /// Entries since the last checkpoint (a checkpoint is only due if there are some).
    pub(crate) dirty: bool,
    /// Monotonic time of the last checkpoint (or of the start).
    pub(crate) last_checkpoint_at: Duration,
    /// Requests that may be retried, with their answers.
    pub(crate) idempotency: Window,
    /// Output events retained for clients that resume.
    pub(crate) output_log: OutputLog,
    /// The log seqs of the retained checkpoints this process knows (the one it recovered,
    /// then those it committed), oldest first, at most `max(2, max_checkpoints)`. After each
    /// commit the log is trimmed up to the oldest of them.
    pub(crate) retained_seqs: VecDeque<u64>,
    /// Damaged checkpoints skipped by recoveries of this pipeline.
    pub(crate) fallbacks: u64,
}

/// Deletes the pipeline's log entries up to `seq`.
async fn trim_log(
    store: &Arc<dyn StateStore>,
    layout: &Layout,
    record: &PipelineRecord,
    seq: u64,
) -> Result<(), TenantError> {
    for key in store.list(&layout.log(&record.tenant, &record.id)).await? {
        let entry_seq: Option<u64> = key.last_segment().and_then(|s| s.parse().ok());
        if entry_seq.is_none_or(|s| s <= seq) {
            store.delete(&key).await?;
        }
    }
    Ok(())
}

/// Compiles `source` into a program, rendering errors as `varpulis check` does.
pub(crate) fn compile(source: &str, name: &str) -> Result<Program, TenantError> {
    varpulis_vpl::parse_program(source).map_err(|d| TenantError::Compile {
        diagnostics: d
            .render(source, &format!("pipeline {name}"))
            .trim_end()
            .to_owned(),
    })
}

impl Runtime {
    pub(crate) fn new(
        store: Arc<dyn StateStore>,
        layout: &Layout,
        record: &PipelineRecord,
        config: &CheckpointConfig,
        engine: Result<Engine, String>,
        now: Duration,
    ) -> Result<Self, TenantError> {
        let config = CheckpointConfig {
            key_prefix: layout.checkpoints(&record.tenant, &record.id),
            ..config.clone()
        };
        Ok(Self {
            engine,
            manager: CheckpointManager::new(store, config)?,
            events_in: 0,
            output_events: 0,
            next_seq: 1,
            dirty: false,
            last_checkpoint_at: now,
            idempotency: Window::default(),
            output_log: OutputLog::default(),
            retained_seqs: VecDeque::new(),
            fallbacks: 0,
        })
    }

    pub(crate) fn engine_mut(&mut self) -> Result<&mut Engine, TenantError> {
        self.engine
            .as_mut()
            .map_err(|e| TenantError::NotRunning { message: e.clone() })
    }

    /// Applies `events` (already checked) to the engine, returning the outputs.
    pub(crate) fn apply(&mut self, events: &[Event], stats: &Stats) -> Vec<Event> {
        let mut outputs = Vec::new();
        if let Ok(engine) = self.engine.as_mut() {
            for event in events {
                // Checked before: process refuses only what check_event refuses.
                if let Err(e) = engine.process(event, &mut outputs) {
                    tracing::error!("an event checked before was refused: {e}");
                }
            }
            // Late events are counted by the engine; the server has no side output for them.
            engine.take_late_events();
        }
        self.events_in += events.len() as u64;
        for o in &outputs {
            self.output_events += 1;
            self.output_log.push(self.output_events, o.clone());
        }
        self.publish(stats);
        outputs
    }

    /// Writes the outputs produced since the last checkpoint as one chunk, and deletes the
    /// chunks wholly older than what is retained.
    async fn persist_outputs(
        &mut self,
        store: &Arc<dyn StateStore>,
        layout: &Layout,
        record: &PipelineRecord,
    ) -> Result<(), TenantError> {
        let from = self.output_log.persisted_through + 1;
        let chunk = OutputChunk {
            version: RECORD_VERSION,
            outputs: self.output_log.from(from, usize::MAX),
        };
        if let Some((last, _)) = chunk.outputs.last() {
            let last = *last;
            let blob = record::encode(BlobKind::Outputs, &chunk)?;
            store
                .put(
                    &layout.output_chunk(&record.tenant, &record.id, from),
                    &blob,
                )
                .await?;
            self.output_log.persisted_through = last;
        }
        let first = self.output_log.first(self.output_events + 1);
        let chunks = store
            .list(&layout.outputs(&record.tenant, &record.id))
            .await?;
        let starts: Vec<u64> = chunks
            .iter()
            .map(|k| k.last_segment().and_then(|s| s.parse().ok()).unwrap_or(0))
            .collect();
        for (i, key) in chunks.iter().enumerate() {
            // A chunk ends where the next begins; the last one is still (partly) retained.
            if starts.get(i + 1).is_some_and(|next| *next <= first) {
                store.delete(key).await?;
            }
        }
        Ok(())
    }

    /// Loads the retained output chunks (at start, before the log is replayed).
    async fn load_outputs(
        &mut self,
        store: &Arc<dyn StateStore>,
        layout: &Layout,
        record: &PipelineRecord,
        through: u64,
    ) -> Result<(), TenantError> {
        for key in store
            .list(&layout.outputs(&record.tenant, &record.id))
            .await?
        {
            let Some(blob) = store.get(&key).await? else {
                continue;
            };
            let chunk: OutputChunk = record::decode(BlobKind::Outputs, &key, &blob)?;
            for (seq, e) in chunk.outputs {
                // Chunks can run past the restored checkpoint (a crash between the chunk and
                // the commit): the replay produces those again.
                if seq <= through && seq > self.output_log.persisted_through {
                    self.output_log.push(seq, e);
                    self.output_log.persisted_through = seq;
                }
            }
        }
        Ok(())
    }

    /// Remembers the answer to a request with an idempotency key.
    pub(crate) fn remember(
        &mut self,
        stamp: IdempotencyStamp,
        accepted: usize,
        outputs: Vec<Event>,
        now_ms: i64,
    ) {
        let r = Remembered {
            stamp,
            accepted: accepted as u64,
            outputs,
        };
        self.idempotency.insert(r, now_ms);
    }

    /// Copies the counters into `stats`.
    pub(crate) fn publish(&self, stats: &Stats) {
        stats.events_in.store(self.events_in, Ordering::Relaxed);
        stats
            .output_events
            .store(self.output_events, Ordering::Relaxed);
        if let Ok(engine) = &self.engine {
            stats
                .state_bytes
                .store(engine.approximate_state_bytes() as u64, Ordering::Relaxed);
            stats
                .late_events_dropped
                .store(engine.late_events_dropped(), Ordering::Relaxed);
            let wm = engine
                .watermark()
                .map_or(0, |w| u64::try_from(w).map_or(0, |w| w.saturating_add(1)));
            stats.watermark.store(wm, Ordering::Relaxed);
        } else {
            stats.state_bytes.store(0, Ordering::Relaxed);
        }
    }

    /// Commits a checkpoint of the engine, the counters and the log position, then deletes the
    /// log entries it includes.
    pub(crate) async fn checkpoint(
        &mut self,
        store: &Arc<dyn StateStore>,
        layout: &Layout,
        record: &PipelineRecord,
        stats: &Stats,
        now_ms: i64,
        now: Duration,
    ) -> Result<Option<(u64, u64)>, TenantError> {
        let Ok(engine) = &self.engine else {
            return Ok(None);
        };
        let mut cp = Checkpoint::new(now_ms);
        cp.context_states = HashMap::from([(CONTEXT.to_owned(), engine.create_checkpoint())]);
        cp.source_offsets = BTreeMap::from([(LOG_OFFSET.to_owned(), self.next_seq - 1)]);
        cp.metadata = BTreeMap::from([
            (META_EVENTS_IN.to_owned(), self.events_in.to_string()),
            (META_OUTPUTS.to_owned(), self.output_events.to_string()),
        ]);
        self.persist_outputs(store, layout, record).await?;
        // The window goes first: once the checkpoint commits, the log entries that carry its
        // newest keys are deleted.
        if self.idempotency.dirty {
            let blob = record::encode(BlobKind::Idempotency, &self.idempotency.record())?;
            store
                .put(&layout.idempotency(&record.tenant, &record.id), &blob)
                .await?;
            self.idempotency.dirty = false;
        }
        // Both are durable before the manifest that counts on them: the manager flushes only
        // its own writes before its commit point.
        store.flush().await?;
        let report = self.manager.checkpoint(&cp).await?;
        let id = report.id;
        let bytes = report.part_bytes_total + report.manifest_bytes;
        // The log is trimmed up to the oldest retained checkpoint, never up to this one: if
        // the newer ones are found damaged at the next start, recovery falls back to an older
        // one and replays the log from there, so no acknowledged batch may be gone from it.
        self.retained_seqs.push_back(self.next_seq - 1);
        let keep = self.manager.config().max_checkpoints.max(2);
        while self.retained_seqs.len() > keep {
            self.retained_seqs.pop_front();
        }
        if self.retained_seqs.len() >= 2
            && let Some(&trim_to) = self.retained_seqs.front()
        {
            // Committed: entries left by a failed trim are skipped by seq at replay and
            // deleted by the next trim.
            if let Err(e) = trim_log(store, layout, record, trim_to).await {
                tracing::warn!(
                    "pipeline {}: ingest log not trimmed after checkpoint {id}: {e}",
                    record.id
                );
            }
        }
        self.dirty = false;
        self.last_checkpoint_at = now;
        stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        stats.last_checkpoint.store(id + 1, Ordering::Relaxed);
        Ok(Some((id, bytes)))
    }

    /// Restores the newest valid checkpoint, then replays the log entries after it. Returns a
    /// note for the log when something could not be restored.
    pub(crate) async fn recover(
        &mut self,
        store: &Arc<dyn StateStore>,
        layout: &Layout,
        record: &PipelineRecord,
    ) -> Result<(), TenantError> {
        let recovery = self.manager.recover().await?;
        self.fallbacks += recovery.skipped.len() as u64;
        for s in &recovery.skipped {
            tracing::warn!(
                "pipeline {}: skipped damaged checkpoint {} ({}: {})",
                record.id,
                s.id,
                s.key,
                s.reason
            );
        }
        let mut applied = 0;
        if let Some(cp) = recovery.checkpoint {
            applied = cp.source_offsets.get(LOG_OFFSET).copied().unwrap_or(0);
            self.retained_seqs = VecDeque::from([applied]);
            let count = |k: &str| cp.metadata.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            self.events_in = count(META_EVENTS_IN);
            self.output_events = count(META_OUTPUTS);
            if let (Ok(engine), Some(state)) =
                (self.engine.as_mut(), cp.context_states.get(CONTEXT))
            {
                // A pipeline reloaded with a program its old state does not fit starts fresh,
                // as the reload itself did.
                if let Err(e) = engine.restore_checkpoint(state) {
                    tracing::warn!(
                        "pipeline {}: checkpoint {} does not fit its program ({e}); starting from an empty state",
                        record.id,
                        cp.id
                    );
                    *engine = Engine::new(engine.program().clone()).map_err(|e| {
                        TenantError::Compile {
                            diagnostics: e.to_string(),
                        }
                    })?;
                }
            }
        }
        self.next_seq = applied + 1;
        self.load_outputs(store, layout, record, self.output_events)
            .await?;
        let idem_key = layout.idempotency(&record.tenant, &record.id);
        if let Some(blob) = store.get(&idem_key).await? {
            let rec: IdempotencyRecord = record::decode(BlobKind::Idempotency, &idem_key, &blob)?;
            self.idempotency.load(rec);
        }
        let mut entries = Vec::new();
        for key in store.list(&layout.log(&record.tenant, &record.id)).await? {
            let Some(blob) = store.get(&key).await? else {
                continue;
            };
            let entry = LogEntry::decode(&key, &blob)?;
            entries.push(entry);
        }
        entries.sort_by_key(|e| e.seq);
        let stats = Stats::default();
        for entry in entries {
            self.next_seq = self.next_seq.max(entry.seq + 1);
            if entry.seq <= applied {
                continue;
            }
            if self.engine.is_ok() {
                // A batch whose append failed after reaching the store is replaced by the
                // next append, which takes the same seq; only a crash before it leaves the
                // batch to be replayed here (its answer was an error: it may have happened).
                for batch in entry.batches {
                    let outputs = self.apply(&batch.events, &stats);
                    if let Some(stamp) = batch.idempotency {
                        let at_ms = stamp.at_ms;
                        self.remember(stamp, batch.events.len(), outputs, at_ms);
                    }
                }
                self.dirty = true;
            }
        }
        Ok(())
    }
}

/// A new broadcast channel for a pipeline's outputs.
pub(crate) fn outputs_channel() -> broadcast::Sender<(u64, Event)> {
    broadcast::channel(BROADCAST_CAPACITY).0
}
