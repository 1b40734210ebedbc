//! Running an allowed command for `elevate`: exactly the hashed file, as the name it was decided
//! on, with a clean environment, in the directory the decision says, with the caller's stdio or
//! a fresh pty; then relaying signals until it exits, and recording the end.
//!
//! Must never: start anything before its start is recorded, run a command nobody supervises, or
//! leave a root child running with the caller's terminal after the caller went away (unless the
//! policy lets it continue, and then without a terminal and only until `session_max`).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};

use super::connection::Connection;
use super::record;
use crate::os;
use crate::resolve::{Resolved, SECURE_PATH};
use crate::state::{Agent, Record};
use crate::users::Caller;

/// How long a command may take to stop after SIGTERM when its caller went away.
const GRACE: Duration = Duration::from_secs(5);

/// Where the command's stdin, stdout and stderr come from.
pub(super) enum Stdio {
    /// The caller's own descriptors (not a terminal).
    Caller([OwnedFd; 3]),
    /// A fresh pty, relayed by the client.
    Terminal,
}

/// The caller's working directory, as the kernel knows it (never as the frame claims it).
pub(super) struct CallerDir {
    pub pid: Option<i32>,
    /// The connecting process itself (SO_PEERPIDFD), where the kernel has it: proves that `pid`
    /// still names the caller when its directory is opened (the client could exit and leave the
    /// connection to a child, and the pid be reused).
    pub peer: os::process::PeerProcess,
    pub claimed: String,
}

/// Where the command runs: `/`, or the caller's own directory held open by descriptor (so a
/// rename or symlink swap after the check cannot move the command elsewhere).
pub(super) struct Workdir(Option<OwnedFd>);

/// How the decision says the command runs.
pub(super) struct Conditions {
    pub workdir: Workdir,
    /// `on_disconnect = "continue"`: the command outlives its client, up to `session_max`.
    pub keep_running: bool,
    pub session_max: Duration,
    /// Discovery mode: the command's facts, recorded with its end as a discovery event.
    pub discovery: Option<serde_json::Value>,
}

impl Workdir {
    /// The directory's name, for the audit trail.
    pub fn shown(&self) -> String {
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
    pub fn workdir(&self, keep: bool) -> Option<Workdir> {
        if !keep {
            return Some(Workdir(None));
        }
        let dir = os::fds::open_cwd_of(self.pid?).ok()?;
        // Checked after the open: still there now means the pid was the caller's at the open.
        if !self.peer.still_there() {
            return None;
        }
        os::fds::same_file(&dir, &self.claimed).then_some(Workdir(Some(dir)))
    }
}

/// What is about to run, and for whom.
pub(super) struct Job<'a> {
    pub caller: &'a Caller,
    /// The request's id.
    pub id: &'a str,
    pub record: Record,
    /// As the caller typed it (the program as its first word).
    pub argv: &'a [String],
    pub binary: &'a Resolved,
}

/// Records the start (on the server, when it keeps the record), then runs the command and
/// reports its end.
pub(super) async fn execute(
    agent: &Agent,
    conn: &mut Connection,
    job: Job<'_>,
    stdio: Stdio,
    how: &Conditions,
) {
    // The start is recorded before anything runs (for local decisions the caller spooled it
    // together with the decision).
    if let Record::Server = job.record {
        if let Err(e) = agent.upstream.start(job.id).await {
            return conn
                .refuse(Refusal::Audit, format!("{e}; nothing runs"))
                .await;
        }
    }
    let t_spawn = Instant::now();
    let Some((child, master)) = spawn(agent, conn, &job, stdio, how).await else {
        return;
    };
    // The agent's copies of the slave are gone; the client gets the master. The agent keeps
    // one only when the command may outlive the client (to drain its output then).
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
                let _ = os::process::signal(&fd, os::process::Signal::KILL);
                let _ = os::process::reap(&fd);
            }
            return conn
                .refuse(Refusal::Exec, format!("cannot supervise the command: {e}"))
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
        let data = serde_json::json!({ "on_disconnect": "continue", "stopped_after_secs": how.session_max.as_secs() });
        let event = record::event(agent, job.caller, "request.detached", job.id, data);
        if let Err(e) = record::spool_after_the_fact(agent, &[event]) {
            tracing::error!(error = %e, request = job.id, "cannot spool a detached command");
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
        let ended = (code, signal, None);
        record::discovery(agent, job.caller, job.id, facts.clone(), ended, t_spawn);
    }
    record::finish(agent, job.caller, job.id, &job.record, Ok((code, signal))).await;
}

/// Starts the command: the child, and the pty master when it runs on a fresh terminal. `None`
/// when it did not start (recorded, and the caller told why).
async fn spawn(
    agent: &Agent,
    conn: &mut Connection,
    job: &Job<'_>,
    stdio: Stdio,
    how: &Conditions,
) -> Option<(os::exec::Spawned, Option<OwnedFd>)> {
    let (fds, master, controlling_tty) = match stdio {
        Stdio::Caller(fds) => (fds, None, false),
        Stdio::Terminal => match os::pty::open_pair().and_then(|(master, slave)| {
            Ok(([slave.try_clone()?, slave.try_clone()?, slave], master))
        }) {
            Ok((fds, master)) => (fds, Some(master), true),
            Err(e) => {
                let why = Err(format!("no terminal: {e}"));
                record::finish(agent, job.caller, job.id, &job.record, why).await;
                let message = format!("cannot open a terminal for the command: {e}");
                conn.refuse(Refusal::Pty, message).await;
                return None;
            }
        },
    };
    // The program sees the name it was decided on (the path as typed, after the PATH
    // lookup), never a bare word that a multi-call program could read differently.
    let argv: Vec<String> = std::iter::once(job.binary.invoked.clone())
        .chain(job.argv.iter().skip(1).cloned())
        .collect();
    let child = os::exec::spawn(os::exec::ExactCommand {
        binary: &job.binary.file,
        argv: &argv,
        env: &environment(job.caller, job.id),
        cwd: how.workdir.0.as_ref(),
        stdio: fds,
        loginuid: job.caller.uid,
        script: job.binary.script,
        controlling_tty,
    });
    match child {
        Ok(child) => Some((child, master)),
        Err(e) => {
            let why = Err(format!("did not start: {e}"));
            record::finish(agent, job.caller, job.id, &job.record, why).await;
            let message = format!("{} could not be started: {e}", job.binary.path);
            conn.refuse(Refusal::Exec, message).await;
            None
        }
    }
}

/// The command's whole environment: nothing of the caller's but who asked.
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
    conn: &mut Connection,
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
    let _ = os::process::signal(pidfd.get_ref(), os::process::Signal::TERM);
    if tokio::time::timeout(GRACE, pidfd.readable()).await.is_err() {
        let _ = os::process::signal(pidfd.get_ref(), os::process::Signal::KILL);
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
            match guard.try_io(|fd| os::pty::discard(fd.get_ref(), &mut buf)) {
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
