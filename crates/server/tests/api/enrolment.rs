//! Enrolment with one-time tokens and signed policy bundles.

use elevate_proto::bundle::parse_public_key;
use elevate_proto::SignedBundle;
use jiff::SignedDuration;
use serde_json::json;

use super::for_each_backend;

#[tokio::test]
async fn a_device_enrols_once_and_verifies_its_policy_bundle() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server
            .apply_policy(&admin, elevate_testkit::TEST_POLICY)
            .await
            .expect(201);
        let t = server
            .post(
                Some(&admin),
                "/v1/enrol-tokens",
                &json!({ "tags": ["laptop"], "ttl_secs": 600 }),
            )
            .await
            .expect(201);
        let token = t.body["token"].as_str().unwrap().to_string();

        let enrolled = server
            .post(
                None,
                "/v1/enrol",
                &json!({ "token": token, "name": "laptop-7" }),
            )
            .await
            .expect(201);
        assert_eq!(enrolled.body["tags"], json!(["laptop"]));
        let credential = enrolled.body["credential"].as_str().unwrap().to_string();
        assert!(credential.starts_with("edv_"));
        assert_eq!(enrolled.body["device_secret"].as_str().unwrap().len(), 64);

        // The same token again: refused, and no second device appears.
        let again = server
            .post(
                None,
                "/v1/enrol",
                &json!({ "token": token, "name": "laptop-8" }),
            )
            .await
            .expect(410);
        assert!(
            again.body["message"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{}",
            again.text
        );
        // A wrong token.
        server
            .post(
                None,
                "/v1/enrol",
                &json!({ "token": "eet_nonsense", "name": "laptop-9" }),
            )
            .await
            .expect(401);
        let devices = server.get(Some(&admin), "/v1/devices").await.expect(200);
        assert_eq!(devices.body.as_array().unwrap().len(), 1);

        // The bundle verifies with the key received at enrolment.
        let key = parse_public_key(enrolled.body["policy_key"].as_str().unwrap()).unwrap();
        let bundle: SignedBundle = server
            .get(Some(&credential), "/v1/policy-bundle")
            .await
            .expect(200)
            .json();
        let payload = bundle.verify(&key).expect("bundle verifies");
        assert_eq!(payload.version, 1);
        assert_eq!(payload.policy, elevate_testkit::TEST_POLICY);

        // A forged bundle (payload changed, or signed by another key) is refused.
        let mut forged = bundle.clone();
        forged.payload = forged.payload.replace("auto", "deny");
        assert!(forged.verify(&key).is_err());
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let resigned = SignedBundle::sign(&payload, &other);
        assert!(resigned.verify(&key).is_err());
        server
    })
    .await;
}

#[tokio::test]
async fn an_expired_enrolment_token_is_refused() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        let t = server
            .post(Some(&admin), "/v1/enrol-tokens", &json!({ "ttl_secs": 60 }))
            .await
            .expect(201);
        server.clock.advance(SignedDuration::from_secs(61));
        let answer = server
            .post(
                None,
                "/v1/enrol",
                &json!({ "token": t.body["token"], "name": "late" }),
            )
            .await
            .expect(410);
        assert!(answer.body["message"].as_str().unwrap().contains("expired"));
        // Only admins create tokens.
        let (device, _) = server.enrol(&admin, "d1", &[]).await;
        server
            .post(Some(&device), "/v1/enrol-tokens", &json!({}))
            .await
            .expect(403);
        server
    })
    .await;
}
