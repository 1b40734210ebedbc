//! `elevate COMMAND`: the agent decides and runs the command itself. Read top-down: the stdio
//! that came with the request, resolve and decide ([`super::command`]), then either record the
//! local decision and run, or ask approvers ([`super::approvers`]) and run what they allowed
//! ([`super::execute`]).
//!
//! Must never: hand a root command the caller's terminal (terminals are only fresh ptys), run in
//! a directory the kernel cannot confirm, or run before its start is recorded.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use elevate_core::{Channel, Outcome};
use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};

use super::approvers::{self, Approved};
use super::command::{self, Decided};
use super::connection::{Connection, Peer};
use super::execute::{execute, CallerDir, Conditions, Job, Stdio};
use super::record;
use crate::os;
use crate::state::{Agent, Record};

/// What `elevate` asked for (the `Run` frame).
struct Asked {
    pub argv: Vec<String>,
    pub reason: Option<String>,
    /// The command wants a terminal (a fresh pty).
    pub interactive: bool,
    /// The directory the client says it is in (checked against the kernel's word).
    pub cwd: String,
}

impl Asked {
    /// What a `Run` frame asks for, and the protocol version it speaks.
    fn read(frame: ClientFrame) -> Option<(u32, Asked)> {
        let ClientFrame::Run {
            version,
            argv,
            reason,
            interactive,
            cwd,
        } = frame
        else {
            return None;
        };
        let asked = Asked {
            argv,
            reason,
            interactive,
            cwd,
        };
        Some((version, asked))
    }
}

/// Serves one `Run` frame (with the descriptors that came with it), to the command's exit.
pub(super) async fn run(
    agent: &Agent,
    conn: &mut Connection,
    peer: Peer,
    fds: Vec<OwnedFd>,
    frame: ClientFrame,
) {
    let Some((version, asked)) = Asked::read(frame) else {
        return conn.refuse(Refusal::Protocol, "expected a run frame").await;
    };
    if conn.other_version(version, "elevate").await {
        return;
    }
    let Some(stdio) = stdio(conn, fds, asked.interactive).await else {
        return;
    };
    let caller_dir = CallerDir {
        pid: peer.pid,
        peer: peer.process,
        claimed: asked.cwd,
    };
    let Some(caller) = command::caller(agent, conn, peer.uid).await else {
        return;
    };
    let Some(program) = command::program(conn, &asked.argv).await else {
        return;
    };
    let Some(binary) = command::resolved(conn, &caller, program).await else {
        return;
    };
    let reason = asked.reason;
    let decided = command::decided(
        agent,
        conn,
        caller,
        asked.argv,
        binary,
        reason,
        Channel::Native,
    );
    let Some(mut d) = decided.await else {
        return;
    };
    d.facts["cwd"] = caller_dir.claimed.clone().into();
    match d.decision.outcome {
        Outcome::Deny { .. } | Outcome::Auto => {
            decided_here(agent, conn, d, stdio, &caller_dir).await
        }
        Outcome::Approve(_) => after_approval(agent, conn, d, stdio, &caller_dir).await,
    }
}

/// The caller's stdin, stdout and stderr, or a fresh terminal; `None` when refused.
async fn stdio(conn: &mut Connection, fds: Vec<OwnedFd>, interactive: bool) -> Option<Stdio> {
    let Ok(stdio) = <[OwnedFd; 3]>::try_from(fds) else {
        let message = "stdin, stdout and stderr must come with the request";
        conn.refuse(Refusal::Stdio, message).await;
        return None;
    };
    if interactive {
        return Some(Stdio::Terminal);
    }
    if stdio
        .iter()
        .any(|fd| os::fds::may_reach_a_terminal(fd.as_fd()))
    {
        // A root command holding the user's own terminal (stdin, or a read-write stdout/stderr
        // a program may read keys from, or an O_PATH handle it could reopen as one) could be
        // fed keystrokes by anything else in the user's session: terminals are only ever
        // fresh ptys.
        let message = "a terminal came with a request that is not interactive; update elevate";
        conn.refuse(Refusal::Stdio, message).await;
        return None;
    }
    Some(Stdio::Caller(stdio))
}

