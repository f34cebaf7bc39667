//! The checkpoint manifest and engine-core part (crate-private records, reached through
//! `varpulis_checkpoint::fuzzing`) and recovery over a store holding them.
//!
//! Asserts: a manifest or engine-core payload that decodes re-encodes to bytes that decode
//! again and re-encode identically; recovery (`load_latest_checkpoint`) from a memory store
//! holding the golden v1 parts and a fuzzed manifest, or the golden manifest and one fuzzed
//! part, never panics and never fails (a bad checkpoint is skipped, not an error), returns a
//! checkpoint only if its manifest decodes and holds the id of its key, and never returns one
//! whose part differs from the part the manifest recorded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use varpulis_checkpoint::CheckpointStore;
use varpulis_checkpoint::fuzzing::{reencode_engine_core, reencode_manifest};
use varpulis_fuzz::{KIND_MANIFEST, KIND_PART, block_on, envelope, envelope_is_valid};
use varpulis_store::{Key, MemoryStore, StateStore};

const MANIFEST_KEY: &str = "varpulis:ckpt:manifest:00000000000000000001";
const MANIFEST: &[u8] = include_bytes!(
    "../../crates/varpulis-checkpoint/tests/golden/v1/manifest-00000000000000000001.bin"
);
const PARTS: [(&str, &[u8]); 6] = [
    (
        "0de9d944d36c77494014e4c645a79b80",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-0de9d944d36c77494014e4c645a79b80.bin"
        ),
    ),
    (
        "7efcadb9ba7e2dfaf605d25c631f3c98",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-7efcadb9ba7e2dfaf605d25c631f3c98.bin"
        ),
    ),
    (
        "96d06a53d897844551a1e2690af5969f",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-96d06a53d897844551a1e2690af5969f.bin"
        ),
    ),
    (
        "a1fa8fe166e21dcf46a4073b24bc6b22",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-a1fa8fe166e21dcf46a4073b24bc6b22.bin"
        ),
    ),
    (
        "ee7a78f2e57b00f2f83de2dc8f10950e",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-ee7a78f2e57b00f2f83de2dc8f10950e.bin"
        ),
    ),
    (
        "eef19d8571190bd9f2e5665364e7b292",
        include_bytes!(
            "../../crates/varpulis-checkpoint/tests/golden/v1/part-eef19d8571190bd9f2e5665364e7b292.bin"
        ),
    ),
];

fn fixed_point(
    reencode: fn(&[u8]) -> Result<Vec<u8>, varpulis_checkpoint::codec::CodecError>,
    kind: u8,
    blob: &[u8],
) {
    if let Ok(again) = reencode(blob) {
        assert!(envelope_is_valid(kind, &again));
        assert_eq!(reencode(&again).expect("re-encoded bytes decode"), again);
    }
}

/// Recovery from the golden parts (part `damaged` replaced by `part`, if given) and `manifest`.
fn recover(manifest: &[u8], damaged: Option<(usize, &[u8])>) {
    let store = MemoryStore::new();
    block_on(async {
        for (i, (hash, bytes)) in PARTS.iter().enumerate() {
            let bytes = match damaged {
                Some((d, part)) if d == i => part,
                _ => bytes,
            };
            let key = Key::new(format!("varpulis:ckpt:part:{hash}")).unwrap();
            store.put(&key, bytes).await.unwrap();
        }
        store
            .put(&Key::new(MANIFEST_KEY).unwrap(), manifest)
            .await
            .unwrap();
        let loaded = store.load_latest_checkpoint().await;
        let loaded = loaded.unwrap_or_else(|e| panic!("recovery from a memory store failed: {e}"));
        if let Some(checkpoint) = loaded {
            assert_eq!(checkpoint.id, 1);
            assert!(
                reencode_manifest(manifest).is_ok(),
                "recovered from a manifest that does not decode"
            );
            if let Some((d, part)) = damaged {
                // Every golden part is referenced by the golden manifest.
                assert_eq!(
                    part, PARTS[d].1,
                    "recovered with a damaged part {}",
                    PARTS[d].0
                );
            }
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // A manifest payload, framed here as a valid envelope, then recovered from.
        0 => {
            let blob = envelope(KIND_MANIFEST, rest);
            fixed_point(reencode_manifest, KIND_MANIFEST, &blob);
            recover(&blob, None);
        }
        // An engine-core payload.
        1 => fixed_point(reencode_engine_core, KIND_PART, &envelope(KIND_PART, rest)),
        // A raw manifest blob.
        2 => {
            fixed_point(reencode_manifest, KIND_MANIFEST, rest);
            recover(rest, None);
        }
        // The golden manifest with one part replaced (framed, so it gets past the crc).
        _ => {
            let index = usize::from(mode >> 2) % PARTS.len();
            recover(MANIFEST, Some((index, &envelope(KIND_PART, rest))));
        }
    }
});
