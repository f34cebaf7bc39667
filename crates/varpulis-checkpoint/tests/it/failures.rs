//! Every failure point of a checkpoint: a failing operation (before or after it applies), a
//! process crash, and power loss after a crash. Recovery must always return a complete
//! checkpoint: the previous one, or the new one once its manifest is in the store.

use std::sync::Arc;

use varpulis_checkpoint::{Checkpoint, CheckpointConfig, CheckpointManager, CheckpointStore};
use varpulis_store::faults::{CrashStore, FailMode, FailPlan, FailingStore};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

fn config() -> CheckpointConfig {
    CheckpointConfig {
        max_checkpoints: 2,
        ..CheckpointConfig::default()
    }
}

fn expected(seed: u64, id: u64) -> Checkpoint {
    let mut cp = common::distinct_checkpoint(seed);
    cp.id = id;
    cp
}

/// Commits checkpoints 1 and 2 (seeds 1, 2) through a plain manager.
async fn prepare<S: StateStore>(store: S) {
    let m = CheckpointManager::new(store, config()).unwrap();
    prepare_with(&m).await;
}

/// Commits checkpoints 1 and 2 (seeds 1, 2) through `m`.
async fn prepare_with<S: StateStore>(m: &CheckpointManager<S>) {
    m.checkpoint(&common::distinct_checkpoint(1)).await.unwrap();
    m.checkpoint(&common::distinct_checkpoint(2)).await.unwrap();
}

/// The manager that takes checkpoint 3: a new one (`warm = false`: its retention lists every
/// part) or the one that took checkpoints 1 and 2 (`warm = true`: its retention deletes what the
/// pruned manifest referenced).
async fn manager_for_3<S: StateStore + Clone>(store: &S, warm: bool) -> CheckpointManager<S> {
    if warm {
        let m = CheckpointManager::new(store.clone(), config()).unwrap();
        prepare_with(&m).await;
        m
    } else {
        prepare(store.clone()).await;
        CheckpointManager::new(store.clone(), config()).unwrap()
    }
}

fn manifest_key(id: u64) -> Key {
    Key::new(format!("varpulis:ckpt:manifest:{id:020}")).unwrap()
}

/// After a failed or crashed checkpoint 3: recovery yields checkpoint 3 if its manifest is in the
/// store, checkpoint 2 otherwise, intact and with nothing skipped; then the store keeps working:
/// the next checkpoint gets a fresh id, and retention leaves exactly what it should.
async fn check_after_failure<S: StateStore + Clone>(store: S, succeeded: bool, label: &str) {
    let manager = CheckpointManager::new(store.clone(), config()).unwrap();
    check_after_failure_with(&manager, store, succeeded, label).await;
}

/// [`check_after_failure`], taking checkpoint 4 with `manager` (the one that failed, going on,
/// or a new one after a restart).
async fn check_after_failure_with<M: StateStore, S: StateStore + Clone>(
    manager: &CheckpointManager<M>,
    store: S,
    succeeded: bool,
    label: &str,
) {
    let committed = store.get(&manifest_key(3)).await.unwrap().is_some();
    assert!(
        !succeeded || committed,
        "{label}: success reported without a manifest"
    );
    let recovery = CheckpointManager::new(store.clone(), config())
        .unwrap()
        .recover()
        .await
        .unwrap();
    assert!(
        recovery.skipped.is_empty(),
        "{label}: skipped {:?}",
        recovery.skipped
    );
    let got = recovery.checkpoint.expect("a checkpoint");
    let want = if committed {
        expected(3, 3)
    } else {
        expected(2, 2)
    };
    assert_eq!(got.id, want.id, "{label}");
    common::assert_same(&got, &want);
    // Older checkpoints still listed are whole too: retention never left a manifest whose
    // parts it had deleted.
    crate::retention::assert_every_checkpoint_loads(&store, "varpulis").await;

    let next = manager
        .checkpoint(&common::distinct_checkpoint(4))
        .await
        .unwrap();
    assert!(next.id > want.id, "{label}: id {} reused", next.id);
    let ids = manager.list_checkpoints().await.unwrap();
    assert_eq!(ids.len(), 2, "{label}: {ids:?}");
    assert_eq!(*ids.last().unwrap(), next.id);
    crate::retention::assert_no_orphan_parts(&store, "varpulis").await;
}

