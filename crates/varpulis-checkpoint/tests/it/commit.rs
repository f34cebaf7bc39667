//! The commit protocol and the seed API on memory and file stores.

use std::sync::Arc;

use varpulis_checkpoint::{
    CLOCK_STRIDE, Checkpoint, CheckpointConfig, CheckpointEvery, CheckpointManager,
    CheckpointStore, EngineCheckpoint,
};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

#[test]
fn saved_checkpoint_loads_bit_exact_on_memory_and_file_stores() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::open(dir.path()).unwrap();
        let stores: Vec<Arc<dyn StateStore>> = vec![Arc::new(MemoryStore::new()), Arc::new(file)];
        for store in stores {
            let manager = CheckpointManager::new(store, CheckpointConfig::default()).unwrap();
            let report = manager.checkpoint(&common::checkpoint(5)).await.unwrap();
            let mut expected = common::checkpoint(5);
            expected.id = report.id;
            let recovered = manager.recover().await.unwrap();
            common::assert_same(recovered.checkpoint.as_ref().unwrap(), &expected);
            assert!(recovered.skipped.is_empty());
        }
    });
}

#[test]
fn file_store_checkpoint_survives_reopening() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = FileStore::open(dir.path()).unwrap();
            store
                .save_checkpoint("ctx", &common::engine(2))
                .await
                .unwrap()
        };
        let store = FileStore::open(dir.path()).unwrap();
        let cp = store.load_latest_checkpoint().await.unwrap().unwrap();
        assert_eq!(cp.id, id);
        assert_eq!(
            postcard::to_stdvec(&cp.context_states["ctx"]).unwrap(),
            postcard::to_stdvec(&common::engine(2)).unwrap()
        );
    });
}

#[test]
fn save_checkpoint_updates_one_context_and_carries_the_others() {
    block_on(async {
        let store = MemoryStore::new();
        let a = store
            .save_checkpoint("a", &common::engine(1))
            .await
            .unwrap();
        let b = store
            .save_checkpoint("b", &common::engine(2))
            .await
            .unwrap();
        let c = store
            .save_checkpoint("a", &EngineCheckpoint::default())
            .await
            .unwrap();
        assert!(a < b && b < c);
        assert_eq!(store.list_checkpoints().await.unwrap(), vec![a, b, c]);
        let latest = store.load_latest_checkpoint().await.unwrap().unwrap();
        assert_eq!(latest.id, c);
        assert_eq!(latest.context_states["a"], EngineCheckpoint::default());
        assert_eq!(latest.context_states["b"].events_processed, 20);
        let first = store.load_checkpoint(a).await.unwrap().unwrap();
        assert_eq!(first.context_states.len(), 1);
        assert_eq!(store.load_checkpoint(999).await.unwrap(), None);
        assert_eq!(store.prune_checkpoints(0).await.unwrap(), 2);
        assert_eq!(store.list_checkpoints().await.unwrap(), vec![c]);
        assert_eq!(store.load_latest_checkpoint().await.unwrap().unwrap().id, c);
    });
}

#[test]
fn checkpoint_api_works_through_a_dyn_store() {
    block_on(async {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let id = store
            .save_checkpoint("ctx", &common::engine(1))
            .await
            .unwrap();
        assert_eq!(store.list_checkpoints().await.unwrap(), vec![id]);
    });
}

#[test]
fn ids_keep_increasing_across_restarts_even_when_the_newest_is_corrupt() {
    block_on(async {
        let store = MemoryStore::new();
        let first = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        for seed in 0..3 {
            first.checkpoint(&common::checkpoint(seed)).await.unwrap();
        }
        drop(first);
        let newest = Key::new(format!("varpulis:ckpt:manifest:{:020}", 3)).unwrap();
        store.put(&newest, b"garbage").await.unwrap();

        let restarted = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        let recovery = restarted.recover().await.unwrap();
        assert_eq!(recovery.checkpoint.unwrap().id, 2);
        assert_eq!(recovery.skipped.len(), 1);
        assert_eq!(recovery.skipped[0].id, 3);
        let report = restarted.checkpoint(&common::checkpoint(9)).await.unwrap();
        assert_eq!(report.id, 4);
        assert_eq!(restarted.recover().await.unwrap().checkpoint.unwrap().id, 4);
    });
}

#[test]
fn manager_assigns_ids_and_keeps_the_callers_timestamp() {
    block_on(async {
        let manager =
            CheckpointManager::new(MemoryStore::new(), CheckpointConfig::default()).unwrap();
        let mut cp = Checkpoint::new(123);
        cp.id = 77;
        let report = manager.checkpoint(&cp).await.unwrap();
        assert_eq!(report.id, 1);
        let back = manager.load_checkpoint(1).await.unwrap().unwrap();
        assert_eq!((back.id, back.timestamp_ms), (1, 123));
    });
}

#[test]
fn the_managers_schedule_follows_its_config_on_the_injected_clock() {
    let config = CheckpointConfig {
        interval: std::time::Duration::from_secs(10),
        ..CheckpointConfig::default()
    };
    let manager = CheckpointManager::new(MemoryStore::new(), config).unwrap();
    let secs = std::time::Duration::from_secs;
    let mut schedule = manager.schedule(secs(1));
    let mut due_at = None;
    for event in 1..=CLOCK_STRIDE * 3 {
        // The clock reads 1 s + 5 s per clock reading (one every CLOCK_STRIDE events).
        let now = secs(1 + 5 * (event / CLOCK_STRIDE));
        if schedule.event(|| now) {
            due_at = Some(event);
            break;
        }
    }
    // 5 s after the start is not due, 10 s after it is.
    assert_eq!(due_at, Some(CLOCK_STRIDE * 2));
    schedule.taken(secs(11));
    assert_eq!(schedule.pending(), 0);
    assert_eq!(schedule.every(), manager.config().every());
    let by_count = CheckpointConfig::default().with_every(CheckpointEvery::Events(5));
    assert_eq!(by_count.every_events, Some(5));
    assert_eq!(by_count.every(), CheckpointEvery::Events(5));
}

