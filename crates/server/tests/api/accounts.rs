//! Accounts' credentials over their life: API tokens listed without their secret and revoked
//! one by one, a new password ending what the old one opened, and accounts disabled, enabled
//! again and removed.

use elevate_server::app::Role;
use elevate_testkit::{portal_client, portal_cookie, PASSWORD};
use serde_json::json;

use super::for_each_backend;

/// Whether the portal still lets the holder of `cookie` in.
async fn portal_lets_in(server: &elevate_testkit::TestServer, cookie: &str) -> bool {
    let r = portal_client()
        .get(format!("{}/portal/", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    r.status() == 200
}

async fn login(server: &elevate_testkit::TestServer, name: &str, label: &str) -> String {
    server
        .post(
            None,
            "/v1/tokens",
            &json!({ "account": name, "password": PASSWORD, "label": label }),
        )
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn api_tokens_are_listed_without_their_secret_and_revoked_one_by_one() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server
            .account("ann", &[Role::Approver], &["helpdesk"])
            .await;
        server
            .account("bob", &[Role::Approver], &["helpdesk"])
            .await;
        let laptop = login(&server, "ann", "elevatectl on laptop").await;
        let phone = login(&server, "ann", "script").await;
        let bob = login(&server, "bob", "bob's").await;

        let listed = server.get(Some(&laptop), "/v1/tokens").await.expect(200);
        let tokens = listed.body.as_array().unwrap().clone();
        assert_eq!(tokens.len(), 2, "{}", listed.text);
        assert!(tokens.iter().all(|t| t["account"] == "ann"));
        assert!(!listed.text.contains(&laptop) && !listed.text.contains(&phone));
        let id_of = |label: &str| {
            tokens.iter().find(|t| t["label"] == label).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (laptop_id, phone_id) = (id_of("elevatectl on laptop"), id_of("script"));
        assert_eq!(laptop_id.len(), 16);

        // Another person's tokens are not theirs to see or revoke; admins see everyone's.
        server
            .get(Some(&laptop), "/v1/tokens?account=bob")
            .await
            .expect(403);
        server
            .get(Some(&laptop), "/v1/tokens?all=true")
            .await
            .expect(403);
        server
            .post(
                Some(&bob),
                &format!("/v1/tokens/{laptop_id}/revoke"),
                &json!({}),
            )
            .await
            .expect(404);
        let everyone = server
            .get(Some(&admin), "/v1/tokens?all=true")
            .await
            .expect(200);
        assert_eq!(
            everyone.body.as_array().unwrap().len(),
            4,
            "{}",
            everyone.text
        );
        server
            .post(Some(&laptop), "/v1/tokens/not-an-id/revoke", &json!({}))
            .await
            .expect(400);

        // Revoked by its owner: refused at once; the other token still works.
        server
            .post(
                Some(&phone),
                &format!("/v1/tokens/{laptop_id}/revoke"),
                &json!({}),
            )
            .await
            .expect(204);
        server.get(Some(&laptop), "/v1/whoami").await.expect(401);
        server.get(Some(&phone), "/v1/whoami").await.expect(200);
        // By an admin.
        server
            .post(
                Some(&admin),
                &format!("/v1/tokens/{phone_id}/revoke"),
                &json!({}),
            )
            .await
            .expect(204);
        server.get(Some(&phone), "/v1/whoami").await.expect(401);
        server.get(Some(&bob), "/v1/whoami").await.expect(200);

        let revoked: Vec<_> = server
            .audit_records(&admin)
            .await
            .into_iter()
            .filter(|r| r["action"] == "token.revoked")
            .map(|r| (r["actor"].clone(), r["subject"].clone()))
            .collect();
        assert_eq!(
            revoked,
            vec![
                (json!("account:ann"), json!("account:ann")),
                (json!("account:admin"), json!("account:ann")),
            ]
        );
        server
    })
    .await;
}

#[tokio::test]
async fn a_new_password_ends_what_the_old_one_opened() {
    for_each_backend(|server| async move {
        server.admin().await;
        server
            .account("ann", &[Role::Approver], &["helpdesk"])
            .await;
        let token = login(&server, "ann", "laptop").await;
        let cookie = portal_cookie(&portal_client(), &server.url, "ann").await;
        assert!(portal_lets_in(&server, &cookie).await);

        // The same password with other roles: nothing ends.
        server
            .app
            .upsert_account("ann", PASSWORD, &[Role::Approver, Role::Auditor], &[])
            .await
            .unwrap();
        server.get(Some(&token), "/v1/whoami").await.expect(200);
        assert!(portal_lets_in(&server, &cookie).await);

        // A new password: the old one's token and sign-in end; the new one works.
        let fresh = "a-new-password-4567";
        server
            .app
            .upsert_account("ann", fresh, &[Role::Approver], &[])
            .await
            .unwrap();
        server.get(Some(&token), "/v1/whoami").await.expect(401);
        assert!(!portal_lets_in(&server, &cookie).await);
        server
            .post(
                None,
                "/v1/tokens",
                &json!({ "account": "ann", "password": fresh }),
            )
            .await
            .expect(201);
        server
    })
    .await;
}

#[tokio::test]
async fn a_disabled_account_holds_nothing_until_enabled_and_a_removed_one_is_gone() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server
            .account("ann", &[Role::Approver], &["helpdesk"])
            .await;
        let token = login(&server, "ann", "laptop").await;
        let cookie = portal_cookie(&portal_client(), &server.url, "ann").await;

        // Only admins, and never their own account.
        server
            .post(Some(&token), "/v1/accounts/admin/disable", &json!({}))
            .await
            .expect(403);
        let own = server
            .post(Some(&admin), "/v1/accounts/admin/disable", &json!({}))
            .await
            .expect(400);
        assert!(own.text.contains("another admin"), "{}", own.text);
        server
            .post(Some(&admin), "/v1/accounts/nobody/disable", &json!({}))
            .await
            .expect(404);

        server
            .post(Some(&admin), "/v1/accounts/ann/disable", &json!({}))
            .await
            .expect(204);
        server.get(Some(&token), "/v1/whoami").await.expect(401);
        assert!(!portal_lets_in(&server, &cookie).await);
        let refused = server
            .post(
                None,
                "/v1/tokens",
                &json!({ "account": "ann", "password": PASSWORD }),
            )
            .await
            .expect(401);
        assert!(refused.text.contains("disabled"), "{}", refused.text);
        let wrong = server
            .post(
                None,
                "/v1/tokens",
                &json!({ "account": "ann", "password": "not-her-password" }),
            )
            .await
            .expect(401);
        assert!(!wrong.text.contains("disabled"), "{}", wrong.text);

        // Enabled again, she signs in anew; what she held before stays ended.
        server
            .post(Some(&admin), "/v1/accounts/ann/enable", &json!({}))
            .await
            .expect(204);
        server.get(Some(&token), "/v1/whoami").await.expect(401);
        let again = login(&server, "ann", "laptop").await;
        server.get(Some(&again), "/v1/whoami").await.expect(200);

        // Removed: gone, like an unknown name.
        server
            .post(Some(&admin), "/v1/accounts/ann/remove", &json!({}))
            .await
            .expect(204);
        server.get(Some(&again), "/v1/whoami").await.expect(401);
        let gone = server
            .post(
                None,
                "/v1/tokens",
                &json!({ "account": "ann", "password": PASSWORD }),
            )
            .await
            .expect(401);
        assert!(
            gone.text.contains("wrong account name or password"),
            "{}",
            gone.text
        );
        server
            .post(Some(&admin), "/v1/accounts/ann/remove", &json!({}))
            .await
            .expect(404);

        let actions: Vec<_> = server
            .audit_records(&admin)
            .await
            .into_iter()
            .filter(|r| r["subject"] == "account:ann" && r["actor"] == "account:admin")
            .map(|r| r["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            actions,
            ["account.disabled", "account.enabled", "account.removed"]
        );
        server
    })
    .await;
}
