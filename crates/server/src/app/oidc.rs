//! Sign-in with the organisation's identity provider (OpenID Connect): the start (state, nonce
//! and PKCE verifier kept in a cookie the server signs), and the finish (code exchanged, ID
//! token checked, the provider's groups mapped onto Elevate's roles and approver groups, a
//! portal sign-in dated by when the person authenticated at the provider, so a rule's `reauth`
//! counts from there).
//!
//! Must never: sign someone in without every ID token check passing; let single sign-on take
//! over a local account (break glass and small installs keep theirs) or a disabled one; give a
//! role the provider's groups do not map to.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{App, AppError, Result};
use crate::integrations::oidc::{self, OidcConfig};

/// How long a browser may take at the provider.
const START_TTL_SECS: i64 = 600;
/// Cached discovery document and keys are read again after this long (and at once when a
/// token names a key they do not hold).
const PROVIDER_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Whether a password hash is that of an account single sign-on made (`!sso:` and the
/// provider's subject, hashed): no password matches it.
pub(crate) fn is_sso(password_hash: &str) -> bool {
    password_hash == "!sso" || password_hash.starts_with("!sso:")
}

/// The password hash of the account of the provider's person `subject`: it binds the account
/// to that person, so someone who takes the name at the provider later is not them.
fn sso_hash(issuer: &str, subject: &str) -> String {
    use sha2::Digest;
    format!(
        "!sso:{}",
        hex::encode(Sha256::digest(format!("{issuer}\n{subject}").as_bytes()))
    )
}

/// What the start of a sign-in hands the browser: where to go, and the cookie to keep.
#[derive(Debug)]
pub struct OidcStart {
    pub redirect: String,
    pub cookie: String,
}

/// The cookie's contents (signed, not secret from the browser it belongs to).
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    max_age: Option<u64>,
    expires: i64,
}

/// The provider as last read.
#[derive(Debug)]
pub(crate) struct ProviderCache {
    discovery: oidc::Discovery,
    keys: jsonwebtoken::jwk::JwkSet,
    read_at: std::time::Instant,
}

impl App {
    /// The identity provider's settings, when single sign-on is on.
    pub fn oidc(&self) -> Option<&OidcConfig> {
        self.settings.oidc.as_ref()
    }

    fn oidc_config(&self) -> Result<&OidcConfig> {
        self.oidc().ok_or_else(|| {
            AppError::NotFound(
                "single sign-on is not configured ([oidc] in the server's configuration)".into(),
            )
        })
    }

    fn redirect_uri(&self) -> String {
        format!(
            "{}/portal/oidc/callback",
            self.public_url().trim_end_matches('/')
        )
    }

