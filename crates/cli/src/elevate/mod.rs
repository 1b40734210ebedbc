//! `elevate`: run a command as root through the local agent, with no setuid binary.
//!
//! `elevate [--reason TEXT] COMMAND [ARGS…]` (or `elevate run …`), `elevate status`. The command's
//! exit status is `elevate`'s; a refusal exits 1 with the reason on stderr. While an approver
//! decides, a status line shows the wait and Ctrl-C withdraws the request; once the command runs,
//! signals are forwarded to it.
//! Must never: run anything itself, or print server-supplied text without making it
//! terminal-safe.

mod args;
mod connection;
mod terminal;

use std::process::ExitCode;

pub use args::{parse, Invocation};

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match parse(&argv) {
        Ok(i) => i,
        Err(message) => {
            eprintln!("elevate: {message}");
            eprintln!("usage: elevate [--reason TEXT] COMMAND [ARGS...] | elevate status");
            return ExitCode::from(2);
        }
    };
    connection::run(invocation)
}
