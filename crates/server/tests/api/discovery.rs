//! Discovery: imports that are idempotent and bounded, device reports kept apart from imports,
//! and reports over a generated month whose answers are known.

use elevate_server::app::Role;
use elevate_testkit::discovery::{month, MONTH_END, MONTH_START};
use elevate_testkit::TestServer;
use serde_json::{json, Value};

use super::for_each_backend;

/// A policy with the business-hours calendar the generated month is measured by.
pub(super) const POLICY: &str = r#"
version = 1
[defaults]
unmatched = "approve"
approvers = "helpdesk"
[[calendar]]
name = "business-hours"
timezone = "Europe/Berlin"
weekly = ["mon-fri 08:00-18:00"]
[[rule]]
name = "package managers"
what = { paths = ["/usr/bin/apt"] }
action = "auto"
"#;

async fn import(
    server: &TestServer,
    token: &str,
    events: &[elevate_proto::v1::ObservationIn],
) -> (u64, u64) {
    let (mut imported, mut duplicates) = (0, 0);
    for chunk in events.chunks(5000) {
        let out = server
            .post(
                Some(token),
                "/v1/imports",
                &json!({ "source": "syslog", "file": "generated", "events": chunk }),
            )
            .await
            .expect(200);
        imported += out.body["imported"].as_u64().unwrap();
        duplicates += out.body["duplicates"].as_u64().unwrap();
    }
    (imported, duplicates)
}

async fn report(server: &TestServer, token: &str, name: &str, extra: &str) -> Value {
    server
        .get(
            Some(token),
            &format!("/v1/reports/{name}?since={MONTH_START}&until={MONTH_END}{extra}"),
        )
        .await
        .expect(200)
        .body
}

fn rows(r: &Value) -> &Vec<Value> {
    r["rows"].as_array().unwrap()
}

