//! Discovery's rollups read back for reports: a period's use per key from at most two months'
//! rows, a department's logins' hours, everyone's hours, and programs; dictionary ids turned
//! back into names. Each read first rolls up what is pending (see `pending`).
//!
//! Must never: report a first or last time outside the period asked for, or build SQL from
//! anything but column names and integers it formatted itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::rollups::{
    chunk, extremes, month_of, month_start, origin_name, outcome_name, select_names, DAY_MS,
};
use super::{get, ts, Backend, Result, Store, StoreError};

/// How many parts a report's rows are read in at once: the machine's cores, at most four
/// (asked once: on Linux the answer reads cgroup files).
fn parts() -> usize {
    static PARTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PARTS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4)))
}

/// A rollup summed over a period: one (origin, user, host, program, outcome, system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub origin: &'static str,
    pub user_name: Arc<str>,
    pub host: Arc<str>,
    pub program: Arc<str>,
    pub outcome: &'static str,
    pub system: bool,
    pub runs: u64,
    /// Days with at least one run.
    pub days: u64,
    /// The first and last run in the period: to the millisecond, except where the period
    /// begins or ends inside a month that also had runs outside it; there, to the day (the
    /// day's first, or last, millisecond).
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

/// A rollup key summed over a period, by dictionary ids.
type UsageAcc = (i64, i64, i64, i64);

