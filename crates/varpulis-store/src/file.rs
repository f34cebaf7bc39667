//! The file-system store: one file per key, durable atomic writes.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::{BatchOp, Capabilities, Key, KeyProblem, StateStore, StoreError, WriteBatch};

/// Suffix of value files.
const VALUE_SUFFIX: &str = ".val";
/// Appended to a directory whose segment itself ends in `.val`, so it never collides with the
/// value file of a shorter key (`x` is `x.val`; `x.val:y` lives in `x.val~/y.val`).
const DIR_ESCAPE: char = '~';
/// Marks temporary files. `~` never appears in a segment, so no key maps to a temp file.
const TEMP_MARK: &str = "~tmp-";
/// Longest path we hand to the OS (Linux `PATH_MAX` is 4096 including the NUL).
const MAX_PATH_BYTES: usize = 4000;

/// A store that keeps each key in its own file under a root directory (`--state-dir`).
///
/// Key `a:b:c` is the file `a/b/c.val` under the root; see `docs/design/state-format.md`.
/// A put writes a uniquely named temporary file in the same directory, fsyncs it, renames it
/// over the value file and fsyncs the directory, so a reader (or a restart after a crash or
/// power loss) sees the old value or the new one, never a mix. Temporary files left by a crash
/// are removed by [`FileStore::open`]. Concurrent writers to one key each rename a complete file;
/// the last rename wins.
///
/// `write_batch` is not atomic here ([`Capabilities::atomic_batch`] is false): operations are
/// applied in order and a failure leaves the ones before it applied. A batch fsyncs each file
/// it writes, and each directory it changed once at the end, so a batch of many keys under one
/// prefix costs one directory fsync instead of one per key; when it returns, everything it
/// applied is as durable as after the same puts and deletes one by one. Since every operation
/// is durable when it returns, `flush` has nothing left to do.
///
/// Blocking file-system calls run on tokio's blocking pool, so the store must be used inside a
/// tokio runtime.
///
/// ```
/// use varpulis_store::{FileStore, Key, StateStore, StoreError};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::open(dir.path())?;
/// store.put(&Key::new("tenants:acme")?, b"{}").await?;
/// assert!(dir.path().join("tenants/acme.val").is_file());
/// # Ok::<_, StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    root: Arc<Path>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileStore {
    /// Opens (creating if needed) the store rooted at `dir`, and removes temporary files that a
    /// crash left behind.
    ///
    /// # Errors
    /// [`StoreError::Io`] naming the path that could not be created or scanned.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            fs::create_dir_all(&root).map_err(|e| StoreError::io(&root, e))?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let removed = remove_stale_temps(&root)?;
        if removed > 0 {
            tracing::info!(root = %root.display(), removed, "removed stale temporary files");
        }
        Ok(Self {
            root: Arc::from(root),
        })
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key` (whether or not it exists).
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for the root key or a key whose path is too long for the OS.
    pub fn path_of(&self, key: &Key) -> Result<PathBuf, StoreError> {
        key.require_value_key()?;
        let path = self
            .dir_of(key, key.len() - 1)
            .join(value_file_name(key.last_segment().unwrap_or_default()));
        // Room for the temporary-file suffix.
        if path.as_os_str().len() + 48 > MAX_PATH_BYTES {
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                problem: KeyProblem::TooLongForBackend,
            });
        }
        Ok(path)
    }

    /// Directory for the first `n` segments of `key`.
    fn dir_of(&self, key: &Key, n: usize) -> PathBuf {
        let mut dir = self.root.to_path_buf();
        for seg in key.segments().take(n) {
            dir.push(dir_name(seg));
        }
        dir
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| StoreError::Unavailable {
                reason: format!("file store task failed: {e}"),
            })?
    }
}

fn value_file_name(segment: &str) -> String {
    format!("{segment}{VALUE_SUFFIX}")
}

fn dir_name(segment: &str) -> String {
    if segment.ends_with(VALUE_SUFFIX) {
        format!("{segment}{DIR_ESCAPE}")
    } else {
        segment.to_owned()
    }
}

/// The segment a directory entry stands for, if it is one of ours.
fn segment_of_dir(name: &str) -> Option<&str> {
    match name.strip_suffix(DIR_ESCAPE) {
        Some(seg) if seg.ends_with(VALUE_SUFFIX) => Some(seg),
        Some(_) => None,
        None if name.ends_with(VALUE_SUFFIX) || name.contains(DIR_ESCAPE) => None,
        None => Some(name),
    }
}

fn segment_of_file(name: &str) -> Option<&str> {
    if name.contains(DIR_ESCAPE) {
        return None;
    }
    name.strip_suffix(VALUE_SUFFIX)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Creates the directories from `root` down to `dir`, fsyncing each parent whose entries changed
/// so that a new directory survives power loss.
fn ensure_dir(root: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut current = root.to_path_buf();
    for component in rel.components() {
        let parent = current.clone();
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(&current, e)),
        }
    }
    Ok(())
}

/// Removes the temporary files a crash left behind, and only those: files named
/// `<segment>.val~tmp-<pid>-<counter>-<8 hex digits>`, in directories that map to key
/// segments. Anything else under the root (a user's files, another program's `~tmp-` files,
/// symbolic links) is left alone and not descended into.
fn remove_stale_temps(dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if file_type.is_dir() {
            if segment_of_dir(name).is_some_and(Key::is_valid_segment) {
                removed += remove_stale_temps(&path)?;
            }
        } else if file_type.is_file() && is_own_temp(name) {
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether `name` is a temporary file written by [`replace_file`].
fn is_own_temp(name: &str) -> bool {
    let Some((file, tail)) = name.split_once(TEMP_MARK) else {
        return false;
    };
    let mut parts = tail.split('-');
    let (Some(pid), Some(counter), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    segment_of_file(file).is_some_and(Key::is_valid_segment)
        && digits(pid)
        && digits(counter)
        && random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

fn write_atomically(root: &Path, path: &Path, value: &[u8]) -> Result<(), StoreError> {
    replace_file(root, path, value)?;
    sync_dir(path.parent().unwrap_or(root))
}

/// Writes `value` to a fresh temporary file next to `path`, fsyncs it and renames it over
/// `path`. The caller fsyncs the directory (the rename is durable only then).
fn replace_file(root: &Path, path: &Path, value: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(root);
    ensure_dir(root, dir)?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(
        "{file_name}{TEMP_MARK}{}-{}-{:08x}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| StoreError::io(&temp, e))?;
        file.write_all(value)
            .map_err(|e| StoreError::io(&temp, e))?;
        file.sync_all().map_err(|e| StoreError::io(&temp, e))?;
        drop(file);
        fs::rename(&temp, path).map_err(|e| StoreError::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn remove(root: &Path, path: &Path) -> Result<(), StoreError> {
    if unlink(path)? {
        sync_dir(path.parent().unwrap_or(root))?;
    }
    Ok(())
}

/// Removes the file at `path`; `false` if there was none. The caller fsyncs the directory.
fn unlink(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Applies a batch in order, fsyncing every directory it changed once at the end (also when an
/// operation fails, so the operations before it are as durable as single puts would be).
fn apply_batch(root: &Path, ops: Vec<(PathBuf, Option<Vec<u8>>)>) -> Result<(), StoreError> {
    let mut changed: BTreeSet<PathBuf> = BTreeSet::new();
    let result = ops.into_iter().try_for_each(|(path, value)| {
        let touched = match value {
            Some(v) => {
                replace_file(root, &path, &v)?;
                true
            }
            None => unlink(&path)?,
        };
        if touched {
            let dir = path.parent().unwrap_or(root);
            if !changed.contains(dir) {
                changed.insert(dir.to_path_buf());
            }
        }
        Ok(())
    });
    // Every changed directory is synced even if one fails; the first error is reported, an
    // operation's before a sync's.
    let mut synced = Ok(());
    for dir in &changed {
        if let Err(e) = sync_dir(dir)
            && synced.is_ok()
        {
            synced = Err(e);
        }
    }
    result.and(synced)
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Collects every key stored under `dir`, whose segments are `prefix`.
fn walk(dir: &Path, prefix: &Key, out: &mut Vec<Key>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if file_type.is_dir() {
            if let Some(seg) = segment_of_dir(name)
                && let Ok(child) = prefix.child(seg)
            {
                walk(&path, &child, out)?;
            }
        } else if let Some(seg) = segment_of_file(name)
            && let Ok(child) = prefix.child(seg)
        {
            out.push(child);
        }
    }
    Ok(())
}

#[async_trait]
impl StateStore for FileStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        self.blocking(move |_| read(&path)).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let value = value.to_vec();
        self.blocking(move |root| write_atomically(root, &path, &value))
            .await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        self.blocking(move |root| remove(root, &path)).await
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let prefix = prefix.clone();
        let store = self.clone();
        self.blocking(move |_| {
            let mut out = Vec::new();
            if prefix.is_root() {
                walk(&store.root, &prefix, &mut out)?;
            } else {
                let file = store.path_of(&prefix)?;
                if file.is_file() {
                    out.push(prefix.clone());
                }
                walk(&store.dir_of(&prefix, prefix.len()), &prefix, &mut out)?;
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let ops = batch
            .into_ops()
            .into_iter()
            .map(|op| match op {
                BatchOp::Put(k, v) => self.path_of(&k).map(|p| (p, Some(v))),
                BatchOp::Delete(k) => self.path_of(&k).map(|p| (p, None)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.blocking(move |root| apply_batch(root, ops)).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Nothing is left to sync: every put, delete and batch fsyncs its files and the
        // directories whose entries it changed before it returns.
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        // Every operation is durable when it returns, so durability follows acknowledgement.
        Capabilities::new(false, true).with_ordered_durability(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keys_to_paths_without_collisions() {
        let store = FileStore {
            root: Arc::from(Path::new("/r")),
        };
        let p = |k: &str| store.path_of(&Key::new(k).unwrap()).unwrap();
        assert_eq!(p("a:b:c"), Path::new("/r/a/b/c.val"));
        assert_eq!(p("a:b"), Path::new("/r/a/b.val"));
        assert_eq!(p("x"), Path::new("/r/x.val"));
        assert_eq!(p("x.val:y"), Path::new("/r/x.val~/y.val"));
        assert_eq!(segment_of_dir("x.val~"), Some("x.val"));
        assert_eq!(segment_of_dir("x.val"), None);
        assert_eq!(segment_of_dir("a"), Some("a"));
        assert_eq!(segment_of_file("c.val"), Some("c"));
        assert_eq!(segment_of_file("c.val~tmp-1-2-3"), None);
    }

    #[test]
    fn recognises_only_its_own_temporary_file_names() {
        assert!(is_own_temp("c.val~tmp-12-0-0a1b2c3d"));
        assert!(!is_own_temp("c.val~tmp-12-0-0a1b2c3"));
        assert!(!is_own_temp("c.val~tmp-12-0-0a1b2c3d-x"));
        assert!(!is_own_temp("notes~tmp-12-0-0a1b2c3d"));
        assert!(!is_own_temp("my~tmp-backup.txt"));
        assert!(!is_own_temp("..val~tmp-1-2-0a1b2c3d"));
    }

    #[test]
    fn open_removes_its_stale_temporaries_but_not_other_files_named_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("Documents has spaces")).unwrap();
        let ours = root.join("a/b/c.val~tmp-7-3-deadbeef");
        let foreign = [
            root.join("a/b/editor~tmp-save"),
            root.join("a/notes.txt~tmp-1-2-deadbeef"),
            root.join("Documents has spaces/c.val~tmp-7-3-deadbeef"),
        ];
        fs::write(&ours, b"x").unwrap();
        for f in &foreign {
            fs::write(f, b"keep").unwrap();
        }
        FileStore::open(root).unwrap();
        assert!(!ours.exists(), "the store's own temporary file is removed");
        for f in &foreign {
            assert!(f.exists(), "{} was deleted", f.display());
        }
    }
}
