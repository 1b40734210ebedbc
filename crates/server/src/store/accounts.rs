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
}

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
        let rows = sqlx::query(
            "SELECT name, password_hash, roles, groups_json, created_ms, email FROM accounts ORDER BY name",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(account).collect()
    }

    /// One account, read in this transaction.
    pub async fn account_in_tx(&mut self, name: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(
            "SELECT name, password_hash, roles, groups_json, created_ms, email FROM accounts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(account).transpose()
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
        let row = sqlx::query(
            "SELECT name, password_hash, roles, groups_json, created_ms, email FROM accounts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account).transpose()
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(
            "SELECT name, password_hash, roles, groups_json, created_ms, email FROM accounts ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account).collect()
    }

    /// The account owning an unexpired API token.
    pub async fn account_by_token(
        &self,
        token_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<AccountRow>> {
        let row = sqlx::query(
            "SELECT a.name, a.password_hash, a.roles, a.groups_json, a.created_ms, a.email, \
             t.created_ms AS signed_in_ms \
             FROM api_tokens t JOIN accounts a ON a.name = t.account \
             WHERE t.token_hash = $1 AND t.expires_ms > $2",
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
