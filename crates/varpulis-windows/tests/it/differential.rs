//! Every emitted window, in order, equals the brute-force oracle's.

use proptest::prelude::*;

use crate::oracle::{case, check, run_operator};

const CASES: u32 = 1500;
const MAX_EVENTS: usize = 60;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tumbling_windows_match_the_oracle(c in case(0, MAX_EVENTS)) {
        let run = run_operator(&c);
        prop_assert!(check(&c, &run).is_ok(), "{}", check(&c, &run).unwrap_err());
    }

    #[test]
    fn sliding_windows_match_the_oracle(c in case(1, MAX_EVENTS)) {
        let run = run_operator(&c);
        prop_assert!(check(&c, &run).is_ok(), "{}", check(&c, &run).unwrap_err());
    }

    #[test]
    fn session_windows_match_the_oracle(c in case(2, MAX_EVENTS)) {
        let run = run_operator(&c);
        prop_assert!(check(&c, &run).is_ok(), "{}", check(&c, &run).unwrap_err());
    }

    #[test]
    fn count_windows_match_the_oracle(c in case(3, MAX_EVENTS)) {
        let run = run_operator(&c);
        prop_assert!(check(&c, &run).is_ok(), "{}", check(&c, &run).unwrap_err());
    }
}
