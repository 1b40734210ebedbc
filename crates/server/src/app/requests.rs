//! Requests for elevation: create (decided at once by core), read, long-poll, approve, deny,
//! cancel, start, finish, expire.
//!
//! Must never: let a requester approve their own request, let an approver outside the routed
//! group decide, or change a state without core's state machine agreeing (security invariant 5).

use std::time::Duration;

use elevate_core::lifecycle::{RequestEvent, RequestState};
use elevate_core::{decide, Mode, Outcome};
use elevate_proto::grant::{self, target_digest, GrantPayload, SignedGrant};
use elevate_proto::limits::MAX_TEXT;
use elevate_proto::v1::{ApprovalView, DecisionView, NewRequest, RequestView};
use serde_json::json;

use super::{App, AppError, Principal, Result, Role};
use crate::store::{HistoryStats, RequestFilter, RequestRow, Tx};

/// A request with its approvals and the history of the same binary, for approvers.
#[derive(Debug, Clone)]
pub struct RequestDetail {
    pub view: RequestView,
    pub history: HistoryStats,
    /// The people the directory says the requester's login belongs to (user names; empty
    /// when it does not know).
    pub requester: Vec<String>,
    /// Why the caller may not decide it although routed to them (their own request, or an
    /// unknown requester the rule refuses).
    pub not_for_you: Option<String>,
}

fn view(row: RequestRow, approvals: Vec<crate::store::ApprovalRow>) -> RequestView {
    RequestView {
        id: row.id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        device: row.device,
        user: row.user,
        uid: row.uid,
        groups: row.groups,
        target: row.target,
        reason: row.reason,
        channel: row.channel,
        cwd: row.cwd,
        state: row.state.as_str().to_string(),
        decision: row.decision,
        approvals: approvals
            .into_iter()
            .map(|a| ApprovalView {
                approver: a.approver,
                verdict: a.verdict,
                comment: a.comment,
                at: a.at,
            })
            .collect(),
        exit_code: row.exit_code,
        expires_at: row.expires_at,
        sla_due_at: row.sla_due,
        escalated_to: row.escalated_to,
        first_viewed_at: row.first_viewed_at,
        decided_at: row.decided_at,
        decided_via: row.decided_via,
        grant: None,
    }
}

/// What the rule that decided `row` says of logins the directory does not know.
pub(crate) fn unknown_requester(row: &RequestRow) -> elevate_core::UnknownRequester {
    row.decision
        .unknown_requester
        .as_deref()
        .and_then(elevate_core::UnknownRequester::parse)
        .unwrap_or_default()
}

pub(super) fn transition(state: RequestState, event: RequestEvent) -> Result<RequestState> {
    state
        .apply(event)
        .map_err(|e| AppError::Conflict(e.to_string()))
}

