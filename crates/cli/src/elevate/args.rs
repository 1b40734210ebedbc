//! The `elevate` command line, parsed by hand: options come before the command, and everything
//! from the command on belongs to it (`elevate ls -l` must not read `-l` as an option of ours).
//!
//! Must never: take an option after the command's name.

use std::path::PathBuf;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run {
        argv: Vec<String>,
        reason: Option<String>,
        socket: PathBuf,
    },
    Status {
        socket: PathBuf,
    },
    Requests {
        socket: PathBuf,
    },
    /// `elevate session 30m`: open an admin session.
    Session {
        duration_secs: u64,
        reason: Option<String>,
        socket: PathBuf,
    },
    /// `elevate session end`.
    EndSession {
        socket: PathBuf,
    },
    /// `elevate --reason TEXT break-glass`: an emergency admin session offline.
    BreakGlass {
        reason: Option<String>,
        socket: PathBuf,
    },
    Help,
    Version,
}

/// The agent's socket: `ELEVATE_SOCKET` (for tests and unusual installs), else the default.
/// A user pointing it elsewhere only talks to a process without root rights.
fn default_socket() -> PathBuf {
    std::env::var_os("ELEVATE_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/elevate/agent.sock"))
}

pub fn parse(args: &[String]) -> Result<Invocation, String> {
    parse_with(args, true)
}

/// `subcommands`: whether `status`, `requests` and `session` are ours (after `elevate run` they
/// are programs to run).
fn parse_with(args: &[String], subcommands: bool) -> Result<Invocation, String> {
    let mut reason = None;
    let mut socket = default_socket();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--" => {
                i += 1;
                break;
            }
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "-r" | "--reason" | "--socket" => {
                let value = args
                    .get(i + 1)
                    .ok_or_else(|| format!("{arg} needs a value"))?
                    .clone();
                if arg == "--socket" {
                    socket = PathBuf::from(value);
                } else {
                    reason = Some(value);
                }
                i += 2;
            }
            _ if arg.starts_with("--reason=") => {
                reason = Some(arg["--reason=".len()..].to_string());
                i += 1;
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => break,
        }
    }
    let rest = &args[i..];
    match rest.first().map(String::as_str) {
        None => Err("no command given".into()),
        Some(_) if !subcommands => Ok(Invocation::Run {
            argv: rest.to_vec(),
            reason,
            socket,
        }),
        Some("status") if rest.len() == 1 => Ok(Invocation::Status { socket }),
        Some("requests") if rest.len() == 1 => Ok(Invocation::Requests { socket }),
        Some("session") if rest.get(1).map(String::as_str) == Some("end") && rest.len() == 2 => {
            Ok(Invocation::EndSession { socket })
        }
        Some("session") if rest.len() == 2 => {
            let length = elevate_core::duration::parse(&rest[1]).map_err(|e| {
                format!("{e}; give the session's length, e.g. `elevate session 30m`")
            })?;
            if length <= jiff::SignedDuration::ZERO {
                return Err("an admin session must last longer than zero, e.g. `elevate session 30m`".into());
            }
            Ok(Invocation::Session {
                duration_secs: length.as_secs() as u64,
                reason,
                socket,
            })
        }
        Some("session") => Err(
            "usage: `elevate session 30m [--reason TEXT]` or `elevate session end`; to run a program called session, use `elevate run session …`".into(),
        ),
        Some("break-glass") if rest.len() == 1 => Ok(Invocation::BreakGlass { reason, socket }),
        Some("break-glass") => Err(
            "usage: `elevate --reason TEXT break-glass` (its length comes from the helpdesk's codes)".into(),
        ),
        Some("run") if rest.len() > 1 => parse_run(&rest[1..], reason, socket),
        Some("run") => Err("`elevate run` needs a command".into()),
        Some(_) => Ok(Invocation::Run {
            argv: rest.to_vec(),
            reason,
            socket,
        }),
    }
}

fn parse_run(
    rest: &[String],
    reason: Option<String>,
    socket: PathBuf,
) -> Result<Invocation, String> {
    match parse_with(rest, false)? {
        Invocation::Run {
            argv,
            reason: inner,
            socket: inner_socket,
        } => Ok(Invocation::Run {
            argv,
            reason: inner.or(reason),
            socket: if inner_socket == default_socket() {
                socket
            } else {
                inner_socket
            },
        }),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[track_caller]
    fn check(input: &[&str], expect: Result<(Vec<&str>, Option<&str>), &str>) {
        match (parse(&args(input)), expect) {
            (Ok(Invocation::Run { argv, reason, .. }), Ok((want, want_reason))) => {
                assert_eq!(argv, args(&want), "{input:?}");
                assert_eq!(reason.as_deref(), want_reason, "{input:?}");
            }
            (Err(e), Err(part)) => assert!(e.contains(part), "{input:?}: {e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn command_lines() {
        check(&["id", "-u"], Ok((vec!["id", "-u"], None)));
        check(
            &["--reason", "fix printer", "apt", "install", "cups"],
            Ok((vec!["apt", "install", "cups"], Some("fix printer"))),
        );
        check(
            &["--reason=x", "ls", "--reason", "y"],
            Ok((vec!["ls", "--reason", "y"], Some("x"))),
        );
        check(&["run", "ls", "-l"], Ok((vec!["ls", "-l"], None)));
        check(&["run", "--reason", "r", "ls"], Ok((vec!["ls"], Some("r"))));
        check(&["--", "-weird"], Ok((vec!["-weird"], None)));
        check(&["run", "status"], Ok((vec!["status"], None)));
        check(
            &["run", "session", "end"],
            Ok((vec!["session", "end"], None)),
        );
        check(
            &["run", "--reason", "r", "session", "x", "y"],
            Ok((vec!["session", "x", "y"], Some("r"))),
        );
        check(&["session", "soon"], Err("elevate session 30m"));
        check(&["session", "0m"], Err("is zero"));
        check(&["session", "1h", "now"], Err("usage"));
        assert_eq!(
            parse(&args(&["--reason", "patching", "session", "30m"])),
            Ok(Invocation::Session {
                duration_secs: 1800,
                reason: Some("patching".into()),
                socket: default_socket(),
            })
        );
        assert!(matches!(
            parse(&args(&["session", "end"])),
            Ok(Invocation::EndSession { .. })
        ));
        assert_eq!(
            parse(&args(&["--reason", "db down", "break-glass"])),
            Ok(Invocation::BreakGlass {
                reason: Some("db down".into()),
                socket: default_socket(),
            })
        );
        check(
            &["break-glass", "1h"],
            Err("its length comes from the helpdesk"),
        );
        check(&[], Err("no command"));
        check(&["--reason"], Err("needs a value"));
        check(&["--bogus", "ls"], Err("unknown option"));
        check(&["run"], Err("needs a command"));
        assert!(matches!(
            parse(&args(&["status"])),
            Ok(Invocation::Status { .. })
        ));
    }
}
