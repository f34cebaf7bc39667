//! The `.evt` reader's line scanner: a byte scanner for well-formed lines that builds the
//! [`Event`] directly, with interned names, and hands every other line to [`parse_evt_line`].
//!
//! The fast path accepts a subset of the language and, on that subset, builds exactly the
//! event `parse_evt_line` builds; anything it is not sure of (an error, a comment between
//! tokens, a `\u{..}` escape, a non-ASCII character outside a string, nesting beyond
//! [`FAST_DEPTH`], a number `parse_evt_line` would reject) makes it give up, and the line is
//! parsed again by `parse_evt_line`, which produces the event or the diagnostic. So every
//! error message, column and span is the program parser's by construction, and the scanner
//! only has to be right about lines it accepts. The differential tests below (and the
//! `evt_reader` fuzz target, which compares the file reader with `parse_evt_line` line by line)
//! hold it to that.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use varpulis_core::{Event, EventTime, Interner, Value, exact_decimal, parse_duration_ms};

use crate::diagnostic::Diagnostic;
use crate::evt::parse_evt_line;
use crate::lexer::lex_number;

/// The fast path gives up on values nested deeper than this (the event's braces are level 1);
/// `parse_evt_line` takes them, up to [`MAX_NESTING`](crate::MAX_NESTING).
const FAST_DEPTH: usize = 32;
/// Up to this many fields a line's names are checked for repeats by a scan, beyond by a set.
const SCAN: usize = 16;
/// Names (event types, field names, map keys) kept per scanner, and their longest length.
const NAMES: (usize, usize) = (4096, 256);
/// String values kept per scanner, and their longest length: short repeated values (zones,
/// statuses) are shared, long or unique ones are allocated as before.
const VALUES: (usize, usize) = (4096, 24);

/// Reads `.evt` lines into events: what a file reader calls per line, with the names it has
/// seen kept from line to line.
///
/// [`EvtScanner::scan`] returns exactly what
/// `parse_evt_line(line).map(|l| l.to_event(previous_time))` returns (the same event, or the
/// same [`Diagnostic`]), faster: a well-formed line is scanned once, byte by byte, into an
/// [`Event`] whose type and field names are shared with earlier lines (an [`Interner`] per
/// scanner, bounded), so the event costs its field list and its long strings, not one
/// allocation per token. Other lines go through `parse_evt_line`.
///
/// ```
/// use varpulis_core::Value;
/// use varpulis_vpl::EvtScanner;
///
/// let mut scanner = EvtScanner::new();
/// let event = scanner.scan("@9s SensorEvent { zone: \"z1\", value: -2.5 }", 0)?.unwrap();
/// assert_eq!((event.event_type(), event.timestamp_ms()), ("SensorEvent", 9_000));
/// assert_eq!(event.get("value"), Some(&Value::Float(-2.5)));
/// assert_eq!(scanner.scan("# a comment", 9_000)?, None);
///
/// let err = scanner.scan("@9x SensorEvent {}", 0).unwrap_err();
/// assert_eq!(err.to_string(), "1:2: expected a duration like 10s, found \"9x\"");
/// # Ok::<_, varpulis_vpl::Diagnostic>(())
/// ```
#[derive(Debug)]
pub struct EvtScanner {
    names: Interner,
    values: Interner,
    /// The previous event's type and field names, in order, each with whether it is an
    /// identifier: a line of the same shape matches each name with one comparison of bytes,
    /// without scanning or hashing it.
    last_type: Option<Arc<str>>,
    shape: Vec<(Arc<str>, bool)>,
    /// Names of a line with more than [`SCAN`] fields (empty otherwise).
    wide: HashSet<Arc<str>>,
    /// The fields of the line being scanned: kept from line to line, drained into each event
    /// (which then allocates once, for its shared field list).
    scratch: Vec<(Arc<str>, Value)>,
}

