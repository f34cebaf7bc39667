//! A pipeline's life: create, list, delete, checkpoint, restore, reload, metrics.

use std::sync::atomic::Ordering;

use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_checkpoint::state::EngineCheckpoint;
use varpulis_engine::Engine;

use super::{
    PipelineInfo, PipelineMetrics, Registry, check_name, check_streams, engine_error, info_of,
    lock, state_quota, status,
};
use crate::error::TenantError;
use crate::ids::{PipelineId, TenantId};
use crate::pipeline;
use crate::record::{self, PipelineRecord, RECORD_VERSION};

impl Registry {
    /// Deletes a pipeline's record, then its log and checkpoints.
    pub(super) async fn remove_pipeline_data(
        &self,
        rec: &PipelineRecord,
    ) -> Result<(), TenantError> {
        self.store
            .delete(&self.layout.pipeline(&rec.tenant, &rec.id))
            .await?;
        // Answered as deleted: a power loss must not bring it back.
        self.store.flush().await?;
        for prefix in self.layout.pipeline_data(&rec.tenant, &rec.id) {
            for key in self.store.list(&prefix).await? {
                self.store.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Creates and starts a pipeline.
    ///
    /// # Errors
    /// A bad name, VPL errors ([`TenantError::Compile`]), the pipeline and stream quotas; the
    /// store's errors.
    pub async fn create_pipeline(
        &self,
        tenant: &TenantId,
        name: &str,
        source: &str,
    ) -> Result<PipelineInfo, TenantError> {
        check_name("pipeline", name)?;
        let t = self.tenant_or_err(tenant)?;
        let quota = t.record().quota;
        let program = pipeline::compile(source, name)?;
        check_streams(&program, &quota)?;
        let engine = Engine::new(program).map_err(|e| TenantError::Compile {
            diagnostics: engine_error(&e),
        })?;
        let _admin = t.admin.lock().await;
        let n = t.entries().len();
        if n >= quota.max_pipelines as usize {
            return Err(TenantError::QuotaExceeded {
                what: "pipelines",
                limit: u64::from(quota.max_pipelines),
                message: format!(
                    "the tenant has {n} pipelines; its quota allows {}",
                    quota.max_pipelines
                ),
            });
        }
        let rec = PipelineRecord {
            version: RECORD_VERSION,
            id: PipelineId::random(),
            tenant: tenant.clone(),
            name: name.to_owned(),
            source: source.to_owned(),
            created_ms: self.clock.now_ms(),
        };
        self.put_pipeline(&rec).await?;
        let entry = self.start(rec.clone(), Ok(engine), false).await?;
        let info = info_of(&entry);
        t.pipelines
            .write()
            .expect("not poisoned")
            .insert(rec.id, entry);
        Ok(info)
    }

    /// The tenant's pipelines, oldest first.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn list_pipelines(&self, tenant: &TenantId) -> Result<Vec<PipelineInfo>, TenantError> {
        let t = self.tenant_or_err(tenant)?;
        let mut list: Vec<PipelineInfo> = t.entries().iter().map(|e| info_of(e)).collect();
        list.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(list)
    }

    /// One of the tenant's pipelines.
    ///
    /// # Errors
    /// [`TenantError::PipelineNotFound`] (also for another tenant's pipeline).
    pub fn pipeline(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
    ) -> Result<PipelineInfo, TenantError> {
        let (_, e) = self.pipeline_entry(tenant, id)?;
        Ok(info_of(&e))
    }

    /// Deletes a pipeline with its log and checkpoints; its counters stay in the tenant's
    /// usage.
    ///
    /// # Errors
    /// [`TenantError::PipelineNotFound`]; the store's errors.
    pub async fn delete_pipeline(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
    ) -> Result<(), TenantError> {
        let (t, entry) = self.pipeline_entry(tenant, id)?;
        let _admin = t.admin.lock().await;
        let runtime = lock(&entry).await?;
        entry.deleted.store(true, Ordering::Release);
        let rec = entry.shown().record;
        let mut trec = t.record();
        trec.retired_events_in += runtime.events_in;
        trec.retired_output_events += runtime.output_events;
        self.remove_pipeline_data(&rec).await?;
        self.put_tenant(&trec).await?;
        *t.record.lock().expect("not poisoned") = trec;
        t.pipelines.write().expect("not poisoned").remove(id);
        Ok(())
    }

    /// Commits a checkpoint of the pipeline now, and returns its engine state as an opaque
    /// text (hex of a checksummed envelope) that [`restore`](Self::restore) takes back.
    ///
    /// # Errors
    /// Not found, not running; the store's errors.
    pub async fn checkpoint(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
    ) -> Result<String, TenantError> {
        let (_, entry) = self.pipeline_entry(tenant, id)?;
        let mut runtime = lock(&entry).await?;
        let state = runtime.engine_mut()?.create_checkpoint();
        self.commit(&entry, &mut runtime).await?;
        let blob = record::encode(BlobKind::Export, &state)?;
        Ok(hex::encode(blob))
    }

    /// Replaces the pipeline's engine state with `checkpoint` (a text from
    /// [`checkpoint`](Self::checkpoint)) and commits a checkpoint of it. All or nothing: a
    /// text that does not decode, or a state that does not fit the program or the tenant's
    /// state quota, changes nothing.
    ///
    /// # Errors
    /// [`TenantError::InvalidCheckpoint`], [`TenantError::QuotaExceeded`]; not found, not
    /// running; the store's errors.
    pub async fn restore(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        checkpoint: &str,
    ) -> Result<(), TenantError> {
        let invalid = |message: String| TenantError::InvalidCheckpoint { message };
        let (t, entry) = self.pipeline_entry(tenant, id)?;
        let mut runtime = lock(&entry).await?;
        let program = runtime.engine_mut()?.program().clone();
        let blob = hex::decode(checkpoint.trim())
            .map_err(|e| invalid(format!("not the hex text a checkpoint returns ({e})")))?;
        let state: EngineCheckpoint =
            codec::decode(BlobKind::Export, &blob).map_err(|e| invalid(e.to_string()))?;
        let mut engine = Engine::new(program).map_err(|e| invalid(engine_error(&e)))?;
        engine
            .restore_checkpoint(&state)
            .map_err(|e| invalid(engine_error(&e)))?;
        let mine = entry.stats.state_bytes.load(Ordering::Relaxed);
        let others = t.usage().state_bytes.saturating_sub(mine);
        let quota = t.record().quota;
        state_quota(
            others + engine.approximate_state_bytes() as u64,
            &quota,
            "refusing the restore",
        )?;
        runtime.engine = Ok(engine);
        runtime.dirty = true;
        self.commit(&entry, &mut runtime).await?;
        runtime.publish(&entry.stats);
        Ok(())
    }

    /// Replaces the pipeline's program. The state carries over when it fits the new program
    /// (same streams and windows); otherwise the new program starts from an empty state. A
    /// source that does not compile, or is over the stream quota, changes nothing.
    ///
    /// # Errors
    /// [`TenantError::Compile`], [`TenantError::QuotaExceeded`]; not found; the store's errors.
    pub async fn reload(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
        source: &str,
    ) -> Result<(), TenantError> {
        let (t, entry) = self.pipeline_entry(tenant, id)?;
        let quota = t.record().quota;
        let mut rec = entry.shown().record;
        let program = pipeline::compile(source, &rec.name)?;
        check_streams(&program, &quota)?;
        let mut engine = Engine::new(program.clone()).map_err(|e| TenantError::Compile {
            diagnostics: engine_error(&e),
        })?;
        let mut runtime = lock(&entry).await?;
        let now_ms = self.clock.now_ms();
        let was_running = runtime.engine.is_ok();
        if !was_running {
            // Bringing a pipeline in error back must not take the tenant over its quota.
            let running = t.entries().iter().filter(|e| e.is_running()).count();
            if running >= quota.max_pipelines as usize {
                return Err(TenantError::QuotaExceeded {
                    what: "pipelines",
                    limit: u64::from(quota.max_pipelines),
                    message: format!(
                        "the tenant runs {running} pipelines; its quota allows {}",
                        quota.max_pipelines
                    ),
                });
            }
        }
        // Everything accepted so far goes into a checkpoint of the old program first.
        self.commit(&entry, &mut runtime).await?;
        if let Ok(old) = &runtime.engine
            && engine.restore_checkpoint(&old.create_checkpoint()).is_err()
        {
            engine = Engine::new(program).map_err(|e| TenantError::Compile {
                diagnostics: engine_error(&e),
            })?;
        }
        rec.source = source.to_owned();
        self.put_pipeline(&rec).await?;
        runtime.engine = Ok(engine);
        if !was_running {
            // A pipeline that did not run still has its stored state and the batches it
            // acknowledged before: the new program starts from them (or from an empty state
            // when the old state does not fit it), as at a start.
            runtime.recover(&self.store, &self.layout, &rec).await?;
        }
        {
            let mut shown = entry.shown.write().expect("not poisoned");
            shown.record = rec.clone();
            shown.error = None;
            shown.started_ms = now_ms;
        }
        runtime.dirty = true;
        self.commit(&entry, &mut runtime).await?;
        runtime.publish(&entry.stats);
        Ok(())
    }

    /// This pipeline's counters.
    ///
    /// # Errors
    /// Not found.
    pub fn metrics(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
    ) -> Result<PipelineMetrics, TenantError> {
        let (_, e) = self.pipeline_entry(tenant, id)?;
        Ok(status::metrics_of(&e))
    }
}
