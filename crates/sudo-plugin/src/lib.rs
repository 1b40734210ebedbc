//! Elevate's sudo plugin. sudo loads it from `/etc/sudo.conf` as an approval plugin: after
//! sudoers has accepted a command (and authenticated the user), sudo asks it whether the command
//! may run, and it asks the local agent (`elevated`), which decides on the signed policy, records
//! the decision and, when a human must decide, waits for the approvers. sudo runs the command
//! only on the agent's explicit `Allowed`.
//!
//! This file is the logic, tested without sudo; `ffi` is the C face sudo sees.
//!
//! Must never: allow on anything but `Allowed` from the agent (an unreachable agent, a
//! malformed answer, a closed connection all refuse), or take the user's identity from
//! anything sudo's caller controls (the agent reads it from the kernel).

pub mod ffi;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use elevate_core::text::visible;
use elevate_proto::ipc::{encode, AgentFrame, ClientFrame, FrameReader, Refusal, VERSION};

/// The agent's socket unless `socket=` is given in `sudo.conf`.
pub const DEFAULT_SOCKET: &str = "/run/elevate/agent.sock";

/// The value of `key` in one of sudo's `key=value` lists.
pub fn lookup<'a>(list: &'a [String], key: &str) -> Option<&'a str> {
    list.iter().find_map(|item| {
        item.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// What sudo is about to run, from the lists it hands the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub command: String,
    pub argv: Vec<String>,
    pub runas: String,
    pub cwd: String,
    pub tty: Option<String>,
    /// False for `sudo -n`.
    pub can_wait: bool,
    /// `sudo -s` / `sudo -i`: a root shell.
    pub shell: bool,
    /// Variables in the command's environment that would make it run other code.
    pub risky_env: Vec<String>,
}

/// Environment variables that make a program load or run code it was not given: the dynamic
/// loader's, glibc's (those it ignores for setuid programs) and common interpreters'.
const RISKY_ENV: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "RUBYLIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "GIT_EXEC_PATH",
];

/// The names in `run_envp` (`NAME=value`) that are risky.
pub fn risky_env(run_envp: &[String]) -> Vec<String> {
    let mut found: Vec<String> = run_envp
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .filter(|k| k.starts_with("LD_") || RISKY_ENV.contains(k))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

impl Ask {
    /// From `command_info` and `run_argv` (check) and `user_info` and `settings` (open).
    pub fn from_sudo(
        command_info: &[String],
        run_argv: &[String],
        run_envp: &[String],
        user_info: &[String],
        settings: &[String],
    ) -> Result<Ask, String> {
        let command = lookup(command_info, "command")
            .filter(|c| c.starts_with('/'))
            .ok_or("sudo did not say which command it runs")?
            .to_owned();
        if run_argv.is_empty() {
            return Err("sudo gave no arguments for the command".into());
        }
        // In a chroot sudo resolves and runs the command inside a tree the agent never saw
        // (and, with `sudo -R`, one the user chose): nothing to decide on.
        if lookup(command_info, "chroot").is_some_and(|root| !root.is_empty() && root != "/") {
            return Err(
                "sudo would run the command in a chroot, which Elevate cannot check; nothing runs"
                    .into(),
            );
        }
        Ok(Ask {
            command,
            argv: run_argv.to_vec(),
            runas: lookup(command_info, "runas_user")
                .unwrap_or("root")
                .to_owned(),
            cwd: lookup(user_info, "cwd").unwrap_or("/").to_owned(),
            tty: lookup(user_info, "tty").map(str::to_owned),
            can_wait: lookup(settings, "noninteractive") != Some("true"),
            shell: lookup(settings, "run_shell") == Some("true")
                || lookup(settings, "login_shell") == Some("true"),
            risky_env: risky_env(run_envp),
        })
    }
}

/// How the plugin talks to the person at sudo (sudo's conversation and printf functions).
pub trait Conversation {
    fn info(&mut self, message: &str);
    fn error(&mut self, message: &str);
    /// Asks for a line; `None` when nobody can answer.
    fn prompt(&mut self, message: &str) -> Option<String>;
    /// Asks for a helpdesk code (not echoed; works with a terminal, `sudo -S` and askpass).
    fn prompt_code(&mut self, message: &str) -> Option<String> {
        self.prompt(message)
    }
}

/// The plugin's answer to sudo: `check` returns 1, 0 or -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused by policy or an approver; the reason was shown.
    Deny,
    /// Something failed; nothing runs. The message is for sudo's error output.
    Error(String),
}

