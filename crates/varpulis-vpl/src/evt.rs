//! `.evt` lines: `[@<duration>] Type { field: value, ... }`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use varpulis_core::{DurationError, Event, EventTime, Value, parse_duration_ms};

use crate::diagnostic::{Diagnostic, Span};
use crate::lexer::{Tok, lex};
use crate::parser::{DURATION_EXAMPLE, FLOAT_RANGE, Parser, number_literal, overflowing_duration};

/// One parsed `.evt` line.
#[derive(Debug, Clone, PartialEq)]
pub enum EvtLine {
    /// An event.
    Event {
        /// The `@<duration>` prefix in milliseconds since the epoch, if written. A line
        /// without one takes the previous line's time (0 for the first); the caller tracks it.
        time: Option<EventTime>,
        /// The event type.
        event_type: String,
        /// Fields in the order written.
        fields: Vec<(String, Value)>,
    },
    /// A blank line or a comment.
    Blank,
}

impl EvtLine {
    /// The event, timestamped with the line's `@` time or else `previous_time`. `None` for
    /// [`EvtLine::Blank`].
    #[must_use]
    pub fn to_event(&self, previous_time: EventTime) -> Option<Event> {
        match self {
            Self::Blank => None,
            Self::Event {
                time,
                event_type,
                fields,
            } => {
                let fields = fields.iter().map(|(n, v)| (n.as_str(), v.clone()));
                Some(Event::from_fields(
                    event_type.as_str(),
                    time.unwrap_or(previous_time),
                    fields,
                ))
            }
        }
    }
}

/// Parses one line of an `.evt` file. Pure: no I/O.
///
/// Grammar: `[@<duration>] Type { name: value, ... }` with an optional trailing comma and an
/// optional trailing `#`/`//` comment; a blank or comment-only line is [`EvtLine::Blank`].
/// Values: integers (`-5`), floats (`2.5`, `1e3`), durations (`10s`, as
/// [`Value::Duration`]), strings (`"..."` or `'...'` with `\n \t \r \0 \\ \" \' \u{..}`),
/// `true`, `false`, `null`, arrays `[1, 2]` and maps `{ k: 1 }`. Field names are identifiers
/// or strings and appear once (in the event and in every map). A float beyond `f64`
/// (`1e400`) is an error naming the field; lists and maps nest at most
/// [`MAX_NESTING`](crate::MAX_NESTING) levels, the event's own braces included. Time is
/// linear in the length of the line. A byte-order mark is an unexpected character wherever it
/// is, the start of the line included: a file reader skips the one at the start of its file
/// before it parses line 1 (as `varpulis-engine`'s does), so it is skipped once, in one place.
///
/// # Errors
/// A [`Diagnostic`] on line 1 with the column and what was expected; call
/// [`Diagnostic::at_line`] to place it in the file.
///
/// ```
/// use varpulis_vpl::{EvtLine, parse_evt_line};
/// use varpulis_core::Value;
///
/// let line = parse_evt_line("@9s SensorEvent { value: 999, zone: \"north\" }")?;
/// let EvtLine::Event { time, event_type, fields } = line else { unreachable!() };
/// assert_eq!((time, event_type.as_str()), (Some(9_000), "SensorEvent"));
/// assert_eq!(fields[0], ("value".to_owned(), Value::Int(999)));
///
/// let err = parse_evt_line("@9x SensorEvent {}").unwrap_err();
/// assert_eq!((err.line, err.column), (1, 2));
/// assert_eq!(err.message, "expected a duration like 10s, found \"9x\"");
/// # Ok::<_, varpulis_vpl::Diagnostic>(())
/// ```
pub fn parse_evt_line(line: &str) -> Result<EvtLine, Diagnostic> {
    let (toks, errors) = lex(line, false);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut p = Parser::new(line, toks);
    if p.at(&Tok::Eof) {
        return Ok(EvtLine::Blank);
    }
    let time = if p.eat(&Tok::At) {
        let t = p.peek().clone();
        match &t.tok {
            Tok::Number(text) => match parse_duration_ms(text) {
                Ok(ms) => {
                    p.bump();
                    Some(ms)
                }
                Err(DurationError::Overflow { max, .. }) => {
                    return Err(overflowing_duration(line, t.span, "time", &max));
                }
                Err(_) => {
                    let d = p.error(DURATION_EXAMPLE);
                    return Err(if text.bytes().all(|b| b.is_ascii_digit()) {
                        d.with_help(format!("add a unit, e.g. @{text}ms or @{text}s"))
                    } else {
                        d.with_help("units are ms, s, m, h and d")
                    });
                }
            },
            _ => return Err(p.error(DURATION_EXAMPLE)),
        }
    } else {
        None
    };
    let event_type = match &p.peek().tok {
        Tok::Ident(s) => {
            let s = s.clone();
            p.bump();
            s
        }
        _ => {
            let what = if time.is_some() {
                "an event type after the time"
            } else {
                "an event like Type { field: value } or @10s Type { ... }"
            };
            return Err(p.error(what));
        }
    };
    p.expect(&Tok::LBrace, "`{` after the event type")?;
    let fields = p
        .nested(|p| entries(p, Tok::RBrace))
        .map_err(Fail::into_diagnostic)?;
    if !p.at(&Tok::Eof) {
        return Err(p.error("the end of the line after `}`"));
    }
    Ok(EvtLine::Event {
        time,
        event_type,
        fields,
    })
}

