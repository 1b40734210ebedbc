//! Discovery in SQL: observations appended (idempotently, by id) with their rollups updated in
//! the same transaction, and the rollups read back for reports.
//!
//! Must never: count an observation in a rollup that was not newly stored (a duplicate adds
//! nothing), or have a report scan the observations table (reports read rollups; only one
//! person's evidence reads observations, through its index).

use std::collections::{BTreeMap, HashSet};

use sqlx::any::AnyRow;

use super::{get, ts, Backend, Result, Store, Tx};

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

/// A daily rollup summed over a period: one (origin, user, host, program, outcome, system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub origin: String,
    pub user_name: String,
    pub host: String,
    pub program: String,
    pub outcome: String,
    pub system: bool,
    pub runs: u64,
    /// Days with at least one run.
    pub days: u64,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
}

/// A login's elevations in one UTC hour (hours since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourRow {
    pub hour: i64,
    pub origin: String,
    pub user_name: String,
    pub host: String,
    pub runs: u64,
}

/// What is known of a program's binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRow {
    pub program: String,
    pub package: Option<String>,
    pub sha256: Option<String>,
}

const COLUMNS: &str = "id, origin, source, at_ms, host, user_name, uid, runas, program, \
     command_line, cwd, tty, outcome, detail, via, system, elevation, package, sha256";
const PER_ROW: usize = 19;
/// Rows per INSERT: on PostgreSQL many; on SQLite few, as sqlx's SQLite driver slows down
/// faster than linearly with a statement's parameters (measured: 17 columns × 20 rows take
/// about 63,000 rows/s, × 500 rows 5,600 rows/s).
fn chunk(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 20,
        Backend::Postgres => 500,
    }
}
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

type DayKey = (i64, String, String, String, String, String, bool);
/// Runs, first and last milliseconds, and runs per UTC hour of the day.
type DayAcc = (i64, i64, i64, [i64; 24]);
const HOUR_COLUMNS: &str = "h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11, h12, \
     h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23";
/// Package, SHA-256, first and last milliseconds of a program in one batch.
type ProgramAcc<'a> = (Option<&'a str>, Option<&'a str>, i64, i64);

