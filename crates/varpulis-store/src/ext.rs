//! Typed conveniences over any [`StateStore`].

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TypedValueError;
use crate::{Key, StateStore, StoreError};

/// Typed helpers for every [`StateStore`], through a blanket impl.
///
/// Values are encoded with postcard (compact, stable, exact for floats).
#[async_trait]
pub trait StateStoreExt: StateStore {
    /// Encodes `value` with postcard and stores it under `key`.
    ///
    /// # Errors
    /// [`StoreError::Codec`] if the value cannot be encoded, or the store's error.
    async fn put_typed<T: Serialize + Sync + ?Sized>(
        &self,
        key: &Key,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(value).map_err(|source| StoreError::Codec {
            op: "encode",
            key: key.to_string(),
            source: TypedValueError(source),
        })?;
        self.put(key, &bytes).await
    }

    /// Reads and decodes the value under `key`.
    ///
    /// # Errors
    /// [`StoreError::Codec`] if the bytes do not decode as `T`, or the store's error.
    async fn get_typed<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => {
                postcard::from_bytes(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Codec {
                        op: "decode",
                        key: key.to_string(),
                        source: TypedValueError(source),
                    })
            }
        }
    }

    /// Reads the value under `key`, failing with [`StoreError::NotFound`] if it is absent.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or the store's error.
    async fn get_required(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        self.get(key).await?.ok_or_else(|| StoreError::NotFound {
            key: key.to_string(),
        })
    }

    /// Lists every key in the store.
    ///
    /// # Errors
    /// The store's error.
    async fn list_all(&self) -> Result<Vec<Key>, StoreError> {
        self.list(&Key::root()).await
    }
}

impl<S: StateStore + ?Sized> StateStoreExt for S {}
