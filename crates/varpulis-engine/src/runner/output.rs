//! The output: resolved, refused if it is the input, then cut back to what the checkpoint
//! recorded, refused if no checkpoint knows it, or started over on request.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::background::DurableOutput;
use super::position::{Input, output_offset_key};
use super::recover::Recovered;
use super::{RunConfig, RunError};

/// Where outputs go.
pub(super) enum Sink {
    /// A regular file: exactly once (cut back at restart, synced before each checkpoint).
    File {
        w: BufWriter<File>,
        /// A second handle on the same open file, for the `fsync` a checkpoint does in the
        /// background while `w` goes on writing.
        durable: Arc<File>,
        path: PathBuf,
        /// `output:<absolute path>`, the key of its length in checkpoints.
        key: String,
    },
    /// A file that is not a regular file (`/dev/null`, a FIFO): written, never cut or synced,
    /// and like stdout not part of the exactly-once contract.
    Stream {
        w: BufWriter<File>,
        path: PathBuf,
    },
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    pub(super) fn path(&self) -> PathBuf {
        match self {
            Self::File { path, .. } | Self::Stream { path, .. } => path.clone(),
            Self::Stdout(_) => PathBuf::from("-"),
        }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::File { w, .. } | Self::Stream { w, .. } => w.write_all(bytes),
            Self::Stdout(w) => w.write_all(bytes),
        }
    }

    /// Hands every byte written so far to the OS (a checkpoint records the length written),
    /// and returns what must then be made durable before the checkpoint commits: the file, for
    /// a regular file; nothing for stdout and streams (at least once).
    pub(super) fn hand_off(&mut self) -> io::Result<Option<DurableOutput>> {
        match self {
            Self::File {
                w, durable, path, ..
            } => {
                w.flush()?;
                Ok(Some(DurableOutput {
                    file: Arc::clone(durable),
                    path: path.clone(),
                }))
            }
            Self::Stream { w, .. } => w.flush().map(|()| None),
            Self::Stdout(w) => w.flush().map(|()| None),
        }
    }

    /// Flushes, and for a regular file makes the bytes durable.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        match self {
            Self::File { w, .. } => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            Self::Stream { w, .. } => w.flush(),
            Self::Stdout(w) => w.flush(),
        }
    }

    /// The error of an I/O failure on this sink.
    pub(super) fn error(&self, source: io::Error) -> RunError {
        RunError::Output {
            path: self.path(),
            source,
        }
    }
}

/// Whether `a` and `b` are the same existing file (also through symbolic or hard links).
#[must_use]
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.dev() == y.dev() && x.ino() == y.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok(),
        _ => false,
    }
}

/// The absolute form of the output path (`None`: stdout), refused if it is the input.
pub(super) fn resolve(output: Option<&Path>, input: &Input) -> Result<Option<PathBuf>, RunError> {
    let Some(out) = output else {
        return Ok(None);
    };
    let abs = absolute_output(out).map_err(|source| RunError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    if same_file(&abs, &input.canonical) || abs == input.canonical {
        return Err(RunError::OutputIsInput {
            path: out.to_path_buf(),
        });
    }
    Ok(Some(abs))
}

fn absolute_output(path: &Path) -> io::Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => return std::fs::canonicalize(path),
        // `/dev/stdout` on a pipe resolves to `/proc/self/fd/pipe:[N]`, which cannot be
        // opened: a stream is opened by the name given.
        Ok(_) => return std::path::absolute(path),
        Err(_) => {}
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok(std::fs::canonicalize(parent)?.join(name))
}

/// Opens the output `abs` (`None`: stdout) as recovery decided, recording in
/// `recovered.info` what was cut or discarded.
pub(super) fn open(
    config: &RunConfig,
    abs: Option<PathBuf>,
    recovered: &mut Recovered,
) -> Result<Sink, RunError> {
    let Some(abs) = abs else {
        return Ok(Sink::Stdout(BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        )));
    };
    let err = |source| RunError::Output {
        path: abs.clone(),
        source,
    };
    if abs.exists() && !abs.is_file() {
        // `/dev/null`, a FIFO, a terminal: nothing to cut back, nothing to sync.
        let file = OpenOptions::new().write(true).open(&abs).map_err(err)?;
        return Ok(Sink::Stream {
            w: BufWriter::with_capacity(1 << 16, file),
            path: abs,
        });
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&abs)
        .map_err(err)?;
    // One writer per output: a second run (with another state directory) would interleave
    // its lines and cut back the other's. Released at exit, as the state directory's lock.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(RunError::OutputInUse { path: abs });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    let len = file.metadata().map_err(err)?.len();
    let info = &mut recovered.info;
    let keep = match recovered.output_at {
        Some((recorded, id)) => {
            if len < recorded {
                return Err(RunError::OutputShorter {
                    path: abs,
                    len,
                    recorded,
                    id,
                });
            }
            info.output_truncated_to = Some(recorded);
            info.output_bytes_cut = len - recorded;
            recorded
        }
        None if len > 0 && !config.overwrite_output => {
            return Err(RunError::OutputNotEmpty {
                path: abs,
                len,
                known: std::mem::take(&mut recovered.output_known),
            });
        }
        None => {
            info.output_overwritten = len;
            0
        }
    };
    file.set_len(keep).map_err(err)?;
    file.seek(SeekFrom::Start(keep)).map_err(err)?;
    file.sync_data().map_err(err)?;
    let durable = Arc::new(file.try_clone().map_err(err)?);
    Ok(Sink::File {
        w: BufWriter::with_capacity(1 << 16, file),
        durable,
        key: output_offset_key(&abs),
        path: abs,
    })
}
