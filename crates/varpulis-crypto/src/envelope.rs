//! The byte layout of an encrypted value.
//!
//! ```text
//! version (1 byte, = 1) | key_id (4 bytes, big endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! AES-256-GCM with associated data `header || len(storage key) as u32 big endian || storage key`,
//! where `header` is the first 17 bytes (version, key id, nonce). Editing the header or moving
//! the value to another key makes authentication fail.

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore as _;
use varpulis_store::Key;
use zeroize::Zeroize as _;

use crate::cipher::Aead;
use crate::{KeyId, Keyring};

/// The envelope format version this crate writes (and the only one it reads).
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Length of the random AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag at the end of the envelope.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to the plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why an envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Shorter than header + tag.
    Truncated,
    /// A version byte this crate does not know.
    Version(u8),
    /// A key id the keyring does not hold.
    UnknownKeyId(KeyId),
    /// The tag did not verify: tampered bytes, wrong key, or a value moved between keys.
    Authentication,
}

impl OpenError {
    /// The reason stored in [`varpulis_store::StoreError::Corrupt`].
    pub(crate) fn reason(self) -> String {
        match self {
            Self::Truncated => "truncated encrypted value".to_owned(),
            Self::Version(v) => format!("unknown encryption envelope version {v}"),
            Self::UnknownKeyId(id) => format!("encrypted with unknown key id {id}"),
            Self::Authentication => "authentication failed".to_owned(),
        }
    }
}

/// Reads the key id from an envelope's header without decrypting it. `None` if the bytes are too
/// short or of an unknown version.
///
/// ```
/// use varpulis_crypto::{envelope_key_id, KeyId};
/// let mut value = vec![1, 0xde, 0xad, 0xbe, 0xef];
/// value.resize(33, 0);
/// assert_eq!(envelope_key_id(&value), Some(KeyId::from_u32(0xdead_beef)));
/// assert_eq!(envelope_key_id(b"plain"), None);
/// ```
#[must_use]
pub fn envelope_key_id(value: &[u8]) -> Option<KeyId> {
    if value.len() < OVERHEAD || value[0] != ENVELOPE_VERSION {
        return None;
    }
    Some(KeyId::from_u32(u32::from_be_bytes([
        value[1], value[2], value[3], value[4],
    ])))
}

fn associated_data(header: &[u8], storage_key: &Key) -> Vec<u8> {
    let key = storage_key.as_str().as_bytes();
    let mut ad = Vec::with_capacity(header.len() + 4 + key.len());
    ad.extend_from_slice(header);
    // Keys are at most 32 * 129 bytes, far below u32::MAX.
    ad.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    ad.extend_from_slice(key);
    ad
}

fn header(key_id: KeyId, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[0] = ENVELOPE_VERSION;
    header[1..5].copy_from_slice(&key_id.to_be_bytes());
    header[5..].copy_from_slice(nonce);
    header
}

fn nonce_of(header: &[u8]) -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    nonce.copy_from_slice(&header[5..HEADER_LEN]);
    nonce
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The first half of sealing a borrowed plaintext: the header (the keyring's active key id and
/// a fresh random nonce) and a copy of `plaintext`, in one buffer with room for the tag. This is
/// the only copy of the plaintext sealing makes; [`seal_framed`] encrypts it in place.
pub(crate) fn frame(keyring: &Keyring, plaintext: &[u8]) -> Vec<u8> {
    frame_with(keyring.active_key_id(), &random_nonce(), plaintext)
}

fn frame_with(key_id: KeyId, nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&header(key_id, nonce));
    out.extend_from_slice(plaintext);
    out
}

/// The second half: encrypts a buffer from [`frame`] (with the same keyring) in place for
/// `storage_key` under the active key, and appends the tag. Fails only for plaintexts beyond
/// AES-GCM's limit (64 GiB), and then zeroizes the buffer.
pub(crate) fn seal_framed(
    keyring: &Keyring,
    storage_key: &Key,
    framed: &mut Vec<u8>,
) -> Result<(), ()> {
    seal_framed_with(keyring.active_entry().1.cipher(), storage_key, framed)
}

fn seal_framed_with<A: Aead>(
    cipher: &A,
    storage_key: &Key,
    framed: &mut Vec<u8>,
) -> Result<(), ()> {
    let ad = associated_data(&framed[..HEADER_LEN], storage_key);
    let nonce = nonce_of(framed);
    match cipher.seal_in_place(&nonce, &ad, &mut framed[HEADER_LEN..]) {
        Ok(tag) => {
            framed.extend_from_slice(&tag);
            Ok(())
        }
        Err(()) => {
            framed.zeroize();
            Err(())
        }
    }
}

