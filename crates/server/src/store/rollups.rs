//! Discovery's rollups, written: what reports read (see `usage`) instead of single observations. Logins, hosts and
//! programs are small integers of one dictionary (`discovery_names`); a key's use is kept per
//! calendar month (UTC) with its runs on each day of the month, so that a 30-day report reads at
//! most two months' rows however many events there were; people's runs per hour and login give
//! a department's timing; the runs of all logins per hour give everyone's.
//!
//! Must never: hand out a dictionary id before the transaction that made it commits (another
//! writer would store rows naming nothing), or lock rollup rows in an order another writer
//! could take the other way round.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::pending::Observed;
use super::sums::{MonthSums, Sums};
use super::{get, Backend, Result, StoreError, Tx};

pub(super) const DAY_MS: i64 = 86_400_000;
pub(super) const HOUR_MS: i64 = 3_600_000;
/// Names kept in memory at most (logins, hosts and programs; a device's user can invent
/// programs): beyond, the cache starts again and misses are read from the database.
const MAX_CACHED: usize = 200_000;
/// Rows per statement (SQLite's parameters are anonymous: see `placeholders`).
pub(super) fn chunk(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 200,
        Backend::Postgres => 500,
    }
}

/// The dictionary's committed entries, both ways.
#[derive(Default)]
pub struct Names {
    maps: Mutex<NameMaps>,
}

#[derive(Default)]
pub(super) struct NameMaps {
    pub(super) ids: HashMap<String, i64>,
    pub(super) names: HashMap<i64, Arc<str>>,
}

impl Names {
    pub(super) fn lock(&self) -> MutexGuard<'_, NameMaps> {
        // A panic while holding the lock leaves two maps that are still each valid.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in the names a transaction made or read, once it has committed.
    pub(super) fn learn(&self, learned: Vec<(String, i64)>) {
        if learned.is_empty() {
            return;
        }
        let mut m = self.lock();
        if m.ids.len() + learned.len() > MAX_CACHED {
            *m = NameMaps::default();
        }
        for (name, id) in learned {
            m.names.insert(id, Arc::from(name.as_str()));
            m.ids.insert(name, id);
        }
    }
}

/// `origin` as stored in the rollups.
pub(super) fn origin_code(origin: &str) -> i64 {
    i64::from(origin != "device")
}

pub(super) fn origin_name(code: i64) -> &'static str {
    if code == 0 {
        "device"
    } else {
        "import"
    }
}

pub(super) fn outcome_code(outcome: &str) -> Result<i64> {
    match outcome {
        "ran" => Ok(0),
        "failed" => Ok(1),
        "refused" => Ok(2),
        other => Err(StoreError::Corrupt(format!("outcome {other:?}"))),
    }
}

pub(super) fn outcome_name(code: i64) -> Result<&'static str> {
    match code {
        0 => Ok("ran"),
        1 => Ok("failed"),
        2 => Ok("refused"),
        other => Err(StoreError::Corrupt(format!("outcome code {other}"))),
    }
}

/// The UTC calendar month (`year * 12 + month - 1`) and day of the month of a day since the
/// epoch (H. Hinnant's `civil_from_days`).
pub(super) fn month_of(day: i64) -> (i64, usize) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y * 12 + m - 1, d as usize)
}

