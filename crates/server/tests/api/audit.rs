//! The audit chain over the API: every step is recorded; tampering with a stored row is found
//! and named; re-ingesting events changes nothing.

use elevate_testkit::{command_request, TestServer};
use serde_json::{json, Value};

use super::{for_each_backend, ready};

async fn actions_for(server: &TestServer, admin: &str, id: &str) -> Vec<String> {
    let page = server
        .get(Some(admin), "/v1/audit?limit=1000")
        .await
        .expect(200);
    page.body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["subject"] == format!("request:{id}"))
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}

async fn verify(server: &TestServer, admin: &str) -> Value {
    server
        .get(Some(admin), "/v1/audit/verify")
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn every_step_of_a_request_is_in_the_chain() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let r = server
            .post(
                Some(&device),
                "/v1/requests",
                &command_request("bob", &[], "/usr/bin/systemctl", &[]),
            )
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_string();
        server
            .post(
                Some(&admin),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        server
            .post(
                Some(&device),
                &format!("/v1/requests/{id}/start"),
                &json!({}),
            )
            .await
            .expect(200);
        server
            .post(
                Some(&device),
                &format!("/v1/requests/{id}/finish"),
                &json!({ "exit_code": 0 }),
            )
            .await
            .expect(200);
        assert_eq!(
            actions_for(&server, &admin, &id).await,
            [
                "request.created",
                "request.decided",
                "request.approval_given",
                "request.approved",
                "request.running",
                "request.finished"
            ]
        );
        let report = verify(&server, &admin).await;
        assert_eq!(report["ok"], true, "{report}");
        // Policy application, enrolment and accounts are audited too.
        let all = server
            .get(Some(&admin), "/v1/audit?limit=1000")
            .await
            .expect(200);
        let actions: Vec<&str> = all
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        for expected in [
            "account.saved",
            "token.issued",
            "policy.applied",
            "enrol_token.created",
            "device.enrolled",
        ] {
            assert!(
                actions.contains(&expected),
                "{expected} missing from {actions:?}"
            );
        }
        server
    })
    .await;
}

#[tokio::test]
async fn tampering_with_a_stored_row_is_found_and_named() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        for user in ["u1", "u2", "u3"] {
            server
                .post(
                    Some(&device),
                    "/v1/requests",
                    &command_request(user, &[], "/usr/bin/systemctl", &[]),
                )
                .await
                .expect(201);
        }
        assert_eq!(verify(&server, &admin).await["ok"], true);
        let count = verify(&server, &admin).await["count"].as_u64().unwrap();
        assert!(count > 8);

        // Edit: change what a record says.
        server
            .sql("UPDATE audit SET data = '{\"user\":\"someone else\"}' WHERE seq = 5")
            .await;
        let r = verify(&server, &admin).await;
        assert_eq!(
            (
                r["ok"].clone(),
                r["break"]["kind"].clone(),
                r["break"]["seq"].clone()
            ),
            (json!(false), json!("edited"), json!(5)),
            "{r}"
        );
        assert!(r["break"]["message"].as_str().unwrap().contains('5'));
        server
    })
    .await;
}

#[tokio::test]
async fn deletion_reordering_and_truncation_are_found() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        for user in ["u1", "u2", "u3"] {
            server
                .post(
                    Some(&device),
                    "/v1/requests",
                    &command_request(user, &[], "/usr/bin/systemctl", &[]),
                )
                .await
                .expect(201);
        }
        let count = verify(&server, &admin).await["count"].as_u64().unwrap();

        // Reorder: swap the positions of records 6 and 7.
        server.sql("UPDATE audit SET seq = -6 WHERE seq = 6").await;
        server.sql("UPDATE audit SET seq = 6 WHERE seq = 7").await;
        server.sql("UPDATE audit SET seq = 7 WHERE seq = -6").await;
        let r = verify(&server, &admin).await;
        assert_eq!(r["break"]["kind"], "reordered", "{r}");
        assert_eq!(r["break"]["seq"], 6, "{r}");
        // Put them back: intact again.
        server.sql("UPDATE audit SET seq = -6 WHERE seq = 6").await;
        server.sql("UPDATE audit SET seq = 6 WHERE seq = 7").await;
        server.sql("UPDATE audit SET seq = 7 WHERE seq = -6").await;
        assert_eq!(verify(&server, &admin).await["ok"], true);

        // Truncate: drop the newest record.
        server
            .sql(&format!("DELETE FROM audit WHERE seq = {count}"))
            .await;
        let r = verify(&server, &admin).await;
        assert_eq!(r["break"]["kind"], "truncated", "{r}");

        // Delete from the middle.
        server.sql("DELETE FROM audit WHERE seq = 4").await;
        let r = verify(&server, &admin).await;
        assert_eq!(r["break"]["kind"], "deleted", "{r}");
        assert_eq!(r["break"]["seq"], 5, "{r}");
        server
    })
    .await;
}

