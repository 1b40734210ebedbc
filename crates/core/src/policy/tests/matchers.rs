//! Each matcher on its own: one rule `r` (action auto) in front of a deny-by-default policy.

use super::{check, checked, policy, req, MONDAY_NOON};
use crate::Policy;

const HIT: &str = "auto <- r";
const MISS: &str = "deny: no match <- defaults";

const APT_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn one_rule(body: &str) -> Policy {
    policy(&format!(
        "version = 1\n[defaults]\nunmatched = \"deny\"\ndeny_message = \"no match\"\n\
         [[rule]]\nname = \"r\"\naction = \"auto\"\n{body}\n"
    ))
}

#[test]
fn who() {
    let p = one_rule(r#"who = { users = ["alice"], groups = ["developers", "ops"] }"#);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/id"), HIT);
    check(&p, MONDAY_NOON, &req("bob:ops", "/usr/bin/id"), HIT);
    check(
        &p,
        MONDAY_NOON,
        &req("bob:staff,developers", "/usr/bin/id"),
        HIT,
    );
    check(&p, MONDAY_NOON, &req("bob:staff", "/usr/bin/id"), MISS);
    check(&p, MONDAY_NOON, &req("Alice", "/usr/bin/id"), MISS);
    check(&p, MONDAY_NOON, &req("bob:alice", "/usr/bin/id"), MISS);
}

#[test]
fn paths() {
    let p = one_rule(
        r#"what = { paths = ["/usr/bin/apt", "/usr/bin/apt-*", "/opt/**", "/usr/bin/?q"] }"#,
    );
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/apt"), HIT);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/apt-get"), HIT);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/apt-get/x"), MISS);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/aptitude"), MISS);
    check(&p, MONDAY_NOON, &req("alice", "/opt/tool/bin/run"), HIT);
    check(&p, MONDAY_NOON, &req("alice", "/opt"), MISS);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/jq"), HIT);
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/q"), MISS);
    check(&p, MONDAY_NOON, &req("alice", "/usr/local/bin/apt"), MISS);
    check(&p, MONDAY_NOON, &req("alice", "session 30m"), MISS);
}

