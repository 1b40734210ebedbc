//! One caller, from the first frame to the exit status: identify (kernel peer credentials),
//! resolve and hash the binary, decide on the cached policy, ask the server when approvers must
//! decide, spool the audit events, run exactly the hashed bytes, relay signals, report the exit.
//!
//! Must never: take identity from the frame, run anything when a step fails (every error ends
//! the session with an `Error` frame and nothing started), or leave a root child running with
//! the caller's terminal after the caller went away.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use elevate_core::{decide, AccessRequest, Channel, CommandSpec, Mode, Outcome, Target};
use elevate_proto::ipc::{AgentFrame, ClientFrame, FrameError, FrameReader, VERSION};
use elevate_proto::v1::{AuditEventIn, DecisionView, NewRequest, RequestView, WireTarget};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::os;
use crate::state::{end_session_with, remember_sudo_run, Agent, Record};

mod admin;
mod offline;

use crate::resolve::{resolve, SECURE_PATH};
use crate::upstream::UpstreamError;
use crate::users::Caller;
pub(crate) use admin::{end_disallowed, end_on_time, sweep_admin_sessions};

use elevate_proto::limits::{MAX_LIST_BYTES, MAX_LIST_ITEMS, MAX_REASON};

/// The target as recorded in audit events: huge argument lists become their first arguments,
/// a count and a SHA-256 of the whole list, so one event never outgrows what the server ingests.
/// Measured as `elevate_proto::limits` measures lists (JSON bytes, items), so what is kept here
/// is never cut again.
fn audited(target: &WireTarget) -> serde_json::Value {
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

/// How long a client may take to send the first byte of its first frame.
const FIRST_BYTE: Duration = Duration::from_secs(3);
/// How long a client may take to send its whole first frame (at most `ipc::MAX_FRAME`).
const FIRST_FRAME: Duration = Duration::from_secs(5);
/// How long a command may take to stop after SIGTERM when its caller went away.
const GRACE: Duration = Duration::from_secs(5);

/// The socket with a frame buffer.
struct Conn {
    stream: UnixStream,
    reader: FrameReader,
}

impl Conn {
    /// The next frame and any descriptors that came with it; `None` at a clean end of stream.
    async fn read(&mut self, fds: &mut Vec<OwnedFd>) -> Result<Option<ClientFrame>, FrameError> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame));
            }
            let mut buf = [0u8; 8192];
            let n = loop {
                if self.stream.readable().await.is_err() {
                    return Err(FrameError::Truncated);
                }
                match self.stream.try_io(Interest::READABLE, || {
                    os::fds::recv_with_fds(self.stream.as_fd(), &mut buf, fds)
                }) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(FrameError::Malformed(e.to_string())),
                }
            };
            if n == 0 {
                self.reader.finish()?;
                return Ok(None);
            }
            self.reader.push(&buf[..n]);
        }
    }

    async fn send(&mut self, frame: &AgentFrame) {
        // A caller that went away cannot be told anything; the session ends at its next read.
        let _ = self
            .stream
            .write_all(&elevate_proto::ipc::encode(frame))
            .await;
    }

    /// Sends a frame with a descriptor attached.
    async fn send_with_fd(&mut self, frame: &AgentFrame, fd: &OwnedFd) -> std::io::Result<()> {
        let bytes = elevate_proto::ipc::encode(frame);
        loop {
            self.stream.writable().await?;
            match self.stream.try_io(Interest::WRITABLE, || {
                os::fds::send_with_fd(self.stream.as_fd(), &bytes, fd.as_fd())
            }) {
                Ok(n) => return self.stream.write_all(&bytes[n..]).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The reason as given (blank means none); `None` when it is too long (refused, said why).
    async fn checked_reason(&mut self, reason: Option<String>) -> Option<Option<String>> {
        let reason = reason.filter(|r| !r.trim().is_empty());
        if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            self.refuse(
                "reason_too_long",
                format!("a reason may be at most {MAX_REASON} bytes"),
            )
            .await;
            return None;
        }
        Some(reason)
    }

    /// Refuses a frame of another protocol version (`who` sent it); true when it did.
    async fn other_version(&mut self, version: u32, who: &str) -> bool {
        if version == VERSION {
            return false;
        }
        self.refuse(
            "version",
            format!("this agent speaks protocol {VERSION}, {who} {version}; update {who}"),
        )
        .await;
        true
    }

    async fn refuse(&mut self, code: &str, message: impl Into<String>) {
        self.send(&AgentFrame::Error {
            code: code.into(),
            message: message.into(),
        })
        .await;
    }
}

/// Serves one connection.
pub async fn serve(agent: Arc<Agent>, stream: UnixStream) {
    let Ok(cred) = stream.peer_cred() else {
        return;
    };
    let peer = os::process::peer_process(stream.as_fd());
    let mut conn = Conn {
        stream,
        reader: FrameReader::new(),
    };
    let mut fds = Vec::new();
    // A client has little time to start and to finish its first frame: a connection that
    // trickles (or a sudo stopped half-way) must not hold a session.
    let started = tokio::time::timeout(FIRST_BYTE, conn.stream.readable()).await;
    if !matches!(started, Ok(Ok(()))) {
        return conn.refuse("timeout", "no request arrived in time").await;
    }
    let first = tokio::time::timeout(FIRST_FRAME, conn.read(&mut fds)).await;
    match first {
        Ok(Ok(Some(ClientFrame::Run {
            version,
            argv,
            reason,
            interactive,
            cwd,
        }))) => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            let Ok(stdio) = <[OwnedFd; 3]>::try_from(std::mem::take(&mut fds)) else {
                return conn
                    .refuse(
                        "stdio",
                        "stdin, stdout and stderr must come with the request",
                    )
                    .await;
            };
            let stdio = if interactive {
                Stdio::Terminal
            } else if stdio
                .iter()
                .any(|fd| os::fds::may_reach_a_terminal(fd.as_fd()))
            {
                // A root command holding the user's own terminal (stdin, or a read-write
                // stdout/stderr a program may read keys from, or an O_PATH handle it could
                // reopen as one) could be fed keystrokes by anything else in the user's session:
                // terminals are only ever fresh ptys.
                return conn
                    .refuse(
                        "stdio",
                        "a terminal came with a request that is not interactive; update elevate",
                    )
                    .await;
            } else {
                Stdio::Caller(stdio)
            };
            let caller_dir = CallerDir {
                pid: cred.pid(),
                peer,
                claimed: cwd,
            };
            run(
                &agent,
                &mut conn,
                cred.uid(),
                argv,
                reason,
                Front::Native { stdio, caller_dir },
            )
            .await;
        }
        Ok(Ok(Some(ClientFrame::SudoCheck {
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
        }))) => {
            if conn.other_version(version, "the sudo plugin").await {
                return;
            }
            // Only a root process (sudo itself) may ask on a user's behalf, and the user is the
            // real uid the kernel keeps for that process, read while the process provably lives.
            if cred.uid() != 0 {
                return conn
                    .refuse(
                        "not_sudo",
                        "only sudo may ask on a user's behalf; use elevate",
                    )
                    .await;
            }
            let Some(uid) = sudo_user(&peer, &cred) else {
                return conn
                    .refuse(
                        "caller",
                        "cannot tell which user runs this sudo; nothing runs",
                    )
                    .await;
            };
            // sudo's connection already counts against the user who ran it (the daemon's
            // `accounted_uid`), waits for approvers included.
            // sudo runs `command` by its path after the decision: only a path nobody but root
            // can redirect may be decided on, and it must lead to the very file that is hashed.
            let canonical = match crate::resolve::root_controlled(&command) {
                Ok(p) => p.display().to_string(),
                Err(e) => {
                    let unverified = Unverified {
                        command: command.clone(),
                        argv,
                        runas,
                        cwd,
                        tty,
                        why: e.to_string(),
                    };
                    if record_unverified_in_discovery(&agent, &mut conn, uid, unverified, peer)
                        .await
                    {
                        return;
                    }
                    return conn
                        .refuse(
                            "sudo_path",
                            format!("sudo would run {command} by its path after the decision, and {e}; nothing runs (use elevate, which runs exactly the file it checked)"),
                        )
                        .await;
                }
            };
            let mut argv = argv;
            if let Some(first) = argv.first_mut() {
                // Decided on the path sudo resolved and will run.
                first.clone_from(&command);
            }
            let front = Front::Sudo {
                canonical,
                cwd,
                tty,
                runas,
                can_wait,
                peer,
                shell,
                risky_env,
            };
            run(&agent, &mut conn, uid, argv, reason, front).await;
        }
        Ok(Ok(Some(ClientFrame::SudoFinished {
            version,
            request_id,
            exit_code,
            signal,
            error,
        }))) => {
            if version != VERSION || cred.uid() != 0 {
                return conn
                    .refuse("not_sudo", "only sudo reports the end of its commands")
                    .await;
            }
            let known = agent
                .sudo_runs
                .lock()
                .expect("sudo runs lock")
                .remove(&request_id);
            let ends_session = known.as_ref().and_then(|r| r.ends_session.clone());
            let (caller, record, discovery) = match known {
                Some(run) => (
                    run.caller,
                    run.record,
                    run.discovery.map(|d| (d, run.allowed_at)),
                ),
                // The agent restarted since it allowed this command: record the end anyway,
                // for the user the kernel says ran sudo.
                None => match sudo_user(&peer, &cred).and_then(|uid| agent.caller(uid).ok()) {
                    Some(c) => (c, Record::Local, None),
                    None => return conn.refuse("caller", "cannot tell who ran this sudo").await,
                },
            };
            let outcome = match error {
                Some(e) => Err(e),
                None => Ok((exit_code, signal)),
            };
            if let Some((facts, started)) = discovery {
                let ended = (exit_code, signal, outcome.as_ref().err().cloned());
                record_discovery(&agent, &caller, &request_id, facts, ended, started);
            }
            finish(&agent, &caller, &request_id, &record, outcome).await;
            conn.send(&AgentFrame::Recorded).await;
            // The root shell that opened an admin session has ended: so does the session.
            if let Some(session) = ends_session {
                let places = agent.places.clone();
                let now = jiff::Timestamp::now();
                let ended = tokio::task::spawn_blocking(move || {
                    places.end(&session, crate::grants::EndedBy::User, now)
                })
                .await;
                if let Ok(Err(e)) = ended {
                    tracing::error!(error = %format!("{e:#}"), "cannot end the session of a finished shell");
                }
                admin::report_ends(&agent).await;
            }
        }
        Ok(Ok(Some(ClientFrame::SudoRejected {
            version,
            command,
            argv,
            message,
            error,
        }))) => {
            if version != VERSION || cred.uid() != 0 {
                return conn
                    .refuse("not_sudo", "only sudo reports its refusals")
                    .await;
            }
            let Some(caller) = sudo_user(&peer, &cred).and_then(|uid| agent.caller(uid).ok())
            else {
                return conn.refuse("caller", "cannot tell who ran this sudo").await;
            };
            let id = uuid::Uuid::now_v7().to_string();
            let action = if error { "sudo.error" } else { "sudo.rejected" };
            let data = serde_json::json!({ "user": caller.name, "uid": caller.uid,
                "command": command, "argv": argv, "message": message, "channel": "sudo" });
            if let Err(e) =
                spool_after_the_fact(&agent, &[event(&agent, &caller, action, &id, data)])
            {
                tracing::error!(error = %e, "cannot spool a sudo refusal");
            }
            conn.send(&AgentFrame::Recorded).await;
        }
        Ok(Ok(Some(ClientFrame::Session {
            version,
            duration_secs,
            reason,
        }))) => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            admin::open(&agent, &mut conn, cred.uid(), duration_secs, reason).await;
        }
        Ok(Ok(Some(ClientFrame::BreakGlass { version, reason }))) => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            admin::break_glass(&agent, &mut conn, cred.uid(), reason).await;
        }
        Ok(Ok(Some(ClientFrame::EndSession { version }))) => {
            if conn.other_version(version, "elevate").await {
                return;
            }
            admin::end(&agent, &mut conn, cred.uid()).await;
        }
        Ok(Ok(Some(ClientFrame::Status))) => {
            let mut status = agent.status();
            status.admin_sessions = admin::summaries(&agent, cred.uid());
            if let Ok(caller) = agent.caller(cred.uid()) {
                status.standing_rights = agent.rights.summary(&caller.name, caller.uid);
            }
            if let Ok(caller) = agent.caller(cred.uid()) {
                let pending = agent.upstream.requests(&caller.name, Some("pending")).await;
                status.open_requests = pending.ok().map(|r| r.len() as u64);
            }
            conn.send(&AgentFrame::Status(status)).await;
        }
        Ok(Ok(Some(ClientFrame::Requests))) => {
            let caller = match agent.caller(cred.uid()) {
                Ok(c) => c,
                Err(e) => return conn.refuse("unknown_user", format!("{e:#}")).await,
            };
            match agent.upstream.requests(&caller.name, None).await {
                Ok(list) => {
                    let requests = list.iter().map(summary).collect();
                    conn.send(&AgentFrame::Requests { requests }).await;
                }
                Err(e) => conn.refuse("server", e.to_string()).await,
            }
        }
        Ok(Ok(Some(_))) => {
            conn.refuse("protocol", "the first frame must be run or status")
                .await
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => conn.refuse("bad_frame", e.to_string()).await,
        Err(_) => conn.refuse("timeout", "no request arrived in time").await,
    }
}

