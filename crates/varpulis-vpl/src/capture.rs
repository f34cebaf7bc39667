//! Functions over the events a pattern captured under an alias: `len(b)`, `sum(b.v)`, ...,
//! evaluated by [`Expr::eval`](crate::Expr::eval) and the compiled form alike.

use varpulis_core::{Event, Value};

/// How [`CaptureFunc::apply`] reads a field of an event: by name (`str`) or through a
/// [`FieldRef`](varpulis_core::FieldRef).
pub trait ReadField {
    /// The field's value in `event`.
    fn read<'e>(&self, event: &'e Event) -> Option<&'e Value>;
}

impl ReadField for str {
    fn read<'e>(&self, event: &'e Event) -> Option<&'e Value> {
        event.get(self)
    }
}

impl ReadField for varpulis_core::FieldRef {
    fn read<'e>(&self, event: &'e Event) -> Option<&'e Value> {
        self.get(event)
    }
}

/// A function over the events captured under a pattern alias: `len(b)`, `count(b)`,
/// `sum(b.v)`, `avg(b.v)`, `min(b.v)`, `max(b.v)`, `first(b.v)`, `last(b.v)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFunc {
    /// The number of events (`len` and `count` are the same).
    Len,
    /// The sum of the field's numbers (`Int` when all are ints, else `Float`; nulls and
    /// non-numbers skipped; `0` over none).
    Sum,
    /// The mean of the field's numbers, a `Float` (`null` over none).
    Avg,
    /// The smallest of the field's non-null values (`null` over none).
    Min,
    /// The largest of the field's non-null values (`null` over none).
    Max,
    /// The field of the first event.
    First,
    /// The field of the last event.
    Last,
}

impl CaptureFunc {
    /// By name: `len`, `count`, `sum`, `avg`, `min`, `max`, `first`, `last`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "len" | "count" => Self::Len,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "first" => Self::First,
            "last" => Self::Last,
            _ => return None,
        })
    }

    /// The canonical name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Len => "len",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::First => "first",
            Self::Last => "last",
        }
    }

    /// Whether it reads a field (all but `len`).
    #[must_use]
    pub fn reads_field(self) -> bool {
        self != Self::Len
    }

    /// The function over `events`, reading the field `field` of each (`None`: `len`).
    pub fn apply<F: ReadField + ?Sized>(self, events: &[Event], field: Option<&F>) -> Value {
        let Some(field) = field else {
            return Value::Int(i64::try_from(events.len()).unwrap_or(i64::MAX));
        };
        let get = |e| field.read(e);
        let values = events.iter().filter_map(get).filter(|v| !v.is_null());
        match self {
            Self::Len => Value::Int(i64::try_from(events.len()).unwrap_or(i64::MAX)),
            Self::First => events
                .first()
                .and_then(&get)
                .cloned()
                .unwrap_or(Value::Null),
            Self::Last => events.last().and_then(&get).cloned().unwrap_or(Value::Null),
            Self::Min => values.min().cloned().unwrap_or(Value::Null),
            Self::Max => values.max().cloned().unwrap_or(Value::Null),
            Self::Sum | Self::Avg => {
                let (mut int, mut float, mut all_int, mut n) = (0_i64, 0.0_f64, true, 0_u64);
                for v in values {
                    match v {
                        Value::Int(i) => {
                            #[allow(clippy::cast_precision_loss)]
                            let f = *i as f64;
                            float += f;
                            match int.checked_add(*i) {
                                Some(sum) => int = sum,
                                None => all_int = false,
                            }
                        }
                        Value::Float(f) => {
                            float += f;
                            all_int = false;
                        }
                        _ => continue,
                    }
                    n += 1;
                }
                match self {
                    Self::Sum if all_int => Value::Int(int),
                    Self::Sum => Value::Float(float),
                    #[allow(clippy::cast_precision_loss)]
                    _ if n > 0 => Value::Float(float / n as f64),
                    _ => Value::Null,
                }
            }
        }
    }
}
