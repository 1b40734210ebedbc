//! One-time approval links, for e-mail and Teams: signed by the server, expiring, used once, and
//! only a way to reach the decision — the person must still be signed in as an approver who may
//! decide the request (and, when the link names a recipient, as that recipient). Opening a link
//! never decides (mail scanners open links); the decision is a POST from the page it shows.
//!
//! Token: base64url(body) "." base64url(HMAC-SHA-256(link key, body)), where body is
//! `v1\n<request id>\n<a|d>\n<recipient or empty>\n<expiry, Unix seconds>\n<nonce>`.
//!
//! Must never: decide on a GET, accept a link whose MAC, expiry or single use fails, or let the
//! link stand in for the approver's own sign-in and authority.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use sha2::Sha256;

use super::{App, AppError, Principal, Result};
use elevate_proto::v1::RequestView;

/// How long a link works.
pub const LINK_TTL: SignedDuration = SignedDuration::from_hours(1);

/// A verified link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalLink {
    pub request: String,
    pub approve: bool,
    pub recipient: Option<String>,
    pub expires: Timestamp,
    pub nonce: String,
}

impl App {
    fn link_mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.keys.link_key())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        mac
    }

    /// A new link to approve (or deny) `request`, for `recipient` alone when given.
    pub fn approval_link(&self, request: &str, approve: bool, recipient: Option<&str>) -> String {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let expires = self.now() + LINK_TTL;
        let body = format!(
            "v1\n{request}\n{}\n{}\n{}\n{}",
            if approve { "a" } else { "d" },
            recipient.unwrap_or_default(),
            expires.as_second(),
            hex::encode(nonce)
        );
        let tag = self.link_mac(body.as_bytes()).finalize().into_bytes();
        format!(
            "{}/portal/links/{}.{}",
            self.public_url(),
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Checks a link's MAC, expiry, single use and recipient for `caller`.
    pub async fn open_link(&self, caller: &Principal, token: &str) -> Result<ApprovalLink> {
        let invalid = || {
            AppError::NotFound(
                "this approval link is not valid; open the request from the portal's queue".into(),
            )
        };
        let (body, tag) = token.split_once('.').ok_or_else(invalid)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.link_mac(&body)
            .verify_slice(&tag)
            .map_err(|_| invalid())?;
        let body = String::from_utf8(body).map_err(|_| invalid())?;
        let parts: Vec<&str> = body.split('\n').collect();
        let [version, request, verdict, recipient, expires, nonce] = parts[..] else {
            return Err(invalid());
        };
        if version != "v1" || !matches!(verdict, "a" | "d") {
            return Err(invalid());
        }
        let expires = expires
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or_else(invalid)?;
        let link = ApprovalLink {
            request: request.to_string(),
            approve: verdict == "a",
            recipient: (!recipient.is_empty()).then(|| recipient.to_string()),
            expires,
            nonce: nonce.to_string(),
        };
        if self.now() >= link.expires {
            return Err(AppError::Gone(format!(
                "this approval link expired at {}; open the request from the portal's queue",
                link.expires
            )));
        }
        if self.store.link_used(&link.nonce).await? {
            return Err(AppError::Gone(
                "this approval link has been used already; open the request from the portal's queue"
                    .into(),
            ));
        }
        if let (Some(r), Principal::Account(a)) = (&link.recipient, caller) {
            if *r != a.name {
                return Err(AppError::Forbidden(format!(
                    "this link was sent to {r}; sign in as {r}, or open the request from the portal's queue"
                )));
            }
        }
        Ok(link)
    }

    /// Decides through a link: the link is used up in the same transaction as the decision,
    /// which goes through every check of `decide_request`.
    pub async fn decide_by_link(
        &self,
        caller: &Principal,
        token: &str,
        comment: Option<&str>,
    ) -> Result<(ApprovalLink, RequestView)> {
        let link = self.open_link(caller, token).await?;
        let view = self
            .decide(
                caller,
                &link.request,
                link.approve,
                comment,
                super::Via::Link,
                Some(&link.nonce),
            )
            .await?;
        Ok((link, view))
    }
}
