//! Events.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{EventTime, Value};

/// An event: a type name, an event time, and ordered named fields.
///
/// Cloning is cheap (the type name and the fields are shared). Fields keep their insertion
/// order; setting an existing field replaces it in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    event_type: Arc<str>,
    timestamp_ms: EventTime,
    fields: Arc<Vec<(Arc<str>, Value)>>,
}

impl Event {
    /// An event with no fields.
    pub fn new(event_type: impl Into<Arc<str>>, timestamp_ms: EventTime) -> Self {
        Self {
            event_type: event_type.into(),
            timestamp_ms,
            fields: Arc::new(Vec::new()),
        }
    }

    /// Builder: sets `name` to `value`.
    #[must_use]
    pub fn with_field(mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an existing field of that name in place.
    pub fn set(&mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        let fields = Arc::make_mut(&mut self.fields);
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => fields.push((name, value)),
        }
    }

    /// The event type.
    #[must_use]
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The shared event-type name.
    #[must_use]
    pub fn event_type_arc(&self) -> &Arc<str> {
        &self.event_type
    }

    /// Event time in milliseconds since the epoch.
    #[must_use]
    pub fn timestamp_ms(&self) -> EventTime {
        self.timestamp_ms
    }

    /// The value of field `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.fields.iter().map(|(n, v)| (&**n, v))
    }

    /// Approximate size in bytes, for state-size metrics.
    #[must_use]
    pub fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.event_type.len()
            + self
                .fields
                .iter()
                .map(|(n, v)| n.len() + v.approximate_size())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_field_order_and_replaces_in_place() {
        let mut e = Event::new("T", 5).with_field("b", 1).with_field("a", 2);
        e.set("b", "x");
        let names: Vec<_> = e.fields().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(e.get("b"), Some(&Value::from("x")));
        assert_eq!(e.get("c"), None);
        assert_eq!(e.timestamp_ms(), 5);
        assert_eq!(e.event_type(), "T");
    }

    #[test]
    fn clones_share_fields_until_written() {
        let a = Event::new("T", 0).with_field("x", 1);
        let mut b = a.clone();
        b.set("x", 2);
        assert_eq!(a.get("x"), Some(&Value::Int(1)));
        assert_eq!(b.get("x"), Some(&Value::Int(2)));
    }
}