/// Runs checkpoint 3 with the given plan on a fresh store from `make`, checks the aftermath.
async fn run_failing<S: StateStore + Clone>(
    make: &dyn Fn() -> S,
    plan: FailPlan,
    mode: FailMode,
    warm: bool,
) -> u64 {
    let store = make();
    let manager = manager_for_3(&Arc::new(FailingStore::new(store.clone())), warm).await;
    manager.store().set_plan(plan, mode);
    let result = manager.checkpoint(&common::distinct_checkpoint(3)).await;
    let ops = manager.store().ops();
    let label = format!("{plan:?} {mode:?} warm={warm}");
    if warm {
        // The store recovers and the same manager goes on, with what it learnt from the
        // failure (which parts it trusts, whether retention must sweep).
        manager.store().set_plan(FailPlan::Never, FailMode::Before);
        check_after_failure_with(&manager, store, result.is_ok(), &label).await;
    } else {
        check_after_failure(store, result.is_ok(), &label).await;
    }
    ops
}

async fn every_failure_point<S: StateStore + Clone>(make: &dyn Fn() -> S) {
    for warm in [false, true] {
        let total = run_failing(make, FailPlan::Never, FailMode::Before, warm).await;
        // At least: list the manifests and read one, write the parts and the manifest (one
        // batch on an atomic store), flush, and delete the pruned manifest and its parts.
        assert!(total >= 5, "a checkpoint takes {total} operations");
        for n in 0..total {
            for mode in [FailMode::Before, FailMode::After] {
                run_failing(make, FailPlan::Nth(n), mode, warm).await;
                run_failing(make, FailPlan::From(n), mode, warm).await;
            }
        }
    }
}

#[test]
fn failing_any_operation_of_a_checkpoint_on_a_memory_store_keeps_the_previous_one() {
    block_on(every_failure_point(&MemoryStore::new));
}

#[test]
fn failing_any_operation_of_a_checkpoint_on_a_file_store_keeps_the_previous_one() {
    let dirs = std::sync::Mutex::new(Vec::new());
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).unwrap());
        dirs.lock().unwrap().push(dir);
        store
    };
    block_on(every_failure_point(&make));
}

/// Which unflushed writes a simulated power loss reverts.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// None (a process crash).
    Nothing,
    /// Every one.
    Everything,
    /// A pseudo-random subset, one of several per crash point.
    Some(u64),
}

/// A memory store whose batches are atomic (as they are) or, for `atomic = false`, a memory
/// store that says they are not: the commit then writes its manifest apart from its parts.
fn memory(atomic: bool) -> common::Recording<MemoryStore> {
    common::Recording::new(MemoryStore::new()).claiming(atomic, false)
}

async fn crash_at_every_point(losses: &[Loss], warm: bool, atomic: bool) {
    let dry = CrashStore::new(memory(atomic));
    let m = manager_for_3(&dry, warm).await;
    dry.crash_after(u64::MAX);
    m.checkpoint(&common::distinct_checkpoint(3)).await.unwrap();
    let total = dry.ops();
    for n in 0..=total {
        for &loss in losses {
            let crash = CrashStore::new(memory(atomic));
            let m = manager_for_3(&crash, warm).await;
            crash.crash_after(n);
            let result = m.checkpoint(&common::distinct_checkpoint(3)).await;
            // A crash during retention (after the commit) is not a failed checkpoint.
            assert!(n < total || result.is_ok(), "crash after {n} of {total}");
            match loss {
                Loss::Nothing => crash.restart(),
                Loss::Everything => {
                    crash.power_loss(|_| true).await.unwrap();
                }
                Loss::Some(seed) => {
                    let mut i = seed.wrapping_mul(1_000_003).wrapping_add(n);
                    crash
                        .power_loss(|_| {
                            i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            i >> 63 == 1
                        })
                        .await
                        .unwrap();
                }
            }
            let label = format!("crash at {n} of {total}, {loss:?}, warm={warm}, atomic={atomic}");
            check_after_failure(crash.inner().clone(), result.is_ok(), &label).await;
        }
    }
}

