//! E-mail notifications: each approver of the routed group who has an address gets the request
//! with one-time Approve/Deny links made for them; the requester hears of approval, denial and
//! expiry. Links are made when the mail is sent, so a mail that waited for a retry still
//! carries links that work for an hour.
//!
//! Must never: mail the requester a link to decide their own request, or queue mail outside the
//! transaction that records the event.

use askama::Template;
use elevate_core::audit::AuditEvent;
use elevate_core::lifecycle::RequestState;
use serde_json::json;

use super::{App, AppError, Result};
use crate::integrations::email::{self, Fact, Html, Mail};
use crate::integrations::webhook::Sent;
use crate::integrations::{cut, describe_target, printable};
use crate::store::{DeliveryRow, NotifyChannel, RequestRow, Tx};

fn facts(request: &serde_json::Value) -> Vec<Fact> {
    let s = |v: &serde_json::Value| printable(v.as_str().unwrap_or("?"));
    let mut out = vec![
        Fact {
            label: "What",
            value: printable(&describe_target(&request["target"])),
        },
        Fact {
            label: "User",
            value: s(&request["user"]),
        },
        Fact {
            label: "Device",
            value: s(&request["device"]),
        },
    ];
    if let Some(sha) = request["target"]["sha256"].as_str() {
        out.push(Fact {
            label: "SHA-256",
            value: printable(sha),
        });
    }
    if let Some(p) = request["target"]["package"].as_str() {
        out.push(Fact {
            label: "Package",
            value: printable(p),
        });
    }
    out.push(Fact {
        label: "Reason",
        value: request["reason"]
            .as_str()
            .map(printable)
            .unwrap_or_else(|| "(none given)".into()),
    });
    out.push(Fact {
        label: "Approvers",
        value: format!(
            "{} ({} needed)",
            s(&request["approvers"]),
            request["needed"].as_u64().unwrap_or(1)
        ),
    });
    out
}

