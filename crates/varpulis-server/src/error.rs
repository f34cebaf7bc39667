//! API errors: a status, a stable machine-readable code and a message, as JSON
//! `{"error": "...", "code": "..."}` (plus `index` for a batch's bad event).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use varpulis_tenant::TenantError;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    index: Option<usize>,
    retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            index: None,
            retry_after_secs: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `invalid_event` naming the event of a batch (`index`, from 0) that is bad.
    pub fn invalid_event(index: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            index,
            ..Self::bad_request("invalid_event", message)
        }
    }

    /// 401 `invalid_api_key`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
    }

    /// 401 `invalid_admin_key`.
    pub fn admin_unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_admin_key", message)
    }

    /// 404 `pipeline_not_found`.
    pub fn pipeline_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "pipeline_not_found",
            format!("no pipeline {id}"),
        )
    }

    /// 404 `tenant_not_found`.
    pub fn tenant_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "tenant_not_found",
            format!("no tenant {id}"),
        )
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let body = Body {
            error: &self.message,
            code: self.code,
            index: self.index,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<TenantError> for ApiError {
    fn from(err: TenantError) -> Self {
        let message = err.to_string();
        match err {
            TenantError::TenantNotFound => {
                Self::new(StatusCode::NOT_FOUND, "tenant_not_found", message)
            }
            TenantError::PipelineNotFound => {
                Self::new(StatusCode::NOT_FOUND, "pipeline_not_found", message)
            }
            TenantError::QuotaExceeded { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
            }
            TenantError::RateLimited { retry_after_ms } => Self {
                retry_after_secs: Some(retry_after_ms.div_ceil(1000).max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            },
            TenantError::Compile { diagnostics } => Self::bad_request("parse_error", diagnostics),
            TenantError::InvalidEvent { index, .. } => Self::invalid_event(Some(index), message),
            TenantError::InvalidCheckpoint { .. } => {
                Self::bad_request("invalid_checkpoint", message)
            }
            TenantError::NotRunning { .. } => {
                Self::new(StatusCode::CONFLICT, "pipeline_not_running", message)
            }
            TenantError::InvalidName { .. } | TenantError::InvalidIdempotencyKey { .. } => {
                Self::bad_request("invalid_request", message)
            }
            TenantError::IdempotencyConflict { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            _ => Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage_error", message),
        }
    }
}
