//! Outgoing notifications as a job queue: queued in the transaction of the change they tell of,
//! claimed by one sender at a time (a lease, with `FOR UPDATE SKIP LOCKED` on PostgreSQL so
//! replicas never take the same row), and every attempt kept for the delivery log.
//!
//! Must never: lose a queued row (a sender that dies leaves a lease that runs out), or let a
//! sender whose lease ran out overwrite the result of the one that took the row over.

use sqlx::any::AnyRow;

use super::{get, opt_ts, ts, Backend, Result, Store, Tx};

/// Where a notification goes: the integrations a server sends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyChannel {
    /// A CloudEvents webhook subscription.
    Webhook,
    Slack,
    Email,
    Teams,
    /// A name this server does not send on (a row queued by a newer server): kept and shown,
    /// its sends refused.
    Unknown(String),
}

impl NotifyChannel {
    /// The name in the database, the API and the portal.
    pub fn as_str(&self) -> &str {
        match self {
            NotifyChannel::Webhook => "webhook",
            NotifyChannel::Slack => "slack",
            NotifyChannel::Email => "email",
            NotifyChannel::Teams => "teams",
            NotifyChannel::Unknown(name) => name,
        }
    }

    pub fn from_name(name: &str) -> NotifyChannel {
        match name {
            "webhook" => NotifyChannel::Webhook,
            "slack" => NotifyChannel::Slack,
            "email" => NotifyChannel::Email,
            "teams" => NotifyChannel::Teams,
            other => NotifyChannel::Unknown(other.to_owned()),
        }
    }
}

impl std::fmt::Display for NotifyChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queued or finished delivery.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub channel: NotifyChannel,
    pub target: String,
    pub event: String,
    pub subject: String,
    pub payload: String,
    pub state: String,
    pub attempts: u32,
    pub next_at: jiff::Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: jiff::Timestamp,
    pub done_at: Option<jiff::Timestamp>,
}

/// One try at sending a delivery.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempt: u32,
    pub at: jiff::Timestamp,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    Delivered,
    /// Try again at this time.
    Retry(jiff::Timestamp),
    /// Given up: the receiver refused for good, or the retries ran out.
    Failed,
}

const COLUMNS: &str = "id, channel, target, event, subject, payload, state, attempts, next_ms, \
                       last_status, last_error, created_ms, done_ms";

fn delivery(row: &AnyRow) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: get(row, "id")?,
        channel: NotifyChannel::from_name(&get::<String>(row, "channel")?),
        target: get(row, "target")?,
        event: get(row, "event")?,
        subject: get(row, "subject")?,
        payload: get(row, "payload")?,
        state: get(row, "state")?,
        attempts: get::<i64>(row, "attempts")? as u32,
        next_at: ts(get(row, "next_ms")?)?,
        last_status: get::<Option<i64>>(row, "last_status")?.map(|s| s as u16),
        last_error: get(row, "last_error")?,
        created_at: ts(get(row, "created_ms")?)?,
        done_at: opt_ts(get(row, "done_ms")?)?,
    })
}

impl Tx<'_> {
    /// Queues a delivery, due now; it is sent only if this transaction commits.
    pub async fn queue_delivery(
        &mut self,
        channel: NotifyChannel,
        target: &str,
        event: &str,
        subject: &str,
        payload: &str,
        now: jiff::Timestamp,
    ) -> Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO deliveries (id, channel, target, event, subject, payload, state, attempts, \
             next_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7)",
        )
        .bind(&id)
        .bind(channel.as_str())
        .bind(target)
        .bind(event)
        .bind(subject)
        .bind(payload)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(id)
    }
}

