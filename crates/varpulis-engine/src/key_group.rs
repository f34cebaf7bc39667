//! Key groups: how a partitioned stream's keys are spread over parallel contexts.
//!
//! A partition key belongs to one of [`KEY_GROUPS`] key groups, `xxh3_64` of a stable encoding
//! of the key modulo [`KEY_GROUPS`], and key group `kg` belongs to context `kg * n / KEY_GROUPS`
//! of `n` (contiguous ranges, as Flink assigns key groups to subtasks). The number of key
//! groups is fixed, so it bounds the number of contexts, and a checkpoint's state can be split
//! again for any other number of contexts (rescaling). The encoding depends only on the key's
//! value, never on a process's random seed or on the platform: a key lands in the same group in
//! every run and on every machine. See `docs/design/contexts.md`.

use std::ops::Range;

use twox_hash::XxHash3_64;
use varpulis_core::Value;

/// The number of key groups (and so the largest number of parallel contexts).
pub const KEY_GROUPS: u16 = 128;

/// The key group of partition key `key`, in `0..KEY_GROUPS`.
///
/// Keys that are equal as [`Value`]s (and so share a window partition) share a group: the
/// encoding follows `Value`'s `Hash` (variant, then payload; floats by their bits).
#[must_use]
pub fn key_group(key: &Value) -> u16 {
    let hash = match key {
        Value::Null => XxHash3_64::oneshot_with_seed(0, &[]),
        Value::Bool(b) => XxHash3_64::oneshot_with_seed(1, &[u8::from(*b)]),
        Value::Int(i) => XxHash3_64::oneshot_with_seed(2, &i.to_le_bytes()),
        Value::Float(f) => XxHash3_64::oneshot_with_seed(3, &f.to_bits().to_le_bytes()),
        Value::Str(s) => XxHash3_64::oneshot_with_seed(4, s.as_bytes()),
        Value::Timestamp(t) => XxHash3_64::oneshot_with_seed(5, &t.to_le_bytes()),
        Value::Duration(d) => XxHash3_64::oneshot_with_seed(6, &d.to_le_bytes()),
        Value::Array(_) | Value::Map(_) => {
            let mut buf = Vec::new();
            encode(key, &mut buf);
            XxHash3_64::oneshot_with_seed(7, &buf)
        }
    };
    (hash % u64::from(KEY_GROUPS)) as u16
}

/// The context of `contexts` that owns key group `kg`.
#[must_use]
pub fn owner(kg: u16, contexts: usize) -> usize {
    usize::from(kg) * contexts / usize::from(KEY_GROUPS)
}

/// The key groups context `index` of `contexts` owns (the inverse of [`owner`]).
#[must_use]
pub fn owned(index: usize, contexts: usize) -> Range<u16> {
    let groups = usize::from(KEY_GROUPS);
    // The smallest kg with kg * contexts / groups >= index.
    let first = |i: usize| (i * groups).div_ceil(contexts);
    let (lo, hi) = (first(index), first(index + 1).min(groups));
    (lo as u16)..(hi as u16)
}

/// A length-prefixed, variant-tagged encoding of a composite key.
fn encode(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Null => buf.push(0),
        Value::Bool(b) => buf.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            buf.push(2);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            buf.push(3);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Str(s) => {
            buf.push(4);
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Timestamp(t) => {
            buf.push(5);
            buf.extend_from_slice(&t.to_le_bytes());
        }
        Value::Duration(d) => {
            buf.push(6);
            buf.extend_from_slice(&d.to_le_bytes());
        }
        Value::Array(items) => {
            buf.push(7);
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items.iter() {
                encode(item, buf);
            }
        }
        Value::Map(map) => {
            buf.push(8);
            buf.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for (k, v) in map.iter() {
                buf.extend_from_slice(&(k.len() as u64).to_le_bytes());
                buf.extend_from_slice(k.as_bytes());
                encode(v, buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_ranges_are_the_inverse_of_owner_and_cover_every_group() {
        for n in 1..=usize::from(KEY_GROUPS) {
            let mut next = 0_u16;
            for i in 0..n {
                let r = owned(i, n);
                assert_eq!(r.start, next, "contiguous for n={n}, i={i}");
                assert!(!r.is_empty(), "context {i} of {n} owns a group");
                for kg in r.clone() {
                    assert_eq!(owner(kg, n), i, "kg {kg} of n={n}");
                }
                next = r.end;
            }
            assert_eq!(next, KEY_GROUPS);
        }
    }

    #[test]
    fn key_groups_are_stable_across_releases() {
        // Pinned: a change here moves keys between groups, which old checkpoints survive
        // (restores re-split state) but external producers partitioning by group would not.
        let groups: Vec<u16> = [
            Value::Null,
            Value::Int(1),
            Value::from("zone-1"),
            Value::Float(1.0),
        ]
        .iter()
        .map(key_group)
        .collect();
        assert_eq!(groups, PINNED);
    }

    const PINNED: [u16; 4] = [66, 17, 127, 83];

    #[test]
    fn equal_keys_share_a_group_and_keys_spread() {
        assert_eq!(key_group(&Value::from("a")), key_group(&Value::from("a")));
        let mut seen = [0_u32; KEY_GROUPS as usize];
        for i in 0..12_800 {
            seen[usize::from(key_group(&Value::from(format!("user-{i}").as_str())))] += 1;
        }
        // 100 per group on average; every group gets a fair share.
        assert!(seen.iter().all(|&c| (50..200).contains(&c)), "{seen:?}");
    }
}