/// Decided here, on the cached policy: recorded (with its start, when it may run), then run.
async fn decided_here(
    agent: &Agent,
    conn: &mut Connection,
    d: Decided,
    stdio: Stdio,
    caller_dir: &CallerDir,
) {
    let id = uuid::Uuid::now_v7().to_string();
    let constraints = &d.decision.constraints;
    let how = match d.decision.outcome {
        Outcome::Auto => match caller_dir.workdir(constraints.keep_caller_cwd) {
            Some(workdir) => Some(Conditions {
                workdir,
                keep_running: constraints.continue_on_disconnect,
                session_max: constraints.session_max.unsigned_abs(),
                discovery: record::discovery_facts(&d.decision, &d.facts, &d.view),
            }),
            None => return refuse_workdir(conn).await,
        },
        _ => None,
    };
    let running = how.as_ref().map(
        |how| serde_json::json!({ "sha256": d.binary.sha256, "workdir": how.workdir.shown() }),
    );
    let recorded = record::local_decision(agent, &d.caller, &id, d.facts, &d.view, running);
    if let Err(e) = recorded {
        return record::refuse_unrecorded(conn, e).await;
    }
    conn.send(&record::decided(&id, &d.view)).await;
    if let Some(how) = how {
        let job = Job {
            caller: &d.caller,
            id: &id,
            record: Record::Local,
            argv: &d.argv,
            binary: &d.binary,
        };
        execute(agent, conn, job, stdio, &how).await;
    }
}

/// Approvers must decide: asked through the server (or, offline, the helpdesk by phone), then
/// run as they allowed.
async fn after_approval(
    agent: &Agent,
    conn: &mut Connection,
    mut d: Decided,
    stdio: Stdio,
    caller_dir: &CallerDir,
) {
    // Shown to approvers: the directory the kernel says the caller is in.
    d.new.cwd = caller_dir.workdir(true).map(|w| w.shown());
    let asked = approvers::ask_or_helpdesk(agent, conn, &d.new, &d.decision, false);
    let Some(approved) = asked.await else {
        return;
    };
    let constraints = &d.decision.constraints;
    let (id, record, keep_cwd, keep_running, session_max) = match approved {
        Approved::Server(v) => (
            v.id,
            Record::Server,
            v.decision.keep_caller_cwd,
            v.decision.continue_on_disconnect,
            Duration::from_secs(v.decision.session_max_secs),
        ),
        // The helpdesk's code stands in for the approvers: recorded here, with the code,
        // before anything runs; the server hears of it when it can be reached.
        Approved::Offline(granted) => {
            let minutes = u64::from(granted.response.minutes);
            let running = serde_json::json!({ "sha256": d.binary.sha256 });
            let recorded =
                record::offline_grant(agent, &d.caller, &granted, d.facts, &d.view, running);
            if let Err(e) = recorded {
                return record::refuse_unrecorded(conn, e).await;
            }
            conn.send(&AgentFrame::Approved {
                request_id: granted.id.clone(),
                comment: Some("by the helpdesk's offline code".into()),
            })
            .await;
            let limit = constraints.session_max.unsigned_abs();
            (
                granted.id,
                Record::Local,
                constraints.keep_caller_cwd,
                constraints.continue_on_disconnect,
                limit.min(Duration::from_secs(minutes * 60)),
            )
        }
    };
    let Some(workdir) = caller_dir.workdir(keep_cwd) else {
        return refuse_workdir(conn).await;
    };
    let how = Conditions {
        workdir,
        keep_running,
        session_max,
        discovery: None,
    };
    let job = Job {
        caller: &d.caller,
        id: &id,
        record,
        argv: &d.argv,
        binary: &d.binary,
    };
    execute(agent, conn, job, stdio, &how).await;
}

async fn refuse_workdir(conn: &mut Connection) {
    let message = "your working directory could not be confirmed; nothing runs";
    conn.refuse(Refusal::Workdir, message).await;
}