fn summary(r: &RequestView) -> elevate_proto::ipc::RequestSummary {
    elevate_proto::ipc::RequestSummary {
        id: r.id.clone(),
        created_at: r.created_at.to_string(),
        state: r.state.clone(),
        what: r.target.describe(),
        approvers: r.decision.approvers.clone(),
    }
}

fn now_ms() -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond()).expect("valid time")
}

fn event(
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
fn decided(request_id: &str, view: &DecisionView) -> AgentFrame {
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
fn record_local_decision(
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
fn record_offline_grant(
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
    record_local_decision(agent, caller, &granted.id, facts, view, Some(running))
}

/// In discovery mode, what is kept of a command until its end: its facts and what enforcement
/// would have said.
fn discovery_facts(
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

/// One `discovery.command` event: the kept facts completed by how the command ended.
fn record_discovery(
    agent: &Agent,
    caller: &Caller,
    id: &str,
    mut facts: serde_json::Value,
    ended: (Option<i32>, Option<i32>, Option<String>),
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
fn spool(agent: &Agent, events: &[AuditEventIn]) -> std::io::Result<()> {
    agent.spool.lock().expect("spool lock").append(events)?;
    agent.spool_ready.notify_one();
    Ok(())
}

/// Appends events about something already over (an exit); the sender flushes them shortly.
fn spool_after_the_fact(agent: &Agent, events: &[AuditEventIn]) -> std::io::Result<()> {
    agent
        .spool
        .lock()
        .expect("spool lock")
        .append_after_the_fact(events)?;
    agent.spool_ready.notify_one();
    Ok(())
}

/// Where the command's stdin, stdout and stderr come from.
enum Stdio {
    /// The caller's own descriptors (not a terminal).
    Caller([OwnedFd; 3]),
    /// A fresh pty, relayed by the client.
    Terminal,
}

/// The caller's working directory, as the kernel knows it (never as the frame claims it).
struct CallerDir {
    pid: Option<i32>,
    /// The connecting process itself (SO_PEERPIDFD), where the kernel has it: proves that `pid`
    /// still names the caller when its directory is opened (the client could exit and leave the
    /// connection to a child, and the pid be reused).
    peer: os::process::PeerProcess,
    claimed: String,
}

/// Where the command runs: `/`, or the caller's own directory held open by descriptor (so a
/// rename or symlink swap after the check cannot move the command elsewhere).
struct Workdir(Option<OwnedFd>);

/// How the decision says the command runs.
struct Conditions {
    workdir: Workdir,
    /// `on_disconnect = "continue"`: the command outlives its client, up to `session_max`.
    keep_running: bool,
    session_max: Duration,
    /// Discovery mode: the command's facts, recorded with its end as a discovery event.
    discovery: Option<serde_json::Value>,
}

impl Workdir {
    /// The directory's name, for the audit trail.
    fn shown(&self) -> String {
        match &self.0 {
            Some(_) => std::fs::read_link(self.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "(unnamed)".into()),
            None => "/".into(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        match &self.0 {
            Some(fd) => format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)).into(),
            None => "/".into(),
        }
    }
}

impl CallerDir {
    /// `/` unless the policy keeps the caller's directory; then that directory, opened through
    /// `/proc/<pid>/cwd` and checked against what the client said. `None` if it cannot be confirmed.
    fn workdir(&self, keep: bool) -> Option<Workdir> {
        use rustix::fs::{fstat, open, stat, Mode, OFlags};
        if !keep {
            return Some(Workdir(None));
        }
        let pid = self.pid?;
        let dir = open(
            format!("/proc/{pid}/cwd").as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // Checked after the open: still there now means the pid was the caller's at the open.
        if !self.peer.still_there() {
            return None;
        }
        let real = fstat(&dir).ok()?;
        let named = stat(self.claimed.as_str()).ok()?;
        (real.st_dev == named.st_dev && real.st_ino == named.st_ino).then_some(Workdir(Some(dir)))
    }
}

/// The user who ran the sudo process at the other end of `conn`: its real uid as the kernel
/// keeps it, read while a pidfd proves the process is the one that connected.
fn sudo_user(peer: &os::process::PeerProcess, cred: &tokio::net::unix::UCred) -> Option<u32> {
    cred.pid()
        .and_then(|pid| os::process::real_uid(pid).ok())
        .filter(|_| peer.still_there())
}

/// What only the sudo front door knows about a request.
struct SudoSide {
    cwd: String,
    can_wait: bool,
    peer: os::process::PeerProcess,
    /// The user's open admin session: what the policy would ask approvers about runs at once,
    /// in the session's cgroup.
    session: Option<crate::grants::AdminSession>,
    /// A bare root shell (`sudo -s`/`-i`): within a session it is the session's shell, whatever
    /// the policy says of the shell as a command.
    shell: bool,
    /// The session was opened by this very shell (it ends with it).
    opened_here: bool,
}

/// A sudo command whose program the agent cannot vouch for (its path is not root's alone).
struct Unverified {
    command: String,
    argv: Vec<String>,
    runas: String,
    cwd: String,
    tty: Option<String>,
    why: String,
}

/// Discovery mode promises that sudo works exactly as before: a program the agent cannot vouch
/// for (a script the user owns, a folder others may write) is not decided on, but runs as
/// sudoers allows and is recorded as unverified (with the hash of what the file held when
/// asked). Returns false, deciding nothing, when the user is not in discovery mode.
async fn record_unverified_in_discovery(
    agent: &Agent,
    conn: &mut Conn,
    uid: u32,
    u: Unverified,
    peer: os::process::PeerProcess,
) -> bool {
    let Ok(caller) = agent.caller(uid) else {
        return false;
    };
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return false;
    };
    let subject = agent.subject(&caller);
    if policy.policy.mode_for(&subject) != Mode::Discover {
        return false;
    }
    // Described, not run by the agent: hashed off the runtime, never for long, never a FIFO.
    let path = u.command.clone();
    let hashed = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || crate::resolve::observed_sha256(&path)),
    )
    .await;
    let sha256 = match hashed {
        Ok(Ok(Some((digest, _)))) => Some(digest),
        _ => None,
    };
    let request = AccessRequest {
        subject,
        target: Target::Command(CommandSpec {
            path: u.command.clone(),
            invoked: None,
            sha256: sha256.clone(),
            package: None,
            args: u.argv.iter().skip(1).cloned().collect(),
        }),
        reason: None,
        channel: Channel::Sudo,
    };
    let decision = decide(&policy.policy, &request, jiff::Timestamp::now());
    if decision.mode != Mode::Discover || !matches!(decision.outcome, Outcome::Auto) {
        return false;
    }
    let mut view = DecisionView::from_decision(&decision, policy.version);
    view.explanation = format!(
        "{}; the program could not be verified ({}), so it is recorded, not decided on",
        view.explanation, u.why
    );
    let target = WireTarget::Command {
        path: u.command.clone(),
        invoked: None,
        sha256,
        package: None,
        args: u.argv.iter().skip(1).cloned().collect(),
    };
    let facts = serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
        "device": agent.enrolment.name, "target": audited(&target), "reason": null,
        "channel": "sudo", "cwd": u.cwd, "tty": u.tty, "runas": u.runas,
        "verified": false, "unverified_because": u.why });
    let id = uuid::Uuid::now_v7().to_string();
    let discovery = discovery_facts(&decision, &facts, &view);
    let running = serde_json::json!({ "channel": "sudo", "verified": false });
    if let Err(e) = record_local_decision(agent, &caller, &id, facts, &view, Some(running)) {
        conn.refuse(
            "audit",
            format!("cannot record the request ({e}); nothing runs"),
        )
        .await;
        return true;
    }
    conn.send(&decided(&id, &view)).await;
    remember_sudo_run(agent, &id, &caller, Record::Local, peer, discovery);
    let canonical = std::fs::canonicalize(&u.command)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| u.command.clone());
    agent.note_front_door_exec(caller.uid, &canonical);
    conn.send(&AgentFrame::Allowed {
        request_id: id,
        cgroup: None,
        // Discovery: sudo as before.
        workdir: None,
    })
    .await;
    true
}

