//! Integration tests for `varpulis-store`: the conformance suite on both built-in stores, and
//! file-store behaviour that only a real directory shows.

mod file_store;

mod memory {
    varpulis_store::conformance_tests!(varpulis_store::testing::MemoryHarness::new());
}

mod file {
    varpulis_store::conformance_tests!(varpulis_store::testing::FileHarness::new(), 32);
}
