//! The event path: batches applied all or nothing and made durable before they are answered,
//! idempotent retries, and the numbered outputs readers subscribe to or page through.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot};
use varpulis_checkpoint::codec::BlobKind;
use varpulis_checkpoint::error_chain;
use varpulis_core::Event;

use super::{Registry, Tenant, engine_error, lock, state_quota};
use crate::error::TenantError;
use crate::ids::{PipelineId, TenantId};
use crate::metrics::RejectLabels;
use crate::pipeline::{Entry, Runtime};
use crate::record::{self, IdempotencyStamp, LOG_VERSION, LogEntry, LoggedBatch};

/// The answer to an accepted batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Events accepted.
    pub accepted: u64,
    /// Output events, in order.
    pub outputs: Vec<Event>,
    /// `true` when this is a retry of a request already applied (same idempotency key, same
    /// events): nothing was applied, and this is the original answer.
    pub replayed: bool,
}

/// A request that may be retried: the client's key, and a fingerprint of what it asked (the
/// same key with another fingerprint is a conflict, not a retry).
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    /// The client's key (`Idempotency-Key`, or a batch's `batch_id`).
    pub key: &'a str,
    /// SHA-256 of the request as the client sent it.
    pub fingerprint: [u8; 32],
}

impl<'a> Idempotency<'a> {
    /// `key`, with the SHA-256 of `request` (the bytes the client sent) as its fingerprint:
    /// a retry sends the same bytes, even when its events take their time on receipt.
    #[must_use]
    pub fn of_bytes(key: &'a str, request: &[u8]) -> Self {
        Self {
            key,
            fingerprint: Sha256::digest(request).into(),
        }
    }
}

/// A stream of a pipeline's output events ([`Registry::subscribe`]).
#[derive(Debug)]
pub struct Subscription {
    /// Retained outputs from the asked seq on, in order.
    pub backlog: Vec<(u64, Event)>,
    /// Set when the asked seq is no longer retained.
    pub gap: Option<Gap>,
    /// Live outputs: skip those with a seq below `next` (already in the backlog).
    pub live: broadcast::Receiver<(u64, Event)>,
    /// The first seq the live stream must start at.
    pub next: u64,
}

/// Outputs asked for that are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The seq asked for.
    pub requested: u64,
    /// The oldest seq still retained.
    pub first_available: u64,
}

/// A page of retained outputs ([`Registry::outputs`]).
#[derive(Debug, Clone)]
pub struct OutputsPage {
    /// `(seq, event)`, in order.
    pub outputs: Vec<(u64, Event)>,
    /// The oldest seq still retained.
    pub first_available: u64,
    /// The seq to ask for next.
    pub next: u64,
    /// `true` when `from` was older than what is retained.
    pub gap: bool,
}

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

fn check_idempotency_key(key: &str) -> Result<(), TenantError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(TenantError::InvalidIdempotencyKey {
            message: format!(
                "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
            ),
        });
    }
    Ok(())
}

