//! The checkpoint envelope (`varpulis_checkpoint::codec`) and the public part types.
//!
//! Asserts: `open` accepts exactly the blobs that are well-formed by the spec
//! (`docs/design/state-format.md`, checked by an independent implementation), returns their
//! payload, and reports a newer format version as `UnsupportedVersion`; flipping any byte of
//! an accepted blob makes it rejected; a payload that decodes as a part type re-encodes to
//! bytes that decode again and re-encode identically (round trip), and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use varpulis_checkpoint::codec::{self, BlobKind, CodecError};
use varpulis_checkpoint::{
    EngineCheckpoint, JoinCheckpoint, JoinOperatorCheckpoint, PatternCheckpoint, SaseCheckpoint,
    WindowCheckpoint,
};
use varpulis_fuzz::{KIND_MANIFEST, KIND_PART, envelope, envelope_is_valid};

fn round_trip<T: Serialize + DeserializeOwned>(blob: &[u8]) {
    let Ok(value) = codec::decode::<T>(BlobKind::Part, blob) else {
        return;
    };
    let again = codec::encode(BlobKind::Part, &value).expect("a decoded value encodes");
    assert!(envelope_is_valid(KIND_PART, &again));
    let value2: T = codec::decode(BlobKind::Part, &again).expect("re-encoded bytes decode");
    assert_eq!(
        codec::encode(BlobKind::Part, &value2).expect("encodes"),
        again,
        "decode . encode is not a fixed point"
    );
}

fn check_open(kind: BlobKind, kind_byte: u8, blob: &[u8], flip: usize) {
    let opened = codec::open(kind, blob);
    assert_eq!(
        opened.is_ok(),
        envelope_is_valid(kind_byte, blob),
        "{opened:?}"
    );
    match opened {
        Ok(payload) => {
            assert_eq!(payload, &blob[20..]);
            // Any single damaged byte is detected.
            let mut damaged = blob.to_vec();
            damaged[flip % blob.len()] ^= 0x5a;
            assert!(
                codec::open(kind, &damaged).is_err(),
                "flipped byte {}",
                flip % blob.len()
            );
        }
        Err(CodecError::UnsupportedVersion { found, .. }) => {
            assert!(blob.len() >= 6 && blob[..4] == *b"VPCK");
            assert_eq!(found, u16::from_le_bytes([blob[4], blob[5]]));
            assert_ne!(found, 1);
        }
        Err(_) => {
            // The version is checked before everything after the magic.
            if blob.len() >= 6 && blob[..4] == *b"VPCK" {
                assert_eq!(u16::from_le_bytes([blob[4], blob[5]]), 1);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (kind, kind_byte) = if mode & 1 == 0 {
        (BlobKind::Part, KIND_PART)
    } else {
        (BlobKind::Manifest, KIND_MANIFEST)
    };
    // Bit 1: the input is a payload, framed here as a valid envelope so that fuzzing reaches
    // the payload decoders (a fuzzer rarely finds a crc32c); otherwise the input is the blob.
    let blob = if mode & 2 == 0 {
        rest.to_vec()
    } else {
        envelope(kind_byte, rest)
    };
    check_open(
        kind,
        kind_byte,
        &blob,
        usize::from(mode >> 4) * 7 + blob.len() / 2,
    );
    match (mode >> 2) & 3 {
        0 => round_trip::<EngineCheckpoint>(&blob),
        1 => round_trip::<WindowCheckpoint>(&blob),
        // The seed's (format 1) and today's (format 2) part types of the same manifest lists.
        2 => {
            round_trip::<SaseCheckpoint>(&blob);
            round_trip::<PatternCheckpoint>(&blob);
        }
        _ => {
            round_trip::<JoinCheckpoint>(&blob);
            round_trip::<JoinOperatorCheckpoint>(&blob);
        }
    }
});
