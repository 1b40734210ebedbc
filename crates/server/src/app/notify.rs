//! Notifications: each request event is queued for every channel that wants it, in the
//! transaction that records the event, then sent by the delivery job (`jobs`), which retries with
//! backoff and keeps every attempt for the delivery log.
//!
//! Must never: send from inside a decision (a slow receiver must not hold a request), queue a
//! notification for an event that did not commit, or drop one on restart.

use elevate_core::audit::AuditEvent;
use elevate_core::lifecycle::RequestState;
use jiff::SignedDuration;
use serde_json::json;

use super::{App, AppError, Principal, Result, Role};
use crate::integrations::webhook::{self, Sent};
use crate::store::{AttemptEnd, AttemptRow, DeliveryRow, NotifyChannel, RequestRow, Tx};

/// Channels are given up on after this long without success.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(24);
/// How long a sender holds a claimed delivery before another may take it.
const LEASE: SignedDuration = SignedDuration::from_secs(120);
/// A confirmed webhook handshake is trusted this long.
const HANDSHAKE_FOR: SignedDuration = SignedDuration::from_hours(24);

/// Outgoing channels, from the server's configuration.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    pub webhooks: Vec<webhook::Subscription>,
    pub slack: Option<crate::integrations::slack::SlackConfig>,
    pub email: Option<crate::integrations::email::EmailConfig>,
    pub teams: Option<crate::integrations::teams::TeamsConfig>,
}

/// The wait before attempt `attempts + 1`: 10 s, doubling, at most an hour.
pub fn backoff(attempts: u32) -> SignedDuration {
    let secs = 10u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
    SignedDuration::from_secs(secs.min(3600) as i64)
}

/// The queued payload of a delivery, or the refusal to send it when it is damaged.
pub(crate) fn queued_payload(
    delivery: &DeliveryRow,
) -> std::result::Result<serde_json::Value, Sent> {
    serde_json::from_str(&delivery.payload)
        .map_err(|e| Sent::refused(format!("the queued payload is not JSON: {e}")))
}

/// Where a chat (Slack, Teams) shows `event` of a request that waits for approvers: the rule's
/// channel, else its group's (the escalation group's, for an escalation), else `*`. `None`
/// for requests that never waited for anyone, or with no channel configured.
pub(crate) fn chat_channel<'a, V>(
    channels: &'a std::collections::BTreeMap<String, V>,
    row: &RequestRow,
    event: &AuditEvent,
) -> Option<(&'a String, &'a V)> {
    if row.decision.outcome != "approve" {
        return None;
    }
    let escalation = event.action == "request.escalated";
    let group = match (escalation, &row.escalated_to) {
        (true, Some(to)) => to.clone(),
        _ => row.decision.approvers.clone().unwrap_or_default(),
    };
    crate::integrations::channel_key(channels, row.decision.rule.as_deref(), &group, escalation)
}

/// A delivery with its attempts, for the log.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub delivery: DeliveryRow,
    pub attempts: Vec<AttemptRow>,
}

impl App {
    /// The URL people open for the portal (configured, or where this server listens).
    pub fn public_url(&self) -> String {
        self.settings
            .public_url
            .clone()
            .or_else(|| self.listening.get().cloned())
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
    }

    /// The name this server gives itself to webhook receivers (the host of its public URL).
    pub fn origin(&self) -> String {
        let url = self.public_url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        rest.split(['/', '?', '#'])
            .next()
            .unwrap_or(rest)
            .to_string()
    }

