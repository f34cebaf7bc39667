//! The event path: batches applied all or nothing and made durable before they are answered,
//! idempotent retries, and the numbered outputs readers subscribe to or page through.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use varpulis_checkpoint::codec::BlobKind;
use varpulis_core::Event;

use super::{Registry, engine_error, lock, state_quota};
use crate::error::TenantError;
use crate::ids::{PipelineId, TenantId};
use crate::metrics::RejectLabels;
use crate::record::{self, IdempotencyStamp, LOG_VERSION, LogEntry};

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
        let mut runtime = lock(&entry).await?;
        runtime.engine_mut()?;
        let now_ms = self.clock.now_ms();
        let stamp = match idempotency {
            Some(Idempotency { key, fingerprint }) => {
                check_idempotency_key(key)?;
                let body_hash = fingerprint;
                if let Some(r) = runtime.idempotency.get(key) {
                    if r.stamp.body_hash != body_hash {
                        return Err(TenantError::IdempotencyConflict {
                            key: key.to_owned(),
                        });
                    }
                    return Ok(Batch {
                        accepted: r.accepted,
                        outputs: r.outputs.clone(),
                        replayed: true,
                    });
                }
                Some(IdempotencyStamp {
                    key: key.to_owned(),
                    body_hash,
                    at_ms: now_ms,
                })
            }
            None => None,
        };
        let engine = runtime.engine_mut()?;
        for (index, event) in events.iter().enumerate() {
            engine
                .check_event(event)
                .map_err(|e| TenantError::InvalidEvent {
                    index,
                    message: engine_error(&e),
                })?;
        }
        if events.is_empty() {
            return Ok(Batch {
                accepted: 0,
                outputs: Vec::new(),
                replayed: false,
            });
        }
        let quota = t.record().quota;
        state_quota(t.usage().state_bytes, &quota, "refusing events")?;
        let n = events.len() as u64;
        t.limiter
            .lock()
            .expect("not poisoned")
            .take(n, self.clock.monotonic())
            .map_err(|retry_after_ms| TenantError::RateLimited { retry_after_ms })?;
        let seq = runtime.next_seq;
        let log = LogEntry {
            version: LOG_VERSION,
            seq,
            events,
            idempotency: stamp,
        };
        let labels = &entry.labels;
        let append_started = self.clock.monotonic();
        let stored = match record::encode(BlobKind::IngestLog, &log) {
            Ok(blob) => {
                let put = self
                    .store
                    .put(&self.layout.log_entry(tenant, id, seq), &blob)
                    .await
                    .map_err(TenantError::from);
                if put.is_ok() {
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
                }
                put
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            t.limiter.lock().expect("not poisoned").give_back(n);
            return Err(e);
        }
        runtime.next_seq = seq + 1;
        runtime.dirty = true;
        let base = runtime.output_events;
        let late_before = entry.stats.late_events_dropped.load(Ordering::Relaxed);
        let outputs = runtime.apply(&log.events, &entry.stats);
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
        if let Some(stamp) = log.idempotency {
            runtime.remember(stamp, log.events.len(), outputs.clone(), now_ms);
        }
        Ok(Batch {
            accepted: n,
            outputs,
            replayed: false,
        })
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
