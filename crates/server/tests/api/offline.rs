//! Offline codes, the helpdesk's side: a challenge read out from a device that cannot reach the
//! server names the device and the user; the answer is a response code under that device's
//! secret, recorded before it is shown.

use elevate_core::offline::{command_bits, command_digest, device_key, Challenge, Response, Scope};
use serde_json::json;

use super::for_each_backend;

#[tokio::test]
async fn the_helpdesk_answers_a_challenge_for_the_device_and_user_it_names() {
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        server.enrol(&admin, "web-02", &["server"]).await;
        let device_id = enrolled["device_id"].as_str().unwrap();
        let secret = hex::decode(enrolled["device_secret"].as_str().unwrap()).unwrap();
        // alice (uid 1005) asked from web-01 once, so the server knows her name there.
        server
            .post(
                Some(&device),
                "/v1/requests",
                &elevate_testkit::command_request("alice", &[], "/usr/bin/id", &[]),
            )
            .await
            .expect(201);
        // The device asks for /usr/bin/id, whose bytes the server saw in alice's request.
        let id = command_digest("/usr/bin/id", &"ab".repeat(32), &[]);
        let challenge = Challenge {
            device: device_key(device_id),
            uid: 1005,
            nonce: 0x123_4567,
            command: command_bits(&id),
        };
        // As a person would type it from the phone.
        let typed = challenge.encode().to_lowercase().replace('-', " ");

        let seen = server
            .post(Some(&admin), "/v1/offline/challenges", &json!({ "challenge": typed }))
            .await
            .expect(200);
        assert_eq!(seen.body["devices"][0]["name"], "web-01", "{}", seen.text);
        assert_eq!(seen.body["devices"].as_array().unwrap().len(), 1);
        assert_eq!((seen.body["uid"].clone(), seen.body["user"].clone()), (json!(1005), json!("alice")));
        assert_eq!(seen.body["challenge"], challenge.encode());

        let answer = server
            .post(
                Some(&admin),
                "/v1/offline/responses",
                &json!({ "challenge": typed, "scope": "request", "minutes": 30,
                         "reason": "printer driver, site visit", "command": "/usr/bin/id" }),
            )
            .await
            .expect(201);
        let code = answer.body["response"].as_str().unwrap();
        let response = Response::parse(code).unwrap();
        assert_eq!((response.scope, response.minutes), (Scope::Request, 30));
        // The device, with its own secret and no network, accepts it for this command only.
        assert!(challenge.verify(&secret, &response, Some(&id)));
        let other = command_digest("/usr/bin/id", &"ab".repeat(32), &["-u".into()]);
        assert!(!challenge.verify(&secret, &response, Some(&other)));
        // The helpdesk saw what it covers: the command, its hash and package, and the rule.
        assert_eq!(answer.body["command"], "/usr/bin/id", "{}", answer.text);
        assert_eq!(answer.body["sha256"], "ab".repeat(32));
        assert_eq!(answer.body["package"], "pkg");
        // A code for another command is never made: the helpdesk typed what the caller did not
        // read (or the caller read what the device does not run).
        for (command, status, says) in [
            ("/usr/bin/id -u", 409, "not for /usr/bin/id -u"),
            ("/bin/bash", 409, "not for /bin/bash"),
            ("id", 400, "not a full path"),
            ("/usr/bin/id 'unclosed", 400, "quotes"),
        ] {
            let refused = server
                .post(Some(&admin), "/v1/offline/responses",
                      &json!({ "challenge": typed, "scope": "request", "minutes": 30,
                               "reason": "r", "command": command }))
                .await
                .expect(status);
            assert!(refused.text.contains(says), "{command}: {}", refused.text);
        }
        let untyped = server
            .post(Some(&admin), "/v1/offline/responses",
                  &json!({ "challenge": typed, "scope": "request", "minutes": 30, "reason": "r" }))
            .await
            .expect(400);
        assert!(untyped.text.contains("exactly as the caller reads it"), "{}", untyped.text);
        assert_eq!(answer.body["device"], "web-01");
        assert_eq!(answer.body["user"], "alice");

        // Recorded: who answered, why, for whom, what.
        let audit = server.get(Some(&admin), "/v1/audit?limit=1000").await.expect(200);
        let issued = audit
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "offline.code_issued")
            .expect("the issuance is in the audit log")
            .clone();
        let data: serde_json::Value = serde_json::from_str(issued["data"].as_str().unwrap()).unwrap();
        assert_eq!(issued["actor"], "account:admin");
        assert_eq!(
            (data["device"].clone(), data["uid"].clone(), data["scope"].clone(), data["minutes"].clone(), data["by"].clone()),
            (json!("web-01"), json!(1005), json!("request"), json!(30), json!("admin"))
        );
        assert_eq!(data["reason"], "printer driver, site visit");

        // Back online, the device reports the codes it used: the issued one is accounted for,
        // one this server never issued is raised.
        let never = Challenge { nonce: 4242, ..challenge }.encode();
        let used = |id: &str, challenge: &str| {
            json!({ "id": id, "at": "2026-11-27T10:00:00Z", "actor": "user:alice@web-01",
                "action": "offline.code_used", "subject": format!("request:{id}"),
                "data": { "challenge": challenge, "user": "alice", "uid": 1005 } })
        };
        server
            .post(
                Some(&device),
                "/v1/audit/events",
                &json!({ "events": [
                    used("0192aaaa-0000-7000-8000-000000000001", &challenge.encode()),
                    used("0192aaaa-0000-7000-8000-000000000002", &never)] }),
            )
            .await
            .expect(200);
        let audit = server.get(Some(&admin), "/v1/audit?limit=1000").await.expect(200);
        let alerts: Vec<serde_json::Value> = audit
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "offline.code_unissued")
            .map(|r| serde_json::from_str(r["data"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["challenge"], never);

        // What is refused, and why.
        for (body, status, says) in [
            (json!({ "challenge": typed, "scope": "request", "minutes": 30, "reason": " ", "command": "/usr/bin/id" }), 400, "reason is required"),
            (json!({ "challenge": typed, "scope": "forever", "minutes": 30, "reason": "r" }), 400, "not one"),
            (json!({ "challenge": typed, "scope": "session", "minutes": 0, "reason": "r" }), 400, "between 1 and 1440"),
            (json!({ "challenge": typed, "scope": "session", "minutes": 30, "reason": "r", "device": "web-02" }), 400, "does not belong to web-02"),
        ] {
            let refused = server.post(Some(&admin), "/v1/offline/responses", &body).await.expect(status);
            assert!(refused.text.contains(says), "{says}: {}", refused.text);
        }
        // A misread character is a typo, caught by the check character.
        let mut misread: Vec<char> = challenge.encode().chars().collect();
        misread[3] = if misread[3] == 'A' { 'B' } else { 'A' };
        let misread: String = misread.into_iter().collect();
        let refused = server
            .post(Some(&admin), "/v1/offline/challenges", &json!({ "challenge": misread }))
            .await
            .expect(400);
        assert!(refused.text.contains("misread"), "{}", refused.text);
        // A device this server never enrolled.
        let stranger = Challenge { device: device_key("not-enrolled"), ..challenge };
        server
            .post(Some(&admin), "/v1/offline/challenges", &json!({ "challenge": stranger.encode() }))
            .await
            .expect(404);
        // Nobody answers their own challenge: alice is an approver too, and this is hers.
        server.account("alice", &[elevate_server::app::Role::Approver], &["helpdesk"]).await;
        let alice = server.token("alice").await;
        let own = server
            .post(
                Some(&alice),
                "/v1/offline/responses",
                &json!({ "challenge": typed, "scope": "request", "minutes": 60, "reason": "me",
                         "command": "/usr/bin/id" }),
            )
            .await
            .expect(403);
        assert!(own.text.contains("own"), "{}", own.text);
        // A challenge for one command takes no session code: that would skip its rule.
        let session = server
            .post(
                Some(&admin),
                "/v1/offline/responses",
                &json!({ "challenge": typed, "scope": "session", "minutes": 60, "reason": "r" }),
            )
            .await
            .expect(400);
        assert!(session.text.contains("for one command"), "{}", session.text);
        // A uid nobody can name could be the answering member's own: refused, unless the
        // directory says they have no login on this device.
        let stranger = Challenge { uid: 4242, nonce: 9, command: 0, ..challenge }.encode();
        let unknown = server
            .post(Some(&admin), "/v1/offline/responses",
                  &json!({ "challenge": stranger, "scope": "session", "minutes": 30, "reason": "r" }))
            .await
            .expect(403);
        assert!(unknown.text.contains("could be yours"), "{}", unknown.text);
        server
            .put(Some(&admin), "/v1/people/admin",
                 &json!({ "user_name": "admin", "accounts": ["admin"], "logins": [{ "login": "adm", "scope": "tag:laptops" }] }))
            .await
            .expect(200);
        server
            .post(Some(&admin), "/v1/offline/responses",
                  &json!({ "challenge": stranger, "scope": "session", "minutes": 30, "reason": "r" }))
            .await
            .expect(201);
        // Only approvers and admins answer: not an auditor, not a device.
        server.account("audrey", &[elevate_server::app::Role::Auditor], &[]).await;
        let auditor = server.token("audrey").await;
        for token in [&auditor, &device] {
            server
                .post(
                    Some(token),
                    "/v1/offline/responses",
                    &json!({ "challenge": typed, "scope": "request", "minutes": 30, "reason": "r" }),
                )
                .await
                .expect(403);
        }
        server
    })
    .await;
}

