//! What the status page shows: every pipeline with its status, counters and its recent
//! checkpoints (a bounded history kept in memory, seeded from the store at a start).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use varpulis_checkpoint::CheckpointManager;
use varpulis_store::StateStore;

use super::{PipelineInfo, PipelineMetrics, Registry, Tenant, info_of};
use crate::error::TenantError;
use crate::ids::TenantId;
use crate::pipeline::Entry;

/// Checkpoints kept in each pipeline's history, at most (the oldest are forgotten first).
pub const CHECKPOINT_HISTORY: usize = 32;

/// One committed checkpoint of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSample {
    /// Its id.
    pub id: u64,
    /// When it was taken (ms since the epoch, the server's clock).
    pub created_ms: i64,
    /// Bytes it references in the store (parts and manifest), as
    /// `varpulis_checkpoint_bytes` reports them.
    pub bytes: u64,
    /// How long its commit took; `None` for a checkpoint committed before the server started
    /// (found in the store, not timed by this process).
    pub duration: Option<Duration>,
}

/// A pipeline's recent checkpoints, oldest first, at most [`CHECKPOINT_HISTORY`].
#[derive(Debug, Default)]
pub(crate) struct CheckpointHistory(StdMutex<VecDeque<CheckpointSample>>);

impl CheckpointHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CheckpointSample>> {
        // A deque of plain values, changed in single push/pop calls: never half-updated.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a checkpoint just committed.
    pub(crate) fn push(&self, sample: CheckpointSample) {
        let mut h = self.lock();
        // A seeded entry with the same id (never expected: ids increase) is replaced.
        h.retain(|s| s.id < sample.id);
        h.push_back(sample);
        while h.len() > CHECKPOINT_HISTORY {
            h.pop_front();
        }
    }

    fn samples(&self) -> Vec<CheckpointSample> {
        self.lock().iter().copied().collect()
    }
}

/// A pipeline as the status page shows it.
#[derive(Debug, Clone)]
pub struct PipelineStatusReport {
    /// What listing shows: name, status, error.
    pub info: PipelineInfo,
    /// Its counters.
    pub metrics: PipelineMetrics,
    /// Its recent checkpoints, oldest first (the last is the newest).
    pub checkpoints: Vec<CheckpointSample>,
}

impl PipelineStatusReport {
    /// The newest checkpoint in the history.
    #[must_use]
    pub fn last_checkpoint(&self) -> Option<&CheckpointSample> {
        self.checkpoints.last()
    }
}

/// A tenant and its pipelines, as the status page shows them.
#[derive(Debug, Clone)]
pub struct TenantStatusReport {
    /// Its id.
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// Its pipelines, oldest first.
    pub pipelines: Vec<PipelineStatusReport>,
}

/// The counters of `e`, read without its lock.
pub(super) fn metrics_of(e: &Entry) -> PipelineMetrics {
    let s = &e.stats;
    let wm = s.watermark.load(Ordering::Relaxed);
    let last = s.last_checkpoint.load(Ordering::Relaxed);
    PipelineMetrics {
        events_in: s.events_in.load(Ordering::Relaxed),
        output_events: s.output_events.load(Ordering::Relaxed),
        state_bytes: s.state_bytes.load(Ordering::Relaxed),
        late_events_dropped: s.late_events_dropped.load(Ordering::Relaxed),
        watermark_ms: (wm > 0).then(|| i64::try_from(wm - 1).unwrap_or(i64::MAX)),
        checkpoints: s.checkpoints.load(Ordering::Relaxed),
        last_checkpoint_id: (last > 0).then(|| last - 1),
    }
}

/// The checkpoints still in the store (at most the newest [`CHECKPOINT_HISTORY`]), oldest
/// first, without durations. A checkpoint that cannot be read is left out: recovery has
/// already said why.
pub(super) async fn seed(
    manager: &CheckpointManager<Arc<dyn StateStore>>,
) -> Vec<CheckpointSample> {
    let ids = match manager.list_checkpoints().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!("checkpoint history not seeded: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for id in ids.iter().rev().take(CHECKPOINT_HISTORY).rev() {
        let Ok(Some(cp)) = manager.load_checkpoint(*id).await else {
            continue;
        };
        let Ok(bytes) = varpulis_checkpoint::encoded_size(&cp) else {
            continue;
        };
        out.push(CheckpointSample {
            id: *id,
            created_ms: cp.timestamp_ms,
            bytes,
            duration: None,
        });
    }
    out
}

fn report_of(e: &Entry) -> PipelineStatusReport {
    PipelineStatusReport {
        info: info_of(e),
        metrics: metrics_of(e),
        checkpoints: e.checkpoints.samples(),
    }
}

fn tenant_report(t: &Tenant) -> TenantStatusReport {
    let r = t.record();
    let mut pipelines: Vec<PipelineStatusReport> =
        t.entries().iter().map(|e| report_of(e)).collect();
    pipelines.sort_by(|a, b| (a.info.created_ms, &a.info.id).cmp(&(b.info.created_ms, &b.info.id)));
    TenantStatusReport {
        id: r.id,
        name: r.name,
        pipelines,
    }
}

impl Registry {
    /// The tenant's pipelines with their status, counters and recent checkpoints. Reads no
    /// pipeline's lock: a busy pipeline does not hold it up.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn tenant_status(&self, tenant: &TenantId) -> Result<TenantStatusReport, TenantError> {
        let t = self.tenant_or_err(tenant)?;
        Ok(tenant_report(&t))
    }

    /// [`tenant_status`](Self::tenant_status) of every tenant, oldest tenant first (the
    /// operator's view).
    #[must_use]
    pub fn status(&self) -> Vec<TenantStatusReport> {
        let mut all = self.all_tenants();
        all.sort_by_cached_key(|t| {
            let r = t.record();
            (r.created_ms, r.id)
        });
        all.iter().map(|t| tenant_report(t)).collect()
    }
}
