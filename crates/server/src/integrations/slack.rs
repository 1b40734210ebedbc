//! Slack's signed requests (v0): every request Slack sends carries `X-Slack-Request-Timestamp`
//! and `X-Slack-Signature = "v0=" + hex(HMAC-SHA-256(signing secret, "v0:" + timestamp + ":" +
//! raw body))`. Verified over the raw bytes before anything parses them, within five minutes of
//! the server's clock (a replayed request is stale).
//!
//! Must never: read the body before the signature holds, compare signatures in a way that leaks
//! timing, or accept a timestamp outside the skew either way.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::webhook::Sent;

/// How far Slack's timestamp may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a request is not from Slack (all are answered 401, saying which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no {0} header")]
    Missing(&'static str),
    #[error("the request's timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the request is more than {MAX_SKEW_SECS} seconds old or ahead (a replay, or a clock that is off)")]
    Stale,
    #[error("the signature is not `v0=` and 64 hex digits")]
    Malformed,
    #[error("the signature does not match the body under this workspace's signing secret")]
    Mismatch,
}

/// Checks a request's headers and raw body against the signing secret at `now`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now.as_second() - seconds).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    let given = signature
        .strip_prefix("v0=")
        .filter(|h| h.len() == 64)
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The Slack app: its secrets, where approval messages go, and who Slack users are here.
#[derive(Clone)]
pub struct SlackConfig {
    pub signing_secret: Vec<u8>,
    /// A bot token (`xoxb-…`) allowed to `chat.postMessage` and `chat.update`.
    pub bot_token: String,
    /// Slack's Web API, `https://slack.com/api` (a local receiver in tests).
    pub api_url: String,
    /// The workspace whose presses count (`team.id` of the payload); an app installed in
    /// another workspace signs its presses too, but its users are not ours.
    pub team_id: String,
    /// `response_url`s in payloads must start with this (`https://hooks.slack.com/`), so a
    /// payload cannot send the server's answers elsewhere.
    pub response_url_prefix: String,
    /// Approver group → channel id: where that group's requests are posted.
    pub channels: std::collections::BTreeMap<String, String>,
    /// Slack user id → account name. Only mapped users may decide; channel membership grants
    /// nothing.
    pub users: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_url", &self.api_url)
            .field("channels", &self.channels)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

/// `action_id`s of the buttons on approval messages.
pub const APPROVE: &str = "elevate_approve";
pub const DENY: &str = "elevate_deny";

/// A button press, taken from a verified `block_actions` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonPress {
    pub slack_user: String,
    pub approve: bool,
    pub request: String,
    pub response_url: String,
}

/// Why a verified payload is not a button press we act on (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body has no `payload` form field")]
    NoPayload,
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("the payload is a {0:?}, not block_actions")]
    NotBlockActions(String),
    #[error("the payload has no {0}")]
    Missing(&'static str),
    #[error("the action {0:?} is not one of Elevate's buttons")]
    UnknownAction(String),
    #[error("the response_url is not Slack's")]
    ForeignResponseUrl,
    #[error("the press comes from workspace {0:?}, not this server's")]
    ForeignTeam(String),
}

/// Reads the button press out of a form-encoded interactivity body (after `verify`).
pub fn parse_press(
    body: &[u8],
    team_id: &str,
    response_url_prefix: &str,
) -> Result<ButtonPress, PayloadError> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or(PayloadError::NoPayload)?;
    let v: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let kind = v["type"].as_str().unwrap_or_default();
    if kind != "block_actions" {
        return Err(PayloadError::NotBlockActions(kind.to_string()));
    }
    let team = v["team"]["id"]
        .as_str()
        .or_else(|| v["user"]["team_id"].as_str())
        .unwrap_or_default();
    if team != team_id {
        return Err(PayloadError::ForeignTeam(team.to_string()));
    }
    let slack_user = v["user"]["id"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or(PayloadError::Missing("user.id"))?;
    let action = v["actions"]
        .get(0)
        .ok_or(PayloadError::Missing("actions[0]"))?;
    let action_id = action["action_id"]
        .as_str()
        .ok_or(PayloadError::Missing("actions[0].action_id"))?;
    let approve = match action_id {
        APPROVE => true,
        DENY => false,
        other => return Err(PayloadError::UnknownAction(other.to_string())),
    };
    let request = action["value"]
        .as_str()
        .filter(|r| !r.is_empty() && r.len() <= 64)
        .ok_or(PayloadError::Missing("actions[0].value"))?;
    let response_url = v["response_url"]
        .as_str()
        .ok_or(PayloadError::Missing("response_url"))?;
    if !response_url.starts_with(response_url_prefix) {
        return Err(PayloadError::ForeignResponseUrl);
    }
    Ok(ButtonPress {
        slack_user: slack_user.to_string(),
        approve,
        request: request.to_string(),
        response_url: response_url.to_string(),
    })
}

