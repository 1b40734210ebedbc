//! The plugin's logic against a stand-in agent on a real Unix socket (no sudo needed).

use super::*;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// Tests that get an `Allowed` touch the one process-wide "allowed request": one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn ask(can_wait: bool) -> Ask {
    Ask {
        command: "/usr/bin/id".into(),
        argv: strings(&["id", "-u"]),
        runas: "root".into(),
        cwd: "/home/alice".into(),
        tty: Some("/dev/pts/3".into()),
        can_wait,
        shell: false,
        risky_env: Vec::new(),
    }
}

#[derive(Default)]
struct Recorded {
    info: Vec<String>,
    errors: Vec<String>,
    answers: Vec<String>,
    prompts: usize,
}

impl Conversation for Recorded {
    fn info(&mut self, message: &str) {
        self.info.push(message.into());
    }
    fn error(&mut self, message: &str) {
        self.errors.push(message.into());
    }
    fn prompt(&mut self, _message: &str) -> Option<String> {
        self.prompts += 1;
        self.answers.pop()
    }
}

/// A stand-in agent: for each connection in turn, reads the request and answers with the
/// frames given for that connection (then closes). Returns the requests it received.
fn agent(answers: Vec<Vec<AgentFrame>>) -> (PathBuf, std::thread::JoinHandle<Vec<ClientFrame>>) {
    let dir = std::env::temp_dir().join(format!(
        "elevate-sudo-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = std::thread::spawn(move || {
        let mut got = Vec::new();
        for frames in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut reader = FrameReader::new();
            let request = next_request(&mut s, &mut reader);
            got.push(request);
            for f in frames {
                // A plugin that gave up (withdrawn) has closed its side.
                let _ = s.write_all(&encode(&f));
            }
        }
        got
    });
    (path, handle)
}

fn next_request(s: &mut UnixStream, reader: &mut FrameReader) -> ClientFrame {
    loop {
        if let Some(f) = reader.next_frame().unwrap() {
            return f;
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the plugin sent no request");
        reader.push(&buf[..n]);
    }
}

fn decided(outcome: &str, message: Option<&str>) -> AgentFrame {
    AgentFrame::Decided {
        request_id: "r1".into(),
        outcome: outcome.into(),
        rule: Some("rule".into()),
        explanation: "because".into(),
        message: message.map(str::to_owned),
        approvers: (outcome == "approve").then(|| "helpdesk".to_owned()),
    }
}

#[test]
fn sudo_lists_become_a_request() {
    let info = strings(&["command=/usr/bin/id", "runas_user=root", "runas_uid=0"]);
    let user = strings(&[
        "user=alice",
        "uid=1001",
        "cwd=/home/alice",
        "tty=/dev/pts/3",
    ]);
    let settings = strings(&["progname=sudo", "noninteractive=true"]);
    let a = Ask::from_sudo(&info, &strings(&["id", "-u"]), &[], &user, &settings).unwrap();
    assert_eq!(a.command, "/usr/bin/id");
    assert_eq!(a.cwd, "/home/alice");
    assert_eq!(a.tty.as_deref(), Some("/dev/pts/3"));
    assert!(!a.can_wait, "sudo -n cannot wait for approvers");
    let a = Ask::from_sudo(&info, &strings(&["id"]), &[], &user, &[]).unwrap();
    assert!(a.can_wait);
    assert!(!a.shell);
    // Variables that would make the command run other code are named for the agent.
    let env = strings(&[
        "TERM=xterm",
        "LD_PRELOAD=/tmp/x.so",
        "PYTHONPATH=/tmp",
        "HOME=/root",
    ]);
    let a = Ask::from_sudo(&info, &strings(&["id"]), &env, &user, &[]).unwrap();
    assert_eq!(a.risky_env, ["LD_PRELOAD", "PYTHONPATH"]);
    // `sudo -s` and `sudo -i` ask for a root shell.
    for flag in ["run_shell=true", "login_shell=true"] {
        let a = Ask::from_sudo(&info, &strings(&["sh"]), &[], &user, &strings(&[flag])).unwrap();
        assert!(a.shell, "{flag}");
    }
    // `commandx=` is not `command=`; a relative command is not trusted.
    assert!(Ask::from_sudo(
        &strings(&["commandx=/bin/id"]),
        &strings(&["id"]),
        &[],
        &user,
        &[]
    )
    .is_err());
    assert!(Ask::from_sudo(
        &strings(&["command=id"]),
        &strings(&["id"]),
        &[],
        &user,
        &[]
    )
    .is_err());
    assert!(Ask::from_sudo(&info, &[], &[], &user, &[]).is_err());
    // A chroot (sudoers CHROOT= or sudo -R): the file that would run is not the one checked.
    let mut jailed = info.clone();
    jailed.push("chroot=/home/alice/jail".into());
    assert!(Ask::from_sudo(&jailed, &strings(&["id"]), &[], &user, &[]).is_err());
    jailed.pop();
    jailed.push("chroot=/".into());
    assert!(Ask::from_sudo(&jailed, &strings(&["id"]), &[], &user, &[]).is_ok());
}

#[test]
fn only_an_explicit_allowed_lets_sudo_run() {
    let _serial = serial();
    let allowed = AgentFrame::Allowed {
        cgroup: None,
        request_id: "r1".into(),
        workdir: None,
    };
    let (socket, agent) = agent(vec![
        vec![decided("auto", None), allowed.clone()],
        // Decided auto, then the connection closes before Allowed: nothing runs.
        vec![decided("auto", None)],
        vec![decided("deny", Some("use a specific command"))],
        vec![AgentFrame::Error {
            code: Refusal::Binary,
            message: "/usr/bin/id is writable by others".into(),
        }],
    ]);
    let mut conv = Recorded::default();
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Allow);
    assert!(
        matches!(check(&socket, &ask(true), &mut conv), Verdict::Error(m) if m.contains("closed"))
    );
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Deny);
    assert!(conv
        .errors
        .iter()
        .any(|e| e.contains("refused: use a specific command")));
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Deny);
    assert!(conv.errors.iter().any(|e| e.contains("writable by others")));
    let requests = agent.join().unwrap();
    assert!(
        matches!(&requests[0], ClientFrame::SudoCheck { command, argv, cwd, can_wait: true, .. }
        if command == "/usr/bin/id" && argv == &strings(&["id", "-u"]) && cwd == "/home/alice")
    );
}

