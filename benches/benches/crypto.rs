//! What encryption at rest costs: `EncryptedStateStore` against the plain store it wraps,
//! encrypted checkpoints against plain ones, and raw AES-256-GCM throughput on one core for the
//! backend the crate uses (`ring`) and the portable one (`aes-gcm`).
//!
//! Run: `cargo bench -p varpulis-benches --bench crypto`; `benches/crypto.sh` runs the
//! `aes256gcm` group beside `openssl speed -evp aes-256-gcm` and prints the ratios.
//!
//! Groups:
//! - `encrypted/{memory,file}`: `plain_put`/`encrypted_put` and `plain_get`/`encrypted_get` of
//!   one key at 100 B, 4 KiB and 1 MiB. Plain and encrypted stores are separate instances of the
//!   same backend (for `file`: separate roots, same key, so the same directory depth); the
//!   encrypted one is `EncryptedStateStore::new` (no key-check record, nothing else stored).
//! - `encrypted/file/interleaved_{put,get}/<size>` (printed to stderr, not criterion
//!   benchmarks): plain and encrypted FileStore puts (then gets) alternate for 101 rounds and the
//!   median per-round ratio is printed; on a shared machine these are the ratios to quote (fsync
//!   latency drifts between criterion's back-to-back measurements).
//! - `encrypted/checkpoint/{memory,file}/{1MiB,64MiB}` (stderr, interleaved rounds): a full
//!   checkpoint save through a `CheckpointManager` keeping one checkpoint, and a recovery
//!   (`load_latest_checkpoint`), on a plain store and on an encrypted one of the same kind.
//! - `aes256gcm`: `{ring,aes-gcm}_{encrypt,decrypt}` of 4 KiB, 64 KiB and 1 MiB buffers in place
//!   on the bench thread, straight through each crate (no envelope, no copy, no store; decrypt
//!   verifies the tag, on a fresh copy of the ciphertext set up outside the timing).
//!
//! Temporary directories honour `VARPULIS_BENCH_DIR` (see `store.rs`).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use aes_gcm::{AeadInPlace, Aes256Gcm, KeyInit, Nonce};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use varpulis_benches::{
    CpuShare, VALUE_SIZES, bench_tempdir, interleaved, median_ms, payload, ratio_summary, runtime,
    selected,
};
use varpulis_checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointManager, CheckpointStore, EngineCheckpoint,
    JoinCheckpoint,
};
use varpulis_crypto::{EncryptedStateStore, EncryptionKey};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};

/// Rounds of the interleaved plain-vs-encrypted FileStore comparisons, per value size.
const ROUNDS: usize = 101;

