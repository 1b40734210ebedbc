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

/// A lost or stolen device is revoked: its credential is refused at once, its offline secret
/// answers no challenge, and enrolling it again under its name gives it a new id, credential
/// and secret. Only admins revoke, and only with a reason, which the audit log keeps.
#[tokio::test]
async fn a_revoked_device_is_refused_at_once_and_enrols_again_with_new_secrets() {
    use elevate_core::offline::{device_key, Challenge};
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        server
            .get(Some(&device), "/v1/policy-bundle")
            .await
            .expect(200);
        server
            .account("ann", &[elevate_server::app::Role::Approver], &["helpdesk"])
            .await;
        let approver = server.token("ann").await;
        let revoke = |reason: &str| json!({ "reason": reason });

        server
            .post(
                Some(&approver),
                "/v1/devices/web-01/revoke",
                &revoke("lost"),
            )
            .await
            .expect(403);
        let blank = server
            .post(Some(&admin), "/v1/devices/web-01/revoke", &revoke("  "))
            .await
            .expect(400);
        assert!(blank.text.contains("reason"), "{}", blank.text);
        server
            .post(Some(&admin), "/v1/devices/nowhere/revoke", &revoke("lost"))
            .await
            .expect(404);
        // Still works until the revocation is done.
        server
            .get(Some(&device), "/v1/policy-bundle")
            .await
            .expect(200);

        let revoked = server
            .post(
                Some(&admin),
                "/v1/devices/web-01/revoke",
                &revoke("stolen from a car"),
            )
            .await
            .expect(200);
        assert!(revoked.body["revoked_at"].is_string(), "{}", revoked.text);
        assert_eq!(revoked.body["revoked_by"], "admin");
        let refused = server
            .get(Some(&device), "/v1/policy-bundle")
            .await
            .expect(401);
        assert!(refused.text.contains("revoked"), "{}", refused.text);
        server
            .post(
                Some(&device),
                "/v1/requests",
                &elevate_testkit::command_request("alice", &[], "/usr/bin/id", &[]),
            )
            .await
            .expect(401);
        server
            .post(Some(&admin), "/v1/devices/web-01/revoke", &revoke("again"))
            .await
            .expect(409);
        let listed = server.get(Some(&admin), "/v1/devices").await.expect(200);
        assert!(listed.body[0]["revoked_at"].is_string(), "{}", listed.text);

        // Its offline secret answers nothing: the helpdesk finds no device for its challenges.
        let old_id = enrolled["device_id"].as_str().unwrap().to_owned();
        let challenge = Challenge {
            device: device_key(&old_id),
            uid: 1005,
            nonce: 7,
            command: 0,
        };
        server
            .post(
                Some(&admin),
                "/v1/offline/challenges",
                &json!({ "challenge": challenge.encode() }),
            )
            .await
            .expect(404);

        // Enrolled again under its name: new id, credential and secret; the old one stays out.
        let (again, fresh) = server.enrol(&admin, "web-01", &["server"]).await;
        assert_ne!(fresh["device_id"], enrolled["device_id"]);
        assert_ne!(fresh["device_secret"], enrolled["device_secret"]);
        server
            .get(Some(&again), "/v1/policy-bundle")
            .await
            .expect(200);
        server
            .get(Some(&device), "/v1/policy-bundle")
            .await
            .expect(401);
        let listed = server.get(Some(&admin), "/v1/devices").await.expect(200);
        assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.text);
        assert!(listed.body[0]["revoked_at"].is_null(), "{}", listed.text);

        let records = server.audit_records(&admin).await;
        let revocation = records
            .iter()
            .find(|r| r["action"] == "device.revoked")
            .expect("the revocation is audited");
        assert_eq!(revocation["actor"], "account:admin");
        assert_eq!(revocation["subject"], "device:web-01");
        let data: serde_json::Value =
            serde_json::from_str(revocation["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["reason"], "stolen from a car");
        assert_eq!(data["device_id"], old_id.as_str());
        server
    })
    .await;
}