/// Break glass: each helpdesk member gets a share number of their own for a challenge (the
/// same one when they ask again); the policy must allow break glass at all.
#[tokio::test]
async fn break_glass_shares_are_numbered_per_helpdesk_member() {
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        let secret = hex::decode(enrolled["device_secret"].as_str().unwrap()).unwrap();
        // The device names its users at check-in: uid 1005 is alice.
        server
            .put(
                Some(&device),
                "/v1/device-users",
                &json!({ "users": [{ "uid": 1005, "login": "alice" }] }),
            )
            .await
            .expect(200);
        let challenge = Challenge {
            device: device_key(enrolled["device_id"].as_str().unwrap()),
            uid: 1005,
            nonce: 42,
            command: 0,
        };
        let ask = |token: String| {
            let server = &server;
            let text = challenge.encode();
            async move {
                server
                    .post(
                        Some(&token),
                        "/v1/offline/responses",
                        &json!({ "challenge": text, "scope": "break-glass", "minutes": 60,
                                 "reason": "the site is cut off" }),
                    )
                    .await
            }
        };
        // Off unless the policy says how many members it takes.
        let off = ask(admin.clone()).await.expect(400);
        assert!(off.text.contains("break_glass_codes"), "{}", off.text);
        let policy = elevate_testkit::TEST_POLICY.replacen(
            "[defaults]\n",
            "[defaults]\nbreak_glass_codes = 2\n",
            1,
        );
        server.apply_policy(&admin, &policy).await.expect(201);
        server
            .account("hd2", &[elevate_server::app::Role::Approver], &["helpdesk"])
            .await;
        let hd2 = server.token("hd2").await;
        let share = |answer: elevate_testkit::Answer| {
            let r = Response::parse(answer.body["response"].as_str().unwrap()).unwrap();
            assert_eq!(r.scope, Scope::BreakGlass);
            challenge.share_of(&secret, &r, 2).map(|s| s.number)
        };
        assert_eq!(share(ask(admin.clone()).await.expect(201)), Some(1));
        assert_eq!(share(ask(hd2.clone()).await.expect(201)), Some(2));
        // Asking again never gives a member a second share.
        assert_eq!(share(ask(admin.clone()).await.expect(201)), Some(1));
        assert_eq!(share(ask(hd2).await.expect(201)), Some(2));
        // Two members gave shares: the portal lists it for review even if the device never
        // reports the use (a device someone broke glass on is not to be trusted with that).
        let http = elevate_testkit::portal_client();
        let cookie = elevate_testkit::portal_cookie(&http, &server.url, "admin").await;
        let html =
            elevate_testkit::portal_page(&http, &server.url, &cookie, "/portal/break-glass").await;
        assert!(
            html.contains(&challenge.encode())
                && html.contains("use not reported by the device yet")
                && html.contains("admin, hd2")
                && html.contains("NOT REVIEWED"),
            "{html}"
        );
        server
    })
    .await;
}

