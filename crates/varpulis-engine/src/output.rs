//! Output events as JSON lines.

use std::io::{self, Write};

use varpulis_core::{Event, Value};

/// Writes `value` as JSON, straight from the value (no intermediate tree): timestamps and
/// durations as integer milliseconds, NaN and infinities as `null` (JSON has no such numbers),
/// floats in their shortest round-trip form with a `.0` when integral, strings escaped as JSON
/// requires, map keys in their (sorted) order.
///
/// # Errors
/// The writer's errors.
pub fn write_json_value(w: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::Null => w.write_all(b"null"),
        Value::Bool(true) => w.write_all(b"true"),
        Value::Bool(false) => w.write_all(b"false"),
        Value::Int(i) | Value::Timestamp(i) | Value::Duration(i) => {
            w.write_all(itoa::Buffer::new().format(*i).as_bytes())
        }
        Value::Float(f) if f.is_finite() => {
            w.write_all(ryu::Buffer::new().format_finite(*f).as_bytes())
        }
        Value::Float(_) => w.write_all(b"null"),
        Value::Str(s) => write_json_str(w, s),
        Value::Array(items) => {
            w.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_json_value(w, item)?;
            }
            w.write_all(b"]")
        }
        Value::Map(map) => {
            w.write_all(b"{")?;
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_json_str(w, k)?;
                w.write_all(b":")?;
                write_json_value(w, v)?;
            }
            w.write_all(b"}")
        }
    }
}

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, ... or
/// `\u00XX`, everything else (all of Unicode) as is, the way `serde_json` writes it.
///
/// # Errors
/// The writer's errors.
pub fn write_json_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    w.write_all(b"\"")?;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        w.write_all(&bytes[start..i])?;
        if escape.is_empty() {
            w.write_all(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ])?;
        } else {
            w.write_all(escape)?;
        }
        start = i + 1;
    }
    w.write_all(&bytes[start..])?;
    w.write_all(b"\"")
}

/// Writes `event` as one JSON line, in the shape the `.jsonl` reader accepts:
/// `{"event_type":"T","timestamp":5000,"fields":{...}}`, fields in the event's order.
///
/// # Errors
/// The writer's errors.
pub fn write_json_line(w: &mut impl Write, event: &Event) -> io::Result<()> {
    w.write_all(b"{\"event_type\":")?;
    write_json_str(w, event.event_type())?;
    w.write_all(b",\"timestamp\":")?;
    w.write_all(itoa::Buffer::new().format(event.timestamp_ms()).as_bytes())?;
    w.write_all(b",\"fields\":{")?;
    for (i, (name, value)) in event.fields().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write_json_str(w, name)?;
        w.write_all(b":")?;
        write_json_value(w, value)?;
    }
    w.write_all(b"}}\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::Value as Json;

    use super::*;

    /// The writer this one replaced, through a `serde_json` tree: the oracle.
    fn value_to_json(value: &Value) -> Json {
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

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::Timestamp),
            any::<i64>().prop_map(Value::Duration),
            any::<f64>().prop_map(Value::Float),
            prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(-0.0),
                Just(1e16),
                Just(5e-324)
            ]
            .prop_map(Value::Float),
            any::<String>().prop_map(|s| Value::Str(s.into())),
            "[\\x00-\\x1f\"\\\\a\u{7f}\u{e9}\u{1f600}]{0,8}".prop_map(|s| Value::Str(s.into())),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(Arc::from(v))),
                prop::collection::btree_map(any::<String>(), inner, 0..4).prop_map(|m| {
                    let m: BTreeMap<Arc<str>, Value> =
                        m.into_iter().map(|(k, v)| (Arc::from(k), v)).collect();
                    Value::Map(Arc::new(m))
                }),
            ]
        })
    }

    proptest! {
        /// Byte-identical to the tree-based writer it replaced, for every value.
        #[test]
        fn writes_exactly_what_the_serde_json_tree_wrote(v in value(), name in any::<String>()) {
            let mut direct = Vec::new();
            write_json_value(&mut direct, &v).unwrap();
            prop_assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(&value_to_json(&v)).unwrap()
            );
            let mut line = Vec::new();
            write_json_line(&mut line, &Event::new(name.as_str(), -3).with_field(name.as_str(), v.clone())).unwrap();
            let mut old = Vec::new();
            old.extend_from_slice(b"{\"event_type\":");
            serde_json::to_writer(&mut old, &name).unwrap();
            old.extend_from_slice(b",\"timestamp\":-3,\"fields\":{");
            serde_json::to_writer(&mut old, &name).unwrap();
            old.push(b':');
            serde_json::to_writer(&mut old, &value_to_json(&v)).unwrap();
            old.extend_from_slice(b"}}\n");
            prop_assert_eq!(line, old);
        }
    }

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
