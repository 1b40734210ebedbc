//! `elevate --reason TEXT break-glass`: an emergency admin session on a device that cannot
//! reach the server, opened on codes from as many different helpdesk members as the policy says.
//!
//! Must never: open while the server can be reached (approvers decide then), without a reason,
//! or without `breakglass.used` (an alert, listed for review) on disk first.

use std::sync::Arc;

use jiff::SignedDuration;

use elevate_core::Channel;
use elevate_proto::ipc::{AgentFrame, Refusal};
use elevate_proto::v1::WireTarget;

use super::admin_session::{caller_and_policy, open_session, sessions_checked};
use super::approvers::new_request;
use super::connection::Connection;
use super::offline;
use super::record::{event, spool};
use crate::state::Agent;

/// `elevate --reason TEXT break-glass`: an emergency admin session on a device that cannot
/// reach the server, from codes of as many different helpdesk members as the policy says
/// (`[defaults] break_glass_codes`), as long as the shortest of their codes. Its use is an
/// alert (`breakglass.used`), and the server lists it for review.
pub(super) async fn open(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    uid: u32,
    reason: Option<String>,
) {
    let Some((caller, policy)) = caller_and_policy(agent, conn, uid).await else {
        return;
    };
    let Some(needed) = policy.policy.break_glass_codes() else {
        return conn
            .refuse(
                Refusal::BreakGlassOff,
                "break glass is off in this device's policy (`[defaults] break_glass_codes`); nothing is opened",
            )
            .await;
    };
    // Ask the server once more (the offline mark may be a refresh old): break glass is for
    // when it cannot be reached, and a server that answers at all decides.
    if server_reached(agent).await {
        return conn
            .refuse(
                Refusal::ServerReachable,
                "the server can be reached: ask for an admin session (`elevate --reason TEXT session 1h`) and approvers decide; break glass is for when it cannot be",
            )
            .await;
    }
    let Some(reason) = conn.reason(reason).await else {
        return; // refused already (too long)
    };
    let Some(reason) = reason else {
        return conn
            .refuse(
                Refusal::ReasonRequired,
                "break glass needs a reason: `elevate --reason TEXT break-glass`",
            )
            .await;
    };
    if !sessions_checked(agent, conn, "; no admin session is opened").await {
        return;
    }
    let target = WireTarget::Session { duration_secs: 0 };
    let new = new_request(&caller, target, Some(reason.clone()), Channel::Native, None);
    let Some(granted) = offline::answer(agent, conn, &new, offline::Want::Shares(needed)).await
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
                Refusal::Audit,
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

/// Whether the server answers now (within 10 s); the agent's online mark follows.
async fn server_reached(agent: &Agent) -> bool {
    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), agent.upstream.bundle());
    let reached = match asked.await {
        Ok(Err(crate::upstream::UpstreamError::Unreachable { .. })) | Err(_) => false,
        Ok(_) => true,
    };
    agent.mark_online(reached);
    reached
}