impl Store {
    /// The integer columns `fields` of `inner`'s rows, read in `parts()` parts at once (rows
    /// whose `user_id` has each remainder), each on a connection of its own: a month's rows at
    /// ten million events kept one core busy for half a second. (The parts are read as of
    /// moments a roll-up round apart at most: a report read during an import may count a
    /// batch for some logins and not yet for others, as it would a moment later for all.)
    /// On SQLite the rows come back as one JSON array per `group`: a report then reads a few thousand rows instead of hundreds of
    /// thousands (sqlx's SQLite driver costs several microseconds a row, most of a report's
    /// time at ten million events otherwise); PostgreSQL's rows are cheap, and its `json_agg`
    /// is not (measured: 360 ms plain, 550 ms packed, for 118,000 rows).
    async fn fetch_ints<const N: usize>(
        &self,
        inner: &str,
        fields: [&str; N],
        group: &str,
        binds: &[i64],
    ) -> Result<Vec<[i64; N]>>
    where
        [i64; N]: serde::de::DeserializeOwned,
    {
        let parts = parts();
        let reads = (0..parts).map(|part| {
            // Integers only, formatted here: nothing of a user's reaches this SQL text.
            let inner = format!("{inner} AND user_id % {parts} = {part}");
            let sql = match self.backend {
                Backend::Sqlite => format!(
                    "SELECT json_group_array(json_array({})) AS packed FROM ({inner}) AS m \
                     GROUP BY {group}",
                    fields.join(", ")
                ),
                Backend::Postgres => inner,
            };
            async move {
                let mut q = sqlx::query(&sql).persistent(false);
                for b in binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&self.pool).await?;
                let mut out = Vec::new();
                for row in &rows {
                    match self.backend {
                        Backend::Sqlite => {
                            let text: String = get(row, "packed")?;
                            let packed: Vec<[i64; N]> =
                                serde_json::from_str(&text).map_err(|e| {
                                    StoreError::Corrupt(format!("a packed rollup: {e}"))
                                })?;
                            out.extend(packed);
                        }
                        Backend::Postgres => {
                            let mut r = [0; N];
                            for (v, f) in r.iter_mut().zip(fields) {
                                *v = get(row, f)?;
                            }
                            out.push(r);
                        }
                    }
                }
                Ok::<_, StoreError>(out)
            }
        });
        let parts = futures_util::future::try_join_all(reads).await?;
        Ok(parts.concat())
    }

    /// The names of dictionary ids (from memory, else the database).
    async fn names_of(&self, ids: BTreeSet<i64>) -> Result<HashMap<i64, Arc<str>>> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let cached = self.names.lock();
            for id in ids {
                match cached.names.get(&id) {
                    Some(n) => {
                        out.insert(id, n.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        let mut learned = Vec::new();
        for part in missing.chunks(500) {
            let list: Vec<String> = part.iter().map(i64::to_string).collect();
            // Integers only, formatted here: nothing of a user's reaches this SQL text.
            let rows = sqlx::query(&format!(
                "SELECT id, name FROM discovery_names WHERE id IN ({})",
                list.join(", ")
            ))
            .persistent(false)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let (id, name): (i64, String) = (get(&row, "id")?, get(&row, "name")?);
                out.insert(id, Arc::from(name.as_str()));
                learned.push((name, id));
            }
        }
        self.names.learn(learned);
        Ok(out)
    }

    /// Usage per (origin, user, host, program, outcome, system) on UTC days `since..until`
    /// (days since the epoch, `until` excluded): each month's rows, their days in the period
    /// summed in the database.
    pub async fn usage(&self, since_day: i64, until_day: i64) -> Result<Vec<UsageRow>> {
        self.roll_up_pending().await?;
        let (least, _) = extremes(self.backend);
        let mut by: HashMap<(i64, i64, i64, i64, i64, i64), UsageAcc> = HashMap::new();
        let (since_ms, until_ms) = (since_day * DAY_MS, until_day * DAY_MS);
        let mut month = month_of(since_day).0;
        while month_start(month) < until_day {
            let start = month_start(month);
            let first_dom = (since_day - start).max(0) + 1;
            let last_dom = (until_day - start).min(month_start(month + 1) - start);
            let doms: Vec<i64> = (first_dom..=last_dom).collect();
            let col = |d: &i64| format!("d{d:02}");
            let runs = doms.iter().map(col).collect::<Vec<_>>().join(" + ");
            // SQLite adds comparisons (1 or 0) faster than it calls `min`.
            let days = doms
                .iter()
                .map(|d| match self.backend {
                    Backend::Sqlite => format!("(d{d:02} > 0)"),
                    Backend::Postgres => format!("{least}(d{d:02}, 1)"),
                })
                .collect::<Vec<_>>()
                .join(" + ");
            let any = doms
                .iter()
                .map(|d| format!("d{d:02} > 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let first_day = doms
                .iter()
                .map(|d| format!("WHEN d{d:02} > 0 THEN {d}"))
                .collect::<Vec<_>>()
                .join(" ");
            let last_day = doms
                .iter()
                .rev()
                .map(|d| format!("WHEN d{d:02} > 0 THEN {d}"))
                .collect::<Vec<_>>()
                .join(" ");
            // Column names and day numbers only: nothing of a user's reaches this SQL text.
            let inner = format!(
                "SELECT origin, user_id, host_id, program_id, outcome, system, first_ms, last_ms, \
                 CAST({runs} AS BIGINT) AS runs, CAST({days} AS BIGINT) AS days, \
                 CAST(CASE {first_day} END AS BIGINT) AS first_day, \
                 CAST(CASE {last_day} END AS BIGINT) AS last_day \
                 FROM discovery_monthly WHERE month = $1 AND ({any})"
            );
            let rows = self
                .fetch_ints(
                    &inner,
                    [
                        "origin",
                        "user_id",
                        "host_id",
                        "program_id",
                        "outcome",
                        "system",
                        "first_ms",
                        "last_ms",
                        "runs",
                        "days",
                        "first_day",
                        "last_day",
                    ],
                    "origin, user_id",
                    &[month],
                )
                .await?;
            for r in rows {
                let [origin, user, host, program, outcome, system, first_ms, last_ms, runs, days, first_day, last_day] =
                    r;
                let key = (origin, user, host, program, outcome, system);
                let (first_day, last_day) = (start + first_day - 1, start + last_day - 1);
                // Exact where the month's first (last) run is in the period; else the day's.
                let first = if first_ms >= since_ms {
                    first_ms
                } else {
                    first_day * DAY_MS
                };
                let last = if last_ms < until_ms {
                    last_ms
                } else {
                    (last_day + 1) * DAY_MS - 1
                };
                let e = by.entry(key).or_insert((0, 0, first, last));
                e.0 += runs;
                e.1 += days;
                e.2 = e.2.min(first);
                e.3 = e.3.max(last);
            }
            month += 1;
        }
        let ids: BTreeSet<i64> = by.keys().flat_map(|k| [k.1, k.2, k.3]).collect();
        let names = self.names_of(ids).await?;
        let name = |id: &i64| name_of(&names, *id);
        by.iter()
            .map(|((origin, user, host, program, outcome, system), acc)| {
                Ok(UsageRow {
                    origin: origin_name(*origin),
                    user_name: name(user)?,
                    host: name(host)?,
                    program: name(program)?,
                    outcome: outcome_name(*outcome)?,
                    system: *system != 0,
                    runs: acc.0 as u64,
                    days: acc.1 as u64,
                    first: ts(acc.2)?,
                    last: ts(acc.3)?,
                })
            })
            .collect()
    }

    /// The dictionary ids of those of `names` it has (from memory, else the database).
    async fn ids_of(&self, names: &[String]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        {
            let cached = self.names.lock();
            for n in names {
                match cached.ids.get(n) {
                    Some(id) => out.push(*id),
                    None => missing.push(n),
                }
            }
        }
        let mut learned = Vec::new();
        for part in missing.chunks(chunk(self.backend)) {
            let sql = select_names(part.len(), self.backend);
            let mut q = sqlx::query(&sql).persistent(false);
            for n in part {
                q = q.bind(n.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                let (id, name): (i64, String) = (get(&row, "id")?, get(&row, "name")?);
                out.push(id);
                learned.push((name, id));
            }
        }
        self.names.learn(learned);
        Ok(out)
    }

    /// People's elevations that ran on UTC days `since..until`, per hour, login and host (for
    /// a department's timing): of `logins` only, or (`None`) of every login.
    pub async fn login_hours(
        &self,
        since_day: i64,
        until_day: i64,
        logins: Option<&[String]>,
    ) -> Result<Vec<HourRow>> {
        self.roll_up_pending().await?;
        const FIELDS: [&str; 28] = [
            "user_id", "host_id", "day", "origin", "h00", "h01", "h02", "h03", "h04", "h05", "h06",
            "h07", "h08", "h09", "h10", "h11", "h12", "h13", "h14", "h15", "h16", "h17", "h18",
            "h19", "h20", "h21", "h22", "h23",
        ];
        let columns = FIELDS.join(", ");
        let base =
            format!("SELECT {columns} FROM discovery_login_days WHERE day >= $1 AND day < $2");
        let mut raw = Vec::new();
        match logins {
            None => {
                raw = self
                    .fetch_ints(&base, FIELDS, "user_id", &[since_day, until_day])
                    .await?;
            }
            Some(logins) => {
                let ids = self.ids_of(logins).await?;
                for part in ids.chunks(500) {
                    let list: Vec<String> = part.iter().map(i64::to_string).collect();
                    // Integers only, formatted here: nothing of a user's reaches this SQL text.
                    let inner = format!("{base} AND user_id IN ({})", list.join(", "));
                    raw.extend(
                        self.fetch_ints(&inner, FIELDS, "user_id", &[since_day, until_day])
                            .await?,
                    );
                }
            }
        }
        let names = self
            .names_of(raw.iter().flat_map(|r| [r[0], r[1]]).collect())
            .await?;
        let name = |id: &i64| name_of(&names, *id);
        let mut out = Vec::new();
        for r in &raw {
            let (user, host) = (name(&r[0])?, name(&r[1])?);
            for (h, runs) in r[4..].iter().enumerate() {
                if *runs > 0 {
                    out.push(HourRow {
                        hour: r[2] * 24 + h as i64,
                        origin: origin_name(r[3]).to_owned(),
                        user_name: user.to_string(),
                        host: host.to_string(),
                        runs: *runs as u64,
                    });
                }
            }
        }
        Ok(out)
    }

    /// People's elevations that ran, per UTC hour `since..until` and origin, all logins
    /// together.
    pub async fn hour_totals(&self, since_hour: i64, until_hour: i64) -> Result<Vec<HourRow>> {
        self.roll_up_pending().await?;
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
        self.roll_up_pending().await?;
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
}

/// The name of a dictionary id that rollup rows hold (every such id was committed with its name).
fn name_of(names: &HashMap<i64, Arc<str>>, id: i64) -> Result<Arc<str>> {
    names
        .get(&id)
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("no name for dictionary id {id}")))
}
