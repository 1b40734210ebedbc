use super::*;
use elevate_core as core;

#[test]
fn unknown_fields_are_refused() {
    let body = r#"{"user":"a","uid":1,"target":{"kind":"session","duration_secs":60},"channel":"native","admin":true}"#;
    let err = serde_json::from_str::<NewRequest>(body).unwrap_err();
    assert!(err.to_string().contains("unknown field `admin`"), "{err}");
}

#[test]
fn targets_are_checked() {
    let relative = WireTarget::Command {
        path: "bin/ls".into(),
        invoked: None,
        sha256: None,
        package: None,
        args: vec![],
    };
    assert!(relative.to_core().is_err());
    let bad_hash = WireTarget::Command {
        path: "/bin/ls".into(),
        invoked: None,
        sha256: Some("abc".into()),
        package: None,
        args: vec![],
    };
    assert!(bad_hash.to_core().is_err());
    assert!(WireTarget::Session { duration_secs: 0 }.to_core().is_err());
    let ok = WireTarget::Command {
        path: "/bin/ls".into(),
        invoked: None,
        sha256: Some("AB".repeat(32)),
        package: Some(String::new()),
        args: vec![],
    };
    match ok.to_core().unwrap() {
        core::Target::Command(c) => {
            assert_eq!(c.sha256.unwrap(), "ab".repeat(32));
            assert_eq!(c.package, None);
        }
        other => panic!("{other:?}"),
    }
}
