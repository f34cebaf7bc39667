//! Opening the state store named by the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use varpulis_store::{
    Contents, DirIdentity, Encryption, FileStore, Key, MemoryStore, StateDir, StateStore,
};

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

/// An open store and the lock on its state directory; the lock is held as long as this lives.
pub(crate) struct OpenedStore {
    /// The store (`None`: the memory store, nothing persists).
    pub(crate) store: Option<Arc<dyn StateStore>>,
    /// The locked state directory, held so the lock lives as long as the store.
    dir: Option<StateDir>,
}

impl OpenedStore {
    /// Closes the store and, if its directory held nothing when this run locked it, removes
    /// what the run wrote there: a first run that failed before committing a checkpoint
    /// leaves no directory pinned to its flags (see [`StateDir::discard_if_new`]).
    pub(crate) fn discard_if_new(self) -> Result<()> {
        drop(self.store);
        match self.dir {
            Some(dir) => {
                let path = dir.path().to_path_buf();
                dir.discard_if_new().with_context(|| {
                    format!("cannot remove what this run wrote into {}", path.display())
                })
            }
            None => Ok(()),
        }
    }
}

/// Why a store is opened: a run may create and record a new state directory; inspection only
/// reads an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Run,
    Inspect,
}

/// First segment of the encryption wrapper's reserved records (`varpulis_crypto::RESERVED_SEGMENT`,
/// spelled out so builds without the `encryption` feature still recognise encrypted stores).
const CRYPTO_SEGMENT: &str = "__varpulis-crypto";

impl StoreArgs {
    fn kind(&self) -> Result<Option<StoreKind>> {
        Ok(match (self.store, &self.state_dir) {
            (Some(StoreKind::Memory), Some(_)) => {
                bail!("--store memory keeps nothing: drop --state-dir, or use --store file")
            }
            (Some(StoreKind::Memory) | None, None) => {
                if self.encrypt {
                    bail!("--encrypt needs a persistent store: add --state-dir DIR");
                }
                None
            }
            (Some(kind @ (StoreKind::File | StoreKind::Rocksdb)), None) => {
                bail!("--store {} needs --state-dir DIR", kind_name(kind))
            }
            (Some(kind), Some(_)) => Some(kind),
            (None, Some(_)) => Some(StoreKind::File),
        })
    }

    /// Reads the key or passphrase `--encrypt` asks for (`None` without it), before anything
    /// is opened: a missing key fails without touching the directory.
    fn read_secret(&self) -> Result<Option<Secret>> {
        if !self.encrypt {
            return Ok(None);
        }
        read_secret(self.passphrase_env.as_deref()).map(Some)
    }

    /// Locks the state directory, checks that it holds what these flags describe (refusing a
    /// mismatch with the flag to add or drop), opens the store, and for a run records the
    /// directory's identity on first use. Without a state directory: the memory store (`None`).
    ///
    /// Nothing is created before the flags are checked and the key is read; a new directory's
    /// record is written before its store, so a crash at any instant leaves either an empty
    /// directory or one whose record says what it holds. If opening fails after that, what
    /// was written into a directory that was empty is removed again.
    pub(crate) async fn open(&self, purpose: Purpose) -> Result<OpenedStore> {
        let Some(kind) = self.kind()? else {
            return Ok(OpenedStore {
                store: None,
                dir: None,
            });
        };
        let path = self
            .state_dir
            .as_deref()
            .expect("a store kind implies a directory");
        let secret = self.read_secret()?;
        let mut dir = StateDir::lock(path, purpose == Purpose::Run)?;
        match self
            .open_locked(kind, path, &mut dir, secret, purpose)
            .await
        {
            Ok(store) => Ok(OpenedStore {
                store: Some(store),
                dir: Some(dir),
            }),
            Err(e) => {
                if let Err(cleanup) = dir.discard_if_new() {
                    tracing::warn!("{cleanup:#}");
                }
                Err(e)
            }
        }
    }

