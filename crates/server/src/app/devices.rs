//! Enrolment: an admin creates a one-time token; a device trades it for its credential, its
//! offline-code secret and the policy-signing key.
//!
//! Must never: accept an enrolment token twice, after expiry, or for a name already enrolled.

use elevate_proto::v1::{EnrolTokenCreated, Enrolled, RightAlert};
use jiff::SignedDuration;

use super::auth::{new_token, token_hash, DEVICE_TOKEN, ENROL_TOKEN};
use super::{App, AppError, Principal, Result, Role};
use crate::store::DeviceRow;

const MAX_ENROL_TTL: u64 = 30 * 86_400;

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A device as the API shows it.
pub fn device_view(d: DeviceRow) -> elevate_proto::v1::Device {
    elevate_proto::v1::Device {
        id: d.id,
        name: d.name,
        tags: d.tags,
        enrolled_at: d.enrolled_at,
        last_seen_at: d.last_seen_at,
        revoked_at: d.revoked.as_ref().map(|(at, _)| *at),
        revoked_by: d.revoked.map(|(_, by)| by),
    }
}

impl App {
    pub async fn create_enrol_token(
        &self,
        caller: &Principal,
        ttl_secs: Option<u64>,
        tags: &[String],
    ) -> Result<EnrolTokenCreated> {
        let admin = caller.require(&[Role::Admin])?;
        let ttl = ttl_secs.unwrap_or(3600);
        if ttl == 0 || ttl > MAX_ENROL_TTL {
            return Err(AppError::BadRequest(format!(
                "ttl_secs must be between 1 and {MAX_ENROL_TTL} (30 days)"
            )));
        }
        if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
            return Err(AppError::BadRequest(format!(
                "tag {bad:?} is not valid; use letters, digits, '-', '_' or '.' (at most 64)"
            )));
        }
        let token = new_token(ENROL_TOKEN);
        let now = self.now();
        let expires = now + SignedDuration::from_secs(ttl as i64);
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            caller.actor(),
            "enrol_token.created",
            format!("enrol_token:{}", &token_hash(&token)[..16]),
            serde_json::json!({ "tags": tags, "expires_at": expires.to_string(), "by": admin.name }),
        ))
        .await?;
        tx.insert_enrol_token(&token_hash(&token), tags, &admin.name, now, expires)
            .await?;
        tx.commit().await?;
        Ok(EnrolTokenCreated {
            token,
            expires_at: expires,
        })
    }

    pub async fn enrol(&self, token: &str, name: &str) -> Result<Enrolled> {
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(AppError::BadRequest(
                "the device name must be a host name: letters, digits, '-', '_', '.'".into(),
            ));
        }
        let hash = token_hash(token);
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(row) = tx.enrol_token(&hash).await? else {
            return Err(AppError::Unauthenticated(
                "this enrolment token is not valid; ask an admin for a new one (elevatectl enrol-token create)".into(),
            ));
        };
        if row.used_at.is_some() {
            return Err(AppError::Gone(
                "this enrolment token was already used; each token enrols one device".into(),
            ));
        }
        if row.expires_at <= now {
            return Err(AppError::Gone(format!(
                "this enrolment token expired at {}; ask an admin for a new one",
                row.expires_at
            )));
        }
        if self
            .store
            .device_by_name(name)
            .await?
            .is_some_and(|d| d.revoked.is_none())
        {
            return Err(AppError::Conflict(format!(
                "a device named {name} is already enrolled; revoke it first (elevatectl devices revoke {name} --reason TEXT) or use another name"
            )));
        }
        let device_id = uuid::Uuid::now_v7().to_string();
        if !tx.claim_enrol_token(&hash, &device_id, now).await? {
            return Err(AppError::Gone(
                "this enrolment token was used or expired just now; ask for a new one".into(),
            ));
        }
        let credential = new_token(DEVICE_TOKEN);
        tx.append_audit(self.event(
            format!("device:{name}"),
            "device.enrolled",
            format!("device:{device_id}"),
            serde_json::json!({ "name": name, "tags": row.tags }),
        ))
        .await?;
        tx.insert_device(&device_id, name, &row.tags, &token_hash(&credential), now)
            .await?;
        tx.commit().await?;
        Ok(Enrolled {
            device_secret: hex::encode(self.keys.device_secret(&device_id)),
            device_id,
            name: name.to_string(),
            tags: row.tags,
            credential,
            policy_key: self.keys.policy_key_hex(),
        })
    }

    /// Revokes device `name` (admins): its credential is refused from now on, everywhere, and
    /// its offline-code secret answers no more challenges; enrolling it again gives it a new
    /// id, credential and secret.
    pub async fn revoke_device(
        &self,
        caller: &Principal,
        name: &str,
        reason: &str,
    ) -> Result<DeviceRow> {
        let admin = caller.require(&[Role::Admin])?.name.clone();
        let reason = elevate_core::Reason::required(reason.trim().to_owned())
            .map_err(|e| AppError::BadRequest(format!("{e}: say why the device is revoked")))?;
        // Read before the write transaction opens (no second connection while it holds the
        // writer); the conditional UPDATE below settles a race with another revocation.
        let Some(device) = self.store.device_by_name(name).await? else {
            return Err(AppError::NotFound(format!("no device is named {name:?}")));
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if !tx.revoke_device(name, &admin, now).await? {
            return Err(AppError::Conflict(format!(
                "device {name} is revoked already"
            )));
        }
        tx.append_audit(self.event(
            format!("account:{admin}"),
            "device.revoked",
            format!("device:{name}"),
            serde_json::json!({ "device_id": device.id, "reason": reason.as_str() }),
        ))
        .await?;
        tx.commit().await?;
        Ok(DeviceRow {
            revoked: Some((now, admin)),
            ..device
        })
    }

    pub async fn devices(&self, caller: &Principal) -> Result<Vec<DeviceRow>> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        Ok(self.store.devices().await?)
    }

    /// What a device reports of standing admin rights that need a person (rights it cannot
    /// take apart, changes that failed, groups still held by old sessions), the latest report
    /// of each, newest first.
    pub async fn device_rights(&self, caller: &Principal, name: &str) -> Result<Vec<RightAlert>> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        if self.store.device_by_name(name).await?.is_none() {
            return Err(AppError::NotFound(format!("no device is named {name:?}")));
        }
        let records = self
            .store
            .audit_for_subject(&format!("device:{name}"))
            .await?;
        let mut latest: std::collections::BTreeMap<(String, String, String), RightAlert> =
            std::collections::BTreeMap::new();
        for r in records {
            let e = r.event;
            if !e.action.starts_with("rights.") || !e.actor.starts_with("agent@") {
                continue;
            }
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
            if data["alert"] != true {
                continue;
            }
            let text = |k: &str| data[k].as_str().unwrap_or("").to_owned();
            let alert = RightAlert {
                at: e.at,
                action: e.action.clone(),
                user: text("user"),
                right: data
                    .get("described")
                    .and_then(|d| d.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| text("group")),
                message: text("error"),
            };
            latest.insert(
                (
                    alert.action.clone(),
                    alert.user.clone(),
                    alert.right.clone(),
                ),
                alert,
            );
        }
        let mut alerts: Vec<RightAlert> = latest.into_values().collect();
        alerts.sort_by_key(|a| std::cmp::Reverse(a.at));
        Ok(alerts)
    }
}
