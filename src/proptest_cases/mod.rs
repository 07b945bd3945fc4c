//! The case budget of the property tests (the `props` modules next to each parser of
//! untrusted input). A plain `cargo test` runs a short default per property, so CI stays
//! quick; a long run sets proptest's own `PROPTEST_CASES` (scripts/fuzz-parsers.sh), which
//! then applies to every property alike. The hostile JSON texts that several body readers
//! are given are in `model::hostile_json`.

use proptest::test_runner::Config;

/// proptest's configuration with `default_cases` cases, unless `PROPTEST_CASES` is set.
/// (`Config::with_cases` alone would override the variable: proptest reads it only into
/// its default configuration.)
pub fn budget(default_cases: u32) -> Config {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(default_cases)
    }
}

/// Cases per property in a plain test run.
pub const QUICK: u32 = 256;
