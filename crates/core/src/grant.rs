//! Admin-session grants: a user's time-limited right to act as root on one device, with an
//! absolute expiry (security invariant 2).
//!
//! Must never: create a grant without an end, longer than the policy's maximum, or make a grant
//! active again once it has expired or been revoked. Time is always passed in as `now`.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::duration;

/// Where a grant stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// The user holds admin rights on the device.
    Active,
    /// The grant ran out at its expiry.
    Expired,
    /// The grant was ended early.
    Revoked,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a grant could not be made or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("an admin session must last longer than zero; ask for a length such as `30m`")]
    NotPositive,
    #[error(
        "an admin session of {} is longer than the {} the policy allows; ask for {} or less",
        duration::format(*.length), duration::format(*.max), duration::format(*.max)
    )]
    TooLong {
        length: SignedDuration,
        max: SignedDuration,
    },
    #[error(
        "an admin session of {} starting at {starts} would end beyond the supported range of \
         time; ask for a shorter one",
        duration::format(*.length)
    )]
    OutOfRange {
        starts: Timestamp,
        length: SignedDuration,
    },
    #[error("the grant is already {0}; only an active grant can be revoked")]
    NotActive(GrantState),
}

/// A user's admin session on one device.
///
/// Before `starts` a grant counts as active: `starts` is the moment it was made, by the clock
/// that made it, and a slightly slower clock elsewhere must not refuse it. `expires` is absolute
/// and is never later than `starts` plus the policy's maximum.
#[must_use = "a grant must be recorded and enforced"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    pub device: String,
    pub starts: Timestamp,
    pub expires: Timestamp,
    /// When it was ended early, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl Grant {
    /// A grant of `length` from `starts`. `length` must be positive and at most `max`.
    pub fn new(
        user: impl Into<String>,
        device: impl Into<String>,
        starts: Timestamp,
        length: SignedDuration,
        max: SignedDuration,
    ) -> Result<Grant, GrantError> {
        if length <= SignedDuration::ZERO {
            return Err(GrantError::NotPositive);
        }
        if length > max {
            return Err(GrantError::TooLong { length, max });
        }
        let expires = starts
            .checked_add(length)
            .map_err(|_| GrantError::OutOfRange { starts, length })?;
        Ok(Grant {
            user: user.into(),
            device: device.into(),
            starts,
            expires,
            revoked_at: None,
        })
    }

    /// Revoked once `revoked_at` has passed, else expired once `expires` has, else active.
    pub fn state_at(&self, now: Timestamp) -> GrantState {
        if self.revoked_at.is_some_and(|at| at <= now) {
            GrantState::Revoked
        } else if now >= self.expires {
            GrantState::Expired
        } else {
            GrantState::Active
        }
    }

    /// Ends an active grant at `now`.
    pub fn revoke(&mut self, now: Timestamp) -> Result<(), GrantError> {
        match self.state_at(now) {
            GrantState::Active => {
                self.revoked_at = Some(now);
                Ok(())
            }
            state => Err(GrantError::NotActive(state)),
        }
    }

    /// Time left at `now`; zero when the grant is not active.
    pub fn remaining(&self, now: Timestamp) -> SignedDuration {
        if self.state_at(now) != GrantState::Active {
            return SignedDuration::ZERO;
        }
        let ends = self
            .revoked_at
            .map_or(self.expires, |at| at.min(self.expires));
        ends.duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::GrantState::*;
    use super::*;

    fn t(minute: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + 60 * minute).unwrap()
    }

    fn mins(n: i64) -> SignedDuration {
        SignedDuration::from_mins(n)
    }

    /// A 60-minute grant from minute 0.
    fn hour() -> Grant {
        Grant::new("alice", "web-01", t(0), mins(60), mins(240)).unwrap()
    }

    #[track_caller]
    fn check(grant: &Grant, now: i64, state: GrantState, remaining: i64) {
        assert_eq!(
            (grant.state_at(t(now)), grant.remaining(t(now))),
            (state, mins(remaining)),
            "at minute {now}"
        );
    }

    #[test]
    fn making_a_grant() {
        let g = hour();
        assert_eq!((g.starts, g.expires, g.revoked_at), (t(0), t(60), None));
        assert_eq!(
            Grant::new("a", "d", t(0), mins(240), mins(240))
                .unwrap()
                .expires,
            t(240)
        );
        let err = |length, max| Grant::new("a", "d", t(0), length, max).unwrap_err();
        assert_eq!(err(SignedDuration::ZERO, mins(60)), GrantError::NotPositive);
        assert_eq!(err(mins(-5), mins(60)), GrantError::NotPositive);
        assert_eq!(
            err(mins(241), mins(240)).to_string(),
            "an admin session of 4h1m is longer than the 4h the policy allows; ask for 4h or less"
        );
        assert!(matches!(
            err(mins(1), SignedDuration::ZERO),
            GrantError::TooLong { .. }
        ));
        let end = Grant::new("a", "d", Timestamp::MAX, mins(1), mins(60)).unwrap_err();
        assert!(matches!(end, GrantError::OutOfRange { .. }), "{end}");
    }

    #[test]
    fn state_over_time() {
        let g = hour();
        check(&g, -1, Active, 61);
        check(&g, 0, Active, 60);
        check(&g, 59, Active, 1);
        check(&g, 60, Expired, 0);
        check(&g, 600, Expired, 0);

        let mut r = hour();
        r.revoke(t(20)).unwrap();
        assert_eq!(r.revoked_at, Some(t(20)));
        check(&r, 19, Active, 1);
        check(&r, 20, Revoked, 0);
        check(&r, 60, Revoked, 0);

        // A revocation recorded for later ends the grant then.
        let mut later = hour();
        later.revoked_at = Some(t(30));
        check(&later, 10, Active, 20);
        check(&later, 30, Revoked, 0);
    }

    #[test]
    fn only_an_active_grant_can_be_revoked() {
        let mut g = hour();
        g.revoke(t(10)).unwrap();
        assert_eq!(g.revoke(t(11)), Err(GrantError::NotActive(Revoked)));
        assert_eq!(g.revoked_at, Some(t(10)));
        let mut e = hour();
        let err = e.revoke(t(60)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the grant is already expired; only an active grant can be revoked"
        );
        assert_eq!(e.revoked_at, None);
    }

    #[test]
    fn states_serialise_in_snake_case() {
        for s in [Active, Expired, Revoked] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }

    proptest! {
        #[test]
        fn never_active_again(
            length in 1i64..600,
            revoke_at in prop::option::of(-60i64..700),
            mut times in prop::collection::vec(-60i64..800, 1..20),
        ) {
            let mut g = Grant::new("alice", "web-01", t(0), mins(length), mins(600)).unwrap();
            if let Some(at) = revoke_at {
                let _ = g.revoke(t(at));
            }
            times.sort_unstable();
            let mut ended = false;
            for now in times {
                let state = g.state_at(t(now));
                prop_assert!(!(ended && state == Active), "active again at minute {now}");
                ended |= state != Active;
                prop_assert_eq!(state == Active, g.remaining(t(now)) > SignedDuration::ZERO);
                let to_expiry = g.expires.duration_since(t(now)).max(SignedDuration::ZERO);
                prop_assert!(g.remaining(t(now)) <= to_expiry);
            }
        }
    }
}
