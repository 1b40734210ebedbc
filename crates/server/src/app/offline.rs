//! Offline codes, the helpdesk's side: read a challenge a person spells out from a device that
//! cannot reach the server (which device, which user), and answer it with a response code under
//! that device's secret. The encoding is `core::offline` (docs/offline-codes.md).
//!
//! Must never: answer without a reason, for an unknown device, for a device the caller did not
//! pick when the challenge fits several, or without the issuance in the audit log first.

use elevate_core::offline::{device_key, Challenge, Scope};
use elevate_core::{Reason, ReasonError, UnknownRequester};
use elevate_proto::limits::MAX_REASON;
use elevate_proto::v1::{OfflineChallengeView, OfflineRespondIn, OfflineResponseOut};

use super::{App, AppError, Principal, Result, Role};
use crate::store::{DeviceRow, RequestFilter};

impl App {
    /// Who a challenge belongs to: the devices with its key and the user last seen with its uid.
    pub async fn inspect_challenge(
        &self,
        caller: &Principal,
        text: &str,
    ) -> Result<(Challenge, Vec<DeviceRow>, Option<String>)> {
        caller.require(&[Role::Approver, Role::Admin])?;
        let challenge =
            Challenge::parse(text).map_err(|e| AppError::BadRequest(format!("challenge: {e}")))?;
        let devices: Vec<DeviceRow> = self
            .store
            .devices()
            .await?
            .into_iter()
            // A revoked device's secret answers nothing: it may be in someone else's hands.
            .filter(|d| device_key(&d.id) == challenge.device && d.revoked.is_none())
            .collect();
        if devices.is_empty() {
            return Err(AppError::NotFound(
                "no enrolled device has this challenge's key: check that it was read correctly (it passed its check character, so more likely it comes from a device this server does not know)".into(),
            ));
        }
        let user = match devices.as_slice() {
            [one] => self.user_seen(&one.name, challenge.uid).await?,
            _ => None,
        };
        Ok((challenge, devices, user))
    }

    /// The login name of `uid` on `device`: what the device reported at its last check-in, or
    /// else the newest request that showed it.
    async fn user_seen(&self, device: &str, uid: u32) -> Result<Option<String>> {
        if let Some(d) = self.store.device_by_name(device).await? {
            if let Some(login) = self.store.device_user(&d.id, uid).await? {
                return Ok(Some(login));
            }
        }
        let filter = RequestFilter {
            device: Some(device),
            ..Default::default()
        };
        Ok(self
            .store
            .requests(&filter, 1000)
            .await?
            .into_iter()
            .find(|r| r.uid == uid)
            .map(|r| r.user))
    }

    /// The groups `user` had on `device` when they last asked (the device decides on the groups
    /// it reads; the server knows them only from requests).
    pub(crate) async fn groups_seen(&self, device: &str, user: &str) -> Result<Vec<String>> {
        let filter = RequestFilter {
            device: Some(device),
            user: Some(user),
            ..Default::default()
        };
        Ok(self
            .store
            .requests(&filter, 1)
            .await?
            .into_iter()
            .next()
            .map(|r| r.groups)
            .unwrap_or_default())
    }

    pub async fn view_challenge(
        &self,
        caller: &Principal,
        text: &str,
    ) -> Result<OfflineChallengeView> {
        let (challenge, devices, user) = self.inspect_challenge(caller, text).await?;
        Ok(OfflineChallengeView {
            challenge: challenge.encode(),
            devices: devices.into_iter().map(super::device_view).collect(),
            uid: challenge.uid,
            user,
            names_command: challenge.command != 0,
        })
    }