#[test]
fn config_defaults_are_the_seeds() {
    let c = CheckpointConfig::default();
    assert_eq!(c.interval, std::time::Duration::from_secs(60));
    assert_eq!(c.max_checkpoints, 3);
    assert!(c.checkpoint_on_shutdown);
    assert_eq!(c.key_prefix, "varpulis");
}

#[test]
fn an_invalid_key_prefix_is_a_configuration_error() {
    let config = CheckpointConfig {
        key_prefix: "../etc".to_owned(),
        ..CheckpointConfig::default()
    };
    let err = CheckpointManager::new(MemoryStore::new(), config).unwrap_err();
    assert!(err.to_string().contains("key_prefix"), "{err}");
}

#[test]
fn engines_with_different_prefixes_share_a_store_without_interfering() {
    block_on(async {
        let store = MemoryStore::new();
        let cfg = |p: &str| CheckpointConfig {
            key_prefix: p.to_owned(),
            max_checkpoints: 1,
            ..CheckpointConfig::default()
        };
        let a = CheckpointManager::new(store.clone(), cfg("tenants:a")).unwrap();
        let b = CheckpointManager::new(store.clone(), cfg("tenants:b")).unwrap();
        for seed in 0..3 {
            a.checkpoint(&common::checkpoint(seed)).await.unwrap();
            b.checkpoint(&common::checkpoint(seed + 10)).await.unwrap();
        }
        let ra = a.recover().await.unwrap().checkpoint.unwrap();
        let rb = b.recover().await.unwrap().checkpoint.unwrap();
        assert_eq!(ra.metadata["program"], "p2");
        assert_eq!(rb.metadata["program"], "p12");
        assert!(store.list_checkpoints().await.unwrap().is_empty());
    });
}

#[test]
fn strict_recovery_refuses_to_skip_a_corrupt_checkpoint() {
    block_on(async {
        let store = MemoryStore::new();
        let manager = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        manager.checkpoint(&common::checkpoint(1)).await.unwrap();
        manager.checkpoint(&common::checkpoint(2)).await.unwrap();
        let newest = Key::new(format!("varpulis:ckpt:manifest:{:020}", 2)).unwrap();
        store.put(&newest, b"").await.unwrap();
        let err = manager.recover_strict().await.unwrap_err();
        match err {
            varpulis_checkpoint::CheckpointError::RecoveryRefused { skipped } => {
                assert_eq!(skipped[0].id, 2);
                assert_eq!(skipped[0].key, newest.to_string());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(manager.recover().await.unwrap().checkpoint.unwrap().id, 1);
    });
}

#[test]
fn an_empty_store_recovers_nothing_in_both_modes() {
    block_on(async {
        let manager =
            CheckpointManager::new(MemoryStore::new(), CheckpointConfig::default()).unwrap();
        assert_eq!(manager.recover().await.unwrap().checkpoint, None);
        assert_eq!(manager.recover_strict().await.unwrap().checkpoint, None);
    });
}

/// The calls of one commit from its first part write to its final flush.
fn commit_tail(calls: Vec<(&'static str, String)>) -> Vec<String> {
    let first_write = calls
        .iter()
        .position(|(op, _)| *op == "write_batch")
        .expect("the commit writes parts");
    let manifest = calls
        .iter()
        .position(|(op, key)| {
            key == "manifest" || (*op == "put" && key.starts_with("varpulis:ckpt:manifest:"))
        })
        .expect("the commit writes its manifest");
    calls[first_write..=manifest + 1]
        .iter()
        .map(|(op, key)| {
            if key == "manifest" || key.starts_with("varpulis:ckpt:manifest:") {
                format!("{op} manifest")
            } else {
                (*op).to_owned()
            }
        })
        .collect()
}

#[test]
fn parts_are_durable_before_the_manifest_with_as_few_flushes_as_the_store_allows() {
    block_on(async {
        for (atomic, ordered, expected) in [
            // Each write on its own, durable only at flush: flush the parts first.
            (
                false,
                false,
                vec!["write_batch", "flush", "put manifest", "flush"],
            ),
            // Writes durable in order: the manifest follows the parts.
            (false, true, vec!["write_batch", "put manifest", "flush"]),
            // Atomic batches: the manifest goes in the parts' batch.
            (true, false, vec!["write_batch manifest", "flush"]),
        ] {
            let store = common::Recording::new(MemoryStore::new()).claiming(atomic, ordered);
            CheckpointStore::commit_checkpoint(&store, &common::checkpoint(1))
                .await
                .unwrap();
            assert_eq!(
                commit_tail(store.take()),
                expected,
                "atomic = {atomic}, ordered = {ordered}"
            );
        }
    });
}

#[test]
fn parts_of_earlier_batches_are_flushed_before_the_batch_that_holds_the_manifest() {
    block_on(async {
        // About 12 MiB of parts: more than one 8 MiB batch.
        let cp = common::big_checkpoint(12, 1 << 20, 7);
        let store = common::Recording::new(MemoryStore::new()).claiming(true, false);
        CheckpointStore::commit_checkpoint(&store, &cp)
            .await
            .unwrap();
        assert_eq!(
            commit_tail(store.take()),
            vec!["write_batch", "flush", "write_batch manifest", "flush"]
        );
    });
}