/// A failed value: the diagnostic and, for an error that names its field, the path to it
/// (innermost first, filled in as the error propagates: nothing is spent on success).
/// Boxed: it travels up every level of a nested value, and a small `Err` keeps those frames
/// small.
struct Fail {
    diag: Box<Diagnostic>,
    path: Option<Vec<String>>,
}

impl From<Diagnostic> for Fail {
    fn from(diag: Diagnostic) -> Self {
        let path = (diag.expected.as_deref() == Some(FLOAT_RANGE)).then(Vec::new);
        Self {
            diag: Box::new(diag),
            path,
        }
    }
}

impl Fail {
    fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        if let Some(path) = &mut self.path {
            path.push(segment());
        }
        self
    }

    /// `field "a.b[2]": ...` for an error that names its field.
    fn into_diagnostic(self) -> Diagnostic {
        let mut diag = *self.diag;
        if let Some(path) = self.path {
            let mut name = String::new();
            for segment in path.iter().rev() {
                if !name.is_empty() && !segment.starts_with('[') {
                    name.push('.');
                }
                name.push_str(segment);
            }
            diag.message = format!("field {name:?}: {}", diag.message);
        }
        diag
    }
}

/// Up to this many names a scan finds duplicates faster than a hash index.
const SCAN: usize = 16;

/// `name: value, ...` up to and including `close`.
fn entries(p: &mut Parser<'_>, close: Tok) -> Result<Vec<(String, Value)>, Fail> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    // Built once there are more than `SCAN` names, so a line of n fields is linear.
    let mut index: Option<HashMap<String, usize>> = None;
    loop {
        if p.eat(&close) {
            return Ok(out);
        }
        let t = p.peek().clone();
        let name = match &t.tok {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            _ => {
                return Err(p
                    .error(if out.is_empty() {
                        "a field name or `}`"
                    } else {
                        "a field name"
                    })
                    .into());
            }
        };
        p.bump();
        let first = match &index {
            Some(index) => index.get(&name).copied(),
            None => out.iter().position(|(n, _)| *n == name),
        };
        if let Some(i) = first {
            let (_, col) = crate::diagnostic::line_column(p.src, spans[i].start);
            return Err(Diagnostic::new(
                p.src,
                t.span,
                format!("field {name:?} appears twice (first at column {col})"),
            )
            .with_expected("each field once")
            .with_found(name)
            .into());
        }
        p.expect(&Tok::Colon, "`:` after the field name")?;
        let v = match value(p) {
            Ok(v) => v,
            Err(fail) => return Err(fail.within(|| name)),
        };
        if let Some(index) = &mut index {
            index.insert(name.clone(), out.len());
        } else if out.len() == SCAN {
            let mut built: HashMap<String, usize> = out
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
            built.insert(name.clone(), out.len());
            index = Some(built);
        }
        out.push((name, v));
        spans.push(t.span);
        if !p.eat(&Tok::Comma) {
            let what = if close == Tok::RBrace {
                "`,` or `}`"
            } else {
                "`,` or `]`"
            };
            p.expect(&close, what)?;
            return Ok(out);
        }
    }
}

fn value(p: &mut Parser<'_>) -> Result<Value, Fail> {
    const EXPECTED: &str = "a value (number, string, true, false, null, [...] or {...})";
    let t = p.peek().clone();
    match &t.tok {
        Tok::Minus => {
            p.bump();
            let n = p.peek().clone();
            let Tok::Number(text) = &n.tok else {
                return Err(p.error("a number after `-`").into());
            };
            let v = match format!("-{text}").parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => match number_literal(p.src, text, n.span) {
                    Ok(v) => negate(&v),
                    Err(d) if d.expected.as_deref() == Some(FLOAT_RANGE) => {
                        let span = t.span.to(n.span);
                        return Err(Diagnostic::new(
                            p.src,
                            span,
                            format!("number -{text} is out of range for a float"),
                        )
                        .with_expected(FLOAT_RANGE)
                        .with_found(&p.src[span.start..span.end])
                        .into());
                    }
                    Err(d) => return Err(d.into()),
                },
            };
            p.bump();
            Ok(v)
        }
        Tok::Number(text) => {
            let v = number_literal(p.src, text, t.span)?;
            p.bump();
            Ok(v)
        }
        Tok::Str(s) => {
            p.bump();
            Ok(Value::from(s.as_str()))
        }
        Tok::Ident(s) if matches!(s.as_str(), "true" | "false" | "null") => {
            p.bump();
            Ok(match s.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::Null,
            })
        }
        Tok::LBracket => p.nested(|p| {
            p.bump();
            let mut items = Vec::new();
            loop {
                if p.eat(&Tok::RBracket) {
                    break;
                }
                match value(p) {
                    Ok(v) => items.push(v),
                    Err(fail) => return Err(fail.within(|| format!("[{}]", items.len()))),
                }
                if !p.eat(&Tok::Comma) {
                    p.expect(&Tok::RBracket, "`,` or `]`")?;
                    break;
                }
            }
            Ok(Value::from(items))
        }),
        Tok::LBrace => p.nested(|p| {
            p.bump();
            let map: BTreeMap<Arc<str>, Value> = entries(p, Tok::RBrace)?
                .into_iter()
                .map(|(k, v)| (Arc::from(k), v))
                .collect();
            Ok(Value::Map(Arc::new(map)))
        }),
        _ => Err(p.error(EXPECTED).into()),
    }
}

fn negate(v: &Value) -> Value {
    match *v {
        Value::Int(i) => Value::Int(-i),
        Value::Float(f) => Value::Float(-f),
        Value::Duration(d) => Value::Duration(-d),
        ref other => other.clone(),
    }
}
