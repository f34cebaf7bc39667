//! Aggregate functions and their accumulators.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use varpulis_core::Value;
use varpulis_state::AccumulatorState;

use crate::WindowError;
use crate::exact::ExactSum;
use crate::expr::{Expr, Field};

/// The aggregate functions (shared with the VPL plans: `varpulis_core::AggFunc`).
pub type AggFn = varpulis_core::AggFunc;

/// One output column: `alias = func(input)`.
#[derive(Clone)]
pub struct Aggregate {
    pub(crate) alias: Arc<str>,
    pub(crate) func: AggFn,
    pub(crate) input: Option<Arc<dyn Expr>>,
}

impl fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signature())
    }
}

impl Aggregate {
    /// `alias = func(input)`.
    pub fn new(alias: impl Into<Arc<str>>, func: AggFn, input: impl Expr + 'static) -> Self {
        Self {
            alias: alias.into(),
            func,
            input: Some(Arc::new(input)),
        }
    }

    /// `alias = func(field)`.
    pub fn field(alias: impl Into<Arc<str>>, func: AggFn, field: &str) -> Self {
        Self::new(alias, func, Field::new(field))
    }

    /// `alias = count()`: counts every event.
    pub fn count(alias: impl Into<Arc<str>>) -> Self {
        Self {
            alias: alias.into(),
            func: AggFn::Count,
            input: None,
        }
    }

    /// The output field name.
    #[must_use]
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The function.
    #[must_use]
    pub fn func(&self) -> AggFn {
        self.func
    }

    /// `alias=func(input)`, as recorded in checkpoints.
    #[must_use]
    pub fn signature(&self) -> String {
        let input = self
            .input
            .as_ref()
            .map(|e| e.signature())
            .unwrap_or_default();
        format!("{}={}({input})", self.alias, self.func.name())
    }
}

/// A running accumulator. Every `merge` is commutative and associative, exactly (float sums
/// are exact), so combining slices or sessions in any order gives the same bits.
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    Count(u64),
    Sum {
        int: i128,
        exact: ExactSum,
        saw_float: bool,
        n: u64,
    },
    Avg {
        sum: ExactSum,
        n: u64,
    },
    Min(Option<Value>),
    Max(Option<Value>),
    First(Option<(i64, u64, Value)>),
    Last(Option<(i64, u64, Value)>),
    StdDev {
        n: u64,
        sum: ExactSum,
        sum_sq: ExactSum,
    },
    CountDistinct(BTreeSet<Value>),
}

impl Acc {
    pub(crate) fn new(f: AggFn) -> Self {
        match f {
            AggFn::Count => Self::Count(0),
            AggFn::Sum => Self::Sum {
                int: 0,
                exact: ExactSum::new(),
                saw_float: false,
                n: 0,
            },
            AggFn::Avg => Self::Avg {
                sum: ExactSum::new(),
                n: 0,
            },
            AggFn::Min => Self::Min(None),
            AggFn::Max => Self::Max(None),
            AggFn::First => Self::First(None),
            AggFn::Last => Self::Last(None),
            AggFn::StdDev => Self::StdDev {
                n: 0,
                sum: ExactSum::new(),
                sum_sq: ExactSum::new(),
            },
            AggFn::CountDistinct => Self::CountDistinct(BTreeSet::new()),
        }
    }

    /// Back to the empty accumulator, keeping allocations (a recycled pane).
    pub(crate) fn reset(&mut self) {
        match self {
            Self::Count(c) => *c = 0,
            Self::Sum {
                int,
                exact,
                saw_float,
                n,
            } => {
                *int = 0;
                exact.clear();
                *saw_float = false;
                *n = 0;
            }
            Self::Avg { sum, n } => {
                sum.clear();
                *n = 0;
            }
            Self::Min(v) | Self::Max(v) => *v = None,
            Self::First(v) | Self::Last(v) => *v = None,
            Self::StdDev { n, sum, sum_sq } => {
                *n = 0;
                sum.clear();
                sum_sq.clear();
            }
            Self::CountDistinct(set) => set.clear(),
        }
    }

