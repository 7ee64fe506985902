//! What the crate's unit tests share.

use proptest::test_runner::{Config as ProptestConfig, RngSeed};

/// `cases` cases from a fixed seed, without persisted failures; PROPTEST_CASES and
/// PROPTEST_RNG_SEED in the environment win over both.
pub(crate) fn proptest_config(cases: u32) -> ProptestConfig {
    let env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            RngSeed::Fixed(0x646f_636b)
        },
        failure_persistence: None,
        ..env
    }
}
