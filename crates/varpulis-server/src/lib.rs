//! The Varpulis multi-tenant HTTP API: tenants, pipelines, events, checkpoints, usage and
//! logs over [`varpulis_tenant::Registry`], served by axum on tokio.
//!
//! What it is: the REST surface under `/api/v1` (see `docs/server.md` for every endpoint,
//! header, body and error code), the status page at `/ui` (one self-contained HTML file whose
//! script polls `/api/v1/status`), authentication by header (`x-api-key` for a tenant,
//! `x-admin-key` for the operator), request-body limits, JSON errors
//! `{"error": "...", "code": "..."}` with the right 4xx, and the periodic checkpoint tick.
//!
//! What it is not: it keeps no state of its own (tenants, pipelines, quotas, usage, engine
//! state and the ingest log are [`varpulis_tenant`]'s, persisted through its store), opens no
//! store and parses no command line (the `varpulis server` binary does both). It never links
//! RocksDB or a cipher itself.

mod auth;
mod body;
mod convert;
mod error;
mod routes;
mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use varpulis_engine::clock::Clock;
use varpulis_tenant::Registry;

pub use auth::{ADMIN_KEY_HEADER, API_KEY_HEADER};
pub use body::{DEFAULT_LIMIT, MAX_LIMIT};
pub use error::ApiError;

/// Default largest request body: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// How often the server asks the registry whether a pipeline's checkpoint is due (the
    /// interval itself is the registry's `--checkpoint-interval`).
    pub checkpoint_tick: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            checkpoint_tick: Duration::from_secs(1),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    /// Becomes `true` when the server stops: open `logs` streams end, so the graceful stop
    /// does not wait for them forever.
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// State over `registry`, reading time (receive times, processing times) from `clock`.
    pub fn new(registry: Arc<Registry>, clock: Arc<dyn Clock>) -> Self {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        Self {
            registry,
            clock,
            stopping,
            stop: Arc::new(stop),
        }
    }

    /// Ends every open `logs` stream (done by [`serve`] when it starts stopping).
    pub fn stop_streams(&self) {
        self.stop.send_replace(true);
    }
}

/// The API's router (`/api/v1/...`), with `config`'s body limit.
pub fn router(state: AppState, config: &ServerConfig) -> Router {
    use routes as r;
    let api = Router::new()
        .route("/health", get(r::health))
        .route("/ready", get(r::ready))
        .route("/tenants", post(r::create_tenant).get(r::list_tenants))
        .route("/tenants/{id}", get(r::get_tenant).delete(r::delete_tenant))
        .route(
            "/pipelines",
            post(r::create_pipeline).get(r::list_pipelines),
        )
        .route(
            "/pipelines/{id}",
            get(r::get_pipeline).delete(r::delete_pipeline),
        )
        .route("/pipelines/{id}/events", post(r::post_event))
        .route("/pipelines/{id}/events-batch", post(r::post_events_batch))
        .route("/pipelines/{id}/checkpoint", post(r::checkpoint))
        .route("/pipelines/{id}/restore", post(r::restore))
        .route("/pipelines/{id}/reload", post(r::reload))
        .route("/pipelines/{id}/metrics", get(r::metrics))
        .route("/pipelines/{id}/logs", get(r::logs))
        .route("/pipelines/{id}/outputs", get(r::outputs))
        .route("/usage", get(r::usage))
        .route("/status", get(ui::status));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(r::prometheus))
        .route("/ui", get(ui::page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// Serves `state` on `listener` until `shutdown` completes, ticking the registry's checkpoint
/// schedule; then stops accepting, lets requests in flight finish, and checkpoints every
/// running pipeline ([`Registry::shutdown`]).
///
/// # Errors
/// The listener's I/O errors, or the final checkpoint's.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let registry = Arc::clone(&state.registry);
    let streams = state.clone();
    let shutdown = async move {
        shutdown.await;
        streams.stop_streams();
    };
    let ticker = {
        let registry = Arc::clone(&registry);
        let tick = config.checkpoint_tick;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = registry.checkpoint_due().await {
                    tracing::warn!("periodic checkpoint: {e}");
                }
            }
        })
    };
    let app = router(state, &config);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    served.map_err(ServeError::Io)?;
    registry.shutdown().await.map_err(ServeError::Shutdown)?;
    Ok(())
}

/// Serves `GET /metrics` only, without authentication, on `listener` (`--metrics-bind`: an
/// address for the Prometheus scraper, kept off the API's port). Runs until dropped.
///
/// # Errors
/// The listener's I/O errors.
pub async fn serve_metrics(listener: TcpListener, state: AppState) -> Result<(), ServeError> {
    let app = Router::new()
        .route("/metrics", get(routes::prometheus_open))
        .fallback(not_found)
        .with_state(state);
    axum::serve(listener, app).await.map_err(ServeError::Io)
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Accepting connections failed.
    #[error("serving HTTP failed")]
    Io(#[source] std::io::Error),
    /// The final checkpoint at shutdown failed.
    #[error("the final checkpoint at shutdown failed")]
    Shutdown(#[source] varpulis_tenant::TenantError),
}