impl Store {
    /// Takes up to `limit` due deliveries for `lease`, counting the attempt. A row whose earlier
    /// sender died is due again once its lease has run out.
    pub async fn claim_deliveries(
        &self,
        now: jiff::Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        let mut tx = self.begin().await?;
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM deliveries WHERE state = 'queued' AND next_ms <= $1 \
             AND (locked_until_ms IS NULL OR locked_until_ms <= $1) \
             ORDER BY next_ms, id LIMIT $2{skip_locked}"
        ))
        .bind(now.as_millisecond())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx.tx)
        .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(&format!(
                "UPDATE deliveries SET locked_until_ms = $1, attempts = attempts + 1 \
                 WHERE id = $2 RETURNING {COLUMNS}"
            ))
            .bind((now + lease).as_millisecond())
            .bind(&id)
            .fetch_one(&mut *tx.tx)
            .await?;
            claimed.push(delivery(&row)?);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records attempt number `attempt` of `id` and what became of it. Returns false (and
    /// changes nothing) when another sender has taken the row over since.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_attempt(
        &self,
        id: &str,
        attempt: u32,
        end: AttemptEnd,
        status: Option<u16>,
        error: Option<&str>,
        elapsed_ms: u64,
        now: jiff::Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let (state, next_ms, done_ms) = match end {
            AttemptEnd::Delivered => ("delivered", None, Some(now.as_millisecond())),
            AttemptEnd::Retry(at) => ("queued", Some(at.as_millisecond()), None),
            AttemptEnd::Failed => ("failed", None, Some(now.as_millisecond())),
        };
        let changed = sqlx::query(
            "UPDATE deliveries SET state = $1, next_ms = COALESCE($2, next_ms), done_ms = $3, \
             locked_until_ms = NULL, last_status = $4, last_error = $5 \
             WHERE id = $6 AND attempts = $7 AND state = 'queued'",
        )
        .bind(state)
        .bind(next_ms)
        .bind(done_ms)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(id)
        .bind(i64::from(attempt))
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, status, error, elapsed_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(now.as_millisecond())
        .bind(status.map(i64::from))
        .bind(error)
        .bind(elapsed_ms.min(i64::MAX as u64) as i64)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deliveries, newest first, optionally only those about `subject`.
    pub async fn deliveries(&self, subject: Option<&str>, limit: u32) -> Result<Vec<DeliveryRow>> {
        let order = "ORDER BY created_ms DESC, id DESC";
        let rows = match subject {
            Some(subject) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE subject = $1 {order} LIMIT $2"
                ))
                .bind(subject)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM deliveries {order} LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(delivery).collect()
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(delivery).transpose()
    }

    pub async fn delivery_attempts(&self, id: &str) -> Result<Vec<AttemptRow>> {
        let rows = sqlx::query(
            "SELECT attempt, at_ms, status, error, elapsed_ms FROM delivery_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRow {
                    attempt: get::<i64>(row, "attempt")? as u32,
                    at: ts(get(row, "at_ms")?)?,
                    status: get::<Option<i64>>(row, "status")?.map(|s| s as u16),
                    error: get(row, "error")?,
                    elapsed_ms: get::<i64>(row, "elapsed_ms")?.max(0) as u64,
                })
            })
            .collect()
    }
}

impl Store {
    /// Remembers the chat message posted about `request` in `channel`.
    pub async fn save_chat_message(
        &self,
        request: &str,
        service: NotifyChannel,
        channel: &str,
        ts: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO chat_messages (request_id, service, channel, ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (request_id, service, channel) DO UPDATE SET ts = excluded.ts",
        )
        .bind(request)
        .bind(service.as_str())
        .bind(channel)
        .bind(ts)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Every chat message posted about `request` on `service`: (channel, ts), oldest first.
    pub async fn chat_messages(
        &self,
        request: &str,
        service: NotifyChannel,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT channel, ts FROM chat_messages WHERE request_id = $1 AND service = $2 ORDER BY ts",
        )
        .bind(request)
        .bind(service.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((get(r, "channel")?, get(r, "ts")?)))
            .collect()
    }
}

impl Tx<'_> {
    /// Marks a one-time link used; false when it already was.
    pub async fn use_link(
        &mut self,
        nonce: &str,
        request: &str,
        account: &str,
        now: jiff::Timestamp,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO used_links (nonce, request_id, account, used_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(request)
        .bind(account)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}

impl Store {
    /// Whether a one-time link has been used.
    pub async fn link_used(&self, nonce: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM used_links WHERE nonce = $1")
            .bind(nonce)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
