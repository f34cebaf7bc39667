//! Corruption: flipping any byte or truncating at any length of the newest manifest or of any
//! of its parts makes recovery fall back to the previous checkpoint and name what it skipped.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use varpulis_checkpoint::{CheckpointConfig, CheckpointManager};
use varpulis_crypto::EncryptedStateStore;
use varpulis_store::{FileStore, Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

/// How a blob is damaged.
#[derive(Debug, Clone)]
pub(crate) enum Damage {
    /// XOR the byte at `offset % len` with `mask` (non-zero).
    Flip { offset: usize, mask: u8 },
    /// Keep only the first `len % blob.len()` bytes.
    Truncate { len: usize },
}

impl Damage {
    pub(crate) fn apply(&self, blob: &mut Vec<u8>) {
        match *self {
            Self::Flip { offset, mask } => {
                let i = offset % blob.len();
                blob[i] ^= mask;
            }
            Self::Truncate { len } => blob.truncate(len % blob.len()),
        }
    }
}

pub(crate) fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1_u8..=255).prop_map(|(offset, mask)| Damage::Flip { offset, mask }),
        any::<usize>().prop_map(|len| Damage::Truncate { len }),
    ]
}

async fn part_keys<S: StateStore + ?Sized>(store: &S) -> BTreeSet<Key> {
    store
        .list(&Key::new("varpulis:ckpt:part").unwrap())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Commits checkpoints 1 and 2 (no shared parts), damages blob `pick` of checkpoint 2 (0 = the
/// manifest, otherwise one of its parts) and checks that recovery returns checkpoint 1 intact
/// and names the damaged key. Works on the store as seen through `view` (an encrypted wrapper
/// for instance) while damage is done on `raw`, the bytes at rest.
pub(crate) async fn damage_newest<V: StateStore + Clone, R: StateStore>(
    view: V,
    raw: &R,
    pick: usize,
    damage: &Damage,
) {
    let manager = CheckpointManager::new(view.clone(), CheckpointConfig::default()).unwrap();
    manager
        .checkpoint(&common::distinct_checkpoint(1))
        .await
        .unwrap();
    let first_parts = part_keys(&view).await;
    manager
        .checkpoint(&common::distinct_checkpoint(2))
        .await
        .unwrap();
    let new_parts: Vec<Key> = part_keys(&view)
        .await
        .difference(&first_parts)
        .cloned()
        .collect();
    assert!(
        new_parts.len() >= 6,
        "checkpoint 2 shares no part with checkpoint 1"
    );
    let mut candidates = vec![Key::new(format!("varpulis:ckpt:manifest:{:020}", 2)).unwrap()];
    candidates.extend(new_parts);
    let target = &candidates[pick % candidates.len()];

    let mut blob = raw.get(target).await.unwrap().expect("blob at rest");
    damage.apply(&mut blob);
    raw.put(target, &blob).await.unwrap();

    let restarted = CheckpointManager::new(view, CheckpointConfig::default()).unwrap();
    let recovery = restarted.recover().await.unwrap();
    let mut expected = common::distinct_checkpoint(1);
    expected.id = 1;
    common::assert_same(recovery.checkpoint.as_ref().expect("fell back"), &expected);
    assert_eq!(recovery.skipped.len(), 1, "{:?}", recovery.skipped);
    assert_eq!(recovery.skipped[0].id, 2);
    assert_eq!(
        recovery.skipped[0].key,
        target.to_string(),
        "{}",
        recovery.skipped[0]
    );
    // And the next checkpoint does not reuse the damaged id.
    assert_eq!(
        restarted
            .checkpoint(&common::checkpoint(3))
            .await
            .unwrap()
            .id,
        3
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaging_the_newest_checkpoint_on_a_memory_store_falls_back_to_the_previous(
        pick in 0_usize..64, damage in damage()
    ) {
        let store = MemoryStore::new();
        block_on(damage_newest(store.clone(), &store, pick, &damage));
    }

    #[test]
    fn damaging_the_newest_checkpoint_on_an_encrypted_store_falls_back_to_the_previous(
        pick in 0_usize..64, damage in damage()
    ) {
        let raw = MemoryStore::new();
        let key = EncryptedStateStore::<MemoryStore>::key_from_hex(&"2a".repeat(32)).unwrap();
        let view = Arc::new(EncryptedStateStore::new(raw.clone(), key));
        block_on(damage_newest(view, &raw, pick, &damage));
    }

    #[test]
    fn damaging_the_newest_checkpoint_on_a_file_store_falls_back_to_the_previous(
        pick in 0_usize..64, damage in damage()
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).unwrap());
        block_on(damage_newest(store.clone(), &*store, pick, &damage));
    }
}

#[test]
fn damaging_each_blob_of_the_newest_checkpoint_in_turn_falls_back_every_time() {
    for pick in 0..16 {
        for damage in [
            Damage::Flip { offset: 7, mask: 1 },
            Damage::Truncate { len: 0 },
        ] {
            let store = MemoryStore::new();
            block_on(damage_newest(store.clone(), &store, pick, &damage));
        }
    }
}
