//! Old bytes stay readable: golden files of each format version, committed under
//! `tests/golden/v<N>/`, must load to the fixture checkpoint of that version, and today's code
//! must still write them byte for byte (a change that alters the bytes needs a new format
//! version, or, before a release, deliberately regenerated files).
//!
//! Regenerate with:
//! `VARPULIS_REGENERATE_GOLDEN=1 cargo test -p varpulis-checkpoint --test it golden`
//!
//! Files: `engine-checkpoint.bin` (one envelope holding `common::engine_v1(1)` in `v1`,
//! `common::engine(1)` in `v2`), and the store image of `common::checkpoint_v1(1)` (`v1`) or
//! `common::checkpoint(1)` (`v2`) committed as checkpoint 1: `manifest-<id>.bin` is key
//! `varpulis:ckpt:manifest:<id>`, `part-<hash>.bin` is key `varpulis:ckpt:part:<hash>`.
//! Version 1 holds the seed's SASE and join states; version 2 the pattern and join operators'.

use std::collections::BTreeMap;
use std::path::PathBuf;

use varpulis_checkpoint::codec::{self, BlobKind};
use varpulis_checkpoint::{Checkpoint, CheckpointStore, EngineCheckpoint};
use varpulis_store::{Key, MemoryStore, StateStore, StateStoreExt};

use crate::common::{self, block_on};

/// A format version's fixtures.
#[derive(Clone, Copy)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn dir(self) -> PathBuf {
        let name = match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name)
    }

    fn checkpoint(self) -> Checkpoint {
        match self {
            Self::V1 => common::checkpoint_v1(1),
            Self::V2 => common::checkpoint(1),
        }
    }

    fn engine(self) -> EngineCheckpoint {
        match self {
            Self::V1 => common::engine_v1(1),
            Self::V2 => common::engine(1),
        }
    }
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
async fn current(v: Version) -> BTreeMap<String, Vec<u8>> {
    let store = MemoryStore::new();
    let report = store.commit_checkpoint(&v.checkpoint()).await.unwrap();
    assert_eq!(report.id, 1);
    let mut out = BTreeMap::new();
    for key in store.list_all().await.unwrap() {
        out.insert(file_name(&key), store.get(&key).await.unwrap().unwrap());
    }
    out.insert(
        "engine-checkpoint.bin".to_owned(),
        codec::encode(BlobKind::Part, &v.engine()).unwrap(),
    );
    out
}

fn regenerate(v: Version, files: &BTreeMap<String, Vec<u8>>) {
    let dir = v.dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn golden(v: Version) -> BTreeMap<String, Vec<u8>> {
    let entries = std::fs::read_dir(v.dir()).unwrap_or_else(|e| {
        panic!(
            "golden files missing at {} ({e}); regenerate with VARPULIS_REGENERATE_GOLDEN=1",
            v.dir().display()
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

fn still_load(v: Version) {
    block_on(async {
        if std::env::var_os("VARPULIS_REGENERATE_GOLDEN").is_some() {
            regenerate(v, &current(v).await);
        }
        let files = golden(v);
        let store = MemoryStore::new();
        for (name, bytes) in &files {
            if name != "engine-checkpoint.bin" {
                store.put(&key_of(name), bytes).await.unwrap();
            }
        }
        let mut expected = v.checkpoint();
        expected.id = 1;
        let loaded = store
            .load_checkpoint(1)
            .await
            .unwrap()
            .expect("golden checkpoint 1");
        common::assert_same(&loaded, &expected);

        let engine: EngineCheckpoint =
            codec::decode(BlobKind::Part, &files["engine-checkpoint.bin"]).unwrap();
        assert_eq!(engine, v.engine());
        assert_eq!(
            postcard::to_stdvec(&engine).unwrap(),
            postcard::to_stdvec(&v.engine()).unwrap()
        );
    });
}

fn still_written(v: Version) {
    block_on(async {
        let today = current(v).await;
        let golden = golden(v);
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

#[test]
fn golden_v1_checkpoint_files_still_load() {
    still_load(Version::V1);
}

#[test]
fn todays_encoding_writes_the_golden_v1_bytes() {
    still_written(Version::V1);
}

#[test]
fn golden_v2_checkpoint_files_still_load() {
    still_load(Version::V2);
}

#[test]
fn todays_encoding_writes_the_golden_v2_bytes() {
    still_written(Version::V2);
}

#[test]
fn a_state_whose_operator_maps_do_not_fit_its_version_is_refused_not_half_written() {
    block_on(async {
        let store = MemoryStore::new();
        let mut v1_with_patterns = common::checkpoint_v1(1);
        let v2 = common::engine(1);
        let main = v1_with_patterns.context_states.get_mut("main").unwrap();
        main.pattern_states = v2.pattern_states;
        let err = store
            .commit_checkpoint(&v1_with_patterns)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("pattern_states"), "{err}");
        let mut v2_with_seed = common::checkpoint(1);
        let main = v2_with_seed.context_states.get_mut("main").unwrap();
        main.sase_states = common::engine_v1(1).sase_states;
        let err = store.commit_checkpoint(&v2_with_seed).await.unwrap_err();
        assert!(err.to_string().contains("sase_states"), "{err}");
        assert!(
            store.list_all().await.unwrap().is_empty(),
            "nothing written"
        );
    });
}
