//! The registry: every tenant and pipeline, loaded from the store at open.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};

use tokio::sync::Mutex;
use varpulis_checkpoint::CheckpointConfig;
use varpulis_checkpoint::codec::BlobKind;
use varpulis_engine::Engine;
use varpulis_engine::clock::Clock;
use varpulis_store::StateStore;
use varpulis_vpl::Program;

mod events;
mod pipelines;
mod status;
mod tenants;

pub(crate) use events::Pending;
pub use events::{Batch, Gap, Idempotency, MAX_IDEMPOTENCY_KEY_BYTES, OutputsPage, Subscription};
pub(crate) use status::CheckpointHistory;
pub use status::{CHECKPOINT_HISTORY, CheckpointSample, PipelineStatusReport, TenantStatusReport};

use crate::error::TenantError;
use crate::ids::{KeyHash, PipelineId, TenantId};
use crate::metrics::{Metrics, PipelineLabels, TenantLabels};
use crate::pipeline::{self, Entry, Runtime, Shown, Stats};
use crate::quota::{Quota, QuotaTier, RateLimiter, Usage};
use crate::record::{self, Layout, PipelineRecord, TenantRecord};

/// The name of the tenant `--api-key` creates.
pub const DEFAULT_TENANT: &str = "default";

/// Longest tenant or pipeline name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// How a registry keeps its state.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Checkpoints of every pipeline: `interval` (default 10 s) and retention; `key_prefix`
    /// is replaced by each pipeline's own.
    pub checkpoint: CheckpointConfig,
    /// The first key segment of everything the registry stores (default `varpulis-server`).
    pub key_prefix: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            checkpoint: CheckpointConfig {
                interval: std::time::Duration::from_secs(10),
                ..CheckpointConfig::default()
            },
            key_prefix: "varpulis-server".to_owned(),
        }
    }
}

/// A tenant as shown to the operator: never its key or the key's hash.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// Its id.
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// Its tier (`None`: default).
    pub tier: Option<QuotaTier>,
    /// Its quota.
    pub quota: Quota,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// What it uses now.
    pub usage: Usage,
}

/// Whether a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    /// It takes events.
    Running,
    /// It does not compile or is over a quota: see [`PipelineInfo::error`].
    Error,
}

impl PipelineStatus {
    /// `running` or `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Error => "error",
        }
    }
}

/// A pipeline as shown to its tenant.
#[derive(Debug, Clone)]
pub struct PipelineInfo {
    /// Its id.
    pub id: PipelineId,
    /// Its name.
    pub name: String,
    /// Its VPL source.
    pub source: String,
    /// Whether it runs.
    pub status: PipelineStatus,
    /// Why it does not run.
    pub error: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// When it last started (created, restored at a server start, reloaded).
    pub started_ms: i64,
}

/// One pipeline's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineMetrics {
    /// Events accepted.
    pub events_in: u64,
    /// Output events produced.
    pub output_events: u64,
    /// Engine state, approximate bytes.
    pub state_bytes: u64,
    /// Events dropped as late by its windows.
    pub late_events_dropped: u64,
    /// Its watermark, if any event set one.
    pub watermark_ms: Option<i64>,
    /// Checkpoints committed since the server started.
    pub checkpoints: u64,
    /// The id of the last one.
    pub last_checkpoint_id: Option<u64>,
}

pub(crate) struct Tenant {
    record: StdMutex<TenantRecord>,
    pipelines: RwLock<BTreeMap<PipelineId, Arc<Entry>>>,
    limiter: StdMutex<RateLimiter>,
    /// Serializes creating and deleting pipelines (the pipeline-count quota).
    admin: Mutex<()>,
}

impl Tenant {
    fn new(record: TenantRecord) -> Self {
        Self {
            limiter: StdMutex::new(RateLimiter::new(record.quota.max_events_per_second)),
            record: StdMutex::new(record),
            pipelines: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
        }
    }

    fn record(&self) -> TenantRecord {
        self.record.lock().expect("not poisoned").clone()
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.pipelines
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect()
    }

    fn usage(&self) -> Usage {
        let r = self.record();
        let mut u = Usage {
            events_in: r.retired_events_in,
            output_events: r.retired_output_events,
            ..Usage::default()
        };
        for e in self.entries() {
            u.events_in += e.stats.events_in.load(Ordering::Relaxed);
            u.output_events += e.stats.output_events.load(Ordering::Relaxed);
            u.state_bytes += e.stats.state_bytes.load(Ordering::Relaxed);
            if e.is_running() {
                u.active_pipelines += 1;
            }
        }
        u
    }

    fn info(&self) -> TenantInfo {
        let r = self.record();
        TenantInfo {
            id: r.id,
            name: r.name,
            tier: r.tier,
            quota: r.quota,
            created_ms: r.created_ms,
            usage: self.usage(),
        }
    }
}

