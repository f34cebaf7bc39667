//! The on-disk key encoding.
//!
//! A [`Key`] is stored as its string with every `:` separator replaced by the byte `0x00`
//! (`tenants:acme:quota` -> `tenants\0acme\0quota`). Segment bytes are `[A-Za-z0-9._-]`, all
//! greater than `0x00`, so under RocksDB's default bytewise comparator the encoded keys sort
//! exactly like [`Key`]'s segment order (`a:b` < `a:b:c` < `a-c`), and the keys under a prefix `P`
//! are exactly the half-open byte range `[enc(P), enc(P) ++ 0x01)`: `enc(P)` itself, then
//! `enc(P) ++ 0x00 ++ ...` for its descendants, while a sibling such as `a:bc` (`a\0bc`) lies past
//! the bound. The mapping is a bijection on valid keys.
//!
//! Keys whose first byte is `0x00` cannot be produced by a [`Key`] (segments are non-empty), so
//! that space is reserved for the store's own records. The only one today is [`FORMAT_KEY`], whose
//! value is the single byte [`FORMAT_VERSION`]. Listing the root starts at `0x01` and never sees
//! reserved records.

use varpulis_store::{Key, SEPARATOR, StoreError};

/// Byte that stands for the `:` separator on disk.
pub(crate) const SEPARATOR_BYTE: u8 = 0x00;

/// Reserved record holding the on-disk format version.
pub(crate) const FORMAT_KEY: &[u8] = b"\x00varpulis-format";

/// The on-disk format this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Smallest byte string that can encode a user key (everything reserved sorts below it).
const USER_KEYS_START: &[u8] = &[0x01];

/// Encodes a (non-root) key for storage.
pub(crate) fn encode(key: &Key) -> Vec<u8> {
    key.as_str()
        .bytes()
        .map(|b| {
            if b == SEPARATOR as u8 {
                SEPARATOR_BYTE
            } else {
                b
            }
        })
        .collect()
}

/// Decodes a stored key, reporting bytes no [`Key`] could have produced as corruption.
pub(crate) fn decode(bytes: &[u8]) -> Result<Key, StoreError> {
    let text: Vec<u8> = bytes
        .iter()
        .map(|&b| {
            if b == SEPARATOR_BYTE {
                SEPARATOR as u8
            } else {
                b
            }
        })
        .collect();
    let corrupt = |reason: String| StoreError::corrupt(bytes.escape_ascii(), reason);
    let text =
        String::from_utf8(text).map_err(|e| corrupt(format!("stored key is not UTF-8: {e}")))?;
    Key::new(text).map_err(|e| corrupt(format!("stored key is not a valid key: {e}")))
}

/// The byte range `[lower, upper)` holding exactly the keys that start with `prefix`
/// (`upper = None`: to the end of the key space).
pub(crate) fn prefix_bounds(prefix: &Key) -> (Vec<u8>, Option<Vec<u8>>) {
    if prefix.is_root() {
        return (USER_KEYS_START.to_vec(), None);
    }
    let lower = encode(prefix);
    let mut upper = lower.clone();
    upper.push(SEPARATOR_BYTE + 1);
    (lower, Some(upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    const SAMPLE: &[&str] = &[
        "a", "a:a", "a:b", "a:b:c", "a:b-", "a:bc", "a-c", "a.b", "a_b", "a0", "b", "A", "Z:z",
        "0", "9:a", "-", "_", ".x", "...", "p:10", "p:9", "p:a-c", "p:a:z", "x.val:y", "x.val",
    ];

    #[test]
    fn byte_order_of_encoded_keys_is_segment_order() {
        for a in SAMPLE {
            for b in SAMPLE {
                let (ka, kb) = (k(a), k(b));
                assert_eq!(encode(&ka).cmp(&encode(&kb)), ka.cmp(&kb), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn encoding_round_trips() {
        for s in SAMPLE {
            assert_eq!(decode(&encode(&k(s))).unwrap(), k(s));
        }
        assert_eq!(encode(&k("a:b:c")), b"a\0b\0c");
    }

    #[test]
    fn prefix_range_holds_exactly_the_keys_under_the_prefix() {
        for p in SAMPLE {
            let prefix = k(p);
            let (lower, upper) = prefix_bounds(&prefix);
            for s in SAMPLE {
                let key = k(s);
                let e = encode(&key);
                let in_range = e >= lower && upper.as_ref().is_none_or(|u| e < *u);
                assert_eq!(in_range, key.starts_with(&prefix), "{s} under {p}");
            }
        }
        let (lower, upper) = prefix_bounds(&Key::root());
        assert!(upper.is_none());
        assert!(FORMAT_KEY < lower.as_slice());
        assert!(SAMPLE.iter().all(|s| encode(&k(s)) >= lower));
    }

    #[test]
    fn foreign_bytes_decode_as_corrupt() {
        for bad in [&b""[..], b"a\0\0b", b"a/b", b"\xff", b"a\0..\0b"] {
            assert!(
                matches!(decode(bad), Err(StoreError::Corrupt { .. })),
                "{bad:?}"
            );
        }
    }
}
