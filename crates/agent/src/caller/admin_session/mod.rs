//! `elevate session 30m` and `elevate session end`: admin sessions, decided by the policy like a
//! command (`what = { session = true }` rules), then opened and ended by `grants`.
//!
//! Must never: open a session that sudo would not re-check (the plugin must be installed and
//! working: it asks the agent on every call and puts sudo into the session's cgroup), or tell
//! the user a session is open before its opening is on disk in the spool.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use elevate_core::{decide, AccessRequest, Channel, Mode, Outcome};
use elevate_proto::ipc::{AdminSessionSummary, AgentFrame, Refusal};
use elevate_proto::v1::{DecisionView, InvalidRequest, WireTarget};

use super::approvers::{self, new_request, Approved};
use super::command::stale_means_approval;
use super::connection::Connection;
use super::record::{self, audited, decided, event, spool};
use crate::grants::{AdminSession, EndedBy};
use crate::state::Agent;
use crate::users::Caller;

mod ends;
pub(crate) use ends::{end_disallowed, end_on_time, report_ends, sweep_admin_sessions};

/// The request the policy decides on for an admin session of `length`, built from the wire
/// request as for a command (and as the server builds it).
fn session_request(
    agent: &Agent,
    caller: &Caller,
    length: SignedDuration,
    reason: Option<String>,
    channel: Channel,
) -> Result<AccessRequest, InvalidRequest> {
    let target = WireTarget::Session {
        duration_secs: length.as_secs().max(0) as u64,
    };
    new_request(caller, target, reason, channel, None)
        .to_core(&agent.enrolment.name, &agent.enrolment.tags)
}

/// Whether admin sessions can be enforced here; why not, in words for the user.
fn sessions_possible(agent: &Agent) -> Result<(), String> {
    if agent.admin_sessions.cgroups.is_none() {
        return Err("this host has no cgroup v2 hierarchy, so an admin session's processes could not be stopped at its end".into());
    }
    let Some(installed) = crate::sudo_setup::installed(&agent.state_dir) else {
        return Err(match crate::sudo_setup::host_sudo(std::path::Path::new("/usr/bin/sudo")) {
            crate::sudo_setup::Flavour::SudoRs { .. } => "this host's sudo is sudo-rs, which ignores Elevate's plugin and NOTAFTER, so a session's end could not be enforced".into(),
            _ => "admin sessions work through sudo with Elevate's plugin, which is not installed here (an administrator runs `elevated install-sudo`)".into(),
        });
    };
    installed
        .check()
        .map_err(|what| format!("Elevate's sudo plugin is not working ({what})"))
}

pub(super) async fn open(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    uid: u32,
    duration_secs: u64,
    reason: Option<String>,
) {
    let Some((caller, policy)) = caller_and_policy(agent, conn, uid).await else {
        return;
    };
    if !sessions_checked(
        agent,
        conn,
        "; no admin session is opened (use elevate COMMAND)",
    )
    .await
    {
        return;
    }
    let Some(reason) = conn.reason(reason).await else {
        return;
    };
    let length = SignedDuration::from_secs(i64::try_from(duration_secs).unwrap_or(i64::MAX));
    let request = match session_request(agent, &caller, length, reason.clone(), Channel::Native) {
        Ok(request) => request,
        Err(e) => return conn.refuse(Refusal::Usage, e.0).await,
    };
    let mut decision = decide(&policy.policy, &request, Timestamp::now());
    // A session is a grant, not something to watch: discovery mode's "let it run and record
    // it" does not apply, the policy's own word does (its length limit included).
    decision.outcome = decision.policy_outcome.clone();
    stale_means_approval(agent, &policy, &mut decision);
    if !matches!(decision.outcome, Outcome::Deny { .. }) && decision.missing_reason(&request) {
        return conn
            .refuse(
                Refusal::ReasonRequired,
                format!("a reason is required: {}", decision.explanation),
            )
            .await;
    }
    grant(
        agent,
        conn,
        &caller,
        &decision,
        policy.version,
        length,
        reason,
        Channel::Native,
    )
    .await;
}

