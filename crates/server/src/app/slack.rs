//! Slack: approval messages with Approve/Deny buttons, kept up to date as the request changes,
//! and the interactivity endpoint's use case (a verified button press decided as the mapped
//! approver).
//!
//! Must never: parse a payload before its signature holds; let a Slack user decide who is not
//! mapped to an account (channel membership grants nothing); decide as anyone but that account,
//! through the same checks as the API (never the requester, only the routed group).

use elevate_core::audit::AuditEvent;
use elevate_core::lifecycle::RequestState;
use serde_json::json;

use super::{App, AppError, Principal, Result, Via};
use crate::integrations::slack::{self, ButtonPress};
use crate::integrations::webhook::Sent;
use crate::store::{DeliveryRow, NotifyChannel, RequestRow, Tx};

/// The line under a message that says where the request stands.
fn status_line(
    state: RequestState,
    snapshot: &serde_json::Value,
    approvers: &[String],
    denial: Option<(&str, Option<&str>)>,
) -> String {
    let first = snapshot["approvers"].as_str().unwrap_or("?");
    let group = match snapshot["escalated_to"].as_str() {
        Some(to) => format!("{first} or {to} (escalated: its SLA passed)"),
        None => first.to_string(),
    };
    let needed = snapshot["needed"].as_u64().unwrap_or(1).max(1);
    match state {
        RequestState::Pending if approvers.is_empty() => {
            format!("Waiting for {needed} approval(s) from {group}.")
        }
        RequestState::Pending => format!(
            "{} of {needed} approvals: {}. Waiting for more from {group}.",
            approvers.len(),
            approvers.join(", ")
        ),
        RequestState::Approved | RequestState::Running | RequestState::Finished => {
            format!("Approved by {}.", approvers.join(", "))
        }
        RequestState::Denied => match denial {
            Some((who, Some(comment))) => format!("Denied by {who}: {comment}"),
            Some((who, None)) => format!("Denied by {who}."),
            None => "Denied.".to_string(),
        },
        RequestState::Expired => "Expired: nobody answered in time.".to_string(),
        RequestState::Cancelled => "Cancelled by the requester.".to_string(),
    }
}

impl App {
    /// Queues the Slack message for a request that waits for approvers, or its update after a
    /// later event. Returns whether something was queued.
    pub(crate) async fn queue_slack(
        &self,
        tx: &mut Tx<'_>,
        row: &RequestRow,
        state: RequestState,
        event: &AuditEvent,
        snapshot: &serde_json::Value,
    ) -> Result<bool> {
        let Some(config) = &self.settings.integrations.slack else {
            return Ok(false);
        };
        let channel = super::notify::chat_channel(&config.channels, row, event)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let op = match event.action.as_str() {
            "request.decided" if state == RequestState::Pending => "post",
            "request.escalated" => "post",
            "request.sla_missed" => "update",
            "request.approval_given"
            | "request.denial_given"
            | "request.approved"
            | "request.denied"
            | "request.expired"
            | "request.cancelled" => "update",
            _ => return Ok(false),
        };
        // A post needs a channel; an update goes to every message already posted about the
        // request, wherever it is (and posts where it has a channel, if none was posted yet).
        if row.decision.outcome != "approve" || (op == "post" && channel.is_empty()) {
            return Ok(false);
        }
        // What the message says is drawn when it is sent (`current_status`).
        let payload = json!({ "op": op, "channel": channel, "request": { "id": snapshot["id"] } });
        tx.queue_delivery(
            NotifyChannel::Slack,
            if channel.is_empty() {
                "(every message)"
            } else {
                &channel
            },
            &event.action,
            &event.subject,
            &payload.to_string(),
            self.now(),
        )
        .await?;
        Ok(true)
    }

