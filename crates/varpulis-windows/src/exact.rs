//! Exact summation of floats.
//!
//! [`ExactSum`] keeps the exact (unrounded) sum of the finite inputs as a fixed-point big integer
//! in base 2^32 limbs, and flags for NaN and infinities. The float it reports is a function of
//! the exact sum only, so it does not depend on the order in which values were added or partial
//! sums merged: a sliding window combined from slices, a session merged from two sessions, and a
//! state restored from a checkpoint all give bit-identical results.

use varpulis_state::ExactSumState;

use crate::WindowError;

/// Adds before a carry normalisation is forced: every add moves a limb by less than 2^32, so
/// limbs (i64) cannot overflow before 2^30 adds.
const PENDING_LIMIT: u32 = 1 << 30;

/// An exact sum of `f64` (and integer) values.
///
/// The result of [`ExactSum::value`] is the exact sum rounded once to the nearest float (ties to
/// even), except in the subnormal range where a second rounding may happen (still deterministic).
/// Non-finite inputs: any NaN, or both infinities, give NaN; otherwise an infinity gives that
/// infinity. A sum of zeros is `+0.0`.
#[derive(Debug, Clone, Default)]
pub struct ExactSum {
    lo: i32,
    limbs: Vec<i64>,
    pending: u32,
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
}

/// Splits a finite float into (is negative, integer mantissa, binary exponent).
fn decompose(x: f64) -> (bool, u64, i32) {
    let bits = x.to_bits();
    let neg = bits >> 63 != 0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    if exp_bits == 0 {
        (neg, frac, -1074)
    } else {
        (neg, frac | (1 << 52), exp_bits - 1075)
    }
}

/// `x * 2^e`, exact unless the result overflows or is subnormal.
fn ldexp(mut x: f64, mut e: i32) -> f64 {
    let pow2 = |k: i32| {
        #[allow(clippy::cast_sign_loss)]
        f64::from_bits(((k + 1023) as u64) << 52)
    };
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e)
}

impl ExactSum {
    /// An empty sum (zero).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Back to zero, keeping the limb allocation.
    pub(crate) fn clear(&mut self) {
        self.lo = 0;
        self.limbs.clear();
        self.pending = 0;
        self.nan = false;
        self.pos_inf = false;
        self.neg_inf = false;
    }

    /// Adds a float.
    pub fn add_f64(&mut self, x: f64) {
        self.add_f64_signed(x, false);
    }

    fn add_f64_signed(&mut self, x: f64, negate: bool) {
        if x.is_nan() {
            self.nan = true;
            return;
        }
        if x.is_infinite() {
            if (x > 0.0) != negate {
                self.pos_inf = true;
            } else {
                self.neg_inf = true;
            }
            return;
        }
        let (neg, m, e) = decompose(x);
        self.add_scaled(u128::from(m), neg != negate, e);
    }

    /// Adds an integer exactly.
    pub fn add_i128(&mut self, v: i128) {
        self.add_scaled(v.unsigned_abs(), v < 0, 0);
    }

    /// Adds `sign * x * n` exactly (x finite).
    pub(crate) fn add_f64_times_u64(&mut self, x: f64, n: u64, negate: bool) {
        if !x.is_finite() {
            if n > 0 {
                self.add_f64_signed(x, negate);
            }
            return;
        }
        let (neg, m, e) = decompose(x);
        self.add_scaled(u128::from(m) * u128::from(n), neg != negate, e);
    }

    /// Adds `sign * a * b` exactly (as the float product plus its rounding error).
    pub(crate) fn add_product(&mut self, a: f64, b: f64, negate: bool) {
        let hi = a * b;
        if !hi.is_finite() {
            self.add_f64_signed(hi, negate);
            return;
        }
        let lo = a.mul_add(b, -hi);
        self.add_f64_signed(hi, negate);
        self.add_f64_signed(lo, negate);
    }

