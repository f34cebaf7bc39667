//! Opening the state store named by the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use varpulis_store::{FileStore, StateStore};

/// State store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreKind {
    /// In memory: nothing persists, no checkpoints are taken.
    Memory,
    /// One file per key under --state-dir (the default with --state-dir).
    File,
    /// RocksDB under --state-dir (needs the `persistence` feature).
    Rocksdb,
}

/// Where state lives, shared by `run` and `checkpoint`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Directory for checkpoints; implies --store file unless --store rocksdb.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// State store backend.
    #[arg(long, value_enum, value_name = "KIND")]
    pub(crate) store: Option<StoreKind>,
    /// Encrypt state at rest (AES-256-GCM). The key comes from VARPULIS_ENCRYPTION_KEY
    /// (64 hex characters), or from a passphrase in the variable named by --passphrase-env.
    #[arg(long)]
    pub(crate) encrypt: bool,
    /// Name of an environment variable holding a passphrase (Argon2id) for --encrypt.
    #[arg(long, value_name = "VAR", requires = "encrypt")]
    pub(crate) passphrase_env: Option<String>,
}

impl StoreArgs {
    /// Opens the store, or `None` for the memory store (nothing persists).
    pub(crate) async fn open(&self) -> Result<Option<Arc<dyn StateStore>>> {
        let kind = match (self.store, &self.state_dir) {
            (Some(StoreKind::Memory), Some(_)) => {
                bail!("--store memory keeps nothing: drop --state-dir, or use --store file")
            }
            (Some(StoreKind::Memory) | None, None) => {
                if self.encrypt {
                    bail!("--encrypt needs a persistent store: add --state-dir DIR");
                }
                return Ok(None);
            }
            (Some(kind @ (StoreKind::File | StoreKind::Rocksdb)), None) => {
                bail!("--store {} needs --state-dir DIR", kind_name(kind))
            }
            (Some(kind), Some(_)) => kind,
            (None, Some(_)) => StoreKind::File,
        };
        let dir = self.state_dir.as_deref().expect("checked above");
        let base = open_base(kind, dir)?;
        if self.encrypt {
            return encrypted(base, self.passphrase_env.as_deref())
                .await
                .map(Some);
        }
        Ok(Some(base))
    }
}

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Memory => "memory",
        StoreKind::File => "file",
        StoreKind::Rocksdb => "rocksdb",
    }
}

fn open_base(kind: StoreKind, dir: &Path) -> Result<Arc<dyn StateStore>> {
    match kind {
        StoreKind::File => {
            let store = FileStore::open(dir)
                .with_context(|| format!("cannot open file store at {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        StoreKind::Rocksdb => open_rocksdb(dir),
        StoreKind::Memory => unreachable!("memory store has no directory"),
    }
}

#[cfg(feature = "persistence")]
fn open_rocksdb(dir: &Path) -> Result<Arc<dyn StateStore>> {
    let store = varpulis_store_rocks::RocksDbStore::open(dir)
        .with_context(|| format!("cannot open RocksDB store at {}", dir.display()))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "persistence"))]
fn open_rocksdb(_dir: &Path) -> Result<Arc<dyn StateStore>> {
    bail!(
        "--store rocksdb needs the `persistence` feature, which this build of varpulis lacks; \
         rebuild with `cargo build -p varpulis-cli --features persistence`"
    )
}

#[cfg(feature = "encryption")]
async fn encrypted(
    base: Arc<dyn StateStore>,
    passphrase_env: Option<&str>,
) -> Result<Arc<dyn StateStore>> {
    use varpulis_crypto::{EncryptedStateStore, EncryptionKey, KEY_ENV_VAR, KdfParams};
    let store = match passphrase_env {
        Some(var) => {
            let passphrase = std::env::var(var).with_context(|| {
                format!("--passphrase-env {var}: the environment variable {var} is not set")
            })?;
            if passphrase.is_empty() {
                bail!("--passphrase-env {var}: the passphrase in {var} is empty");
            }
            EncryptedStateStore::open_with_passphrase(base, &passphrase, KdfParams::default())
                .await
                .context("cannot open the encrypted store with the passphrase")?
        }
        None => {
            let key = EncryptionKey::from_env().with_context(|| {
                format!(
                    "--encrypt needs a key: set {KEY_ENV_VAR} to 64 hex characters, or name a \
                     passphrase variable with --passphrase-env"
                )
            })?;
            EncryptedStateStore::open(base, key)
                .await
                .with_context(|| format!("cannot open the encrypted store with {KEY_ENV_VAR}"))?
        }
    };
    Ok(Arc::new(store))
}

#[cfg(not(feature = "encryption"))]
async fn encrypted(
    _base: Arc<dyn StateStore>,
    _passphrase_env: Option<&str>,
) -> Result<Arc<dyn StateStore>> {
    bail!(
        "--encrypt needs the `encryption` feature, which this build of varpulis lacks; rebuild \
         with `cargo build -p varpulis-cli --features encryption`"
    )
}