impl App {
    /// A device asks on behalf of one of its users; the decision is made here and now.
    pub async fn create_request(
        &self,
        caller: &Principal,
        new: &NewRequest,
    ) -> Result<RequestView> {
        let device = caller.device()?;
        if new
            .cwd
            .as_ref()
            .is_some_and(|c| c.len() > MAX_TEXT || !c.starts_with('/'))
        {
            return Err(AppError::BadRequest(format!(
                "cwd must be an absolute path of at most {MAX_TEXT} bytes"
            )));
        }
        // The reason's rule (blank is none, bounded) is core's, applied by `to_core`.
        let mut request = new
            .to_core(&device.name, &device.tags)
            .map_err(|e| AppError::BadRequest(e.0))?;
        let (version, policy) = self.current_policy().await?;
        self.measured_groups(&policy, &mut request.subject).await?;
        let now = self.now();
        let decision = decide(&policy, &request, now);
        if decision.mode == Mode::Enforce
            && !matches!(decision.outcome, Outcome::Deny { .. })
            && decision.missing_reason(&request)
        {
            return Err(AppError::BadRequest(format!(
                "a reason is required ({}); ask again with a reason, e.g. elevate --reason \"…\"",
                decision.explanation
            )));
        }
        let state = match decision.outcome {
            Outcome::Auto => RequestState::Approved,
            Outcome::Approve(_) => RequestState::Pending,
            Outcome::Deny { .. } => RequestState::Denied,
        };
        let decision_view = DecisionView::from_decision(&decision, version);
        let row = RequestRow {
            id: uuid::Uuid::now_v7().to_string(),
            created_at: now,
            updated_at: now,
            expires_at: Some(
                now + match state {
                    RequestState::Pending => decision_view
                        .expire_secs
                        .map(|s| jiff::SignedDuration::from_secs(s.min(i64::MAX as u64) as i64))
                        .unwrap_or(self.settings.request_ttl),
                    _ => self.settings.request_ttl,
                },
            ),
            device: device.name.clone(),
            user: new.user.clone(),
            uid: new.uid,
            groups: new.groups.clone(),
            target: new.target.clone(),
            reason: request.reason.clone(),
            channel: request.channel.as_str().to_string(),
            cwd: new.cwd.clone(),
            state,
            decision: decision_view.clone(),
            exit_code: None,
            sla_due: decision_view
                .sla_secs
                .filter(|_| state == RequestState::Pending)
                .map(|s| now + jiff::SignedDuration::from_secs(s.min(i64::MAX as u64) as i64)),
            escalated_to: None,
            first_viewed_at: None,
            decided_at: None,
            decided_via: None,
        };
        let actor = format!("user:{}@{}", row.user, row.device);
        let subject = format!("request:{}", row.id);
        let mut tx = self.store.begin().await?;
        let created = self.event(
            &actor,
            "request.created",
            &subject,
            json!({ "user": row.user, "uid": row.uid, "groups": row.groups, "device": row.device,
                    "target": row.target, "reason": row.reason, "channel": row.channel, "cwd": row.cwd }),
        );
        self.record_request(&mut tx, &row, state, created).await?;
        let decided = self.event(
            "policy",
            "request.decided",
            &subject,
            json!({ "outcome": decision_view.outcome, "policy_outcome": decision_view.policy_outcome,
                    "mode": decision_view.mode, "rule": decision_view.rule,
                    "explanation": decision_view.explanation, "policy_version": version,
                    "state": state.as_str() }),
        );
        self.record_request(&mut tx, &row, state, decided).await?;
        tx.insert_request(&row).await?;
        tx.commit().await?;
        self.announce_change();
        Ok(self.vouched(view(row, vec![])))
    }

    /// An approved request's view with the grant its device checks before it runs anything:
    /// what was approved, for whom and where, signed with the key the device pinned.
    fn vouched(&self, mut v: RequestView) -> RequestView {
        if v.state == RequestState::Approved.as_str() {
            let now = self.now();
            let payload = GrantPayload {
                request_id: v.id.clone(),
                device: v.device.clone(),
                user: v.user.clone(),
                uid: v.uid,
                target_sha256: target_digest(&v.target),
                session_max_secs: v.decision.session_max_secs,
                keep_caller_cwd: v.decision.keep_caller_cwd,
                continue_on_disconnect: v.decision.continue_on_disconnect,
                issued_at: now,
                expires_at: now + grant::VALIDITY,
            };
            v.grant = Some(SignedGrant::sign(&payload, &self.keys.signing));
        }
        v
    }

    /// Who may read a request: accounts with a role, and the device that made it.
    fn may_read(caller: &Principal, row: &RequestRow) -> Result<()> {
        match caller {
            Principal::Device(d) if d.name == row.device => Ok(()),
            Principal::Device(_) => Err(AppError::NotFound(format!("no request {}", row.id))),
            Principal::Account(_) => caller
                .require(&[Role::Admin, Role::Approver, Role::Auditor])
                .map(|_| ()),
        }
    }

    /// A request with the facts an approver needs (the portal's request page).
    pub async fn request(&self, caller: &Principal, id: &str) -> Result<RequestDetail> {
        let view = self.request_view(caller, id).await?;
        let mut history = self.store.history(&view.id, &view.target).await?;
        history.user_hours = self.store.user_hours(&view.id, &view.user).await?;
        let mut dir = self.store.directory().await?;
        let requester = Self::owners_of_login(&mut dir, &view.device, &view.user)
            .await?
            .into_iter()
            .map(|o| o.user_name)
            .collect();
        let not_for_you = match caller {
            Principal::Account(a) => {
                let unknown = view
                    .decision
                    .unknown_requester
                    .as_deref()
                    .and_then(elevate_core::UnknownRequester::parse)
                    .unwrap_or_default();
                Self::separation(&mut dir, &a.name, &view.device, &view.user, unknown)
                    .await?
                    .err()
            }
            Principal::Device(_) => None,
        };
        Ok(RequestDetail {
            view,
            history,
            requester,
            not_for_you,
        })
    }