impl Default for EvtScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl EvtScanner {
    /// A scanner that has seen no line yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            names: Interner::new(NAMES.0, NAMES.1),
            values: Interner::adaptive(VALUES.0, VALUES.1),
            last_type: None,
            shape: Vec::new(),
            wide: HashSet::new(),
            scratch: Vec::new(),
        }
    }

    /// Parses one `.evt` line: `Ok(None)` for a blank or comment line; a line without `@`
    /// takes `previous_time`. Pure apart from the scanner's name cache: no I/O.
    ///
    /// # Errors
    /// The [`Diagnostic`] [`parse_evt_line`] gives for the line (line 1, with the column).
    pub fn scan(
        &mut self,
        line: &str,
        previous_time: EventTime,
    ) -> Result<Option<Event>, Diagnostic> {
        match self.fast(line, previous_time) {
            Some(parsed) => Ok(parsed),
            None => parse_evt_line(line).map(|parsed| parsed.to_event(previous_time)),
        }
    }

    /// The fast path: `Some` with what `parse_evt_line` gives, or `None` to let it decide.
    pub(crate) fn fast(&mut self, line: &str, previous_time: EventTime) -> Option<Option<Event>> {
        let mut c = Cursor {
            s: line,
            b: line.as_bytes(),
            i: 0,
        };
        c.ws();
        if c.at_end_or_comment()? {
            return Some(None);
        }
        let time = if c.eat(b'@') {
            c.ws();
            let t = duration(c.number()?)?;
            c.ws();
            Some(t)
        } else {
            None
        };
        let event_type = match &self.last_type {
            Some(last) if c.eat_ident(last) => Arc::clone(last),
            _ => {
                let t = self.names.intern(c.ident()?);
                self.last_type = Some(Arc::clone(&t));
                t
            }
        };
        c.ws();
        if !c.eat(b'{') {
            return None;
        }
        let mut fields = std::mem::take(&mut self.scratch);
        fields.clear();
        let whole = self.fields(&mut c, &mut fields).is_some() && {
            c.ws();
            c.at_end_or_comment() == Some(true)
        };
        let event = whole.then(|| {
            Event::from_unique_iter(event_type, time.unwrap_or(previous_time), fields.drain(..))
        });
        fields.clear();
        if fields.capacity() <= 1 << 10 {
            // Keep the buffer, unless a very wide line made it large.
            self.scratch = fields;
        }
        Some(Some(event?))
    }

    /// The event's `name: value, ... }` after its `{`, into `out` (empty).
    fn fields(&mut self, c: &mut Cursor<'_>, out: &mut Vec<(Arc<str>, Value)>) -> Option<()> {
        if !self.wide.is_empty() {
            // Give back the memory of a very wide earlier line.
            if self.wide.capacity() > 1 << 12 {
                self.wide = HashSet::new();
            }
            self.wide.clear();
        }
        loop {
            c.ws();
            if c.eat(b'}') {
                break;
            }
            let slot = out.len();
            let name = match self.shape.get(slot) {
                Some((last, true)) if c.eat_ident(last) => Arc::clone(last),
                _ => {
                    let name = c.name()?;
                    let n = self.names.intern(&name);
                    self.shape.truncate(slot);
                    self.shape.push((Arc::clone(&n), is_ident(&n)));
                    n
                }
            };
            if slot < SCAN {
                if out.iter().any(|(n, _)| *n == name) {
                    return None;
                }
            } else {
                if slot == SCAN {
                    self.wide.extend(out.iter().map(|(n, _)| Arc::clone(n)));
                }
                if !self.wide.insert(Arc::clone(&name)) {
                    return None;
                }
            }
            c.ws();
            c.colon()?;
            c.ws();
            let value = self.value(c, 1)?;
            out.push((name, value));
            c.ws();
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                break;
            }
            return None;
        }
        self.shape.truncate(out.len());
        if self.shape.capacity() > 1 << 12 && self.shape.len() < 1 << 10 {
            self.shape.shrink_to(1 << 10);
        }
        Some(())
    }

    /// A value inside `depth` open braces or brackets.
    fn value(&mut self, c: &mut Cursor<'_>, depth: usize) -> Option<Value> {
        match c.peek()? {
            b'-' => {
                c.i += 1;
                c.ws();
                c.number_value(true)
            }
            b'0'..=b'9' => c.number_value(false),
            b'"' | b'\'' => {
                let s = c.string()?;
                Some(Value::Str(self.values.intern(&s)))
            }
            b'[' if depth < FAST_DEPTH => {
                c.i += 1;
                let mut items = Vec::new();
                loop {
                    c.ws();
                    if c.eat(b']') {
                        break;
                    }
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
                Some(Value::from(items))
            }
            b'{' if depth < FAST_DEPTH => {
                c.i += 1;
                let mut map: BTreeMap<Arc<str>, Value> = BTreeMap::new();
                loop {
                    c.ws();
                    if c.eat(b'}') {
                        break;
                    }
                    let name = self.names.intern(&c.name()?);
                    c.ws();
                    c.colon()?;
                    c.ws();
                    let value = self.value(c, depth + 1)?;
                    if map.insert(name, value).is_some() {
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
                Some(Value::Map(Arc::new(map)))
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => match c.ident()? {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Byte classes, as the lexer has them: identifier characters and whitespace the fast path
/// skips (ASCII whitespace but `\n`, which ends a comment).
const IDENT: u8 = 1;
const WS: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] = IDENT;
        }
        if matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r') {
            t[b] = WS;
        }
        b += 1;
    }
    t
};

fn is_ident_byte(b: u8) -> bool {
    CLASS[usize::from(b)] & IDENT != 0
}

/// Whether `s` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_ident(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && s.bytes().all(is_ident_byte)
}

/// A position in the line. Every method returns `None` (give up) on anything but the token it
/// scans, and scans tokens exactly as [`crate::lexer::lex`] does.
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

    /// Skips ASCII whitespace other than `\n` (the lexer skips all Unicode whitespace and a
    /// `\n` ends a comment: both are left to the slow path).
    fn ws(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|&b| CLASS[usize::from(b)] & WS != 0)
        {
            self.i += 1;
        }
    }

    /// At the end of the line, or at a `#`/`//` comment that runs to it: `Some(true)`;
    /// `Some(false)` at anything else; `None` for a comment with a `\n` inside (the lexer
    /// resumes after it).
    fn at_end_or_comment(&self) -> Option<bool> {
        let rest = &self.b[self.i..];
        match rest {
            [] => Some(true),
            [b'#', ..] | [b'/', b'/', ..] => (!rest.contains(&b'\n')).then_some(true),
            _ => Some(false),
        }
    }

    /// `:` that is not the start of `:=`.
    fn colon(&mut self) -> Option<()> {
        (self.eat(b':') && self.peek() != Some(b'=')).then_some(())
    }

    /// Whether the identifier here is `ident` (itself an identifier); if so, steps over it.
    fn eat_ident(&mut self, ident: &str) -> bool {
        let rest = &self.b[self.i..];
        let n = ident.len();
        let found = rest.len() >= n
            && rest[..n] == *ident.as_bytes()
            && !rest.get(n).is_some_and(|&b| is_ident_byte(b));
        if found {
            self.i += n;
        }
        found
    }

    /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    fn ident(&mut self) -> Option<&'s str> {
        let rest = &self.b[self.i..];
        if !matches!(rest.first()?, b'a'..=b'z' | b'A'..=b'Z' | b'_') {
            return None;
        }
        let len = rest
            .iter()
            .position(|&b| !is_ident_byte(b))
            .unwrap_or(rest.len());
        let start = self.i;
        self.i += len;
        Some(&self.s[start..self.i])
    }

    /// A number token as the lexer cuts it (digits, fraction, exponent, then any identifier
    /// characters), starting at a digit.
    fn number(&mut self) -> Option<&'s str> {
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        let start = self.i;
        self.i = lex_number(self.s, start);
        Some(&self.s[start..self.i])
    }

    /// The value of the number token here (after a `-` when `negative`), as `parse_evt_line`
    /// reads it. The usual forms (`12`, `12.5`, `1.5e3`, a token the lexer ends where this
    /// scan does) are read in one pass; the rest go through [`number`] and [`negative`] on
    /// the token's text.
    fn number_value(&mut self, negative: bool) -> Option<Value> {
        let (b, start) = (self.b, self.i);
        let mut i = start;
        let mut sig: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = b.get(i) {
            sig = sig.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            i += 1;
        }
        let int_len = i - start;
        if int_len == 0 {
            return None;
        }
        let mut frac_len = 0;
        let mut float = false;
        // The lexer takes a fraction only with a digit after the `.`.
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            float = true;
            i += 1;
            let from = i;
            while let Some(&d @ b'0'..=b'9') = b.get(i) {
                sig = sig.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                i += 1;
            }
            frac_len = i - from;
        }
        // ... and an exponent only with a digit after `e`, `e+` or `e-` (else the `e` is part
        // of a suffix, and the token is not one of the usual forms).
        let mut scale = Some(0i32);
        if let Some(b'e' | b'E') = b.get(i) {
            let mut j = i + 1;
            let minus = b.get(j) == Some(&b'-');
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                float = true;
                let from = j;
                let mut e: i32 = 0;
                while let Some(&d @ b'0'..=b'9') = b.get(j) {
                    e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
                    j += 1;
                }
                scale = (j - from <= 4).then_some(if minus { -e } else { e });
                i = j;
            }
        }
        let suffix = b.get(i).is_some_and(|&c| is_ident_byte(c));
        if !suffix {
            if !float && int_len <= 18 {
                let m = i64::try_from(sig).ok()?;
                self.i = i;
                return Some(Value::Int(if negative { -m } else { m }));
            }
            if float
                && let Some(e) = scale
                && let Some(f) =
                    exact_decimal(sig, int_len + frac_len, e - i32::try_from(frac_len).ok()?)
            {
                self.i = i;
                return Some(Value::Float(if negative { -f } else { f }));
            }
        }
        self.number_token(negative)
    }

    /// [`Cursor::number_value`] for the other forms, from the token's text.
    #[cold]
    #[inline(never)]
    fn number_token(&mut self, negative: bool) -> Option<Value> {
        let text = self.number()?;
        if negative {
            self::negative(text)
        } else {
            number(text)
        }
    }

    /// A field name or map key: an identifier or a string.
    fn name(&mut self) -> Option<Cow<'s, str>> {
        match self.peek()? {
            b'"' | b'\'' => self.string(),
            _ => self.ident().map(Cow::Borrowed),
        }
    }

    /// A string in `"` or `'`, with the escapes `\n \t \r \0 \\ \" \'` resolved (`\u{..}` and
    /// anything else: give up). Borrowed from the line when it has no escape.
    fn string(&mut self) -> Option<Cow<'s, str>> {
        let quote = self.peek()?;
        self.i += 1;
        let mut owned: Option<String> = None;
        loop {
            let rest = &self.b[self.i..];
            let at = find3(rest, quote, b'\\', b'\n')?;
            let text = &self.s[self.i..self.i + at];
            self.i += at;
            match rest[at] {
                b'\\' => {
                    let unescaped = match self.b.get(self.i + 1)? {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'0' => '\0',
                        b'\\' => '\\',
                        b'"' => '"',
                        b'\'' => '\'',
                        _ => return None,
                    };
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(text);
                    s.push(unescaped);
                    self.i += 2;
                }
                b'\n' => return None,
                _ => {
                    self.i += 1;
                    return Some(match owned {
                        None => Cow::Borrowed(text),
                        Some(mut s) => {
                            s.push_str(text);
                            Cow::Owned(s)
                        }
                    });
                }
            }
        }
    }
}

