//! The committed OpenAPI document (`docs/openapi.json`) matches the code.
//! Regenerate with `cargo run -p elevate-server -- openapi > docs/openapi.json`
//! (or run this test with `UPDATE_OPENAPI=1`).

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = elevate_server::http::openapi::document();
    if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; run `cargo run -p elevate-server -- openapi > docs/openapi.json`"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/v1/requests",
        "/v1/requests/{id}/approve",
        "/v1/enrol",
        "/v1/policy-bundle",
        "/v1/audit/verify",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
