//! Load-time checks: syntax tree -> typed [`Program`], or every semantic error found.
//!
//! [`check`] runs the passes over one `Checker`, which collects the diagnostics: event
//! declarations and variables (`decls`), then the streams (`graph` orders them, `stream`
//! checks one stream's operations, `window` its window and aggregates). Expressions are typed
//! and their names resolved in `types`.

mod contexts;
mod decls;
mod graph;
mod pattern;
mod stream;
mod types;
mod window;

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Span, line_column};
use crate::parser::Stmt;
use crate::plan::{Program, Type};

/// A variable declared so far.
#[derive(Debug, Clone)]
struct VarInfo {
    ty: Type,
    /// Declared with `var`, so assignable.
    mutable: bool,
    span: Span,
}

/// The state of one check: the source (for diagnostics), what was found so far and the
/// variables declared so far.
struct Checker<'s> {
    src: &'s str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    vars: BTreeMap<String, VarInfo>,
    /// Every declared variable (also those declared later), for "declared later" hints.
    all_vars: BTreeMap<String, Span>,
}

/// `a, b, c`, or `none`: the choices named in an expected text.
fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// Checks the statements of a parsed program: the typed [`Program`] with its warnings, or every
/// error found, sorted by position (the passes and the streams' dependency order do not follow
/// the source).
pub(crate) fn check(src: &str, mut stmts: Vec<Stmt>) -> Result<Program, Vec<Diagnostic>> {
    let mut c = Checker {
        src,
        errors: Vec::new(),
        warnings: Vec::new(),
        vars: BTreeMap::new(),
        all_vars: BTreeMap::new(),
    };
    let events = c.events(&stmts);
    for s in &stmts {
        if let Stmt::Var { name, .. } = s {
            c.all_vars.entry(name.text.clone()).or_insert(name.span);
        }
    }
    let (variables, assignments) = c.variables(&stmts);
    let (contexts, placements) = c.contexts(&mut stmts);
    let mut streams = c.streams(&stmts, &events);
    c.place(&mut streams, &placements);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|d| (d.span.start, d.span.end));
        Ok(Program {
            events,
            variables,
            assignments,
            streams,
            contexts,
            warnings: c.warnings,
        })
    } else {
        c.errors.sort_by_key(|d| (d.span.start, d.span.end));
        Err(c.errors)
    }
}

impl Checker<'_> {
    /// Records an error at `span`; the caller may add expected, found and help.
    fn err(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.errors.push(Diagnostic::new(self.src, span, message));
        self.errors.last_mut().unwrap_or_else(|| unreachable!())
    }

    /// An error at `span` that says what was expected and what was found, with an optional
    /// help line.
    fn expected_err(
        &mut self,
        span: Span,
        message: String,
        expected: String,
        found: &str,
        help: Option<String>,
    ) {
        let d = self.err(span, message);
        d.expected = Some(expected);
        d.found = Some(found.to_owned());
        d.help = help;
    }

    /// `line:column` of `span`, for hints that point elsewhere.
    fn at(&self, span: Span) -> String {
        let (l, c) = line_column(self.src, span.start);
        format!("{l}:{c}")
    }

    /// The source text of `span`.
    fn found(&self, span: Span) -> String {
        self.src[span.start..span.end].to_owned()
    }
}
