//! Properties: `decide` never panics, discover mode lets admins run commands and applies the
//! policy to everyone else and to every admin session, and `parse` never
//! panics on damaged policy text.

use proptest::prelude::*;

use super::{policy, req};
use crate::policy::{decide, Policy};
use crate::{Mode, Outcome, Target};

const RULES: &str = r#"
[[calendar]]
name = "office"
timezone = "Europe/Berlin"
weekly = ["mon-fri 08:00-18:00", "sun 22:00-06:00"]
dates_off = ["2026-12-24..2026-12-31"]

[[rule]]
name = "apt"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/apt*", "/opt/**", "/usr/?bin/x"], args = ["install", "**", "-y"] }
action = "auto"

[[rule]]
name = "hashed"
what = { sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"], package = "coreutils" }
action = { approve = { approvers = "ops", count = 2 } }

[[rule]]
name = "night"
when = "!office"
where = { tags = ["laptop"] }
action = { deny = "not at night" }

[[rule]]
name = "sessions"
what = { session = true }
action = "auto"
session_max = "30m"
"#;

fn enforce() -> Policy {
    policy(&format!(
        "version = 1\n[defaults]\nunmatched = \"deny\"\n{RULES}"
    ))
}

fn discover() -> Policy {
    policy(&format!(
        "version = 1\n[defaults]\nunmatched = \"deny\"\nmode = \"discover\"\n{RULES}"
    ))
}

prop_compose! {
    fn any_request()(
        user in "[a-z]{0,6}",
        groups in prop::collection::vec(prop_oneof![Just("developers".to_owned()), Just("sudo".to_owned()), "[a-z]{0,8}"], 0..4),
        tags in prop::collection::vec(prop_oneof![Just("laptop".to_owned()), ".{0,6}"], 0..3),
        path in prop_oneof![Just("/usr/bin/apt".to_owned()), "(/[a-z?*.]{0,5}){0,6}", ".{0,30}"],
        args in prop::collection::vec(prop_oneof![Just("install".to_owned()), Just("-y".to_owned()), ".{0,8}"], 0..6),
        sha in prop::option::of("[0-9a-fA-F]{64}|.{0,10}"),
        package in prop::option::of("coreutils|[a-z]{0,6}"),
        session_secs in prop::option::of(-100_000i64..100_000),
    ) -> crate::AccessRequest {
        let mut r = req(&format!("{user}:{}@web:{}", groups.join(","), tags.join(",")), "/bin/true").0;
        r.target = match session_secs {
            Some(s) => Target::Session { duration: jiff::SignedDuration::from_secs(s) },
            None => Target::Command(crate::CommandSpec { path, invoked: None, sha256: sha, package, args }),
        };
        r
    }
}

/// 256 cases, or `ELEVATE_FUZZ_CASES` for a long run.
#[allow(clippy::disallowed_methods)] // a test setting
fn fuzz_config() -> ProptestConfig {
    let cases = std::env::var("ELEVATE_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Policy text built from the policy's own keys and values, in any order, often wrong.
fn policy_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("version"),
        Just("unmatched"),
        Just("approvers"),
        Just("reason"),
        Just("session_max"),
        Just("name"),
        Just("timezone"),
        Just("weekly"),
        Just("dates_off"),
        Just("who"),
        Just("what"),
        Just("when"),
        Just("where"),
        Just("action"),
        Just("mode"),
        Just("paths"),
        Just("args"),
        Just("sha256"),
        Just("package"),
        Just("session"),
        Just("users"),
        Just("groups"),
        Just("count"),
        Just("sla"),
        Just("escalate"),
        Just("expire"),
        Just("offline_max_age"),
        Just("break_glass_codes"),
        Just("workdir"),
    ];
    let value = prop_oneof![
        Just("1".to_owned()),
        Just("0".to_owned()),
        Just("-5".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("true".to_owned()),
        Just("\"auto\"".to_owned()),
        Just("\"approve\"".to_owned()),
        Just("\"deny\"".to_owned()),
        Just("\"30m\"".to_owned()),
        Just("\"mon-fri 08:00-18:00\"".to_owned()),
        Just("\"Europe/Berlin\"".to_owned()),
        Just("[\"/usr/bin/*\", \"**\"]".to_owned()),
        Just("{ session = true }".to_owned()),
        Just("{ approve = { approvers = \"ops\", count = 3 } }".to_owned()),
        Just("{ deny = \"no\" }".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        "\"[ -~]{0,16}\"",
    ];
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("[defaults]".to_owned()),
        Just("[[rule]]".to_owned()),
        Just("[[calendar]]".to_owned()),
        Just("[[wave]]".to_owned()),
        Just("[break_glass]".to_owned()),
        ".{0,30}",
    ];
    proptest::collection::vec(line, 0..40).prop_map(|l| format!("version = 1\n{}", l.join("\n")))
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Any text: parsed, or refused with a line, a column, a field and a message; never a
    /// panic.
    #[test]
    fn any_policy_text_parses_or_names_its_line(text in policy_text()) {
        if let Err(e) = Policy::parse(&text) {
            prop_assert!(e.line >= 1 && e.column >= 1);
            prop_assert!(e.line <= text.lines().count() + 1);
            prop_assert!(!e.message.is_empty() && !e.field.is_empty());
        }
    }

    #[test]
    fn decide_never_panics_and_discover_always_runs(
        request in any_request(),
        secs in 1_700_000_000i64..1_900_000_000,
    ) {
        let now = jiff::Timestamp::from_second(secs).unwrap();
        let enforced = decide(&enforce(), &request, now);
        prop_assert_eq!(enforced.mode, Mode::Enforce);
        prop_assert_eq!(&enforced.outcome, &enforced.policy_outcome);
        prop_assert!(!enforced.explanation.is_empty());
        let discovered = decide(&discover(), &request, now);
        prop_assert_eq!(discovered.mode, Mode::Discover);
        if matches!(request.target, crate::Target::Session { .. }) {
            // A session is a grant: the policy's word holds in discover mode too.
            prop_assert_eq!(&discovered.outcome, &enforced.outcome);
        } else if crate::policy::eval::holds_standing_admin(&request.subject) {
            prop_assert_eq!(&discovered.outcome, &Outcome::Auto);
        } else {
            prop_assert_eq!(&discovered.outcome, &enforced.outcome);
        }
        prop_assert_eq!(&discovered.policy_outcome, &enforced.policy_outcome);
        prop_assert_eq!(&discovered.rule, &enforced.rule);
    }

    #[test]
    fn parse_never_panics_on_damaged_text(at in 0usize..2_000, junk in ".{0,12}") {
        let mut text = format!("version = 1\n{RULES}");
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &junk);
        if let Err(e) = Policy::parse(&text) {
            prop_assert!(e.line >= 1 && e.column >= 1);
            prop_assert!(e.line <= text.lines().count() + 1);
            prop_assert!(!e.message.is_empty() && !e.field.is_empty());
        }
    }
}
