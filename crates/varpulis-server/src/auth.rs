//! Who is calling: `x-api-key` names a tenant, `x-admin-key` the operator.
//!
//! A missing or unknown key is 401 (never 404, 405 or 500), checked before anything else of
//! the request, so nothing about a tenant leaks to a caller without its key.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use varpulis_tenant::TenantId;

use crate::AppState;
use crate::error::ApiError;

/// Header carrying a tenant's key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header carrying the admin key.
pub const ADMIN_KEY_HEADER: &str = "x-admin-key";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ()))
        .transpose()
}

/// The tenant whose key the request carries.
pub(crate) struct Tenant(pub(crate) TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match header(&parts.headers, API_KEY_HEADER) {
            Ok(None) => Err(ApiError::unauthorized(format!(
                "missing {API_KEY_HEADER} header"
            ))),
            Ok(Some(key)) => state
                .registry
                .authenticate(key)
                .map(Tenant)
                .ok_or_else(|| ApiError::unauthorized("invalid API key")),
            Err(()) => Err(ApiError::unauthorized("invalid API key")),
        }
    }
}

/// Proof that the request carries the admin key.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match header(&parts.headers, ADMIN_KEY_HEADER) {
            Ok(None) => Err(ApiError::admin_unauthorized(format!(
                "missing {ADMIN_KEY_HEADER} header"
            ))),
            Ok(Some(key)) if state.registry.is_admin(key) => Ok(Admin),
            _ if !state.registry.has_admin_key() => Err(ApiError::admin_unauthorized(
                "this server has no admin key: start it with --api-key (or VARPULIS_API_KEY)",
            )),
            _ => Err(ApiError::admin_unauthorized("invalid admin key")),
        }
    }
}

/// A tenant (`x-api-key`) or the operator (`x-admin-key`): for endpoints that show each
/// caller what is theirs. The admin header, when present, decides; a wrong key in it is not
/// tried as a tenant key.
pub(crate) enum Caller {
    /// A tenant: it sees its own pipelines.
    Tenant(TenantId),
    /// The operator: every tenant.
    Admin,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(ADMIN_KEY_HEADER) {
            return Admin::from_request_parts(parts, state)
                .await
                .map(|Admin| Caller::Admin);
        }
        if !parts.headers.contains_key(API_KEY_HEADER) {
            return Err(ApiError::unauthorized(format!(
                "missing {API_KEY_HEADER} (a tenant's key) or {ADMIN_KEY_HEADER} (the admin key) header"
            )));
        }
        Tenant::from_request_parts(parts, state)
            .await
            .map(|Tenant(id)| Caller::Tenant(id))
    }
}
