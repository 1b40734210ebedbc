//! Routing with a clock the test moves: fast track and business-hours vs after-hours approvers
//! from calendars, 2-of-3 approvals, SLA escalation (and an SLA missed with nowhere to
//! escalate), expiry per rule, a fresh sign-in for a high-risk rule, the requester told of every
//! change by mail, and the metrics of each request.

use elevate_server::app::{Role, Settings};
use elevate_testkit::{
    available, command_request, monday_morning, spawn_with, SmtpSink, TestServer, BACKENDS,
};
use jiff::SignedDuration;
use serde_json::{json, Value};

const POLICY: &str = r#"version = 1
[defaults]
unmatched = "approve"
approvers = "helpdesk"

[[calendar]]
name = "business-hours"
timezone = "UTC"
weekly = ["mon-fri 08:00-18:00"]

[[rule]]
name = "trusted staff, fast track in business hours"
who = { groups = ["it-staff"] }
when = "business-hours"
action = "auto"

[[rule]]
name = "disk tools need 2 of the 3 storage admins"
what = { paths = ["/usr/sbin/fdisk"] }
action = { approve = { approvers = "storage", count = 2, expire = "2h" } }

[[rule]]
name = "business hours go to the helpdesk"
when = "business-hours"
action = { approve = { approvers = "helpdesk", sla = "15m", escalate = "security", expire = "4h" } }

[[rule]]
name = "after hours go to on-call, freshly signed in"
when = "!business-hours"
action = { approve = { approvers = "on-call", sla = "10m", expire = "1h", reauth = "5m" } }
"#;

async fn ask(server: &TestServer, device: &str, user: &str, groups: &[&str], path: &str) -> Value {
    server
        .post(
            Some(device),
            "/v1/requests",
            &command_request(user, groups, path, &["--now"]),
        )
        .await
        .expect(201)
        .body
}

async fn decide(server: &TestServer, token: &str, id: &str, verdict: &str) -> u16 {
    server
        .post(
            Some(token),
            &format!("/v1/requests/{id}/{verdict}"),
            &json!({}),
        )
        .await
        .status
}

