//! Incremental checkpoints and encoding overhead (deterministic byte counts, asserted here;
//! timings live in the benches).

use varpulis_checkpoint::{CheckpointConfig, CheckpointManager, WindowCheckpoint, encoded_size};
use varpulis_store::MemoryStore;

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
        let full = manager.checkpoint(cp.clone()).await.unwrap();
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
        let inc = manager.checkpoint(cp).await.unwrap();
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
        manager.checkpoint(common::checkpoint(1)).await.unwrap();
        let again = manager.checkpoint(common::checkpoint(1)).await.unwrap();
        assert_eq!(again.parts_written, 0);
        assert_eq!(again.bytes_written(), again.manifest_bytes);
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
