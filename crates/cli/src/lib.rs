//! Elevate's command lines. `elevate` asks the local agent to run a command as root; `ctl` is
//! `elevatectl`, the admin and approver tool that talks to the
//! server's API v1 with a token.
//!
//! Must never: print untrusted text to a terminal without making control characters visible, or
//! write a token to a file others can read.

pub mod ctl;
pub mod elevate;