impl Registry {
    /// Applies a batch of events, all or nothing, and makes it durable before returning: it is
    /// appended to the pipeline's ingest log first, so a crash right after the answer loses
    /// nothing (the log is replayed at the next start).
    ///
    /// With an idempotency key, a retry of a batch already applied (same key, same request)
    /// applies nothing and returns the original answer ([`Batch::replayed`]); the same key with
    /// another request is [`TenantError::IdempotencyConflict`]. The last
    /// [`IDEMPOTENCY_KEYS`](crate::IDEMPOTENCY_KEYS) keys of the last 24 hours are remembered,
    /// across restarts too (they are in the log entry and in a record written with each
    /// checkpoint).
    ///
    /// # Errors
    /// Not found; [`TenantError::NotRunning`]; [`TenantError::InvalidEvent`] (the first event
    /// the engine refuses; nothing applied); [`TenantError::RateLimited`];
    /// [`TenantError::QuotaExceeded`] when the tenant's state is already over its quota; the
    /// store's errors (nothing applied).
    pub async fn process(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        events: Vec<Event>,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Batch, TenantError> {
        let result = self.process_inner(tenant, id, events, idempotency).await;
        if let Err(e) = &result {
            let labels = RejectLabels {
                tenant: tenant.to_string(),
                pipeline: id.to_string(),
                reason: reject_reason(e).to_owned(),
            };
            self.metrics.rejected.get_or_create(&labels).inc();
        }
        result
    }

    async fn process_inner(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        events: Vec<Event>,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<Batch, TenantError> {
        let (t, entry) = self.pipeline_entry(tenant, id)?;
        if let Some(i) = &idempotency {
            check_idempotency_key(i.key)?;
        }
        let (reply, mut answer) = oneshot::channel();
        entry
            .queue
            .lock()
            .expect("not poisoned")
            .push_back(Pending {
                events,
                idempotency: idempotency.map(|i| (i.key.to_owned(), i.fingerprint)),
                reply,
            });
        // Whoever holds the lock commits every request queued by then, this one included if
        // it was queued in time, and answers them: an answered request returns at once,
        // without waiting for the lock (the next group may be writing).
        let cancelled = || TenantError::LogAppend {
            // Only a group abandoned half-way drops its replies; the HTTP layer runs each
            // request in its own task so that it never is.
            message: String::from("the request's group commit was cancelled"),
        };
        let mut runtime = tokio::select! {
            biased;
            result = &mut answer => return result.unwrap_or_else(|_| Err(cancelled())),
            runtime = lock(&entry) => runtime?,
        };
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => return Err(cancelled()),
            }
            let group: Vec<Pending> = {
                let mut queue = entry.queue.lock().expect("not poisoned");
                let n = queue.len().min(MAX_GROUP_REQUESTS);
                queue.drain(..n).collect()
            };
            if group.is_empty() {
                return Err(TenantError::LogAppend {
                    message: String::from("the request left the queue unanswered"),
                });
            }
            self.commit_group(tenant, id, &t, &entry, &mut runtime, group)
                .await;
        }
    }

    /// Judges each request of `group` on its own (idempotency, events, quota, rate), writes
    /// the accepted ones as one log entry, applies them in order and answers every request.
    async fn commit_group(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        t: &Tenant,
        entry: &Entry,
        runtime: &mut Runtime,
        group: Vec<Pending>,
    ) {
        let now_ms = self.clock.now_ms();
        let quota = t.record().quota;
        let state_bytes = t.usage().state_bytes;
        let mut batches: Vec<LoggedBatch> = Vec::new();
        // Per request: its answer now, or the batch whose answer it gets after the write.
        let mut plans: Vec<(oneshot::Sender<Result<Batch, TenantError>>, Plan)> =
            Vec::with_capacity(group.len());
        // Keys of this group's batches: a retry can come before the first try is answered.
        let mut in_group: HashMap<String, ([u8; 32], usize)> = HashMap::new();
        for p in group {
            let plan = match judge(runtime, &p, &in_group, &quota, state_bytes) {
                Err(e) => Plan::Now(Err(e)),
                Ok(Judged::Answer(batch)) => Plan::Now(Ok(batch)),
                Ok(Judged::SameAs(index)) => Plan::Retry(index),
                Ok(Judged::Accept) => {
                    let n = p.events.len() as u64;
                    let taken = t
                        .limiter
                        .lock()
                        .expect("not poisoned")
                        .take(n, self.clock.monotonic());
                    match taken {
                        Err(retry_after_ms) => {
                            Plan::Now(Err(TenantError::RateLimited { retry_after_ms }))
                        }
                        Ok(()) => {
                            let stamp = p.idempotency.map(|(key, body_hash)| {
                                in_group.insert(key.clone(), (body_hash, batches.len()));
                                IdempotencyStamp {
                                    key,
                                    body_hash,
                                    at_ms: now_ms,
                                }
                            });
                            batches.push(LoggedBatch {
                                events: p.events,
                                idempotency: stamp,
                            });
                            Plan::Apply(batches.len() - 1)
                        }
                    }
                }
            };
            plans.push((p.reply, plan));
        }
        let results = if batches.is_empty() {
            Ok(Vec::new())
        } else {
            self.append_and_apply(tenant, id, entry, runtime, batches, now_ms)
                .await
        };
        // Tokens of refused writes go back.
        if let Err((_, events)) = &results {
            t.limiter.lock().expect("not poisoned").give_back(*events);
        }
        for (reply, plan) in plans {
            let answer = match (plan, &results) {
                (Plan::Now(answer), _) => answer,
                (Plan::Apply(i), Ok(done)) => Ok(done[i].clone()),
                (Plan::Retry(i), Ok(done)) => Ok(Batch {
                    replayed: true,
                    ..done[i].clone()
                }),
                (Plan::Apply(_) | Plan::Retry(_), Err((message, _))) => {
                    Err(TenantError::LogAppend {
                        message: message.clone(),
                    })
                }
            };
            // A caller that went away is fine.
            let _ = reply.send(answer);
        }
    }

