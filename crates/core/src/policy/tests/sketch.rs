//! The policy sketched in DESIGN.md ("Decisions"), copied verbatim: it parses and decides as
//! written.

use jiff::SignedDuration;

use super::{check, checked, policy, req, MONDAY_NOON};

const SKETCH: &str = r#"
version = 1
[defaults]
unmatched = "approve"          # approve | deny
approvers = "helpdesk"
reason = "required"
session_max = "2h"

[[calendar]]
name = "business-hours"
timezone = "Europe/Berlin"
weekly = ["mon-fri 08:00-18:00"]

[[rule]]
name = "package managers for developers"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/apt", "/usr/bin/apt-get"], package = "required" }
action = "auto"

[[rule]]
name = "IT staff, fast track in business hours"
who = { groups = ["it-staff"] }
when = "business-hours"
action = "auto"

[[rule]]
name = "after hours goes to on-call"
when = "!business-hours"
action = { approve = { approvers = "on-call", count = 1, sla = "15m", escalate = "security" } }

[[rule]]
name = "shells and editors with shell escapes"
what = { paths = ["/bin/bash", "/usr/bin/vi", "/usr/bin/less"] }
action = { deny = "use a specific command instead of a root shell" }
"#;

/// Monday 2026-06-15, 21:00 in Berlin.
const MONDAY_NIGHT: &str = "2026-06-15T19:00:00Z";

#[test]
fn design_sketch() {
    let p = policy(SKETCH);
    assert_eq!(p.version(), 1);
    assert_eq!(p.default_approvers(), "helpdesk");
    assert_eq!(p.rule_names().len(), 4);

    let dev_apt = req("alice:developers", "/usr/bin/apt install vim").package("apt");
    let d = checked(
        &p,
        MONDAY_NOON,
        &dev_apt,
        "auto <- package managers for developers",
    );
    assert_eq!(
        d.explanation,
        "rule \"package managers for developers\" matched: alice is in group developers, \
         the command is /usr/bin/apt, /usr/bin/apt is owned by package apt"
    );
    assert!(d.constraints.reason_required);
    assert_eq!(d.constraints.session_max, SignedDuration::from_hours(2));
    check(
        &p,
        MONDAY_NIGHT,
        &dev_apt,
        "auto <- package managers for developers",
    );
    let unpackaged = req("alice:developers", "/usr/bin/apt install vim");
    check(&p, MONDAY_NOON, &unpackaged, "approve helpdesk <- defaults");

    check(
        &p,
        MONDAY_NOON,
        &req("ivan:it-staff", "/usr/sbin/reboot"),
        "auto <- IT staff, fast track in business hours",
    );
    let d = checked(
        &p,
        MONDAY_NIGHT,
        &req("ivan:it-staff", "/usr/sbin/reboot"),
        "approve on-call <- after hours goes to on-call",
    );
    let crate::Outcome::Approve(route) = d.outcome else {
        panic!()
    };
    assert_eq!(
        (route.sla, route.escalate.as_deref()),
        (Some(SignedDuration::from_mins(15)), Some("security"))
    );
    assert_eq!(
        d.explanation,
        "rule \"after hours goes to on-call\" matched: it is outside business-hours"
    );

    let shell = "deny: use a specific command instead of a root shell <- shells and editors with shell escapes";
    check(&p, MONDAY_NOON, &req("bob", "/bin/bash"), shell);
    check(
        &p,
        MONDAY_NOON,
        &req("bob", "/usr/bin/vi /etc/hosts"),
        shell,
    );
    // As written, the sketch's order lets the rules above the shell rule win: IT staff get a shell
    // in business hours and after hours a shell goes to on-call. Put the deny rule first to deny
    // shells always.
    check(
        &p,
        MONDAY_NOON,
        &req("ivan:it-staff", "/bin/bash"),
        "auto <- IT staff, fast track in business hours",
    );
    check(
        &p,
        MONDAY_NIGHT,
        &req("bob", "/bin/bash"),
        "approve on-call <- after hours goes to on-call",
    );

    let d = checked(
        &p,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "approve helpdesk <- defaults",
    );
    assert_eq!(
        d.explanation,
        "no rule matched; the default is to ask helpdesk"
    );
    check(
        &p,
        MONDAY_NOON,
        &req("bob", "session 3h"),
        "deny: admin sessions are limited to 2h by the policy defaults; ask for 2h or less <- defaults",
    );
    check(
        &p,
        "2026-06-20T10:00:00Z",
        &req("bob", "/usr/bin/id"),
        "approve on-call <- after hours goes to on-call",
    );
}