/// The first day (since the epoch) of a month (`days_from_civil`).
pub(super) fn month_start(month: i64) -> i64 {
    let (y, m) = (month.div_euclid(12), month.rem_euclid(12) + 1);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Rollup key: (month, origin, user, host, program, outcome, system).
type MonthKey = (i64, i64, i64, i64, i64, i64, i64);

impl Tx<'_> {
    /// The dictionary ids of `names`, adding those it lacks (in sorted order, so that
    /// concurrent writers take the same locks in the same order).
    async fn name_ids<'n>(&mut self, names: BTreeSet<&'n str>) -> Result<HashMap<&'n str, i64>> {
        let mut out = HashMap::with_capacity(names.len());
        let mut missing = Vec::new();
        {
            let cached = self.names.lock();
            for n in names {
                match cached.ids.get(n) {
                    Some(id) => {
                        out.insert(n, *id);
                    }
                    None => missing.push(n),
                }
            }
        }
        let size = chunk(self.backend);
        for part in missing.chunks(size) {
            let mut sql = String::from("INSERT INTO discovery_names (name) VALUES ");
            placeholders(&mut sql, part.len(), 1, self.backend);
            sql.push_str(" ON CONFLICT (name) DO NOTHING");
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for n in part {
                q = q.bind(*n);
            }
            q.execute(&mut *self.tx).await?;
            let sql = select_names(part.len(), self.backend);
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for n in part {
                q = q.bind(*n);
            }
            for row in q.fetch_all(&mut *self.tx).await? {
                let (id, name): (i64, String) = (get(&row, "id")?, get(&row, "name")?);
                // `part` is in sorted order (from the set).
                if let Ok(i) = part.binary_search(&name.as_str()) {
                    let n = part[i];
                    out.insert(n, id);
                    self.learned.push((name, id));
                }
            }
        }
        Ok(out)
    }

    /// Adds newly stored observations to the rollups in this transaction.
    pub(super) async fn roll_up<S: AsRef<str>>(&mut self, new: &[Observed<S>]) -> Result<()> {
        let mut sums = Sums::default();
        sums.add(new)?;
        self.write_sums(sums).await
    }

    /// Adds what `sums` added up to the rollups (keys in sorted order, so that concurrent
    /// writers lock rows in one order).
    pub(super) async fn write_sums(&mut self, sums: Sums) -> Result<()> {
        if sums.events == 0 {
            return Ok(());
        }
        let ids = self
            .name_ids(sums.names.iter().map(String::as_str).collect())
            .await?;
        let id: Vec<i64> = sums
            .names
            .iter()
            .map(|n| {
                ids.get(n.as_str())
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("no dictionary id for {n:?}")))
            })
            .collect::<Result<_>>()?;
        let at = |i: u32| id[i as usize];
        let months: BTreeMap<MonthKey, MonthSums> = sums
            .months
            .into_iter()
            .map(
                |((month, origin, user, host, program, outcome, system), v)| {
                    let system = i64::from(system);
                    let (user, host, program) = (at(user), at(host), at(program));
                    ((month, origin, user, host, program, outcome, system), v)
                },
            )
            .collect();
        let login_days: BTreeMap<(i64, i64, i64, i64), [i32; 24]> = sums
            .login_days
            .into_iter()
            .map(|((user, host, day, origin), v)| ((at(user), at(host), day, origin), v))
            .collect();
        let totals = sums.totals;
        let programs: BTreeMap<&str, ProgramAcc<'_>> = sums
            .programs
            .iter()
            .map(|(p, (package, sha256, first, last))| {
                (
                    sums.names[*p as usize].as_str(),
                    (package.as_deref(), sha256.as_deref(), *first, *last),
                )
            })
            .collect();
        let (least, greatest) = extremes(self.backend);
        let size = chunk(self.backend);
        // Keys in one order across all statements (two writers never wait on each other in
        // opposite orders); every day column in one statement text, so that each connection
        // prepares and keeps one (measured: statements per touched day grew the server from
        // 67 to 103 MiB over a month's import).
        let months: Vec<_> = months.into_iter().collect();
        for part in months.chunks(size) {
            let mut sql = String::from(
                "INSERT INTO discovery_monthly (month, origin, user_id, host_id, program_id, \
                 outcome, system, runs, first_ms, last_ms",
            );
            for d in 1..=31 {
                sql.push_str(&format!(", d{d:02}"));
            }
            sql.push_str(") VALUES ");
            placeholders(&mut sql, part.len(), 10 + 31, self.backend);
            sql.push_str(&format!(
                " ON CONFLICT (month, origin, user_id, host_id, program_id, outcome, system) \
                 DO UPDATE SET runs = discovery_monthly.runs + excluded.runs, \
                 first_ms = {least}(discovery_monthly.first_ms, excluded.first_ms), \
                 last_ms = {greatest}(discovery_monthly.last_ms, excluded.last_ms)"
            ));
            for d in 1..=31 {
                sql.push_str(&format!(
                    ", d{d:02} = discovery_monthly.d{d:02} + excluded.d{d:02}"
                ));
            }
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for (
                (month, origin, user, host, program, outcome, system),
                (runs, first, last, per_day),
            ) in part
            {
                q = q
                    .bind(*month)
                    .bind(*origin)
                    .bind(*user)
                    .bind(*host)
                    .bind(*program)
                    .bind(*outcome)
                    .bind(*system)
                    .bind(*runs)
                    .bind(*first)
                    .bind(*last);
                for runs in per_day {
                    q = q.bind(i64::from(*runs));
                }
            }
            q.execute(&mut *self.tx).await?;
        }
        let login_days: Vec<_> = login_days.into_iter().collect();
        for part in login_days.chunks(size) {
            let mut sql =
                String::from("INSERT INTO discovery_login_days (user_id, host_id, day, origin");
            for h in 0..24 {
                sql.push_str(&format!(", h{h:02}"));
            }
            sql.push_str(") VALUES ");
            placeholders(&mut sql, part.len(), 4 + 24, self.backend);
            let set: Vec<String> = (0..24)
                .map(|h| format!("h{h:02} = discovery_login_days.h{h:02} + excluded.h{h:02}"))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT (user_id, host_id, day, origin) DO UPDATE SET {}",
                set.join(", ")
            ));
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for ((user, host, day, origin), per_hour) in part {
                q = q.bind(*user).bind(*host).bind(*day).bind(*origin);
                for runs in per_hour {
                    q = q.bind(i64::from(*runs));
                }
            }
            q.execute(&mut *self.tx).await?;
        }
        let totals: Vec<_> = totals.into_iter().collect();
        for part in totals.chunks(size) {
            let mut sql = String::from(
                "INSERT INTO discovery_hour_totals (hour, origin, outcome, system, runs) VALUES ",
            );
            placeholders(&mut sql, part.len(), 5, self.backend);
            sql.push_str(
                " ON CONFLICT (hour, origin, outcome, system) DO UPDATE \
                 SET runs = discovery_hour_totals.runs + excluded.runs",
            );
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for ((hour, origin, outcome, system), runs) in part {
                q = q
                    .bind(*hour)
                    .bind(origin_name(*origin))
                    .bind(outcome_name(*outcome)?)
                    .bind(i64::from(*system))
                    .bind(*runs);
            }
            q.execute(&mut *self.tx).await?;
        }
        let programs: Vec<_> = programs.into_iter().collect();
        for part in programs.chunks(size) {
            let mut sql = String::from(
                "INSERT INTO discovery_programs (program, package, sha256, first_ms, last_ms) \
                 VALUES ",
            );
            placeholders(&mut sql, part.len(), 5, self.backend);
            sql.push_str(&format!(
                " ON CONFLICT (program) DO UPDATE SET \
                 package = COALESCE(excluded.package, discovery_programs.package), \
                 sha256 = COALESCE(excluded.sha256, discovery_programs.sha256), \
                 first_ms = {least}(discovery_programs.first_ms, excluded.first_ms), \
                 last_ms = {greatest}(discovery_programs.last_ms, excluded.last_ms)"
            ));
            let mut q = sqlx::query(&sql).persistent(part.len() == size);
            for (program, (package, sha256, first, last)) in part {
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

/// `SELECT id, name` of `n` names given as parameters.
pub(super) fn select_names(n: usize, backend: Backend) -> String {
    let mut sql = String::from("SELECT id, name FROM discovery_names WHERE name IN (");
    placeholders(&mut sql, n, 1, backend);
    sql.push(')');
    sql
}

/// Package, SHA-256, first and last milliseconds of a program in one batch.
type ProgramAcc<'a> = (Option<&'a str>, Option<&'a str>, i64, i64);

pub(super) fn extremes(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => ("MIN", "MAX"),
        Backend::Postgres => ("LEAST", "GREATEST"),
    }
}

/// `($1, $2, …), (…)` for `rows` rows of `per_row` values; on SQLite `(?, ?, …)`: SQLite
/// looks a numbered parameter's name up in a list, so that binding `$n`s costs the square of
/// their number (measured: a quarter of an import's time in `sqlite3_bind_parameter_name` at
/// 20 rows a statement), while anonymous ones are bound in order at no cost. The text of a full
/// chunk is made once per shape (formatting a round's hundreds of thousands of placeholders
/// anew took a tenth of its time).
pub(super) fn placeholders(sql: &mut String, rows: usize, per_row: usize, backend: Backend) {
    static FULL: Mutex<BTreeMap<(usize, Backend), Arc<str>>> = Mutex::new(BTreeMap::new());
    if rows != chunk(backend) {
        return write_placeholders(sql, rows, per_row, backend);
    }
    let text = {
        // A panic while holding the lock leaves a map of complete texts.
        let mut full = FULL.lock().unwrap_or_else(|e| e.into_inner());
        full.entry((per_row, backend))
            .or_insert_with(|| {
                let mut text = String::new();
                write_placeholders(&mut text, rows, per_row, backend);
                Arc::from(text)
            })
            .clone()
    };
    sql.push_str(&text);
}

fn write_placeholders(sql: &mut String, rows: usize, per_row: usize, backend: Backend) {
    use std::fmt::Write as _;
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..per_row {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
        }
        sql.push(')');
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::ObservationRow;

    pub(in crate::store) fn observation(
        id: &str,
        user: &str,
        host: &str,
        program: &str,
    ) -> ObservationRow {
        ObservationRow {
            id: id.into(),
            origin: "import".into(),
            source: "syslog".into(),
            at: "2026-10-05T10:00:00Z".parse().unwrap(),
            host: host.into(),
            user_name: user.into(),
            uid: None,
            runas: "root".into(),
            program: program.into(),
            command_line: program.into(),
            cwd: None,
            tty: None,
            outcome: "ran".into(),
            detail: None,
            via: "sudo".into(),
            system: false,
            elevation: None,
            package: None,
            sha256: None,
        }
    }

    /// A name a rolled-back transaction added to the dictionary is not remembered: other names
    /// take its id, and the next round adds it again (remembering it would file zed's runs
    /// under amy's names).
    #[tokio::test]
    async fn names_from_a_rolled_back_transaction_are_not_remembered() {
        let path = std::env::temp_dir().join(format!("elevate-names-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = crate::store::Store::open_sqlite(&path).await.unwrap();
        let zed = |id: &str| observation(id, "zed", "h1", "/usr/bin/id");
        // A round that adds zed's names to the dictionary, then fails.
        let mut tx = store.begin().await.unwrap();
        let at = zed("syslog:1").at.as_millisecond();
        let round = [Observed(
            "syslog:1",
            at,
            "zed",
            "h1",
            "/usr/bin/id",
            1,
            0,
            false,
            None,
            None,
        )];
        tx.roll_up(&round).await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let amy = observation("syslog:2", "amy", "h0", "/bin/x");
        tx.insert_observations(&[amy]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.insert_observations(&[zed("syslog:3")]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        let usage = store.usage(20_727, 20_758).await.unwrap(); // October 2026
        let mut got: Vec<(&str, &str, &str, u64)> = usage
            .iter()
            .map(|u| (&*u.user_name, &*u.host, &*u.program, u.runs))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [("amy", "h0", "/bin/x", 1), ("zed", "h1", "/usr/bin/id", 1)]
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// A full chunk's remembered placeholders are those written fresh, on both backends.
    #[test]
    fn remembered_placeholders_are_the_written_ones() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            for per_row in [1, 3, 41] {
                let rows = chunk(backend);
                let mut fresh = String::new();
                write_placeholders(&mut fresh, rows, per_row, backend);
                for _ in 0..2 {
                    let mut sql = String::from("VALUES ");
                    placeholders(&mut sql, rows, per_row, backend);
                    assert_eq!(sql, format!("VALUES {fresh}"));
                }
                let mut two = String::new();
                placeholders(&mut two, 2, 3, backend);
                let want = match backend {
                    Backend::Sqlite => "(?, ?, ?), (?, ?, ?)",
                    Backend::Postgres => "($1, $2, $3), ($4, $5, $6)",
                };
                assert_eq!(two, want);
            }
        }
    }

    #[test]
    fn months_and_days_agree_with_the_calendar() {
        // Every day from 1900 to 2200 against jiff's civil dates, both ways.
        let epoch = jiff::civil::date(1970, 1, 1);
        for day in -25_567..84_000_i64 {
            let date = epoch
                .checked_add(jiff::Span::new().days(day))
                .expect("a date");
            let (month, dom) = month_of(day);
            assert_eq!(
                month,
                i64::from(date.year()) * 12 + i64::from(date.month()) - 1,
                "{date}"
            );
            assert_eq!(dom, date.day() as usize, "{date}");
            if dom == 1 {
                assert_eq!(month_start(month), day, "{date}");
            }
        }
    }
}
