//! Who is asking: accounts (password → token or portal session) and enrolled devices (bearer
//! credential). Tokens are random, prefixed by kind, and stored only as SHA-256 digests.
//!
//! Must never: compare secrets with `==` on clear text (hash first), or tell a caller whether an
//! account name exists.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{App, AppError, Result};
use crate::store::{AccountRow, DeviceRow, SignInRow};

/// Token prefixes: API token of an account, device credential, enrolment token, portal session.
pub const ACCOUNT_TOKEN: &str = "eat_";
pub const DEVICE_TOKEN: &str = "edv_";
pub const ENROL_TOKEN: &str = "eet_";
pub const SESSION_TOKEN: &str = "ews_";

/// Roles an account can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Approver,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "approver" => Some(Role::Approver),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Account(AccountRow),
    Device(DeviceRow),
}

impl Principal {
    /// Name for audit records: `account:bob` or `device:web-01`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Account(a) => format!("account:{}", a.name),
            Principal::Device(d) => format!("device:{}", d.name),
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        matches!(self, Principal::Account(a) if a.roles.iter().any(|r| r == role.as_str()))
    }

    /// The account, if the caller holds one of `roles`; else a 403 naming what is needed.
    pub fn require(&self, roles: &[Role]) -> Result<&AccountRow> {
        match self {
            Principal::Account(a) if roles.iter().any(|r| self.has_role(*r)) => Ok(a),
            _ => Err(AppError::Forbidden(format!(
                "this needs the role {} and {} does not have it",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.actor()
            ))),
        }
    }

    pub fn device(&self) -> Result<&DeviceRow> {
        match self {
            Principal::Device(d) => Ok(d),
            Principal::Account(_) => Err(AppError::Forbidden(
                "only an enrolled device can do this; use the device's credential".into(),
            )),
        }
    }
}

/// A random token with a kind prefix.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The digest under which a token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("cannot hash a password: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fixed hash to verify against when the account does not exist, so that timing does not
/// reveal which names exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$yXg5bXrDzoRkyMKz4MU0bTG5BKvVOw8JoF5T2oHqh4w";

impl App {
    /// Checks a password; the same error for an unknown account and a wrong password. Failed
    /// tries slow down further tries (`throttle`): per account from `source`, per source, per
    /// account.
    pub async fn check_password(
        &self,
        name: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<AccountRow> {
        let now = self.now();
        if name.is_empty() || name.len() > 64 {
            return Err(AppError::Unauthenticated(
                "wrong account name or password".into(),
            ));
        }
        {
            let mut failures = self.sign_in_failures.lock().expect("sign-in failures lock");
            if let Some(until) = failures.wait_until(name, source, now) {
                return Err(AppError::TooManyAttempts(format!(
                    "too many failed sign-ins; try again after {until}"
                )));
            }
            failures.record(name, source, now);
        }
        // argon2id takes ~19 MiB per check: a few at a time, whatever the number of callers.
        let _slot = self
            .password_checks
            .acquire()
            .await
            .map_err(|e| AppError::Unexpected(e.into()))?;
        let account = self.store.account(name).await?;
        let hash = account
            .as_ref()
            .map_or(DUMMY_HASH, |a| a.password_hash.as_str());
        let hash = hash.to_string();
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
            .await
            .map_err(|e| AppError::Unexpected(e.into()))?;
        match account {
            Some(a) if ok && a.disabled_at.is_some() => Err(AppError::Unauthenticated(
                "this account is disabled; an admin can enable it again".into(),
            )),
            Some(a) if ok => {
                self.sign_in_failures
                    .lock()
                    .expect("sign-in failures lock")
                    .succeeded(name, source);
                Ok(a)
            }
            _ => Err(AppError::Unauthenticated(
                "wrong account name or password".into(),
            )),
        }
    }

    /// Creates or updates an account (used by `elevate-server account add` and the demo).
    pub async fn upsert_account(
        &self,
        name: &str,
        password: &str,
        roles: &[Role],
        groups: &[String],
    ) -> Result<()> {
        if name.is_empty() || name.len() > 64 || name.contains(char::is_whitespace) {
            return Err(AppError::BadRequest(
                "an account name is 1 to 64 characters without spaces".into(),
            ));
        }
        if password.len() < 12 {
            return Err(AppError::BadRequest(
                "a password needs at least 12 characters".into(),
            ));
        }
        let hash = hash_password(password)?;
        let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_string()).collect();
        let now = self.now();
        let mut tx = self.store.begin().await?;
        // A new password ends every token and portal sign-in the old one gave: whoever learnt
        // the old password keeps nothing it opened.
        let changed = match tx.account_in_tx(name).await? {
            Some(old) => {
                let (typed, old_hash) = (password.to_owned(), old.password_hash);
                !tokio::task::spawn_blocking(move || password_matches(&typed, &old_hash))
                    .await
                    .map_err(|e| AppError::Unexpected(e.into()))?
            }
            None => false,
        };
        tx.append_audit(self.event(
            "system",
            "account.saved",
            format!("account:{name}"),
            serde_json::json!({ "roles": roles, "groups": groups, "password_changed": changed }),
        ))
        .await?;
        tx.upsert_account(name, &hash, &roles, groups, now).await?;
        if changed {
            tx.end_credentials(name).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Exchanges a password for an API token.
    pub async fn issue_token(
        &self,
        name: &str,
        password: &str,
        label: Option<&str>,
        source: Option<std::net::IpAddr>,
    ) -> Result<(String, AccountRow, jiff::Timestamp)> {
        let account = self.check_password(name, password, source).await?;
        let token = new_token(ACCOUNT_TOKEN);
        let now = self.now();
        let expires = now + self.settings.token_ttl;
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            format!("account:{}", account.name),
            "token.issued",
            format!("account:{}", account.name),
            serde_json::json!({ "label": label, "expires_at": expires.to_string() }),
        ))
        .await?;
        tx.insert_api_token(&token_hash(&token), &account.name, label, now, expires)
            .await?;
        tx.commit().await?;
        Ok((token, account, expires))
    }

