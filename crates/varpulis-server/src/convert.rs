//! Events in and out of JSON.
//!
//! In: `{"event_type": "T", "fields": {..}, "timestamp": 5000 | "2026-01-01T00:00:00Z"}`
//! (`fields` and `timestamp` optional; without a timestamp, or with `null`, the event's time is
//! the server's receive time; a field name given twice is refused). Out: the shape `varpulis run` writes,
//! `{"event_type":"T","timestamp":5000,"fields":{..}}`, so an output can be posted back as input.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value as Json;
use varpulis_core::{Event, EventTime, Value};
use varpulis_engine::output::{write_json_line, write_json_str, write_json_value};
use varpulis_engine::source::json_to_value;

/// Builds an event from the JSON text of one event, or says what is wrong with it (a field
/// name given twice is refused, as the `.jsonl` reader does: keeping one of two values would
/// lose data). `now_ms` is the time given to an event without a `timestamp` (or with `null`).
pub(crate) fn event_from_json(text: &str, now_ms: EventTime) -> Result<Event, String> {
    let event: EventIn = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let timestamp = match &event.timestamp {
        None | Some(Json::Null) => now_ms,
        Some(t) => timestamp_ms(t)?,
    };
    let fields: Vec<(Arc<str>, Value)> = event
        .fields
        .into_iter()
        .map(|(name, value)| (Arc::from(name), json_to_value(value)))
        .collect();
    Ok(Event::from_fields(event.event_type, timestamp, fields))
}

/// One event as a client sends it.
struct EventIn {
    event_type: String,
    fields: Vec<(String, Json)>,
    timestamp: Option<Json>,
}

impl<'de> Deserialize<'de> for EventIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = EventIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object {\"event_type\", \"fields\", \"timestamp\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventIn, A::Error> {
        let mut event_type = None;
        let mut fields = None;
        let mut timestamp = None;
        while let Some(key) = map.next_key::<String>()? {
            let twice = || de::Error::custom(format!("key {key:?} appears twice"));
            match key.as_str() {
                "event_type" => {
                    if event_type.is_some() {
                        return Err(twice());
                    }
                    match map.next_value::<Json>()? {
                        Json::String(s) if !s.is_empty() => event_type = Some(s),
                        other => {
                            return Err(de::Error::custom(format!(
                                "event_type: expected a non-empty string, got {}",
                                kind(&other)
                            )));
                        }
                    }
                }
                "fields" => {
                    if fields.is_some() {
                        return Err(twice());
                    }
                    fields = Some(
                        map.next_value::<Option<Fields>>()?
                            .map_or_else(Vec::new, |f| f.0),
                    );
                }
                "timestamp" => {
                    if timestamp.is_some() {
                        return Err(twice());
                    }
                    timestamp = Some(map.next_value::<Json>()?);
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key {other:?} (an event has event_type, fields and timestamp)"
                    )));
                }
            }
        }
        Ok(EventIn {
            event_type: event_type.ok_or_else(|| de::Error::custom("missing event_type"))?,
            fields: fields.unwrap_or_default(),
            timestamp,
        })
    }
}

/// An event's fields in order, each name once.
struct Fields(Vec<(String, Json)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("fields as an object of names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(de::Error::custom(format!(
                            "fields: field {name:?} appears twice"
                        )));
                    }
                    out.push((name, map.next_value::<Json>()?));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn timestamp_ms(value: &Json) -> Result<EventTime, String> {
    match value {
        Json::Number(n) => n.as_i64().ok_or_else(|| {
            format!("timestamp: expected integer milliseconds since the epoch, got {n}")
        }),
        Json::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("timestamp: {s:?} is not RFC 3339 ({e})"))?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| format!("timestamp: {s:?} is out of range"))
        }
        other => Err(format!(
            "timestamp: expected milliseconds or an RFC 3339 string, got {}",
            kind(other)
        )),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Appends `events` as a JSON array of output events to `out`.
pub(crate) fn write_events(out: &mut Vec<u8>, events: &[Event]) {
    out.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = write_json_line(out, event);
        // `write_json_line` ends with a newline; an array element does not.
        out.pop();
    }
    out.push(b']');
}

/// Appends one output event (the `.jsonl` shape) to `out`.
pub(crate) fn write_events_one(out: &mut Vec<u8>, event: &Event) {
    // Writing to a Vec cannot fail.
    let _ = write_json_line(out, event);
    out.pop();
}

/// An output event as a logs stream's `data:` line: `{"event_type","timestamp","data":{..}}`.
pub(crate) fn log_line(event: &Event) -> String {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"event_type\":");
    let _ = write_json_str(&mut out, event.event_type());
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(event.timestamp_ms().to_string().as_bytes());
    out.extend_from_slice(b",\"data\":{");
    for (i, (name, value)) in event.fields().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write_json_str(&mut out, name);
        out.push(b':');
        let _ = write_json_value(&mut out, value);
    }
    out.extend_from_slice(b"}}");
    String::from_utf8(out).unwrap_or_default()
}
