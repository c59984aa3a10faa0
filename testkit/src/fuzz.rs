//! What the property tests ("fuzzing" in `cargo test`) share: their configuration, and the
//! pieces their inputs are built from (the grammar's own tokens, mixed with arbitrary text).

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

/// A property test's configuration: [`crate::knobs::fuzz_cases`] cases (bounded), and no
/// failure files written into the source tree.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: crate::knobs::fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One input piece: one of `fixed` (together `weight` times as likely as each pattern), or a
/// string matching one of `patterns` (regular expressions; a bad one panics).
pub fn piece(
    fixed: &'static [&'static str],
    weight: u32,
    patterns: &[&str],
) -> BoxedStrategy<String> {
    let mut options = vec![(
        weight,
        prop::sample::select(fixed).prop_map(str::to_owned).boxed(),
    )];
    for pattern in patterns {
        let text = proptest::string::string_regex(pattern).expect("a valid pattern");
        options.push((1, text.boxed()));
    }
    Union::new_weighted(options).boxed()
}
