//! Property-based fuzzing on stable Rust (proptest): the settings every fuzz target of this
//! crate shares, and generators of input that looks enough like the real thing to get past the
//! first checks. `cargo test` runs a quick pass; `ELEVATE_FUZZ_CASES=100000 cargo test fuzz`
//! (or `any_`) runs a long one.
//!
//! Must never: be compiled outside tests.

use proptest::prelude::*;

/// Cases per target: 256, or `ELEVATE_FUZZ_CASES`.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("ELEVATE_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that is sometimes sudoers and sometimes not: entries built from sudoers' own words,
/// mixed with noise, continued lines and includes.
pub fn sudoers_text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("ALL".to_owned()),
        Just("NOPASSWD:".to_owned()),
        Just("(ALL:ALL)".to_owned()),
        Just("(root)".to_owned()),
        Just("!/usr/bin/passwd".to_owned()),
        Just("/bin/bash".to_owned()),
        Just("/usr/bin/vim".to_owned()),
        Just("NOTAFTER=20301231000000Z".to_owned()),
        Just("%ops".to_owned()),
        Just("%#27".to_owned()),
        Just("#1001".to_owned()),
        Just("+net".to_owned()),
        Just("ADMINS".to_owned()),
        Just("EVERYTHING".to_owned()),
        Just("=".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\\".to_owned()),
        Just("#".to_owned()),
        "[a-z]{1,6}",
        "[ -~]{0,12}",
    ];
    let line = prop_oneof![
        proptest::collection::vec(word, 0..10).prop_map(|w| w.join(" ")),
        "(User|Cmnd|Runas|Host)_Alias [A-Z]{1,3} = [A-Z, a-z%/]{0,30}",
        "(@|#)include(dir)? [ -~]{0,20}",
        "[^\n]{0,80}",
    ];
    proptest::collection::vec(line, 0..30).prop_map(|l| l.join("\n"))
}
