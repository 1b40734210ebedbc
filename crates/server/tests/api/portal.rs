//! The portal over plain HTTP, as a browser without JavaScript uses it: sign in, queue, detail,
//! approve through the form with its CSRF token; untrusted text is escaped.

use elevate_server::app::Role;
use elevate_testkit::{command_request, TestServer, PASSWORD};
use serde_json::json;

use super::{for_each_backend, ready};

/// A cookie-keeping client that does not follow redirects (so the test sees them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(server: &TestServer, http: &reqwest::Client, account: &str) -> String {
    let r = http
        .post(format!("{}/portal/login", server.url))
        .form(&[
            ("account", account),
            ("password", PASSWORD),
            ("next", "/portal/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in should redirect");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

async fn page(
    server: &TestServer,
    http: &reqwest::Client,
    cookie: &str,
    path: &str,
) -> (u16, String) {
    let r = http
        .get(format!("{}{path}", server.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn csrf_of(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn an_approver_signs_in_and_approves_through_the_form() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        server
            .account("carol", &[Role::Approver], &["helpdesk"])
            .await;
        let mut body = command_request(
            "bob",
            &["finance"],
            "/usr/bin/printf",
            &["<script>alert(1)</script>", "\u{1b}]0;pwned\u{7}"],
        );
        body["reason"] = json!("<img src=x onerror=alert(2)>");
        let r = server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_string();
        let http = browser();

        // Signed out: the queue sends you to sign in, and back after.
        let r = http
            .get(format!("{}/portal/requests/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/portal/login?next=/portal/requests/"));
        // A wrong password.
        let r = http
            .post(format!("{}/portal/login", server.url))
            .form(&[("account", "carol"), ("password", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("wrong account name or password"));

        let cookie = sign_in(&server, &http, "carol").await;
        let (status, queue) = page(&server, &http, &cookie, "/portal/").await;
        assert_eq!(status, 200);
        assert!(queue.contains(&id), "the queue lists the request");
        assert!(!queue.contains("<script>alert(1)"), "argv must be escaped");

        let (status, detail) =
            page(&server, &http, &cookie, &format!("/portal/requests/{id}")).await;
        assert_eq!(status, 200);
        for fact in [
            "bob",
            "web-01",
            "/usr/bin/printf",
            &"ab".repeat(32),
            "the defaults",
            "never asked for before",
            "directory was not sent",
        ] {
            assert!(detail.contains(fact), "the detail page shows {fact}");
        }
        assert!(!detail.contains("<img"), "the reason is escaped: {detail}");
        assert!(
            detail.contains("&#60;img src=x onerror=alert(2)&#62;"),
            "the reason is shown: {detail}"
        );
        assert!(
            !detail.contains('\u{1b}'),
            "no raw escape character reaches the approver"
        );
        assert!(
            detail.contains("\\u{001b}"),
            "the escape character is shown visibly"
        );

        // Without the CSRF token (or with a wrong one): refused, nothing changes.
        let forged = http
            .post(format!("{}/portal/requests/{id}/decide", server.url))
            .header("cookie", &cookie)
            .form(&[("csrf", "forged"), ("verdict", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        let state = server
            .get(Some(&admin), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(state.body["state"], "pending");

        let approve = http
            .post(format!("{}/portal/requests/{id}/decide", server.url))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf_of(&detail).as_str()),
                ("verdict", "approve"),
                ("comment", "fine"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(approve.status(), 303);
        let state = server
            .get(Some(&admin), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(state.body["state"], "approved");
        assert_eq!(state.body["approvals"][0]["approver"], "carol");

        let (_, after) = page(&server, &http, &cookie, &format!("/portal/requests/{id}")).await;
        assert!(after.contains("carol approved"), "the decision is listed");
        let (status, audit) = page(&server, &http, &cookie, "/portal/audit").await;
        assert_eq!(status, 403, "carol is no auditor");
        assert!(audit.contains("auditor"));
        server
    })
    .await;
}

#[tokio::test]
async fn the_audit_page_shows_the_chain_status() {
    for_each_backend(|server| async move {
        let (_admin, _device) = ready(&server).await;
        let http = browser();
        let cookie = sign_in(&server, &http, "admin").await;
        let (status, html) = page(&server, &http, &cookie, "/portal/audit").await;
        assert_eq!(status, 200);
        assert!(html.contains("Chain intact"), "{html}");
        assert!(html.contains("policy.applied"));
        server
            .sql("UPDATE audit SET actor = 'system' WHERE seq = 2")
            .await;
        let (_, html) = page(&server, &http, &cookie, "/portal/audit").await;
        assert!(html.contains("Chain BROKEN"), "{html}");
        // Signing out ends the session.
        let csrf = csrf_of(&html);
        let out = http
            .post(format!("{}/portal/logout", server.url))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 303);
        let (status, _) = page(&server, &http, &cookie, "/portal/").await;
        assert_eq!(status, 303);
        server
    })
    .await;
}