    /// Answers a challenge: the response code, recorded (who, why, for which device and user,
    /// which scope and how long) before it is shown.
    pub async fn respond_offline(
        &self,
        caller: &Principal,
        body: &OfflineRespondIn,
    ) -> Result<OfflineResponseOut> {
        let helpdesk = caller.require(&[Role::Approver, Role::Admin])?.name.clone();
        let reason =
            match Reason::required(body.reason.trim().to_owned()) {
                Ok(r) => r.into_string(),
                Err(ReasonError::Missing) => return Err(AppError::BadRequest(
                    "a reason is required: say why this person gets elevation without the server"
                        .into(),
                )),
                Err(e) => return Err(AppError::BadRequest(e.to_string())),
            };
        let scope = match body.scope.as_str() {
            "request" => Scope::Request,
            "session" => Scope::Session,
            "break-glass" => Scope::BreakGlass,
            other => {
                return Err(AppError::BadRequest(format!(
                    "scope {other:?} is not one; use \"request\" (the pending request, once), \"session\" (an admin session) or \"break-glass\" (one share of an emergency session)"
                )))
            }
        };
        if body.minutes == 0 || body.minutes > elevate_core::offline::MAX_MINUTES {
            return Err(AppError::BadRequest(
                elevate_core::offline::CodeError::Duration.to_string(),
            ));
        }
        let codes_needed = match scope {
            Scope::BreakGlass => self.current_policy().await?.1.break_glass_codes(),
            _ => None,
        };
        if scope == Scope::BreakGlass && codes_needed.is_none() {
            return Err(AppError::BadRequest(
                "break glass is off in the policy; set `[defaults] break_glass_codes = 2` (or more) to allow emergency sessions from several helpdesk members' codes".into(),
            ));
        }
        let (challenge, devices, mut user) =
            self.inspect_challenge(caller, &body.challenge).await?;
        let device = match (&body.device, devices.as_slice()) {
            (None, [one]) => one.clone(),
            (Some(name), _) => devices
                .iter()
                .find(|d| &d.name == name)
                .cloned()
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "the challenge does not belong to {name}; it fits {}",
                        names(&devices)
                    ))
                })?,
            (None, _) => {
                return Err(AppError::Conflict(format!(
                    "the challenge fits several devices ({}); say which one the caller is at",
                    names(&devices)
                )))
            }
        };
        if user.is_none() {
            user = self.user_seen(&device.name, challenge.uid).await?;
        }
        // The rule that decides this on the device says who may answer (its responders, its
        // reauth, never the requester); a code for one request covers the command.
        let account = caller.require(&[Role::Approver, Role::Admin])?;
        let answering = super::offline_rules::Answering {
            helpdesk: account,
            device: &device,
            challenge: &challenge,
            user: user.as_deref(),
            reason: &reason,
        };
        let (command, rule) = match scope {
            Scope::Request => {
                let bound = self
                    .bound_command(&challenge, body.command.as_deref(), body.sha256.as_deref())
                    .await?;
                let rule = self.may_answer(&answering, bound.target.clone()).await?;
                (Some(bound), rule)
            }
            Scope::Session if challenge.command != 0 => {
                return Err(AppError::BadRequest(
                    "this challenge is for one command: answer it for the request (scope \"request\" with the command as the caller reads it); an admin session is asked for with `elevate session`".into(),
                ))
            }
            Scope::Session => {
                let asked = jiff::SignedDuration::from_mins(i64::from(body.minutes));
                let rule = self
                    .may_answer(
                        &answering,
                        elevate_core::Target::Session { duration: asked },
                    )
                    .await?;
                (None, rule)
            }
            Scope::BreakGlass => {
                self.may_break_glass(&answering).await?;
                (None, None)
            }
        };
        let secret = self.keys.device_secret(&device.id);
        let mut tx = self.store.begin().await?;
        // A break-glass share is numbered by who answers: the same member always gets the same
        // number, so one person can never give a device two of the shares it needs. Numbered
        // inside the transaction that records it, so two members answering at once cannot get
        // the same number.
        let share = match scope {
            Scope::BreakGlass => Some(
                self.share_for(&mut tx, &device.id, &challenge.encode(), &helpdesk)
                    .await?,
            ),
            _ => None,
        };
        let response = match (share, &command) {
            (Some(n), _) => challenge.respond_share(
                &secret,
                n,
                codes_needed.expect("checked above"),
                body.minutes,
            ),
            (None, Some(c)) => challenge.respond_request(&secret, body.minutes, &c.digest),
            (None, None) => challenge.respond_session(&secret, body.minutes),
        }
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let code = response.encode();
        tx.append_audit(self.event(
            caller.actor(),
            "offline.code_issued",
            format!("device:{}", device.id),
            serde_json::json!({ "device": device.name, "uid": challenge.uid, "user": user,
                "challenge": challenge.encode(), "nonce": challenge.nonce, "scope": scope.as_str(),
                "minutes": body.minutes, "reason": reason, "by": helpdesk, "share": share,
                "command": command.as_ref().map(|c| &c.line),
                "sha256": command.as_ref().map(|c| &c.sha256), "rule": rule }),
        ))
        .await?;
        tx.commit().await?;
        Ok(OfflineResponseOut {
            response: code,
            challenge: challenge.encode(),
            device: device.name,
            uid: challenge.uid,
            user,
            scope: scope.as_str().into(),
            minutes: body.minutes,
            command: command.as_ref().map(|c| c.line.clone()),
            sha256: command.as_ref().map(|c| c.sha256.clone()),
            package: command.and_then(|c| c.package),
            rule,
        })
    }
}

