//! Talking to the agent: send the request with our stdin, stdout and stderr attached, then follow
//! its frames (decision, wait, start, exit) and forward signals while the command runs.
//!
//! Must never: keep going when the agent cannot be reached (it fails closed with a message), or
//! echo a server-supplied comment with control characters intact.

use std::io::{IoSlice, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use elevate_core::text::visible;
use elevate_proto::ipc::{encode, AgentFrame, ClientFrame, FrameReader, Refusal, VERSION};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::terminal::{self, Relay};
use super::Invocation;

const WAITING: u8 = 0;
const RUNNING: u8 = 1;

fn fail(message: &str) -> ExitCode {
    eprintln!("elevate: {}", visible(message));
    ExitCode::from(1)
}

fn connect(socket: &std::path::Path) -> Result<UnixStream, String> {
    UnixStream::connect(socket).map_err(|e| {
        format!(
            "the Elevate agent is not reachable at {} ({e}); nothing ran. Is `elevated` running?",
            socket.display()
        )
    })
}

/// Copies what the root command writes into a pipe to one of our own terminal streams, so that
/// the command never holds the user's terminal.
struct OutputRelay(std::thread::JoinHandle<()>);

impl OutputRelay {
    /// A pipe whose read end is copied to `to`; the write end goes to the command.
    fn start(to: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(OwnedFd, OutputRelay)> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
        let mut to = std::fs::File::from(to.try_clone_to_owned()?);
        let mut from = std::fs::File::from(read);
        let copy = std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
        });
        Ok((write, OutputRelay(copy)))
    }

    /// Waits (briefly) until everything the command wrote is copied.
    fn finish(self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !self.0.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Sends the first frame with stdin, stdout and stderr attached. A command that is not
/// interactive never gets the user's terminal: a stdout or stderr that is one is replaced by a
/// pipe this process copies to the terminal (the returned relays).
fn send_with_stdio(
    stream: &UnixStream,
    frame: &ClientFrame,
    interactive: bool,
) -> std::io::Result<Vec<OutputRelay>> {
    let bytes = encode(frame);
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut relays = Vec::new();
    let mut pipes = Vec::new();
    for out in [stdout.as_fd(), stderr.as_fd()] {
        if !interactive && rustix::termios::isatty(out) {
            let (write, relay) = OutputRelay::start(out)?;
            pipes.push(write);
            relays.push(relay);
        } else {
            pipes.push(out.try_clone_to_owned()?);
        }
    }
    let stdio = [stdin.as_fd(), pipes[0].as_fd(), pipes[1].as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&stdio));
    let sent = sendmsg(
        stream,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::empty(),
    )?;
    (&*stream).write_all(&bytes[sent..])?;
    // Our copies of the pipes' write ends go now: the relays end when the command's do.
    drop(pipes);
    Ok(relays)
}

fn read_frame(
    stream: &mut UnixStream,
    reader: &mut FrameReader,
) -> Result<Option<AgentFrame>, String> {
    read_frame_with_fds(stream, reader, &mut Vec::new())
}

/// The next frame, collecting descriptors that come with it (the pty master).
fn read_frame_with_fds(
    stream: &mut UnixStream,
    reader: &mut FrameReader,
    fds: &mut Vec<OwnedFd>,
) -> Result<Option<AgentFrame>, String> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    loop {
        if let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
            return Ok(Some(frame));
        }
        let mut buf = [0u8; 8192];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let n = match recvmsg(
            &*stream,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => m.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.to_string()),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if n == 0 {
            reader.finish().map_err(|e| e.to_string())?;
            return Ok(None);
        }
        reader.push(&buf[..n]);
    }
}

