//! Diagnostics: what went wrong, where (line, column, byte span) and what was expected.

use std::fmt;

/// A byte range `start..end` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// `start..end`.
    #[must_use]
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One error found in a VPL program or an `.evt` line.
///
/// `line` and `column` are 1-based; `column` counts characters (Unicode scalar values), not
/// bytes. `span` is the byte range of the offending text in the source that was parsed.
/// `message` is the complete human sentence (it already mentions `expected` and `found` when
/// those are set); `expected` and `found` repeat those parts for tools and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Byte range of the offending text.
    pub span: Span,
    /// The full message, e.g. `expected a duration like 10s, found "10x"`.
    pub message: String,
    /// What was expected, e.g. `a duration like 10s`.
    pub expected: Option<String>,
    /// The offending text as written, e.g. `10x` (or `end of input`).
    pub found: Option<String>,
    /// A hint, e.g. `did you mean "value"?`.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `source` with a free-form message.
    pub(crate) fn new(source: &str, span: Span, message: impl Into<String>) -> Self {
        let (line, column) = line_column(source, span.start);
        Self {
            line,
            column,
            span,
            message: message.into(),
            expected: None,
            found: None,
            help: None,
        }
    }

    /// `expected {expected}, found {found}` at `span` of `source`; `found` is the source text
    /// of the span (quoted in the message), or `end of input` for an empty span at the end.
    pub(crate) fn expected(source: &str, span: Span, expected: impl Into<String>) -> Self {
        let expected = expected.into();
        let found = found_text(source, span);
        let shown = if found == END_OF_INPUT || found == END_OF_LINE {
            found.clone()
        } else {
            format!("{found:?}")
        };
        let mut d = Self::new(source, span, format!("expected {expected}, found {shown}"));
        d.expected = Some(expected);
        d.found = Some(found);
        d
    }

    /// Adds a hint.
    #[must_use]
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets `found` (the message is unchanged).
    #[must_use]
    pub(crate) fn with_found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    /// Sets `expected` (the message is unchanged).
    #[must_use]
    pub(crate) fn with_expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Moves the diagnostic to line `line` of a larger file.
    ///
    /// [`parse_evt_line`](crate::parse_evt_line) sees one line and reports line 1; a file reader
    /// calls this with the real line number. Column and span stay relative to that line.
    #[must_use]
    pub fn at_line(mut self, line: u32) -> Self {
        self.line = line;
        self
    }

    /// Renders the diagnostic for humans, with a source snippet and a caret under the
    /// offending text:
    ///
    /// ```text
    /// error: expected a duration like 10s, found "10x"
    ///  --> prog.vpl:3:30
    ///   |
    /// 3 |     .watermark(out_of_order: 10x)
    ///   |                              ^^^
    /// ```
    ///
    /// `source` is the text that was parsed (for an `.evt` diagnostic, the line itself); the
    /// line number shown is [`Diagnostic::line`].
    #[must_use]
    pub fn render(&self, source: &str, filename: &str) -> String {
        self.render_as("error", source, filename)
    }

    /// Renders a warning (one of [`Program::warnings`](crate::Program::warnings)) like
    /// [`Diagnostic::render`], headed `warning:` instead of `error:`.
    #[must_use]
    pub fn render_warning(&self, source: &str, filename: &str) -> String {
        self.render_as("warning", source, filename)
    }

    fn render_as(&self, severity: &str, source: &str, filename: &str) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "{severity}: {}", self.message);
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        let _ = writeln!(out, "{pad}--> {filename}:{}:{}", self.line, self.column);
        let start = self.span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        // A byte-order mark is invisible: neither shown nor counted under the caret.
        let shown_start = if line_start == 0 && source.starts_with(BOM) {
            BOM.len_utf8().min(start)
        } else {
            line_start
        };
        let text = source[shown_start..line_end].trim_end_matches('\r');
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{number} | {text}");
        // Keep tabs so the caret lines up with the text above it.
        let before: String = source[shown_start..start]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let end = self.span.end.clamp(start, line_end.max(start));
        let width = source[start..end].chars().count().max(1);
        let _ = writeln!(out, "{pad} | {before}{}", "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Every error found in a program, in source order (the error type of
/// [`parse_program`](crate::parse_program)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The diagnostics, in source order.
    #[must_use]
    pub fn items(&self) -> &[Diagnostic] {
        &self.0
    }

    /// The first diagnostic.
    ///
    /// # Panics
    /// Never for values returned by this crate: they hold at least one diagnostic.
    #[must_use]
    pub fn first(&self) -> &Diagnostic {
        &self.0[0]
    }

    /// Number of diagnostics.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renders every diagnostic (see [`Diagnostic::render`]), separated by blank lines, with a
    /// final `error: could not load FILE: N errors` summary when there is more than one.
    #[must_use]
    pub fn render(&self, source: &str, filename: &str) -> String {
        let mut out: Vec<String> = self.0.iter().map(|d| d.render(source, filename)).collect();
        if self.0.len() > 1 {
            out.push(format!(
                "error: could not load {filename}: {} errors\n",
                self.0.len()
            ));
        }
        out.join("\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

pub(crate) const END_OF_INPUT: &str = "end of input";
/// A byte-order mark: skipped at the start of a source, and not counted as a column.
pub(crate) const BOM: char = '\u{feff}';
pub(crate) const END_OF_LINE: &str = "end of line";

fn found_text(source: &str, span: Span) -> String {
    if span.is_empty() {
        return if span.start >= source.trim_end().len() {
            END_OF_INPUT.to_owned()
        } else {
            END_OF_LINE.to_owned()
        };
    }
    let end = span.end.min(source.len());
    source[span.start.min(end)..end].to_owned()
}

/// 1-based line and character column of byte `offset`.
pub(crate) fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let text = &before[line_start..];
    let text = if line_start == 0 {
        text.strip_prefix(BOM).unwrap_or(text)
    } else {
        text
    };
    let column = text.chars().count() + 1;
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (clamp(line), clamp(column))
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `did you mean "x"?` for the closest candidate, if one is close enough.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("did you mean {c:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("ab\ncé x", 7), (2, 4));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            suggest("valu", ["value", "zone"]).as_deref(),
            Some("did you mean \"value\"?")
        );
        assert_eq!(suggest("xyz", ["value", "zone"]), None);
    }
}
