//! The portal over plain HTTP, as a browser without JavaScript uses it: sign in, queue, detail,
//! approve through the form with its CSRF token; untrusted text is escaped.

use elevate_server::app::Role;
use elevate_testkit::{command_request, csrf_of, TestServer, PASSWORD};
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
    let r = elevate_testkit::portal_login(http, &server.url, account, PASSWORD, "/portal/").await;
    assert_eq!(r.status(), 303, "sign-in should redirect");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("elevate_session="))
        .unwrap();
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
        let r =
            elevate_testkit::portal_login(&http, &server.url, "carol", "wrong", "/portal/").await;
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
        let verified = server.audit_records(&_admin).await.len();
        // A record written after the page verified the chain, then edited: the next view
        // verifies what came after and sees it.
        server.enrol(&_admin, "web-02", &[]).await;
        server
            .sql(&format!(
                "UPDATE audit SET actor = actor || 'x' WHERE seq = {}",
                verified + 1
            ))
            .await;
        let (_, html) = page(&server, &http, &cookie, "/portal/audit").await;
        assert!(html.contains("Chain BROKEN"), "{html}");
        server
            .sql(&format!(
                "UPDATE audit SET actor = substr(actor, 1, length(actor) - 1) WHERE seq = {}",
                verified + 1
            ))
            .await;
        // Put right, the whole chain is verified again (a break sends the page back to whole
        // verification), and views after that verify only what is new.
        let (_, html) = page(&server, &http, &cookie, "/portal/audit").await;
        assert!(html.contains("Chain intact"), "{html}");
        let (_, html) = page(&server, &http, &cookie, "/portal/audit").await;
        assert!(html.contains("verified now, the whole chain at"), "{html}");
        // An old record edited in place is seen at the next whole verification, at most ten
        // minutes later (elevatectl audit verify sees it at once).
        server
            .sql("UPDATE audit SET actor = 'system' WHERE seq = 2")
            .await;
        server
            .get(Some(&_admin), "/v1/audit/verify")
            .await
            .expect(200)
            .body["ok"]
            .as_bool()
            .filter(|ok| !ok)
            .expect("the API verifies every record");
        server.clock.advance(jiff::SignedDuration::from_mins(11));
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

/// The helpdesk answers an offline challenge in the portal: it sees the device and the user
/// first, and the code it reads back is the one the device will accept.
#[tokio::test]
async fn the_helpdesk_answers_a_challenge_in_the_portal() {
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &[], "/usr/bin/id", &[]),
            )
            .await
            .expect(201);
        let secret = hex::decode(enrolled["device_secret"].as_str().unwrap()).unwrap();
        let id = elevate_core::offline::command_digest("/usr/bin/id", &"ab".repeat(32), &[]);
        let challenge = elevate_core::offline::Challenge {
            device: elevate_core::offline::device_key(enrolled["device_id"].as_str().unwrap()),
            uid: 1005,
            nonce: 77,
            command: elevate_core::offline::command_bits(&id),
        };
        let http = browser();
        let cookie = sign_in(&server, &http, "admin").await;
        let typed = challenge.encode().to_lowercase().replace('-', " ");
        let (status, html) = page(
            &server,
            &http,
            &cookie,
            &format!("/portal/offline?challenge={}", typed.replace(' ', "+")),
        )
        .await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("web-01") && html.contains("alice") && html.contains("uid 1005"),
            "{html}"
        );
        let csrf = csrf_of(&html);
        let r = http
            .post(format!("{}/portal/offline", server.url))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("challenge", &challenge.encode()),
                ("scope", "request"),
                ("command", "/usr/bin/id"),
                ("duration", "1h"),
                ("reason", "site visit, network down"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        let at = html.find("class=\"code\"><code>").expect("a code is shown") + 19;
        let code = html[at..].split('<').next().unwrap();
        let response = elevate_core::offline::Response::parse(code).unwrap();
        assert_eq!(response.minutes, 60);
        assert!(
            challenge.verify(&secret, &response, Some(&id)),
            "the device accepts it for /usr/bin/id"
        );
        assert!(
            html.contains("the pending request") && html.contains("It covers <code>/usr/bin/id"),
            "{html}"
        );
        // Without a reason, or with a stale form, nothing is issued.
        let r = http
            .post(format!("{}/portal/offline", server.url))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", "stale"),
                ("challenge", challenge.encode().as_str()),
                ("scope", "request"),
                ("duration", "30m"),
                ("reason", "x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let audit = server
            .get(Some(&admin), "/v1/audit?limit=1000")
            .await
            .expect(200);
        let issued = audit
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "offline.code_issued")
            .count();
        assert_eq!(issued, 1);
        server
    })
    .await;
}

