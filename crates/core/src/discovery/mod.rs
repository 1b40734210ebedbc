//! Discovery analytics: the answers the rollout guide asks of weeks of recorded admin use —
//! which applications need elevation, who uses it and how often (segments), how varied each
//! department's needs are, which system jobs depend on it, when it happens, what failed, and
//! which risky programs ran. Pure functions over rolled-up usage (the server reads rollups; this
//! never sees single events).
//!
//! Must never: drop a person for lacking a department (they are listed under none), or mix the
//! system's non-interactive runs into people's numbers (they are the system dependencies).

mod risk;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;

use crate::calendar::Calendar;

pub use risk::{risk_of, Risk};

/// Rolled-up use of one program by one login on one host, with how it ended, over a period.
/// Names are shared (`Arc<str>`): a month at ten million events is some 200,000 of these, over
/// a few thousand distinct names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The person (the directory's user name) when the login is theirs; else the login.
    pub who: Arc<str>,
    /// Whether `who` is a person of the directory.
    pub person: bool,
    pub department: Option<Arc<str>>,
    pub login: Arc<str>,
    pub host: Arc<str>,
    pub program: Arc<str>,
    /// `ran`, `failed` or `refused`.
    pub outcome: &'static str,
    /// A service or job rather than a person at a terminal.
    pub system: bool,
    pub runs: u64,
    /// Days with at least one run.
    pub days: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl Usage {
    fn ran(&self) -> bool {
        self.outcome == "ran"
    }

    fn by_people(&self) -> bool {
        !self.system
    }
}

/// An application run elevated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub program: String,
    /// Distinct people (or unknown logins) and system accounts that ran it.
    pub users: u64,
    pub departments: Vec<String>,
    pub runs: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    pub risk: Option<Risk>,
}

/// Applications by how many ran them, then how often.
pub fn applications(usage: &[Usage]) -> Vec<Application> {
    type Acc<'a> = (
        BTreeSet<&'a str>,
        BTreeSet<&'a str>,
        u64,
        Timestamp,
        Timestamp,
    );
    let mut by: BTreeMap<&str, Acc<'_>> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.ran()) {
        let e =
            by.entry(&u.program)
                .or_insert((BTreeSet::new(), BTreeSet::new(), 0, u.first, u.last));
        e.0.insert(&u.who);
        if let Some(d) = &u.department {
            e.1.insert(d);
        }
        e.2 += u.runs;
        e.3 = e.3.min(u.first);
        e.4 = e.4.max(u.last);
    }
    let mut out: Vec<Application> = by
        .into_iter()
        .map(|(program, (users, deps, runs, first, last))| Application {
            program: program.to_owned(),
            users: users.len() as u64,
            departments: deps.into_iter().map(str::to_owned).collect(),
            runs,
            first,
            last,
            risk: risk_of(program),
        })
        .collect();
    out.sort_by(|a, b| {
        (b.users, b.runs)
            .cmp(&(a.users, a.runs))
            .then(a.program.cmp(&b.program))
    });
    out
}

/// One person's (or unknown login's) use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonUsage {
    pub who: String,
    pub person: bool,
    pub department: Option<String>,
    /// Elevations that ran.
    pub runs: u64,
    /// Attempts that failed or were refused.
    pub attempts_denied: u64,
    pub programs: u64,
    pub hosts: u64,
    pub last: Timestamp,
}

/// People by elevations, most first (the system's runs are not people's).
pub fn people(usage: &[Usage]) -> Vec<PersonUsage> {
    type Acc<'a> = (
        bool,
        Option<&'a str>,
        u64,
        u64,
        BTreeSet<&'a str>,
        BTreeSet<&'a str>,
        Timestamp,
    );
    let mut by: BTreeMap<&str, Acc<'_>> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.by_people()) {
        let e = by.entry(&u.who).or_insert((
            u.person,
            u.department.as_deref(),
            0,
            0,
            BTreeSet::new(),
            BTreeSet::new(),
            u.last,
        ));
        if u.ran() {
            e.2 += u.runs;
            e.4.insert(&u.program);
            e.5.insert(&u.host);
        } else {
            e.3 += u.runs;
        }
        e.6 = e.6.max(u.last);
    }
    let mut out: Vec<PersonUsage> = by
        .into_iter()
        .map(
            |(who, (person, dep, runs, denied, programs, hosts, last))| PersonUsage {
                who: who.to_owned(),
                person,
                department: dep.map(str::to_owned),
                runs,
                attempts_denied: denied,
                programs: programs.len() as u64,
                hosts: hosts.len() as u64,
                last,
            },
        )
        .collect();
    out.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.who.cmp(&b.who)));
    out
}

