//! Recording what happens to a caller's request: audit events spooled to disk (before the action
//! they describe, or just after an end), the `Decided` frame, and a command's end (to the server
//! when it keeps the record, else spooled).
//!
//! Must never: let an action go ahead whose event is not on disk (callers refuse with
//! `Refusal::Audit` when a spool write fails), or let one event outgrow what the server ingests.

use std::time::Instant;

use sha2::Digest as _;

use elevate_core::Mode;
use elevate_proto::ipc::{AgentFrame, Refusal};
use elevate_proto::limits::{MAX_LIST_BYTES, MAX_LIST_ITEMS};
use elevate_proto::v1::{AuditEventIn, DecisionView, WireTarget};

use super::connection::Connection;
use super::offline;
use crate::state::{Agent, Record};
use crate::users::Caller;

/// The target as recorded in audit events: huge argument lists become their first arguments,
/// a count and a SHA-256 of the whole list, so one event never outgrows what the server ingests.
/// Measured as `elevate_proto::limits` measures lists (JSON bytes, items), so what is kept here
/// is never cut again.
pub(super) fn audited(target: &WireTarget) -> serde_json::Value {
    let full = serde_json::to_value(target).unwrap_or_default();
    let WireTarget::Command { args, .. } = target else {
        return full;
    };
    let json_len = |a: &str| serde_json::to_string(a).map_or(usize::MAX, |j| j.len()) + 1;
    let size: usize = args.iter().map(|a| json_len(a)).sum();
    if size <= MAX_LIST_BYTES && args.len() <= MAX_LIST_ITEMS {
        return full;
    }
    let mut digest = sha2::Sha256::new();
    for a in args {
        sha2::Digest::update(&mut digest, (a.len() as u64).to_be_bytes());
        sha2::Digest::update(&mut digest, a.as_bytes());
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for a in args.iter().take(MAX_LIST_ITEMS) {
        let cut: String = a.chars().take(1024).collect();
        used += json_len(&cut);
        if used > MAX_LIST_BYTES {
            break;
        }
        kept.push(cut);
    }
    let mut shown = full;
    shown["args"] = serde_json::json!(kept);
    shown["args_truncated"] = serde_json::json!({
        "count": args.len(),
        "sha256": hex::encode(sha2::Digest::finalize(digest)),
    });
    shown
}

/// Now, to the millisecond (what the server keeps).
pub(super) fn now_ms() -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond()).expect("valid time")
}

/// One event about request `request_id`, by `caller` on this device.
pub(super) fn event(
    agent: &Agent,
    caller: &Caller,
    action: &str,
    request_id: &str,
    data: serde_json::Value,
) -> AuditEventIn {
    AuditEventIn {
        id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        actor: format!("user:{}@{}", caller.name, agent.enrolment.name),
        action: action.into(),
        subject: format!("request:{request_id}"),
        data,
    }
}

/// The `Decided` frame for a decision.
pub(super) fn decided(request_id: &str, view: &DecisionView) -> AgentFrame {
    AgentFrame::Decided {
        request_id: request_id.to_owned(),
        outcome: view.outcome.clone(),
        rule: view.rule.clone(),
        explanation: view.explanation.clone(),
        message: view.message.clone(),
        approvers: view.approvers.clone(),
    }
}

/// Spools a decision made here: the request, the decision and, when it may run, its start
/// (`running`), in one flush to disk before anything runs.
pub(super) fn local_decision(
    agent: &Agent,
    caller: &Caller,
    id: &str,
    facts: serde_json::Value,
    view: &DecisionView,
    running: Option<serde_json::Value>,
) -> std::io::Result<()> {
    let mut events = vec![
        event(agent, caller, "request.created", id, facts),
        event(
            agent,
            caller,
            "request.decided",
            id,
            serde_json::to_value(view).unwrap_or_default(),
        ),
    ];
    if let Some(data) = running {
        events.push(event(agent, caller, "request.running", id, data));
    }
    spool(agent, &events)
}

/// Spools what the helpdesk's offline code allowed, before anything runs or opens: the request
/// (channel `offline`), the decision, and its start with the code (`running` adds the start's
/// own facts).
pub(super) fn offline_grant(
    agent: &Agent,
    caller: &Caller,
    granted: &offline::Granted,
    mut facts: serde_json::Value,
    view: &DecisionView,
    mut running: serde_json::Value,
) -> std::io::Result<()> {
    facts["channel"] = "offline".into();
    running["offline_code"] = serde_json::json!({ "challenge": granted.challenge,
        "scope": granted.response.scope.as_str(), "minutes": granted.response.minutes });
    local_decision(agent, caller, &granted.id, facts, view, Some(running))
}