/// The index of the first byte of `b` equal to `x`, `y` or `z`, eight bytes at a time.
fn find3(b: &[u8], x: u8, y: u8, z: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Marks the zero bytes of `v`; exact up to the first one (borrows only mark bytes above).
    let zeros = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let (xs, ys, zs) = (
        ONES * u64::from(x),
        ONES * u64::from(y),
        ONES * u64::from(z),
    );
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let m = zeros(v ^ xs) | zeros(v ^ ys) | zeros(v ^ zs);
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == x || c == y || c == z)
        .map(|p| at + p)
}

/// What [`number_literal`](crate::parser::number_literal) makes of a number token, when it
/// accepts it: `10` Int, `10s` Duration, `2.5`/`1e3` Float. `None` where it gives an error.
/// Allocation-free, unlike the diagnostic path (which builds a duration error on the way to
/// every float).
fn number(text: &str) -> Option<Value> {
    let b = text.as_bytes();
    let digits = b
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len());
    if digits == b.len() {
        return text.parse::<i64>().ok().map(Value::Int);
    }
    if is_unit(&text[digits..]) {
        // `parse_duration_ms` accepts it or reports an overflow (an error).
        return parse_duration_ms(text).ok().map(Value::Duration);
    }
    // Any other suffix is not a duration: `number_literal` goes on to floats.
    if matches!(b[digits], b'.' | b'e' | b'E') {
        let f = text.parse::<f64>().ok()?;
        return (!f.is_infinite()).then_some(Value::Float(f));
    }
    None
}

/// `-` then a number token: `parse_evt_line` reads `-{text}` as an `i64` when it is one, else
/// negates what the token means.
fn negative(text: &str) -> Option<Value> {
    if text.bytes().all(|c| c.is_ascii_digit()) {
        // `-{digits}` is an i64 down to -2^63; below, `number_literal` reports the overflow.
        let magnitude = text.parse::<u64>().ok()?;
        return 0_i64.checked_sub_unsigned(magnitude).map(Value::Int);
    }
    Some(match number(text)? {
        Value::Float(f) => Value::Float(-f),
        Value::Duration(d) => Value::Duration(-d),
        other => other,
    })
}

/// An `@` time: a duration literal (`parse_duration_ms` of the token), `None` otherwise.
fn duration(text: &str) -> Option<EventTime> {
    let digits = text
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if !is_unit(&text[digits..]) {
        return None;
    }
    parse_duration_ms(text).ok()
}

fn is_unit(s: &str) -> bool {
    matches!(s, "ms" | "s" | "m" | "h" | "d")
}

#[cfg(test)]
mod tests;