#[tokio::test]
async fn reports_over_a_generated_month_say_what_was_put_in() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server.apply_policy(&admin, POLICY).await.expect(201);
        let m = month(300, 10);
        server
            .post(Some(&admin), "/v1/directory/import", &m.directory)
            .await
            .expect(200);
        let (imported, duplicates) = import(&server, &admin, &m.observations).await;
        assert_eq!((imported, duplicates), (m.observations.len() as u64, 0));

        // Segments: every person in the one the generator gave them.
        let segments = report(&server, &admin, "segments", "").await;
        let got: std::collections::BTreeMap<String, String> = rows(&segments)
            .iter()
            .map(|r| {
                (
                    r["who"].as_str().unwrap().to_owned(),
                    r["segment"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: std::collections::BTreeMap<String, String> = m
            .expected
            .segments
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(segments["facts"]["moderate_from"], 5);
        assert_eq!(segments["facts"]["high_from"], 20);
        // People without a department are listed, not dropped; logins the directory does not
        // know are listed as themselves.
        let p009 = rows(&segments).iter().find(|r| r["who"] == "p009").unwrap();
        assert_eq!(
            (p009["department"].clone(), p009["person"].clone()),
            (Value::Null, json!(true))
        );
        let guest = rows(&segments)
            .iter()
            .find(|r| r["who"] == "guest0")
            .unwrap();
        assert_eq!(guest["person"], false);

        // Adjusted thresholds move people.
        let strict = report(&server, &admin, "segments", "&moderate=2&high=8").await;
        assert_eq!(
            strict["facts"]["high"].as_u64().unwrap(),
            200,
            "high and moderate people"
        );
        server
            .get(Some(&admin), "/v1/reports/segments?moderate=9&high=3")
            .await
            .expect(400);

        // Top application and how the policy covers it.
        let apps = report(&server, &admin, "applications", "").await;
        let top = &rows(&apps)[0];
        let (program, users) = m.expected.top_application;
        assert_eq!(
            (
                top["program"].as_str().unwrap(),
                top["users"].as_u64().unwrap()
            ),
            (program, users)
        );
        assert!(
            top["coverage"]
                .as_str()
                .unwrap()
                .contains("package managers"),
            "{top}"
        );
        let bash = rows(&apps)
            .iter()
            .find(|r| r["program"] == "/bin/bash")
            .unwrap();
        assert_eq!(bash["risk"], "shell");

        // The most varied department.
        let deps = report(&server, &admin, "departments", "").await;
        let (name, programs) = m.expected.most_varied;
        assert_eq!(
            (
                rows(&deps)[0]["department"].as_str().unwrap(),
                rows(&deps)[0]["programs"].as_u64().unwrap()
            ),
            (name, programs)
        );
        assert!(rows(&deps).iter().any(|r| r["department"].is_null()));

        // System dependencies.
        let system = report(&server, &admin, "system", "").await;
        let got: Vec<(String, String, String, u64, f64)> = rows(&system)
            .iter()
            .map(|r| {
                (
                    r["account"].as_str().unwrap().into(),
                    r["host"].as_str().unwrap().into(),
                    r["program"].as_str().unwrap().into(),
                    r["runs"].as_u64().unwrap(),
                    r["per_day"].as_f64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String, String, u64, f64)> = m
            .expected
            .system
            .iter()
            .map(|(a, h, p, r, d)| ((*a).into(), (*h).into(), (*p).into(), *r, *d))
            .collect();
        assert_eq!(got, want);

        // After hours by the policy's calendar.
        let timing = report(&server, &admin, "timing", "").await;
        assert_eq!(timing["facts"]["total"].as_u64().unwrap(), m.expected.runs);
        assert_eq!(
            timing["facts"]["after_hours"].as_u64().unwrap(),
            m.expected.after_hours
        );
        assert_eq!(
            timing["facts"]["after_hours_percent"].as_f64().unwrap(),
            m.expected.after_hours_percent()
        );
        assert_eq!(rows(&timing).len(), 7);
        // One department's timing, its people resolved from their logins.
        let (runs, late) = m.expected.by_department["Finance"];
        let finance = report(&server, &admin, "timing", "&department=Finance").await;
        assert_eq!(
            (
                finance["facts"]["total"].as_u64().unwrap(),
                finance["facts"]["after_hours"].as_u64().unwrap()
            ),
            (runs, late)
        );

        // One department only.
        let finance = report(&server, &admin, "users", "&department=Finance").await;
        assert!(rows(&finance).iter().all(|r| r["department"] == "Finance"));
        assert_eq!(rows(&finance).len(), 60);

        // Failed attempts.
        let attempts = report(&server, &admin, "attempts", "").await;
        assert!(rows(&attempts)
            .iter()
            .all(|r| r["outcome"] == "failed" && r["program"] == "/usr/bin/passwd"));

        // A person's evidence: their own login's runs, under their name.
        let evidence = server
            .get(
                Some(&admin),
                &format!("/v1/reports/people/p000?since={MONTH_START}&until={MONTH_END}"),
            )
            .await
            .expect(200);
        assert_eq!(evidence.body["logins"], json!(["u000"]));
        // Its 25 elevations and its one failed attempt.
        let seen = evidence.body["observations"].as_array().unwrap();
        assert_eq!(seen.len(), 26);
        assert_eq!(seen.iter().filter(|o| o["outcome"] == "failed").count(), 1);

        // Importing again changes nothing.
        let again = import(&server, &admin, &m.observations).await;
        assert_eq!(again, (0, m.observations.len() as u64));
        let segments_again = report(&server, &admin, "segments", "").await;
        assert_eq!(segments_again["rows"], segments["rows"]);
        server
    })
    .await;
}

#[tokio::test]
async fn imports_are_for_admins_bounded_and_never_pass_for_a_device() {
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        server.account("ann", &[Role::Approver], &["helpdesk"]).await;
        let ann = server.token("ann").await;
        let one = |id: &str, user: &str| {
            json!({ "id": id, "at": "2026-10-01T10:00:00Z", "host": "h1", "user": user, "runas": "root",
                    "program": "/usr/bin/id", "outcome": "ran", "via": "sudo", "tty": "pts/0" })
        };
        let batch = |events: Vec<Value>| json!({ "source": "syslog", "events": events });
        server.post(Some(&ann), "/v1/imports", &batch(vec![one("syslog:a", "al")])).await.expect(403);
        let forged = server.post(Some(&admin), "/v1/imports", &batch(vec![one("device:x", "al")])).await.expect(400);
        assert!(forged.text.contains("device"), "{}", forged.text);
        server.post(Some(&admin), "/v1/imports", &batch(vec![one("syslog:b", "al\u{1b}[31m")])).await.expect(400);
        server.post(Some(&admin), "/v1/imports", &batch(vec![one("syslog:c", &"x".repeat(300))])).await.expect(400);
        let too_many: Vec<Value> = (0..5001).map(|i| one(&format!("syslog:{i}"), "al")).collect();
        let big = server.post(Some(&admin), "/v1/imports", &batch(too_many)).await.expect(400);
        assert!(big.text.contains("5000"), "{}", big.text);
        // A refused batch stores nothing: the good event before the bad one is not kept.
        server.post(Some(&admin), "/v1/imports", &batch(vec![one("syslog:d", "al"), one("syslog:e", "")])).await.expect(400);
        let ok = server.post(Some(&admin), "/v1/imports", &batch(vec![one("syslog:d", "al")])).await.expect(200);
        assert_eq!(ok.body, json!({ "imported": 1, "duplicates": 0 }));
        // Every import is audited.
        let records = server.audit_records(&admin).await;
        assert!(records.iter().any(|r| r["action"] == "discovery.imported"));
        server
    })
    .await;
}

#[tokio::test]
async fn devices_discovery_events_are_reported_apart_from_imports() {
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        let event = json!({ "id": "0193a000-0000-7000-8000-00000000d001", "at": "2026-10-05T09:00:00Z",
            "actor": "user:alice@web-01", "action": "discovery.command", "subject": "request:r1",
            "data": { "user": "alice", "uid": 1001, "device": "web-01", "channel": "sudo", "tty": "pts/1",
                      "cwd": "/home/alice", "runas": "root",
                      "target": { "kind": "command", "path": "/usr/bin/journalctl", "sha256": "ab", "package": "systemd", "args": ["-u", "ssh"] },
                      "exit_code": 0 } });
        server.post(Some(&device), "/v1/audit/events", &json!({ "events": [event] })).await.expect(200);
        server
            .post(Some(&admin), "/v1/imports", &json!({ "source": "syslog", "events": [
                { "id": "syslog:i1", "at": "2026-10-05T10:00:00Z", "host": "old-box", "user": "alice", "runas": "root",
                  "program": "/usr/bin/journalctl", "outcome": "ran", "via": "sudo", "tty": "pts/0" } ] }))
            .await
            .expect(200);
        let all = report(&server, &admin, "applications", "").await;
        let j = rows(&all).iter().find(|r| r["program"] == "/usr/bin/journalctl").unwrap();
        assert_eq!((j["runs"].as_u64(), j["package"].as_str()), (Some(2), Some("systemd")));
        let devices = report(&server, &admin, "applications", "&origin=device").await;
        assert_eq!(rows(&devices)[0]["runs"], 1);
        let evidence = server
            .get(Some(&admin), &format!("/v1/reports/people/alice?since={MONTH_START}&until={MONTH_END}"))
            .await
            .expect(200);
        let origins: Vec<&str> = evidence.body["observations"].as_array().unwrap().iter().map(|o| o["origin"].as_str().unwrap()).collect();
        assert_eq!(origins, ["import", "device"]);
        assert_eq!(evidence.body["observations"][1]["command_line"], "/usr/bin/journalctl -u ssh");
        // The same device event again is not counted twice.
        server.post(Some(&device), "/v1/audit/events", &json!({ "events": [event] })).await.expect(200);
        let again = report(&server, &admin, "applications", "&origin=device").await;
        assert_eq!(rows(&again)[0]["runs"], 1);
        server
    })
    .await;
}