#[test]
fn a_process_crash_at_any_point_of_a_checkpoint_recovers_a_complete_one() {
    for warm in [false, true] {
        for atomic in [false, true] {
            block_on(crash_at_every_point(&[Loss::Nothing], warm, atomic));
        }
    }
}

#[test]
fn power_loss_after_a_crash_at_any_point_recovers_a_complete_one() {
    // Losing everything unflushed, and 32 different halves of it, at every crash point.
    let losses: Vec<Loss> = std::iter::once(Loss::Everything)
        .chain((0..32).map(Loss::Some))
        .collect();
    for warm in [false, true] {
        for atomic in [false, true] {
            block_on(crash_at_every_point(&losses, warm, atomic));
        }
    }
}

#[test]
fn a_manifest_that_is_never_flushed_is_lost_whole_on_power_loss() {
    block_on(async {
        for atomic in [false, true] {
            for n in 0.. {
                let crash = CrashStore::new(memory(atomic));
                prepare(crash.clone()).await;
                crash.crash_after(n);
                let m = CheckpointManager::new(crash.clone(), config()).unwrap();
                assert!(m.checkpoint(&common::distinct_checkpoint(3)).await.is_err());
                if crash.inner().get(&manifest_key(3)).await.unwrap().is_none() {
                    continue;
                }
                // The crash hit between the manifest's write and the flush that follows it.
                let reverted = crash.power_loss(|_| true).await.unwrap();
                assert!(reverted.contains(&manifest_key(3)), "{reverted:?}");
                if atomic {
                    // It went in one batch with the new parts, which go with it.
                    assert!(
                        reverted
                            .iter()
                            .any(|k| k.as_str().starts_with("varpulis:ckpt:part:")),
                        "{reverted:?}"
                    );
                } else {
                    assert_eq!(
                        reverted,
                        vec![manifest_key(3)],
                        "the parts were flushed before it"
                    );
                }
                let label = format!("unflushed manifest, atomic={atomic}");
                check_after_failure(crash.inner().clone(), false, &label).await;
                break;
            }
        }
    });
}

/// After a power loss that keeps only the write holding checkpoint 4's manifest, recovery must
/// find a complete checkpoint with nothing skipped: that manifest was not durable before its
/// parts, including the parts it reused from checkpoint 3.
async fn lose_all_but_manifest_4(crash: &CrashStore<common::Recording<MemoryStore>>, label: &str) {
    let m4 = manifest_key(4);
    crash.power_loss(|k| *k != m4).await.unwrap();
    let recovery = CheckpointManager::new(crash.inner().clone(), config())
        .unwrap()
        .recover()
        .await
        .unwrap();
    assert!(
        recovery.skipped.is_empty(),
        "{label}: a manifest became durable without its parts: {:?}",
        recovery.skipped
    );
}

/// Runs `scenario(n)` for n = 0, 1, ... until it leaves checkpoint 4's manifest in the store (the
/// crash came right after the write that holds it, before the flush), then loses everything else.
async fn crash_right_after_manifest_4<F>(label: &str, scenario: impl Fn(u64) -> F)
where
    F: std::future::Future<Output = CrashStore<common::Recording<MemoryStore>>>,
{
    for n in 0..1_000 {
        let crash = scenario(n).await;
        if crash.inner().get(&manifest_key(4)).await.unwrap().is_some() {
            lose_all_but_manifest_4(&crash, label).await;
            return;
        }
    }
    panic!("{label}: checkpoint 4 never wrote its manifest");
}