    /// The caller behind a bearer token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let denied = || {
            AppError::Unauthenticated(
                "the token is unknown or expired; sign in again (elevatectl login)".into(),
            )
        };
        let hash = token_hash(bearer);
        if bearer.starts_with(ACCOUNT_TOKEN) {
            let account = self.store.account_by_token(&hash, self.now()).await?;
            return account.map(Principal::Account).ok_or_else(denied);
        }
        if bearer.starts_with(DEVICE_TOKEN) {
            let device = self
                .store
                .device_by_credential(&hash)
                .await?
                .ok_or_else(denied)?;
            if let Some((at, _)) = device.revoked {
                return Err(AppError::Unauthenticated(format!(
                    "this device's credential was revoked at {at}; an admin must enrol it again (elevated enrol)"
                )));
            }
            // Last-seen is coarse (a minute) so that it does not cost a write per request.
            let now = self.now();
            let stale = device
                .last_seen_at
                .is_none_or(|seen| now.duration_since(seen) > jiff::SignedDuration::from_secs(60));
            if stale {
                self.store.touch_device(&device.id, now).await?;
            }
            return Ok(Principal::Device(device));
        }
        Err(denied())
    }

    /// Signs a person in to the portal: returns the cookie value and the CSRF token.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<(String, String)> {
        let account = self.check_password(name, password, source).await?;
        let cookie = new_token(SESSION_TOKEN);
        let csrf = new_token("");
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            format!("account:{}", account.name),
            "portal.signed_in",
            format!("account:{}", account.name),
            serde_json::json!({}),
        ))
        .await?;
        tx.insert_sign_in(
            &token_hash(&cookie),
            &account.name,
            &csrf,
            now,
            now + self.settings.session_ttl,
        )
        .await?;
        tx.commit().await?;
        Ok((cookie, csrf))
    }

    /// The account and sign-in behind a portal cookie.
    pub async fn signed_in(&self, cookie: &str) -> Result<Option<(AccountRow, SignInRow)>> {
        let Some(sign_in) = self.store.sign_in(&token_hash(cookie), self.now()).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .account(&sign_in.account)
            .await?
            .filter(|a| a.disabled_at.is_none())
            .map(|a| (a, sign_in)))
    }

    /// Signs the person behind a portal cookie out.
    pub async fn sign_out(&self, cookie: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.delete_sign_in(&token_hash(cookie)).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_is_a_valid_phc_string() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!password_matches("anything", DUMMY_HASH));
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong", &h));
    }

    #[test]
    fn tokens_are_prefixed_and_hashed() {
        let t = new_token(ACCOUNT_TOKEN);
        assert!(t.starts_with("eat_") && t.len() == 68);
        assert_ne!(token_hash(&t), t);
        assert_ne!(new_token(ACCOUNT_TOKEN), t);
    }
}
