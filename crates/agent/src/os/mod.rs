//! The operating-system edge of the agent: the only module of the crate allowed to hold
//! `unsafe` code (each block with a `// SAFETY:` comment) or to make raw system calls.
//!
//! Must never: grow logic of its own. Policy, decisions and audit live elsewhere; this module
//! only turns a prepared request into system calls.

pub mod exec;
pub mod fds;
pub mod files;
pub mod host;
pub mod memory;
pub mod netlink;
pub mod process;
pub mod pty;
