//! The handlers of the REST surface (`/api/v1`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value as Json_, json};
use tokio::sync::broadcast::error::RecvError;
use varpulis_tenant::{
    Idempotency, PipelineId, PipelineInfo, PipelineStatus, Quota, QuotaTier, TenantId, TenantInfo,
    Usage,
};

use crate::AppState;
use crate::auth::{Admin, Tenant};
use crate::body::{JsonBody, JsonWithBytes, Page};
use crate::convert::{event_from_json, log_line, write_events, write_events_one};
use crate::error::ApiError;

type Result<T, E = ApiError> = std::result::Result<T, E>;

// ---- health ----

pub(crate) async fn health() -> Json<Json_> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if state.registry.ready() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "code": "not_ready",
                        "error": "tenants and pipelines are still being restored"})),
        )
            .into_response()
    }
}

/// `GET /metrics` (admin key): every metric in the Prometheus text exposition format.
pub(crate) async fn prometheus(_: Admin, State(state): State<AppState>) -> Response {
    prometheus_open(State(state)).await
}

/// `GET /metrics` on the `--metrics-bind` address, which has no authentication.
pub(crate) async fn prometheus_open(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.registry.prometheus(),
    )
        .into_response()
}

// ---- tenants (admin) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    name: String,
    #[serde(default)]
    quota_tier: Option<String>,
}

fn quota_json(q: &Quota) -> Json_ {
    json!({
        "max_pipelines": q.max_pipelines,
        "max_events_per_second": q.max_events_per_second,
        "max_streams_per_pipeline": q.max_streams_per_pipeline,
        "max_state_bytes": q.max_state_bytes,
    })
}

fn usage_json(u: &Usage) -> Json_ {
    json!({
        "events_in": u.events_in,
        "output_events": u.output_events,
        "active_pipelines": u.active_pipelines,
        "state_bytes": u.state_bytes,
    })
}

fn tenant_json(t: &TenantInfo) -> Json_ {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "quota_tier": t.tier.map(QuotaTier::as_str),
        "quota": quota_json(&t.quota),
        "usage": usage_json(&t.usage),
        "created_at_ms": t.created_ms,
    })
}

fn tenant_id(id: &str) -> Result<TenantId> {
    id.parse().map_err(|_| ApiError::tenant_not_found(id))
}

pub(crate) async fn create_tenant(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<Response> {
    let tier = body
        .quota_tier
        .as_deref()
        .map(str::parse::<QuotaTier>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_request", format!("quota_tier: {e}")))?;
    let (tenant, key) = state.registry.create_tenant(&body.name, tier).await?;
    let body = json!({
        "id": tenant.id.to_string(),
        "name": tenant.name,
        "api_key": key.expose(),
        "quota": quota_json(&tenant.quota),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(crate) async fn list_tenants(
    _: Admin,
    State(state): State<AppState>,
    page: Page,
) -> Json<Json_> {
    let (tenants, total) = state.registry.list_tenants(page.limit, page.offset);
    Json(json!({
        "tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>(),
        "total": total,
        "pagination": {
            "total": total,
            "limit": page.limit,
            "offset": page.offset,
            "has_more": page.offset.saturating_add(tenants.len()) < total,
        },
    }))
}

pub(crate) async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    let tenant = state.registry.tenant(&tenant_id(&id)?)?;
    Ok(Json(tenant_json(&tenant)))
}

pub(crate) async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    state.registry.delete_tenant(&tenant_id(&id)?).await?;
    Ok(Json(json!({"deleted": true, "id": id})))
}

// ---- pipelines ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePipeline {
    name: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reload {
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Restore {
    checkpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsBatch {
    events: Vec<Box<RawValue>>,
    /// The batch's idempotency key, as an alternative to the `Idempotency-Key` header.
    #[serde(default)]
    batch_id: Option<String>,
}

/// Header of a request that may be retried.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header of an answer that is the original answer to a retried request.
const REPLAYED: &str = "idempotent-replayed";

fn idempotency_header(headers: &HeaderMap) -> Result<Option<&str>> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request("invalid_request", "Idempotency-Key: not visible ASCII")
            })
        })
        .transpose()
}

fn pipeline_id(id: &str) -> Result<PipelineId> {
    id.parse().map_err(|_| ApiError::pipeline_not_found(id))
}

fn pipeline_json(p: &PipelineInfo, now_ms: i64) -> Json_ {
    let uptime_secs = match p.status {
        PipelineStatus::Running => now_ms.saturating_sub(p.started_ms).max(0) / 1000,
        PipelineStatus::Error => 0,
    };
    let mut v = json!({
        "id": p.id.to_string(),
        "name": p.name,
        "status": p.status.as_str(),
        "source": p.source,
        "uptime_secs": uptime_secs,
        "created_at_ms": p.created_ms,
    });
    if let Some(error) = &p.error {
        v["error"] = Json_::from(error.as_str());
    }
    v
}

