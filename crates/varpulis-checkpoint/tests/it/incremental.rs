//! Incremental checkpoints and encoding overhead (deterministic byte counts, asserted here;
//! timings live in the benches).

use varpulis_checkpoint::{CheckpointConfig, CheckpointManager, WindowCheckpoint, encoded_size};
use varpulis_store::faults::{FailMode, FailPlan, FailingStore};
use varpulis_store::{Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

fn touch(w: &mut WindowCheckpoint) {
    w.late_events_dropped += 1;
}

#[test]
fn incremental_checkpoint_writes_at_most_3_percent_when_1_percent_of_1000_parts_changed() {
    block_on(async {
        let manager =
            CheckpointManager::new(MemoryStore::new(), CheckpointConfig::default()).unwrap();
        let mut cp = common::big_checkpoint(1_000, 4_096, 1);
        let full = manager.checkpoint(&cp).await.unwrap();
        assert_eq!(
            full.bytes_written(),
            full.bytes_total(),
            "first checkpoint is full"
        );
        let engine = cp.context_states.get_mut("main").unwrap();
        for (i, w) in engine.window_states.values_mut().enumerate() {
            if i % 100 == 0 {
                touch(w);
            }
        }
        engine.events_processed += 1;
        let inc = manager.checkpoint(&cp).await.unwrap();
        assert_eq!(inc.parts_written, 11, "10 windows and the engine core");
        let fraction = inc.bytes_written() as f64 / inc.bytes_total() as f64;
        println!(
            "incremental/full = {fraction:.4} ({} / {} bytes)",
            inc.bytes_written(),
            inc.bytes_total()
        );
        assert!(
            fraction <= 0.03,
            "incremental checkpoint wrote {fraction:.4} of a full one"
        );
    });
}

#[test]
fn an_unchanged_checkpoint_writes_only_its_manifest() {
    block_on(async {
        let manager =
            CheckpointManager::new(MemoryStore::new(), CheckpointConfig::default()).unwrap();
        manager.checkpoint(&common::checkpoint(1)).await.unwrap();
        let again = manager.checkpoint(&common::checkpoint(1)).await.unwrap();
        assert_eq!(again.parts_written, 0);
        assert_eq!(again.bytes_written(), again.manifest_bytes);
    });
}

/// Commits checkpoint(1) to a new memory store, then flips a bit in every stored part, as bit
/// rot would. Returns the store and the part keys.
async fn checkpoint_then_damage_every_part() -> (MemoryStore, Vec<Key>) {
    let store = MemoryStore::new();
    let first = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
    first.checkpoint(&common::checkpoint(1)).await.unwrap();
    let parts = store
        .list(&Key::new("varpulis:ckpt:part").unwrap())
        .await
        .unwrap();
    assert!(!parts.is_empty());
    for key in &parts {
        let mut bytes = store.get(key).await.unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        store.put(key, &bytes).await.unwrap();
    }
    (store, parts)
}

#[test]
fn a_part_damaged_at_rest_is_rewritten_not_referenced_by_a_new_manager() {
    block_on(async {
        let (store, parts) = checkpoint_then_damage_every_part().await;
        // Restart (a new manager).
        let restarted = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        let report = restarted.checkpoint(&common::checkpoint(1)).await.unwrap();
        assert_eq!(
            report.parts_written,
            parts.len(),
            "every damaged part is rewritten"
        );
        let recovered = restarted.recover().await.unwrap();
        assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
        let mut want = common::checkpoint(1);
        want.id = report.id;
        assert_eq!(
            common::canonical(&recovered.checkpoint.unwrap()),
            common::canonical(&want)
        );
        // Parts this manager wrote or read back are not read again.
        let again = restarted.checkpoint(&common::checkpoint(1)).await.unwrap();
        assert_eq!(again.parts_written, 0);
    });
}

#[test]
fn a_damaged_part_whose_rewrite_failed_is_rewritten_by_the_next_checkpoint() {
    block_on(async {
        let (store, parts) = checkpoint_then_damage_every_part().await;
        let failing = FailingStore::new(store.clone());
        let restarted = CheckpointManager::new(failing, CheckpointConfig::default()).unwrap();
        // Every batch fails: the damaged parts are found, but their rewrite never lands.
        restarted
            .store()
            .set_plan(FailPlan::Every("write_batch"), FailMode::Before);
        assert!(restarted.checkpoint(&common::checkpoint(1)).await.is_err());
        restarted
            .store()
            .set_plan(FailPlan::Never, FailMode::Before);
        let report = restarted.checkpoint(&common::checkpoint(1)).await.unwrap();
        assert_eq!(
            report.parts_written,
            parts.len(),
            "still damaged: rewritten"
        );
        let recovered = restarted.recover().await.unwrap();
        assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
        assert_eq!(recovered.checkpoint.unwrap().id, report.id);
    });
}

#[test]
fn encoded_checkpoint_is_at_most_1_1x_the_postcard_size_of_its_raw_state() {
    for (parts, bytes) in [(256, 4_096), (1_000, 4_096), (4, 1 << 18)] {
        let cp = common::big_checkpoint(parts, bytes, 7);
        let encoded = encoded_size(&cp).unwrap();
        let raw = common::raw_size(&cp);
        let ratio = encoded as f64 / raw as f64;
        println!("{parts} parts of ~{bytes} B: encoded/raw = {ratio:.4}");
        assert!(ratio <= 1.1, "{parts} x {bytes}: ratio {ratio:.4}");
    }
}

#[test]
fn after_recovery_unchanged_parts_are_referenced_without_being_read_again() {
    common::block_on(async {
        let store = common::Recording::new(MemoryStore::new());
        let cp = common::distinct_checkpoint(7);
        CheckpointManager::new(store.clone(), CheckpointConfig::default())
            .unwrap()
            .checkpoint(&cp)
            .await
            .unwrap();
        // A new process: recovery reads and verifies every part once.
        let manager = CheckpointManager::new(store.clone(), CheckpointConfig::default()).unwrap();
        manager.recover().await.unwrap().checkpoint.unwrap();
        let part_reads = |calls: Vec<(&'static str, String)>| {
            calls
                .into_iter()
                .filter(|(op, key)| *op == "get" && key.starts_with("varpulis:ckpt:part:"))
                .count()
        };
        assert!(part_reads(store.take()) > 0);
        let report = manager.checkpoint(&cp).await.unwrap();
        assert_eq!(report.parts_written, 0, "unchanged parts are referenced");
        assert_eq!(part_reads(store.take()), 0, "and not read back again");
    });
}
