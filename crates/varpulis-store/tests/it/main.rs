//! Integration tests for `varpulis-store`: the conformance suite on both built-in stores, and
//! file-store behaviour that only a real directory shows.

mod file_store;

mod memory {
    varpulis_store::conformance_tests!(varpulis_store::testing::MemoryHarness::new());
}

mod file {
    varpulis_store::conformance_tests!(varpulis_store::testing::FileHarness::new(), 32);
}

/// The fault-injection wrappers, with no fault planned, are ordinary stores and must pass the
/// same suite (so a fault test measures the fault, not a wrapper bug).
mod fault_wrappers {
    use varpulis_store::faults::{CrashStore, FailingStore};
    use varpulis_store::testing::{FileHarness, Harness};

    /// Wraps another harness's store in a fault-injection wrapper with no fault planned.
    pub(crate) struct Wrapped<H, F>(pub(crate) H, pub(crate) F);

    #[async_trait::async_trait]
    impl<H, S, F> Harness for Wrapped<H, F>
    where
        H: Harness,
        S: varpulis_store::StateStore + 'static,
        F: Fn(H::Store) -> S + Send + Sync + 'static,
    {
        type Store = S;
        async fn open(&self) -> S {
            (self.1)(self.0.open().await)
        }
        fn sandbox(&self) -> Option<&std::path::Path> {
            self.0.sandbox()
        }
    }

    mod failing_store_over_file {
        varpulis_store::conformance_tests!(
            super::Wrapped(super::FileHarness::new(), super::FailingStore::new),
            16
        );
    }

    mod crash_store_over_file {
        varpulis_store::conformance_tests!(
            super::Wrapped(super::FileHarness::new(), super::CrashStore::new),
            16
        );
    }
}
