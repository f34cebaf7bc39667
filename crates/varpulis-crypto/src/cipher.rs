//! AES-256-GCM, the envelope's one cipher, in two implementations that write the same bytes:
//!
//! - [`Ring`] (feature `ring`, on by default): `ring`'s assembly kernels, picked at run time
//!   (on x86_64 VAES + VPCLMULQDQ with AVX2, else AES-NI + PCLMULQDQ with AVX and MOVBE, else
//!   AES-NI + PCLMULQDQ, else a constant-time fallback; ARMv8 crypto extensions on aarch64).
//! - [`Portable`]: RustCrypto's pure-Rust `aes-gcm` (which still uses AES-NI and PCLMULQDQ
//!   when the CPU has them). It seals and opens when the crate is built without `ring`, for
//!   targets `ring` does not build on, and is the oracle the tests compare `ring` with.
//!
//! [`Backend`] is the implementation the envelope uses.

use crate::KEY_LEN;
use crate::envelope::{NONCE_LEN, TAG_LEN};

/// One key's AES-256-GCM.
pub(crate) trait Aead {
    /// Expands `key` for sealing and opening.
    fn new(key: &[u8; KEY_LEN]) -> Self;

    /// Encrypts `in_out` in place and returns the tag. Fails only for inputs beyond AES-GCM's
    /// limit (about 64 GiB).
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()>;

    /// `in_out[start..]` is ciphertext followed by its tag. On success the plaintext is
    /// `in_out[..n]` and `n` is returned; on failure (the tag does not verify, or `in_out` is too
    /// short) nothing in `in_out` is plaintext.
    fn open_within(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        start: usize,
    ) -> Result<usize, ()>;
}

/// The implementation the envelope seals and opens with.
#[cfg(feature = "ring")]
pub(crate) type Backend = Ring;
/// The implementation the envelope seals and opens with.
#[cfg(not(feature = "ring"))]
pub(crate) type Backend = Portable;

/// AES-256-GCM through `ring`.
///
/// `ring` 0.17 does not clear its key schedule when a key is dropped (`LessSafeKey` has no
/// `Drop`), and the first two AES-256 round keys *are* the key. So dropping a `Ring` first
/// overwrites the schedule in place with the schedule of the all-zero key (a public value),
/// without unsafe code: same CPU, same layout, every field rewritten.
#[cfg(feature = "ring")]
pub(crate) struct Ring(ring::aead::LessSafeKey);

#[cfg(feature = "ring")]
impl Ring {
    fn expand(key: &[u8; KEY_LEN]) -> ring::aead::LessSafeKey {
        // `UnboundKey::new` fails only for a key of the wrong length, and this one has 32 bytes.
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256 keys are 32 bytes"));
        ring::aead::LessSafeKey::new(unbound)
    }
}

#[cfg(feature = "ring")]
impl Aead for Ring {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        Self(Self::expand(key))
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(*nonce),
                ring::aead::Aad::from(aad),
                in_out,
            )
            .map_err(drop)?;
        tag.as_ref().try_into().map_err(drop)
    }

    fn open_within(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        start: usize,
    ) -> Result<usize, ()> {
        // ring decrypts and moves the plaintext to the front in one pass, and zeroes what it
        // decrypted if the tag does not verify.
        self.0
            .open_within(
                ring::aead::Nonce::assume_unique_for_key(*nonce),
                ring::aead::Aad::from(aad),
                in_out,
                start..,
            )
            .map(|plaintext| plaintext.len())
            .map_err(drop)
    }
}

#[cfg(feature = "ring")]
impl Drop for Ring {
    fn drop(&mut self) {
        self.0 = Self::expand(&[0; KEY_LEN]);
        // The memory is freed next, which would let the compiler drop the overwrite as dead.
        std::hint::black_box(&self.0);
    }
}

/// AES-256-GCM through RustCrypto's `aes-gcm`. Its AES round keys are zeroized on drop (`aes`
/// feature `zeroize`); its GHASH key is not (the pinned `ghash`/`polyval` do not).
#[cfg(any(test, not(feature = "ring")))]
pub(crate) struct Portable(aes_gcm::Aes256Gcm);

#[cfg(any(test, not(feature = "ring")))]
impl Aead for Portable {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        use aes_gcm::KeyInit as _;
        Self(aes_gcm::Aes256Gcm::new(key.into()))
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        use aes_gcm::AeadInPlace as _;
        self.0
            .encrypt_in_place_detached(nonce.into(), aad, in_out)
            .map(Into::into)
            .map_err(drop)
    }

    fn open_within(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        start: usize,
    ) -> Result<usize, ()> {
        use aes_gcm::AeadInPlace as _;
        let tag_at = in_out
            .len()
            .checked_sub(TAG_LEN)
            .filter(|&at| at >= start)
            .ok_or(())?;
        let (body, tag) = in_out.split_at_mut(tag_at);
        // aes-gcm verifies the tag before it decrypts: on failure `body` is still ciphertext.
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, &mut body[start..], (&*tag).into())
            .map_err(drop)?;
        in_out.copy_within(start..tag_at, 0);
        Ok(tag_at - start)
    }
}