/// Buffer sizes of the raw cipher benchmark.
const CIPHER_SIZES: [(usize, &str); 3] = [(4096, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

/// Checkpoint sizes and interleaved rounds (as in `checkpoint.rs`).
const CHECKPOINT_SIZES: [(usize, &str, usize); 2] = [(1 << 20, "1MiB", 21), (64 << 20, "64MiB", 9)];

/// Size of one operator-state part of the checkpoint benchmark (as in `checkpoint.rs`).
const PART: usize = 256 * 1024;

fn bench_key() -> EncryptionKey {
    EncryptionKey::from_bytes([0x2a; 32])
}

fn plain_vs_encrypted(
    c: &mut Criterion,
    name: &str,
    plain: &dyn StateStore,
    encrypted: &dyn StateStore,
    rt: &tokio::runtime::Runtime,
) {
    let mut group = c.benchmark_group(format!("encrypted/{name}"));
    if name == "file" {
        group.sample_size(30);
    }
    for (len, label) in VALUE_SIZES {
        let value = payload(len, 13);
        let key = Key::new("bench:v").unwrap();
        let (value, key) = (value.as_slice(), &key);
        group.throughput(Throughput::Bytes(len as u64));
        for (variant, store) in [("plain", plain), ("encrypted", encrypted)] {
            group.bench_function(BenchmarkId::new(format!("{variant}_put"), label), |b| {
                b.to_async(rt)
                    .iter(move || async move { store.put(key, value).await.unwrap() });
            });
        }
        let paired = format!("encrypted/{name}/interleaved_put/{label}");
        if name == "file" && selected(&paired) {
            let t = interleaved(
                ROUNDS,
                &mut [
                    &mut || rt.block_on(plain.put(key, value)).unwrap(),
                    &mut || rt.block_on(encrypted.put(key, value)).unwrap(),
                ],
            );
            eprintln!(
                "{paired}: plain {}, encrypted {}; encrypted/plain {}",
                median_ms(&t[0]),
                median_ms(&t[1]),
                ratio_summary(&t[1], &t[0]),
            );
        }
        for (variant, store) in [("plain", plain), ("encrypted", encrypted)] {
            rt.block_on(store.put(key, value)).unwrap();
            group.bench_function(BenchmarkId::new(format!("{variant}_get"), label), |b| {
                b.to_async(rt)
                    .iter(move || async move { store.get(key).await.unwrap().unwrap() });
            });
            assert_eq!(rt.block_on(store.get(key)).unwrap().as_deref(), Some(value));
        }
        let paired = format!("encrypted/{name}/interleaved_get/{label}");
        if name == "file" && selected(&paired) {
            let t = interleaved(
                ROUNDS,
                &mut [
                    &mut || {
                        black_box(rt.block_on(plain.get(key)).unwrap());
                    },
                    &mut || {
                        black_box(rt.block_on(encrypted.get(key)).unwrap());
                    },
                ],
            );
            eprintln!(
                "{paired}: plain {}, encrypted {}; encrypted/plain {}",
                median_ms(&t[0]),
                median_ms(&t[1]),
                ratio_summary(&t[1], &t[0]),
            );
        }
    }
    group.finish();
}

fn stores(c: &mut Criterion) {
    let rt = runtime();
    let share = CpuShare::start();
    plain_vs_encrypted(
        c,
        "memory",
        &MemoryStore::new(),
        &EncryptedStateStore::new(MemoryStore::new(), bench_key()),
        &rt,
    );
    share.report("encrypted/memory");

    let plain_root = bench_tempdir();
    let encrypted_root = bench_tempdir();
    plain_vs_encrypted(
        c,
        "file",
        &FileStore::open(plain_root.path()).unwrap(),
        &EncryptedStateStore::new(FileStore::open(encrypted_root.path()).unwrap(), bench_key()),
        &rt,
    );
}

/// A one-context state of `bytes` bytes in parts of [`PART`] bytes; `generation` changes every
/// part (the shape of `checkpoint.rs`'s state).
fn checkpoint_state(bytes: usize, generation: i64) -> Checkpoint {
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

fn checkpoints(_: &mut Criterion) {
    let rt = runtime();
    for (size, label, rounds) in CHECKPOINT_SIZES {
        let states = [checkpoint_state(size, 0), checkpoint_state(size, 1)];
        for backend in ["memory", "file"] {
            let id = format!("encrypted/checkpoint/{backend}/{label}");
            if !selected(&id) {
                continue;
            }
            let (plain_dir, encrypted_dir) = (bench_tempdir(), bench_tempdir());
            let (plain, encrypted): (Arc<dyn StateStore>, Arc<dyn StateStore>) =
                if backend == "file" {
                    (
                        Arc::new(FileStore::open(plain_dir.path()).unwrap()),
                        Arc::new(EncryptedStateStore::new(
                            FileStore::open(encrypted_dir.path()).unwrap(),
                            bench_key(),
                        )),
                    )
                } else {
                    (
                        Arc::new(MemoryStore::new()),
                        Arc::new(EncryptedStateStore::new(MemoryStore::new(), bench_key())),
                    )
                };
            let manager = |store: &Arc<dyn StateStore>| {
                let config = CheckpointConfig {
                    max_checkpoints: 1,
                    ..CheckpointConfig::default()
                };
                CheckpointManager::new(Arc::clone(store), config).unwrap()
            };
            let (plain_manager, encrypted_manager) = (manager(&plain), manager(&encrypted));
            // Start from the other generation than the first timed save, so every timed save
            // rewrites every part.
            for manager in [&plain_manager, &encrypted_manager] {
                rt.block_on(manager.checkpoint(&states[0])).unwrap();
            }
            let share = CpuShare::start();
            let (mut plain_generation, mut encrypted_generation) = (0, 0);
            let saves = interleaved(
                rounds,
                &mut [
                    &mut || {
                        plain_generation += 1;
                        let state = &states[plain_generation % 2];
                        rt.block_on(plain_manager.checkpoint(state)).unwrap();
                    },
                    &mut || {
                        encrypted_generation += 1;
                        let state = &states[encrypted_generation % 2];
                        rt.block_on(encrypted_manager.checkpoint(state)).unwrap();
                    },
                ],
            );
            let recover = |store: &Arc<dyn StateStore>| {
                black_box(
                    rt.block_on(store.load_latest_checkpoint())
                        .unwrap()
                        .unwrap(),
                );
            };
            let reads = interleaved(
                rounds,
                &mut [&mut || recover(&plain), &mut || recover(&encrypted)],
            );
            eprintln!(
                "{id}: save plain {}, encrypted {}; encrypted/plain {} | recover plain {}, \
                 encrypted {}; encrypted/plain {}",
                median_ms(&saves[0]),
                median_ms(&saves[1]),
                ratio_summary(&saves[1], &saves[0]),
                median_ms(&reads[0]),
                median_ms(&reads[1]),
                ratio_summary(&reads[1], &reads[0]),
            );
            share.report(&id);
        }
    }
}

fn cipher(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "aes256gcm: CPU has AES-NI: {}, PCLMULQDQ: {}, AVX2: {}, VAES: {}, VPCLMULQDQ: {}, \
         AVX-512F: {} (ring and aes-gcm pick their kernels at run time)",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("vaes"),
        std::arch::is_x86_feature_detected!("vpclmulqdq"),
        std::arch::is_x86_feature_detected!("avx512f"),
    );
    let key = [0x2a; 32];
    let portable = Aes256Gcm::new(&key.into());
    let ring = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    // A fixed nonce is fine here only because the ciphertext is thrown away.
    let nonce = [7; 12];
    let ring_nonce = || ring::aead::Nonce::assume_unique_for_key(nonce);
    let ad = b"bench:v";
    let share = CpuShare::start();
    let mut group = c.benchmark_group("aes256gcm");
    for (len, label) in CIPHER_SIZES {
        let mut buf = payload(len, 17);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("ring_encrypt", label), |b| {
            b.iter(|| {
                ring.seal_in_place_separate_tag(ring_nonce(), Aad::from(ad), black_box(&mut buf))
                    .unwrap()
            });
        });
        group.bench_function(BenchmarkId::new("aes-gcm_encrypt", label), |b| {
            b.iter(|| {
                portable
                    .encrypt_in_place_detached(&Nonce::from(nonce), ad, black_box(&mut buf))
                    .unwrap()
            });
        });
        // Ciphertext || tag; both crates produce the same bytes.
        let mut sealed = payload(len, 17);
        ring.seal_in_place_append_tag(ring_nonce(), Aad::from(ad), &mut sealed)
            .unwrap();
        group.bench_function(BenchmarkId::new("ring_decrypt", label), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    ring.open_in_place(ring_nonce(), Aad::from(ad), black_box(buf))
                        .unwrap()
                        .len()
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_function(BenchmarkId::new("aes-gcm_decrypt", label), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    let (body, tag) = black_box(buf).split_at_mut(len);
                    portable
                        .decrypt_in_place_detached(&Nonce::from(nonce), ad, body, (&*tag).into())
                        .unwrap();
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
    share.report("aes256gcm");
}

criterion_group!(benches, cipher, stores, checkpoints);
criterion_main!(benches);
