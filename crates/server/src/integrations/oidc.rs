//! OpenID Connect for the portal's sign-in (authorization code flow with PKCE): the provider's
//! discovery document and keys, the authorization URL, the code exchange, and the ID token's
//! checks (signature by the provider's published key, `iss`, `aud`/`azp`, `exp`/`iat`, `nonce`,
//! and `auth_time` when a fresh sign-in was asked for with `max_age`).
//!
//! Must never: accept an ID token that fails any of those checks, a provider whose discovery
//! document names another issuer, a token signed with `none` or an HMAC algorithm (the client
//! secret is not a signing key here), or log the client secret or a token.

use std::collections::BTreeMap;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[oidc]`: the identity provider and how its groups map onto Elevate.
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer exactly as the provider names itself (`https://login.example.com`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// What the portal's button says ("Sign in with Okta").
    pub display_name: String,
    /// The claim that names the Elevate account (`preferred_username`).
    pub username_claim: String,
    /// The claim that lists the person's groups (`groups`).
    pub groups_claim: String,
    /// Provider group → Elevate role (`admin`, `approver`, `auditor`).
    pub roles: BTreeMap<String, String>,
    /// Provider group → Elevate approver group.
    pub approver_groups: BTreeMap<String, String>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("roles", &self.roles)
            .field("approver_groups", &self.approver_groups)
            .finish()
    }
}

/// What the provider's discovery document says (the parts Elevate uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// Why a sign-in through the provider failed, in words for the person signing in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(pub String);

fn fail(m: impl Into<String>) -> OidcError {
    OidcError(m.into())
}

/// The provider's discovery document, checked to name the configured issuer.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, OidcError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let d: Discovery = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            fail(format!(
                "the identity provider does not answer at {url} ({e})"
            ))
        })?
        .json()
        .await
        .map_err(|e| {
            fail(format!(
                "the identity provider's discovery document does not read ({e})"
            ))
        })?;
    // OpenID Connect Discovery 1.0 §4.3: the issuer must be exactly the one asked for.
    if d.issuer != issuer {
        return Err(fail(format!(
            "the identity provider calls itself {:?}, not {issuer:?}; refusing it",
            d.issuer
        )));
    }
    Ok(d)
}

/// The provider's signing keys (its JWKS).
pub async fn keys(
    http: &reqwest::Client,
    d: &Discovery,
) -> Result<jsonwebtoken::jwk::JwkSet, OidcError> {
    http.get(&d.jwks_uri)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            fail(format!(
                "the identity provider's keys cannot be fetched ({e})"
            ))
        })?
        .json()
        .await
        .map_err(|e| fail(format!("the identity provider's keys do not read ({e})")))
}

/// A random URL-safe string of `bytes` random bytes.
pub fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), b.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// PKCE's S256 challenge of a verifier (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the browser goes to sign in.
pub fn authorization_url(
    d: &Discovery,
    config: &OidcConfig,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    verifier: &str,
    max_age: Option<u64>,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair(
            "scope",
            &format!("openid profile email {}", config.groups_claim),
        )
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge(verifier))
        .append_pair("code_challenge_method", "S256");
    if let Some(age) = max_age {
        q.append_pair("max_age", &age.to_string());
        if age == 0 {
            q.append_pair("prompt", "login");
        }
    }
    let sep = if d.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}{}", d.authorization_endpoint, q.finish())
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// Exchanges the code for the provider's tokens; returns the ID token (not yet checked).
pub async fn exchange(
    http: &reqwest::Client,
    d: &Discovery,
    config: &OidcConfig,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<String, OidcError> {
    let answer = http
        .post(&d.token_endpoint)
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| fail(format!("the identity provider does not answer ({e})")))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(fail(format!(
            "the identity provider refused the sign-in code (HTTP {status}); sign in again"
        )));
    }
    let t: TokenAnswer = answer.json().await.map_err(|e| {
        fail(format!(
            "the identity provider's answer does not read ({e})"
        ))
    })?;
    t.id_token.ok_or_else(|| {
        fail("the identity provider sent no ID token (is the openid scope allowed?)")
    })
}

/// What a checked ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
    /// When the person last authenticated at the provider (`auth_time`, else `iat`).
    pub authenticated_at: jiff::Timestamp,
}

/// Checks an ID token: signed by one of `keys` with an asymmetric algorithm, for this client,
/// from this issuer, unexpired (60 s of clock skew), with our `nonce`; and with `max_age`,
/// an `auth_time` no older than that. `now` is the server's clock.
pub fn check_id_token(
    token: &str,
    keys: &jsonwebtoken::jwk::JwkSet,
    config: &OidcConfig,
    nonce: &str,
    max_age: Option<u64>,
    now: jiff::Timestamp,
) -> Result<Identity, OidcError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| fail(format!("the ID token does not read ({e})")))?;
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !allowed.contains(&header.alg) {
        return Err(fail(format!(
            "the ID token is signed with {:?}, which Elevate does not accept",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| {
        fail("the ID token is signed with a key the identity provider does not publish")
    })?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| fail(format!("the identity provider's key does not read ({e})")))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.client_id]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // Elevate's clock, not the library's: fake clocks in tests, one notion of now.
    v.validate_exp = false;
    v.leeway = 0;
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        fail(match e.kind() {
            ErrorKind::InvalidIssuer => "the ID token comes from another issuer".to_owned(),
            ErrorKind::InvalidAudience => "the ID token is for another client".to_owned(),
            ErrorKind::InvalidSignature => "the ID token's signature does not verify".to_owned(),
            other => format!("the ID token is not valid ({other:?})"),
        })
    })?;
    let c = data.claims;
    let skew = 60;
    let secs = |k: &str| c.get(k).and_then(serde_json::Value::as_i64);
    let now_s = now.as_second();
    match secs("exp") {
        Some(exp) if exp + skew >= now_s => {}
        _ => return Err(fail("the ID token has expired; sign in again")),
    }
    match secs("iat") {
        Some(iat) if iat - skew <= now_s => {}
        _ => {
            return Err(fail(
                "the ID token was issued in the future; check the clocks",
            ))
        }
    }
    // With several audiences, the token must be issued to us (OIDC Core §3.1.3.7).
    if let Some(azp) = c.get("azp").and_then(serde_json::Value::as_str) {
        if azp != config.client_id {
            return Err(fail("the ID token was issued to another client"));
        }
    }
    let got = c
        .get("nonce")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if !constant_eq(got.as_bytes(), nonce.as_bytes()) {
        return Err(fail(
            "the ID token does not answer this sign-in (its nonce differs); sign in again",
        ));
    }
    let auth_time = secs("auth_time");
    if let Some(age) = max_age {
        match auth_time {
            Some(t) if now_s - t <= age as i64 + skew => {}
            Some(_) => return Err(fail(
                "the identity provider did not ask you to sign in again; sign out there and retry",
            )),
            None => {
                return Err(fail(
                    "the ID token does not say when you signed in (auth_time)",
                ))
            }
        }
    }
    let authenticated_at = jiff::Timestamp::from_second(auth_time.or(secs("iat")).unwrap_or(now_s))
        .map_err(|_| fail("the ID token's times are out of range"))?;
    let username = c
        .get(&config.username_claim)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            fail(format!(
                "the ID token has no {:?} claim to name your Elevate account",
                config.username_claim
            ))
        })?
        .to_owned();
    let groups = c
        .get(&config.groups_claim)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Identity {
        subject: c
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned(),
        username,
        groups,
        email: c
            .get("email")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        authenticated_at: authenticated_at.min(now),
    })
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