    async fn open_locked(
        &self,
        kind: StoreKind,
        path: &Path,
        dir: &mut StateDir,
        secret: Option<Secret>,
        purpose: Purpose,
    ) -> Result<Arc<dyn StateStore>> {
        let wanted = secret_encryption(secret.as_ref());
        let recorded = match dir.identity() {
            Some(identity) => {
                self.check_identity(path, identity, wanted)?;
                true
            }
            None => {
                let found = match dir.contents()? {
                    Contents::Empty => None,
                    Contents::RocksDb => Some(StoreKind::Rocksdb),
                    Contents::FileStore => Some(StoreKind::File),
                    _ => bail!(
                        "state directory {} is not empty and holds no varpulis state (no {}, and \
                         its files are not a store's): use an empty or new directory",
                        path.display(),
                        varpulis_store::IDENTITY_FILE
                    ),
                };
                match found {
                    Some(found) if found != kind => bail!(
                        "state directory {} holds a {} store: {}",
                        path.display(),
                        kind_name(found),
                        store_flag_fix(found)
                    ),
                    Some(_) => {}
                    None if purpose == Purpose::Inspect => {
                        // Nothing to inspect, and nothing to create for it.
                        return Ok(Arc::new(MemoryStore::new()));
                    }
                    None => {
                        if kind == StoreKind::Rocksdb && !cfg!(feature = "persistence") {
                            // Fails, naming the feature, before anything is recorded.
                            open_rocksdb(path)?;
                        }
                        // A new directory: say what it is before its store exists.
                        dir.record(
                            DirIdentity::new(kind_name(kind), wanted)
                                .created_by(concat!("varpulis ", env!("CARGO_PKG_VERSION"))),
                        )?;
                    }
                }
                found.is_none()
            }
        };
        let base = open_base(kind, path)?;
        if !recorded {
            // Written before records existed: judged by its content; a run records it.
            self.check_legacy_encryption(path, &base).await?;
        }
        let store = match secret {
            Some(secret) => wrap(base, secret).await?,
            None => base,
        };
        if !recorded && purpose == Purpose::Run {
            dir.record(
                DirIdentity::new(kind_name(kind), wanted)
                    .created_by(concat!("varpulis ", env!("CARGO_PKG_VERSION"))),
            )?;
        }
        Ok(store)
    }

    /// Refuses flags that do not match the directory's identity record.
    fn check_identity(
        &self,
        path: &Path,
        identity: &DirIdentity,
        wanted: Encryption,
    ) -> Result<()> {
        let d = path.display();
        let kind = self.kind()?.expect("a state directory is given");
        if identity.store != kind_name(kind) {
            let fix = match identity.store.as_str() {
                "rocksdb" => store_flag_fix(StoreKind::Rocksdb).to_owned(),
                "file" => store_flag_fix(StoreKind::File).to_owned(),
                other => format!("it needs --store {other}"),
            };
            bail!(
                "state directory {d} holds a {} store: {fix}",
                identity.store
            );
        }
        match (identity.encryption, wanted) {
            (Encryption::None, Encryption::None) => Ok(()),
            (Encryption::None, _) => bail!(
                "state directory {d} is not encrypted: drop --encrypt (its checkpoints are \
                 plaintext), or use a new directory for encrypted state"
            ),
            (Encryption::Key { .. }, Encryption::None) => bail!(
                "state directory {d} is encrypted: add --encrypt, with its key in \
                 VARPULIS_ENCRYPTION_KEY"
            ),
            (Encryption::Passphrase, Encryption::None) => bail!(
                "state directory {d} is encrypted with a passphrase: add --encrypt \
                 --passphrase-env VAR, with the passphrase in VAR"
            ),
            (Encryption::Key { .. }, Encryption::Passphrase) => bail!(
                "state directory {d} is encrypted with a raw key, not a passphrase: drop \
                 --passphrase-env and set VARPULIS_ENCRYPTION_KEY"
            ),
            (Encryption::Passphrase, Encryption::Key { .. }) => bail!(
                "state directory {d} is encrypted with a passphrase: add --passphrase-env VAR, \
                 with the passphrase in VAR"
            ),
            (Encryption::Key { key_id: created }, Encryption::Key { key_id: given })
                if created != given =>
            {
                bail!(
                    "state directory {d} is encrypted with the key of key id {created:08x}, but \
                     the key in VARPULIS_ENCRYPTION_KEY has key id {given:08x}: set the \
                     directory's key"
                )
            }
            _ => Ok(()),
        }
    }