/// Every tenant and pipeline of a server, persisted through one [`StateStore`].
///
/// Locking: lookups take short `std` locks that are never held across an `.await`; each
/// pipeline's engine is behind its own async lock, so events for one pipeline never wait for
/// another's. See `docs/design/tenants.md`.
pub struct Registry {
    store: Arc<dyn StateStore>,
    layout: Layout,
    config: RegistryConfig,
    clock: Arc<dyn Clock>,
    admin: RwLock<Option<KeyHash>>,
    tenants: RwLock<BTreeMap<TenantId, Arc<Tenant>>>,
    keys: RwLock<HashMap<KeyHash, TenantId>>,
    ready: AtomicBool,
    metrics: Metrics,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field(
                "tenants",
                &self.tenants.read().map(|t| t.len()).unwrap_or(0),
            )
            .finish_non_exhaustive()
    }
}

fn check_name(what: &str, name: &str) -> Result<(), TenantError> {
    let bad = |why: &str| {
        Err(TenantError::InvalidName {
            message: format!("{what} name {why}"),
        })
    };
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad(&format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return bad("has control characters");
    }
    Ok(())
}

fn check_streams(program: &Program, quota: &Quota) -> Result<(), TenantError> {
    let n = program.streams.len();
    if n > quota.max_streams_per_pipeline as usize {
        return Err(TenantError::QuotaExceeded {
            what: "streams",
            limit: u64::from(quota.max_streams_per_pipeline),
            message: format!(
                "the program has {n} streams; the tenant's quota allows {} per pipeline",
                quota.max_streams_per_pipeline
            ),
        });
    }
    Ok(())
}

fn state_quota(used: u64, quota: &Quota, what: &str) -> Result<(), TenantError> {
    if used > quota.max_state_bytes {
        return Err(TenantError::QuotaExceeded {
            what: "state_bytes",
            limit: quota.max_state_bytes,
            message: format!(
                "{what}: the tenant's engine state would be {used} bytes; its quota allows {}",
                quota.max_state_bytes
            ),
        });
    }
    Ok(())
}