    /// Appends `event` about request `row` (now in `state`) to the audit chain and queues it
    /// for every subscriber, in `tx`.
    pub(crate) async fn record_request(
        &self,
        tx: &mut Tx<'_>,
        row: &RequestRow,
        state: RequestState,
        event: AuditEvent,
    ) -> Result<()> {
        let i = &self.settings.integrations;
        if i.webhooks.is_empty() && i.slack.is_none() && i.email.is_none() && i.teams.is_none() {
            // Nothing to tell anyone: the event only goes into the chain.
            tx.append_audit(event).await?;
            return Ok(());
        }
        tx.append_audit(event.clone()).await?;
        let snapshot = self.request_snapshot(row, state);
        let mut queued = false;
        let wanted: Vec<&webhook::Subscription> = self
            .settings
            .integrations
            .webhooks
            .iter()
            .filter(|s| s.wants(&event.action))
            .collect();
        if !wanted.is_empty() {
            let body = self.cloud_event(&snapshot, &event).to_string();
            for subscription in wanted {
                tx.queue_delivery(
                    NotifyChannel::Webhook,
                    &subscription.name,
                    &event.action,
                    &event.subject,
                    &body,
                    self.now(),
                )
                .await?;
                queued = true;
            }
        }
        queued |= self.queue_slack(tx, row, state, &event, &snapshot).await?;
        queued |= self.queue_email(tx, row, state, &event, &snapshot).await?;
        queued |= self.queue_teams(tx, row, state, &event, &snapshot).await?;
        if queued {
            self.deliveries_due.notify_one();
        }
        Ok(())
    }

    /// Whether a webhook wants this event a device reported (a run it allowed on its own, an
    /// offline code it took, discovery, its alerts).
    pub(crate) fn wants_device_event(&self, event: &AuditEvent) -> bool {
        self.settings
            .integrations
            .webhooks
            .iter()
            .any(|s| s.wants(&event.action))
    }

    /// Queues a device's event for the webhooks that want it, in the ingest transaction (only
    /// events stored for the first time: a batch sent again tells nobody twice).
    pub(crate) async fn queue_device_event(
        &self,
        tx: &mut Tx<'_>,
        device: &str,
        event: &AuditEvent,
    ) -> Result<()> {
        let details: serde_json::Value =
            serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let body = json!({
            "specversion": "1.0",
            "id": event.id,
            "source": format!("{}/v1/devices/{device}", self.public_url()),
            "type": webhook::event_type(&event.action),
            "subject": event.subject,
            "time": event.at.to_string(),
            "datacontenttype": "application/json",
            "data": { "action": event.action, "actor": event.actor, "device": device,
                      "details": details },
        })
        .to_string();
        for subscription in self
            .settings
            .integrations
            .webhooks
            .iter()
            .filter(|s| s.wants(&event.action))
        {
            tx.queue_delivery(
                NotifyChannel::Webhook,
                &subscription.name,
                &event.action,
                &event.subject,
                &body,
                self.now(),
            )
            .await?;
        }
        Ok(())
    }

    /// What notifications say about a request, as JSON.
    pub(crate) fn request_snapshot(
        &self,
        row: &RequestRow,
        state: RequestState,
    ) -> serde_json::Value {
        json!({
            "id": row.id,
            "state": state.as_str(),
            "user": row.user,
            "uid": row.uid,
            "device": row.device,
            "target": row.target,
            "reason": row.reason,
            "channel": row.channel,
            "created_at": row.created_at.to_string(),
            "outcome": row.decision.outcome,
            "rule": row.decision.rule,
            "approvers": row.decision.approvers,
            "needed": row.decision.needed,
            "escalated_to": row.escalated_to,
            "url": format!("{}/portal/requests/{}", self.public_url(), row.id),
        })
    }

    /// A CloudEvent 1.0 (structured JSON) telling of `event`. Its id is the audit event's id, so
    /// a receiver can find it in the audit log and drop repeats.
    fn cloud_event(&self, snapshot: &serde_json::Value, event: &AuditEvent) -> serde_json::Value {
        let details: serde_json::Value =
            serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        json!({
            "specversion": "1.0",
            "id": event.id,
            "source": format!("{}/v1/requests", self.public_url()),
            "type": webhook::event_type(&event.action),
            "subject": snapshot["id"],
            "time": event.at.to_string(),
            "datacontenttype": "application/json",
            "data": {
                "action": event.action,
                "actor": event.actor,
                "details": details,
                "request": snapshot,
            },
        })
    }

    /// Sends every due delivery once; returns how many were tried. Rows are claimed one at a
    /// time, so a lease only ever covers the one send in progress (a slow receiver cannot make
    /// a batch outlive its lease and be sent twice by another replica).
    pub async fn send_due_deliveries(&self) -> Result<usize> {
        let mut tried = 0;
        loop {
            let batch = self.store.claim_deliveries(self.now(), LEASE, 1).await?;
            if batch.is_empty() {
                return Ok(tried);
            }
            tried += batch.len();
            for delivery in batch {
                self.send_one(delivery).await?;
            }
        }
    }