    /// Adds one input. Null is ignored (count() passes a non-null marker); numeric aggregates
    /// also ignore non-numeric inputs.
    #[inline]
    pub(crate) fn update(&mut self, v: Value, ts: i64, seq: u64) {
        if v.is_null() {
            return;
        }
        match self {
            Self::Count(c) => *c += 1,
            Self::Sum {
                int,
                exact,
                saw_float,
                n,
            } => match v {
                Value::Int(i) => {
                    *int += i128::from(i);
                    exact.add_i128(i128::from(i));
                    *n += 1;
                }
                Value::Float(f) => {
                    exact.add_f64(f);
                    *saw_float = true;
                    *n += 1;
                }
                _ => {}
            },
            Self::Avg { sum, n } => match v {
                Value::Int(i) => {
                    sum.add_i128(i128::from(i));
                    *n += 1;
                }
                Value::Float(f) => {
                    sum.add_f64(f);
                    *n += 1;
                }
                _ => {}
            },
            Self::Min(m) => {
                if m.as_ref().is_none_or(|cur| v < *cur) {
                    *m = Some(v);
                }
            }
            Self::Max(m) => {
                if m.as_ref().is_none_or(|cur| v > *cur) {
                    *m = Some(v);
                }
            }
            Self::First(m) => {
                if m.as_ref().is_none_or(|(t, s, _)| (ts, seq) < (*t, *s)) {
                    *m = Some((ts, seq, v));
                }
            }
            Self::Last(m) => {
                if m.as_ref().is_none_or(|(t, s, _)| (ts, seq) > (*t, *s)) {
                    *m = Some((ts, seq, v));
                }
            }
            Self::StdDev { n, sum, sum_sq } => {
                if let Some(x) = v.as_f64() {
                    sum.add_f64(x);
                    sum_sq.add_product(x, x, false);
                    *n += 1;
                }
            }
            Self::CountDistinct(set) => {
                set.insert(v);
            }
        }
    }

    /// Merges another accumulator of the same function into this one.
    pub(crate) fn merge(&mut self, other: &Self) {
        match (self, other) {
            (Self::Count(a), Self::Count(b)) => *a += b,
            (
                Self::Sum {
                    int,
                    exact,
                    saw_float,
                    n,
                },
                Self::Sum {
                    int: i2,
                    exact: e2,
                    saw_float: f2,
                    n: n2,
                },
            ) => {
                *int += i2;
                exact.merge(e2);
                *saw_float |= f2;
                *n += n2;
            }
            (Self::Avg { sum, n }, Self::Avg { sum: s2, n: n2 }) => {
                sum.merge(s2);
                *n += n2;
            }
            (Self::Min(a), Self::Min(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|cur| b < cur)
                {
                    *a = Some(b.clone());
                }
            }
            (Self::Max(a), Self::Max(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|cur| b > cur)
                {
                    *a = Some(b.clone());
                }
            }
            (Self::First(a), Self::First(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|cur| (b.0, b.1) < (cur.0, cur.1))
                {
                    *a = Some(b.clone());
                }
            }
            (Self::Last(a), Self::Last(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|cur| (b.0, b.1) > (cur.0, cur.1))
                {
                    *a = Some(b.clone());
                }
            }
            (
                Self::StdDev { n, sum, sum_sq },
                Self::StdDev {
                    n: n2,
                    sum: s2,
                    sum_sq: q2,
                },
            ) => {
                *n += n2;
                sum.merge(s2);
                sum_sq.merge(q2);
            }
            (Self::CountDistinct(a), Self::CountDistinct(b)) => {
                a.extend(b.iter().cloned());
            }
            _ => unreachable!("accumulators of one aggregate always have the same function"),
        }
    }