/// Encrypts `plaintext` for `storage_key` under the keyring's active key, with a fresh random
/// nonce. Fails only for plaintexts beyond AES-GCM's limit (64 GiB).
pub(crate) fn seal(keyring: &Keyring, storage_key: &Key, plaintext: &[u8]) -> Result<Vec<u8>, ()> {
    let mut envelope = frame(keyring, plaintext);
    seal_framed(keyring, storage_key, &mut envelope)?;
    Ok(envelope)
}

/// Encrypts an owned plaintext: in place, so no copy of the plaintext is left behind to zeroize,
/// then copies the ciphertext behind the header. Fails as [`seal`] does, and then zeroizes the
/// plaintext.
pub(crate) fn seal_owned(
    keyring: &Keyring,
    storage_key: &Key,
    plaintext: Vec<u8>,
) -> Result<Vec<u8>, ()> {
    let (key_id, entry) = keyring.active_entry();
    seal_owned_with(
        entry.cipher(),
        key_id,
        &random_nonce(),
        storage_key,
        plaintext,
    )
}

fn seal_owned_with<A: Aead>(
    cipher: &A,
    key_id: KeyId,
    nonce: &[u8; NONCE_LEN],
    storage_key: &Key,
    mut plaintext: Vec<u8>,
) -> Result<Vec<u8>, ()> {
    let header = header(key_id, nonce);
    let ad = associated_data(&header, storage_key);
    let Ok(tag) = cipher.seal_in_place(nonce, &ad, &mut plaintext) else {
        plaintext.zeroize();
        return Err(());
    };
    let ciphertext = plaintext;
    let mut out = Vec::with_capacity(ciphertext.len() + OVERHEAD);
    out.extend_from_slice(&header);
    out.extend_from_slice(&ciphertext);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts an envelope read from `storage_key`, in place: the plaintext is the front of
/// `value`'s buffer.
pub(crate) fn open(
    keyring: &Keyring,
    storage_key: &Key,
    value: Vec<u8>,
) -> Result<Vec<u8>, OpenError> {
    if value.len() < OVERHEAD {
        return Err(OpenError::Truncated);
    }
    if value[0] != ENVELOPE_VERSION {
        return Err(OpenError::Version(value[0]));
    }
    let key_id = KeyId::from_u32(u32::from_be_bytes([value[1], value[2], value[3], value[4]]));
    let entry = keyring.get(key_id).ok_or(OpenError::UnknownKeyId(key_id))?;
    open_with(entry.cipher(), storage_key, value)
}

/// [`open`] with a given cipher, for an envelope whose length and version were checked.
fn open_with<A: Aead>(
    cipher: &A,
    storage_key: &Key,
    mut value: Vec<u8>,
) -> Result<Vec<u8>, OpenError> {
    let ad = associated_data(&value[..HEADER_LEN], storage_key);
    let nonce = nonce_of(&value);
    let len = cipher
        .open_within(&nonce, &ad, &mut value, HEADER_LEN)
        .map_err(|()| OpenError::Authentication)?;
    value.truncate(len);
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "ring")]
    use proptest::prelude::*;

    use super::*;
    use crate::EncryptionKey;
    use crate::cipher::Portable;
    #[cfg(feature = "ring")]
    use crate::cipher::Ring;

    /// The golden version-1 envelope of `tests/it/envelope.rs`: key `0x01 * 32`, storage key
    /// `golden:v1`, plaintext `varpulis`.
    const GOLDEN_V1: &str =
        "013ccd7e7df61dce364e6ca97f599a162162c7527a7df8bf5633fb050762531e62fd569615ecc87c1c";

    fn seals_and_opens_the_golden_envelope<A: Aead>() {
        let golden = hex::decode(GOLDEN_V1).unwrap();
        let nonce = nonce_of(&golden);
        let id = EncryptionKey::from_bytes([1; 32]).key_id();
        let storage_key = Key::new("golden:v1").unwrap();
        let cipher = A::new(&[1; 32]);
        let mut framed = frame_with(id, &nonce, b"varpulis");
        seal_framed_with(&cipher, &storage_key, &mut framed).unwrap();
        assert_eq!(framed, golden);
        let owned = seal_owned_with(&cipher, id, &nonce, &storage_key, b"varpulis".to_vec());
        assert_eq!(owned.unwrap(), golden);
        assert_eq!(
            open_with(&cipher, &storage_key, golden.clone()).unwrap(),
            b"varpulis"
        );
        let moved = Key::new("golden:moved").unwrap();
        assert_eq!(
            open_with(&cipher, &moved, golden),
            Err(OpenError::Authentication)
        );
    }

    #[test]
    fn aes_gcm_seals_the_golden_version_1_envelope_byte_for_byte() {
        seals_and_opens_the_golden_envelope::<Portable>();
    }

    #[cfg(feature = "ring")]
    #[test]
    fn ring_seals_the_golden_version_1_envelope_byte_for_byte() {
        seals_and_opens_the_golden_envelope::<Ring>();
    }

    #[test]
    fn open_refuses_short_and_unknown_envelopes_before_decrypting() {
        let keyring = Keyring::new(EncryptionKey::from_bytes([1; 32]));
        let storage_key = Key::new("golden:v1").unwrap();
        let golden = hex::decode(GOLDEN_V1).unwrap();
        assert_eq!(
            open(&keyring, &storage_key, golden[..OVERHEAD - 1].to_vec()),
            Err(OpenError::Truncated)
        );
        let mut v2 = golden.clone();
        v2[0] = 2;
        assert_eq!(open(&keyring, &storage_key, v2), Err(OpenError::Version(2)));
        let mut other = golden;
        other[1] ^= 1;
        assert!(matches!(
            open(&keyring, &storage_key, other),
            Err(OpenError::UnknownKeyId(_))
        ));
    }

    /// Storage keys of 1 to 4 segments.
    #[cfg(feature = "ring")]
    fn storage_key() -> impl Strategy<Value = Key> {
        proptest::collection::vec("[A-Za-z0-9._-]{1,16}", 1..5)
            .prop_filter_map("a valid key", |segments| Key::new(segments.join(":")).ok())
    }

    /// Mostly short plaintexts (every length around the 16-byte block and the kernels' 128- and
    /// 256-byte strides), some up to 70 KB.
    #[cfg(feature = "ring")]
    fn plaintext() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..600),
            1 => proptest::collection::vec(any::<u8>(), 0..70_000),
        ]
    }

    #[cfg(feature = "ring")]
    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// `aes-gcm` is the oracle: `ring` must write the very same envelope for the same key,
        /// nonce, storage key and plaintext, and each must open what the other sealed.
        #[test]
        fn ring_and_aes_gcm_write_the_same_envelope_and_open_each_others(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            storage_key in storage_key(),
            plaintext in plaintext(),
            flip in any::<prop::sample::Index>(),
        ) {
            let id = EncryptionKey::from_bytes(key).key_id();
            let (ring, portable) = (Ring::new(&key), Portable::new(&key));

            let mut by_ring = frame_with(id, &nonce, &plaintext);
            seal_framed_with(&ring, &storage_key, &mut by_ring).unwrap();
            let mut by_portable = frame_with(id, &nonce, &plaintext);
            seal_framed_with(&portable, &storage_key, &mut by_portable).unwrap();
            prop_assert_eq!(&by_ring, &by_portable);
            prop_assert_eq!(by_ring.len(), plaintext.len() + OVERHEAD);
            let owned = seal_owned_with(&ring, id, &nonce, &storage_key, plaintext.clone());
            prop_assert_eq!(&owned.unwrap(), &by_portable);
            let owned = seal_owned_with(&portable, id, &nonce, &storage_key, plaintext.clone());
            prop_assert_eq!(&owned.unwrap(), &by_ring);

            prop_assert_eq!(open_with(&portable, &storage_key, by_ring.clone()).unwrap(), &plaintext[..]);
            prop_assert_eq!(open_with(&ring, &storage_key, by_portable).unwrap(), &plaintext[..]);

            // One flipped bit anywhere, header included: neither opens it.
            let mut damaged = by_ring;
            let at = flip.index(damaged.len());
            damaged[at] ^= 1 << (at % 8);
            prop_assert_eq!(open_with(&ring, &storage_key, damaged.clone()), Err(OpenError::Authentication));
            prop_assert_eq!(open_with(&portable, &storage_key, damaged), Err(OpenError::Authentication));
        }
    }
}