impl Tx<'_> {
    /// Stores the observations not stored before and counts them into the rollups. Returns
    /// how many were new.
    pub async fn insert_observations(&mut self, rows: &[ObservationRow]) -> Result<u64> {
        let mut new: Vec<&ObservationRow> = Vec::with_capacity(rows.len());
        let size = chunk(self.backend);
        for chunk in rows.chunks(size) {
            let mut sql = format!("INSERT INTO observations ({COLUMNS}) VALUES ");
            placeholders(&mut sql, chunk.len(), PER_ROW);
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

    /// Adds new observations to the daily, hourly and program rollups (keys in sorted order,
    /// so that concurrent writers lock rows in one order).
    async fn roll_up(&mut self, new: &[&ObservationRow]) -> Result<()> {
        let mut days: BTreeMap<DayKey, DayAcc> = BTreeMap::new();
        let mut totals: BTreeMap<(i64, &str, &str, bool), i64> = BTreeMap::new();
        let mut programs: BTreeMap<&str, ProgramAcc<'_>> = BTreeMap::new();
        for r in new {
            let ms = r.at.as_millisecond();
            let day = (
                ms.div_euclid(DAY_MS),
                r.origin.clone(),
                r.user_name.clone(),
                r.host.clone(),
                r.program.clone(),
                r.outcome.clone(),
                r.system,
            );
            let d = days.entry(day).or_insert((0, ms, ms, [0; 24]));
            d.0 += 1;
            d.1 = d.1.min(ms);
            d.2 = d.2.max(ms);
            d.3[(ms.rem_euclid(DAY_MS) / HOUR_MS) as usize] += 1;
            *totals
                .entry((
                    ms.div_euclid(HOUR_MS),
                    r.origin.as_str(),
                    r.outcome.as_str(),
                    r.system,
                ))
                .or_default() += 1;
            let p = programs
                .entry(r.program.as_str())
                .or_insert((None, None, ms, ms));
            if r.package.is_some() && ms >= p.3 {
                p.0 = r.package.as_deref();
            }
            if r.sha256.is_some() && ms >= p.3 {
                p.1 = r.sha256.as_deref();
            }
            p.2 = p.2.min(ms);
            p.3 = p.3.max(ms);
        }
        let (least, greatest) = match self.backend {
            Backend::Sqlite => ("MIN", "MAX"),
            Backend::Postgres => ("LEAST", "GREATEST"),
        };
        let days: Vec<_> = days.into_iter().collect();
        for chunk in days.chunks(chunk(self.backend)) {
            let mut sql = format!(
                "INSERT INTO discovery_daily (day, origin, user_name, host, program, outcome, \
                 system, runs, first_ms, last_ms, {HOUR_COLUMNS}) VALUES "
            );
            placeholders(&mut sql, chunk.len(), 34);
            sql.push_str(&format!(
                " ON CONFLICT (day, origin, user_name, host, program, outcome, system) DO UPDATE \
                 SET runs = discovery_daily.runs + excluded.runs, \
                 first_ms = {least}(discovery_daily.first_ms, excluded.first_ms), \
                 last_ms = {greatest}(discovery_daily.last_ms, excluded.last_ms), {}",
                (0..24)
                    .map(|h| format!("h{h:02} = discovery_daily.h{h:02} + excluded.h{h:02}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let mut q = sqlx::query(&sql);
            for ((day, origin, user, host, program, outcome, system), (runs, first, last, hours)) in
                chunk
            {
                q = q
                    .bind(*day)
                    .bind(origin)
                    .bind(user)
                    .bind(host)
                    .bind(program)
                    .bind(outcome)
                    .bind(i64::from(*system))
                    .bind(*runs)
                    .bind(*first)
                    .bind(*last);
                for h in hours {
                    q = q.bind(*h);
                }
            }
            q.execute(&mut *self.tx).await?;
        }
        let totals: Vec<_> = totals.into_iter().collect();
        for chunk in totals.chunks(chunk(self.backend)) {
            let mut sql = String::from(
                "INSERT INTO discovery_hour_totals (hour, origin, outcome, system, runs) VALUES ",
            );
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (hour, origin, outcome, system) DO UPDATE \
                 SET runs = discovery_hour_totals.runs + excluded.runs",
            );
            let mut q = sqlx::query(&sql);
            for ((hour, origin, outcome, system), runs) in chunk {
                q = q
                    .bind(*hour)
                    .bind(*origin)
                    .bind(*outcome)
                    .bind(i64::from(*system))
                    .bind(*runs);
            }
            q.execute(&mut *self.tx).await?;
        }
        let programs: Vec<_> = programs.into_iter().collect();
        for chunk in programs.chunks(chunk(self.backend)) {
            let mut sql = String::from(
                "INSERT INTO discovery_programs (program, package, sha256, first_ms, last_ms) \
                 VALUES ",
            );
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(&format!(
                " ON CONFLICT (program) DO UPDATE SET \
                 package = COALESCE(excluded.package, discovery_programs.package), \
                 sha256 = COALESCE(excluded.sha256, discovery_programs.sha256), \
                 first_ms = {least}(discovery_programs.first_ms, excluded.first_ms), \
                 last_ms = {greatest}(discovery_programs.last_ms, excluded.last_ms)"
            ));
            let mut q = sqlx::query(&sql);
            for (program, (package, sha256, first, last)) in chunk {
                q = q
                    .bind(*program)
                    .bind(*package)
                    .bind(*sha256)
                    .bind(*first)
                    .bind(*last);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

/// `($1, $2, …), (…)` for `rows` rows of `per_row` values.
fn placeholders(sql: &mut String, rows: usize, per_row: usize) {
    use std::fmt::Write as _;
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..per_row {
            n += 1;
            let _ = write!(sql, "{}${n}", if c == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
}

impl Store {
    /// Usage per (origin, user, host, program, outcome, system) on UTC days `since..until`
    /// (days since the epoch, `until` excluded).
    pub async fn usage(&self, since_day: i64, until_day: i64) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT origin, user_name, host, program, outcome, system, CAST(SUM(runs) AS BIGINT) AS runs, \
             COUNT(*) AS days, MIN(first_ms) AS first_ms, MAX(last_ms) AS last_ms \
             FROM discovery_daily WHERE day >= $1 AND day < $2 \
             GROUP BY origin, user_name, host, program, outcome, system",
        )
        .bind(since_day)
        .bind(until_day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    origin: get(r, "origin")?,
                    user_name: get(r, "user_name")?,
                    host: get(r, "host")?,
                    program: get(r, "program")?,
                    outcome: get(r, "outcome")?,
                    system: get::<i64>(r, "system")? != 0,
                    runs: sum(r, "runs")?,
                    days: get::<i64>(r, "days")? as u64,
                    first: ts(get(r, "first_ms")?)?,
                    last: ts(get(r, "last_ms")?)?,
                })
            })
            .collect()
    }

    /// People's elevations that ran on UTC days `since..until`, per day, login and host, with
    /// their runs in each hour of the day (for a department's timing).
    pub async fn daily_hours(&self, since_day: i64, until_day: i64) -> Result<Vec<HourRow>> {
        let rows = sqlx::query(&format!(
            "SELECT day, origin, user_name, host, {HOUR_COLUMNS} FROM discovery_daily \
             WHERE day >= $1 AND day < $2 AND system = 0 AND outcome = 'ran'"
        ))
        .bind(since_day)
        .bind(until_day)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let day: i64 = get(r, "day")?;
            let (origin, user_name, host): (String, String, String) =
                (get(r, "origin")?, get(r, "user_name")?, get(r, "host")?);
            for h in 0..24 {
                let runs = get::<i64>(r, &format!("h{h:02}"))?;
                if runs > 0 {
                    out.push(HourRow {
                        hour: day * 24 + h,
                        origin: origin.clone(),
                        user_name: user_name.clone(),
                        host: host.clone(),
                        runs: runs as u64,
                    });
                }
            }
        }
        Ok(out)
    }

    /// People's elevations that ran, per UTC hour `since..until` and origin, all logins
    /// together.
    pub async fn hour_totals(&self, since_hour: i64, until_hour: i64) -> Result<Vec<HourRow>> {
        let rows = sqlx::query(
            "SELECT hour, origin, runs FROM discovery_hour_totals \
             WHERE hour >= $1 AND hour < $2 AND system = 0 AND outcome = 'ran'",
        )
        .bind(since_hour)
        .bind(until_hour)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HourRow {
                    hour: get(r, "hour")?,
                    origin: get(r, "origin")?,
                    user_name: String::new(),
                    host: String::new(),
                    runs: get::<i64>(r, "runs")? as u64,
                })
            })
            .collect()
    }

    /// The package and binary known for each program.
    pub async fn programs(&self) -> Result<Vec<ProgramRow>> {
        let rows = sqlx::query("SELECT program, package, sha256 FROM discovery_programs")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ProgramRow {
                    program: get(r, "program")?,
                    package: get(r, "package")?,
                    sha256: get(r, "sha256")?,
                })
            })
            .collect()
    }

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

/// A `SUM`, cast to BIGINT in the query (PostgreSQL would give NUMERIC).
fn sum(row: &AnyRow, col: &str) -> Result<u64> {
    Ok(get::<i64>(row, col)? as u64)
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