fn engine_error(e: &varpulis_engine::EngineError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Registry {
    /// Loads every tenant and pipeline from `store`: each pipeline is compiled again, its
    /// newest valid checkpoint restored and its ingest log replayed after it. A pipeline that
    /// no longer compiles, or is over its tenant's quota, comes back in error with the reason,
    /// keeps its source and its data, and does not run. Nothing is deleted.
    ///
    /// # Errors
    /// The store's errors, and a damaged tenant or pipeline record (named).
    pub async fn open(
        store: Arc<dyn StateStore>,
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TenantError> {
        let layout = Layout::new(&config.key_prefix)?;
        let registry = Self {
            store,
            layout,
            config,
            clock,
            admin: RwLock::new(None),
            tenants: RwLock::new(BTreeMap::new()),
            keys: RwLock::new(HashMap::new()),
            ready: AtomicBool::new(false),
            metrics: Metrics::new(),
        };
        registry.load().await?;
        registry.ready.store(true, Ordering::Release);
        Ok(registry)
    }

    async fn load(&self) -> Result<(), TenantError> {
        let store = &self.store;
        for key in store.list(&self.layout.tenants()).await? {
            let Some(blob) = store.get(&key).await? else {
                continue;
            };
            let rec: TenantRecord = record::decode(BlobKind::Tenant, &key, &blob)?;
            self.keys
                .write()
                .expect("not poisoned")
                .insert(rec.key_hash, rec.id.clone());
            self.tenants
                .write()
                .expect("not poisoned")
                .insert(rec.id.clone(), Arc::new(Tenant::new(rec)));
        }
        let mut records = Vec::new();
        for key in store.list(&self.layout.pipelines()).await? {
            let Some(blob) = store.get(&key).await? else {
                continue;
            };
            let rec: PipelineRecord = record::decode(BlobKind::Pipeline, &key, &blob)?;
            records.push(rec);
        }
        self.sweep_orphans(&records).await?;
        // Oldest first: if a tenant is over its pipeline quota, the newest are the ones in error.
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        for rec in records {
            let Some(tenant) = self.tenant_entry(&rec.tenant) else {
                tracing::warn!(
                    "pipeline {} belongs to no tenant (a tenant deletion was interrupted); left as is",
                    rec.id
                );
                continue;
            };
            let quota = tenant.record().quota;
            let running = tenant.entries().iter().filter(|e| e.is_running()).count();
            let engine = if running >= quota.max_pipelines as usize {
                Err(format!(
                    "over quota: the tenant already runs {running} pipelines, its quota allows {}",
                    quota.max_pipelines
                ))
            } else {
                self.build_engine(&rec.source, &rec.name, &quota)
            };
            let entry = self.start(rec, engine, true).await?;
            // The entry is not in the tenant's map yet: add its own state.
            let used = tenant.usage().state_bytes + entry.stats.state_bytes.load(Ordering::Relaxed);
            if entry.is_running() && used > quota.max_state_bytes {
                let why = format!(
                    "over quota: the tenant's engine state is {used} bytes after restoring this pipeline, its quota allows {}",
                    quota.max_state_bytes
                );
                entry.runtime.lock().await.engine = Err(why.clone());
                entry.shown.write().expect("not poisoned").error = Some(why);
                entry.stats.state_bytes.store(0, Ordering::Relaxed);
            }
            let id = entry.shown().record.id;
            tenant
                .pipelines
                .write()
                .expect("not poisoned")
                .insert(id, entry);
        }
        Ok(())
    }

    /// Deletes the data of pipelines that have no record: what an interrupted deletion left
    /// (it deletes the record first, so data without a record is never wanted again).
    async fn sweep_orphans(&self, records: &[PipelineRecord]) -> Result<(), TenantError> {
        let known: std::collections::HashSet<(String, String)> = records
            .iter()
            .map(|r| (r.tenant.to_string(), r.id.to_string()))
            .collect();
        let mut swept = 0usize;
        for root in self.layout.data_roots() {
            for key in self.store.list(&root).await? {
                let Some((t, p)) = self.layout.owner_of(&key) else {
                    continue;
                };
                if !known.contains(&(t.to_owned(), p.to_owned())) {
                    self.store.delete(&key).await?;
                    swept += 1;
                }
            }
        }
        if swept > 0 {
            tracing::warn!(
                "deleted {swept} keys of pipelines that no longer exist (an interrupted deletion)"
            );
        }
        Ok(())
    }

    fn build_engine(&self, source: &str, name: &str, quota: &Quota) -> Result<Engine, String> {
        let program = pipeline::compile(source, name).map_err(|e| e.to_string())?;
        check_streams(&program, quota).map_err(|e| format!("over quota: {e}"))?;
        Engine::new(program).map_err(|e| engine_error(&e))
    }

    /// Makes the runtime of `rec`, recovering its state when `recover`.
    async fn start(
        &self,
        rec: PipelineRecord,
        engine: Result<Engine, String>,
        recover: bool,
    ) -> Result<Arc<Entry>, TenantError> {
        let now = self.clock.monotonic();
        let error = engine.as_ref().err().cloned();
        let mut runtime = Runtime::new(
            Arc::clone(&self.store),
            &self.layout,
            &rec,
            &self.config.checkpoint,
            engine,
            now,
        )?;
        if recover {
            runtime.recover(&self.store, &self.layout, &rec).await?;
            if runtime.fallbacks > 0 {
                self.metrics
                    .checkpoint_fallbacks
                    .get_or_create(&pipeline_labels(&rec))
                    .inc_by(runtime.fallbacks);
            }
        }
        let stats = Stats::default();
        runtime.publish(&stats);
        let checkpoints = CheckpointHistory::default();
        if recover {
            for sample in status::seed(&runtime.manager).await {
                checkpoints.push(sample);
            }
        }
        let labels = pipeline_labels(&rec);
        Ok(Arc::new(Entry {
            labels,
            shown: RwLock::new(Shown {
                record: rec,
                error,
                started_ms: self.clock.now_ms(),
            }),
            stats,
            outputs: pipeline::outputs_channel(),
            runtime: Mutex::new(runtime),
            queue: std::sync::Mutex::new(VecDeque::new()),
            deleted: AtomicBool::new(false),
            checkpoints,
        }))
    }

    /// Every tenant, at this instant.
    fn all_tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect()
    }

    fn tenant_entry(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.tenants.read().expect("not poisoned").get(id).cloned()
    }

    fn tenant_or_err(&self, id: &TenantId) -> Result<Arc<Tenant>, TenantError> {
        self.tenant_entry(id).ok_or(TenantError::TenantNotFound)
    }

    fn pipeline_entry(
        &self,
        tenant: &TenantId,
        id: &PipelineId,
    ) -> Result<(Arc<Tenant>, Arc<Entry>), TenantError> {
        let t = self.tenant_or_err(tenant)?;
        let e = t
            .pipelines
            .read()
            .expect("not poisoned")
            .get(id)
            .cloned()
            .ok_or(TenantError::PipelineNotFound)?;
        Ok((t, e))
    }

    async fn put_tenant(&self, rec: &TenantRecord) -> Result<(), TenantError> {
        let blob = record::encode(BlobKind::Tenant, rec)?;
        self.store.put(&self.layout.tenant(&rec.id), &blob).await?;
        // Answered as created: it must survive a power loss too.
        self.store.flush().await?;
        Ok(())
    }

    async fn put_pipeline(&self, rec: &PipelineRecord) -> Result<(), TenantError> {
        let blob = record::encode(BlobKind::Pipeline, rec)?;
        self.store
            .put(&self.layout.pipeline(&rec.tenant, &rec.id), &blob)
            .await?;
        self.store.flush().await?;
        Ok(())
    }

    /// Commits a checkpoint of `entry` (whose lock `runtime` is) now.
    async fn commit(
        &self,
        entry: &Entry,
        runtime: &mut Runtime,
    ) -> Result<Option<u64>, TenantError> {
        let rec = entry.shown().record;
        let labels = &entry.labels;
        let started = self.clock.monotonic();
        let created_ms = self.clock.now_ms();
        let result = runtime
            .checkpoint(
                &self.store,
                &self.layout,
                &rec,
                &entry.stats,
                created_ms,
                started,
            )
            .await;
        match &result {
            Ok(Some((id, bytes))) => {
                let took = self.clock.monotonic().saturating_sub(started);
                self.metrics
                    .checkpoint_seconds
                    .get_or_create(labels)
                    .observe(took.as_secs_f64());
                entry.checkpoints.push(CheckpointSample {
                    id: *id,
                    created_ms,
                    bytes: *bytes,
                    duration: Some(took),
                });
                self.metrics
                    .checkpoint_bytes
                    .get_or_create(labels)
                    .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
            }
            Ok(None) => {}
            Err(_) => {
                self.metrics.checkpoint_failures.get_or_create(labels).inc();
            }
        }
        result.map(|r| r.map(|(id, _)| id))
    }

    /// Every metric, in the Prometheus text exposition format (OpenMetrics).
    #[must_use]
    pub fn prometheus(&self) -> String {
        let tenants = self.all_tenants();
        for t in tenants {
            let labels = TenantLabels {
                tenant: t.record().id.to_string(),
            };
            self.metrics
                .active_pipelines
                .get_or_create(&labels)
                .set(i64::from(t.usage().active_pipelines));
        }
        self.metrics.encode()
    }

    /// Whether every tenant and pipeline has been loaded and restored.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        let tenants = self.all_tenants();
        tenants.iter().flat_map(|t| t.entries()).collect()
    }

    /// Checkpoints every pipeline that took events since its last checkpoint and whose
    /// interval has passed. A pipeline busy with a batch is left for the next call.
    ///
    /// # Errors
    /// The first store error (the other pipelines are still checkpointed).
    pub async fn checkpoint_due(&self) -> Result<(), TenantError> {
        let interval = self.config.checkpoint.interval;
        let mut first_error = None;
        for entry in self.all_entries() {
            let Ok(mut runtime) = entry.runtime.try_lock() else {
                continue;
            };
            if entry.deleted.load(Ordering::Acquire) {
                continue;
            }
            let now = self.clock.monotonic();
            if !runtime.dirty || now.saturating_sub(runtime.last_checkpoint_at) < interval {
                continue;
            }
            let rec = entry.shown().record;
            if let Err(e) = self.commit(&entry, &mut runtime).await {
                tracing::warn!("pipeline {}: checkpoint failed: {e}", rec.id);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checkpoints every running pipeline that took events since its last checkpoint (the
    /// graceful stop).
    ///
    /// # Errors
    /// The first store error (the other pipelines are still checkpointed).
    pub async fn shutdown(&self) -> Result<(), TenantError> {
        let mut first_error = None;
        for entry in self.all_entries() {
            let Ok(mut runtime) = lock(&entry).await else {
                continue;
            };
            if !runtime.dirty {
                continue;
            }
            let rec = entry.shown().record;
            if let Err(e) = self.commit(&entry, &mut runtime).await {
                tracing::warn!("pipeline {}: final checkpoint failed: {e}", rec.id);
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.store.flush().await {
            first_error.get_or_insert(e.into());
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Takes a pipeline's lock; a pipeline deleted while the caller waited for it is not found
/// (nothing may be written for it any more).
async fn lock(entry: &Entry) -> Result<tokio::sync::MutexGuard<'_, Runtime>, TenantError> {
    let runtime = entry.runtime.lock().await;
    if entry.deleted.load(Ordering::Acquire) {
        return Err(TenantError::PipelineNotFound);
    }
    Ok(runtime)
}

fn pipeline_labels(rec: &PipelineRecord) -> PipelineLabels {
    PipelineLabels {
        tenant: rec.tenant.to_string(),
        pipeline: rec.id.to_string(),
    }
}

fn info_of(e: &Entry) -> PipelineInfo {
    let s = e.shown();
    PipelineInfo {
        id: s.record.id,
        name: s.record.name,
        source: s.record.source,
        status: if s.error.is_some() {
            PipelineStatus::Error
        } else {
            PipelineStatus::Running
        },
        error: s.error,
        created_ms: s.record.created_ms,
        started_ms: s.started_ms,
    }
}
