//! Elevate's pure domain: the policy model and its evaluation, the request and grant lifecycles,
//! and the tamper-evident audit chain.
//!
//! Architecture invariant: this crate does no I/O, reads no clock, draws no randomness and has no
//! async code. Time (`now`) and anything random are passed in. Everything here is a function of
//! its arguments, so every decision can be replayed and explained.

pub mod audit;
pub mod calendar;
pub mod decision;
pub mod discovery;
pub mod duration;
pub mod grant;
pub mod lifecycle;
pub mod offline;
pub mod policy;
pub mod request;
pub mod text;

pub use decision::{ApprovalRoute, Constraints, Decision, Mode, Outcome, UnknownRequester};
pub use policy::{decide, Policy, PolicyError};
pub use request::{AccessRequest, Channel, CommandSpec, Reason, ReasonError, Subject, Target};
