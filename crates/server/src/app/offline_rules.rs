//! What the policy says of an offline answer before the helpdesk gets a code: which command a
//! challenge is for (typed by the helpdesk as the caller reads it, found among the programs
//! devices sent, checked against the challenge's command bits), which rule decides it, and
//! whether this helpdesk member may answer it: in the rule's responder group, signed in
//! recently enough for its `reauth`, not the requester, and never for a rule that needs more
//! than one approver or takes no codes.
//!
//! Must never: answer a request-scope challenge without binding the code to the command the
//! device will run; answer for a rule the member could not decide online.

use elevate_core::offline::{command_digest, Challenge};
use elevate_core::{decide, AccessRequest, Channel, Outcome, Subject, Target};
use elevate_proto::v1::WireTarget;

use super::{App, AppError, Result};
use crate::store::{AccountRow, DeviceRow};

/// The command a request-scope code covers, once found.
#[derive(Debug, Clone)]
pub(crate) struct BoundCommand {
    /// As typed and shown (quoted for a shell).
    pub line: String,
    pub sha256: String,
    pub package: Option<String>,
    pub digest: [u8; 32],
    pub target: Target,
}

/// Who is answering, and for whom.
pub(crate) struct Answering<'a> {
    pub helpdesk: &'a AccountRow,
    pub device: &'a DeviceRow,
    pub challenge: &'a Challenge,
    /// The login behind the challenge's uid, when known.
    pub user: Option<&'a str>,
    /// Why the helpdesk answers.
    pub reason: &'a str,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

impl App {
    /// Finds the command a request-scope challenge names from what the helpdesk typed (and,
    /// for a program this server never saw, its SHA-256).
    pub(crate) async fn bound_command(
        &self,
        challenge: &Challenge,
        typed: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<BoundCommand> {
        if challenge.command == 0 {
            return Err(bad(
                "this challenge names no command (an admin session or break glass); answer it with scope \"session\"",
            ));
        }
        let typed = typed.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            bad("type the command exactly as the caller reads it from their screen (program and arguments); the code covers it")
        })?;
        if typed.len() > elevate_proto::limits::MAX_TEXT {
            return Err(bad(format!(
                "the command is longer than {} bytes",
                elevate_proto::limits::MAX_TEXT
            )));
        }
        let words = shlex::split(typed)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                bad("the command's quotes do not match; type it as the caller reads it")
            })?;
        let (program, args) = words.split_first().expect("not empty");
        if !program.starts_with('/') {
            return Err(bad(format!(
                "{program:?} is not a full path; the device shows the program's full path, e.g. /usr/bin/{program}"
            )));
        }
        let line = elevate_core::text::command_line(program, args);
        let candidates: Vec<(String, Option<String>, Target)> = match sha256 {
            Some(h) => {
                let h = h.trim().to_ascii_lowercase();
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(
                        "sha256 is the 64 hex digits `sha256sum PROGRAM` prints",
                    ));
                }
                vec![(
                    h.clone(),
                    None,
                    command_target(program, None, &h, None, args),
                )]
            }
            None => self
                .store
                .known_commands(program)
                .await?
                .into_iter()
                .filter_map(|t| match t {
                    WireTarget::Command {
                        path,
                        invoked,
                        sha256: Some(h),
                        package,
                        ..
                    } => Some((
                        h.clone(),
                        package.clone(),
                        command_target(&path, invoked, &h, package, args),
                    )),
                    _ => None,
                })
                .collect(),
        };
        let seen = candidates.len();
        for (sha256, package, target) in candidates {
            let digest = command_digest(program, &sha256, args);
            if challenge.names(&digest) {
                return Ok(BoundCommand {
                    line,
                    sha256,
                    package,
                    digest,
                    target,
                });
            }
        }
        Err(AppError::Conflict(format!(
            "the challenge is not for {line}: either the caller and you read different commands (ask them to read it again, exactly), or the program on the device is one this server has not seen ({seen} known at {program}); its SHA-256 (sha256sum {program}) settles it"
        )))
    }

    /// Whether `who` may answer a challenge for `target` (a command, or an admin session of
    /// `minutes`): the rule that decides it on this device, its responder group, `reauth`, and
    /// never the requester. `Ok` names the rule.
    pub(crate) async fn may_answer(
        &self,
        who: &Answering<'_>,
        target: Target,
    ) -> Result<Option<String>> {
        let (_, policy) = self.current_policy().await?;
        let (user, groups) = match who.user {
            Some(u) => (u.to_owned(), self.groups_seen(&who.device.name, u).await?),
            None => (format!("uid {}", who.challenge.uid), vec![]),
        };
        let request = AccessRequest {
            subject: Subject {
                user: user.clone(),
                uid: who.challenge.uid,
                groups,
                device: who.device.name.clone(),
                device_tags: who.device.tags.clone(),
            },
            target,
            reason: Some(who.reason.to_owned()),
            channel: Channel::Offline,
        };
        let now = self.now();
        let decision = decide(&policy, &request, now);
        let rule = decision.rule.clone();
        let named = rule.as_deref().unwrap_or("(the defaults)");
        let (unknown, responders, reauth) = match &decision.outcome {
            Outcome::Deny { message } => {
                return Err(AppError::Forbidden(format!(
                    "the policy denies this ({named}): {message}"
                )))
            }
            Outcome::Approve(route) if route.count > 1 => {
                return Err(AppError::Forbidden(format!(
                    "rule {named} needs {} different approvers; one helpdesk code cannot stand in for them, so it waits for the server",
                    route.count
                )))
            }
            _ if !decision.constraints.offline_codes => {
                return Err(AppError::Forbidden(format!(
                    "rule {named} takes no offline codes (offline = false)"
                )))
            }
            Outcome::Approve(route) => (
                route.unknown_requester,
                route.responders().to_owned(),
                route.reauth,
            ),
            // Allowed at once by the policy the server has (the device's may be older, or
            // past its offline_max_age): the default approvers answer.
            Outcome::Auto => (
                policy.default_unknown_requester(),
                policy.default_approvers().to_owned(),
                None,
            ),
        };
        let helpdesk = who.helpdesk;
        if !helpdesk.groups.contains(&responders) {
            return Err(AppError::Forbidden(format!(
                "{named} is answered by group {responders:?}, and {} is not in it",
                helpdesk.name
            )));
        }
        if let Some(limit) = reauth {
            let fresh = helpdesk
                .signed_in_at
                .is_some_and(|at| now.duration_since(at) <= limit);
            if !fresh {
                return Err(AppError::Unauthenticated(format!(
                    "rule {named} needs a sign-in within the last {} to answer; sign in again",
                    elevate_core::duration::format(limit)
                )));
            }
        }
        let own = match who.user {
            Some(login) => {
                Self::separation(
                    &mut self.store.directory().await?,
                    &helpdesk.name,
                    &who.device.name,
                    login,
                    unknown,
                )
                .await?
            }
            None if unknown == elevate_core::UnknownRequester::Refuse => Err(format!(
                "nobody knows whose uid {} on {} is (the device has not reported its logins), and {named} refuses unknown requesters",
                who.challenge.uid, who.device.name
            )),
            None => self.unknown_uid(who).await?,
        };
        own.map_err(|why| {
            AppError::Forbidden(format!(
                "you cannot answer this challenge (uid {} on {}): {why}",
                who.challenge.uid, who.device.name
            ))
        })?;
        Ok(rule)
    }
}

