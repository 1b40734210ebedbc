//! Slack against a real HTTP receiver standing in for Slack's Web API and response_urls: the
//! approval message in Block Kit with untrusted text inert, button presses signed as Slack signs
//! them (401 before parsing when not), decisions only by mapped approvers who are not the
//! requester, and the message updated with who decided.

use std::collections::BTreeMap;

use elevate_server::app::{Role, Settings};
use elevate_server::integrations::slack::SlackConfig;
use elevate_testkit::{
    available, command_request, monday_morning, spawn_with, testdata, Behaviour, Receiver,
    TestServer, BACKENDS,
};
use hmac::{Hmac, Mac};
use jiff::SignedDuration;
use serde_json::{json, Value};
use sha2::Sha256;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack's own `block_actions` example (testdata), adapted to a press of one of our buttons.
fn press(
    template: &Value,
    slack_user: &str,
    action: &str,
    request: &str,
    respond_to: &str,
) -> Vec<u8> {
    let mut payload = template.clone();
    payload["user"]["id"] = json!(slack_user);
    payload["actions"][0]["action_id"] = json!(action);
    payload["actions"][0]["value"] = json!(request);
    payload["response_url"] = json!(respond_to);
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
        .into_bytes()
}

async fn send(
    server: &TestServer,
    body: &[u8],
    timestamp: Option<i64>,
    signature: Option<String>,
) -> u16 {
    let mut request = server
        .http
        .post(format!("{}/v1/integrations/slack/actions", server.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_vec());
    if let Some(ts) = timestamp {
        request = request.header("X-Slack-Request-Timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("X-Slack-Signature", sig);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn signed(server: &TestServer, body: &[u8]) -> u16 {
    let now = server.clock.now().as_second();
    send(
        server,
        body,
        Some(now),
        Some(sign(SIGNING_SECRET, now, body)),
    )
    .await
}

/// Every text object in a message, with its type.
fn texts(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(t)), Some(Value::String(text))) =
                (m.get("type"), m.get("text"))
            {
                out.push((t.clone(), text.clone()));
            }
            m.values().for_each(|x| texts(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn slack_buttons_decide_only_for_mapped_approvers_and_the_message_follows() {
    let Some(template) = testdata("integrations/slack/bolt-python_block_actions_payload.json")
    else {
        return;
    };
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(template).unwrap()).unwrap();
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let slack = Receiver::start(
            0,
            Behaviour {
                body: r#"{"ok":true,"channel":"C0STORAGE","ts":"1700000000.000100"}"#.into(),
                ..Behaviour::default()
            },
        )
        .await;
        let (api, hooks) = (slack.url("/api"), slack.url("/actions/"));
        let server = spawn_with(db, monday_morning(), move |s: &mut Settings| {
            s.integrations.slack = Some(SlackConfig {
                signing_secret: SIGNING_SECRET.as_bytes().to_vec(),
                bot_token: "xoxb-test-token".into(),
                api_url: api,
                team_id: "T111".into(),
                response_url_prefix: hooks,
                // The rule's own channel wins over its group's.
                channels: BTreeMap::from([
                    ("storage".to_string(), "C0STORAGE".to_string()),
                    (
                        "disk tools need two storage admins".to_string(),
                        "C0DISKS".to_string(),
                    ),
                ]),
                users: BTreeMap::from([
                    ("W111".to_string(), "st1".to_string()),
                    ("W222".to_string(), "st2".to_string()),
                    ("W333".to_string(), "alice".to_string()),
                    ("W444".to_string(), "helper".to_string()),
                ]),
            });
        })
        .await;
        let (admin, device) = super::ready(&server).await;
        for name in ["st1", "st2", "alice"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        // Mapped, an approver, but not in the routed group.
        server
            .account("helper", &[Role::Approver], &["helpdesk"])
            .await;

        let hostile =
            "*urgent* <!channel> <https://evil.example|click> \u{1b}[2J\nApproved by admin";
        let mut body = command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l", hostile]);
        body["reason"] = json!(hostile);
        let id = server.ask_id(&device, &body).await;

        // The approval message, posted with the bot token to the group's channel.
        let post = slack.wait_for("POST", 1).await.remove(0);
        assert_eq!(post.path, "/api/chat.postMessage");
        assert_eq!(post.header("authorization"), Some("Bearer xoxb-test-token"));
        let message = post.json();
        assert_eq!(message["channel"], "C0DISKS");
        let mut all = Vec::new();
        texts(&message["blocks"], &mut all);
        assert!(!all.is_empty());
        for (kind, text) in &all {
            assert_eq!(kind, "plain_text", "untrusted text is never mrkdwn: {text}");
            assert!(
                !text.contains('\u{1b}') && !text.contains('\n'),
                "no raw escape or newline: {text:?}"
            );
        }
        let shown: String = all
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        assert!(shown.contains("*urgent* <!channel>"), "{shown}");
        assert!(
            shown.contains("\\u{001b}[2J\\u{000a}Approved by admin"),
            "{shown}"
        );
        assert!(
            shown.contains("Waiting for 2 approval(s) from storage"),
            "{shown}"
        );
        let buttons = message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("buttons while it waits");
        assert_eq!(buttons["elements"][0]["value"], id.as_str());
        assert!(!message["text"].as_str().unwrap().contains('\n'));

        let respond_to = slack.url("/actions/T111/111/random-value");
        let approve = |user: &str| press(&template, user, "elevate_approve", &id, &respond_to);

        // Not from Slack: refused with 401 before the body is read, even a body that is not a
        // form at all.
        let now = server.clock.now().as_second();
        let good = approve("W111");
        let mut tampered = good.clone();
        let at = tampered.len() - 5;
        tampered[at] ^= 1;
        assert_eq!(
            send(
                &server,
                &tampered,
                Some(now),
                Some(sign(SIGNING_SECRET, now, &good))
            )
            .await,
            401
        );
        assert_eq!(
            send(
                &server,
                &good,
                Some(now - 301),
                Some(sign(SIGNING_SECRET, now - 301, &good))
            )
            .await,
            401
        );
        assert_eq!(
            send(&server, &good, None, Some(sign(SIGNING_SECRET, now, &good))).await,
            401
        );
        assert_eq!(send(&server, &good, Some(now), None).await, 401);
        assert_eq!(
            send(
                &server,
                b"\xff\xfenot a form",
                Some(now),
                Some(sign("wrong", now, b"\xff\xfenot a form"))
            )
            .await,
            401
        );
        // Signed, but not a press of our buttons.
        assert_eq!(signed(&server, b"payload=%7Bnot%20json").await, 400);
        assert_eq!(
            signed(&server, &press(&template, "W111", "a", &id, &respond_to)).await,
            400
        );
        // Signed by the app, but pressed in another workspace where it is installed too.
        let mut foreign = template.clone();
        foreign["team"]["id"] = json!("T999");
        assert_eq!(
            signed(
                &server,
                &press(&foreign, "W111", "elevate_approve", &id, &respond_to)
            )
            .await,
            403
        );
        // A response_url that is not Slack's.
        assert_eq!(
            signed(
                &server,
                &press(
                    &template,
                    "W111",
                    "elevate_approve",
                    &id,
                    "https://evil.example/x"
                )
            )
            .await,
            400
        );
        assert_eq!(
            server.request_json(&admin, &id).await["approvals"],
            json!([])
        );

        // Alice again, under another account: the directory links her Slack id W555 to her
        // account st3 (a storage approver) and to the login alice that asked.
        server.account("st3", &[Role::Approver], &["storage"]).await;
        server
            .put(
                Some(&admin),
                "/v1/people/alice.smith",
                &json!({ "user_name": "alice.smith", "accounts": ["st3"], "slack": ["W555"],
                         "logins": [{ "login": "alice" }] }),
            )
            .await
            .expect(200);
        // An unmapped Slack user, the requester (by name, and as a person under another
        // account), and an approver of another group: each told why, privately, and nothing is
        // decided.
        for (user, why) in [
            ("W999", "not linked to an Elevate approver"),
            ("W333", "cannot decide your own request"),
            ("W555", "a login of alice.smith"),
            ("W444", "routed to approver group \"storage\""),
        ] {
            let before = slack.requests("POST").len();
            assert_eq!(signed(&server, &approve(user)).await, 200, "{user}");
            let got = slack.wait_for("POST", before + 1).await;
            let refusal = got.last().unwrap();
            assert!(
                refusal.path.starts_with("/actions/T111/"),
                "{}",
                refusal.path
            );
            let text = refusal.json();
            assert_eq!(text["response_type"], "ephemeral");
            assert_eq!(text["replace_original"], false);
            assert!(
                text["text"].as_str().unwrap().contains(why),
                "{user}: {text}"
            );
        }
        let view = server.request_json(&admin, &id).await;
        assert_eq!(view["state"], "pending");
        assert_eq!(view["approvals"], json!([]));
        let audit = server.audit_records(&admin).await;
        let refused: Vec<&Value> = audit
            .iter()
            .filter(|r| r["action"] == "request.decision_refused")
            .collect();
        assert_eq!(refused.len(), 4);
        assert_eq!(refused[0]["actor"], "slack:W999");

        // The first mapped approver: counted, via Slack, and the message says so.
        assert_eq!(signed(&server, &approve("W111")).await, 200);
        let view = server.request_json(&admin, &id).await;
        assert_eq!(view["approvals"][0]["approver"], "st1");
        assert_eq!(view["state"], "pending");
        let update = slack.wait_for("POST", 6).await.remove(5);
        assert_eq!(update.path, "/api/chat.update");
        let update = update.json();
        assert_eq!(update["ts"], "1700000000.000100");
        assert_eq!(update["channel"], "C0DISKS");
        let mut all = Vec::new();
        texts(&update["blocks"], &mut all);
        assert!(
            all.iter().any(|(_, t)| t.contains("1 of 2 approvals: st1")),
            "{all:?}"
        );

        // The same person again is refused; a second approver completes it.
        assert_eq!(signed(&server, &approve("W111")).await, 200);
        let again = slack.wait_for("POST", 7).await.remove(6);
        assert!(again.json()["text"]
            .as_str()
            .unwrap()
            .contains("already decided"));
        assert_eq!(signed(&server, &approve("W222")).await, 200);
        assert_eq!(server.request_json(&admin, &id).await["state"], "approved");
        let posts = slack.wait_for("POST", 9).await;
        let last = posts.last().unwrap().json();
        let mut all = Vec::new();
        texts(&last["blocks"], &mut all);
        assert!(
            all.iter().any(|(_, t)| t == "Approved by st1, st2."),
            "{all:?}"
        );
        assert!(
            !last["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["type"] == "actions"),
            "no buttons once decided"
        );
        let given: Vec<Value> = server
            .audit_records(&admin)
            .await
            .iter()
            .filter(|r| r["action"] == "request.approval_given")
            .map(|r| serde_json::from_str(r["data"].as_str().unwrap()).unwrap())
            .collect();
        assert!(given.iter().all(|d| d["via"] == "slack"), "{given:?}");

        // A press long after the buttons were shown is stale.
        server.clock.advance(SignedDuration::from_secs(301));
        let late = approve("W222");
        let then = now;
        assert_eq!(
            send(
                &server,
                &late,
                Some(then),
                Some(sign(SIGNING_SECRET, then, &late))
            )
            .await,
            401
        );
        server.stop().await;
    }
}
