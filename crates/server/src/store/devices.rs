//! Enrolled devices and one-time enrolment tokens.
//!
//! Must never: let an enrolment token work twice or after it expired (the claim is one
//! conditional UPDATE, so two devices racing with one token cannot both win).

use sqlx::any::AnyRow;

use super::{get, json_list, opt_ts, ts, Result, Store, Tx};

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub enrolled_at: jiff::Timestamp,
    pub last_seen_at: Option<jiff::Timestamp>,
    /// When an admin revoked it (its credential is refused from then on), and who.
    pub revoked: Option<(jiff::Timestamp, String)>,
}

#[derive(Debug, Clone)]
pub struct EnrolTokenRow {
    pub tags: Vec<String>,
    pub expires_at: jiff::Timestamp,
    pub used_at: Option<jiff::Timestamp>,
}

fn device(row: &AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: get(row, "id")?,
        name: get(row, "name")?,
        tags: json_list(&get::<String>(row, "tags_json")?)?,
        enrolled_at: ts(get(row, "enrolled_ms")?)?,
        last_seen_at: opt_ts(get(row, "last_seen_ms")?)?,
        revoked: match opt_ts(get(row, "revoked_ms")?)? {
            Some(at) => Some((at, get(row, "revoked_by")?)),
            None => None,
        },
    })
}

const DEVICE_COLUMNS: &str =
    "id, name, tags_json, enrolled_ms, last_seen_ms, revoked_ms, revoked_by";

impl Tx<'_> {
    pub async fn insert_enrol_token(
        &mut self,
        token_hash: &str,
        tags: &[String],
        created_by: &str,
        now: jiff::Timestamp,
        expires: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO enrol_tokens (token_hash, tags_json, created_by, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(serde_json::to_string(tags).expect("strings serialise"))
        .bind(created_by)
        .bind(now.as_millisecond())
        .bind(expires.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Looks an enrolment token up (whatever its state), for a precise error message.
    pub async fn enrol_token(&mut self, token_hash: &str) -> Result<Option<EnrolTokenRow>> {
        let row = sqlx::query(
            "SELECT tags_json, expires_ms, used_ms FROM enrol_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| {
            Ok(EnrolTokenRow {
                tags: json_list(&get::<String>(&r, "tags_json")?)?,
                expires_at: ts(get(&r, "expires_ms")?)?,
                used_at: opt_ts(get(&r, "used_ms")?)?,
            })
        })
        .transpose()
    }

    /// Marks the token used by `device_id` if it is still unused and unexpired. True when claimed.
    pub async fn claim_enrol_token(
        &mut self,
        token_hash: &str,
        device_id: &str,
        now: jiff::Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE enrol_tokens SET used_ms = $1, device_id = $2 \
             WHERE token_hash = $3 AND used_ms IS NULL AND expires_ms > $1",
        )
        .bind(now.as_millisecond())
        .bind(device_id)
        .bind(token_hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_device(
        &mut self,
        id: &str,
        name: &str,
        tags: &[String],
        credential_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<()> {
        // A revoked device's name is free again: its row gives way (the audit log keeps it).
        sqlx::query("DELETE FROM devices WHERE name = $1 AND revoked_ms IS NOT NULL")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO devices (id, name, tags_json, credential_hash, enrolled_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(serde_json::to_string(tags).expect("strings serialise"))
        .bind(credential_hash)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Revokes device `name`; false when there is no such device, or it is revoked already.
    pub async fn revoke_device(
        &mut self,
        name: &str,
        by: &str,
        now: jiff::Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET revoked_ms = $1, revoked_by = $2 \
             WHERE name = $3 AND revoked_ms IS NULL",
        )
        .bind(now.as_millisecond())
        .bind(by)
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// The device behind a credential, revoked or not (the caller refuses a revoked one).
    pub async fn device_by_credential(&self, credential_hash: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE credential_hash = $1"
        ))
        .bind(credential_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device).transpose()
    }

    pub async fn device_by_name(&self, name: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device).transpose()
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device).collect()
    }

    /// Records that a device called in (not audited: it is not a state change anyone acts on).
    /// Goes through the writer lock like every other write.
    pub async fn touch_device(&self, id: &str, now: jiff::Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE devices SET last_seen_ms = $1 WHERE id = $2")
            .bind(now.as_millisecond())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }
}