pub fn run(invocation: Invocation) -> ExitCode {
    match invocation {
        Invocation::Help => {
            println!("usage: elevate [--reason TEXT] COMMAND [ARGS...]   run COMMAND as root, as the policy allows");
            println!("       elevate status                              show the agent, server and policy");
            println!("       elevate requests                            list your requests and their state");
            println!("       elevate [--reason TEXT] session 30m         open an admin session (sudo as usual until it ends)");
            println!(
                "       elevate session end                         end your admin session now"
            );
            println!("       elevate --reason TEXT break-glass           offline emergency: an admin session from several helpdesk members' codes");
            ExitCode::SUCCESS
        }
        Invocation::Version => {
            println!("elevate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Invocation::Status { socket } => status(&socket),
        Invocation::Requests { socket } => requests(&socket),
        Invocation::Run {
            argv,
            reason,
            socket,
        } => run_command(&socket, Ask::Command(argv), reason),
        Invocation::Session {
            duration_secs,
            reason,
            socket,
        } => run_command(&socket, Ask::Session(duration_secs), reason),
        Invocation::BreakGlass { reason, socket } => run_command(&socket, Ask::BreakGlass, reason),
        Invocation::EndSession { socket } => end_session(&socket),
    }
}

/// What is asked for: a command, or an admin session of so many seconds.
enum Ask {
    Command(Vec<String>),
    Session(u64),
    /// An emergency admin session from several helpdesk members' codes.
    BreakGlass,
}

fn end_session(socket: &std::path::Path) -> ExitCode {
    let mut stream = match connect(socket) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let frame = ClientFrame::EndSession { version: VERSION };
    if let Err(e) = (&stream).write_all(&encode(&frame)) {
        return fail(&e.to_string());
    }
    match read_frame(&mut stream, &mut FrameReader::new()) {
        Ok(Some(AgentFrame::SessionsEnded { count: 0 })) => {
            println!("you have no open admin session");
            ExitCode::SUCCESS
        }
        Ok(Some(AgentFrame::SessionsEnded { count })) => {
            println!("admin session ended ({count}); its processes were stopped");
            ExitCode::SUCCESS
        }
        Ok(Some(AgentFrame::Error { message, .. })) => fail(&message),
        Ok(_) => fail("the agent gave no answer"),
        Err(e) => fail(&e),
    }
}

/// `1h 05m`, `12m 30s`, `45s`.
fn remaining(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

fn status(socket: &std::path::Path) -> ExitCode {
    let mut stream = match connect(socket) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Err(e) = (&stream).write_all(&encode(&ClientFrame::Status)) {
        return fail(&e.to_string());
    }
    match read_frame(&mut stream, &mut FrameReader::new()) {
        Ok(Some(AgentFrame::Status(s))) => {
            println!("agent:   running (elevated {})", s.version);
            println!("device:  {}", visible(&s.device));
            println!("server:  {} ({})", visible(&s.server), s.upstream);
            match s.policy_version {
                Some(v) => println!("policy:  version {v}"),
                None => println!(
                    "policy:  none yet (nothing can run until the agent reaches the server)"
                ),
            }
            println!(
                "spooled: {} audit events waiting for the server",
                s.spooled_events
            );
            if let Some(spool) = &s.spool {
                println!("spool:   {}", visible(spool));
            }
            match s.open_requests {
                Some(n) => println!("open:    {n} of your requests waiting for approvers"),
                None => println!("open:    unknown (the server did not answer)"),
            }
            for c in &s.collectors {
                println!("records: {}", visible(c));
            }
            if let Some(rights) = &s.standing_rights {
                println!("rights:  {}", visible(rights));
            }
            for a in &s.admin_sessions {
                println!(
                    "session: admin session open, {} left (until {}); `elevate session end` ends it",
                    remaining(a.remaining_secs),
                    visible(&a.expires)
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Some(AgentFrame::Error { message, .. })) => fail(&message),
        Ok(_) => fail("the agent gave no status"),
        Err(e) => fail(&e),
    }
}

fn requests(socket: &std::path::Path) -> ExitCode {
    let mut stream = match connect(socket) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Err(e) = (&stream).write_all(&encode(&ClientFrame::Requests)) {
        return fail(&e.to_string());
    }
    match read_frame(&mut stream, &mut FrameReader::new()) {
        Ok(Some(AgentFrame::Requests { requests })) => {
            if requests.is_empty() {
                println!("no requests (pre-approved commands run at once and are not listed)");
            }
            for r in requests {
                let created = r
                    .created_at
                    .get(..16)
                    .unwrap_or(&r.created_at)
                    .replace('T', " ");
                let approvers = r
                    .approvers
                    .map(|a| format!(" [{}]", visible(&a)))
                    .unwrap_or_default();
                println!(
                    "{}  {created}  {:<9} {}{approvers}",
                    r.id,
                    r.state,
                    visible(&r.what)
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Some(AgentFrame::Error { message, .. })) => fail(&message),
        Ok(_) => fail("the agent gave no list"),
        Err(e) => fail(&e),
    }
}

fn prompt_reason(explanation: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprintln!("elevate: {}", visible(explanation));
    eprint!("Reason: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(line.trim().to_string()).filter(|r| !r.is_empty())
}

fn run_command(socket: &std::path::Path, ask: Ask, mut reason: Option<String>) -> ExitCode {
    loop {
        match attempt(socket, &ask, reason.clone()) {
            Attempt::Done(code) => return code,
            Attempt::NeedReason(explanation) => match prompt_reason(&explanation) {
                Some(r) => reason = Some(r),
                None => return fail(&format!("{explanation}; give one with --reason \"…\"")),
            },
        }
    }
}

enum Attempt {
    Done(ExitCode),
    NeedReason(String),
}

fn attempt(socket: &std::path::Path, ask: &Ask, reason: Option<String>) -> Attempt {
    let mut stream = match connect(socket) {
        Ok(s) => s,
        Err(e) => return Attempt::Done(fail(&e)),
    };
    let interactive = std::io::stdin().is_terminal();
    let sent = match ask {
        Ask::Command(argv) => {
            let frame = ClientFrame::Run {
                version: VERSION,
                argv: argv.to_vec(),
                cwd: std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                reason,
                interactive,
            };
            send_with_stdio(&stream, &frame, interactive)
        }
        Ask::Session(duration_secs) => {
            let frame = ClientFrame::Session {
                version: VERSION,
                duration_secs: *duration_secs,
                reason,
            };
            (&stream).write_all(&encode(&frame)).map(|()| Vec::new())
        }
        Ask::BreakGlass => {
            let frame = ClientFrame::BreakGlass {
                version: VERSION,
                reason,
            };
            (&stream).write_all(&encode(&frame)).map(|()| Vec::new())
        }
    };
    let outputs = match sent {
        Ok(relays) => relays,
        Err(e) => {
            // The agent may have refused the connection at once (too many sessions): say why.
            if let Ok(Some(AgentFrame::Error { message, .. })) =
                read_frame(&mut stream, &mut FrameReader::new())
            {
                return Attempt::Done(fail(&message));
            }
            return Attempt::Done(fail(&format!("cannot send the request to the agent: {e}")));
        }
    };
    let phase = Arc::new(AtomicU8::new(WAITING));
    let resize: Arc<Mutex<Option<OwnedFd>>> = Arc::default();
    let _signals = forward_signals(&stream, phase.clone(), resize.clone());
    let status_line = std::io::stderr().is_terminal();
    let mut reader = FrameReader::new();
    let mut fds = Vec::new();
    let mut relay: Option<Relay> = None;
    loop {
        let frame = match read_frame_with_fds(&mut stream, &mut reader, &mut fds) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Attempt::Done(fail(
                    "the agent closed the connection; nothing more is known",
                ))
            }
            Err(e) => {
                return Attempt::Done(fail(&format!("the agent's answer could not be read: {e}")))
            }
        };
        match frame {
            AgentFrame::Decided { outcome, message, approvers, request_id, explanation, .. } => match outcome.as_str() {
                "deny" => {
                    let why = message.unwrap_or(explanation);
                    return Attempt::Done(fail(&format!("denied by policy: {why}")));
                }
                "approve" => eprintln!(
                    "elevate: waiting for approval by {} (request {request_id}); Ctrl-C withdraws it",
                    visible(approvers.as_deref().unwrap_or("an approver"))
                ),
                _ => {}
            },
            AgentFrame::Waiting { request_id, elapsed_secs } => {
                if status_line {
                    eprint!("\relevate: still waiting for request {request_id}: {}:{:02}", elapsed_secs / 60, elapsed_secs % 60);
                    let _ = std::io::stderr().flush();
                }
            }
            AgentFrame::Approved { comment, .. } => {
                if status_line {
                    eprintln!();
                }
                let said = comment.map(|c| format!(": {}", visible(&c))).unwrap_or_default();
                eprintln!("elevate: approved{said}");
            }
            AgentFrame::Denied { comment, .. } => {
                if status_line {
                    eprintln!();
                }
                let said = comment.map(|c| format!(": {c}")).unwrap_or_default();
                return Attempt::Done(fail(&format!("denied by the approver{said}")));
            }
            AgentFrame::Terminal => {
                let Some(master) = fds.pop() else {
                    return Attempt::Done(fail("the agent sent no terminal"));
                };
                *resize.lock().expect("resize lock") = master.try_clone().ok();
                match Relay::start(master) {
                    Ok(r) => relay = Some(r),
                    Err(e) => return Attempt::Done(fail(&format!("cannot relay the terminal: {e}"))),
                }
            }
            AgentFrame::Started { .. } => phase.store(RUNNING, Ordering::SeqCst),
            AgentFrame::Exited { code, signal } => {
                if let Some(r) = relay.take() {
                    r.finish();
                }
                for output in outputs {
                    output.finish();
                }
                return Attempt::Done(match (code, signal) {
                    (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
                    (None, Some(s)) => ExitCode::from((128 + s).clamp(0, 255) as u8),
                    (None, None) => ExitCode::from(1),
                });
            }
            AgentFrame::Error { code: Refusal::ReasonRequired, message } => return Attempt::NeedReason(message),
            AgentFrame::Error { code: Refusal::Cancelled, message } => {
                eprintln!("elevate: {}", visible(&message));
                return Attempt::Done(ExitCode::from(130));
            }
            AgentFrame::Error { message, .. } => return Attempt::Done(fail(&message)),
            AgentFrame::Challenge { challenge, attempts_left, codes_needed, command, .. } => {
                if status_line {
                    eprintln!();
                }
                if codes_needed > 1 {
                    eprintln!("elevate: BREAK GLASS: an emergency admin session needs codes from {codes_needed} different members of the helpdesk; it raises an alert and will be reviewed.");
                } else {
                    eprintln!("elevate: the server cannot be reached, so the helpdesk decides by phone.");
                }
                eprintln!("elevate: read them this challenge: {}", visible(&challenge));
                if let Some(command) = command {
                    eprintln!("elevate: and this command, exactly: {}", visible(&command));
                }
                eprintln!("elevate: ({attempts_left} tries; Ctrl-C gives up)");
                if let Err(e) = send_code(&stream) {
                    return Attempt::Done(fail(&e));
                }
            }
            AgentFrame::CodeRefused { message, attempts_left } => {
                eprintln!("elevate: {} ({attempts_left} tries left)", visible(&message));
                if let Err(e) = send_code(&stream) {
                    return Attempt::Done(fail(&e));
                }
            }
            AgentFrame::SessionOpened { expires, remaining_secs, .. } => {
                println!(
                    "elevate: admin session open for {} (until {}): use sudo as usual; `elevate session end` ends it early",
                    remaining(remaining_secs),
                    visible(&expires)
                );
                return Attempt::Done(ExitCode::SUCCESS);
            }
            AgentFrame::Status(_)
            | AgentFrame::SessionsEnded { .. }
            | AgentFrame::Requests { .. }
            | AgentFrame::Allowed { .. }
            | AgentFrame::Recorded => {}
        }
    }
}

/// Reads the helpdesk's response code from the person's terminal and sends it.
fn send_code(stream: &UnixStream) -> Result<(), String> {
    use std::io::BufRead;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| "the server cannot be reached and approvers must decide; a helpdesk code could stand in, but it must be typed at a terminal (run the command from one); nothing ran".to_owned())?;
    let mut shown = &tty;
    let _ = shown.write_all(b"Response code: ");
    let _ = shown.flush();
    let mut line = String::new();
    std::io::BufReader::new(&tty)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the code: {e}"))?;
    if line.is_empty() {
        return Err("no code was typed; nothing ran".into());
    }
    let frame = ClientFrame::OfflineCode {
        code: line.trim().to_owned(),
    };
    (&*stream)
        .write_all(&encode(&frame))
        .map_err(|e| format!("cannot send the code to the agent: {e}"))
}

/// Ctrl-C and friends: while waiting they withdraw the request; while running they go to the
/// command. The thread ends with the process.
fn forward_signals(
    stream: &UnixStream,
    phase: Arc<AtomicU8>,
    resize: Arc<Mutex<Option<OwnedFd>>>,
) -> Option<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
    let mut signals = signal_hook::iterator::Signals::new([
        SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH,
    ])
    .ok()?;
    let mut writer = stream.try_clone().ok()?;
    std::thread::spawn(move || {
        for signo in signals.forever() {
            // With a relayed terminal, a resize is copied to the pty; the kernel tells the command.
            if signo == SIGWINCH {
                if let Some(master) = resize.lock().expect("resize lock").as_ref() {
                    terminal::copy_window_size(master);
                    continue;
                }
            }
            let frame = if phase.load(Ordering::SeqCst) == RUNNING {
                ClientFrame::Signal { signo }
            } else if signo == SIGWINCH {
                continue;
            } else {
                ClientFrame::Cancel
            };
            if writer.write_all(&encode(&frame)).is_err() {
                break;
            }
        }
    });
    Some(())
}
