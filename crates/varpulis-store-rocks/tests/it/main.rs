//! Integration tests for `varpulis-store-rocks`: the `varpulis-store` conformance suite, plus the
//! behaviours that only a real RocksDB database shows.

#![allow(clippy::disallowed_methods)] // the harness times real processes

mod harness;
mod rocks;

use harness::RocksHarness;

mod conformance {
    use super::RocksHarness;
    varpulis_store::conformance_tests!(RocksHarness::new(), 32);
}
