//! Requests through the API: auto, approve (with separation of duties), deny, long-poll,
//! cancel, start/finish, expiry.

use std::time::{Duration, Instant};

use elevate_server::app::Role;
use elevate_testkit::command_request;
use jiff::SignedDuration;
use serde_json::json;

use super::{for_each_backend, ready};

#[tokio::test]
async fn auto_approve_and_deny_requests_are_decided_as_the_policy_says() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;

        // Auto: a developer's package manager runs at once.
        let auto = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request(
                    "alice",
                    &["developers"],
                    "/usr/bin/apt",
                    &["install", "htop"],
                ),
            )
            .await
            .expect(201);
        assert_eq!(auto.body["state"], "approved");
        assert_eq!(auto.body["decision"]["outcome"], "auto");
        assert_eq!(
            auto.body["decision"]["rule"],
            "package managers for developers"
        );
        assert_eq!(auto.body["device"], "web-01");

        // Deny: a root shell, with the policy's message.
        let deny = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &["developers"], "/bin/bash", &[]),
            )
            .await
            .expect(201);
        assert_eq!(deny.body["state"], "denied");
        assert_eq!(
            deny.body["decision"]["message"],
            "use a specific command instead of a root shell"
        );

        // Approve: anything else goes to helpdesk and waits.
        let pending = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request(
                    "bob",
                    &["finance"],
                    "/usr/bin/systemctl",
                    &["restart", "cups"],
                ),
            )
            .await
            .expect(201);
        assert_eq!(pending.body["state"], "pending");
        assert_eq!(pending.body["decision"]["approvers"], "helpdesk");
        let id = pending.body["id"].as_str().unwrap().to_string();

        // bob is also an approver in helpdesk, but may not approve his own request.
        server
            .account("bob", &[Role::Approver], &["helpdesk"])
            .await;
        let bob = server.token("bob").await;
        let own = server
            .post(
                Some(&bob),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        assert!(
            own.body["message"]
                .as_str()
                .unwrap()
                .contains("your own request"),
            "{}",
            own.text
        );
        // dave approves, but for another group.
        server
            .account("dave", &[Role::Approver], &["storage"])
            .await;
        let dave = server.token("dave").await;
        let outside = server
            .post(
                Some(&dave),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        assert!(
            outside.body["message"]
                .as_str()
                .unwrap()
                .contains("helpdesk"),
            "{}",
            outside.text
        );
        // A device cannot approve; an auditor cannot either.
        server
            .post(
                Some(&device),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        server
            .account("erin", &[Role::Auditor], &["helpdesk"])
            .await;
        let erin = server.token("erin").await;
        server
            .post(
                Some(&erin),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(403);
        let still = server
            .get(Some(&admin), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(still.body["state"], "pending");
        assert_eq!(still.body["approvals"], json!([]));

        // carol of helpdesk approves.
        server
            .account("carol", &[Role::Approver], &["helpdesk"])
            .await;
        let carol = server.token("carol").await;
        let approved = server
            .post(
                Some(&carol),
                &format!("/v1/requests/{id}/approve"),
                &json!({ "comment": "ok for today" }),
            )
            .await
            .expect(200);
        assert_eq!(approved.body["state"], "approved");
        assert_eq!(approved.body["approvals"][0]["approver"], "carol");
        assert_eq!(approved.body["approvals"][0]["comment"], "ok for today");
        // Deciding again is a conflict.
        server
            .post(Some(&admin), &format!("/v1/requests/{id}/deny"), &json!({}))
            .await
            .expect(409);

        // The device runs it and reports the exit status.
        server
            .post(
                Some(&device),
                &format!("/v1/requests/{id}/start"),
                &json!({}),
            )
            .await
            .expect(200);
        let done = server
            .post(
                Some(&device),
                &format!("/v1/requests/{id}/finish"),
                &json!({ "exit_code": 3 }),
            )
            .await
            .expect(200);
        assert_eq!(done.body["state"], "finished");
        assert_eq!(done.body["exit_code"], 3);
        // Another device cannot see or touch it.
        let (other, _) = server.enrol(&admin, "web-02", &[]).await;
        server
            .get(Some(&other), &format!("/v1/requests/{id}"))
            .await
            .expect(404);
        server
            .post(
                Some(&other),
                &format!("/v1/requests/{id}/cancel"),
                &json!({}),
            )
            .await
            .expect(404);
        server
    })
    .await;
}

#[tokio::test]
async fn two_approvers_are_needed_when_the_rule_says_so_and_a_denial_ends_it() {
    for_each_backend(|server| async move {
        let (_admin, device) = ready(&server).await;
        for name in ["sam", "sue"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        let sam = server.token("sam").await;
        let sue = server.token("sue").await;
        let r = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("bob", &[], "/usr/sbin/fdisk", &["-l"]),
            )
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(r.body["decision"]["needed"], 2);
        let one = server
            .post(
                Some(&sam),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(one.body["state"], "pending");
        // The same approver twice does not count twice.
        server
            .post(
                Some(&sam),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(409);
        let two = server
            .post(
                Some(&sue),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(two.body["state"], "approved");

        let r = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("bob", &[], "/usr/sbin/fdisk", &["/dev/sda"]),
            )
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_string();
        let denied = server
            .post(
                Some(&sue),
                &format!("/v1/requests/{id}/deny"),
                &json!({ "comment": "not on prod" }),
            )
            .await
            .expect(200);
        assert_eq!(denied.body["state"], "denied");
        assert_eq!(denied.body["approvals"][0]["comment"], "not on prod");
        server
    })
    .await;
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_request_is_decided() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let r = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("bob", &[], "/usr/bin/systemctl", &["restart", "cups"]),
            )
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_string();

        // Nothing happens: the poll answers `pending` at its timeout.
        let quiet = server
            .get(
                Some(&device),
                &format!("/v1/requests/{id}/wait?timeout_secs=1"),
            )
            .await
            .expect(200);
        assert_eq!(quiet.body["state"], "pending");

        let waiter = {
            let http = server.http.clone();
            let url = format!("{}/v1/requests/{id}/wait?timeout_secs=30", server.url);
            let device = device.clone();
            tokio::spawn(async move {
                let body: serde_json::Value = http
                    .get(url)
                    .bearer_auth(device)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (Instant::now(), body)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
            .post(
                Some(&admin),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        let decided = Instant::now();
        let (answered, body) = waiter.await.unwrap();
        assert_eq!(body["state"], "approved");
        let lag = answered.saturating_duration_since(decided);
        assert!(
            lag < Duration::from_millis(100),
            "the long poll answered {lag:?} after the decision"
        );
        server
    })
    .await;
}

#[tokio::test]
async fn cancel_and_expiry_end_pending_requests() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let body = command_request("bob", &[], "/usr/bin/systemctl", &[]);
        let a = server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let cancelled = server
            .post(
                Some(&device),
                &format!("/v1/requests/{a}/cancel"),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(cancelled.body["state"], "cancelled");
        server
            .post(
                Some(&admin),
                &format!("/v1/requests/{a}/approve"),
                &json!({}),
            )
            .await
            .expect(409);

        server.clock.advance(SignedDuration::from_hours(25));
        // (The server's own job may get there first; the state below shows it either way.)
        server.app.expire_requests().await.unwrap();
        let expired = server
            .get(Some(&admin), &format!("/v1/requests/{b}"))
            .await
            .expect(200);
        assert_eq!(expired.body["state"], "expired");
        let pending = server
            .get(Some(&admin), "/v1/requests?state=pending")
            .await
            .expect(200);
        assert_eq!(pending.body, json!([]));
        server
    })
    .await;
}

#[tokio::test]
async fn nothing_is_decided_without_a_policy() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        let (device, _) = server.enrol(&admin, "web-01", &[]).await;
        let answer = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &["developers"], "/usr/bin/apt", &[]),
            )
            .await
            .expect(503);
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("policy apply"),
            "{}",
            answer.text
        );
        server
    })
    .await;
}

