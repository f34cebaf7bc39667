//! Request bodies and query strings, with errors that say what and where.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: malformed JSON is 400 `invalid_json` with its line and column, a body of the
/// wrong shape 400 `invalid_request` naming the field, a body over the limit 413.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is over the server's limit (--max-body-bytes)",
                )
            } else {
                ApiError::bad_request("invalid_request", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, classifying the error as [`JsonBody`] does.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => "invalid_request",
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
        };
        let what = if code == "invalid_json" {
            "malformed JSON"
        } else {
            "invalid request body"
        };
        ApiError::bad_request(code, format!("{what}: {e}"))
    })
}

/// `?limit=&offset=` of a list (limit default 50, at most 1000; offset default 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    /// Items asked for.
    pub(crate) limit: usize,
    /// Items skipped.
    pub(crate) offset: usize,
}

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut page = Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for pair in parts.uri.query().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "limit" => &mut page.limit,
                "offset" => &mut page.offset,
                _ => continue,
            };
            *slot = value.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "query parameter {name}: expected a non-negative integer, got {value:?}"
                    ),
                )
            })?;
        }
        if page.limit == 0 || page.limit > MAX_LIMIT {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "query parameter limit: must be between 1 and {MAX_LIMIT}, got {}",
                    page.limit
                ),
            ));
        }
        Ok(page)
    }
}
