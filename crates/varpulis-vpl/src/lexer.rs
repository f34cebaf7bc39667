//! Tokens shared by the VPL parser and the `.evt` line parser.

use crate::diagnostic::{Diagnostic, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// A number as written, with any unit suffix (`10`, `2.5`, `10s`, `10x`); the parser
    /// interprets it in context.
    Number(String),
    /// A string literal, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    At,
    Assign,
    Walrus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    /// `->`: followed-by, between the steps of a pattern.
    Arrow,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `source` into tokens. Comments (`#`, `//`) and whitespace are skipped, and so is a
/// byte-order mark at the very start when `source` is a `whole_file` (a program). An `.evt`
/// line is not: the file reader skips the mark at the start of its file, and a mark that
/// reaches the line parser is an unexpected character, as it is to the JSON parser. Lexical
/// errors are collected; the offending characters are skipped.
pub(crate) fn lex(source: &str, whole_file: bool) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut last_end = 0;
    while i < source.len() {
        let c = source[i..].chars().next().unwrap_or('\0');
        let start = i;
        let single = |tok: Tok| (tok, start + 1);
        let next = bytes.get(i + 1).copied();
        let (tok, end) = match c {
            crate::diagnostic::BOM if i == 0 && whole_file => {
                i += c.len_utf8();
                continue;
            }
            c if c.is_whitespace() => {
                i += c.len_utf8();
                continue;
            }
            '#' => {
                i = source[i..].find('\n').map_or(source.len(), |n| i + n);
                continue;
            }
            '/' if next == Some(b'/') => {
                i = source[i..].find('\n').map_or(source.len(), |n| i + n);
                continue;
            }
            '(' => single(Tok::LParen),
            ')' => single(Tok::RParen),
            '{' => single(Tok::LBrace),
            '}' => single(Tok::RBrace),
            '[' => single(Tok::LBracket),
            ']' => single(Tok::RBracket),
            ',' => single(Tok::Comma),
            '.' => single(Tok::Dot),
            '@' => single(Tok::At),
            '+' => single(Tok::Plus),
            '-' if next == Some(b'>') => (Tok::Arrow, i + 2),
            '-' => single(Tok::Minus),
            '*' => single(Tok::Star),
            '/' => single(Tok::Slash),
            '%' => single(Tok::Percent),
            ':' if next == Some(b'=') => (Tok::Walrus, i + 2),
            ':' => single(Tok::Colon),
            '=' if next == Some(b'=') => (Tok::Eq, i + 2),
            '=' => single(Tok::Assign),
            '!' if next == Some(b'=') => (Tok::Ne, i + 2),
            '<' if next == Some(b'=') => (Tok::Le, i + 2),
            '<' => single(Tok::Lt),
            '>' if next == Some(b'=') => (Tok::Ge, i + 2),
            '>' => single(Tok::Gt),
            '"' | '\'' => match lex_string(source, i, c) {
                Ok((s, end)) => (Tok::Str(s), end),
                Err(d) => {
                    errors.push(d);
                    i = source[i..].find('\n').map_or(source.len(), |n| i + n);
                    continue;
                }
            },
            c if c.is_ascii_digit() => {
                let end = lex_number(source, i);
                (Tok::Number(source[i..end].to_owned()), end)
            }
            c if is_ident_start(c) => {
                let end = source[i..]
                    .find(|c: char| !is_ident_char(c))
                    .map_or(source.len(), |n| i + n);
                (Tok::Ident(source[i..end].to_owned()), end)
            }
            other => {
                let (len, hint) = match (other, next) {
                    ('&', Some(b'&')) => (2, Some("use `and`")),
                    ('|', Some(b'|')) => (2, Some("use `or`")),
                    ('!', _) => (1, Some("use `not`")),
                    (crate::diagnostic::BOM, _) => (
                        other.len_utf8(),
                        Some("a byte-order mark is skipped only at the very start of a file"),
                    ),
                    _ => (other.len_utf8(), None),
                };
                let span = Span::new(i, i + len);
                let mut d = Diagnostic::expected(source, span, "an expression, a name or `(`");
                d.message = format!("unexpected character {:?}", &source[i..i + len]);
                if let Some(h) = hint {
                    d = d.with_help(h);
                }
                errors.push(d);
                i += len;
                continue;
            }
        };
        tokens.push(Token {
            tok,
            span: Span::new(start, end),
        });
        last_end = end;
        i = end;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: Span::new(last_end, last_end),
    });
    (tokens, errors)
}

