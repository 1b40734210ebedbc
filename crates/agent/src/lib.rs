//! `elevated`, Elevate's root agent: one per endpoint. It listens on a Unix socket for the
//! `elevate` command (and later the sudo plugin), identifies each caller by the kernel's peer
//! credentials, decides on the cached signed policy, asks the server when a human must decide,
//! and runs exactly the hashed binary. Every step is spooled as an audit event before it takes
//! effect and delivered to the server.
//!
//! Architecture invariant: `os` is the only module with `unsafe` or raw system calls; the rest is
//! safe Rust over core's pure decisions (every other module is `forbid(unsafe_code)`, which no
//! `allow` inside can undo). Failing closed is the default of every path: no
//! enrolment, no verified policy, no server for an approval, an unreadable binary → nothing runs.

#[forbid(unsafe_code)]
pub mod cache;
#[forbid(unsafe_code)]
mod caller;
#[forbid(unsafe_code)]
pub mod cli;
#[forbid(unsafe_code)]
pub mod daemon;
#[forbid(unsafe_code)]
pub mod enrolment;
#[cfg(test)]
#[forbid(unsafe_code)]
mod fuzz;
#[forbid(unsafe_code)]
pub mod grants;
#[forbid(unsafe_code)]
pub mod linux_audit;
pub mod os;
#[forbid(unsafe_code)]
pub mod packages;
#[forbid(unsafe_code)]
pub mod resolve;
#[forbid(unsafe_code)]
pub mod rights;
#[forbid(unsafe_code)]
pub mod spool;
#[forbid(unsafe_code)]
pub mod state;
#[forbid(unsafe_code)]
pub mod state_file;
#[forbid(unsafe_code)]
pub mod sudo_setup;
#[forbid(unsafe_code)]
pub mod sudoers;
#[forbid(unsafe_code)]
pub mod upstream;
#[forbid(unsafe_code)]
pub mod users;

/// Where the agent listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/elevate/agent.sock";
/// Where the agent keeps its enrolment, policy cache and spool unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/elevate-agent";
