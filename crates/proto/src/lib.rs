//! Elevate's wire formats: the JSON types of HTTP API v1, the signed policy bundle, and (with the
//! `client` feature) a blocking client for the API.
//!
//! Architecture invariant: this crate owns the wire format. Core types are converted here and never
//! serialised directly onto the wire. Must never: contain business rules (those live in core).

pub mod bundle;
#[cfg(feature = "client")]
pub mod client;
pub mod grant;
pub mod ipc;
pub mod limits;
pub mod linux_audit;
pub mod v1;

pub use bundle::{BundleError, BundlePayload, SignedBundle};
