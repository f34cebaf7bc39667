//! Integration tests for `varpulis-vpl`: one binary, a module per behaviour.

mod compiled;
mod contexts;
mod diagnostics;
mod eval;
mod evt;
mod fuzz_regressions;
mod limits;
mod patterns;
mod plans;
mod robustness;

use varpulis_vpl::{Diagnostic, Program, parse_program};

/// Parses a program that must be valid, printing rendered diagnostics otherwise.
fn plan(src: &str) -> Program {
    parse_program(src).unwrap_or_else(|e| panic!("{}", e.render(src, "test.vpl")))
}

/// Every diagnostic of an invalid program as `(line, column, message)`.
fn errors(src: &str) -> Vec<(u32, u32, String)> {
    match parse_program(src) {
        Ok(p) => panic!("expected errors, got a program: {p:#?}"),
        Err(e) => e
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect(),
    }
}

/// The single diagnostic of an invalid program.
fn error(src: &str) -> Diagnostic {
    let e = parse_program(src).expect_err("expected an error");
    assert_eq!(e.len(), 1, "expected one diagnostic, got:\n{e}");
    e.first().clone()
}
