//! The input, opened once, and what a checkpoint records of it: typed, and refused when
//! malformed instead of read as zero.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use varpulis_checkpoint::Checkpoint;
use varpulis_core::EventTime;

use super::RunError;
use crate::source::{EventFormat, SourcePosition};

/// Metadata keys written into every checkpoint by the runner.
pub(super) mod meta {
    /// Canonical path of the input file.
    pub(crate) const INPUT: &str = "input";
    /// Lines of the input consumed.
    pub(crate) const INPUT_LINE: &str = "input_line";
    /// Event time of the last input event read (`.evt` lines without `@` inherit it).
    pub(crate) const INPUT_LAST_TIME_MS: &str = "input_last_time_ms";
    /// Absolute path of the output, if any (a file, or a stream such as `/dev/null`: then no
    /// length is recorded).
    pub(crate) const OUTPUT: &str = "output";
    /// Version of the engine that wrote the checkpoint.
    pub(crate) const ENGINE_VERSION: &str = "engine_version";
    /// Device of the input file (identity, for the message when it was replaced).
    pub(crate) const INPUT_DEV: &str = "input_dev";
    /// Inode of the input file (identity, for the message when it was replaced).
    pub(crate) const INPUT_INO: &str = "input_ino";
    /// Length of the input prefix hashed into [`INPUT_PREFIX_HASH`].
    pub(crate) const INPUT_PREFIX_LEN: &str = "input_prefix_len";
    /// XXH3-128 (hex) of the input's first [`INPUT_PREFIX_LEN`] bytes: the input's identity.
    pub(crate) const INPUT_PREFIX_HASH: &str = "input_prefix_hash";
}

/// Bytes of the input hashed into its identity (at most; less when less was consumed).
pub(super) const INPUT_PREFIX_BYTES: u64 = 64 * 1024;

/// The `source_offsets` key of an input file.
#[must_use]
pub(super) fn input_offset_key(canonical: &Path) -> String {
    format!("input:{}", canonical.display())
}

/// The `source_offsets` key of an output file.
#[must_use]
pub(super) fn output_offset_key(absolute: &Path) -> String {
    format!("output:{}", absolute.display())
}

/// The run's input: opened once, as a regular file.
pub(super) struct Input {
    /// The path as given (for messages).
    pub(super) path: PathBuf,
    /// The canonical path (the key of its offset in checkpoints).
    pub(super) canonical: PathBuf,
    /// `input:<canonical path>`.
    pub(super) key: String,
    pub(super) format: EventFormat,
    /// The one handle everything reads: identity hashes and, through a clone, the reader.
    pub(super) file: File,
}

impl Input {
    /// Opens `path` (a FIFO or `/dev/stdin` cannot resume: refused before opening).
    pub(super) fn open(path: &Path) -> Result<Self, RunError> {
        let file = crate::source::open_regular_file(path)?;
        let format = EventFormat::from_path(path)?;
        let canonical = std::fs::canonicalize(path).map_err(|source| RunError::Input {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            key: input_offset_key(&canonical),
            canonical,
            format,
            file,
        })
    }

    pub(super) fn io_error(&self, source: io::Error) -> RunError {
        RunError::Input {
            path: self.path.clone(),
            source,
        }
    }

    /// The identity of the input over its first `prefix_len` bytes (`None` if shorter).
    pub(super) fn identity(&self, prefix_len: u64) -> io::Result<Option<InputIdentity>> {
        InputIdentity::of(&self.file, prefix_len)
    }

    /// Why the input does not match `recorded` at `offset`, if it does not.
    pub(super) fn change(
        &self,
        recorded: &InputIdentity,
        offset: u64,
    ) -> io::Result<Option<String>> {
        let len = self.file.metadata()?.len();
        if len < offset {
            return Ok(Some(format!(
                "it has {len} bytes, fewer than the {offset} already consumed"
            )));
        }
        let Some(now) = self.identity(recorded.prefix_len)? else {
            return Ok(Some(format!(
                "it has fewer than {} bytes",
                recorded.prefix_len
            )));
        };
        if now.prefix_hash == recorded.prefix_hash {
            return Ok(None);
        }
        let inode = if (now.dev, now.ino) == (recorded.dev, recorded.ino) {
            "the same inode, rewritten in place".to_owned()
        } else {
            format!("inode {} replaced by {}", recorded.ino, now.ino)
        };
        Ok(Some(format!(
            "its first {} bytes differ: {inode}",
            recorded.prefix_len
        )))
    }
}