#[test]
fn within_an_admin_session_sudo_runs_only_once_it_is_in_the_sessions_cgroup() {
    let _serial = serial();
    // A cgroup this process can join: a plain folder with a `cgroup.procs` file stands in (the
    // plugin writes its pid there; the kernel's file moves it).
    let joinable = std::env::temp_dir().join(format!("elevate-cg-{}", std::process::id()));
    std::fs::create_dir_all(&joinable).unwrap();
    std::fs::write(joinable.join("cgroup.procs"), "").unwrap();
    let in_session = |cgroup: &std::path::Path| AgentFrame::Allowed {
        request_id: "r1".into(),
        cgroup: Some(cgroup.display().to_string()),
        workdir: None,
    };
    let (socket, agent) = agent(vec![
        vec![decided("auto", None), in_session(&joinable)],
        vec![
            decided("auto", None),
            in_session(std::path::Path::new("/nonexistent/elevate/session-x")),
        ],
    ]);
    let mut conv = Recorded::default();
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Allow);
    assert_eq!(
        std::fs::read_to_string(joinable.join("cgroup.procs")).unwrap(),
        format!("{}\n", std::process::id())
    );
    assert!(matches!(
        check(&socket, &ask(true), &mut conv),
        Verdict::Error(m) if m.contains("cannot join the admin session's cgroup")
    ));
    agent.join().unwrap();
    let _ = take_allowed();
    std::fs::remove_dir_all(&joinable).unwrap();
}

