//! When approvers must decide and the server cannot be reached: the helpdesk decides by phone.
//! The agent shows a challenge (device, user, a fresh nonce for this request), the person reads
//! it to the helpdesk and types back the response code (`core::offline`). A good code lets this
//! one request go ahead (or opens the admin session it grants); it dies with the connection, so
//! it works once. Five wrong codes void the challenge; across challenges the device allows
//! `DEVICE_BUDGET` wrong codes until the server is reached again (a wrong code also costs a
//! growing pause), so guessing cannot simply start over; a challenge lasts at most `WAIT`.
//!
//! Must never: accept a code that does not verify under this device's secret for this very
//! challenge, a request-scope code for an admin session, or count a misread (check-character)
//! failure as a wrong attempt; every challenge, use and refusal is spooled.

use elevate_core::offline::{command_bits, command_digest, device_key, Challenge, Response, Scope};
use elevate_proto::ipc::{AgentFrame, ClientFrame, Refusal};
use elevate_proto::v1::{AuditEventIn, NewRequest};

use super::connection::Connection;
use super::record::{now_ms, spool};
use crate::state::{
    offline_failures as failures, set_offline_failures as set_failures, Agent,
    OFFLINE_BUDGET as DEVICE_BUDGET,
};

/// Wrong codes a challenge takes before it is void.
pub(super) const ATTEMPTS: u32 = 5;
/// How long a challenge lasts (the person calls the helpdesk and types the code).
const WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// What a good code granted.
#[derive(Debug, Clone)]
pub(super) struct Granted {
    /// The request's id on this device (the server never saw it).
    pub id: String,
    /// The code (for break glass: the last share; `minutes` the shortest of all shares').
    pub response: Response,
    pub challenge: String,
    /// Break glass: the share numbers held (one per helpdesk member).
    pub shares: Vec<u8>,
}

/// Which codes will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// One code for this request; `session`: an admin session is asked for, so only a
    /// session-scope code.
    One { session: bool },
    /// Break glass: shares from this many different helpdesk members.
    Shares(u8),
}

/// What one typed code did.
enum Verdict {
    Done,
    /// A good share, more needed; or a share from a member already counted (not an attempt).
    Again(String),
    Wrong(&'static str),
}

/// One challenge being answered: what it is for, and the device's secret that verifies codes.
struct Asking<'a> {
    agent: &'a Agent,
    new: &'a NewRequest,
    /// The request's id on this device.
    id: String,
    challenge: Challenge,
    /// The challenge as the person reads it out.
    shown: String,
    secret: Vec<u8>,
    /// The digest of the command asked for (`None`: an admin session or break glass), which a
    /// code for this one request must cover.
    command: Option<[u8; 32]>,
}

/// The digest of what `new` asks to run, as a response for this one request covers it: the
/// program by the name it is invoked by (what the caller reads out, and what it will see as
/// `argv[0]`), the SHA-256 of the bytes that will run, and the arguments.
fn digest_of(new: &NewRequest) -> Option<[u8; 32]> {
    match &new.target {
        elevate_proto::v1::WireTarget::Command {
            path,
            invoked,
            sha256: Some(sha256),
            args,
            ..
        } => Some(command_digest(
            invoked.as_deref().unwrap_or(path),
            sha256,
            args,
        )),
        _ => None,
    }
}

/// Shows a challenge and reads codes until what `want` asks for verifies (`Some`), the person
/// gives up or the challenge is void (`None`, the caller told why).
pub(super) async fn answer(
    agent: &Agent,
    conn: &mut Connection,
    new: &NewRequest,
    want: Want,
) -> Option<Granted> {
    let asking = challenge(agent, conn, new, want).await?;
    let mut left = ATTEMPTS;
    // Break glass: (share number, minutes, shares needed) of each member's good code so far.
    let mut held: Vec<(u8, u16, u8)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = next_code(conn, deadline, left).await?;
        let message = match asking.verdict(want, &response, &mut held) {
            Verdict::Again(message) => {
                conn.send(&AgentFrame::CodeRefused {
                    message,
                    attempts_left: left,
                })
                .await;
                continue;
            }
            Verdict::Wrong(message) => message,
            Verdict::Done => return asking.granted(conn, response, &held).await,
        };
        left = asking.count_wrong(conn, left).await?;
        conn.send(&AgentFrame::CodeRefused {
            message: message.into(),
            attempts_left: left,
        })
        .await;
    }
}

