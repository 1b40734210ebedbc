//! Process handles that cannot be confused by pid reuse: pidfds for signalling and for waiting.
//!
//! Must never: signal a process by bare pid after it may have been reaped.

use std::io;
use std::os::fd::OwnedFd;

/// A signal to send (re-exported: callers name signals without calling the system themselves).
pub use rustix::process::Signal;
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags};

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

/// `SO_PEERPIDFD` (Linux 6.5): a pidfd for the process that connected. Not in libc yet.
const SO_PEERPIDFD: libc::c_int = 77;

/// The process at the other end of a Unix socket, as `SO_PEERPIDFD` names it.
#[derive(Debug)]
pub enum PeerProcess {
    /// A pidfd for the process that connected: its pid cannot be reused while it lives.
    Pidfd(OwnedFd),
    /// The kernel has no `SO_PEERPIDFD` (before Linux 6.5): only the pid is known.
    Unsupported,
    /// The kernel has it but could not give one (the peer has already gone): nothing about the
    /// peer's process can be trusted.
    Gone,
}

impl PeerProcess {
    /// Whether the connecting process is still there (so its pid is still its own).
    pub fn still_there(&self) -> bool {
        match self {
            PeerProcess::Pidfd(fd) => alive(fd),
            PeerProcess::Unsupported => true,
            PeerProcess::Gone => false,
        }
    }
}

/// The peer process of a Unix socket. Take it when the connection is accepted.
pub fn peer_process(socket: std::os::fd::BorrowedFd<'_>) -> PeerProcess {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `fd`, a live local int, and the new
    // length into `len`; the socket descriptor is borrowed for the call.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 || fd < 0 {
        let unsupported = io::Error::last_os_error().raw_os_error() == Some(libc::ENOPROTOOPT);
        return if r < 0 && unsupported {
            PeerProcess::Unsupported
        } else {
            PeerProcess::Gone
        };
    }
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    #[allow(unsafe_code)]
    PeerProcess::Pidfd(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the process behind `pidfd` is still running (signal 0 through the pidfd): while it
/// is, its pid cannot have been given to another process.
pub fn alive(pidfd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal with signal 0 only checks; the null siginfo is allowed.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

/// The real uid of a process (`Uid:` in `/proc/<pid>/status`): for sudo, the user who ran it.
/// Confirm the process is still the caller (a pidfd) after reading.
pub fn real_uid(pid: i32) -> io::Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|real| real.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Uid line for process {pid}")))
}

/// Sends SIGKILL to process `pid` by number (for processes the agent did not start and holds
/// no pidfd for: a session's leftovers, a user's old login). True when it was sent.
pub fn kill_by_pid(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|pid| rustix::process::kill_process(pid, Signal::KILL).is_ok())
}

/// Raises the soft limit on open files to the hard one.
pub fn raise_open_file_limit() -> io::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let have: (u32, u32) = (
            parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        );
        have >= (major, minor)
    }

    #[test]
    fn a_peer_pidfd_names_the_connecting_process_while_it_lives() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = peer_process(a.as_fd());
        if kernel_at_least(6, 5) {
            assert!(
                matches!(peer, PeerProcess::Pidfd(_)),
                "SO_PEERPIDFD exists since Linux 6.5"
            );
        }
        assert!(peer.still_there(), "this very process is the peer");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = pidfd_of_child(child.id()).unwrap();
        assert!(alive(&pidfd));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(&pidfd), "a reaped process is not alive");
    }
}
