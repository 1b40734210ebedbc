//! Accounts of approvers, admins and auditors; their API tokens and portal sessions.
//!
//! Must never: store a password or a token in clear (argon2id hashes and SHA-256 digests only).

use sqlx::any::AnyRow;

use super::{get, json_list, ts, Result, Store, Tx};

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub created_at: jiff::Timestamp,
    /// Where notifications for this person go.
    pub email: Option<String>,
    /// When the credential this account is acting with was issued (a portal sign-in or an API
    /// token); `None` when the account was read without one.
    pub signed_in_at: Option<jiff::Timestamp>,
    /// When an admin disabled it (nothing it holds works until it is enabled again).
    pub disabled_at: Option<jiff::Timestamp>,
}

/// An API token as its owner and admins see it: never the token, and an id that is the first 16
/// hex digits of its SHA-256 digest.
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub id: String,
    pub account: String,
    pub label: Option<String>,
    pub created_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
}

/// The columns `account()` reads.
const ACCOUNT_COLUMNS: &str =
    "name, password_hash, roles, groups_json, created_ms, email, disabled_ms";

#[derive(Debug, Clone)]
/// A person signed in to the portal (the cookie is kept only as its hash).
pub struct SignInRow {
    pub account: String,
    pub csrf: String,
    pub created_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
}

fn account(row: &AnyRow) -> Result<AccountRow> {
    let roles: String = get(row, "roles")?;
    Ok(AccountRow {
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        groups: json_list(&get::<String>(row, "groups_json")?)?,
        created_at: ts(get(row, "created_ms")?)?,
        email: get(row, "email")?,
        signed_in_at: None,
        disabled_at: super::opt_ts(get(row, "disabled_ms")?)?,
    })
}