#[test]
fn sha256() {
    let upper = APT_SHA.to_ascii_uppercase();
    let p = one_rule(&format!(r#"what = {{ sha256 = ["{upper}"] }}"#));
    check(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").sha256(APT_SHA),
        HIT,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").sha256(&upper),
        HIT,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").sha256(&"0".repeat(64)),
        MISS,
    );
    check(&p, MONDAY_NOON, &req("alice", "/usr/bin/apt"), MISS);
}

#[test]
fn package() {
    let required = one_rule(r#"what = { package = "required" }"#);
    check(
        &required,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").package("apt"),
        HIT,
    );
    check(
        &required,
        MONDAY_NOON,
        &req("alice", "/home/alice/apt"),
        MISS,
    );
    let named = one_rule(r#"what = { paths = ["/usr/bin/*"], package = "apt" }"#);
    check(
        &named,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").package("apt"),
        HIT,
    );
    check(
        &named,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").package("evil"),
        MISS,
    );
    check(&named, MONDAY_NOON, &req("alice", "/usr/bin/apt"), MISS);
    check(
        &named,
        MONDAY_NOON,
        &req("alice", "/usr/sbin/apt").package("apt"),
        MISS,
    );
}

#[test]
fn args() {
    let rest = one_rule(r#"what = { paths = ["/usr/bin/apt"], args = ["install", "**"] }"#);
    check(
        &rest,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt install"),
        HIT,
    );
    check(
        &rest,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt install vim git"),
        HIT,
    );
    check(
        &rest,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt remove vim"),
        MISS,
    );
    check(&rest, MONDAY_NOON, &req("alice", "/usr/bin/apt"), MISS);
    let exact = one_rule(r#"what = { args = ["restart", "nginx*"] }"#);
    check(
        &exact,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl restart nginx"),
        HIT,
    );
    check(
        &exact,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl restart nginx.service"),
        HIT,
    );
    check(
        &exact,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl restart nginx x"),
        MISS,
    );
    check(
        &exact,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl restart"),
        MISS,
    );
    check(
        &exact,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl restart nginx/../x"),
        MISS,
    );
    let none = one_rule(r#"what = { args = [] }"#);
    check(&none, MONDAY_NOON, &req("alice", "/usr/bin/id"), HIT);
    check(&none, MONDAY_NOON, &req("alice", "/usr/bin/id -u"), MISS);
}

#[test]
fn sessions_and_commands() {
    let session = one_rule("what = { session = true }");
    check(&session, MONDAY_NOON, &req("alice", "session 30m"), HIT);
    check(&session, MONDAY_NOON, &req("alice", "/usr/bin/id"), MISS);
    let commands = one_rule("what = { session = false }");
    check(&commands, MONDAY_NOON, &req("alice", "/usr/bin/id"), HIT);
    check(&commands, MONDAY_NOON, &req("alice", "session 30m"), MISS);
    let with_matcher = one_rule(r#"what = { package = "required" }"#);
    check(
        &with_matcher,
        MONDAY_NOON,
        &req("alice", "session 30m"),
        MISS,
    );
    let anything = one_rule(r#"who = { users = ["alice"] }"#);
    check(&anything, MONDAY_NOON, &req("alice", "session 30m"), HIT);
    check(&anything, MONDAY_NOON, &req("alice", "/usr/bin/id"), HIT);
}

#[test]
fn where_() {
    let p = one_rule(r#"where = { tags = ["laptop"], devices = ["web-01"] }"#);
    check(&p, MONDAY_NOON, &req("alice@web-01", "/usr/bin/id"), HIT);
    check(
        &p,
        MONDAY_NOON,
        &req("alice@pc-7:desktop,laptop", "/usr/bin/id"),
        HIT,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice@pc-7:desktop", "/usr/bin/id"),
        MISS,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice@web-02:web-01", "/usr/bin/id"),
        MISS,
    );
}

#[test]
fn all_matchers_must_hold() {
    let p = one_rule(
        "who = { groups = [\"developers\"] }\n\
         what = { paths = [\"/usr/bin/apt\"], package = \"apt\", args = [\"install\", \"**\"] }\n\
         where = { tags = [\"laptop\"] }",
    );
    let good = "alice:developers@pc:laptop";
    check(
        &p,
        MONDAY_NOON,
        &req(good, "/usr/bin/apt install vim").package("apt"),
        HIT,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice:staff@pc:laptop", "/usr/bin/apt install vim").package("apt"),
        MISS,
    );
    check(
        &p,
        MONDAY_NOON,
        &req(good, "/usr/bin/apt-get install vim").package("apt"),
        MISS,
    );
    check(
        &p,
        MONDAY_NOON,
        &req(good, "/usr/bin/apt install vim").package("apx"),
        MISS,
    );
    check(
        &p,
        MONDAY_NOON,
        &req(good, "/usr/bin/apt purge vim").package("apt"),
        MISS,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice:developers@pc:desktop", "/usr/bin/apt install vim").package("apt"),
        MISS,
    );
}

#[test]
fn explanations_name_the_matchers() {
    let p = one_rule(
        "who = { groups = [\"developers\"] }\n\
         what = { paths = [\"/usr/bin/apt*\"], package = \"required\", args = [\"install\", \"**\"] }\n\
         where = { devices = [\"web-01\"] }",
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice:developers", "/usr/bin/apt install vim").package("apt"),
        HIT,
    );
    assert_eq!(
        d.explanation,
        "rule \"r\" matched: alice is in group developers, /usr/bin/apt matches /usr/bin/apt*, \
         /usr/bin/apt is owned by package apt, its arguments match `install **`, the device is web-01"
    );
    let p = one_rule(
        r#"what = { paths = ["/usr/bin/apt"], sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"] }"#,
    );
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice", "/usr/bin/apt").sha256(APT_SHA),
        HIT,
    );
    assert_eq!(
        d.explanation,
        "rule \"r\" matched: the command is /usr/bin/apt, the SHA-256 of /usr/bin/apt is listed"
    );
    let d = checked(&one_rule(""), MONDAY_NOON, &req("bob", "/usr/bin/id"), HIT);
    assert!(
        d.explanation.contains("applies to every request"),
        "{}",
        d.explanation
    );
}

/// A program invoked by another name (a link: `/usr/sbin/reboot` is `/usr/bin/systemctl`) does
/// what its name says, so that name is what a rule letting it run must name. Denials match by
/// the file as well.
#[test]
fn the_name_a_program_is_invoked_by() {
    let systemctl =
        one_rule(r#"what = { paths = ["/usr/bin/systemctl"], args = ["status", "*"] }"#);
    let status = || req("alice", "/usr/bin/systemctl status ssh");
    check(&systemctl, MONDAY_NOON, &status(), HIT);
    // Invoked as reboot, systemctl reboots: a rule for `systemctl status` does not match.
    check(
        &systemctl,
        MONDAY_NOON,
        &status().invoked("/usr/sbin/reboot"),
        MISS,
    );
    // The same name in another folder (usr-merge links) is the same program.
    check(
        &systemctl,
        MONDAY_NOON,
        &status().invoked("/bin/systemctl"),
        HIT,
    );
    // A rule naming the invoked path matches it.
    let reboot = one_rule(r#"what = { paths = ["/usr/sbin/reboot"] }"#);
    let d = super::checked(
        &reboot,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl").invoked("/usr/sbin/reboot"),
        HIT,
    );
    assert!(
        d.explanation
            .contains("/usr/sbin/reboot (the file /usr/bin/systemctl)"),
        "{}",
        d.explanation
    );
    check(
        &reboot,
        MONDAY_NOON,
        &req("alice", "/usr/bin/systemctl"),
        MISS,
    );
    // Rules without paths that let something run hold only for a program keeping its name.
    let by_hash = one_rule(&format!(r#"what = {{ sha256 = ["{APT_SHA}"] }}"#));
    let hashed = || req("alice", "/usr/bin/systemctl").sha256(APT_SHA);
    check(&by_hash, MONDAY_NOON, &hashed(), HIT);
    check(
        &by_hash,
        MONDAY_NOON,
        &hashed().invoked("/usr/sbin/halt"),
        MISS,
    );
    // A deny rule for the file holds whatever the name.
    let shells = policy(
        "version = 1\n[defaults]\nunmatched = \"approve\"\napprovers = \"helpdesk\"\n\
         [[rule]]\nname = \"no shells\"\nwhat = { paths = [\"/usr/bin/bash\", \"/bin/bash\"] }\n\
         action = { deny = \"no shells\" }\n",
    );
    for name in ["/usr/local/bin/notashell", "/bin/bash", "/usr/bin/rbash"] {
        check(
            &shells,
            MONDAY_NOON,
            &req("alice", "/usr/bin/bash").invoked(name),
            "deny: no shells <- no shells",
        );
    }
}

#[test]
fn segment() {
    let p = one_rule(r#"who = { segment = "low" }"#);
    check(
        &p,
        MONDAY_NOON,
        &req("alice:staff,segment:low", "/usr/bin/id"),
        HIT,
    );
    check(
        &p,
        MONDAY_NOON,
        &req("alice:segment:high", "/usr/bin/id"),
        MISS,
    );
    check(&p, MONDAY_NOON, &req("alice:staff", "/usr/bin/id"), MISS);
    let d = checked(
        &p,
        MONDAY_NOON,
        &req("alice:segment:low", "/usr/bin/id"),
        HIT,
    );
    assert!(
        d.explanation.contains("alice is in the low segment"),
        "{}",
        d.explanation
    );
    let many = one_rule(r#"who = { groups = ["ops"], segment = ["low", "moderate"] }"#);
    check(
        &many,
        MONDAY_NOON,
        &req("bob:segment:moderate", "/usr/bin/id"),
        HIT,
    );
    check(&many, MONDAY_NOON, &req("bob:ops", "/usr/bin/id"), HIT);
    assert!(many.uses_segments());
    assert!(!one_rule(r#"who = { groups = ["ops"] }"#).uses_segments());
    assert_eq!(
        many.segment_thresholds(),
        crate::discovery::Thresholds::default()
    );
}

#[test]
fn segment_errors_and_thresholds() {
    use super::check_error;
    let head = "version = 1\n[[rule]]\nname = \"r\"\naction = \"auto\"\n";
    check_error(
        &format!("{head}who = {{ segment = \"often\" }}\n"),
        5,
        "rule[1].who.segment",
        "is not a segment",
    );
    check_error(
        &format!("{head}who = {{ groups = [\"segment:low\"] }}\n"),
        5,
        "rule[1].who.groups",
        "segment = ",
    );
    check_error(
        "version = 1\n[break_glass]\nsegment = \"low\"\n",
        2,
        "break_glass.segment",
        "never measured",
    );
    check_error(
        "version = 1\n[segments]\nmoderate = 9\nhigh = 3\n",
        4,
        "segments",
        "moderate < high",
    );
    check_error(
        "version = 1\n[segments]\nmoderate = -1\n",
        3,
        "segments.moderate",
        "1 or more",
    );
    let p = policy("version = 1\n[segments]\nmoderate = 2\nhigh = 10\n");
    assert_eq!(
        p.segment_thresholds(),
        crate::discovery::Thresholds {
            moderate: 2,
            high: 10
        }
    );
}