/// The identity of an input file: its first bytes' hash, plus device and inode for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InputIdentity {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) prefix_len: u64,
    pub(super) prefix_hash: String,
}

impl InputIdentity {
    /// Reads the identity of `file` over its first `prefix_len` bytes (`None` if shorter).
    fn of(file: &File, prefix_len: u64) -> io::Result<Option<Self>> {
        let meta = file.metadata()?;
        if meta.len() < prefix_len {
            return Ok(None);
        }
        let mut buf = vec![0; usize::try_from(prefix_len).unwrap_or(usize::MAX)];
        read_exact_at(file, &mut buf, 0)?;
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Ok(Some(Self {
            dev,
            ino,
            prefix_len,
            prefix_hash: format!("{:032x}", twox_hash::XxHash3_128::oneshot(&buf)),
        }))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// What a checkpoint records of the input it was taken on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InputRecord {
    /// The input's canonical path (`None` in checkpoints of runs without one).
    pub(super) path: Option<String>,
    /// Where this run's input resumes, if the checkpoint was taken on it (same key).
    pub(super) position: Option<SourcePosition>,
    /// Event time of the last event read (continues the clock of a next-phase `.evt` file).
    pub(super) last_time_ms: Option<EventTime>,
    /// The identity of the input the checkpoint was taken on (older checkpoints: `None`).
    pub(super) identity: Option<InputIdentity>,
}

impl InputRecord {
    /// Reads the record of `cp` for the input whose offset key is `key`.
    ///
    /// # Errors
    /// [`RunError::BadCheckpoint`] if a value is malformed, or missing where the others say it
    /// must be there (an offset without its line and event time; part of an identity).
    pub(super) fn read(cp: &Checkpoint, key: &str) -> Result<Self, RunError> {
        let last_time_ms = parsed::<EventTime>(cp, meta::INPUT_LAST_TIME_MS, "an event time")?;
        let position = match cp.source_offsets.get(key) {
            None => None,
            Some(&offset) => Some(SourcePosition {
                offset,
                line: required(
                    cp,
                    meta::INPUT_LINE,
                    parsed(cp, meta::INPUT_LINE, "a line number")?,
                )?,
                last_time_ms: required(cp, meta::INPUT_LAST_TIME_MS, last_time_ms)?,
            }),
        };
        let dev = parsed::<u64>(cp, meta::INPUT_DEV, "a device number")?;
        let ino = parsed::<u64>(cp, meta::INPUT_INO, "an inode number")?;
        let prefix_len = parsed::<u64>(cp, meta::INPUT_PREFIX_LEN, "a byte count")?;
        let prefix_hash = cp.metadata.get(meta::INPUT_PREFIX_HASH).cloned();
        let identity = match (dev, ino, prefix_len, prefix_hash) {
            (None, None, None, None) => None,
            (Some(dev), Some(ino), Some(prefix_len), Some(prefix_hash)) => {
                if prefix_hash.len() != 32 || !prefix_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(
                        cp,
                        format!(
                            "metadata {:?} is {prefix_hash:?}, not a 128-bit hex hash",
                            meta::INPUT_PREFIX_HASH
                        ),
                    ));
                }
                Some(InputIdentity {
                    dev,
                    ino,
                    prefix_len,
                    prefix_hash,
                })
            }
            (dev, ino, len, hash) => {
                let missing = [
                    (meta::INPUT_DEV, dev.is_none()),
                    (meta::INPUT_INO, ino.is_none()),
                    (meta::INPUT_PREFIX_LEN, len.is_none()),
                    (meta::INPUT_PREFIX_HASH, hash.is_none()),
                ]
                .into_iter()
                .find_map(|(k, missing)| missing.then_some(k))
                .unwrap_or_default();
                return Err(bad(
                    cp,
                    format!("the input's identity is incomplete: metadata {missing:?} is missing"),
                ));
            }
        };
        Ok(Self {
            path: cp.metadata.get(meta::INPUT).cloned(),
            position,
            last_time_ms,
            identity,
        })
    }

    /// Writes the record for the input `input` at `position` into `cp`.
    pub(super) fn write(
        cp: &mut Checkpoint,
        input: &Input,
        position: SourcePosition,
        identity: &InputIdentity,
    ) {
        cp.source_offsets.insert(input.key.clone(), position.offset);
        for (k, v) in [
            (meta::INPUT, input.canonical.display().to_string()),
            (meta::INPUT_LINE, position.line.to_string()),
            (meta::INPUT_LAST_TIME_MS, position.last_time_ms.to_string()),
            (meta::INPUT_DEV, identity.dev.to_string()),
            (meta::INPUT_INO, identity.ino.to_string()),
            (meta::INPUT_PREFIX_LEN, identity.prefix_len.to_string()),
            (meta::INPUT_PREFIX_HASH, identity.prefix_hash.clone()),
        ] {
            cp.metadata.insert(k.to_owned(), v);
        }
    }
}

