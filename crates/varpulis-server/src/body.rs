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
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body as [`JsonBody`] judges it, with the bytes it was parsed from (the fingerprint of
/// a request that may be retried).
pub(crate) struct JsonWithBytes<T>(pub(crate) T, pub(crate) Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonWithBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(Self(value, bytes))
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is over the server's limit (--max-body-bytes)",
            )
        } else {
            ApiError::bad_request("invalid_request", rejection.body_text())
        }
    })
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
