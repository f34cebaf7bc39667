//! Streaming event-file readers (`.evt`, `.jsonl`) with resumable byte positions.
//!
//! A reader holds one line at a time, so memory stays constant on a multi-gigabyte file. After
//! every event it reports the [`SourcePosition`] just past that event's line; a checkpoint that
//! records the position lets a restarted run continue with the next line, never re-reading or
//! skipping one.
//!
//! What a reader accepts, whatever the input: a regular file (not a directory, FIFO or device:
//! resuming seeks to a byte offset); lines of at most [`MAX_LINE_BYTES`]; values nested at
//! most [`varpulis_vpl::MAX_NESTING`] levels; each field name once per object; numbers within
//! `f64`. A UTF-8 byte-order mark at the start of the file is skipped (line 1's columns do not
//! count it); one anywhere else is an error in both formats. Anything else is a [`ReadError`]
//! naming the file and line, never a hang, a crash or an unbounded allocation.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use varpulis_core::{Event, EventTime};

mod jsonl;
mod jsonl_scan;

/// The longest line a reader accepts, in bytes (without its newline): 16 MiB. Reading stops
/// there, so a file without newlines costs 16 MiB of memory, not its size.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A UTF-8 byte-order mark.
const BOM: &str = "\u{feff}";

/// The two event-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// One event a line: `Type { field: value, ... }`, optional `@<duration>` prefix.
    Evt,
    /// One JSON object a line.
    Jsonl,
}

impl EventFormat {
    /// Picks the format from the file extension (`.evt`, `.jsonl`/`.json`/`.ndjson`).
    ///
    /// # Errors
    /// [`ReadError`] naming the file when the extension is unknown.
    pub fn from_path(path: &Path) -> Result<Self, ReadError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("evt") => Ok(Self::Evt),
            Some("jsonl" | "json" | "ndjson") => Ok(Self::Jsonl),
            _ => Err(ReadError::new(
                path,
                0,
                0,
                format!(
                    "input {} has an unknown extension: expected .evt or .jsonl (or .json, \
                     .ndjson)",
                    path.display()
                ),
            )),
        }
    }
}

/// Where a reader stands in its file: enough to resume exactly after the last event read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Byte offset of the start of the next line.
    pub offset: u64,
    /// Lines consumed so far (the next line is `line + 1`).
    pub line: u64,
    /// Event time of the last event read (`.evt` lines without `@` inherit it).
    pub last_time_ms: EventTime,
}

/// A malformed line or an unreadable file: names the file, line and column.
///
/// Shown as `FILE:LINE:COLUMN: message`, `FILE:LINE: message` when the column is unknown, and
/// as the message alone for an error about the whole file (line 0), whose message names the
/// file (`input events/ is a directory`). The I/O error, if any, is the
/// [`source`](std::error::Error::source), not repeated in the message.
#[derive(Debug)]
pub struct ReadError {
    /// The event file.
    pub file: PathBuf,
    /// 1-based line (0 when the error is not about a line).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What was wrong and what was expected.
    pub message: String,
    /// The I/O error, if any.
    pub source: Option<io::Error>,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.message),
            (line, 0) => write!(f, "{file}:{line}: {}", self.message),
            (line, column) => write!(f, "{file}:{line}:{column}: {}", self.message),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl ReadError {
    fn new(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            source: None,
        }
    }

    /// An I/O error reading line `line` (the cause is the source, not in the message).
    fn io(file: &Path, line: u64, source: io::Error) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            column: 0,
            message: "cannot read".to_owned(),
            source: Some(source),
        }
    }

    /// The file cannot be opened at all.
    fn open(file: &Path, source: io::Error) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot open input {}", file.display()),
            source: Some(source),
        }
    }
}

/// Parses one `.evt` line with the VPL crate's line parser, `varpulis_vpl::parse_evt_line`:
/// `Ok(None)` for blank and comment lines; lines without `@` take `previous_ms`.
///
/// The reader gives the same result for every line through a faster scanner
/// (`varpulis_vpl::EvtScanner`, which falls back to this parser for anything but well-formed
/// lines); this function is the reference it is tested against.
///
/// # Errors
/// `(column, message)` with what was expected (and a hint, if the parser has one).
pub fn parse_evt(line: &str, previous_ms: EventTime) -> Result<Option<Event>, (u64, String)> {
    varpulis_vpl::parse_evt_line(line)
        .map(|parsed| parsed.to_event(previous_ms))
        .map_err(evt_error)
}

