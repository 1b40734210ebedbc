//! Stored policy versions: every applied text with its author, comment and digest.
//!
//! Must never: overwrite a version (versions only grow).

use sqlx::any::AnyRow;

use super::{get, ts, Result, Store, Tx};

#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub version: u64,
    pub text: String,
    pub sha256: String,
    pub author: String,
    pub comment: Option<String>,
    pub created_at: jiff::Timestamp,
}

fn policy(row: &AnyRow) -> Result<PolicyRow> {
    Ok(PolicyRow {
        version: get::<i64>(row, "version")? as u64,
        text: get(row, "text")?,
        sha256: get(row, "sha256")?,
        author: get(row, "author")?,
        comment: get(row, "comment")?,
        created_at: ts(get(row, "created_ms")?)?,
    })
}

const COLUMNS: &str = "version, text, sha256, author, comment, created_ms";

impl Tx<'_> {
    /// Stores a new version numbered one above the latest, and returns its number.
    pub async fn insert_policy(
        &mut self,
        text: &str,
        sha256: &str,
        author: &str,
        comment: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<u64> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM policies")
            .fetch_one(&mut *self.tx)
            .await?;
        let version = latest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO policies (version, text, sha256, author, comment, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(version)
        .bind(text)
        .bind(sha256)
        .bind(author)
        .bind(comment)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(version as u64)
    }
}

impl Store {
    pub async fn latest_policy(&self) -> Result<Option<PolicyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policies ORDER BY version DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy).transpose()
    }

    pub async fn policy(&self, version: u64) -> Result<Option<PolicyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policies WHERE version = $1"
        ))
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy).transpose()
    }

    pub async fn policies(&self) -> Result<Vec<PolicyRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM policies ORDER BY version"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(policy).collect()
    }
}

impl Store {
    /// The number of the latest version (cheap: used on every decision).
    pub async fn latest_policy_version(&self) -> Result<Option<u64>> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM policies")
            .fetch_one(&self.pool)
            .await?;
        Ok(v.map(|v| v as u64))
    }
}
