//! Evaluating a policy: the first rule whose who/what/when/where all hold decides, else the
//! defaults.
//!
//! Every matcher that holds contributes a short clause to the explanation
//! (`alice is in group developers`), so a decision always says why.
//!
//! Must never: read the clock (use `now`), do I/O, panic, or return an empty explanation.

use jiff::Timestamp;

use super::glob::args_match;
use super::model::{PackageMatch, Rule, What, When, Where, Who};
use super::Policy;
use crate::{
    duration, AccessRequest, Channel, CommandSpec, Constraints, Decision, Mode, Outcome, Subject,
    Target,
};

/// Groups that give standing admin rights on Linux endpoints: `sudo` (Debian, Ubuntu), `wheel`
/// (Fedora, RHEL, Arch), `admin` (older Ubuntu).
pub const STANDING_ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// Whether the subject holds standing admin rights today (what discovery mode lets run freely).
pub fn holds_standing_admin(subject: &Subject) -> bool {
    subject
        .groups
        .iter()
        .any(|g| STANDING_ADMIN_GROUPS.contains(&g.as_str()))
}

/// Evaluates `policy` for `request` at `now`.
pub fn decide(policy: &Policy, request: &AccessRequest, now: Timestamp) -> Decision {
    let defaults = &policy.defaults;
    let matched = policy
        .rules
        .iter()
        .find_map(|rule| rule_matches(policy, rule, request, now).map(|reasons| (rule, reasons)));
    let rule_name = matched.as_ref().map(|(rule, _)| rule.name.clone());
    let (mut policy_outcome, mut explanation, mut constraints, source) = match matched {
        Some((rule, reasons)) => (
            rule.action.clone(),
            format!("rule \"{}\" matched: {}", rule.name, clauses(&reasons)),
            Constraints {
                reason_required: rule.reason_required.unwrap_or(defaults.reason_required),
                session_max: rule.session_max.unwrap_or(defaults.session_max),
                keep_caller_cwd: rule.keep_caller_cwd.unwrap_or(defaults.keep_caller_cwd),
                continue_on_disconnect: rule
                    .continue_on_disconnect
                    .unwrap_or(defaults.continue_on_disconnect),
                offline_codes: rule.offline,
            },
            format!("rule \"{}\"", rule.name),
        ),
        None => (
            defaults.unmatched.clone(),
            format!(
                "no rule matched; the default is to {}",
                describe(&defaults.unmatched)
            ),
            Constraints {
                reason_required: defaults.reason_required,
                session_max: defaults.session_max,
                keep_caller_cwd: defaults.keep_caller_cwd,
                continue_on_disconnect: defaults.continue_on_disconnect,
                offline_codes: true,
            },
            "the policy defaults".to_owned(),
        ),
    };
    // `count = N` is N people: one helpdesk code cannot stand in for them.
    if matches!(&policy_outcome, Outcome::Approve(route) if route.count > 1) {
        constraints.offline_codes = false;
    }
    if let Target::Session { duration: asked } = request.target {
        let max = constraints.session_max;
        let limit = duration::format(max);
        if asked <= jiff::SignedDuration::ZERO {
            policy_outcome = Outcome::Deny {
                message: format!("an admin session needs a length; ask for {limit} or less"),
            };
            explanation.push_str("; the session asked for has no length");
        } else if asked > max && !matches!(policy_outcome, Outcome::Deny { .. }) {
            policy_outcome = Outcome::Deny {
                message: format!(
                    "admin sessions are limited to {limit} by {source}; ask for {limit} or less"
                ),
            };
            explanation.push_str(&format!(
                "; the {} session asked for is longer than the {limit} allowed",
                duration::format(asked)
            ));
        }
    }
    let mode = policy.mode_for(&request.subject);
    let outcome = match mode {
        Mode::Enforce => policy_outcome.clone(),
        // An admin session is a grant with an end, never something discovery watches: the
        // policy's own word applies, whoever asks and through whichever door.
        Mode::Discover if matches!(request.target, Target::Session { .. }) => {
            explanation.push_str(
                "; an admin session is a grant, so the policy applies even in discovery mode",
            );
            policy_outcome.clone()
        }
        // Discovery allows what the user could already do: holders of standing admin rights,
        // and anything sudoers has already allowed (a request through sudo comes only after
        // sudoers said yes), run freely; for everyone else the policy applies as in enforce mode.
        Mode::Discover
            if holds_standing_admin(&request.subject) || request.channel == Channel::Sudo =>
        {
            explanation.push_str(&format!(
                "; discovery mode records it and lets it run (enforce mode would {})",
                describe(&policy_outcome)
            ));
            Outcome::Auto
        }
        Mode::Discover => {
            explanation.push_str(&format!(
                "; discovery mode lets only people who hold admin rights today run freely, and {} does not, so the policy applies",
                request.subject.user
            ));
            policy_outcome.clone()
        }
    };
    Decision {
        outcome,
        policy_outcome,
        mode,
        rule: rule_name,
        explanation,
        constraints,
    }
}

fn clauses(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "it has no conditions, so it applies to every request".to_owned()
    } else {
        reasons.join(", ")
    }
}