impl Verdict {
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Allow => 1,
            Verdict::Deny => 0,
            Verdict::Error(_) => -1,
        }
    }
}

/// How long the agent may take to answer anything but an approval.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a long wait for approvers is mentioned again.
const WAIT_NOTICE: Duration = Duration::from_secs(30);

/// What the plugin tells the person, with control and escape characters made visible
/// (`core::text::visible`): approvers' comments, deny messages and the agent's errors reach the
/// user's terminal, and must never drive it.
struct Visible<'a>(&'a mut dyn Conversation);

impl Conversation for Visible<'_> {
    fn info(&mut self, message: &str) {
        self.0.info(&visible(message));
    }

    fn error(&mut self, message: &str) {
        self.0.error(&visible(message));
    }

    fn prompt(&mut self, message: &str) -> Option<String> {
        self.0.prompt(&visible(message))
    }

    fn prompt_code(&mut self, message: &str) -> Option<String> {
        self.0.prompt_code(&visible(message))
    }
}

/// Asks the agent whether sudo may run `ask`.
pub fn check(socket: &Path, ask: &Ask, conv: &mut dyn Conversation) -> Verdict {
    match ask_agent(socket, ask, &mut Visible(conv)) {
        Verdict::Error(message) => Verdict::Error(visible(&message)),
        verdict => verdict,
    }
}

fn ask_agent(socket: &Path, ask: &Ask, conv: &mut dyn Conversation) -> Verdict {
    let mut reason = None;
    loop {
        match exchange(socket, ask, reason.clone(), conv) {
            Exchange::Done(v) => return v,
            Exchange::NeedReason(message) => {
                if reason.is_some() {
                    return Verdict::Error(message);
                }
                match conv.prompt("elevate: a reason is required for this command. Reason: ") {
                    Some(r) if !r.trim().is_empty() => reason = Some(r.trim().to_owned()),
                    _ => {
                        conv.error(&format!("elevate: {message}"));
                        return Verdict::Deny;
                    }
                }
            }
        }
    }
}

enum Exchange {
    Done(Verdict),
    NeedReason(String),
}

