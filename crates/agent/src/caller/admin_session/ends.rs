//! Admin-session timing and ends: the sweep that ends sessions past their expiry (and the
//! timer that runs it on time), ending sessions the policy in force no longer allows, and
//! turning every end the ledger holds into one audit event. The daemon's loops call these;
//! so do callers that end a session.
//!
//! Must never: leave a session rule or cgroup that no open session accounts for, or report one
//! end twice (an end's event id is derived from the session).

use std::sync::Arc;

use jiff::Timestamp;
use sha2::Digest as _;

use elevate_core::{decide, Channel, Outcome};
use elevate_proto::v1::AuditEventIn;

use super::super::record::{now_ms, spool};
use super::session_request;
use crate::grants::{AdminSession, EndedBy};
use crate::state::Agent;

/// Ends the open sessions that the policy in force would refuse now (a new policy version, a
/// user who left the group a rule names): a grant is only as good as the policy behind it.
pub(crate) async fn end_disallowed(agent: &Arc<Agent>) {
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return;
    };
    let now = Timestamp::now();
    let open: Vec<AdminSession> = agent
        .admin_sessions
        .read()
        .unwrap_or_default()
        .into_iter()
        // Break glass is the helpdesk's word against the policy: it ends on time, not on it.
        .filter(|s| s.is_open_at(now) && !s.break_glass)
        .collect();
    let mut ended = false;
    for s in open {
        let length = s.expires.duration_since(s.starts);
        let still = agent.caller(s.uid).ok().is_some_and(|caller| {
            let reason = Some("already granted".into());
            // A session no request could ask for any more is not allowed either.
            session_request(agent, &caller, length, reason, Channel::Native).is_ok_and(|request| {
                let decision = decide(&policy.policy, &request, now);
                !matches!(decision.policy_outcome, Outcome::Deny { .. })
            })
        });
        if !still {
            let places = agent.admin_sessions.clone();
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

/// Turns every end the ledger holds (by the agent, a reaper or a sweep) into one audit event,
/// and closes the request on the server for sessions the server approved.
pub(crate) async fn report_ends(agent: &Agent) {
    let _one_at_a_time = agent.session_reports.lock().await;
    // The ledger's lock may be held for a while (a reaper killing a session): off the runtime.
    let places = agent.admin_sessions.clone();
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
        let places = agent.admin_sessions.clone();
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
    let places = agent.admin_sessions.clone();
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
