//! Slack's signed requests (v0): every request Slack sends carries `X-Slack-Request-Timestamp`
//! and `X-Slack-Signature = "v0=" + hex(HMAC-SHA-256(signing secret, "v0:" + timestamp + ":" +
//! raw body))`. Verified over the raw bytes before anything parses them, within five minutes of
//! the server's clock (a replayed request is stale).
//!
//! Must never: read the body before the signature holds, compare signatures in a way that leaks
//! timing, or accept a timestamp outside the skew either way.

use hmac::{Hmac, Mac};
use sha2::Sha256;

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
