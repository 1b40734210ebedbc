//! The sudo front door: sudo's approval plugin asks (`check`), the agent decides and records,
//! and sudo runs the command only after `Allowed`; sudo's audit plugin reports how it ended
//! (`finished`) or that sudo refused it (`rejected`). Read top-down: who ran sudo, whether its
//! path can be vouched for, resolve and decide ([`super::command`]), sudo's own facts (its
//! environment, a root shell, an open admin session), then allowed, denied or asked.
//!
//! Must never: take a request from anything but a root process (sudo), decide for anyone but the
//! real uid the kernel keeps for that process, or decide on a path someone other than root could
//! redirect between the decision and sudo's exec.

use std::sync::Arc;

use elevate_core::{Channel, Mode, Outcome};
use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};

use super::admin_session;
use super::approvers::{self, Approved};
use super::command::{self, Decided};
use super::connection::{Connection, Peer};
use super::record;
use crate::grants::AdminSession;
use crate::os::process::PeerProcess;
use crate::state::{end_session_with, remember_sudo_run, Agent, Record};

mod ended;
mod unverified;
pub(super) use ended::{finished, rejected};
use unverified::unverified_in_discovery;

/// What sudo's approval plugin asks about (the `SudoCheck` frame).
struct Check {
    /// The path sudo resolved and will run.
    pub command: String,
    pub argv: Vec<String>,
    pub runas: String,
    pub cwd: String,
    pub tty: Option<String>,
    pub reason: Option<String>,
    /// sudo can wait for approvers (not `sudo -n`).
    pub can_wait: bool,
    /// `sudo -s` / `sudo -i`.
    pub shell: bool,
    /// Variables in the command's environment that would make it run other code.
    pub risky_env: Vec<String>,
}

impl Check {
    /// What a `SudoCheck` frame asks, and the protocol version it speaks.
    fn read(frame: ClientFrame) -> Option<(u32, Check)> {
        let ClientFrame::SudoCheck {
            version,
            command,
            argv,
            runas,
            cwd,
            tty,
            reason,
            can_wait,
            shell,
            risky_env,
        } = frame
        else {
            return None;
        };
        let ask = Check {
            command,
            argv,
            runas,
            cwd,
            tty,
            reason,
            can_wait,
            shell,
            risky_env,
        };
        Some((version, ask))
    }
}

/// Decides one command for sudo; answers `Allowed` when sudo may run it.
pub(super) async fn check(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    peer: Peer,
    frame: ClientFrame,
) {
    let Some((version, ask)) = Check::read(frame) else {
        return conn
            .refuse(Refusal::Protocol, "expected a sudo_check frame")
            .await;
    };
    if conn.other_version(version, "the sudo plugin").await {
        return;
    }
    let Some(Vouched {
        uid,
        canonical,
        ask,
        peer,
    }) = vouched(agent, conn, peer, ask).await
    else {
        return;
    };
    let Some(caller) = command::caller(agent, conn, uid).await else {
        return;
    };
    let mut argv = ask.argv.clone();
    if let Some(first) = argv.first_mut() {
        // Decided on the path sudo resolved and will run.
        first.clone_from(&ask.command);
    }
    let Some(program) = command::program(conn, &argv).await else {
        return;
    };
    let binary = match crate::resolve::resolve(program) {
        Ok(b) => b,
        Err(e) => {
            let program = program.to_owned();
            let unverified = Check {
                command: program.clone(),
                argv: argv.clone(),
                ..ask
            };
            let why = e.to_string();
            if unverified_in_discovery(agent, conn, uid, unverified, why, peer.process).await {
                return;
            }
            return command::refuse_unresolved(conn, &caller, &program, e).await;
        }
    };
    if binary.path != canonical {
        let message = format!("{program} changed while it was checked; nothing runs");
        return conn.refuse(Refusal::SudoPath, message).await;
    }
    let reason = ask.reason.clone();
    let decided = command::decided(agent, conn, caller, argv, binary, reason, Channel::Sudo);
    let Some(d) = decided.await else {
        return;
    };
    let Some(d) = sudo_facts(conn, d, &ask).await else {
        return;
    };
    answer(agent, conn, peer, d, ask).await;
}

/// A sudo request the agent can decide on.
struct Vouched {
    /// The user who ran sudo.
    uid: u32,
    /// Where the path sudo will run leads (only root can change that).
    canonical: String,
    ask: Check,
    peer: Peer,
}

