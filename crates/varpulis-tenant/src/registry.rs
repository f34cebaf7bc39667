//! The registry: every tenant and pipeline, loaded from the store at open.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};

use tokio::sync::{Mutex, broadcast};
use varpulis_checkpoint::CheckpointConfig;
use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_checkpoint::state::EngineCheckpoint;
use varpulis_core::Event;
use varpulis_engine::Engine;
use varpulis_engine::clock::Clock;
use varpulis_store::StateStore;
use varpulis_vpl::Program;

use crate::error::TenantError;
use crate::ids::{ApiKey, KeyHash, PipelineId, TenantId};
use crate::metrics::{Metrics, PipelineLabels, RejectLabels, TenantLabels};
use crate::pipeline::{self, Entry, Runtime, Shown, Stats};
use crate::quota::{Quota, QuotaTier, RateLimiter, Usage};
use sha2::{Digest, Sha256};

use crate::record::{
    self, IdempotencyStamp, LOG_VERSION, Layout, LogEntry, PipelineRecord, RECORD_VERSION,
    TenantRecord,
};

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

struct Tenant {
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
        Ok(Arc::new(Entry {
            shown: RwLock::new(Shown {
                record: rec,
                error,
                started_ms: self.clock.now_ms(),
            }),
            stats,
            outputs: pipeline::outputs_channel(),
            runtime: Mutex::new(runtime),
            deleted: AtomicBool::new(false),
        }))
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
        Ok(())
    }

    async fn put_pipeline(&self, rec: &PipelineRecord) -> Result<(), TenantError> {
        let blob = record::encode(BlobKind::Pipeline, rec)?;
        self.store
            .put(&self.layout.pipeline(&rec.tenant, &rec.id), &blob)
            .await?;
        Ok(())
    }

    /// Commits a checkpoint of `entry` (whose lock `runtime` is) now.
    async fn commit(
        &self,
        entry: &Entry,
        runtime: &mut Runtime,
    ) -> Result<Option<u64>, TenantError> {
        let rec = entry.shown().record;
        let labels = pipeline_labels(&rec);
        let started = self.clock.monotonic();
        let result = runtime
            .checkpoint(
                &self.store,
                &self.layout,
                &rec,
                &entry.stats,
                self.clock.now_ms(),
                started,
            )
            .await;
        match &result {
            Ok(Some((_, bytes))) => {
                let secs = self.clock.monotonic().saturating_sub(started).as_secs_f64();
                self.metrics
                    .checkpoint_seconds
                    .get_or_create(&labels)
                    .observe(secs);
                self.metrics
                    .checkpoint_bytes
                    .get_or_create(&labels)
                    .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
            }
            Ok(None) => {}
            Err(_) => {
                self.metrics
                    .checkpoint_failures
                    .get_or_create(&labels)
                    .inc();
            }
        }
        result.map(|r| r.map(|(id, _)| id))
    }

    /// Every metric, in the Prometheus text exposition format (OpenMetrics).
    #[must_use]
    pub fn prometheus(&self) -> String {
        let tenants: Vec<Arc<Tenant>> = self
            .tenants
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
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

    /// Sets the admin key (kept as a hash, in memory only).
    pub fn set_admin_key(&self, key: &str) {
        *self.admin.write().expect("not poisoned") = Some(KeyHash::of(key));
    }

    /// Whether an admin key is set.
    #[must_use]
    pub fn has_admin_key(&self) -> bool {
        self.admin.read().expect("not poisoned").is_some()
    }

    /// Whether `key` is the admin key (`false` when none is set).
    #[must_use]
    pub fn is_admin(&self, key: &str) -> bool {
        let wanted = KeyHash::of(key);
        self.admin
            .read()
            .expect("not poisoned")
            .as_ref()
            .is_some_and(|h| h.ct_eq(&wanted))
    }

    /// The tenant whose key is `key`.
    #[must_use]
    pub fn authenticate(&self, key: &str) -> Option<TenantId> {
        let hash = KeyHash::of(key);
        let id = self
            .keys
            .read()
            .expect("not poisoned")
            .get(&hash)
            .cloned()?;
        let tenant = self.tenant_entry(&id)?;
        tenant.record().key_hash.ct_eq(&hash).then_some(id)
    }

    /// Makes sure the tenant [`DEFAULT_TENANT`] (enterprise tier) exists with `key` as its
    /// key: the single-user mode of `--api-key`. Its key follows `key` across restarts.
    ///
    /// # Errors
    /// The store's.
    pub async fn ensure_default_tenant(&self, key: &str) -> Result<TenantId, TenantError> {
        let hash = KeyHash::of(key);
        let existing = {
            let tenants = self.tenants.read().expect("not poisoned");
            tenants
                .values()
                .map(|t| t.record())
                .filter(|r| r.name == DEFAULT_TENANT)
                .min_by_key(|r| (r.created_ms, r.id.clone()))
        };
        if let Some(mut rec) = existing {
            if !rec.key_hash.ct_eq(&hash) {
                let old = rec.key_hash;
                rec.key_hash = hash;
                self.put_tenant(&rec).await?;
                let mut keys = self.keys.write().expect("not poisoned");
                keys.remove(&old);
                keys.insert(hash, rec.id.clone());
                if let Some(t) = self.tenant_entry(&rec.id) {
                    *t.record.lock().expect("not poisoned") = rec.clone();
                }
            }
            return Ok(rec.id);
        }
        let info = self
            .insert_tenant(DEFAULT_TENANT, Some(QuotaTier::Enterprise), hash)
            .await?;
        Ok(info.id)
    }

    async fn insert_tenant(
        &self,
        name: &str,
        tier: Option<QuotaTier>,
        key_hash: KeyHash,
    ) -> Result<TenantInfo, TenantError> {
        check_name("tenant", name)?;
        let rec = TenantRecord {
            version: RECORD_VERSION,
            id: TenantId::random(),
            name: name.to_owned(),
            tier,
            quota: Quota::for_tier(tier),
            key_hash,
            created_ms: self.clock.now_ms(),
            retired_events_in: 0,
            retired_output_events: 0,
        };
        self.put_tenant(&rec).await?;
        let tenant = Arc::new(Tenant::new(rec.clone()));
        let info = tenant.info();
        self.keys
            .write()
            .expect("not poisoned")
            .insert(key_hash, rec.id.clone());
        self.tenants
            .write()
            .expect("not poisoned")
            .insert(rec.id, tenant);
        Ok(info)
    }

    /// Creates a tenant; its key is returned once and stored only as a hash.
    ///
    /// # Errors
    /// A bad name; the store's errors.
    pub async fn create_tenant(
        &self,
        name: &str,
        tier: Option<QuotaTier>,
    ) -> Result<(TenantInfo, ApiKey), TenantError> {
        let key = ApiKey::random();
        let info = self
            .insert_tenant(name, tier, KeyHash::of(key.expose()))
            .await?;
        Ok((info, key))
    }

    /// A page of tenants, oldest first, and how many there are.
    #[must_use]
    pub fn list_tenants(&self, limit: usize, offset: usize) -> (Vec<TenantInfo>, usize) {
        let mut all: Vec<Arc<Tenant>> = self
            .tenants
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        all.sort_by_cached_key(|t| {
            let r = t.record();
            (r.created_ms, r.id)
        });
        let total = all.len();
        let page = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|t| t.info())
            .collect();
        (page, total)
    }

    /// One tenant.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn tenant(&self, id: &TenantId) -> Result<TenantInfo, TenantError> {
        Ok(self.tenant_or_err(id)?.info())
    }

    /// Deletes a tenant with its pipelines, their logs and checkpoints; its key stops working
    /// at once. The tenant record goes last, so an interrupted deletion can be repeated.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`]; the store's errors.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<(), TenantError> {
        let tenant = self.tenant_or_err(id)?;
        let _admin = tenant.admin.lock().await;
        let hash = tenant.record().key_hash;
        self.keys.write().expect("not poisoned").remove(&hash);
        for entry in tenant.entries() {
            let _runtime = entry.runtime.lock().await;
            entry.deleted.store(true, Ordering::Release);
            let rec = entry.shown().record;
            self.remove_pipeline_data(&rec).await?;
            tenant
                .pipelines
                .write()
                .expect("not poisoned")
                .remove(&rec.id);
        }
        self.store.delete(&self.layout.tenant(id)).await?;
        self.tenants.write().expect("not poisoned").remove(id);
        Ok(())
    }

    /// Deletes a pipeline's record, then its log and checkpoints.
    async fn remove_pipeline_data(&self, rec: &PipelineRecord) -> Result<(), TenantError> {
        self.store
            .delete(&self.layout.pipeline(&rec.tenant, &rec.id))
            .await?;
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
        let rec = entry.shown().record;
        let seq = runtime.next_seq;
        let log = LogEntry {
            version: LOG_VERSION,
            seq,
            events,
            idempotency: stamp,
        };
        let labels = pipeline_labels(&rec);
        let append_started = self.clock.monotonic();
        let stored = match record::encode(BlobKind::IngestLog, &log) {
            Ok(blob) => {
                let put = self
                    .store
                    .put(&self.layout.log_entry(&rec.tenant, &rec.id, seq), &blob)
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
                        .get_or_create(&labels)
                        .observe(secs);
                    self.metrics
                        .ingest_bytes
                        .get_or_create(&labels)
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
        self.metrics.events_in.get_or_create(&labels).inc_by(n);
        self.metrics
            .output_events
            .get_or_create(&labels)
            .inc_by(outputs.len() as u64);
        if late_after > late_before {
            self.metrics
                .late_events
                .get_or_create(&labels)
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
        let s = &e.stats;
        let wm = s.watermark.load(Ordering::Relaxed);
        let last = s.last_checkpoint.load(Ordering::Relaxed);
        Ok(PipelineMetrics {
            events_in: s.events_in.load(Ordering::Relaxed),
            output_events: s.output_events.load(Ordering::Relaxed),
            state_bytes: s.state_bytes.load(Ordering::Relaxed),
            late_events_dropped: s.late_events_dropped.load(Ordering::Relaxed),
            watermark_ms: (wm > 0).then(|| i64::try_from(wm - 1).unwrap_or(i64::MAX)),
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            last_checkpoint_id: (last > 0).then(|| last - 1),
        })
    }

    /// The tenant's usage: all its pipelines, deleted ones included.
    ///
    /// # Errors
    /// [`TenantError::TenantNotFound`].
    pub fn usage(&self, tenant: &TenantId) -> Result<Usage, TenantError> {
        Ok(self.tenant_or_err(tenant)?.usage())
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        let tenants: Vec<Arc<Tenant>> = self
            .tenants
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
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