/// Which front door a request came through.
enum Front {
    /// `elevate`: the agent runs the command.
    Native { stdio: Stdio, caller_dir: CallerDir },
    /// sudo's approval plugin: the agent decides and records; sudo runs the command.
    Sudo {
        /// Where sudo's path leads (only root can change that).
        canonical: String,
        cwd: String,
        tty: Option<String>,
        runas: String,
        can_wait: bool,
        /// The sudo process (while it lives, its command may still report an end).
        peer: os::process::PeerProcess,
        /// `sudo -s` / `sudo -i`.
        shell: bool,
        /// Variables in the command's environment that would make it run other code.
        risky_env: Vec<String>,
    },
}

async fn run(
    agent: &Arc<Agent>,
    conn: &mut Conn,
    uid: u32,
    argv: Vec<String>,
    reason: Option<String>,
    front: Front,
) {
    let t0 = Instant::now();
    let caller = match agent.caller(uid) {
        Ok(c) => c,
        Err(e) => return conn.refuse("unknown_user", format!("{e:#}")).await,
    };
    let Some(program) = argv.first() else {
        return conn.refuse("usage", "no command given").await;
    };
    let binary = match resolve(program) {
        Ok(b) => b,
        Err(e) => {
            if let Front::Sudo {
                cwd,
                tty,
                runas,
                peer,
                ..
            } = front
            {
                let unverified = Unverified {
                    command: program.clone(),
                    argv: argv.clone(),
                    runas,
                    cwd,
                    tty,
                    why: e.to_string(),
                };
                if record_unverified_in_discovery(agent, conn, uid, unverified, peer).await {
                    return;
                }
            }
            if !crate::resolve::caller_may_see(program, &caller) {
                return conn
                    .refuse(
                        "binary",
                        format!("{program} is not allowed (there is no such program, or you cannot see it)"),
                    )
                    .await;
            }
            return conn.refuse("binary", e.to_string()).await;
        }
    };
    if let Front::Sudo { canonical, .. } = &front {
        if binary.path != *canonical {
            return conn
                .refuse(
                    "sudo_path",
                    format!("{program} changed while it was checked; nothing runs"),
                )
                .await;
        }
    }
    let t_resolve = t0.elapsed();
    let package = agent
        .packages
        .lock()
        .expect("packages lock")
        .owner(&binary.path);
    let t_package = t0.elapsed();
    let Some(policy) = agent.policy.read().expect("policy lock").clone() else {
        return conn
            .refuse("no_policy", "this device has no verified policy yet (the server has not been reached since enrolment); nothing runs")
            .await;
    };
    let Some(reason) = conn.checked_reason(reason).await else {
        return;
    };
    // The name the program will see (`execute` gives it as argv[0]) is part of the request.
    let invoked = (binary.invoked != binary.path).then(|| binary.invoked.clone());
    let target = WireTarget::Command {
        path: binary.path.clone(),
        invoked: invoked.clone(),
        sha256: Some(binary.sha256.clone()),
        package: package.clone(),
        args: argv[1..].to_vec(),
    };
    let request = AccessRequest {
        subject: agent.subject(&caller),
        target: Target::Command(CommandSpec {
            path: binary.path.clone(),
            invoked,
            sha256: Some(binary.sha256.clone()),
            package,
            args: argv[1..].to_vec(),
        }),
        reason: reason.clone(),
        channel: match front {
            Front::Native { .. } => Channel::Native,
            Front::Sudo { .. } => Channel::Sudo,
        },
    };
    let mut decision = decide(&policy.policy, &request, jiff::Timestamp::now());
    stale_means_approval(agent, &policy, &mut decision);
    if decision.mode == Mode::Enforce
        && !matches!(decision.outcome, Outcome::Deny { .. })
        && decision.missing_reason(&request)
    {
        return conn
            .refuse(
                "reason_required",
                format!("a reason is required: {}", decision.explanation),
            )
            .await;
    }
    let t_decide = t0.elapsed();
    tracing::debug!(?t_resolve, ?t_package, ?t_decide, "timings");
    let view = DecisionView::from_decision(&decision, policy.version);
    let mut facts = serde_json::json!({ "user": caller.name, "uid": caller.uid, "groups": caller.groups,
        "device": agent.enrolment.name, "target": audited(&target), "reason": reason, "channel": "native" });
    let (stdio, caller_dir) = match front {
        Front::Native { stdio, caller_dir } => {
            facts["cwd"] = caller_dir.claimed.clone().into();
            (stdio, caller_dir)
        }
        Front::Sudo {
            canonical: _,
            cwd,
            tty,
            runas,
            can_wait,
            peer,
            shell,
            risky_env,
        } => {
            facts["channel"] = "sudo".into();
            // With these, the hashed program would run code nobody checked (sudo passes them
            // only where sudoers lets the user set the environment): refused in enforce mode,
            // recorded in discovery.
            if !risky_env.is_empty() {
                if decision.mode == Mode::Enforce {
                    return conn
                        .refuse(
                            "environment",
                            format!(
                                "sudo would hand {} to the command, which makes it run code that was never checked; nothing runs (leave them out, or ask for a rule that runs what you need)",
                                risky_env.join(", ")
                            ),
                        )
                        .await;
                }
                facts["risky_env"] = risky_env.into();
            }
            facts["cwd"] = cwd.clone().into();
            facts["tty"] = tty.into();
            facts["runas"] = runas.into();
            // Only a bare root shell counts as one: `sudo -s CMD` runs `$SHELL -c CMD`, and
            // $SHELL is the user's to choose, so a shell is a program listed in /etc/shells, run
            // as root with no arguments.
            let shell = shell
                && argv.len() == 1
                && facts["runas"] == "root"
                && crate::resolve::listed_shell(&binary.path);
            let mut session = agent.places.open_for(caller.uid, jiff::Timestamp::now());
            let mut opened_here = false;
            // A root shell (sudo -s, sudo -i) is how people have always asked for "admin for a
            // while": where the policy allows sessions, it opens one and lives in it, and the
            // session ends with the shell.
            if shell && session.is_none() {
                let asked =
                    admin::open_for_sudo_shell(agent, conn, &caller, reason.clone(), can_wait);
                match asked.await {
                    Ok(Some(opened)) => {
                        session = Some(opened);
                        opened_here = true;
                    }
                    Ok(None) => {}
                    Err(()) => return,
                }
            }
            return decide_for_sudo(
                agent,
                conn,
                &caller,
                &decision,
                &view,
                facts,
                &binary,
                target,
                reason,
                SudoSide {
                    cwd,
                    can_wait,
                    peer,
                    session,
                    shell,
                    opened_here,
                },
            )
            .await;
        }
    };
    match &decision.outcome {
        Outcome::Deny { .. } | Outcome::Auto => {
            let id = uuid::Uuid::now_v7().to_string();
            let workdir = match decision.outcome {
                Outcome::Auto => match caller_dir.workdir(decision.constraints.keep_caller_cwd) {
                    Some(w) => Some(Conditions {
                        workdir: w,
                        keep_running: decision.constraints.continue_on_disconnect,
                        session_max: decision.constraints.session_max.unsigned_abs(),
                        discovery: discovery_facts(&decision, &facts, &view),
                    }),
                    None => {
                        return conn
                            .refuse(
                                "workdir",
                                "your working directory could not be confirmed; nothing runs",
                            )
                            .await
                    }
                },
                _ => None,
            };
            let running = workdir.as_ref().map(|how| {
                serde_json::json!({ "sha256": binary.sha256, "workdir": how.workdir.shown() })
            });
            if let Err(e) = record_local_decision(agent, &caller, &id, facts, &view, running) {
                return conn
                    .refuse(
                        "audit",
                        format!("cannot record the request ({e}); nothing runs"),
                    )
                    .await;
            }
            conn.send(&decided(&id, &view)).await;
            if let Some(how) = workdir {
                execute(
                    agent,
                    conn,
                    &caller,
                    &id,
                    Record::Local,
                    &argv,
                    &binary,
                    stdio,
                    &how,
                )
                .await;
            }
        }
        Outcome::Approve(_) => {
            // Shown to approvers: the directory the kernel says the caller is in.
            let cwd = caller_dir.workdir(true).map(|w| w.shown());
            let new = new_request(&caller, target, reason, Channel::Native, cwd);
            let Some(approved) =
                ask_approvers_or_helpdesk(agent, conn, &new, &decision, false).await
            else {
                return;
            };
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
                    let running = serde_json::json!({ "sha256": binary.sha256 });
                    if let Err(e) =
                        record_offline_grant(agent, &caller, &granted, facts, &view, running)
                    {
                        return conn
                            .refuse(
                                "audit",
                                format!("cannot record the request ({e}); nothing runs"),
                            )
                            .await;
                    }
                    conn.send(&AgentFrame::Approved {
                        request_id: granted.id.clone(),
                        comment: Some("by the helpdesk's offline code".into()),
                    })
                    .await;
                    let limit = decision.constraints.session_max.unsigned_abs();
                    (
                        granted.id,
                        Record::Local,
                        decision.constraints.keep_caller_cwd,
                        decision.constraints.continue_on_disconnect,
                        limit.min(Duration::from_secs(minutes * 60)),
                    )
                }
            };
            let Some(workdir) = caller_dir.workdir(keep_cwd) else {
                return conn
                    .refuse(
                        "workdir",
                        "your working directory could not be confirmed; nothing runs",
                    )
                    .await;
            };
            let how = Conditions {
                workdir,
                keep_running,
                session_max,
                discovery: None,
            };
            execute(
                agent, conn, &caller, &id, record, &argv, &binary, stdio, &how,
            )
            .await;
        }
    }
}