fn exchange(
    socket: &Path,
    ask: &Ask,
    reason: Option<String>,
    conv: &mut dyn Conversation,
) -> Exchange {
    let fail = |m: String| Exchange::Done(Verdict::Error(m));
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "elevate: the Elevate agent is not reachable at {} ({e}); sudo is refused until it runs",
                socket.display()
            ))
        }
    };
    // Only the agent (root) may answer for it: a socket someone else serves could say Allowed.
    match rustix::net::sockopt::socket_peercred(&stream) {
        Ok(peer) if peer.uid == rustix::process::geteuid() => {}
        Ok(peer) => {
            return fail(format!(
                "elevate: {} is served by uid {}, not by the Elevate agent; sudo is refused",
                socket.display(),
                peer.uid.as_raw()
            ))
        }
        Err(e) => {
            return fail(format!(
                "elevate: cannot check who serves {}: {e}",
                socket.display()
            ))
        }
    }
    let frame = ClientFrame::SudoCheck {
        version: VERSION,
        command: ask.command.clone(),
        argv: ask.argv.clone(),
        runas: ask.runas.clone(),
        cwd: ask.cwd.clone(),
        tty: ask.tty.clone(),
        reason,
        can_wait: ask.can_wait,
        shell: ask.shell,
        risky_env: ask.risky_env.clone(),
    };
    if let Err(e) = stream.write_all(&encode(&frame)) {
        return fail(format!("elevate: cannot ask the agent: {e}"));
    }
    let mut reader = FrameReader::new();
    let mut waiting = false;
    let mut last_notice = Instant::now();
    loop {
        // Waiting for approvers has no limit (the server expires requests); anything else does.
        let limit = if waiting { WAIT_TICK } else { ANSWER_TIMEOUT };
        let limit = Some(limit);
        let _ = stream.set_read_timeout(limit);
        let frame = match next(&mut stream, &mut reader) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return fail("elevate: the agent closed the connection; nothing runs".into())
            }
            // Closing the connection (on return) withdraws the request on the server.
            // Approvers take their time: look at WITHDRAW again and wait on.
            Err(e) if e == TICK && waiting => continue,
            Err(e) if e == WITHDRAWN => {
                conv.error("elevate: request withdrawn; nothing ran");
                return Exchange::Done(Verdict::Deny);
            }
            Err(e) => {
                return fail(format!(
                    "elevate: no answer from the agent ({e}); nothing runs"
                ))
            }
        };
        match frame {
            AgentFrame::Decided {
                outcome,
                message,
                approvers,
                request_id,
                explanation,
                ..
            } => match outcome.as_str() {
                "deny" => {
                    let why = message.unwrap_or(explanation);
                    conv.error(&format!("elevate: refused: {why}"));
                    return Exchange::Done(Verdict::Deny);
                }
                "approve" => {
                    waiting = true;
                    conv.info(&format!(
                        "elevate: waiting for approval by {} (request {request_id})",
                        approvers.as_deref().unwrap_or("an approver")
                    ));
                }
                _ => {}
            },
            AgentFrame::Waiting { elapsed_secs, .. } => {
                if last_notice.elapsed() >= WAIT_NOTICE {
                    last_notice = Instant::now();
                    conv.info(&format!("elevate: still waiting ({elapsed_secs} s)"));
                }
            }
            AgentFrame::Approved { comment, .. } => {
                waiting = false;
                match comment {
                    Some(c) => conv.info(&format!("elevate: approved: {c}")),
                    None => conv.info("elevate: approved"),
                }
            }
            AgentFrame::Denied { comment, .. } => {
                conv.error(&format!(
                    "elevate: denied{}",
                    comment.map(|c| format!(": {c}")).unwrap_or_default()
                ));
                return Exchange::Done(Verdict::Deny);
            }
            AgentFrame::Challenge {
                challenge,
                attempts_left,
                command,
                ..
            } => {
                waiting = true;
                let command = command
                    .map(|c| format!(" and this command, exactly: {c}"))
                    .unwrap_or_default();
                conv.info(&format!(
                    "elevate: the server cannot be reached, so the helpdesk decides by phone; read them this challenge: {challenge}{command} ({attempts_left} tries)"
                ));
                if let Err(e) = send_code(&mut stream, conv) {
                    return e;
                }
            }
            AgentFrame::CodeRefused {
                message,
                attempts_left,
            } => {
                conv.error(&format!("elevate: {message} ({attempts_left} tries left)"));
                if let Err(e) = send_code(&mut stream, conv) {
                    return e;
                }
            }
            AgentFrame::SessionOpened {
                expires,
                remaining_secs,
                ..
            } => conv.info(&format!(
                "elevate: admin session open for {} min (until {expires}); this shell ends with it",
                remaining_secs.div_ceil(60)
            )),
            AgentFrame::Allowed {
                request_id,
                cgroup,
                workdir,
            } => {
                // sudo runs the command where this process is when the policy's directory is
                // the user's own (it changes only to a directory other than the user's).
                if let Some(dir) = workdir {
                    if let Err(e) = std::env::set_current_dir(&dir) {
                        return fail(format!(
                            "elevate: cannot change to {dir} as the policy says ({e}); nothing runs"
                        ));
                    }
                }
                // In an admin session, sudo (and so the command it forks) joins the session's
                // cgroup, which is killed when the session ends: without it, nothing runs.
                if let Some(cgroup) = cgroup {
                    if let Err(e) = join_cgroup(Path::new(&cgroup)) {
                        return fail(format!(
                            "elevate: cannot join the admin session's cgroup {cgroup} ({e}); nothing runs"
                        ));
                    }
                }
                remember_allowed(request_id);
                return Exchange::Done(Verdict::Allow);
            }
            AgentFrame::Error {
                code: Refusal::ReasonRequired,
                message,
            } => return Exchange::NeedReason(message),
            AgentFrame::Error { message, .. } => {
                conv.error(&format!("elevate: {message}"));
                return Exchange::Done(Verdict::Deny);
            }
            other => {
                return fail(format!(
                    "elevate: unexpected answer from the agent ({other:?}); nothing runs"
                ))
            }
        }
    }
}

