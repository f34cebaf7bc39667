//! Events.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{EventTime, Value};

/// An event: a type name, an event time, and ordered named fields.
///
/// Cloning is cheap (the type name and the fields are shared). Fields keep their insertion
/// order; setting an existing field replaces it in place.
///
/// [`Event::set`] and [`Event::get`] scan the fields, which is the fastest for the usual
/// handful; build an event with many fields with [`Event::from_fields`] (linear time).
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

    /// An event with `fields`, as if each were [`set`](Event::set) in order: the first
    /// occurrence of a name fixes its position, the last its value.
    ///
    /// Linear in the number of fields (expected), where calling `set` per field is quadratic:
    /// this is the constructor for readers that build events from input of any size.
    pub fn from_fields<N, V>(
        event_type: impl Into<Arc<str>>,
        timestamp_ms: EventTime,
        fields: impl IntoIterator<Item = (N, V)>,
    ) -> Self
    where
        N: Into<Arc<str>>,
        V: Into<Value>,
    {
        /// Up to this many fields a scan beats hashing every name.
        const SCAN: usize = 16;
        let fields = fields.into_iter();
        let mut out: Vec<(Arc<str>, Value)> = Vec::with_capacity(fields.size_hint().0);
        let mut index: Option<HashMap<Arc<str>, usize>> = None;
        for (name, value) in fields {
            let (name, value) = (name.into(), value.into());
            if let Some(index) = &mut index {
                match index.entry(name) {
                    Entry::Occupied(slot) => out[*slot.get()].1 = value,
                    Entry::Vacant(slot) => {
                        out.push((Arc::clone(slot.key()), value));
                        slot.insert(out.len() - 1);
                    }
                }
                continue;
            }
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => out.push((name, value)),
            }
            if out.len() > SCAN {
                let built = out
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (Arc::clone(n), i))
                    .collect();
                index = Some(built);
            }
        }
        Self {
            event_type: event_type.into(),
            timestamp_ms,
            fields: Arc::new(out),
        }
    }

    /// An event whose `fields` the caller has already checked to have distinct names, taken
    /// as they are: no name is compared and no buffer is copied, so a reader that interns its
    /// names and rejects repeated ones builds an event with no allocation beyond the shared
    /// field list. Equal to [`Event::from_fields`] over the same fields.
    ///
    /// Distinct names are the caller's promise (checked in debug builds only): with a name
    /// twice, [`get`](Event::get) and [`set`](Event::set) see its first occurrence.
    #[must_use]
    pub fn from_unique_fields(
        event_type: Arc<str>,
        timestamp_ms: EventTime,
        fields: Vec<(Arc<str>, Value)>,
    ) -> Self {
        debug_assert!(
            {
                let mut seen = std::collections::HashSet::with_capacity(fields.len());
                fields.iter().all(|(n, _)| seen.insert(&**n))
            },
            "from_unique_fields: a field name appears twice"
        );
        Self {
            event_type,
            timestamp_ms,
            fields: Arc::new(fields),
        }
    }

    /// Builder: sets `name` to `value`.
    #[must_use]
    pub fn with_field(mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an existing field of that name in place.
    ///
    /// Scans the fields: to build an event with many fields use [`Event::from_fields`].
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

    /// The same time and fields under another event type; the fields are shared, not copied.
    #[must_use]
    pub fn with_event_type(&self, event_type: impl Into<Arc<str>>) -> Self {
        Self {
            event_type: event_type.into(),
            timestamp_ms: self.timestamp_ms,
            fields: Arc::clone(&self.fields),
        }
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
    fn from_fields_keeps_the_first_position_and_the_last_value_of_a_name() {
        let built = Event::from_fields("T", 1, [("b", 1), ("a", 2), ("b", 3)]);
        let set = Event::new("T", 1)
            .with_field("b", 1)
            .with_field("a", 2)
            .with_field("b", 3);
        assert_eq!(built, set);
        assert_eq!(built.get("b"), Some(&Value::Int(3)));
    }

    #[test]
    fn from_fields_builds_an_event_with_100_000_fields_and_repeated_names() {
        let n = 100_000;
        // Every name twice: positions from the first pass, values from the second.
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let fields = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), Value::Int(i as i64)))
            .chain(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (name.as_str(), Value::Int(-(i as i64)))),
            );
        let e = Event::from_fields("Wide", 0, fields);
        assert_eq!(e.fields().len(), n);
        let (first, last) = (e.fields().next().unwrap(), e.fields().last().unwrap());
        assert_eq!(first, ("f0", &Value::Int(0)));
        assert_eq!(last, ("f99999", &Value::Int(-99_999)));
        assert_eq!(e.get("f500"), Some(&Value::Int(-500)));
    }

    #[test]
    fn from_unique_fields_equals_from_fields() {
        let fields = vec![
            (Arc::from("b"), Value::Int(1)),
            (Arc::from("a"), Value::from("x")),
        ];
        let built = Event::from_unique_fields(Arc::from("T"), 3, fields.clone());
        assert_eq!(built, Event::from_fields("T", 3, fields));
        assert_eq!(built.get("a"), Some(&Value::from("x")));
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