/// `(column, message)` for an `.evt` diagnostic, its hint appended.
fn evt_error(d: varpulis_vpl::Diagnostic) -> (u64, String) {
    let mut message = d.message;
    if let Some(help) = d.help {
        message.push_str(" (help: ");
        message.push_str(&help);
        message.push(')');
    }
    (u64::from(d.column), message)
}

/// The line parser of a reader's format, with the names it has interned so far.
#[derive(Debug)]
enum LineParser {
    Evt(varpulis_vpl::EvtScanner),
    Jsonl(jsonl_scan::JsonlScanner),
}

impl LineParser {
    fn new(format: EventFormat) -> Self {
        match format {
            EventFormat::Evt => Self::Evt(varpulis_vpl::EvtScanner::new()),
            EventFormat::Jsonl => Self::Jsonl(jsonl_scan::JsonlScanner::new()),
        }
    }

    /// What [`parse_evt`] or [`parse_json_line`] gives for `line`.
    fn parse(
        &mut self,
        line: &str,
        previous_ms: EventTime,
    ) -> Result<Option<Event>, (u64, String)> {
        match self {
            Self::Evt(scanner) => scanner.scan(line, previous_ms).map_err(evt_error),
            Self::Jsonl(scanner) => scanner.parse(line, previous_ms),
        }
    }
}

/// Reads events from one file, line by line.
pub struct EventFileReader {
    path: PathBuf,
    format: EventFormat,
    reader: BufReader<File>,
    position: SourcePosition,
    buf: Vec<u8>,
    parser: LineParser,
}

impl std::fmt::Debug for EventFileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFileReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl EventFileReader {
    /// Opens `path` at `resume` (or at the start), with the format taken from its extension.
    ///
    /// # Errors
    /// [`ReadError`] if the file cannot be opened, is not a regular file (a directory, FIFO,
    /// `/dev/stdin`, a device: resuming needs a byte offset), the extension is unknown, or
    /// `resume` lies past the end of the file (the file was replaced or truncated since the
    /// checkpoint).
    pub fn open(path: impl AsRef<Path>, resume: Option<SourcePosition>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let format = EventFormat::from_path(path)?;
        Self::open_as(path, format, resume)
    }

    /// Like [`EventFileReader::open`] with an explicit format.
    ///
    /// # Errors
    /// As [`EventFileReader::open`].
    pub fn open_as(
        path: impl AsRef<Path>,
        format: EventFormat,
        resume: Option<SourcePosition>,
    ) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let file = open_regular_file(path)?;
        Self::from_file(path, file, format, resume)
    }

    /// Reads the already open `file` (named `path` in messages) at `resume` or its start.
    ///
    /// A caller that inspects the input itself (the runner hashes its first bytes to detect a
    /// replaced input) opens it once and hands over a clone of the handle, so both look at the
    /// same file even if the path is renamed or replaced in between.
    ///
    /// # Errors
    /// As [`EventFileReader::open`].
    pub fn from_file(
        path: impl AsRef<Path>,
        mut file: File,
        format: EventFormat,
        resume: Option<SourcePosition>,
    ) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let meta = file.metadata().map_err(|e| ReadError::open(path, e))?;
        regular_file(path, &meta)?;
        let position = resume.unwrap_or_default();
        if position.offset > 0 {
            let len = meta.len();
            if position.offset > len {
                return Err(ReadError::new(
                    path,
                    0,
                    0,
                    format!(
                        "cannot resume input {} at byte {} (line {}): the file has only {len} \
                         bytes; was it truncated or replaced?",
                        path.display(),
                        position.offset,
                        position.line
                    ),
                ));
            }
            file.seek(SeekFrom::Start(position.offset))
                .map_err(|e| ReadError::io(path, position.line, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            format,
            reader: BufReader::with_capacity(1 << 16, file),
            position,
            buf: Vec::with_capacity(256),
            parser: LineParser::new(format),
        })
    }

    /// The file being read.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position after the last line consumed.
    #[must_use]
    pub fn position(&self) -> SourcePosition {
        self.position
    }

    /// Reads the next event, skipping blank and comment lines.
    ///
    /// # Errors
    /// [`ReadError`] naming the file, line and column of a malformed line (for invalid UTF-8,
    /// the column of its first bad byte, counted in bytes), or a line longer than
    /// [`MAX_LINE_BYTES`]. The position is not advanced past a malformed line, so everything
    /// read before it stays accepted.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            self.buf.clear();
            if self.buf.capacity() > 1 << 20 {
                // Give back the memory of an earlier long line.
                self.buf.shrink_to(1 << 16);
            }
            let limit = MAX_LINE_BYTES as u64 + 1;
            let n = Read::take(&mut self.reader, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ReadError::io(&self.path, self.position.line + 1, e))?;
            if n == 0 {
                return Ok(None);
            }
            let line_no = self.position.line + 1;
            if n > MAX_LINE_BYTES && self.buf.last() != Some(&b'\n') {
                return Err(ReadError::new(
                    &self.path,
                    line_no,
                    0,
                    format!(
                        "line is longer than {} MiB ({MAX_LINE_BYTES} bytes), the limit for \
                         one event",
                        MAX_LINE_BYTES >> 20
                    ),
                ));
            }
            // A byte-order mark at the start of the file is not part of line 1: it is dropped
            // before decoding, so no column of line 1 counts it, an invalid byte's included.
            // The line parsers treat a mark as an unexpected character, so this is the one
            // place that skips it.
            let line = if self.position.offset == 0 {
                self.buf.strip_prefix(BOM.as_bytes()).unwrap_or(&self.buf)
            } else {
                &self.buf
            };
            let text = std::str::from_utf8(line).map_err(|e| {
                ReadError::new(
                    &self.path,
                    line_no,
                    e.valid_up_to() as u64 + 1,
                    "invalid UTF-8",
                )
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            let parsed = self
                .parser
                .parse(text, self.position.last_time_ms)
                .map_err(|(column, message)| {
                    ReadError::new(&self.path, line_no, column, message)
                })?;
            self.position.offset += n as u64;
            self.position.line = line_no;
            if let Some(event) = parsed {
                self.position.last_time_ms = event.timestamp_ms();
                return Ok(Some(event));
            }
        }
    }
}