impl App {
    /// The share number of `helpdesk` for a break-glass challenge: the one they had, or the
    /// next free one. Reads the issuances under the audit head's lock, in the transaction that
    /// records the new one, so numbers are never handed out twice.
    async fn share_for(
        &self,
        tx: &mut crate::store::Tx<'_>,
        device_id: &str,
        challenge: &str,
        helpdesk: &str,
    ) -> Result<u8> {
        let issued = tx
            .audit_for_subject_locked(&format!("device:{device_id}"))
            .await?;
        let mut members: Vec<(String, u8)> = Vec::new();
        for r in issued {
            if r.event.action != "offline.code_issued" || !by_a_person(&r) {
                continue;
            }
            let data: serde_json::Value = serde_json::from_str(&r.event.data).unwrap_or_default();
            if data["challenge"] != challenge || data["scope"] != "break-glass" {
                continue;
            }
            if let (Some(by), Some(n)) = (data["by"].as_str(), data["share"].as_u64()) {
                members.push((by.to_owned(), n as u8));
            }
        }
        // One person, one share, whichever of their accounts answers.
        for (by, n) in &members {
            if Self::same_person(&mut tx.directory(), by, helpdesk).await? {
                return Ok(*n);
            }
        }
        let next = members.iter().map(|(_, n)| *n).max().unwrap_or(0) + 1;
        if next > elevate_core::offline::MAX_SHARES {
            return Err(AppError::Conflict(format!(
                "{} helpdesk members have answered this challenge already; that is the most one challenge takes",
                elevate_core::offline::MAX_SHARES
            )));
        }
        Ok(next)
    }
}