/// Who ran sudo (the real uid of the root process at the other end) and where the path sudo
/// will run leads, when only root could redirect it. `None` when not (the caller answered:
/// refused, or in discovery mode recorded as unverified and let go as sudo always did).
async fn vouched(agent: &Agent, conn: &mut Connection, peer: Peer, ask: Check) -> Option<Vouched> {
    // Only a root process (sudo itself) may ask on a user's behalf, and the user is the real
    // uid the kernel keeps for that process, read while the process provably lives.
    if peer.uid != 0 {
        let message = "only sudo may ask on a user's behalf; use elevate";
        conn.refuse(Refusal::NotSudo, message).await;
        return None;
    }
    let Some(uid) = peer.sudo_user() else {
        let message = "cannot tell which user runs this sudo; nothing runs";
        conn.refuse(Refusal::Caller, message).await;
        return None;
    };
    // sudo's connection already counts against the user who ran it (the daemon's
    // `accounted_uid`), waits for approvers included.
    // sudo runs `command` by its path after the decision: only a path nobody but root can
    // redirect may be decided on, and it must lead to the very file that is hashed.
    match crate::resolve::root_controlled(&ask.command) {
        Ok(p) => Some(Vouched {
            uid,
            canonical: p.display().to_string(),
            ask,
            peer,
        }),
        Err(e) => {
            let why = e.to_string();
            let command = ask.command.clone();
            if !unverified_in_discovery(agent, conn, uid, ask, why, peer.process).await {
                let message = format!("sudo would run {command} by its path after the decision, and {e}; nothing runs (use elevate, which runs exactly the file it checked)");
                conn.refuse(Refusal::SudoPath, message).await;
            }
            None
        }
    }
}

/// Answers sudo on a decided command: within the caller's admin session, decided here, or
/// after approvers.
async fn answer(agent: &Arc<Agent>, conn: &mut Connection, peer: Peer, d: Decided, ask: Check) {
    let (session, opened_here) = match admin_session_for(agent, conn, &d, &ask).await {
        Ok(found) => found,
        Err(()) => return,
    };
    let denied = matches!(d.decision.outcome, Outcome::Deny { .. });
    let shell = is_shell(&d, &ask);
    let sudo = SudoSide {
        cwd: ask.cwd,
        can_wait: ask.can_wait,
        peer: peer.process,
    };
    match session {
        // Within an admin session the policy's approvals are given; its denials of commands
        // still hold (a root shell is the session itself).
        Some(session) if shell || !denied => {
            in_admin_session(agent, conn, d, sudo.peer, session, opened_here).await
        }
        _ => match d.decision.outcome {
            Outcome::Deny { .. } | Outcome::Auto => decided_here(agent, conn, d, sudo).await,
            Outcome::Approve(_) => after_approval(agent, conn, d, sudo).await,
        },
    }
}

/// What only sudo knows, added to the request's facts; with variables that would make the
/// hashed program run code nobody checked (sudo passes them only where sudoers lets the user
/// set the environment), refused in enforce mode and recorded in discovery.
async fn sudo_facts(conn: &mut Connection, mut d: Decided, ask: &Check) -> Option<Decided> {
    d.facts["channel"] = "sudo".into();
    if !ask.risky_env.is_empty() {
        if d.decision.mode == Mode::Enforce {
            let message = format!(
                "sudo would hand {} to the command, which makes it run code that was never checked; nothing runs (leave them out, or ask for a rule that runs what you need)",
                ask.risky_env.join(", ")
            );
            conn.refuse(Refusal::Environment, message).await;
            return None;
        }
        d.facts["risky_env"] = ask.risky_env.clone().into();
    }
    d.facts["cwd"] = ask.cwd.clone().into();
    d.facts["tty"] = ask.tty.clone().into();
    d.facts["runas"] = ask.runas.clone().into();
    Some(d)
}

/// Only a bare root shell counts as one: `sudo -s CMD` runs `$SHELL -c CMD`, and $SHELL is the
/// user's to choose, so a shell is a program listed in /etc/shells, run as root with no
/// arguments.
fn is_shell(d: &Decided, ask: &Check) -> bool {
    ask.shell
        && d.argv.len() == 1
        && ask.runas == "root"
        && crate::resolve::listed_shell(&d.binary.path)
}

/// The caller's open admin session, and whether this very shell opened it. A root shell
/// (`sudo -s`, `sudo -i`) is how people have always asked for "admin for a while": where the
/// policy allows sessions, it opens one and lives in it, and the session ends with the shell.
/// `Err(())` when the caller was already answered.
async fn admin_session_for(
    agent: &Arc<Agent>,
    conn: &mut Connection,
    d: &Decided,
    ask: &Check,
) -> Result<(Option<AdminSession>, bool), ()> {
    let open = agent
        .admin_sessions
        .open_for(d.caller.uid, jiff::Timestamp::now());
    if open.is_some() || !is_shell(d, ask) {
        return Ok((open, false));
    }
    let reason = d.new.reason.clone();
    let asked = admin_session::open_for_sudo_shell(agent, conn, &d.caller, reason, ask.can_wait);
    Ok(match asked.await? {
        Some(opened) => (Some(opened), true),
        None => (None, false),
    })
}

/// What the answer to sudo needs beyond the decision.
struct SudoSide {
    cwd: String,
    can_wait: bool,
    /// The sudo process (while it lives, its command may still report an end).
    peer: PeerProcess,
}

