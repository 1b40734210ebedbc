//! Policy tests, written as tables that read like the spec.
//!
//! Every decision test goes through [`check`], which renders a decision as one short line
//! (`auto <- rule name`, `approve 2 of on-call <- defaults`, `deny: message <- rule`,
//! `discover auto; policy: deny: message <- rule`) and compares it with the expected line.
//! Parse-error tests go through [`check_error`].
//!
//! Must never: depend on the real clock or time zone (every instant is a UTC literal).

mod calendars;
mod decisions;
mod errors;
mod matchers;
mod properties;
mod sketch;

use jiff::Timestamp;

use super::{decide, Policy};
use crate::{AccessRequest, Channel, CommandSpec, Decision, Mode, Outcome, Subject, Target};

/// Monday 2026-06-15, 12:00 in Berlin.
pub(super) const MONDAY_NOON: &str = "2026-06-15T10:00:00Z";

/// A request under construction: `req("alice:developers@web-01:laptop", "/usr/bin/apt install")`.
#[derive(Debug, Clone)]
pub(super) struct Req(pub AccessRequest);

/// `who` is `user[:group,group][@device[:tag,tag]]`; `what` is a command line or `session 2h`.
pub(super) fn req(who: &str, what: &str) -> Req {
    let (person, machine) = who.split_once('@').unwrap_or((who, "web-01"));
    let (user, groups) = person.split_once(':').unwrap_or((person, ""));
    let (device, tags) = machine.split_once(':').unwrap_or((machine, ""));
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let target = match what.strip_prefix("session ") {
        Some(length) => Target::Session {
            duration: crate::duration::parse(length).expect("test session length"),
        },
        None => {
            let mut words = what.split(' ');
            Target::Command(CommandSpec {
                path: words.next().unwrap_or_default().to_owned(),
                invoked: None,
                sha256: None,
                package: None,
                args: words.map(str::to_owned).collect(),
            })
        }
    };
    Req(AccessRequest {
        subject: Subject {
            user: user.to_owned(),
            uid: 1000,
            groups: list(groups),
            device: device.to_owned(),
            device_tags: list(tags),
        },
        target,
        reason: None,
        channel: Channel::Native,
    })
}

impl Req {
    /// The same request through sudo (after sudoers allowed it).
    pub(super) fn via_sudo(mut self) -> Req {
        self.0.channel = Channel::Sudo;
        self
    }

    /// The same command, invoked by another name (`argv[0]`).
    pub(super) fn invoked(mut self, name: &str) -> Req {
        if let Target::Command(c) = &mut self.0.target {
            c.invoked = Some(name.to_owned());
        }
        self
    }

    pub(super) fn package(mut self, name: &str) -> Req {
        if let Target::Command(c) = &mut self.0.target {
            c.package = Some(name.to_owned());
        }
        self
    }

    pub(super) fn sha256(mut self, digest: &str) -> Req {
        if let Target::Command(c) = &mut self.0.target {
            c.sha256 = Some(digest.to_owned());
        }
        self
    }
}

pub(super) fn policy(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("test policy does not parse: {e}\n{text}"),
    }
}

pub(super) fn at(instant: &str) -> Timestamp {
    instant.parse().expect("test instant")
}

fn outcome_line(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Auto => "auto".to_owned(),
        Outcome::Approve(r) if r.count == 1 => format!("approve {}", r.approvers),
        Outcome::Approve(r) => format!("approve {} of {}", r.count, r.approvers),
        Outcome::Deny { message } => format!("deny: {message}"),
    }
}

pub(super) fn render(d: &Decision) -> String {
    let rule = d.rule.as_deref().unwrap_or("defaults");
    match d.mode {
        Mode::Enforce => format!("{} <- {rule}", outcome_line(&d.outcome)),
        Mode::Discover => format!(
            "discover {}; policy: {} <- {rule}",
            outcome_line(&d.outcome),
            outcome_line(&d.policy_outcome)
        ),
    }
}

/// Decides `request` under `policy` at `instant` and compares the rendered decision.
#[track_caller]
pub(super) fn check(policy: &Policy, instant: &str, request: &Req, expect: &str) {
    let _checked = checked(policy, instant, request, expect);
}

/// [`check`], returning the decision for a closer look (explanation, constraints, route).
#[track_caller]
pub(super) fn checked(policy: &Policy, instant: &str, request: &Req, expect: &str) -> Decision {
    let d = decide(policy, &request.0, at(instant));
    assert!(!d.explanation.is_empty(), "empty explanation");
    if d.mode == Mode::Enforce {
        assert_eq!(
            d.outcome, d.policy_outcome,
            "enforce mode must apply the policy"
        );
    } else if matches!(request.0.target, crate::Target::Session { .. }) {
        assert_eq!(
            d.outcome, d.policy_outcome,
            "a session is a grant: the policy applies in discover mode too"
        );
    } else if crate::policy::eval::holds_standing_admin(&request.0.subject) {
        assert_eq!(d.outcome, Outcome::Auto, "discover mode lets admins run");
    } else if request.0.channel == Channel::Sudo {
        assert_eq!(
            d.outcome,
            Outcome::Auto,
            "discover mode lets what sudoers allowed run"
        );
    } else {
        assert_eq!(
            d.outcome, d.policy_outcome,
            "discover mode applies the policy to people without admin rights"
        );
    }
    assert_eq!(render(&d), expect, "\nat {instant}: {}", d.explanation);
    d
}

/// Parses `text` and expects an error on `line` for `field` whose message contains `part`.
#[track_caller]
pub(super) fn check_error(text: &str, line: usize, field: &str, part: &str) {
    match Policy::parse(text) {
        Ok(_) => panic!("expected an error on line {line} for `{field}`, it parsed:\n{text}"),
        Err(e) => {
            assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
            assert!(e.message.contains(part), "message lacks {part:?}: {e}");
        }
    }
}