    /// The aggregate's value.
    pub(crate) fn result(&self) -> Value {
        #[allow(clippy::cast_possible_wrap, clippy::cast_precision_loss)]
        match self {
            Self::Count(c) => Value::Int(*c as i64),
            Self::Sum { n: 0, .. } | Self::Avg { n: 0, .. } => Value::Null,
            Self::Sum {
                int,
                exact,
                saw_float,
                ..
            } => match (saw_float, i64::try_from(*int)) {
                (false, Ok(i)) => Value::Int(i),
                _ => Value::Float(exact.value()),
            },
            Self::Avg { sum, n } => Value::Float(sum.value() / *n as f64),
            Self::Min(v) | Self::Max(v) => v.clone().unwrap_or(Value::Null),
            Self::First(v) | Self::Last(v) => v.as_ref().map_or(Value::Null, |(_, _, v)| v.clone()),
            Self::StdDev { n, sum, sum_sq } => {
                if *n < 2 {
                    Value::Null
                } else {
                    Value::Float(sample_stddev(*n, sum, sum_sq))
                }
            }
            Self::CountDistinct(s) => Value::Int(s.len() as i64),
        }
    }

    pub(crate) fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Self::Sum { exact, .. } => exact.approximate_size(),
                Self::Avg { sum, .. } => sum.approximate_size(),
                Self::StdDev { sum, sum_sq, .. } => {
                    sum.approximate_size() + sum_sq.approximate_size()
                }
                Self::Min(Some(v)) | Self::Max(Some(v)) => v.approximate_size(),
                Self::First(Some((_, _, v))) | Self::Last(Some((_, _, v))) => v.approximate_size(),
                Self::CountDistinct(s) => s.iter().map(|v| v.approximate_size() + 16).sum(),
                _ => 0,
            }
    }

    pub(crate) fn to_state(&self) -> AccumulatorState {
        match self {
            Self::Count(c) => AccumulatorState::Count(*c),
            Self::Sum {
                int,
                exact,
                saw_float,
                n,
            } => AccumulatorState::Sum {
                int: *int,
                exact: exact.to_state(),
                saw_float: *saw_float,
                n: *n,
            },
            Self::Avg { sum, n } => AccumulatorState::Avg {
                sum: sum.to_state(),
                n: *n,
            },
            Self::Min(v) => AccumulatorState::Min(v.clone()),
            Self::Max(v) => AccumulatorState::Max(v.clone()),
            Self::First(v) => AccumulatorState::First(v.clone()),
            Self::Last(v) => AccumulatorState::Last(v.clone()),
            Self::StdDev { n, sum, sum_sq } => AccumulatorState::StdDev {
                n: *n,
                sum: sum.to_state(),
                sum_sq: sum_sq.to_state(),
            },
            Self::CountDistinct(s) => AccumulatorState::CountDistinct(s.iter().cloned().collect()),
        }
    }

    pub(crate) fn from_state(f: AggFn, state: &AccumulatorState) -> Result<Self, WindowError> {
        let acc = match (f, state) {
            (AggFn::Count, AccumulatorState::Count(c)) => Self::Count(*c),
            (
                AggFn::Sum,
                AccumulatorState::Sum {
                    int,
                    exact,
                    saw_float,
                    n,
                },
            ) => Self::Sum {
                int: *int,
                exact: ExactSum::from_state(exact)?,
                saw_float: *saw_float,
                n: *n,
            },
            (AggFn::Avg, AccumulatorState::Avg { sum, n }) => Self::Avg {
                sum: ExactSum::from_state(sum)?,
                n: *n,
            },
            (AggFn::Min, AccumulatorState::Min(v)) => Self::Min(v.clone()),
            (AggFn::Max, AccumulatorState::Max(v)) => Self::Max(v.clone()),
            (AggFn::First, AccumulatorState::First(v)) => Self::First(v.clone()),
            (AggFn::Last, AccumulatorState::Last(v)) => Self::Last(v.clone()),
            (AggFn::StdDev, AccumulatorState::StdDev { n, sum, sum_sq }) => Self::StdDev {
                n: *n,
                sum: ExactSum::from_state(sum)?,
                sum_sq: ExactSum::from_state(sum_sq)?,
            },
            (AggFn::CountDistinct, AccumulatorState::CountDistinct(v)) => {
                Self::CountDistinct(v.iter().cloned().collect())
            }
            (f, other) => {
                return Err(WindowError::CorruptState {
                    reason: format!("accumulator {other:?} stored for aggregate {}", f.name()),
                });
            }
        };
        Ok(acc)
    }
}

