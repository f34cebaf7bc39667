//! The `.jsonl` reader's line scanner: a byte scanner for well-formed lines that builds the
//! [`Event`] directly, with no `serde` tree and interned names, and hands every other line to
//! [`parse_json_line`].
//!
//! As for `.evt` (`varpulis_vpl::EvtScanner`), the fast path accepts a subset of the format and
//! on it builds exactly the event `parse_json_line` builds; anything else (an error, a string
//! with a `\u` escape, a key twice, nesting beyond [`FAST_DEPTH`], a shape `parse_json_line`
//! refuses) makes it give up, and `parse_json_line` decides, so its messages and columns are
//! unchanged by construction. Numbers that the fast path cannot convert exactly the way
//! `serde_json` does (more than 15 significant digits, an exponent beyond 10^±22, integers of
//! 19 digits or more) are handed to `serde_json` one by one, through the same visitor as the
//! slow path.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeSeed as _;
use varpulis_core::{Event, EventTime, Interner, Value};

use super::jsonl::{JsonSeed, parse_json_line, parse_rfc3339_ms};

/// The fast path gives up on values nested deeper than this (the line's object is level 1).
const FAST_DEPTH: usize = 32;
/// Names kept per scanner and their longest length; then short string values.
const NAMES: (usize, usize) = (4096, 256);
const VALUES: (usize, usize) = (4096, 24);

/// Powers of ten that are exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads `.jsonl` lines into events, keeping the names it has seen from line to line.
#[derive(Debug)]
pub(crate) struct JsonlScanner {
    names: Interner,
    values: Interner,
    /// The previous event's type and its field names in the order written, each with whether
    /// it is plain (no `"`, `\` or control character, so its JSON string is its bytes between
    /// quotes): a line of the same shape matches each with one comparison of bytes.
    last_type: Option<(Arc<str>, bool)>,
    shape: Vec<(Arc<str>, bool)>,
}

/// A key of the line's object.
enum Key {
    Type,
    Time,
    Fields,
    Field(Arc<str>),
}

impl JsonlScanner {
    pub(crate) fn new() -> Self {
        Self {
            names: Interner::new(NAMES.0, NAMES.1),
            values: Interner::adaptive(VALUES.0, VALUES.1),
            last_type: None,
            shape: Vec::new(),
        }
    }

    /// Exactly [`parse_json_line`]'s result, faster on well-formed lines.
    ///
    /// # Errors
    /// As [`parse_json_line`].
    pub(crate) fn parse(
        &mut self,
        line: &str,
        previous_ms: EventTime,
    ) -> Result<Option<Event>, (u64, String)> {
        match self.fast(line, previous_ms) {
            Some(event) => Ok(Some(event)),
            None => parse_json_line(line, previous_ms),
        }
    }