/// Fails unless `path` is a regular file (following symlinks), from its metadata alone: call
/// it before opening an input yourself, since opening a FIFO blocks until a writer appears.
/// [`EventFileReader::open`] calls it.
///
/// # Errors
/// [`ReadError`] at line 0: `input DIR is a directory`, `input /dev/stdin is a character
/// device: input must be a regular file (...)`, or `cannot open input FILE` with the I/O
/// error as the source.
pub fn ensure_regular_file(path: &Path) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::open(path, e))?;
    regular_file(path, &meta)
}

/// Opens `path` for reading if it is a regular file, without ever blocking on a FIFO.
///
/// The path is checked before it is opened (so a FIFO or `/dev/stdin` gets a clear message),
/// opened non-blocking (so a FIFO put there in between cannot block the open), and the opened
/// handle is checked again: the file returned is the regular file that was checked.
///
/// # Errors
/// [`ReadError`] if it cannot be opened or is not a regular file.
pub fn open_regular_file(path: &Path) -> Result<File, ReadError> {
    ensure_regular_file(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // No effect on a regular file's reads; makes opening a FIFO return at once.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| ReadError::open(path, e))?;
    let meta = file.metadata().map_err(|e| ReadError::open(path, e))?;
    regular_file(path, &meta)?;
    Ok(file)
}

/// Fails unless `meta` describes a regular file.
fn regular_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let message = if kind.is_dir() {
        format!("input {} is a directory", path.display())
    } else {
        format!(
            "input {} is {}: input must be a regular file (a restarted run resumes at a byte \
             offset)",
            path.display(),
            describe(kind)
        )
    };
    Err(ReadError::new(path, 0, 0, message))
}

#[cfg(unix)]
fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn describe(_kind: std::fs::FileType) -> &'static str {
    "not a regular file"
}

impl Iterator for EventFileReader {
    type Item = Result<Event, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

pub use jsonl::{json_to_value, parse_json_line};

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use varpulis_core::Value;
    use varpulis_vpl::MAX_NESTING;

    fn file(ext: &str, content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_both_json_shapes_and_rfc3339_times() {
        let f = file(
            ".jsonl",
            "{\"event_type\":\"A\",\"timestamp\":5,\"fields\":{\"x\":1,\"y\":2.5}}\n\n\
             {\"event_type\":\"B\",\"timestamp\":\"1970-01-01T00:00:01.5+00:00\",\"z\":\"s\"}\n\
             {\"event_type\":\"C\",\"n\":null}",
        );
        let events: Vec<Event> = EventFileReader::open(f.path(), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].get("x"), Some(&Value::Int(1)));
        assert_eq!(events[0].get("y"), Some(&Value::Float(2.5)));
        assert_eq!(events[1].timestamp_ms(), 1_500);
        assert_eq!(events[1].get("z"), Some(&Value::from("s")));
        assert_eq!(
            events[2].timestamp_ms(),
            1_500,
            "no timestamp: previous event's"
        );
    }