pub(crate) async fn create_pipeline(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreatePipeline>,
) -> Result<Response> {
    let p = state
        .registry
        .create_pipeline(&tenant, &body.name, &body.source)
        .await?;
    let body = json!({"id": p.id.to_string(), "name": p.name, "status": p.status.as_str()});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(crate) async fn list_pipelines(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
) -> Result<Json<Json_>> {
    let now = state.clock.now_ms();
    let pipelines = state.registry.list_pipelines(&tenant)?;
    Ok(Json(json!({
        "pipelines": pipelines.iter().map(|p| pipeline_json(p, now)).collect::<Vec<_>>(),
        "total": pipelines.len(),
    })))
}

pub(crate) async fn get_pipeline(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    let p = state.registry.pipeline(&tenant, &pipeline_id(&id)?)?;
    Ok(Json(pipeline_json(&p, state.clock.now_ms())))
}

pub(crate) async fn delete_pipeline(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    state
        .registry
        .delete_pipeline(&tenant, &pipeline_id(&id)?)
        .await?;
    Ok(Json(json!({"deleted": true, "id": id})))
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An events answer; a retry's original answer says so in `Idempotent-Replayed: true`.
fn answer(body: Vec<u8>, replayed: bool) -> Response {
    let mut response = json_response(body);
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, axum::http::HeaderValue::from_static("true"));
    }
    response
}

/// Runs [`Registry::process`](varpulis_tenant::Registry::process) in its own task, so a
/// client that goes away mid-request cannot interrupt a group commit other requests wait on.
async fn process(
    state: &AppState,
    tenant: TenantId,
    id: PipelineId,
    events: Vec<varpulis_core::Event>,
    key: Option<String>,
    request: axum::body::Bytes,
) -> Result<varpulis_tenant::Batch> {
    let registry = Arc::clone(&state.registry);
    let task = tokio::spawn(async move {
        let retry = key.as_deref().map(|k| Idempotency::of_bytes(k, &request));
        registry.process(&tenant, &id, events, retry).await
    });
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("processing the events failed: {e}"),
        )),
    }
}

pub(crate) async fn post_event(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonWithBytes(event, bytes): JsonWithBytes<Box<RawValue>>,
) -> Result<Response> {
    let id = pipeline_id(&id)?;
    // The pipeline must be the caller's before the body is judged: no other tenant's 400s.
    state.registry.pipeline(&tenant, &id)?;
    let event = event_from_json(event.get(), state.clock.now_ms())
        .map_err(|m| ApiError::invalid_event(None, m))?;
    let key = idempotency_header(&headers)?.map(str::to_owned);
    let batch = process(&state, tenant, id, vec![event], key, bytes).await?;
    let mut out = Vec::with_capacity(64 + 64 * batch.outputs.len());
    out.extend_from_slice(b"{\"accepted\":true,\"output_events\":");
    write_events(&mut out, &batch.outputs);
    out.push(b'}');
    Ok(answer(out, batch.replayed))
}

