//! Validated storage keys.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StoreError;

/// Separator between the segments of a [`Key`].
pub const SEPARATOR: char = ':';
/// Longest segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 128;
/// Most segments a key may have.
pub const MAX_SEGMENTS: usize = 32;

/// A validated storage key: `:`-separated segments of `[A-Za-z0-9._-]`.
///
/// Every segment is 1 to [`MAX_SEGMENT_LEN`] bytes long, is not `.` or `..`, and a key has at most
/// [`MAX_SEGMENTS`] segments. Because a `Key` can only be built through validation, a store never
/// sees a key that could name a path outside its root: invalid keys are rejected as
/// [`StoreError::InvalidKey`] before any I/O.
///
/// The empty key, [`Key::root`], names the root of the key space. It is a valid `list` prefix
/// (it lists everything) but cannot hold a value.
///
/// Keys order by their segments, so `a:b` sorts before `a-c` (segment `a` < `a-c`), and a key
/// sorts directly before the keys it is a prefix of.
///
/// ```
/// use varpulis_store::Key;
/// let key = Key::new("varpulis:checkpoint:42")?;
/// assert_eq!(key.segments().collect::<Vec<_>>(), ["varpulis", "checkpoint", "42"]);
/// assert!(key.starts_with(&Key::new("varpulis")?));
/// assert!(!Key::new("a:bc")?.starts_with(&Key::new("a:b")?));
/// assert!(Key::new("../etc/passwd").is_err());
/// # Ok::<_, varpulis_store::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Key(String);

/// Why a key was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The key has no segments where one is required (value operations on the root).
    Empty,
    /// A segment between two separators, or at either end, is empty.
    EmptySegment,
    /// A segment is `.` or `..`.
    DotSegment,
    /// A segment is longer than [`MAX_SEGMENT_LEN`] bytes.
    SegmentTooLong,
    /// The key has more than [`MAX_SEGMENTS`] segments.
    TooManySegments,
    /// A byte outside `[A-Za-z0-9._-]` (such as `/`, `\`, NUL or non-ASCII).
    ForbiddenCharacter,
    /// The key is valid but too long for the backend (for example the file store's path limit).
    TooLongForBackend,
    /// The key lies in a namespace a wrapper reserves for its own records (for example the
    /// encryption wrapper's key-check record).
    Reserved,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "the empty key cannot hold a value",
            Self::EmptySegment => "empty segment",
            Self::DotSegment => "segment `.` or `..`",
            Self::SegmentTooLong => "segment longer than 128 bytes",
            Self::TooManySegments => "more than 32 segments",
            Self::ForbiddenCharacter => "character outside [A-Za-z0-9._-]",
            Self::TooLongForBackend => "key too long for this backend",
            Self::Reserved => "key reserved for the store's own records",
        })
    }
}

fn valid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn check_segment(seg: &str) -> Result<(), KeyProblem> {
    if seg.is_empty() {
        return Err(KeyProblem::EmptySegment);
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(KeyProblem::SegmentTooLong);
    }
    if !seg.bytes().all(valid_byte) {
        return Err(KeyProblem::ForbiddenCharacter);
    }
    if seg == "." || seg == ".." {
        return Err(KeyProblem::DotSegment);
    }
    Ok(())
}

fn invalid(key: &str, problem: KeyProblem) -> StoreError {
    StoreError::InvalidKey {
        key: key.escape_debug().to_string(),
        problem,
    }
}

impl Key {
    /// Whether `seg` is a valid key segment.
    pub(crate) fn is_valid_segment(seg: &str) -> bool {
        check_segment(seg).is_ok()
    }

    /// Parses and validates a key such as `"varpulis:checkpoint:7"`.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] naming the key and the problem. The empty string is rejected
    /// here; use [`Key::root`] for the root prefix.
    pub fn new(key: impl AsRef<str>) -> Result<Self, StoreError> {
        let key = key.as_ref();
        if key.is_empty() {
            return Err(invalid(key, KeyProblem::Empty));
        }
        let mut count = 0;
        for seg in key.split(SEPARATOR) {
            count += 1;
            if count > MAX_SEGMENTS {
                return Err(invalid(key, KeyProblem::TooManySegments));
            }
            check_segment(seg).map_err(|p| invalid(key, p))?;
        }
        Ok(Self(key.to_owned()))
    }

