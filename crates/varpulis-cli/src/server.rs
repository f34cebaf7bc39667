//! `varpulis server`: the multi-tenant HTTP API over a state directory.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use varpulis_checkpoint::CheckpointConfig;
use varpulis_engine::clock::{Clock, SystemClock};
use varpulis_server::{AppState, DEFAULT_MAX_BODY_BYTES, ServerConfig};
use varpulis_store::{MemoryStore, StateStore};
use varpulis_tenant::{Registry, RegistryConfig};

use crate::Signals;
use crate::store::{Purpose, StoreArgs};

/// `varpulis server` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// TCP port to listen on (0: any free port; the bound address is printed).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Admin key (`x-admin-key`); also the key of the tenant `default` (enterprise tier),
    /// created at first start, so a single-user server works with one key.
    #[arg(
        long,
        env = "VARPULIS_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Time between each pipeline's checkpoints (`10s`, `1m`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    checkpoint_interval: Duration,
    /// Also serve `GET /metrics` without authentication on this address (for a Prometheus
    /// scraper; port 0 takes any free port, printed as `metrics on ADDR`). Without it,
    /// `/metrics` is on the API's address and needs the admin key.
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,
    /// Largest request body, in bytes (larger ones are answered 413).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
}

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    match varpulis_core::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("expected a duration (10s, 500ms, 1m), found {s:?}")),
    }
}

/// Shortest admin key accepted: a short key is guessed, and it guards every tenant.
const MIN_API_KEY_LEN: usize = 16;

pub(crate) async fn serve(args: ServerArgs) -> Result<ExitCode> {
    let mut signals = Signals::new();
    if let Some(key) = &args.api_key
        && key.len() < MIN_API_KEY_LEN
    {
        bail!(
            "--api-key is {} characters; use at least {MIN_API_KEY_LEN} (for example: openssl rand -hex 32)",
            key.len()
        );
    }
    let opened = args.store.open(Purpose::Run).await?;
    let store: Arc<dyn StateStore> = match opened.store.clone() {
        Some(store) => store,
        None => {
            eprintln!(
                "warning: no --state-dir: tenants, pipelines and their state live in memory and are lost when the server stops"
            );
            Arc::new(MemoryStore::new())
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = RegistryConfig {
        checkpoint: CheckpointConfig {
            interval: args.checkpoint_interval,
            ..CheckpointConfig::default()
        },
        ..RegistryConfig::default()
    };
    let registry = Arc::new(
        Registry::open(store, config, Arc::clone(&clock))
            .await
            .context("cannot load the tenants and pipelines of the state directory")?,
    );
    if let Some(key) = &args.api_key {
        registry.set_admin_key(key);
        registry
            .ensure_default_tenant(key)
            .await
            .context("cannot create the default tenant")?;
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let state = AppState::new(registry, clock);
    let metrics = match args.metrics_bind {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-bind)"))?;
            let at = l.local_addr().context("cannot read the metrics address")?;
            Some((
                at,
                tokio::spawn(varpulis_server::serve_metrics(l, state.clone())),
            ))
        }
        None => None,
    };
    println!("listening on {bound}");
    if let Some((at, _)) = &metrics {
        println!("metrics on {at}");
    }
    std::io::Write::flush(&mut std::io::stdout()).ok();
    let shutdown = async move {
        signals.next().await;
        eprintln!(
            "varpulis: stopping: finishing requests in flight, then checkpointing every pipeline"
        );
        tokio::spawn(async move {
            signals.next().await;
            eprintln!(
                "varpulis: second signal: exiting now; acknowledged events are in the ingest log"
            );
            crate::exit_now(130);
        });
    };
    let server_config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        ..ServerConfig::default()
    };
    varpulis_server::serve(listener, state, server_config, shutdown)
        .await
        .map_err(anyhow::Error::new)?;
    if let Some((_, task)) = metrics {
        task.abort();
    }
    drop(opened);
    eprintln!("varpulis: server stopped");
    Ok(ExitCode::SUCCESS)
}