    /// Appends `batches` to the log as one entry (one durable write), then applies them in
    /// order. On a failed write nothing is applied: the error's text and the events refused.
    async fn append_and_apply(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        entry: &Entry,
        runtime: &mut Runtime,
        batches: Vec<LoggedBatch>,
        now_ms: i64,
    ) -> Result<Vec<Batch>, (String, u64)> {
        let seq = runtime.next_seq;
        let log = LogEntry {
            version: LOG_VERSION,
            seq,
            batches,
        };
        let events: u64 = log.batches.iter().map(|b| b.events.len() as u64).sum();
        let labels = &entry.labels;
        let append_started = self.clock.monotonic();
        let blob =
            record::encode(BlobKind::IngestLog, &log).map_err(|e| (error_chain(&e), events))?;
        // The put survives a process crash; the flush makes it survive a power loss too (an
        // fsync of the file, or of RocksDB's write-ahead log), once for the whole group. A
        // failed entry is overwritten by the next group: it takes the same seq.
        self.store
            .put(&self.layout.log_entry(tenant, id, seq), &blob)
            .await
            .map_err(|e| (error_chain(&e), events))?;
        self.store
            .flush()
            .await
            .map_err(|e| (error_chain(&e), events))?;
        let secs = self
            .clock
            .monotonic()
            .saturating_sub(append_started)
            .as_secs_f64();
        self.metrics
            .ingest_append_seconds
            .get_or_create(labels)
            .observe(secs);
        self.metrics
            .ingest_bytes
            .get_or_create(labels)
            .inc_by(blob.len() as u64);
        self.metrics
            .ingest_group_requests
            .get_or_create(labels)
            .observe(log.batches.len() as f64);
        runtime.next_seq = seq + 1;
        runtime.dirty = true;
        let mut done = Vec::with_capacity(log.batches.len());
        for batch in log.batches {
            let n = batch.events.len() as u64;
            let base = runtime.output_events;
            let late_before = entry.stats.late_events_dropped.load(Ordering::Relaxed);
            let outputs = runtime.apply(&batch.events, &entry.stats);
            let late_after = entry.stats.late_events_dropped.load(Ordering::Relaxed);
            self.metrics.events_in.get_or_create(labels).inc_by(n);
            self.metrics
                .output_events
                .get_or_create(labels)
                .inc_by(outputs.len() as u64);
            if late_after > late_before {
                self.metrics
                    .late_events
                    .get_or_create(labels)
                    .inc_by(late_after - late_before);
            }
            for (seq, o) in (base + 1..).zip(&outputs) {
                // Nobody listening is fine.
                let _ = entry.outputs.send((seq, o.clone()));
            }
            if let Some(stamp) = batch.idempotency {
                runtime.remember(stamp, batch.events.len(), outputs.clone(), now_ms);
            }
            done.push(Batch {
                accepted: n,
                outputs,
                replayed: false,
            });
        }
        Ok(done)
    }

    /// The pipeline's output events from `from` on (seq numbers start at 1): those still
    /// retained, then the live ones as they are produced, with no gap and no repeat between
    /// the two. Without `from`, only the live ones.
    ///
    /// # Errors
    /// Not found.
    pub async fn subscribe(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        from: Option<u64>,
    ) -> Result<Subscription, TenantError> {
        let (_, e) = self.pipeline_entry(tenant, id)?;
        // Under the lock no output is produced: the backlog and the live stream meet exactly.
        let runtime = lock(&e).await?;
        let live = e.outputs.subscribe();
        let next = runtime.output_events + 1;
        let (backlog, gap) = match from {
            None => (Vec::new(), None),
            Some(from) => {
                let first = runtime.output_log.first(next);
                let gap = (from < first).then_some(Gap {
                    requested: from,
                    first_available: first,
                });
                (runtime.output_log.from(from.max(first), usize::MAX), gap)
            }
        };
        Ok(Subscription {
            backlog,
            gap,
            next: from.map_or(next, |f| f.max(next)),
            live,
        })
    }