    /// Adds `±mag * 2^exp`.
    #[inline]
    fn add_scaled(&mut self, mag: u128, neg: bool, exp: i32) {
        if mag == 0 {
            return;
        }
        if self.pending >= PENDING_LIMIT {
            self.normalize();
        }
        self.pending += 1;
        let q = exp >> 5; // floor(exp / 32)
        #[allow(clippy::cast_sign_loss)]
        let r = (exp & 31) as u32;
        let low = mag << r;
        let high = if r == 0 { 0 } else { mag >> (128 - r) };
        // 32-bit chunks 0..=4 of `mag << r`; only the non-zero span touches limbs.
        let first = if low == 0 {
            4
        } else {
            low.trailing_zeros() / 32
        };
        let last = if high == 0 {
            (127 - low.leading_zeros()) / 32
        } else {
            4
        };
        #[allow(clippy::cast_possible_wrap)]
        let (from, to) = (q + first as i32, q + last as i32 + 1);
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        let in_range =
            !self.limbs.is_empty() && from >= self.lo && to <= self.lo + self.limbs.len() as i32;
        if !in_range {
            self.ensure(from, to);
        }
        #[allow(clippy::cast_sign_loss)]
        let base = (from - self.lo) as usize;
        let limbs = &mut self.limbs[base..base + (last - first + 1) as usize];
        for (k, l) in limbs.iter_mut().enumerate() {
            #[allow(clippy::cast_possible_truncation)]
            let i = first + k as u32;
            #[allow(clippy::cast_possible_truncation)]
            let c = if i == 4 {
                i64::from(high as u32)
            } else {
                i64::from((low >> (32 * i)) as u32)
            };
            if neg {
                *l -= c;
            } else {
                *l += c;
            }
        }
    }

