//! The aggregate functions of VPL, shared by the parser's plans and the window operators.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An aggregate function. Typing rules are in DESIGN section 5 and `docs/design/windows.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AggFunc {
    /// `count()`: events; `count(expr)`: non-null inputs. Int.
    Count,
    /// `sum(expr)`: Int while every input is an Int and the sum fits in i64, else Float.
    /// Numeric input.
    Sum,
    /// `avg(expr)`: Float. Numeric input.
    Avg,
    /// `min(expr)` in `Value`'s total order.
    Min,
    /// `max(expr)` in `Value`'s total order (NaN above every float).
    Max,
    /// `first(expr)`: the input of the event with the smallest (event time, arrival).
    First,
    /// `last(expr)`: the input of the event with the largest (event time, arrival).
    Last,
    /// `stddev(expr)`: sample standard deviation (n - 1), Float; null below two inputs.
    /// Numeric input.
    StdDev,
    /// `count_distinct(expr)`: distinct non-null inputs (`Int(1)`, `Float(1.0)` and `Str("1")`
    /// are three values). Int.
    CountDistinct,
}

impl AggFunc {
    /// Every function, in documentation order.
    pub const ALL: [AggFunc; 9] = [
        Self::Count,
        Self::Sum,
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::First,
        Self::Last,
        Self::StdDev,
        Self::CountDistinct,
    ];

    /// The VPL name (`count_distinct`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::First => "first",
            Self::Last => "last",
            Self::StdDev => "stddev",
            Self::CountDistinct => "count_distinct",
        }
    }

    /// Parses a VPL function name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the input must be numeric (`sum`, `avg`, `stddev`).
    #[must_use]
    pub fn needs_number(self) -> bool {
        matches!(self, Self::Sum | Self::Avg | Self::StdDev)
    }
}

impl fmt::Display for AggFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in AggFunc::ALL {
            assert_eq!(AggFunc::from_name(f.name()), Some(f));
        }
        assert_eq!(AggFunc::from_name("median"), None);
    }
}
