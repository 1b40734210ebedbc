//! SCIM 2.0 provisioning: the PyPI compliance tester `scim2-tester` against `/scim/v2` on both
//! backends, and what Elevate itself promises: a provider sees and changes only its own people,
//! a User is a person (userName their account, device logins from Elevate's extension), and a
//! person deactivated or deleted loses their accounts at once.
//!
//! The tester runs from a Python virtual environment: `ELEVATE_SCIM_PYTHON`, else
//! `/var/cache/elevate-ci/scim-venv/bin/python` (what `.ci/run` installs). Without it the
//! compliance test skips, saying how to install it, except under `ELEVATE_REQUIRE_SCIM=1` (CI).

use std::process::Command;

use elevate_server::app::Role;
use serde_json::json;

use super::for_each_backend;

fn python() -> Option<String> {
    let python = std::env::var("ELEVATE_SCIM_PYTHON")
        .unwrap_or_else(|_| "/var/cache/elevate-ci/scim-venv/bin/python".into());
    let ok = Command::new(&python)
        .args(["-c", "import scim2_tester, httpx2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let how = "python3 -m venv /var/cache/elevate-ci/scim-venv && /var/cache/elevate-ci/scim-venv/bin/pip install scim2-tester 'scim2-client[httpx2]'";
    assert!(
        std::env::var("ELEVATE_REQUIRE_SCIM").as_deref() != Ok("1"),
        "ELEVATE_REQUIRE_SCIM=1 but {python} cannot import scim2_tester; {how}"
    );
    eprintln!("SKIPPED the SCIM compliance test: {python} cannot import scim2_tester ({how})");
    None
}

async fn scim_token(server: &elevate_testkit::TestServer, admin: &str, provider: &str) -> String {
    let made = server
        .post(
            Some(admin),
            "/v1/scim-tokens",
            &json!({ "provider": provider }),
        )
        .await
        .expect(201);
    made.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_scim_endpoint_passes_the_scim2_tester_compliance_checks() {
    let Some(python) = python() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/check.py");
    for_each_backend(|server| {
        let python = python.clone();
        async move {
            let admin = server.admin().await;
            let token = scim_token(&server, &admin, "okta").await;
            let url = format!("{}/scim/v2", server.url);
            let out = tokio::task::spawn_blocking(move || {
                Command::new(python)
                    .args([script, &url, &token])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            eprintln!("{}", stdout.lines().last().unwrap_or_default());
            assert!(
                out.status.success(),
                "scim2-tester found problems:\n{stdout}\n{stderr}"
            );
            assert!(stdout.contains(" 0 failed"), "{stdout}");
            server
        }
    })
    .await;
}

#[tokio::test]
async fn a_provider_manages_only_its_own_people_and_those_it_removes_lose_their_accounts() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server.account("alice", &[Role::Approver], &["helpdesk"]).await;
        let alice = server.token("alice").await;
        let okta = scim_token(&server, &admin, "okta").await;
        let entra = scim_token(&server, &admin, "entra").await;
        let scim = |token: &str, method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
            let http = reqwest::Client::new();
            let mut rb = http
                .request(method, format!("{}/scim/v2{path}", server.url))
                .bearer_auth(token)
                .header("content-type", "application/scim+json");
            if let Some(b) = body {
                rb = rb.body(b.to_string());
            }
            async move {
                let r = rb.send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                (status, serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default())
            }
        };
        use reqwest::Method;
        // Okta provisions Alice with her device logins.
        let (status, created) = scim(&okta, Method::POST, "/Users", Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice", "displayName": "Alice Smith", "externalId": "00u1",
            "emails": [{ "value": "alice@example.test", "primary": true }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Finance" },
            "urn:elevate:params:scim:schemas:extension:2.0:User": { "logins": ["asmith", "ops2@device:web-01"] } }))).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let person = server.get(Some(&admin), "/v1/people/alice").await.expect(200);
        // alice is a local account of this server (a password of its own): a provider never
        // takes it over, so the person is not linked to it.
        assert_eq!(person.body["accounts"], json!([]), "{}", person.text);
        assert_eq!(person.body["source"], "scim:okta");
        assert_eq!(person.body["department"], "Finance");
        assert_eq!(person.body["logins"][1], json!({ "login": "ops2", "scope": "device:web-01" }));
        // A filter as Okta sends it before it creates someone.
        let (_, found) = scim(&okta, Method::GET, "/Users?filter=userName%20eq%20%22ALICE%22", None).await;
        assert_eq!(found["totalResults"], 1, "{found}");

        // Entra sees none of it and cannot touch it; a CSV import cannot take her over.
        let (_, listed) = scim(&entra, Method::GET, "/Users", None).await;
        assert_eq!(listed["totalResults"], 0, "{listed}");
        let (status, _) = scim(&entra, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, 404);
        let (status, taken) = scim(&entra, Method::POST, "/Users", Some(json!({ "userName": "alice" }))).await;
        assert_eq!((status, taken["scimType"].clone()), (409, json!("uniqueness")), "{taken}");
        let csv = server
            .post(Some(&admin), "/v1/directory/import", &json!({ "people": [{ "user_name": "alice" }] }))
            .await
            .expect(409);
        assert!(csv.text.contains("identity provider okta"), "{}", csv.text);
        // No token, another token, a wrong one: nothing.
        let (status, _) = scim("scim_nope", Method::GET, "/Users", None).await;
        assert_eq!(status, 401);
        let (status, _) = scim(&alice, Method::GET, "/Users", None).await;
        assert_eq!(status, 401, "an API token is not a SCIM token");

        // Deactivated with a PATCH (as Entra ID does): the local account is not the
        // provider's to disable.
        let (status, patched) = scim(&okta, Method::PATCH, &format!("/Users/{id}"), Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "value": { "active": false } }] }))).await;
        assert_eq!((status, patched["active"].clone()), (200, json!(false)), "{patched}");
        server.get(Some(&alice), "/v1/whoami").await.expect(200);
        // bob signs in with single sign-on: his person is linked to his account, and his
        // deactivation stops it at once.
        server
            .sql("INSERT INTO accounts (name, password_hash, roles, groups_json, created_ms) VALUES ('bob', '!sso', 'approver', '[\"helpdesk\"]', 0)")
            .await;
        let (status, bob) = scim(&okta, Method::POST, "/Users", Some(json!({ "userName": "bob" }))).await;
        assert_eq!(status, 201, "{bob}");
        let linked = server.get(Some(&admin), "/v1/people/bob").await.expect(200);
        assert_eq!(linked.body["accounts"], json!(["bob"]), "{}", linked.text);
        let bob_id = bob["id"].as_str().unwrap();
        let (status, _) = scim(&okta, Method::PATCH, &format!("/Users/{bob_id}"), Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": false }] }))).await;
        assert_eq!(status, 200);
        let account = server.app.store().account("bob").await.unwrap().unwrap();
        assert!(account.disabled_at.is_some(), "bob's account still works");
        // Deleted: gone from the directory; the audit log keeps who and why.
        let (status, _) = scim(&okta, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, 204);
        server.get(Some(&admin), "/v1/people/alice").await.expect(404);
        let audit = server.audit_records(&admin).await;
        assert!(audit.iter().any(|r| r["action"] == "person.removed" && r["actor"] == "scim:okta"));
        assert!(audit.iter().any(|r| r["action"] == "account.disabled"));

        // Bad input is a SCIM error that says what is wrong.
        for (body, scim_type) in [
            (json!({ "displayName": "no user name" }), "invalidValue"),
            (json!({ "userName": "x\u{7}" }), "invalidValue"),
            (json!({ "userName": "bob", "active": "maybe" }), "invalidValue"),
        ] {
            let (status, e) = scim(&okta, Method::POST, "/Users", Some(body)).await;
            assert_eq!((status, e["scimType"].clone()), (400, json!(scim_type)), "{e}");
        }
        let (status, e) = scim(&okta, Method::GET, "/Users?filter=userName%20zz%20%22a%22", None).await;
        assert_eq!((status, e["scimType"].clone()), (400, json!("invalidFilter")), "{e}");
        server
    })
    .await;
}
