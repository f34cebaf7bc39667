//! The pattern grammar: followed-by steps (`A as a -> B where ... as b`), `NOT`, `all`/`+`,
//! `OR`/`AND`, and named `pattern P = SEQ(...) within d partition by f`.

use super::{Ident, PResult, Parser, Stmt};
use crate::diagnostic::Span;
use crate::expr::Expr;
use crate::lexer::Tok;

/// A sequence of pattern steps as written.
#[derive(Debug, Clone)]
pub(crate) struct PatternSyntax {
    pub(crate) steps: Vec<StepSyntax>,
    pub(crate) span: Span,
}

impl PatternSyntax {
    pub(crate) fn inputs(&self) -> Vec<&Ident> {
        let mut out: Vec<&Ident> = Vec::new();
        for a in self.steps.iter().flat_map(|s| &s.atoms) {
            if !out.iter().any(|i| i.text == a.ty.text) {
                out.push(&a.ty);
            }
        }
        out
    }
}

/// One step: `NOT X`, `all B`/`B+`, `A OR B`, `A AND B`, or one atom.
#[derive(Debug, Clone)]
pub(crate) struct StepSyntax {
    pub(crate) negated: bool,
    pub(crate) kleene: bool,
    /// `AND` between the atoms (else `OR`, or a single atom).
    pub(crate) all_of: bool,
    pub(crate) atoms: Vec<AtomSyntax>,
    pub(crate) span: Span,
}

/// `Type [where expr] [as alias]`.
#[derive(Debug, Clone)]
pub(crate) struct AtomSyntax {
    pub(crate) ty: Ident,
    pub(crate) filter: Option<Expr>,
    pub(crate) alias: Option<Ident>,
}

impl Parser<'_> {
    /// After a stream's first name: does a pattern step go on (`as`, `where`, `+`, `OR`,
    /// `AND`) or follow (`->`)?
    pub(super) fn at_step_continuation(&self) -> bool {
        match &self.peek().tok {
            Tok::Arrow | Tok::Plus => true,
            Tok::Ident(s) => matches!(s.as_str(), "as" | "where" | "OR" | "AND"),
            _ => false,
        }
    }

    /// `pattern P = SEQ(step, ...) [within d] [partition by field]`.
    pub(super) fn pattern_decl(&mut self) -> PResult<Stmt> {
        let name = self.ident("a pattern name")?;
        self.expect(&Tok::Assign, "`=` and SEQ(...)")?;
        let seq = self.peek().clone();
        if !matches!(&seq.tok, Tok::Ident(s) if s == "SEQ") {
            return Err(self.error("SEQ( and the pattern's steps"));
        }
        self.bump();
        self.expect(&Tok::LParen, "`(` after SEQ")?;
        let mut steps = Vec::new();
        loop {
            steps.push(self.nested(Self::step)?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        let close = self.expect(&Tok::RParen, "`,` and a step, or `)` to close SEQ(")?;
        let mut within = None;
        let mut partition_by = None;
        loop {
            if self.at_keyword("within") && within.is_none() {
                self.bump();
                within = Some(self.duration("within")?);
            } else if self.at_keyword("partition") && partition_by.is_none() {
                self.bump();
                if !self.at_keyword("by") {
                    return Err(self.error("`by` and a field name after partition"));
                }
                self.bump();
                partition_by = Some(self.ident("a field name to partition by")?);
            } else {
                break;
            }
        }
        Ok(Stmt::Pattern {
            name,
            pattern: PatternSyntax {
                steps,
                span: seq.span.to(close),
            },
            within,
            partition_by,
        })
    }

    /// One step: `[NOT] [all] atom [(OR|AND) atom]...`.
    pub(super) fn step(&mut self) -> PResult<StepSyntax> {
        let start = self.peek().span;
        let negated = if self.at_keyword("NOT") || self.at_keyword("not") {
            self.bump();
            true
        } else {
            false
        };
        let kleene = if self.at_keyword("all") && matches!(self.peek_at(1), Tok::Ident(_)) {
            self.bump();
            true
        } else {
            false
        };
        let ty = self.ident("an event type or a stream (a pattern step)")?;
        let mut step = self.step_after(ty, kleene)?;
        step.negated = negated;
        step.span = start.to(step.span);
        Ok(step)
    }

    /// The rest of a step whose first atom's type `ty` was read.
    pub(super) fn step_after(&mut self, ty: Ident, kleene: bool) -> PResult<StepSyntax> {
        let start = ty.span;
        let mut kleene = kleene;
        let first = self.atom_after(ty, &mut kleene)?;
        let mut atoms = vec![first];
        let mut all_of = None;
        while self.at_keyword("OR") || self.at_keyword("AND") {
            let and = self.at_keyword("AND");
            if all_of.is_some_and(|a| a != and) {
                return Err(self
                    .error("the same operator between a step's events")
                    .with_help("a step is `A OR B OR ...` or `A AND B AND ...`, not both"));
            }
            all_of = Some(and);
            self.bump();
            let ty = self.ident("an event type after OR/AND")?;
            let mut plus = false;
            atoms.push(self.atom_after(ty, &mut plus)?);
            if plus {
                return Err(self.error("no `+` inside OR/AND: a Kleene step has one event type"));
            }
        }
        let end = self.toks[self.pos.saturating_sub(1)].span;
        Ok(StepSyntax {
            negated: false,
            kleene,
            all_of: all_of.unwrap_or(false),
            atoms,
            span: start.to(end),
        })
    }

    /// `[+] [where expr] [as alias]` after an atom's type; `+` sets `kleene`.
    pub(super) fn atom_after(&mut self, ty: Ident, kleene: &mut bool) -> PResult<AtomSyntax> {
        if self.eat(&Tok::Plus) {
            *kleene = true;
        }
        let filter = if self.at_keyword("where") {
            self.bump();
            Some(self.expr()?)
        } else {
            None
        };
        let alias = if self.at_keyword("as") {
            self.bump();
            Some(self.ident("an alias after `as`")?)
        } else {
            None
        };
        Ok(AtomSyntax { ty, filter, alias })
    }
}
