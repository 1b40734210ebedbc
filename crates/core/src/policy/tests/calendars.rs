//! Calendars through `decide`: inside/outside, `!`, dates off, wrap past midnight, DST in Berlin.
//! Instants are UTC; the comment on each row gives the Berlin wall-clock time.

use super::{check, checked, policy, req};
use crate::Policy;

const IN: &str = "auto <- in";
const OUT: &str = "deny: outside <- defaults";

/// One calendar `c` in Europe/Berlin and a rule `in` that is auto inside it (`when = "c"`).
fn calendar(weekly: &str, dates_off: &str, when: &str) -> Policy {
    policy(&format!(
        "version = 1\n[defaults]\nunmatched = \"deny\"\ndeny_message = \"outside\"\n\
         [[calendar]]\nname = \"c\"\ntimezone = \"Europe/Berlin\"\nweekly = [{weekly}]\n\
         dates_off = [{dates_off}]\n\
         [[rule]]\nname = \"in\"\nwhen = \"{when}\"\naction = \"auto\"\n"
    ))
}

#[track_caller]
fn table(p: &Policy, rows: &[(&str, &str)]) {
    let r = req("alice", "/usr/bin/id");
    for (instant, expect) in rows {
        check(p, instant, &r, expect);
    }
}

#[test]
fn business_hours() {
    let p = calendar(r#""mon-fri 08:00-18:00", "sat 09:00-12:00""#, "", "c");
    table(
        &p,
        &[
            ("2026-06-15T05:59:59Z", OUT), // Mon 07:59:59
            ("2026-06-15T06:00:00Z", IN),  // Mon 08:00
            ("2026-06-15T15:59:00Z", IN),  // Mon 17:59
            ("2026-06-15T16:00:00Z", OUT), // Mon 18:00
            ("2026-06-19T10:00:00Z", IN),  // Fri 12:00
            ("2026-06-20T07:30:00Z", IN),  // Sat 09:30
            ("2026-06-20T10:00:00Z", OUT), // Sat 12:00
            ("2026-06-21T10:00:00Z", OUT), // Sun 12:00
        ],
    );
    let d = checked(&p, "2026-06-15T10:00:00Z", &req("alice", "/usr/bin/id"), IN);
    assert_eq!(d.explanation, "rule \"in\" matched: it is inside c");
}

#[test]
fn negation() {
    let p = calendar(r#""mon-fri 08:00-18:00""#, "", "!c");
    table(
        &p,
        &[
            ("2026-06-15T10:00:00Z", OUT), // Mon 12:00
            ("2026-06-15T17:00:00Z", IN),  // Mon 19:00
            ("2026-06-21T10:00:00Z", IN),  // Sun 12:00
        ],
    );
    let d = checked(&p, "2026-06-15T17:00:00Z", &req("alice", "/usr/bin/id"), IN);
    assert_eq!(d.explanation, "rule \"in\" matched: it is outside c");
}

#[test]
fn dates_off_are_local_dates() {
    let p = calendar(
        r#""mon-sun 00:00-24:00""#,
        r#""2026-06-15", "2026-12-24..2026-12-31""#,
        "c",
    );
    table(
        &p,
        &[
            ("2026-06-14T21:30:00Z", IN),  // Sun 14th 23:30
            ("2026-06-14T22:30:00Z", OUT), // Mon 15th 00:30, a date off
            ("2026-06-15T21:59:00Z", OUT), // Mon 15th 23:59
            ("2026-06-15T22:00:00Z", IN),  // Tue 16th 00:00
            ("2026-12-23T12:00:00Z", IN),
            ("2026-12-24T12:00:00Z", OUT),
            ("2026-12-31T22:59:00Z", OUT), // Dec 31st 23:59 (CET)
            ("2026-12-31T23:00:00Z", IN),  // Jan 1st 00:00
        ],
    );
}

#[test]
fn windows_wrap_past_midnight() {
    let p = calendar(r#""sun 22:00-06:00""#, "", "c");
    table(
        &p,
        &[
            ("2026-06-14T01:00:00Z", OUT), // Sun 03:00: the tail of Saturday, which has no window
            ("2026-06-14T19:59:00Z", OUT), // Sun 21:59
            ("2026-06-14T20:00:00Z", IN),  // Sun 22:00
            ("2026-06-14T22:30:00Z", IN),  // Mon 00:30
            ("2026-06-15T01:00:00Z", IN),  // Mon 03:00
            ("2026-06-15T03:59:00Z", IN),  // Mon 05:59
            ("2026-06-15T04:00:00Z", OUT), // Mon 06:00
            ("2026-06-15T20:30:00Z", OUT), // Mon 22:30
        ],
    );
}

#[test]
fn windows_follow_daylight_saving_time() {
    // Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    let p = calendar(r#""mon-sun 08:00-18:00""#, "", "c");
    table(
        &p,
        &[
            ("2026-03-28T06:59:00Z", OUT), // Sat 07:59 CET
            ("2026-03-28T07:00:00Z", IN),  // Sat 08:00 CET
            ("2026-03-28T16:59:00Z", IN),  // Sat 17:59 CET
            ("2026-03-28T17:00:00Z", OUT), // Sat 18:00 CET
            ("2026-03-29T05:59:00Z", OUT), // Sun 07:59 CEST
            ("2026-03-29T06:00:00Z", IN),  // Sun 08:00 CEST (07:00 by the winter offset)
            ("2026-03-29T15:59:00Z", IN),  // Sun 17:59 CEST
            ("2026-03-29T16:00:00Z", OUT), // Sun 18:00 CEST (17:00 by the winter offset)
            ("2026-10-24T05:59:00Z", OUT), // Sat 07:59 CEST
            ("2026-10-24T06:00:00Z", IN),  // Sat 08:00 CEST
            ("2026-10-24T16:00:00Z", OUT), // Sat 18:00 CEST
            ("2026-10-25T06:30:00Z", OUT), // Sun 07:30 CET (08:30 by the summer offset)
            ("2026-10-25T07:00:00Z", IN),  // Sun 08:00 CET
            ("2026-10-25T16:59:00Z", IN),  // Sun 17:59 CET (18:59 by the summer offset)
            ("2026-10-25T17:00:00Z", OUT), // Sun 18:00 CET
        ],
    );
}

#[test]
fn other_time_zones() {
    let p = policy(
        r#"
version = 1
[defaults]
unmatched = "deny"
deny_message = "outside"
[[calendar]]
name = "ny"
timezone = "America/New_York"
weekly = ["mon-fri 09:00-17:00"]
[[rule]]
name = "in"
when = "ny"
action = "auto"
"#,
    );
    table(
        &p,
        &[
            ("2026-06-15T12:59:00Z", OUT), // Mon 08:59 EDT
            ("2026-06-15T13:00:00Z", IN),  // Mon 09:00 EDT
            ("2026-01-12T13:30:00Z", OUT), // Mon 08:30 EST
            ("2026-01-12T14:00:00Z", IN),  // Mon 09:00 EST
        ],
    );
}
