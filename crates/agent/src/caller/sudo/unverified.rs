//! A sudo command whose program the agent cannot vouch for (its path is not root's alone, or
//! it cannot be resolved) in discovery mode: recorded as unverified and let run, as sudo
//! always did.
//!
//! Must never: let an unverified program run in enforce mode, or decide on it (it is only
//! recorded, with the hash of what the file held when asked).

use std::time::Duration;

use elevate_core::{decide, Channel, Mode, Outcome};
use elevate_proto::ipc::AgentFrame;
use elevate_proto::v1::{DecisionView, WireTarget};

use super::super::approvers;
use super::super::connection::Connection;
use super::super::record;
use super::Check;
use crate::os::process::PeerProcess;
use crate::state::{remember_sudo_run, Agent, Record};

/// Discovery mode promises that sudo works exactly as before: a program the agent cannot vouch
/// for (a script the user owns, a folder others may write) is not decided on, but runs as
/// sudoers allows and is recorded as unverified (with the hash of what the file held when
/// asked). Returns false, deciding nothing, when the user is not in discovery mode.
pub(super) async fn unverified_in_discovery(
    agent: &Agent,
    conn: &mut Connection,
    uid: u32,
    ask: Check,
    why: String,
    peer: PeerProcess,
) -> bool {
    let Ok(caller) = agent.caller(uid) else {
        return false;
    };
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return false;
    };
    if policy.policy.mode_for(&agent.subject(&caller)) != Mode::Discover {
        return false;
    }
    // Described, not run by the agent: hashed off the runtime, never for long, never a FIFO.
    let path = ask.command.clone();
    let hashed = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || crate::resolve::observed_sha256(&path)),
    )
    .await;
    let sha256 = match hashed {
        Ok(Ok(Some((digest, _)))) => Some(digest),
        _ => None,
    };
    let target = WireTarget::Command {
        path: ask.command.clone(),
        invoked: None,
        sha256,
        package: None,
        args: ask.argv.iter().skip(1).cloned().collect(),
    };
    let new = approvers::new_request(&caller, target, None, Channel::Sudo, None);
    let Ok(request) = new.to_core(&agent.enrolment.name, &agent.enrolment.tags) else {
        return false;
    };
    let decision = decide(&policy.policy, &request, jiff::Timestamp::now());
    if decision.mode != Mode::Discover || !matches!(decision.outcome, Outcome::Auto) {
        return false;
    }
    let mut view = DecisionView::from_decision(&decision, policy.version);
    view.explanation = format!(
        "{}; the program could not be verified ({why}), so it is recorded, not decided on",
        view.explanation
    );
    let facts = serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
        "device": agent.enrolment.name, "target": record::audited(&new.target), "reason": null,
        "channel": "sudo", "cwd": ask.cwd, "tty": ask.tty, "runas": ask.runas,
        "verified": false, "unverified_because": why });
    let id = uuid::Uuid::now_v7().to_string();
    let discovery = record::discovery_facts(&decision, &facts, &view);
    let running = serde_json::json!({ "channel": "sudo", "verified": false });
    if let Err(e) = record::local_decision(agent, &caller, &id, facts, &view, Some(running)) {
        record::refuse_unrecorded(conn, e).await;
        return true;
    }
    conn.send(&record::decided(&id, &view)).await;
    remember_sudo_run(agent, &id, &caller, Record::Local, peer, discovery);
    let canonical = std::fs::canonicalize(&ask.command)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| ask.command.clone());
    agent.note_front_door_exec(caller.uid, &canonical);
    conn.send(&AgentFrame::Allowed {
        request_id: id,
        cgroup: None,
        // Discovery: sudo as before.
        workdir: None,
    })
    .await;
    true
}
