//! What encryption at rest costs: `EncryptedStateStore` against the plain store it wraps, and raw
//! AES-256-GCM throughput on one core.
//!
//! Run: `cargo bench -p varpulis-benches --bench crypto`
//!
//! Groups:
//! - `encrypted/{memory,file}`: `plain_put`/`encrypted_put` and `plain_get`/`encrypted_get` of
//!   one key at 100 B, 4 KiB and 1 MiB. Plain and encrypted stores are separate instances of the
//!   same backend (for `file`: separate roots, same key, so the same directory depth); the
//!   encrypted one is `EncryptedStateStore::new` (no key-check record, nothing else stored).
//! - `encrypted/file/interleaved_put/<size>` (printed to stderr, not a criterion benchmark):
//!   plain and encrypted FileStore puts alternate for 101 rounds and the median per-round ratio
//!   is printed; on a shared machine this is the ratio to quote (fsync latency drifts between
//!   criterion's back-to-back measurements).
//! - `aes256gcm`: `encrypt_in_place_detached` of 4 KiB, 64 KiB and 1 MiB buffers on the bench
//!   thread, straight through the `aes-gcm` crate (no envelope, no copy, no store).
//!
//! Temporary directories honour `VARPULIS_BENCH_DIR` (see `store.rs`).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;

use aes_gcm::{AeadInPlace, Aes256Gcm, KeyInit, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use varpulis_benches::{
    CpuShare, VALUE_SIZES, bench_tempdir, interleaved, median_ms, payload, ratio_summary, runtime,
    selected,
};
use varpulis_crypto::{EncryptedStateStore, EncryptionKey};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};

/// Rounds of the interleaved plain-vs-encrypted FileStore put comparison, per value size.
const ROUNDS: usize = 101;

/// Buffer sizes of the raw cipher benchmark.
const CIPHER_SIZES: [(usize, &str); 3] = [(4096, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

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

fn cipher(c: &mut Criterion) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    eprintln!(
        "aes256gcm: CPU has AES-NI: {}, PCLMULQDQ: {} (aes/polyval pick their backend at run time)",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
    );
    let cipher = Aes256Gcm::new(&[0x2a; 32].into());
    // A fixed nonce is fine here only because the ciphertext is thrown away.
    let nonce = Nonce::from([7; 12]);
    let ad = b"bench:v";
    let share = CpuShare::start();
    let mut group = c.benchmark_group("aes256gcm");
    for (len, label) in CIPHER_SIZES {
        let mut buf = payload(len, 17);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("encrypt", label), |b| {
            b.iter(|| {
                cipher
                    .encrypt_in_place_detached(&nonce, ad, black_box(&mut buf))
                    .unwrap()
            });
        });
    }
    group.finish();
    share.report("aes256gcm");
}

criterion_group!(benches, stores, cipher);
criterion_main!(benches);