    async fn send_one(&self, delivery: DeliveryRow) -> Result<()> {
        let started = std::time::Instant::now();
        let sent = match &delivery.channel {
            NotifyChannel::Webhook => self.send_webhook(&delivery).await,
            NotifyChannel::Slack => self.send_slack(&delivery).await,
            NotifyChannel::Email => self.send_email(&delivery).await,
            NotifyChannel::Teams => self.send_teams(&delivery).await,
            NotifyChannel::Unknown(other) => {
                Sent::refused(format!("this server cannot send on channel {other:?}"))
            }
        };
        let elapsed = started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        let now = self.now();
        let give_up = now.duration_since(delivery.created_at) >= GIVE_UP_AFTER;
        let (end, status, error) = match sent {
            Sent::Delivered(status) => (AttemptEnd::Delivered, Some(status), None),
            Sent::Refused { status, error } => (
                AttemptEnd::Failed,
                (status != 0).then_some(status),
                Some(error),
            ),
            Sent::Retry { status, error } if give_up => (
                AttemptEnd::Failed,
                status,
                Some(format!(
                    "{error}; given up after {} attempts",
                    delivery.attempts
                )),
            ),
            Sent::Retry { status, error } => (
                AttemptEnd::Retry(now + backoff(delivery.attempts)),
                status,
                Some(error),
            ),
        };
        if let Some(e) = &error {
            tracing::warn!(delivery = %delivery.id, channel = %delivery.channel,
                target = %delivery.target, attempt = delivery.attempts, error = %e,
                "a notification was not delivered");
        }
        self.store
            .finish_attempt(
                &delivery.id,
                delivery.attempts,
                end,
                status,
                error.as_deref(),
                elapsed,
                now,
            )
            .await?;
        Ok(())
    }

    async fn send_webhook(&self, delivery: &DeliveryRow) -> Sent {
        let Some(subscription) = self
            .settings
            .integrations
            .webhooks
            .iter()
            .find(|s| s.name == delivery.target)
        else {
            return Sent::refused(format!(
                "no webhook named {:?} is configured any more",
                delivery.target
            ));
        };
        let origin = self.origin();
        let now = self.now();
        let confirmed = self
            .handshakes
            .lock()
            .expect("the handshake cache is never poisoned")
            .get(&subscription.name)
            .is_some_and(|(url, at)| {
                *url == subscription.url && now.duration_since(*at) < HANDSHAKE_FOR
            });
        if !confirmed {
            if let Err(refused) = webhook::handshake(&self.http, &subscription.url, &origin).await {
                return refused;
            }
            self.handshakes
                .lock()
                .expect("the handshake cache is never poisoned")
                .insert(subscription.name.clone(), (subscription.url.clone(), now));
        }
        let id = serde_json::from_str::<serde_json::Value>(&delivery.payload)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .unwrap_or_else(|| delivery.id.clone());
        let sent = webhook::post(
            &self.http,
            subscription,
            &origin,
            &id,
            delivery.payload.as_bytes(),
            now,
        )
        .await;
        if matches!(sent, Sent::Refused { .. }) {
            // It may have dropped us: ask again before the next event.
            self.handshakes
                .lock()
                .expect("the handshake cache is never poisoned")
                .remove(&subscription.name);
        }
        sent
    }

    /// The delivery log: newest first, optionally of one request. Admins and auditors.
    pub async fn deliveries(
        &self,
        caller: &Principal,
        request: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let subject = request.map(|r| format!("request:{r}"));
        Ok(self
            .store
            .deliveries(subject.as_deref(), limit.clamp(1, 1000))
            .await?)
    }

    /// One delivery and all its attempts.
    pub async fn delivery(&self, caller: &Principal, id: &str) -> Result<DeliveryDetail> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        let delivery = self
            .store
            .delivery(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no delivery {id}")))?;
        let attempts = self.store.delivery_attempts(id).await?;
        Ok(DeliveryDetail { delivery, attempts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour() {
        let secs: Vec<i64> = (1..=12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(
            secs,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
        );
        assert_eq!(backoff(0).as_secs(), 10);
        assert_eq!(backoff(u32::MAX).as_secs(), 3600);
    }
}