/// The caller and the verified policy, or the caller is told why there are none.
pub(super) async fn caller_and_policy(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    uid: u32,
) -> Option<(Caller, crate::cache::CachedPolicy)> {
    let caller = match agent.caller(uid) {
        Ok(c) => c,
        Err(e) => {
            conn.refuse(Refusal::UnknownUser, format!("{e:#}")).await;
            return None;
        }
    };
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        conn.refuse(
            Refusal::NoPolicy,
            "this device has no verified policy yet; nothing is opened",
        )
        .await;
        return None;
    };
    Some((caller, policy))
}

/// Whether admin sessions can be enforced here; if not, the caller is told why (`why` and
/// `then`).
pub(super) async fn sessions_checked(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    then: &str,
) -> bool {
    let checked = {
        let agent = agent.clone();
        tokio::task::spawn_blocking(move || sessions_possible(&agent)).await
    };
    match checked {
        Ok(Ok(())) => true,
        Ok(Err(why)) => {
            conn.refuse(Refusal::SessionsUnavailable, format!("{why}{then}"))
                .await;
            false
        }
        Err(e) => {
            conn.refuse(Refusal::Internal, e.to_string()).await;
            false
        }
    }
}

/// `sudo -i` / `sudo -s` in enforce mode, where the policy allows admin sessions: the shell opens
/// one (as long as the policy allows) and lives in it. `Ok(Some(session))` when the shell may run
/// in it; `Ok(None)` when sessions do not apply (the shell is then decided as a command);
/// `Err(())` when the caller was already answered (refused, denied by an approver).
pub(super) async fn open_for_sudo_shell(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    caller: &Caller,
    reason: Option<String>,
    can_wait: bool,
) -> Result<Option<AdminSession>, ()> {
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return Ok(None);
    };
    let ask = |length| session_request(agent, caller, length, reason.clone(), Channel::Sudo);
    // As long as the policy allows for this person.
    let Ok(probe) = ask(SignedDuration::from_secs(1)) else {
        return Ok(None);
    };
    let length = decide(&policy.policy, &probe, Timestamp::now())
        .constraints
        .session_max;
    // No length (or none a request may have): sessions do not apply.
    let Ok(request) = ask(length) else {
        return Ok(None);
    };
    let mut decision = decide(&policy.policy, &request, Timestamp::now());
    stale_means_approval(agent, &policy, &mut decision);
    if decision.mode != Mode::Enforce
        || matches!(decision.policy_outcome, Outcome::Deny { .. })
        || !length.is_positive()
    {
        return Ok(None);
    }
    {
        let agent = agent.clone();
        match tokio::task::spawn_blocking(move || sessions_possible(&agent)).await {
            Ok(Ok(())) => {}
            _ => return Ok(None),
        }
    }
    if decision.missing_reason(&request) {
        conn.refuse(
            Refusal::ReasonRequired,
            format!("a reason is required: {}", decision.explanation),
        )
        .await;
        return Err(());
    }
    if matches!(decision.outcome, Outcome::Approve(_)) && !can_wait {
        conn.refuse(
            Refusal::ApprovalNeeded,
            "an admin session needs an approver; sudo -n cannot wait: run it without -n, or use `elevate session`",
        )
        .await;
        return Err(());
    }
    grant(
        agent,
        conn,
        caller,
        &decision,
        policy.version,
        length,
        reason,
        Channel::Sudo,
    )
    .await
    .map(Some)
    .ok_or(())
}