/// Issues a fresh challenge (recorded first) and shows it; `None` when offline codes cannot be
/// used here (the caller told why).
async fn challenge<'a>(
    agent: &'a Agent,
    conn: &mut Connection,
    new: &'a NewRequest,
    want: Want,
) -> Option<Asking<'a>> {
    if failures(&agent.state_dir) >= DEVICE_BUDGET {
        conn.refuse(
            Refusal::OfflineLocked,
            format!("the server cannot be reached, and {DEVICE_BUDGET} wrong helpdesk codes were typed on this device since it last could: offline codes are off until the server is reached again; nothing ran"),
        )
        .await;
        return None;
    }
    let secret = match hex::decode(&agent.enrolment.device_secret) {
        Ok(s) if s.len() == 32 => s,
        _ => {
            conn.refuse(
                Refusal::ServerUnreachable,
                "the server cannot be reached, and this device has no usable offline secret (enrol it again); nothing ran",
            )
            .await;
            return None;
        }
    };
    // 30 bits of a v7 UUID's random tail (its low 62 bits are drawn afresh each time).
    let nonce = (uuid::Uuid::now_v7().as_u128() & ((1 << 30) - 1)) as u32;
    let command = match want {
        Want::One { session: false } => digest_of(new),
        _ => None,
    };
    let challenge = Challenge {
        device: device_key(&agent.enrolment.device_id),
        uid: new.uid,
        nonce,
        command: command.as_ref().map_or(0, command_bits),
    };
    let asking = Asking {
        agent,
        new,
        id: uuid::Uuid::now_v7().to_string(),
        shown: challenge.encode(),
        challenge,
        secret,
        command,
    };
    let (session, codes_needed) = match want {
        Want::One { session } => (session, 0),
        Want::Shares(m) => (true, u32::from(m)),
    };
    let issued = asking.event(
        "offline.challenge_issued",
        serde_json::json!({ "target": new.target, "reason": new.reason, "nonce": nonce,
            "session": session, "channel": new.channel, "break_glass": codes_needed > 0,
            "codes_needed": codes_needed }),
    );
    if let Err(e) = spool(agent, &[issued]) {
        conn.refuse(
            Refusal::Audit,
            format!("cannot record the challenge ({e}); nothing ran"),
        )
        .await;
        return None;
    }
    let command = match (&new.target, command) {
        (
            elevate_proto::v1::WireTarget::Command {
                path,
                invoked,
                args,
                ..
            },
            Some(_),
        ) => Some(elevate_core::text::command_line(
            invoked.as_deref().unwrap_or(path),
            args,
        )),
        _ => None,
    };
    conn.send(&AgentFrame::Challenge {
        request_id: asking.id.clone(),
        challenge: asking.shown.clone(),
        attempts_left: ATTEMPTS,
        codes_needed,
        command,
    })
    .await;
    Some(asking)
}

/// The next well-formed code the person types before `deadline`; a misread code (a typo, by its
/// check character) is said so and costs no attempt. `None` when they gave up or time ran out.
async fn next_code(
    conn: &mut Connection,
    deadline: tokio::time::Instant,
    left: u32,
) -> Option<Response> {
    loop {
        let mut ignored = Vec::new();
        let frame = match tokio::time::timeout_at(deadline, conn.read(&mut ignored)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(_) => return None,
            Err(_) => {
                conn.refuse(
                    Refusal::Timeout,
                    "no code came in time; run the command again for a new challenge",
                )
                .await;
                return None;
            }
        };
        let code = match frame {
            ClientFrame::OfflineCode { code } => code,
            ClientFrame::Cancel => {
                conn.refuse(Refusal::Cancelled, "the request was withdrawn")
                    .await;
                return None;
            }
            _ => continue,
        };
        match Response::parse(&code) {
            Ok(r) => return Some(r),
            Err(e) => {
                conn.send(&AgentFrame::CodeRefused {
                    message: e.to_string(),
                    attempts_left: left,
                })
                .await;
            }
        }
    }
}

