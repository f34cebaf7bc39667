//! Passphrase-based keys: Argon2id and the record that keeps its salt and parameters.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroize as _;

use crate::{CryptoError, EncryptionKey};

/// Length of the random salt [`open_with_passphrase`](crate::EncryptedStateStore::open_with_passphrase)
/// creates.
pub const SALT_LEN: usize = 16;
/// Shortest salt Argon2 accepts.
pub const MIN_SALT_LEN: usize = argon2::MIN_SALT_LEN;
/// Largest memory cost accepted, in KiB (1 GiB): a stored record cannot make `open` allocate more.
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Largest iteration count accepted.
pub const MAX_T_COST: u32 = 64;
/// Largest parallelism accepted.
pub const MAX_P_COST: u32 = 64;

const RECORD_VERSION: u8 = 1;
const ALGORITHM_ARGON2ID: u8 = 2;
const ARGON2_VERSION_13: u8 = 0x13;

/// Argon2id cost parameters.
///
/// The default is Argon2's recommendation (19 MiB, 2 passes, 1 lane; about 20-50 ms). Tests can
/// use the minimum, `KdfParams::new(8, 1, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_cost_kib: Params::DEFAULT_M_COST,
            t_cost: Params::DEFAULT_T_COST,
            p_cost: Params::DEFAULT_P_COST,
        }
    }
}

impl KdfParams {
    /// Memory in KiB (at least `8 * p_cost`), passes (at least 1), lanes (at least 1).
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] if Argon2 rejects the combination or it exceeds
    /// [`MAX_M_COST_KIB`], [`MAX_T_COST`] or [`MAX_P_COST`].
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, CryptoError> {
        let params = Self {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        params.argon2_params()?;
        Ok(params)
    }

    /// Memory cost in KiB.
    #[must_use]
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes.
    #[must_use]
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    #[must_use]
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn argon2_params(&self) -> Result<Params, CryptoError> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return Err(CryptoError::Kdf {
                reason: format!(
                    "parameters m={} KiB t={} p={} exceed the limits m={MAX_M_COST_KIB} \
                     t={MAX_T_COST} p={MAX_P_COST}",
                    self.m_cost_kib, self.t_cost, self.p_cost
                ),
            });
        }
        Params::new(
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            Some(crate::KEY_LEN),
        )
        .map_err(|e| CryptoError::Kdf {
            reason: e.to_string(),
        })
    }
}

/// Derives a 256-bit key from `passphrase` and `salt` with Argon2id (version 0x13).
pub(crate) fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<EncryptionKey, CryptoError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
    let mut key = EncryptionKey::from_bytes([0; crate::KEY_LEN]);
    argon
        .hash_password_into(passphrase, salt, key.bytes_mut())
        .map_err(|e| {
            key.bytes_mut().zeroize();
            CryptoError::Kdf {
                reason: e.to_string(),
            }
        })?;
    Ok(key)
}

/// The plaintext record that keeps a passphrase store's salt and parameters.
///
/// ```text
/// version (1 = 1) | algorithm (1 = 2, Argon2id) | argon2 version (1 = 0x13)
///   | m_cost KiB (4, BE) | t_cost (4, BE) | p_cost (4, BE) | salt_len (1) | salt
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdfRecord {
    pub(crate) params: KdfParams,
    pub(crate) salt: Vec<u8>,
}

impl KdfRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.salt.len());
        out.extend_from_slice(&[RECORD_VERSION, ALGORITHM_ARGON2ID, ARGON2_VERSION_13]);
        out.extend_from_slice(&self.params.m_cost_kib.to_be_bytes());
        out.extend_from_slice(&self.params.t_cost.to_be_bytes());
        out.extend_from_slice(&self.params.p_cost.to_be_bytes());
        out.push(u8::try_from(self.salt.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.salt[..self.salt.len().min(255)]);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let [version, algorithm, argon_version, rest @ ..] = bytes else {
            return Err("truncated key-derivation record".to_owned());
        };
        if *version != RECORD_VERSION {
            return Err(format!("unknown key-derivation record version {version}"));
        }
        if *algorithm != ALGORITHM_ARGON2ID || *argon_version != ARGON2_VERSION_13 {
            return Err(format!(
                "unsupported key-derivation algorithm {algorithm}/{argon_version:#x}"
            ));
        }
        if rest.len() < 13 {
            return Err("truncated key-derivation record".to_owned());
        }
        let word = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let params = KdfParams::new(word(0), word(4), word(8)).map_err(|e| e.to_string())?;
        let salt_len = usize::from(rest[12]);
        let salt = &rest[13..];
        if salt.len() != salt_len || salt_len < MIN_SALT_LEN {
            return Err("bad salt in key-derivation record".to_owned());
        }
        Ok(Self {
            params,
            salt: salt.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_damage() {
        let rec = KdfRecord {
            params: KdfParams::new(8, 1, 1).unwrap(),
            salt: vec![7; SALT_LEN],
        };
        let bytes = rec.encode();
        assert_eq!(KdfRecord::decode(&bytes).unwrap(), rec);
        for len in 0..bytes.len() {
            assert!(KdfRecord::decode(&bytes[..len]).is_err(), "{len}");
        }
        let mut huge = bytes.clone();
        huge[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(KdfRecord::decode(&huge).is_err());
    }

    #[test]
    fn derivation_is_deterministic_and_salted() {
        let p = KdfParams::new(8, 1, 1).unwrap();
        let a = derive_key(b"pw", b"saltsalt", p).unwrap();
        let b = derive_key(b"pw", b"saltsalt", p).unwrap();
        let c = derive_key(b"pw", b"saltsal2", p).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_ne!(a.key_id(), c.key_id());
        assert!(derive_key(b"pw", b"short", p).is_err());
    }
}
