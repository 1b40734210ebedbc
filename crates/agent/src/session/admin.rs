//! `elevate session 30m` and `elevate session end`: admin sessions, decided by the policy like a
//! command (`what = { session = true }` rules), then opened and ended by `grants`.
//!
//! Must never: open a session that sudo would not re-check (the plugin must be installed and
//! working: it asks the agent on every call and puts sudo into the session's cgroup), or tell
//! the user a session is open before its opening is on disk in the spool.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use sha2::Digest as _;

use elevate_core::{decide, AccessRequest, Channel, Mode, Outcome, Target};
use elevate_proto::ipc::{AdminSessionSummary, AgentFrame};
use elevate_proto::v1::{AuditEventIn, DecisionView, WireTarget};

use super::{
    ask_approvers, ask_approvers_or_helpdesk, audited, decided, event, new_request, now_ms,
    record_local_decision, record_offline_grant, spool, Approved, Conn,
};
use crate::grants::{AdminSession, EndedBy};
use crate::state::Agent;
use crate::users::Caller;

/// Whether admin sessions can be enforced here; why not, in words for the user.
fn sessions_possible(agent: &Agent) -> Result<(), String> {
    if agent.places.cgroups.is_none() {
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
    conn: &mut Conn,
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
    let Some(reason) = conn.checked_reason(reason).await else {
        return;
    };
    let Ok(secs) = i64::try_from(duration_secs) else {
        return conn.refuse("usage", "that session is far too long").await;
    };
    let length = SignedDuration::from_secs(secs);
    let request = AccessRequest {
        subject: agent.subject(&caller),
        target: Target::Session { duration: length },
        reason: reason.clone(),
        channel: Channel::Native,
    };
    let mut decision = decide(&policy.policy, &request, Timestamp::now());
    // A session is a grant, not something to watch: discovery mode's "let it run and record
    // it" does not apply, the policy's own word does (its length limit included).
    decision.outcome = decision.policy_outcome.clone();
    super::stale_means_approval(agent, &policy, &mut decision);
    if !matches!(decision.outcome, Outcome::Deny { .. }) && decision.missing_reason(&request) {
        return conn
            .refuse(
                "reason_required",
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
async fn caller_and_policy(
    agent: &Arc<Agent>,
    conn: &mut Conn,
    uid: u32,
) -> Option<(Caller, crate::cache::CachedPolicy)> {
    let caller = match agent.caller(uid) {
        Ok(c) => c,
        Err(e) => {
            conn.refuse("unknown_user", format!("{e:#}")).await;
            return None;
        }
    };
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        conn.refuse(
            "no_policy",
            "this device has no verified policy yet; nothing is opened",
        )
        .await;
        return None;
    };
    Some((caller, policy))
}

/// Whether admin sessions can be enforced here; if not, the caller is told why (`why` and
/// `then`).
async fn sessions_checked(agent: &Arc<Agent>, conn: &mut Conn, then: &str) -> bool {
    let checked = {
        let agent = agent.clone();
        tokio::task::spawn_blocking(move || sessions_possible(&agent)).await
    };
    match checked {
        Ok(Ok(())) => true,
        Ok(Err(why)) => {
            conn.refuse("sessions_unavailable", format!("{why}{then}"))
                .await;
            false
        }
        Err(e) => {
            conn.refuse("internal", e.to_string()).await;
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
    conn: &mut Conn,
    caller: &Caller,
    reason: Option<String>,
    can_wait: bool,
) -> Result<Option<AdminSession>, ()> {
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return Ok(None);
    };
    let subject = agent.subject(caller);
    let ask = |duration: SignedDuration| AccessRequest {
        subject: subject.clone(),
        target: Target::Session { duration },
        reason: reason.clone(),
        channel: Channel::Sudo,
    };
    // As long as the policy allows for this person.
    let probe = decide(
        &policy.policy,
        &ask(SignedDuration::from_secs(1)),
        Timestamp::now(),
    );
    let length = probe.constraints.session_max;
    let request = ask(length);
    let mut decision = decide(&policy.policy, &request, Timestamp::now());
    super::stale_means_approval(agent, &policy, &mut decision);
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
            "reason_required",
            format!("a reason is required: {}", decision.explanation),
        )
        .await;
        return Err(());
    }
    if matches!(decision.outcome, Outcome::Approve(_)) && !can_wait {
        conn.refuse(
            "approval_needed",
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
    conn: &mut Conn,
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
            if let Err(e) = record_local_decision(agent, &caller, &id, facts, &view, None) {
                conn.refuse("audit", format!("cannot record the request ({e})"))
                    .await;
                return None;
            }
            conn.send(&decided(&id, &view)).await;
            return None;
        }
        Outcome::Auto => {
            let id = uuid::Uuid::now_v7().to_string();
            if let Err(e) = record_local_decision(agent, &caller, &id, facts, &view, None) {
                conn.refuse(
                    "audit",
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
            // Only `elevate session` can show a challenge (sudo's plugin does not yet).
            let approved = if channel == Channel::Native {
                ask_approvers_or_helpdesk(agent, conn, &new, decision, true).await?
            } else {
                Approved::Server(Box::new(ask_approvers(agent, conn, &new).await?))
            };
            match approved {
                Approved::Server(approved) => {
                    if let Err(e) = agent.upstream.start(&approved.id).await {
                        conn.refuse("audit", format!("{e}; nothing is opened"))
                            .await;
                        return None;
                    }
                    let max = approved.decision.session_max_secs;
                    (approved.id, true, Some(max))
                }
                // The helpdesk's code: recorded here, and it sets the length.
                Approved::Offline(granted) => {
                    let running = serde_json::json!({});
                    if let Err(e) =
                        record_offline_grant(agent, &caller, &granted, facts, &view, running)
                    {
                        conn.refuse(
                            "audit",
                            format!("cannot record the request ({e}); nothing is opened"),
                        )
                        .await;
                        return None;
                    }
                    conn.send(&AgentFrame::Approved {
                        request_id: granted.id.clone(),
                        comment: Some("by the helpdesk's offline code".into()),
                    })
                    .await;
                    let secs = u64::from(granted.response.minutes) * 60;
                    (granted.id, false, Some(secs))
                }
            }
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
            "session",
            "the policy allows no admin session here; nothing is opened",
        )
        .await;
        return None;
    }
    open_session(agent, conn, caller, id, length, on_server, false).await
}

/// Opens an allowed admin session of `length` (recorded first) and tells the caller.
#[allow(clippy::too_many_arguments)]
async fn open_session(
    agent: &Arc<Agent>,
    conn: &mut Conn,
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
            "audit",
            format!("cannot record the session ({e}); nothing is opened"),
        )
        .await;
        return None;
    }
    let made = {
        let places = agent.places.clone();
        let (id, user) = (id.clone(), caller.name.clone());
        tokio::task::spawn_blocking(move || {
            places.open(&id, &user, caller.uid, now, length, on_server, break_glass)
        })
        .await
    };
    let session = match made {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let failed = event(
                agent,
                &caller,
                "session.failed",
                &id,
                serde_json::json!({ "error": format!("{e:#}") }),
            );
            if let Err(e) = spool(agent, &[failed]) {
                tracing::error!(error = %e, session = %id, "cannot record a failed admin session");
            }
            conn.refuse(
                "session",
                format!("the admin session could not be opened: {e:#}"),
            )
            .await;
            return None;
        }
        Err(e) => {
            conn.refuse("internal", e.to_string()).await;
            return None;
        }
    };
    if let Err(e) = crate::grants::spawn_reaper(&agent.places, &session.id) {
        // Without its reaper the session would end late if the agent died: it does not open.
        tracing::error!(error = %format!("{e:#}"), session = %session.id, "no reaper for this admin session");
        let places = agent.places.clone();
        let id = session.id.clone();
        let _ =
            tokio::task::spawn_blocking(move || places.end(&id, EndedBy::Failed, Timestamp::now()))
                .await;
        report_ends(agent).await;
        conn.refuse(
            "session",
            format!("the admin session could not be opened: {e:#}"),
        )
        .await;
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

/// `elevate --reason TEXT break-glass`: an emergency admin session on a device that cannot
/// reach the server, from codes of as many different helpdesk members as the policy says
/// (`[defaults] break_glass_codes`), as long as the shortest of their codes. Its use is an
/// alert (`breakglass.used`), and the server lists it for review.
pub(super) async fn break_glass(
    agent: &Arc<Agent>,
    conn: &mut Conn,
    uid: u32,
    reason: Option<String>,
) {
    let Some((caller, policy)) = caller_and_policy(agent, conn, uid).await else {
        return;
    };
    let Some(needed) = policy.policy.break_glass_codes() else {
        return conn
            .refuse(
                "break_glass_off",
                "break glass is off in this device's policy (`[defaults] break_glass_codes`); nothing is opened",
            )
            .await;
    };
    // Ask the server once more (the offline mark may be a refresh old): break glass is for
    // when it cannot be reached, and a server that answers at all decides.
    let reached =
        match tokio::time::timeout(std::time::Duration::from_secs(10), agent.upstream.bundle())
            .await
        {
            Ok(Err(crate::upstream::UpstreamError::Unreachable { .. })) | Err(_) => false,
            Ok(_) => true,
        };
    agent.mark_online(reached);
    if reached {
        return conn
            .refuse(
                "server_reachable",
                "the server can be reached: ask for an admin session (`elevate --reason TEXT session 1h`) and approvers decide; break glass is for when it cannot be",
            )
            .await;
    }
    let Some(reason) = conn.checked_reason(reason).await else {
        return; // refused already (too long)
    };
    let Some(reason) = reason else {
        return conn
            .refuse(
                "reason_required",
                "break glass needs a reason: `elevate --reason TEXT break-glass`",
            )
            .await;
    };
    if !sessions_checked(agent, conn, "; no admin session is opened").await {
        return;
    }
    let target = WireTarget::Session { duration_secs: 0 };
    let new = new_request(&caller, target, Some(reason.clone()), Channel::Native, None);
    let Some(granted) =
        super::offline::answer(agent, conn, &new, super::offline::Want::Shares(needed)).await
    else {
        return;
    };
    let length = SignedDuration::from_mins(i64::from(granted.response.minutes));
    let used = event(
        agent,
        &caller,
        "breakglass.used",
        &granted.id,
        serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
            "device": agent.enrolment.name, "reason": reason, "challenge": granted.challenge,
            "shares": granted.shares, "codes_needed": needed, "length_secs": length.as_secs(),
            "alert": true, "review": true }),
    );
    if let Err(e) = spool(agent, &[used]) {
        return conn
            .refuse(
                "audit",
                format!("cannot record the break-glass session ({e}); nothing is opened"),
            )
            .await;
    }
    conn.send(&AgentFrame::Approved {
        request_id: granted.id.clone(),
        comment: Some(format!(
            "break glass: codes from {needed} members of the helpdesk"
        )),
    })
    .await;
    open_session(agent, conn, caller, granted.id, length, false, true).await;
}

/// Ends the caller's open admin sessions at once.
pub(super) async fn end(agent: &Arc<Agent>, conn: &mut Conn, uid: u32) {
    let places = agent.places.clone();
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
            conn.refuse("session", format!("cannot end the session: {e:#}"))
                .await
        }
        Err(e) => conn.refuse("internal", e.to_string()).await,
    }
}

