//! A state directory: one process at a time, and a record of what it holds.
//!
//! A directory given as `--state-dir` holds a store (a [`FileStore`](crate::FileStore) tree,
//! a RocksDB database, possibly encrypted). Two mistakes destroy such a directory silently
//! unless something stops them: two processes writing it at once, and a later open with other
//! settings (another store kind, or without the encryption key) that takes the existing data
//! for garbage and starts over. [`StateDir`] guards against both:
//!
//! - [`StateDir::lock`] takes an exclusive advisory lock on [`LOCK_FILE`] for as long as the
//!   value lives (as RocksDB does with its `LOCK`), and writes the holder's pid into it, so a
//!   second process fails at once with [`DirError::InUse`] naming that pid. The lock is
//!   released by the kernel when the process exits, even by `kill -9`.
//! - [`IDENTITY_FILE`] records, when the directory is first used, what it is
//!   ([`DirIdentity`]: format version, store kind, encryption). Callers compare it with what
//!   they were asked to open and refuse a mismatch, naming the missing flag.
//!
//! A directory that has neither record nor any content is new. A non-empty directory without a
//! record is either one written before records existed (recognised by its content, see
//! [`Contents`]) or not a state directory at all (`--state-dir $HOME`), which is refused
//! before anything in it is touched.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file, held exclusively by the process that uses the directory.
pub const LOCK_FILE: &str = "varpulis.lock";
/// The identity record (JSON).
pub const IDENTITY_FILE: &str = "varpulis-state.json";
/// The temporary file the identity record is written through.
const IDENTITY_TEMP: &str = "varpulis-state.json.tmp";
/// The identity record's format version written today.
pub const DIR_FORMAT: u32 = 1;
/// Largest identity record read (it is a few hundred bytes).
const MAX_IDENTITY_BYTES: u64 = 64 * 1024;

/// How the values in a state directory are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Encryption {
    /// Plaintext.
    None,
    /// A raw 256-bit key; `key_id` is the id of the key the directory was created with.
    Key {
        /// The key id at creation. Written as 8 hex digits (`"0000002a"`), as every message
        /// prints key ids; a plain JSON number (records of the first format-1 builds) is read
        /// too.
        #[serde(with = "key_id_hex")]
        key_id: u32,
    },
    /// A key derived from a passphrase (Argon2id; salt and parameters live in the store).
    Passphrase,
}

/// Key ids as 8 hex digits in the record (a JSON number is accepted when reading).
mod key_id_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(id: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{id:08x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(u32),
            Hex(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(n) => Ok(n),
            Repr::Hex(h) if h.len() == 8 => u32::from_str_radix(&h, 16)
                .map_err(|_| D::Error::custom(format!("key_id {h:?} is not 8 hex digits"))),
            Repr::Hex(h) => Err(D::Error::custom(format!(
                "key_id {h:?} is not 8 hex digits"
            ))),
        }
    }
}

impl Encryption {
    /// Whether values are encrypted.
    #[must_use]
    pub fn is_encrypted(self) -> bool {
        !matches!(self, Self::None)
    }
}

/// What a state directory holds, recorded when it is first used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirIdentity {
    /// Format of this record ([`DIR_FORMAT`]).
    pub format: u32,
    /// The store kind, as the command line names it (`file`, `rocksdb`).
    pub store: String,
    /// How values are encrypted.
    pub encryption: Encryption,
    /// The program and version that created the directory (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl DirIdentity {
    /// An identity of today's format.
    #[must_use]
    pub fn new(store: impl Into<String>, encryption: Encryption) -> Self {
        Self {
            format: DIR_FORMAT,
            store: store.into(),
            encryption,
            created_by: None,
        }
    }

    /// Sets [`created_by`](Self::created_by).
    #[must_use]
    pub fn created_by(mut self, by: impl Into<String>) -> Self {
        self.created_by = Some(by.into());
        self
    }
}

/// What a directory without an identity record contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Contents {
    /// Nothing (besides the lock file): a new state directory.
    Empty,
    /// A RocksDB database (a `CURRENT` file), written before identity records existed.
    RocksDb,
    /// A file-store tree (only directories named like key segments and `.val` files),
    /// written before identity records existed.
    FileStore,
    /// Something else: not a state directory.
    Foreign,
}