/// Records the decision, asks approvers if it says so, and opens the session. `None` when
/// nothing was opened (the caller was told why).
#[allow(clippy::too_many_arguments)]
async fn grant(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    caller: &Caller,
    decision: &elevate_core::Decision,
    policy_version: u64,
    length: SignedDuration,
    reason: Option<String>,
    channel: Channel,
) -> Option<AdminSession> {
    let caller = caller.clone();
    let duration_secs = length.as_secs().max(0) as u64;
    let view = DecisionView::from_decision(decision, policy_version);
    let target = WireTarget::Session { duration_secs };
    let facts = serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
        "device": agent.enrolment.name, "target": audited(&target), "reason": reason,
        "channel": channel.as_str() });
    let (id, on_server, server_max) = match &decision.outcome {
        Outcome::Deny { .. } => {
            let id = uuid::Uuid::now_v7().to_string();
            if let Err(e) = record::local_decision(agent, &caller, &id, facts, &view, None) {
                conn.refuse(Refusal::Audit, format!("cannot record the request ({e})"))
                    .await;
                return None;
            }
            conn.send(&decided(&id, &view)).await;
            return None;
        }
        Outcome::Auto => {
            let id = uuid::Uuid::now_v7().to_string();
            if let Err(e) = record::local_decision(agent, &caller, &id, facts, &view, None) {
                conn.refuse(
                    Refusal::Audit,
                    format!("cannot record the request ({e}); nothing is opened"),
                )
                .await;
                return None;
            }
            conn.send(&decided(&id, &view)).await;
            (id, false, None)
        }
        Outcome::Approve(_) => {
            let new = new_request(&caller, target, reason, channel, None);
            let asked = AskedFor {
                caller: &caller,
                decision,
                view: &view,
                facts,
            };
            approved(agent, conn, &new, asked).await?
        }
    };
    // Never longer than the policy allows (the server's limit, for an approved request).
    let mut length = length.min(decision.constraints.session_max);
    if let Some(allowed) = server_max {
        length = length.min(SignedDuration::from_secs(
            allowed.min(i64::MAX as u64) as i64
        ));
    }
    if !length.is_positive() {
        conn.refuse(
            Refusal::Session,
            "the policy allows no admin session here; nothing is opened",
        )
        .await;
        return None;
    }
    open_session(agent, conn, caller, id, length, on_server, false).await
}

/// What an admin session is asked for on.
struct AskedFor<'a> {
    caller: &'a Caller,
    decision: &'a elevate_core::Decision,
    view: &'a DecisionView,
    /// What the audit trail says of the request.
    facts: serde_json::Value,
}

/// Asks approvers (or, for `elevate session` offline, the helpdesk) for an admin session:
/// its id, whether the server keeps its record, and the longest it may last (seconds), once it
/// may open. `None` when not (the caller told why).
async fn approved(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    new: &elevate_proto::v1::NewRequest,
    on: AskedFor<'_>,
) -> Option<(String, bool, Option<u64>)> {
    // Only `elevate session` can show a challenge (sudo's plugin does not yet).
    let approved = if new.channel == Channel::Native {
        approvers::ask_or_helpdesk(agent, conn, new, on.decision, true).await?
    } else {
        Approved::Server(Box::new(approvers::ask(agent, conn, new).await?))
    };
    match approved {
        Approved::Server(approved) => {
            if let Err(e) = agent.upstream.start(&approved.id).await {
                conn.refuse(Refusal::Audit, format!("{e}; nothing is opened"))
                    .await;
                return None;
            }
            let max = approved.decision.session_max_secs;
            Some((approved.id, true, Some(max)))
        }
        // The helpdesk's code: recorded here, and it sets the length.
        Approved::Offline(granted) => {
            let running = serde_json::json!({});
            let recorded =
                record::offline_grant(agent, on.caller, &granted, on.facts, on.view, running);
            if let Err(e) = recorded {
                let message = format!("cannot record the request ({e}); nothing is opened");
                conn.refuse(Refusal::Audit, message).await;
                return None;
            }
            conn.send(&AgentFrame::Approved {
                request_id: granted.id.clone(),
                comment: Some("by the helpdesk's offline code".into()),
            })
            .await;
            let secs = u64::from(granted.response.minutes) * 60;
            Some((granted.id, false, Some(secs)))
        }
    }
}

