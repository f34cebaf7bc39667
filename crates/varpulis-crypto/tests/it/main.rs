//! Integration tests for `varpulis-crypto`: the store conformance suite through the wrapper, and
//! the behaviours of encryption (tampering, wrong keys, passphrases, rotation, secrecy of keys).

mod common;
mod envelope;
mod keys;
mod open_checks;
mod reserved_records;
mod rotation;
mod tampering;

mod memory {
    varpulis_store::conformance_tests!(crate::common::EncryptedHarness::new(
        varpulis_store::testing::MemoryHarness::new()
    ));
}

mod file {
    varpulis_store::conformance_tests!(
        crate::common::EncryptedHarness::new(varpulis_store::testing::FileHarness::new()),
        32
    );
}