#[tokio::test]
async fn device_events_are_ingested_once_in_any_order() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let event = |id: &str, at: &str| {
            json!({ "id": id, "at": at, "actor": "user:alice@web-01", "action": "command.exited",
                    "subject": "request:x", "data": { "exit_code": 0 } })
        };
        // Newer first, older second: both accepted.
        let batch = json!({ "events": [
            event("0193a000-0000-7000-8000-000000000002", "2026-11-23T09:59:00Z"),
            event("0193a000-0000-7000-8000-000000000001", "2026-11-23T09:58:00Z"),
        ]});
        let first = server.post(Some(&device), "/v1/audit/events", &batch).await.expect(200);
        assert_eq!(first.body, json!({ "accepted": 2, "duplicates": 0 }));
        let before = verify(&server, &admin).await;
        let again = server.post(Some(&device), "/v1/audit/events", &batch).await.expect(200);
        assert_eq!(again.body, json!({ "accepted": 0, "duplicates": 2 }));
        let after = verify(&server, &admin).await;
        assert_eq!(before["head"], after["head"]);
        assert_eq!(before["count"], after["count"]);
        assert_eq!(after["ok"], true);

        // A device cannot write events in another device's name.
        let forged = json!({ "events": [{ "id": "0193a000-0000-7000-8000-000000000003", "at": "2026-11-23T09:58:00Z",
            "actor": "user:alice@web-02", "action": "command.exited", "subject": "request:y", "data": {} }]});
        server.post(Some(&device), "/v1/audit/events", &forged).await.expect(403);
        // Nor report what only the server records for people: an issuance, a review.
        for action in ["offline.code_issued", "offline.code_unissued", "breakglass.reviewed"] {
            let forged = json!({ "events": [{ "id": "0193a000-0000-7000-8000-000000000004",
                "at": "2026-11-23T09:58:00Z", "actor": "user:alice@web-01", "action": action,
                "subject": "device:x", "data": { "challenge": "x", "by": "admin" } }]});
            let refused = server.post(Some(&device), "/v1/audit/events", &forged).await.expect(403);
            assert!(refused.text.contains("only the server records"), "{}", refused.text);
        }
        // Accounts cannot ingest device events.
        server.post(Some(&admin), "/v1/audit/events", &batch).await.expect(403);
        assert_eq!(verify(&server, &admin).await["count"], after["count"]);
        server
    })
    .await;
}

#[tokio::test]
async fn exports_hold_the_whole_chain_with_csv_formulas_defused() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let mut body = command_request("=cmd", &[], "/usr/bin/systemctl", &[]);
        body["reason"] = json!("=HYPERLINK(\"http://evil\")");
        server
            .post(Some(&device), "/v1/requests", &body)
            .await
            .expect(201);
        let count = verify(&server, &admin).await["count"].as_u64().unwrap();
        let jsonl = server
            .get(Some(&admin), "/v1/audit/export")
            .await
            .expect(200);
        assert_eq!(jsonl.text.lines().count() as u64, count);
        let csv = server
            .get(Some(&admin), "/v1/audit/export?format=csv")
            .await
            .expect(200);
        assert_eq!(
            csv.text.lines().next().unwrap(),
            "seq,id,at,actor,action,subject,data,prev_hash,hash"
        );
        assert!(
            csv.text.contains("\"'user:=cmd@web-01\"") || csv.text.contains("user:=cmd@web-01")
        );
        assert!(
            !csv.text.contains(",\"=cmd"),
            "a cell starts with a formula"
        );
        server
            .get(Some(&admin), "/v1/audit/export?format=xml")
            .await
            .expect(400);
        server
            .get(Some(&device), "/v1/audit/export")
            .await
            .expect(403);
        server
    })
    .await;
}

