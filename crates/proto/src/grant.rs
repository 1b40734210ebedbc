//! Approvals the server vouches for. When a request is approved, the server signs what it
//! approved — which request, for which device and person, which exact target, with which limits,
//! until when — with the Ed25519 key the device pinned at enrolment, and the agent runs nothing
//! on an approval whose grant does not verify and match its own request. A TLS-terminating proxy
//! or a stolen device credential can change a response's `state`, but cannot sign.
//!
//! Must never: verify a grant with anything but the pinned key, accept one for another request,
//! device, person or target, or after its expiry; or let a signature made for something else
//! (a policy bundle) pass as a grant (the signed bytes start with a context of their own).

use ed25519_dalek::Signer;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::bundle::{verify_signature, SigningKey, VerifyingKey};
use crate::v1::WireTarget;

/// What the signature covers first: a grant's signature is never a bundle's, nor the reverse.
const CONTEXT: &[u8] = b"elevate approval grant v1\n";

/// How long a grant may be used after it was issued (the agent starts at once).
pub const VALIDITY: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// What the server approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPayload {
    pub request_id: String,
    /// The device's name.
    pub device: String,
    pub user: String,
    pub uid: u32,
    /// Lower-case hex SHA-256 of the target as JSON ([`target_digest`]).
    pub target_sha256: String,
    /// The limits the device applies (the decision's).
    pub session_max_secs: u64,
    pub keep_caller_cwd: bool,
    pub continue_on_disconnect: bool,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// A grant as sent: the payload as JSON text and a hex Ed25519 signature over the context and
/// those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedGrant {
    pub payload: String,
    pub signature: String,
}

/// What the device expects a grant to say (its own request).
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub request_id: &'a str,
    pub device: &'a str,
    pub user: &'a str,
    pub uid: u32,
    pub target: &'a WireTarget,
    pub now: Timestamp,
}

/// Why an approval is not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("the approval carries no grant signed by the server")]
    Missing,
    #[error("the approval's grant is not signed by this device's server")]
    BadSignature,
    #[error("the approval's grant is not readable: {0}")]
    Malformed(String),
    #[error("the approval's grant is for something else ({0})")]
    Mismatch(&'static str),
    #[error("the approval's grant expired at {0} (is this machine's clock right?)")]
    Expired(Timestamp),
}

/// Lower-case hex SHA-256 of a target as JSON: what a grant names.
pub fn target_digest(target: &WireTarget) -> String {
    let json = serde_json::to_vec(target).expect("a target always serialises");
    hex::encode(Sha256::digest(&json))
}

fn signed_bytes(payload: &str) -> Vec<u8> {
    [CONTEXT, payload.as_bytes()].concat()
}

impl SignedGrant {
    pub fn sign(payload: &GrantPayload, key: &SigningKey) -> SignedGrant {
        let text = serde_json::to_string(payload).expect("a grant always serialises");
        let signature = key.sign(&signed_bytes(&text));
        SignedGrant {
            payload: text,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// The payload, when the pinned key signed it and it names exactly what is expected.
    pub fn verify(
        &self,
        trusted: &VerifyingKey,
        expected: &Expected<'_>,
    ) -> Result<GrantPayload, GrantError> {
        verify_signature(trusted, &signed_bytes(&self.payload), &self.signature)
            .map_err(|_| GrantError::BadSignature)?;
        let p: GrantPayload = serde_json::from_str(&self.payload)
            .map_err(|e| GrantError::Malformed(e.to_string()))?;
        let checks = [
            (p.request_id == expected.request_id, "another request"),
            (p.device == expected.device, "another device"),
            (
                p.user == expected.user && p.uid == expected.uid,
                "another person",
            ),
            (
                p.target_sha256 == target_digest(expected.target),
                "another command",
            ),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(GrantError::Mismatch(what));
        }
        if expected.now > p.expires_at {
            return Err(GrantError::Expired(p.expires_at));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(args: &[&str]) -> WireTarget {
        WireTarget::Command {
            path: "/usr/bin/apt".into(),
            invoked: None,
            sha256: Some("ab".repeat(32)),
            package: Some("apt".into()),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn payload(t: &WireTarget) -> GrantPayload {
        GrantPayload {
            request_id: "r1".into(),
            device: "web-01".into(),
            user: "alice".into(),
            uid: 1001,
            target_sha256: target_digest(t),
            session_max_secs: 3600,
            keep_caller_cwd: false,
            continue_on_disconnect: false,
            issued_at: at(0),
            expires_at: at(0) + VALIDITY,
        }
    }

    #[test]
    fn a_grant_verifies_only_for_its_own_request_device_person_target_and_time() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let upgrade = target(&["upgrade"]);
        let grant = SignedGrant::sign(&payload(&upgrade), &key);
        let expected = Expected {
            request_id: "r1",
            device: "web-01",
            user: "alice",
            uid: 1001,
            target: &upgrade,
            now: at(60),
        };
        let trusted = key.verifying_key();
        assert_eq!(
            grant.verify(&trusted, &expected).unwrap(),
            payload(&upgrade)
        );

        let purge = target(&["purge", "openssh-server"]);
        let cases = [
            (
                Expected {
                    request_id: "r2",
                    ..expected
                },
                GrantError::Mismatch("another request"),
            ),
            (
                Expected {
                    device: "web-02",
                    ..expected
                },
                GrantError::Mismatch("another device"),
            ),
            (
                Expected { uid: 0, ..expected },
                GrantError::Mismatch("another person"),
            ),
            (
                Expected {
                    target: &purge,
                    ..expected
                },
                GrantError::Mismatch("another command"),
            ),
            (
                Expected {
                    now: at(11 * 60),
                    ..expected
                },
                GrantError::Expired(at(10 * 60)),
            ),
        ];
        for (e, error) in cases {
            assert_eq!(grant.verify(&trusted, &e), Err(error));
        }
        // Another key, a changed payload, a bundle-style signature over the bare payload.
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(
            grant.verify(&other, &expected),
            Err(GrantError::BadSignature)
        );
        let edited = SignedGrant {
            payload: grant.payload.replace("1001", "1002"),
            ..grant.clone()
        };
        assert_eq!(
            edited.verify(&trusted, &expected),
            Err(GrantError::BadSignature)
        );
        let bare = SignedGrant {
            signature: hex::encode(key.sign(grant.payload.as_bytes()).to_bytes()),
            ..grant
        };
        assert_eq!(
            bare.verify(&trusted, &expected),
            Err(GrantError::BadSignature)
        );
    }
}