    /// The fast path: the event `parse_json_line` gives, or `None` to let it decide (blank
    /// lines included).
    pub(crate) fn fast(&mut self, line: &str, previous_ms: EventTime) -> Option<Event> {
        let mut c = Cursor {
            s: line,
            b: line.as_bytes(),
            i: 0,
        };
        c.ws();
        if !c.eat(b'{') {
            return None;
        }
        let mut event_type: Option<Arc<str>> = None;
        // `Some(None)`: `"timestamp": null`, which takes the previous time like no timestamp.
        let mut timestamp: Option<Option<EventTime>> = None;
        let mut wrapped: Option<Vec<(Arc<str>, Value)>> = None;
        let mut flat: Vec<(Arc<str>, Value)> = Vec::new();
        c.ws();
        if c.eat(b'}') {
            return None;
        }
        loop {
            c.ws();
            let key = self.top_key(&mut c, flat.len())?;
            c.ws();
            if !c.eat(b':') {
                return None;
            }
            c.ws();
            match key {
                Key::Type if event_type.is_none() => {
                    event_type = Some(match &self.last_type {
                        Some((last, true)) if c.eat_plain(last) => Arc::clone(last),
                        _ => {
                            if c.peek()? != b'"' {
                                return None;
                            }
                            let ty = c.string()?;
                            if ty.is_empty() {
                                return None;
                            }
                            let t = self.names.intern(&ty);
                            self.last_type = Some((Arc::clone(&t), is_plain(&t)));
                            t
                        }
                    });
                }
                Key::Time if timestamp.is_none() => {
                    timestamp = Some(match c.peek()? {
                        b'n' => {
                            c.literal(b"null")?;
                            None
                        }
                        b'"' => Some(parse_rfc3339_ms(&c.string()?)?),
                        _ => match self.number(&mut c, 2)? {
                            Value::Int(ms) => Some(ms),
                            _ => return None,
                        },
                    });
                }
                Key::Fields if wrapped.is_none() => {
                    if !c.eat(b'{') {
                        return None;
                    }
                    let mut fields = Vec::with_capacity(self.shape.len());
                    c.ws();
                    if !c.eat(b'}') {
                        self.entries(&mut c, &mut fields)?;
                    }
                    wrapped = Some(fields);
                }
                Key::Type | Key::Time | Key::Fields => return None,
                Key::Field(name) => {
                    let value = self.value(&mut c, 2)?;
                    if flat.is_empty() {
                        flat.reserve_exact(self.shape.len().max(1));
                    }
                    flat.push((name, value));
                }
            }
            c.ws();
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                break;
            }
            return None;
        }
        c.ws();
        if c.i != c.b.len() {
            return None;
        }
        let event_type = event_type?;
        let mut fields = match wrapped {
            Some(fields) if flat.is_empty() => fields,
            Some(_) => return None,
            None => flat,
        };
        self.shape.truncate(fields.len());
        if self.shape.capacity() > 1 << 12 && self.shape.len() < 1 << 10 {
            // Give back the memory of a very wide earlier line.
            self.shape.shrink_to(1 << 10);
        }
        // `parse_json_line`'s fields come from a map: in the order of their names, each once.
        if !sort_distinct(&mut fields) {
            return None;
        }
        if fields.capacity() > fields.len() {
            fields.shrink_to_fit();
        }
        Some(Event::from_unique_fields(
            event_type,
            timestamp.flatten().unwrap_or(previous_ms),
            fields,
        ))
    }

    /// A key of the line's object; an event field's is the `slot`-th of its shape.
    fn top_key(&mut self, c: &mut Cursor<'_>, slot: usize) -> Option<Key> {
        let rest = &c.b[c.i..];
        let reserved = match rest.get(1) {
            Some(b'e') => Some((&b"\"event_type\""[..], Key::Type)),
            Some(b't') => Some((&b"\"timestamp\""[..], Key::Time)),
            Some(b'f') => Some((&b"\"fields\""[..], Key::Fields)),
            _ => None,
        };
        if let Some((text, key)) = reserved
            && rest.starts_with(text)
        {
            c.i += text.len();
            return Some(key);
        }
        let name = self.name(c, slot)?;
        // Written with escapes, a reserved key is still that key: left to the slow path.
        if matches!(&*name, "event_type" | "timestamp" | "fields") {
            return None;
        }
        Some(Key::Field(name))
    }

    /// The key here, shared, as the `slot`-th field name of the line.
    fn name(&mut self, c: &mut Cursor<'_>, slot: usize) -> Option<Arc<str>> {
        if let Some((last, true)) = self.shape.get(slot)
            && c.eat_plain(last)
        {
            return Some(Arc::clone(last));
        }
        let key = c.string()?;
        let n = self.names.intern(&key);
        self.shape.truncate(slot);
        self.shape.push((Arc::clone(&n), is_plain(&n)));
        Some(n)
    }

    /// `"name": value, ... }` of the `"fields"` object, after its first key's `"`.
    fn entries(&mut self, c: &mut Cursor<'_>, out: &mut Vec<(Arc<str>, Value)>) -> Option<()> {
        loop {
            c.ws();
            let name = self.name(c, out.len())?;
            c.ws();
            if !c.eat(b':') {
                return None;
            }
            c.ws();
            let value = self.value(c, 3)?;
            out.push((name, value));
            c.ws();
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                return Some(());
            }
            return None;
        }
    }

    /// A value at nesting level `depth`.
    fn value(&mut self, c: &mut Cursor<'_>, depth: usize) -> Option<Value> {
        match c.peek()? {
            b'"' => Some(Value::Str(self.values.intern(&c.string()?))),
            b'-' | b'0'..=b'9' => self.number(c, depth),
            b't' => c.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => c.literal(b"false").map(|()| Value::Bool(false)),
            b'n' => c.literal(b"null").map(|()| Value::Null),
            b'[' if depth < FAST_DEPTH => {
                c.i += 1;
                let mut items = Vec::new();
                c.ws();
                if !c.eat(b']') {
                    loop {
                        c.ws();
                        items.push(self.value(c, depth + 1)?);
                        c.ws();
                        if c.eat(b',') {
                            continue;
                        }
                        if c.eat(b']') {
                            break;
                        }
                        return None;
                    }
                }
                Some(Value::from(items))
            }
            b'{' if depth < FAST_DEPTH => {
                c.i += 1;
                let mut map: BTreeMap<Arc<str>, Value> = BTreeMap::new();
                c.ws();
                if !c.eat(b'}') {
                    loop {
                        c.ws();
                        let key = self.names.intern(&c.string()?);
                        c.ws();
                        if !c.eat(b':') {
                            return None;
                        }
                        c.ws();
                        let value = self.value(c, depth + 1)?;
                        if map.insert(key, value).is_some() {
                            return None;
                        }
                        c.ws();
                        if c.eat(b',') {
                            continue;
                        }
                        if c.eat(b'}') {
                            break;
                        }
                        return None;
                    }
                }
                Some(Value::Map(Arc::new(map)))
            }
            _ => None,
        }
    }

    /// A JSON number, as `serde_json` reads it into the slow path's visitor: an integer of up
    /// to 18 digits is an `Int` (`-0` the float `-0.0`, as `serde_json` has it), a decimal of
    /// up to 15 digits with a power of ten up to 10^±22 is one exact `f64` multiplication or
    /// division (correctly rounded, so equal to what `serde_json` computes with or without its
    /// `float_roundtrip` feature). Any other number is given to `serde_json` alone.
    fn number(&mut self, c: &mut Cursor<'_>, depth: usize) -> Option<Value> {
        let (b, start) = (c.b, c.i);
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        // The digits of the integer and fraction parts as one integer (meaningful while there
        // are at most 18 of them, which is all the fast forms use).
        let mut sig: u64 = 0;
        let int_start = i;
        while let Some(&d @ b'0'..=b'9') = b.get(i) {
            sig = sig.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            i += 1;
        }
        let int_len = i - int_start;
        if int_len == 0 || (b[int_start] == b'0' && int_len > 1) {
            return None;
        }
        let mut float = false;
        let mut frac_len = 0;
        if b.get(i) == Some(&b'.') {
            float = true;
            i += 1;
            let from = i;
            while let Some(&d @ b'0'..=b'9') = b.get(i) {
                sig = sig.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                i += 1;
            }
            frac_len = i - from;
            if frac_len == 0 {
                return None;
            }
        }
        // `None`: an exponent of more than 4 digits (left to `serde_json`).
        let mut exp: Option<i32> = Some(0);
        if let Some(b'e' | b'E') = b.get(i) {
            float = true;
            i += 1;
            let minus = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let from = i;
            let mut e: i32 = 0;
            while let Some(&d @ b'0'..=b'9') = b.get(i) {
                e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
                i += 1;
            }
            if i == from {
                return None;
            }
            exp = (i - from <= 4).then_some(if minus { -e } else { e });
        }
        c.i = i;
        if !float && int_len <= 18 {
            let m = i64::try_from(sig).ok()?;
            return Some(match (negative, m) {
                (true, 0) => Value::Float(-0.0),
                (true, m) => Value::Int(-m),
                (false, m) => Value::Int(m),
            });
        }
        if float
            && int_len + frac_len <= 15
            && let Some(e) = exp
        {
            let e = e - i32::try_from(frac_len).ok()?;
            if (-22..=22).contains(&e) {
                #[allow(clippy::cast_precision_loss)] // below 10^15: exact
                let f = sig as f64;
                let pow = POW10[e.unsigned_abs() as usize];
                let f = if e >= 0 { f * pow } else { f / pow };
                return Some(Value::Float(if negative { -f } else { f }));
            }
        }
        serde_number(&c.s[start..c.i], depth)
    }
}