/// Text for a field Slack reads as mrkdwn (a message's `text`): `&`, `<` and `>` escaped as
/// Slack asks, so mentions and links in untrusted text stay text; control characters visible.
pub fn mrkdwn_text(text: &str) -> String {
    crate::integrations::printable(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A text object that Slack shows exactly as given: `plain_text` is never parsed for
/// formatting, mentions or links, so untrusted text stays text. Cut to Slack's limits.
pub fn plain(text: &str, max: usize) -> serde_json::Value {
    let clean = crate::integrations::printable(text);
    serde_json::json!({ "type": "plain_text", "text": crate::integrations::cut(&clean, max), "emoji": false })
}

/// The Block Kit message for a request: the facts as plain text, and buttons while it waits.
pub fn blocks(request: &serde_json::Value, status_line: &str, buttons: bool) -> serde_json::Value {
    let id = request["id"].as_str().unwrap_or_default();
    let what = crate::integrations::describe_target(&request["target"]);
    let mut fields = vec![
        plain(
            &format!("User: {}", request["user"].as_str().unwrap_or("?")),
            300,
        ),
        plain(
            &format!("Device: {}", request["device"].as_str().unwrap_or("?")),
            300,
        ),
    ];
    if let Some(sha) = request["target"]["sha256"].as_str() {
        fields.push(plain(
            &format!("SHA-256: {}", &sha[..sha.len().min(16)]),
            300,
        ));
    }
    if let Some(p) = request["target"]["package"].as_str() {
        fields.push(plain(&format!("Package: {p}"), 300));
    }
    let mut out = vec![
        serde_json::json!({ "type": "header", "text": plain("Elevation request", 150) }),
        serde_json::json!({ "type": "section", "text": plain(&what, 3000), "fields": fields }),
        serde_json::json!({ "type": "section", "text": plain(&format!("Reason: {}",
            request["reason"].as_str().unwrap_or("(none given)")), 3000) }),
        serde_json::json!({ "type": "context", "elements": [plain(status_line, 2000)] }),
    ];
    if buttons {
        out.push(serde_json::json!({
            "type": "actions",
            "block_id": format!("elevate:{id}"),
            "elements": [
                { "type": "button", "action_id": APPROVE, "style": "primary",
                  "text": plain("Approve", 75), "value": id },
                { "type": "button", "action_id": DENY, "style": "danger",
                  "text": plain("Deny", 75), "value": id },
                { "type": "button", "action_id": "elevate_open",
                  "text": plain("Open in portal", 75),
                  "url": request["url"].as_str().unwrap_or_default() },
            ],
        }));
    }
    serde_json::Value::Array(out)
}

/// Calls a Slack Web API method with the bot token; returns how it went and Slack's answer.
pub async fn call(
    client: &reqwest::Client,
    config: &SlackConfig,
    method: &str,
    body: &serde_json::Value,
) -> (Sent, Option<serde_json::Value>) {
    let url = format!("{}/{method}", config.api_url.trim_end_matches('/'));
    let answer = client
        .post(&url)
        .bearer_auth(&config.bot_token)
        .json(body)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            return (
                Sent::Retry {
                    status: None,
                    error: format!("{method}: {}", super::webhook::describe(e)),
                },
                None,
            )
        }
    };
    let status = answer.status().as_u16();
    if status == 429 || answer.status().is_server_error() {
        return (
            Sent::Retry {
                status: Some(status),
                error: format!("{method}: Slack answered {status}"),
            },
            None,
        );
    }
    let json: serde_json::Value = answer.json().await.unwrap_or_default();
    if json["ok"] == true {
        return (Sent::Delivered(status), Some(json));
    }
    let error = json["error"]
        .as_str()
        .unwrap_or("no error given")
        .to_string();
    let sent = if error == "ratelimited" || error == "internal_error" || error == "fatal_error" {
        Sent::Retry {
            status: Some(status),
            error: format!("{method}: {error}"),
        }
    } else {
        Sent::Refused {
            status,
            error: format!("{method}: Slack said {error:?}"),
        }
    };
    (sent, Some(json))
}

