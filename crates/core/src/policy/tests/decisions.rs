//! Whole decisions: rule order, defaults, waves and modes, session limits, constraints.

use jiff::SignedDuration;

use super::{check, checked, policy, req, MONDAY_NOON};

#[test]
fn first_match_wins() {
    let p = policy(
        r#"
version = 1
[[rule]]
name = "deny shells"
what = { paths = ["/bin/bash"] }
action = { deny = "no root shells" }

[[rule]]
name = "developers"
who = { groups = ["developers"] }
action = "auto"

[[rule]]
name = "never reached for developers"
who = { groups = ["developers"] }
action = { deny = "unreachable" }
"#,
    );
    assert_eq!(
        p.rule_names(),
        ["deny shells", "developers", "never reached for developers"]
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice:developers", "/bin/bash"),
        "deny: no root shells <- deny shells",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice:developers", "/usr/bin/id"),
        "auto <- developers",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "approve helpdesk <- defaults",
    );
}

#[test]
fn defaults() {
    let minimal = policy("version = 1");
    assert_eq!(minimal.version(), 1);
    assert_eq!(minimal.default_approvers(), "helpdesk");
    assert!(minimal.rule_names().is_empty());
    let d = checked(
        &minimal,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "approve helpdesk <- defaults",
    );
    assert_eq!(
        d.explanation,
        "no rule matched; the default is to ask helpdesk"
    );
    assert!(!d.constraints.reason_required);
    assert_eq!(d.constraints.session_max, SignedDuration::from_hours(1));

    let approve =
        policy("version = 1\n[defaults]\napprovers = \"it-desk\"\nunmatched = \"approve\"");
    assert_eq!(approve.default_approvers(), "it-desk");
    check(
        &approve,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "approve it-desk <- defaults",
    );

    let deny = policy("version = 1\n[defaults]\nunmatched = \"deny\"\napprovers = \"it-desk\"");
    let d = checked(
        &deny,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "deny: no policy rule allows this request; ask it-desk if you need it <- defaults",
    );
    assert_eq!(d.explanation, "no rule matched; the default is to deny it");

    let message =
        policy("version = 1\n[defaults]\nunmatched = \"deny\"\ndeny_message = \"file a ticket\"");
    check(
        &message,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "deny: file a ticket <- defaults",
    );

    let auto = policy("version = 1\n[defaults]\nunmatched = \"auto\"");
    check(
        &auto,
        MONDAY_NOON,
        &req("bob", "/usr/bin/id"),
        "auto <- defaults",
    );
}

#[test]
fn approval_routes() {
    let p = policy(
        r#"
version = 1
[defaults]
approvers = "it-desk"
[[rule]]
name = "route"
who = { users = ["a"] }
action = { approve = { approvers = "on-call", count = 2, sla = "15m", escalate = "security" } }
[[rule]]
name = "inherit"
who = { users = ["b"] }
action = { approve = {} }
[[rule]]
name = "short"
who = { users = ["c"] }
action = "approve"
"#,
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("a", "/usr/bin/id"),
        "approve 2 of on-call <- route",
    );
    let crate::Outcome::Approve(route) = d.outcome else {
        panic!()
    };
    assert_eq!(route.sla, Some(SignedDuration::from_mins(15)));
    assert_eq!(route.escalate.as_deref(), Some("security"));
    check(
        &p,
        MONDAY_NOON,
        &req("b", "/usr/bin/id"),
        "approve it-desk <- inherit",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("c", "/usr/bin/id"),
        "approve it-desk <- short",
    );
}

