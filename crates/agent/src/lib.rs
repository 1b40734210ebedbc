//! `elevated`, Elevate's root agent: one per endpoint. It listens on a Unix socket for the
//! `elevate` command (and later the sudo plugin), identifies each caller by the kernel's peer
//! credentials, decides on the cached signed policy, asks the server when a human must decide,
//! and runs exactly the hashed binary. Every step is spooled as an audit event before it takes
//! effect and delivered to the server.
//!
//! Architecture invariant: `os` is the only module with `unsafe` or raw system calls; the rest is
//! safe Rust over core's pure decisions. Failing closed is the default of every path: no
//! enrolment, no verified policy, no server for an approval, an unreadable binary → nothing runs.

pub mod cache;
pub mod cli;
pub mod daemon;
pub mod enrolment;
#[cfg(test)]
mod fuzz;
pub mod grants;
pub mod linux_audit;
pub mod os;
pub mod packages;
pub mod resolve;
pub mod rights;
mod session;
pub mod spool;
pub mod state;
pub mod state_file;
pub mod sudo_setup;
pub mod sudoers;
pub mod upstream;
pub mod users;

/// Where the agent listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/elevate/agent.sock";
/// Where the agent keeps its enrolment, policy cache and spool unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/elevate-agent";
