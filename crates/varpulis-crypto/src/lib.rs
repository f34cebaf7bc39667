#![forbid(unsafe_code)]
//! Encryption at rest for the Varpulis state layer.
//!
//! This crate is [`EncryptedStateStore<S>`], a [`StateStore`] wrapper that encrypts every value
//! with AES-256-GCM before it reaches the inner store `S` (memory, file, RocksDB, ...), together
//! with what it needs: [`EncryptionKey`] (zeroized on drop, never printed), [`KeyId`],
//! [`Keyring`] for rotation, and Argon2id passphrase derivation ([`KdfParams`]).
//!
//! It is **not** a storage engine and **not** a general-purpose crypto library: it stores
//! nothing itself and only knows the `StateStore` trait. It must never depend on RocksDB (or any
//! other backend crate); only `varpulis-store`, `ring` (optional) and the RustCrypto crates
//! (`aes`, `aes-gcm`, `argon2`, `zeroize`).
//!
//! **What is protected:** the contents of values, against reading and against undetected
//! modification (tampering, truncation, swapping values between keys, a wrong key: all are
//! [`StoreError::Corrupt`] or [`StoreError::WrongKey`], never wrong plaintext or a panic).
//! **What is not:** key names, the number of values and their lengths stay visible to anyone who
//! can read the inner store, and an attacker who can write it can delete values or put back an
//! older envelope of the same key (no rollback protection).
//!
//! The byte layout is in `docs/design/encryption.md` and [`envelope`]'s constants.
//!
//! # Features
//! - `ring` (default): AES-256-GCM through `ring`, whose assembly kernels (VAES and VPCLMULQDQ
//!   with AVX2, AES-NI and PCLMULQDQ, ARMv8 crypto extensions) are chosen at run time.
//!   Without it (`default-features = false`) the portable, pure-Rust `aes-gcm` seals and opens,
//!   for targets `ring` does not build on. Both write and read the same bytes: a store written
//!   with one opens with the other.
//!
//! # Example
//! ```
//! use varpulis_crypto::{EncryptedStateStore, EncryptionKey};
//! use varpulis_store::{Key, MemoryStore, StateStore, StoreError};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let key = EncryptedStateStore::<MemoryStore>::key_from_hex(&"2a".repeat(32))?;
//! let store = EncryptedStateStore::open(MemoryStore::new(), key).await?;
//!
//! let secret = Key::new("tenants:acme:api-token")?;
//! store.put(&secret, b"hunter2").await?;
//! assert_eq!(store.get(&secret).await?.as_deref(), Some(&b"hunter2"[..]));
//!
//! // The inner store holds an envelope, not the plaintext; the key name stays readable.
//! let raw = store.inner().get(&secret).await?.unwrap();
//! assert!(!raw.windows(7).any(|w| w == b"hunter2"));
//! assert_eq!(store.list(&Key::new("tenants")?).await?, vec![secret]);
//!
//! // Another key is refused when the store is opened, not later as garbage.
//! let other = EncryptionKey::from_hex(&"17".repeat(32))?;
//! let inner = store.into_inner();
//! assert!(matches!(
//!     EncryptedStateStore::open(inner, other).await,
//!     Err(StoreError::WrongKey { .. })
//! ));
//! # Ok::<_, StoreError>(())
//! # }).unwrap();
//! ```

mod cipher;
pub mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod kdf;
mod key;
mod store;

pub use envelope::envelope_key_id;
pub use error::CryptoError;
pub use kdf::{KdfParams, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST, MIN_SALT_LEN, SALT_LEN};
pub use key::{EncryptionKey, KEY_ENV_VAR, KEY_LEN, KeyId, Keyring};
pub use store::{CHECK_KEY, EncryptedStateStore, KDF_KEY, RESERVED_SEGMENT, RotationReport};

#[doc(no_inline)]
pub use varpulis_store::{StateStore, StoreError};