fn bad(cp: &Checkpoint, what: String) -> RunError {
    RunError::BadCheckpoint { id: cp.id, what }
}

/// The metadata value at `key` parsed as `T` (`None` if absent).
fn parsed<T: FromStr>(cp: &Checkpoint, key: &str, expected: &str) -> Result<Option<T>, RunError> {
    match cp.metadata.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| bad(cp, format!("metadata {key:?} is {v:?}, not {expected}"))),
    }
}

fn required<T>(cp: &Checkpoint, key: &str, value: Option<T>) -> Result<T, RunError> {
    value.ok_or_else(|| {
        bad(
            cp,
            format!("it records an input offset but no metadata {key:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "input:/data/in.jsonl";

    fn recorded() -> Checkpoint {
        let mut cp = Checkpoint::new(0);
        cp.id = 7;
        cp.source_offsets.insert(KEY.to_owned(), 120);
        for (k, v) in [
            (meta::INPUT, "/data/in.jsonl"),
            (meta::INPUT_LINE, "3"),
            (meta::INPUT_LAST_TIME_MS, "-5"),
            (meta::INPUT_DEV, "1"),
            (meta::INPUT_INO, "2"),
            (meta::INPUT_PREFIX_LEN, "120"),
            (meta::INPUT_PREFIX_HASH, "0123456789abcdef0123456789abcdef"),
        ] {
            cp.metadata.insert(k.to_owned(), v.to_owned());
        }
        cp
    }

    #[test]
    fn a_complete_record_reads_back_typed() {
        let r = InputRecord::read(&recorded(), KEY).unwrap();
        assert_eq!(
            r.position,
            Some(SourcePosition {
                offset: 120,
                line: 3,
                last_time_ms: -5
            })
        );
        assert_eq!(r.identity.unwrap().prefix_len, 120);
        assert_eq!(r.path.as_deref(), Some("/data/in.jsonl"));
        // Another input: no position, the rest still read.
        let other = InputRecord::read(&recorded(), "input:/other").unwrap();
        assert_eq!((other.position, other.last_time_ms), (None, Some(-5)));
    }

    #[test]
    fn a_checkpoint_without_an_identity_is_older_not_damaged() {
        let mut cp = recorded();
        for k in [
            meta::INPUT_DEV,
            meta::INPUT_INO,
            meta::INPUT_PREFIX_LEN,
            meta::INPUT_PREFIX_HASH,
        ] {
            cp.metadata.remove(k);
        }
        assert_eq!(InputRecord::read(&cp, KEY).unwrap().identity, None);
    }

    #[test]
    fn a_malformed_or_missing_value_is_refused_naming_the_key_not_read_as_zero() {
        let cases: [(&str, Option<&str>, &str); 6] = [
            (
                meta::INPUT_LINE,
                Some("three"),
                "\"input_line\" is \"three\", not a line number",
            ),
            (meta::INPUT_LINE, None, "no metadata \"input_line\""),
            (meta::INPUT_LAST_TIME_MS, Some("1e3"), "not an event time"),
            (
                meta::INPUT_LAST_TIME_MS,
                None,
                "no metadata \"input_last_time_ms\"",
            ),
            (meta::INPUT_INO, None, "\"input_ino\" is missing"),
            (
                meta::INPUT_PREFIX_HASH,
                Some("xyz"),
                "not a 128-bit hex hash",
            ),
        ];
        for (key, value, message) in cases {
            let mut cp = recorded();
            match value {
                Some(v) => cp.metadata.insert(key.to_owned(), v.to_owned()),
                None => cp.metadata.remove(key),
            };
            let err = InputRecord::read(&cp, KEY).unwrap_err();
            assert!(
                matches!(err, RunError::BadCheckpoint { id: 7, .. }),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(message), "{key}: {text}");
            assert!(text.starts_with("checkpoint 7: "), "{text}");
        }
    }
}
