//! `.evt` lines: `[@<duration>] Type { field: value, ... }`.

use std::collections::BTreeMap;
use std::sync::Arc;

use varpulis_core::{Event, EventTime, Value, parse_duration_ms};

use crate::diagnostic::{Diagnostic, Span};
use crate::lexer::{Tok, lex};
use crate::parser::{DURATION_EXAMPLE, Parser, number_literal};

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
                let mut e = Event::new(event_type.as_str(), time.unwrap_or(previous_time));
                for (n, v) in fields {
                    e.set(n.as_str(), v.clone());
                }
                Some(e)
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
/// or strings and appear once.
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
    let (toks, errors) = lex(line);
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
    let fields = entries(&mut p, Tok::RBrace)?;
    if !p.at(&Tok::Eof) {
        return Err(p.error("the end of the line after `}`"));
    }
    Ok(EvtLine::Event {
        time,
        event_type,
        fields,
    })
}

/// `name: value, ...` up to and including `close`.
fn entries(p: &mut Parser<'_>, close: Tok) -> Result<Vec<(String, Value)>, Diagnostic> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    loop {
        if p.eat(&close) {
            return Ok(out);
        }
        let t = p.peek().clone();
        let name = match &t.tok {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            _ => {
                return Err(p.error(if out.is_empty() {
                    "a field name or `}`"
                } else {
                    "a field name"
                }));
            }
        };
        p.bump();
        if let Some(i) = out.iter().position(|(n, _)| *n == name) {
            let (_, col) = crate::diagnostic::line_column(p.src, spans[i].start);
            return Err(Diagnostic::new(
                p.src,
                t.span,
                format!("field {name:?} appears twice (first at column {col})"),
            )
            .with_expected("each field once")
            .with_found(name));
        }
        p.expect(&Tok::Colon, "`:` after the field name")?;
        let v = value(p)?;
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

fn value(p: &mut Parser<'_>) -> Result<Value, Diagnostic> {
    const EXPECTED: &str = "a value (number, string, true, false, null, [...] or {...})";
    let t = p.peek().clone();
    match &t.tok {
        Tok::Minus => {
            p.bump();
            let n = p.peek().clone();
            let Tok::Number(text) = &n.tok else {
                return Err(p.error("a number after `-`"));
            };
            let v = match format!("-{text}").parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => negate(&number_literal(p.src, text, n.span)?),
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
        Tok::LBracket => {
            p.bump();
            let mut items = Vec::new();
            loop {
                if p.eat(&Tok::RBracket) {
                    break;
                }
                items.push(value(p)?);
                if !p.eat(&Tok::Comma) {
                    p.expect(&Tok::RBracket, "`,` or `]`")?;
                    break;
                }
            }
            Ok(Value::from(items))
        }
        Tok::LBrace => {
            p.bump();
            let map: BTreeMap<Arc<str>, Value> = entries(p, Tok::RBrace)?
                .into_iter()
                .map(|(k, v)| (Arc::from(k), v))
                .collect();
            Ok(Value::Map(Arc::new(map)))
        }
        _ => Err(p.error(EXPECTED)),
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
