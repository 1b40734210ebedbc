//! Discovery reports: the rollups of a period, logins resolved to the people of the directory
//! (a login's narrowest scope that fits its host), through core's analytics, as tables.
//!
//! Must never: read single observations for a report (only a person's evidence does), decide
//! who someone is by a name alone when the directory says otherwise (a login two people share
//! at one scope stays a login), or leave out people without a department.

use std::collections::HashMap;

use elevate_core::discovery::{self as analytics, Thresholds, Usage};
use elevate_proto::v1::{EvidenceView, ObservationView, Outcome, Report, ReportColumn, REPORTS};
use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{App, AppError, Principal, Result, Role};
use crate::store::ObservationRow;

const DAY_MS: i64 = 86_400_000;
/// The longest period a report covers.
const MAX_DAYS: i64 = 3660;

/// What a report is asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportParams {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only this department's people (`none`: people without one).
    pub department: Option<String>,
    /// The policy calendar that says what "after hours" is.
    pub calendar: Option<String>,
    pub thresholds: Thresholds,
    /// Only `device` or only `import` observations.
    pub origin: Option<String>,
}

/// The period's UTC days: `since` rounded down, `until` up (default: the 30 days to today).
pub(super) fn period(p: &ReportParams, now: Timestamp) -> Result<(i64, i64)> {
    let until = p.until.unwrap_or(now).as_millisecond();
    let until_day =
        until.div_euclid(DAY_MS) + i64::from(until.rem_euclid(DAY_MS) != 0 || p.until.is_none());
    let since_day = match p.since {
        Some(s) => s.as_millisecond().div_euclid(DAY_MS),
        None => until_day - 30,
    };
    if since_day >= until_day {
        return Err(AppError::BadRequest("since must be before until".into()));
    }
    if until_day - since_day > MAX_DAYS {
        return Err(AppError::BadRequest(format!(
            "a report covers at most {MAX_DAYS} days; give a later since"
        )));
    }
    Ok((since_day, until_day))
}

