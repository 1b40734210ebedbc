//! The people directory: separation of duties decided on people (an account and a login with
//! different names that are one person's), imports that are all or nothing, people who leave,
//! and the logins a device reports at check-in.

use elevate_core::offline::{device_key, Challenge};
use elevate_server::app::Role;
use elevate_testkit::command_request;
use serde_json::json;

use super::for_each_backend;

async fn pending(server: &elevate_testkit::TestServer, device: &str, user: &str) -> String {
    let asked = server
        .post(
            Some(device),
            "/v1/requests",
            &command_request(
                user,
                &["finance"],
                "/usr/bin/systemctl",
                &["restart", "cups"],
            ),
        )
        .await
        .expect(201);
    assert_eq!(asked.body["state"], "pending", "{}", asked.text);
    asked.body["id"].as_str().unwrap().to_owned()
}

fn message(a: &elevate_testkit::Answer) -> String {
    a.body["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_person_never_decides_a_request_made_under_any_of_their_logins() {
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        server
            .account("asmith", &[Role::Approver], &["helpdesk"])
            .await;
        server
            .account("carol", &[Role::Approver], &["helpdesk"])
            .await;
        let asmith = server.token("asmith").await;
        let carol = server.token("carol").await;

        // Alice has the account asmith, and logs in as alice everywhere and as ops2 on web-01.
        let alice = json!({ "user_name": "alice", "display_name": "Alice Smith",
            "department": "Finance", "accounts": ["asmith"],
            "logins": [{ "login": "alice" }, { "login": "ops2", "scope": "device:web-01" }] });
        let put = server
            .put(Some(&admin), "/v1/people/alice", &alice)
            .await
            .expect(200);
        assert_eq!(put.body["accounts"], json!(["asmith"]), "{}", put.text);

        // The name-mismatched self-approval: account asmith, login alice, one person.
        let id = pending(&server, &device, "alice").await;
        let own = server
            .post(
                Some(&asmith),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        assert!(message(&own).contains("a login of alice"), "{}", own.text);
        // Denying is deciding too.
        server
            .post(
                Some(&asmith),
                &format!("/v1/requests/{id}/deny"),
                &json!({}),
            )
            .await
            .expect(403);
        // Someone else may.
        let approved = server
            .post(
                Some(&carol),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(approved.body["state"], "approved");

        // Her login on one device only.
        let id = pending(&server, &device, "ops2").await;
        server
            .post(
                Some(&asmith),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        // The same login name on another device is someone the directory does not know.
        let (other, _) = server.enrol(&admin, "web-02", &["server"]).await;
        let id = pending(&server, &other, "ops2").await;
        server
            .post(
                Some(&asmith),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);

        // The portal's request page says whose login it is and why she may not decide.
        let id = pending(&server, &device, "alice").await;
        let http = elevate_testkit::portal_client();
        let cookie = elevate_testkit::portal_cookie(&http, &server.url, "asmith").await;
        let page = elevate_testkit::portal_page(
            &http,
            &server.url,
            &cookie,
            &format!("/portal/requests/{id}"),
        )
        .await;
        assert!(page.contains("alice (alice)"), "{page}");
        assert!(page.contains("You cannot decide this request"), "{page}");
        server
    })
    .await;
}

#[tokio::test]
async fn a_rule_can_refuse_requesters_the_directory_does_not_know() {
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        let policy = elevate_testkit::TEST_POLICY.replace(
            "approvers = \"helpdesk\"\n",
            "approvers = \"helpdesk\"\nunknown_requester = \"refuse\"\n",
        );
        server.apply_policy(&admin, &policy).await.expect(201);
        server
            .account("carol", &[Role::Approver], &["helpdesk"])
            .await;
        let carol = server.token("carol").await;

        let id = pending(&server, &device, "zed").await;
        let shown = server
            .get(Some(&carol), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(
            shown.body["decision"]["unknown_requester"], "refuse",
            "{}",
            shown.text
        );
        let refused = server
            .post(
                Some(&carol),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        assert!(
            message(&refused).contains("does not say whose login"),
            "{}",
            refused.text
        );

        // Once the directory knows zed, carol (someone else) may approve.
        server
            .put(
                Some(&admin),
                "/v1/people/zed",
                &json!({ "user_name": "zed", "logins": [{ "login": "zed" }] }),
            )
            .await
            .expect(200);
        server
            .post(
                Some(&carol),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);

        // The default compares names, as before.
        server
            .apply_policy(&admin, elevate_testkit::TEST_POLICY)
            .await
            .expect(201);
        let id = pending(&server, &device, "yan").await;
        let shown = server
            .get(Some(&carol), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(shown.body["decision"]["unknown_requester"], "compare-names");
        server
            .post(
                Some(&carol),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        // And a bad word is an error with the line.
        let bad = elevate_testkit::TEST_POLICY.replace(
            "approvers = \"helpdesk\"\n",
            "approvers = \"helpdesk\"\nunknown_requester = \"guess\"\n",
        );
        let refused = server.apply_policy(&admin, &bad).await.expect(422);
        assert!(refused.text.contains("compare-names"), "{}", refused.text);
        server
    })
    .await;
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_a_dry_run_changes_nothing() {
    for_each_backend(|server| async move {
        let (admin, _device) = super::ready(&server).await;
        server
            .account("asmith", &[Role::Approver], &["helpdesk"])
            .await;
        let asmith = server.token("asmith").await;
        let people = json!([
            { "user_name": "alice", "accounts": ["asmith"], "logins": [{ "login": "alice" }],
              "department": "Finance", "groups": ["staff"] },
            { "user_name": "bob", "logins": [{ "login": "bob" }], "manager": "alice" },
        ]);

        let dry = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": people, "dry_run": true }),
            )
            .await
            .expect(200);
        assert_eq!(
            (dry.body["created"].clone(), dry.body["dry_run"].clone()),
            (json!(2), json!(true))
        );
        let listed = server.get(Some(&admin), "/v1/people").await.expect(200);
        assert_eq!(listed.body, json!([]), "a dry run wrote: {}", listed.text);

        let done = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": people }),
            )
            .await
            .expect(200);
        assert_eq!(done.body["created"], 2, "{}", done.text);
        let again = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": people }),
            )
            .await
            .expect(200);
        assert_eq!(
            (
                again.body["unchanged"].clone(),
                again.body["updated"].clone()
            ),
            (json!(2), json!(0))
        );

        // One account for two people: refused, naming both, and nothing of the file is kept.
        let clash = json!([
            { "user_name": "bob", "logins": [{ "login": "bob" }], "department": "IT" },
            { "user_name": "carol", "accounts": ["asmith"] },
        ]);
        let refused = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": clash }),
            )
            .await
            .expect(409);
        assert!(
            message(&refused).contains("alice") && message(&refused).contains("carol"),
            "{}",
            refused.text
        );
        let bob = server.get(Some(&admin), "/v1/people/bob").await.expect(200);
        assert_eq!(
            bob.body["department"],
            json!(null),
            "half an import was applied"
        );
        server
            .get(Some(&admin), "/v1/people/carol")
            .await
            .expect(404);

        // Bad input is named: a control character, a bad scope, a person twice.
        for (people, says) in [
            (json!([{ "user_name": "e\u{7}ve" }]), "control characters"),
            (
                json!([{ "user_name": "eve", "logins": [{ "login": "eve", "scope": "host:x" }] }]),
                "device:<name>",
            ),
            (
                json!([{ "user_name": "eve" }, { "user_name": "eve" }]),
                "named twice",
            ),
        ] {
            let bad = server
                .post(
                    Some(&admin),
                    "/v1/directory/import",
                    &json!({ "people": people }),
                )
                .await
                .expect(400);
            assert!(message(&bad).contains(says), "{}", bad.text);
        }
        // Only admins write the directory.
        server
            .post(
                Some(&asmith),
                "/v1/directory/import",
                &json!({ "people": [] }),
            )
            .await
            .expect(403);

        // Alice leaves: her account stops working at once.
        let left = json!([
            { "user_name": "alice", "accounts": ["asmith"], "logins": [{ "login": "alice" }],
              "department": "Finance", "groups": ["staff"], "active": false },
            { "user_name": "bob", "logins": [{ "login": "bob" }], "manager": "alice" },
        ]);
        let out = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": left }),
            )
            .await
            .expect(200);
        assert_eq!(
            out.body["changes"][0]["fields"],
            json!(["active"]),
            "{}",
            out.text
        );
        server.get(Some(&asmith), "/v1/whoami").await.expect(401);

        // remove_missing removes those the file does not name.
        let only_bob =
            json!([{ "user_name": "bob", "logins": [{ "login": "bob" }], "manager": "alice" }]);
        let out = server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": only_bob, "remove_missing": true }),
            )
            .await
            .expect(200);
        assert_eq!(out.body["removed"], 1, "{}", out.text);
        server
            .get(Some(&admin), "/v1/people/alice")
            .await
            .expect(404);
        let audit = server.audit_records(&admin).await;
        for action in [
            "person.created",
            "person.updated",
            "person.removed",
            "account.disabled",
        ] {
            assert!(
                audit.iter().any(|r| r["action"] == action),
                "no {action} in the audit log"
            );
        }
        server
    })
    .await;
}

