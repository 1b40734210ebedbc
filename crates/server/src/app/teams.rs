//! Microsoft Teams: a card for each request that waits for approvers, in the channel of its
//! approver group, and a short card with the outcome. The card's buttons open one-time links
//! made when it is sent (for whoever of the group signs in).
//!
//! Must never: queue a card outside the transaction that records the event.

use elevate_core::audit::AuditEvent;
use elevate_core::lifecycle::RequestState;
use serde_json::json;

use super::{App, Result};
use crate::integrations::teams;
use crate::integrations::webhook::Sent;
use crate::store::{DeliveryRow, NotifyChannel, RequestRow, Tx};

impl App {
    /// Queues the card an event calls for. Returns whether something was queued.
    pub(crate) async fn queue_teams(
        &self,
        tx: &mut Tx<'_>,
        row: &RequestRow,
        state: RequestState,
        event: &AuditEvent,
        snapshot: &serde_json::Value,
    ) -> Result<bool> {
        let Some(config) = &self.settings.integrations.teams else {
            return Ok(false);
        };
        if row.decision.outcome != "approve" {
            return Ok(false);
        }
        let buttons = match event.action.as_str() {
            "request.decided" if state == RequestState::Pending => true,
            "request.escalated" => true,
            "request.approved" | "request.denied" | "request.expired" | "request.cancelled" => {
                false
            }
            _ => return Ok(false),
        };
        let targets: Vec<String> = if buttons {
            super::notify::chat_channel(&config.channels, row, event)
                .map(|(t, _)| vec![t.clone()])
                .unwrap_or_default()
        } else {
            // The outcome goes wherever a card with buttons went: the first group's channel
            // and, after an escalation, the escalation group's.
            let group = row.decision.approvers.clone().unwrap_or_default();
            let rule = row.decision.rule.as_deref();
            let mut t: Vec<String> =
                crate::integrations::channel_key(&config.channels, rule, &group, false)
                    .into_iter()
                    .chain(row.escalated_to.as_deref().and_then(|e| {
                        crate::integrations::channel_key(&config.channels, rule, e, true)
                    }))
                    .map(|(k, _)| k.clone())
                    .collect();
            t.dedup();
            t
        };
        // What the card says is drawn when it is sent (`current_status`).
        let payload = json!({ "request": { "id": snapshot["id"] }, "buttons": buttons });
        for target in &targets {
            tx.queue_delivery(
                NotifyChannel::Teams,
                target,
                &event.action,
                &event.subject,
                &payload.to_string(),
                self.now(),
            )
            .await?;
        }
        Ok(!targets.is_empty())
    }

    /// Sends one queued card.
    pub(crate) async fn send_teams(&self, delivery: &DeliveryRow) -> Sent {
        let Some(url) = self
            .settings
            .integrations
            .teams
            .as_ref()
            .and_then(|c| c.channels.get(&delivery.target))
        else {
            return Sent::refused(format!(
                "no Teams channel is configured for {:?} any more",
                delivery.target
            ));
        };
        let payload = match super::notify::queued_payload(delivery) {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        let id = payload["request"]["id"].as_str().unwrap_or_default();
        let (request, status, pending) = match self.current_status(id).await {
            Ok(c) => c,
            Err(e) => {
                return Sent::Retry {
                    status: None,
                    error: format!("cannot read the request: {e}"),
                }
            }
        };
        let portal = format!("{}/portal/requests/{id}", self.public_url());
        // Buttons (one-time links, made now) only while the request still waits.
        let links = (payload["buttons"] == true && pending).then(|| {
            (
                self.approval_link(id, true, None),
                self.approval_link(id, false, None),
            )
        });
        let card = teams::card(
            &request,
            &status,
            links.as_ref().map(|(a, d)| (a.as_str(), d.as_str())),
            &portal,
        );
        teams::post(&self.http, url, &teams::message(card)).await
    }
}
