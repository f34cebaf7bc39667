//! The hasher for partition keys.
//!
//! `std`'s default SipHash-1-3 cost about a quarter of the per-event time of a partitioned
//! tumbling window (the key is hashed on every event). [`KeyHasher`] is a keyed
//! folded-multiply hash (the construction of `foldhash`/`ahash`'s fallback): each 64-bit word is
//! xored into the state and mixed by a 64x64→128-bit multiply whose halves are xored, with a
//! random per-operator seed.
//!
//! **Hash flooding.** Partition keys come from event data, so an adversary who can choose them
//! could try to make many keys collide and turn map operations linear. SipHash is a keyed PRF
//! designed against that; this hash is not a PRF and carries no such guarantee. The seed is
//! drawn from `std`'s `RandomState` (OS randomness) per operator and never leaves the process,
//! so collisions cannot be precomputed offline without recovering it, which is the same trade-off
//! `foldhash` and `ahash` make and the one accepted here: a window operator's keys are usually
//! device, user or zone ids from trusted-ish sources, and its state is bounded by the partition
//! count anyway. Output does not depend on the hash (results are sorted by key).

use std::hash::{BuildHasher, Hasher};

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    #[allow(clippy::cast_possible_truncation)]
    let (lo, hi) = (p as u64, (p >> 64) as u64);
    lo ^ hi
}

/// Builds [`KeyState`] hashers with a random seed fixed at construction.
#[derive(Debug, Clone)]
pub(crate) struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    pub(crate) fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(K0);
        Self { seed }
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = KeyState;
    #[inline]
    fn build_hasher(&self) -> KeyState {
        KeyState {
            acc: self.seed,
            seed: self.seed,
        }
    }
}

/// The hasher state (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    acc: u64,
    seed: u64,
}

impl Hasher for KeyState {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(buf));
        }
        self.write_u64(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.acc = fold_mul(self.acc ^ i, K1 ^ self.seed);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.acc, K0 ^ self.seed.rotate_left(23))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_core::Value;

    #[test]
    fn equal_keys_hash_equal_and_distinct_keys_spread() {
        let h = KeyHasher::new();
        assert_eq!(
            h.hash_one(Value::from("abc")),
            h.hash_one(Value::from("abc"))
        );
        assert_eq!(h.hash_one(Value::Int(7)), h.hash_one(Value::Int(7)));
        let mut low_bits = std::collections::HashSet::new();
        for i in 0..1_000_i64 {
            low_bits.insert(h.hash_one(Value::Int(i)) & 0xfff);
        }
        // 1,000 keys into 4,096 buckets: a sound hash leaves few collisions.
        assert!(low_bits.len() > 850, "{}", low_bits.len());
    }
}
