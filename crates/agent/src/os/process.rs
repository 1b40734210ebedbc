//! Process handles that cannot be confused by pid reuse: pidfds for signalling and for waiting.
//!
//! Must never: signal a process by bare pid after it may have been reaped.

use std::io;
use std::os::fd::OwnedFd;

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// A pidfd for a child the agent has not reaped yet (so its pid cannot have been reused).
pub fn pidfd_of_child(pid: u32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    Ok(pidfd_open(pid, PidfdFlags::empty())?)
}

/// Signals that a client may forward to its command.
pub fn forwardable(signo: i32) -> Option<Signal> {
    [
        Signal::INT,
        Signal::TERM,
        Signal::HUP,
        Signal::QUIT,
        Signal::USR1,
        Signal::USR2,
        Signal::WINCH,
        Signal::CONT,
        Signal::TSTP,
    ]
    .into_iter()
    .find(|s| s.as_raw() == signo)
}

/// Sends `signal` to the process behind `pidfd`.
pub fn signal(pidfd: &OwnedFd, signal: Signal) -> io::Result<()> {
    Ok(pidfd_send_signal(pidfd, signal)?)
}

/// Registers a pidfd with the runtime so that its exit can be awaited (a pidfd becomes readable
/// when the process ends).
pub fn watch_exit(pidfd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open, and refers to the same
    // file description, for as long as it is owned; the `AsyncFd` owns it from here until it is
    // dropped, and `OwnedFd::as_raw_fd` always returns that same descriptor.
    #[allow(unsafe_code)]
    let registered = unsafe { tokio::io::unix::AsyncFd::register(pidfd) };
    registered.map_err(|e| e.into())
}

/// How a child ended: exit code or terminating signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Waits for (and reaps) the child behind `pidfd`; immediate once the pidfd was readable.
pub fn reap(pidfd: &OwnedFd) -> io::Result<Ended> {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let status = waitid(
        WaitId::PidFd(std::os::fd::AsFd::as_fd(pidfd)),
        WaitIdOptions::EXITED,
    )?
    .ok_or_else(|| io::Error::other("the child has not ended"))?;
    Ok(Ended {
        code: status.exit_status(),
        signal: status.terminating_signal(),
    })
}