/// How a policy covers a program someone ran, whoever they are and whenever: the rules whose
/// `what` names it (by path, and by package and SHA-256 when those are known), in order, each
/// with what it does and for whom; `None` for the default when no rule names it.
pub fn covering(
    policy: &Policy,
    path: &str,
    package: Option<&str>,
    sha256: Option<&str>,
) -> Vec<(Option<String>, String)> {
    let command = CommandSpec {
        path: path.to_owned(),
        invoked: None,
        sha256: sha256.map(str::to_owned),
        package: package.map(str::to_owned),
        args: Vec::new(),
    };
    let mut out: Vec<(Option<String>, String)> = policy
        .rules
        .iter()
        .filter(|r| {
            r.what.as_ref().is_some_and(|what| {
                let deny = matches!(r.action, Outcome::Deny { .. });
                command_matches(what, &command, deny).is_some()
            })
        })
        .map(|r| {
            let mut how = describe(&r.action);
            if let Some(who) = &r.who {
                let names: Vec<&str> = who
                    .users
                    .iter()
                    .chain(&who.groups)
                    .map(String::as_str)
                    .collect();
                how.push_str(&format!(" for {}", names.join(", ")));
            }
            if r.when.is_some() {
                how.push_str(" at some times");
            }
            (Some(r.name.clone()), how)
        })
        .collect();
    if out.is_empty() {
        out.push((None, describe(&policy.defaults.unmatched)));
    }
    out
}

/// What an outcome does, for "the default is to ..." and "enforce mode would ...".
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Auto => "run it at once".to_owned(),
        Outcome::Approve(route) if route.count == 1 => format!("ask {}", route.approvers),
        Outcome::Approve(route) => format!("ask {} of {}", route.count, route.approvers),
        Outcome::Deny { .. } => "deny it".to_owned(),
    }
}

/// `Some(clauses)` when every condition of `rule` holds for `request` at `now`.
fn rule_matches(
    policy: &Policy,
    rule: &Rule,
    request: &AccessRequest,
    now: Timestamp,
) -> Option<Vec<String>> {
    let mut reasons = Vec::new();
    if let Some(who) = &rule.who {
        reasons.push(who_matches(who, &request.subject)?);
    }
    if let Some(what) = &rule.what {
        let deny = matches!(rule.action, Outcome::Deny { .. });
        reasons.extend(what_matches(what, &request.target, deny)?);
    }
    if let Some(when) = &rule.when {
        reasons.push(when_matches(policy, when, now)?);
    }
    if let Some(where_) = &rule.where_ {
        reasons.push(where_matches(where_, &request.subject)?);
    }
    Some(reasons)
}

pub(super) fn who_matches(who: &Who, subject: &Subject) -> Option<String> {
    if who.users.contains(&subject.user) {
        return Some(format!("{} is listed by name", subject.user));
    }
    let group = who.groups.iter().find(|g| subject.groups.contains(g))?;
    if let Some(segment) = group.strip_prefix(super::SEGMENT_GROUP) {
        return Some(format!("{} is in the {segment} segment", subject.user));
    }
    Some(format!("{} is in group {group}", subject.user))
}

fn where_matches(where_: &Where, subject: &Subject) -> Option<String> {
    if where_.devices.contains(&subject.device) {
        return Some(format!("the device is {}", subject.device));
    }
    let tag = where_
        .tags
        .iter()
        .find(|t| subject.device_tags.contains(t))?;
    Some(format!("device {} is tagged {tag}", subject.device))
}

fn when_matches(policy: &Policy, when: &When, now: Timestamp) -> Option<String> {
    let calendar = policy.calendars.get(when.calendar)?;
    let inside = calendar.contains(now);
    let word = if inside { "inside" } else { "outside" };
    (inside == when.inside).then(|| format!("it is {word} {}", calendar.name()))
}

/// `deny`: the rule denies, so it may match more widely (by the file, whatever name it is
/// invoked by); a rule that lets something run matches only what the program will see.
fn what_matches(what: &What, target: &Target, deny: bool) -> Option<Vec<String>> {
    match target {
        Target::Session { .. } => {
            (what.session == Some(true)).then(|| vec!["it is an admin session".to_owned()])
        }
        Target::Command(command) if what.session != Some(true) => {
            command_matches(what, command, deny)
        }
        Target::Command(_) => None,
    }
}

/// A rule's paths match the name the program is invoked by, or its file where the program
/// sees its own name (or the rule denies). A rule without paths that lets something run never
/// matches a program invoked by another name: `/usr/sbin/reboot status` runs systemctl as
/// `reboot`, which a rule for `systemctl status` did not mean to allow.
fn command_matches(what: &What, command: &CommandSpec, deny: bool) -> Option<Vec<String>> {
    let path = &command.path;
    let by_file = deny || command.keeps_its_name();
    let mut reasons = Vec::new();
    if !what.paths.is_empty() {
        let names = command
            .invoked
            .iter()
            .map(|i| (i, true))
            .chain(by_file.then_some((path, false)));
        let (name, glob) = names.into_iter().find_map(|(name, invoked)| {
            let glob = what.paths.iter().find(|g| g.matches(name))?;
            Some(((name, invoked), glob))
        })?;
        let (name, invoked) = name;
        let shown = if invoked {
            format!("{name} (the file {path})")
        } else {
            name.to_owned()
        };
        reasons.push(if glob.is_literal() {
            format!("the command is {shown}")
        } else {
            format!("{shown} matches {glob}")
        });
    } else if !by_file {
        return None;
    }
    if !what.sha256.is_empty() {
        let digest = command.sha256.as_deref()?.to_ascii_lowercase();
        if !what.sha256.contains(&digest) {
            return None;
        }
        reasons.push(format!("the SHA-256 of {path} is listed"));
    }
    if let Some(wanted) = &what.package {
        let owner = command.package.as_deref()?;
        if let PackageMatch::Named(name) = wanted {
            if name != owner {
                return None;
            }
        }
        reasons.push(format!("{path} is owned by package {owner}"));
    }
    if let Some(patterns) = &what.args {
        if !args_match(patterns, &command.args) {
            return None;
        }
        let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
        reasons.push(format!("its arguments match `{}`", shown.join(" ")));
    }
    if reasons.is_empty() {
        reasons.push("it is a command".to_owned());
    }
    Some(reasons)
}
