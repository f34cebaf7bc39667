//! The status page: `GET /ui` serves a self-contained HTML shell (inline CSS and JavaScript,
//! no external asset) that holds no data; its script asks for the caller's key, keeps it in
//! `sessionStorage`, and polls `GET /api/v1/status` with it, which answers the caller's
//! pipelines (a tenant key) or every tenant's (the admin key) as JSON.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json_, json};
use varpulis_tenant::{CheckpointSample, PipelineStatusReport, TenantStatusReport};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The page: markup, style and script in one file, data filled in by the script only.
const PAGE: &str = include_str!("ui/status.html");

/// What the page may load and do: its own inline script and style, requests to this server,
/// nothing else (no frame, no form target, no external resource).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /ui`: the HTML shell, without authentication (it holds no data).
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

fn checkpoint_json(s: &CheckpointSample) -> Json_ {
    json!({
        "id": s.id,
        "created_at_ms": s.created_ms,
        "bytes": s.bytes,
        "duration_ms": s.duration.map(|d| d.as_secs_f64() * 1000.0),
    })
}

fn pipeline_json(p: &PipelineStatusReport) -> Json_ {
    let m = &p.metrics;
    json!({
        "id": p.info.id.to_string(),
        "name": p.info.name,
        "status": p.info.status.as_str(),
        "error": p.info.error,
        "created_at_ms": p.info.created_ms,
        "events_in": m.events_in,
        "output_events": m.output_events,
        "late_events_dropped": m.late_events_dropped,
        "state_bytes": m.state_bytes,
        "watermark_ms": m.watermark_ms,
        "last_checkpoint": p.last_checkpoint().map(checkpoint_json),
        "checkpoints": p.checkpoints.iter().map(checkpoint_json).collect::<Vec<_>>(),
    })
}

fn tenant_json(t: &TenantStatusReport) -> Json_ {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "pipelines": t.pipelines.iter().map(pipeline_json).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/status`: a tenant's pipelines (`x-api-key`), or every tenant's
/// (`x-admin-key`), with counters and recent checkpoints.
pub(crate) async fn status(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let (scope, tenants) = match caller {
        Caller::Tenant(id) => ("tenant", vec![state.registry.tenant_status(&id)?]),
        Caller::Admin => ("admin", state.registry.status()),
    };
    let body = json!({
        "scope": scope,
        "now_ms": state.clock.now_ms(),
        "tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>(),
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
