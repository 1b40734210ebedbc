//! E-mail against a real SMTP server on loopback: approvers get the request with one-time links
//! that need a sign-in, work once and expire; requesters hear the outcome; untrusted text stays
//! text in both parts.

use elevate_server::app::{Role, Settings};
use elevate_testkit::{
    available, command_request, csrf_of, monday_morning, portal_client, portal_cookie, spawn_with,
    Mailed, SmtpSink, TestServer, BACKENDS, PASSWORD,
};
use jiff::SignedDuration;
use serde_json::{json, Value};

/// The Approve and Deny links of an approval mail's text part.
fn links(mail: &Mailed) -> (String, String) {
    let text = mail.parts("text/plain").remove(0);
    let find = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label).map(|u| u.trim().to_string()))
            .unwrap_or_else(|| panic!("no {label} line in {text}"))
    };
    (find("Approve:"), find("Deny:"))
}

fn path_of(url: &str, server: &TestServer) -> String {
    url.strip_prefix(&server.url)
        .unwrap_or_else(|| panic!("{url} is on this server"))
        .to_string()
}

#[tokio::test]
async fn approvers_get_one_time_links_by_mail_and_requesters_hear_the_outcome() {
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let sink = SmtpSink::start().await;
        let email = sink.email_config("Elevate <elevate@example.com>");
        let server = spawn_with(db, monday_morning(), move |s: &mut Settings| {
            s.integrations.email = Some(email);
        })
        .await;
        let (admin, device) = super::ready(&server).await;
        for name in ["st1", "st2", "st3"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        for name in ["st1", "st2"] {
            server
                .app
                .set_account_email(name, Some(&format!("{name}@example.com")))
                .await
                .unwrap();
        }
        assert!(server
            .app
            .set_account_email("st3", Some("not an address"))
            .await
            .is_err());

        let hostile = "<script>alert(1)</script> &amp; \u{1b}[31m\r\nBcc: victim@example.com";
        let mut body = command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l", hostile]);
        body["reason"] = json!(hostile);
        let id = server.ask_id(&device, &body).await;

        // One mail to each approver with an address (st3 has none), none to anyone else.
        let mails = sink.wait_for(2).await;
        let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
        to.sort();
        assert_eq!(to, ["st1@example.com", "st2@example.com"]);
        let for_st1 = mails.iter().find(|m| m.to == ["st1@example.com"]).unwrap();
        let for_st2 = mails.iter().find(|m| m.to == ["st2@example.com"]).unwrap();
        let subject = for_st1.header("subject").unwrap();
        assert!(subject.contains("Approve? alice on web-01"), "{subject}");
        assert!(for_st1.header("bcc").is_none(), "no header injection");
        assert_eq!(
            for_st1.header("from").unwrap(),
            "Elevate <elevate@example.com>"
        );
        let html = for_st1.parts("text/html").remove(0);
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains('\u{1b}'));
        let text = for_st1.parts("text/plain").remove(0);
        assert!(
            text.contains("\\u{001b}[31m\\u{000d}\\u{000a}Bcc: victim@example.com"),
            "{text}"
        );
        let (approve1, _deny1) = links(for_st1);
        let (approve2, deny2) = links(for_st2);
        assert!(approve1.starts_with(&format!("{}/portal/links/", server.url)));
        assert_ne!(approve1, approve2, "links are made for each approver");

        // Signed out: the link leads to sign-in, then back to the link, then the decision.
        let http = portal_client();
        let link1 = path_of(&approve1, &server);
        let r = http.get(&approve1).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let login = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            login.starts_with("/portal/login?next=/portal/links/"),
            "{login}"
        );
        let r = elevate_testkit::portal_login(&http, &server.url, "st1", PASSWORD, &link1).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"].to_str().unwrap(), link1);
        let cookie = elevate_testkit::session_cookie(&r);
        let page = http
            .get(&approve1)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert!(
            page.contains("one-time link to <strong>approve</strong>"),
            "{page}"
        );
        // Opening the link decided nothing.
        assert_eq!(
            server.request_json(&admin, &id).await["approvals"],
            json!([])
        );
        let r = http
            .post(&approve1)
            .header("cookie", &cookie)
            .form(&[("csrf", csrf_of(&page).as_str()), ("comment", "checked")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("/portal/requests/{id}")
        );
        let view = server.request_json(&admin, &id).await;
        assert_eq!(view["approvals"][0]["approver"], "st1");
        assert_eq!(view["approvals"][0]["comment"], "checked");
        assert_eq!(view["state"], "pending");

        // Used once: refused after, however it is tried.
        let again = http
            .get(&approve1)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 410);
        assert!(again.text().await.unwrap().contains("used already"));
        let r = http
            .post(&approve1)
            .header("cookie", &cookie)
            .form(&[("csrf", csrf_of(&page).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410);
        // Someone else's link, and a forged one.
        let r = http
            .get(&deny2)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("sent to st2"));
        let forged = format!("{}x", approve2);
        let r = http
            .get(&forged)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        // Expired after an hour.
        server.clock.advance(SignedDuration::from_mins(61));
        let cookie2 = portal_cookie(&http, &server.url, "st2").await;
        let r = http
            .get(&approve2)
            .header("cookie", &cookie2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410);
        assert!(r.text().await.unwrap().contains("expired"));

        // st2 approves in the API; the requester hears of it at <login>@requester_domain.
        let st2 = server.token("st2").await;
        server
            .post(
                Some(&st2),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        // (st1's approval through the link was already news to alice: "has an approval".)
        let mails = sink.wait_for(4).await;
        assert_eq!(mails[2].to, ["alice@example.com"]);
        assert!(mails[2]
            .header("subject")
            .unwrap()
            .contains("an approval for your request"));
        let outcome = &mails[3];
        assert_eq!(outcome.to, ["alice@example.com"]);
        assert!(outcome.header("subject").unwrap().contains("was approved"));
        let text = outcome.parts("text/plain").remove(0);
        assert!(
            text.contains("approved by st1 (approved: checked), st2 (approved)"),
            "{text}"
        );
        assert!(
            !text.contains("/portal/links/"),
            "no decision links for the requester"
        );

        // st2 turns out to be alice (the directory says so): her next request's approval mail
        // goes to st1 alone, never to the requester under another name.
        server
            .put(
                Some(&admin),
                "/v1/people/alice",
                &json!({ "user_name": "alice", "accounts": ["st2"], "logins": [{ "login": "alice" }] }),
            )
            .await
            .expect(200);
        // A request nobody answers expires, and the requester hears that too.
        let id2 = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l"]),
            )
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let asked = sink.wait_for(5).await;
        assert_eq!(asked[4].to, ["st1@example.com"]);
        server.clock.advance(SignedDuration::from_hours(25));
        // (The background job may get there first.)
        server.app.expire_requests().await.unwrap();
        // Both expire: the unanswered one, and the approved one that was never started.
        let mails = sink.wait_for(7).await;
        assert!(
            !mails[4..].iter().any(|m| m.to == ["st2@example.com"]),
            "no approval mail to the requester's own account"
        );
        let mut expired: Vec<String> = mails[5..]
            .iter()
            .map(|m| {
                assert_eq!(m.to, ["alice@example.com"]);
                m.parts("text/plain")
                    .remove(0)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        expired.sort();
        assert_eq!(
            expired,
            [
                "Your approval expired: the command was not started in time",
                "Your request expired: nobody answered in time",
            ]
        );
        assert_eq!(server.request_json(&admin, &id2).await["state"], "expired");

        // Every mail was delivered once, as the log says (once the sender has recorded the
        // last one: the sink has it a moment before).
        let mut log = Value::Null;
        for _ in 0..100 {
            log = server
                .get(Some(&admin), "/v1/deliveries")
                .await
                .expect(200)
                .body;
            if log
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["state"] != "queued")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let emails: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["channel"] == "email")
            .collect();
        assert_eq!(emails.len(), 7);
        assert!(emails
            .iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 1));
        server.stop().await;
    }
}