    /// Up to `limit` retained output events from `from` on.
    ///
    /// # Errors
    /// Not found.
    pub async fn outputs(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        from: u64,
        limit: usize,
    ) -> Result<OutputsPage, TenantError> {
        let (_, e) = self.pipeline_entry(tenant, id)?;
        let runtime = lock(&e).await?;
        let next = runtime.output_events + 1;
        let first = runtime.output_log.first(next);
        let outputs = runtime.output_log.from(from.max(first), limit);
        let after = outputs.last().map_or(from.max(first), |(s, _)| s + 1);
        Ok(OutputsPage {
            outputs,
            first_available: first,
            next: after.min(next),
            gap: from < first,
        })
    }
}

/// The `reason` label of a refused event request.
fn reject_reason(e: &TenantError) -> &'static str {
    match e {
        TenantError::RateLimited { .. } => "rate_limited",
        TenantError::QuotaExceeded { .. } => "quota_exceeded",
        TenantError::InvalidEvent { .. } => "invalid_event",
        TenantError::NotRunning { .. } => "not_running",
        TenantError::IdempotencyConflict { .. } | TenantError::InvalidIdempotencyKey { .. } => {
            "idempotency"
        }
        TenantError::PipelineNotFound | TenantError::TenantNotFound => "not_found",
        _ => "store",
    }
}

/// Most requests committed by one log write.
const MAX_GROUP_REQUESTS: usize = 256;

/// An event request waiting in a pipeline's queue for its group commit.
pub(crate) struct Pending {
    events: Vec<Event>,
    /// Key and fingerprint.
    idempotency: Option<(String, [u8; 32])>,
    reply: oneshot::Sender<Result<Batch, TenantError>>,
}

/// What a group does with one of its requests.
enum Plan {
    /// Answered without writing (refused, a retry of an older request, or empty).
    Now(Result<Batch, TenantError>),
    /// The answer of this batch of the log entry.
    Apply(usize),
    /// A retry of this batch of the same group: its answer, marked replayed.
    Retry(usize),
}

/// A request judged before the write.
enum Judged {
    Answer(Batch),
    SameAs(usize),
    Accept,
}

/// Judges a request as if it were alone (the rate limit is taken after, by the caller).
fn judge(
    runtime: &mut Runtime,
    p: &Pending,
    in_group: &HashMap<String, ([u8; 32], usize)>,
    quota: &crate::quota::Quota,
    state_bytes: u64,
) -> Result<Judged, TenantError> {
    runtime.engine_mut()?;
    if let Some((key, fingerprint)) = &p.idempotency {
        if let Some(r) = runtime.idempotency.get(key) {
            if r.stamp.body_hash != *fingerprint {
                return Err(TenantError::IdempotencyConflict { key: key.clone() });
            }
            return Ok(Judged::Answer(Batch {
                accepted: r.accepted,
                outputs: r.outputs.clone(),
                replayed: true,
            }));
        }
        if let Some((hash, index)) = in_group.get(key) {
            if hash != fingerprint {
                return Err(TenantError::IdempotencyConflict { key: key.clone() });
            }
            return Ok(Judged::SameAs(*index));
        }
    }
    let engine = runtime.engine_mut()?;
    for (index, event) in p.events.iter().enumerate() {
        engine
            .check_event(event)
            .map_err(|e| TenantError::InvalidEvent {
                index,
                message: engine_error(&e),
            })?;
    }
    if p.events.is_empty() {
        return Ok(Judged::Answer(Batch {
            accepted: 0,
            outputs: Vec::new(),
            replayed: false,
        }));
    }
    state_quota(state_bytes, quota, "refusing events")?;
    Ok(Judged::Accept)
}
