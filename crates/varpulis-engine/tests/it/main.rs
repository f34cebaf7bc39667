//! Integration tests for `varpulis-engine`: one binary, a module per behaviour.

mod fuzz_regressions;
mod runner;