    /// Builds a key from segments, validating each.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] if any segment is invalid, there are none, or too many.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = String::new();
        for (i, seg) in segments.into_iter().enumerate() {
            if i > 0 {
                out.push(SEPARATOR);
            }
            out.push_str(seg.as_ref());
        }
        Self::new(out)
    }

    /// The root of the key space: no segments. Valid only as a `list` prefix.
    #[must_use]
    pub const fn root() -> Self {
        Self(String::new())
    }

    /// Whether this is [`Key::root`].
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns this key extended by one segment.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] if the segment is invalid or the key would be too long.
    pub fn child(&self, segment: impl AsRef<str>) -> Result<Self, StoreError> {
        let segment = segment.as_ref();
        if self.is_root() {
            return Self::new(segment);
        }
        Self::new(format!("{}{SEPARATOR}{segment}", self.0))
    }

    /// The segments of the key, in order (none for the root).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split(SEPARATOR).filter(|s| !s.is_empty())
    }

    /// Number of segments.
    #[must_use]
    pub fn len(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.bytes().filter(|&b| b == b':').count() + 1
        }
    }

    /// Whether the key has no segments (is the root).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.is_root()
    }

    /// The last segment, if any.
    #[must_use]
    pub fn last_segment(&self) -> Option<&str> {
        self.segments().next_back()
    }

    /// Whether `prefix`'s segments are the first segments of this key (a key starts with itself;
    /// `a:bc` does not start with `a:b`; everything starts with the root).
    #[must_use]
    pub fn starts_with(&self, prefix: &Key) -> bool {
        if prefix.is_root() {
            return true;
        }
        match self.0.strip_prefix(prefix.0.as_str()) {
            Some("") => true,
            Some(rest) => rest.starts_with(SEPARATOR),
            None => false,
        }
    }

    /// The key as a string, segments joined by `:`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fails with [`KeyProblem::Empty`] if this is the root: value operations need a real key.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for the root key.
    pub fn require_value_key(&self) -> Result<(), StoreError> {
        if self.is_root() {
            Err(invalid("", KeyProblem::Empty))
        } else {
            Ok(())
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.segments().cmp(other.segments())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

impl FromStr for Key {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Key {
    type Error = StoreError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for Key {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s.is_empty() {
            return Ok(Self::root());
        }
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "a:b:c", "A-z_0.9", "x.val:y", "...", "a..b"] {
            Key::new(k).unwrap();
        }
        let longest = vec!["s"; MAX_SEGMENTS].join(":");
        Key::new(longest).unwrap();
        Key::new("x".repeat(MAX_SEGMENT_LEN)).unwrap();
    }

    #[test]
    fn rejects_hostile_keys_with_the_reason() {
        let cases: &[(&str, KeyProblem)] = &[
            ("", KeyProblem::Empty),
            ("..", KeyProblem::DotSegment),
            (".", KeyProblem::DotSegment),
            ("a:..:b", KeyProblem::DotSegment),
            ("a::b", KeyProblem::EmptySegment),
            (":a", KeyProblem::EmptySegment),
            ("a:", KeyProblem::EmptySegment),
            ("a/b", KeyProblem::ForbiddenCharacter),
            ("/etc/passwd", KeyProblem::ForbiddenCharacter),
            ("a\\b", KeyProblem::ForbiddenCharacter),
            ("a\0b", KeyProblem::ForbiddenCharacter),
            ("caf\u{e9}", KeyProblem::ForbiddenCharacter),
            ("a b", KeyProblem::ForbiddenCharacter),
        ];
        for (k, problem) in cases {
            match Key::new(k) {
                Err(StoreError::InvalidKey { problem: p, .. }) => assert_eq!(p, *problem, "{k:?}"),
                other => panic!("{k:?} gave {other:?}"),
            }
        }
        let long = "x".repeat(MAX_SEGMENT_LEN + 1);
        assert!(matches!(
            Key::new(&long),
            Err(StoreError::InvalidKey {
                problem: KeyProblem::SegmentTooLong,
                ..
            })
        ));
        let many = vec!["s"; MAX_SEGMENTS + 1].join(":");
        assert!(matches!(
            Key::new(&many),
            Err(StoreError::InvalidKey {
                problem: KeyProblem::TooManySegments,
                ..
            })
        ));
    }

    #[test]
    fn orders_by_segments_not_bytes() {
        let mut keys: Vec<Key> = ["a-c", "a:b", "a", "a:b:c", "b", "a:a"]
            .iter()
            .map(|k| Key::new(k).unwrap())
            .collect();
        keys.sort();
        let got: Vec<_> = keys.iter().map(Key::as_str).collect();
        assert_eq!(got, ["a", "a:a", "a:b", "a:b:c", "a-c", "b"]);
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let k = Key::new("a:bc:d").unwrap();
        assert!(k.starts_with(&Key::new("a").unwrap()));
        assert!(k.starts_with(&Key::new("a:bc").unwrap()));
        assert!(k.starts_with(&k));
        assert!(!k.starts_with(&Key::new("a:b").unwrap()));
        assert!(k.starts_with(&Key::root()));
        assert_eq!(k.len(), 3);
        assert_eq!(Key::root().len(), 0);
    }
}