/// Digits, an optional fraction, an optional exponent, then any identifier characters (a unit
/// or garbage, judged by the parser).
pub(crate) fn lex_number(source: &str, start: usize) -> usize {
    let b = source.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = digits(j);
        }
    }
    while i < b.len() && is_ident_char(b[i] as char) {
        i += 1;
    }
    i
}

/// A quoted string starting at `start`; returns the unescaped text and the end offset.
fn lex_string(source: &str, start: usize, quote: char) -> Result<(String, usize), Diagnostic> {
    let mut out = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        match c {
            c if c == quote => return Ok((out, at + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let simple = match e {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    '0' => Some('\0'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    '\'' => Some('\''),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                if e == 'u' {
                    let rest = &source[at + 2..];
                    if let Some(close) = rest.strip_prefix('{').and_then(|r| r.find('}')) {
                        let hex = &rest[1..1 + close];
                        if let Ok(code) = u32::from_str_radix(hex, 16) {
                            let Some(ch) = char::from_u32(code) else {
                                let span = Span::new(at, at + 2 + close + 2);
                                return Err(Diagnostic::new(
                                    source,
                                    span,
                                    format!(
                                        "invalid code point \\u{{{hex}}}: expected a Unicode \
                                         scalar value, at most 10FFFF and not a surrogate \
                                         (D800 to DFFF)"
                                    ),
                                )
                                .with_expected("a Unicode scalar value")
                                .with_found(&source[at..at + 2 + close + 2]));
                            };
                            out.push(ch);
                            for _ in 0..close + 2 {
                                chars.next();
                            }
                            continue;
                        }
                    }
                }
                let span = Span::new(at, at + 1 + e.len_utf8());
                return Err(Diagnostic::expected(
                    source,
                    span,
                    "an escape: \\n, \\t, \\r, \\0, \\\\, \\\", \\' or \\u{...}",
                ));
            }
            c => out.push(c),
        }
    }
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |n| start + n);
    Err(Diagnostic::new(
        source,
        Span::new(start, line_end),
        format!("unterminated string: expected a closing {quote} on the same line"),
    )
    .with_expected(format!("closing {quote}"))
    .with_found(crate::diagnostic::END_OF_LINE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        let (t, e) = lex(s, true);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_numbers_with_units_and_comments() {
        assert_eq!(
            kinds("x := 10s // c\n# d\n2.5e3 1.x"),
            vec![
                Tok::Ident("x".into()),
                Tok::Walrus,
                Tok::Number("10s".into()),
                Tok::Number("2.5e3".into()),
                Tok::Number("1".into()),
                Tok::Dot,
                Tok::Ident("x".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn skips_a_byte_order_mark_at_the_start_only() {
        assert_eq!(kinds("\u{feff}x"), vec![Tok::Ident("x".into()), Tok::Eof]);
        let (_, errors) = lex("x \u{feff}", true);
        assert_eq!(errors[0].message, r#"unexpected character "\u{feff}""#);
        let (_, errors) = lex("\u{feff}x", false);
        assert_eq!(
            errors[0].span,
            Span::new(0, 3),
            "not a whole file: not skipped"
        );
    }

    #[test]
    fn unescapes_strings() {
        assert_eq!(
            kinds(r#""a\"b\u{e9}\n" 'c'"#),
            vec![Tok::Str("a\"bé\n".into()), Tok::Str("c".into()), Tok::Eof]
        );
    }
}