#[test]
fn waves_and_modes() {
    let p = policy(
        r#"
version = 1
[defaults]
mode = "discover"
[[wave]]
name = "pilot"
mode = "enforce"
who = { users = ["alice"], groups = ["it-staff"] }
[[wave]]
name = "everyone in it"
mode = "discover"
who = { groups = ["it-staff", "it"] }
[[rule]]
name = "no shells"
what = { paths = ["/bin/bash"] }
action = { deny = "no root shells" }
"#,
    );
    use crate::Mode::{Discover, Enforce};
    for (who, mode) in [
        ("alice", Enforce),
        ("bob:it-staff", Enforce),
        ("carol:it,sudo", Discover),
        ("dave:wheel", Discover),
    ] {
        assert_eq!(p.mode_for(&req(who, "/bin/true").0.subject), mode, "{who}");
    }
    check(
        &p,
        MONDAY_NOON,
        &req("alice", "/bin/bash"),
        "deny: no root shells <- no shells",
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("carol:it,sudo", "/bin/bash"),
        "discover auto; policy: deny: no root shells <- no shells",
    );
    assert!(
        d.explanation.contains("discovery mode records it"),
        "{}",
        d.explanation
    );
    assert!(
        d.explanation.contains("enforce mode would deny it"),
        "{}",
        d.explanation
    );
    check(
        &p,
        MONDAY_NOON,
        &req("dave:wheel", "/usr/bin/id"),
        "discover auto; policy: approve helpdesk <- defaults",
    );
    // Without standing admin rights, discovery gives nothing away: the policy applies.
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("erin:it", "/bin/bash"),
        "discover deny: no root shells; policy: deny: no root shells <- no shells",
    );
    assert!(d.explanation.contains("erin does not"), "{}", d.explanation);
    // Through sudo, sudoers has already said yes: discovery lets it run as before.
    check(
        &p,
        MONDAY_NOON,
        &req("erin:it", "/bin/bash").via_sudo(),
        "discover auto; policy: deny: no root shells <- no shells",
    );
    // An admin session is a grant: discovery never waves it through, not even through sudo.
    check(
        &p,
        MONDAY_NOON,
        &req("carol:it,sudo", "session 30m").via_sudo(),
        "discover approve helpdesk; policy: approve helpdesk <- defaults",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("erin:it", "session 30m"),
        "discover approve helpdesk; policy: approve helpdesk <- defaults",
    );
    // In enforce mode the channel changes nothing.
    check(
        &p,
        MONDAY_NOON,
        &req("alice", "/bin/bash").via_sudo(),
        "deny: no root shells <- no shells",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("frank", "/usr/bin/id"),
        "discover approve helpdesk; policy: approve helpdesk <- defaults",
    );

    let enforce_by_default = policy(
        "version = 1\n[[wave]]\nname = \"w\"\nmode = \"discover\"\nwho = { users = [\"zed\"] }",
    );
    assert_eq!(
        enforce_by_default.mode_for(&req("amy", "/bin/true").0.subject),
        Enforce
    );
    assert_eq!(
        enforce_by_default.mode_for(&req("zed", "/bin/true").0.subject),
        Discover
    );
}

#[test]
fn standing_rights_are_revoked_in_enforce_mode_except_for_break_glass_accounts() {
    let p = policy(
        r#"
version = 1
[defaults]
mode = "discover"
[break_glass]
users = ["root-oncall"]
groups = ["emergency"]
[[wave]]
name = "pilot"
mode = "enforce"
who = { groups = ["sudo"] }
"#,
    );
    for (who, revoked) in [
        ("alice:sudo", true),
        ("root-oncall:sudo", false),
        ("carol:sudo,emergency", false),
        ("dave:developers", false),
    ] {
        let subject = &req(who, "/bin/true").0.subject;
        assert_eq!(p.revokes_standing_rights(subject), revoked, "{who}");
    }
    assert!(p.is_break_glass(&req("root-oncall", "/bin/true").0.subject));
    // Enforce by default decides requests, but takes rights away only when written out.
    let alice = &req("alice:sudo", "/bin/true").0.subject;
    let unsaid = crate::Policy::parse("version = 1\n").unwrap();
    assert_eq!(unsaid.mode_for(alice), crate::Mode::Enforce);
    assert!(!unsaid.revokes_standing_rights(alice));
    let said = crate::Policy::parse("version = 1\n[defaults]\nmode = \"enforce\"\n").unwrap();
    assert!(said.revokes_standing_rights(alice));
    // A break-glass list that names nobody is a mistake, said where it is.
    let e = crate::Policy::parse("version = 1\n[break_glass]\nusers = []\n").unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("break_glass", 2), "{e}");
}

#[test]
fn break_glass_codes_are_off_unless_written_and_need_two_to_seven_people() {
    assert_eq!(
        crate::Policy::parse("version = 1\n")
            .unwrap()
            .break_glass_codes(),
        None
    );
    let p = crate::Policy::parse("version = 1\n[defaults]\nbreak_glass_codes = 3\n").unwrap();
    assert_eq!(p.break_glass_codes(), Some(3));
    for bad in ["1", "8", "-2"] {
        let e = crate::Policy::parse(&format!(
            "version = 1\n[defaults]\nbreak_glass_codes = {bad}\n"
        ))
        .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("defaults.break_glass_codes", 3),
            "{e}"
        );
        assert!(e.message.contains("2 to 7"), "{e}");
    }
}

#[test]
fn a_policy_may_limit_how_long_devices_decide_on_it_offline() {
    let p = crate::Policy::parse("version = 1\n[defaults]\noffline_max_age = \"7d\"\n").unwrap();
    assert_eq!(
        p.offline_max_age(),
        Some(SignedDuration::from_hours(7 * 24))
    );
    assert_eq!(
        crate::Policy::parse("version = 1\n")
            .unwrap()
            .offline_max_age(),
        None
    );
    let e =
        crate::Policy::parse("version = 1\n[defaults]\noffline_max_age = \"soon\"\n").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("defaults.offline_max_age", 3),
        "{e}"
    );
}

#[test]
fn a_rule_may_refuse_offline_codes() {
    let p = policy(
        r#"
version = 1
[[rule]]
name = "payroll tools need a person who can see them"
what = { paths = ["/opt/payroll/*"] }
offline = false
action = { approve = { approvers = "finance" } }
"#,
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/opt/payroll/run"),
        "approve finance <- payroll tools need a person who can see them",
    );
    assert!(!d.constraints.offline_codes);
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/id"),
        "approve helpdesk <- defaults",
    );
    assert!(
        d.constraints.offline_codes,
        "codes may stand in unless a rule says no"
    );
}