    /// Makes limbs `from..to` addressable.
    #[allow(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap
    )]
    fn ensure(&mut self, from: i32, to: i32) {
        if self.limbs.is_empty() {
            self.lo = from;
            self.limbs.resize((to - from) as usize, 0);
            return;
        }
        if from < self.lo {
            let extra = (self.lo - from) as usize;
            self.limbs.splice(0..0, std::iter::repeat_n(0, extra));
            self.lo = from;
        }
        let hi = self.lo + self.limbs.len() as i32;
        if to > hi {
            self.limbs.resize(self.limbs.len() + (to - hi) as usize, 0);
        }
    }

    /// Propagates carries: every limb but the last in `0..2^32`, the last possibly `-1` (sign).
    fn normalize(&mut self) {
        let mut carry: i64 = 0;
        for l in &mut self.limbs {
            let v = *l + carry;
            carry = v >> 32;
            *l = v & 0xffff_ffff;
        }
        while carry != 0 && carry != -1 {
            self.limbs.push(carry & 0xffff_ffff);
            carry >>= 32;
        }
        if carry == -1 {
            self.limbs.push(-1);
        }
        // Drop redundant high limbs (0, or an all-ones limb under the sign limb).
        loop {
            let n = self.limbs.len();
            if n >= 1 && self.limbs[n - 1] == 0 {
                self.limbs.pop();
            } else if n >= 2 && self.limbs[n - 1] == -1 && self.limbs[n - 2] == 0xffff_ffff {
                self.limbs.pop();
                self.limbs[n - 2] = -1;
            } else {
                break;
            }
        }
        let zeros = self.limbs.iter().take_while(|&&l| l == 0).count();
        if zeros > 0 {
            self.limbs.drain(..zeros);
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            {
                self.lo += zeros as i32;
            }
        }
        if self.limbs.is_empty() {
            self.lo = 0;
        }
        self.pending = 0;
    }

    /// Adds another sum into this one.
    pub fn merge(&mut self, other: &Self) {
        self.nan |= other.nan;
        self.pos_inf |= other.pos_inf;
        self.neg_inf |= other.neg_inf;
        self.merge_finite(other, false);
    }

    /// Adds (or, with `negate`, subtracts) the finite part of `other`, exactly; the NaN and
    /// infinity flags of both are left alone. Subtracting a sum that was previously merged in
    /// restores the finite part exactly (the arithmetic is integer arithmetic).
    pub(crate) fn merge_finite(&mut self, other: &Self, negate: bool) {
        if other.limbs.is_empty() {
            return;
        }
        let mut normalized;
        let mut src = other;
        if self.pending.saturating_add(other.pending) >= PENDING_LIMIT - 1 {
            self.normalize();
            normalized = other.clone();
            normalized.normalize();
            src = &normalized;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let to = src.lo + src.limbs.len() as i32;
        self.ensure(src.lo, to);
        #[allow(clippy::cast_sign_loss)]
        let off = (src.lo - self.lo) as usize;
        for (i, &l) in src.limbs.iter().enumerate() {
            if negate {
                self.limbs[off + i] -= l;
            } else {
                self.limbs[off + i] += l;
            }
        }
        self.pending += src.pending + 1;
    }

    /// The sum rounded to the nearest float.
    #[must_use]
    pub fn value(&self) -> f64 {
        if self.nan || (self.pos_inf && self.neg_inf) {
            return f64::NAN;
        }
        if self.pos_inf {
            return f64::INFINITY;
        }
        if self.neg_inf {
            return f64::NEG_INFINITY;
        }
        let mut t = self.clone();
        t.normalize();
        let negative = t.limbs.last() == Some(&-1);
        if negative {
            for l in &mut t.limbs {
                *l = -*l;
            }
            t.normalize();
        }
        let Some(top) = t.limbs.iter().rposition(|&l| l != 0) else {
            return 0.0;
        };
        #[allow(clippy::cast_sign_loss)]
        let limb = |i: usize| t.limbs[i] as u128;
        let mut m = limb(top) << 64;
        if top >= 1 {
            m |= limb(top - 1) << 32;
        }
        if top >= 2 {
            m |= limb(top - 2);
            if t.limbs[..top - 2].iter().any(|&l| l != 0) {
                m |= 1;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let f = m as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let e = 32 * (t.lo + top as i32 - 2);
        let v = ldexp(f, e);
        if negative { -v } else { v }
    }

    /// Approximate heap and inline size in bytes.
    #[must_use]
    pub fn approximate_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.limbs.capacity() * 8
    }

    /// The checkpoint form (normalised).
    #[must_use]
    pub fn to_state(&self) -> ExactSumState {
        let mut t = self.clone();
        t.normalize();
        ExactSumState {
            lowest_limb: t.lo,
            limbs: t.limbs,
            nan: t.nan,
            pos_inf: t.pos_inf,
            neg_inf: t.neg_inf,
        }
    }

    /// Rebuilds a sum from its checkpoint form.
    ///
    /// # Errors
    /// [`WindowError::CorruptState`] when limbs are out of the normalised range.
    pub fn from_state(state: &ExactSumState) -> Result<Self, WindowError> {
        if state
            .limbs
            .iter()
            .any(|&l| !(-(1_i64 << 32)..(1_i64 << 32)).contains(&l))
            || state.lowest_limb.unsigned_abs() > 1 << 20
            || state.limbs.len() > 1 << 16
        {
            return Err(WindowError::CorruptState {
                reason: "exact sum limb out of range".into(),
            });
        }
        Ok(Self {
            lo: state.lowest_limb,
            limbs: state.limbs.clone(),
            pending: 1,
            nan: state.nan,
            pos_inf: state.pos_inf,
            neg_inf: state.neg_inf,
        })
    }

    /// Whether a non-finite value was added.
    pub(crate) fn has_special(&self) -> bool {
        self.nan || self.pos_inf || self.neg_inf
    }
}

/// A sum that can also *remove* a previously added [`ExactSum`] (subtract-on-evict for sliding
/// windows). The finite part is exact integer arithmetic, so removal is exact; the NaN and
/// infinity flags, which are not invertible as booleans, are kept as counts of the added sums
/// that carry them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunningSum {
    finite: ExactSum,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
}

impl RunningSum {
    /// Adds (`remove == false`) or removes a sum.
    pub(crate) fn apply(&mut self, s: &ExactSum, remove: bool) {
        self.finite.merge_finite(s, remove);
        let step = |c: &mut u64, flag: bool| {
            if flag {
                if remove {
                    *c -= 1;
                } else {
                    *c += 1;
                }
            }
        };
        step(&mut self.nan, s.nan);
        step(&mut self.pos_inf, s.pos_inf);
        step(&mut self.neg_inf, s.neg_inf);
    }