/// A department's use; `None` gathers the people the directory gives no department (and
/// logins it does not know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentUsage {
    pub department: Option<String>,
    pub people: u64,
    /// Distinct programs: how varied its needs are.
    pub programs: u64,
    pub runs: u64,
    pub top_programs: Vec<(String, u64)>,
}

/// Departments by how varied their use is (distinct programs), then by runs.
pub fn departments(usage: &[Usage]) -> Vec<DepartmentUsage> {
    type Acc<'a> = (BTreeSet<&'a str>, BTreeMap<&'a str, u64>, u64);
    let mut by: BTreeMap<Option<&str>, Acc<'_>> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.by_people() && u.ran()) {
        let e = by.entry(u.department.as_deref()).or_default();
        e.0.insert(&u.who);
        *e.1.entry(&u.program).or_default() += u.runs;
        e.2 += u.runs;
    }
    let mut out: Vec<DepartmentUsage> = by
        .into_iter()
        .map(|(dep, (people, programs, runs))| {
            let mut top: Vec<(String, u64)> = programs
                .iter()
                .map(|(p, n)| ((*p).to_owned(), *n))
                .collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(5);
            DepartmentUsage {
                department: dep.map(str::to_owned),
                people: people.len() as u64,
                programs: programs.len() as u64,
                runs,
                top_programs: top,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.programs, b.runs)
            .cmp(&(a.programs, a.runs))
            .then(a.department.cmp(&b.department))
    });
    out
}

/// A job that needs elevation with nobody at a terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemDependency {
    pub account: String,
    pub host: String,
    pub program: String,
    pub runs: u64,
    /// Runs per day of the period.
    pub per_day: f64,
    pub days_seen: u64,
    pub last: Timestamp,
}

/// The system's elevations, per account, host and program, most frequent first.
pub fn system_dependencies(usage: &[Usage], period_days: u64) -> Vec<SystemDependency> {
    let mut by: BTreeMap<(&str, &str, &str), (u64, u64, Timestamp)> = BTreeMap::new();
    for u in usage.iter().filter(|u| u.system && u.ran()) {
        let e = by
            .entry((&u.login, &u.host, &u.program))
            .or_insert((0, 0, u.last));
        e.0 += u.runs;
        e.1 = e.1.max(u.days);
        e.2 = e.2.max(u.last);
    }
    let mut out: Vec<SystemDependency> = by
        .into_iter()
        .map(
            |((account, host, program), (runs, days, last))| SystemDependency {
                account: account.to_owned(),
                host: host.to_owned(),
                program: program.to_owned(),
                runs,
                per_day: runs as f64 / period_days.max(1) as f64,
                days_seen: days,
                last,
            },
        )
        .collect();
    out.sort_by(|a, b| {
        b.runs
            .cmp(&a.runs)
            .then((&a.account, &a.host, &a.program).cmp(&(&b.account, &b.host, &b.program)))
    });
    out
}

/// Attempts that failed (authentication) or were refused (the rules), per who and program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub who: String,
    pub department: Option<String>,
    pub host: String,
    pub program: String,
    pub outcome: String,
    pub runs: u64,
    pub last: Timestamp,
}

pub fn attempts(usage: &[Usage]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = usage
        .iter()
        .filter(|u| !u.ran())
        .map(|u| Attempt {
            who: u.who.to_string(),
            department: u.department.as_deref().map(str::to_owned),
            host: u.host.to_string(),
            program: u.program.to_string(),
            outcome: u.outcome.to_owned(),
            runs: u.runs,
            last: u.last,
        })
        .collect();
    out.sort_by(|a, b| b.runs.cmp(&a.runs).then(b.last.cmp(&a.last)));
    out
}

/// A risky program that ran elevated, with who ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyProgram {
    pub program: String,
    pub risk: Risk,
    pub users: Vec<String>,
    pub runs: u64,
    pub last: Timestamp,
}