#[test]
fn session_limits() {
    let p = policy(
        r#"
version = 1
[defaults]
session_max = "2h"
[[rule]]
name = "short sessions for ops"
who = { groups = ["ops"] }
what = { session = true }
action = "auto"
session_max = "30m"
[[rule]]
name = "sessions for admins"
who = { groups = ["admins"] }
action = "auto"
[[rule]]
name = "no sessions for interns"
who = { groups = ["interns"] }
what = { session = true }
action = { deny = "interns get no admin sessions" }
"#,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("o:ops", "session 30m"),
        "auto <- short sessions for ops",
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("o:ops", "session 31m"),
        "deny: admin sessions are limited to 30m by rule \"short sessions for ops\"; ask for 30m or less <- short sessions for ops",
    );
    assert!(
        d.explanation
            .contains("the 31m session asked for is longer than the 30m allowed"),
        "{}",
        d.explanation
    );
    check(
        &p,
        MONDAY_NOON,
        &req("a:admins", "session 2h"),
        "auto <- sessions for admins",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("a:admins", "session 3h"),
        "deny: admin sessions are limited to 2h by rule \"sessions for admins\"; ask for 2h or less <- sessions for admins",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("i:interns", "session 3h"),
        "deny: interns get no admin sessions <- no sessions for interns",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("z", "session 1d"),
        "deny: admin sessions are limited to 2h by the policy defaults; ask for 2h or less <- defaults",
    );
    check(
        &p,
        MONDAY_NOON,
        &req("z", "session 1h"),
        "approve helpdesk <- defaults",
    );
    let mut zero = req("a:admins", "session 1h");
    zero.0.target = crate::Target::Session {
        duration: SignedDuration::ZERO,
    };
    check(
        &p,
        MONDAY_NOON,
        &zero,
        "deny: an admin session needs a length; ask for 2h or less <- sessions for admins",
    );
}

#[test]
fn constraints() {
    let p = policy(
        r#"
version = 1
[defaults]
reason = "required"
session_max = "2h"
[[rule]]
name = "quick"
who = { users = ["a"] }
action = "auto"
reason = "optional"
session_max = "10m"
[[rule]]
name = "inherit"
who = { users = ["b"] }
action = "auto"
"#,
    );
    let d = checked(&p, MONDAY_NOON, &req("a", "/usr/bin/id"), "auto <- quick");
    assert!(!d.constraints.reason_required);
    assert_eq!(d.constraints.session_max, SignedDuration::from_mins(10));
    let d = checked(&p, MONDAY_NOON, &req("b", "/usr/bin/id"), "auto <- inherit");
    assert!(d.constraints.reason_required);
    assert_eq!(d.constraints.session_max, SignedDuration::from_hours(2));
    let mut with_reason = req("b", "/usr/bin/id");
    assert!(d.missing_reason(&with_reason.0));
    with_reason.0.reason = Some("restart the printer".into());
    assert!(!d.missing_reason(&with_reason.0));
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("c", "/usr/bin/id"),
        "approve helpdesk <- defaults",
    );
    assert!(d.constraints.reason_required);
}

#[test]
fn working_directory_follows_the_rule_then_the_defaults() {
    let p = policy(
        r#"
version = 1
[defaults]
unmatched = "auto"
workdir = "root"
[[rule]]
name = "build tools"
what = { paths = ["/usr/bin/make"] }
workdir = "caller"
action = "auto"
"#,
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/make"),
        "auto <- build tools",
    );
    assert!(d.constraints.keep_caller_cwd);
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/id"),
        "auto <- defaults",
    );
    assert!(!d.constraints.keep_caller_cwd);
    super::check_error(
        "version = 1\n[defaults]\nworkdir = \"home\"\n",
        3,
        "defaults.workdir",
        "\"root\"",
    );
}

#[test]
fn a_dropped_client_stops_the_command_unless_the_rule_says_continue() {
    let p = policy(
        r#"
version = 1
[defaults]
unmatched = "auto"
[[rule]]
name = "long upgrades"
what = { paths = ["/usr/bin/apt-get"] }
on_disconnect = "continue"
action = "auto"
[[rule]]
name = "editors"
what = { paths = ["/usr/bin/vi"] }
on_disconnect = "stop"
action = "auto"
"#,
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt-get"),
        "auto <- long upgrades",
    );
    assert!(d.constraints.continue_on_disconnect);
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/vi"),
        "auto <- editors",
    );
    assert!(!d.constraints.continue_on_disconnect);
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/id"),
        "auto <- defaults",
    );
    assert!(!d.constraints.continue_on_disconnect, "stop is the default");
    let p = policy("version = 1\n[defaults]\nunmatched = \"auto\"\non_disconnect = \"continue\"\n");
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/id"),
        "auto <- defaults",
    );
    assert!(d.constraints.continue_on_disconnect);
    super::check_error(
        "version = 1\n[defaults]\non_disconnect = \"detach\"\n",
        3,
        "defaults.on_disconnect",
        "\"continue\"",
    );
}