/// The server's limits on what devices report are the agent's own (`elevate_proto::limits`): an
/// event the agent bounded at its largest is taken, one byte more is refused, and so is a body
/// larger than the agent ever sends.
#[tokio::test]
async fn ingest_limits_are_derived_from_the_agents_bounds() {
    use elevate_proto::limits::{
        bound_data, MAX_BATCH_EVENTS, MAX_EVENT_DATA, MAX_EVENT_FIELD, MAX_INGEST_BODY,
    };
    let server = elevate_testkit::spawn(elevate_testkit::Db::Sqlite).await;
    let (admin, device) = ready(&server).await;
    let event = |n: u32, data: Value| {
        json!({ "id": format!("0193a000-0000-7000-8000-{n:012}"), "at": "2026-11-23T09:58:00Z",
            "actor": "user:alice@web-01", "action": "test.event", "subject": "s", "data": data })
    };
    // Data of exactly MAX_EVENT_DATA bytes, after the agent's bounding (which keeps it).
    let fill = |size: usize| {
        let mut data = json!({ "pad": "" });
        let overhead = data.to_string().len();
        let per = 4000;
        let mut pads = Vec::new();
        let mut left = size - overhead;
        // Strings under MAX_TEXT in fields of their own: nothing for the agent to cut.
        while left > 0 {
            let take = left.min(per);
            pads.push("x".repeat(take));
            left -= take;
        }
        let mut fields = serde_json::Map::new();
        for (i, p) in pads.into_iter().enumerate() {
            fields.insert(format!("p{i:02}"), json!(p));
        }
        data = Value::Object(fields);
        // Trim to the exact size: each field costs its name and quotes too.
        let mut text = data.to_string();
        while text.len() > size {
            let last = data.as_object_mut().unwrap().values_mut().last().unwrap();
            let s = last.as_str().unwrap().to_owned();
            let cut = (text.len() - size).min(s.len());
            *last = json!(s[..s.len() - cut]);
            text = data.to_string();
        }
        data
    };
    let mut largest = fill(MAX_EVENT_DATA);
    assert_eq!(largest.to_string().len(), MAX_EVENT_DATA);
    let before = largest.clone();
    bound_data(&mut largest);
    assert_eq!(largest, before, "the agent keeps data of this size whole");
    server
        .post(
            Some(&device),
            "/v1/audit/events",
            &json!({ "events": [event(1, largest.clone())] }),
        )
        .await
        .expect(200);
    let mut over = largest.clone();
    let first = over.as_object_mut().unwrap().values_mut().next().unwrap();
    *first = json!(format!("{}y", first.as_str().unwrap()));
    let refused = server
        .post(
            Some(&device),
            "/v1/audit/events",
            &json!({ "events": [event(2, over)] }),
        )
        .await
        .expect(400);
    assert!(
        refused.text.contains(&MAX_EVENT_DATA.to_string()),
        "{}",
        refused.text
    );
    // Fields too long for the trail.
    let mut long_actor = event(3, json!({}));
    long_actor["actor"] = json!(format!("user:{}@web-01", "a".repeat(MAX_EVENT_FIELD)));
    server
        .post(
            Some(&device),
            "/v1/audit/events",
            &json!({ "events": [long_actor] }),
        )
        .await
        .expect(400);
    // A body past what the agent sends is refused before it is read whole.
    let events: Vec<Value> = (0..(MAX_INGEST_BODY / MAX_EVENT_DATA + 1) as u32)
        .map(|n| event(10 + n, largest.clone()))
        .collect();
    assert!(events.len() <= MAX_BATCH_EVENTS);
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    assert!(body.len() > MAX_INGEST_BODY);
    let too_large = server
        .post_raw(Some(&device), "/v1/audit/events", "application/json", body)
        .await;
    assert_eq!(too_large.status, 413, "{}", too_large.text);
    // Only the first event is in the trail.
    let stored = server
        .get(Some(&admin), "/v1/audit?limit=10000")
        .await
        .expect(200);
    let tests = stored
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "test.event")
        .count();
    assert_eq!(tests, 1);
    server.stop().await;
}

