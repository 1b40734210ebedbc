//! The life of a request: its states, the events that move it, and the tally of approvals that
//! decides when it is approved (separation of duties, security invariant 5).
//!
//! Must never: let a terminal request move again, reach `Running` without passing `Approved`, or
//! count the requester (or the same approver twice) towards an approval.
//!
//! ```text
//! Pending ──approve──▶ Approved ──start──▶ Running ──finish──▶ Finished
//!    │ deny/expire/cancel   │ expire/cancel
//!    ▼                      ▼
//! Denied | Expired | Cancelled
//! ```
//!
//! Auto-approved requests are created directly in `Approved`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for approvers.
    Pending,
    /// Approved (or auto-approved); may now run.
    Approved,
    /// Refused by an approver. Terminal.
    Denied,
    /// Nobody decided in time, or it was approved but never used. Terminal.
    Expired,
    /// Withdrawn by the requester or an administrator. Terminal.
    Cancelled,
    /// The command or session is running.
    Running,
    /// The command or session has ended. Terminal.
    Finished,
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestEvent {
    Approve,
    Deny,
    Expire,
    Cancel,
    Start,
    Finish,
}

impl RequestState {
    pub const ALL: [RequestState; 7] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Denied,
        RequestState::Expired,
        RequestState::Cancelled,
        RequestState::Running,
        RequestState::Finished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Cancelled => "cancelled",
            RequestState::Running => "running",
            RequestState::Finished => "finished",
        }
    }

    /// True when nothing can happen to the request any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestState::Denied
                | RequestState::Expired
                | RequestState::Cancelled
                | RequestState::Finished
        )
    }

    /// The state after `event`, or why the event cannot happen now.
    pub fn apply(self, event: RequestEvent) -> Result<RequestState, IllegalTransition> {
        use RequestEvent as E;
        use RequestState as S;
        match (self, event) {
            (S::Pending, E::Approve) => Ok(S::Approved),
            (S::Pending, E::Deny) => Ok(S::Denied),
            (S::Pending | S::Approved, E::Expire) => Ok(S::Expired),
            (S::Pending | S::Approved, E::Cancel) => Ok(S::Cancelled),
            (S::Approved, E::Start) => Ok(S::Running),
            (S::Running, E::Finish) => Ok(S::Finished),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    /// `request is already denied`, as the first half of an error message.
    fn situation(self) -> &'static str {
        match self {
            RequestState::Pending => "request is still pending",
            RequestState::Approved => "request is already approved",
            RequestState::Denied => "request is already denied",
            RequestState::Expired => "request has already expired",
            RequestState::Cancelled => "request is already cancelled",
            RequestState::Running => "request is already running",
            RequestState::Finished => "request has already finished",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`RequestState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a request state; use one of pending, approved, denied, expired, cancelled, \
     running, finished"
)]
pub struct UnknownRequestState(pub String);

impl FromStr for RequestState {
    type Err = UnknownRequestState;

    fn from_str(s: &str) -> Result<RequestState, UnknownRequestState> {
        RequestState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownRequestState(s.to_owned()))
    }
}

impl RequestEvent {
    pub const ALL: [RequestEvent; 6] = [
        RequestEvent::Approve,
        RequestEvent::Deny,
        RequestEvent::Expire,
        RequestEvent::Cancel,
        RequestEvent::Start,
        RequestEvent::Finish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestEvent::Approve => "approve",
            RequestEvent::Deny => "deny",
            RequestEvent::Expire => "expire",
            RequestEvent::Cancel => "cancel",
            RequestEvent::Start => "start",
            RequestEvent::Finish => "finish",
        }
    }

    /// `approved`, for "it cannot be approved".
    fn participle(self) -> &'static str {
        match self {
            RequestEvent::Approve => "approved",
            RequestEvent::Deny => "denied",
            RequestEvent::Expire => "expired",
            RequestEvent::Cancel => "cancelled",
            RequestEvent::Start => "started",
            RequestEvent::Finish => "finished",
        }
    }
}

impl fmt::Display for RequestEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that cannot happen in the request's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}; it cannot be {}", .from.situation(), .event.participle())]
pub struct IllegalTransition {
    pub from: RequestState,
    pub event: RequestEvent,
}

/// The approvals a pending request has collected.
///
/// Approvers are compared by exact name: the server passes canonical account names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Distinct approvers needed, at least 1.
    pub needed: u32,
    /// Who approved, in order, each once.
    pub approvers: Vec<String>,
}

/// Where a tally stands after an approval.
#[must_use = "a complete tally must move the request to approved"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TallyStatus {
    /// More approvers are needed.
    Waiting { remaining: u32 },
    /// Enough distinct approvers have approved.
    Complete,
}

/// Why an approval was not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    #[error("you cannot approve your own request; another approver must approve it")]
    SelfApproval,
    #[error("{0} has already approved this request; it needs approval from someone else")]
    AlreadyApproved(String),
    #[error("the {} and takes no more approvals", .0.situation())]
    NotPending(RequestState),
}

impl Tally {
    /// A tally that needs `needed` distinct approvers. Zero is treated as one: no request is
    /// approved by nobody.
    pub fn new(needed: u32) -> Tally {
        Tally {
            needed: needed.max(1),
            approvers: Vec::new(),
        }
    }

    /// Counts `approver`'s approval of `requester`'s request, which is in `state`.
    pub fn approve(
        &mut self,
        requester: &str,
        approver: &str,
        state: RequestState,
    ) -> Result<TallyStatus, TallyError> {
        if state != RequestState::Pending {
            return Err(TallyError::NotPending(state));
        }
        if approver == requester {
            return Err(TallyError::SelfApproval);
        }
        if self.approvers.iter().any(|a| a == approver) {
            return Err(TallyError::AlreadyApproved(approver.to_owned()));
        }
        self.approvers.push(approver.to_owned());
        Ok(self.status())
    }

    /// True when enough distinct approvers have approved.
    pub fn is_complete(&self) -> bool {
        self.status() == TallyStatus::Complete
    }

    /// Counts distinct names, so a tally filled in by hand cannot complete on repeats.
    fn status(&self) -> TallyStatus {
        let mut names: Vec<&str> = self.approvers.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let have = u32::try_from(names.len()).unwrap_or(u32::MAX);
        match self.needed.max(1).saturating_sub(have) {
            0 => TallyStatus::Complete,
            remaining => TallyStatus::Waiting { remaining },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::RequestEvent::*;
    use super::RequestState::*;
    use super::*;

    #[track_caller]
    fn check(from: RequestState, event: RequestEvent, want: Option<RequestState>) {
        match (from.apply(event), want) {
            (Ok(to), Some(want)) => assert_eq!(to, want, "{from} + {event}"),
            (Err(e), None) => assert_eq!(e, IllegalTransition { from, event }),
            (got, want) => panic!("{from} + {event}: got {got:?}, want {want:?}"),
        }
    }

    const NO: Option<RequestState> = None;

    /// What each event does in each state; `NO` is an illegal transition.
    #[rustfmt::skip]
    const TRANSITIONS: [(RequestState, [Option<RequestState>; 6]); 7] = [
        //           approve         deny          expire         cancel           start          finish
        (Pending,   [Some(Approved), Some(Denied), Some(Expired), Some(Cancelled), NO,            NO]),
        (Approved,  [NO,             NO,           Some(Expired), Some(Cancelled), Some(Running), NO]),
        (Denied,    [NO,             NO,           NO,            NO,              NO,            NO]),
        (Expired,   [NO,             NO,           NO,            NO,              NO,            NO]),
        (Cancelled, [NO,             NO,           NO,            NO,              NO,            NO]),
        (Running,   [NO,             NO,           NO,            NO,              NO,  Some(Finished)]),
        (Finished,  [NO,             NO,           NO,            NO,              NO,            NO]),
    ];

    #[test]
    fn every_transition() {
        let table = TRANSITIONS;
        assert_eq!(table.map(|(s, _)| s), RequestState::ALL);
        for (from, row) in table {
            for (event, want) in RequestEvent::ALL.into_iter().zip(row) {
                check(from, event, want);
            }
        }
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = RequestState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Denied, Expired, Cancelled, Finished]);
    }

    #[test]
    fn illegal_transitions_say_why() {
        assert_eq!(
            Denied.apply(Approve).unwrap_err().to_string(),
            "request is already denied; it cannot be approved"
        );
        assert_eq!(
            Pending.apply(Start).unwrap_err().to_string(),
            "request is still pending; it cannot be started"
        );
        assert_eq!(
            Finished.apply(Cancel).unwrap_err().to_string(),
            "request has already finished; it cannot be cancelled"
        );
    }

    #[test]
    fn names_round_trip() {
        for state in RequestState::ALL {
            assert_eq!(state.as_str().parse::<RequestState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<RequestState>(&json).unwrap(), state);
        }
        for event in RequestEvent::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
        let err = "Approved".parse::<RequestState>().unwrap_err();
        assert!(err.to_string().contains("use one of pending"), "{err}");
    }

    #[test]
    fn tally() {
        let mut t = Tally::new(2);
        assert_eq!(
            t.approve("alice", "alice", Pending),
            Err(TallyError::SelfApproval)
        );
        assert_eq!(
            t.approve("alice", "bob", Pending),
            Ok(TallyStatus::Waiting { remaining: 1 })
        );
        assert_eq!(
            t.approve("alice", "bob", Pending),
            Err(TallyError::AlreadyApproved("bob".into()))
        );
        assert!(!t.is_complete());
        // Names are compared exactly; the server passes canonical names.
        assert_eq!(
            t.approve("alice", "Bob", Pending),
            Ok(TallyStatus::Complete)
        );
        assert!(t.is_complete());
        assert_eq!(
            t.approve("alice", "carol", Denied),
            Err(TallyError::NotPending(Denied))
        );
        assert_eq!(
            TallyError::NotPending(Approved).to_string(),
            "the request is already approved and takes no more approvals"
        );
        assert_eq!(t.approvers, ["bob", "Bob"]);
    }

    #[test]
    fn tally_never_completes_on_nobody_or_on_repeats() {
        assert!(!Tally::new(0).is_complete());
        assert_eq!(Tally::new(0).needed, 1);
        let by_hand = Tally {
            needed: 2,
            approvers: vec!["bob".into(), "bob".into()],
        };
        assert!(!by_hand.is_complete());
    }

    fn any_event() -> impl Strategy<Value = RequestEvent> {
        prop::sample::select(RequestEvent::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn terminal_is_final_and_running_needs_approval(
            events in prop::collection::vec(any_event(), 0..20),
        ) {
            let mut state = Pending;
            for event in events {
                let next = state.apply(event);
                if state.is_terminal() {
                    prop_assert!(next.is_err(), "{state} moved on {event}");
                }
                if let Ok(to) = next {
                    if to == Running {
                        prop_assert_eq!(state, Approved);
                    }
                    state = to;
                }
            }
        }

        #[test]
        fn tally_counts_distinct_others_only(
            needed in 0u32..5,
            votes in prop::collection::vec(0usize..5, 0..15),
        ) {
            let names = ["alice", "bob", "carol", "dave", "erin"];
            let requester = names[0];
            let mut tally = Tally::new(needed);
            for v in votes {
                let was_complete = tally.is_complete();
                match tally.approve(requester, names[v], Pending) {
                    Ok(status) => {
                        prop_assert_eq!(status == TallyStatus::Complete, tally.is_complete());
                    }
                    Err(TallyError::SelfApproval) => prop_assert_eq!(v, 0),
                    Err(TallyError::AlreadyApproved(n)) => prop_assert_eq!(n, names[v]),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                prop_assert!(!tally.approvers.iter().any(|a| a == requester));
                let mut distinct = tally.approvers.clone();
                distinct.sort();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), tally.approvers.len());
                let enough = tally.approvers.len() >= needed.max(1) as usize;
                prop_assert_eq!(tally.is_complete(), enough);
                prop_assert!(!was_complete || tally.is_complete());
            }
        }
    }
}