    /// The key that signs the start cookie (derived from the server's master key).
    fn cookie_mac(&self, payload: &str) -> String {
        let key = self.keys.device_secret("oidc-start-cookie");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The provider's discovery document and keys, read again when stale or `refresh`.
    async fn provider(
        &self,
        refresh: bool,
    ) -> Result<(oidc::Discovery, jsonwebtoken::jwk::JwkSet)> {
        let config = self.oidc_config()?;
        let mut cache = self.oidc_cache.lock().await;
        if let Some(c) = cache
            .as_ref()
            .filter(|c| !refresh && c.read_at.elapsed() < PROVIDER_TTL)
        {
            return Ok((c.discovery.clone(), c.keys.clone()));
        }
        let unavailable = |e: oidc::OidcError| AppError::Unavailable(e.0);
        let discovery = oidc::discover(&self.http, &config.issuer)
            .await
            .map_err(unavailable)?;
        let keys = oidc::keys(&self.http, &discovery)
            .await
            .map_err(unavailable)?;
        *cache = Some(ProviderCache {
            discovery: discovery.clone(),
            keys: keys.clone(),
            read_at: std::time::Instant::now(),
        });
        Ok((discovery, keys))
    }

    /// Starts a sign-in at the provider; `fresh` asks it to authenticate the person again
    /// (`max_age=0`, `prompt=login`), for rules with `reauth`.
    pub async fn oidc_start(&self, next: &str, fresh: bool) -> Result<OidcStart> {
        let config = self.oidc_config()?;
        let (discovery, _) = self.provider(false).await?;
        let pending = Pending {
            state: oidc::random(24),
            nonce: oidc::random(24),
            verifier: oidc::random(48),
            next: next.to_owned(),
            max_age: fresh.then_some(0),
            expires: self.now().as_second() + START_TTL_SECS,
        };
        let redirect = oidc::authorization_url(
            &discovery,
            config,
            &self.redirect_uri(),
            &pending.state,
            &pending.nonce,
            &pending.verifier,
            pending.max_age,
        );
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&pending).expect("serialises"));
        let cookie = format!("{payload}.{}", self.cookie_mac(&payload));
        Ok(OidcStart { redirect, cookie })
    }

    /// Finishes a sign-in: the browser's start cookie, the provider's `state` and `code`.
    /// Returns the portal cookie and where to go.
    pub async fn oidc_finish(
        &self,
        cookie: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(String, String)> {
        let config = self.oidc_config()?;
        let refused = |m: &str| AppError::Unauthenticated(format!("{m}; sign in again"));
        let cookie =
            cookie.ok_or_else(|| refused("this browser did not start a sign-in (no cookie)"))?;
        let (payload, mac) = cookie
            .split_once('.')
            .ok_or_else(|| refused("the sign-in cookie is damaged"))?;
        if !super::auth::constant_time_eq(&self.cookie_mac(payload), mac) {
            return Err(refused("the sign-in cookie is not this server's"));
        }
        let pending: Pending = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| refused("the sign-in cookie is damaged"))?;
        if pending.expires < self.now().as_second() {
            return Err(refused("the sign-in took too long"));
        }
        if !super::auth::constant_time_eq(&pending.state, state) {
            return Err(refused("the answer is for another sign-in (state differs)"));
        }
        let (discovery, mut keys) = self.provider(false).await?;
        let token = oidc::exchange(
            &self.http,
            &discovery,
            config,
            &self.redirect_uri(),
            code,
            &pending.verifier,
        )
        .await
        .map_err(|e| AppError::Unauthenticated(e.0))?;
        // A key the cache does not hold: the provider may have rotated; read its keys again.
        if let Ok(h) = jsonwebtoken::decode_header(&token) {
            if h.kid.as_deref().is_some_and(|k| keys.find(k).is_none()) {
                keys = self.provider(true).await?.1;
            }
        }
        let now = self.now();
        let id = oidc::check_id_token(&token, &keys, config, &pending.nonce, pending.max_age, now)
            .map_err(|e| AppError::Unauthenticated(e.0))?;
        let session = self.sso_sign_in(config, &id).await?;
        Ok((session, pending.next))
    }

    /// The account a checked identity signs in as, made or brought up to date from the
    /// provider's groups; returns the portal cookie.
    async fn sso_sign_in(&self, config: &OidcConfig, id: &oidc::Identity) -> Result<String> {
        elevate_proto::v1::check_name("the account name", &id.username)
            .map_err(AppError::Forbidden)?;
        let mut roles: Vec<String> = id
            .groups
            .iter()
            .filter_map(|g| config.roles.get(g).cloned())
            .collect();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(AppError::Forbidden(format!(
                "your groups at the identity provider ({}) give you no Elevate role; an admin maps them in [oidc.roles]",
                if id.groups.is_empty() { "none".to_owned() } else { id.groups.join(", ") }
            )));
        }
        let mut groups: Vec<String> = id
            .groups
            .iter()
            .filter_map(|g| config.approver_groups.get(g).cloned())
            .collect();
        groups.sort();
        groups.dedup();
        let now = self.now();
        let cookie = super::auth::new_token(super::auth::SESSION_TOKEN);
        let csrf = super::auth::new_token("");
        let mut tx = self.store.begin().await?;
        let bound = sso_hash(&config.issuer, &id.subject);
        let local = || {
            AppError::Forbidden(format!(
                "{} is a local account of this server; single sign-on does not take it over (an admin removes or renames it first)",
                id.username
            ))
        };
        if let Some(existing) = tx.account_in_tx(&id.username).await? {
            if !is_sso(&existing.password_hash) {
                return Err(local());
            }
            if existing.password_hash != "!sso" && existing.password_hash != bound {
                return Err(AppError::Forbidden(format!(
                    "the account {} belongs to another person at the identity provider (another subject); an Elevate admin must look into it",
                    id.username
                )));
            }
            if existing.disabled_at.is_some() {
                return Err(AppError::Forbidden(format!(
                    "the account {} is disabled; ask an Elevate admin",
                    id.username
                )));
            }
        }
        if !tx
            .upsert_sso_account(&id.username, &bound, &roles, &groups, now)
            .await?
        {
            return Err(local());
        }
        if let Some(email) = &id.email {
            tx.set_account_email(&id.username, Some(email)).await?;
        }
        tx.append_audit(self.event(
            format!("account:{}", id.username),
            "portal.signed_in",
            format!("account:{}", id.username),
            serde_json::json!({ "via": "oidc", "issuer": config.issuer, "subject": id.subject,
                "groups": id.groups, "roles": roles, "approver_groups": groups,
                "authenticated_at": id.authenticated_at.to_string() }),
        ))
        .await?;
        // Dated when the person authenticated at the provider: `reauth` counts from there.
        tx.insert_sign_in(
            &super::auth::token_hash(&cookie),
            &id.username,
            &csrf,
            id.authenticated_at,
            now + self.settings.session_ttl,
        )
        .await?;
        tx.commit().await?;
        Ok(cookie)
    }
}
