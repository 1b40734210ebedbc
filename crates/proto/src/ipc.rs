//! The local protocol between the `elevate` command (or the sudo plugin) and the root agent
//! `elevated`: length-prefixed JSON frames over a Unix socket, versioned.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. Frames larger than
//! `MAX_FRAME` are refused before their body is read. The caller's identity is never in a frame:
//! the agent takes it from the kernel (`SO_PEERCRED`), and `deny_unknown_fields` makes a frame
//! that tries to carry a `uid` an error.
//!
//! Must never: trust anything in a client frame for identity or authorisation.

use serde::{Deserialize, Serialize};

/// Protocol version; a `Run` with another version is refused with a message to upgrade.
pub const VERSION: u32 = 1;

/// Largest frame either side accepts (argv of a long command line fits comfortably).
pub const MAX_FRAME: usize = 1 << 20;

/// What the client asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Run a command as root. The caller's stdin, stdout and stderr travel with this frame as
    /// `SCM_RIGHTS`.
    Run {
        version: u32,
        /// The command and its arguments, as typed.
        argv: Vec<String>,
        /// The caller's working directory (informational; the agent decides where to run).
        cwd: String,
        reason: Option<String>,
        /// Whether the caller's stdin is a terminal.
        interactive: bool,
    },
    /// From the sudo approval plugin, inside a sudo process (running as root) after sudoers
    /// accepted the command: may sudo run it? Taken only from a root peer; the requester is that
    /// process's real uid as the kernel reports it, never a name in the frame. Answered with
    /// `Decided` and, when approvers must decide, `Waiting`… then `Approved` or `Denied`.
    SudoCheck {
        version: u32,
        /// The absolute path sudo resolved (`command_info` `command=`).
        command: String,
        /// The command and its arguments, as sudo will run them.
        argv: Vec<String>,
        /// The user the command runs as (`runas_user`).
        runas: String,
        /// The user's working directory (informational).
        cwd: String,
        /// The user's terminal, if any (informational).
        tty: Option<String>,
        reason: Option<String>,
        /// False for `sudo -n`: an approval cannot be waited for, so it fails at once.
        can_wait: bool,
        /// `sudo -s` or `sudo -i`: a root shell, which opens an admin session where the policy
        /// allows one.
        #[serde(default)]
        shell: bool,
        /// Names of variables in the command's environment that make a program run code other
        /// than its own (`LD_PRELOAD`, `PYTHONPATH`, …): sudo passes them only where sudoers
        /// lets the user set the environment.
        #[serde(default)]
        risky_env: Vec<String>,
    },
    /// From the sudo audit plugin when sudo's command has ended (`request_id` from `Allowed`):
    /// its exit code or terminating signal, or why it could not be run.
    SudoFinished {
        version: u32,
        request_id: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        error: Option<String>,
    },
    /// From the sudo audit plugin: sudo itself (sudoers, authentication) refused or failed
    /// before the approval plugin was asked.
    SudoRejected {
        version: u32,
        /// The command as sudo saw it, when it knew.
        command: Option<String>,
        argv: Vec<String>,
        /// sudo's audit message ("command not allowed", "a password is required", …).
        message: String,
        /// A failure rather than a refusal.
        error: bool,
    },
    /// Open a time-limited admin session (`elevate session 30m`): decided by the policy like a
    /// command, and when allowed the caller's sudo works without further questions until it
    /// ends. Answered like `Run` up to the decision, then `SessionOpened`.
    Session {
        version: u32,
        /// How long, in seconds.
        duration_secs: u64,
        reason: Option<String>,
    },
    /// End the caller's open admin sessions now (`elevate session end`); their processes are
    /// stopped. Answered with `SessionsEnded`.
    EndSession { version: u32 },
    /// An emergency admin session on a device that cannot reach the server (`elevate
    /// break-glass`): answered with a `Challenge` that needs codes from several helpdesk
    /// members, then `SessionOpened`.
    BreakGlass {
        version: u32,
        reason: Option<String>,
    },
    /// The response code the helpdesk read back for the last `Challenge`.
    OfflineCode { code: String },
    /// Deliver this signal to the running command (forwarded Ctrl-C and friends).
    Signal { signo: i32 },
    /// Give up waiting for an approval.
    Cancel,
    /// Report the agent's state.
    Status,
    /// List the caller's requests known to the server.
    Requests,
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentFrame {
    /// The policy decided.
    Decided {
        request_id: String,
        /// `auto`, `approve` or `deny`.
        outcome: String,
        rule: Option<String>,
        explanation: String,
        /// For a denial: the message for the user.
        message: Option<String>,
        /// For an approval: who was asked.
        approvers: Option<String>,
    },
    /// Still waiting for approvers.
    Waiting {
        request_id: String,
        elapsed_secs: u64,
    },
    /// The approvers decided (approve or deny), with their comment.
    Approved {
        request_id: String,
        comment: Option<String>,
    },
    Denied {
        request_id: String,
        comment: Option<String>,
    },
    /// The command runs on a fresh pty whose master travels with this frame (`SCM_RIGHTS`): the
    /// client relays between its terminal and the master.
    Terminal,
    /// The command started as root.
    Started { pid: i32 },
    /// To the sudo plugin: the decision and its start are recorded; sudo may run the command.
    /// Nothing else allows it (an error, a denial or a closed connection all refuse).
    Allowed {
        request_id: String,
        /// Within an admin session: the session's cgroup (v2 directory), which sudo must join
        /// before it runs the command, so that the command is stopped when the session ends
        /// even if sudo itself is killed. sudo must refuse to run if it cannot join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<String>,
        /// Where the command runs when the policy says so (`/`, unless a rule keeps the
        /// caller's directory): sudo must change there before it runs the command, or refuse.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workdir: Option<String>,
    },
    /// An admin session is open until `expires` (RFC 3339, UTC).
    SessionOpened {
        request_id: String,
        expires: String,
        remaining_secs: u64,
    },
    /// `EndSession` ended this many admin sessions.
    SessionsEnded { count: u64 },
    /// The server cannot be reached and approvers must decide: the helpdesk can, by phone. Read
    /// them `challenge`; answer with `OfflineCode`.
    Challenge {
        request_id: String,
        challenge: String,
        attempts_left: u32,
        /// Break glass: codes from this many different helpdesk members are needed, one at a
        /// time (0: one code).
        #[serde(default)]
        codes_needed: u32,
        /// The command as the helpdesk must type it (a code for one request covers it): the
        /// program by the name it is invoked by, and the arguments, quoted for a shell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    /// That code does not answer the challenge (or was misread): try again, or give up.
    CodeRefused { message: String, attempts_left: u32 },
    /// To the sudo audit plugin: its report is recorded.
    Recorded,
    /// The command ended: its exit code, or the signal that ended it.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Nothing runs: why (`code`, for programs to branch on), and what to do (`message`, for
    /// people).
    Error { code: Refusal, message: String },
    /// Answer to `Status`.
    Status(AgentStatus),
    /// Answer to `Requests`, newest first.
    Requests { requests: Vec<RequestSummary> },
}

/// One of the caller's requests, for `elevate requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSummary {
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    pub state: String,
    /// The command line or admin session, as a person reads it.
    pub what: String,
    pub approvers: Option<String>,
}

