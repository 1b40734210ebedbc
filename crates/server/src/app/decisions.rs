//! An approver's decision on a request: approve (counts towards the number the rule needs) or
//! deny (ends it), from the API, the portal, Slack or a one-time link.
//!
//! Must never: let a person decide a request made under any of their logins, count one person
//! twice towards `count`, let an approver outside the routed group decide, or decide without a
//! fresh enough sign-in where the rule says `reauth` (security invariant 5).

use elevate_core::lifecycle::{RequestEvent, RequestState, Tally, TallyError, TallyStatus};
use elevate_proto::limits::MAX_REASON;
use elevate_proto::v1::RequestView;
use serde_json::json;

use super::requests::{transition, unknown_requester};
use super::{App, AppError, Principal, Result, Role};

fn check_comment(comment: Option<&str>) -> Result<()> {
    match comment {
        Some(c) if c.len() > MAX_REASON => Err(AppError::BadRequest(format!(
            "a comment may be at most {MAX_REASON} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Where an approver's decision came from, as the audit trail and the request record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Api,
    Portal,
    /// A button in a Slack message.
    Slack,
    /// A one-time approval link (e-mail, Teams).
    Link,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Portal => "portal",
            Via::Slack => "slack",
            Via::Link => "link",
        }
    }
}

impl App {
    /// An approver approves (counts towards the needed number) or denies (ends it), through
    /// `via`.
    pub async fn decide_request(
        &self,
        caller: &Principal,
        id: &str,
        approve: bool,
        comment: Option<&str>,
        via: Via,
    ) -> Result<RequestView> {
        self.decide(caller, id, approve, comment, via, None).await
    }

    /// As `decide_request`; with `link`, that one-time link's nonce is used up in the same
    /// transaction (a link used twice decides nothing the second time).
    pub(crate) async fn decide(
        &self,
        caller: &Principal,
        id: &str,
        approve: bool,
        comment: Option<&str>,
        via: Via,
        link: Option<&str>,
    ) -> Result<RequestView> {
        let account = caller.require(&[Role::Approver, Role::Admin])?;
        check_comment(comment)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let row = tx
            .request_for_update(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no request {id}")))?;
        if row.state == RequestState::Pending && row.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::Gone(format!(
                "this request expired at {}; nothing can be decided any more",
                row.expires_at.map(|t| t.to_string()).unwrap_or_default()
            )));
        }
        if let Some(secs) = row.decision.reauth_secs {
            let limit = jiff::SignedDuration::from_secs(secs.min(i64::MAX as u64) as i64);
            let fresh = account
                .signed_in_at
                .is_some_and(|at| now.duration_since(at) <= limit);
            if !fresh {
                return Err(AppError::Unauthenticated(format!(
                    "the rule {} needs a sign-in within the last {} to decide; sign in to the portal again{}",
                    row.decision.rule.as_deref().unwrap_or("(defaults)"),
                    elevate_core::duration::format(limit),
                    if via == Via::Slack { " and decide there" } else { "" }
                )));
            }
        }
        if let Some(nonce) = link {
            if !tx.use_link(nonce, id, &account.name, now).await? {
                return Err(AppError::Gone(
                    "this approval link has been used already; open the request from the portal's queue".into(),
                ));
            }
        }
        // Never the requester: decided on people (any of their logins), names as a floor.
        Self::separation(
            &mut tx.directory(),
            &account.name,
            &row.device,
            &row.user,
            unknown_requester(&row),
        )
        .await?
        .map_err(AppError::Forbidden)?;
        let group = row.decision.approvers.clone().unwrap_or_default();
        let escalated = row
            .escalated_to
            .as_ref()
            .filter(|g| account.groups.contains(g));
        if !account.groups.contains(&group) && escalated.is_none() {
            return Err(AppError::Forbidden(match &row.escalated_to {
                Some(e) => format!(
                    "this request is routed to approver group {group:?} (escalated to {e:?}) and {} is in neither",
                    account.name
                ),
                None => format!(
                    "this request is routed to approver group {group:?} and {} is not in it",
                    account.name
                ),
            }));
        }
        let group = escalated.cloned().unwrap_or(group);
        let approvals = tx.approvals_in_tx(id).await?;
        if approvals.iter().any(|a| a.approver == account.name) {
            return Err(AppError::Conflict(format!(
                "{} has already decided on this request",
                account.name
            )));
        }
        // `count = N` is N people: another account of someone who decided already is them.
        for a in &approvals {
            if Self::same_person(&mut tx.directory(), &a.approver, &account.name).await? {
                return Err(AppError::Conflict(format!(
                    "{} and {} are one person's accounts, and {} has already decided on this request; another approver must",
                    account.name, a.approver, a.approver
                )));
            }
        }
        let subject = format!("request:{id}");
        let verdict = if approve { "approve" } else { "deny" };
        let new_state = if approve {
            let mut tally = Tally::new(row.decision.needed.max(1));
            for a in approvals.iter().filter(|a| a.verdict == "approve") {
                let _earlier = tally
                    .approve(&row.user, &a.approver, RequestState::Pending)
                    .map_err(tally_error)?;
            }
            match tally
                .approve(&row.user, &account.name, row.state)
                .map_err(tally_error)?
            {
                TallyStatus::Complete => Some(transition(row.state, RequestEvent::Approve)?),
                TallyStatus::Waiting { .. } => None,
            }
        } else {
            Some(transition(row.state, RequestEvent::Deny)?)
        };
        let given = self.event(
            caller.actor(),
            if approve {
                "request.approval_given"
            } else {
                "request.denial_given"
            },
            &subject,
            json!({ "approver": account.name, "comment": comment, "group": group, "via": via.as_str() }),
        );
        self.record_request(&mut tx, &row, new_state.unwrap_or(row.state), given)
            .await?;
        tx.insert_approval(id, &account.name, verdict, comment, now)
            .await?;
        if let Some(state) = new_state {
            tx.record_decided(id, now, via.as_str()).await?;
            if state == RequestState::Approved {
                // The rule's `expire` is how long approvers may take; once approved, the
                // command must start within the server's usual time, however long the wait was.
                tx.cap_expiry(id, now + self.settings.request_ttl).await?;
            }
            self.set_state(&mut tx, &row, state, None, "account", &account.name)
                .await?;
        }
        tx.commit().await?;
        self.announce_change();
        self.request_view(caller, id).await
    }
}

fn tally_error(e: TallyError) -> AppError {
    match e {
        TallyError::SelfApproval => AppError::Forbidden(e.to_string()),
        _ => AppError::Conflict(e.to_string()),
    }
}