fn day_start(day: i64) -> Timestamp {
    Timestamp::from_millisecond(day * DAY_MS).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn wanted(dep: &Option<std::sync::Arc<str>>, filter: &Option<String>) -> bool {
    match filter.as_deref() {
        None => true,
        Some("none") => dep.is_none(),
        Some(f) => dep.as_deref() == Some(f),
    }
}

impl App {
    /// The current policy, or none before the first is applied.
    async fn policy_if_any(&self) -> Result<Option<std::sync::Arc<elevate_core::Policy>>> {
        if self.store.latest_policy_version().await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.current_policy().await?.1))
    }

    /// A report over discovery (admins and auditors).
    pub async fn report(
        &self,
        caller: &Principal,
        name: &str,
        params: &ReportParams,
    ) -> Result<Report> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let Some((_, title)) = REPORTS.iter().find(|(n, _)| *n == name) else {
            return Err(AppError::NotFound(format!(
                "there is no report {name:?}; the reports are {}",
                REPORTS.map(|(n, _)| n).join(", ")
            )));
        };
        params.thresholds.check().map_err(AppError::BadRequest)?;
        if let Some(o) = &params.origin {
            if o != "device" && o != "import" {
                return Err(AppError::BadRequest(format!(
                    "origin {o:?} is not one; use device or import"
                )));
            }
        }
        let (since_day, until_day) = period(params, self.now())?;
        let days = (until_day - since_day) as u64;
        // The directory and the rollups are read at once (on their own connections).
        let rollups = async {
            if name == "timing" {
                return Ok(Vec::new());
            }
            Ok::<_, AppError>(self.store.usage(since_day, until_day).await?)
        };
        let (directory, rollups) = tokio::try_join!(self.directory_people(), rollups)?;
        let origin_ok = |o: &str| params.origin.as_deref().is_none_or(|w| w == o);
        let mut facts = Map::new();
        let (columns, rows) = if name == "timing" {
            let policy = self.policy_if_any().await?;
            let calendar = policy
                .as_ref()
                .and_then(|p| p.calendar(params.calendar.as_deref()));
            if params.calendar.is_some() && calendar.is_none() {
                return Err(AppError::BadRequest(format!(
                    "the current policy has no calendar {:?}",
                    params.calendar.as_deref().unwrap_or_default()
                )));
            }
            let mut hours: HashMap<i64, u64> = HashMap::new();
            let (since_hour, until_hour) = (since_day * 24, until_day * 24);
            if let Some(department) = &params.department {
                // A department's people: per login and host, resolved to people. Only their
                // logins can be theirs; `none` (people without one, and logins the directory
                // does not know) reads every login.
                let logins: Option<Vec<String>> = (department != "none").then(|| {
                    directory
                        .people
                        .values()
                        .filter(|(dep, _)| dep.as_deref() == Some(department.as_str()))
                        .flat_map(|(_, logins)| logins.iter().cloned())
                        .collect()
                });
                for h in self
                    .store
                    .login_hours(since_day, until_day, logins.as_deref())
                    .await?
                {
                    let (_, _, dep) = directory.resolve(&h.user_name, &h.host);
                    if origin_ok(&h.origin) && wanted(&dep, &params.department) {
                        *hours.entry(h.hour).or_default() += h.runs;
                    }
                }
            } else {
                for h in self.store.hour_totals(since_hour, until_hour).await? {
                    if origin_ok(&h.origin) {
                        *hours.entry(h.hour).or_default() += h.runs;
                    }
                }
            }
            let hours: Vec<(i64, u64)> = hours.into_iter().collect();
            let t = analytics::timing(&hours, calendar);
            facts.insert("total".into(), t.total.into());
            facts.insert("after_hours".into(), t.after_hours.into());
            facts.insert("after_hours_percent".into(), t.after_hours_percent().into());
            facts.insert("calendar".into(), json!(t.calendar));
            facts.insert("timezone".into(), t.timezone.clone().into());
            timing_table(&t)
        } else {
            let usage: Vec<Usage> = rollups
                .into_iter()
                .filter(|r| origin_ok(r.origin))
                .map(|r| directory.usage_of(r))
                .filter(|u| wanted(&u.department, &params.department))
                .collect();
            self.usage_table(name, &usage, days, params, &mut facts)
                .await?
        };
        Ok(Report {
            name: name.to_owned(),
            title: (*title).to_owned(),
            since: day_start(since_day),
            until: day_start(until_day),
            days,
            department: params.department.clone(),
            columns,
            rows,
            facts,
        })
    }

    async fn usage_table(
        &self,
        name: &str,
        usage: &[Usage],
        days: u64,
        params: &ReportParams,
        facts: &mut Map<String, Value>,
    ) -> Result<(Vec<ReportColumn>, Vec<Map<String, Value>>)> {
        let dep = |d: &Option<String>| json!(d);
        let t = |t: Timestamp| json!(t.to_string());
        Ok(match name {
            "applications" => {
                let policy = self.policy_if_any().await?;
                let known: HashMap<String, (Option<String>, Option<String>)> = self
                    .store
                    .programs()
                    .await?
                    .into_iter()
                    .map(|p| (p.program, (p.package, p.sha256)))
                    .collect();
                let rows = analytics::applications(usage)
                    .into_iter()
                    .map(|a| {
                        let (package, sha256) = known.get(&a.program).cloned().unwrap_or_default();
                        let coverage = policy.as_ref().map(|p| {
                            elevate_core::policy::covering(
                                p,
                                &a.program,
                                package.as_deref(),
                                sha256.as_deref(),
                            )
                            .into_iter()
                            .map(|(rule, how)| match rule {
                                Some(r) => format!("rule {r:?}: {how}"),
                                None => format!("no rule (default: {how})"),
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                        });
                        row(&[
                            ("program", json!(a.program)),
                            ("users", a.users.into()),
                            ("departments", json!(a.departments.join(", "))),
                            ("runs", a.runs.into()),
                            ("first", t(a.first)),
                            ("last", t(a.last)),
                            ("package", json!(package)),
                            (
                                "coverage",
                                json!(coverage.unwrap_or_else(|| "no policy yet".into())),
                            ),
                            ("risk", json!(a.risk.map(|r| r.as_str()))),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("program", "Program"),
                        ("users", "Users"),
                        ("departments", "Departments"),
                        ("runs", "Runs"),
                        ("first", "First seen"),
                        ("last", "Last seen"),
                        ("package", "Package"),
                        ("coverage", "Policy"),
                        ("risk", "Risk"),
                    ]),
                    rows,
                )
            }
            "users" => {
                let rows = analytics::people(usage)
                    .into_iter()
                    .map(|p| {
                        row(&[
                            ("who", json!(p.who)),
                            ("person", p.person.into()),
                            ("department", dep(&p.department)),
                            ("runs", p.runs.into()),
                            ("denied", p.attempts_denied.into()),
                            ("programs", p.programs.into()),
                            ("hosts", p.hosts.into()),
                            ("last", t(p.last)),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("who", "Who"),
                        ("department", "Department"),
                        ("runs", "Elevations"),
                        ("denied", "Failed or refused"),
                        ("programs", "Programs"),
                        ("hosts", "Hosts"),
                        ("last", "Last"),
                    ]),
                    rows,
                )
            }
            "departments" => {
                let rows = analytics::departments(usage)
                    .into_iter()
                    .map(|d| {
                        let top: Vec<String> = d
                            .top_programs
                            .iter()
                            .map(|(p, n)| format!("{p} ({n})"))
                            .collect();
                        row(&[
                            ("department", dep(&d.department)),
                            ("programs", d.programs.into()),
                            ("people", d.people.into()),
                            ("runs", d.runs.into()),
                            ("top", json!(top.join(", "))),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("department", "Department"),
                        ("programs", "Distinct programs"),
                        ("people", "People"),
                        ("runs", "Elevations"),
                        ("top", "Most run"),
                    ]),
                    rows,
                )
            }
            "system" => {
                let rows = analytics::system_dependencies(usage, days)
                    .into_iter()
                    .map(|s| {
                        row(&[
                            ("account", json!(s.account)),
                            ("host", json!(s.host)),
                            ("program", json!(s.program)),
                            ("runs", s.runs.into()),
                            ("per_day", json!((s.per_day * 10.0).round() / 10.0)),
                            ("days_seen", s.days_seen.into()),
                            ("last", t(s.last)),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("account", "Account"),
                        ("host", "Host"),
                        ("program", "Command"),
                        ("runs", "Runs"),
                        ("per_day", "Runs per day"),
                        ("days_seen", "Days seen"),
                        ("last", "Last"),
                    ]),
                    rows,
                )
            }
            "attempts" => {
                let rows = analytics::attempts(usage)
                    .into_iter()
                    .map(|a| {
                        row(&[
                            ("who", json!(a.who)),
                            ("department", dep(&a.department)),
                            ("host", json!(a.host)),
                            ("program", json!(a.program)),
                            ("outcome", json!(a.outcome)),
                            ("runs", a.runs.into()),
                            ("last", t(a.last)),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("who", "Who"),
                        ("department", "Department"),
                        ("host", "Host"),
                        ("program", "Program"),
                        ("outcome", "Outcome"),
                        ("runs", "Attempts"),
                        ("last", "Last"),
                    ]),
                    rows,
                )
            }
            "risky" => {
                let rows = analytics::risky(usage)
                    .into_iter()
                    .map(|r| {
                        row(&[
                            ("program", json!(r.program)),
                            ("risk", json!(r.risk.as_str())),
                            ("users", json!(r.users.join(", "))),
                            ("runs", r.runs.into()),
                            ("last", t(r.last)),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("program", "Program"),
                        ("risk", "Why"),
                        ("users", "Who ran it"),
                        ("runs", "Runs"),
                        ("last", "Last"),
                    ]),
                    rows,
                )
            }
            _ => {
                let th = params.thresholds;
                facts.insert("moderate_from".into(), th.moderate.into());
                facts.insert("high_from".into(), th.high.into());
                let segmented = analytics::segments(usage, th, days);
                for s in ["low", "moderate", "high"] {
                    let n = segmented.iter().filter(|p| p.segment.as_str() == s).count();
                    facts.insert(s.into(), n.into());
                }
                let rows = segmented
                    .into_iter()
                    .map(|s| {
                        row(&[
                            ("who", json!(s.who)),
                            ("person", s.person.into()),
                            ("department", dep(&s.department)),
                            ("segment", json!(s.segment.as_str())),
                            ("runs", s.runs.into()),
                            ("per_30_days", json!(s.per_30_days)),
                            ("programs", s.programs.into()),
                        ])
                    })
                    .collect();
                (
                    cols(&[
                        ("who", "Who"),
                        ("department", "Department"),
                        ("segment", "Segment"),
                        ("runs", "Elevations"),
                        ("per_30_days", "Per 30 days"),
                        ("programs", "Programs"),
                    ]),
                    rows,
                )
            }
        })
    }

    /// What one person (or unknown login) ran in the period, newest first (admins, auditors).
    pub async fn evidence(
        &self,
        caller: &Principal,
        who: &str,
        params: &ReportParams,
    ) -> Result<EvidenceView> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let (since_day, until_day) = period(params, self.now())?;
        let directory = self.directory_people().await?;
        let (department, logins) = match directory.people.get(who) {
            Some((dep, logins)) => (dep.clone(), logins.clone()),
            None => (None, vec![who.to_owned()]),
        };
        let (since, until) = (day_start(since_day), day_start(until_day));
        let mut logins_sorted = logins.clone();
        logins_sorted.sort();
        logins_sorted.dedup();
        let rows = self
            .store
            .observations_of(&logins_sorted, since, until, 500)
            .await?;
        // Only what is theirs on that host (a login is someone else's where its scope says so).
        let observations = rows
            .into_iter()
            .filter(|o| &*directory.resolve(&o.user_name, &o.host).0 == who)
            .map(observation_view)
            .collect();
        Ok(EvidenceView {
            who: who.to_owned(),
            logins: logins_sorted,
            department,
            since,
            until,
            observations,
        })
    }
}

fn observation_view(o: ObservationRow) -> ObservationView {
    ObservationView {
        outcome: Outcome::parse(&o.outcome).unwrap_or(Outcome::Ran),
        id: o.id,
        origin: o.origin,
        source: o.source,
        at: o.at,
        host: o.host,
        user: o.user_name,
        runas: o.runas,
        program: o.program,
        command_line: o.command_line,
        cwd: o.cwd,
        tty: o.tty,
        detail: o.detail,
        via: o.via,
        system: o.system,
        elevation: o.elevation,
        package: o.package,
    }
}

fn cols(c: &[(&str, &str)]) -> Vec<ReportColumn> {
    c.iter()
        .map(|(k, l)| ReportColumn {
            key: (*k).into(),
            label: (*l).into(),
        })
        .collect()
}

fn row(values: &[(&str, Value)]) -> Map<String, Value> {
    values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The heatmap as a table: a row per weekday, a column per hour.
fn timing_table(t: &analytics::Timing) -> (Vec<ReportColumn>, Vec<Map<String, Value>>) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut columns = cols(&[("day", "Day")]);
    columns.extend((0..24).map(|h| ReportColumn {
        key: format!("h{h:02}"),
        label: format!("{h:02}"),
    }));
    let rows = DAYS
        .iter()
        .zip(t.heatmap.iter())
        .map(|(day, hours)| {
            let mut r = Map::new();
            r.insert("day".into(), json!(day));
            for (h, n) in hours.iter().enumerate() {
                r.insert(format!("h{h:02}"), json!(n));
            }
            r
        })
        .collect();
    (columns, rows)
}
