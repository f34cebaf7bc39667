//! Windows and aggregates: the sizes of a `.window(...)` (with the warning for sliding windows
//! that overlap too much) and each `alias: f(arg)` of an `.aggregate(...)`.

use varpulis_core::format_duration_ms;

use super::Checker;
use super::types::{Names, Ty};
use crate::diagnostic::{Diagnostic, Span};
use crate::expr::{Expr, ExprKind};
use crate::parser::Ident;
use crate::plan::{AggFunc, AggregatePlan, Type, WindowKind};

/// A sliding window that puts each event in more windows than this draws a warning.
const MAX_SLIDING_OVERLAP: i64 = 10_000;

impl Checker<'_> {
    /// Reports window sizes, slides, gaps and counts that are not positive and a slide longer
    /// than the window; warns of a sliding window that overlaps too much.
    pub(super) fn window(&mut self, w: WindowKind, size_span: Span, slide_span: Span) {
        let positive = |c: &mut Self, v: i64, span: Span, what: &str| {
            if v <= 0 {
                let found = c.found(span);
                let d = c.err(span, format!("{what} must be positive, found {found:?}"));
                d.expected = Some(format!("a positive {what}"));
                d.found = Some(found);
                false
            } else {
                true
            }
        };
        match w {
            WindowKind::Tumbling { size_ms } => {
                positive(self, size_ms, size_span, "window size");
            }
            WindowKind::Sliding { size_ms, slide_ms } => {
                let a = positive(self, size_ms, size_span, "window size");
                let b = positive(self, slide_ms, slide_span, "slide");
                if a && b && slide_ms > size_ms {
                    let found = self.found(slide_span);
                    let size = format_duration_ms(size_ms);
                    let d = self.err(
                        slide_span,
                        format!("slide {found} is longer than the window size {size}"),
                    );
                    d.expected = Some(format!("a slide of at most {size}"));
                    d.found = Some(found);
                    d.help = Some("events between windows would be skipped".into());
                } else if a && b && div_ceil(size_ms, slide_ms) > MAX_SLIDING_OVERLAP {
                    self.sliding_overlap_warning(size_ms, slide_ms, slide_span);
                }
            }
            WindowKind::Session { gap_ms } => {
                positive(self, gap_ms, size_span, "session gap");
            }
            WindowKind::Count { size } => {
                positive(self, i64::from(size != 0), size_span, "event count");
            }
        }
    }

    /// Each event of `.window(size, sliding: slide)` belongs to `ceil(size / slide)` windows:
    /// that many accumulator updates per event, and open windows per partition.
    fn sliding_overlap_warning(&mut self, size_ms: i64, slide_ms: i64, slide_span: Span) {
        let overlap = div_ceil(size_ms, slide_ms);
        let (size, slide) = (format_duration_ms(size_ms), format_duration_ms(slide_ms));
        let min_slide = format_duration_ms(div_ceil(size_ms, MAX_SLIDING_OVERLAP));
        let mut d = Diagnostic::new(
            self.src,
            slide_span,
            format!(
                "sliding window of {size} every {slide} puts each event in {overlap} windows: \
                 every event updates them all and each partition keeps them all open"
            ),
        );
        d.expected = Some(format!(
            "at most {MAX_SLIDING_OVERLAP} windows per event (a slide of at least {min_slide})"
        ));
        d.found = Some(self.found(slide_span));
        d.help = Some(format!(
            "use a slide of at least {min_slide}, or a tumbling window .window({size})"
        ));
        self.warnings.push(d);
    }

    /// One `alias: f(arg)` of `.aggregate(...)`, checked against the input: its plan and result
    /// type, or `None` when it is not an aggregate function called with the right arguments.
    pub(super) fn aggregate(
        &mut self,
        alias: &Ident,
        e: &Expr,
        names: &Names<'_>,
    ) -> Option<(AggregatePlan, Ty)> {
        let ExprKind::Call {
            func,
            func_span,
            args,
        } = &e.kind
        else {
            let found = self.found(e.span);
            let d = self.err(
                e.span,
                format!("expected an aggregate function call like avg(value), found {found:?}"),
            );
            d.expected = Some("an aggregate function call like avg(value)".into());
            d.found = Some(found);
            d.help = Some("compute with aggregates in .emit(...) instead".into());
            return None;
        };
        let Some(f) = AggFunc::from_name(func) else {
            self.unknown_function(func, *func_span);
            return None;
        };
        let mut args = args.clone();
        let arity_ok = match f {
            AggFunc::Count => args.len() <= 1,
            _ => args.len() == 1,
        };
        if !arity_ok {
            let expected = if f == AggFunc::Count {
                "count() or count(expr)".to_owned()
            } else {
                format!("exactly one argument: {f}(expr)")
            };
            let d = self.err(
                e.span,
                format!("{f} takes {expected}, found {} arguments", args.len()),
            );
            d.expected = Some(expected);
            d.found = Some(args.len().to_string());
            return None;
        }
        let arg_ty = match args.first_mut() {
            Some(a) => {
                // Nested calls are reported as nested, then typed as unknown.
                let mut nested = Vec::new();
                a.walk(&mut |x| {
                    if let ExprKind::Call {
                        func, func_span, ..
                    } = &x.kind
                    {
                        nested.push((func.clone(), *func_span));
                    }
                });
                if !nested.is_empty() {
                    for (func, span) in nested {
                        self.bad_call(&func, span, true);
                    }
                    return None;
                }
                self.infer(a, names)
            }
            None => Ty::Any,
        };
        if f.needs_number() && !matches!(arg_ty, Ty::Any | Ty::Null) && !arg_ty.is_number() {
            let arg = &args[0];
            let found = self.found(arg.span);
            let d = self.err(
                arg.span,
                format!(
                    "{f} needs an int or float input, found {} {found:?}",
                    arg_ty.describe()
                ),
            );
            d.expected = Some("an int or float input".into());
            d.found = Some(arg_ty.describe().to_owned());
        }
        let out = match f {
            AggFunc::Count | AggFunc::CountDistinct => Ty::Known(Type::Int),
            AggFunc::Avg | AggFunc::StdDev => Ty::Known(Type::Float),
            AggFunc::Sum => match arg_ty {
                Ty::Known(Type::Int) => Ty::Known(Type::Int),
                Ty::Known(_) => Ty::Known(Type::Float),
                other => other,
            },
            _ => arg_ty,
        };
        Some((
            AggregatePlan {
                alias: alias.text.clone(),
                func: f,
                arg: args.into_iter().next(),
                span: alias.span,
            },
            out,
        ))
    }
}

/// `ceil(a / b)` for positive `a` and `b`.
fn div_ceil(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}
