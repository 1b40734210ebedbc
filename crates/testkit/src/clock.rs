//! The test server's clock, which moves only when a test says so.
//!
//! Must never: read the real clock (a test that needs the real now sets it).

use super::*;

/// A clock that only moves when the test says so.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn at(t: Timestamp) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(t.as_millisecond())))
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).expect("valid fake time")
    }

    pub fn advance(&self, d: SignedDuration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millisecond(), Ordering::SeqCst);
    }
}

/// Monday 2026-11-23 10:00 UTC: inside business hours of the demo policy.
pub fn monday_morning() -> Timestamp {
    "2026-11-23T10:00:00Z".parse().expect("valid literal")
}
