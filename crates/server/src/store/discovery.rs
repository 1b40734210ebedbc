//! Discovery in SQL: observations appended (idempotently, by id), each batch of new ones queued
//! for the rollups (see `pending`) in the same transaction, and one person's observations read
//! back through the evidence index.
//!
//! Must never: queue an observation that was not newly stored (a duplicate adds nothing), or
//! have a report scan the observations table (reports read rollups; only one person's evidence
//! reads observations, by id from the evidence index).

use std::collections::HashSet;

use sqlx::any::AnyRow;

use super::rollups::{chunk, placeholders};
use super::{get, ts, Backend, Result, Store, StoreError, Tx};

/// One observation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRow {
    pub id: String,
    /// `device` or `import`.
    pub origin: String,
    pub source: String,
    pub at: jiff::Timestamp,
    pub host: String,
    pub user_name: String,
    pub uid: Option<u32>,
    pub runas: String,
    pub program: String,
    pub command_line: String,
    pub cwd: Option<String>,
    pub tty: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub via: String,
    pub system: bool,
    pub elevation: Option<String>,
    pub package: Option<String>,
    pub sha256: Option<String>,
}

const COLUMNS: &str = "id, origin, source, at_ms, host, user_name, uid, runas, program, \
     command_line, cwd, tty, outcome, detail, via, system, elevation, package, sha256";
const PER_ROW: usize = 19;

impl Tx<'_> {
    /// Stores the observations not stored before and queues them for the rollups. Returns how
    /// many were new.
    pub async fn insert_observations(&mut self, rows: &[ObservationRow]) -> Result<u64> {
        let mut new: Vec<&ObservationRow> = Vec::with_capacity(rows.len());
        let size = chunk(self.backend);
        for chunk in rows.chunks(size) {
            // SQLite: the ids already stored, asked first (there are rarely any, and sqlx's
            // SQLite driver costs microseconds a returned row: `RETURNING id` of every new row
            // took a fifth of an import's time). Under SQLite's one writer nothing can store
            // an id between this question and the insert; the insert's count checks it.
            let known: Option<HashSet<String>> = match self.backend {
                Backend::Sqlite => {
                    let mut sql = String::from("SELECT id FROM observations WHERE id IN (");
                    placeholders(&mut sql, chunk.len(), 1, self.backend);
                    sql.push(')');
                    let mut q = sqlx::query(&sql).persistent(chunk.len() == size);
                    for r in chunk {
                        q = q.bind(&r.id);
                    }
                    let rows = q.fetch_all(&mut *self.tx).await?;
                    Some(
                        rows.iter()
                            .map(|row| get(row, "id"))
                            .collect::<Result<_>>()?,
                    )
                }
                Backend::Postgres => None,
            };
            let mut sql = format!("INSERT INTO observations ({COLUMNS}) VALUES ");
            placeholders(&mut sql, chunk.len(), PER_ROW, self.backend);
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            if known.is_none() {
                sql.push_str(" RETURNING id");
            }
            let mut q = sqlx::query(&sql).persistent(chunk.len() == size);
            for r in chunk {
                q = q
                    .bind(&r.id)
                    .bind(&r.origin)
                    .bind(&r.source)
                    .bind(r.at.as_millisecond())
                    .bind(&r.host)
                    .bind(&r.user_name)
                    .bind(r.uid.map(i64::from))
                    .bind(&r.runas)
                    .bind(&r.program)
                    .bind(&r.command_line)
                    .bind(&r.cwd)
                    .bind(&r.tty)
                    .bind(&r.outcome)
                    .bind(&r.detail)
                    .bind(&r.via)
                    .bind(i64::from(r.system))
                    .bind(&r.elevation)
                    .bind(&r.package)
                    .bind(&r.sha256);
            }
            // Which of the chunk's ids the insert stored; the same id twice in one batch is
            // stored (and counted) once.
            let (stored, affected) = match known {
                Some(known) => {
                    let affected = q.execute(&mut *self.tx).await?.rows_affected();
                    (Stored::AllBut(known), Some(affected))
                }
                None => {
                    let ids = q
                        .fetch_all(&mut *self.tx)
                        .await?
                        .iter()
                        .map(|row| get::<String>(row, "id"))
                        .collect::<Result<_>>()?;
                    (Stored::Only(ids), None)
                }
            };
            let mut counted = HashSet::new();
            let before = new.len();
            new.extend(
                chunk
                    .iter()
                    .filter(|r| stored.has(&r.id) && counted.insert(r.id.as_str())),
            );
            if let Some(affected) = affected.filter(|n| *n != (new.len() - before) as u64) {
                return Err(StoreError::Corrupt(format!(
                    "{affected} observations stored where {} were new",
                    new.len() - before
                )));
            }
        }
        self.add_to_rollups(&new).await?;
        Ok(new.len() as u64)
    }
}

/// The ids an insert stored: all but those known before it (SQLite), or those it returned.
enum Stored {
    AllBut(HashSet<String>),
    Only(HashSet<String>),
}

impl Stored {
    fn has(&self, id: &str) -> bool {
        match self {
            Stored::AllBut(known) => !known.contains(id),
            Stored::Only(ids) => ids.contains(id),
        }
    }
}

impl Store {
    /// The observations of logins `users` between `since` and `until`, newest first.
    pub async fn observations_of(
        &self,
        users: &[String],
        since: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<ObservationRow>> {
        self.roll_up_pending().await?;
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("o.{c}")).collect();
        let mut out = Vec::new();
        for user in users {
            let rows = sqlx::query(&format!(
                "SELECT {} FROM discovery_evidence e JOIN observations o ON o.id = e.id \
                 WHERE e.user_name = $1 AND e.at_ms >= $2 AND e.at_ms < $3 \
                 ORDER BY e.at_ms DESC LIMIT $4",
                columns.join(", ")
            ))
            .bind(user)
            .bind(since.as_millisecond())
            .bind(until.as_millisecond())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                out.push(observation(r)?);
            }
        }
        out.sort_by_key(|o| std::cmp::Reverse(o.at));
        out.truncate(limit as usize);
        Ok(out)
    }
}

fn observation(r: &AnyRow) -> Result<ObservationRow> {
    Ok(ObservationRow {
        id: get(r, "id")?,
        origin: get(r, "origin")?,
        source: get(r, "source")?,
        at: ts(get(r, "at_ms")?)?,
        host: get(r, "host")?,
        user_name: get(r, "user_name")?,
        uid: get::<Option<i64>>(r, "uid")?.map(|u| u as u32),
        runas: get(r, "runas")?,
        program: get(r, "program")?,
        command_line: get(r, "command_line")?,
        cwd: get(r, "cwd")?,
        tty: get(r, "tty")?,
        outcome: get(r, "outcome")?,
        detail: get(r, "detail")?,
        via: get(r, "via")?,
        system: get::<i64>(r, "system")? != 0,
        elevation: get(r, "elevation")?,
        package: get(r, "package")?,
        sha256: get(r, "sha256")?,
    })
}
