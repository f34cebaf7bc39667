//! Put/get throughput of every store, and FileStore's put against raw write+fsync+rename
//! baselines measured in the same run.
//!
//! Run: `cargo bench -p varpulis-benches --bench store`
//!
//! Groups:
//! - `store/{memory,file,rocksdb,rocksdb-sync}`: `put` and `get` of one key at 100 B, 4 KiB and
//!   1 MiB through `StateStore` (a tokio runtime, one worker). `file` fsyncs every put (file and
//!   directory); `rocksdb` is the default configuration, which does **not** fsync per write (only
//!   `flush` does); `rocksdb-sync` sets `sync_writes`, so it is the durability peer of `file`.
//! - `file_put_vs_raw`: the same bytes, the same directory depth (`<tmp>/bench/v.val`), written
//!   by `FileStore::put` and by two hand-written baselines: `raw` (write, fsync file, rename) and
//!   `raw_dirsync` (the same plus an fsync of the directory, which is what FileStore does to
//!   make the rename itself durable). `spawn_blocking_noop` is the cost of the hop to tokio's
//!   blocking pool that every FileStore call pays, for reading the small-value ratios.
//! - `file_put_vs_raw/interleaved/<size>` (printed to stderr, not a criterion benchmark): the
//!   three writers above run in rotating order for 101 rounds and the median per-round ratio is
//!   printed. Criterion measures one benchmark after another, so on a shared machine its
//!   medians drift apart; the interleaved ratio is the one to quote.
//!
//! Temporary directories are created under `VARPULIS_BENCH_DIR` if set, else the system temp
//! directory; point it at the disk you want to measure (fsync on tmpfs is free).
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use varpulis_benches::{
    CpuShare, VALUE_SIZES, bench_tempdir, interleaved, median_ms, payload, ratio_summary, runtime,
    selected,
};
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};
use varpulis_store_rocks::{RocksDbOptions, RocksDbStore};

/// Rounds of the interleaved FileStore-vs-raw comparison, per value size.
const ROUNDS: usize = 101;

/// Baseline: the same bytes written the plain way (write, fsync the file, rename over the target).
fn raw_write(dir: &Path, name: &str, value: &[u8], sync_dir: bool) {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .unwrap();
    f.write_all(value).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(&tmp, dir.join(name)).unwrap();
    if sync_dir {
        File::open(dir).unwrap().sync_all().unwrap();
    }
}

fn bench_store(
    c: &mut Criterion,
    name: &str,
    store: &dyn StateStore,
    rt: &tokio::runtime::Runtime,
) {
    let mut group = c.benchmark_group(format!("store/{name}"));
    for (len, label) in VALUE_SIZES {
        let value = payload(len, 7);
        let key = Key::new(format!("bench:{label}")).unwrap();
        // Borrowed by every iteration: nothing is cloned inside the measured loop.
        let (value, key) = (value.as_slice(), &key);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("put", label), |b| {
            b.to_async(rt)
                .iter(move || async move { store.put(key, value).await.unwrap() });
        });
        rt.block_on(store.put(key, value)).unwrap();
        group.bench_function(BenchmarkId::new("get", label), |b| {
            b.to_async(rt)
                .iter(move || async move { store.get(key).await.unwrap().unwrap() });
        });
    }
    group.finish();
}

fn stores(c: &mut Criterion) {
    let rt = runtime();
    let share = CpuShare::start();
    bench_store(c, "memory", &MemoryStore::new(), &rt);
    share.report("store/memory");

    let file_dir = bench_tempdir();
    bench_store(c, "file", &FileStore::open(file_dir.path()).unwrap(), &rt);

    let rocks_dir = bench_tempdir();
    let rocks = RocksDbStore::open(rocks_dir.path()).unwrap();
    bench_store(c, "rocksdb", &rocks, &rt);
    drop(rocks);

    let rocks_sync_dir = bench_tempdir();
    let mut options = RocksDbOptions::default();
    options.sync_writes = true;
    let rocks_sync = RocksDbStore::open_with(rocks_sync_dir.path(), &options).unwrap();
    bench_store(c, "rocksdb-sync", &rocks_sync, &rt);
}

fn file_vs_raw(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("file_put_vs_raw");
    group.sample_size(30);
    for (len, label) in VALUE_SIZES {
        let value = payload(len, 11);
        group.throughput(Throughput::Bytes(len as u64));

        // Each variant gets its own root; all write `<root>/bench/v.val`.
        let raw_root = bench_tempdir();
        let raw_dir = raw_root.path().join("bench");
        fs::create_dir(&raw_dir).unwrap();
        group.bench_function(BenchmarkId::new("raw", label), |b| {
            b.iter(|| raw_write(&raw_dir, "v.val", &value, false));
        });

        let raw_sync_root = bench_tempdir();
        let raw_sync_dir = raw_sync_root.path().join("bench");
        fs::create_dir(&raw_sync_dir).unwrap();
        group.bench_function(BenchmarkId::new("raw_dirsync", label), |b| {
            b.iter(|| raw_write(&raw_sync_dir, "v.val", &value, true));
        });

        let store_root = bench_tempdir();
        let store = FileStore::open(store_root.path()).unwrap();
        let key = Key::new("bench:v").unwrap();
        let (store, key, bytes) = (&store, &key, value.as_slice());
        group.bench_function(BenchmarkId::new("file_store", label), |b| {
            b.to_async(&rt)
                .iter(move || async move { store.put(key, bytes).await.unwrap() });
        });
        assert_eq!(
            fs::read(store_root.path().join("bench/v.val")).unwrap(),
            fs::read(raw_dir.join("v.val")).unwrap(),
            "FileStore and the baseline must write the same bytes"
        );

        let name = format!("file_put_vs_raw/interleaved/{label}");
        if selected(&name) {
            let t = interleaved(
                ROUNDS,
                &mut [
                    &mut || raw_write(&raw_dir, "v.val", &value, false),
                    &mut || raw_write(&raw_sync_dir, "v.val", &value, true),
                    &mut || rt.block_on(store.put(key, bytes)).unwrap(),
                ],
            );
            eprintln!(
                "{name}: raw {}, raw_dirsync {}, file_store {}; file_store/raw {}; \
                 file_store/raw_dirsync {}",
                median_ms(&t[0]),
                median_ms(&t[1]),
                median_ms(&t[2]),
                ratio_summary(&t[2], &t[0]),
                ratio_summary(&t[2], &t[1]),
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("overhead");
    group.bench_function("spawn_blocking_noop", |b| {
        b.to_async(&rt).iter(|| async {
            tokio::task::spawn_blocking(|| black_box(0_u8))
                .await
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, stores, file_vs_raw);
criterion_main!(benches);
