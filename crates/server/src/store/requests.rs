//! Requests for elevation and the approvals given on them.
//!
//! Must never: change a request's state without the caller having checked the transition with
//! core's state machine inside the same transaction (see `app`).

use elevate_core::lifecycle::RequestState;
use elevate_proto::v1::{DecisionView, WireTarget};
use sqlx::any::AnyRow;

use super::{get, json_list, opt_ts, ts, Backend, Result, Store, StoreError, Tx};

/// A request as stored.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    /// When a pending or approved-but-unstarted request lapses.
    pub expires_at: Option<jiff::Timestamp>,
    pub device: String,
    pub user: String,
    pub uid: u32,
    pub groups: Vec<String>,
    pub target: WireTarget,
    pub reason: Option<String>,
    pub channel: String,
    pub cwd: Option<String>,
    pub state: RequestState,
    pub decision: DecisionView,
    pub exit_code: Option<i32>,
    /// When the rule's SLA falls due, while it has not been handled.
    pub sla_due: Option<jiff::Timestamp>,
    /// The group the request was escalated to when its SLA passed.
    pub escalated_to: Option<String>,
    /// When an approver who may decide first opened it.
    pub first_viewed_at: Option<jiff::Timestamp>,
    /// When it was decided (approved, denied, expired), and through what.
    pub decided_at: Option<jiff::Timestamp>,
    pub decided_via: Option<String>,
}

/// Which requests to list (all conditions that are set must hold).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFilter<'a> {
    pub state: Option<RequestState>,
    pub device: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// A new request to store.
pub type NewRequestRow = RequestRow;

#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub approver: String,
    pub verdict: String,
    pub comment: Option<String>,
    pub at: jiff::Timestamp,
}

/// How often this binary (by hash, else by path) was asked for before, by outcome.
#[derive(Debug, Clone, Default)]
pub struct HistoryStats {
    pub total: u64,
    pub approved: u64,
    pub denied: u64,
    pub by_state: Vec<(String, u64)>,
    /// Who approved this binary before, most often first (at most five).
    pub approvers: Vec<(String, u64)>,
    /// The first time this binary was asked for anywhere in the fleet, and on which device.
    pub first_seen: Option<(jiff::Timestamp, String)>,
    /// The hours of the day (UTC) of the requester's earlier requests, counted.
    pub user_hours: Vec<(u8, u64)>,
}

const COLUMNS: &str =
    "id, created_ms, updated_ms, expires_ms, device, user_name, uid, groups_json, \
                       target_json, reason, channel, state, decision_json, exit_code, cwd, sla_due_ms, \
                       escalated_to, first_viewed_ms, decided_ms, decided_via";

fn request(row: &AnyRow) -> Result<RequestRow> {
    let state: String = get(row, "state")?;
    let target: String = get(row, "target_json")?;
    let decision: String = get(row, "decision_json")?;
    Ok(RequestRow {
        id: get(row, "id")?,
        created_at: ts(get(row, "created_ms")?)?,
        updated_at: ts(get(row, "updated_ms")?)?,
        expires_at: opt_ts(get(row, "expires_ms")?)?,
        device: get(row, "device")?,
        user: get(row, "user_name")?,
        uid: get::<i64>(row, "uid")? as u32,
        groups: json_list(&get::<String>(row, "groups_json")?)?,
        target: serde_json::from_str(&target)
            .map_err(|e| StoreError::Corrupt(format!("request target: {e}")))?,
        reason: get(row, "reason")?,
        channel: get(row, "channel")?,
        cwd: get(row, "cwd")?,
        state: state
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("request state `{state}`")))?,
        decision: serde_json::from_str(&decision)
            .map_err(|e| StoreError::Corrupt(format!("request decision: {e}")))?,
        exit_code: get::<Option<i64>>(row, "exit_code")?.map(|c| c as i32),
        sla_due: opt_ts(get(row, "sla_due_ms")?)?,
        escalated_to: get(row, "escalated_to")?,
        first_viewed_at: opt_ts(get(row, "first_viewed_ms")?)?,
        decided_at: opt_ts(get(row, "decided_ms")?)?,
        decided_via: get(row, "decided_via")?,
    })
}

fn target_path_and_hash(target: &WireTarget) -> (Option<&str>, Option<&str>) {
    match target {
        WireTarget::Command { path, sha256, .. } => (Some(path), sha256.as_deref()),
        WireTarget::Session { .. } => (None, None),
    }
}