    /// A request and its approvals, without the history queries (the API, and the answer to a
    /// decision, a start or a finish). An approver who may decide it is noted as having seen it.
    pub async fn request_view(&self, caller: &Principal, id: &str) -> Result<RequestView> {
        let mut row = self
            .store
            .request(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no request {id}")))?;
        Self::may_read(caller, &row)?;
        let approvals = self.store.approvals(id).await?;
        if let Principal::Account(a) = caller {
            let routed = |g: &Option<String>| g.as_ref().is_some_and(|g| a.groups.contains(g));
            let may_decide = (routed(&row.decision.approvers) || routed(&row.escalated_to))
                && (caller.has_role(Role::Approver) || caller.has_role(Role::Admin));
            if row.state == RequestState::Pending
                && may_decide
                && row.first_viewed_at.is_none()
                && Self::separation(
                    &mut self.store.directory().await?,
                    &a.name,
                    &row.device,
                    &row.user,
                    unknown_requester(&row),
                )
                .await?
                .is_ok()
            {
                // A metric: a failure to note it must not fail the read.
                let now = self.now();
                match self.store.mark_first_view(&row.id, now).await {
                    Ok(()) => row.first_viewed_at = Some(now),
                    Err(e) => {
                        tracing::warn!(request = %row.id, error = %e, "could not note the first view")
                    }
                }
            }
        }
        Ok(self.vouched(view(row, approvals)))
    }

    /// Requests, newest first. Accounts see all (optionally of one `user`); a device sees only
    /// its own.
    pub async fn requests(
        &self,
        caller: &Principal,
        state: Option<&str>,
        user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RequestView>> {
        let device = match caller {
            Principal::Device(d) => Some(d.name.as_str()),
            Principal::Account(_) => {
                caller.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
                None
            }
        };
        let state = match state {
            Some(s) => Some(s.parse::<RequestState>().map_err(|_| {
                AppError::BadRequest(format!(
                    "unknown state {s:?}; use pending, approved, denied, expired, cancelled, running or finished"
                ))
            })?),
            None => None,
        };
        let filter = RequestFilter {
            state,
            device,
            user,
        };
        let rows = self.store.requests(&filter, limit.clamp(1, 1000)).await?;
        Ok(rows.into_iter().map(|r| view(r, vec![])).collect())
    }

    /// Waits until the request leaves `pending` or `timeout` passes, then returns it.
    pub async fn wait_request(
        &self,
        caller: &Principal,
        id: &str,
        timeout: Duration,
    ) -> Result<RequestView> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changes.subscribe();
        loop {
            changes.mark_unchanged();
            // Only the row while waiting; approvals are read once, for the answer.
            let row = self
                .store
                .request(id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no request {id}")))?;
            Self::may_read(caller, &row)?;
            if row.state != RequestState::Pending || tokio::time::Instant::now() >= deadline {
                let approvals = self.store.approvals(id).await?;
                return Ok(self.vouched(view(row, approvals)));
            }
            // Another replica may decide: look again at least every second.
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            let _ = tokio::time::timeout_at(step, changes.changed()).await;
        }
    }

    /// The requesting device cancels (the user pressed Ctrl-C, or gave up).
    pub async fn cancel_request(&self, caller: &Principal, id: &str) -> Result<RequestView> {
        self.device_transition(caller, id, RequestEvent::Cancel, None)
            .await
    }

    /// The device started the approved command.
    pub async fn start_request(&self, caller: &Principal, id: &str) -> Result<RequestView> {
        self.device_transition(caller, id, RequestEvent::Start, None)
            .await
    }

    /// The device reports the command's exit status.
    pub async fn finish_request(
        &self,
        caller: &Principal,
        id: &str,
        exit_code: i32,
    ) -> Result<RequestView> {
        self.device_transition(caller, id, RequestEvent::Finish, Some(exit_code))
            .await
    }

    async fn device_transition(
        &self,
        caller: &Principal,
        id: &str,
        event: RequestEvent,
        exit_code: Option<i32>,
    ) -> Result<RequestView> {
        let device = caller.device()?;
        let mut tx = self.store.begin().await?;
        let row = tx
            .request_for_update(id)
            .await?
            .filter(|r| r.device == device.name)
            .ok_or_else(|| AppError::NotFound(format!("no request {id} from this device")))?;
        if event == RequestEvent::Start && row.expires_at.is_some_and(|at| at <= self.now()) {
            // Fail closed: an approval whose time ran out starts nothing, even in the seconds
            // before the expiry job marks it.
            return Err(AppError::Gone(format!(
                "this approval expired at {}; nothing runs; ask again",
                row.expires_at.map(|t| t.to_string()).unwrap_or_default()
            )));
        }
        let state = transition(row.state, event)?;
        self.set_state(&mut tx, &row, state, exit_code, "device", &device.name)
            .await?;
        tx.commit().await?;
        self.announce_change();
        self.request_view(caller, id).await
    }

    /// Expires requests whose time ran out. Returns how many. One request that cannot be
    /// expired is logged and skipped; it does not hold up the others.
    pub async fn expire_requests(&self) -> Result<usize> {
        let ids = self.store.lapsed_requests(self.now()).await?;
        let mut expired = 0;
        for id in ids {
            match self.expire_one(&id).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(request = %id, error = %e, "could not expire a request"),
            }
        }
        if expired > 0 {
            self.announce_change();
        }
        Ok(expired)
    }

    async fn expire_one(&self, id: &str) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let Some(row) = tx.request_for_update(id).await? else {
            return Ok(false);
        };
        // Decided meanwhile by someone else: nothing to do.
        let Ok(state) = row.state.apply(RequestEvent::Expire) else {
            return Ok(false);
        };
        if row.state == RequestState::Pending {
            tx.record_decided(id, self.now(), "expiry").await?;
        }
        self.set_state(&mut tx, &row, state, None, "system", "expiry")
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn set_state(
        &self,
        tx: &mut Tx<'_>,
        row: &RequestRow,
        state: RequestState,
        exit_code: Option<i32>,
        actor_kind: &str,
        actor: &str,
    ) -> Result<()> {
        let actor = match actor_kind {
            "system" => "system".to_string(),
            kind => format!("{kind}:{actor}"),
        };
        let changed = self.event(
            actor,
            &format!("request.{}", state.as_str()),
            format!("request:{}", row.id),
            json!({ "from": row.state.as_str(), "to": state.as_str(), "exit_code": exit_code }),
        );
        self.record_request(tx, row, state, changed).await?;
        tx.set_request_state(&row.id, state, self.now(), exit_code)
            .await?;
        Ok(())
    }
}

/// Whether `hour` (0–23, UTC) is unusual for someone whose earlier requests fell in `hours`:
/// at least five earlier requests, none within an hour of this one. `None`: too little history.
pub fn unusual_hour(hour: u8, hours: &[(u8, u64)]) -> Option<bool> {
    let total: u64 = hours.iter().map(|(_, n)| n).sum();
    if total < 5 {
        return None;
    }
    let near = |h: u8| {
        let d = (i16::from(h) - i16::from(hour)).rem_euclid(24);
        d <= 1 || d >= 23
    };
    Some(!hours.iter().any(|(h, n)| *n > 0 && near(*h)))
}

#[cfg(test)]
mod tests {
    use super::unusual_hour;

    #[test]
    fn an_hour_is_unusual_only_against_enough_history_and_wraps_at_midnight() {
        assert_eq!(unusual_hour(3, &[(9, 4)]), None);
        assert_eq!(unusual_hour(3, &[(9, 5)]), Some(true));
        assert_eq!(unusual_hour(10, &[(9, 5)]), Some(false));
        assert_eq!(unusual_hour(0, &[(23, 3), (14, 3)]), Some(false));
        assert_eq!(unusual_hour(23, &[(0, 6)]), Some(false));
        assert_eq!(unusual_hour(21, &[(23, 6)]), Some(true));
    }
}