impl Asking<'_> {
    /// An event about this challenge, by the person it was issued to.
    fn event(&self, action: &str, mut data: serde_json::Value) -> AuditEventIn {
        data["challenge"] = self.shown.clone().into();
        data["user"] = self.new.user.clone().into();
        data["uid"] = self.new.uid.into();
        AuditEventIn {
            id: uuid::Uuid::now_v7().to_string(),
            at: now_ms(),
            actor: format!("user:{}@{}", self.new.user, self.agent.enrolment.name),
            action: action.into(),
            subject: format!("request:{}", self.id),
            data,
        }
    }

    /// What one well-formed code does for what is wanted (`held`: break-glass shares so far).
    fn verdict(&self, want: Want, response: &Response, held: &mut Vec<(u8, u16, u8)>) -> Verdict {
        match want {
            Want::One { session } => {
                // A break-glass share is one member's part of an emergency session, never an
                // answer on its own.
                // A challenge for one command takes a code for that command only: a session
                // code would skip the command's rule on the server.
                let fits = match response.scope {
                    Scope::BreakGlass => false,
                    Scope::Session => session || self.command.is_none(),
                    Scope::Request => !session,
                };
                if fits
                    && self
                        .challenge
                        .verify(&self.secret, response, self.command.as_ref())
                {
                    Verdict::Done
                } else if response.scope == Scope::BreakGlass {
                    Verdict::Wrong("that is a break-glass share, which only `elevate break-glass` takes; this needs a request or session code from the helpdesk")
                } else if !fits && response.scope == Scope::Session {
                    Verdict::Wrong("that code is for an admin session; this challenge is for one command, which the helpdesk answers for this request with the command")
                } else if !fits {
                    Verdict::Wrong("that code is for a single request; an admin session needs a session code from the helpdesk")
                } else if response.scope == Scope::Request {
                    Verdict::Wrong("that code does not answer this challenge for this command (another command, another challenge, another device, or a wrong code)")
                } else {
                    Verdict::Wrong("that code does not answer this challenge (another challenge, another device, or a wrong code)")
                }
            }
            Want::Shares(m) => match self.challenge.share_of(&self.secret, response, m) {
                Some(share) if held.iter().any(|(k, _, _)| *k == share.number) => Verdict::Again(
                    "that code comes from a member of the helpdesk whose code was already typed; the next must come from another member".into(),
                ),
                Some(share) => {
                    held.push((share.number, response.minutes, share.needed));
                    // The server's policy may need more members than this device's older one.
                    let needed = held.iter().map(|(_, _, n)| *n).max().unwrap_or(m).max(m);
                    if held.len() >= usize::from(needed) {
                        Verdict::Done
                    } else {
                        Verdict::Again(format!(
                            "code {} of {needed} accepted; now a code from another member of the helpdesk",
                            held.len()
                        ))
                    }
                }
                None => Verdict::Wrong(
                    "that code is not a break-glass code for this challenge (another challenge, another device, or a wrong code)",
                ),
            },
        }
    }

    /// What the good code(s) granted, recorded before anything runs or opens; `None` when it
    /// cannot be recorded (the caller told why).
    async fn granted(
        self,
        conn: &mut Connection,
        mut response: Response,
        held: &[(u8, u16, u8)],
    ) -> Option<Granted> {
        let shares: Vec<u8> = held.iter().map(|(n, _, _)| *n).collect();
        if let Some(shortest) = held.iter().map(|(_, minutes, _)| *minutes).min() {
            response.minutes = shortest;
        }
        let used = self.event(
            "offline.code_used",
            serde_json::json!({ "scope": response.scope.as_str(), "minutes": response.minutes,
            "shares": if shares.is_empty() { serde_json::Value::Null } else { shares.clone().into() } }),
        );
        if let Err(e) = spool(self.agent, &[used]) {
            conn.refuse(
                Refusal::Audit,
                format!("cannot record the code ({e}); nothing ran"),
            )
            .await;
            return None;
        }
        Some(Granted {
            id: self.id,
            response,
            challenge: self.shown,
            shares,
        })
    }

    /// Counts a wrong code against this challenge and the device's budget (on disk, with a
    /// growing pause), and records it. The attempts left, or `None` when no more are allowed
    /// (the caller told why).
    async fn count_wrong(&self, conn: &mut Connection, left: u32) -> Option<u32> {
        let agent = self.agent;
        let mut left = left - 1;
        let counting = agent.wrong_codes.lock().await;
        let spent = failures(&agent.state_dir) + 1;
        if let Err(e) = set_failures(&agent.state_dir, spent) {
            // The budget cannot be kept: no more tries.
            tracing::error!(error = %format!("{e:#}"), "cannot count a wrong offline code");
            left = 0;
        }
        if spent >= DEVICE_BUDGET {
            left = 0;
        }
        // Each wrong code on this device costs a little more time.
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(spent.min(10)))).await;
        drop(counting);
        let refused = self.event(
            "offline.code_refused",
            serde_json::json!({ "attempts_left": left, "alert": left == 0 }),
        );
        if let Err(e) = spool(agent, &[refused]) {
            tracing::error!(error = %e, "cannot record a refused offline code");
        }
        if spent >= DEVICE_BUDGET {
            conn.refuse(
                Refusal::OfflineLocked,
                format!("{DEVICE_BUDGET} wrong codes on this device: offline codes are off until the server is reached again; nothing ran"),
            )
            .await;
            return None;
        }
        if left == 0 {
            conn.refuse(
                Refusal::ChallengeVoid,
                format!("{ATTEMPTS} wrong codes: this challenge is void; run the command again for a new one"),
            )
            .await;
            return None;
        }
        Some(left)
    }
}