#[tokio::test]
async fn a_device_lists_only_its_own_requests_and_can_narrow_to_one_user() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let (other, _) = server.enrol(&admin, "web-02", &[]).await;
        for (dev, user) in [(&device, "bob"), (&device, "carol"), (&other, "bob")] {
            server
                .post(
                    Some(dev),
                    "/v1/requests",
                    &command_request(user, &[], "/usr/bin/systemctl", &[]),
                )
                .await
                .expect(201);
        }
        let mine = server.get(Some(&device), "/v1/requests").await.expect(200);
        assert_eq!(mine.body.as_array().unwrap().len(), 2);
        assert!(mine
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["device"] == "web-01"));
        let bobs = server
            .get(Some(&device), "/v1/requests?user=bob&state=pending")
            .await
            .expect(200);
        assert_eq!(bobs.body.as_array().unwrap().len(), 1);
        assert_eq!(bobs.body[0]["user"], "bob");
        let all_bobs = server
            .get(Some(&admin), "/v1/requests?user=bob")
            .await
            .expect(200);
        assert_eq!(all_bobs.body.as_array().unwrap().len(), 2);
        server
    })
    .await;
}

#[tokio::test]
async fn the_requesters_working_directory_is_kept_for_approvers() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let mut body = command_request("bob", &[], "/usr/bin/make", &["install"]);
        body["cwd"] = json!("/home/bob/project");
        let r = server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap();
        let shown = server
            .get(Some(&admin), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(shown.body["cwd"], "/home/bob/project");
        assert_eq!(shown.body["decision"]["keep_caller_cwd"], false);
        body["cwd"] = json!("relative/dir");
        server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(400);
        server
    })
    .await;
}

#[tokio::test]
async fn an_approval_past_its_expiry_starts_nothing() {
    for_each_backend(|server| async move {
        let (_admin, device) = ready(&server).await;
        let body = command_request(
            "alice",
            &["developers"],
            "/usr/bin/apt",
            &["install", "htop"],
        );
        let late = server.ask_id(&device, &body).await;
        let in_time = server.ask_id(&device, &body).await;
        server
            .post(
                Some(&device),
                &format!("/v1/requests/{in_time}/start"),
                &json!({}),
            )
            .await
            .expect(200);
        server
            .clock
            .advance(SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
        let r = server
            .post(
                Some(&device),
                &format!("/v1/requests/{late}/start"),
                &json!({}),
            )
            .await;
        // 410 from the check, or 409 if the expiry job got there first: never started.
        assert!(r.status == 410 || r.status == 409, "{r:?}");
        assert_ne!(
            server.request_json(&device, &late).await["state"],
            "running"
        );
        server
    })
    .await;
}
