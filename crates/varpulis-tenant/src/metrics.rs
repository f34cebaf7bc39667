//! Prometheus metrics of the registry (text exposition through `prometheus-client`).
//!
//! Per pipeline (labels `tenant`, `pipeline`): events in, outputs, rejected requests (label
//! `reason`), late events dropped, checkpoint duration (histogram), bytes and failures,
//! fallbacks to an older checkpoint at start, ingest-log bytes and append (durable `put`)
//! latency, requests per log append (group commit). Per tenant: active pipelines.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as PromRegistry;

/// Labels of a pipeline's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PipelineLabels {
    pub(crate) tenant: String,
    pub(crate) pipeline: String,
}

/// Labels of a rejected request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RejectLabels {
    pub(crate) tenant: String,
    pub(crate) pipeline: String,
    pub(crate) reason: String,
}

/// Labels of a tenant's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantLabels {
    pub(crate) tenant: String,
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn group_histogram() -> Histogram {
    // 1 .. 256 requests.
    Histogram::new(exponential_buckets(1.0, 2.0, 9))
}

type Histograms = Family<PipelineLabels, Histogram, fn() -> Histogram>;

/// Every metric the registry keeps.
pub(crate) struct Metrics {
    registry: PromRegistry,
    pub(crate) events_in: Family<PipelineLabels, Counter>,
    pub(crate) output_events: Family<PipelineLabels, Counter>,
    pub(crate) rejected: Family<RejectLabels, Counter>,
    pub(crate) late_events: Family<PipelineLabels, Counter>,
    pub(crate) checkpoint_seconds: Histograms,
    pub(crate) checkpoint_bytes: Family<PipelineLabels, Gauge>,
    pub(crate) checkpoint_failures: Family<PipelineLabels, Counter>,
    pub(crate) checkpoint_fallbacks: Family<PipelineLabels, Counter>,
    pub(crate) ingest_bytes: Family<PipelineLabels, Counter>,
    pub(crate) ingest_append_seconds: Histograms,
    pub(crate) ingest_group_requests: Histograms,
    pub(crate) active_pipelines: Family<TenantLabels, Gauge>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = PromRegistry::with_prefix("varpulis");
        let m = Self {
            events_in: Family::default(),
            output_events: Family::default(),
            rejected: Family::default(),
            late_events: Family::default(),
            checkpoint_seconds: Family::new_with_constructor(seconds_histogram),
            checkpoint_bytes: Family::default(),
            checkpoint_failures: Family::default(),
            checkpoint_fallbacks: Family::default(),
            ingest_bytes: Family::default(),
            ingest_append_seconds: Family::new_with_constructor(seconds_histogram),
            ingest_group_requests: Family::new_with_constructor(group_histogram),
            active_pipelines: Family::default(),
            registry: PromRegistry::default(),
        };
        registry.register("events_in", "Events accepted", m.events_in.clone());
        registry.register(
            "output_events",
            "Output events produced",
            m.output_events.clone(),
        );
        registry.register(
            "rejected_requests",
            "Event requests refused (reason: rate_limited, quota_exceeded, invalid_event, not_running, idempotency_conflict, store)",
            m.rejected.clone(),
        );
        registry.register(
            "late_events_dropped",
            "Events dropped as late by a window",
            m.late_events.clone(),
        );
        registry.register(
            "checkpoint_duration_seconds",
            "Time to commit a pipeline checkpoint",
            m.checkpoint_seconds.clone(),
        );
        registry.register(
            "checkpoint_bytes",
            "Bytes the last checkpoint references (parts and manifest)",
            m.checkpoint_bytes.clone(),
        );
        registry.register(
            "checkpoint_failures",
            "Checkpoints that failed",
            m.checkpoint_failures.clone(),
        );
        registry.register(
            "checkpoint_fallbacks",
            "Damaged checkpoints skipped at start (recovery used an older one)",
            m.checkpoint_fallbacks.clone(),
        );
        registry.register(
            "ingest_log_bytes",
            "Bytes appended to the ingest log",
            m.ingest_bytes.clone(),
        );
        registry.register(
            "ingest_append_duration_seconds",
            "Time of a durable append to the ingest log (the store's put, fsync included)",
            m.ingest_append_seconds.clone(),
        );
        registry.register(
            "ingest_group_requests",
            "Event requests committed by one ingest-log append (group commit)",
            m.ingest_group_requests.clone(),
        );
        registry.register(
            "active_pipelines",
            "Running pipelines of a tenant",
            m.active_pipelines.clone(),
        );
        Self { registry, ..m }
    }

    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
