//! Duration literals: `500ms`, `10s`, `5m`, `1h`, `1d`.

use std::time::Duration;

/// Why a duration literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration: expected a number followed by ms, s, m, h or d")]
    Empty,
    /// The literal does not start with digits.
    #[error("invalid duration {input:?}: expected digits before the unit (e.g. 10s)")]
    MissingNumber {
        /// The literal.
        input: String,
    },
    /// Digits without a unit.
    #[error("invalid duration {input:?}: missing unit, expected one of ms, s, m, h, d")]
    MissingUnit {
        /// The literal.
        input: String,
    },
    /// A unit that is not `ms s m h d`.
    #[error("invalid duration {input:?}: unknown unit {unit:?}, expected one of ms, s, m, h, d")]
    UnknownUnit {
        /// The literal.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// The value does not fit in 63 bits of milliseconds.
    #[error("invalid duration {input:?}: too large, the maximum is {max}")]
    Overflow {
        /// The literal.
        input: String,
        /// The largest duration in the literal's unit, e.g. `106751991167d`.
        max: String,
    },
}

/// Parses a duration literal into milliseconds.
///
/// # Errors
/// [`DurationError`] describing what was expected.
pub fn parse_duration_ms(input: &str) -> Result<i64, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::MissingNumber {
            input: input.to_owned(),
        });
    }
    let factor: i64 = match unit {
        "" => {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: other.to_owned(),
            });
        }
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
        max: format!("{}{unit}", i64::MAX / factor),
    };
    digits
        .parse::<i64>()
        .map_err(|_| overflow())?
        .checked_mul(factor)
        .ok_or_else(overflow)
}

/// Parses a duration literal into a [`Duration`].
///
/// # Errors
/// [`DurationError`] describing what was expected.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    parse_duration_ms(input).map(|ms| Duration::from_millis(ms.unsigned_abs()))
}

/// Formats milliseconds with the largest unit that divides them exactly (`300000` -> `5m`).
#[must_use]
pub fn format_duration_ms(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (factor, unit) in UNITS {
        if ms != 0 && ms % factor == 0 {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn rejects_malformed_literals_with_what_was_expected() {
        assert_eq!(parse_duration_ms(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration_ms("10"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration_ms("s"),
            Err(DurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse_duration_ms("-5s"),
            Err(DurationError::MissingNumber { .. })
        ));
        let err = parse_duration_ms("5y").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration \"5y\": unknown unit \"y\", expected one of ms, s, m, h, d"
        );
        assert!(matches!(
            parse_duration_ms("1.5s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration_ms("99999999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration_ms("9999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn an_overflowing_duration_names_the_maximum_in_its_unit() {
        let err = parse_duration_ms("999999999999d").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration \"999999999999d\": too large, the maximum is 106751991167d"
        );
        assert_eq!(
            parse_duration_ms("106751991167d"),
            Ok(106_751_991_167 * 86_400_000)
        );
        let err = parse_duration_ms("9223372036854775808ms").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("the maximum is 9223372036854775807ms"),
            "{err}"
        );
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format_duration_ms(300_000), "5m");
        assert_eq!(format_duration_ms(1_500), "1500ms");
        assert_eq!(format_duration_ms(0), "0ms");
        assert_eq!(format_duration_ms(86_400_000), "1d");
    }
}
