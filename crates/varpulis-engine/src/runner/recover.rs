//! Recovery: restore the newest valid checkpoint and decide where the input and the output
//! resume.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use varpulis_checkpoint::{Checkpoint, CheckpointManager, EngineCheckpoint};
use varpulis_store::StateStore;

use super::position::{Input, InputRecord, meta, output_offset_key};
use super::{RecoveryInfo, RunConfig, RunError};
use crate::engine::Engine;
use crate::engine::context::{merge_contexts, split};
use crate::source::SourcePosition;

/// What recovery decided.
pub(super) struct Recovered {
    /// The checkpoint manager (`None`: no store, nothing is checkpointed).
    pub(super) manager: Option<CheckpointManager<Arc<dyn StateStore>>>,
    pub(super) info: RecoveryInfo,
    /// Where the reader starts (`None`: at the beginning, with no event-time clock).
    pub(super) resume: Option<SourcePosition>,
    /// The output length the restored checkpoint recorded for this output, and its id.
    pub(super) output_at: Option<(u64, u64)>,
    /// What the state knows of outputs, as a phrase for the message when the output is not
    /// empty and no checkpoint knows it.
    pub(super) output_known: String,
    /// A parallel run's keyed contexts (`RunConfig::workers` above 1, or declared contexts),
    /// restored; the caller's engine is then their tail.
    pub(super) contexts: Vec<Engine>,
    /// Its declared contexts (`context NAME`), restored.
    pub(super) declared: Vec<Declared>,
}

/// A declared context of a run, its engine restored.
pub(super) struct Declared {
    pub(super) name: String,
    pub(super) cores: Vec<usize>,
    pub(super) engine: Engine,
}

/// Whether a run uses threads: several keyed contexts, or declared ones.
fn threaded(engine: &Engine, config: &RunConfig) -> bool {
    config.workers > 1 || !engine.program().contexts.is_empty()
}

/// Restores the newest valid checkpoint of `store` into `engine` and decides where `input`
/// and `output` resume.
pub(super) async fn recover(
    engine: &mut Engine,
    store: Option<Arc<dyn StateStore>>,
    config: &RunConfig,
    input: &Input,
    output: Option<&Path>,
) -> Result<Recovered, RunError> {
    let mut recovered = Recovered {
        manager: None,
        info: RecoveryInfo::default(),
        resume: None,
        output_at: None,
        output_known: "no checkpoint knows (there is no state directory)".to_owned(),
        contexts: Vec::new(),
        declared: Vec::new(),
    };
    let Some(store) = store else {
        if threaded(engine, config) {
            (recovered.contexts, recovered.declared) =
                parallel_contexts(engine, None, config.workers)?;
        }
        return Ok(recovered);
    };
    recovered.output_known = "no checkpoint knows (the state directory has no valid \
                              checkpoint: a new or mistyped state directory?)"
        .to_owned();
    let manager = CheckpointManager::new(store, config.checkpoint.clone())?;
    let recovery = manager.recover().await?;
    recovered.info.skipped = recovery.skipped;
    let state = match recovery.checkpoint {
        Some(cp) => restore(engine, &cp, config, input, output, &mut recovered)?,
        None => None,
    };
    if threaded(engine, config) {
        (recovered.contexts, recovered.declared) =
            parallel_contexts(engine, state, config.workers)?;
    }
    recovered.manager = Some(manager);
    recovered.info.input_resumed_at = recovered.resume.filter(|p| p.offset > 0);
    Ok(recovered)
}

/// Restores `cp` (one run's, or a parallel run's contexts merged into one state) into
/// `engine`, or with [`RunConfig::workers`] above 1 returns that state and its id for
/// [`parallel_contexts`] to split.
fn restore(
    engine: &mut Engine,
    cp: &Checkpoint,
    config: &RunConfig,
    input: &Input,
    output: Option<&Path>,
    recovered: &mut Recovered,
) -> Result<Option<(u64, EngineCheckpoint)>, RunError> {
    // The record is read (and refused if malformed) before any state is restored.
    let record = InputRecord::read(cp, &input.key)?;
    recovered.info.resumed_from = Some(cp.id);
    let restore_error = |source| RunError::Restore { id: cp.id, source };
    let state = match cp.context_states.len() {
        0 => None,
        1 => cp.context_states.values().next().cloned(),
        _ => {
            // A parallel run's: each context holds its own streams and key groups. Merged in
            // name order, so the merge does not depend on the map's order.
            let mut names: Vec<&String> = cp.context_states.keys().collect();
            names.sort();
            let states = names.into_iter().map(|n| cp.context_states[n].clone());
            Some(merge_contexts(states).map_err(restore_error)?)
        }
    };
    let state = match state {
        Some(state) if !threaded(engine, config) => {
            engine.restore_checkpoint(&state).map_err(restore_error)?;
            None
        }
        other => other.map(|s| (cp.id, s)),
    };
    recovered.resume = resume_input(cp, &record, config, input, &mut recovered.info)?;
    if let Some(out) = output
        && let Some(&len) = cp.source_offsets.get(&output_offset_key(out))
    {
        recovered.output_at = Some((len, cp.id));
    }
    recovered.output_known = match cp.metadata.get(meta::OUTPUT) {
        Some(other) => format!(
            "no checkpoint knows (checkpoint {} recorded the output {other})",
            cp.id
        ),
        None => format!(
            "no checkpoint knows (checkpoint {} was taken writing to stdout)",
            cp.id
        ),
    };
    Ok(state)
}