/// Ends the open sessions that the policy in force would refuse now (a new policy version, a
/// user who left the group a rule names): a grant is only as good as the policy behind it.
pub(crate) async fn end_disallowed(agent: &Arc<Agent>) {
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return;
    };
    let now = Timestamp::now();
    let open: Vec<AdminSession> = agent
        .places
        .read()
        .unwrap_or_default()
        .into_iter()
        // Break glass is the helpdesk's word against the policy: it ends on time, not on it.
        .filter(|s| s.is_open_at(now) && !s.break_glass)
        .collect();
    let mut ended = false;
    for s in open {
        let still = agent.caller(s.uid).ok().is_some_and(|caller| {
            let request = AccessRequest {
                subject: agent.subject(&caller),
                target: Target::Session {
                    duration: s.expires.duration_since(s.starts),
                },
                reason: Some("already granted".into()),
                channel: Channel::Native,
            };
            let decision = decide(&policy.policy, &request, now);
            !matches!(decision.policy_outcome, Outcome::Deny { .. })
        });
        if !still {
            let places = agent.places.clone();
            let id = s.id.clone();
            let done =
                tokio::task::spawn_blocking(move || places.end(&id, EndedBy::Policy, now)).await;
            if let Ok(Err(e)) = done {
                tracing::error!(error = %format!("{e:#}"), session = %s.id, "cannot end an admin session the policy no longer allows");
            }
            ended = true;
        }
    }
    if ended {
        report_ends(agent).await;
    }
}

