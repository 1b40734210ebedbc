//! End to end, as root: a real server, a real `elevated` enrolled with it, real Linux users made
//! by the test, and the real `elevate` command run as those users — in a private mount namespace
//! over a copy of `/etc`, so the machine's users and groups are never changed.
//!
//! Each test re-runs itself inside `unshare --mount`; without root it says so and skips (CI runs
//! as root and sets ELEVATE_REQUIRE_ROOT=1, so there it cannot skip).

mod admin_sessions;
mod attacks;
mod bounds;
mod flows;
mod linux_audit;
mod offline;
mod rights;
mod spool;
mod sudo;
mod world;

pub use world::{namespaced, World};