impl App {
    /// Whether `who` may give a break-glass share: never for their own login.
    pub(crate) async fn may_break_glass(&self, who: &Answering<'_>) -> Result<()> {
        let unknown = match self.current_policy().await {
            Ok((_, policy)) => policy.default_unknown_requester(),
            Err(AppError::Unavailable(_)) => elevate_core::UnknownRequester::default(),
            Err(e) => return Err(e),
        };
        let own = match who.user {
            Some(login) => {
                Self::separation(
                    &mut self.store.directory().await?,
                    &who.helpdesk.name,
                    &who.device.name,
                    login,
                    unknown,
                )
                .await?
            }
            None => self.unknown_uid(who).await?,
        };
        own.map_err(|why| {
            AppError::Forbidden(format!(
                "you cannot answer this challenge (uid {} on {}): {why}",
                who.challenge.uid, who.device.name
            ))
        })
    }
}

impl App {
    /// A challenge whose uid nobody can name (the device never reported it, nobody asked
    /// from it): the member answering could be that person, unless the directory says they
    /// have no login on this device at all. Fails closed otherwise.
    async fn unknown_uid(&self, who: &Answering<'_>) -> Result<std::result::Result<(), String>> {
        let refused = Err(format!(
            "nobody knows whose uid {} on {} is yet, so it could be yours; someone whose directory entry has no login on this device may answer (or the device names its logins once it reaches the server)",
            who.challenge.uid, who.device.name
        ));
        let mut dir = self.store.directory().await?;
        let Some((_, user_name)) = dir.person_linked("account", &who.helpdesk.name).await? else {
            return Ok(refused);
        };
        let Some(p) = self.store.person(&user_name).await? else {
            return Ok(refused);
        };
        let fits = |scope: &str| {
            super::people::scope_fit(scope, &who.device.name, &who.device.tags).is_some()
        };
        if p.logins.iter().any(|(_, scope)| fits(scope)) {
            return Ok(refused);
        }
        Ok(Ok(()))
    }
}

fn command_target(
    path: &str,
    invoked: Option<String>,
    sha256: &str,
    package: Option<String>,
    args: &[String],
) -> Target {
    Target::Command(elevate_core::CommandSpec {
        path: path.to_owned(),
        invoked: invoked.filter(|i| i != path),
        sha256: Some(sha256.to_owned()),
        package,
        args: args.to_vec(),
    })
}
