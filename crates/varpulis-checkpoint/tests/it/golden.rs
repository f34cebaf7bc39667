//! Old bytes stay readable: golden files of format version 1, committed under
//! `tests/golden/v1/`, must load to the fixture checkpoint, and today's code must still write
//! them byte for byte (a change that alters the bytes needs a new format version, or, before a
//! release, deliberately regenerated files).
//!
//! Regenerate with:
//! `VARPULIS_REGENERATE_GOLDEN=1 cargo test -p varpulis-checkpoint --test it golden`
//!
//! Files: `engine-checkpoint.bin` (one envelope holding `common::engine(1)`), and the store
//! image of `common::checkpoint(1)` committed as checkpoint 1: `manifest-<id>.bin` is key
//! `varpulis:ckpt:manifest:<id>`, `part-<hash>.bin` is key `varpulis:ckpt:part:<hash>`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_checkpoint::{CheckpointStore, EngineCheckpoint};
use varpulis_store::{Key, MemoryStore, StateStore, StateStoreExt};

use crate::common::{self, block_on};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn file_name(key: &Key) -> String {
    let segs: Vec<&str> = key.segments().collect();
    format!("{}-{}.bin", segs[2], segs[3])
}

fn key_of(file: &str) -> Key {
    let stem = file.strip_suffix(".bin").unwrap();
    let (kind, rest) = stem.split_once('-').unwrap();
    Key::new(format!("varpulis:ckpt:{kind}:{rest}")).unwrap()
}

/// Today's bytes: file name -> contents.
async fn current() -> BTreeMap<String, Vec<u8>> {
    let store = MemoryStore::new();
    let report = store
        .commit_checkpoint(&common::checkpoint(1))
        .await
        .unwrap();
    assert_eq!(report.id, 1);
    let mut out = BTreeMap::new();
    for key in store.list_all().await.unwrap() {
        out.insert(file_name(&key), store.get(&key).await.unwrap().unwrap());
    }
    out.insert(
        "engine-checkpoint.bin".to_owned(),
        codec::encode(BlobKind::Part, &common::engine(1)).unwrap(),
    );
    out
}

fn regenerate(files: &BTreeMap<String, Vec<u8>>) {
    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn golden() -> BTreeMap<String, Vec<u8>> {
    let entries = std::fs::read_dir(dir()).unwrap_or_else(|e| {
        panic!(
            "golden files missing at {} ({e}); regenerate with VARPULIS_REGENERATE_GOLDEN=1",
            dir().display()
        )
    });
    entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn golden_v1_checkpoint_files_still_load() {
    block_on(async {
        if std::env::var_os("VARPULIS_REGENERATE_GOLDEN").is_some() {
            regenerate(&current().await);
        }
        let files = golden();
        let store = MemoryStore::new();
        for (name, bytes) in &files {
            if name != "engine-checkpoint.bin" {
                store.put(&key_of(name), bytes).await.unwrap();
            }
        }
        let mut expected = common::checkpoint(1);
        expected.id = 1;
        let loaded = store
            .load_checkpoint(1)
            .await
            .unwrap()
            .expect("golden checkpoint 1");
        common::assert_same(&loaded, &expected);

        let engine: EngineCheckpoint =
            codec::decode(BlobKind::Part, &files["engine-checkpoint.bin"]).unwrap();
        assert_eq!(
            postcard::to_stdvec(&engine).unwrap(),
            postcard::to_stdvec(&common::engine(1)).unwrap()
        );
    });
}

#[test]
fn todays_encoding_writes_the_golden_v1_bytes() {
    block_on(async {
        let today = current().await;
        let golden = golden();
        assert_eq!(
            today.keys().collect::<Vec<_>>(),
            golden.keys().collect::<Vec<_>>(),
            "the set of blobs changed: a format change needs a new format version"
        );
        for (name, bytes) in &today {
            assert!(
                golden[name] == *bytes,
                "{name} changed: a format change needs a new format version"
            );
        }
    });
}
