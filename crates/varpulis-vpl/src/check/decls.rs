//! Declarations: event types and their fields, variables (`var`/`let`) and assignments
//! (`:=`), with the values they take at load time.

use std::collections::BTreeMap;

use varpulis_core::Value;

use super::types::{Names, Ty};
use super::{Checker, VarInfo};
use crate::expr::{Expr, Scope};
use crate::parser::Stmt;
use crate::plan::{Assignment, EventDecl, FieldDecl, Type, VarDecl};

impl Checker<'_> {
    // ---- events ----

    /// The declared event types; a second declaration of a type or of a field is reported and
    /// dropped.
    pub(super) fn events(&mut self, stmts: &[Stmt]) -> Vec<EventDecl> {
        let mut out: Vec<EventDecl> = Vec::new();
        for s in stmts {
            let Stmt::Event { name, fields } = s else {
                continue;
            };
            if let Some(first) = out.iter().find(|e| e.name == name.text) {
                let at = self.at(first.span);
                self.err(
                    name.span,
                    format!("event type {:?} is declared twice", name.text),
                )
                .help = Some(format!("first declared at {at}"));
                continue;
            }
            let mut decl = EventDecl {
                name: name.text.clone(),
                fields: Vec::new(),
                span: name.span,
            };
            for (f, ty) in fields {
                if let Some(first) = decl.field(&f.text) {
                    let at = self.at(first.span);
                    self.err(
                        f.span,
                        format!(
                            "field {:?} of event {} is declared twice",
                            f.text, name.text
                        ),
                    )
                    .help = Some(format!("first declared at {at}"));
                    continue;
                }
                decl.fields.push(FieldDecl {
                    name: f.text.clone(),
                    ty: *ty,
                    span: f.span,
                });
            }
            out.push(decl);
        }
        out
    }

    // ---- variables ----

    /// Variable declarations and assignments in source order, each value computed from the
    /// ones before it.
    pub(super) fn variables(&mut self, stmts: &[Stmt]) -> (Vec<VarDecl>, Vec<Assignment>) {
        let mut decls = Vec::new();
        let mut assigns = Vec::new();
        let mut values: BTreeMap<String, Value> = BTreeMap::new();
        for s in stmts {
            match s {
                Stmt::Var {
                    mutable,
                    name,
                    ty,
                    init,
                } => {
                    if let Some(first) = self.vars.get(&name.text) {
                        let at = self.at(first.span);
                        self.err(
                            name.span,
                            format!("variable {:?} is declared twice", name.text),
                        )
                        .help = Some(format!("first declared at {at}; assign with `:=`"));
                        continue;
                    }
                    let mut init = init.clone();
                    let got = self.infer(&mut init, &Names::Const);
                    let ty = match (ty, got) {
                        (Some((t, _)), got) => {
                            if !self.check_assignable(*t, got, &init, &name.text) {
                                continue;
                            }
                            *t
                        }
                        (None, Ty::Known(t)) => t,
                        (None, _) => {
                            self.err(
                                init.span,
                                format!(
                                    "cannot infer the type of {:?} from {}",
                                    name.text,
                                    self.found(init.span)
                                ),
                            )
                            .help = Some(format!(
                                "write the type: {} {}: float = ...",
                                if *mutable { "var" } else { "let" },
                                name.text
                            ));
                            continue;
                        }
                    };
                    let value = self.constant(&init, ty, &values, &name.text);
                    values.insert(name.text.clone(), value.clone());
                    self.vars.insert(
                        name.text.clone(),
                        VarInfo {
                            ty,
                            mutable: *mutable,
                            span: name.span,
                        },
                    );
                    decls.push(VarDecl {
                        name: name.text.clone(),
                        ty,
                        mutable: *mutable,
                        init,
                        value,
                        span: name.span,
                    });
                }
                Stmt::Assign { name, expr } => {
                    let mut expr = expr.clone();
                    let got = self.infer(&mut expr, &Names::Const);
                    let Some(info) = self.vars.get(&name.text).cloned() else {
                        let msg = format!("assignment to undeclared variable {:?}", name.text);
                        let help = match self.all_vars.get(&name.text) {
                            Some(at) => format!(
                                "{} is declared later, at {}; declare it before assigning",
                                name.text,
                                self.at(*at)
                            ),
                            None => format!("declare it first: var {}: float = ...", name.text),
                        };
                        let d = self.err(name.span, msg);
                        d.expected = Some("a variable declared with var".into());
                        d.found = Some(name.text.clone());
                        d.help = Some(help);
                        continue;
                    };
                    if !info.mutable {
                        let at = self.at(info.span);
                        self.err(
                            name.span,
                            format!(
                                "cannot assign to {:?}: it is declared with let (immutable)",
                                name.text
                            ),
                        )
                        .help = Some(format!("declare it with var at {at} to make it assignable"));
                        continue;
                    }
                    if !self.check_assignable(info.ty, got, &expr, &name.text) {
                        continue;
                    }
                    let value = self.constant(&expr, info.ty, &values, &name.text);
                    values.insert(name.text.clone(), value.clone());
                    assigns.push(Assignment {
                        name: name.text.clone(),
                        expr,
                        value,
                        span: name.span,
                    });
                }
                _ => {}
            }
        }
        (decls, assigns)
    }

    fn check_assignable(&mut self, ty: Type, got: Ty, expr: &Expr, name: &str) -> bool {
        let ok = match got {
            Ty::Null | Ty::Any => true,
            Ty::Known(u) => {
                u == ty
                    || (u == Type::Int
                        && matches!(ty, Type::Float | Type::Timestamp | Type::Duration))
            }
        };
        if !ok {
            let d = self.err(
                expr.span,
                format!(
                    "type mismatch: {name:?} is {ty} but the value is {}",
                    got.describe()
                ),
            );
            d.expected = Some(format!("a {ty} value"));
            d.found = Some(got.describe().to_owned());
        }
        ok
    }

    fn constant(
        &mut self,
        expr: &Expr,
        ty: Type,
        values: &BTreeMap<String, Value>,
        name: &str,
    ) -> Value {
        let v = expr.eval(&Scope::empty().with_variables(values));
        match ty.coerce(v) {
            Ok(v) => v,
            Err(v) => {
                let shown = v.to_string();
                self.err(
                    expr.span,
                    format!("value {shown} does not fit {name:?} of type {ty}"),
                );
                Value::Null
            }
        }
    }
}