fn names(devices: &[DeviceRow]) -> String {
    devices
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an audit record was written by the server for a person (never uploaded by a
/// device, which could otherwise forge issuances or reviews).
fn by_a_person(r: &elevate_core::audit::ChainedRecord) -> bool {
    r.event.actor.starts_with("account:")
}

/// A break-glass session: at least two helpdesk members' shares issued for one challenge,
/// and what the device reported of its use (a device that was tampered with may never report
/// it: the server lists it from its own issuances anyway).
#[derive(Debug, Clone)]
pub struct BreakGlassUse {
    /// The challenge, as the server encodes it.
    pub challenge: String,
    pub at: jiff::Timestamp,
    pub device: String,
    pub user: String,
    pub reason: String,
    /// The helpdesk members who gave a share, in share order.
    pub issued_by: Vec<String>,
    /// The session's length, once the device reported its use.
    pub reported_secs: Option<u64>,
    /// (who, when, note) once reviewed.
    pub review: Option<(String, jiff::Timestamp, String)>,
}

impl App {
    /// Break-glass sessions, newest first, with their reviews: every challenge with shares
    /// from two or more helpdesk members (the server's own records), and every use a device
    /// reported.
    pub async fn break_glass_uses(&self, caller: &Principal) -> Result<Vec<BreakGlassUse>> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        let json = |r: &elevate_core::audit::ChainedRecord| -> serde_json::Value {
            serde_json::from_str(&r.event.data).unwrap_or_default()
        };
        let mut uses: Vec<BreakGlassUse> = Vec::new();
        for r in self.store.audit_by_action("offline.code_issued").await? {
            let d = json(&r);
            if !by_a_person(&r) || d["scope"] != "break-glass" {
                continue;
            }
            let challenge = d["challenge"].as_str().unwrap_or_default().to_owned();
            let by = d["by"].as_str().unwrap_or_default().to_owned();
            match uses.iter_mut().find(|u| u.challenge == challenge) {
                Some(u) => {
                    if !u.issued_by.contains(&by) {
                        u.issued_by.push(by);
                    }
                }
                None => uses.push(BreakGlassUse {
                    challenge,
                    at: r.event.at,
                    device: d["device"].as_str().unwrap_or_default().to_owned(),
                    user: d["user"]
                        .as_str()
                        .map_or_else(|| format!("uid {}", d["uid"]), str::to_owned),
                    reason: d["reason"].as_str().unwrap_or_default().to_owned(),
                    issued_by: vec![by],
                    reported_secs: None,
                    review: None,
                }),
            }
        }
        uses.retain(|u| u.issued_by.len() >= 2);
        for r in self.store.audit_by_action("breakglass.used").await? {
            let d = json(&r);
            // In the server's own spelling (what a device sends is only text).
            let Ok(challenge) = Challenge::parse(d["challenge"].as_str().unwrap_or_default())
            else {
                tracing::warn!(event = %r.event.id, "a break-glass use with no valid challenge");
                continue;
            };
            let challenge = challenge.encode();
            let challenge = challenge.as_str();
            // The device that reported it (the event's actor is checked at ingest).
            let device = r
                .event
                .actor
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_owned();
            let secs = d["length_secs"].as_u64().unwrap_or(0);
            match uses.iter_mut().find(|u| u.challenge == challenge) {
                Some(u) => {
                    u.reported_secs = Some(secs);
                    u.at = r.event.at;
                    if let Some(reason) = d["reason"].as_str() {
                        u.reason = reason.to_owned();
                    }
                    // The server may not have known the uid's name; the device does.
                    if let Some(user) = d["user"].as_str() {
                        u.user = user.to_owned();
                    }
                }
                // A use of shares this server never issued: listed (and alerted at ingest).
                None => uses.push(BreakGlassUse {
                    challenge: challenge.to_owned(),
                    at: r.event.at,
                    device,
                    user: d["user"].as_str().unwrap_or_default().to_owned(),
                    reason: d["reason"].as_str().unwrap_or_default().to_owned(),
                    issued_by: Vec::new(),
                    reported_secs: Some(secs),
                    review: None,
                }),
            }
        }
        for r in self.store.audit_by_action("breakglass.reviewed").await? {
            if !by_a_person(&r) {
                continue;
            }
            let d = json(&r);
            if let Some(u) = uses
                .iter_mut()
                .find(|u| d["challenge"] == u.challenge.as_str())
            {
                u.review.get_or_insert((
                    d["by"].as_str().unwrap_or_default().to_owned(),
                    r.event.at,
                    d["note"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        uses.sort_by_key(|u| std::cmp::Reverse(u.at));
        Ok(uses)
    }

    /// Records the review of a break-glass session: who looked at it, and what they found.
    /// Not by the person who broke glass, nor by a member who gave a share.
    pub async fn review_break_glass(
        &self,
        caller: &Principal,
        challenge: &str,
        note: &str,
    ) -> Result<()> {
        let reviewer = caller.require(&[Role::Admin, Role::Auditor])?.name.clone();
        let note = note.trim();
        if note.is_empty() || note.len() > MAX_REASON {
            return Err(AppError::BadRequest(format!(
                "a review needs a note (1 to {MAX_REASON} bytes): what was done in the session, and whether it was right"
            )));
        }
        let used = self
            .break_glass_uses(caller)
            .await?
            .into_iter()
            .find(|u| u.challenge == challenge)
            .ok_or_else(|| {
                AppError::NotFound("no break-glass session has this challenge".into())
            })?;
        let mut dir = self.store.directory().await?;
        let mut took_part = Self::separation(
            &mut dir,
            &reviewer,
            &used.device,
            &used.user,
            UnknownRequester::CompareNames,
        )
        .await?
        .is_err();
        for by in &used.issued_by {
            took_part = took_part || Self::same_person(&mut dir, by, &reviewer).await?;
        }
        drop(dir);
        if took_part {
            return Err(AppError::Forbidden(format!(
                "{reviewer} took part in this break-glass session; someone else must review it"
            )));
        }
        let mut tx = self.store.begin().await?;
        // Read again under the audit lock: two reviewers at once cannot both record one.
        let reviewed = tx
            .audit_for_subject_locked(&format!("breakglass:{challenge}"))
            .await?
            .into_iter()
            .any(|r| r.event.action == "breakglass.reviewed");
        if reviewed || used.review.is_some() {
            let by = used.review.map(|(by, _, _)| by).unwrap_or_default();
            return Err(AppError::Conflict(format!(
                "this break-glass session was reviewed already{}",
                if by.is_empty() {
                    String::new()
                } else {
                    format!(", by {by}")
                }
            )));
        }
        tx.append_audit(self.event(
            caller.actor(),
            "breakglass.reviewed",
            format!("breakglass:{challenge}"),
            serde_json::json!({ "challenge": challenge, "device": used.device, "user": used.user,
                "issued_by": used.issued_by, "reported": used.reported_secs.is_some(),
                "note": note, "by": reviewer }),
        ))
        .await?;
        tx.commit().await.map_err(Into::into)
    }
}
