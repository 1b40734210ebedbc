//! A generated month of admin use with known behaviour: a few hundred people in several
//! departments (and some without one, and logins the directory does not know), each at a known
//! frequency, programs per department, system jobs, failed attempts, and runs inside and
//! outside business hours (Europe/Berlin, Monday to Friday 08:00-18:00). What the reports must
//! find is worked out here from what was put in, not by the code under test.
//!
//! Must never: depend on the day it runs (October 2026, fixed).

use std::collections::BTreeMap;

use elevate_proto::v1::{ObservationIn, Outcome};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{json, Value};

/// The month: 30 days from this date.
pub const MONTH_START: &str = "2026-10-01";
pub const MONTH_END: &str = "2026-10-31";

/// What the generator put in, as the reports must say it.
#[derive(Debug, Clone)]
pub struct Expected {
    /// who → segment (`low`, `moderate`, `high`) at the default thresholds.
    pub segments: BTreeMap<String, &'static str>,
    /// The application most people ran, and how many.
    pub top_application: (&'static str, u64),
    /// The department with the most distinct programs, and how many.
    pub most_varied: (&'static str, u64),
    /// (account, host, program, runs, runs per day), most runs first.
    pub system: Vec<(&'static str, &'static str, &'static str, u64, f64)>,
    /// People's runs, and those outside business hours.
    pub runs: u64,
    pub after_hours: u64,
    /// The same per department (people of the directory with one).
    pub by_department: BTreeMap<&'static str, (u64, u64)>,
}

impl Expected {
    pub fn after_hours_percent(&self) -> f64 {
        (self.after_hours as f64 * 1000.0 / self.runs as f64).round() / 10.0
    }
}

/// The generated month.
#[derive(Debug, Clone)]
pub struct Month {
    /// The directory, as `POST /v1/directory/import` takes it.
    pub directory: Value,
    pub observations: Vec<ObservationIn>,
    pub expected: Expected,
}

const DEPARTMENTS: [(&str, &[&str]); 5] = [
    (
        "Engineering",
        &["/usr/bin/apt", "/usr/bin/docker", "/usr/bin/systemctl"],
    ),
    ("Finance", &["/usr/sbin/lpadmin"]),
    (
        "IT",
        &[
            "/usr/bin/apt",
            "/usr/bin/systemctl",
            "/usr/sbin/useradd",
            "/usr/bin/tcpdump",
            "/usr/sbin/visudo",
            "/bin/bash",
        ],
    ),
    ("Sales", &["/usr/sbin/lpadmin", "/usr/bin/nmcli"]),
    ("", &["/usr/bin/apt"]),
];

/// Person `i`'s department (an index into `DEPARTMENTS`): 40 % Engineering, 20 % Finance,
/// 10 % IT, 20 % Sales, 10 % none.
fn department_of(i: usize) -> usize {
    match i % 10 {
        0..=3 => 0,
        4 | 5 => 1,
        6 => 2,
        7 | 8 => 3,
        _ => 4,
    }
}

/// Runs in the month per segment: high, moderate, low.
const RATES: [(&str, u64); 3] = [("high", 25), ("moderate", 8), ("low", 2)];

pub fn month(people: usize, guests: usize) -> Month {
    let berlin = TimeZone::get("Europe/Berlin").expect("the bundled time zone database");
    let start: Date = MONTH_START.parse().expect("a date");
    let mut observations = Vec::new();
    let mut segments = BTreeMap::new();
    let mut directory = Vec::new();
    let (mut runs, mut after_hours) = (0, 0);
    let mut by_department: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut add = |id: String,
                   at: jiff::Timestamp,
                   host: &str,
                   user: &str,
                   uid: u32,
                   program: &str,
                   tty: Option<&str>,
                   outcome: Outcome| {
        observations.push(ObservationIn {
            id,
            at,
            host: host.into(),
            user: user.into(),
            uid: Some(uid),
            runas: "root".into(),
            program: program.into(),
            command_line: format!("{program} --generated"),
            cwd: Some("/".into()),
            tty: tty.map(str::to_owned),
            outcome,
            detail: (outcome != Outcome::Ran).then(|| "1 incorrect password attempt".into()),
            via: "sudo".into(),
            system: tty.is_none() || uid < 1000,
            elevation: None,
        });
    };
    let who_runs = (0..people)
        .map(|i| {
            (
                format!("p{i:03}"),
                format!("u{i:03}"),
                department_of(i),
                RATES[i % 3],
            )
        })
        .chain((0..guests).map(|j| (format!("guest{j}"), format!("guest{j}"), 4, ("low", 1))));
    for (i, (who, login, dep, (segment, count))) in who_runs.enumerate() {
        let (dep_name, programs) = DEPARTMENTS[dep];
        let known = i < people;
        if known {
            directory.push(
                json!({ "user_name": who, "department": (!dep_name.is_empty()).then_some(dep_name),
                "logins": [{ "login": login }] }),
            );
        }
        segments.insert(who.clone(), segment);
        let host = format!("ws-{i:03}");
        for k in 0..count as usize {
            let day = start + jiff::Span::new().days(((i + k * 3) % 30) as i64);
            let late = (i + k) % 5 == 0;
            let local = day.at(if late { 21 } else { 10 }, (k % 60) as i8, 0, 0);
            let at = local
                .to_zoned(berlin.clone())
                .expect("a Berlin time")
                .timestamp();
            let weekend = matches!(
                day.weekday(),
                jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
            );
            runs += 1;
            if late || weekend {
                after_hours += 1;
            }
            if known && !dep_name.is_empty() {
                let d = by_department.entry(dep_name).or_default();
                d.0 += 1;
                d.1 += u64::from(late || weekend);
            }
            let program = programs[k % programs.len()];
            add(
                format!("syslog:gen-{who}-{k}"),
                at,
                &host,
                &login,
                1000 + i as u32,
                program,
                Some("pts/0"),
                Outcome::Ran,
            );
        }
        if i % 7 == 0 {
            let at = start
                .at(11, 0, 0, 0)
                .to_zoned(berlin.clone())
                .expect("a Berlin time")
                .timestamp();
            add(
                format!("syslog:gen-{who}-failed"),
                at,
                &host,
                &login,
                1000 + i as u32,
                "/usr/bin/passwd",
                Some("pts/0"),
                Outcome::Failed,
            );
        }
    }
    for d in 0..30 {
        let day = start + jiff::Span::new().days(d);
        for (n, minute) in [0, 30].iter().enumerate() {
            let at = day
                .at(3, *minute, 0, 0)
                .to_zoned(TimeZone::UTC)
                .expect("UTC")
                .timestamp();
            add(
                format!("syslog:gen-logrotate-{d}-{n}"),
                at,
                "db1",
                "root",
                0,
                "/usr/sbin/logrotate",
                None,
                Outcome::Ran,
            );
        }
        for h in 0..4 {
            let at = day
                .at(h * 6, 15, 0, 0)
                .to_zoned(TimeZone::UTC)
                .expect("UTC")
                .timestamp();
            add(
                format!("syslog:gen-rsync-{d}-{h}"),
                at,
                "backup1",
                "backup",
                998,
                "/usr/bin/rsync",
                None,
                Outcome::Ran,
            );
        }
    }
    let apt_users = (0..people)
        .filter(|i| matches!(department_of(*i), 0 | 2 | 4))
        .count()
        + guests;
    Month {
        directory: json!({ "people": directory }),
        observations,
        expected: Expected {
            segments,
            top_application: ("/usr/bin/apt", apt_users as u64),
            most_varied: ("IT", 6),
            system: vec![
                ("backup", "backup1", "/usr/bin/rsync", 120, 4.0),
                ("root", "db1", "/usr/sbin/logrotate", 60, 2.0),
            ],
            runs,
            after_hours,
            by_department,
        },
    }
}