#[tokio::test]
async fn a_rule_for_a_segment_follows_what_discovery_measured_of_the_person() {
    for_each_backend(|server| async move {
        let (admin, device) = super::ready(&server).await;
        server
            .apply_policy(
                &admin,
                r#"
version = 1
[defaults]
unmatched = "approve"
approvers = "helpdesk"
[segments]
moderate = 3
high = 10
[[rule]]
name = "frequent admins restart services"
who = { segment = "high" }
what = { paths = ["/usr/bin/systemctl"] }
action = "auto"
"#,
            )
            .await
            .expect(201);
        // Alice's login is `ali` on every device; Bob is `bob`; `eve` is nobody the directory knows.
        server
            .post(
                Some(&admin),
                "/v1/directory/import",
                &json!({ "people": [
                    { "user_name": "alice", "logins": [{ "login": "ali" }] },
                    { "user_name": "bob", "logins": [{ "login": "bob" }] } ] }),
            )
            .await
            .expect(200);
        // In the last 30 days: Alice elevated 12 times (high), Bob twice (low), eve 20 times.
        let now = server.clock.now();
        let mut events = Vec::new();
        for (login, n) in [("ali", 12), ("bob", 2), ("eve", 20)] {
            for k in 0..n {
                let at = now - jiff::SignedDuration::from_hours(24 + k);
                events.push(json!({ "id": format!("syslog:{login}-{k}"), "at": at.to_string(), "host": "web-01",
                    "user": login, "runas": "root", "program": "/usr/bin/apt", "outcome": "ran", "via": "sudo", "tty": "pts/0" }));
            }
        }
        server
            .post(Some(&admin), "/v1/imports", &json!({ "source": "syslog", "events": events }))
            .await
            .expect(200);

        let ask = |user: &str, groups: &[&str]| elevate_testkit::command_request(user, groups, "/usr/bin/systemctl", &["restart", "nginx"]);
        let alice = server.post(Some(&device), "/v1/requests", &ask("ali", &["staff"])).await.expect(201);
        assert_eq!(alice.body["decision"]["outcome"], "auto", "{}", alice.text);
        assert!(alice.body["decision"]["explanation"].as_str().unwrap().contains("high segment"), "{}", alice.text);
        // Bob is low; claiming the high segment as a group changes nothing: the server measures.
        let bob = server.post(Some(&device), "/v1/requests", &ask("bob", &["staff", "segment:high"])).await.expect(201);
        assert_eq!(bob.body["state"], "pending", "{}", bob.text);
        // Eve is frequent but nobody the directory knows: no segment.
        let eve = server.post(Some(&device), "/v1/requests", &ask("eve", &[])).await.expect(201);
        assert_eq!(eve.body["state"], "pending", "{}", eve.text);

        // The device's signed bundle carries its logins' segments; an admin's copy carries none.
        let bundle = server.get(Some(&device), "/v1/policy-bundle").await.expect(200);
        let payload: Value = serde_json::from_str(bundle.body["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["segments"], json!({ "ali": "high", "bob": "low" }));
        let admins = server.get(Some(&admin), "/v1/policy-bundle").await.expect(200);
        let payload: Value = serde_json::from_str(admins.body["payload"].as_str().unwrap()).unwrap();
        assert!(payload.get("segments").is_none());
        server
    })
    .await;
}

#[tokio::test]
async fn periods_across_and_inside_months_count_and_date_runs_exactly_and_concurrent_imports_agree()
{
    for_each_backend(|server| async move {
        let admin = server.admin().await;
        let ev = |id: &str, at: &str, program: &str| {
            json!({ "id": id, "at": at, "host": "h1", "user": "bo", "runas": "root",
                    "program": program, "outcome": "ran", "via": "sudo", "tty": "pts/0" })
        };
        let batch = |events: Vec<Value>| json!({ "source": "syslog", "events": events });
        server
            .post(
                Some(&admin),
                "/v1/imports",
                &batch(vec![
                    ev("syslog:m1", "2026-09-30T22:00:00Z", "/usr/bin/id"),
                    ev("syslog:m2", "2026-10-05T10:00:00Z", "/usr/bin/id"),
                    ev("syslog:m3", "2026-10-20T15:00:00Z", "/usr/bin/id"),
                ]),
            )
            .await
            .expect(200);
        let app = |since: &'static str, until: &'static str| {
            let server = &server;
            let admin = admin.clone();
            async move {
                let r = server
                    .get(
                        Some(&admin),
                        &format!("/v1/reports/applications?since={since}&until={until}"),
                    )
                    .await
                    .expect(200);
                let row = r.body["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["program"] == "/usr/bin/id")
                    .cloned();
                row.map(|r| {
                    (
                        r["runs"].as_u64().unwrap(),
                        r["first"].as_str().unwrap().to_owned(),
                        r["last"].as_str().unwrap().to_owned(),
                    )
                })
            }
        };
        // Across two months: every run, first and last to the millisecond.
        assert_eq!(
            app("2026-09-30", "2026-10-21").await,
            Some((
                3,
                "2026-09-30T22:00:00Z".into(),
                "2026-10-20T15:00:00Z".into()
            ))
        );
        // Beginning inside a month that had runs before: the first run is known to the day.
        assert_eq!(
            app("2026-10-10", "2026-10-21").await,
            Some((
                1,
                "2026-10-20T00:00:00Z".into(),
                "2026-10-20T15:00:00Z".into()
            ))
        );
        // Ending inside a month that had runs after: the last run is known to the day.
        assert_eq!(
            app("2026-10-01", "2026-10-10").await,
            Some((
                1,
                "2026-10-05T10:00:00Z".into(),
                "2026-10-05T23:59:59.999Z".into()
            ))
        );
        assert_eq!(app("2026-10-06", "2026-10-20").await, None);

        // Two imports at once, each touching two programs on both sides of a midnight in
        // opposite orders: both are stored (writers lock rollup rows in one order), every run
        // counted.
        for i in 0..10 {
            let a = batch(vec![
                ev(
                    &format!("syslog:a{i}"),
                    "2026-10-30T23:59:00Z",
                    "/usr/bin/p1",
                ),
                ev(
                    &format!("syslog:b{i}"),
                    "2026-10-31T00:01:00Z",
                    "/usr/bin/p2",
                ),
            ]);
            let b = batch(vec![
                ev(
                    &format!("syslog:c{i}"),
                    "2026-10-30T23:59:00Z",
                    "/usr/bin/p2",
                ),
                ev(
                    &format!("syslog:d{i}"),
                    "2026-10-31T00:01:00Z",
                    "/usr/bin/p1",
                ),
            ]);
            let (ra, rb) = tokio::join!(
                server.post(Some(&admin), "/v1/imports", &a),
                server.post(Some(&admin), "/v1/imports", &b)
            );
            ra.expect(200);
            rb.expect(200);
        }
        let r = server
            .get(
                Some(&admin),
                "/v1/reports/applications?since=2026-10-30&until=2026-11-01",
            )
            .await
            .expect(200);
        for p in ["/usr/bin/p1", "/usr/bin/p2"] {
            let row = r.body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["program"] == p)
                .unwrap();
            assert_eq!(row["runs"], 20, "{p}");
        }
        server
    })
    .await;
}