    #[test]
    fn resumes_exactly_after_the_last_event() {
        let f = file(
            ".jsonl",
            "{\"event_type\":\"A\",\"timestamp\":1}\n{\"event_type\":\"A\",\"timestamp\":2}\n{\"event_type\":\"A\",\"timestamp\":3}\n",
        );
        let mut r = EventFileReader::open(f.path(), None).unwrap();
        r.next_event().unwrap().unwrap();
        let pos = r.position();
        assert_eq!(pos.line, 1);
        let mut r = EventFileReader::open(f.path(), Some(pos)).unwrap();
        assert_eq!(r.next_event().unwrap().unwrap().timestamp_ms(), 2);
        assert_eq!(r.next_event().unwrap().unwrap().timestamp_ms(), 3);
        assert!(r.next_event().unwrap().is_none());
        assert_eq!(r.position().line, 3);
    }

    #[test]
    fn malformed_line_names_file_line_and_column_and_keeps_position() {
        let f = file(
            ".jsonl",
            "{\"event_type\":\"A\",\"timestamp\":1}\n{\"event_type\": }\n",
        );
        let mut r = EventFileReader::open(f.path(), None).unwrap();
        r.next_event().unwrap().unwrap();
        let err = r.next_event().unwrap_err();
        assert_eq!((err.line, err.column), (2, 16));
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("{}:2:16: invalid JSON", f.path().display())),
            "{shown}"
        );
        assert_eq!(r.position().line, 1);
        for (line, want) in [
            ("[1]", "expected a JSON object"),
            ("{\"x\":1}", "missing \"event_type\""),
            (
                "{\"event_type\":\"A\",\"timestamp\":\"yesterday\"}",
                "neither milliseconds nor RFC 3339",
            ),
            ("{\"event_type\":\"A\",\"timestamp\":1.5}", "not an integer"),
        ] {
            let err = parse_json_line(line, 0).unwrap_err();
            assert!(err.1.contains(want), "{line}: {}", err.1);
        }
    }

    #[test]
    fn refuses_to_resume_past_the_end_of_a_shorter_file() {
        let f = file(".jsonl", "{\"event_type\":\"A\"}\n");
        let pos = SourcePosition {
            offset: 1_000,
            line: 50,
            last_time_ms: 0,
        };
        let err = EventFileReader::open(f.path(), Some(pos)).unwrap_err();
        assert!(err.to_string().contains("truncated or replaced"), "{err}");
    }

    fn evt_file(content: &str) -> tempfile::NamedTempFile {
        file(".evt", content)
    }

    fn read_all(path: &Path) -> Result<Vec<Event>, ReadError> {
        EventFileReader::open(path, None)?.collect()
    }

    #[test]
    fn a_directory_input_fails_with_input_is_a_directory() {
        let dir = tempfile::Builder::new().suffix(".jsonl").tempdir().unwrap();
        let err = EventFileReader::open(dir.path(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("input {} is a directory", dir.path().display())
        );
        assert!(std::error::Error::source(&err).is_none(), "said once");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_device_input_fails_at_once_because_input_must_be_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO for reading would block until a writer came: this returns.
        let err = EventFileReader::open(&fifo, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "input {} is a FIFO: input must be a regular file (a restarted run resumes at a \
                 byte offset)",
                fifo.display()
            )
        );
        let err = EventFileReader::open_as("/dev/null", EventFormat::Jsonl, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("input /dev/null is a character device: input must be a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_input_names_the_file_and_keeps_the_cause_as_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.jsonl");
        let err = EventFileReader::open(&missing, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot open input {}", missing.display())
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("No such file"), "{cause}");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_an_error_naming_the_line_and_the_limit() {
        let ok = format!(
            "{{\"event_type\":\"A\",\"s\":\"{}\"}}",
            "x".repeat(MAX_LINE_BYTES - 25)
        );
        assert_eq!(ok.len(), MAX_LINE_BYTES);
        let long = "y".repeat(MAX_LINE_BYTES + 1);
        let f = file(".jsonl", &format!("{ok}\n{long}"));
        let mut r = EventFileReader::open(f.path(), None).unwrap();
        let first = r.next_event().unwrap().unwrap();
        assert_eq!(first.get("s").map(Value::type_name), Some("str"));
        let err = r.next_event().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: line is longer than 16 MiB (16777216 bytes), the limit for one event",
                f.path().display()
            )
        );
        assert_eq!(r.position().line, 1, "the good line stays read");
    }

    #[test]
    fn a_byte_order_mark_at_the_start_of_an_event_file_is_skipped() {
        let evt = evt_file("\u{feff}T { a: 1 }\nT { a: 2 }\n");
        let events = read_all(evt.path()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_type(), "T");
        let jsonl = file(".jsonl", "\u{feff}{\"event_type\":\"A\",\"x\":1}\n");
        let events = read_all(jsonl.path()).unwrap();
        assert_eq!(events[0].get("x"), Some(&Value::Int(1)));
    }

    #[test]
    fn evt_and_jsonl_agree_that_a_repeated_field_is_an_error_naming_it() {
        let evt = parse_evt("T { x: 1, x: 2 }", 0).unwrap_err();
        assert_eq!(evt.1, "field \"x\" appears twice (first at column 5)");
        let flat = parse_json_line(r#"{"event_type":"T","x":1,"x":2}"#, 0).unwrap_err();
        assert_eq!(flat.1, "field \"x\" appears twice");
        let wrapped =
            parse_json_line(r#"{"event_type":"T","fields":{"m":{"k":1,"k":2}}}"#, 0).unwrap_err();
        assert_eq!(wrapped.1, "field \"m.k\" appears twice");
        let f = file(
            ".jsonl",
            "{\"event_type\":\"T\"}\n{\"event_type\":\"T\",\"x\":1,\"x\":2}\n",
        );
        let err = read_all(f.path()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().ends_with("field \"x\" appears twice"),
            "{err}"
        );
    }

    #[test]
    fn evt_and_jsonl_agree_that_a_number_beyond_f64_is_an_error_naming_the_field() {
        let evt = parse_evt("T { x: 1e400 }", 0).unwrap_err();
        assert_eq!(
            evt.1,
            "field \"x\": number 1e400 is out of range for a float"
        );
        let json = parse_json_line(r#"{"event_type":"T","x":1e400}"#, 0).unwrap_err();
        assert_eq!(
            json.1,
            "field \"x\": number 1e400 is out of range for a float"
        );
        let nested =
            parse_json_line(r#"{"event_type":"T","fields":{"a":[1,-1.5e999]}}"#, 0).unwrap_err();
        assert_eq!(
            nested.1,
            "field \"a[1]\": number -1.5e999 is out of range for a float"
        );
    }

    #[test]
    fn jsonl_nesting_deeper_than_the_limit_is_an_error_naming_line_and_limit() {
        // The line's object is level 1: `MAX_NESTING - 1` brackets inside it are accepted.
        let line = |brackets: usize| {
            format!(
                "{{\"event_type\":\"T\",\"a\":{}1{}}}",
                "[".repeat(brackets),
                "]".repeat(brackets)
            )
        };
        let ok = line(MAX_NESTING - 1);
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse_json_line(&ok, 0).unwrap().unwrap())
            .unwrap()
            .join()
            .unwrap();
        let err = parse_json_line(&line(MAX_NESTING), 0).unwrap_err();
        assert_eq!(err.1, "invalid JSON: nesting deeper than 100 levels");
        let f = file(".jsonl", &format!("\n{}\n", line(20_000)));
        let err = read_all(f.path()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .ends_with(": invalid JSON: nesting deeper than 100 levels"),
            "{err}"
        );
        // `.evt` counts the same way.
        let evt = format!(
            "T {{ a: {}1{} }}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert!(parse_evt(&evt, 0).is_ok());
    }

    #[test]
    fn a_jsonl_line_with_100_000_fields_reads_every_field() {
        let fields: Vec<String> = (0..100_000).map(|i| format!("\"f{i}\":{i}")).collect();
        let line = format!("{{\"event_type\":\"Wide\",{}}}", fields.join(","));
        let event = parse_json_line(&line, 0).unwrap().unwrap();
        assert_eq!(event.fields().len(), 100_000);
        assert_eq!(event.get("f99999"), Some(&Value::Int(99_999)));
        let wrapped = format!(
            "{{\"event_type\":\"Wide\",\"fields\":{{{}}}}}",
            fields.join(",")
        );
        assert_eq!(parse_json_line(&wrapped, 0).unwrap().unwrap(), event);
    }
}
