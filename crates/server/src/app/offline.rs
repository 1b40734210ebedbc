//! Offline codes, the helpdesk's side: read a challenge a person spells out from a device that
//! cannot reach the server (which device, which user), and answer it with a response code under
//! that device's secret. The encoding is `core::offline` (docs/offline-codes.md).
//!
//! Must never: answer without a reason, for an unknown device, for a device the caller did not
//! pick when the challenge fits several, or without the issuance in the audit log first.

use elevate_core::offline::{device_key, Challenge, Scope};
use elevate_proto::v1::{OfflineChallengeView, OfflineRespondIn, OfflineResponseOut};

use super::{App, AppError, Principal, Result, Role};
use crate::store::{DeviceRow, RequestFilter};

/// Longest reason kept.
const MAX_REASON: usize = 4096;

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
            .filter(|d| device_key(&d.id) == challenge.device)
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

    /// The login name of `uid` on `device`, from the newest request that showed it.
    async fn user_seen(&self, device: &str, uid: u32) -> Result<Option<String>> {
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

    pub async fn view_challenge(
        &self,
        caller: &Principal,
        text: &str,
    ) -> Result<OfflineChallengeView> {
        let (challenge, devices, user) = self.inspect_challenge(caller, text).await?;
        Ok(OfflineChallengeView {
            challenge: challenge.encode(),
            devices: devices.into_iter().map(device_view).collect(),
            uid: challenge.uid,
            user,
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
        let reason = body.reason.trim();
        if reason.is_empty() {
            return Err(AppError::BadRequest(
                "a reason is required: say why this person gets elevation without the server"
                    .into(),
            ));
        }
        if reason.len() > MAX_REASON {
            return Err(AppError::BadRequest(format!(
                "a reason may be at most {MAX_REASON} bytes"
            )));
        }
        let scope = match body.scope.as_str() {
            "request" => Scope::Request,
            "session" => Scope::Session,
            other => {
                return Err(AppError::BadRequest(format!(
                    "scope {other:?} is not one; use \"request\" (the pending request, once) or \"session\" (an admin session)"
                )))
            }
        };
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
        // Nobody answers their own challenge (the offline twin of "never the requester").
        if user.as_deref() == Some(helpdesk.as_str()) {
            return Err(AppError::Forbidden(format!(
                "this challenge is {helpdesk}'s own (uid {} on {}); another member of the helpdesk must answer it",
                challenge.uid, device.name
            )));
        }
        let secret = self.keys.device_secret(&device.id);
        let response = challenge
            .respond(&secret, scope, body.minutes)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let code = response.encode();
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            caller.actor(),
            "offline.code_issued",
            format!("device:{}", device.id),
            serde_json::json!({ "device": device.name, "uid": challenge.uid, "user": user,
                "challenge": challenge.encode(), "nonce": challenge.nonce, "scope": scope.as_str(),
                "minutes": body.minutes, "reason": reason, "by": helpdesk }),
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
        })
    }
}

fn names(devices: &[DeviceRow]) -> String {
    devices
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn device_view(d: DeviceRow) -> elevate_proto::v1::Device {
    elevate_proto::v1::Device {
        id: d.id,
        name: d.name,
        tags: d.tags,
        enrolled_at: d.enrolled_at,
        last_seen_at: d.last_seen_at,
    }
}