/// Opens an allowed admin session of `length` (recorded first) and tells the caller.
#[allow(clippy::too_many_arguments)]
pub(super) async fn open_session(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    caller: Caller,
    id: String,
    length: SignedDuration,
    on_server: bool,
    break_glass: bool,
) -> Option<AdminSession> {
    let duration_secs = length.as_secs() as u64;
    let now = Timestamp::now();
    let expires = now.checked_add(length).unwrap_or(now);
    let opened = event(
        agent,
        &caller,
        "session.opened",
        &id,
        serde_json::json!({ "user": caller.name, "uid": caller.uid, "starts": now.to_string(),
            "expires": expires.to_string(), "length_secs": duration_secs }),
    );
    if let Err(e) = spool(agent, &[opened]) {
        conn.refuse(
            Refusal::Audit,
            format!("cannot record the session ({e}); nothing is opened"),
        )
        .await;
        return None;
    }
    let made = {
        let places = agent.admin_sessions.clone();
        let (id, user) = (id.clone(), caller.name.clone());
        tokio::task::spawn_blocking(move || {
            places.open(&id, &user, caller.uid, now, length, on_server, break_glass)
        })
        .await
    };
    let session = match made {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let data = serde_json::json!({ "error": format!("{e:#}") });
            let failed = event(agent, &caller, "session.failed", &id, data);
            if let Err(e) = spool(agent, &[failed]) {
                tracing::error!(error = %e, session = %id, "cannot record a failed admin session");
            }
            conn.refuse(
                Refusal::Session,
                format!("the admin session could not be opened: {e:#}"),
            )
            .await;
            return None;
        }
        Err(e) => {
            conn.refuse(Refusal::Internal, e.to_string()).await;
            return None;
        }
    };
    if let Err(e) = crate::grants::spawn_reaper(&agent.admin_sessions, &session.id) {
        // Without its reaper the session would end late if the agent died: it does not open.
        tracing::error!(error = %format!("{e:#}"), session = %session.id, "no reaper for this admin session");
        end_failed(agent, &session.id).await;
        let message = format!("the admin session could not be opened: {e:#}");
        conn.refuse(Refusal::Session, message).await;
        return None;
    }
    end_on_time(agent.clone(), session.expires);
    conn.send(&AgentFrame::SessionOpened {
        request_id: session.id.clone(),
        expires: session.expires.to_string(),
        remaining_secs: session.remaining(Timestamp::now()).as_secs().max(0) as u64,
    })
    .await;
    Some(session)
}

/// Ends the caller's open admin sessions at once.
pub(super) async fn end(agent: &Arc<Agent>, conn: &mut Connection, uid: u32) {
    let places = agent.admin_sessions.clone();
    let ended = tokio::task::spawn_blocking(move || {
        let now = Timestamp::now();
        let mut count = 0;
        for s in places
            .read()?
            .into_iter()
            .filter(|s| s.uid == uid && s.is_open_at(now))
        {
            if places.end(&s.id, EndedBy::User, now)?.is_some() {
                count += 1;
            }
        }
        Ok::<_, anyhow::Error>(count)
    })
    .await;
    report_ends(agent).await;
    match ended {
        Ok(Ok(count)) => conn.send(&AgentFrame::SessionsEnded { count }).await,
        Ok(Err(e)) => {
            conn.refuse(Refusal::Session, format!("cannot end the session: {e:#}"))
                .await
        }
        Err(e) => conn.refuse(Refusal::Internal, e.to_string()).await,
    }
}

/// The caller's open admin sessions, for `elevate status`.
pub(super) fn summaries(agent: &Agent, uid: u32) -> Vec<AdminSessionSummary> {
    let now = Timestamp::now();
    agent
        .admin_sessions
        .read()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.uid == uid && s.is_open_at(now))
        .map(|s| AdminSessionSummary {
            remaining_secs: s.remaining(now).as_secs().max(0) as u64,
            request_id: s.id,
            expires: s.expires.to_string(),
        })
        .collect()
}

/// Ends admin session `id` at once because it failed to start (nothing ran in it), and reports it.
pub(super) async fn end_failed(agent: &Agent, id: &str) {
    let places = agent.admin_sessions.clone();
    let ended = id.to_owned();
    let _ =
        tokio::task::spawn_blocking(move || places.end(&ended, EndedBy::Failed, Timestamp::now()))
            .await;
    report_ends(agent).await;
}

/// The root shell that opened admin session `id` has ended: so does the session.
pub(super) async fn end_with_shell(agent: &Agent, id: &str) {
    let places = agent.admin_sessions.clone();
    let session = id.to_owned();
    let now = Timestamp::now();
    let ended = tokio::task::spawn_blocking(move || places.end(&session, EndedBy::User, now)).await;
    if let Ok(Err(e)) = ended {
        tracing::error!(error = %format!("{e:#}"), "cannot end the session of a finished shell");
    }
    report_ends(agent).await;
}