#[tokio::test]
async fn the_helpdesk_sees_the_login_behind_a_uid_and_never_answers_its_own_challenge() {
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        let device_id = enrolled["device_id"].as_str().unwrap();
        server.account("asmith", &[Role::Approver], &["helpdesk"]).await;
        let asmith = server.token("asmith").await;

        // The device checks in with its human logins; nobody from it ever asked before.
        let reported = server
            .put(Some(&device), "/v1/device-users",
                 &json!({ "users": [{ "uid": 1000, "login": "alice" }, { "uid": 1001, "login": "bob" }] }))
            .await
            .expect(200);
        assert_eq!(reported.body["recorded"], 2);
        // Only devices report, only human uids, only plain names.
        server
            .put(Some(&admin), "/v1/device-users", &json!({ "users": [] }))
            .await
            .expect(403);
        for users in [json!([{ "uid": 0, "login": "root" }]), json!([{ "uid": 1002, "login": "x\ny" }])] {
            server
                .put(Some(&device), "/v1/device-users", &json!({ "users": users }))
                .await
                .expect(400);
        }

        let challenge = Challenge { device: device_key(device_id), uid: 1000, nonce: 77, command: 0 }.encode();
        let seen = server
            .post(Some(&asmith), "/v1/offline/challenges", &json!({ "challenge": challenge }))
            .await
            .expect(200);
        assert_eq!(seen.body["user"], "alice", "{}", seen.text);

        // asmith is alice: she may not answer the challenge of her own login.
        server
            .put(Some(&admin), "/v1/people/alice",
                 &json!({ "user_name": "alice", "accounts": ["asmith"], "logins": [{ "login": "alice" }] }))
            .await
            .expect(200);
        let own = server
            .post(Some(&asmith), "/v1/offline/responses",
                  &json!({ "challenge": challenge, "scope": "session", "minutes": 30, "reason": "my laptop" }))
            .await
            .expect(403);
        assert!(message(&own).contains("a login of alice"), "{}", own.text);
        // Someone else may.
        server
            .post(Some(&admin), "/v1/offline/responses",
                  &json!({ "challenge": challenge, "scope": "session", "minutes": 30, "reason": "her laptop" }))
            .await
            .expect(201);
        server
    })
    .await;
}

#[tokio::test]
async fn two_approvals_must_come_from_two_people_not_two_accounts() {
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        for name in ["dana", "dana-admin", "erin"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        server
            .put(
                Some(&admin),
                "/v1/people/dana",
                &json!({ "user_name": "dana", "accounts": ["dana", "dana-admin"] }),
            )
            .await
            .expect(200);
        let asked = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("bob", &[], "/usr/sbin/fdisk", &["-l"]),
            )
            .await
            .expect(201);
        assert_eq!(asked.body["decision"]["needed"], 2, "{}", asked.text);
        let id = asked.body["id"].as_str().unwrap();
        let first = server.token("dana").await;
        let second = server.token("dana-admin").await;
        let once = server
            .post(
                Some(&first),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(once.body["state"], "pending");
        let twice = server
            .post(
                Some(&second),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(409);
        assert!(
            message(&twice).contains("one person's accounts"),
            "{}",
            twice.text
        );
        let erin = server.token("erin").await;
        let done = server
            .post(
                Some(&erin),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(done.body["state"], "approved");
        server
    })
    .await;
}