/// Errors of [`StateDir`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The path exists and is not a directory.
    #[error("state directory {} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path does not exist (and the caller asked not to create it).
    #[error("state directory {} does not exist", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// Another process holds the lock.
    #[error(
        "state directory {} is in use by another process{}: wait for it to finish, or use another directory",
        path.display(),
        pid.map_or_else(String::new, |p| format!(" (pid {p})"))
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, if it could be read from the lock file.
        pid: Option<u32>,
    },
    /// The identity record cannot be parsed.
    #[error("state directory {}: unreadable {IDENTITY_FILE}: {reason}", path.display())]
    BadIdentity {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The identity record is of a newer format than this build understands.
    #[error(
        "state directory {} was created by a newer version (record format {found}, this build reads up to {DIR_FORMAT})",
        path.display()
    )]
    NewerFormat {
        /// The directory.
        path: PathBuf,
        /// The format found.
        found: u32,
    },
    /// An operating-system error.
    #[error("i/o error at {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DirError + '_ {
    move |source| DirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A locked state directory. The lock is held until this value is dropped.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    lock_file: File,
    identity: Option<DirIdentity>,
    /// What the directory was when it was locked: created by the lock, or empty.
    fresh: Option<Fresh>,
}

/// A directory that held nothing when it was locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// The lock created it.
    Created,
    /// It existed, empty.
    Empty,
}