/// Whoever can write the database can rewrite a record and recompute the chain after it so
/// that it is consistent again; the server's signed checkpoints (its key is not in the
/// database) still give the rewrite away, and removing the checkpoints from the database is
/// seen against the copy the server keeps beside its keys.
#[tokio::test]
async fn a_recomputed_chain_is_caught_by_the_signed_checkpoints() {
    use elevate_core::audit::{self, AuditEvent, ChainedRecord, GENESIS};
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        for n in 0..3 {
            server
                .post(
                    Some(&device),
                    "/v1/requests",
                    &elevate_testkit::command_request("alice", &[], "/usr/bin/id", &[&n.to_string()]),
                )
                .await
                .expect(201);
        }
        let signed = server.app.checkpoint_audit().await.unwrap().expect("a checkpoint");
        assert_eq!(server.app.checkpoint_audit().await.unwrap(), None, "once per head");
        let report = server.get(Some(&admin), "/v1/audit/verify").await.expect(200);
        assert_eq!(report.body["ok"], true, "{}", report.text);
        // (The jobs may have signed an earlier head as well.)
        assert!(report.body["checkpoints"].as_u64().unwrap() >= 1, "{}", report.text);
        assert_eq!(report.body["checkpointed_to"], signed.seq);

        // The attacker's rewrite: record 2 gets another actor, every hash after it is redone.
        let records = server.audit_records(&admin).await;
        let mut prev = GENESIS.to_owned();
        let mut rewritten = Vec::new();
        for r in &records {
            let mut event: AuditEvent = serde_json::from_value(json!({
                "id": r["id"], "at": r["at"], "actor": r["actor"], "action": r["action"],
                "subject": r["subject"], "data": r["data"] }))
            .unwrap();
            if r["seq"] == 2 {
                event.actor = "account:nobody".into();
            }
            let hash = audit::event_hash(&prev, &event);
            rewritten.push(ChainedRecord {
                seq: r["seq"].as_u64().unwrap(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
                event,
            });
            prev = hash;
        }
        for r in &rewritten {
            server
                .sql(&format!(
                    "UPDATE audit SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
                    r.event.actor, r.prev_hash, r.hash, r.seq
                ))
                .await;
        }
        server
            .sql(&format!("UPDATE audit_head SET hash = '{prev}' WHERE id = 1"))
            .await;
        // The chain alone is consistent again ...
        assert!(audit::verify(&rewritten, None).is_ok());
        // ... and the checkpoint says otherwise.
        let report = server.get(Some(&admin), "/v1/audit/verify").await.expect(200);
        assert_eq!(report.body["ok"], false, "{}", report.text);
        assert_eq!(report.body["break"]["kind"], "checkpoint");
        // The first checkpoint at or after the rewritten record names it.
        let at = report.body["break"]["seq"].as_u64().unwrap();
        assert!((2..=signed.seq).contains(&at), "{}", report.text);
        assert!(
            report.body["break"]["message"].as_str().unwrap().contains("rewritten"),
            "{}",
            report.text
        );

        // Removing the checkpoints from the database is seen against the server's own copy.
        server.sql("DELETE FROM audit_checkpoints").await;
        let report = server.get(Some(&admin), "/v1/audit/verify").await.expect(200);
        assert_eq!(report.body["ok"], false, "{}", report.text);
        assert!(
            report.body["break"]["message"].as_str().unwrap().contains("removed from the database"),
            "{}",
            report.text
        );
        // A checkpoint written into the database by someone without the key is refused too.
        server
            .sql(&format!(
                "INSERT INTO audit_checkpoints (seq, hash, at_ms, signature) VALUES ({}, '{}', {}, '{}')",
                signed.seq,
                prev,
                signed.at.as_millisecond(),
                "00".repeat(64)
            ))
            .await;
        let report = server.get(Some(&admin), "/v1/audit/verify").await.expect(200);
        assert!(
            report.body["break"]["message"].as_str().unwrap().contains("not signed by this server"),
            "{}",
            report.text
        );
        server
    })
    .await;
}
