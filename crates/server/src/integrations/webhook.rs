//! Webhooks: every request and decision event as a CloudEvent 1.0 in structured JSON mode,
//! signed per subscription, sent only to receivers that agreed to take events from us (the
//! CloudEvents HTTP webhook abuse-protection handshake, section 4 of its spec).
//!
//! Signature (the Standard Webhooks scheme, so existing verifiers work): the headers
//! `webhook-id` (the event id), `webhook-timestamp` (Unix seconds) and `webhook-signature` =
//! `v1,` + base64(HMAC-SHA-256(secret, id + "." + timestamp + "." + body)); the secret is the
//! subscription's secret as bytes.
//!
//! Must never: follow a redirect (it would skip the handshake for the new place), send before
//! the receiver allowed our origin, or put a secret into an error message.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One webhook subscription, from the server's configuration.
#[derive(Clone)]
pub struct Subscription {
    /// Unique name, shown in the delivery log.
    pub name: String,
    pub url: String,
    pub secret: Vec<u8>,
    /// Event types it wants, e.g. `request.approved` or `request.*`; empty means all.
    pub events: Vec<String>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Whether this subscription wants events of `action` (e.g. `request.approved`).
    pub fn wants(&self, action: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => e == action,
            })
    }
}

/// The CloudEvents `type` of an Elevate event.
pub fn event_type(action: &str) -> String {
    format!("dev.elevate.{action}")
}

/// The `webhook-signature` header value for `body`.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// 2xx.
    Delivered(u16),
    /// Worth trying again later (network error, 5xx, 408, 429, handshake not answered).
    Retry { status: Option<u16>, error: String },
    /// The receiver refused for good (another 4xx).
    Refused { status: u16, error: String },
}

impl Sent {
    /// Given up at once, with no answer from anyone (misconfigured, or damaged in the queue).
    pub fn refused(error: impl Into<String>) -> Sent {
        Sent::Refused {
            status: 0,
            error: error.into(),
        }
    }
}

/// An HTTP client fit for webhooks: short timeouts, no redirects, no proxies from the
/// environment deciding where events go.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("elevate-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with these settings builds")
}

pub(crate) fn describe(e: reqwest::Error) -> String {
    // Without the URL (it may carry a token); the chain tells connect from timeout.
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The abuse-protection handshake: `OPTIONS` with `WebHook-Request-Origin`; the receiver must
/// answer 2xx with `WebHook-Allowed-Origin` naming our origin or `*`.
pub async fn handshake(client: &reqwest::Client, url: &str, origin: &str) -> Result<(), Sent> {
    let answer = client
        .request(reqwest::Method::OPTIONS, url)
        .header("WebHook-Request-Origin", origin)
        .send()
        .await
        .map_err(|e| Sent::Retry {
            status: None,
            error: format!("the handshake (OPTIONS) failed: {}", describe(e)),
        })?;
    let status = answer.status().as_u16();
    let allowed = answer
        .headers()
        .get("WebHook-Allowed-Origin")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match allowed {
        Some(a) if answer.status().is_success() && (a == "*" || a == origin) => Ok(()),
        Some(a) if answer.status().is_success() => Err(Sent::Retry {
            status: Some(status),
            error: format!(
                "the receiver allows the origin {a:?}, not ours ({origin:?}); \
                 nothing is sent until it allows ours"
            ),
        }),
        _ => Err(Sent::Retry {
            status: Some(status),
            error: format!(
                "the receiver answered the handshake (OPTIONS) with {status} and no \
                 WebHook-Allowed-Origin header; nothing is sent until it allows origin {origin:?} \
                 (CloudEvents webhook abuse protection)"
            ),
        }),
    }
}

/// Posts one CloudEvent (`body`, structured JSON) with its signature headers.
pub async fn post(
    client: &reqwest::Client,
    subscription: &Subscription,
    origin: &str,
    id: &str,
    body: &[u8],
    now: jiff::Timestamp,
) -> Sent {
    let timestamp = now.as_second();
    let answer = client
        .post(&subscription.url)
        .header(
            "Content-Type",
            "application/cloudevents+json; charset=utf-8",
        )
        .header("WebHook-Request-Origin", origin)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(&subscription.secret, id, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            return Sent::Retry {
                status: None,
                error: describe(e),
            }
        }
    };
    let status = answer.status();
    let code = status.as_u16();
    if status.is_success() {
        return Sent::Delivered(code);
    }
    let error = format!("the receiver answered {status}");
    if status.is_server_error() || code == 408 || code == 429 || status.is_redirection() {
        Sent::Retry {
            status: Some(code),
            error,
        }
    } else {
        Sent::Refused {
            status: code,
            error: format!("{error}; not retried (fix the receiver, then send again)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_follows_the_standard_webhooks_scheme() {
        // Computed with Python: base64(hmac.new(b"secret", b'msg_1.1700000000.{"a":1}',
        // sha256).digest()).
        let s = signature(b"secret", "msg_1", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(s, "v1,Q5nZ7DiOGwijBBqvBVAK6c0zDr2JLkXI7TaV4f+Q2vY=");
        assert_ne!(
            s,
            signature(b"secret", "msg_2", 1_700_000_000, br#"{"a":1}"#)
        );
        assert_ne!(
            s,
            signature(b"other", "msg_1", 1_700_000_000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn subscriptions_pick_events_by_name_or_prefix() {
        let mut s = Subscription {
            name: "siem".into(),
            url: "http://127.0.0.1:1/".into(),
            secret: b"x".to_vec(),
            events: vec![],
        };
        assert!(s.wants("request.created"));
        s.events = vec!["request.approved".into(), "request.denial*".into()];
        assert!(s.wants("request.approved"));
        assert!(s.wants("request.denial_given"));
        assert!(!s.wants("request.created"));
        assert!(!format!("{s:?}").contains("secret: "));
    }
}
