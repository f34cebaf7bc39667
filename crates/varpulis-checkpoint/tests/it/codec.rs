//! The envelope: exact round trips, version and corruption errors.

use varpulis_checkpoint::codec::{self, BlobKind, CodecError, FORMAT_VERSION, HEADER_LEN};
use varpulis_checkpoint::{CheckpointError, CheckpointStore, EngineCheckpoint};
use varpulis_store::{Key, MemoryStore, StateStore};

use crate::common::{self, block_on};

#[test]
fn nan_infinities_and_every_value_round_trip_bit_exactly() {
    let engine = common::engine(7);
    let blob = codec::encode(BlobKind::Part, &engine).unwrap();
    let back: EngineCheckpoint = codec::decode(BlobKind::Part, &blob).unwrap();
    assert_eq!(
        postcard::to_stdvec(&back).unwrap(),
        postcard::to_stdvec(&engine).unwrap()
    );
}

#[test]
fn empty_and_huge_checkpoints_round_trip_through_a_store() {
    block_on(async {
        let store = MemoryStore::new();
        for cp in [
            varpulis_checkpoint::Checkpoint::default(),
            common::checkpoint(1),
            common::big_checkpoint(8, 1 << 20, 3),
        ] {
            let report = store.commit_checkpoint(&cp).await.unwrap();
            let mut expected = cp.clone();
            expected.id = report.id;
            let back = store.load_checkpoint(report.id).await.unwrap().unwrap();
            common::assert_same(&back, &expected);
        }
    });
}

#[test]
fn blob_from_a_newer_format_version_is_unsupported_version() {
    let mut blob = codec::encode(BlobKind::Manifest, &1_u64).unwrap();
    blob[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    match codec::decode::<u64>(BlobKind::Manifest, &blob) {
        Err(CodecError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn loading_a_checkpoint_of_a_newer_format_names_versions_and_key() {
    block_on(async {
        let store = MemoryStore::new();
        let id = store
            .save_checkpoint("ctx", &common::engine(1))
            .await
            .unwrap();
        let key = Key::new(format!("varpulis:ckpt:manifest:{id:020}")).unwrap();
        let mut blob = store.get(&key).await.unwrap().unwrap();
        blob[4] = 9;
        store.put(&key, &blob).await.unwrap();
        let err = store.load_checkpoint(id).await.unwrap_err();
        assert!(
            matches!(&err, CheckpointError::UnsupportedVersion { key: k, found: 9, supported: 1 } if *k == key.to_string()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("unsupported checkpoint format version 9")
        );
    });
}

#[test]
fn every_flipped_byte_and_truncation_of_a_blob_is_detected() {
    let blob = codec::encode(BlobKind::Part, &common::window(3)).unwrap();
    for i in 0..blob.len() {
        for mask in [0x01_u8, 0x80, 0xff] {
            let mut bad = blob.clone();
            bad[i] ^= mask;
            assert!(
                codec::decode::<varpulis_checkpoint::WindowCheckpoint>(BlobKind::Part, &bad)
                    .is_err(),
                "flip {mask:#x} at {i} went unnoticed"
            );
        }
    }
    for len in 0..blob.len() {
        assert!(
            codec::decode::<varpulis_checkpoint::WindowCheckpoint>(BlobKind::Part, &blob[..len])
                .is_err(),
            "truncation to {len} went unnoticed"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        codec::decode::<varpulis_checkpoint::WindowCheckpoint>(BlobKind::Part, &longer),
        Err(CodecError::LengthMismatch { .. })
    ));
}

#[test]
fn envelope_header_is_documented_layout() {
    let blob = codec::encode(BlobKind::Manifest, &[1_u8, 2, 3][..]).unwrap();
    assert_eq!(HEADER_LEN, 20);
    assert_eq!(&blob[0..4], b"VPCK");
    assert_eq!(u16::from_le_bytes([blob[4], blob[5]]), 1);
    assert_eq!(blob[6], 1, "codec postcard");
    assert_eq!(blob[7], 1, "kind manifest");
    assert_eq!(u64::from_le_bytes(blob[8..16].try_into().unwrap()), 4);
    let crc = crc32c_of(&blob);
    assert_eq!(u32::from_le_bytes(blob[16..20].try_into().unwrap()), crc);
}

fn crc32c_of(blob: &[u8]) -> u32 {
    // crc32c over bytes 0..16 and the payload, computed bit by bit (reference implementation).
    let mut crc = !0_u32;
    for &b in blob[..16].iter().chain(&blob[HEADER_LEN..]) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
