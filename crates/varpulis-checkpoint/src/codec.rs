//! The checkpoint envelope: every blob the checkpoint layer stores is framed, versioned and
//! checksummed, with a postcard payload.
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VPCK"
//!      4     2  format version   u16 little-endian (this release writes FORMAT_VERSION = 1)
//!      6     1  codec            1 = postcard
//!      7     1  kind             1 = manifest, 2 = part
//!      8     8  payload length   u64 little-endian
//!     16     4  crc32c           u32 little-endian, over bytes 0..16 and the payload
//!     20     n  payload
//! ```
//!
//! The version is checked before anything else after the magic, so a blob written by a newer
//! release is reported as [`CodecError::UnsupportedVersion`] rather than as a checksum failure.
//! Everything else that can be wrong with a blob (short, bad magic, unknown codec or kind, length
//! mismatch, checksum mismatch, undecodable payload) is a distinct [`CodecError`] variant.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// First four bytes of every checkpoint blob.
pub const MAGIC: [u8; 4] = *b"VPCK";
/// The envelope format version this release writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the envelope header in bytes.
pub const HEADER_LEN: usize = 20;
/// Codec id of postcard, the only payload codec of format version 1.
pub const CODEC_POSTCARD: u8 = 1;

/// What a blob holds (byte 7 of the header), so a part can never be read as a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobKind {
    /// A checkpoint manifest (the commit record).
    Manifest,
    /// A checkpoint part (the state of one context or operator).
    Part,
    /// A tenant record of the server (`varpulis-tenant`).
    Tenant,
    /// A pipeline record of the server (`varpulis-tenant`).
    Pipeline,
    /// An entry of a pipeline's ingest log: one acknowledged batch of events.
    IngestLog,
    /// An engine state exported to a client (the server's `checkpoint` / `restore` bodies).
    Export,
    /// A pipeline's remembered idempotency keys and their answers (the server).
    Idempotency,
    /// A chunk of a pipeline's retained output events (the server).
    Outputs,
}

