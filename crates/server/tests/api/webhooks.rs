//! Webhooks against a real HTTP receiver on loopback: CloudEvents 1.0 that validate against the
//! official schema, a signature the receiver can check, the abuse-protection handshake before
//! the first event, retries with backoff while the receiver is down, and the delivery log.

use base64::Engine as _;
use elevate_server::app::{Role, Settings};
use elevate_server::integrations::webhook::Subscription;
use elevate_testkit::{
    available, command_request, monday_morning, schema_errors, spawn_with, Behaviour, Receiver,
    BACKENDS,
};
use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &[u8] = b"whsec-test-0123456789abcdef";

/// What a receiver does to check a delivery: recompute the signature over the raw body.
fn signature_holds(r: &elevate_testkit::Received, secret: &[u8]) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sig.split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn subscription(name: &str, url: String, events: &[&str]) -> Subscription {
    Subscription {
        name: name.into(),
        url,
        secret: SECRET.to_vec(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

#[tokio::test]
async fn request_events_reach_a_webhook_as_signed_cloudevents_even_after_it_was_down() {
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let mut siem = Receiver::start(0, Behaviour::default()).await;
        // A receiver that never agreed to take events: nothing may be posted to it.
        let closed = Receiver::start(
            0,
            Behaviour {
                allow_origin: None,
                ..Behaviour::default()
            },
        )
        .await;
        let (siem_url, closed_url) = (siem.url("/events"), closed.url("/events"));
        let server = spawn_with(db, monday_morning(), move |s: &mut Settings| {
            s.integrations.webhooks = vec![
                subscription("siem", siem_url, &[]),
                subscription("closed", closed_url, &["request.approved"]),
            ];
        })
        .await;
        let (admin, device) = super::ready(&server).await;
        for name in ["st1", "st2"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        let (st1, st2) = (server.token("st1").await, server.token("st2").await);

        // Untrusted text in argv and reason: it must arrive as the same text, inert.
        let hostile = "*bold* <script>alert(1)</script> \u{1b}[31mred\u{1b}[0m\nline <@U123>";
        let mut body = command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l", hostile]);
        body["reason"] = json!(hostile);
        let pending = server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201);
        let id = pending.body["id"].as_str().unwrap().to_string();
        server
            .post(
                Some(&st1),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        server
            .post(
                Some(&st2),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);

        // created, decided, two approvals given, approved: five events, in order.
        let posts = siem.wait_for("POST", 5).await;
        let types: Vec<String> = posts
            .iter()
            .map(|p| p.json()["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "dev.elevate.request.created",
                "dev.elevate.request.decided",
                "dev.elevate.request.approval_given",
                "dev.elevate.request.approval_given",
                "dev.elevate.request.approved",
            ]
        );
        let options = siem.requests("OPTIONS");
        assert_eq!(options.len(), 1, "one handshake, then it is remembered");
        let origin = server.url.trim_start_matches("http://").to_string();
        assert_eq!(
            options[0].header("WebHook-Request-Origin"),
            Some(origin.as_str())
        );

        let audit = server.audit_records(&admin).await;
        let audit_ids: Vec<&str> = audit.iter().filter_map(|r| r["id"].as_str()).collect();
        // The validator does refuse what is not a CloudEvent.
        if let Some(verdict) = schema_errors(
            "integrations/cloudevents/cloudevents.json",
            &json!({ "id": "", "specversion": "0.3", "source": "", "type": "" }),
        ) {
            assert!(verdict.is_err());
        }
        for post in &posts {
            let event = post.json();
            if let Some(verdict) =
                schema_errors("integrations/cloudevents/cloudevents.json", &event)
            {
                verdict.unwrap_or_else(|e| panic!("not a valid CloudEvent: {e}\n{event:#}"));
            }
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(
                post.header("content-type"),
                Some("application/cloudevents+json; charset=utf-8")
            );
            assert!(signature_holds(post, SECRET), "the signature verifies");
            assert!(!signature_holds(post, b"another secret"));
            assert_eq!(post.header("webhook-id"), event["id"].as_str());
            assert!(
                audit_ids.contains(&event["id"].as_str().unwrap()),
                "the event id {} is the audit event's",
                event["id"]
            );
            assert_eq!(event["subject"], id.as_str());
            assert_eq!(event["data"]["request"]["reason"], hostile);
            assert_eq!(event["data"]["request"]["target"]["args"][1], hostile);
            assert_eq!(
                event["data"]["request"]["url"],
                format!("{}/portal/requests/{id}", server.url)
            );
        }
        assert_eq!(posts[4].json()["data"]["request"]["state"], "approved");
        assert_eq!(posts[2].json()["data"]["details"]["approver"], "st1");
        // A tampered body no longer matches its signature.
        let mut tampered = posts[0].clone();
        tampered.body = String::from_utf8(tampered.body)
            .unwrap()
            .replace("alice", "mallory")
            .into_bytes();
        assert!(!signature_holds(&tampered, SECRET));

        // The closed receiver was asked, refused, and got nothing.
        let _ = closed.wait_for("OPTIONS", 1).await;
        assert!(closed.requests("POST").is_empty());
        let log = server
            .get(Some(&admin), &format!("/v1/deliveries?request={id}"))
            .await
            .expect(200);
        let closed_row = log
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["target"] == "closed")
            .expect("the closed receiver's delivery is in the log")
            .clone();
        assert_eq!(closed_row["state"], "queued");
        assert_eq!(closed_row["event"], "request.approved");
        assert!(
            closed_row["last_error"]
                .as_str()
                .unwrap()
                .contains("WebHook-Allowed-Origin"),
            "{closed_row}"
        );

        // The receiver goes down; a denial is queued, not lost, and does not wait for it.
        siem.stop().await;
        let denied = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l"]),
            )
            .await
            .expect(201);
        let denied_id = denied.body["id"].as_str().unwrap().to_string();
        server
            .post(
                Some(&st1),
                &format!("/v1/requests/{denied_id}/deny"),
                &json!({ "comment": "not today" }),
            )
            .await
            .expect(200);
        // (Wait for each failed attempt to be recorded, not only claimed: a claim counts the
        // attempt before the send ends.)
        let failing = wait_log(&server, &admin, &denied_id, |rows| {
            rows.iter()
                .filter(|d| d["target"] == "siem")
                .all(|d| d["attempts"].as_u64() >= Some(1) && d["last_error"].is_string())
                && rows.iter().filter(|d| d["target"] == "siem").count() == 4
        })
        .await;
        for row in failing.iter().filter(|d| d["target"] == "siem") {
            assert_eq!(row["state"], "queued", "{row}");
            assert!(row["last_error"].as_str().is_some(), "{row}");
        }
        assert_eq!(siem.requests("POST").len(), 5);

        // Back up: after the backoff (10 s on the server's clock) every event arrives, once.
        siem.restart().await;
        server.clock.advance(SignedDuration::from_secs(11));
        let posts = siem.wait_for("POST", 9).await;
        let late: Vec<Value> = posts[5..].iter().map(|p| p.json()).collect();
        let late_types: Vec<&str> = late.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            late_types,
            [
                "dev.elevate.request.created",
                "dev.elevate.request.decided",
                "dev.elevate.request.denial_given",
                "dev.elevate.request.denied",
            ]
        );
        assert!(posts[5..].iter().all(|p| signature_holds(p, SECRET)));
        let done = wait_log(&server, &admin, &denied_id, |rows| {
            rows.iter()
                .filter(|d| d["target"] == "siem")
                .all(|d| d["state"] == "delivered")
        })
        .await;
        let one = done
            .iter()
            .find(|d| d["event"] == "request.denied")
            .unwrap();
        let detail = server
            .get(
                Some(&admin),
                &format!("/v1/deliveries/{}", one["id"].as_str().unwrap()),
            )
            .await
            .expect(200);
        let tries = detail.body["tries"].as_array().unwrap();
        assert_eq!(tries.len(), 2, "{detail:?}");
        assert_eq!(tries[0]["status"], Value::Null);
        assert_eq!(tries[1]["status"], 200);

        // What a device reports (here a run it allowed on its own) reaches the webhook too, once,
        // however often the device sends the batch.
        let batch = json!({ "events": [{ "id": "0193a000-0000-7000-8000-0000000000aa",
            "at": "2026-11-23T09:58:00Z", "actor": "user:alice@web-01", "action": "command.exited",
            "subject": "request:local-1", "data": { "exit_code": 3 } }]});
        for _ in 0..2 {
            server
                .post(Some(&device), "/v1/audit/events", &batch)
                .await
                .expect(200);
        }
        let from_device = siem.wait_for("POST", 10).await.remove(9);
        let event = from_device.json();
        if let Some(verdict) = schema_errors("integrations/cloudevents/cloudevents.json", &event) {
            verdict.unwrap_or_else(|e| panic!("not a valid CloudEvent: {e}\n{event:#}"));
        }
        assert!(signature_holds(&from_device, SECRET));
        assert_eq!(event["type"], "dev.elevate.command.exited");
        assert_eq!(event["id"], "0193a000-0000-7000-8000-0000000000aa");
        assert_eq!(event["data"]["device"], "web-01");
        assert_eq!(event["data"]["details"]["exit_code"], 3);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            siem.requests("POST").len(),
            10,
            "the repeated batch told nobody again"
        );

        // The same log in the portal, for admins and auditors.
        let http = elevate_testkit::portal_client();
        let cookie = elevate_testkit::portal_cookie(&http, &server.url, "admin").await;
        let page = elevate_testkit::portal_page(
            &http,
            &server.url,
            &cookie,
            &format!("/portal/deliveries?request={denied_id}"),
        )
        .await;
        assert!(
            page.contains("request.denied") && page.contains("siem"),
            "{page}"
        );
        assert!(page.contains(">delivered<"), "{page}");
        let cookie = elevate_testkit::portal_cookie(&http, &server.url, "st1").await;
        let refused = http
            .get(format!("{}/portal/deliveries", server.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        // The log is for admins and auditors only.
        server.get(Some(&st1), "/v1/deliveries").await.expect(403);
        server.stop().await;
    }
}

/// Polls the delivery log of `request` until `done` holds (the sender runs in the background).
async fn wait_log(
    server: &elevate_testkit::TestServer,
    admin: &str,
    request: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut rows = Vec::new();
    for _ in 0..150 {
        rows = server
            .get(Some(admin), &format!("/v1/deliveries?request={request}"))
            .await
            .expect(200)
            .body
            .as_array()
            .unwrap()
            .clone();
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the delivery log did not settle: {rows:#?}");
}

#[tokio::test]
async fn a_notification_cut_off_by_a_restart_is_sent_after_it_and_only_once_more() {
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        // The receiver takes the event but hangs before answering.
        let mut siem = Receiver::start(
            0,
            Behaviour {
                delay: std::time::Duration::from_secs(3600),
                ..Behaviour::default()
            },
        )
        .await;
        let url = siem.url("/events");
        let configure = {
            let url = url.clone();
            move |s: &mut Settings| {
                s.integrations.webhooks = vec![subscription("siem", url, &["request.created"])];
            }
        };
        let mut server = spawn_with(db, monday_morning(), configure.clone()).await;
        let (admin, device) = super::ready(&server).await;
        let created = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l"]),
            )
            .await
            .expect(201);
        let id = created.body["id"].as_str().unwrap().to_string();
        let first = siem.wait_for("POST", 1).await.remove(0);

        // The server stops while it waits for the answer: the row stays claimed, not lost.
        server.restart_with(configure).await;
        siem.behaviour.lock().unwrap().delay = std::time::Duration::ZERO;
        siem.restart().await;
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(
            siem.requests("POST").len(),
            1,
            "not again while the lease holds"
        );

        // Once the lease (2 minutes on the server's clock) runs out, the new server sends it.
        server.clock.advance(SignedDuration::from_secs(121));
        let posts = siem.wait_for("POST", 2).await;
        assert_eq!(posts.len(), 2, "sent once more, not more");
        assert_eq!(posts[1].body, first.body, "the same event");
        assert_eq!(posts[1].header("webhook-id"), first.header("webhook-id"));
        let log = wait_log(&server, &admin, &id, |rows| {
            rows.iter().all(|d| d["state"] == "delivered")
        })
        .await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["attempts"], 2, "the cut-off attempt counts");
        server.stop().await;
    }
}

#[tokio::test]
async fn replicas_never_claim_the_same_delivery() {
    // Several replicas share one PostgreSQL: each due row goes to exactly one of them
    // (FOR UPDATE SKIP LOCKED). SQLite is served by one process and needs no test of this.
    if !available(elevate_testkit::Db::Postgres).await {
        return;
    }
    let server = spawn_with(elevate_testkit::Db::Postgres, monday_morning(), |_| {}).await;
    let now = server.clock.now();
    let mut tx = server.app.store().begin().await.unwrap();
    for i in 0..200 {
        tx.queue_delivery(
            elevate_server::store::NotifyChannel::Webhook,
            "siem",
            "request.created",
            &format!("request:{i}"),
            "{}",
            now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let store = elevate_server::store::Store::connect(&server.database_url())
            .await
            .unwrap();
        replicas.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_deliveries(now, SignedDuration::from_secs(120), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut all = Vec::new();
    let mut each = Vec::new();
    for r in replicas {
        let mine = r.await.unwrap();
        each.push(mine.len());
        all.extend(mine);
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 200, "every row claimed once: {each:?}");
    assert_eq!(all.len(), 200, "no row claimed twice");
    server.stop().await;
}
