//! The `.jsonl` line decoder: one JSON object per line into an [`Event`], with the same
//! limits and errors as `.evt` lines (duplicate names, floats beyond `f64`, nesting depth).
//! The reader tries its byte scanner (`jsonl_scan/`) first and comes here for every line
//! the scanner does not take, so this decoder is the reference for events and messages.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use varpulis_core::{Event, EventTime, Value};
use varpulis_vpl::MAX_NESTING;

/// Parses one JSONL line: `{"event_type": "T", "timestamp": <ms or RFC 3339>, "fields": {...}}`
/// or a flat object with `event_type` plus fields. A line without `timestamp` takes
/// `previous_ms`. Blank lines yield `Ok(None)`. Fields come in the order of their names.
///
/// As in `.evt` lines, a name twice in one object (`field "x" appears twice`) and a number
/// beyond `f64` (`field "x": number 1e400 is out of range for a float`) are errors, and so is
/// nesting deeper than [`MAX_NESTING`] levels.
///
/// # Errors
/// `(column, message)` for malformed JSON or a missing/ill-typed `event_type` or `timestamp`.
pub fn parse_json_line(line: &str, previous_ms: EventTime) -> Result<Option<Event>, (u64, String)> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let path = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = JsonSeed {
        path: &path,
        depth: 1,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    let json = parsed.map_err(|e| json_error(line, &e, path.into_inner()))?;
    let Value::Map(obj) = json else {
        return Err((1, "expected a JSON object with \"event_type\"".to_owned()));
    };
    let mut obj = Arc::try_unwrap(obj).unwrap_or_else(|shared| (*shared).clone());
    let event_type = match obj.remove("event_type") {
        Some(Value::Str(s)) if !s.is_empty() => s,
        Some(_) => return Err((1, "\"event_type\" must be a non-empty string".to_owned())),
        None => return Err((1, "missing \"event_type\"".to_owned())),
    };
    let timestamp = match obj.remove("timestamp") {
        None | Some(Value::Null) => previous_ms,
        Some(Value::Int(ms)) => ms,
        Some(Value::Float(n)) => {
            return Err((
                1,
                format!("\"timestamp\" {n} is not an integer number of milliseconds"),
            ));
        }
        Some(Value::Str(s)) => parse_rfc3339_ms(&s).ok_or_else(|| {
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
    let fields = match obj.remove("fields") {
        Some(Value::Map(fields)) if obj.is_empty() => {
            Arc::try_unwrap(fields).unwrap_or_else(|shared| (*shared).clone())
        }
        Some(Value::Map(_)) => {
            return Err((
                1,
                "an object with \"fields\" must not have other top-level fields".to_owned(),
            ));
        }
        Some(_) => return Err((1, "\"fields\" must be an object".to_owned())),
        None => obj,
    };
    Ok(Some(Event::from_fields(event_type, timestamp, fields)))
}

/// A step from a JSON value to one inside it.
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// Marks the errors [`JsonSeed`] raises itself.
const DUPLICATE: &str = "\u{0}duplicate";
const TOO_DEEP: &str = "\u{0}too deep";

/// Deserializes JSON straight into a [`Value`] (integers that fit `i64` are `Int`, other
/// numbers `Float`), rejecting names given twice in an object and nesting deeper than
/// [`MAX_NESTING`]. On an error, `path` holds the steps to the failing value, innermost first
/// (filled in as the error propagates: nothing is spent on success).
#[derive(Clone, Copy)]
pub(super) struct JsonSeed<'p> {
    pub(super) path: &'p RefCell<Vec<Step>>,
    /// Nesting level of the value to read (the line's object is 1).
    pub(super) depth: usize,
}

impl JsonSeed<'_> {
    fn inner(self) -> Self {
        Self {
            depth: self.depth + 1,
            ..self
        }
    }

    fn enter<E: de::Error>(self) -> Result<(), E> {
        if self.depth > MAX_NESTING {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::from(s))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::from(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let at = items.len();
            match seq.next_element_seed(self.inner()) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => break,
                Err(e) => {
                    self.path.borrow_mut().push(Step::Index(at));
                    return Err(e);
                }
            }
        }
        Ok(Value::from(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out: BTreeMap<Arc<str>, Value> = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.contains_key(name.as_str()) {
                self.path.borrow_mut().push(Step::Key(name));
                return Err(de::Error::custom(DUPLICATE));
            }
            match map.next_value_seed(self.inner()) {
                Ok(v) => {
                    out.insert(Arc::from(name), v);
                }
                Err(e) => {
                    self.path.borrow_mut().push(Step::Key(name));
                    return Err(e);
                }
            }
        }
        Ok(Value::Map(Arc::new(out)))
    }
}

/// `(column, message)` for a JSON error, naming the field where that helps.
fn json_error(line: &str, e: &serde_json::Error, mut path: Vec<Step>) -> (u64, String) {
    let column = e.column() as u64;
    let mut message = e.to_string();
    // serde_json says "at line 1 column N": the reader names the file's line and the column.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    path.reverse();
    // `fields.x` of the wrapped shape is the event's field `x`.
    if path.len() > 1 && matches!(&path[0], Step::Key(k) if k == "fields") {
        path.remove(0);
    }
    let mut field = String::new();
    for step in &path {
        match step {
            Step::Key(k) if field.is_empty() => field.push_str(k),
            Step::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Step::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    let message = match message.as_str() {
        DUPLICATE => format!("field {field:?} appears twice"),
        TOO_DEEP | "recursion limit exceeded" => {
            format!("invalid JSON: nesting deeper than {MAX_NESTING} levels")
        }
        "number out of range" => {
            // The column is the number's last character.
            let end = usize::try_from(column).unwrap_or(0).min(line.len());
            let start = line[..end]
                .rfind(|c: char| !matches!(c, '0'..='9' | '.' | 'e' | 'E' | '+' | '-'))
                .map_or(0, |i| i + 1);
            format!(
                "field {field:?}: number {} is out of range for a float",
                &line[start..end]
            )
        }
        _ => format!("invalid JSON: {message}"),
    };
    (column, message)
}

pub(super) fn parse_rfc3339_ms(s: &str) -> Option<EventTime> {
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