impl Tx<'_> {
    /// Creates an account, or replaces its password, roles and groups if it exists.
    pub async fn upsert_account(
        &mut self,
        name: &str,
        password_hash: &str,
        roles: &[String],
        groups: &[String],
        now: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (name, password_hash, roles, groups_json, created_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, \
             roles = excluded.roles, groups_json = excluded.groups_json",
        )
        .bind(name)
        .bind(password_hash)
        .bind(roles.join(","))
        .bind(serde_json::to_string(groups).expect("strings serialise"))
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Creates or updates an account single sign-on owns (`password_hash` starting `!sso`);
    /// false, changing nothing, when the name is a local account's (even one made meanwhile).
    pub async fn upsert_sso_account(
        &mut self,
        name: &str,
        password_hash: &str,
        roles: &[String],
        groups: &[String],
        now: jiff::Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO accounts (name, password_hash, roles, groups_json, created_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, \
             roles = excluded.roles, groups_json = excluded.groups_json \
             WHERE accounts.password_hash LIKE '!sso%'",
        )
        .bind(name)
        .bind(password_hash)
        .bind(roles.join(","))
        .bind(serde_json::to_string(groups).expect("strings serialise"))
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_api_token(
        &mut self,
        token_hash: &str,
        account: &str,
        label: Option<&str>,
        now: jiff::Timestamp,
        expires: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, account, label, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(account)
        .bind(label)
        .bind(now.as_millisecond())
        .bind(expires.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_sign_in(
        &mut self,
        session_hash: &str,
        account: &str,
        csrf: &str,
        now: jiff::Timestamp,
        expires: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (session_hash, account, csrf, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(account)
        .bind(csrf)
        .bind(now.as_millisecond())
        .bind(expires.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn set_account_email(&mut self, name: &str, email: Option<&str>) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE accounts SET email = $1 WHERE name = $2")
                .bind(email)
                .bind(name)
                .execute(&mut *self.tx)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// All accounts, read in this transaction (no second connection while it holds locks).
    pub async fn accounts_in_tx(&mut self) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(account).collect()
    }

    /// One account, read in this transaction.
    pub async fn account_in_tx(&mut self, name: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(account).transpose()
    }

    /// Ends every API token and portal sign-in of `account`: how many of each.
    pub async fn end_credentials(&mut self, account: &str) -> Result<(u64, u64)> {
        let tokens = sqlx::query("DELETE FROM api_tokens WHERE account = $1")
            .bind(account)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let sign_ins = sqlx::query("DELETE FROM web_sessions WHERE account = $1")
            .bind(account)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok((tokens, sign_ins))
    }

    /// Disables (`Some(now)`) or enables (`None`) an account; false when there is none.
    pub async fn set_account_disabled(
        &mut self,
        name: &str,
        disabled: Option<jiff::Timestamp>,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE accounts SET disabled_ms = $1 WHERE name = $2")
            .bind(disabled.map(|t| t.as_millisecond()))
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an account with its tokens and sign-ins; false when there is none.
    pub async fn delete_account(&mut self, name: &str) -> Result<bool> {
        self.end_credentials(name).await?;
        let done = sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the API token whose id is `id` (of `account`, when given); its owner, or `None`
    /// when there is no such token.
    pub async fn delete_api_token(
        &mut self,
        id: &str,
        account: Option<&str>,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT token_hash, account FROM api_tokens WHERE substr(token_hash, 1, 16) = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let owner: String = get(&row, "account")?;
        if account.is_some_and(|a| a != owner) {
            return Ok(None);
        }
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(get::<String>(&row, "token_hash")?)
            .execute(&mut *self.tx)
            .await?;
        Ok(Some(owner))
    }

    pub async fn delete_sign_in(&mut self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

impl Store {
    pub async fn account(&self, name: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account).transpose()
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account).collect()
    }

    /// Unexpired API tokens, of `account` or of everyone, newest first.
    pub async fn api_tokens(
        &self,
        account: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Vec<ApiTokenRow>> {
        const COLUMNS: &str = "token_hash, account, label, created_ms, expires_ms";
        let rows = match account {
            Some(account) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM api_tokens WHERE expires_ms > $1 AND account = $2 \
                     ORDER BY created_ms DESC"
                ))
                .bind(now.as_millisecond())
                .bind(account)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM api_tokens WHERE expires_ms > $1 \
                     ORDER BY account, created_ms DESC"
                ))
                .bind(now.as_millisecond())
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let hash: String = get(r, "token_hash")?;
                Ok(ApiTokenRow {
                    id: hash[..16].to_owned(),
                    account: get(r, "account")?,
                    label: get(r, "label")?,
                    created_at: ts(get(r, "created_ms")?)?,
                    expires_at: ts(get(r, "expires_ms")?)?,
                })
            })
            .collect()
    }

    /// The account owning an unexpired API token (never a disabled account's).
    pub async fn account_by_token(
        &self,
        token_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<AccountRow>> {
        let row = sqlx::query(
            "SELECT a.name, a.password_hash, a.roles, a.groups_json, a.created_ms, a.email, \
             a.disabled_ms, t.created_ms AS signed_in_ms \
             FROM api_tokens t JOIN accounts a ON a.name = t.account \
             WHERE t.token_hash = $1 AND t.expires_ms > $2 AND a.disabled_ms IS NULL",
        )
        .bind(token_hash)
        .bind(now.as_millisecond())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| {
                let mut a = account(r)?;
                a.signed_in_at = Some(ts(get(r, "signed_in_ms")?)?);
                Ok(a)
            })
            .transpose()
    }

    /// An unexpired portal session.
    pub async fn sign_in(
        &self,
        session_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<SignInRow>> {
        let row = sqlx::query(
            "SELECT account, csrf, created_ms, expires_ms FROM web_sessions \
             WHERE session_hash = $1 AND expires_ms > $2",
        )
        .bind(session_hash)
        .bind(now.as_millisecond())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SignInRow {
                account: get(&r, "account")?,
                csrf: get(&r, "csrf")?,
                created_at: ts(get(&r, "created_ms")?)?,
                expires_at: ts(get(&r, "expires_ms")?)?,
            })
        })
        .transpose()
    }
}
