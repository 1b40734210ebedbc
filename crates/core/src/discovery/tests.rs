//! Discovery analytics on small, hand-made usage.

use jiff::Timestamp;

use super::*;
use crate::calendar::{Calendar, WeeklyWindow};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn usage(
    who: &str,
    dep: Option<&str>,
    program: &str,
    outcome: &'static str,
    system: bool,
    runs: u64,
) -> Usage {
    Usage {
        who: who.into(),
        person: dep.is_some(),
        department: dep.map(Into::into),
        login: who.into(),
        host: "h1".into(),
        program: program.into(),
        outcome,
        system,
        runs,
        days: runs.min(30),
        first: at("2026-11-01T10:00:00Z"),
        last: at("2026-11-20T10:00:00Z"),
    }
}

fn sample() -> Vec<Usage> {
    vec![
        usage("ann", Some("ops"), "/usr/bin/apt", "ran", false, 25),
        usage("ann", Some("ops"), "/usr/bin/systemctl", "ran", false, 5),
        usage("bob", Some("ops"), "/usr/bin/apt", "ran", false, 6),
        usage("cy", Some("finance"), "/usr/bin/lpadmin", "ran", false, 2),
        usage("dee", None, "/bin/bash", "ran", false, 1),
        usage("dee", None, "/bin/bash", "refused", false, 3),
        usage("root", None, "/usr/sbin/logrotate", "ran", true, 60),
    ]
}

#[test]
fn segments_divide_at_the_thresholds_per_30_days() {
    let s = segments(&sample(), Thresholds::default(), 30);
    let got: Vec<(&str, &str, u64)> = s
        .iter()
        .map(|p| (p.who.as_str(), p.segment.as_str(), p.runs))
        .collect();
    assert_eq!(
        got,
        [
            ("ann", "high", 30),
            ("bob", "moderate", 6),
            ("cy", "low", 2),
            ("dee", "low", 1)
        ]
    );
    // Over 60 days, 30 runs is 15 a month: moderate.
    let s = segments(&sample(), Thresholds::default(), 60);
    assert_eq!(s[0].segment, Segment::Moderate);
    assert_eq!(s[0].per_30_days, 15.0);
    // Thresholds move the lines.
    let strict = Thresholds {
        moderate: 2,
        high: 6,
    };
    let s = segments(&sample(), strict, 30);
    assert_eq!(s.iter().filter(|p| p.segment == Segment::High).count(), 2);
    assert!(Thresholds {
        moderate: 5,
        high: 5
    }
    .check()
    .is_err());
}

#[test]
fn the_system_is_not_a_person_and_a_person_without_a_department_is_kept() {
    let p = people(&sample());
    assert!(p.iter().all(|u| u.who != "root"));
    let dee = p.iter().find(|u| u.who == "dee").unwrap();
    assert_eq!(
        (dee.department.clone(), dee.runs, dee.attempts_denied),
        (None, 1, 3)
    );
    let deps = departments(&sample());
    assert_eq!(deps[0].department.as_deref(), Some("ops"));
    assert_eq!(deps[0].programs, 2);
    assert!(deps.iter().any(|d| d.department.is_none()));
    let sys = system_dependencies(&sample(), 30);
    assert_eq!(sys.len(), 1);
    assert_eq!(
        (sys[0].account.as_str(), sys[0].runs, sys[0].per_day),
        ("root", 60, 2.0)
    );
}

#[test]
fn applications_count_distinct_users_and_runs() {
    let apps = applications(&sample());
    assert_eq!(apps[0].program, "/usr/bin/apt");
    assert_eq!((apps[0].users, apps[0].runs), (2, 31));
    assert_eq!(apps[0].departments, ["ops"]);
    let bash = apps.iter().find(|a| a.program == "/bin/bash").unwrap();
    assert_eq!((bash.runs, bash.risk), (1, Some(Risk::Shell)));
    let risky = risky(&sample());
    assert_eq!(risky.len(), 1);
    assert_eq!(risky[0].users, ["dee"]);
    let a = attempts(&sample());
    assert_eq!(
        (a.len(), a[0].outcome.as_str(), a[0].runs),
        (1, "refused", 3)
    );
}

#[test]
fn programs_are_judged_by_name_and_place() {
    for (p, r) in [
        ("/bin/bash", Some(Risk::Shell)),
        ("su", Some(Risk::Shell)),
        ("/usr/bin/vim.basic", None),
        ("/usr/bin/vim", Some(Risk::ShellEscape)),
        ("/usr/bin/python3.11", Some(Risk::Interpreter)),
        ("/usr/bin/find", Some(Risk::RunsOtherPrograms)),
        ("/home/ann/bin/deploy", Some(Risk::UserWritablePlace)),
        (
            "C:\\Users\\ann\\AppData\\Local\\x.exe",
            Some(Risk::UserWritablePlace),
        ),
        ("C:\\Windows\\System32\\cmd.exe", Some(Risk::Shell)),
        ("/usr/bin/apt", None),
    ] {
        assert_eq!(risk_of(p), r, "{p}");
    }
}

#[test]
fn timing_reads_hours_in_the_calendars_zone_and_counts_after_hours() {
    let mut cal = Calendar::new("business-hours", "Europe/Berlin").unwrap();
    cal.add_window(WeeklyWindow::parse("mon-fri 08:00-18:00").unwrap());
    // Monday 2026-11-30 07:00 UTC is 08:00 in Berlin (inside); 17:00 UTC is 18:00 (outside);
    // Saturday is outside.
    let hour = |s: &str| at(s).as_second() / 3600;
    let hours = [
        (hour("2026-11-30T07:00:00Z"), 3),
        (hour("2026-11-30T17:00:00Z"), 1),
        (hour("2026-12-05T10:00:00Z"), 1),
    ];
    let t = timing(&hours, Some(&cal));
    assert_eq!((t.total, t.after_hours), (5, 2));
    assert_eq!(t.after_hours_percent(), 40.0);
    assert_eq!(t.heatmap[0][8], 3);
    assert_eq!(t.heatmap[0][18], 1);
    assert_eq!(t.heatmap[5][11], 1);
    assert_eq!(t.timezone, "Europe/Berlin");
    // Without a calendar: UTC, nothing after hours.
    let t = timing(&hours, None);
    assert_eq!((t.after_hours, t.heatmap[0][7]), (0, 3));
}