impl App {
    /// Sets (or clears) where an account's notifications go.
    pub async fn set_account_email(&self, name: &str, email: Option<&str>) -> Result<()> {
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => Some(
                email::parse_address(e)
                    .map_err(AppError::BadRequest)?
                    .email
                    .to_string(),
            ),
            None => None,
        };
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            "system",
            "account.email_set",
            format!("account:{name}"),
            json!({ "email": email }),
        ))
        .await?;
        if !tx.set_account_email(name, email.as_deref()).await? {
            return Err(AppError::NotFound(format!("no account {name}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues the mails an event calls for. Returns whether something was queued.
    pub(crate) async fn queue_email(
        &self,
        tx: &mut Tx<'_>,
        row: &RequestRow,
        state: RequestState,
        event: &AuditEvent,
        snapshot: &serde_json::Value,
    ) -> Result<bool> {
        let Some(config) = &self.settings.integrations.email else {
            return Ok(false);
        };
        let mut queued = false;
        let approvers_of = match (event.action.as_str(), &row.escalated_to) {
            ("request.decided", _) if state == RequestState::Pending => {
                row.decision.approvers.clone()
            }
            ("request.escalated", Some(to)) => Some(to.clone()),
            ("request.sla_missed", _) => row.decision.approvers.clone(),
            _ => None,
        };
        if let Some(group) = approvers_of {
            // Read in this transaction: a second pool connection per event could starve the
            // pool while transactions wait on each other.
            for account in tx.accounts_in_tx().await? {
                let may_decide = account.groups.contains(&group)
                    && account
                        .roles
                        .iter()
                        .any(|r| r == "approver" || r == "admin");
                let Some(address) = account.email.as_deref() else {
                    continue;
                };
                if !may_decide
                    || Self::separation(
                        &mut tx.directory(),
                        &account.name,
                        &row.device,
                        &row.user,
                        super::requests::unknown_requester(row),
                    )
                    .await?
                    .is_err()
                {
                    continue;
                }
                let payload = json!({ "kind": "approval", "account": account.name,
                                          "request": snapshot });
                tx.queue_delivery(
                    NotifyChannel::Email,
                    address,
                    &event.action,
                    &event.subject,
                    &payload.to_string(),
                    self.now(),
                )
                .await?;
                queued = true;
            }
        }
        match event.action.as_str() {
            "request.approved"
            | "request.denied"
            | "request.expired"
            | "request.escalated"
            | "request.sla_missed"
            | "request.approval_given"
                if !(event.action == "request.approval_given"
                    && state != RequestState::Pending) =>
            {
                let own = tx.account_in_tx(&row.user).await?.and_then(|a| a.email);
                let address = match own {
                    Some(a) => Some(a),
                    None => config
                        .requester_domain
                        .as_ref()
                        .filter(|_| !row.user.is_empty() && !row.user.contains(['@', ' ']))
                        .map(|d| format!("{}@{d}", row.user)),
                };
                if let Some(address) = address {
                    let approvals = tx.approvals_in_tx(&row.id).await?;
                    let by: Vec<String> = approvals
                        .iter()
                        .map(|a| {
                            let verdict = if a.verdict == "approve" {
                                "approved"
                            } else {
                                "denied"
                            };
                            match &a.comment {
                                Some(c) => format!("{} ({verdict}: {c})", a.approver),
                                None => format!("{} ({verdict})", a.approver),
                            }
                        })
                        .collect();
                    let details: serde_json::Value =
                        serde_json::from_str(&event.data).unwrap_or_default();
                    let payload = json!({ "kind": "outcome", "state": state.as_str(),
                                          "was": row.state.as_str(), "by": by,
                                          "event": event.action, "details": details,
                                          "request": snapshot });
                    tx.queue_delivery(
                        NotifyChannel::Email,
                        &address,
                        &event.action,
                        &event.subject,
                        &payload.to_string(),
                        self.now(),
                    )
                    .await?;
                    queued = true;
                }
            }
            _ => {}
        }
        Ok(queued)
    }

    /// Composes and sends one queued mail.
    pub(crate) async fn send_email(&self, delivery: &DeliveryRow) -> Sent {
        let Some(config) = &self.settings.integrations.email else {
            return Sent::refused("e-mail is not configured any more");
        };
        let payload = match super::notify::queued_payload(delivery) {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        let request = &payload["request"];
        let id = request["id"].as_str().unwrap_or_default();
        let portal = format!("{}/portal/requests/{id}", self.public_url());
        let facts = facts(request);
        let what = cut(&printable(&describe_target(&request["target"])), 80);
        let user = printable(request["user"].as_str().unwrap_or("?"));
        let device = printable(request["device"].as_str().unwrap_or("?"));
        let (subject, heading, links) = match payload["kind"].as_str() {
            Some("approval") => {
                // Links are made for a request that still waits; one decided while the mail
                // waited for a retry is not sent at all.
                match self.current_status(id).await {
                    Ok((_, _, true)) => {}
                    Ok((_, status, false)) => {
                        return Sent::refused(format!(
                            "not sent: the request was settled before the mail could go ({status})"
                        ))
                    }
                    Err(e) => {
                        return Sent::Retry {
                            status: None,
                            error: format!("cannot read the request: {e}"),
                        }
                    }
                }
                let account = payload["account"].as_str();
                let links = (
                    self.approval_link(id, true, account),
                    self.approval_link(id, false, account),
                );
                (
                    format!("Approve? {user} on {device}: {what}"),
                    format!("{user} asks to elevate on {device}"),
                    Some(links),
                )
            }
            Some("outcome") => {
                let state = payload["state"].as_str().unwrap_or("decided");
                let by: Vec<String> = payload["by"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| printable(x.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                let details = &payload["details"];
                let name = |k: &str| printable(details[k].as_str().unwrap_or("?"));
                let heading = match (payload["event"].as_str().unwrap_or_default(), state) {
                    ("request.approval_given", _) => format!(
                        "Your request has an approval from {}; it needs {} in all",
                        name("approver"),
                        request["needed"].as_u64().unwrap_or(1)
                    ),
                    ("request.escalated", _) => format!(
                        "Your request went to {}: nobody in {} answered within {} minutes",
                        name("to"),
                        name("from"),
                        details["sla_secs"].as_u64().unwrap_or(0) / 60
                    ),
                    ("request.sla_missed", _) => format!(
                        "Your request has waited longer than its rule's {} minutes; {} have been told again",
                        details["sla_secs"].as_u64().unwrap_or(0) / 60,
                        name("from")
                    ),
                    (_, "approved") => format!("Your request was approved by {}", by.join(", ")),
                    (_, "denied") => format!("Your request was denied by {}", by.join(", ")),
                    (_, "expired") if payload["was"] == "approved" => {
                        "Your approval expired: the command was not started in time".to_string()
                    }
                    (_, "expired") => "Your request expired: nobody answered in time".to_string(),
                    (_, other) => format!("Your request is {other}"),
                };
                (
                    match payload["event"].as_str().unwrap_or_default() {
                        "request.approval_given" => {
                            format!("Elevate: an approval for your request on {device}: {what}")
                        }
                        "request.escalated" => {
                            format!("Elevate: your request on {device} was escalated: {what}")
                        }
                        "request.sla_missed" => {
                            format!("Elevate: your request on {device} is still waiting: {what}")
                        }
                        _ => format!("Elevate: your request on {device} was {state}: {what}"),
                    },
                    heading,
                    None,
                )
            }
            other => {
                return Sent::refused(format!("unknown kind of mail {other:?}"));
            }
        };
        let html = Html {
            heading: &heading,
            facts: &facts,
            approve: links.as_ref().map(|l| l.0.clone()),
            deny: links.as_ref().map(|l| l.1.clone()),
            portal: &portal,
        };
        let html = match html.render() {
            Ok(h) => h,
            Err(e) => {
                return Sent::refused(format!("the mail could not be rendered: {e}"));
            }
        };
        let mail = Mail {
            to: delivery.target.clone(),
            subject,
            text: email::text(
                &heading,
                &facts,
                links.as_ref().map(|l| (l.0.as_str(), l.1.as_str())),
                &portal,
            ),
            html,
        };
        email::send(config, &mail).await
    }
}