impl BlobKind {
    const fn byte(self) -> u8 {
        match self {
            Self::Manifest => 1,
            Self::Part => 2,
            Self::Tenant => 3,
            Self::Pipeline => 4,
            Self::IngestLog => 5,
            Self::Export => 6,
            Self::Idempotency => 7,
            Self::Outputs => 8,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Part => "part",
            Self::Tenant => "tenant record",
            Self::Pipeline => "pipeline record",
            Self::IngestLog => "ingest log entry",
            Self::Export => "exported engine state",
            Self::Idempotency => "idempotency window",
            Self::Outputs => "output chunk",
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a blob could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Fewer bytes than the header needs.
    #[error("truncated blob: {len} bytes, the header alone needs {HEADER_LEN}")]
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The blob does not start with [`MAGIC`].
    #[error("bad magic {found:02x?}, expected {MAGIC:02x?}")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The blob was written by a newer (or unknown) format version.
    #[error("unsupported format version {found}, this release reads up to {supported}")]
    UnsupportedVersion {
        /// Version in the blob.
        found: u16,
        /// Newest version this release reads.
        supported: u16,
    },
    /// The codec byte names no known codec.
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    /// The blob holds another kind of record than the one asked for.
    #[error("expected a {expected} blob, found kind byte {found}")]
    WrongKind {
        /// Kind asked for.
        expected: BlobKind,
        /// Kind byte found.
        found: u8,
    },
    /// The declared payload length differs from the bytes present (truncation or garbage).
    #[error("payload length {declared} declared, {actual} present")]
    LengthMismatch {
        /// Length in the header.
        declared: u64,
        /// Bytes after the header.
        actual: u64,
    },
    /// The crc32c does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The payload passed its checksum but does not decode as the expected type.
    #[error("payload does not decode")]
    Payload(#[source] PayloadError),
    /// A value could not be encoded.
    #[error("value does not encode")]
    Encode(#[source] PayloadError),
}

/// Why the payload encoding failed on a value: the source of [`CodecError::Payload`] and
/// [`CodecError::Encode`]. Opaque, so that the encoding library is not part of this crate's
/// API; it displays (and debug-prints) as the library's own message.
pub struct PayloadError(postcard::Error);

impl std::fmt::Debug for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl CodecError {
    fn payload(err: postcard::Error) -> Self {
        Self::Payload(PayloadError(err))
    }

    fn encode(err: postcard::Error) -> Self {
        Self::Encode(PayloadError(err))
    }
}

/// Encodes `value` with postcard inside a format-version-1 envelope of the given kind.
///
/// The value is measured first and then written once into a buffer of its exact size, so a
/// large state costs one allocation and one copy of its bytes (no regrowth, no slack).
///
/// # Errors
/// [`CodecError::Encode`] if postcard cannot encode the value (for example a map with
/// unserializable keys).
pub fn encode<T: Serialize + ?Sized>(kind: BlobKind, value: &T) -> Result<Vec<u8>, CodecError> {
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(CodecError::encode)?;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(CODEC_POSTCARD);
    out.push(kind.byte());
    out.extend_from_slice(&(size as u64).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut out =
        postcard::serialize_with_flavor(value, Append(out)).map_err(CodecError::encode)?;
    debug_assert_eq!(
        out.len(),
        HEADER_LEN + size,
        "postcard measured {size} bytes"
    );
    let crc = checksum(&out);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A postcard output that appends to a `Vec`, copying slices whole (postcard's own `Vec`
/// outputs either push byte by byte or start from an empty vector).
struct Append(Vec<u8>);

impl postcard::ser_flavors::Flavor for Append {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// The envelope checksum of a complete blob: crc32c (Castagnoli) over bytes 0..16 and the
/// payload, skipping the checksum field itself.
fn checksum(blob: &[u8]) -> u32 {
    crc32c(&[&blob[..16], &blob[HEADER_LEN..]])
}

/// crc32c (Castagnoli, as in iSCSI) of the concatenation of `pieces`.
fn crc32c(pieces: &[&[u8]]) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    for piece in pieces {
        digest.update(piece);
    }
    // A 32-bit algorithm: the value always fits.
    digest.finalize() as u32
}

/// Checks a blob's envelope and returns its payload (without decoding it).
///
/// # Errors
/// Any [`CodecError`] but `Payload`/`Encode`.
pub fn open(kind: BlobKind, blob: &[u8]) -> Result<&[u8], CodecError> {
    let payload = open_unchecked_crc(kind, blob)?;
    let stored = u32::from_le_bytes(blob[16..20].try_into().expect("4 bytes"));
    let computed = checksum(blob);
    if stored != computed {
        return Err(CodecError::ChecksumMismatch { stored, computed });
    }
    Ok(payload)
}

/// [`open`] without recomputing the crc32c, for a blob whose every byte was already verified
/// by a stronger check (a part whose XXH3-128 content hash matched its manifest entry).
pub(crate) fn open_unchecked_crc(kind: BlobKind, blob: &[u8]) -> Result<&[u8], CodecError> {
    if blob.len() < 6 {
        return Err(CodecError::TooShort { len: blob.len() });
    }
    let magic: [u8; 4] = blob[0..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(CodecError::BadMagic { found: magic });
    }
    let version = u16::from_le_bytes([blob[4], blob[5]]);
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if blob.len() < HEADER_LEN {
        return Err(CodecError::TooShort { len: blob.len() });
    }
    if blob[6] != CODEC_POSTCARD {
        return Err(CodecError::UnknownCodec(blob[6]));
    }
    if blob[7] != kind.byte() {
        return Err(CodecError::WrongKind {
            expected: kind,
            found: blob[7],
        });
    }
    let declared = u64::from_le_bytes(blob[8..16].try_into().expect("8 bytes"));
    let payload = &blob[HEADER_LEN..];
    if declared != payload.len() as u64 {
        return Err(CodecError::LengthMismatch {
            declared,
            actual: payload.len() as u64,
        });
    }
    Ok(payload)
}

/// Checks a blob's envelope and decodes its payload as `T`.
///
/// The whole payload must be consumed: trailing bytes are an error.
///
/// # Errors
/// Any [`CodecError`] from [`open`], or [`CodecError::Payload`].
pub fn decode<T: DeserializeOwned>(kind: BlobKind, blob: &[u8]) -> Result<T, CodecError> {
    decode_payload(open(kind, blob)?)
}

/// Decodes an opened payload; trailing bytes are an error.
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(payload).map_err(CodecError::payload)?;
    if !rest.is_empty() {
        return Err(CodecError::payload(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XXH3-128 (seed 0) and crc32c of `(i * 31 + 7) % 251` for `i in 0..len`, as computed by
    /// the implementations format version 1 was first written with (`xxhash-rust` 0.8.21 and
    /// `crc32c` 0.6.8). The golden files pin both only on small blobs; these cover every code
    /// path of XXH3 (0, 1-16, 17-128, 129-240, long) and long inputs for both.
    const REFERENCE: &[(usize, u128, u32)] = &[
        (0, 0x99aa06d3014798d86001c324468d497f, 0x00000000),
        (1, 0x495b62073ef70ca44c5cca45d0f4811f, 0x86b737ba),
        (16, 0xda917c385cc874c00d463cb04ceffbaf, 0xd0963f52),
        (17, 0xd443578f2c4e2fb495c34448580e19c8, 0x10d8ec49),
        (128, 0x22c34350373a38ae5b77925b2c683a12, 0x3124eaf1),
        (129, 0xc4a7d8f7893f2090d6d9e73553568be1, 0x61a10a91),
        (240, 0xe29d70b8920fd24bc6ed4333f79384f8, 0x3ff7de9a),
        (241, 0xf91b3cb8ed0fa91a07525dbc14902c7f, 0x839a9dc9),
        (1024, 0xf53a1b1e9f1efedfe2898655db7bc9ee, 0xdba43381),
        (65_536, 0x0906745d5eda3e1e804c62b879e03431, 0x5b652db7),
        (
            (4 << 20) + 7,
            0x1faa552ed7f9d29d2f141f7686dec643,
            0x7e39b98f,
        ),
    ];

    #[test]
    fn content_hash_and_checksum_match_the_format_v1_reference_vectors() {
        for &(len, xxh3, crc) in REFERENCE {
            let data: Vec<u8> = (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect();
            assert_eq!(
                crate::manifest::part_hash(&data),
                xxh3.to_le_bytes(),
                "XXH3-128 of {len} bytes"
            );
            assert_eq!(crc32c(&[&data]), crc, "crc32c of {len} bytes");
            // Split anywhere, the streaming checksum is the same.
            let (a, b) = data.split_at(len / 3);
            assert_eq!(crc32c(&[a, b]), crc, "crc32c of {len} bytes in two pieces");
        }
    }

    #[test]
    fn header_is_twenty_bytes_and_round_trips() {
        let blob = encode(BlobKind::Part, &(1_u8, f64::NAN)).unwrap();
        assert_eq!(&blob[..4], b"VPCK");
        assert_eq!(blob.len(), HEADER_LEN + 1 + 8);
        let (a, b): (u8, f64) = decode(BlobKind::Part, &blob).unwrap();
        assert_eq!(a, 1);
        assert_eq!(b.to_bits(), f64::NAN.to_bits());
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let blob = encode(BlobKind::Part, &7_u32).unwrap();
        assert!(matches!(
            decode::<u32>(BlobKind::Manifest, &blob),
            Err(CodecError::WrongKind { .. })
        ));
    }
}
