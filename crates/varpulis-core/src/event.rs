//! Events.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::{EventTime, Value};

/// An event: a type name, an event time, and ordered named fields.
///
/// Cloning is cheap (the type name and the fields are shared). Fields keep their insertion
/// order; setting an existing field replaces it in place.
///
/// [`Event::set`] and [`Event::get`] scan the fields, which is the fastest for the usual
/// handful; build an event with many fields with [`Event::from_fields`] (linear time). Code
/// that reads the same field of many events (compiled expressions, partition keys) reads it
/// through a [`FieldRef`], which remembers where the field was.
///
/// The fields live in one shared allocation (`Arc<[..]>`): building an event from an exact-size
/// iterator ([`Event::from_unique_iter`]) allocates once, cloning allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    event_type: Arc<str>,
    timestamp_ms: EventTime,
    fields: Arc<[(Arc<str>, Value)]>,
}

impl Event {
    /// An event with no fields.
    pub fn new(event_type: impl Into<Arc<str>>, timestamp_ms: EventTime) -> Self {
        Self {
            event_type: event_type.into(),
            timestamp_ms,
            fields: Arc::new([]),
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
            fields: Arc::from(out),
        }
    }

    /// An event whose `fields` the caller has already checked to have distinct names, taken
    /// as they are: no name is compared. Equal to [`Event::from_fields`] over the same fields.
    /// The vector is copied into the event's shared allocation; a reader that builds events in
    /// a loop keeps one vector and passes `drain(..)` to [`Event::from_unique_iter`] instead,
    /// which allocates once per event.
    ///
    /// Distinct names are the caller's promise (checked in debug builds only): with a name
    /// twice, [`get`](Event::get) and [`set`](Event::set) see its first occurrence.
    #[must_use]
    pub fn from_unique_fields(
        event_type: Arc<str>,
        timestamp_ms: EventTime,
        fields: Vec<(Arc<str>, Value)>,
    ) -> Self {
        Self::from_unique_iter(event_type, timestamp_ms, fields)
    }

    /// An event whose fields, in order and with distinct names (the caller's promise, checked
    /// in debug builds), come from an exact-size iterator: one allocation for all of them
    /// (`vec.drain(..)`, a mapped slice or a zip of two are exact; see
    /// [`Arc`]'s `FromIterator`). Equal to [`Event::from_fields`] over the same fields.
    #[must_use]
    pub fn from_unique_iter<I>(event_type: Arc<str>, timestamp_ms: EventTime, fields: I) -> Self
    where
        I: IntoIterator<Item = (Arc<str>, Value)>,
        I::IntoIter: ExactSizeIterator,
    {
        let fields: Arc<[(Arc<str>, Value)]> = fields.into_iter().collect();
        debug_assert!(
            {
                let mut seen = std::collections::HashSet::with_capacity(fields.len());
                fields.iter().all(|(n, _)| seen.insert(&**n))
            },
            "from_unique_iter: a field name appears twice"
        );
        Self {
            event_type,
            timestamp_ms,
            fields,
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
        match self.fields.iter().position(|(n, _)| *n == name) {
            Some(i) => Arc::make_mut(&mut self.fields)[i].1 = value,
            None => {
                let mut fields = Vec::with_capacity(self.fields.len() + 1);
                fields.extend(self.fields.iter().cloned());
                fields.push((name, value));
                self.fields = Arc::from(fields);
            }
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

/// A field name that remembers where it found the field last: reading the same field of
/// events of one shape (every event of a reader, every output of a stream) is one comparison of
/// the name at the remembered position instead of a scan.
///
/// What it gives is always [`Event::get`]'s answer: the position is only a hint, checked against
/// the name on every read, and a miss scans and moves the hint. (Field names of an event are
/// distinct, which every constructor ensures and [`Event::from_unique_iter`]'s caller
/// promises; were one repeated, `get` would give its first occurrence and this any of them.)
/// The hint is an atomic with relaxed ordering, so a `FieldRef` is `Sync` and shared readers
/// can only make each other scan, never read a wrong field.
///
/// It also keeps the first shared name it matched by content (a reader's interned name): a
/// name that is that same allocation then matches by address, without reading its bytes. The
/// bytes of an interned name share a cache line with its reference count, which the reading
/// thread changes for every event; a thread that compared them would fetch that line from the
/// reader's core every time. (Kept, not just remembered, so the address cannot be reused by
/// another name.)
pub struct FieldRef {
    name: Arc<str>,
    hint: AtomicU32,
    learned: OnceLock<Arc<str>>,
}

impl FieldRef {
    /// A reference to field `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            hint: AtomicU32::new(0),
            learned: OnceLock::new(),
        }
    }

    /// Whether `name` is this field's name (by address when it is the name itself or the
    /// shared name learned, else by content, learning it).
    #[inline]
    #[must_use]
    pub fn is(&self, name: &Arc<str>) -> bool {
        if Arc::ptr_eq(name, &self.name) || self.learned.get().is_some_and(|l| Arc::ptr_eq(name, l))
        {
            return true;
        }
        if same_name(name, &self.name) {
            let _ = self.learned.set(Arc::clone(name));
            return true;
        }
        false
    }

    /// The field's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared name.
    #[must_use]
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The value of this field of `event`, if present: `event.get(self.name())`.
    #[inline]
    #[must_use]
    pub fn get<'e>(&self, event: &'e Event) -> Option<&'e Value> {
        let fields = &*event.fields;
        let hint = self.hint.load(Ordering::Relaxed) as usize;
        if let Some((n, v)) = fields.get(hint)
            && self.is(n)
        {
            return Some(v);
        }
        let i = fields.iter().position(|(n, _)| **n == *self.name)?;
        self.hint
            .store(u32::try_from(i).unwrap_or(0), Ordering::Relaxed);
        Some(&fields[i].1)
    }
}

/// Whether two names are equal: a byte loop, which for the short names of fields and aliases
/// is faster than a call to `memcmp` (what `==` on strings becomes).
#[inline]
#[must_use]
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl Clone for FieldRef {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            hint: AtomicU32::new(self.hint.load(Ordering::Relaxed)),
            learned: self.learned.clone(),
        }
    }
}

impl fmt::Debug for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FieldRef").field(&self.name).finish()
    }
}

impl PartialEq for FieldRef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for FieldRef {}

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
    fn field_ref_reads_what_get_reads_whatever_the_shape() {
        let f = FieldRef::new("b");
        let shapes = [
            Event::new("T", 0).with_field("a", 1).with_field("b", 2),
            Event::new("T", 0).with_field("b", 3),
            Event::new("T", 0).with_field("c", 4),
            Event::new("T", 0)
                .with_field("x", 5)
                .with_field("y", 6)
                .with_field("b", 7),
            Event::new("T", 0).with_field("a", 1).with_field("b", 8),
        ];
        for _ in 0..2 {
            for e in &shapes {
                assert_eq!(f.get(e), e.get("b"), "{e:?}");
            }
        }
    }

    #[test]
    fn from_unique_iter_equals_from_fields() {
        let mut scratch = vec![
            (Arc::from("b"), Value::Int(1)),
            (Arc::from("a"), Value::from("x")),
        ];
        let expected = Event::from_fields("T", 3, scratch.clone());
        let built = Event::from_unique_iter(Arc::from("T"), 3, scratch.drain(..));
        assert_eq!(built, expected);
        assert!(scratch.is_empty());
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