pub(crate) async fn post_events_batch(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonWithBytes(body, bytes): JsonWithBytes<EventsBatch>,
) -> Result<Response> {
    let id = pipeline_id(&id)?;
    state.registry.pipeline(&tenant, &id)?;
    let started = state.clock.monotonic();
    let now = state.clock.now_ms();
    let key = match (idempotency_header(&headers)?, body.batch_id.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "the Idempotency-Key header and batch_id differ: send one of them",
            ));
        }
        (h, b) => h.or(b).map(str::to_owned),
    };
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            event_from_json(e.get(), now)
                .map_err(|m| ApiError::invalid_event(Some(i), format!("events[{i}]: {m}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let batch = process(&state, tenant, id, events, key, bytes).await?;
    let micros = state.clock.monotonic().saturating_sub(started).as_micros();
    let mut out = Vec::with_capacity(96 + 64 * batch.outputs.len());
    out.extend_from_slice(
        format!("{{\"accepted\":{},\"output_events\":", batch.accepted).as_bytes(),
    );
    write_events(&mut out, &batch.outputs);
    out.extend_from_slice(format!(",\"processing_time_us\":{micros}}}").as_bytes());
    Ok(answer(out, batch.replayed))
}

pub(crate) async fn checkpoint(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    let id = pipeline_id(&id)?;
    let text = state.registry.checkpoint(&tenant, &id).await?;
    Ok(Json(
        json!({"checkpoint": text, "pipeline_id": id.to_string()}),
    ))
}

pub(crate) async fn restore(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Restore>,
) -> Result<Json<Json_>> {
    let id = pipeline_id(&id)?;
    state
        .registry
        .restore(&tenant, &id, &body.checkpoint)
        .await?;
    Ok(Json(json!({"restored": true})))
}

pub(crate) async fn reload(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Reload>,
) -> Result<Json<Json_>> {
    let id = pipeline_id(&id)?;
    state.registry.reload(&tenant, &id, &body.source).await?;
    Ok(Json(json!({"reloaded": true})))
}

pub(crate) async fn metrics(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Json_>> {
    let id = pipeline_id(&id)?;
    let m = state.registry.metrics(&tenant, &id)?;
    Ok(Json(json!({
        "pipeline_id": id.to_string(),
        "events_in": m.events_in,
        "output_events": m.output_events,
        "state_bytes": m.state_bytes,
        "late_events_dropped": m.late_events_dropped,
        "watermark_ms": m.watermark_ms,
        "checkpoints": m.checkpoints,
        "last_checkpoint_id": m.last_checkpoint_id,
    })))
}

pub(crate) async fn usage(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
) -> Result<Json<Json_>> {
    let info = state.registry.tenant(&tenant)?;
    let u = state.registry.usage(&tenant)?;
    let mut v = usage_json(&u);
    v["tenant_id"] = Json_::from(tenant.to_string());
    v["quota"] = quota_json(&info.quota);
    Ok(Json(v))
}

/// Where a `logs` stream or an `outputs` page starts: `Last-Event-ID: N` resumes after N,
/// `?from=SEQ` starts at SEQ.
fn resume_from(headers: &HeaderMap, query: Option<&str>) -> Result<Option<u64>> {
    let bad = |what: &str, v: &str| {
        ApiError::bad_request(
            "invalid_request",
            format!("{what}: expected an output sequence number, got {v:?}"),
        )
    };
    if let Some(v) = headers.get("last-event-id") {
        let v = v.to_str().unwrap_or("");
        let last: u64 = v.trim().parse().map_err(|_| bad("Last-Event-ID", v))?;
        return Ok(Some(last.saturating_add(1)));
    }
    for pair in query.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("from=") {
            return v
                .parse()
                .map(Some)
                .map_err(|_| bad("query parameter from", v));
        }
    }
    Ok(None)
}

fn output_sse(seq: u64, event: &varpulis_core::Event) -> SseEvent {
    SseEvent::default()
        .id(seq.to_string())
        .data(log_line(event))
}

pub(crate) async fn logs(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id = pipeline_id(&id)?;
    let from = resume_from(&headers, uri.query())?;
    let sub = state.registry.subscribe(&tenant, &id, from).await?;
    let mut stopping = state.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let gap = sub.gap.map(|g| {
        Ok(SseEvent::default().event("gap").data(format!(
            "{{\"requested\":{},\"first_available\":{}}}",
            g.requested, g.first_available
        )))
    });
    let backlog: Vec<_> = sub
        .backlog
        .iter()
        .map(|(seq, e)| Ok(output_sse(*seq, e)))
        .collect();
    let live = futures::stream::unfold((sub.live, sub.next), |(mut rx, next)| async move {
        loop {
            let item = match rx.recv().await {
                // Already sent from the backlog.
                Ok((seq, _)) if seq < next => continue,
                Ok((seq, event)) => output_sse(seq, &event),
                // A slow reader skips what it missed and is told how much; it can reconnect
                // with the last id it got to read them from the retained outputs.
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"skipped\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(item), (rx, next)));
        }
    });
    let stream = futures::stream::iter(gap.into_iter().chain(backlog))
        .chain(live)
        .take_until(stopped);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Largest `limit` of an outputs page.
const MAX_OUTPUTS_PAGE: usize = 1000;

pub(crate) async fn outputs(
    Tenant(tenant): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response> {
    let id = pipeline_id(&id)?;
    let mut from = 1;
    let mut limit = 100;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "from" => &mut from,
            "limit" => &mut limit,
            _ => continue,
        };
        *slot = value.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_request",
                format!("query parameter {name}: expected a non-negative integer, got {value:?}"),
            )
        })?;
    }
    if limit == 0 || limit > MAX_OUTPUTS_PAGE as u64 {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("query parameter limit: must be between 1 and {MAX_OUTPUTS_PAGE}, got {limit}"),
        ));
    }
    let page = state
        .registry
        .outputs(
            &tenant,
            &id,
            from,
            usize::try_from(limit).unwrap_or(MAX_OUTPUTS_PAGE),
        )
        .await?;
    let mut out = Vec::with_capacity(128 + 96 * page.outputs.len());
    out.extend_from_slice(b"{\"outputs\":[");
    for (i, (seq, event)) in page.outputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("{{\"seq\":{seq},\"event\":").as_bytes());
        write_events_one(&mut out, event);
        out.push(b'}');
    }
    out.extend_from_slice(
        format!(
            "],\"first_available\":{},\"next\":{},\"gap\":{}}}",
            page.first_available, page.next, page.gap
        )
        .as_bytes(),
    );
    Ok(json_response(out))
}