/// A cached policy past its `offline_max_age` pre-approves nothing: what it would allow at once
/// needs an approver, or offline the helpdesk's code. Denials stay denials.
fn stale_means_approval(
    agent: &Agent,
    policy: &crate::cache::CachedPolicy,
    decision: &mut elevate_core::Decision,
) {
    if !matches!(decision.outcome, Outcome::Auto) {
        return;
    }
    if let Some(why) = agent.stale_policy(policy) {
        decision.outcome = Outcome::Approve(elevate_core::ApprovalRoute {
            approvers: policy.policy.default_approvers().to_owned(),
            count: 1,
            sla: None,
            escalate: None,
            expire: None,
            reauth: None,
        });
        decision.explanation = format!("{}; {why}", decision.explanation);
    }
}

/// The sudo front door: the decision is recorded (and, for an approval, waited for); sudo runs
/// the command only after `Allowed`.
#[allow(clippy::too_many_arguments)]
async fn decide_for_sudo(
    agent: &Agent,
    conn: &mut Conn,
    caller: &Caller,
    decision: &elevate_core::Decision,
    view: &DecisionView,
    facts: serde_json::Value,
    binary: &crate::resolve::Resolved,
    target: WireTarget,
    reason: Option<String>,
    sudo: SudoSide,
) {
    let SudoSide {
        cwd,
        can_wait,
        peer,
        session,
        shell,
        opened_here,
    } = sudo;
    let denied = matches!(decision.outcome, Outcome::Deny { .. });
    if let (Some(session), true) = (session, shell || !denied) {
        // Within an admin session the policy's approvals are given; its denials of commands
        // still hold (a root shell is the session itself).
        let id = uuid::Uuid::now_v7().to_string();
        let mut view = view.clone();
        view.outcome = "auto".into();
        view.explanation = format!(
            "admin session {} is open until {}; {}",
            session.id, session.expires, view.explanation
        );
        let running = serde_json::json!({ "sha256": binary.sha256, "channel": "sudo",
            "admin_session": session.id });
        if let Err(e) = record_local_decision(agent, caller, &id, facts, &view, Some(running)) {
            if opened_here {
                // No shell will run in it: the session it opened goes at once.
                let places = agent.places.clone();
                let ended = session.id.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    places.end(
                        &ended,
                        crate::grants::EndedBy::Failed,
                        jiff::Timestamp::now(),
                    )
                })
                .await;
                admin::report_ends(agent).await;
            }
            return conn
                .refuse(
                    "audit",
                    format!("cannot record the request ({e}); nothing runs"),
                )
                .await;
        }
        conn.send(&decided(&id, &view)).await;
        remember_sudo_run(agent, &id, caller, Record::Local, peer, None);
        if opened_here {
            end_session_with(agent, &id, &session.id);
        }
        agent.note_front_door_exec(caller.uid, &binary.path);
        conn.send(&AgentFrame::Allowed {
            request_id: id,
            cgroup: Some(session.cgroup.display().to_string()),
            // An admin session is sudo as before, in the caller's directory.
            workdir: None,
        })
        .await;
        return;
    }
    match &decision.outcome {
        Outcome::Deny { .. } | Outcome::Auto => {
            let id = uuid::Uuid::now_v7().to_string();
            let allowed = matches!(decision.outcome, Outcome::Auto);
            let running =
                allowed.then(|| serde_json::json!({ "sha256": binary.sha256, "channel": "sudo" }));
            // Discovery: what ran, kept until its end, to report it as one discovery event.
            let discovery = discovery_facts(decision, &facts, view);
            if let Err(e) = record_local_decision(agent, caller, &id, facts, view, running) {
                return conn
                    .refuse(
                        "audit",
                        format!("cannot record the request ({e}); nothing runs"),
                    )
                    .await;
            }
            conn.send(&decided(&id, view)).await;
            if allowed {
                remember_sudo_run(agent, &id, caller, Record::Local, peer, discovery);
                agent.note_front_door_exec(caller.uid, &binary.path);
                conn.send(&AgentFrame::Allowed {
                    request_id: id,
                    cgroup: None,
                    workdir: sudo_workdir(decision, decision.constraints.keep_caller_cwd),
                })
                .await;
            }
        }
        Outcome::Approve(_) if !can_wait => {
            conn.refuse(
                "approval_needed",
                format!(
                    "this needs an approver ({}); sudo -n cannot wait: run it without -n, or use elevate",
                    view.approvers.as_deref().unwrap_or("see the policy")
                ),
            )
            .await;
        }
        Outcome::Approve(_) => {
            let new = new_request(caller, target, reason, Channel::Sudo, Some(cwd));
            let Some(approved) =
                ask_approvers_or_helpdesk(agent, conn, &new, decision, false).await
            else {
                return;
            };
            let (id, record, keep_cwd) = match approved {
                Approved::Server(approved) => {
                    if let Err(e) = agent.upstream.start(&approved.id).await {
                        return conn.refuse("audit", format!("{e}; nothing runs")).await;
                    }
                    (
                        approved.id,
                        Record::Server,
                        approved.decision.keep_caller_cwd,
                    )
                }
                // The helpdesk's code, typed through sudo's conversation: recorded here first.
                Approved::Offline(granted) => {
                    let running = serde_json::json!({ "sha256": binary.sha256, "channel": "sudo" });
                    if let Err(e) =
                        record_offline_grant(agent, caller, &granted, facts, view, running)
                    {
                        return conn
                            .refuse(
                                "audit",
                                format!("cannot record the request ({e}); nothing runs"),
                            )
                            .await;
                    }
                    (
                        granted.id,
                        Record::Local,
                        decision.constraints.keep_caller_cwd,
                    )
                }
            };
            remember_sudo_run(agent, &id, caller, record, peer, None);
            agent.note_front_door_exec(caller.uid, &binary.path);
            conn.send(&AgentFrame::Allowed {
                request_id: id,
                cgroup: None,
                workdir: sudo_workdir(decision, keep_cwd),
            })
            .await;
        }
    }
}