#[test]
fn parts_of_a_commit_whose_flush_failed_are_flushed_before_a_manifest_reuses_them() {
    block_on(async {
        for atomic in [true, false] {
            // Checkpoint 3's final flush fails: its parts and manifest are written, not durable.
            // The same manager then checkpoints the same state (every part reused) as 4.
            let scenario = async |n: u64| {
                let crash = CrashStore::new(memory(atomic));
                let failing = Arc::new(FailingStore::new(crash.clone()));
                let m = CheckpointManager::new(failing.clone(), config()).unwrap();
                prepare_with(&m).await;
                failing.set_plan(FailPlan::Every("flush"), FailMode::Before);
                assert!(m.checkpoint(&common::distinct_checkpoint(3)).await.is_err());
                failing.set_plan(FailPlan::Never, FailMode::Before);
                crash.crash_after(n);
                let _ = m.checkpoint(&common::distinct_checkpoint(3)).await;
                crash
            };
            crash_right_after_manifest_4(&format!("atomic={atomic}"), scenario).await;
        }
    });
}

#[test]
fn parts_of_a_cancelled_commit_are_flushed_before_a_manifest_reuses_them() {
    block_on(async {
        // Checkpoint 3 is cancelled (its future dropped, as by a timeout) while it waits on its
        // final flush: parts and manifest written in one atomic batch, not durable. The same
        // manager then checkpoints the same state (every part reused) as 4. (A store without
        // atomic batches always flushes before a manifest.)
        let scenario = async |n: u64| {
            let crash = CrashStore::new(memory(true));
            let m = CheckpointManager::new(crash.clone(), config()).unwrap();
            prepare_with(&m).await;
            crash.inner().stall_flushes(true);
            let finished =
                common::poll_once_then_drop(m.checkpoint(&common::distinct_checkpoint(3)));
            assert!(!finished, "the checkpoint waits on the stalled flush");
            assert!(crash.inner().get(&manifest_key(3)).await.unwrap().is_some());
            crash.inner().stall_flushes(false);
            crash.crash_after(n);
            let _ = m.checkpoint(&common::distinct_checkpoint(3)).await;
            crash
        };
        crash_right_after_manifest_4("cancelled", scenario).await;
    });
}

#[test]
fn the_stateless_api_flushes_reused_parts_before_a_manifest() {
    block_on(async {
        // As above, through `CheckpointStore::commit_checkpoint`, which knows nothing of earlier
        // commits: checkpoint 3's final flush fails after its atomic batch, 4 reuses its parts.
        let scenario = async |n: u64| {
            let crash = CrashStore::new(memory(true));
            prepare(crash.clone()).await;
            let failing = FailingStore::new(crash.clone());
            failing.set_plan(FailPlan::Every("flush"), FailMode::Before);
            let cp = common::distinct_checkpoint(3);
            assert!(failing.commit_checkpoint(&cp).await.is_err());
            assert!(crash.inner().get(&manifest_key(3)).await.unwrap().is_some());
            crash.crash_after(n);
            let _ = crash.commit_checkpoint(&cp).await;
            crash
        };
        crash_right_after_manifest_4("stateless", scenario).await;
    });
}

#[test]
fn parts_a_crashed_process_left_unflushed_are_flushed_before_a_manifest_reuses_them() {
    block_on(async {
        for atomic in [true, false] {
            // A process crashes right after writing checkpoint 3 (parts and manifest), before
            // its flush; the next process checkpoints the same state (every part reused) as 4.
            let first_crash = async |k: u64| {
                let crash = CrashStore::new(memory(atomic));
                prepare(crash.clone()).await;
                crash.crash_after(k);
                let m = CheckpointManager::new(crash.clone(), config()).unwrap();
                let _ = m.checkpoint(&common::distinct_checkpoint(3)).await;
                crash
            };
            let mut k = 0;
            while first_crash(k)
                .await
                .inner()
                .get(&manifest_key(3))
                .await
                .unwrap()
                .is_none()
            {
                k += 1;
                assert!(k < 1_000, "checkpoint 3 never wrote its manifest");
            }
            let scenario = async |n: u64| {
                let crash = first_crash(k).await;
                crash.restart();
                crash.crash_after(n);
                let m = CheckpointManager::new(crash.clone(), config()).unwrap();
                let _ = m.checkpoint(&common::distinct_checkpoint(3)).await;
                crash
            };
            crash_right_after_manifest_4(&format!("atomic={atomic}"), scenario).await;
        }
    });
}
