//! Integration tests for `varpulis-engine`: one binary, a module per behaviour.

mod contexts;
mod fuzz_regressions;
mod runner;
