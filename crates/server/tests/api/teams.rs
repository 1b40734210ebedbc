//! Microsoft Teams against a real HTTP receiver standing in for a channel's incoming webhook:
//! the cards the server sends validate against the official Adaptive Card 1.5 schema, untrusted
//! text is only ever in TextRuns (never Markdown), and the buttons open one-time links that
//! still need a signed-in approver.

use std::collections::BTreeMap;

use elevate_server::app::{Role, Settings};
use elevate_server::integrations::teams::TeamsConfig;
use elevate_testkit::{
    available, command_request, monday_morning, portal_client, portal_cookie, schema_errors,
    spawn_with, testdata, Behaviour, Receiver, BACKENDS,
};
use serde_json::{json, Value};

const SCHEMA: &str = "integrations/teams/adaptive-card-schema-1.5.0.json";

/// Every element of a card with a `type`, depth first.
fn elements<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("type") {
                out.push(v);
            }
            m.values().for_each(|x| elements(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| elements(x, out)),
        _ => {}
    }
}

fn check_card(card: &Value) {
    if let Some(verdict) = schema_errors(SCHEMA, card) {
        verdict.unwrap_or_else(|e| panic!("not a valid Adaptive Card 1.5: {e}\n{card:#}"));
    }
    let mut all = Vec::new();
    elements(card, &mut all);
    assert!(
        !all.iter().any(|e| e["type"] == "TextBlock"),
        "no Markdown-reading TextBlock: {card:#}"
    );
    for run in all.iter().filter(|e| e["type"] == "TextRun") {
        let text = run["text"].as_str().unwrap();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text:?}");
    }
}

#[tokio::test]
async fn teams_cards_validate_and_their_buttons_open_one_time_links() {
    // The validator itself: a Microsoft sample passes, a broken card does not. (Their
    // ExpenseReport sample does not validate: it uses Table.firstRowAsHeaders, which the 1.5
    // schema lacks.)
    if let Some(sample) =
        testdata("integrations/teams/samples_v1.5_Elements_Action.Execute.IsEnabled.json")
    {
        let sample: Value =
            serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
        schema_errors(SCHEMA, &sample).unwrap().unwrap();
        let broken = json!({ "type": "AdaptiveCard", "version": "1.5",
            "body": [{ "type": "RichTextBlock", "inlines": [{ "type": "TextRun", "text": 5 }] }] });
        assert!(schema_errors(SCHEMA, &broken).unwrap().is_err());
    }
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let teams = Receiver::start(
            0,
            Behaviour {
                body: "1".into(),
                ..Behaviour::default()
            },
        )
        .await;
        let url = teams.url("/webhookb2/storage");
        let server = spawn_with(db, monday_morning(), move |s: &mut Settings| {
            s.integrations.teams = Some(TeamsConfig {
                channels: BTreeMap::from([("storage".to_string(), url)]),
            });
        })
        .await;
        let (admin, device) = super::ready(&server).await;
        for name in ["st1", "st2"] {
            server.account(name, &[Role::Approver], &["storage"]).await;
        }
        let hostile = "**Approved** [click](https://evil.example) \u{1b}[0m\n- list item";
        let mut body = command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l", hostile]);
        body["reason"] = json!(hostile);
        let id = server.ask_id(&device, &body).await;

        let post = teams.wait_for("POST", 1).await.remove(0);
        assert_eq!(post.path, "/webhookb2/storage");
        let message = post.json();
        assert_eq!(message["type"], "message");
        assert_eq!(
            message["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &message["attachments"][0]["content"];
        check_card(card);
        assert_eq!(card["version"], "1.5");
        let runs: Vec<String> = {
            let mut all = Vec::new();
            elements(card, &mut all);
            all.iter()
                .filter(|e| e["type"] == "TextRun")
                .map(|e| e["text"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            runs.iter().any(|r| r
                == "Reason: **Approved** [click](https://evil.example) \\u{001b}[0m\\u{000a}- list item"),
            "{runs:?}"
        );
        let actions = card["actions"].as_array().unwrap();
        assert_eq!(actions[0]["title"], "Approve");
        let approve = actions[0]["url"].as_str().unwrap();
        assert!(approve.starts_with(&format!("{}/portal/links/", server.url)));

        // The button opens a one-time link; any approver of the group who signs in may use it.
        let http = portal_client();
        let cookie = portal_cookie(&http, &server.url, "st1").await;
        let page = http
            .get(approve)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        let csrf = elevate_testkit::csrf_of(&page);
        let r = http
            .post(approve)
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let again = http
            .get(approve)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 410);

        let st2 = server.token("st2").await;
        server
            .post(
                Some(&st2),
                &format!("/v1/requests/{id}/approve"),
                &json!({}),
            )
            .await
            .expect(200);
        let outcome = teams.wait_for("POST", 2).await.remove(1).json();
        let card = &outcome["attachments"][0]["content"];
        check_card(card);
        let mut all = Vec::new();
        elements(card, &mut all);
        assert!(all
            .iter()
            .any(|e| e["type"] == "TextRun" && e["text"] == "Approved by st1, st2."));
        assert_eq!(
            card["actions"].as_array().unwrap().len(),
            1,
            "only Open in portal"
        );
        let view = server
            .get(Some(&admin), &format!("/v1/requests/{id}"))
            .await
            .expect(200);
        assert_eq!(view.body["state"], "approved");
        server.stop().await;
    }
}
