//! Identifiers and keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source; without it no key or id can be made safely.
    getrandom::getrandom(&mut buf).expect("the operating system's random source works");
    buf
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ": 32 lowercase hex digits (128 random bits).")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub(crate) fn random() -> Self {
                Self(hex::encode(random_bytes::<16>()))
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                if is_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!(
                        concat!("{:?} is not a ", $what, " id (32 lowercase hex digits)"),
                        s
                    ))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(TenantId, "tenant");
id_type!(PipelineId, "pipeline");

/// A tenant's API key: 256 random bits, `vpk_` and 64 hex digits. Shown once, when the
/// tenant is created; only its SHA-256 is stored. Zeroized on drop; `Debug` hides it.
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    pub(crate) fn random() -> Self {
        let bytes = Zeroizing::new(random_bytes::<32>());
        Self(Zeroizing::new(format!("vpk_{}", hex::encode(*bytes))))
    }

    /// The key's text, to hand to the tenant once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The SHA-256 of a key: what is stored and compared. A key has 256 random bits (or is the
/// operator's `--api-key`), so a plain hash is enough: there is nothing to guess from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct KeyHash(pub(crate) [u8; 32]);

impl KeyHash {
    pub(crate) fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Equality in time independent of where the hashes differ.
    pub(crate) fn ct_eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(***)")
    }
}