pub fn risky(usage: &[Usage]) -> Vec<RiskyProgram> {
    applications(usage)
        .into_iter()
        .filter_map(|a| {
            let risk = a.risk?;
            let users: BTreeSet<&str> = usage
                .iter()
                .filter(|u| u.ran() && *u.program == *a.program)
                .map(|u| &*u.who)
                .collect();
            Some(RiskyProgram {
                users: users.into_iter().map(str::to_owned).collect(),
                program: a.program,
                risk,
                runs: a.runs,
                last: a.last,
            })
        })
        .collect()
}

/// Frequency segments of people, by elevations per 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Low,
    Moderate,
    High,
}

impl Segment {
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Low => "low",
            Segment::Moderate => "moderate",
            Segment::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Segment> {
        [Segment::Low, Segment::Moderate, Segment::High]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// Where the segments divide: fewer than `moderate` elevations per 30 days is low, `high` or
/// more is high, the rest moderate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub moderate: u64,
    pub high: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            moderate: 5,
            high: 20,
        }
    }
}

impl Thresholds {
    pub fn check(&self) -> Result<(), String> {
        if self.moderate == 0 || self.high <= self.moderate {
            return Err(format!(
                "segment thresholds must be 0 < moderate < high (got moderate {} and high {})",
                self.moderate, self.high
            ));
        }
        Ok(())
    }

    pub fn segment(&self, per_30_days: f64) -> Segment {
        if per_30_days >= self.high as f64 {
            Segment::High
        } else if per_30_days >= self.moderate as f64 {
            Segment::Moderate
        } else {
            Segment::Low
        }
    }
}

/// A person in a segment, with the evidence's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmented {
    pub who: String,
    pub person: bool,
    pub department: Option<String>,
    pub runs: u64,
    pub per_30_days: f64,
    pub segment: Segment,
    pub programs: u64,
}

/// Every person who elevated in the period, in a segment by their rate per 30 days.
pub fn segments(usage: &[Usage], thresholds: Thresholds, period_days: u64) -> Vec<Segmented> {
    let scale = 30.0 / period_days.max(1) as f64;
    let mut out: Vec<Segmented> = people(usage)
        .into_iter()
        .filter(|p| p.runs > 0)
        .map(|p| {
            let per_30_days = (p.runs as f64 * scale * 10.0).round() / 10.0;
            Segmented {
                segment: thresholds.segment(per_30_days),
                who: p.who,
                person: p.person,
                department: p.department,
                runs: p.runs,
                per_30_days,
                programs: p.programs,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.segment
            .cmp(&a.segment)
            .then(b.runs.cmp(&a.runs))
            .then(a.who.cmp(&b.who))
    });
    out
}

/// When people elevate: runs per weekday (Monday first) and hour, in the calendar's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub heatmap: [[u64; 24]; 7],
    pub total: u64,
    /// Runs outside the calendar (none when there is no calendar).
    pub after_hours: u64,
    pub calendar: Option<String>,
    pub timezone: String,
}

impl Timing {
    /// The share of runs after hours, in percent with one decimal.
    pub fn after_hours_percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        (self.after_hours as f64 * 1000.0 / self.total as f64).round() / 10.0
    }
}

/// Timing of people's elevations from runs per UTC hour (hours since the epoch); an hour is
/// after hours when its start is outside the calendar.
pub fn timing(hours: &[(i64, u64)], calendar: Option<&Calendar>) -> Timing {
    let tz = calendar.map_or(jiff::tz::TimeZone::UTC, |c| c.timezone().clone());
    let mut t = Timing {
        heatmap: [[0; 24]; 7],
        total: 0,
        after_hours: 0,
        calendar: calendar.map(|c| c.name().to_owned()),
        timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
    };
    for &(hour, runs) in hours {
        let Ok(start) = Timestamp::from_second(hour * 3600) else {
            continue;
        };
        let local = start.to_zoned(tz.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        t.heatmap[day][local.hour() as usize] += runs;
        t.total += runs;
        if calendar.is_some_and(|c| !c.contains(start)) {
            t.after_hours += runs;
        }
    }
    t
}

#[cfg(test)]
mod tests;