impl Tx<'_> {
    pub async fn insert_request(&mut self, r: &NewRequestRow) -> Result<()> {
        let (path, sha256) = target_path_and_hash(&r.target);
        sqlx::query(
            "INSERT INTO requests (id, created_ms, updated_ms, expires_ms, device, user_name, uid, \
             groups_json, target_json, path, sha256, reason, channel, state, decision_json, \
             approvers, needed, exit_code, cwd, sla_due_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(&r.id)
        .bind(r.created_at.as_millisecond())
        .bind(r.updated_at.as_millisecond())
        .bind(r.expires_at.map(|t| t.as_millisecond()))
        .bind(&r.device)
        .bind(&r.user)
        .bind(i64::from(r.uid))
        .bind(serde_json::to_string(&r.groups).expect("strings serialise"))
        .bind(serde_json::to_string(&r.target).expect("targets serialise"))
        .bind(path)
        .bind(sha256)
        .bind(r.reason.as_deref())
        .bind(&r.channel)
        .bind(r.state.as_str())
        .bind(serde_json::to_string(&r.decision).expect("decisions serialise"))
        .bind(r.decision.approvers.as_deref())
        .bind(i64::from(r.decision.needed))
        .bind(r.exit_code.map(i64::from))
        .bind(r.cwd.as_deref())
        .bind(r.sla_due.map(|t| t.as_millisecond()))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The SLA was handled: escalated to `to`, or only recorded as missed (`None`).
    pub async fn escalate_request(&mut self, id: &str, to: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET sla_due_ms = NULL, escalated_to = COALESCE($1, escalated_to) \
             WHERE id = $2",
        )
        .bind(to)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// An approved request must be started by `latest` (it never gets longer than it had).
    pub async fn cap_expiry(&mut self, id: &str, latest: jiff::Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET expires_ms = CASE WHEN expires_ms IS NULL OR expires_ms > $1 \
             THEN $1 ELSE expires_ms END WHERE id = $2",
        )
        .bind(latest.as_millisecond())
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The request was decided now, through `via` (the first time only).
    pub async fn record_decided(
        &mut self,
        id: &str,
        now: jiff::Timestamp,
        via: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET decided_ms = $1, decided_via = $2 \
             WHERE id = $3 AND decided_ms IS NULL",
        )
        .bind(now.as_millisecond())
        .bind(via)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Reads a request and locks it against concurrent changes until commit.
    pub async fn request_for_update(&mut self, id: &str) -> Result<Option<RequestRow>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(request).transpose()
    }

    pub async fn set_request_state(
        &mut self,
        id: &str,
        state: RequestState,
        now: jiff::Timestamp,
        exit_code: Option<i32>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET state = $1, updated_ms = $2, exit_code = COALESCE($3, exit_code) \
             WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(now.as_millisecond())
        .bind(exit_code.map(i64::from))
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_approval(
        &mut self,
        request_id: &str,
        approver: &str,
        verdict: &str,
        comment: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO approvals (request_id, approver, verdict, comment, at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(request_id)
        .bind(approver)
        .bind(verdict)
        .bind(comment)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn approvals_in_tx(&mut self, request_id: &str) -> Result<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT approver, verdict, comment, at_ms FROM approvals WHERE request_id = $1 ORDER BY at_ms, approver",
        )
        .bind(request_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(approval).collect()
    }
}

fn approval(row: &AnyRow) -> Result<ApprovalRow> {
    Ok(ApprovalRow {
        approver: get(row, "approver")?,
        verdict: get(row, "verdict")?,
        comment: get(row, "comment")?,
        at: ts(get(row, "at_ms")?)?,
    })
}

impl Store {
    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request).transpose()
    }

    /// Requests, newest first, optionally only in one state, from one device, of one user.
    /// Commands devices asked to run that `program` names (by path or by the name invoked),
    /// newest first, each SHA-256 once: what the helpdesk's typed command may be.
    pub async fn known_commands(
        &self,
        program: &str,
    ) -> Result<Vec<elevate_proto::v1::WireTarget>> {
        use elevate_proto::v1::WireTarget;
        // LIKE only narrows the search (its wildcards may match more); each row is checked.
        let invoked = format!(
            "%{}%",
            serde_json::to_string(program).expect("a string serialises")
        );
        let rows = sqlx::query(
            "SELECT target_json FROM requests WHERE path = $1 OR target_json LIKE $2 \
             ORDER BY created_ms DESC LIMIT 1000",
        )
        .bind(program)
        .bind(invoked)
        .fetch_all(&self.pool)
        .await?;
        let mut found: Vec<WireTarget> = Vec::new();
        for row in &rows {
            let text: String = get(row, "target_json")?;
            let Ok(target) = serde_json::from_str::<WireTarget>(&text) else {
                continue;
            };
            if let WireTarget::Command {
                path,
                invoked,
                sha256: Some(sha),
                ..
            } = &target
            {
                let named = invoked.as_deref().unwrap_or(path) == program;
                let seen = found
                    .iter()
                    .any(|t| matches!(t, WireTarget::Command { sha256: Some(s), .. } if s == sha));
                if named && !seen {
                    found.push(target.clone());
                }
            }
        }
        Ok(found)
    }

    pub async fn requests(
        &self,
        filter: &RequestFilter<'_>,
        limit: u32,
    ) -> Result<Vec<RequestRow>> {
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("state", filter.state.map(|s| s.as_str())),
            ("device", filter.device),
            ("user_name", filter.user),
        ] {
            if let Some(v) = value {
                values.push(v);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM requests {clause} ORDER BY created_ms DESC, id DESC LIMIT ${}",
            values.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for v in values {
            query = query.bind(v);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(request).collect()
    }

    /// Ids of pending or approved requests whose time ran out.
    /// Pending requests whose SLA has passed and was not handled yet.
    pub async fn sla_due_requests(&self, now: jiff::Timestamp) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM requests WHERE state = 'pending' AND sla_due_ms <= $1 ORDER BY sla_due_ms",
        )
        .bind(now.as_millisecond())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Notes the first time an approver opened a request (later views change nothing). A
    /// write transaction like any other, so SQLite's writers stay one at a time.
    pub async fn mark_first_view(&self, id: &str, now: jiff::Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE requests SET first_viewed_ms = $1 WHERE id = $2 AND first_viewed_ms IS NULL",
        )
        .bind(now.as_millisecond())
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    pub async fn lapsed_requests(&self, now: jiff::Timestamp) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM requests WHERE state IN ('pending', 'approved') AND expires_ms <= $1",
        )
        .bind(now.as_millisecond())
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn approvals(&self, request_id: &str) -> Result<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT approver, verdict, comment, at_ms FROM approvals WHERE request_id = $1 ORDER BY at_ms, approver",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval).collect()
    }

    /// Earlier requests for the same binary (same hash when known, else same path), excluding `id`.
    pub async fn history(&self, id: &str, target: &WireTarget) -> Result<HistoryStats> {
        let (path, sha256) = target_path_and_hash(target);
        let (column, value) = match (sha256, path) {
            (Some(h), _) => ("sha256", h),
            (None, Some(p)) => ("path", p),
            (None, None) => return Ok(HistoryStats::default()),
        };
        let rows = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM requests WHERE {column} = $1 AND id <> $2 GROUP BY state ORDER BY state"
        ))
        .bind(value)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut stats = HistoryStats::default();
        for row in &rows {
            let state: String = get(row, "state")?;
            let n = get::<i64>(row, "n")? as u64;
            stats.total += n;
            match state.as_str() {
                "approved" | "running" | "finished" => stats.approved += n,
                "denied" => stats.denied += n,
                _ => {}
            }
            stats.by_state.push((state, n));
        }
        let approvers = sqlx::query(&format!(
            "SELECT a.approver AS approver, COUNT(*) AS n FROM approvals a \
             JOIN requests r ON r.id = a.request_id \
             WHERE r.{column} = $1 AND r.id <> $2 AND a.verdict = 'approve' \
             GROUP BY a.approver ORDER BY n DESC, a.approver LIMIT 5"
        ))
        .bind(value)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for row in &approvers {
            stats
                .approvers
                .push((get(row, "approver")?, get::<i64>(row, "n")? as u64));
        }
        let first = sqlx::query(&format!(
            "SELECT created_ms, device FROM requests WHERE {column} = $1 \
             ORDER BY created_ms, id LIMIT 1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = first {
            stats.first_seen = Some((ts(get(&row, "created_ms")?)?, get(&row, "device")?));
        }
        Ok(stats)
    }

    /// How many of `user`'s requests (other than `id`) fell in each hour of the day (UTC), over
    /// their last 500.
    pub async fn user_hours(&self, id: &str, user: &str) -> Result<Vec<(u8, u64)>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT created_ms FROM requests WHERE user_name = $1 AND id <> $2 \
             ORDER BY created_ms DESC LIMIT 500",
        )
        .bind(user)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut hours = [0u64; 24];
        for ms in rows {
            hours[(ms.rem_euclid(86_400_000) / 3_600_000) as usize] += 1;
        }
        Ok(hours
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(h, n)| (h as u8, *n))
            .collect())
    }
}