/// What devices report of standing rights that need a person is listed per device, in the API
/// (`elevatectl devices rights`) and on the portal's Devices page, escaped, latest report of
/// each right once.
#[tokio::test]
async fn devices_list_the_standing_rights_that_need_a_person() {
    let server = elevate_testkit::spawn(elevate_testkit::Db::Sqlite).await;
    let (admin, device) = ready(&server).await;
    let alert = |id: u32, at: &str, user: &str, described: &str| {
        json!({ "id": format!("0193a000-0000-7000-8000-{id:012}"), "at": at,
            "actor": "agent@web-01", "action": "rights.unmanageable", "subject": "device:web-01",
            "data": { "alert": true, "user": user, "described": described,
                "error": "remove or split it by hand" } })
    };
    let line = "\"gus ALL=(ALL) ALL\" in /etc/sudoers.d/continued line 1 (cannot be revoked automatically)";
    let events = json!({ "events": [
        alert(1, "2026-11-23T09:00:00Z", "gus", line),
        alert(2, "2026-11-23T09:30:00Z", "gus", line),
        alert(3, "2026-11-23T09:40:00Z", "<script>x</script>", "\u{1b}[31m polkit"),
    ]});
    server
        .post(Some(&device), "/v1/audit/events", &events)
        .await
        .expect(200);
    let listed = server
        .get(Some(&admin), "/v1/devices/web-01/rights")
        .await
        .expect(200);
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["user"], "gus");
    assert_eq!(listed[1]["at"], "2026-11-23T09:30:00Z");
    assert_eq!(listed[1]["message"], "remove or split it by hand");
    server
        .get(Some(&admin), "/v1/devices/nowhere/rights")
        .await
        .expect(404);
    server
        .get(Some(&device), "/v1/devices/web-01/rights")
        .await
        .expect(403);
    let http = browser();
    let cookie = sign_in(&server, &http, "admin").await;
    let (status, html) = page(&server, &http, &cookie, "/portal/devices").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("/etc/sudoers.d/continued line 1"), "{html}");
    assert!(
        html.contains("&#60;script&#62;x&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains('\u{1b}'), "{html}");
    // A revoked device says so on the page.
    assert!(!html.contains("its credential is refused"), "{html}");
    server
        .post(
            Some(&admin),
            "/v1/devices/web-01/revoke",
            &json!({ "reason": "decommissioned" }),
        )
        .await
        .expect(200);
    let (_, html) = page(&server, &http, &cookie, "/portal/devices").await;
    assert!(
        html.contains("by admin: its credential is refused"),
        "{html}"
    );
    server.stop().await;
}

/// The sign-in form is tied to the browser it was shown to: a post without its token, or with
/// another browser's, signs nobody in (no other site can sign a browser in to an account of its
/// choosing). Over https every portal cookie is `Secure`.
#[tokio::test]
async fn the_sign_in_form_is_tied_to_its_browser_and_cookies_are_secure_over_https() {
    let server = elevate_testkit::spawn(elevate_testkit::Db::Sqlite).await;
    server.admin().await;
    let sessions = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter(|c| c.to_str().unwrap().starts_with("elevate_session="))
            .count()
    };
    let http = browser();
    let bare = http
        .post(format!("{}/portal/login", server.url))
        .form(&[
            ("account", "admin"),
            ("password", PASSWORD),
            ("next", "/portal/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!((bare.status().as_u16(), sessions(&bare)), (403, 0));
    assert!(bare.text().await.unwrap().contains("reload the page"));

    // The token of a form shown to another browser, with this browser's own cookie.
    let theirs = browser()
        .get(format!("{}/portal/login", server.url))
        .send()
        .await
        .unwrap();
    let their_token = csrf_of(&theirs.text().await.unwrap());
    let mine = http
        .get(format!("{}/portal/login", server.url))
        .send()
        .await
        .unwrap();
    let my_cookie = mine.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!my_cookie.contains("Secure"), "{my_cookie}");
    let crossed = http
        .post(format!("{}/portal/login", server.url))
        .header("cookie", my_cookie.split(';').next().unwrap())
        .form(&[
            ("account", "admin"),
            ("password", PASSWORD),
            ("next", "/portal/"),
            ("csrf", their_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!((crossed.status().as_u16(), sessions(&crossed)), (403, 0));
    let fine =
        elevate_testkit::portal_login(&http, &server.url, "admin", PASSWORD, "/portal/").await;
    assert_eq!((fine.status().as_u16(), sessions(&fine)), (303, 1));
    server.stop().await;

    // Served over https (its public URL): Secure on every cookie.
    let server = elevate_testkit::spawn_with(
        elevate_testkit::Db::Sqlite,
        elevate_testkit::monday_morning(),
        |s| s.public_url = Some("https://elevate.example".into()),
    )
    .await;
    server.admin().await;
    let form = http
        .get(format!("{}/portal/login", server.url))
        .send()
        .await
        .unwrap();
    assert!(form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    let signed =
        elevate_testkit::portal_login(&http, &server.url, "admin", PASSWORD, "/portal/").await;
    assert_eq!(signed.status(), 303);
    for cookie in signed.headers().get_all("set-cookie") {
        assert!(cookie.to_str().unwrap().contains("; Secure"), "{cookie:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn discovery_pages_show_imported_text_as_text() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        let hostile = "/tmp/<img src=x onerror=alert(1)>";
        server
            .post(
                Some(&admin),
                "/v1/imports",
                &json!({ "source": "syslog", "events": [
                    { "id": "syslog:h1", "at": "2026-10-05T10:00:00Z", "host": "<b>box</b>",
                      "user": "<script>u</script>", "runas": "root", "program": hostile,
                      "command_line": format!("{hostile} \u{1b}]0;pwned\u{7}"), "outcome": "ran",
                      "via": "sudo", "tty": "pts/0" } ] }),
            )
            .await
            .expect(200);
        let http = browser();
        let cookie = sign_in(&server, &http, "admin").await;
        for report in ["applications", "users", "risky", "segments"] {
            let (status, html) = page(
                &server,
                &http,
                &cookie,
                &format!("/portal/discovery?report={report}&since=2026-10-01&until=2026-10-31"),
            )
            .await;
            assert_eq!(status, 200, "{html}");
            assert!(!html.contains("<img src=x") && !html.contains("<script>u"), "{report}: {html}");
            assert!(
                html.contains("&#60;img src=x onerror=alert(1)&#62;")
                    || html.contains("&#60;script&#62;u"),
                "{report}: the text is there, escaped"
            );
        }
        let (_, html) = page(
            &server,
            &http,
            &cookie,
            "/portal/discovery/people/%3Cscript%3Eu%3C%2Fscript%3E?since=2026-10-01&until=2026-10-31",
        )
        .await;
        assert!(html.contains("&#60;script&#62;u"), "{html}");
        assert!(!html.contains('\u{1b}') && !html.contains("<img src=x"), "{html}");
        server
    })
    .await;
}
