//! Asking the server when approvers must decide: the request is created there, the caller hears
//! each step (`Decided`, `Waiting`, `Approved`/`Denied`), and a caller who cancels or goes away
//! withdraws it. When the server cannot be reached the helpdesk may answer by phone
//! ([`super::offline`]) where the decision allows it.
//!
//! Must never: let a request go ahead that the server has not approved (or a helpdesk code has
//! not answered), or leave a request pending on the server for a caller who is gone.

use std::time::{Duration, Instant};

use elevate_core::Channel;
use elevate_proto::grant::{Expected, GrantError};
use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};
use elevate_proto::v1::{NewRequest, RequestView, WireTarget};

use super::connection::Connection;
use super::offline;
use super::record::decided;
use crate::state::Agent;
use crate::upstream::UpstreamError;
use crate::users::Caller;

/// The request approvers are asked about, for `caller`: the one wire shape from which the
/// agent also builds the request its own policy decides on (`NewRequest::to_core`, as the
/// server does).
pub(super) fn new_request(
    caller: &Caller,
    target: WireTarget,
    reason: Option<String>,
    channel: Channel,
    cwd: Option<String>,
) -> NewRequest {
    NewRequest {
        user: caller.name.clone(),
        uid: caller.uid,
        groups: caller.groups.clone(),
        target,
        reason,
        channel,
        cwd,
    }
}

/// Who let a request go ahead.
pub(super) enum Approved {
    /// The approvers, through the server.
    Server(Box<RequestView>),
    /// The helpdesk, by phone, with an offline code (the server could not be reached).
    Offline(offline::Granted),
}

/// Creates the request on the server and waits for the approvers. `Some` when it may run.
pub(super) async fn ask(
    agent: &Agent,
    conn: &mut Connection,
    new: &NewRequest,
) -> Option<RequestView> {
    match ask_with(agent, conn, new, Err(String::new())).await? {
        Approved::Server(view) => Some(*view),
        Approved::Offline(_) => None,
    }
}

/// As [`ask`], and when the server cannot be reached the helpdesk may answer by phone, where
/// the decision allows it (a rule's `offline = false` does not). `session`: what is asked for
/// is an admin session.
pub(super) async fn ask_or_helpdesk(
    agent: &Agent,
    conn: &mut Connection,
    new: &NewRequest,
    decision: &elevate_core::Decision,
    session: bool,
) -> Option<Approved> {
    let offline = match &decision.policy_outcome {
        _ if decision.constraints.offline_codes => Ok(session),
        elevate_core::Outcome::Approve(route) if route.count > 1 => Err(format!(
            "the rule needs {} different approvers, and one helpdesk code cannot stand in for them",
            route.count
        )),
        _ => Err("the rule takes no offline codes".to_owned()),
    };
    ask_with(agent, conn, new, offline).await
}

/// `offline`: whether the helpdesk's codes may stand in when the server cannot be reached (for
/// an admin session: `true`), or why not.
async fn ask_with(
    agent: &Agent,
    conn: &mut Connection,
    new: &NewRequest,
    offline: Result<bool, String>,
) -> Option<Approved> {
    let view = match agent.upstream.create_request(new).await {
        Ok(v) => v,
        Err(e @ UpstreamError::Unreachable { .. }) => {
            agent.mark_online(false);
            let why = match offline {
                Ok(session) => {
                    return offline::answer(agent, conn, new, offline::Want::One { session })
                        .await
                        .map(Approved::Offline)
                }
                Err(why) if why.is_empty() => why,
                Err(why) => format!("; {why}"),
            };
            conn.refuse(
                Refusal::ServerUnreachable,
                format!("this needs an approver, and {e}{why}; nothing ran"),
            )
            .await;
            return None;
        }
        Err(UpstreamError::Refused { code, message, .. }) => {
            conn.refuse(Refusal::Other(code), message).await;
            return None;
        }
    };
    conn.send(&decided(&view.id, &view.decision)).await;
    wait(agent, conn, view, new).await
}

/// The server's grant for approved request `view`, checked against the key this device pinned
/// and against its own request (`new`); the limits the device applies are the grant's.
fn verified(agent: &Agent, view: &mut RequestView, new: &NewRequest) -> Result<(), GrantError> {
    let expected = Expected {
        request_id: &view.id,
        device: &agent.enrolment.name,
        user: &new.user,
        uid: new.uid,
        target: &new.target,
        now: jiff::Timestamp::now(),
    };
    let grant = view.grant.as_ref().ok_or(GrantError::Missing)?;
    let p = grant.verify(&agent.key, &expected)?;
    view.decision.session_max_secs = p.session_max_secs;
    view.decision.keep_caller_cwd = p.keep_caller_cwd;
    view.decision.continue_on_disconnect = p.continue_on_disconnect;
    Ok(())
}

/// Waits for the approvers' word on `current`, telling the caller each step.
async fn wait(
    agent: &Agent,
    conn: &mut Connection,
    mut current: RequestView,
    new: &NewRequest,
) -> Option<Approved> {
    let started = Instant::now();
    loop {
        // The approvers' last word, and whether they were asked at all (the server may have
        // decided on its own, with a newer policy).
        let comment = current
            .approvals
            .iter()
            .rev()
            .find_map(|a| a.comment.clone());
        let asked = current.decision.outcome == "approve";
        let request_id = current.id.clone();
        match current.state.as_str() {
            "approved" => {
                // Whatever the response says, only the server's signature approves.
                if let Err(e) = verified(agent, &mut current, new) {
                    tracing::error!(error = %e, request = %current.id, "an approval that does not verify");
                    // Withdrawn, so that nobody approves what will never run.
                    let _ = agent.upstream.cancel(&current.id).await;
                    let message = format!("{e}; nothing ran");
                    conn.refuse(Refusal::ApprovalUnverified, message).await;
                    return None;
                }
                if asked {
                    conn.send(&AgentFrame::Approved {
                        request_id,
                        comment,
                    })
                    .await;
                }
                return Some(Approved::Server(Box::new(current)));
            }
            "denied" => {
                if asked {
                    conn.send(&AgentFrame::Denied {
                        request_id,
                        comment,
                    })
                    .await;
                }
                return None;
            }
            "pending" => {}
            other => {
                let message = format!("the request is {other}; nothing ran");
                conn.refuse(Refusal::Other(other.to_owned()), message).await;
                return None;
            }
        }
        let mut ignored = Vec::new();
        tokio::select! {
            answer = agent.upstream.wait(&current.id, 20) => match answer {
                Ok(v) => {
                    current = v;
                    if current.state == "pending" {
                        conn.send(&AgentFrame::Waiting { request_id: current.id.clone(), elapsed_secs: started.elapsed().as_secs() }).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for approval failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            },
            frame = conn.read(&mut ignored) => {
                // Cancel, or the caller went away (Ctrl-C): withdraw the request.
                let _ = agent.upstream.cancel(&current.id).await;
                if matches!(frame, Ok(Some(ClientFrame::Cancel))) {
                    conn.refuse(Refusal::Cancelled, "the request was withdrawn").await;
                }
                return None;
            }
        }
    }
}