/// Allowed by the caller's open admin session: recorded, and sudo runs the command in the
/// session's cgroup, as sudo always did.
async fn in_admin_session(
    agent: &Agent,
    conn: &mut Connection,
    d: Decided,
    peer: PeerProcess,
    session: AdminSession,
    opened_here: bool,
) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut view = d.view.clone();
    view.outcome = "auto".into();
    view.explanation = format!(
        "admin session {} is open until {}; {}",
        session.id, session.expires, view.explanation
    );
    let running = serde_json::json!({ "sha256": d.binary.sha256, "channel": "sudo",
        "admin_session": session.id });
    let recorded = record::local_decision(agent, &d.caller, &id, d.facts, &view, Some(running));
    if let Err(e) = recorded {
        if opened_here {
            // No shell will run in it: the session it opened goes at once.
            admin_session::end_failed(agent, &session.id).await;
        }
        return record::refuse_unrecorded(conn, e).await;
    }
    conn.send(&record::decided(&id, &view)).await;
    remember_sudo_run(agent, &id, &d.caller, Record::Local, peer, None);
    if opened_here {
        end_session_with(agent, &id, &session.id);
    }
    agent.note_front_door_exec(d.caller.uid, &d.binary.path);
    conn.send(&AgentFrame::Allowed {
        request_id: id,
        cgroup: Some(session.cgroup.display().to_string()),
        // An admin session is sudo as before, in the caller's directory.
        workdir: None,
    })
    .await;
}

/// Decided here, on the cached policy: recorded, and allowed or not.
async fn decided_here(agent: &Agent, conn: &mut Connection, d: Decided, sudo: SudoSide) {
    let id = uuid::Uuid::now_v7().to_string();
    let allowed = matches!(d.decision.outcome, Outcome::Auto);
    let running =
        allowed.then(|| serde_json::json!({ "sha256": d.binary.sha256, "channel": "sudo" }));
    // Discovery: what ran, kept until its end, to report it as one discovery event.
    let discovery = record::discovery_facts(&d.decision, &d.facts, &d.view);
    let recorded = record::local_decision(agent, &d.caller, &id, d.facts, &d.view, running);
    if let Err(e) = recorded {
        return record::refuse_unrecorded(conn, e).await;
    }
    conn.send(&record::decided(&id, &d.view)).await;
    if allowed {
        remember_sudo_run(agent, &id, &d.caller, Record::Local, sudo.peer, discovery);
        agent.note_front_door_exec(d.caller.uid, &d.binary.path);
        let workdir = workdir(&d.decision, d.decision.constraints.keep_caller_cwd);
        conn.send(&AgentFrame::Allowed {
            request_id: id,
            cgroup: None,
            workdir,
        })
        .await;
    }
}

/// Approvers must decide: asked through the server (or, offline, the helpdesk by phone, the
/// code typed through sudo's conversation) while sudo waits.
async fn after_approval(agent: &Agent, conn: &mut Connection, mut d: Decided, sudo: SudoSide) {
    if !sudo.can_wait {
        let message = format!(
            "this needs an approver ({}); sudo -n cannot wait: run it without -n, or use elevate",
            d.view.approvers.as_deref().unwrap_or("see the policy")
        );
        return conn.refuse(Refusal::ApprovalNeeded, message).await;
    }
    d.new.cwd = Some(sudo.cwd);
    let asked = approvers::ask_or_helpdesk(agent, conn, &d.new, &d.decision, false);
    let Some(approved) = asked.await else {
        return;
    };
    let (id, record, keep_cwd) = match approved {
        Approved::Server(approved) => {
            if let Err(e) = agent.upstream.start(&approved.id).await {
                return conn
                    .refuse(Refusal::Audit, format!("{e}; nothing runs"))
                    .await;
            }
            let keep_cwd = approved.decision.keep_caller_cwd;
            (approved.id, Record::Server, keep_cwd)
        }
        // The helpdesk's code, typed through sudo's conversation: recorded here first.
        Approved::Offline(granted) => {
            let running = serde_json::json!({ "sha256": d.binary.sha256, "channel": "sudo" });
            let recorded =
                record::offline_grant(agent, &d.caller, &granted, d.facts, &d.view, running);
            if let Err(e) = recorded {
                return record::refuse_unrecorded(conn, e).await;
            }
            let keep_cwd = d.decision.constraints.keep_caller_cwd;
            (granted.id, Record::Local, keep_cwd)
        }
    };
    remember_sudo_run(agent, &id, &d.caller, record, sudo.peer, None);
    agent.note_front_door_exec(d.caller.uid, &d.binary.path);
    conn.send(&AgentFrame::Allowed {
        request_id: id,
        cgroup: None,
        workdir: workdir(&d.decision, keep_cwd),
    })
    .await;
}

/// Where sudo runs a command: `/` unless the rule keeps the caller's directory, as for
/// `elevate`; in discovery mode sudo works as before (`None`: sudo's own choice).
fn workdir(decision: &elevate_core::Decision, keep_caller_cwd: bool) -> Option<String> {
    (decision.mode == Mode::Enforce && !keep_caller_cwd).then(|| "/".to_owned())
}