/// The agent's state, for `elevate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    pub version: String,
    pub device: String,
    pub server: String,
    /// `online`, or `offline since …`.
    pub upstream: String,
    /// Policy version in force, if any.
    pub policy_version: Option<u64>,
    /// Events spooled and not yet confirmed by the server.
    pub spooled_events: u64,
    /// The caller's requests waiting for approvers (unknown while offline).
    pub open_requests: Option<u64>,
    /// What records elevation on this machine, one line each (front doors, discovery sources),
    /// saying whether each is on.
    #[serde(default)]
    pub collectors: Vec<String>,
    /// The caller's open admin sessions.
    #[serde(default)]
    pub admin_sessions: Vec<AdminSessionSummary>,
    /// When the caller's standing admin rights were taken away (enforce mode): what that means
    /// for them here.
    #[serde(default)]
    pub standing_rights: Option<String>,
    /// How full the audit spool is, when it is worth saying (near its bound, or events were
    /// summarised to stay within it).
    #[serde(default)]
    pub spool: Option<String>,
}

/// One of the caller's open admin sessions, for `elevate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSessionSummary {
    pub request_id: String,
    /// RFC 3339, UTC.
    pub expires: String,
    pub remaining_secs: u64,
}

/// Why the agent refused a request or stopped serving it: the `code` of an `Error` frame. On
/// the wire a snake_case string (`"reason_required"`), so a client of any version reads it; a
/// code this build does not know (a newer agent's, or the server's passed on) is `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The client sent nothing, or not its whole first frame, in time.
    Timeout,
    /// The agent is at its limit of connections (for this user, or in all).
    Busy,
    /// The frame is of another protocol version.
    Version,
    /// The bytes are not a frame.
    BadFrame,
    /// A frame that cannot come first, or not from this client.
    Protocol,
    /// stdin, stdout and stderr did not come with the request, or a terminal did.
    Stdio,
    /// Only sudo (a root process) may send this frame.
    NotSudo,
    /// Who ran sudo cannot be told.
    Caller,
    /// The caller's uid has no user.
    UnknownUser,
    /// The request makes no sense (no command, an impossible length).
    Usage,
    /// The program cannot be resolved, hashed or seen.
    Binary,
    /// sudo would run a path the agent cannot vouch for.
    SudoPath,
    /// The device has no verified policy.
    NoPolicy,
    ReasonTooLong,
    ReasonRequired,
    /// sudo would hand the command variables that make it run unchecked code.
    Environment,
    /// The caller's working directory could not be confirmed.
    Workdir,
    /// The request could not be recorded: nothing runs.
    Audit,
    /// Approvers must decide, and the client cannot wait (`sudo -n`).
    ApprovalNeeded,
    /// The server's approval does not carry a valid grant for this very request.
    ApprovalUnverified,
    ServerUnreachable,
    /// The server can be reached (break glass is for when it cannot).
    ServerReachable,
    /// The caller withdrew the request.
    Cancelled,
    /// No terminal could be opened for the command.
    Pty,
    /// The command could not be started or supervised.
    Exec,
    /// Admin sessions cannot be enforced on this host.
    SessionsUnavailable,
    /// An admin session could not be opened or ended.
    Session,
    BreakGlassOff,
    /// Too many wrong helpdesk codes on this device since the server was last reached.
    OfflineLocked,
    /// Too many wrong codes for this challenge, or it timed out.
    ChallengeVoid,
    /// The server refused to create the request (its own reason).
    Server,
    /// Something failed inside the agent.
    Internal,
    /// A code passed on from the server (a request's state, an API error code), or one a newer
    /// agent sends.
    #[serde(untagged)]
    Other(String),
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("the connection ended in the middle of a frame")]
    Truncated,
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes a frame: length prefix and JSON.
pub fn encode<T: Serialize>(frame: &T) -> Vec<u8> {
    let body = serde_json::to_vec(frame).expect("frames always serialise");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Collects bytes as they arrive and yields whole frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buffer[..4].try_into().expect("four bytes")) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        let body: Vec<u8> = self.buffer.drain(..4 + len).skip(4).collect();
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| FrameError::Malformed(e.to_string()))
    }

    /// Bytes held, waiting to make a frame (at most `4 + MAX_FRAME` plus one read, when the
    /// caller reads frames before it pushes more).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Call at end of stream: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> ClientFrame {
        ClientFrame::Run {
            version: VERSION,
            argv: vec!["id".into(), "-u".into()],
            cwd: "/home/alice".into(),
            reason: None,
            interactive: false,
        }
    }

    #[test]
    fn refusals_are_plain_strings_on_the_wire_and_unknown_ones_survive() {
        let frame = AgentFrame::Error {
            code: Refusal::ReasonRequired,
            message: "why?".into(),
        };
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["code"], "reason_required");
        // What an older or newer peer sends is read either way.
        let known: Refusal = serde_json::from_str("\"offline_locked\"").unwrap();
        assert_eq!(known, Refusal::OfflineLocked);
        let unknown: Refusal = serde_json::from_str("\"expired\"").unwrap();
        assert_eq!(unknown, Refusal::Other("expired".into()));
        assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"expired\"");
    }

    #[test]
    fn frames_round_trip_even_when_split() {
        let bytes = [encode(&run()), encode(&ClientFrame::Cancel)].concat();
        let mut reader = FrameReader::new();
        let mut got = Vec::new();
        for b in bytes.chunks(3) {
            reader.push(b);
            while let Some(f) = reader.next_frame::<ClientFrame>().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![run(), ClientFrame::Cancel]);
        reader.finish().unwrap();
    }

    #[test]
    fn bad_frames_are_errors() {
        // A forged uid is an unknown field.
        let forged = br#"{"type":"run","version":1,"argv":["id"],"cwd":"/","reason":null,"interactive":false,"uid":0}"#;
        let mut r = FrameReader::new();
        r.push(&(forged.len() as u32).to_be_bytes());
        r.push(forged);
        assert!(
            matches!(r.next_frame::<ClientFrame>(), Err(FrameError::Malformed(m)) if m.contains("uid"))
        );
        // Oversized: refused from the header alone.
        let mut r = FrameReader::new();
        r.push(&((MAX_FRAME as u32) + 1).to_be_bytes());
        assert_eq!(
            r.next_frame::<ClientFrame>(),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        // Truncated.
        let mut r = FrameReader::new();
        r.push(&encode(&run())[..10]);
        assert_eq!(r.next_frame::<ClientFrame>(), Ok(None));
        assert_eq!(r.finish(), Err(FrameError::Truncated));
        // Not JSON.
        let mut r = FrameReader::new();
        r.push(&[0, 0, 0, 3, b'a', b'b', b'c']);
        assert!(matches!(
            r.next_frame::<ClientFrame>(),
            Err(FrameError::Malformed(_))
        ));
    }

    fn fuzz_config() -> proptest::prelude::ProptestConfig {
        let cases = std::env::var("ELEVATE_FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256);
        proptest::prelude::ProptestConfig {
            cases,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        }
    }

    /// Bytes that are sometimes frames: a length (often a small one, sometimes one past the
    /// limit) and a body of JSON-ish text or noise.
    fn wire() -> impl proptest::prelude::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let body = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "\\{\"type\":\"(run|status|cancel|signal|sudo_check|offline_code)\"[ -~]{0,80}\\}"
                .prop_map(String::into_bytes),
        ];
        let frame = (
            prop_oneof![Just(None), Just(Some(u32::MAX)), (0u32..300).prop_map(Some)],
            body,
        )
            .prop_map(|(len, body)| {
                let len = len.unwrap_or(body.len() as u32);
                let mut out = len.to_be_bytes().to_vec();
                out.extend(body);
                out
            });
        proptest::collection::vec(frame, 0..8).prop_map(|f| f.concat())
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        /// Whatever arrives, in whatever pieces: no panic, and the reader never holds more than
        /// one frame and one read, as the agent uses it (frames taken before more is pushed; an
        /// error ends the connection).
        #[test]
        fn any_bytes_in_any_pieces_are_decoded_without_panic(
            bytes in wire(),
            cuts in proptest::collection::vec(1usize..8192, 1..20),
        ) {
            let mut reader = FrameReader::new();
            let mut at = 0;
            'read: for cut in cuts.iter().cycle() {
                if at >= bytes.len() {
                    break;
                }
                let end = (at + cut).min(bytes.len());
                reader.push(&bytes[at..end]);
                at = end;
                proptest::prop_assert!(reader.buffered() <= 4 + MAX_FRAME + 8192);
                loop {
                    match reader.next_frame::<ClientFrame>() {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break 'read,
                    }
                }
            }
        }

        /// Any frame a client may send decodes to itself, however the bytes are cut.
        #[test]
        fn any_run_frame_round_trips(
            argv in proptest::collection::vec(".{0,40}", 0..8),
            cwd in ".{0,60}",
            reason in proptest::option::of(".{0,60}"),
            cut in 1usize..64,
        ) {
            let frame = ClientFrame::Run { version: VERSION, argv, cwd, reason, interactive: false };
            let bytes = encode(&frame);
            let mut reader = FrameReader::new();
            let mut got = None;
            for piece in bytes.chunks(cut) {
                reader.push(piece);
                if let Some(f) = reader.next_frame::<ClientFrame>().unwrap() {
                    got = Some(f);
                }
            }
            proptest::prop_assert_eq!(got, Some(frame));
            proptest::prop_assert!(reader.finish().is_ok());
        }
    }
}