/// The rule that decides a challenge's command says who may answer it: its responder group, a
/// fresh sign-in for `reauth`, and no code at all for `count = 2` or `offline = false`.
#[tokio::test]
async fn only_those_the_rule_names_answer_its_challenges() {
    for_each_backend(|server| async move {
        let (admin, device, enrolled) = super::ready_enrolled(&server).await;
        let policy = format!(
            "{}\n[[rule]]\nname = \"printers\"\nwhat = {{ paths = [\"/usr/sbin/lpadmin\"] }}\naction = {{ approve = {{ approvers = \"helpdesk\", offline_responders = \"field\" }} }}\n\n[[rule]]\nname = \"passwords\"\nwhat = {{ paths = [\"/usr/bin/passwd\"] }}\naction = {{ approve = {{ approvers = \"helpdesk\", reauth = \"15m\" }} }}\n\n[[rule]]\nname = \"payroll\"\nwhat = {{ paths = [\"/opt/payroll\"] }}\noffline = false\naction = {{ approve = {{ approvers = \"helpdesk\" }} }}\n",
            elevate_testkit::TEST_POLICY
        );
        server.apply_policy(&admin, &policy).await.expect(201);
        server.account("fieldtech", &[elevate_server::app::Role::Approver], &["field"]).await;
        let fieldtech = server.token("fieldtech").await;
        let device_id = enrolled["device_id"].as_str().unwrap();
        let mut nonce = 0;
        let mut challenge_for = |program: &str| {
            nonce += 1;
            Challenge {
                device: device_key(device_id),
                uid: 1005,
                nonce,
                command: command_bits(&command_digest(program, &"ab".repeat(32), &[])),
            }
            .encode()
        };
        for program in ["/usr/sbin/lpadmin", "/usr/sbin/fdisk", "/usr/bin/passwd", "/opt/payroll"] {
            server
                .post(Some(&device), "/v1/requests",
                      &elevate_testkit::command_request("alice", &[], program, &[]))
                .await
                .expect(201);
        }
        let answer = |token: &str, challenge: String, program: &str| {
            let body = json!({ "challenge": challenge, "scope": "request", "minutes": 30,
                               "reason": "office offline", "command": program });
            let token = token.to_owned();
            let server = &server;
            async move { server.post(Some(&token), "/v1/offline/responses", &body).await }
        };

        // offline_responders = "field": the helpdesk decides online, the field technicians
        // answer by phone.
        let printers = challenge_for("/usr/sbin/lpadmin");
        let refused = answer(&admin, printers.clone(), "/usr/sbin/lpadmin").await.expect(403);
        assert!(refused.text.contains("answered by group \\\"field\\\""), "{}", refused.text);
        let given = answer(&fieldtech, printers, "/usr/sbin/lpadmin").await.expect(201);
        assert_eq!(given.body["rule"], "printers", "{}", given.text);

        // count = 2: one code cannot be two people.
        let disks = challenge_for("/usr/sbin/fdisk");
        let refused = answer(&admin, disks, "/usr/sbin/fdisk").await.expect(403);
        assert!(refused.text.contains("needs 2 different approvers"), "{}", refused.text);

        // offline = false.
        let payroll = challenge_for("/opt/payroll");
        let refused = answer(&admin, payroll, "/opt/payroll").await.expect(403);
        assert!(refused.text.contains("takes no offline codes"), "{}", refused.text);

        // reauth = "15m": a sign-in older than that answers nothing.
        let passwords = challenge_for("/usr/bin/passwd");
        answer(&admin, passwords.clone(), "/usr/bin/passwd").await.expect(201);
        server.clock.advance(jiff::SignedDuration::from_mins(20));
        let stale = answer(&admin, passwords.clone(), "/usr/bin/passwd").await.expect(401);
        assert!(stale.text.contains("sign-in within the last 15m"), "{}", stale.text);
        let fresh = server.token("admin").await;
        answer(&fresh, passwords, "/usr/bin/passwd").await.expect(201);
        server
    })
    .await;
}
