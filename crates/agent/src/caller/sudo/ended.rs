//! What sudo's audit plugin reports: how a command it ran ended (`SudoFinished`), or that sudo
//! refused or failed on one by itself (`SudoRejected`, sudoers or a wrong password).
//!
//! Must never: take a report from anything but a root process, or record it for anyone but
//! the user the kernel says ran sudo (or the one the agent allowed the command for).

use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal, VERSION};

use super::super::admin_session;
use super::super::connection::{Connection, Peer};
use super::super::record;
use crate::state::{Agent, Record};

/// How a command sudo ran ended (the `SudoFinished` frame).
struct Finished {
    pub version: u32,
    pub request_id: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
}

impl Finished {
    fn read(frame: ClientFrame) -> Option<Finished> {
        let ClientFrame::SudoFinished {
            version,
            request_id,
            exit_code,
            signal,
            error,
        } = frame
        else {
            return None;
        };
        Some(Finished {
            version,
            request_id,
            exit_code,
            signal,
            error,
        })
    }
}

/// Records the end of a command sudo ran; a root shell that opened an admin session ends it.
pub(in crate::caller) async fn finished(
    agent: &Agent,
    conn: &mut Connection,
    peer: Peer,
    frame: ClientFrame,
) {
    let Some(end) = Finished::read(frame) else {
        return conn
            .refuse(Refusal::Protocol, "expected a sudo_finished frame")
            .await;
    };
    if end.version != VERSION || peer.uid != 0 {
        let message = "only sudo reports the end of its commands";
        return conn.refuse(Refusal::NotSudo, message).await;
    }
    let known = agent
        .sudo_runs
        .lock()
        .expect("sudo runs lock")
        .remove(&end.request_id);
    let ends_session = known.as_ref().and_then(|r| r.ends_session.clone());
    let (caller, record, discovery) = match known {
        Some(run) => (
            run.caller,
            run.record,
            run.discovery.map(|d| (d, run.allowed_at)),
        ),
        // The agent restarted since it allowed this command: record the end anyway, for the
        // user the kernel says ran sudo.
        None => match peer.sudo_user().and_then(|uid| agent.caller(uid).ok()) {
            Some(c) => (c, Record::Local, None),
            None => {
                let message = "cannot tell who ran this sudo";
                return conn.refuse(Refusal::Caller, message).await;
            }
        },
    };
    let outcome = match end.error {
        Some(e) => Err(e),
        None => Ok((end.exit_code, end.signal)),
    };
    let id = &end.request_id;
    if let Some((facts, started)) = discovery {
        let ended = (end.exit_code, end.signal, outcome.as_ref().err().cloned());
        record::discovery(agent, &caller, id, facts, ended, started);
    }
    record::finish(agent, &caller, id, &record, outcome).await;
    conn.send(&AgentFrame::Recorded).await;
    // The root shell that opened an admin session has ended: so does the session.
    if let Some(session) = ends_session {
        admin_session::end_with_shell(agent, &session).await;
    }
}

/// A command sudo refused (the `SudoRejected` frame).
struct Rejected {
    pub version: u32,
    /// The command as sudo saw it, when it knew.
    pub command: Option<String>,
    pub argv: Vec<String>,
    pub message: String,
    /// sudo failed, rather than refused.
    pub error: bool,
}

impl Rejected {
    fn read(frame: ClientFrame) -> Option<Rejected> {
        let ClientFrame::SudoRejected {
            version,
            command,
            argv,
            message,
            error,
        } = frame
        else {
            return None;
        };
        Some(Rejected {
            version,
            command,
            argv,
            message,
            error,
        })
    }
}

/// Records a command sudo itself refused (sudoers, a wrong password) or failed on.
pub(in crate::caller) async fn rejected(
    agent: &Agent,
    conn: &mut Connection,
    peer: Peer,
    frame: ClientFrame,
) {
    let Some(what) = Rejected::read(frame) else {
        return conn
            .refuse(Refusal::Protocol, "expected a sudo_rejected frame")
            .await;
    };
    if what.version != VERSION || peer.uid != 0 {
        let message = "only sudo reports its refusals";
        return conn.refuse(Refusal::NotSudo, message).await;
    }
    let Some(caller) = peer.sudo_user().and_then(|uid| agent.caller(uid).ok()) else {
        let message = "cannot tell who ran this sudo";
        return conn.refuse(Refusal::Caller, message).await;
    };
    let id = uuid::Uuid::now_v7().to_string();
    let action = if what.error {
        "sudo.error"
    } else {
        "sudo.rejected"
    };
    let data = serde_json::json!({ "user": caller.name, "uid": caller.uid,
        "command": what.command, "argv": what.argv, "message": what.message, "channel": "sudo" });
    let event = record::event(agent, &caller, action, &id, data);
    if let Err(e) = record::spool_after_the_fact(agent, &[event]) {
        tracing::error!(error = %e, "cannot spool a sudo refusal");
    }
    conn.send(&AgentFrame::Recorded).await;
}