/// Where sudo runs a command: `/` unless the rule keeps the caller's directory, as for
/// `elevate`; in discovery mode sudo works as before (`None`: sudo's own choice).
fn sudo_workdir(decision: &elevate_core::Decision, keep_caller_cwd: bool) -> Option<String> {
    (decision.mode == Mode::Enforce && !keep_caller_cwd).then(|| "/".to_owned())
}

/// The request approvers are asked about, for `caller`.
fn new_request(
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
enum Approved {
    /// The approvers, through the server.
    Server(Box<RequestView>),
    /// The helpdesk, by phone, with an offline code (the server could not be reached).
    Offline(offline::Granted),
}

/// Creates the request on the server and waits for the approvers. `Some` when it may run.
async fn ask_approvers(agent: &Agent, conn: &mut Conn, new: &NewRequest) -> Option<RequestView> {
    match ask(agent, conn, new, None).await? {
        Approved::Server(view) => Some(*view),
        Approved::Offline(_) => None,
    }
}

/// As [`ask_approvers`], and when the server cannot be reached the helpdesk may answer by
/// phone, where the decision allows it (a rule's `offline = false` does not). `session`: what
/// is asked for is an admin session.
async fn ask_approvers_or_helpdesk(
    agent: &Agent,
    conn: &mut Conn,
    new: &NewRequest,
    decision: &elevate_core::Decision,
    session: bool,
) -> Option<Approved> {
    let offline = decision.constraints.offline_codes.then_some(session);
    ask(agent, conn, new, offline).await
}

async fn ask(
    agent: &Agent,
    conn: &mut Conn,
    new: &NewRequest,
    offline_session: Option<bool>,
) -> Option<Approved> {
    let view = match agent.upstream.create_request(new).await {
        Ok(v) => v,
        Err(e @ UpstreamError::Unreachable { .. }) => {
            agent.mark_online(false);
            if let Some(session) = offline_session {
                return offline::answer(agent, conn, new, offline::Want::One { session })
                    .await
                    .map(Approved::Offline);
            }
            conn.refuse(
                "server_unreachable",
                format!("this needs an approver, and {e}; nothing ran"),
            )
            .await;
            return None;
        }
        Err(UpstreamError::Refused { code, message, .. }) => {
            conn.refuse(&code, message).await;
            return None;
        }
    };
    let d = &view.decision;
    conn.send(&decided(&view.id, d)).await;
    let started = Instant::now();
    let mut current = view;
    loop {
        // The approvers' last word, and whether they were asked at all (the server may have
        // decided on its own, with a newer policy).
        let comment = current
            .approvals
            .iter()
            .rev()
            .find_map(|a| a.comment.clone());
        match current.state.as_str() {
            "approved" => {
                if current.decision.outcome == "approve" {
                    conn.send(&AgentFrame::Approved {
                        request_id: current.id.clone(),
                        comment,
                    })
                    .await;
                }
                return Some(Approved::Server(Box::new(current)));
            }
            "denied" => {
                if current.decision.outcome == "approve" {
                    conn.send(&AgentFrame::Denied {
                        request_id: current.id.clone(),
                        comment,
                    })
                    .await;
                }
                return None;
            }
            "pending" => {}
            other => {
                conn.refuse(other, format!("the request is {other}; nothing ran"))
                    .await;
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
                    conn.refuse("cancelled", "the request was withdrawn").await;
                }
                return None;
            }
        }
    }
}

