//! Third-party test material in `../shared/testdata`, and JSON Schema checks against it.
//!
//! Must never: skip silently in CI when a file is missing.

use super::*;

/// A file of third-party test material in `../shared/testdata` (beside the project in CI), or
/// `None` with a note when it is not there. In CI (`CI` set) a missing file fails the test.
pub fn testdata(relative: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{} is missing in CI",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} not found (the shared folder sits beside the project in CI)",
        path.display()
    );
    None
}

/// Checks `instance` against the JSON Schema in the testdata file `schema` (any draft from 4
/// to 2020-12); returns the validator's complaint. `None` when the file is not here.
pub fn schema_errors(schema: &str, instance: &Value) -> Option<Result<(), String>> {
    let path = testdata(schema)?;
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let index = compiler
        .compile(path.to_str().expect("a UTF-8 path"), &mut schemas)
        .unwrap_or_else(|e| panic!("the schema {schema} compiles: {e:#}"));
    Some(
        schemas
            .validate(instance, index)
            .map_err(|e| format!("{e:#}")),
    )
}