    /// The sum rounded to the nearest float (as [`ExactSum::value`] of the equivalent sum).
    pub(crate) fn value(&self) -> f64 {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            f64::NAN
        } else if self.pos_inf > 0 {
            f64::INFINITY
        } else if self.neg_inf > 0 {
            f64::NEG_INFINITY
        } else {
            self.finite.value()
        }
    }

    /// The equivalent plain sum.
    pub(crate) fn to_exact(&self) -> ExactSum {
        let mut s = self.finite.clone();
        s.nan = self.nan > 0;
        s.pos_inf = self.pos_inf > 0;
        s.neg_inf = self.neg_inf > 0;
        s
    }

    pub(crate) fn approximate_size(&self) -> usize {
        self.finite.approximate_size() + 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(xs: &[f64]) -> f64 {
        let mut s = ExactSum::new();
        for &x in xs {
            s.add_f64(x);
        }
        s.value()
    }

    #[test]
    fn sums_exactly_where_naive_summation_loses_digits() {
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[0.1, 0.2, 0.3]), 0.6);
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[-3.5]), -3.5);
        assert_eq!(sum(&[f64::MAX, f64::MAX, -f64::MAX]), f64::MAX);
        assert_eq!(sum(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum(&[5e-324, 5e-324]), 1e-323);
        assert_eq!(sum(&[-0.0]), 0.0);
    }

    #[test]
    fn non_finite_inputs_follow_ieee() {
        assert!(sum(&[1.0, f64::NAN]).is_nan());
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert_eq!(sum(&[f64::NEG_INFINITY, 1.0]), f64::NEG_INFINITY);
    }

    #[test]
    fn integers_and_products_are_exact() {
        let mut s = ExactSum::new();
        s.add_i128(i128::from(i64::MAX));
        s.add_i128(i128::from(i64::MAX));
        s.add_i128(-2 * i128::from(i64::MAX));
        s.add_f64(0.5);
        assert_eq!(s.value(), 0.5);
        let mut p = ExactSum::new();
        p.add_product(0.1, 0.1, false);
        p.add_f64(-0.1 * 0.1);
        assert_eq!(p.value(), 0.1_f64.mul_add(0.1, -(0.1 * 0.1)));
        let mut q = ExactSum::new();
        q.add_f64_times_u64(0.1, 10, false);
        q.add_f64_times_u64(0.1, 10, true);
        assert_eq!(q.value(), 0.0);
    }

    #[test]
    fn survives_the_checkpoint_form() {
        let mut s = ExactSum::new();
        for x in [1e-300, -7.25, 3e200, -3e200, 1.0 / 3.0] {
            s.add_f64(x);
        }
        let back = ExactSum::from_state(&s.to_state()).unwrap();
        assert_eq!(back.value().to_bits(), s.value().to_bits());
    }

    proptest::proptest! {
        #[test]
        fn result_does_not_depend_on_order_or_grouping(
            xs in proptest::collection::vec(proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO, 0..40),
            split in 0usize..40,
        ) {
            let forward = sum(&xs);
            let mut rev = xs.clone();
            rev.reverse();
            proptest::prop_assert_eq!(forward.to_bits(), sum(&rev).to_bits());
            let split = split.min(xs.len());
            let mut a = ExactSum::new();
            let mut b = ExactSum::new();
            for &x in &xs[..split] { a.add_f64(x); }
            for &x in &xs[split..] { b.add_f64(x); }
            b.merge(&a);
            proptest::prop_assert_eq!(forward.to_bits(), b.value().to_bits());
        }

        #[test]
        fn matches_integer_arithmetic_on_dyadic_values(ks in proptest::collection::vec(-(1_i64 << 60)..(1_i64 << 60), 0..30), shift in 0i32..80) {
            let mut s = ExactSum::new();
            let mut total: i128 = 0;
            for &k in &ks {
                #[allow(clippy::cast_precision_loss)]
                let x = ldexp(k as f64, -shift);
                // k may have rounded to 53 bits: use the float's exact value.
                #[allow(clippy::cast_possible_truncation)]
                let exact = ldexp(x, shift) as i128;
                total += exact;
                s.add_f64(x);
            }
            #[allow(clippy::cast_precision_loss)]
            let expected = ldexp(total as f64, -shift);
            proptest::prop_assert_eq!(s.value().to_bits(), expected.to_bits());
        }
    }
}
