//! Checkpoint save and recover throughput against raw writes and reads of the same bytes, on
//! memory, file and RocksDB stores; plus the (deterministic) incremental and size ratios.
//!
//! Run: `cargo bench -p varpulis-benches --bench checkpoint`
//!
//! - `checkpoint/{save,recover}/{memory,file,rocksdb}/1MiB`: criterion, throughput in bytes of
//!   state. `save` is a full checkpoint (every part changed) through a `CheckpointManager` that
//!   keeps one checkpoint (commit, then retention of the previous one), as the engine checkpoints;
//!   `recover` reads and verifies every part (`load_latest_checkpoint`).
//! - `checkpoint_vs_raw/<store>/<size>` (stderr, interleaved rounds, 1 MiB and 64 MiB), against
//!   two baselines measured in the same rounds:
//!   - *raw bytes*: the part bytes (postcard of each operator state, no envelope), serialized
//!     before the clock starts, `put` under plain keys then `flush`, and read back with `get`;
//!   - *raw state*: the same operator states serialized with postcard and `put` one by one, then
//!     `flush`; read back with `get` and deserialized into owned values (what any code that keeps
//!     this state in a store must do at least, with no envelope, hashing, manifest or retention).
//!
//!   The printed ratios are checkpoint time / baseline time, median of per-round ratios.
//! - `checkpoint_ratios` (stderr): bytes written by an incremental checkpoint when 1% of 1,000
//!   parts changed, as a fraction of a full one; encoded size against the raw postcard size.
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use varpulis_benches::{
    bench_tempdir, interleaved, median_ms, payload, ratio_summary, runtime, selected,
};
use varpulis_checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointManager, CheckpointStore, EngineCheckpoint,
    JoinCheckpoint, encoded_size,
};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};
use varpulis_store_rocks::RocksDbStore;

/// Size of one operator-state part.
const PART: usize = 256 * 1024;

/// A one-context state of `bytes` bytes in parts of [`PART`] bytes; `generation` changes every part.
fn state(bytes: usize, generation: i64) -> Checkpoint {
    // Seed-format join parts (format version 1): sizes comparable with earlier figures.
    let mut engine = EngineCheckpoint {
        version: 1,
        ..EngineCheckpoint::default()
    };
    for i in 0..bytes.div_ceil(PART) {
        let text: String = payload(PART, i as u64)
            .into_iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        engine.join_states.insert(
            format!("op{i:05}"),
            JoinCheckpoint {
                buffers: BTreeMap::new(),
                expiry: vec![(generation, text, i as u64)],
            },
        );
    }
    Checkpoint::new(generation).with_context("main", engine)
}

/// The raw bytes of the same state: postcard of each part, by key.
fn raw_parts(cp: &Checkpoint) -> Vec<(Key, Vec<u8>)> {
    cp.context_states["main"]
        .join_states
        .iter()
        .map(|(name, part)| {
            (
                Key::new(format!("raw:{name}")).unwrap(),
                postcard::to_stdvec(part).unwrap(),
            )
        })
        .collect()
}

struct Stores {
    _dirs: Vec<tempfile::TempDir>,
    list: Vec<(&'static str, Arc<dyn StateStore>)>,
}

fn stores() -> Stores {
    let file_dir = bench_tempdir();
    let rocks_dir = bench_tempdir();
    let list: Vec<(&'static str, Arc<dyn StateStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "file",
            Arc::new(FileStore::open(file_dir.path().join("s")).unwrap()),
        ),
        (
            "rocksdb",
            Arc::new(RocksDbStore::open(rocks_dir.path().join("db")).unwrap()),
        ),
    ];
    Stores {
        _dirs: vec![file_dir, rocks_dir],
        list,
    }
}

