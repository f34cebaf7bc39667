//! `varpulis checkpoint list|inspect`.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use varpulis_checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointManager, JoinOperatorCheckpoint, PatternCheckpoint,
    WindowCheckpoint, encoded_size, error_chain,
};
use varpulis_core::format_duration_ms;
use varpulis_engine::CONTEXT;
use varpulis_store::StateStore;

/// RFC 3339 UTC time of a checkpoint timestamp.
pub(crate) fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn human_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{:.1} MiB", f / (1024.0 * 1024.0))
    }
}

enum Loaded {
    Valid(Box<Checkpoint>, u64),
    Invalid(String),
    Missing,
}

async fn load_all(manager: &CheckpointManager<Arc<dyn StateStore>>) -> Result<Vec<(u64, Loaded)>> {
    let ids = manager
        .list_checkpoints()
        .await
        .context("cannot list checkpoints")?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids.into_iter().rev() {
        let loaded = match manager.load_checkpoint(id).await {
            Ok(Some(cp)) => {
                let size = encoded_size(&cp).unwrap_or(0);
                Loaded::Valid(Box::new(cp), size)
            }
            Ok(None) => Loaded::Missing,
            Err(e) if e.is_invalid_checkpoint() => Loaded::Invalid(error_chain(&e)),
            Err(e) => return Err(e).with_context(|| format!("cannot read checkpoint {id}")),
        };
        out.push((id, loaded));
    }
    Ok(out)
}

fn manager(store: Arc<dyn StateStore>) -> Result<CheckpointManager<Arc<dyn StateStore>>> {
    Ok(CheckpointManager::new(store, CheckpointConfig::default())?)
}

/// `checkpoint list`: a table of every checkpoint, newest first.
pub(crate) async fn list(store: Arc<dyn StateStore>) -> Result<String> {
    let all = load_all(&manager(store)?).await?;
    let mut out = String::new();
    if all.is_empty() {
        out.push_str("no checkpoints\n");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<29}  {:>10}  {:>12}  {:>12}  STATUS",
        "ID", "TIME (UTC)", "SIZE", "EVENTS", "OUTPUTS"
    );
    for (id, loaded) in &all {
        match loaded {
            Loaded::Valid(cp, size) => {
                let (events, outputs) = cp
                    .context_states
                    .get(CONTEXT)
                    .map_or((0, 0), |s| (s.events_processed, s.output_events_emitted));
                let _ = writeln!(
                    out,
                    "{id:>6}  {:<29}  {:>10}  {events:>12}  {outputs:>12}  valid",
                    format_time(cp.timestamp_ms),
                    human_bytes(*size),
                );
            }
            Loaded::Invalid(reason) => {
                let _ = writeln!(
                    out,
                    "{id:>6}  {:<29}  {:>10}  {:>12}  {:>12}  INVALID: {reason}",
                    "-", "-", "-", "-"
                );
            }
            Loaded::Missing => {
                let _ = writeln!(
                    out,
                    "{id:>6}  {:<29}  {:>10}  {:>12}  {:>12}  INVALID: manifest vanished while listing",
                    "-", "-", "-", "-"
                );
            }
        }
    }
    Ok(out)
}

fn describe_window(name: &str, w: &WindowCheckpoint) -> String {
    let panes: usize = w.partitions.iter().map(|p| p.panes.len()).sum();
    let bytes = postcard::to_allocvec(w).map_or(0, |v| v.len() as u64);
    let part = w
        .spec
        .partition_by
        .as_ref()
        .map(|p| format!(" partition_by {p}"))
        .unwrap_or_default();
    let wm = w
        .watermark_ms
        .map_or_else(|| "none".to_owned(), |m| m.to_string());
    format!(
        "  {name}: {}{part}; {} partition(s), {panes} open pane(s), ~{}; watermark {wm}; \
         late events dropped {}; aggregates [{}]\n",
        w.spec.kind,
        w.partitions.len(),
        human_bytes(bytes),
        w.late_events_dropped,
        w.spec.aggregates.join(", "),
    )
}

/// An operator state's encoded size (from its postcard encoding) and its watermark, as
/// `describe_*` print them.
fn size_and_watermark(
    encoded: Result<Vec<u8>, postcard::Error>,
    wm: Option<i64>,
) -> (String, String) {
    let bytes = encoded.map_or(0, |v| v.len() as u64);
    let wm = wm.map_or_else(|| "none".to_owned(), |m| m.to_string());
    (human_bytes(bytes), wm)
}

fn describe_pattern(name: &str, p: &PatternCheckpoint) -> String {
    let runs: usize = p.partitions.iter().map(|x| x.runs.len()).sum();
    let (size, wm) = size_and_watermark(postcard::to_allocvec(p), p.watermark_ms);
    let c = &p.counters;
    format!(
        "  {name}: pattern; {} partition(s), {runs} open run(s), {} held event(s), ~{}; \
         watermark {wm}; runs started {}, matches {}, expired {}, cancelled {}, evicted {}, \
         Kleene overflows {}, late events dropped {}, events without key {}\n",
        p.partitions.len(),
        p.pending.len(),
        size,
        c.runs_started,
        c.matches,
        c.runs_expired,
        c.runs_cancelled,
        c.runs_evicted,
        c.kleene_overflows,
        c.late_events_dropped,
        c.events_without_key,
    )
}

