//! Retention: exactly `max_checkpoints` manifests remain, and no part is left unreferenced.

use std::collections::BTreeSet;

use varpulis_checkpoint::{Checkpoint, CheckpointConfig, CheckpointManager, CheckpointStore};
use varpulis_store::faults::{FailMode, FailPlan, FailingStore};
use varpulis_store::{Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

async fn part_names<S: StateStore + ?Sized>(store: &S, prefix: &str) -> BTreeSet<String> {
    let parts = Key::new(prefix)
        .unwrap()
        .child("ckpt")
        .unwrap()
        .child("part")
        .unwrap();
    store
        .list(&parts)
        .await
        .unwrap()
        .iter()
        .map(|k| k.last_segment().unwrap().to_owned())
        .collect()
}

/// Asserts that every checkpoint under `prefix` loads (retention never took a part a kept
/// manifest references), and returns them.
pub(crate) async fn assert_every_checkpoint_loads<S: StateStore + Clone>(
    store: &S,
    prefix: &str,
) -> Vec<Checkpoint> {
    let config = CheckpointConfig {
        key_prefix: prefix.to_owned(),
        ..CheckpointConfig::default()
    };
    let manager = CheckpointManager::new(store.clone(), config).unwrap();
    let mut out = Vec::new();
    for id in manager.list_checkpoints().await.unwrap() {
        let cp = manager
            .load_checkpoint(id)
            .await
            .unwrap_or_else(|e| panic!("checkpoint {id} does not load: {e}"))
            .unwrap_or_else(|| panic!("checkpoint {id} listed but gone"));
        out.push(cp);
    }
    out
}

/// Asserts that every checkpoint under `prefix` loads and that the parts in the store are
/// exactly those they reference (recomputed by committing them into an empty store).
pub(crate) async fn assert_no_orphan_parts<S: StateStore + Clone>(store: &S, prefix: &str) {
    let fresh = MemoryStore::new();
    for cp in assert_every_checkpoint_loads(store, prefix).await {
        fresh.commit_checkpoint(&cp).await.unwrap();
    }
    assert_eq!(
        part_names(store, prefix).await,
        part_names(&fresh, "varpulis").await,
        "parts in the store differ from the parts its checkpoints reference"
    );
}

#[test]
fn after_many_checkpoints_exactly_max_checkpoints_manifests_and_no_orphan_parts_remain() {
    block_on(async {
        for k in [1, 2, 3, 5] {
            let store = MemoryStore::new();
            let config = CheckpointConfig {
                max_checkpoints: k,
                ..CheckpointConfig::default()
            };
            let manager = CheckpointManager::new(store.clone(), config).unwrap();
            for seed in 0..12 {
                // Alternate between fresh and repeated states, so parts are both shared and not.
                manager
                    .checkpoint(&common::checkpoint(seed / 2))
                    .await
                    .unwrap();
            }
            let ids = manager.list_checkpoints().await.unwrap();
            assert_eq!(ids, ((13 - k as u64)..=12).collect::<Vec<_>>(), "k = {k}");
            assert_no_orphan_parts(&store, "varpulis").await;
            for id in ids {
                assert!(manager.load_checkpoint(id).await.unwrap().is_some());
            }
        }
    });
}

#[test]
fn zero_max_checkpoints_still_keeps_the_newest() {
    block_on(async {
        let config = CheckpointConfig {
            max_checkpoints: 0,
            ..CheckpointConfig::default()
        };
        let manager = CheckpointManager::new(MemoryStore::new(), config).unwrap();
        for seed in 0..3 {
            manager.checkpoint(&common::checkpoint(seed)).await.unwrap();
        }
        assert_eq!(manager.list_checkpoints().await.unwrap(), vec![3]);
        assert_eq!(manager.recover().await.unwrap().checkpoint.unwrap().id, 3);
    });
}

#[test]
fn parts_of_a_failed_checkpoint_are_collected_by_the_next_one() {
    block_on(async {
        let store = MemoryStore::new();
        // Batches reported non-atomic: the manifest is a put of its own, after the parts.
        let failing =
            FailingStore::new(common::Recording::new(store.clone()).claiming(false, false));
        let manager = CheckpointManager::new(failing, CheckpointConfig::default()).unwrap();
        manager
            .checkpoint(&common::distinct_checkpoint(1))
            .await
            .unwrap();
        // Fail the manifest put (parts go in batches): parts of checkpoint 2 are written,
        // never referenced.
        let before = part_names(&store, "varpulis").await.len();
        manager
            .store()
            .set_plan(FailPlan::Every("put"), FailMode::Before);
        assert!(
            manager
                .checkpoint(&common::distinct_checkpoint(2))
                .await
                .is_err()
        );
        assert_eq!(manager.list_checkpoints().await.unwrap(), vec![1]);
        assert!(
            part_names(&store, "varpulis").await.len() > before,
            "orphans exist"
        );
        manager.store().set_plan(FailPlan::Never, FailMode::Before);
        manager
            .checkpoint(&common::distinct_checkpoint(3))
            .await
            .unwrap();
        assert_no_orphan_parts(&store, "varpulis").await;
    });
}

fn part_prefix() -> String {
    "varpulis:ckpt:part".to_owned()
}

#[test]
fn routine_checkpoints_neither_list_nor_read_parts_after_the_first_sweep() {
    block_on(async {
        let store = common::Recording::new(MemoryStore::new());
        let config = CheckpointConfig {
            max_checkpoints: 2,
            ..CheckpointConfig::default()
        };
        let manager = CheckpointManager::new(store.clone(), config).unwrap();
        manager
            .checkpoint(&common::distinct_checkpoint(0))
            .await
            .unwrap();
        // The first retention of a manager lists the parts (an earlier process may have left
        // some behind).
        assert!(
            store
                .take()
                .iter()
                .any(|(op, key)| *op == "list" && *key == part_prefix())
        );
        // States 1, 2, 1, 2, ...: from the fourth on, every part is one a kept manifest
        // references, reused without being read back.
        for round in 1..8_u64 {
            let report = manager
                .checkpoint(&common::distinct_checkpoint(1 + round % 2))
                .await
                .unwrap();
            if round >= 3 {
                assert_eq!(report.parts_written, 0, "round {round} reuses every part");
            }
            let calls = store.take();
            let touching_parts: Vec<_> = calls
                .iter()
                .filter(|(op, key)| {
                    key.starts_with(&part_prefix()) && (*op == "list" || *op == "get")
                })
                .collect();
            assert!(
                touching_parts.is_empty(),
                "round {round} listed or read parts: {touching_parts:?}"
            );
        }
        assert_no_orphan_parts(&store.inner, "varpulis").await;
    });
}

/// A manager keeping two checkpoints, after checkpoints 1 and 2 (distinct states).
async fn keeping_two_after_two_checkpoints<S: StateStore>(store: S) -> CheckpointManager<S> {
    let config = CheckpointConfig {
        max_checkpoints: 2,
        ..CheckpointConfig::default()
    };
    let manager = CheckpointManager::new(store, config).unwrap();
    for seed in 1..=2 {
        manager
            .checkpoint(&common::distinct_checkpoint(seed))
            .await
            .unwrap();
    }
    manager
}

#[test]
fn retention_lists_every_part_when_a_manifest_it_deletes_does_not_decode() {
    block_on(async {
        let store = MemoryStore::new();
        let manager = keeping_two_after_two_checkpoints(store.clone()).await;
        // Manifest 1 no longer says which parts are its own.
        let first = Key::new("varpulis:ckpt:manifest:00000000000000000001").unwrap();
        store.put(&first, b"damaged").await.unwrap();
        manager
            .checkpoint(&common::distinct_checkpoint(3))
            .await
            .unwrap();
        assert_eq!(manager.list_checkpoints().await.unwrap(), vec![2, 3]);
        assert_no_orphan_parts(&store, "varpulis").await;
    });
}

#[test]
fn a_manifest_the_store_cannot_read_blocks_neither_checkpoints_nor_keeps_parts_forever() {
    block_on(async {
        let store = common::Recording::new(MemoryStore::new());
        let manager = keeping_two_after_two_checkpoints(store.clone()).await;
        let second = Key::new("varpulis:ckpt:manifest:00000000000000000002").unwrap();
        store.fail_gets_of(Some(second));
        // Manifest 2 cannot be read: checkpoint 3 still commits; retention deletes manifest 1
        // but no part, since manifest 2 (kept) might reference any of them.
        let report = manager
            .checkpoint(&common::distinct_checkpoint(3))
            .await
            .unwrap();
        assert_eq!(report.id, 3);
        let pruned = report.pruned.unwrap();
        assert_eq!((pruned.manifests_deleted, pruned.parts_deleted), (1, 0));
        // Once it reads again, the next retention collects what was deferred.
        store.fail_gets_of(None);
        manager
            .checkpoint(&common::distinct_checkpoint(4))
            .await
            .unwrap();
        assert_eq!(manager.list_checkpoints().await.unwrap(), vec![3, 4]);
        assert_no_orphan_parts(&store.inner, "varpulis").await;
    });
}

#[test]
fn parts_an_earlier_process_left_behind_are_collected_by_a_new_managers_first_checkpoint() {
    block_on(async {
        let store = MemoryStore::new();
        let first = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        first
            .checkpoint(&common::distinct_checkpoint(1))
            .await
            .unwrap();
        // What a crash between a commit's parts and its manifest leaves: a part nothing
        // references.
        let orphan = Key::new(format!("{}:{}", part_prefix(), "0".repeat(32))).unwrap();
        store.put(&orphan, b"left behind").await.unwrap();
        drop(first);
        let second = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        second
            .checkpoint(&common::distinct_checkpoint(2))
            .await
            .unwrap();
        assert_eq!(store.get(&orphan).await.unwrap(), None);
        assert_no_orphan_parts(&store, "varpulis").await;
    });
}

#[test]
fn a_state_whose_parts_retention_deleted_is_written_again_when_it_returns() {
    block_on(async {
        let store = MemoryStore::new();
        let config = CheckpointConfig {
            max_checkpoints: 1,
            ..CheckpointConfig::default()
        };
        let manager = CheckpointManager::new(store.clone(), config).unwrap();
        // A, then B (retention deletes A's parts), then A again: the manager wrote A's parts
        // once and must not assume they are still there.
        for seed in [1, 2, 1] {
            manager
                .checkpoint(&common::distinct_checkpoint(seed))
                .await
                .unwrap();
        }
        let recovered = manager.recover().await.unwrap();
        assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
        let mut expected = common::distinct_checkpoint(1);
        expected.id = 3;
        common::assert_same(&recovered.checkpoint.unwrap(), &expected);
        assert_no_orphan_parts(&store, "varpulis").await;
    });
}
