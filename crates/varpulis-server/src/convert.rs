//! Events in and out of JSON.
//!
//! In: `{"event_type": "T", "fields": {..}, "timestamp": 5000 | "2026-01-01T00:00:00Z"}`
//! (`fields` and `timestamp` optional; without a timestamp the event's time is the server's
//! receive time). Out: the shape `varpulis run` writes,
//! `{"event_type":"T","timestamp":5000,"fields":{..}}`, so an output can be posted back as input.

use std::sync::Arc;

use serde_json::{Map, Value as Json};
use varpulis_core::{Event, EventTime, Value};
use varpulis_engine::output::{write_json_line, write_json_str, write_json_value};
use varpulis_engine::source::json_to_value;

/// Builds an event from its JSON object, or says what is wrong with it. `now_ms` is the time
/// given to an event without a `timestamp`.
pub(crate) fn event_from_json(json: Json, now_ms: EventTime) -> Result<Event, String> {
    let Json::Object(object) = json else {
        return Err(format!(
            "an event must be a JSON object, got {}",
            kind(&json)
        ));
    };
    let mut event_type = None;
    let mut fields = Map::new();
    let mut timestamp = None;
    for (key, value) in object {
        match key.as_str() {
            "event_type" => match value {
                Json::String(s) if !s.is_empty() => event_type = Some(s),
                other => {
                    return Err(format!(
                        "event_type: expected a non-empty string, got {}",
                        kind(&other)
                    ));
                }
            },
            "fields" => match value {
                Json::Object(map) => fields = map,
                Json::Null => {}
                other => {
                    return Err(format!("fields: expected an object, got {}", kind(&other)));
                }
            },
            "timestamp" => timestamp = Some(timestamp_ms(&value)?),
            other => {
                return Err(format!(
                    "unknown key {other:?} (an event has event_type, fields and timestamp)"
                ));
            }
        }
    }
    let event_type = event_type.ok_or("missing event_type")?;
    let fields: Vec<(Arc<str>, Value)> = fields
        .into_iter()
        .map(|(name, value)| (Arc::from(name), json_to_value(value)))
        .collect();
    Ok(Event::from_fields(
        event_type,
        timestamp.unwrap_or(now_ms),
        fields,
    ))
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
