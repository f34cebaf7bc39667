//! Streaming event-file readers (`.evt`, `.jsonl`) with resumable byte positions.
//!
//! A reader holds one line at a time, so memory stays constant on a multi-gigabyte file. After
//! every event it reports the [`SourcePosition`] just past that event's line; a checkpoint that
//! records the position lets a restarted run continue with the next line, never re-reading or
//! skipping one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use varpulis_core::{Event, EventTime, Value};

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
                "unknown event file extension: expected .evt or .jsonl",
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
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
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
    #[source]
    pub source: Option<io::Error>,
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

    fn io(file: &Path, line: u64, source: io::Error) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            column: 0,
            message: format!("cannot read: {source}"),
            source: Some(source),
        }
    }
}

/// Parses one `.evt` line. Installed by the engine from the VPL crate, so this module stays
/// independent of the parser. Returns `Ok(None)` for blank and comment lines, or an error with
/// its 1-based column.
pub type EvtLineParser = fn(&str, EventTime) -> Result<Option<Event>, (u64, String)>;

/// The `.evt` line parser of the VPL crate, as an [`EvtLineParser`]: install it with
/// [`EventFileReader::with_evt_parser`].
///
/// # Errors
/// `(column, message)` with what was expected (and a hint, if the parser has one).
pub fn parse_evt(line: &str, previous_ms: EventTime) -> Result<Option<Event>, (u64, String)> {
    match varpulis_vpl::parse_evt_line(line) {
        Ok(parsed) => Ok(parsed.to_event(previous_ms)),
        Err(d) => {
            let mut message = d.message;
            if let Some(help) = d.help {
                message.push_str(" (help: ");
                message.push_str(&help);
                message.push(')');
            }
            Err((u64::from(d.column), message))
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
    evt_parser: Option<EvtLineParser>,
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
    /// [`ReadError`] if the file cannot be opened, the extension is unknown, or `resume` lies
    /// past the end of the file (the file was replaced or truncated since the checkpoint).
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
        let mut file = File::open(path).map_err(|e| ReadError::io(path, 0, e))?;
        let position = resume.unwrap_or_default();
        if position.offset > 0 {
            let len = file
                .metadata()
                .map_err(|e| ReadError::io(path, 0, e))?
                .len();
            if position.offset > len {
                return Err(ReadError::new(
                    path,
                    position.line,
                    0,
                    format!(
                        "cannot resume at byte {} (line {}): the file has only {len} bytes; was it truncated or replaced?",
                        position.offset, position.line
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
            evt_parser: None,
        })
    }

    /// Installs the `.evt` line parser (required before reading an `.evt` file).
    #[must_use]
    pub fn with_evt_parser(mut self, parser: EvtLineParser) -> Self {
        self.evt_parser = Some(parser);
        self
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
    /// [`ReadError`] naming the file, line and column of a malformed line. The position is not
    /// advanced past a malformed line, so everything read before it stays accepted.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ReadError::io(&self.path, self.position.line + 1, e))?;
            if n == 0 {
                return Ok(None);
            }
            let line_no = self.position.line + 1;
            let text = std::str::from_utf8(&self.buf).map_err(|e| {
                ReadError::new(
                    &self.path,
                    line_no,
                    e.valid_up_to() as u64 + 1,
                    "invalid UTF-8",
                )
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            let parsed = match self.format {
                EventFormat::Jsonl => parse_json_line(text, self.position.last_time_ms),
                EventFormat::Evt => match self.evt_parser {
                    Some(parse) => parse(text, self.position.last_time_ms),
                    None => Err((0, "no .evt parser installed".to_owned())),
                },
            }
            .map_err(|(column, message)| ReadError::new(&self.path, line_no, column, message))?;
            self.position.offset += n as u64;
            self.position.line = line_no;
            if let Some(event) = parsed {
                self.position.last_time_ms = event.timestamp_ms();
                return Ok(Some(event));
            }
        }
    }
}

impl Iterator for EventFileReader {
    type Item = Result<Event, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Parses one JSONL line: `{"event_type": "T", "timestamp": <ms or RFC 3339>, "fields": {...}}`
/// or a flat object with `event_type` plus fields. A line without `timestamp` takes
/// `previous_ms`. Blank lines yield `Ok(None)`.
///
/// # Errors
/// `(column, message)` for malformed JSON or a missing/ill-typed `event_type` or `timestamp`.
pub fn parse_json_line(line: &str, previous_ms: EventTime) -> Result<Option<Event>, (u64, String)> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let json: Json = serde_json::from_str(line)
        .map_err(|e| (e.column() as u64, format!("invalid JSON: {e}")))?;
    let Json::Object(mut obj) = json else {
        return Err((1, "expected a JSON object with \"event_type\"".to_owned()));
    };
    let event_type = match obj.remove("event_type") {
        Some(Json::String(s)) if !s.is_empty() => s,
        Some(_) => return Err((1, "\"event_type\" must be a non-empty string".to_owned())),
        None => return Err((1, "missing \"event_type\"".to_owned())),
    };
    let timestamp = match obj.remove("timestamp") {
        None | Some(Json::Null) => previous_ms,
        Some(Json::Number(n)) => n.as_i64().ok_or_else(|| {
            (
                1,
                format!("\"timestamp\" {n} is not an integer number of milliseconds"),
            )
        })?,
        Some(Json::String(s)) => parse_rfc3339_ms(&s).ok_or_else(|| {
            (
                1,
                format!("\"timestamp\" {s:?} is neither milliseconds nor RFC 3339"),
            )
        })?,
        Some(_) => {
            return Err((
                1,
                "\"timestamp\" must be milliseconds or an RFC 3339 string".to_owned(),
            ));
        }
    };
    let mut event = Event::new(Arc::<str>::from(event_type), timestamp);
    let fields = match obj.remove("fields") {
        Some(Json::Object(fields)) if obj.is_empty() => fields,
        Some(Json::Object(_)) => {
            return Err((
                1,
                "an object with \"fields\" must not have other top-level fields".to_owned(),
            ));
        }
        Some(_) => return Err((1, "\"fields\" must be an object".to_owned())),
        None => obj,
    };
    for (name, value) in fields {
        event.set(name, json_to_value(value));
    }
    Ok(Some(event))
}

fn parse_rfc3339_ms(s: &str) -> Option<EventTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Converts JSON to a [`Value`]: integers that fit `i64` are `Int`, other numbers `Float`.
#[must_use]
pub fn json_to_value(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_f64().map(Value::Float))
            .unwrap_or(Value::Null),
        Json::String(s) => Value::from(s),
        Json::Array(items) => Value::from(items.into_iter().map(json_to_value).collect::<Vec<_>>()),
        Json::Object(map) => Value::Map(Arc::new(
            map.into_iter()
                .map(|(k, v)| (Arc::<str>::from(k), json_to_value(v)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
}
