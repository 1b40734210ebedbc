//! The audit chain in SQL: append inside a caller's transaction, idempotent ingest by event id,
//! ordered reads for verification and export.
//!
//! Must never: update or delete an audit row. The head row (`audit_head`) is written in the same
//! transaction as each append, so a removed tail shows up as `Truncated` at verification.

use elevate_core::audit::{self, AuditEvent, ChainedRecord, Head};
use sqlx::any::AnyRow;

use super::{get, ts, Backend, Result, Store, StoreError, Tx};

/// A signed checkpoint of the chain: record `seq` had `hash`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRow {
    pub seq: u64,
    pub hash: String,
    pub at: jiff::Timestamp,
    /// Hex Ed25519 signature (`app::checkpoints`).
    pub signature: String,
}

/// Everything needed to verify the chain.
#[derive(Debug, Clone)]
pub struct Chain {
    pub records: Vec<ChainedRecord>,
    pub head: Head,
}

impl Store {
    /// The chain's head: how many records, and the last one's hash.
    pub async fn audit_head(&self) -> Result<Head> {
        let head = sqlx::query("SELECT count, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Head {
            count: get::<i64>(&head, "count")? as u64,
            hash: get(&head, "hash")?,
        })
    }

    /// Keeps a signed checkpoint (once per `seq`).
    pub async fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at_ms, signature) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(c.seq as i64)
        .bind(&c.hash)
        .bind(c.at.as_millisecond())
        .bind(&c.signature)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// The newest checkpoint's `seq`, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit_checkpoints")
            .fetch_one(&self.pool)
            .await?;
        Ok(get::<Option<i64>>(&row, "seq")?.map(|s| s as u64))
    }

    /// The newest checkpoint, if any.
    pub async fn newest_checkpoint(&self) -> Result<Option<CheckpointRow>> {
        let row = sqlx::query(
            "SELECT seq, hash, at_ms, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CheckpointRow {
                seq: get::<i64>(&r, "seq")? as u64,
                hash: get(&r, "hash")?,
                at: ts(get(&r, "at_ms")?)?,
                signature: get(&r, "signature")?,
            })
        })
        .transpose()
    }

    /// The hash of record `seq`, if it is stored.
    pub async fn audit_hash(&self, seq: u64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let rows =
            sqlx::query("SELECT seq, hash, at_ms, signature FROM audit_checkpoints ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointRow {
                    seq: get::<i64>(r, "seq")? as u64,
                    hash: get(r, "hash")?,
                    at: ts(get(r, "at_ms")?)?,
                    signature: get(r, "signature")?,
                })
            })
            .collect()
    }
}

impl Tx<'_> {
    /// Appends one event to the chain and returns its record.
    pub async fn append_audit(&mut self, event: AuditEvent) -> Result<ChainedRecord> {
        let head = self.lock_head().await?;
        let record = audit::append(&head, event);
        sqlx::query(
            "INSERT INTO audit (seq, event_id, at_ms, actor, action, subject, data, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.seq as i64)
        .bind(&record.event.id)
        .bind(record.event.at.as_millisecond())
        .bind(&record.event.actor)
        .bind(&record.event.action)
        .bind(&record.event.subject)
        .bind(&record.event.data)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&mut *self.tx)
        .await?;
        let new_head = record.head();
        sqlx::query("UPDATE audit_head SET count = $1, hash = $2 WHERE id = 1")
            .bind(new_head.count as i64)
            .bind(&new_head.hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(record)
    }

    /// Appends an event unless one with the same id is already stored. Returns whether it was new.
    pub async fn ingest_audit(&mut self, event: AuditEvent) -> Result<bool> {
        // Lock the head first so that two replicas ingesting the same id serialise here.
        self.lock_head().await?;
        let seen: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit WHERE event_id = $1")
            .bind(&event.id)
            .fetch_optional(&mut *self.tx)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        self.append_audit(event).await?;
        Ok(true)
    }

    /// Records about one subject, read after locking the audit head: appends by other
    /// transactions wait until this one ends, so what is read stays the whole truth until then.
    pub async fn audit_for_subject_locked(&mut self, subject: &str) -> Result<Vec<ChainedRecord>> {
        self.lock_head().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit WHERE subject = $1 ORDER BY seq"
        ))
        .bind(subject)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn lock_head(&mut self) -> Result<Head> {
        let sql = match self.backend {
            Backend::Postgres => "SELECT count, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            Backend::Sqlite => "SELECT count, hash FROM audit_head WHERE id = 1",
        };
        let row = sqlx::query(sql)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
        Ok(Head {
            count: get::<i64>(&row, "count")? as u64,
            hash: get(&row, "hash")?,
        })
    }
}

fn record(row: &AnyRow) -> Result<ChainedRecord> {
    Ok(ChainedRecord {
        seq: get::<i64>(row, "seq")? as u64,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
        event: AuditEvent {
            id: get(row, "event_id")?,
            at: ts(get(row, "at_ms")?)?,
            actor: get(row, "actor")?,
            action: get(row, "action")?,
            subject: get(row, "subject")?,
            data: get(row, "data")?,
        },
    })
}

const COLUMNS: &str = "seq, event_id, at_ms, actor, action, subject, data, prev_hash, hash";

impl Store {
    /// Records with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_page(&self, after: u64, limit: u32) -> Result<Vec<ChainedRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The newest records, newest first.
    pub async fn audit_latest(&self, limit: u32) -> Result<Vec<ChainedRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit ORDER BY seq DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Records about one subject (e.g. `request:ID`), oldest first.
    pub async fn audit_for_subject(&self, subject: &str) -> Result<Vec<ChainedRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit WHERE subject = $1 ORDER BY seq"
        ))
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Records of one action (e.g. `breakglass.used`), oldest first.
    pub async fn audit_by_action(&self, action: &str) -> Result<Vec<ChainedRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit WHERE action = $1 ORDER BY seq"
        ))
        .bind(action)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The whole chain and the stored head, read in one transaction so they agree.
    pub async fn audit_chain(&self) -> Result<Chain> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))
            .fetch_all(&mut *tx)
            .await?;
        let head = sqlx::query("SELECT count, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Chain {
            records: rows.iter().map(record).collect::<Result<_>>()?,
            head: Head {
                count: get::<i64>(&head, "count")? as u64,
                hash: get(&head, "hash")?,
            },
        })
    }
}