fn describe_join(name: &str, j: &JoinOperatorCheckpoint) -> String {
    let buffered: usize = j.buffers.iter().map(Vec::len).sum();
    let (size, wm) = size_and_watermark(postcard::to_allocvec(j), j.watermark_ms);
    let c = &j.counters;
    format!(
        "  {name}: join of {} input(s); {buffered} buffered event(s), {} held event(s), ~{}; \
         watermark {wm}; matches {}, expired {}, keys evicted {}, late events dropped {}, \
         events without key {}\n",
        j.buffers.len(),
        j.pending.len(),
        size,
        c.matches,
        c.expired,
        c.keys_evicted,
        c.late_events_dropped,
        c.events_without_key,
    )
}

/// `checkpoint inspect`: one checkpoint in detail (the newest valid one by default), then
/// every invalid checkpoint and why.
pub(crate) async fn inspect(store: Arc<dyn StateStore>, id: Option<u64>) -> Result<String> {
    let all = load_all(&manager(store)?).await?;
    let mut out = String::new();
    if all.is_empty() {
        out.push_str("no checkpoints\n");
        return Ok(out);
    }
    let chosen = match id {
        Some(id) => match all.iter().find(|(i, _)| *i == id) {
            Some((_, Loaded::Valid(cp, size))) => Some((cp, *size)),
            Some((_, Loaded::Invalid(reason))) => {
                bail!("checkpoint {id} is invalid: {reason}")
            }
            _ => bail!("no checkpoint {id}"),
        },
        None => all.iter().find_map(|(_, l)| match l {
            Loaded::Valid(cp, size) => Some((cp, *size)),
            _ => None,
        }),
    };
    match chosen {
        None => out.push_str("no valid checkpoint\n"),
        Some((cp, size)) => {
            let _ = writeln!(out, "checkpoint {}", cp.id);
            let _ = writeln!(out, "  time: {}", format_time(cp.timestamp_ms));
            let _ = writeln!(out, "  size: {} ({size} bytes)", human_bytes(size));
            for (k, v) in &cp.source_offsets {
                let _ = writeln!(out, "  offset {k}: {v}");
            }
            for (k, v) in &cp.metadata {
                let _ = writeln!(out, "  {k}: {v}");
            }
            let mut contexts: Vec<_> = cp.context_states.iter().collect();
            contexts.sort_by(|a, b| a.0.cmp(b.0));
            for (name, state) in contexts {
                let _ = writeln!(out, "context {name}");
                // The encoded size of this context's state alone (parts it shares with another
                // context are counted in both).
                let alone = varpulis_checkpoint::Checkpoint::new(cp.timestamp_ms)
                    .with_context(name.clone(), state.clone());
                if let Ok(bytes) = varpulis_checkpoint::encoded_size(&alone) {
                    let _ = writeln!(out, "  state size: {} ({bytes} bytes)", human_bytes(bytes));
                }
                if let Some(us) = cp.metadata.get(&format!("barrier.snapshot_us.{name}")) {
                    let _ = writeln!(out, "  barrier snapshot stall: {us} us");
                }
                let _ = writeln!(out, "  events processed: {}", state.events_processed);
                let _ = writeln!(
                    out,
                    "  output events emitted: {}",
                    state.output_events_emitted
                );
                if let Some(wm) = &state.watermark_state {
                    let eff = wm
                        .effective_ms
                        .map_or_else(|| "none".to_owned(), |m| m.to_string());
                    let _ = writeln!(out, "  effective watermark: {eff}");
                    for (src, s) in &wm.sources {
                        let _ = writeln!(
                            out,
                            "  source {src}: max event time {}, out of order {}{}",
                            s.max_timestamp_ms,
                            format_duration_ms(s.out_of_order_ms),
                            if s.idle { ", idle" } else { "" }
                        );
                    }
                }
                for (var, value) in &state.variables {
                    let _ = writeln!(out, "  var {var} = {value}");
                }
                if state.window_states.is_empty()
                    && state.pattern_states.is_empty()
                    && state.join_operator_states.is_empty()
                {
                    out.push_str("  no window, pattern or join state\n");
                } else {
                    out.push_str("  streams:\n");
                    for (stream, w) in &state.window_states {
                        out.push_str(&describe_window(stream, w));
                    }
                    for (stream, p) in &state.pattern_states {
                        out.push_str(&describe_pattern(stream, p));
                    }
                    for (stream, j) in &state.join_operator_states {
                        out.push_str(&describe_join(stream, j));
                    }
                }
            }
        }
    }
    let invalid: Vec<_> = all
        .iter()
        .filter_map(|(id, l)| match l {
            Loaded::Invalid(reason) => Some((id, reason.as_str())),
            Loaded::Missing => Some((id, "manifest vanished while listing")),
            Loaded::Valid(..) => None,
        })
        .collect();
    if invalid.is_empty() {
        let _ = writeln!(out, "all {} checkpoint(s) valid", all.len());
    } else {
        out.push_str("invalid checkpoints:\n");
        for (id, reason) in invalid {
            let _ = writeln!(out, "  {id}: {reason}");
        }
    }
    Ok(out)
}
