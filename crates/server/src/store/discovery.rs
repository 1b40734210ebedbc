//! Discovery in SQL: observations appended (idempotently, by id) with their rollups (see
//! `rollups`) updated in the same transaction, and one person's observations read back.
//!
//! Must never: count an observation in a rollup that was not newly stored (a duplicate adds
//! nothing), or have a report scan the observations table (reports read rollups; only one
//! person's evidence reads observations, through its index).

use std::collections::HashSet;

use sqlx::any::AnyRow;

use super::rollups::{chunk, placeholders};
use super::{get, ts, Result, Store, Tx};

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
    /// Stores the observations not stored before and counts them into the rollups. Returns
    /// how many were new.
    pub async fn insert_observations(&mut self, rows: &[ObservationRow]) -> Result<u64> {
        let mut new: Vec<&ObservationRow> = Vec::with_capacity(rows.len());
        let size = chunk(self.backend);
        for chunk in rows.chunks(size) {
            let mut sql = format!("INSERT INTO observations ({COLUMNS}) VALUES ");
            placeholders(&mut sql, chunk.len(), PER_ROW, self.backend);
            sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut q = sqlx::query(&sql);
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
            let stored: HashSet<String> = q
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|row| get::<String>(row, "id"))
                .collect::<Result<_>>()?;
            // The same id twice in one batch is stored (and counted) once.
            let mut counted = HashSet::new();
            new.extend(
                chunk
                    .iter()
                    .filter(|r| stored.contains(&r.id) && counted.insert(r.id.as_str())),
            );
        }
        self.roll_up(&new).await?;
        Ok(new.len() as u64)
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
        let mut out = Vec::new();
        for user in users {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM observations WHERE user_name = $1 AND at_ms >= $2 \
                 AND at_ms < $3 ORDER BY at_ms DESC LIMIT $4"
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
