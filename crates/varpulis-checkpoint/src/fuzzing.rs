//! Entry points for the fuzz targets in `fuzz/`: the decoders of this crate's private records,
//! each paired with its encoder. Hidden from the docs and not part of the public API.

use crate::codec::{self, BlobKind, CodecError};
use crate::manifest::{EngineCore, EngineCoreRef, Manifest};

/// Decodes `blob` as a manifest envelope (as recovery does) and encodes the manifest again.
///
/// # Errors
/// What decoding `blob` fails with.
pub fn reencode_manifest(blob: &[u8]) -> Result<Vec<u8>, CodecError> {
    let manifest: Manifest = codec::decode(BlobKind::Manifest, blob)?;
    codec::encode(BlobKind::Manifest, &manifest)
}

/// Decodes `blob` as an engine-core part envelope (as recovery does) and encodes it again.
///
/// # Errors
/// What decoding `blob` fails with.
pub fn reencode_engine_core(blob: &[u8]) -> Result<Vec<u8>, CodecError> {
    let core: EngineCore = codec::decode(BlobKind::Part, blob)?;
    codec::encode(
        BlobKind::Part,
        &EngineCoreRef {
            version: core.version,
            variables: &core.variables,
            watermark_state: &core.watermark_state,
            events_processed: core.events_processed,
            output_events_emitted: core.output_events_emitted,
        },
    )
}
