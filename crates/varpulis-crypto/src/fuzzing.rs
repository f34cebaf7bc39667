//! Entry points for the fuzz targets in `fuzz/`: the decoder of the private key-derivation
//! record, paired with its encoder. Hidden from the docs and not part of the public API.

use crate::KdfParams;
use crate::kdf::KdfRecord;

/// Decodes a key-derivation record (the value of `__varpulis-crypto:kdf`) as
/// [`open_with_passphrase`](crate::EncryptedStateStore::open_with_passphrase) does, without
/// deriving a key: its parameters and salt.
///
/// # Errors
/// The reason the record is refused.
pub fn decode_kdf_record(bytes: &[u8]) -> Result<(KdfParams, Vec<u8>), String> {
    KdfRecord::decode(bytes).map(|record| (record.params, record.salt))
}

/// Encodes a key-derivation record as a new passphrase store writes it.
#[must_use]
pub fn encode_kdf_record(params: KdfParams, salt: &[u8]) -> Vec<u8> {
    KdfRecord {
        params,
        salt: salt.to_vec(),
    }
    .encode()
}