    /// For a directory without an identity record (written by an older version): refuse to
    /// open encrypted state as plaintext, or plaintext state with --encrypt.
    async fn check_legacy_encryption(&self, path: &Path, base: &Arc<dyn StateStore>) -> Result<()> {
        let d = path.display();
        let reserved = base
            .list(&Key::new(CRYPTO_SEGMENT).expect("valid key"))
            .await
            .with_context(|| format!("cannot read the store in {d}"))?;
        let encrypted = !reserved.is_empty();
        let passphrase = reserved.iter().any(|k| k.last_segment() == Some("kdf"));
        if encrypted && !self.encrypt {
            if passphrase {
                bail!(
                    "state directory {d} is encrypted with a passphrase: add --encrypt \
                     --passphrase-env VAR, with the passphrase in VAR"
                );
            }
            bail!(
                "state directory {d} is encrypted: add --encrypt, with its key in \
                 VARPULIS_ENCRYPTION_KEY"
            );
        }
        if !encrypted
            && self.encrypt
            && !base
                .list(&Key::root())
                .await
                .with_context(|| format!("cannot read the store in {d}"))?
                .is_empty()
        {
            bail!(
                "state directory {d} is not encrypted: drop --encrypt (its checkpoints are \
                 plaintext), or use a new directory for encrypted state"
            );
        }
        Ok(())
    }
}

/// What to tell a user whose flags name another store kind than the directory holds.
fn store_flag_fix(found: StoreKind) -> &'static str {
    match found {
        StoreKind::Rocksdb => "add --store rocksdb",
        _ => "drop --store rocksdb (or pass --store file)",
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

/// The key material of `--encrypt`.
#[cfg(feature = "encryption")]
pub(crate) enum Secret {
    /// A passphrase (Argon2id derives the key; salt and parameters live in the store).
    Passphrase(zeroize::Zeroizing<String>),
    /// A raw 256-bit key.
    Key(varpulis_crypto::EncryptionKey),
}

/// Without the `encryption` feature there is no key material: `--encrypt` fails early.
#[cfg(not(feature = "encryption"))]
pub(crate) enum Secret {}

#[cfg(feature = "encryption")]
fn read_secret(passphrase_env: Option<&str>) -> Result<Secret> {
    use varpulis_crypto::{EncryptionKey, KEY_ENV_VAR};
    match passphrase_env {
        Some(var) => {
            let passphrase = std::env::var(var).with_context(|| {
                format!("--passphrase-env {var}: the environment variable {var} is not set")
            })?;
            if passphrase.is_empty() {
                bail!("--passphrase-env {var}: the passphrase in {var} is empty");
            }
            Ok(Secret::Passphrase(passphrase.into()))
        }
        None => EncryptionKey::from_env().map(Secret::Key).with_context(|| {
            format!(
                "--encrypt needs a key: set {KEY_ENV_VAR} to 64 hex characters, or name a \
                 passphrase variable with --passphrase-env"
            )
        }),
    }
}

#[cfg(not(feature = "encryption"))]
fn read_secret(_passphrase_env: Option<&str>) -> Result<Secret> {
    bail!(
        "--encrypt needs the `encryption` feature, which this build of varpulis lacks; rebuild \
         with `cargo build -p varpulis-cli --features encryption`"
    )
}

/// The encryption a directory opened with `secret` has.
fn secret_encryption(secret: Option<&Secret>) -> Encryption {
    match secret {
        None => Encryption::None,
        #[cfg(feature = "encryption")]
        Some(Secret::Passphrase(_)) => Encryption::Passphrase,
        #[cfg(feature = "encryption")]
        Some(Secret::Key(key)) => Encryption::Key {
            key_id: key.key_id().as_u32(),
        },
        #[cfg(not(feature = "encryption"))]
        Some(never) => match *never {},
    }
}

/// Wraps `base` in the encryption layer with `secret`.
#[cfg(feature = "encryption")]
async fn wrap(base: Arc<dyn StateStore>, secret: Secret) -> Result<Arc<dyn StateStore>> {
    use varpulis_crypto::{EncryptedStateStore, KEY_ENV_VAR, KdfParams};
    let store = match secret {
        Secret::Passphrase(passphrase) => {
            EncryptedStateStore::open_with_passphrase(base, &passphrase, KdfParams::default())
                .await
                .context("cannot open the encrypted store with the passphrase")?
        }
        Secret::Key(key) => EncryptedStateStore::open(base, key)
            .await
            .with_context(|| format!("cannot open the encrypted store with {KEY_ENV_VAR}"))?,
    };
    Ok(Arc::new(store))
}

#[cfg(not(feature = "encryption"))]
async fn wrap(_base: Arc<dyn StateStore>, secret: Secret) -> Result<Arc<dyn StateStore>> {
    match secret {}
}
