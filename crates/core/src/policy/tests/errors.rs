//! Parse errors: each names the line, the field (1-based indexes) and what to write instead.

use super::check_error;
use crate::Policy;

#[test]
fn syntax_and_shape() {
    check_error(
        "version = 1\n[defaults\napprovers = \"x\"",
        2,
        "defaults",
        "invalid table header",
    );
    check_error("version = 1\n\r", 2, "policy", "not valid TOML here");
    check_error("version = 1\nrule = 3 3", 2, "rule", "expected newline");
    check_error(
        "version = 1\n\n[defaults]\napprover = \"x\"",
        4,
        "defaults.approver",
        "unknown field `approver`",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\n[[rule]]\nname = \"b\"\nwhom = 1\naction = \"auto\"",
        7,
        "rule[2].whom",
        "unknown field `whom`, expected one of",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwhat = { paths = [\"/x\"], pathz = [\"/y\"] }",
        5,
        "rule[1].what.pathz",
        "unknown field `pathz`",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"",
        2,
        "rule[1]",
        "missing field `action`",
    );
    check_error(
        "version = 1\n[rule]\nname = \"a\"\naction = \"auto\"",
        2,
        "rule",
        "write `[[rule]]` (double brackets)",
    );
    check_error(
        "version = 1\n[defaults]\nunmatched = \"allow\"",
        3,
        "defaults.unmatched",
        "\"allow\" is not allowed here; write one of \"approve\", \"deny\", \"auto\"",
    );
    check_error(
        "version = 1\n[defaults]\nreason = true",
        3,
        "defaults.reason",
        "invalid type: boolean `true`, expected a string",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\nwho = { users = \"alice\" }\naction = \"auto\"",
        4,
        "rule[1].who",
        "expected a sequence",
    );
}

#[test]
fn version() {
    check_error(
        "[defaults]\napprovers = \"x\"",
        1,
        "version",
        "add `version = 1`",
    );
    check_error(
        "# policy\nversion = 2",
        2,
        "version",
        "version 2 is not supported; this Elevate reads `version = 1`",
    );
    check_error("version = \"1\"", 1, "version", "invalid type");
}

#[test]
fn durations() {
    check_error(
        "version = 1\n[defaults]\nsession_max = \"2 hours\"",
        3,
        "defaults.session_max",
        "like `1h30m`",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nsession_max = \"0m\"",
        5,
        "rule[1].session_max",
        "must be longer",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = { approve = { sla = \"15\" } }",
        4,
        "rule[1].action.approve.sla",
        "write `15m` for minutes",
    );
}

#[test]
fn calendars() {
    let rule_with = |when: &str| {
        format!(
            "version = 1\n[[calendar]]\nname = \"business-hours\"\ntimezone = \"UTC\"\nweekly = [\"mon-fri 08:00-18:00\"]\n\
             [[rule]]\nname = \"a\"\nwhen = \"{when}\"\naction = \"auto\""
        )
    };
    check_error(
        &rule_with("biz"),
        8,
        "rule[1].when",
        "unknown calendar \"biz\"; defined calendars: business-hours",
    );
    check_error(
        &rule_with("!biz"),
        8,
        "rule[1].when",
        "unknown calendar \"biz\"",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\nwhen = \"office\"\naction = \"auto\"",
        4,
        "rule[1].when",
        "no calendars are defined, add a [[calendar]] named \"office\"",
    );
    let e = Policy::parse(&rule_with("biz")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 8, column 8, `rule[1].when`: unknown calendar \"biz\"; defined calendars: business-hours"
    );
    let cal = |body: &str| format!("version = 1\n[[calendar]]\nname = \"c\"\n{body}");
    check_error(
        &cal("timezone = \"Europe/Berln\"\nweekly = [\"mon 08:00-09:00\"]"),
        4,
        "calendar[1].timezone",
        "use an IANA name like \"Europe/Berlin\"",
    );
    check_error(
        &cal(
            "timezone = \"UTC\"\nweekly = [\n  \"mon 08:00-09:00\",\n  \"mon-fry 08:00-09:00\",\n]",
        ),
        7,
        "calendar[1].weekly[2]",
        "unknown day \"fry\"",
    );
    check_error(
        &cal("timezone = \"UTC\"\nweekly = [\"mon 8-9\"]"),
        5,
        "calendar[1].weekly[1]",
        "write it as HH:MM",
    );
    check_error(
        &cal("timezone = \"UTC\"\nweekly = []"),
        5,
        "calendar[1].weekly",
        "at least one weekly window",
    );
    check_error(
        &cal("timezone = \"UTC\"\nweekly = [\"mon 08:00-09:00\"]\ndates_off = [\"2026-02-30\"]"),
        6,
        "calendar[1].dates_off[1]",
        "YYYY-MM-DD",
    );
    check_error(
        &cal("weekly = [\"mon 08:00-09:00\"]"),
        2,
        "calendar[1]",
        "missing field `timezone`",
    );
    check_error(
        "version = 1\n[[calendar]]\nname = \"c\"\ntimezone = \"UTC\"\nweekly = [\"mon 08:00-09:00\"]\n\
         [[calendar]]\nname = \"c\"\ntimezone = \"UTC\"\nweekly = [\"mon 08:00-09:00\"]",
        7,
        "calendar[2].name",
        "already exists",
    );
}

#[test]
fn rules() {
    check_error(
        "version = 1\n[[rule]]\nname = \"same\"\naction = \"auto\"\n\n[[rule]]\nname = \"same\"\naction = \"auto\"",
        7,
        "rule[2].name",
        "a rule named \"same\" already exists; give every rule its own name",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"  \"\naction = \"auto\"",
        3,
        "rule[1].name",
        "write a name",
    );
    let what = |body: &str| {
        format!("version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwhat = {{ {body} }}")
    };
    check_error(
        &what("paths = [\"/usr/bin/apt\", \"usr/bin/vi\"]"),
        5,
        "rule[1].what.paths[2]",
        "relative path; commands are matched by their resolved absolute path",
    );
    check_error(
        &what("paths = [\"/usr/bin/../bin/vi\"]"),
        5,
        "rule[1].what.paths[1]",
        "write that path",
    );
    check_error(
        &what("sha256 = [\"abc\"]"),
        5,
        "rule[1].what.sha256[1]",
        "64 hexadecimal characters",
    );
    check_error(
        &what(&format!("sha256 = [\"{}\"]", "g".repeat(64))),
        5,
        "rule[1].what.sha256[1]",
        "not a SHA-256 digest",
    );
    check_error(
        &what("package = \"\""),
        5,
        "rule[1].what.package",
        "write `package = \"required\"`",
    );
    check_error(&what(""), 5, "rule[1].what", "`what` is empty");
    check_error(
        &what("session = true, paths = [\"/bin/sh\"]"),
        5,
        "rule[1].what",
        "split it into two rules",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwho = {}",
        5,
        "rule[1].who",
        "leave `who` out to match everyone",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwhere = { tags = [] }",
        5,
        "rule[1].where",
        "add `tags` or `devices`",
    );
}

#[test]
fn actions() {
    let action = |a: &str| format!("version = 1\n[[rule]]\nname = \"a\"\n\naction = {a}");
    check_error(
        &action("{ approve = { count = 0 } }"),
        5,
        "rule[1].action.approve.count",
        "write 1 or more",
    );
    check_error(
        &action("{ approve = { count = -3 } }"),
        5,
        "rule[1].action.approve.count",
        "write 1 or more",
    );
    check_error(
        &action("{ approve = { approvers = \"\" } }"),
        5,
        "rule[1].action.approve.approvers",
        "write a name",
    );
    check_error(
        &action("{ approve = { approvers = \"x\", cont = 2 } }"),
        5,
        "rule[1].action.cont",
        "unknown field `cont`",
    );
    check_error(
        &action("\"allow\""),
        5,
        "rule[1].action",
        "unknown action \"allow\"; write `action = \"auto\"`",
    );
    check_error(&action("\"deny\""), 5, "rule[1].action", "needs a message");
    check_error(
        &action("{ deny = \"\" }"),
        5,
        "rule[1].action.deny",
        "tell the requester what to do",
    );
    check_error(
        &action("{ deny = \"x\", auto = true }"),
        5,
        "rule[1].action",
        "exactly one of",
    );
    check_error(
        &action("{ permit = true }"),
        5,
        "rule[1].action",
        "unknown action `permit`",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\n[rule.action.approve]\ncount = 0",
        5,
        "rule[1].action.approve.count",
        "write 1 or more",
    );
}

#[test]
fn waves() {
    let wave = |body: &str| format!("version = 1\n[[wave]]\nname = \"pilot\"\n{body}");
    check_error(
        &wave("mode = \"enforce\"\nwho = {}"),
        5,
        "wave[1].who",
        "add `users`, `groups` or `segment`",
    );
    check_error(
        &wave("mode = \"on\"\nwho = { users = [\"a\"] }"),
        4,
        "wave[1].mode",
        "write one of \"discover\", \"enforce\"",
    );
    check_error(
        &wave("mode = \"enforce\""),
        2,
        "wave[1]",
        "missing field `who`",
    );
}

#[test]
fn display_format() {
    let e = Policy::parse(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwhat = { paths = [\"bin/sh\"] }",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (5, 19));
    assert!(
        e.to_string().starts_with(
            "line 5, column 19, `rule[1].what.paths[1]`: \"bin/sh\" is a relative path"
        ),
        "{e}"
    );
}

#[test]
fn tables_may_be_written_in_any_toml_form() {
    for text in [
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwho = { users = [\"a\"] }\nwhat = { paths = [\"/x\"] }",
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\nwho.users = [\"a\"]\nwhat.paths = [\"/x\"]",
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\n[rule.who]\nusers = [\"a\"]\n[rule.what]\npaths = [\"/x\"]",
        "version = 1\nrule = [{ name = \"a\", action = \"auto\", who = { users = [\"a\"] }, what = { paths = [\"/x\"] } }]",
    ] {
        let p = super::policy(text);
        super::check(&p, super::MONDAY_NOON, &super::req("a", "/x"), "auto <- a");
        super::check(&p, super::MONDAY_NOON, &super::req("b", "/x"), "approve helpdesk <- defaults");
    }
    let approve = "version = 1\n[[rule]]\nname = \"a\"\naction.approve.count = 2";
    super::check(
        &super::policy(approve),
        super::MONDAY_NOON,
        &super::req("b", "/x"),
        "approve 2 of helpdesk <- a",
    );
    // Empty tables are reported on the line that writes them, whatever the form.
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\n\n[rule.who]\n",
        6,
        "rule[1].who",
        "lists nobody",
    );
    check_error(
        "version = 1\n[[rule]]\nwhat = {}\nname = \"a\"\naction = \"auto\"",
        3,
        "rule[1].what",
        "`what` is empty",
    );
    check_error(
        "version = 1\n[[rule]]\nname = \"a\"\naction = \"auto\"\n[[rule]]\nname = \"b\"\nwhere = {}\naction = \"auto\"",
        7,
        "rule[2].where",
        "lists no device",
    );
}

#[test]
fn routing_over_time_must_make_sense() {
    let rule = |approve: &str| {
        format!("version = 1\n[[rule]]\nname = \"a\"\naction = {{ approve = {{ {approve} }} }}")
    };
    check_error(
        &rule("approvers = \"hd\", escalate = \"security\""),
        4,
        "rule[1].action.approve.escalate",
        "escalate needs an sla",
    );
    check_error(
        &rule("sla = \"2h\", escalate = \"security\", expire = \"1h\""),
        4,
        "rule[1].action.approve.expire",
        "expire (1h) must be longer than sla (2h)",
    );
    check_error(
        &rule("expire = \"400d\""),
        4,
        "rule[1].action.approve.expire",
        "write at most 366d",
    );
    check_error(
        &rule("reauth = \"soon\""),
        4,
        "rule[1].action.approve.reauth",
        "",
    );
    assert!(
        Policy::parse(&rule(
            "approvers = \"hd\", sla = \"15m\", escalate = \"security\", expire = \"4h\", reauth = \"5m\"",
        ))
        .is_ok(),
        "a sound route parses"
    );
}