/// Reads the helpdesk's code through sudo's conversation and sends it to the agent.
fn send_code(stream: &mut UnixStream, conv: &mut dyn Conversation) -> Result<(), Exchange> {
    let Some(code) = conv
        .prompt_code("Response code: ")
        .filter(|c| !c.trim().is_empty())
    else {
        conv.error("elevate: no code was typed; nothing runs");
        return Err(Exchange::Done(Verdict::Deny));
    };
    let frame = ClientFrame::OfflineCode {
        code: code.trim().to_owned(),
    };
    stream.write_all(&encode(&frame)).map_err(|e| {
        Exchange::Done(Verdict::Error(format!(
            "elevate: cannot send the code to the agent: {e}"
        )))
    })
}

/// Moves this process (sudo) into `cgroup`: the command sudo forks next is born there.
fn join_cgroup(cgroup: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))?;
    procs.write_all(format!("{}\n", std::process::id()).as_bytes())
}

/// The request sudo was allowed to run, for the audit plugin's report of its end: both plugins
/// are this one module, loaded once into one sudo process.
static ALLOWED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn remember_allowed(request_id: String) {
    *ALLOWED.lock().unwrap_or_else(|p| p.into_inner()) = Some(request_id);
}

/// The request allowed in this sudo process, once.
pub fn take_allowed() -> Option<String> {
    ALLOWED.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Set (by the plugin's signal handler, see `ffi`) when the person at sudo presses Ctrl-C or
/// sudo is told to stop while the agent is being asked: the request is withdrawn.
pub static WITHDRAW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

const WITHDRAWN: &str = "withdrawn";
/// A wait for approvers wakes up this often to look at `WITHDRAW` (a signal that lands just
/// before the read starts does not interrupt it).
const WAIT_TICK: Duration = Duration::from_secs(1);
const TICK: &str = "timed out";

/// How sudo's command ended, from the audit plugin's `close(status_type, status)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signalled(i32),
    /// It could not be run (exec failed, or sudo itself failed).
    Failed(String),
}

impl End {
    /// From a wait status (`SUDO_PLUGIN_WAIT_STATUS`).
    pub fn from_wait_status(status: i32) -> End {
        if status & 0x7f == 0 {
            End::Exited((status >> 8) & 0xff)
        } else {
            End::Signalled(status & 0x7f)
        }
    }
}

/// Tells the agent how the command it allowed ended.
pub fn report_end(socket: &Path, request_id: String, end: End) -> Result<(), String> {
    let (exit_code, signal, error) = match end {
        End::Exited(c) => (Some(c), None, None),
        End::Signalled(s) => (None, Some(s), None),
        End::Failed(e) => (None, None, Some(e)),
    };
    report(
        socket,
        &ClientFrame::SudoFinished {
            version: VERSION,
            request_id,
            exit_code,
            signal,
            error,
        },
        false,
    )
}

/// Tells the agent that sudo itself refused (sudoers, authentication) or failed.
pub fn report_rejection(
    socket: &Path,
    command: Option<String>,
    argv: Vec<String>,
    message: String,
    error: bool,
) -> Result<(), String> {
    report(
        socket,
        &ClientFrame::SudoRejected {
            version: VERSION,
            command,
            argv,
            message,
            error,
        },
        true,
    )
}

/// Hands one report to the agent. The end of a command is not waited for: once the whole
/// frame is in the socket the agent reads it even after sudo has exited, and the user waiting on
/// sudo need not pay a round trip for a record of something already over. A refusal is waited
/// for, because the agent names the user from the live sudo process.
fn report(socket: &Path, frame: &ClientFrame, wait: bool) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    stream
        .write_all(&encode(frame))
        .map_err(|e| e.to_string())?;
    if !wait {
        let _ = stream.shutdown(std::net::Shutdown::Write);
        return Ok(());
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    match next(&mut stream, &mut FrameReader::new())? {
        Some(AgentFrame::Recorded) => Ok(()),
        Some(AgentFrame::Error { message, .. }) => Err(message),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

fn next(stream: &mut UnixStream, reader: &mut FrameReader) -> Result<Option<AgentFrame>, String> {
    loop {
        if let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
            return Ok(Some(frame));
        }
        // Checked before every wait, and after a wait a signal interrupted.
        if WITHDRAW.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(WITHDRAWN.into());
        }
        let mut buf = [0u8; 8192];
        match stream.read(&mut buf) {
            Ok(0) => {
                reader.finish().map_err(|e| e.to_string())?;
                return Ok(None);
            }
            Ok(n) => reader.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(TICK.into())
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
