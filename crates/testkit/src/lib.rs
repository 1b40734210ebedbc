//! Test support, never shipped: `spawn` starts a real server on 127.0.0.1 port 0 over a fresh
//! SQLite file or a fresh PostgreSQL database, with a clock the test moves, an admin and an
//! enrolled device; plus small HTTP helpers. By area: `clock`, `server`, `portal`,
//! `processes` (the server as a process of its own, workspace binaries), `receivers` (an HTTP
//! receiver), `smtp` (an SMTP sink), `testdata` (third-party material and schemas).
//!
//! Must never: touch a database it did not create (PostgreSQL databases are `elevate_t_<uuid>`
//! and are dropped when the server is dropped).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use elevate_server::app::{Keys, Role, Settings};
use elevate_server::store::Store;
use elevate_server::{App, Running};
use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod certificates;
mod clock;
pub mod discovery;
mod portal;
mod processes;
mod receivers;
mod server;
mod smtp;
mod testdata;

pub use certificates::*;
pub use clock::*;
pub use portal::*;
pub use processes::*;
pub use receivers::*;
pub use server::*;
pub use smtp::*;
pub use testdata::*;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use (CI and every dev machine run one here).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Both backends, for tests that must hold on each.
pub const BACKENDS: [Db; 2] = [Db::Sqlite, Db::Postgres];

/// The password of every account the testkit creates.
pub const PASSWORD: &str = "test-password-0123";