fn environment(caller: &Caller, request_id: &str) -> Vec<(String, String)> {
    [
        ("PATH", SECURE_PATH),
        ("HOME", "/root"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SHELL", "/bin/sh"),
        ("LANG", "C.UTF-8"),
        ("ELEVATE_REQUESTER", caller.name.as_str()),
        ("ELEVATE_REQUEST_ID", request_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    agent: &Agent,
    conn: &mut Conn,
    caller: &Caller,
    id: &str,
    record: Record,
    argv: &[String],
    binary: &crate::resolve::Resolved,
    stdio: Stdio,
    how: &Conditions,
) {
    // The start is recorded before anything runs (for local decisions the caller spooled it
    // together with the decision).
    let recorded = match record {
        Record::Local => Ok(()),
        Record::Server => agent
            .upstream
            .start(id)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = recorded {
        return conn.refuse("audit", format!("{e}; nothing runs")).await;
    }
    let env = environment(caller, id);
    let t_spawn = Instant::now();
    let (fds, master, controlling_tty) = match stdio {
        Stdio::Caller(fds) => (fds, None, false),
        Stdio::Terminal => {
            let pair = os::pty::open_pair().and_then(|(master, slave)| {
                Ok(([slave.try_clone()?, slave.try_clone()?, slave], master))
            });
            match pair {
                Ok((fds, master)) => (fds, Some(master), true),
                Err(e) => {
                    finish(agent, caller, id, &record, Err(format!("no terminal: {e}"))).await;
                    return conn
                        .refuse(
                            "pty",
                            format!("cannot open a terminal for the command: {e}"),
                        )
                        .await;
                }
            }
        }
    };
    // The program sees the name it was decided on (the path as typed, after the PATH
    // lookup), never a bare word that a multi-call program could read differently.
    let argv: Vec<String> = std::iter::once(binary.invoked.clone())
        .chain(argv.iter().skip(1).cloned())
        .collect();
    let child = os::exec::spawn(os::exec::ExactCommand {
        binary: &binary.file,
        argv: &argv,
        env: &env,
        cwd: how.workdir.0.as_ref(),
        stdio: fds,
        loginuid: caller.uid,
        script: binary.script,
        controlling_tty,
    });
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            finish(
                agent,
                caller,
                id,
                &record,
                Err(format!("did not start: {e}")),
            )
            .await;
            return conn
                .refuse("exec", format!("{} could not be started: {e}", binary.path))
                .await;
        }
    };
    // The agent's copies of the slave are gone with `fds`; the client gets the master. The
    // agent keeps one only when the command may outlive the client (to drain its output then).
    let mut kept_terminal = None;
    if let Some(master) = master {
        if let Err(e) = conn.send_with_fd(&AgentFrame::Terminal, &master).await {
            tracing::warn!(error = %e, "cannot hand the terminal to the caller");
        }
        if how.keep_running {
            kept_terminal = Some(master);
        }
    }
    tracing::debug!(spawn = ?t_spawn.elapsed(), "spawned");
    let pidfd = match os::process::watch_exit(child.pidfd) {
        Ok(pidfd) => pidfd,
        Err(e) => {
            // Not watchable: the command must not run unsupervised. The pidfd went with the
            // failed registration, so a fresh one (the child is not reaped yet) stops it.
            if let Ok(fd) = os::process::pidfd_of_child(child.pid) {
                let _ = os::process::signal(&fd, rustix::process::Signal::KILL);
                let _ = os::process::reap(&fd);
            }
            return conn
                .refuse("exec", format!("cannot supervise the command: {e}"))
                .await;
        }
    };
    conn.send(&AgentFrame::Started {
        pid: child.pid as i32,
    })
    .await;
    let detach = Detach {
        keep_running: how.keep_running,
        deadline: tokio::time::Instant::from_std(t_spawn) + how.session_max,
        terminal: kept_terminal,
    };
    if let Some(detach) = supervise(conn, &pidfd, detach).await {
        let event = event(
            agent,
            caller,
            "request.detached",
            id,
            serde_json::json!({ "on_disconnect": "continue", "stopped_after_secs": how.session_max.as_secs() }),
        );
        if let Err(e) = spool_after_the_fact(agent, &[event]) {
            tracing::error!(error = %e, request = id, "cannot spool a detached command");
        }
        wait_detached(&pidfd, detach).await;
    }
    let (code, signal) = match os::process::reap(pidfd.get_ref()) {
        Ok(ended) => (ended.code, ended.signal),
        Err(e) => {
            tracing::error!(error = %e, "wait failed");
            (None, None)
        }
    };
    tracing::debug!(until_exit = ?t_spawn.elapsed(), "exited");
    // The exit already happened: tell the caller first, then record it.
    conn.send(&AgentFrame::Exited { code, signal }).await;
    if let Some(facts) = &how.discovery {
        record_discovery(
            agent,
            caller,
            id,
            facts.clone(),
            (code, signal, None),
            t_spawn,
        );
    }
    finish(agent, caller, id, &record, Ok((code, signal))).await;
}

/// What happens to the command once its client has gone away.
struct Detach {
    keep_running: bool,
    /// A detached command is stopped at this point (its grant's `session_max`).
    deadline: tokio::time::Instant,
    /// The pty master, kept when the command may outlive the client.
    terminal: Option<OwnedFd>,
}

/// Relays signals until the child exits. If the caller goes away, either stops the child (the
/// default) or, when the policy lets it continue, hands back the `Detach` to wait on.
async fn supervise(
    conn: &mut Conn,
    pidfd: &tokio::io::unix::AsyncFd<OwnedFd>,
    detach: Detach,
) -> Option<Detach> {
    let mut ignored = Vec::new();
    loop {
        tokio::select! {
            ready = pidfd.readable() => {
                if let Ok(mut guard) = ready {
                    guard.retain_ready();
                }
                return None;
            }
            frame = conn.read(&mut ignored) => match frame {
                Ok(Some(ClientFrame::Signal { signo })) => {
                    if let Some(sig) = os::process::forwardable(signo) {
                        let _ = os::process::signal(pidfd.get_ref(), sig);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) if detach.keep_running => return Some(detach),
                // The caller is gone: the command must not live on with its terminal.
                Ok(None) | Err(_) => {
                    stop(pidfd).await;
                    return None;
                }
            }
        }
    }
}

/// TERM, a grace period, then KILL; returns once the child has ended.
async fn stop(pidfd: &tokio::io::unix::AsyncFd<OwnedFd>) {
    let _ = os::process::signal(pidfd.get_ref(), rustix::process::Signal::TERM);
    if tokio::time::timeout(GRACE, pidfd.readable()).await.is_err() {
        let _ = os::process::signal(pidfd.get_ref(), rustix::process::Signal::KILL);
    }
    let _ = pidfd.readable().await;
}

/// A command that outlives its client: its terminal (if any) is drained and thrown away, so it
/// never blocks on output nobody reads, and it is stopped at the deadline.
async fn wait_detached(pidfd: &tokio::io::unix::AsyncFd<OwnedFd>, detach: Detach) {
    let drain = async {
        let Some(master) = detach.terminal else {
            return std::future::pending().await;
        };
        let Ok(master) = os::pty::readable_master(master) else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 4096];
        loop {
            let Ok(mut guard) = master.readable().await else {
                break;
            };
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut buf)?)) {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) | Err(_) => {}
            }
        }
        // The terminal is closed (EIO once the command closed its side): just wait now.
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = pidfd.readable() => {}
        _ = drain => {}
        _ = tokio::time::sleep_until(detach.deadline) => stop(pidfd).await,
    }
}

async fn finish(
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
