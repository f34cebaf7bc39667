//! The exact fast path from decimal digits to an `f64`, shared by the `.evt` and `.jsonl`
//! scanners.

/// Powers of ten that are exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits × 10^exp10` as an `f64` when one IEEE multiplication or division gives the
/// correctly rounded result: `digits` below 10^15 (`digit_count <= 15`, so exact in an `f64`)
/// and `|exp10| <= 22` (the power is exact too). `None` otherwise: the caller then parses the
/// text the slow, general way. Both operands exact and one rounding step make the result the
/// one every correct parser (`str::parse`, `serde_json`) gives.
#[must_use]
pub fn exact_decimal(digits: u64, digit_count: usize, exp10: i32) -> Option<f64> {
    if digit_count > 15 || !(-22..=22).contains(&exp10) {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // below 10^15: exact
    let f = digits as f64;
    let pow = POW10[exp10.unsigned_abs() as usize];
    Some(if exp10 >= 0 { f * pow } else { f / pow })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::exact_decimal;

    proptest! {
        /// Whenever the fast path answers, it answers what `str::parse` does.
        #[test]
        fn agrees_with_str_parse(digits in 0u64..1_000_000_000_000_000, exp in -30i32..30) {
            let count = digits.to_string().len();
            if let Some(f) = exact_decimal(digits, count, exp) {
                let parsed: f64 = format!("{digits}e{exp}").parse().unwrap();
                prop_assert_eq!(f.to_bits(), parsed.to_bits());
            } else {
                prop_assert!(count > 15 || !(-22..=22).contains(&exp));
            }
        }
    }
}