/// The caller's open admin sessions, for `elevate status`.
pub(super) fn summaries(agent: &Agent, uid: u32) -> Vec<AdminSessionSummary> {
    let now = Timestamp::now();
    agent
        .places
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

/// Turns every end the ledger holds (by the agent, a reaper or a sweep) into one audit event,
/// and closes the request on the server for sessions the server approved.
pub(crate) async fn report_ends(agent: &Agent) {
    let _one_at_a_time = agent.session_reports.lock().await;
    // The ledger's lock may be held for a while (a reaper killing a session): off the runtime.
    let places = agent.places.clone();
    let unreported = tokio::task::spawn_blocking(move || places.unreported())
        .await
        .unwrap_or_default();
    for s in unreported {
        let Some(ended) = s.ended.clone() else {
            continue;
        };
        let event = end_event(agent, &s, &ended);
        if let Err(e) = spool(agent, &[event]) {
            tracing::error!(error = %e, session = %s.id, "cannot record the end of an admin session");
            continue;
        }
        if s.on_server && ended.by != EndedBy::Failed {
            if let Err(e) = agent.upstream.finish(&s.id, 0).await {
                tracing::warn!(error = %e, session = %s.id, "the server did not take the end of an admin session");
            }
        }
        let places = agent.places.clone();
        let id = s.id.clone();
        let marked = tokio::task::spawn_blocking(move || places.mark_reported(&id)).await;
        if let Ok(Err(e)) = marked {
            tracing::error!(error = %format!("{e:#}"), session = %s.id, "cannot mark an admin session's end as reported");
        }
    }
}

fn end_event(agent: &Agent, s: &AdminSession, ended: &crate::grants::Ended) -> AuditEventIn {
    let actor = match ended.by {
        EndedBy::User => format!("user:{}@{}", s.user, agent.enrolment.name),
        _ => format!("agent@{}", agent.enrolment.name),
    };
    // One id per session end, whoever reports it and however often: the server keeps it once.
    let digest = sha2::Sha256::digest(format!("{}:end", s.id));
    let id =
        uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes")).into_uuid();
    AuditEventIn {
        id: id.to_string(),
        at: now_ms(),
        actor,
        action: ended.by.action().into(),
        subject: format!("request:{}", s.id),
        data: serde_json::json!({ "user": s.user, "uid": s.uid, "starts": s.starts.to_string(),
            "expires": s.expires.to_string(), "ended_at": ended.at.to_string(),
            "ended_by": ended.by, "processes_killed": ended.killed }),
    }
}

/// Ends admin sessions past their expiry (and removes session rules nobody accounts for), then
/// reports every recorded end, whoever ended it.
pub(crate) async fn sweep_admin_sessions(agent: &Arc<Agent>, by: crate::grants::EndedBy) {
    let places = agent.places.clone();
    let swept = tokio::task::spawn_blocking(move || {
        // A ledger that cannot be read accounts for nothing: it is set aside (kept for a
        // person), and the sweep then removes every session rule and cgroup.
        let aside = places
            .read()
            .err()
            .map(|e| (format!("{e:#}"), places.set_aside_damaged()));
        (aside, places.sweep(Timestamp::now(), by))
    })
    .await;
    let swept = match swept {
        Ok((aside, swept)) => {
            if let Some((damage, moved)) = aside {
                let moved = match moved {
                    Ok(path) => path.display().to_string(),
                    Err(e) => format!("could not be moved aside: {e:#}"),
                };
                tracing::error!(%damage, %moved, "the admin-session ledger was damaged; every session rule is removed");
                let data =
                    serde_json::json!({ "error": damage, "set_aside": moved, "alert": true });
                if let Err(e) = agent.spool.lock().expect("spool lock").append_record(&[
                    crate::state::agent_event(agent, "session.ledger_damaged", data),
                ]) {
                    tracing::error!(error = %e, "cannot spool the ledger alert");
                }
                agent.spool_ready.notify_one();
            }
            Ok(swept)
        }
        Err(e) => Err(e),
    };
    match swept {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "cannot end expired admin sessions")
        }
        Err(e) => tracing::error!(error = %e, "the admin-session sweep failed"),
    }
    report_ends(agent).await;
}

/// Ends admin session `id` at `expires` while the agent lives (its reaper does the same if the
/// agent is gone by then).
pub(crate) fn end_on_time(agent: Arc<Agent>, expires: Timestamp) {
    tokio::spawn(async move {
        let left = expires.duration_since(Timestamp::now());
        if left.is_positive() {
            tokio::time::sleep(left.unsigned_abs()).await;
        }
        sweep_admin_sessions(&agent, crate::grants::EndedBy::Expiry).await;
    });
}
