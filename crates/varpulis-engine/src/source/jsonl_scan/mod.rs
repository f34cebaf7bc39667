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
use varpulis_core::{Event, EventTime, Interner, Value, exact_decimal};

use super::jsonl::{JsonSeed, parse_json_line, parse_rfc3339_ms};

/// The fast path gives up on values nested deeper than this (the line's object is level 1).
const FAST_DEPTH: usize = 32;
/// Names kept per scanner and their longest length; then short string values.
const NAMES: (usize, usize) = (4096, 256);
const VALUES: (usize, usize) = (4096, 24);

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
    /// The fields of the line being scanned: kept from line to line, drained into each event
    /// (which then allocates once, for its shared field list).
    scratch: Vec<(Arc<str>, Value)>,
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
            scratch: Vec::new(),
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
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let event = self.fast_into(line, previous_ms, &mut scratch);
        scratch.clear();
        if scratch.capacity() <= 1 << 10 {
            // Keep the buffer, unless a very wide line made it large.
            self.scratch = scratch;
        }
        event
    }

    /// [`JsonlScanner::fast`] with its field buffer `scratch` (empty).
    fn fast_into(
        &mut self,
        line: &str,
        previous_ms: EventTime,
        scratch: &mut Vec<(Arc<str>, Value)>,
    ) -> Option<Event> {
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
        let mut wrapped = false;
        // The fields, wrapped (`"fields": {..}`) or flat: never both.
        let flat = scratch;
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
                Key::Fields if !wrapped => {
                    if !c.eat(b'{') || !flat.is_empty() {
                        return None;
                    }
                    c.ws();
                    if !c.eat(b'}') {
                        self.entries(&mut c, flat)?;
                    }
                    wrapped = true;
                }
                Key::Type | Key::Time | Key::Fields => return None,
                Key::Field(_) if wrapped => return None,
                Key::Field(name) => {
                    let value = self.value(&mut c, 2)?;
                    if flat.is_empty() {
                        flat.reserve(self.shape.len().max(1));
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
        let fields = flat;
        self.shape.truncate(fields.len());
        if self.shape.capacity() > 1 << 12 && self.shape.len() < 1 << 10 {
            // Give back the memory of a very wide earlier line.
            self.shape.shrink_to(1 << 10);
        }
        // `parse_json_line`'s fields come from a map: in the order of their names, each once.
        if !sort_distinct(fields) {
            return None;
        }
        Some(Event::from_unique_iter(
            event_type,
            timestamp.flatten().unwrap_or(previous_ms),
            fields.drain(..),
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
            && let Some(e) = exp
            && let Some(f) =
                exact_decimal(sig, int_len + frac_len, e - i32::try_from(frac_len).ok()?)
        {
            return Some(Value::Float(if negative { -f } else { f }));
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
mod tests;
