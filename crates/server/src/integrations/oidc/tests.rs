//! The ID token's checks, each on a token that fails only that one: signed by a test key made
//! for these tests (ES256), claims written here.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;

/// A P-256 key made for these tests (openssl ecparam -name prime256v1), and its public JWK.
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggSB10EF+xECR47tD
Tbc407Ml0BEVA1Rqb3J26nL8FmShRANCAASi0dtM/p5uA0md3hYKMcnPjrRt/Rh0
q7BlMo4o7RqO3WuZuTjE95gg/3OpplxpABpRpkuvx/r/DXb8ROlyUxBs
-----END PRIVATE KEY-----";

fn jwks() -> jsonwebtoken::jwk::JwkSet {
    serde_json::from_value(json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1",
        "alg": "ES256", "use": "sig",
        "x": "otHbTP6ebgNJnd4WCjHJz460bf0YdKuwZTKOKO0ajt0",
        "y": "a5m5OMT3mCD_c6mmXGkAGlGmS6_H-v8NdvxE6XJTEGw" }] }))
    .unwrap()
}

fn config() -> OidcConfig {
    OidcConfig {
        issuer: "https://idp.example.test".into(),
        client_id: "elevate".into(),
        client_secret: "s".into(),
        display_name: "Test".into(),
        username_claim: "preferred_username".into(),
        groups_claim: "groups".into(),
        roles: BTreeMap::new(),
        approver_groups: BTreeMap::new(),
    }
}

const NOW: i64 = 1_800_000_000;

fn claims() -> serde_json::Value {
    json!({ "iss": "https://idp.example.test", "aud": "elevate", "sub": "00u1",
        "exp": NOW + 300, "iat": NOW - 10, "auth_time": NOW - 20, "nonce": "n-1",
        "preferred_username": "asmith", "groups": ["it-helpdesk"], "email": "a@example.test" })
}

fn sign(claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn check(token: &str, max_age: Option<u64>) -> Result<Identity, OidcError> {
    check_id_token(
        token,
        &jwks(),
        &config(),
        "n-1",
        max_age,
        jiff::Timestamp::from_second(NOW).unwrap(),
    )
}

#[test]
fn a_good_id_token_names_the_person_their_groups_and_when_they_signed_in() {
    let id = check(&sign(&claims()), Some(300)).unwrap();
    assert_eq!(id.username, "asmith");
    assert_eq!(id.groups, ["it-helpdesk"]);
    assert_eq!(id.authenticated_at.as_second(), NOW - 20);
}

#[test]
fn a_token_for_another_client_issuer_or_sign_in_is_refused() {
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims();
        c[k] = v;
        sign(&c)
    };
    for (token, says) in [
        (with("aud", json!("someone-else")), "another client"),
        (with("aud", json!(["elevate", "other"])), ""),
        (with("azp", json!("other")), "issued to another client"),
        (
            with("iss", json!("https://evil.example.test")),
            "another issuer",
        ),
        (with("nonce", json!("n-2")), "nonce differs"),
        (with("exp", json!(NOW - 120)), "expired"),
        (with("iat", json!(NOW + 600)), "future"),
        (with("auth_time", json!(NOW - 3600)), "sign in again"),
    ] {
        match check(&token, Some(300)) {
            Ok(_) if says.is_empty() => {}
            Ok(id) => panic!("accepted ({says}): {id:?}"),
            Err(e) => assert!(!says.is_empty() && e.0.contains(says), "{says}: {e}"),
        }
    }
    // No nonce at all, no auth_time when a fresh sign-in was asked for.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("nonce");
    assert!(check(&sign(&c), None).is_err());
    let mut c = claims();
    c.as_object_mut().unwrap().remove("auth_time");
    assert!(check(&sign(&c), Some(300))
        .unwrap_err()
        .0
        .contains("auth_time"));
    assert!(check(&sign(&c), None).is_ok());
}

#[test]
fn only_the_providers_keys_and_asymmetric_algorithms_sign() {
    // Signed with the client secret (HS256): the secret is not a signing key here.
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"s"),
    )
    .unwrap();
    assert!(check(&hs, None).unwrap_err().0.contains("HS256"));
    // A key id the provider does not publish.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k2".into());
    let other = encode(
        &header,
        &claims(),
        &EncodingKey::from_ec_pem(KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(check(&other, None)
        .unwrap_err()
        .0
        .contains("does not publish"));
    // A token whose claims were changed after signing.
    let good = sign(&claims());
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["preferred_username"] = json!("admin");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string());
    assert!(check(&parts.join("."), None)
        .unwrap_err()
        .0
        .contains("signature"));
    // "none".
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(check(&none, None).is_err());
}

#[test]
fn the_authorization_url_carries_pkce_state_nonce_and_max_age() {
    let d = Discovery {
        issuer: "https://idp.example.test".into(),
        authorization_endpoint: "https://idp.example.test/auth".into(),
        token_endpoint: "https://idp.example.test/token".into(),
        jwks_uri: "https://idp.example.test/jwks".into(),
    };
    let url = authorization_url(
        &d,
        &config(),
        "https://e.test/portal/oidc/callback",
        "st",
        "no",
        "ver",
        Some(0),
    );
    for part in [
        "response_type=code",
        "client_id=elevate",
        "state=st",
        "nonce=no",
        "code_challenge_method=S256",
        "max_age=0",
        "prompt=login",
        "scope=openid+profile+email+groups",
    ] {
        assert!(url.contains(part), "{part}: {url}");
    }
    // RFC 7636 appendix B.
    assert_eq!(
        challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}