#[test]
fn an_approval_is_waited_for_and_shown() {
    let _serial = serial();
    let (socket, agent) = agent(vec![
        vec![
            decided("approve", None),
            AgentFrame::Waiting {
                request_id: "r1".into(),
                elapsed_secs: 1,
            },
            AgentFrame::Approved {
                request_id: "r1".into(),
                comment: Some("go ahead\u{1b}]0;owned\u{7}".into()),
            },
            AgentFrame::Allowed {
                cgroup: None,
                request_id: "r1".into(),
                workdir: None,
            },
        ],
        vec![
            decided("approve", None),
            AgentFrame::Denied {
                request_id: "r1".into(),
                comment: Some("not today\u{1b}[2J\u{202e}".into()),
            },
        ],
    ]);
    let mut conv = Recorded::default();
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Allow);
    assert!(conv
        .info
        .iter()
        .any(|i| i.contains("waiting for approval by helpdesk")));
    // What approvers wrote reaches the terminal as text, never as escape sequences.
    assert!(conv
        .info
        .iter()
        .any(|i| i.contains("approved: go ahead\\u{001b}]0;owned\\u{0007}")));
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Deny);
    assert!(conv
        .errors
        .iter()
        .any(|e| e.contains("denied: not today\\u{001b}[2J\\u{202e}")));
    let said = conv.info.iter().chain(&conv.errors);
    assert!(said
        .clone()
        .all(|m| !m.contains('\u{1b}') && !m.contains('\u{202e}')));
    agent.join().unwrap();
}

#[test]
fn a_required_reason_is_asked_for_once() {
    let _serial = serial();
    let (socket, agent) = agent(vec![
        vec![AgentFrame::Error {
            code: Refusal::ReasonRequired,
            message: "a reason is required".into(),
        }],
        vec![
            decided("auto", None),
            AgentFrame::Allowed {
                cgroup: None,
                request_id: "r1".into(),
                workdir: None,
            },
        ],
        vec![AgentFrame::Error {
            code: Refusal::ReasonRequired,
            message: "a reason is required".into(),
        }],
    ]);
    let mut conv = Recorded {
        answers: vec!["rotate the logs".into()],
        ..Recorded::default()
    };
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Allow);
    assert_eq!(conv.prompts, 1);
    // Nobody answers the prompt (no terminal): refused with the reason.
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Deny);
    let requests = agent.join().unwrap();
    assert!(
        matches!(&requests[1], ClientFrame::SudoCheck { reason: Some(r), .. } if r == "rotate the logs")
    );
}

#[test]
fn no_agent_means_no_sudo() {
    let socket = std::env::temp_dir().join("elevate-no-such-agent.sock");
    let mut conv = Recorded::default();
    let verdict = check(&socket, &ask(true), &mut conv);
    assert!(
        matches!(&verdict, Verdict::Error(m) if m.contains("not reachable")),
        "{verdict:?}"
    );
    assert_eq!(verdict.code(), -1);
}

#[test]
fn wait_statuses_become_exit_codes_or_signals() {
    assert_eq!(End::from_wait_status(0), End::Exited(0));
    assert_eq!(End::from_wait_status(3 << 8), End::Exited(3));
    assert_eq!(End::from_wait_status(9), End::Signalled(9));
    assert_eq!(
        End::from_wait_status(15 | 0x80),
        End::Signalled(15),
        "core dumped"
    );
}

#[test]
fn the_end_of_an_allowed_command_is_reported_under_its_request() {
    let _serial = serial();
    let (socket, agent) = agent(vec![
        vec![
            decided("auto", None),
            AgentFrame::Allowed {
                cgroup: None,
                request_id: "r42".into(),
                workdir: None,
            },
        ],
        vec![],
    ]);
    let mut conv = Recorded::default();
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Allow);
    let id = take_allowed().expect("the allowed request is kept for the audit plugin");
    assert_eq!(id, "r42");
    assert_eq!(take_allowed(), None, "only once");
    report_end(&socket, id, End::Exited(5)).unwrap();
    let requests = agent.join().unwrap();
    assert_eq!(
        requests[1],
        ClientFrame::SudoFinished {
            version: VERSION,
            request_id: "r42".into(),
            exit_code: Some(5),
            signal: None,
            error: None,
        }
    );
}

#[test]
fn a_signal_while_waiting_withdraws_the_request() {
    let _serial = serial();
    let (socket, agent) = agent(vec![vec![decided("approve", None)]]);
    let mut conv = Recorded::default();
    // What the plugin's signal handler does when Ctrl-C arrives during the wait.
    WITHDRAW.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(check(&socket, &ask(true), &mut conv), Verdict::Deny);
    assert!(
        conv.errors.iter().any(|e| e.contains("withdrawn")),
        "{:?}",
        conv.errors
    );
    assert!(
        !WITHDRAW.load(std::sync::atomic::Ordering::SeqCst),
        "used up"
    );
    agent.join().unwrap();
}