/// Posts to a `response_url` from a verified payload (only Slack's, see `parse_press`).
pub async fn respond(
    client: &reqwest::Client,
    config: &SlackConfig,
    url: &str,
    body: &serde_json::Value,
) -> Sent {
    if !url.starts_with(&config.response_url_prefix) {
        return Sent::Refused {
            status: 0,
            error: "the response_url is not Slack's".into(),
        };
    }
    match client.post(url).json(body).send().await {
        Ok(a) if a.status().is_success() => Sent::Delivered(a.status().as_u16()),
        Ok(a) if a.status().is_server_error() || a.status().as_u16() == 429 => Sent::Retry {
            status: Some(a.status().as_u16()),
            error: format!("the response_url answered {}", a.status()),
        },
        Ok(a) => Sent::Refused {
            status: a.status().as_u16(),
            error: format!(
                "the response_url answered {} (it lives 30 minutes)",
                a.status()
            ),
        },
        Err(e) => Sent::Retry {
            status: None,
            error: format!("the response_url: {}", super::webhook::describe(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example (shared/testdata/integrations/slack).
    fn vector() -> Option<serde_json::Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/integrations/slack/signature_test_vector.json"
        );
        match std::fs::read_to_string(path) {
            Ok(text) => Some(serde_json::from_str(&text).expect("the vector is JSON")),
            Err(_) => {
                assert!(std::env::var("CI").is_err(), "{path} is missing in CI");
                eprintln!(
                    "SKIPPED: {path} not found (the shared folder sits beside the project in CI)"
                );
                None
            }
        }
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies_and_anything_else_is_refused() {
        let Some(v) = vector() else { return };
        let secret = v["signing_secret"].as_str().unwrap().as_bytes();
        let ts = v["timestamp"].as_str().unwrap();
        let body = v["body"].as_str().unwrap().as_bytes();
        let sig = v["expected_signature"].as_str().unwrap();
        let now: i64 = ts.parse().unwrap();
        assert_eq!(
            verify(secret, Some(ts), Some(sig), body, at(now + 10)),
            Ok(())
        );
        // Within the skew, either way; not beyond it.
        assert_eq!(
            verify(secret, Some(ts), Some(sig), body, at(now - 300)),
            Ok(())
        );
        assert_eq!(
            verify(secret, Some(ts), Some(sig), body, at(now + 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(secret, Some(ts), Some(sig), body, at(now - 301)),
            Err(SignatureError::Stale)
        );
        // One byte of the body changed.
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(secret, Some(ts), Some(sig), &tampered, at(now)),
            Err(SignatureError::Mismatch)
        );
        // Another timestamp with the same signature (a replay made fresh).
        let later = (now + 60).to_string();
        assert_eq!(
            verify(secret, Some(&later), Some(sig), body, at(now + 60)),
            Err(SignatureError::Mismatch)
        );
        // Another secret.
        assert_eq!(
            verify(b"another-secret", Some(ts), Some(sig), body, at(now)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, None, Some(sig), body, at(now)),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(secret, Some(ts), None, body, at(now)),
            Err(SignatureError::Missing("X-Slack-Signature"))
        );
        assert_eq!(
            verify(secret, Some(ts), Some("v1=abc"), body, at(now)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(secret, Some("soon"), Some(sig), body, at(now)),
            Err(SignatureError::BadTimestamp)
        );
    }
}
