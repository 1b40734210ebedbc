//! Routing over time: a request whose rule's SLA passes without a decision is escalated to the
//! rule's escalation group (who may then decide it too, beside the first group) or, with no
//! such group, recorded as having missed its SLA. Either way every channel hears of it, the
//! requester included.
//!
//! Must never: escalate a request that is no longer pending, or twice.

use elevate_core::lifecycle::RequestState;
use serde_json::json;

use super::{App, Result};

impl App {
    /// Handles every pending request whose SLA has passed; returns how many. One that fails is
    /// logged and skipped.
    pub async fn escalate_due(&self) -> Result<usize> {
        let ids = self.store.sla_due_requests(self.now()).await?;
        let mut handled = 0;
        for id in ids {
            match self.escalate_one(&id).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(request = %id, error = %e, "could not escalate a request"),
            }
        }
        if handled > 0 {
            self.announce_change();
        }
        Ok(handled)
    }

    /// Escalates one request if it is still pending and due; whether it did.
    async fn escalate_one(&self, id: &str) -> Result<bool> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(row) = tx.request_for_update(id).await? else {
            return Ok(false);
        };
        if row.state != RequestState::Pending || row.sla_due.is_none_or(|due| due > now) {
            return Ok(false);
        }
        let to = row.decision.escalate.clone();
        let action = if to.is_some() {
            "request.escalated"
        } else {
            "request.sla_missed"
        };
        let event = self.event(
            "system",
            action,
            format!("request:{id}"),
            json!({ "from": row.decision.approvers, "to": to,
                    "sla_secs": row.decision.sla_secs,
                    "waited_secs": now.duration_since(row.created_at).as_secs() }),
        );
        tx.escalate_request(id, to.as_deref()).await?;
        let mut after = row.clone();
        after.sla_due = None;
        if to.is_some() {
            after.escalated_to = to;
        }
        self.record_request(&mut tx, &after, RequestState::Pending, event)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