/// The `workers` keyed contexts of a run and its declared ones, each restored from its share
/// of `state` (taken with any number of contexts); `engine` becomes their tail, restored from
/// the rest.
fn parallel_contexts(
    engine: &mut Engine,
    state: Option<(u64, EngineCheckpoint)>,
    workers: usize,
) -> Result<(Vec<Engine>, Vec<Declared>), RunError> {
    let program = engine.program().clone();
    let template = engine
        .sibling()
        .map_err(|source| RunError::Restore { id: 0, source })?;
    let fresh = || {
        template
            .sibling()
            .map_err(|source| RunError::Restore { id: 0, source })
    };
    let mut contexts = Vec::with_capacity(workers);
    for i in 0..workers {
        contexts.push(fresh()?.into_context(i, workers));
    }
    let mut declared = Vec::with_capacity(program.contexts.len());
    for decl in &program.contexts {
        declared.push(Declared {
            name: decl.name.clone(),
            cores: decl.cores.clone(),
            engine: fresh()?.into_declared(&decl.name),
        });
    }
    *engine = fresh()?.into_tail();
    if let Some((id, state)) = state {
        let placed: HashMap<String, usize> = program
            .streams
            .iter()
            .filter_map(|s| {
                let c = s.context.as_deref()?;
                Some((
                    s.name.clone(),
                    program.contexts.iter().position(|d| d.name == c)?,
                ))
            })
            .collect();
        let (parts, decl_parts, tail) = split(
            state,
            &engine.parallel_window_streams(),
            &engine.parallel_operator_streams(),
            workers,
            &placed,
            declared.len(),
        );
        let error = |source| RunError::Restore { id, source };
        engine.restore_checkpoint(&tail).map_err(error)?;
        for (ctx, part) in contexts.iter_mut().zip(parts) {
            ctx.restore_checkpoint(&part).map_err(error)?;
        }
        for (d, part) in declared.iter_mut().zip(decl_parts) {
            d.engine.restore_checkpoint(&part).map_err(error)?;
        }
    }
    Ok((contexts, declared))
}

/// Where the input resumes after checkpoint `cp`: after the recorded offset if `cp` was taken
/// on this input and it was not replaced; at its beginning (continuing the event-time clock)
/// if it is another input, or on request a replaced one.
fn resume_input(
    cp: &Checkpoint,
    record: &InputRecord,
    config: &RunConfig,
    input: &Input,
    info: &mut RecoveryInfo,
) -> Result<Option<SourcePosition>, RunError> {
    let from_start = record.last_time_ms.map(|t| SourcePosition {
        offset: 0,
        line: 0,
        last_time_ms: t,
    });
    if let Some(position) = record.position {
        let why = match &record.identity {
            Some(identity) => input
                .change(identity, position.offset)
                .map_err(|e| input.io_error(e))?,
            None => None,
        };
        let Some(why) = why else {
            return Ok(Some(position));
        };
        if !config.restart_input {
            return Err(RunError::InputReplaced {
                path: input.path.clone(),
                id: cp.id,
                offset: position.offset,
                why,
            });
        }
        info.input_replaced = Some(why);
        return Ok(from_start);
    }
    // A checkpoint of another path whose input had the same first bytes: the input was moved
    // or copied (or is the old one with more appended), and reading it from its beginning
    // would process those events twice.
    if let Some(identity) = &record.identity
        && identity.prefix_len > 0
        && !config.restart_input
        && input
            .identity(identity.prefix_len)
            .map_err(|e| input.io_error(e))?
            .is_some_and(|now| now.prefix_hash == identity.prefix_hash)
    {
        return Err(RunError::InputMoved {
            path: input.path.clone(),
            id: cp.id,
            previous: record.path.clone().unwrap_or_default(),
            prefix_len: identity.prefix_len,
        });
    }
    info.previous_input.clone_from(&record.path);
    // A new input file continues the event-time clock of `.evt` files.
    Ok(from_start)
}