/// In discovery mode, what is kept of a command until its end: its facts and what enforcement
/// would have said.
pub(super) fn discovery_facts(
    decision: &elevate_core::Decision,
    facts: &serde_json::Value,
    view: &DecisionView,
) -> Option<serde_json::Value> {
    (decision.mode == Mode::Discover).then(|| {
        let mut d = facts.clone();
        d["policy_outcome"] = view.policy_outcome.clone().into();
        d["policy_rule"] = view.rule.clone().into();
        d
    })
}

/// How a command ended: exit code, signal, or why it could not run.
pub(super) type Ended = (Option<i32>, Option<i32>, Option<String>);

/// One `discovery.command` event: the kept facts completed by how the command ended.
pub(super) fn discovery(
    agent: &Agent,
    caller: &Caller,
    id: &str,
    mut facts: serde_json::Value,
    ended: Ended,
    started: Instant,
) {
    facts["exit_code"] = ended.0.into();
    facts["signal"] = ended.1.into();
    facts["error"] = ended.2.into();
    facts["duration_ms"] = (started.elapsed().as_millis() as u64).into();
    let found = event(agent, caller, "discovery.command", id, facts);
    if let Err(e) = spool_after_the_fact(agent, &[found]) {
        tracing::error!(error = %e, "cannot spool a discovery event");
    }
}

/// Appends events to the spool (on disk before the action) and wakes the sender.
pub(super) fn spool(agent: &Agent, events: &[AuditEventIn]) -> std::io::Result<()> {
    agent.spool.lock().expect("spool lock").append(events)?;
    agent.spool_ready.notify_one();
    Ok(())
}

/// Appends events about something already over (an exit); the sender flushes them shortly.
pub(super) fn spool_after_the_fact(agent: &Agent, events: &[AuditEventIn]) -> std::io::Result<()> {
    agent
        .spool
        .lock()
        .expect("spool lock")
        .append_after_the_fact(events)?;
    agent.spool_ready.notify_one();
    Ok(())
}

/// Records a command's end: to the server when it keeps the request's record and answers,
/// else in the spool (delivered later).
pub(super) async fn finish(
    agent: &Agent,
    caller: &Caller,
    id: &str,
    record: &Record,
    outcome: Result<(Option<i32>, Option<i32>), String>,
) {
    let data = match &outcome {
        Ok((code, signal)) => serde_json::json!({ "exit_code": code, "signal": signal }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    if let (Record::Server, Ok((code, signal))) = (record, &outcome) {
        let exit = code.unwrap_or(128 + signal.unwrap_or(0));
        if agent.upstream.finish(id, exit).await.is_ok() {
            return;
        }
    }
    // Recorded locally (or the server did not answer): the spool delivers it later.
    if let Err(e) =
        spool_after_the_fact(agent, &[event(agent, caller, "request.finished", id, data)])
    {
        tracing::error!(error = %e, request = id, "cannot spool the end of a command");
    }
}

/// The request could not be recorded: nothing runs (or opens), and the caller is told.
pub(super) async fn refuse_unrecorded(conn: &mut Connection, e: std::io::Error) {
    let message = format!("cannot record the request ({e}); nothing runs");
    conn.refuse(Refusal::Audit, message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_argument_lists_are_recorded_by_digest() {
        let small = WireTarget::Command {
            path: "/usr/bin/id".into(),
            invoked: None,
            sha256: None,
            package: None,
            args: vec!["-u".into()],
        };
        assert_eq!(audited(&small), serde_json::to_value(&small).unwrap());
        let big = WireTarget::Command {
            path: "/usr/bin/printf".into(),
            invoked: None,
            sha256: None,
            package: None,
            args: vec!["A".repeat(70_000), "tail".into()],
        };
        let shown = audited(&big);
        assert!(
            shown.to_string().len() < 20_000,
            "{}",
            shown.to_string().len()
        );
        assert_eq!(shown["args_truncated"]["count"], 2);
        assert_eq!(
            shown["args_truncated"]["sha256"].as_str().unwrap().len(),
            64
        );
        assert_eq!(shown["path"], "/usr/bin/printf");
    }
}