/// The engine's checkpoint path: a manager that keeps one checkpoint (commit, then retention).
fn manager(store: &Arc<dyn StateStore>) -> CheckpointManager<Arc<dyn StateStore>> {
    let config = CheckpointConfig {
        max_checkpoints: 1,
        ..CheckpointConfig::default()
    };
    CheckpointManager::new(Arc::clone(store), config).unwrap()
}

async fn save(manager: &CheckpointManager<Arc<dyn StateStore>>, cp: &Checkpoint) {
    manager.checkpoint(cp).await.unwrap();
}

async fn raw_save(store: &dyn StateStore, parts: &[(Key, Vec<u8>)]) {
    for (k, v) in parts {
        store.put(k, v).await.unwrap();
    }
    store.flush().await.unwrap();
}

async fn raw_read(store: &dyn StateStore, parts: &[(Key, Vec<u8>)]) -> usize {
    let mut n = 0;
    for (k, _) in parts {
        n += store.get(k).await.unwrap().unwrap().len();
    }
    n
}

/// Raw state save: serialize each operator state with postcard and put it, then flush.
async fn state_save(store: &dyn StateStore, keys: &[Key], cp: &Checkpoint) {
    for (key, part) in keys
        .iter()
        .zip(cp.context_states["main"].join_states.values())
    {
        store
            .put(key, &postcard::to_stdvec(part).unwrap())
            .await
            .unwrap();
    }
    store.flush().await.unwrap();
}

/// Raw state read: get each operator state and deserialize it.
async fn state_read(store: &dyn StateStore, keys: &[Key]) -> Vec<JoinCheckpoint> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let bytes = store.get(key).await.unwrap().unwrap();
        out.push(postcard::from_bytes(&bytes).unwrap());
    }
    out
}

fn criterion_benches(c: &mut Criterion) {
    let rt = runtime();
    let stores = stores();
    let size = 1 << 20;
    let states = [state(size, 0), state(size, 1)];
    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Bytes(size as u64));
    group.sample_size(10);
    for (name, store) in &stores.list {
        let manager = manager(store);
        let mut generation = 0;
        group.bench_function(BenchmarkId::new(format!("save/{name}"), "1MiB"), |b| {
            b.iter(|| {
                generation += 1;
                rt.block_on(save(&manager, &states[generation % 2]));
            });
        });
        group.bench_function(BenchmarkId::new(format!("recover/{name}"), "1MiB"), |b| {
            b.iter(|| black_box(rt.block_on(store.load_latest_checkpoint()).unwrap()));
        });
    }
    group.finish();
}

fn versus_raw(_: &mut Criterion) {
    let rt = runtime();
    for (size, label, rounds) in [(1 << 20, "1MiB", 21), (64 << 20, "64MiB", 9)] {
        let stores = stores();
        let states = [state(size, 0), state(size, 1)];
        let parts = raw_parts(&states[0]);
        for (name, store) in &stores.list {
            let id = format!("checkpoint_vs_raw/{name}/{label}");
            if !selected(&id) {
                continue;
            }
            let manager = manager(store);
            let store = &**store;
            // Start from the other generation than the first timed save, so every timed save
            // rewrites every part (saving the state already in the store writes nothing).
            rt.block_on(save(&manager, &states[0]));
            let mut generation = 0;
            let mut ckpt_save = || {
                generation += 1;
                rt.block_on(save(&manager, &states[generation % 2]));
            };
            let mut plain_save = || rt.block_on(raw_save(store, &parts));
            let state_keys: Vec<Key> = parts
                .iter()
                .map(|(k, _)| Key::new(format!("state:{}", k.last_segment().unwrap())).unwrap())
                .collect();
            let mut state_generation = 0;
            let mut serialized_save = || {
                state_generation += 1;
                rt.block_on(state_save(
                    store,
                    &state_keys,
                    &states[state_generation % 2],
                ));
            };
            let saves = interleaved(
                rounds,
                &mut [&mut ckpt_save, &mut plain_save, &mut serialized_save],
            );
            let mut ckpt_read = || {
                black_box(rt.block_on(store.load_latest_checkpoint()).unwrap());
            };
            let mut plain_read = || {
                black_box(rt.block_on(raw_read(store, &parts)));
            };
            let mut deserialized_read = || {
                black_box(rt.block_on(state_read(store, &state_keys)));
            };
            let reads = interleaved(
                rounds,
                &mut [&mut ckpt_read, &mut plain_read, &mut deserialized_read],
            );
            let mbps = |times: &[f64]| {
                let mut t = times.to_vec();
                t.sort_by(f64::total_cmp);
                size as f64 / t[t.len() / 2] / 1e6
            };
            let line = |what: &str, [ckpt, bytes, state]: [&[f64]; 3]| {
                format!(
                    "{what} {:.0} MB/s ({}) | raw bytes {:.0} MB/s ({}): {} | raw state {:.0} MB/s ({}): {}",
                    mbps(ckpt),
                    median_ms(ckpt),
                    mbps(bytes),
                    median_ms(bytes),
                    ratio_summary(ckpt, bytes),
                    mbps(state),
                    median_ms(state),
                    ratio_summary(ckpt, state),
                )
            };
            eprintln!(
                "{id}: {}; {}",
                line("save", [&saves[0], &saves[1], &saves[2]]),
                line("recover", [&reads[0], &reads[1], &reads[2]]),
            );
        }
    }
}