impl StateDir {
    /// Creates `path` if it is missing (with `create`), locks it and reads its identity record.
    ///
    /// # Errors
    /// [`DirError::NotADirectory`], [`DirError::Missing`] (without `create`),
    /// [`DirError::InUse`] naming the holder's pid, [`DirError::BadIdentity`],
    /// [`DirError::NewerFormat`], [`DirError::Io`].
    pub fn lock(path: impl AsRef<Path>, create: bool) -> Result<Self, DirError> {
        let root = path.as_ref().to_path_buf();
        let mut created = false;
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(DirError::NotADirectory { path: root }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Err(DirError::Missing { path: root });
                }
                fs::create_dir_all(&root).map_err(io_err(&root))?;
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
                created = true;
            }
            Err(e) => return Err(io_err(&root)(e)),
        }
        let lock_path = root.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = lock
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(DirError::InUse { path: root, pid });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        lock.set_len(0).map_err(io_err(&lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io_err(&lock_path))?;
        // A record write that a crash interrupted left only its temporary file.
        let temp = root.join(IDENTITY_TEMP);
        if temp.is_file() {
            fs::remove_file(&temp).map_err(io_err(&temp))?;
        }
        let identity = read_identity(&root)?;
        let mut dir = Self {
            root,
            lock_file: lock,
            identity,
            fresh: None,
        };
        dir.fresh = if created {
            Some(Fresh::Created)
        } else if dir.identity.is_none() && dir.contents()? == Contents::Empty {
            Some(Fresh::Empty)
        } else {
            None
        };
        Ok(dir)
    }

    /// Whether the directory held nothing (no record, no store) when it was locked.
    #[must_use]
    pub fn was_empty(&self) -> bool {
        self.fresh.is_some()
    }

    /// Undoes the first use of a directory that was empty when it was locked: removes
    /// everything written into it since (the record, the store's files), and the directory
    /// itself if the lock created it. For a first run that was refused or failed before it
    /// committed anything, so that the mistake does not leave a directory pinned to the flags
    /// of a run that never happened. A directory that held anything when it was locked is
    /// left as it is.
    ///
    /// # Errors
    /// [`DirError::Io`] if something cannot be removed (what could be removed is).
    pub fn discard_if_new(self) -> Result<(), DirError> {
        let Some(fresh) = self.fresh else {
            return Ok(());
        };
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name();
            if name == LOCK_FILE || name == "lost+found" {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().map_err(io_err(&path))?.is_dir();
            if is_dir {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        if fresh == Fresh::Created {
            let lock = self.root.join(LOCK_FILE);
            fs::remove_file(&lock).map_err(io_err(&lock))?;
            drop(self.lock_file);
            fs::remove_dir(&self.root).map_err(io_err(&self.root))?;
        } else {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The identity record, if the directory has one.
    #[must_use]
    pub fn identity(&self) -> Option<&DirIdentity> {
        self.identity.as_ref()
    }

    /// What the directory contains, judged from its entries (for directories without a record).
    ///
    /// # Errors
    /// [`DirError::Io`] if the directory cannot be read.
    pub fn contents(&self) -> Result<Contents, DirError> {
        let mut empty = true;
        let mut rocks = false;
        let mut foreign = false;
        let mut known = false;
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Ours, or what a crash while writing the record left; `lost+found` is what a
            // dedicated file system mounted here brings.
            if name == LOCK_FILE
                || name == IDENTITY_FILE
                || name == IDENTITY_TEMP
                || name == "lost+found"
            {
                continue;
            }
            empty = false;
            let is_dir = entry.file_type().map_err(io_err(&entry.path()))?.is_dir();
            if !is_dir && (name == "CURRENT" || name == "IDENTITY" || name.ends_with(".dbtmp")) {
                // A RocksDB database, or one whose creation a crash interrupted.
                rocks = true;
            }
            known |= is_dir && (name == "varpulis" || name == "__varpulis-crypto");
            let store_like = if is_dir {
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
            } else {
                name.ends_with(".val")
            };
            foreign |= !store_like;
        }
        Ok(if empty {
            Contents::Empty
        } else if rocks {
            Contents::RocksDb
        } else if foreign || !known {
            Contents::Foreign
        } else {
            Contents::FileStore
        })
    }

    /// Writes the identity record (atomically and durably: temporary file, fsync, rename,
    /// directory fsync) and keeps it as [`identity`](Self::identity).
    ///
    /// # Errors
    /// [`DirError::Io`].
    pub fn record(&mut self, identity: DirIdentity) -> Result<(), DirError> {
        let path = self.root.join(IDENTITY_FILE);
        let temp = self.root.join(IDENTITY_TEMP);
        let mut text = serde_json::to_vec_pretty(&identity).map_err(|e| DirError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        text.push(b'\n');
        let mut file = File::create(&temp).map_err(io_err(&temp))?;
        file.write_all(&text).map_err(io_err(&temp))?;
        file.sync_all().map_err(io_err(&temp))?;
        drop(file);
        fs::rename(&temp, &path).map_err(io_err(&path))?;
        sync_dir(&self.root)?;
        self.identity = Some(identity);
        Ok(())
    }
}

fn read_identity(root: &Path) -> Result<Option<DirIdentity>, DirError> {
    let path = root.join(IDENTITY_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_IDENTITY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(&path))?;
    let bad = |reason: String| DirError::BadIdentity {
        path: root.to_path_buf(),
        reason,
    };
    if bytes.len() as u64 > MAX_IDENTITY_BYTES {
        return Err(bad(format!("larger than {MAX_IDENTITY_BYTES} bytes")));
    }
    // Read the format first, so a newer record with fields we do not know is reported as newer.
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if format.format > DIR_FORMAT {
        return Err(DirError::NewerFormat {
            path: root.to_path_buf(),
            found: format.format,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

fn sync_dir(dir: &Path) -> Result<(), DirError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_fails_naming_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::lock(dir.path(), true).unwrap();
        let err = StateDir::lock(dir.path(), true).unwrap_err();
        match &err {
            DirError::InUse { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        drop(first);
        StateDir::lock(dir.path(), true).expect("the lock is free after drop");
    }

    #[test]
    fn the_identity_record_round_trips_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = StateDir::lock(dir.path(), true).unwrap();
        assert_eq!(d.identity(), None);
        assert_eq!(d.contents().unwrap(), Contents::Empty);
        let id = DirIdentity::new("rocksdb", Encryption::Key { key_id: 7 }).created_by("t");
        d.record(id.clone()).unwrap();
        drop(d);
        let d = StateDir::lock(dir.path(), false).unwrap();
        assert_eq!(d.identity(), Some(&id));
    }

    #[test]
    fn key_ids_are_recorded_as_hex_and_decimal_records_still_read() {
        let id = DirIdentity::new("file", Encryption::Key { key_id: 0x2a });
        let text = serde_json::to_string(&id).unwrap();
        assert!(text.contains(r#""key_id":"0000002a""#), "{text}");
        let back: DirIdentity = serde_json::from_str(&text).unwrap();
        assert_eq!(back, id);
        let old = r#"{"format":1,"store":"file","encryption":{"kind":"key","key_id":42}}"#;
        let back: DirIdentity = serde_json::from_str(old).unwrap();
        assert_eq!(back.encryption, Encryption::Key { key_id: 42 });
        for bad in [r#""2a""#, r#""zzzzzzzz""#, "-1"] {
            let text = format!(
                r#"{{"format":1,"store":"file","encryption":{{"kind":"key","key_id":{bad}}}}}"#
            );
            assert!(
                serde_json::from_str::<DirIdentity>(&text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn discarding_a_new_directory_removes_what_its_first_use_wrote() {
        let parent = tempfile::tempdir().unwrap();
        // Created by the lock: removed entirely.
        let created = parent.path().join("new");
        let mut d = StateDir::lock(&created, true).unwrap();
        assert!(d.was_empty());
        d.record(DirIdentity::new("file", Encryption::None))
            .unwrap();
        fs::create_dir_all(created.join("varpulis/ckpt")).unwrap();
        fs::write(created.join("varpulis/ckpt/m.val"), b"x").unwrap();
        d.discard_if_new().unwrap();
        assert!(!created.exists());
        // Existing and empty: emptied again, kept.
        let empty = parent.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let mut d = StateDir::lock(&empty, true).unwrap();
        assert!(d.was_empty());
        d.record(DirIdentity::new("file", Encryption::None))
            .unwrap();
        d.discard_if_new().unwrap();
        let left: Vec<_> = fs::read_dir(&empty)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(LOCK_FILE)]);
        // Used before: untouched.
        let mut d = StateDir::lock(&empty, true).unwrap();
        d.record(DirIdentity::new("file", Encryption::None))
            .unwrap();
        drop(d);
        let d = StateDir::lock(&empty, true).unwrap();
        assert!(!d.was_empty());
        d.discard_if_new().unwrap();
        assert!(empty.join(IDENTITY_FILE).is_file());
    }

    #[test]
    fn a_file_is_not_a_directory_and_a_missing_one_is_created_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = StateDir::lock(&file, true).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
        let missing = dir.path().join("new");
        assert!(matches!(
            StateDir::lock(&missing, false),
            Err(DirError::Missing { .. })
        ));
        StateDir::lock(&missing, true).unwrap();
        assert!(missing.is_dir());
    }

    #[test]
    fn contents_tell_legacy_stores_from_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = StateDir::lock(dir.path(), true).unwrap();
        fs::create_dir_all(dir.path().join("varpulis/ckpt")).unwrap();
        fs::write(dir.path().join("varpulis/ckpt/m.val"), b"x").unwrap();
        assert_eq!(d.contents().unwrap(), Contents::FileStore);
        fs::write(dir.path().join(IDENTITY_TEMP), b"{").unwrap();
        fs::create_dir(dir.path().join("lost+found")).unwrap();
        assert_eq!(
            d.contents().unwrap(),
            Contents::FileStore,
            "crash leftovers are ours"
        );
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(d.contents().unwrap(), Contents::Foreign);
        fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        assert_eq!(d.contents().unwrap(), Contents::RocksDb);
        let only_dirs = tempfile::tempdir().unwrap();
        fs::create_dir_all(only_dirs.path().join("src/project")).unwrap();
        let d = StateDir::lock(only_dirs.path(), false).unwrap();
        assert_eq!(
            d.contents().unwrap(),
            Contents::Foreign,
            "a home directory is not a store"
        );
    }

    #[test]
    fn a_newer_or_damaged_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(IDENTITY_FILE),
            br#"{"format": 99, "store": "s3"}"#,
        )
        .unwrap();
        let err = StateDir::lock(dir.path(), false).unwrap_err();
        assert!(
            matches!(err, DirError::NewerFormat { found: 99, .. }),
            "{err}"
        );
        fs::write(dir.path().join(IDENTITY_FILE), b"{not json").unwrap();
        let err = StateDir::lock(dir.path(), false).unwrap_err();
        assert!(matches!(err, DirError::BadIdentity { .. }), "{err}");
    }
}
