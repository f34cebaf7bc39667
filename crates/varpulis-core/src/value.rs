//! Dynamically typed field values.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A field value. Cheap to clone: strings, arrays and maps are reference counted.
///
/// `Value` has a total order and structural equality so it can key partitions and maps:
/// values of different types are never equal (`Int(1)` ≠ `Str("1")` ≠ `Float(1.0)`); the order
/// ranks `Null < Bool < numbers < Str < Timestamp < Duration < Array < Map`, compares Int and
/// Float numerically (ties: Int first), and places NaN above every other float
/// ([`f64::total_cmp`]). Floats compare equal when their bits are equal, so `NaN == NaN` here.
#[derive(Clone, Serialize, Deserialize)]
pub enum Value {
    /// Absent or unknown.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float (NaN and infinities allowed).
    Float(f64),
    /// A UTF-8 string.
    Str(Arc<str>),
    /// An instant, milliseconds since the Unix epoch.
    Timestamp(i64),
    /// A span of time in milliseconds.
    Duration(i64),
    /// An ordered list.
    Array(Arc<[Value]>),
    /// A map with string keys, sorted by key.
    Map(Arc<BTreeMap<Arc<str>, Value>>),
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Bool(_) => 1,
            Self::Int(_) | Self::Float(_) => 2,
            Self::Str(_) => 3,
            Self::Timestamp(_) => 4,
            Self::Duration(_) => 5,
            Self::Array(_) => 6,
            Self::Map(_) => 7,
        }
    }

    /// The name of the value's type, for error messages (`int`, `float`, `str`, ...).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Float(_) => "float",
            Self::Str(_) => "str",
            Self::Timestamp(_) => "timestamp",
            Self::Duration(_) => "duration",
            Self::Array(_) => "array",
            Self::Map(_) => "map",
        }
    }

    /// Whether this is [`Value::Null`].
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as a float, for numbers only.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            #[allow(clippy::cast_precision_loss)]
            Self::Int(i) => Some(i as f64),
            Self::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The value as an integer, for `Int` only.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The value as a string slice, for `Str` only.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, for `Bool` only.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Approximate heap and inline size in bytes, for state-size metrics.
    #[must_use]
    pub fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Self::Str(s) => s.len(),
                Self::Array(a) => a.iter().map(Self::approximate_size).sum(),
                Self::Map(m) => m.iter().map(|(k, v)| k.len() + v.approximate_size()).sum(),
                _ => 0,
            }
    }
}

fn cmp_numbers(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Int(x), Value::Float(y)) => cmp_int_float(*x, *y),
        (Value::Float(x), Value::Int(y)) => cmp_int_float(*y, *x).reverse(),
        _ => Ordering::Equal,
    }
}

/// Compares an integer with a float exactly (no rounding of large integers); ties put Int first.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    #[allow(clippy::cast_precision_loss)]
    let as_float = i as f64;
    match as_float.partial_cmp(&f) {
        Some(Ordering::Equal) => {
            // `as_float` may have rounded; compare in the integer domain when f is in range.
            if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                #[allow(clippy::cast_possible_truncation)]
                let back = f as i64;
                i.cmp(&back).then(Ordering::Less)
            } else {
                Ordering::Less
            }
        }
        Some(o) => o,
        None => Ordering::Less,
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| match (self, other) {
                (Self::Null, Self::Null) => Ordering::Equal,
                (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
                (Self::Str(a), Self::Str(b)) => a.cmp(b),
                (Self::Timestamp(a), Self::Timestamp(b))
                | (Self::Duration(a), Self::Duration(b)) => a.cmp(b),
                (Self::Array(a), Self::Array(b)) => a.iter().cmp(b.iter()),
                (Self::Map(a), Self::Map(b)) => a.iter().cmp(b.iter()),
                _ => cmp_numbers(self, other),
            })
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Int(_), Self::Float(_)) | (Self::Float(_), Self::Int(_)) => false,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Self::Null => {}
            Self::Bool(b) => b.hash(state),
            Self::Int(i) | Self::Timestamp(i) | Self::Duration(i) => i.hash(state),
            Self::Float(f) => f.to_bits().hash(state),
            Self::Str(s) => s.hash(state),
            Self::Array(a) => a.hash(state),
            Self::Map(m) => m.hash(state),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("Null"),
            Self::Bool(b) => write!(f, "Bool({b})"),
            Self::Int(i) => write!(f, "Int({i})"),
            Self::Float(x) => write!(f, "Float({x:?})"),
            Self::Str(s) => write!(f, "Str({s:?})"),
            Self::Timestamp(t) => write!(f, "Timestamp({t})"),
            Self::Duration(d) => write!(f, "Duration({d})"),
            Self::Array(a) => f.debug_list().entries(a.iter()).finish(),
            Self::Map(m) => f.debug_map().entries(m.iter()).finish(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x:?}"),
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Timestamp(t) => write!(f, "@{t}ms"),
            Self::Duration(d) => f.write_str(&crate::format_duration_ms(*d)),
            Self::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Self::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Str(Arc::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Str(Arc::from(v))
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Self::Array(Arc::from(v))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_types_are_different_values() {
        assert_ne!(Value::Int(1), Value::from("1"));
        assert_ne!(Value::Int(1), Value::Float(1.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }

    #[test]
    fn orders_null_bool_numbers_strings() {
        let mut v = vec![
            Value::from("a"),
            Value::Float(1.5),
            Value::Int(2),
            Value::Bool(true),
            Value::Null,
            Value::Int(1),
            Value::Float(1.0),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
        ];
        v.sort();
        assert_eq!(
            format!("{v:?}"),
            "[Null, Bool(true), Float(-inf), Int(1), Float(1.0), Float(1.5), Int(2), Float(NaN), Str(\"a\")]"
        );
    }

    #[test]
    fn large_ints_compare_exactly_with_floats() {
        let big = i64::MAX;
        assert_eq!(Value::Int(big).cmp(&Value::Float(9.3e18)), Ordering::Less);
        assert_eq!(Value::Int(big - 1).cmp(&Value::Int(big)), Ordering::Less);
        assert_eq!(
            Value::Int(1 << 53).cmp(&Value::Float(9_007_199_254_740_992.0)),
            Ordering::Less
        );
        assert_eq!(
            Value::Int((1 << 53) + 1).cmp(&Value::Float(9_007_199_254_740_992.0)),
            Ordering::Greater
        );
    }

    #[test]
    fn round_trips_through_postcard_exactly() {
        let map: BTreeMap<Arc<str>, Value> = [(Arc::from("k"), Value::Float(f64::NAN))]
            .into_iter()
            .collect();
        let v = Value::from(vec![
            Value::Float(f64::INFINITY),
            Value::Float(-0.0),
            Value::Map(Arc::new(map)),
            Value::Timestamp(-5),
            Value::Duration(300_000),
            Value::Null,
        ]);
        let back: Value = postcard::from_bytes(&postcard::to_stdvec(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        let Value::Array(items) = back else { panic!() };
        assert!(matches!(items[1], Value::Float(z) if z.to_bits() == (-0.0_f64).to_bits()));
    }
}