/// A number of the rare forms, exactly as `serde_json` reads it in the slow path.
#[cold]
#[inline(never)]
fn serde_number(text: &str, depth: usize) -> Option<Value> {
    let path = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let v = JsonSeed { path: &path, depth }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(v)
}

/// A position in the line; every method gives up (`None`) on anything unexpected.
struct Cursor<'s> {
    s: &'s str,
    b: &'s [u8],
    i: usize,
}

impl<'s> Cursor<'s> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Whether the JSON string here is `plain` (see [`is_plain`]); if so, steps over it.
    fn eat_plain(&mut self, plain: &str) -> bool {
        let rest = &self.b[self.i..];
        let n = plain.len();
        let found = rest.len() > n + 1
            && rest[0] == b'"'
            && rest[1..=n] == *plain.as_bytes()
            && rest[n + 1] == b'"';
        if found {
            self.i += n + 2;
        }
        found
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// A JSON string with the escapes `\" \\ \/ \b \f \n \r \t` resolved (`\u`: give up;
    /// a control character: give up, it is an error). Borrowed when it has no escape.
    fn string(&mut self) -> Option<Cow<'s, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let mut owned: Option<String> = None;
        loop {
            let rest = &self.b[self.i..];
            let at = find_special(rest)?;
            let text = &self.s[self.i..self.i + at];
            self.i += at;
            match rest[at] {
                b'"' => {
                    self.i += 1;
                    return Some(match owned {
                        None => Cow::Borrowed(text),
                        Some(mut s) => {
                            s.push_str(text);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let unescaped = match self.b.get(self.i + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    };
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(text);
                    s.push(unescaped);
                    self.i += 2;
                }
                _ => return None,
            }
        }
    }
}

/// Sorts `fields` by name; `false` if a name appears twice. An insertion sort for the usual
/// handful (one comparison per field when they come sorted; an equal name is always met by
/// the element inserted after it), the standard sort beyond.
fn sort_distinct(fields: &mut [(Arc<str>, Value)]) -> bool {
    if fields.len() > 16 {
        fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        return !fields.windows(2).any(|w| w[0].0 == w[1].0);
    }
    for i in 1..fields.len() {
        let mut j = i;
        while j > 0 {
            match fields[j - 1].0.cmp(&fields[j].0) {
                std::cmp::Ordering::Greater => fields.swap(j - 1, j),
                std::cmp::Ordering::Equal => return false,
                std::cmp::Ordering::Less => break,
            }
            j -= 1;
        }
    }
    true
}

/// Whether `s` is written in JSON as its own bytes between quotes: no `"`, `\` or control
/// character (those need escapes).
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The index of the first `"`, `\` or control character (below 0x20) of `b`, eight bytes at a
/// time.
fn find_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Marks the bytes of `v` below `n` (n <= 0x80); exact up to the first one (borrows only
    // mark bytes above it).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let (quote, backslash) = (ONES * u64::from(b'"'), ONES * u64::from(b'\\'));
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let m = below(v ^ quote, 1) | below(v ^ backslash, 1) | below(v, 0x20);
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The scanner agrees with `parse_json_line` on `line`, and when its fast path takes the
    /// line it builds the same event. Returns whether the fast path took it.
    fn agree(s: &mut JsonlScanner, line: &str) -> bool {
        let want = parse_json_line(line, 7);
        let fast = s.fast(line, 7);
        if let Some(event) = &fast {
            assert_eq!(
                Ok(Some(event)),
                want.as_ref().map(Option::as_ref),
                "the fast path accepted {line:?} differently"
            );
        }
        assert_eq!(s.parse(line, 7), want, "{line:?}");
        fast.is_some()
    }

    #[test]
    fn the_fast_path_takes_the_common_lines() {
        let mut s = JsonlScanner::new();
        for line in [
            r#"{"event_type":"SensorEvent","timestamp":1700000000000,"fields":{"zone":"z07","value":12.5}}"#,
            r#"{"event_type":"SensorEvent","timestamp":1700000000001,"fields":{"zone":"z08","value":-3}}"#,
            r#"{"event_type":"A","timestamp":5,"fields":{"x":1,"y":2.5}}"#,
            r#"{"event_type":"B","timestamp":"1970-01-01T00:00:01.5+00:00","z":"s"}"#,
            r#"{"event_type":"C","n":null}"#,
            r#" { "event_type" : "C" , "timestamp" : null , "b" : true , "a" : false } "#,
            r#"{"event_type":"T","fields":{}}"#,
            r#"{"fields":{"event_type":"inner"},"event_type":"T"}"#,
            r#"{"event_type":"T","a":[1,[2,[]],{"k":"v"}],"m":{"b":1,"a":{}}}"#,
            r#"{"event_type":"T","x":-0,"y":-0.0,"z":0e5,"w":1E-3,"v":123456789012345678}"#,
            r#"{"event_type":"T","big":12345678901234567890,"long":0.30000000000000004}"#,
            r#"{"event_type":"T","e":1.5e300,"s":"tab\tq\"uote\\ \/ é"}"#,
        ] {
            assert!(agree(&mut s, line), "fell back on {line:?}");
        }
    }

    #[test]
    fn the_fast_path_leaves_errors_and_rare_forms_to_the_parser() {
        let mut s = JsonlScanner::new();
        for line in [
            "",
            "   ",
            "[1]",
            r#"{"x":1}"#,
            "{}",
            r#"{"event_type": }"#,
            r#"{"event_type":""}"#,
            r#"{"event_type":1}"#,
            r#"{"event_type":"A","timestamp":"yesterday"}"#,
            r#"{"event_type":"A","timestamp":1.5}"#,
            r#"{"event_type":"A","timestamp":true}"#,
            r#"{"event_type":"A","timestamp":1,"timestamp":2}"#,
            r#"{"event_type":"A","event_type":"B"}"#,
            r#"{"event_type":"T","x":1,"x":2}"#,
            r#"{"event_type":"T","fields":{"m":{"k":1,"k":2}}}"#,
            r#"{"event_type":"T","fields":{"x":1},"y":2}"#,
            r#"{"event_type":"T","fields":5}"#,
            r#"{"event_type":"T","x":1e400}"#,
            r#"{"event_type":"T","x":01}"#,
            r#"{"event_type":"T","x":1.}"#,
            r#"{"event_type":"T","x":.5}"#,
            r#"{"event_type":"T","x":"\u00e9"}"#,
            r#"{"event_type":"T","x":1,}"#,
            r#"{"event_type":"T","x":[1,]}"#,
            r#"{"event_type":"T","x":tru}"#,
            r#"{"event_type":"T"} x"#,
            "{\"event_type\":\"T\",\"x\":\"a\u{1}b\"}",
            "\u{feff}{\"event_type\":\"T\"}",
        ] {
            assert!(!agree(&mut s, line), "the fast path took {line:?}");
        }
    }

    #[test]
    fn find_special_finds_the_first_quote_backslash_or_control_character() {
        proptest!(|(bytes in prop::collection::vec(prop::sample::select(&[b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0][..]), 0..40))| {
            let want = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(find_special(&bytes), want);
        });
    }

    #[test]
    fn sort_distinct_sorts_or_finds_a_repeated_name() {
        proptest!(|(names in prop::collection::vec(0u8..30, 0..40))| {
            let mut fields: Vec<(Arc<str>, Value)> =
                names.iter().map(|n| (Arc::from(format!("f{n}")), Value::Null)).collect();
            let mut want: Vec<Arc<str>> = fields.iter().map(|f| Arc::clone(&f.0)).collect();
            want.sort();
            let distinct = want.windows(2).all(|w| w[0] != w[1]);
            prop_assert_eq!(sort_distinct(&mut fields), distinct);
            if distinct {
                let got: Vec<Arc<str>> = fields.iter().map(|f| Arc::clone(&f.0)).collect();
                prop_assert_eq!(got, want);
            }
        });
    }

    #[test]
    fn a_key_that_only_starts_like_the_last_lines_is_read_in_full() {
        let mut s = JsonlScanner::new();
        for line in [
            r#"{"event_type":"T","ab":1,"a\"b":2}"#,
            r#"{"event_type":"T","abc":1,"a":2}"#,
            r#"{"event_type":"T","ab":1,"a\"b":2}"#,
            r#"{"event_type":"Tx","fields":{"ab":1}}"#,
            r#"{"event_type":"T","fields":{"ab":1,"b":2}}"#,
            r#"{"event_type":"T","fields":{"b":1,"ab":2}}"#,
            r#"{"event_type":"T\"","x":1}"#,
            r#"{"event_type":"T\"","x":1}"#,
        ] {
            assert!(agree(&mut s, line), "{line}");
        }
    }

    #[test]
    fn nesting_beyond_the_fast_depth_goes_to_the_parser_with_the_same_result() {
        let mut s = JsonlScanner::new();
        for levels in [FAST_DEPTH - 2, FAST_DEPTH - 1, 60, 99, 100] {
            let line = format!(
                "{{\"event_type\":\"T\",\"a\":{}1{}}}",
                "[".repeat(levels),
                "]".repeat(levels)
            );
            assert_eq!(agree(&mut s, &line), levels < FAST_DEPTH - 1, "{levels}");
        }
    }

    /// Number texts: JSON numbers of every form, and some that are not JSON.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0u32..1000).prop_map(|n| format!("-{n}")),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:?}")),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            (any::<u32>(), 0u32..10_000, -330i32..330).prop_map(|(a, b, e)| format!("{a}.{b}e{e}")),
            (0u64..1_000_000_000_000_000, 0usize..20)
                .prop_map(|(m, z)| format!("0.{}{m}", "0".repeat(z))),
            prop::sample::select(
                &[
                    "-0",
                    "-0.0",
                    "0e5",
                    "1E+2",
                    "1e-2",
                    "99999999999999999999",
                    "1e400",
                    "-1e400",
                    "1e-400",
                    "01",
                    "1.",
                    ".5",
                    "-",
                    "1e",
                    "1e+",
                    "+1",
                ][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    fn string() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(
                &[
                    "a", "z07", " ", "é", "中", "\\n", "\\t", "\\\\", "\\\"", "\\/", "\\b",
                    "\\u00e9", "\\ud800", "\\x", "\u{1}",
                ][..],
            ),
            0..4,
        )
        .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::sample::select(&["zone", "value", "a", "b", "x"][..])
                .prop_map(|k| format!("\"{k}\"")),
            1 => prop::sample::select(&["event_type", "timestamp", "fields"][..])
                .prop_map(|k| format!("\"{k}\"")),
            1 => string(),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => number(),
            2 => string(),
            1 => prop::sample::select(&["true", "false", "null", "tru"][..])
                .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|e| {
                    let e: Vec<String> = e.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", e.join(","))
                }),
            ]
        })
    }

    /// Lines of both shapes, most of them valid.
    fn line() -> impl Strategy<Value = String> {
        let ty = prop_oneof![
            8 => Just("\"SensorEvent\"".to_owned()),
            1 => Just("\"\"".to_owned()),
            1 => value(),
        ];
        let ts = prop_oneof![
            2 => Just(None),
            4 => (0i64..2_000_000_000_000).prop_map(|t| Some(t.to_string())),
            1 => Just(Some("\"1970-01-01T00:00:01.5+00:00\"".to_owned())),
            1 => value().prop_map(Some),
        ];
        let fields = prop::collection::vec((key(), value()), 0..5);
        let ws = prop::sample::select(&["", "", " ", "\t"][..]);
        (ty, ts, fields, prop::bool::ANY, ws, prop::bool::ANY).prop_map(
            |(ty, ts, fields, wrap, ws, ty_last)| {
                let fields: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{k}:{ws}{v}")).collect();
                let mut top = Vec::new();
                if !ty_last {
                    top.push(format!("\"event_type\":{ws}{ty}"));
                }
                if let Some(ts) = ts {
                    top.push(format!("\"timestamp\":{ts}"));
                }
                if wrap {
                    top.push(format!("\"fields\":{{{}}}", fields.join(",")));
                } else {
                    top.extend(fields);
                }
                if ty_last {
                    top.push(format!("\"event_type\":{ty}"));
                }
                format!("{ws}{{{}}}{ws}", top.join(&format!(",{ws}")))
            },
        )
    }

    fn mutated() -> impl Strategy<Value = String> {
        let ch = prop::sample::select(
            &[
                '{', '}', '[', ']', ',', ':', '-', '"', '\\', ' ', '.', 'e', '0', '1', 'x', '\n',
                '\u{feff}', 'é',
            ][..],
        );
        (line(), any::<prop::sample::Index>(), 0u8..3, ch).prop_map(|(line, at, op, ch)| {
            let mut chars: Vec<char> = line.chars().collect();
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, ch),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = ch,
                _ => chars.push(ch),
            }
            chars.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn a_number_alone_reads_as_serde_json_reads_it(text in number()) {
            let line = format!("{{\"event_type\":\"T\",\"x\":{text}}}");
            agree(&mut JsonlScanner::new(), &line);
        }

        #[test]
        fn the_scanner_agrees_with_parse_json_line_on_generated_lines(lines in prop::collection::vec(line(), 1..8)) {
            let mut s = JsonlScanner::new();
            for l in &lines {
                agree(&mut s, l);
            }
        }

        #[test]
        fn the_scanner_agrees_with_parse_json_line_on_mutated_lines(lines in prop::collection::vec(mutated(), 1..8)) {
            let mut s = JsonlScanner::new();
            for l in &lines {
                agree(&mut s, l);
            }
        }
    }

    #[test]
    fn most_valid_generated_lines_take_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let mut s = JsonlScanner::new();
        let (mut fast, mut ok) = (0, 0);
        for _ in 0..2_000 {
            let l = line().new_tree(&mut runner).unwrap().current();
            if matches!(parse_json_line(&l, 0), Ok(Some(_))) {
                ok += 1;
                fast += usize::from(agree(&mut s, &l));
            }
        }
        assert!(
            ok > 200 && fast * 10 >= ok * 7,
            "{fast} of {ok} valid lines"
        );
    }
}
