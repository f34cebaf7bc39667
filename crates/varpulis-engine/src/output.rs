//! Output events as JSON lines.

use std::io::{self, Write};

use serde_json::Value as Json;
use varpulis_core::{Event, Value};

/// Converts a [`Value`] to JSON: timestamps and durations as integer milliseconds, NaN and
/// infinities as `null` (JSON has no such numbers).
#[must_use]
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) | Value::Timestamp(i) | Value::Duration(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// Writes `event` as one JSON line, in the shape the `.jsonl` reader accepts:
/// `{"event_type":"T","timestamp":5000,"fields":{...}}`, fields in the event's order.
///
/// # Errors
/// The writer's errors.
pub fn write_json_line(w: &mut impl Write, event: &Event) -> io::Result<()> {
    w.write_all(b"{\"event_type\":")?;
    serde_json::to_writer(&mut *w, event.event_type())?;
    write!(w, ",\"timestamp\":{},\"fields\":{{", event.timestamp_ms())?;
    for (i, (name, value)) in event.fields().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, name)?;
        w.write_all(b":")?;
        serde_json::to_writer(&mut *w, &value_to_json(value))?;
    }
    w.write_all(b"}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fields_in_order_and_nan_as_null() {
        let e = Event::new("S", 5_000)
            .with_field("zone", "n\"1")
            .with_field("avg", 21.0)
            .with_field("n", 2)
            .with_field("bad", f64::NAN);
        let mut buf = Vec::new();
        write_json_line(&mut buf, &e).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"event_type\":\"S\",\"timestamp\":5000,\"fields\":{\"zone\":\"n\\\"1\",\"avg\":21.0,\"n\":2,\"bad\":null}}\n"
        );
    }
}
