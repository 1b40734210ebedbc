//! Microsoft Teams: Adaptive Cards (schema 1.5) posted to a channel's incoming webhook or
//! Workflows URL. A card cannot decide anything itself: its Approve/Deny buttons open one-time
//! approval links (Action.OpenUrl), so the approver signs in to the portal and the decision goes
//! through the same checks as everywhere else.
//!
//! Untrusted text goes into `TextRun`s, which Teams never reads as Markdown, with control
//! characters made visible.
//!
//! Must never: put untrusted text into a `TextBlock` (Markdown) or a URL.

use super::webhook::Sent;

/// Where each approver group's cards go.
#[derive(Clone, Default)]
pub struct TeamsConfig {
    /// Approver group (or `*` for all) → incoming webhook or Workflows URL.
    pub channels: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for TeamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs carry their own credentials.
        f.debug_struct("TeamsConfig")
            .field("groups", &self.channels.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A line of untrusted text, shown exactly (a RichTextBlock of one TextRun).
fn literal(text: &str, weight: Option<&str>) -> serde_json::Value {
    let mut run = serde_json::json!({
        "type": "TextRun",
        "text": super::cut(&super::printable(text), 2000),
    });
    if let Some(w) = weight {
        run["weight"] = serde_json::json!(w);
    }
    serde_json::json!({ "type": "RichTextBlock", "inlines": [run] })
}

/// The card for a request: its facts, where it stands, and buttons that open one-time links.
pub fn card(
    request: &serde_json::Value,
    status: &str,
    links: Option<(&str, &str)>,
    portal: &str,
) -> serde_json::Value {
    let s = |k: &str| request[k].as_str().unwrap_or("?").to_string();
    let mut body = vec![
        literal("Elevation request", Some("Bolder")),
        literal(&super::describe_target(&request["target"]), None),
        literal(&format!("User: {}", s("user")), None),
        literal(&format!("Device: {}", s("device")), None),
    ];
    if let Some(sha) = request["target"]["sha256"].as_str() {
        body.push(literal(&format!("SHA-256: {sha}"), None));
    }
    if let Some(p) = request["target"]["package"].as_str() {
        body.push(literal(&format!("Package: {p}"), None));
    }
    body.push(literal(
        &format!(
            "Reason: {}",
            request["reason"].as_str().unwrap_or("(none given)")
        ),
        None,
    ));
    body.push(literal(status, Some("Bolder")));
    let mut actions = Vec::new();
    if let Some((approve, deny)) = links {
        actions.push(serde_json::json!({ "type": "Action.OpenUrl", "title": "Approve", "url": approve, "style": "positive" }));
        actions.push(serde_json::json!({ "type": "Action.OpenUrl", "title": "Deny", "url": deny, "style": "destructive" }));
    }
    actions.push(
        serde_json::json!({ "type": "Action.OpenUrl", "title": "Open in portal", "url": portal }),
    );
    serde_json::json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": body,
        "actions": actions,
    })
}

/// The message an incoming webhook takes: one Adaptive Card attachment.
pub fn message(card: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Posts a message to a channel URL.
pub async fn post(client: &reqwest::Client, url: &str, message: &serde_json::Value) -> Sent {
    match client.post(url).json(message).send().await {
        Ok(a) if a.status().is_success() => Sent::Delivered(a.status().as_u16()),
        Ok(a) if a.status().is_server_error() || a.status().as_u16() == 429 => Sent::Retry {
            status: Some(a.status().as_u16()),
            error: format!("Teams answered {}", a.status()),
        },
        Ok(a) => Sent::Refused {
            status: a.status().as_u16(),
            error: format!(
                "Teams answered {}; check the channel's webhook URL",
                a.status()
            ),
        },
        Err(e) => Sent::Retry {
            status: None,
            error: format!("Teams: {}", super::webhook::describe(e)),
        },
    }
}