/// The first line of each mail to `to` so far.
fn told(sink: &SmtpSink, to: &str) -> Vec<String> {
    sink.mailed
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.to == [to])
        .map(|m| {
            m.parts("text/plain")
                .remove(0)
                .lines()
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn wait_told(sink: &SmtpSink, to: &str, n: usize) -> Vec<String> {
    for _ in 0..300 {
        let got = told(sink, to);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{to} was not told {n} things: {:?}", told(sink, to));
}

#[tokio::test]
async fn requests_are_routed_escalated_and_expired_by_the_clock_and_requesters_hear_it() {
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let sink = SmtpSink::start().await;
        let email = sink.email_config("elevate@example.com");
        let server = spawn_with(db, monday_morning(), move |s: &mut Settings| {
            s.integrations.email = Some(email);
        })
        .await;
        let admin = server.admin().await;
        server.apply_policy(&admin, POLICY).await.expect(201);
        let (device, _) = server.enrol(&admin, "web-01", &["server"]).await;
        for (name, group) in [
            ("st1", "storage"),
            ("st2", "storage"),
            ("st3", "storage"),
            ("hd1", "helpdesk"),
            ("sec1", "security"),
            ("oc1", "on-call"),
        ] {
            server.account(name, &[Role::Approver], &[group]).await;
        }
        let token = |n: &'static str| server.token(n);
        let (st1, st2, st3, hd1, sec1) = (
            token("st1").await,
            token("st2").await,
            token("st3").await,
            token("hd1").await,
            token("sec1").await,
        );

        // Fast track: trusted staff in business hours run at once.
        let fast = ask(&server, &device, "bob", &["it-staff"], "/usr/bin/systemctl").await;
        assert_eq!(fast["state"], "approved");
        assert_eq!(
            fast["decision"]["rule"],
            "trusted staff, fast track in business hours"
        );

        // Business hours: the helpdesk, with a 15-minute SLA that escalates to security.
        let hd = ask(&server, &device, "alice", &["staff"], "/usr/bin/systemctl").await;
        let hd_id = hd["id"].as_str().unwrap().to_string();
        assert_eq!(hd["decision"]["approvers"], "helpdesk");
        assert_eq!(
            decide(&server, &sec1, &hd_id, "approve").await,
            403,
            "not yet security's"
        );
        assert_eq!(server.app.escalate_due().await.unwrap(), 0, "not due yet");

        // 2 of 3: one approval waits, the second decides; a denial ends another at once.
        let disk = ask(&server, &device, "alice", &["staff"], "/usr/sbin/fdisk").await;
        let disk_id = disk["id"].as_str().unwrap().to_string();
        assert_eq!(decide(&server, &st1, &disk_id, "approve").await, 200);
        assert_eq!(
            server.request_json(&admin, &disk_id).await["state"],
            "pending"
        );
        assert_eq!(
            decide(&server, &st1, &disk_id, "approve").await,
            409,
            "once per person"
        );
        assert_eq!(decide(&server, &st3, &disk_id, "approve").await, 200);
        let approved = server.request_json(&admin, &disk_id).await;
        assert_eq!(approved["state"], "approved");
        assert_eq!(approved["decided_via"], "api");
        let denied = ask(&server, &device, "alice", &["staff"], "/usr/sbin/fdisk").await;
        let denied_id = denied["id"].as_str().unwrap().to_string();
        assert_eq!(decide(&server, &st2, &denied_id, "deny").await, 200);
        assert_eq!(
            server.request_json(&admin, &denied_id).await["state"],
            "denied"
        );
        let http = elevate_testkit::portal_client();
        let cookie = elevate_testkit::portal_cookie(&http, &server.url, "st1").await;
        let page = elevate_testkit::portal_page(
            &http,
            &server.url,
            &cookie,
            &format!("/portal/requests/{denied_id}"),
        )
        .await;
        assert!(page.contains("st2 denied at "), "{page}");
        let unanswered = ask(&server, &device, "alice", &["staff"], "/usr/sbin/fdisk").await;
        let unanswered_id = unanswered["id"].as_str().unwrap().to_string();

        // The helpdesk looks (time to first view) but nobody answers: after 15 minutes it goes
        // to security too, once.
        server.clock.advance(SignedDuration::from_mins(3));
        let seen = server.request_json(&hd1, &hd_id).await;
        assert!(seen["first_viewed_at"].is_string(), "{seen}");
        server.clock.advance(SignedDuration::from_mins(13));
        // (The server's own job, every 15 s, may get there first; the audit count below shows
        // it happened once either way.)
        server.app.escalate_due().await.unwrap();
        assert_eq!(
            server.app.escalate_due().await.unwrap(),
            0,
            "escalated once"
        );
        let escalated = server.request_json(&admin, &hd_id).await;
        assert_eq!(escalated["escalated_to"], "security");
        assert_eq!(escalated["sla_due_at"], Value::Null);
        assert_eq!(decide(&server, &sec1, &hd_id, "approve").await, 200);
        let done = server.request_json(&admin, &hd_id).await;
        assert_eq!(done["state"], "approved");
        assert_eq!(done["approvals"][0]["approver"], "sec1");

        // Expiry per rule: the storage rule's 2 hours, not the server's 24. Past it, nobody can
        // decide, even before the job has marked it expired.
        server.clock.advance(SignedDuration::from_mins(105));
        let late = decide(&server, &st2, &unanswered_id, "approve").await;
        assert!(
            late == 410 || late == 409,
            "a late decision is refused ({late})"
        );
        server.app.expire_requests().await.unwrap();
        assert_eq!(
            server.request_json(&admin, &unanswered_id).await["state"],
            "expired"
        );
        assert_eq!(
            server.request_json(&admin, &unanswered_id).await["decided_via"],
            "expiry"
        );

        // The requester heard of every change, in order for each request.
        let alice = wait_told(&sink, "alice@example.com", 7).await;
        for expected in [
            "Your request has an approval from st1; it needs 2 in all",
            "Your request was approved by st1 (approved), st3 (approved)",
            "Your request was denied by st2 (denied)",
            "Your request went to security: nobody in helpdesk answered within 15 minutes",
            "Your request was approved by sec1 (approved)",
            "Your request expired: nobody answered in time",
        ] {
            assert!(
                alice.iter().any(|l| l == expected),
                "{expected:?} in {alice:#?}"
            );
        }
        assert_eq!(
            server
                .audit_records(&admin)
                .await
                .iter()
                .filter(|r| r["action"] == "request.escalated")
                .count(),
            1
        );

        // After hours (Monday 20:00): on-call, a 10-minute SLA with nowhere to escalate, and a
        // rule that wants an approver signed in within 5 minutes.
        server.clock.set("2026-11-23T20:00:00Z".parse().unwrap());
        let night = ask(&server, &device, "bob", &["it-staff"], "/usr/bin/systemctl").await;
        let night_id = night["id"].as_str().unwrap().to_string();
        assert_eq!(night["state"], "pending", "no fast track after hours");
        assert_eq!(night["decision"]["approvers"], "on-call");
        let oc_old = server.token("oc1").await;
        let http = elevate_testkit::portal_client();
        let oc_cookie = elevate_testkit::portal_cookie(&http, &server.url, "oc1").await;
        let page = elevate_testkit::portal_page(
            &http,
            &server.url,
            &oc_cookie,
            &format!("/portal/requests/{night_id}"),
        )
        .await;
        let csrf = elevate_testkit::csrf_of(&page);
        server.clock.advance(SignedDuration::from_mins(11));
        // (The server's own job, every 15 s, may get there first; the audit count below shows
        // it happened once either way.)
        server.app.escalate_due().await.unwrap();
        assert_eq!(server.app.escalate_due().await.unwrap(), 0, "handled once");
        assert_eq!(
            server
                .audit_records(&admin)
                .await
                .iter()
                .filter(|r| r["action"] == "request.sla_missed")
                .count(),
            1
        );
        let missed = server.request_json(&admin, &night_id).await;
        assert_eq!(missed["state"], "pending");
        assert_eq!(missed["escalated_to"], Value::Null);
        assert_eq!(missed["sla_due_at"], Value::Null);
        // In the portal, a session older than 5 minutes is sent to sign in again first.
        let r = http
            .post(format!("{}/portal/requests/{night_id}/decide", server.url))
            .header("cookie", &oc_cookie)
            .form(&[("csrf", csrf.as_str()), ("verdict", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("/portal/login?reauth=1&next=/portal/requests/{night_id}")
        );
        let stale = server
            .post(
                Some(&oc_old),
                &format!("/v1/requests/{night_id}/approve"),
                &json!({}),
            )
            .await;
        assert_eq!(stale.status, 401, "{stale:?}");
        assert!(stale.body["message"]
            .as_str()
            .unwrap()
            .contains("sign-in within the last 5m"));
        let oc_fresh = server.token("oc1").await;
        assert_eq!(decide(&server, &oc_fresh, &night_id, "approve").await, 200);
        let bob = wait_told(&sink, "bob@example.com", 2).await;
        assert_eq!(
            bob,
            [
                "Your request has waited longer than its rule's 10 minutes; on-call have been told again",
                "Your request was approved by oc1 (approved)",
            ]
        );
        let night = server.request_json(&admin, &night_id).await;
        assert_eq!(night["decided_via"], "api");
        let created: jiff::Timestamp = night["created_at"].as_str().unwrap().parse().unwrap();
        let decided: jiff::Timestamp = night["decided_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(decided.duration_since(created).as_mins(), 11);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_sla_that_could_never_pass_is_refused_when_the_policy_is_applied() {
    super::for_each_backend(|server| async move {
        let admin = server.admin().await;
        let policy = |action: &str| {
            format!(
                "version = 1\n[[rule]]\nname = \"slow\"\naction = {{ approve = {{ {action} }} }}\n"
            )
        };
        // The server's requests wait 24 hours: a 25-hour SLA without its own expiry never passes.
        let refused = server
            .apply_policy(&admin, &policy("sla = \"25h\", escalate = \"security\""))
            .await
            .expect(400);
        let message = refused.body["message"].as_str().unwrap();
        assert!(
            message.contains("rule \"slow\": sla (1d1h)") && message.contains("request_ttl 1d"),
            "{message}"
        );
        server
            .apply_policy(
                &admin,
                &policy("sla = \"25h\", escalate = \"security\", expire = \"2d\""),
            )
            .await
            .expect(201);
        server
    })
    .await;
}

/// Applying a policy says what its paths are on this server: a link (rules that let something
/// run match the program invoked by that name, not the file by any name) or a path that does
/// not exist here. The policy is applied all the same.
#[tokio::test]
async fn a_policy_naming_links_or_missing_paths_is_applied_with_warnings() {
    let server = elevate_testkit::spawn(elevate_testkit::Db::Sqlite).await;
    let admin = server.admin().await;
    let text = "version = 1\n[defaults]\nunmatched = \"deny\"\n\
        [[rule]]\nname = \"shells\"\nwhat = { paths = [\"/bin/sh\", \"/usr/bin/dash\", \"/opt/nowhere/tool\", \"/usr/bin/*\"] }\n\
        action = { deny = \"no\" }\n";
    let applied = server.apply_policy(&admin, text).await.expect(201);
    let warnings: Vec<String> = applied.body["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("/bin/sh, a link to /usr/bin/dash"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("/opt/nowhere/tool, which does not exist on this server"),
        "{warnings:?}"
    );
    // A clean policy has none.
    let clean = "version = 1\n[defaults]\nunmatched = \"deny\"\n\
        [[rule]]\nname = \"ids\"\nwhat = { paths = [\"/usr/bin/id\"] }\naction = \"auto\"\n";
    let applied = server.apply_policy(&admin, clean).await.expect(201);
    assert!(applied.body.get("warnings").is_none(), "{}", applied.text);
    server.stop().await;
}