fn ratios(_: &mut Criterion) {
    if !selected("checkpoint_ratios") {
        return;
    }
    let rt = runtime();
    // 1,000 parts of 4 KiB, 1% changed.
    let store = MemoryStore::new();
    // Seed-format join parts (format version 1): sizes comparable with earlier figures.
    let mut engine = EngineCheckpoint {
        version: 1,
        ..EngineCheckpoint::default()
    };
    for i in 0..1_000_u64 {
        let text: String = payload(4_096, i)
            .into_iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        engine.join_states.insert(
            format!("op{i:04}"),
            JoinCheckpoint {
                buffers: BTreeMap::new(),
                expiry: vec![(0, text, i)],
            },
        );
    }
    let mut cp = Checkpoint::new(0).with_context("main", engine);
    let full = rt.block_on(store.commit_checkpoint(&cp)).unwrap();
    for (i, part) in cp
        .context_states
        .get_mut("main")
        .unwrap()
        .join_states
        .values_mut()
        .enumerate()
    {
        if i % 100 == 0 {
            part.expiry[0].0 += 1;
        }
    }
    let inc = rt.block_on(store.commit_checkpoint(&cp)).unwrap();
    eprintln!(
        "checkpoint_ratios/incremental: {} of {} bytes = {:.4} of a full checkpoint (full wrote {})",
        inc.bytes_written(),
        inc.bytes_total(),
        inc.bytes_written() as f64 / inc.bytes_total() as f64,
        full.bytes_written()
    );
    for (bytes, label) in [(1 << 20, "1MiB"), (64 << 20, "64MiB")] {
        let cp = state(bytes, 0);
        let raw: usize = raw_parts(&cp).iter().map(|(_, v)| v.len()).sum();
        let encoded = encoded_size(&cp).unwrap();
        eprintln!(
            "checkpoint_ratios/size/{label}: encoded {encoded} B vs raw postcard {raw} B = {:.4}x",
            encoded as f64 / raw as f64
        );
    }
    eprintln!(
        "checkpoint_ratios/size/1000x4KiB: encoded {} B vs raw postcard {} B = {:.4}x",
        encoded_size(&cp).unwrap(),
        postcard::to_stdvec(&cp.context_states["main"])
            .unwrap()
            .len(),
        encoded_size(&cp).unwrap() as f64
            / postcard::to_stdvec(&cp.context_states["main"])
                .unwrap()
                .len() as f64
    );
}

criterion_group!(benches, criterion_benches, versus_raw, ratios);
criterion_main!(benches);