    /// Sends one queued Slack delivery (`post`, `update` or `respond`).
    pub(crate) async fn send_slack(&self, delivery: &DeliveryRow) -> Sent {
        let Some(config) = &self.settings.integrations.slack else {
            return Sent::refused("Slack is not configured any more");
        };
        let payload = match super::notify::queued_payload(delivery) {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        let request_id = payload["request"]["id"].as_str().unwrap_or_default();
        let channel = payload["channel"].as_str().unwrap_or_default();
        if payload["op"] == "respond" {
            let url = payload["response_url"].as_str().unwrap_or_default();
            let text = slack::mrkdwn_text(payload["text"].as_str().unwrap_or_default());
            let body = json!({ "response_type": "ephemeral", "replace_original": false,
                               "text": text });
            return slack::respond(&self.http, config, url, &body).await;
        }
        // Drawn from the request as it is now, not as it was when this was queued: a retried
        // or late delivery can never put back buttons or an older status.
        let (request, status, pending) = match self.current_status(request_id).await {
            Ok(c) => c,
            Err(e) => {
                return Sent::Retry {
                    status: None,
                    error: format!("cannot read the request: {e}"),
                }
            }
        };
        let blocks = slack::blocks(&request, &status, pending);
        let fallback = crate::integrations::cut(
            &slack::mrkdwn_text(&format!(
                "Elevation request from {} on {}: {}",
                request["user"].as_str().unwrap_or("?"),
                request["device"].as_str().unwrap_or("?"),
                status
            )),
            300,
        );
        let messages = match self
            .store
            .chat_messages(request_id, NotifyChannel::Slack)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                return Sent::Retry {
                    status: None,
                    error: format!("cannot read the messages' ids: {e}"),
                }
            }
        };
        let posted_here = messages.iter().any(|(c, _)| c == channel);
        match payload["op"].as_str() {
            Some("post") | Some("update")
                if !posted_here
                    && !channel.is_empty()
                    && (payload["op"] == "post" || messages.is_empty()) =>
            {
                let body = json!({ "channel": channel, "text": fallback, "blocks": blocks,
                                   "mrkdwn": false, "unfurl_links": false, "unfurl_media": false });
                let (sent, answer) =
                    slack::call(&self.http, config, "chat.postMessage", &body).await;
                if let (Sent::Delivered(_), Some(answer)) = (&sent, &answer) {
                    let ts = answer["ts"].as_str().unwrap_or_default();
                    // Remembered under the configured channel, where updates look for it.
                    if let Err(e) = self
                        .store
                        .save_chat_message(request_id, NotifyChannel::Slack, channel, ts)
                        .await
                    {
                        return Sent::Retry {
                            status: None,
                            error: format!("posted, but its id was not saved: {e}"),
                        };
                    }
                }
                sent
            }
            // An update, or a post to a channel that already shows the request (both groups
            // share it): every message about the request is brought up to date.
            Some("post") | Some("update") => {
                if messages.is_empty() {
                    // Never posted (Slack was set up later, or the post was refused for
                    // good): nothing to update, and the post shows the current state.
                    return Sent::refused(
                        "no Slack message about this request to update (its post was not made)",
                    );
                }
                let mut outcome = Sent::Delivered(200);
                for (channel, ts) in messages {
                    let body = json!({ "channel": channel, "ts": ts, "text": fallback,
                                       "blocks": blocks, "mrkdwn": false });
                    let (sent, _) = slack::call(&self.http, config, "chat.update", &body).await;
                    if matches!(outcome, Sent::Delivered(_)) {
                        outcome = sent;
                    }
                }
                outcome
            }
            other => Sent::refused(format!("unknown Slack operation {other:?}")),
        }
    }

    /// The request as it is now, the line saying where it stands, and whether it still waits.
    pub(crate) async fn current_status(
        &self,
        id: &str,
    ) -> Result<(serde_json::Value, String, bool)> {
        let row = self
            .store
            .request(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no request {id}")))?;
        let approvals = self.store.approvals(id).await?;
        let approvers: Vec<String> = approvals
            .iter()
            .filter(|a| a.verdict == "approve")
            .map(|a| a.approver.clone())
            .collect();
        let denial = approvals
            .iter()
            .find(|a| a.verdict == "deny")
            .map(|a| (a.approver.as_str(), a.comment.as_deref()));
        let snapshot = self.request_snapshot(&row, row.state);
        let status = status_line(row.state, &snapshot, &approvers, denial);
        Ok((snapshot, status, row.state == RequestState::Pending))
    }

    /// A button press from Slack's interactivity endpoint. The signature is checked over the
    /// raw body first; then the Slack user must be mapped to an approver account, and the
    /// decision goes through `decide_request` as that account. Refusals are answered to the
    /// person alone (ephemeral) and recorded.
    pub async fn slack_press(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<()> {
        let Some(config) = self.settings.integrations.slack.clone() else {
            return Err(AppError::NotFound(
                "Slack is not configured on this server".into(),
            ));
        };
        slack::verify(
            &config.signing_secret,
            timestamp,
            signature,
            body,
            self.now(),
        )
        .map_err(|e| AppError::Unauthenticated(format!("not a request from Slack: {e}")))?;
        let press = slack::parse_press(body, &config.team_id, &config.response_url_prefix)
            .map_err(|e| match e {
                slack::PayloadError::ForeignTeam(_) => AppError::Forbidden(e.to_string()),
                e => AppError::BadRequest(e.to_string()),
            })?;
        let refusal = match self.slack_decide(&config, &press).await {
            Ok(()) => return Ok(()),
            Err(message) => message,
        };
        let mut tx = self.store.begin().await?;
        tx.append_audit(self.event(
            format!("slack:{}", press.slack_user),
            "request.decision_refused",
            format!("request:{}", press.request),
            json!({ "via": "slack", "slack_user": press.slack_user,
                    "approve": press.approve, "reason": refusal }),
        ))
        .await?;
        tx.queue_delivery(
            NotifyChannel::Slack,
            "response_url",
            "request.decision_refused",
            &format!("request:{}", press.request),
            &json!({ "op": "respond", "response_url": press.response_url,
                     "text": format!("Elevate did not record your answer: {refusal}") })
            .to_string(),
            self.now(),
        )
        .await?;
        tx.commit().await?;
        self.deliveries_due.notify_one();
        Ok(())
    }

    /// Decides as the account the Slack user is mapped to; `Err` is what to tell them.
    async fn slack_decide(
        &self,
        config: &slack::SlackConfig,
        press: &ButtonPress,
    ) -> std::result::Result<(), String> {
        let name = match config.users.get(&press.slack_user) {
            Some(name) => name.clone(),
            None => self.slack_account(&press.slack_user).await?,
        };
        let name = &name;
        let account = match self.store.account(name).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Err(format!(
                    "your Slack account is linked to {name:?}, which is not an Elevate account"
                ))
            }
            Err(e) => return Err(format!("the server could not check your account ({e})")),
        };
        let principal = Principal::Account(account);
        self.decide_request(&principal, &press.request, press.approve, None, Via::Slack)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                AppError::Unexpected(_) => "the server failed; try again or use the portal".into(),
                other => other.to_string(),
            })
    }

    /// The Elevate account of the person the directory gives Slack id `slack_user` (when they
    /// have exactly one); `Err` is what to tell them.
    async fn slack_account(&self, slack_user: &str) -> std::result::Result<String, String> {
        let unlinked = || {
            format!(
                "your Slack account ({slack_user}) is not linked to an Elevate approver; ask an \
                 Elevate admin to add it to your entry in the people directory (or the server's \
                 [slack.users])"
            )
        };
        let person = match self.store.directory().await {
            Ok(mut dir) => dir.person_linked("slack", slack_user).await,
            Err(e) => Err(e),
        }
        .map_err(|e| format!("the server could not check your account ({e})"))?;
        let Some((_, user_name)) = person else {
            return Err(unlinked());
        };
        let accounts = self
            .store
            .person(&user_name)
            .await
            .map_err(|e| format!("the server could not check your account ({e})"))?
            .map(|p| p.accounts)
            .unwrap_or_default();
        match accounts.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(unlinked()),
            _ => Err(format!(
                "you ({user_name}) have several Elevate accounts ({}); an admin must say which one \
                 decides from Slack in the server's [slack.users]",
                accounts.join(", ")
            )),
        }
    }
}