/// Sample standard deviation from exact moments `S1 = sum x`, `S2 = sum x^2`.
///
/// With `c = round(S1) / n`, `M2 = S2 - n c^2 - 2 c d` where `d = S1 - n c` is computed exactly
/// (only `d` is rounded, and it is tiny), then `sqrt(M2 / (n - 1))`. Depends only on the exact
/// moments, hence not on input order. A non-finite input gives NaN; squares overflowing give
/// +infinity.
fn sample_stddev(n: u64, sum: &ExactSum, sum_sq: &ExactSum) -> f64 {
    if sum.has_special() {
        return f64::NAN;
    }
    if sum_sq.has_special() {
        return f64::INFINITY;
    }
    #[allow(clippy::cast_precision_loss)]
    let c = sum.value() / n as f64;
    let mut d = sum.clone();
    d.add_f64_times_u64(c, n, true);
    let d = d.value();
    let mut m2 = sum_sq.clone();
    let hi = c * c;
    let lo = c.mul_add(c, -hi);
    m2.add_f64_times_u64(hi, n, true);
    m2.add_f64_times_u64(lo, n, true);
    m2.add_product(2.0 * c, d, true);
    #[allow(clippy::cast_precision_loss)]
    let var = m2.value().max(0.0) / (n - 1) as f64;
    var.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: AggFn, inputs: &[Value]) -> Value {
        let mut acc = Acc::new(f);
        for (i, v) in inputs.iter().enumerate() {
            #[allow(clippy::cast_possible_wrap)]
            acc.update(v.clone(), 0, i as u64);
        }
        acc.result()
    }

    #[test]
    fn typing_rules() {
        let ints = [Value::Int(1), Value::Int(2), Value::Null];
        assert_eq!(run(AggFn::Sum, &ints), Value::Int(3));
        assert_eq!(
            run(AggFn::Sum, &[Value::Int(1), Value::Float(0.5)]),
            Value::Float(1.5)
        );
        assert_eq!(
            run(AggFn::Sum, &[Value::Int(i64::MAX), Value::Int(1)]),
            Value::Float(9.223_372_036_854_776e18)
        );
        assert_eq!(run(AggFn::Sum, &[]), Value::Null);
        assert_eq!(run(AggFn::Avg, &ints), Value::Float(1.5));
        assert_eq!(run(AggFn::Count, &ints), Value::Int(2));
        assert_eq!(run(AggFn::Count, &[]), Value::Int(0));
        assert_eq!(
            run(AggFn::Max, &[Value::Float(f64::NAN), Value::Float(1e300)]),
            Value::Float(f64::NAN)
        );
        assert_eq!(
            run(AggFn::Min, &[Value::Float(f64::NAN), Value::Int(3)]),
            Value::Int(3)
        );
        assert_eq!(run(AggFn::StdDev, &[Value::Int(1)]), Value::Null);
        assert_eq!(
            run(
                AggFn::StdDev,
                &[
                    Value::Int(2),
                    Value::Int(4),
                    Value::Int(4),
                    Value::Int(4),
                    Value::Int(5),
                    Value::Int(5),
                    Value::Int(7),
                    Value::Int(9)
                ]
            ),
            Value::Float((32.0_f64 / 7.0).sqrt())
        );
        assert_eq!(
            run(
                AggFn::CountDistinct,
                &[
                    Value::Int(1),
                    Value::Float(1.0),
                    Value::from("1"),
                    Value::Int(1)
                ]
            ),
            Value::Int(3)
        );
        assert!(
            matches!(run(AggFn::Avg, &[Value::Float(f64::NAN)]), Value::Float(x) if x.is_nan())
        );
    }

    #[test]
    fn stddev_is_accurate_far_from_zero() {
        let xs: Vec<Value> = (0..1000)
            .map(|i| Value::Float(1e9 + f64::from(i % 2)))
            .collect();
        let Value::Float(s) = run(AggFn::StdDev, &xs) else {
            panic!()
        };
        assert!((s - (250.0_f64 / 999.0).sqrt()).abs() < 1e-12, "{s}");
    }
}
