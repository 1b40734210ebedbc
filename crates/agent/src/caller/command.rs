//! The stage both front doors share: who asks (the kernel's uid, looked up), what exactly
//! (the program resolved, opened and hashed, its package), and what the cached signed policy
//! says of it. The request the policy decides on is built from the same wire request approvers
//! would be asked about (`NewRequest::to_core`, as on the server).
//!
//! Must never: decide without a verified policy, describe a path the caller cannot see, or let
//! a stale policy pre-approve anything.

use elevate_core::{decide, Channel, Decision, Mode, Outcome};
use elevate_proto::ipc::Refusal;
use elevate_proto::v1::{DecisionView, NewRequest, WireTarget};

use super::approvers::new_request;
use super::connection::Connection;
use super::record::audited;
use crate::cache::CachedPolicy;
use crate::resolve::{resolve, ResolveError, Resolved};
use crate::state::Agent;
use crate::users::Caller;

/// A command resolved, hashed and decided on, for one caller.
pub(super) struct Decided {
    pub caller: Caller,
    /// As typed (for sudo: with the path sudo resolved as its first word).
    pub argv: Vec<String>,
    pub binary: Resolved,
    /// The request as approvers would see it (its `cwd` is filled in when they are asked).
    pub new: NewRequest,
    pub decision: Decision,
    pub view: DecisionView,
    /// What the audit trail says of the request (`request.created`).
    pub facts: serde_json::Value,
}

/// The user behind `uid`, or the caller is told there is none.
pub(super) async fn caller(agent: &Agent, conn: &mut Connection, uid: u32) -> Option<Caller> {
    match agent.caller(uid) {
        Ok(c) => Some(c),
        Err(e) => {
            conn.refuse(Refusal::UnknownUser, format!("{e:#}")).await;
            None
        }
    }
}

/// The program a command names (its first word), or the caller is told there is none.
pub(super) async fn program<'a>(conn: &mut Connection, argv: &'a [String]) -> Option<&'a str> {
    match argv.first() {
        Some(p) => Some(p),
        None => {
            conn.refuse(Refusal::Usage, "no command given").await;
            None
        }
    }
}

/// Resolves, opens and hashes `program`; on failure the caller is told why, and nothing of a
/// path they cannot see.
pub(super) async fn resolved(
    conn: &mut Connection,
    caller: &Caller,
    program: &str,
) -> Option<Resolved> {
    match resolve(program) {
        Ok(binary) => Some(binary),
        Err(e) => {
            refuse_unresolved(conn, caller, program, e).await;
            None
        }
    }
}

/// Tells the caller a program cannot be run, saying why only when they may see the path.
pub(super) async fn refuse_unresolved(
    conn: &mut Connection,
    caller: &Caller,
    program: &str,
    e: ResolveError,
) {
    let message = if crate::resolve::caller_may_see(program, caller) {
        e.to_string()
    } else {
        format!("{program} is not allowed (there is no such program, or you cannot see it)")
    };
    conn.refuse(Refusal::Binary, message).await;
}

/// Decides on a resolved command: its package, the verified policy (stale: approvers instead
/// of a pre-approval), the reason's rule, the policy's demand for a reason. `None` when the
/// caller was refused (told why).
pub(super) async fn decided(
    agent: &Agent,
    conn: &mut Connection,
    caller: Caller,
    argv: Vec<String>,
    binary: Resolved,
    reason: Option<String>,
    channel: Channel,
) -> Option<Decided> {
    let package = agent
        .packages
        .lock()
        .expect("packages lock")
        .owner(&binary.path);
    let policy = verified_policy(agent, conn).await?;
    let reason = conn.reason(reason).await?;
    // The name the program will see (`execute` gives it as argv[0]) is part of the request.
    let invoked = (binary.invoked != binary.path).then(|| binary.invoked.clone());
    let target = WireTarget::Command {
        path: binary.path.clone(),
        invoked,
        sha256: Some(binary.sha256.clone()),
        package,
        args: argv[1..].to_vec(),
    };
    let new = new_request(&caller, target, reason, channel, None);
    let request = core_request(agent, conn, &new).await?;
    let mut decision = decide(&policy.policy, &request, jiff::Timestamp::now());
    stale_means_approval(agent, &policy, &mut decision);
    if decision.mode == Mode::Enforce
        && !matches!(decision.outcome, Outcome::Deny { .. })
        && decision.missing_reason(&request)
    {
        let message = format!("a reason is required: {}", decision.explanation);
        conn.refuse(Refusal::ReasonRequired, message).await;
        return None;
    }
    let view = DecisionView::from_decision(&decision, policy.version);
    let facts = serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
        "device": agent.enrolment.name, "target": audited(&new.target), "reason": new.reason,
        "channel": "native" });
    Some(Decided {
        caller,
        argv,
        binary,
        new,
        decision,
        view,
        facts,
    })
}

/// The verified policy, or the caller is told there is none yet.
async fn verified_policy(agent: &Agent, conn: &mut Connection) -> Option<CachedPolicy> {
    let policy = agent.policy.read().expect("policy lock").clone();
    if policy.is_none() {
        conn.refuse(Refusal::NoPolicy, "this device has no verified policy yet (the server has not been reached since enrolment); nothing runs").await;
    }
    policy
}

/// The request the policy decides on, built from the wire request as the server builds it.
pub(super) async fn core_request(
    agent: &Agent,
    conn: &mut Connection,
    new: &NewRequest,
) -> Option<elevate_core::AccessRequest> {
    match new.to_core(&agent.enrolment.name, &agent.enrolment.tags) {
        Ok(request) => Some(request),
        Err(e) => {
            conn.refuse(Refusal::Usage, e.0).await;
            None
        }
    }
}

/// A cached policy past its `offline_max_age` pre-approves nothing: what it would allow at once
/// needs an approver, or offline the helpdesk's code. Denials stay denials.
pub(super) fn stale_means_approval(agent: &Agent, policy: &CachedPolicy, decision: &mut Decision) {
    if !matches!(decision.outcome, Outcome::Auto) {
        return;
    }
    if let Some(why) = agent.stale_policy(policy) {
        decision.outcome = Outcome::Approve(elevate_core::ApprovalRoute {
            approvers: policy.policy.default_approvers().to_owned(),
            count: 1,
            sla: None,
            escalate: None,
            expire: None,
            reauth: None,
            unknown_requester: policy.policy.default_unknown_requester(),
            offline_responders: None,
        });
        decision.explanation = format!("{}; {why}", decision.explanation);
    }
}
