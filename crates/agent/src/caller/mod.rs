//! One caller, from the first frame to the exit status. Each stage is its own module, read in
//! the order a request meets them:
//!
//! 1. [`connection`]: the socket, who is at the other end (the kernel's word), the first frame;
//!    [`serve`] dispatches it.
//! 2. [`command`]: resolve and hash the program, decide on the cached signed policy.
//! 3. The front door acts on the decision: [`native`] (`elevate COMMAND`, the agent runs it) or
//!    [`sudo`] (sudo's plugins: check, finished, rejected; sudo runs it).
//! 4. [`approvers`]: ask the server when approvers must decide ([`offline`]: the helpdesk's
//!    code when it cannot be reached).
//! 5. [`execute`]: run exactly the hashed bytes, relay signals, report the exit.
//! 6. [`record`]: every step as an audit event, spooled before it takes effect.
//!
//! Admin sessions ([`admin_session`], with their timing and ends) and break glass
//! ([`break_glass`]) are asked for through the same connection.
//!
//! Must never: take identity from a frame, run anything when a step fails (every error ends
//! the connection with an `Error` frame and nothing started), or leave a root child running with
//! the caller's terminal after the caller went away.

use std::sync::Arc;

use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};
use tokio::net::UnixStream;

use crate::state::Agent;

mod admin_session;
mod approvers;
mod break_glass;
mod command;
mod connection;
mod execute;
mod native;
mod offline;
mod record;
mod sudo;

pub(crate) use admin_session::{end_disallowed, end_on_time, sweep_admin_sessions};
use connection::Connection;

/// Serves one connection, from its first frame to its end.
pub async fn serve(agent: Arc<Agent>, stream: UnixStream) {
    let Some((mut conn, peer)) = Connection::accept(stream) else {
        return;
    };
    let mut fds = Vec::new();
    let Some(first) = conn.first_frame(&mut fds).await else {
        return;
    };
    let conn = &mut conn;
    match first {
        frame @ ClientFrame::Run { .. } => native::run(&agent, conn, peer, fds, frame).await,
        frame @ ClientFrame::SudoCheck { .. } => sudo::check(&agent, conn, peer, frame).await,
        frame @ ClientFrame::SudoFinished { .. } => sudo::finished(&agent, conn, peer, frame).await,
        frame @ ClientFrame::SudoRejected { .. } => sudo::rejected(&agent, conn, peer, frame).await,
        ClientFrame::Session {
            version,
            duration_secs,
            reason,
        } => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            admin_session::open(&agent, conn, peer.uid, duration_secs, reason).await;
        }
        ClientFrame::BreakGlass { version, reason } => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            break_glass::open(&agent, conn, peer.uid, reason).await;
        }
        ClientFrame::EndSession { version } => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            admin_session::end(&agent, conn, peer.uid).await;
        }
        ClientFrame::Status => status(&agent, conn, peer.uid).await,
        ClientFrame::Requests => requests(&agent, conn, peer.uid).await,
        _ => {
            let message = "the first frame must be run or status";
            conn.refuse(Refusal::Protocol, message).await
        }
    }
}

/// `elevate status`: the agent's state, and the caller's own sessions, rights and requests.
async fn status(agent: &Agent, conn: &mut Connection, uid: u32) {
    let mut status = agent.status();
    status.admin_sessions = admin_session::summaries(agent, uid);
    if let Ok(caller) = agent.caller(uid) {
        status.standing_rights = agent.rights.summary(&caller.name, caller.uid);
        let pending = agent.upstream.requests(&caller.name, Some("pending")).await;
        status.open_requests = pending.ok().map(|r| r.len() as u64);
    }
    conn.send(&AgentFrame::Status(status)).await;
}

/// `elevate requests`: the caller's requests, as the server has them.
async fn requests(agent: &Agent, conn: &mut Connection, uid: u32) {
    let Some(caller) = command::caller(agent, conn, uid).await else {
        return;
    };
    match agent.upstream.requests(&caller.name, None).await {
        Ok(list) => {
            let requests = list
                .iter()
                .map(|r| elevate_proto::ipc::RequestSummary {
                    id: r.id.clone(),
                    created_at: r.created_at.to_string(),
                    state: r.state.clone(),
                    what: r.target.describe(),
                    approvers: r.decision.approvers.clone(),
                })
                .collect();
            conn.send(&AgentFrame::Requests { requests }).await;
        }
        Err(e) => conn.refuse(Refusal::Server, e.to_string()).await,
    }
}
